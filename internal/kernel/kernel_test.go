package kernel

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

func randomSlice(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// refMatMulNT returns A·Bᵀ in float64 together with Σ_p |A[i,p]·B[j,p]|, which bounds
// the rounding error a float32 accumulation may make.
func refMatMulNT(m, n, k int, a []float32, lda int, b []float32, ldb int) (want, mag []float64) {
	want = make([]float64, m*n)
	mag = make([]float64, m*n)
	for i := range m {
		for j := range n {
			var s, abs float64
			for p := range k {
				prod := float64(a[i*lda+p]) * float64(b[j*ldb+p])
				s += prod
				abs += math.Abs(prod)
			}
			want[i*n+j] = s
			mag[i*n+j] = abs
		}
	}
	return want, mag
}

type matMulShape struct{ m, n, k, lda, ldb, ldc int }

func (s matMulShape) String() string {
	return fmt.Sprintf("m=%d,n=%d,k=%d,lda=%d,ldb=%d,ldc=%d", s.m, s.n, s.k, s.lda, s.ldb, s.ldc)
}

// matMulShapes crosses the edge-case sizes, with minimal strides and, for a subset,
// padded ones; a few larger shapes cross the blockK and blockM boundaries.
func matMulShapes() []matMulShape {
	sizes := []int{0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 64, 65, 128, 129}
	var shapes []matMulShape
	for _, m := range sizes {
		for _, n := range sizes {
			for _, k := range sizes {
				shapes = append(shapes, matMulShape{m, n, k, k, k, n})
				if (m+n+k)%5 == 0 {
					shapes = append(shapes, matMulShape{m, n, k, k + 3, k + 5, n + 7})
				}
			}
		}
	}
	return append(shapes,
		matMulShape{4, 33, 257, 257, 260, 33},
		matMulShape{250, 70, 600, 601, 600, 75},
		matMulShape{241, 96, 512, 512, 512, 96},
		matMulShape{1, 1000, 300, 300, 301, 1000},
		matMulShape{6, 48, 256, 256, 256, 48},
	)
}

const sentinel = 1234.5

func TestMatMulNT(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, s := range matMulShapes() {
		a := randomSlice(r, max(0, (s.m-1)*s.lda+s.k))
		b := randomSlice(r, max(0, (s.n-1)*s.ldb+s.k))
		want, mag := refMatMulNT(s.m, s.n, s.k, a, s.lda, b, s.ldb)
		for _, im := range implementations {
			c := make([]float32, s.m*s.ldc)
			for i := range c {
				c[i] = sentinel
			}
			// NaN in the output block catches a kernel that adds to C instead of
			// overwriting it.
			for i := range s.m {
				for j := range s.n {
					c[i*s.ldc+j] = float32(math.NaN())
				}
			}
			if s.m > 0 && s.n > 0 {
				im.matMulNT(s.m, s.n, s.k, a, s.lda, b, s.ldb, c, s.ldc)
			}
			if err := compareMatMul(s, c, want, mag); err != nil {
				t.Fatalf("%s %v: %v", im.name, s, err)
			}
		}
	}
}

func compareMatMul(s matMulShape, c []float32, want, mag []float64) error {
	for i := range s.m {
		for j := range s.ldc {
			got := c[i*s.ldc+j]
			if j >= s.n {
				if got != sentinel {
					return fmt.Errorf("C[%d][%d] outside the block changed to %g", i, j, got)
				}
				continue
			}
			w := want[i*s.n+j]
			if tol := 1e-5*mag[i*s.n+j] + 1e-30; math.Abs(float64(got)-w) > tol {
				return fmt.Errorf("C[%d][%d] = %g, want %g ± %g", i, j, got, w, tol)
			}
		}
	}
	return nil
}

func TestMatMulNTExported(t *testing.T) {
	// 2×3 by hand: rows of A dotted with rows of B.
	a := []float32{1, 2, 3, 4, 5, 6}
	b := []float32{1, 0, 0, 0, 1, 0, 1, 1, 1}
	c := make([]float32, 6)
	MatMulNT(2, 3, 3, a, 3, b, 3, c, 3)
	want := []float32{1, 2, 6, 4, 5, 15}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("C = %v, want %v", c, want)
		}
	}
}

func TestMatMulNTConcurrent(t *testing.T) {
	// Concurrent calls share the workspace pool; each must still get its own.
	const m, n, k = 40, 70, 300
	r := rand.New(rand.NewPCG(13, 14))
	a, b := randomSlice(r, m*k), randomSlice(r, n*k)
	want, mag := refMatMulNT(m, n, k, a, k, b, k)
	errs := make(chan error, 8)
	for range cap(errs) {
		go func() {
			c := make([]float32, m*n)
			var err error
			for range 20 {
				MatMulNT(m, n, k, a, k, b, k, c, n)
				if err = compareMatMul(matMulShape{m, n, k, k, k, n}, c, want, mag); err != nil {
					break
				}
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestMatMulNTBadArguments(t *testing.T) {
	a := make([]float32, 12)
	tests := []struct {
		name                 string
		m, n, k              int
		lenA, lda            int
		lenB, ldb, lenC, ldc int
		want                 string
	}{
		{"negative", -1, 2, 2, 12, 2, 12, 2, 12, 2, "negative shape"},
		{"lda", 2, 2, 3, 12, 2, 12, 3, 12, 2, "lda 2 < k 3"},
		{"ldb", 2, 2, 3, 12, 3, 12, 2, 12, 2, "ldb 2 < k 3"},
		{"ldc", 2, 3, 3, 12, 3, 12, 3, 12, 2, "ldc 2 < n 3"},
		{"short a", 3, 2, 4, 11, 4, 12, 4, 12, 2, "len(a) 11 < 12"},
		{"short b", 2, 3, 4, 12, 4, 11, 4, 12, 3, "len(b) 11 < 12"},
		{"short c", 3, 3, 2, 12, 2, 12, 2, 10, 4, "len(c) 10 < 11"},
	}
	for _, tt := range tests {
		err := checkMatMulNT(tt.m, tt.n, tt.k, tt.lenA, tt.lda, tt.lenB, tt.ldb, tt.lenC, tt.ldc)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
	if err := checkMatMulNT(0, 5, 3, 0, 3, 0, 3, 0, 5); err != nil {
		t.Errorf("m=0 with empty slices: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("MatMulNT with a short C did not panic")
		}
	}()
	MatMulNT(2, 2, 3, a, 3, a, 3, a[:3], 2)
}

func TestDot(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range vectorLengths() {
		a, b := randomSlice(r, n), randomSlice(r, n)
		var want, mag float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		for _, im := range implementations {
			got := im.dot(a, b)
			if math.Abs(float64(got)-want) > 1e-6*mag+1e-30 {
				t.Errorf("%s: Dot(n=%d) = %g, want %g", im.name, n, got, want)
			}
		}
	}
	if got := Dot([]float32{1, 2, 3}, []float32{4, -5, 6}); got != 12 {
		t.Errorf("Dot = %g, want 12", got)
	}
}

func vectorLengths() []int {
	var ns []int
	for n := range 70 {
		ns = append(ns, n)
	}
	return append(ns, 1000, 1027, 4099)
}

func TestAxpyScale(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	const alpha = -0.75
	for _, n := range vectorLengths() {
		x, y0 := randomSlice(r, n), randomSlice(r, n)
		for _, im := range implementations {
			y := append([]float32(nil), y0...)
			im.axpy(alpha, x, y)
			for i := range y {
				// One FMA or a multiply and an add: at most two roundings.
				want := float64(y0[i]) + alpha*float64(x[i])
				if d := math.Abs(float64(y[i]) - want); d > 2.4e-7*(math.Abs(float64(y0[i]))+math.Abs(alpha*float64(x[i]))) {
					t.Fatalf("%s: Axpy n=%d: y[%d] = %g, want %g", im.name, n, i, y[i], want)
				}
			}
			z := append([]float32(nil), x...)
			im.scale(alpha, z)
			for i := range z {
				if want := float32(alpha * float64(x[i])); z[i] != want {
					t.Fatalf("%s: Scale n=%d: x[%d] = %g, want %g", im.name, n, i, z[i], want)
				}
			}
		}
	}
}

// TestBlend folds a run of vectors into a running mean with every kernel set and
// checks each element against math/big: each product, the sum and the quotient
// rounded to the nearest float64 in turn, which is what Blend promises.
func TestBlend(t *testing.T) {
	got := []float64{1}
	Blend(got, 1, []float32{2}, 3, 4)
	if got[0] != 1.75 {
		t.Fatalf("Blend([1], 1, [2], 3, 4) = %v, want [1.75]", got)
	}
	round := func(op func(z, x, y *big.Float) *big.Float, x, y float64) float64 {
		z := new(big.Float).SetPrec(53).SetMode(big.ToNearestEven)
		v, _ := op(z, big.NewFloat(x), big.NewFloat(y)).Float64()
		return v
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, n := range vectorLengths()[:40] {
		for _, im := range implementations {
			dst := make([]float64, n)
			want := make([]float64, n)
			weight := 0.0
			for range 5 {
				x, w := randomSlice(r, n), r.Float64()*3
				total := weight + w
				im.blend(dst, weight, x, w, total)
				for i := range want {
					a := round((*big.Float).Mul, want[i], weight)
					b := round((*big.Float).Mul, float64(x[i]), w)
					want[i] = round((*big.Float).Quo, round((*big.Float).Add, a, b), total)
				}
				weight = total
			}
			for i := range dst {
				if dst[i] != want[i] {
					t.Fatalf("%s: n=%d: dst[%d] = %v, want %v", im.name, n, i, dst[i], want[i])
				}
			}
		}
	}
}

func TestMax(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	nan := float32(math.NaN())
	inf := float32(math.Inf(1))
	for _, n := range vectorLengths()[1:] {
		x := randomSlice(r, n)
		want := x[0]
		for _, v := range x {
			want = max(want, v)
		}
		for _, im := range implementations {
			if got := im.max(x); got != want {
				t.Errorf("%s: Max(n=%d) = %g, want %g", im.name, n, got, want)
			}
		}
		// A NaN anywhere, in the vector body or the tail, gives NaN.
		for _, pos := range []int{0, n / 2, n - 1} {
			y := append([]float32(nil), x...)
			y[pos] = nan
			for _, im := range implementations {
				if got := im.max(y); got == got {
					t.Errorf("%s: Max(n=%d, NaN at %d) = %g, want NaN", im.name, n, pos, got)
				}
			}
		}
	}
	if got := Max(nil); !math.IsInf(float64(got), -1) {
		t.Errorf("Max(nil) = %g, want -Inf", got)
	}
	if got := Max([]float32{-inf, 3, inf, -2}); got != inf {
		t.Errorf("Max with +Inf = %g", got)
	}
}
