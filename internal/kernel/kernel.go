// Package kernel provides the dense float32 CPU kernels that trace replay and the
// inference engine spend their time in: C = A·Bᵀ, dot products, axpy, scaling, exp
// and softmax, and the float64 weighted mean of a compensation slot (Blend).
//
// On amd64 the kernels are written in assembly for AVX2+FMA, with an AVX-512
// matrix-multiply micro-kernel and exp where the CPU has AVX-512F; the choice is
// made once at start-up from the CPU's feature flags. Elsewhere, and when built with
// the purego tag, portable Go implementations with the same results (up to float32
// rounding) are used.
//
// All kernels are single-threaded; callers parallelise over independent calls.
// Like the built-in slice operations, the kernels panic when given slices too short
// for the shapes they are told to use: that is a programming error, not bad input.
package kernel

import "fmt"

// impl is one complete set of kernels. Every set computes the same functions; they
// differ only in speed and in float32 rounding.
type impl struct {
	name     string
	dot      func(a, b []float32) float32
	axpy     func(alpha float32, x, y []float32)
	scale    func(alpha float32, x []float32)
	max      func(x []float32) float32 // len(x) > 0
	expShift func(x []float32, shift float32) float32
	matMulNT func(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int)
	axpyRows func(alpha []float32, idx []int32, x []float32, ldx int, y []float32)
	// packNT and matMulNTPacked serve PackedNT; nil where matMulNT packs nothing.
	packNT         func(n, k int, b []float32, ldb int, dst []float32) []float32
	matMulNTPacked func(m, n, k int, a []float32, lda int, p *PackedNT, c []float32, ldc int)
	// gemvLanes is how matMulNT accumulates a single row, for SparseRowTimes.
	gemvLanes gemvLanes
	blend     func(dst []float64, wd float64, x []float32, wx, total float64)
}

// implementations lists the kernel sets this CPU can run, slowest first; active is
// the last of them. Tests run every entry.
var (
	implementations = []*impl{&genericImpl}
	active          = &genericImpl
)

// use makes k available and, being the fastest registered so far, active.
func use(k *impl) {
	implementations = append(implementations, k)
	active = k
}

// MatMulNT computes C = A·Bᵀ for row-major A (m×k, row stride lda), B (n×k, row
// stride ldb) and C (m×n, row stride ldc):
//
//	C[i*ldc+j] = Σ_{p<k} A[i*lda+p]·B[j*ldb+p]  for i < m, j < n.
//
// Both operands keep the reduction dimension contiguous, which is the layout of
// attention logits Q·Kᵀ and of x·Wᵀ for a PyTorch Linear weight W[out][in]. C is
// overwritten (k = 0 sets it to zero); elements of C outside the m×n block are left
// alone. C must not overlap A or B. It panics if a stride is below the row length or
// a slice is too short.
func MatMulNT(m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if err := checkMatMulNT(m, n, k, len(a), lda, len(b), ldb, len(c), ldc); err != nil {
		panic(err)
	}
	if m == 0 || n == 0 {
		return
	}
	active.matMulNT(m, n, k, a, lda, b, ldb, c, ldc)
}

// checkMatMulNT reports the first argument of MatMulNT that would make it read or
// write outside its slices.
func checkMatMulNT(m, n, k, lenA, lda, lenB, ldb, lenC, ldc int) error {
	switch {
	case m < 0 || n < 0 || k < 0:
		return fmt.Errorf("kernel: MatMulNT: negative shape m=%d n=%d k=%d", m, n, k)
	case lda < k:
		return fmt.Errorf("kernel: MatMulNT: lda %d < k %d", lda, k)
	case ldb < k:
		return fmt.Errorf("kernel: MatMulNT: ldb %d < k %d", ldb, k)
	case ldc < n:
		return fmt.Errorf("kernel: MatMulNT: ldc %d < n %d", ldc, n)
	case m == 0 || n == 0:
		return nil
	case lenA < (m-1)*lda+k:
		return fmt.Errorf("kernel: MatMulNT: len(a) %d < %d for m=%d k=%d lda=%d", lenA, (m-1)*lda+k, m, k, lda)
	case lenB < (n-1)*ldb+k:
		return fmt.Errorf("kernel: MatMulNT: len(b) %d < %d for n=%d k=%d ldb=%d", lenB, (n-1)*ldb+k, n, k, ldb)
	case lenC < (m-1)*ldc+n:
		return fmt.Errorf("kernel: MatMulNT: len(c) %d < %d for m=%d n=%d ldc=%d", lenC, (m-1)*ldc+n, m, n, ldc)
	}
	return nil
}

// Dot returns Σ a[i]·b[i]. It panics if len(a) != len(b).
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic(fmt.Errorf("kernel: Dot: len(a) %d != len(b) %d", len(a), len(b)))
	}
	return active.dot(a, b)
}

// Axpy adds alpha·x to y element by element. It panics if len(x) != len(y).
func Axpy(alpha float32, x, y []float32) {
	if len(x) != len(y) {
		panic(fmt.Errorf("kernel: Axpy: len(x) %d != len(y) %d", len(x), len(y)))
	}
	active.axpy(alpha, x, y)
}

// Scale multiplies every element of x by alpha.
func Scale(alpha float32, x []float32) {
	active.scale(alpha, x)
}

// Blend sets dst[i] = (dst[i]·wd + x[i]·wx) / total, each product, the sum and the
// quotient rounded to float64 in turn (never fused), so that every kernel set gives
// the same bits: a weighted running mean, such as a compensation slot's key folding
// in a victim's. It panics if len(x) != len(dst).
func Blend(dst []float64, wd float64, x []float32, wx, total float64) {
	if len(x) != len(dst) {
		panic(fmt.Errorf("kernel: Blend: len(x) %d != len(dst) %d", len(x), len(dst)))
	}
	active.blend(dst, wd, x, wx, total)
}

// Max returns the largest element of x: NaN if x holds a NaN, and -Inf if x is
// empty.
func Max(x []float32) float32 {
	if len(x) == 0 {
		return float32(negInf)
	}
	return active.max(x)
}

// Exp replaces every element of x by its exponential. Results in the normal float32
// range are within one ulp of the correctly rounded value; inputs below -87.3365
// (whose exponential is subnormal or smaller) give exactly 0, so that later
// arithmetic never meets subnormals; inputs above 88.7228 give +Inf, and NaN stays
// NaN.
func Exp(x []float32) {
	expShift(x, 0)
}

// Softmax replaces x by exp(x[i]-max(x)) / Σ_j exp(x[j]-max(x)), computed without
// overflow. Elements equal to -Inf become 0. If x holds a NaN or +Inf, or every
// element is -Inf, the result is all NaN. An empty x is left alone.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	sum := expShift(x, Max(x))
	Scale(1/sum, x)
}

// expChunk bounds how many elements one assembly call handles, so that a goroutine
// exponentiating a huge slice still reaches preemption points regularly.
const expChunk = 1 << 16

// expShift replaces x[i] by exp(x[i]-shift) and returns the sum of the new values.
func expShift(x []float32, shift float32) float32 {
	var sum float32
	for len(x) > 0 {
		chunk := x[:min(len(x), expChunk)]
		sum += active.expShift(chunk, shift)
		x = x[len(chunk):]
	}
	return sum
}
