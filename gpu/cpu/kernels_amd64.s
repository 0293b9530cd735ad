//go:build !purego

#include "textflag.h"

// The conversions and dot products below read weights in their stored dtype straight
// from the checkpoint's mapping. Each handles whole vectors of 8 elements; the Go
// wrappers finish the rest.

// func widenF16AVX2(dst *float32, src *byte, n int)
TEXT ·widenF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   widenF16Done

widenF16Loop:
	VCVTPH2PS (SI), Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       widenF16Loop

widenF16Done:
	VZEROUPPER
	RET

// func widenBF16AVX2(dst *float32, src *byte, n int)
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   widenBF16Done

widenBF16Loop:
	VPMOVZXWD (SI), Y0
	VPSLLD    $16, Y0, Y0
	VMOVUPS   Y0, (DI)
	ADDQ      $16, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       widenBF16Loop

widenBF16Done:
	VZEROUPPER
	RET

// The dot-product kernels set y[j] = Σ_p x[p]·w_j[p] for each of n rows of w (stride
// ldw bytes) over the first k &^ 7 elements. Every row is reduced the same way (four
// accumulators over 32 elements, then one over 8, then a fixed horizontal sum), so a
// row's result does not depend on which rows share a call, and splitting rows across
// threads cannot change it. LOADx(off, reg) widens the 8 elements at index AX+off.
#define LOADF16(off, reg) VCVTPH2PS (off*2)(SI)(AX*2), reg
#define LOADBF16(off, reg) VPMOVZXWD (off*2)(SI)(AX*2), reg; VPSLLD $16, reg, reg
#define LOADF32(off, reg) VMOVUPS (off*4)(SI)(AX*4), reg

// func dotRowsF16AVX2(n, k int, x *float32, w *byte, ldw int, y *float32)
TEXT ·dotRowsF16AVX2(SB), NOSPLIT, $0-48
	MOVQ  n+0(FP), CX
	MOVQ  k+8(FP), BX
	MOVQ  x+16(FP), DI
	MOVQ  w+24(FP), SI
	MOVQ  ldw+32(FP), R8
	MOVQ  y+40(FP), DX
	MOVQ  BX, R9
	ANDQ  $-32, R9
	ANDQ  $-8, BX
	TESTQ CX, CX
	JZ    done

row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX

loop32:
	CMPQ        AX, R9
	JGE         loop8
	LOADF16(0, Y4)
	LOADF16(8, Y5)
	LOADF16(16, Y6)
	LOADF16(24, Y7)
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS 32(DI)(AX*4), Y5, Y1
	VFMADD231PS 64(DI)(AX*4), Y6, Y2
	VFMADD231PS 96(DI)(AX*4), Y7, Y3
	ADDQ        $32, AX
	JMP         loop32

loop8:
	CMPQ        AX, BX
	JGE         sum
	LOADF16(0, Y4)
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	JMP         loop8

sum:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, (DX)
	ADDQ         $4, DX
	ADDQ         R8, SI
	DECQ         CX
	JNZ          row

done:
	VZEROUPPER
	RET

// func dotRowsBF16AVX2(n, k int, x *float32, w *byte, ldw int, y *float32)
TEXT ·dotRowsBF16AVX2(SB), NOSPLIT, $0-48
	MOVQ  n+0(FP), CX
	MOVQ  k+8(FP), BX
	MOVQ  x+16(FP), DI
	MOVQ  w+24(FP), SI
	MOVQ  ldw+32(FP), R8
	MOVQ  y+40(FP), DX
	MOVQ  BX, R9
	ANDQ  $-32, R9
	ANDQ  $-8, BX
	TESTQ CX, CX
	JZ    done

row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX

loop32:
	CMPQ        AX, R9
	JGE         loop8
	LOADBF16(0, Y4)
	LOADBF16(8, Y5)
	LOADBF16(16, Y6)
	LOADBF16(24, Y7)
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS 32(DI)(AX*4), Y5, Y1
	VFMADD231PS 64(DI)(AX*4), Y6, Y2
	VFMADD231PS 96(DI)(AX*4), Y7, Y3
	ADDQ        $32, AX
	JMP         loop32

loop8:
	CMPQ        AX, BX
	JGE         sum
	LOADBF16(0, Y4)
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	JMP         loop8

sum:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, (DX)
	ADDQ         $4, DX
	ADDQ         R8, SI
	DECQ         CX
	JNZ          row

done:
	VZEROUPPER
	RET

// func dotRowsF32AVX2(n, k int, x *float32, w *byte, ldw int, y *float32)
TEXT ·dotRowsF32AVX2(SB), NOSPLIT, $0-48
	MOVQ  n+0(FP), CX
	MOVQ  k+8(FP), BX
	MOVQ  x+16(FP), DI
	MOVQ  w+24(FP), SI
	MOVQ  ldw+32(FP), R8
	MOVQ  y+40(FP), DX
	MOVQ  BX, R9
	ANDQ  $-32, R9
	ANDQ  $-8, BX
	TESTQ CX, CX
	JZ    done

row:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	XORQ   AX, AX

loop32:
	CMPQ        AX, R9
	JGE         loop8
	LOADF32(0, Y4)
	LOADF32(8, Y5)
	LOADF32(16, Y6)
	LOADF32(24, Y7)
	VFMADD231PS (DI)(AX*4), Y4, Y0
	VFMADD231PS 32(DI)(AX*4), Y5, Y1
	VFMADD231PS 64(DI)(AX*4), Y6, Y2
	VFMADD231PS 96(DI)(AX*4), Y7, Y3
	ADDQ        $32, AX
	JMP         loop32

loop8:
	CMPQ        AX, BX
	JGE         sum
	LOADF32(0, Y4)
	VFMADD231PS (DI)(AX*4), Y4, Y0
	ADDQ        $8, AX
	JMP         loop8

sum:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VMOVSS       X0, (DX)
	ADDQ         $4, DX
	ADDQ         R8, SI
	DECQ         CX
	JNZ          row

done:
	VZEROUPPER
	RET
