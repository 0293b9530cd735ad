// Package contract2 is a test policy for contract 2.0 and ABI 2.0: it asks for what
// its param kind names and uses all of it in its decisions, so that a host that
// passes any of it wrongly makes it evict differently. The tests run it natively
// and built to WASM with the Go guest SDK, and compare the two victim for victim.
//
// A token's score is the attention it has received, plus, with inputs, 0.01 × the
// norm of its value − 0.01 × the norm of its key + 0.001 × its own query · key. Each
// eviction takes the lowest scores (ties: the lowest slot, then the lowest head).
package contract2

import (
	"fmt"
	"math"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

// New reads kind:
//   - "inputs": keys, values, queries and compact decode rows, per-head budgets;
//   - "layer": a layer pool with a slack of 2 (probabilities only);
//   - "model": a model pool that gives layer l a share proportional to L − l;
//   - "overdraw": a layer pool, but one victim fewer than the pool needs;
//   - "greedy": a model pool whose layer budgets sum to one token over the pool.
func New(p *policies.Params) (policies.Policy, error) {
	kind := p.String("kind", "inputs", "inputs", "layer", "model", "overdraw", "greedy")
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{kind: kind}, nil
}

type policy struct {
	kind   string
	cfg    policies.Config
	layout policies.Layout
	score  [][]float64 // [head][slot]
	live   [][]bool
	order  []candidate
}

type candidate struct {
	score      float64
	head, slot int
}

func (p *policy) Init(cfg policies.Config) (policies.Layout, error) {
	p.cfg = cfg
	p.layout = policies.Layout{}
	switch p.kind {
	case "inputs":
		p.layout = policies.Layout{Keys: true, Values: true, Queries: true, Compact: true}
	case "layer", "overdraw":
		p.layout = policies.Layout{Pool: policies.PoolLayer, Slack: 2}
	case "model", "greedy":
		p.layout = policies.Layout{Pool: policies.PoolModel}
	}
	p.score, p.live = make([][]float64, cfg.Heads), make([][]bool, cfg.Heads)
	for h := range cfg.Heads {
		p.score[h], p.live[h] = make([]float64, cfg.MaxLen), make([]bool, cfg.MaxLen)
	}
	return p.layout, nil
}

// LayerBudgets gives layer l a share of the model pool proportional to L − l
// (rounded down), the way pyramid schemes shrink budgets with depth.
func (p *policy) LayerBudgets(cfg policies.Config, entries []int) error {
	if cfg.Layer != -1 || len(entries) != cfg.Layers {
		return fmt.Errorf("contract2: layer budgets for layer %d with %d entries", cfg.Layer, len(entries))
	}
	L, pool := cfg.Layers, cfg.Layers*cfg.Heads*cfg.Budget
	weights := L * (L + 1) / 2
	for l := range entries {
		entries[l] = pool * (L - l) / weights
	}
	if p.kind == "greedy" {
		entries[0] += pool + 1 - sum(entries)
	}
	return nil
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func (p *policy) Observe(a *policies.Attention) error {
	D := a.HeadDim
	for h := range a.Heads {
		for r := range a.Rows {
			slot := a.Pos + r
			if a.Phase == policies.Decode {
				slot = int(a.Slot[h])
			}
			p.live[h][slot] = true
			if p.layout.Keys {
				k := a.Keys[(h*a.Rows+r)*D:][:D]
				v := a.Values[(h*a.Rows+r)*D:][:D]
				q := a.Queries[(h*a.Rows+r)*D:][:D]
				p.score[h][slot] = 0.01*norm(v) - 0.01*norm(k) + 0.001*dot(q, k)
			}
			if a.Phase == policies.Decode && p.layout.Compact {
				n := int(a.Len[h])
				if !slices.Contains(a.Live[h*a.Stride:h*a.Stride+n], a.Slot[h]) {
					return fmt.Errorf("contract2: head %d: the new token's slot %d is not in its compact row", h, a.Slot[h])
				}
				for i := range n {
					p.score[h][a.Live[h*a.Stride+i]] += float64(a.Probs[h*a.Stride+i])
				}
				continue
			}
			for s, pr := range a.Row(h, r) {
				p.score[h][s] += float64(pr)
			}
		}
	}
	return nil
}

func (p *policy) Evict(e *policies.Eviction) error {
	if p.layout.Pool == policies.PoolHead {
		for h := range e.Heads {
			p.order = p.candidates(p.order[:0], h)
			for _, c := range p.order[:e.Need[h]] {
				p.evict(e, c)
			}
		}
		return nil
	}
	p.order = p.order[:0]
	for h := range e.Heads {
		p.order = p.candidates(p.order, h)
	}
	sortCandidates(p.order)
	n := e.PoolNeed
	if p.kind == "overdraw" {
		n--
	}
	for _, c := range p.order[:n] {
		p.evict(e, c)
	}
	return nil
}

// candidates appends head h's resident tokens, lowest score first.
func (p *policy) candidates(out []candidate, h int) []candidate {
	start := len(out)
	for s, ok := range p.live[h] {
		if ok {
			out = append(out, candidate{p.score[h][s], h, s})
		}
	}
	sortCandidates(out[start:])
	return out
}

func sortCandidates(cs []candidate) {
	slices.SortFunc(cs, func(x, y candidate) int {
		switch {
		case x.score != y.score:
			if x.score < y.score {
				return -1
			}
			return 1
		case x.slot != y.slot:
			return x.slot - y.slot
		}
		return x.head - y.head
	})
}

func (p *policy) evict(e *policies.Eviction, c candidate) {
	e.Victim(c.head, int32(c.slot), 0)
	p.live[c.head][c.slot] = false
	p.score[c.head][c.slot] = 0
}

func norm(x []float32) float64 { return math.Sqrt(dot(x, x)) }

func dot(x, y []float32) float64 {
	var s float64
	for i := range x {
		s += float64(x[i]) * float64(y[i])
	}
	return s
}
