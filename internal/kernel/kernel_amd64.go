//go:build !purego

package kernel

import (
	"math"

	"golang.org/x/sys/cpu"
)

// The AVX-512 set reuses the AVX2 kernels that are bound by memory rather than
// arithmetic, and replaces the matrix-multiply tile and exp.
var (
	avx2Impl = impl{
		name:     "avx2",
		dot:      dotAVX2Tail,
		axpy:     axpyAVX2Tail,
		scale:    scaleAVX2Tail,
		max:      maxAVX2Tail,
		expShift: expShiftAVX2Tail,
		matMulNT: func(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
			matMulNTTiled(&tile6x16, m, n, k, a, lda, b, ldb, c, ldc)
		},
		packNT: packedPanels,
		matMulNTPacked: func(m, n, k int, a []float32, lda int, p *PackedNT, c []float32, ldc int) {
			matMulNTPanels(&tile6x16, m, n, k, a, lda, p.b, p.ldb, p.panels, c, ldc)
		},
		axpyRows:  axpyRowsAVX2Tail,
		gemvLanes: gemvAVX2Lanes,
		blend:     blendAVX2Tail,
	}
	avx512Impl = impl{
		name:     "avx512",
		dot:      dotAVX2Tail,
		axpy:     axpyAVX2Tail,
		scale:    scaleAVX2Tail,
		max:      maxAVX2Tail,
		expShift: expShiftAVX512Tail,
		matMulNT: func(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
			matMulNTTiled(&tile8x32, m, n, k, a, lda, b, ldb, c, ldc)
		},
		packNT: packedPanels,
		matMulNTPacked: func(m, n, k int, a []float32, lda int, p *PackedNT, c []float32, ldc int) {
			matMulNTPanels(&tile8x32, m, n, k, a, lda, p.b, p.ldb, p.panels, c, ldc)
		},
		axpyRows:  axpyRowsAVX512Tail,
		gemvLanes: gemvAVX2Lanes,
		blend:     blendAVX2Tail,
	}
)

func init() {
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		use(&avx2Impl)
		if cpu.X86.HasAVX512F {
			use(&avx512Impl)
		}
	}
}

// The assembly handles whole vectors (multiples of 8 elements); the wrappers below
// finish the last few elements.

//go:noescape
func dotAVX2(a, b []float32) float32

//go:noescape
func axpyAVX2(alpha float32, x, y []float32)

//go:noescape
func scaleAVX2(alpha float32, x []float32)

//go:noescape
func maxAVX2(x []float32) float32

// blendAVX2 is Blend over whole vectors of 4; VMULPD, VADDPD and VDIVPD round
// exactly as the scalar operations do.
//
//go:noescape
func blendAVX2(dst []float64, wd float64, x []float32, wx, total float64)

func blendAVX2Tail(dst []float64, wd float64, x []float32, wx, total float64) {
	body := len(dst) &^ 3
	if body > 0 {
		blendAVX2(dst[:body], wd, x[:body], wx, total)
	}
	blendGeneric(dst[body:], wd, x[body:len(dst)], wx, total)
}

// expShiftAVX2 and expShiftAVX512 replace x[i] by exp(x[i]-shift) and return the
// sum of the results; len(x) is a multiple of 8 and 16 respectively.
//
//go:noescape
func expShiftAVX2(x []float32, shift float32) float32

//go:noescape
func expShiftAVX512(x []float32, shift float32) float32

//go:noescape
func axpyRowsAVX2(alpha []float32, idx []int32, x *float32, ldx int, y []float32)

func axpyRowsAVX2Tail(alpha []float32, idx []int32, x []float32, ldx int, y []float32) {
	if len(idx) == 0 {
		return
	}
	body := len(y) &^ 7
	if body > 0 {
		axpyRowsAVX2(alpha, idx, &x[0], ldx, y[:body])
	}
	if body < len(y) {
		for i, r := range idx {
			row := int(r)*ldx + body
			axpyGeneric(alpha[i], x[row:row+len(y)-body], y[body:])
		}
	}
}

//go:noescape
func axpyRowsAVX512(alpha []float32, idx []int32, x *float32, ldx int, y []float32)

// axpyRowsAVX512Tail runs whole 16-lane vectors in AVX-512 and the rest as
// axpyRowsAVX2Tail does.
func axpyRowsAVX512Tail(alpha []float32, idx []int32, x []float32, ldx int, y []float32) {
	if len(idx) == 0 {
		return
	}
	body := len(y) &^ 15
	if body > 0 {
		axpyRowsAVX512(alpha, idx, &x[0], ldx, y[:body])
	}
	if body < len(y) {
		// Row r's remaining elements start at x[r·ldx+body:].
		axpyRowsAVX2Tail(alpha, idx, x[body:], ldx, y[body:])
	}
}

// gemvAVX2Lanes follows gemvNTAVX2 (MatMulNT with one row): 16 lanes, two vectors
// of 8, fed 16 products at a time; a last whole vector of 8 goes to the first, the
// k mod 8 tail to the second. Four outputs at a time are reduced by the vertical
// add of the two vectors and three horizontal adds; only widths that are multiples
// of 8 are served, so the one-output reduction never runs and axpyRows needs no
// unfused tail.
var gemvAVX2Lanes = gemvLanes{
	lanes:         16,
	widthMultiple: 8,
	rule: func(k int) laneRule {
		k8 := int32(k &^ 7)
		return laneRule{a: k8 &^ 15, b: k8, maskA: 15, maskB: 7, maskC: 7, off: 8}
	},
	// Every step is an elementwise float32 add, and an axpy with alpha 1 (one FMA:
	// 1·x+y rounded once) is that add, whole vectors at a time; acc is scratch.
	reduce: func(acc, out []float32) {
		n := len(out)
		lane := func(i int) []float32 { return acc[i*n : (i+1)*n] }
		for i := range 8 {
			axpyAVX2Tail(1, lane(8+i), lane(i)) // u[i]: the two vectors' lane i
		}
		for i := 0; i < 8; i += 2 {
			axpyAVX2Tail(1, lane(i+1), lane(i)) // u0+u1, u2+u3, u4+u5, u6+u7
		}
		axpyAVX2Tail(1, lane(2), lane(0)) // (u0+u1)+(u2+u3)
		axpyAVX2Tail(1, lane(6), lane(4)) // (u4+u5)+(u6+u7)
		copy(out, lane(0))
		axpyAVX2Tail(1, lane(4), out)
	},
}

func dotAVX2Tail(a, b []float32) float32 {
	body := len(a) &^ 7
	var sum float32
	if body > 0 {
		sum = dotAVX2(a[:body], b[:body])
	}
	for i := body; i < len(a); i++ {
		sum += a[i] * b[i]
	}
	return sum
}

func axpyAVX2Tail(alpha float32, x, y []float32) {
	body := len(x) &^ 7
	if body > 0 {
		axpyAVX2(alpha, x[:body], y[:body])
	}
	axpyGeneric(alpha, x[body:], y[body:])
}

func scaleAVX2Tail(alpha float32, x []float32) {
	body := len(x) &^ 7
	if body > 0 {
		scaleAVX2(alpha, x[:body])
	}
	scaleGeneric(alpha, x[body:])
}

func maxAVX2Tail(x []float32) float32 {
	body := len(x) &^ 7
	if body == 0 {
		return maxGeneric(x)
	}
	m := maxAVX2(x[:body])
	if body < len(x) {
		t := maxGeneric(x[body:])
		if t != t || t > m {
			m = t
		}
	}
	return m
}

// The exp tails go through a padded vector so that every element is computed by the
// same instructions; the padding is -Inf, whose exponential adds nothing to the sum.

func expShiftAVX2Tail(x []float32, shift float32) float32 {
	return expShiftPadded(x, shift, 8, expShiftAVX2)
}

func expShiftAVX512Tail(x []float32, shift float32) float32 {
	return expShiftPadded(x, shift, 16, expShiftAVX512)
}

// expShiftPadded runs vec, a kernel of lanes-wide vectors (at most 16), over x.
func expShiftPadded(x []float32, shift float32, lanes int, vec func([]float32, float32) float32) float32 {
	body := len(x) / lanes * lanes
	var sum float32
	if body > 0 {
		sum = vec(x[:body], shift)
	}
	if tail := x[body:]; len(tail) > 0 {
		var buf [16]float32
		pad := buf[:lanes]
		fillNegInf(pad[copy(pad, tail):])
		sum += vec(pad, shift)
		copy(tail, pad)
	}
	return sum
}

func fillNegInf(x []float32) {
	for i := range x {
		x[i] = float32(negInf)
	}
}

// expVec is the exp constant table read by the assembly, one 8-lane row per
// constant so that AVX2 code can use a row as a memory operand. The row order is
// fixed by the EXP_* offsets in exp_amd64.s.
var expVec = func() (t [16][8]float32) {
	rows := []float32{expLog2E, expLn2Hi, expLn2Lo}
	rows = append(rows, expPoly[:]...)
	rows = append(rows, expMin, expMax, float32(math.Inf(1)), expRoundShifter, expOverflowClamp)
	for i, v := range rows {
		for j := range t[i] {
			t[i][j] = v
		}
	}
	return t
}()

const (
	// Adding expRoundShifter (1.5·2²³) to a float32 of magnitude below 2²² rounds it
	// to an integer n, and leaves n in the low mantissa bits of the sum: shifting
	// the sum's bits left by 23 gives n<<23 directly, because the shifter's own bits
	// shift out.
	expRoundShifter = 0x1.8p23
	// expOverflowClamp is above expMax but small enough that reducing it stays
	// accurate; clamped inputs still overflow to +Inf when scaled with VSCALEFPS.
	expOverflowClamp = 89
)
