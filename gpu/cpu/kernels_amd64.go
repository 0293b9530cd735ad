//go:build !purego

package cpu

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"github.com/kvsim/kvsim/internal/half"
)

var avx2Kernels = weightKernels{name: "avx2+f16c", widen: widenAVX2, dotRows: dotRowsAVX2}

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C {
		kernels = &avx2Kernels
	}
}

// The assembly handles whole vectors of 8 elements.

//go:noescape
func widenF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func widenBF16AVX2(dst *float32, src *byte, n int)

//go:noescape
func dotRowsF16AVX2(n, k int, x *float32, w *byte, ldw int, y *float32)

//go:noescape
func dotRowsBF16AVX2(n, k int, x *float32, w *byte, ldw int, y *float32)

//go:noescape
func dotRowsF32AVX2(n, k int, x *float32, w *byte, ldw int, y *float32)

func widenAVX2(d half.DType, dst []float32, src []byte) {
	body := len(dst) &^ 7
	if body > 0 {
		switch d {
		case half.F16:
			widenF16AVX2(&dst[0], &src[0], body)
		case half.BF16:
			widenBF16AVX2(&dst[0], &src[0], body)
		default:
			// amd64 is little-endian: the stored floats are the values, bit for bit.
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&dst[0])), 4*len(dst)), src)
			return
		}
	}
	d.Decode(dst[body:], src[body*d.Size():])
}

func dotRowsAVX2(d half.DType, x []float32, w []byte, ldw int, y []float32) {
	n, k := len(y), len(x)
	if n == 0 {
		return
	}
	body := k &^ 7
	if body == 0 {
		dotRowsGeneric(d, x, w, ldw, y)
		return
	}
	switch d {
	case half.F16:
		dotRowsF16AVX2(n, k, &x[0], &w[0], ldw, &y[0])
	case half.BF16:
		dotRowsBF16AVX2(n, k, &x[0], &w[0], ldw, &y[0])
	default:
		dotRowsF32AVX2(n, k, &x[0], &w[0], ldw, &y[0])
	}
	if body == k {
		return
	}
	var tail [8]float32
	size := d.Size()
	for j := range y {
		row := w[j*ldw+body*size : j*ldw+k*size]
		d.Decode(tail[:k-body], row)
		for p, v := range tail[:k-body] {
			y[j] += x[body+p] * v
		}
	}
}
