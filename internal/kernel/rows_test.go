package kernel

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestAxpyRows holds AxpyRows to one Axpy per row, bit for bit, in every kernel set,
// for widths across the 64- and 8-element blocks and their tails.
func TestAxpyRows(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for _, width := range []int{0, 1, 7, 8, 9, 63, 64, 65, 72, 128, 131} {
		const rows, ldx = 40, 140
		x := randomSlice(r, rows*ldx)
		y0 := randomSlice(r, width)
		for _, count := range []int{0, 1, 5, 33} {
			idx, alpha := make([]int32, count), randomSlice(r, count)
			for i := range idx {
				idx[i] = int32(r.IntN(rows))
			}
			for _, im := range implementations {
				want := append([]float32(nil), y0...)
				for i, row := range idx {
					im.axpy(alpha[i], x[int(row)*ldx:int(row)*ldx+width], want)
				}
				got := append([]float32(nil), y0...)
				withImpl(im, func() { AxpyRows(alpha, idx, x, ldx, got) })
				for j := range got {
					if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
						t.Fatalf("%s: width %d, %d rows: y[%d] = %g, one Axpy per row gives %g", im.name, width, count, j, got[j], want[j])
					}
				}
			}
		}
	}
}

func TestAxpyRowsBadArguments(t *testing.T) {
	x := make([]float32, 40)
	for _, c := range []struct {
		alpha []float32
		idx   []int32
		want  string
	}{
		{[]float32{1}, []int32{1, 2}, "len(idx) 2 != len(alpha) 1"},
		{[]float32{1}, []int32{4}, "row 4 outside x of 40 elements"},
		{[]float32{1}, []int32{-1}, "row -1 outside"},
	} {
		func() {
			defer func() {
				if err, _ := recover().(error); err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("idx %v: panic %v, want %q", c.idx, err, c.want)
				}
			}()
			AxpyRows(c.alpha, c.idx, x, 10, make([]float32, 8))
		}()
	}
}

// TestSparseRowTimes holds SparseRowTimes to MatMulNT on the dense row, bit for bit,
// in every kernel set, for lengths that cross the kernels' 16-, 8- and tail regions
// and for rows from empty to full.
func TestSparseRowTimes(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	var s RowScratch
	for _, k := range []int{1, 7, 8, 15, 16, 17, 24, 31, 100, 1088} {
		for _, n := range []int{4, 8, 64, 128} {
			v := randomSlice(r, k*n)
			vt := make([]float32, n*k)
			for p := range k {
				for j := range n {
					vt[j*k+p] = v[p*n+j]
				}
			}
			for _, density := range []float64{0, 0.1, 0.5, 1} {
				var pos []int32
				var w []float32
				dense := make([]float32, k)
				for p := range k {
					if r.Float64() < density {
						pos = append(pos, int32(p))
						x := float32(r.Float64())
						w = append(w, x)
						dense[p] = x
					}
				}
				for _, im := range implementations {
					want := make([]float32, n)
					im.matMulNT(1, n, k, dense, k, vt, k, want, n)
					got := make([]float32, n)
					var ok bool
					withImpl(im, func() { ok = SparseRowTimes(k, pos, w, v, n, got, &s) })
					if !ok {
						if n%8 == 0 || im == &genericImpl {
							t.Fatalf("%s: k=%d n=%d: declined", im.name, k, n)
						}
						continue
					}
					for j := range got {
						if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
							t.Fatalf("%s: k=%d n=%d density %g: out[%d] = %g, MatMulNT gives %g", im.name, k, n, density, j, got[j], want[j])
						}
					}
				}
			}
		}
	}
}
