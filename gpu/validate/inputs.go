package validate

import (
	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/policies"
)

// serve adds to a what lp's layout asks for beyond probabilities (contract 2.0):
// the batch's key, value and query vectors, rearranged from the backend's
// [row][head][dim] into policies.Attention's [head][row][dim], and, in decode,
// compact rows listing each head's resident slots from the host's tables with their
// probabilities. Layouts that ask for neither cost nothing.
func (lp *layerPolicy) serve(a *policies.Attention, v *gpu.LayerView, slots *gpu.Slots) {
	in := &lp.inputs
	if lp.layout.Keys || lp.layout.Values || lp.layout.Queries {
		a.HeadDim = v.HeadDim
		if lp.layout.Keys {
			in.Keys = byHead(in.Keys, v, v.K)
			a.Keys = in.Keys
		}
		if lp.layout.Values {
			in.Values = byHead(in.Values, v, v.V)
			a.Values = in.Values
		}
		if lp.layout.Queries {
			in.Queries = byHead(in.Queries, v, v.Q)
			a.Queries = in.Queries
		}
	}
	if !lp.layout.Compact || a.Phase != policies.Decode {
		return
	}
	w := a.Stride
	in.Probs, in.Live, in.Len = buf.Grow(in.Probs, v.Heads*w), buf.Grow(in.Live, v.Heads*w), buf.Grow(in.Len, v.Heads)
	for h, t := range slots.Tables() {
		row := v.ProbsRow(h, 0)
		live := t.Live()
		for i, s := range live {
			in.Live[h*w+i] = s
			in.Probs[h*w+i] = row[s]
		}
		in.Len[h] = int32(len(live))
	}
	a.Probs, a.Live, a.Len = in.Probs, in.Live, in.Len
}

// byHead copies x, [row][head][dim] as a LayerView holds it, into dst in
// [head][row][dim] order.
func byHead(dst []float32, v *gpu.LayerView, x []float32) []float32 {
	d := v.HeadDim
	dst = buf.Grow(dst, v.Heads*v.Rows*d)
	for r := range v.Rows {
		for h := range v.Heads {
			copy(dst[(h*v.Rows+r)*d:(h*v.Rows+r+1)*d], v.Head(x, r, h))
		}
	}
	return dst
}
