package half

import "golang.org/x/sys/cpu"

// hasF16C reports whether the CPU widens binary16 in hardware (VCVTPH2PS).
var hasF16C = cpu.X86.HasAVX2 && cpu.X86.HasF16C

//go:noescape
func decodeF16C(dst *float32, src *byte, n int) (nonFinite bool)

// decodeF16Fast widens the first n values of src into dst in hardware, where the
// CPU can, and returns n (a multiple of 16), or 0. VCVTPH2PS quiets signalling NaNs,
// so a block with a non-finite value is widened again by table, which keeps every
// payload as HalfToFloat32 does.
func decodeF16Fast(dst []float32, src []byte) int {
	n := len(dst) &^ 15
	if !hasF16C || n == 0 {
		return 0
	}
	if decodeF16C(&dst[0], &src[0], n) {
		return 0
	}
	return n
}
