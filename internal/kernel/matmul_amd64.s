//go:build !purego

#include "textflag.h"

// Matrix-multiply kernels; matmul_amd64.go describes the blocking. A packed panel
// row is 32 floats (128 bytes).

// A tile reads its rows of A through two base pointers, R8 (row 0) and R10 (row 3),
// with R9 = lda and R11 = 3·lda in bytes:
// row 0 (R8), 1 (R8)(R9*1), 2 (R8)(R9*2), 3 (R10), 4 (R8)(R9*4), 5 (R10)(R9*2),
// 6 (R8)(R11*2), 7 (R10)(R9*4).

// TILE_ARGS loads the arguments shared by the tile kernels: CX = kc, R8/R10 = A rows
// 0 and 3, R9 = lda·4, R11 = 3·lda·4, DX = panel, DI = C, BX = ldc·4.
#define TILE_ARGS \
	MOVQ kc+0(FP), CX; \
	MOVQ a+8(FP), R8; \
	MOVQ lda+16(FP), R9; \
	SHLQ $2, R9; \
	LEAQ (R9)(R9*2), R11; \
	LEAQ (R8)(R11*1), R10; \
	MOVQ panel+24(FP), DX; \
	MOVQ c+32(FP), DI; \
	MOVQ ldc+40(FP), BX; \
	SHLQ $2, BX

// STEP6x16 is one reduction step of the 6×16 AVX2 tile: accumulators Y0-Y11 (row i
// in Y(2i), Y(2i+1)), panel vectors Y12-Y13, broadcasts Y14-Y15.
#define STEP6x16(aoff, boff) \
	VMOVUPS boff(DX), Y12; \
	VMOVUPS boff+32(DX), Y13; \
	VBROADCASTSS aoff(R8), Y14; \
	VFMADD231PS Y12, Y14, Y0; \
	VFMADD231PS Y13, Y14, Y1; \
	VBROADCASTSS aoff(R8)(R9*1), Y15; \
	VFMADD231PS Y12, Y15, Y2; \
	VFMADD231PS Y13, Y15, Y3; \
	VBROADCASTSS aoff(R8)(R9*2), Y14; \
	VFMADD231PS Y12, Y14, Y4; \
	VFMADD231PS Y13, Y14, Y5; \
	VBROADCASTSS aoff(R10), Y15; \
	VFMADD231PS Y12, Y15, Y6; \
	VFMADD231PS Y13, Y15, Y7; \
	VBROADCASTSS aoff(R8)(R9*4), Y14; \
	VFMADD231PS Y12, Y14, Y8; \
	VFMADD231PS Y13, Y14, Y9; \
	VBROADCASTSS aoff(R10)(R9*2), Y15; \
	VFMADD231PS Y12, Y15, Y10; \
	VFMADD231PS Y13, Y15, Y11

// ROW2Y adds C's row at DI to lo, hi if accumulating (AX != 0), stores them there
// and moves DI to the next row.
#define ROW2Y(lo, hi) \
	TESTQ AX, AX; \
	JZ   3(PC); \
	VADDPS (DI), lo, lo; \
	VADDPS 32(DI), hi, hi; \
	VMOVUPS lo, (DI); \
	VMOVUPS hi, 32(DI); \
	ADDQ BX, DI

// func tile6x16AVX2(kc int, a *float32, lda int, panel *float32, c *float32, ldc int, accumulate bool)
TEXT ·tile6x16AVX2(SB), NOSPLIT, $0-49
	TILE_ARGS
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

tile6x16Loop4:
	CMPQ CX, $4
	JL   tile6x16Loop1
	STEP6x16(0, 0)
	STEP6x16(4, 128)
	STEP6x16(8, 256)
	STEP6x16(12, 384)
	ADDQ $16, R8
	ADDQ $16, R10
	ADDQ $512, DX
	SUBQ $4, CX
	JMP  tile6x16Loop4

tile6x16Loop1:
	TESTQ CX, CX
	JZ    tile6x16Store
	STEP6x16(0, 0)
	ADDQ $4, R8
	ADDQ $4, R10
	ADDQ $128, DX
	DECQ CX
	JMP  tile6x16Loop1

tile6x16Store:
	MOVBQZX accumulate+48(FP), AX
	ROW2Y(Y0, Y1)
	ROW2Y(Y2, Y3)
	ROW2Y(Y4, Y5)
	ROW2Y(Y6, Y7)
	ROW2Y(Y8, Y9)
	ROW2Y(Y10, Y11)
	VZEROUPPER
	RET

// STEP8x32 is one reduction step of the 8×32 AVX-512 tile: accumulators Z0-Z15
// (row i in Z(2i), Z(2i+1)), panel vectors Z16-Z17, broadcasts Z18-Z25.
#define STEP8x32(aoff, boff) \
	VMOVUPS boff(DX), Z16; \
	VMOVUPS boff+64(DX), Z17; \
	VBROADCASTSS aoff(R8), Z18; \
	VBROADCASTSS aoff(R8)(R9*1), Z19; \
	VBROADCASTSS aoff(R8)(R9*2), Z20; \
	VBROADCASTSS aoff(R10), Z21; \
	VFMADD231PS Z16, Z18, Z0; \
	VFMADD231PS Z17, Z18, Z1; \
	VFMADD231PS Z16, Z19, Z2; \
	VFMADD231PS Z17, Z19, Z3; \
	VFMADD231PS Z16, Z20, Z4; \
	VFMADD231PS Z17, Z20, Z5; \
	VFMADD231PS Z16, Z21, Z6; \
	VFMADD231PS Z17, Z21, Z7; \
	VBROADCASTSS aoff(R8)(R9*4), Z22; \
	VBROADCASTSS aoff(R10)(R9*2), Z23; \
	VBROADCASTSS aoff(R8)(R11*2), Z24; \
	VBROADCASTSS aoff(R10)(R9*4), Z25; \
	VFMADD231PS Z16, Z22, Z8; \
	VFMADD231PS Z17, Z22, Z9; \
	VFMADD231PS Z16, Z23, Z10; \
	VFMADD231PS Z17, Z23, Z11; \
	VFMADD231PS Z16, Z24, Z12; \
	VFMADD231PS Z17, Z24, Z13; \
	VFMADD231PS Z16, Z25, Z14; \
	VFMADD231PS Z17, Z25, Z15

#define ROW2Z(lo, hi) \
	TESTQ AX, AX; \
	JZ   3(PC); \
	VADDPS (DI), lo, lo; \
	VADDPS 64(DI), hi, hi; \
	VMOVUPS lo, (DI); \
	VMOVUPS hi, 64(DI); \
	ADDQ BX, DI

// func tile8x32AVX512(kc int, a *float32, lda int, panel *float32, c *float32, ldc int, accumulate bool)
TEXT ·tile8x32AVX512(SB), NOSPLIT, $0-49
	TILE_ARGS
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15

tile8x32Loop4:
	CMPQ CX, $4
	JL   tile8x32Loop1
	STEP8x32(0, 0)
	STEP8x32(4, 128)
	STEP8x32(8, 256)
	STEP8x32(12, 384)
	ADDQ $16, R8
	ADDQ $16, R10
	ADDQ $512, DX
	SUBQ $4, CX
	JMP  tile8x32Loop4

tile8x32Loop1:
	TESTQ CX, CX
	JZ    tile8x32Store
	STEP8x32(0, 0)
	ADDQ $4, R8
	ADDQ $4, R10
	ADDQ $128, DX
	DECQ CX
	JMP  tile8x32Loop1

tile8x32Store:
	MOVBQZX accumulate+48(FP), AX
	ROW2Z(Z0, Z1)
	ROW2Z(Z2, Z3)
	ROW2Z(Z4, Z5)
	ROW2Z(Z6, Z7)
	ROW2Z(Z8, Z9)
	ROW2Z(Z10, Z11)
	ROW2Z(Z12, Z13)
	ROW2Z(Z14, Z15)
	VZEROUPPER
	RET

// TRANSPOSE4 transposes the 4×4 blocks in each 128-bit lane of r0-r3 into o0-o3,
// using t0-t3 as scratch.
#define TRANSPOSE4(r0, r1, r2, r3, t0, t1, t2, t3, o0, o1, o2, o3) \
	VUNPCKLPS r1, r0, t0; \
	VUNPCKHPS r1, r0, t1; \
	VUNPCKLPS r3, r2, t2; \
	VUNPCKHPS r3, r2, t3; \
	VSHUFPS $0x44, t2, t0, o0; \
	VSHUFPS $0xee, t2, t0, o1; \
	VSHUFPS $0x44, t3, t1, o2; \
	VSHUFPS $0xee, t3, t1, o3

// func packPanelAVX2(kc int, b *float32, ldb int, panel *float32)
//
// Each iteration transposes an 8×8 block: the low lanes hold B rows 0-3 and the
// high lanes rows 4-7 (SI and R8 point at rows 0 and 4; DX = ldb, R9 = 3·ldb in
// bytes), so one in-lane 4×4 transpose yields whole panel rows.
TEXT ·packPanelAVX2(SB), NOSPLIT, $0-32
	MOVQ kc+0(FP), CX
	MOVQ b+8(FP), SI
	MOVQ ldb+16(FP), DX
	SHLQ $2, DX
	MOVQ panel+24(FP), DI
	LEAQ (DX)(DX*2), R9
	LEAQ (SI)(DX*4), R8

packLoop:
	VMOVUPS (SI), X0
	VINSERTF128 $1, (R8), Y0, Y0
	VMOVUPS (SI)(DX*1), X1
	VINSERTF128 $1, (R8)(DX*1), Y1, Y1
	VMOVUPS (SI)(DX*2), X2
	VINSERTF128 $1, (R8)(DX*2), Y2, Y2
	VMOVUPS (SI)(R9*1), X3
	VINSERTF128 $1, (R8)(R9*1), Y3, Y3
	VMOVUPS 16(SI), X4
	VINSERTF128 $1, 16(R8), Y4, Y4
	VMOVUPS 16(SI)(DX*1), X5
	VINSERTF128 $1, 16(R8)(DX*1), Y5, Y5
	VMOVUPS 16(SI)(DX*2), X6
	VINSERTF128 $1, 16(R8)(DX*2), Y6, Y6
	VMOVUPS 16(SI)(R9*1), X7
	VINSERTF128 $1, 16(R8)(R9*1), Y7, Y7
	TRANSPOSE4(Y0, Y1, Y2, Y3, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15)
	VMOVUPS Y12, (DI)
	VMOVUPS Y13, 128(DI)
	VMOVUPS Y14, 256(DI)
	VMOVUPS Y15, 384(DI)
	TRANSPOSE4(Y4, Y5, Y6, Y7, Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y15)
	VMOVUPS Y12, 512(DI)
	VMOVUPS Y13, 640(DI)
	VMOVUPS Y14, 768(DI)
	VMOVUPS Y15, 896(DI)
	ADDQ $32, SI
	ADDQ $32, R8
	ADDQ $1024, DI
	SUBQ $8, CX
	JNZ  packLoop
	VZEROUPPER
	RET

// func gemvNTAVX2(n, k int, a *float32, b *float32, ldb int, c *float32)
//
// Four rows of B at a time (SI, R10, R11, R12), two accumulators per row over 16
// columns per step, then one row at a time; AX is the byte offset into the rows.
// The last k mod 8 columns are read with a mask so no row is overrun.
TEXT ·gemvNTAVX2(SB), NOSPLIT, $0-48
	MOVQ n+0(FP), CX
	MOVQ k+8(FP), BX
	MOVQ a+16(FP), DI
	MOVQ b+24(FP), SI
	MOVQ ldb+32(FP), R8
	SHLQ $2, R8
	MOVQ c+40(FP), DX
	// R13 = bytes in whole vectors, Y15 = mask of the k mod 8 tail lanes.
	MOVQ BX, R13
	ANDQ $-8, R13
	SHLQ $2, R13
	ANDQ $7, BX
	LEAQ ·tailMask(SB), R14
	NEGQ BX
	VMOVUPS 32(R14)(BX*4), Y15
	NEGQ BX

gemvRows4:
	CMPQ CX, $4
	JL   gemvRows1
	LEAQ (SI)(R8*1), R10
	LEAQ (SI)(R8*2), R11
	LEAQ (R10)(R8*2), R12
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	XORQ AX, AX

gemv4Loop16:
	LEAQ 64(AX), R9
	CMPQ R9, R13
	JG   gemv4Loop8
	VMOVUPS (DI)(AX*1), Y8
	VMOVUPS 32(DI)(AX*1), Y9
	VFMADD231PS (SI)(AX*1), Y8, Y0
	VFMADD231PS 32(SI)(AX*1), Y9, Y1
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS 32(R10)(AX*1), Y9, Y3
	VFMADD231PS (R11)(AX*1), Y8, Y4
	VFMADD231PS 32(R11)(AX*1), Y9, Y5
	VFMADD231PS (R12)(AX*1), Y8, Y6
	VFMADD231PS 32(R12)(AX*1), Y9, Y7
	MOVQ R9, AX
	JMP  gemv4Loop16

gemv4Loop8:
	CMPQ AX, R13
	JE   gemv4Tail
	VMOVUPS (DI)(AX*1), Y8
	VFMADD231PS (SI)(AX*1), Y8, Y0
	VFMADD231PS (R10)(AX*1), Y8, Y2
	VFMADD231PS (R11)(AX*1), Y8, Y4
	VFMADD231PS (R12)(AX*1), Y8, Y6
	ADDQ $32, AX

gemv4Tail:
	TESTQ BX, BX
	JZ    gemv4Sum
	VMASKMOVPS (DI)(AX*1), Y15, Y8
	VMASKMOVPS (SI)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y1
	VMASKMOVPS (R10)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y3
	VMASKMOVPS (R11)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y5
	VMASKMOVPS (R12)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y7

gemv4Sum:
	VADDPS Y1, Y0, Y0
	VADDPS Y3, Y2, Y2
	VADDPS Y5, Y4, Y4
	VADDPS Y7, Y6, Y6
	VHADDPS Y2, Y0, Y0
	VHADDPS Y6, Y4, Y4
	VHADDPS Y4, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVUPS X0, (DX)
	ADDQ $16, DX
	LEAQ (SI)(R8*4), SI
	SUBQ $4, CX
	JMP  gemvRows4

gemvRows1:
	TESTQ CX, CX
	JZ    gemvDone
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	XORQ AX, AX

gemv1Loop16:
	LEAQ 64(AX), R9
	CMPQ R9, R13
	JG   gemv1Loop8
	VMOVUPS (DI)(AX*1), Y8
	VMOVUPS 32(DI)(AX*1), Y9
	VFMADD231PS (SI)(AX*1), Y8, Y0
	VFMADD231PS 32(SI)(AX*1), Y9, Y1
	MOVQ R9, AX
	JMP  gemv1Loop16

gemv1Loop8:
	CMPQ AX, R13
	JE   gemv1Tail
	VMOVUPS (DI)(AX*1), Y8
	VFMADD231PS (SI)(AX*1), Y8, Y0
	ADDQ $32, AX

gemv1Tail:
	TESTQ BX, BX
	JZ    gemv1Sum
	VMASKMOVPS (DI)(AX*1), Y15, Y8
	VMASKMOVPS (SI)(AX*1), Y15, Y9
	VFMADD231PS Y9, Y8, Y1

gemv1Sum:
	VADDPS Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VHADDPS X0, X0, X0
	VHADDPS X0, X0, X0
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R8, SI
	DECQ CX
	JMP  gemvRows1

gemvDone:
	VZEROUPPER
	RET
