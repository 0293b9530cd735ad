package cpu

import (
	"math"
	"slices"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/kernel"
)

// probsBuffers returns the buffers a layer's observed probabilities go to, or nils.
func (b *Backend) probsBuffers(c *cache, n int, want bool) (probs, comp []float32) {
	if !want {
		return nil, nil
	}
	a := &b.act
	a.probs = buf.Grow(a.probs, c.heads*n*c.capacity)
	probs = a.probs
	if c.comp != nil {
		a.comp = buf.Grow(a.comp, c.heads*n)
		comp = a.comp
	}
	return probs, comp
}

// attentionRows is how many queries attend together: a row block skips the slots
// that every query in it must mask, which halves the work of a causal prefill.
const attentionRows = 64

// attend computes layer l's attention for the batch's n queries (b.act.q) over the
// cache into b.act.attn, and the probabilities into probs and comp when they are
// not nil. Heads are split across the workers.
//
// For each head and block of queries, the scores against the slots the block may
// see, and the compensation slot's in one extra column, are computed with
// kernel.MatMulNT; slots that are free or hold a later position than the query are
// masked to -Inf before the softmax, which turns them into zeros.
func (b *Backend) attend(c *cache, l, n int, positions []int32, probs, comp []float32) {
	H, d, C, W := c.heads, c.headDim, c.capacity, c.width[l]
	ld := W + 1
	q, out := b.act.q, b.act.attn
	negInf := float32(math.Inf(-1))
	b.split(H, 1, func(worker, lo, hi int) {
		scores := b.work[worker].scores(attentionRows * ld)
		for h := lo; h < hi; h++ {
			pos := c.pos[l][h*C : h*C+W]
			dense := isDense(pos)
			compOn := c.comp != nil && c.comp[l][h].Weight > 0
			for r0 := 0; r0 < n; r0 += attentionRows {
				rows := min(attentionRows, n-r0)
				// When slot s holds position s, the slots after the block's last
				// position are masked for all of its queries: leave them out.
				w := W
				if dense {
					w = min(W, int(slices.Max(positions[r0:r0+rows]))+1)
				}
				qb := q[r0*H*d+h*d:]
				kernel.MatMulNT(rows, w, d, qb, H*d, c.k[l][h*C*d:], d, scores, ld)
				for r := range rows {
					row := scores[r*ld : r*ld+w+1]
					p := positions[r0+r]
					if dense {
						for s := min(int(p)+1, w); s < w; s++ {
							row[s] = negInf
						}
					} else {
						for s, ps := range pos {
							if ps < 0 || ps > p {
								row[s] = negInf
							}
						}
					}
					row[w] = negInf
					if compOn {
						row[w] = kernel.Dot(qb[r*H*d:r*H*d+d], c.compK[l][h*d:(h+1)*d])
					}
					kernel.Softmax(row)
				}
				ob := out[r0*H*d+h*d:]
				kernel.MatMulNT(rows, d, w, scores, ld, c.vt[l][h*d*C:], C, ob, H*d)
				for r := range rows {
					row := scores[r*ld : r*ld+w+1]
					if compOn {
						kernel.Axpy(row[w], c.compV[l][h*d:(h+1)*d], ob[r*H*d:r*H*d+d])
					}
					if probs != nil {
						i := h*n + r0 + r
						dst := probs[i*C : (i+1)*C]
						copy(dst, row[:w])
						clear(dst[w:])
						if comp != nil {
							comp[i] = row[w]
						}
					}
				}
			}
		}
	})
}

// isDense reports whether every slot s holds position s: the layout of prefill and
// of plain decoding, where each query sees a prefix of the slots.
func isDense(pos []int32) bool {
	for s, p := range pos {
		if p != int32(s) {
			return false
		}
	}
	return true
}

// observe hands layer l's tensors to the batch's observer.
func (b *Backend) observe(c *cache, l int, batch *gpu.Batch, probs, comp []float32) error {
	cfg := &b.cfg
	v := &gpu.LayerView{Layer: l, Rows: len(batch.Tokens), Heads: c.heads, HeadDim: c.headDim, Capacity: c.capacity,
		Positions: batch.Positions, Slots: batch.Slots[l], Probs: probs, Comp: comp}
	if batch.Want.QKV {
		n := len(batch.Tokens) * cfg.HiddenSize
		v.Q, v.K, v.V = b.act.q[:n], b.act.k[:n], b.act.v[:n]
	}
	return batch.Observe(v)
}
