package sim

import (
	"fmt"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// inputs holds the key, value and query vectors a layer serves to the policies whose
// layouts ask for them (contract 2.0), in policies.Attention's [head][row][headDim]
// order: copied once per prefill block or decode step and shared by every instance
// that asks, so that policies that do not ask cost nothing.
type inputs struct {
	wantK, wantV, wantQ bool // some live instance asks
	blockK, blockV      []float32
	blockQ              []float32
	step                int // the decode position vecs holds, -1 for none
	vecs                policies.Attention
}

// want records what the live instances ask for, before a pass.
func (l *layerData) want(live []*instance) {
	l.wantK, l.wantV, l.wantQ, l.step = false, false, false, -1
	for _, in := range live {
		l.wantK = l.wantK || in.layout.Keys
		l.wantV = l.wantV || in.layout.Values
		l.wantQ = l.wantQ || in.layout.Queries
	}
}

// needValues makes sure V is loaded for instances that ask for values, reading it
// now when the output-error metric did not; a trace without V fails them.
func (l *layerData) needValues(src Source, layer int, hasV bool) error {
	if l.v.data != nil {
		return nil
	}
	if !hasV {
		return fmt.Errorf("the layout asks for values, but trace %s carries none", src.Name())
	}
	return l.read(src, kvtrace.V, layer, &l.v, &l.vBuf)
}

// blockVectors adds the vectors of prompt rows r0..r0+rows-1 to a prefill block.
func (l *layerData) blockVectors(a *policies.Attention) {
	a.HeadDim = l.headDim
	a.Keys, a.Values, a.Queries = nil, nil, nil
	if l.wantK {
		l.blockK = gatherRows(l.blockK, &l.k, l.heads, a.Pos, a.Rows)
		a.Keys = l.blockK
	}
	if l.wantV {
		l.blockV = gatherRows(l.blockV, &l.v, l.heads, a.Pos, a.Rows)
		a.Values = l.blockV
	}
	if l.wantQ {
		l.blockQ = gatherRows(l.blockQ, &l.q, l.heads, a.Pos, a.Rows)
		a.Queries = l.blockQ
	}
}

// decodeVectors returns the vectors of the token at position t, every head, as
// Keys, Values and Queries (those some instance asks for).
func (l *layerData) decodeVectors(t int) *policies.Attention {
	if l.step != t {
		l.step = t
		v := &l.vecs
		v.HeadDim = l.headDim
		if l.wantK {
			v.Keys = gatherRows(v.Keys, &l.k, l.heads, t, 1)
		}
		if l.wantV {
			v.Values = gatherRows(v.Values, &l.v, l.heads, t, 1)
		}
		if l.wantQ {
			v.Queries = gatherRows(v.Queries, &l.q, l.heads, t, 1)
		}
	}
	return &l.vecs
}

// gatherRows copies rows r0..r0+rows-1 of every head of x into dst, [head][row][dim].
func gatherRows(dst []float32, x *tensor, heads, r0, rows int) []float32 {
	n := rows * x.dim
	dst = buf.Grow(dst, heads*n)
	for h := 0; h < heads; h++ {
		copy(dst[h*n:(h+1)*n], x.head(h)[r0*x.dim:])
	}
	return dst
}
