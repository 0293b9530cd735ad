#include "textflag.h"

// func decodeF16C(dst *float32, src *byte, n int) (nonFinite bool)
//
// Widens n binary16 values (n a multiple of 16) with VCVTPH2PS, and reports whether
// any had an all-ones exponent (±Inf or NaN).
TEXT ·decodeF16C(SB), NOSPLIT, $0-25
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVL $0x7c007c00, AX
	MOVD AX, X15
	VPBROADCASTD X15, X15
	VPXOR X14, X14, X14
	TESTQ CX, CX
	JZ done

loop:
	VMOVDQU (SI), X0
	VMOVDQU 16(SI), X1
	VCVTPH2PS X0, Y2
	VCVTPH2PS X1, Y3
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	VPAND X15, X0, X0
	VPAND X15, X1, X1
	VPCMPEQW X15, X0, X0
	VPCMPEQW X15, X1, X1
	VPOR X0, X14, X14
	VPOR X1, X14, X14
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $16, CX
	JNZ loop

done:
	VPTEST X14, X14
	SETNE nonFinite+24(FP)
	VZEROUPPER
	RET
