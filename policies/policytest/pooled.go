package policytest

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

// Pooled is a policy for testing hosts on budget pools and compact rows; it is no
// published method. It scores each resident token by the attention it has received
// (heavy hitters, as H2O) and, at each eviction, takes the PoolNeed lowest scores
// over all the layer's heads (older positions first on ties, then lower heads), so
// that a head may lose every token. A model pool is divided in proportion to L−l, so
// that deeper layers get less (PyramidKV's shape).
type Pooled struct {
	Pool     policies.Pool // PoolLayer or PoolModel
	Compact  bool          // read compact decode rows
	Slack    int
	Overdraw bool // give one victim fewer than PoolNeed, which hosts must refuse

	res   policies.Residency
	score [][]float64 // [head][slot]
	cands []candidate
}

type candidate struct {
	score float64
	pos   int32
	head  int
	slot  int32
}

func (p *Pooled) Init(cfg policies.Config) (policies.Layout, error) {
	if p.Pool == policies.PoolHead {
		return policies.Layout{}, fmt.Errorf("pooled: want a layer or model pool")
	}
	p.res.Reset(cfg)
	p.score = make([][]float64, cfg.Heads)
	for h := range p.score {
		p.score[h] = make([]float64, cfg.MaxLen)
	}
	return policies.Layout{Pool: p.Pool, Compact: p.Compact, Slack: p.Slack}, nil
}

// LayerBudgets gives layer l a share of the model's pool proportional to L−l.
func (p *Pooled) LayerBudgets(cfg policies.Config, entries []int) error {
	L := cfg.Layers
	pool := L * cfg.Heads * cfg.Budget
	for l := range entries {
		entries[l] = pool * 2 * (L - l) / (L * (L + 1))
	}
	return nil
}

func (p *Pooled) Observe(a *policies.Attention) error {
	p.res.Enter(a)
	for h := range a.Heads {
		score := p.score[h]
		if a.Live != nil {
			for i, s := range a.Live[h*a.Stride : h*a.Stride+int(a.Len[h])] {
				score[s] += float64(a.Probs[h*a.Stride+i])
			}
			continue
		}
		for r := range a.Rows {
			for s, v := range a.Row(h, r)[:min(a.Stride, len(score))] {
				score[s] += float64(v)
			}
		}
	}
	return nil
}

func (p *Pooled) Evict(e *policies.Eviction) error {
	p.cands = p.cands[:0]
	for h := range e.Heads {
		for _, s := range p.res.Heads[h].Live() {
			p.cands = append(p.cands, candidate{p.score[h][s], p.res.Heads[h].Pos(s), h, s})
		}
	}
	slices.SortFunc(p.cands, func(a, b candidate) int {
		return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.pos, b.pos), cmp.Compare(a.head, b.head))
	})
	n := e.PoolNeed
	if p.Overdraw {
		n--
	}
	for _, c := range p.cands[:n] {
		e.Victim(c.head, c.slot, 0)
		p.res.Free(c.head, c.slot)
		p.score[c.head][c.slot] = 0
	}
	return nil
}
