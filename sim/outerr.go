package sim

import (
	"slices"

	"github.com/kvsim/kvsim/internal/kernel"
	"github.com/kvsim/kvsim/policies/host"
)

// residentOutput sets out to head h's attention output at decode row g from the
// resident tokens alone: live[i] is a slot of table and e[i] its weight. It reads
// the resident rows of V only, O(resident · headDim), and rounds exactly as the
// products it stands for: one axpy per token in slot order for few tokens, and the
// dense row times Vᵀ over all positions once more than an eighth of them are
// resident (kernel.SparseRowTimes reproduces that product from the resident rows).
func (l *layerData) residentOutput(h int, table *host.Table, live []int32, e, out []float32) {
	d, T := l.headDim, l.total
	pos := l.livePos[:len(live)]
	for i, s := range live {
		pos[i] = table.Pos(s)
	}
	if len(live) <= T/8 {
		clear(out)
		kernel.AxpyRows(e, pos, l.v.head(h), d, out)
		return
	}
	for i, p := range pos {
		l.dense[p] = e[i]
	}
	slices.Sort(pos)
	w := l.liveWeight[:len(pos)]
	for i, p := range pos {
		w[i] = l.dense[p]
	}
	if !kernel.SparseRowTimes(T, pos, w, l.v.head(h), d, out, &l.rows) {
		kernel.MatMulNT(1, d, T, l.dense, T, l.vt[h*d*T:], T, out, d)
	}
	for _, p := range pos {
		l.dense[p] = 0
	}
}
