//go:build !purego

#include "textflag.h"

// Vector exp; see exp32 in generic.go for the method and expVec in kernel_amd64.go
// for the constants. Rows of ·expVec, 32 bytes each:
#define EXP_LOG2E 0
#define EXP_LN2HI 32
#define EXP_LN2LO 64
#define EXP_C7 96
#define EXP_C6 128
#define EXP_C5 160
#define EXP_C4 192
#define EXP_C3 224
#define EXP_C2 256
#define EXP_ONE 288
#define EXP_MIN 352
#define EXP_MAX 384
#define EXP_INF 416
#define EXP_SHIFTER 448
#define EXP_CLAMP 480

// Compare predicates.
#define NLT_US 5 // !(a < b): true for NaN
#define GT_OQ 30 // a > b: false for NaN

// func expShiftAVX2(x []float32, shift float32) float32
//
// Registers: Y15 log2e, Y14 ln2hi, Y13 ln2lo, Y12 1, Y11 shift, Y10 min, Y9 max,
// Y8 +Inf, Y6 round shifter, Y7 running sum. The other polynomial coefficients are
// memory operands.
TEXT ·expShiftAVX2(SB), NOSPLIT, $0-36
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	LEAQ ·expVec(SB), AX
	VMOVUPS EXP_LOG2E(AX), Y15
	VMOVUPS EXP_LN2HI(AX), Y14
	VMOVUPS EXP_LN2LO(AX), Y13
	VMOVUPS EXP_ONE(AX), Y12
	VBROADCASTSS shift+24(FP), Y11
	VMOVUPS EXP_MIN(AX), Y10
	VMOVUPS EXP_MAX(AX), Y9
	VMOVUPS EXP_INF(AX), Y8
	VMOVUPS EXP_SHIFTER(AX), Y6
	VXORPS  Y7, Y7, Y7
	TESTQ CX, CX
	JZ    expAVX2Done

expAVX2Loop:
	VMOVUPS (SI), Y0
	VSUBPS  Y11, Y0, Y0      // x -= shift
	VMINPS  Y0, Y9, Y1       // clamp to [min, max]; NaN passes through
	VMAXPS  Y1, Y10, Y1
	VMOVAPS Y6, Y2
	VFMADD231PS Y15, Y1, Y2  // x·log2e + shifter: n in the low bits
	VSUBPS  Y6, Y2, Y3       // n
	VFNMADD231PS Y14, Y3, Y1 // r = x - n·ln2hi - n·ln2lo
	VFNMADD231PS Y13, Y3, Y1
	VMOVUPS EXP_C7(AX), Y3
	VFMADD213PS EXP_C6(AX), Y1, Y3
	VFMADD213PS EXP_C5(AX), Y1, Y3
	VFMADD213PS EXP_C4(AX), Y1, Y3
	VFMADD213PS EXP_C3(AX), Y1, Y3
	VFMADD213PS EXP_C2(AX), Y1, Y3
	VFMADD213PS Y12, Y1, Y3
	VFMADD213PS Y12, Y1, Y3  // p = exp(r)
	VPSLLD  $23, Y2, Y2
	VPADDD  Y2, Y3, Y3       // p·2ⁿ
	VCMPPS  $NLT_US, Y10, Y0, Y4
	VANDPS  Y4, Y3, Y3       // 0 below min
	VCMPPS  $GT_OQ, Y9, Y0, Y5
	VBLENDVPS Y5, Y8, Y3, Y3 // +Inf above max
	VMOVUPS Y3, (SI)
	VADDPS  Y3, Y7, Y7
	ADDQ $32, SI
	SUBQ $8, CX
	JNZ  expAVX2Loop

expAVX2Done:
	VEXTRACTF128 $1, Y7, X1
	VADDPS X1, X7, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET

// EXP16 computes 16 lanes: x from off(SI), result back there and added to sum.
// Inputs are clamped to [min, 89]; VSCALEFPS then overflows to +Inf by itself, and
// zero-masking with kmin gives 0 below min.
// Registers: Z16 log2e, Z17 ln2hi, Z18 ln2lo, Z19-Z26 coefficients c7..c0,
// Z27 shift, Z28 min, Z29 overflow clamp, Z30 round shifter.
#define EXP16(off, x, t, n, p, sum, kmin) \
	VMOVUPS off(SI), x; \
	VSUBPS  Z27, x, x; \
	VMINPS  x, Z29, t; \
	VMAXPS  t, Z28, t; \
	VMOVAPS Z30, n; \
	VFMADD231PS Z16, t, n; \
	VSUBPS  Z30, n, n; \
	VFNMADD231PS Z17, n, t; \
	VFNMADD231PS Z18, n, t; \
	VMOVAPS Z19, p; \
	VFMADD213PS Z20, t, p; \
	VFMADD213PS Z21, t, p; \
	VFMADD213PS Z22, t, p; \
	VFMADD213PS Z23, t, p; \
	VFMADD213PS Z24, t, p; \
	VFMADD213PS Z25, t, p; \
	VFMADD213PS Z26, t, p; \
	VCMPPS  $NLT_US, Z28, x, kmin; \
	VSCALEFPS.Z n, p, kmin, p; \
	VMOVUPS p, off(SI); \
	VADDPS  p, sum, sum

// func expShiftAVX512(x []float32, shift float32) float32
TEXT ·expShiftAVX512(SB), NOSPLIT, $0-36
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	LEAQ ·expVec(SB), AX
	VBROADCASTSS EXP_LOG2E(AX), Z16
	VBROADCASTSS EXP_LN2HI(AX), Z17
	VBROADCASTSS EXP_LN2LO(AX), Z18
	VBROADCASTSS EXP_C7(AX), Z19
	VBROADCASTSS EXP_C6(AX), Z20
	VBROADCASTSS EXP_C5(AX), Z21
	VBROADCASTSS EXP_C4(AX), Z22
	VBROADCASTSS EXP_C3(AX), Z23
	VBROADCASTSS EXP_C2(AX), Z24
	VBROADCASTSS EXP_ONE(AX), Z25
	VBROADCASTSS EXP_ONE(AX), Z26
	VBROADCASTSS shift+24(FP), Z27
	VBROADCASTSS EXP_MIN(AX), Z28
	VBROADCASTSS EXP_CLAMP(AX), Z29
	VBROADCASTSS EXP_SHIFTER(AX), Z30
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9

expAVX512Loop32:
	CMPQ CX, $32
	JL   expAVX512Tail
	EXP16(0, Z0, Z1, Z2, Z3, Z8, K1)
	EXP16(64, Z4, Z5, Z6, Z7, Z9, K2)
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  expAVX512Loop32

expAVX512Tail:
	TESTQ CX, CX
	JZ    expAVX512Done
	EXP16(0, Z0, Z1, Z2, Z3, Z8, K1)

expAVX512Done:
	VADDPS Z9, Z8, Z8
	VEXTRACTF64X4 $1, Z8, Y1
	VADDPS Y1, Y8, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+32(FP)
	VZEROUPPER
	RET
