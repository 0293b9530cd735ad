package kernel

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkMatMulNT runs every kernel set on attention-like (k=128) and
// Linear-layer-like shapes, m=1 being one decoding step.
func BenchmarkMatMulNT(b *testing.B) {
	shapes := []struct{ m, n, k int }{
		{64, 1024, 128},
		{128, 3072, 768},
		{1, 1024, 128},
		{1, 3072, 768},
		{4, 1024, 128},
		{17, 1000, 100},
	}
	r := rand.New(rand.NewPCG(1, 1))
	for _, im := range implementations {
		for _, s := range shapes {
			if im == &genericImpl && s.m*s.n*s.k > 1<<24 {
				continue // seconds per call
			}
			a := randomSlice(r, s.m*s.k)
			w := randomSlice(r, s.n*s.k)
			c := make([]float32, s.m*s.n)
			b.Run(fmt.Sprintf("%s/m=%d,n=%d,k=%d", im.name, s.m, s.n, s.k), func(b *testing.B) {
				for b.Loop() {
					im.matMulNT(s.m, s.n, s.k, a, s.k, w, s.k, c, s.n)
				}
				flops := 2 * float64(s.m*s.n*s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkExp exponentiates an L1-resident block of softmax-like inputs. The block
// is refilled before each call so the inputs stay realistic; the refill is included
// in the time.
func BenchmarkExp(b *testing.B) {
	const n = 4096
	r := rand.New(rand.NewPCG(2, 2))
	src := make([]float32, n)
	for i := range src {
		src[i] = -20 * r.Float32()
	}
	x := make([]float32, n)
	for _, im := range implementations {
		b.Run(im.name, func(b *testing.B) {
			for b.Loop() {
				copy(x, src)
				im.expShift(x, 0)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/element")
		})
	}
}

// BenchmarkSoftmax normalises rows of 1000 logits, the attention case; softmax of a
// softmax stays in range, so the row is not refilled.
func BenchmarkSoftmax(b *testing.B) {
	const n = 1000
	x := randomSlice(rand.New(rand.NewPCG(3, 3)), n)
	for _, im := range implementations {
		b.Run(im.name, func(b *testing.B) {
			withImpl(im, func() {
				for b.Loop() {
					Softmax(x)
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/element")
		})
	}
}

// BenchmarkAxpyRows gathers 64 scattered rows of 128 (one head's resident values at
// a 6% budget of a 1088-token trace) into an output, in every kernel set, against
// one Axpy per row.
func BenchmarkAxpyRows(b *testing.B) {
	const rows, width, n = 1088, 128, 64
	r := rand.New(rand.NewPCG(3, 3))
	x := randomSlice(r, rows*width)
	alpha := randomSlice(r, n)
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(r.IntN(rows))
	}
	y := make([]float32, width)
	for _, im := range implementations {
		b.Run(im.name+"/rows", func(b *testing.B) {
			for b.Loop() {
				im.axpyRows(alpha, idx, x, width, y)
			}
		})
		b.Run(im.name+"/axpy", func(b *testing.B) {
			for b.Loop() {
				for i, row := range idx {
					im.axpy(alpha[i], x[int(row)*width:int(row)*width+width], y)
				}
			}
		})
	}
}

// BenchmarkSparseRowTimes multiplies one attention row of a 1088-token head by its
// values, against the dense product MatMulNT would compute (the same result), at
// several shares of resident tokens.
func BenchmarkSparseRowTimes(b *testing.B) {
	const k, n = 1088, 128
	r := rand.New(rand.NewPCG(4, 4))
	v := randomSlice(r, k*n)
	vt := randomSlice(r, n*k)
	out := make([]float32, n)
	var s RowScratch
	for _, share := range []int{8, 4, 2, 1} {
		var pos []int32
		var w []float32
		dense := make([]float32, k)
		for p := 0; p < k; p += share {
			pos = append(pos, int32(p))
			w = append(w, 1)
			dense[p] = 1
		}
		b.Run(fmt.Sprintf("sparse/1of%d", share), func(b *testing.B) {
			for b.Loop() {
				SparseRowTimes(k, pos, w, v, n, out, &s)
			}
		})
		b.Run(fmt.Sprintf("dense/1of%d", share), func(b *testing.B) {
			for b.Loop() {
				MatMulNT(1, n, k, dense, k, vt, k, out, n)
			}
		})
	}
}

// BenchmarkBlend folds one head_dim-128 vector into a float64 running mean, as a
// compensation slot takes in a victim's key, in every kernel set.
func BenchmarkBlend(b *testing.B) {
	const n = 128
	x := randomSlice(rand.New(rand.NewPCG(4, 4)), n)
	dst := make([]float64, n)
	for _, im := range implementations {
		b.Run(im.name, func(b *testing.B) {
			withImpl(im, func() {
				for b.Loop() {
					Blend(dst, 0.75, x, 0.25, 1)
				}
			})
		})
	}
}
