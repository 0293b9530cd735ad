package sim

import (
	"math/bits"

	"github.com/kvsim/kvsim/internal/kernel"
)

// residentOutput sets out to head h's attention output from the resident tokens:
// pos[i] is a resident position and e[i] its weight, in the slot table's order. It
// rounds exactly as the products the metric is defined by: one axpy per token in
// that order while at most an eighth of the positions are resident, and the dense
// row times Vᵀ over all positions beyond. Up to a quarter, kernel.SparseRowTimes reproduces that dense product from
// the resident rows of V alone; from there on the dense product is the faster way to
// the same result (BenchmarkSparseRowTimes).
func (l *layerData) residentOutput(h int, pos []int32, e, out []float32) {
	d, T := l.headDim, l.total
	if len(pos) <= T/8 {
		clear(out)
		kernel.AxpyRows(e, pos, l.v.head(h), d, out)
		return
	}
	for i, p := range pos {
		l.dense[p] = e[i]
	}
	sparse := len(pos) <= T/4
	if sparse {
		// The row's nonzero entries in position order, read off a bitmap of the
		// resident positions (O(resident + T/64), where a scan of the row is O(T)
		// and a sort O(resident log resident)); a zero weight adds nothing.
		marks := l.marks
		for _, p := range pos {
			marks[p/64] |= 1 << (p % 64)
		}
		nz, w := l.nonzeroPos[:0], l.liveWeight[:0]
		for i, m := range marks {
			for m != 0 {
				p := i*64 + bits.TrailingZeros64(m)
				m &= m - 1
				if x := l.dense[p]; x != 0 {
					nz, w = append(nz, int32(p)), append(w, x)
				}
			}
			marks[i] = 0
		}
		sparse = kernel.SparseRowTimes(T, nz, w, l.v.head(h), d, out, &l.rows)
	}
	if !sparse {
		kernel.MatMulNT(1, d, T, l.dense, T, l.vt[h*d*T:], T, out, d)
	}
	for _, p := range pos {
		l.dense[p] = 0
	}
}
