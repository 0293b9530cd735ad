//go:build !purego

#include "textflag.h"

// Vector kernels over whole 8-lane vectors (the Go wrappers handle tails). Each
// loop runs 32 elements per iteration with independent accumulators, then single
// vectors.

// ROWS_ARGS loads the arguments of axpyRowsAVX2 and axpyRowsAVX512: SI = alpha,
// CX = rows, DI = idx, R8 = x, R9 = ldx·4, DX = y, BX = len(y)·4, R10 = 0 (the
// byte offset of the current chunk of y).
#define ROWS_ARGS \
	MOVQ alpha_base+0(FP), SI; \
	MOVQ alpha_len+8(FP), CX; \
	MOVQ idx_base+24(FP), DI; \
	MOVQ x+48(FP), R8; \
	MOVQ ldx+56(FP), R9; \
	SHLQ $2, R9; \
	MOVQ y_base+64(FP), DX; \
	MOVQ y_len+72(FP), BX; \
	SHLQ $2, BX; \
	XORQ R10, R10

// ROW_ADDR sets R12 to the address of row idx[AX] of x.
#define ROW_ADDR \
	MOVLQSX (DI)(AX*4), R12; \
	IMULQ R9, R12; \
	ADDQ R8, R12

// func dotAVX2(a, b []float32) float32
TEXT ·dotAVX2(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ b_base+24(FP), DI
	MOVQ a_len+8(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dot32:
	CMPQ CX, $32
	JL   dot8
	VMOVUPS (SI), Y4
	VMOVUPS 32(SI), Y5
	VMOVUPS 64(SI), Y6
	VMOVUPS 96(SI), Y7
	VFMADD231PS (DI), Y4, Y0
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  dot32

dot8:
	TESTQ CX, CX
	JZ    dotSum
	VMOVUPS (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  dot8

dotSum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func axpyAVX2(alpha float32, x, y []float32)
TEXT ·axpyAVX2(SB), NOSPLIT, $0-56
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x_base+8(FP), SI
	MOVQ y_base+32(FP), DI
	MOVQ x_len+16(FP), CX

axpy32:
	CMPQ CX, $32
	JL   axpy8
	VMOVUPS (DI), Y1
	VMOVUPS 32(DI), Y2
	VMOVUPS 64(DI), Y3
	VMOVUPS 96(DI), Y4
	VFMADD231PS (SI), Y0, Y1
	VFMADD231PS 32(SI), Y0, Y2
	VFMADD231PS 64(SI), Y0, Y3
	VFMADD231PS 96(SI), Y0, Y4
	VMOVUPS Y1, (DI)
	VMOVUPS Y2, 32(DI)
	VMOVUPS Y3, 64(DI)
	VMOVUPS Y4, 96(DI)
	ADDQ $128, SI
	ADDQ $128, DI
	SUBQ $32, CX
	JMP  axpy32

axpy8:
	TESTQ CX, CX
	JZ    axpyDone
	VMOVUPS (DI), Y1
	VFMADD231PS (SI), Y0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	SUBQ $8, CX
	JMP  axpy8

axpyDone:
	VZEROUPPER
	RET

// func scaleAVX2(alpha float32, x []float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-32
	VBROADCASTSS alpha+0(FP), Y0
	MOVQ x_base+8(FP), SI
	MOVQ x_len+16(FP), CX

scale32:
	CMPQ CX, $32
	JL   scale8
	VMULPS (SI), Y0, Y1
	VMULPS 32(SI), Y0, Y2
	VMULPS 64(SI), Y0, Y3
	VMULPS 96(SI), Y0, Y4
	VMOVUPS Y1, (SI)
	VMOVUPS Y2, 32(SI)
	VMOVUPS Y3, 64(SI)
	VMOVUPS Y4, 96(SI)
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  scale32

scale8:
	TESTQ CX, CX
	JZ    scaleDone
	VMULPS (SI), Y0, Y1
	VMOVUPS Y1, (SI)
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  scale8

scaleDone:
	VZEROUPPER
	RET

// func blendAVX2(dst []float64, wd float64, x []float32, wx, total float64)
TEXT ·blendAVX2(SB), NOSPLIT, $0-72
	MOVQ dst_base+0(FP), DI
	MOVQ dst_len+8(FP), CX
	VBROADCASTSD wd+24(FP), Y0
	MOVQ x_base+32(FP), SI
	VBROADCASTSD wx+56(FP), Y1
	VBROADCASTSD total+64(FP), Y2

blend8:
	CMPQ CX, $8
	JL   blend4
	VCVTPS2PD (SI), Y3
	VCVTPS2PD 16(SI), Y4
	VMULPD Y1, Y3, Y3
	VMULPD Y1, Y4, Y4
	VMULPD (DI), Y0, Y5
	VMULPD 32(DI), Y0, Y6
	VADDPD Y3, Y5, Y5
	VADDPD Y4, Y6, Y6
	VDIVPD Y2, Y5, Y5
	VDIVPD Y2, Y6, Y6
	VMOVUPD Y5, (DI)
	VMOVUPD Y6, 32(DI)
	ADDQ $32, SI
	ADDQ $64, DI
	SUBQ $8, CX
	JMP  blend8

blend4:
	TESTQ CX, CX
	JZ    blendDone
	VCVTPS2PD (SI), Y3
	VMULPD Y1, Y3, Y3
	VMULPD (DI), Y0, Y5
	VADDPD Y3, Y5, Y5
	VDIVPD Y2, Y5, Y5
	VMOVUPD Y5, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	SUBQ $4, CX
	JMP  blend4

blendDone:
	VZEROUPPER
	RET

// func maxAVX2(x []float32) float32
//
// VMAXPS does not propagate NaN reliably, so NaN lanes are collected separately in
// Y5 (all-ones where an element was unordered with itself).
TEXT ·maxAVX2(SB), NOSPLIT, $0-28
	MOVQ x_base+0(FP), SI
	MOVQ x_len+8(FP), CX
	VMOVUPS (SI), Y0
	VMOVAPS Y0, Y1
	VMOVAPS Y0, Y2
	VMOVAPS Y0, Y3
	VXORPS  Y5, Y5, Y5

max32:
	CMPQ CX, $32
	JL   max8
	VMOVUPS (SI), Y6
	VMOVUPS 32(SI), Y7
	VMOVUPS 64(SI), Y8
	VMOVUPS 96(SI), Y9
	VMAXPS Y6, Y0, Y0
	VMAXPS Y7, Y1, Y1
	VMAXPS Y8, Y2, Y2
	VMAXPS Y9, Y3, Y3
	VCMPPS $3, Y6, Y6, Y6
	VCMPPS $3, Y7, Y7, Y7
	VCMPPS $3, Y8, Y8, Y8
	VCMPPS $3, Y9, Y9, Y9
	VORPS  Y6, Y7, Y7
	VORPS  Y8, Y9, Y9
	VORPS  Y7, Y5, Y5
	VORPS  Y9, Y5, Y5
	ADDQ $128, SI
	SUBQ $32, CX
	JMP  max32

max8:
	TESTQ CX, CX
	JZ    maxReduce
	VMOVUPS (SI), Y6
	VMAXPS Y6, Y0, Y0
	VCMPPS $3, Y6, Y6, Y6
	VORPS  Y6, Y5, Y5
	ADDQ $32, SI
	SUBQ $8, CX
	JMP  max8

maxReduce:
	VMOVMSKPS Y5, AX
	TESTL     AX, AX
	JNZ       maxNaN
	VMAXPS Y1, Y0, Y0
	VMAXPS Y3, Y2, Y2
	VMAXPS Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0x4e, X0, X1
	VMAXPS X1, X0, X0
	VPERMILPS $0xb1, X0, X1
	VMAXPS X1, X0, X0
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

maxNaN:
	MOVL $0x7fc00000, AX
	MOVL AX, ret+24(FP)
	VZEROUPPER
	RET

// func axpyRowsAVX2(alpha []float32, idx []int32, x *float32, ldx int, y []float32)
//
// y += alpha[i]·x[idx[i]·ldx:] for each i in order, len(y) a multiple of 8. y is
// held in registers 64 elements (Y0–Y7) at a time while every row streams past, then
// 8 at a time; each element sees the same fused multiply-adds, in the same order, as
// axpyAVX2 called once per row.
TEXT ·axpyRowsAVX2(SB), NOSPLIT, $0-88
	ROWS_ARGS

rows64:
	LEAQ 256(R10), R11
	CMPQ R11, BX
	JG   rows8
	VMOVUPS (DX)(R10*1), Y0
	VMOVUPS 32(DX)(R10*1), Y1
	VMOVUPS 64(DX)(R10*1), Y2
	VMOVUPS 96(DX)(R10*1), Y3
	VMOVUPS 128(DX)(R10*1), Y4
	VMOVUPS 160(DX)(R10*1), Y5
	VMOVUPS 192(DX)(R10*1), Y6
	VMOVUPS 224(DX)(R10*1), Y7
	XORQ AX, AX

rows64Loop:
	CMPQ AX, CX
	JE   rows64Store
	VBROADCASTSS (SI)(AX*4), Y8
	ROW_ADDR
	ADDQ R10, R12
	VFMADD231PS (R12), Y8, Y0
	VFMADD231PS 32(R12), Y8, Y1
	VFMADD231PS 64(R12), Y8, Y2
	VFMADD231PS 96(R12), Y8, Y3
	VFMADD231PS 128(R12), Y8, Y4
	VFMADD231PS 160(R12), Y8, Y5
	VFMADD231PS 192(R12), Y8, Y6
	VFMADD231PS 224(R12), Y8, Y7
	INCQ AX
	JMP  rows64Loop

rows64Store:
	VMOVUPS Y0, (DX)(R10*1)
	VMOVUPS Y1, 32(DX)(R10*1)
	VMOVUPS Y2, 64(DX)(R10*1)
	VMOVUPS Y3, 96(DX)(R10*1)
	VMOVUPS Y4, 128(DX)(R10*1)
	VMOVUPS Y5, 160(DX)(R10*1)
	VMOVUPS Y6, 192(DX)(R10*1)
	VMOVUPS Y7, 224(DX)(R10*1)
	MOVQ R11, R10
	JMP  rows64

rows8:
	LEAQ 32(R10), R11
	CMPQ R11, BX
	JG   rowsDone
	VMOVUPS (DX)(R10*1), Y0
	XORQ AX, AX

rows8Loop:
	CMPQ AX, CX
	JE   rows8Store
	VBROADCASTSS (SI)(AX*4), Y8
	ROW_ADDR
	VFMADD231PS (R12)(R10*1), Y8, Y0
	INCQ AX
	JMP  rows8Loop

rows8Store:
	VMOVUPS Y0, (DX)(R10*1)
	MOVQ R11, R10
	JMP  rows8

rowsDone:
	VZEROUPPER
	RET

// func axpyRowsAVX512(alpha []float32, idx []int32, x *float32, ldx int, y []float32)
//
// axpyRowsAVX2 with 16-lane vectors: y is held 128 elements (Z0–Z7, a whole head of
// 128) at a time, then 16; len(y) is a multiple of 16. The fused multiply-adds are
// per element the same, so the results are too.
TEXT ·axpyRowsAVX512(SB), NOSPLIT, $0-88
	ROWS_ARGS

z128:
	LEAQ 512(R10), R11
	CMPQ R11, BX
	JG   z16
	VMOVUPS (DX)(R10*1), Z0
	VMOVUPS 64(DX)(R10*1), Z1
	VMOVUPS 128(DX)(R10*1), Z2
	VMOVUPS 192(DX)(R10*1), Z3
	VMOVUPS 256(DX)(R10*1), Z4
	VMOVUPS 320(DX)(R10*1), Z5
	VMOVUPS 384(DX)(R10*1), Z6
	VMOVUPS 448(DX)(R10*1), Z7
	XORQ AX, AX

z128Loop:
	CMPQ AX, CX
	JE   z128Store
	VBROADCASTSS (SI)(AX*4), Z8
	ROW_ADDR
	ADDQ R10, R12
	VFMADD231PS (R12), Z8, Z0
	VFMADD231PS 64(R12), Z8, Z1
	VFMADD231PS 128(R12), Z8, Z2
	VFMADD231PS 192(R12), Z8, Z3
	VFMADD231PS 256(R12), Z8, Z4
	VFMADD231PS 320(R12), Z8, Z5
	VFMADD231PS 384(R12), Z8, Z6
	VFMADD231PS 448(R12), Z8, Z7
	INCQ AX
	JMP  z128Loop

z128Store:
	VMOVUPS Z0, (DX)(R10*1)
	VMOVUPS Z1, 64(DX)(R10*1)
	VMOVUPS Z2, 128(DX)(R10*1)
	VMOVUPS Z3, 192(DX)(R10*1)
	VMOVUPS Z4, 256(DX)(R10*1)
	VMOVUPS Z5, 320(DX)(R10*1)
	VMOVUPS Z6, 384(DX)(R10*1)
	VMOVUPS Z7, 448(DX)(R10*1)
	MOVQ R11, R10
	JMP  z128

z16:
	LEAQ 64(R10), R11
	CMPQ R11, BX
	JG   zDone
	VMOVUPS (DX)(R10*1), Z0
	XORQ AX, AX

z16Loop:
	CMPQ AX, CX
	JE   z16Store
	VBROADCASTSS (SI)(AX*4), Z8
	ROW_ADDR
	VFMADD231PS (R12)(R10*1), Z8, Z0
	INCQ AX
	JMP  z16Loop

z16Store:
	VMOVUPS Z0, (DX)(R10*1)
	MOVQ R11, R10
	JMP  z16

zDone:
	VZEROUPPER
	RET
