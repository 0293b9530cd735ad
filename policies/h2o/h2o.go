// Package h2o is the Heavy-Hitter Oracle, as in the H2O paper and its real-drop OPT
// code: a token's score is its accumulated attention S[j] = Σ_i A[i, j] over every
// query seen so far (all prompt rows, then each decode row). The budget is split into
// heavy hitters and a recent window (the authors use 1:1). At the end of the prompt the
// cache keeps the last `recent` tokens plus the `heavy` best-scoring others; during
// decoding, when over budget, it evicts the lowest-scoring token outside the recent
// window, one per step per head. An evicted token's score is dropped.
//
// Params: recent_share (default 0.5), the share of the budget given to the recent
// window, in [0, 1); the rest holds heavy hitters. The window holds
// recent = round(budget × recent_share) tokens, rounded half up (floor(x + 0.5)), and
// then clamped to [1, budget]: the window always keeps at least the newest token, so
// recent_share = 0 still gives a one-token window, and a budget of 1 is all window. A
// budget of 5 at the default share gives a window of 3 and 2 heavy hitters.
//
// It asks for compact decode rows, so that a decode step costs O(budget) rather than
// O(table width), and reads wide rows from hosts that do not serve them (ABI 1.x).
package h2o

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
)

type policy struct {
	recentShare float64
	recent      int
	prompt      int
	res         policies.Residency
	score       [][]float64 // by slot; float64 so that long sums do not drift
	pool        []int32
}

// New reads the budget split.
func New(p *policies.Params) (policies.Policy, error) {
	share := p.Float("recent_share", 0.5)
	p.Check("recent_share", share >= 0 && share < 1, "must be in [0, 1), got %g", share)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{recentShare: share}, nil
}

func (p *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if cfg.Budget < 1 {
		return policies.Layout{}, fmt.Errorf("budget %d: need at least one token", cfg.Budget)
	}
	p.recent = max(1, int(float64(cfg.Budget)*p.recentShare+0.5))
	p.recent = min(p.recent, cfg.Budget)
	p.prompt = cfg.PromptLen
	p.res.Reset(cfg)
	if len(p.score) != cfg.Heads || (cfg.Heads > 0 && len(p.score[0]) < cfg.MaxLen) {
		p.score = make([][]float64, cfg.Heads)
		for h := range p.score {
			p.score[h] = make([]float64, cfg.MaxLen)
		}
	}
	for h := range p.score {
		clear(p.score[h])
	}
	if cap(p.pool) < cfg.MaxLen {
		p.pool = make([]int32, 0, cfg.MaxLen)
	}
	return policies.Layout{Compact: true}, nil
}

func (p *policy) Observe(a *policies.Attention) error {
	p.res.Enter(a)
	for h := 0; h < a.Heads; h++ {
		score := p.score[h]
		if a.Live != nil {
			off, n := h*a.Stride, int(a.Len[h])
			probs := a.Probs[off : off+n]
			for i, s := range a.Live[off : off+n] {
				score[s] += float64(probs[i])
			}
			continue
		}
		for r := 0; r < a.Rows; r++ {
			row := a.Row(h, r)
			n := min(len(row), len(score))
			if a.Phase == policies.Prefill {
				n = min(n, a.Pos+r+1)
			}
			policies.AddRow(score, row[:n])
		}
	}
	return nil
}

// ForkTo copies the prompt's column sums, which do not depend on the budget: only
// the split into heavy hitters and recent window does, and Evict applies it.
func (p *policy) ForkTo(dst policies.Policy) error {
	q, ok := dst.(*policy)
	if !ok || len(q.score) != len(p.score) {
		return fmt.Errorf("fork: destination is not an h2o instance of the same sequence")
	}
	for h := range p.score {
		copy(q.score[h], p.score[h])
	}
	return nil
}

// AppendForkState appends the prompt's column sums, head by head.
func (p *policy) AppendForkState(b []byte) []byte {
	for _, score := range p.score {
		b = policies.AppendFloat64s(b, score[:p.prompt])
	}
	return b
}

// LoadForkState takes the column sums AppendForkState saved.
func (p *policy) LoadForkState(b []byte) error {
	if want := 8 * len(p.score) * p.prompt; len(b) != want {
		return fmt.Errorf("fork state of %d bytes, want %d for %d heads × a prompt of %d", len(b), want, len(p.score), p.prompt)
	}
	for _, score := range p.score {
		b, _ = policies.ReadFloat64s(score[:p.prompt], b)
	}
	return nil
}

// Evict drops the lowest-scoring tokens older than the recent window.
func (p *policy) Evict(e *policies.Eviction) error {
	cutoff := int32(e.Pos + 1 - p.recent) // positions ≥ cutoff are in the window
	for h := 0; h < e.Heads; h++ {
		need := int(e.Need[h])
		if need == 0 {
			continue
		}
		table := &p.res.Heads[h]
		pos, score, live := table.Positions(), p.score[h], table.Live()
		if need == 1 { // a decode step: the lowest in one pass, no list
			best := int32(-1)
			for i, q := range table.LivePositions() {
				if s := live[i]; q < cutoff && (best < 0 || lower(score, pos, s, best)) {
					best = s
				}
			}
			if best < 0 {
				return fmt.Errorf("head %d: 0 tokens outside the recent window, need 1 victim", h)
			}
			p.drop(e, h, best)
			continue
		}
		// The order of the pool does not matter: lower is a total order.
		p.pool = p.pool[:0]
		for i, q := range table.LivePositions() {
			if q < cutoff {
				p.pool = append(p.pool, live[i])
			}
		}
		if need > len(p.pool) {
			return fmt.Errorf("head %d: %d tokens outside the recent window, need %d victims", h, len(p.pool), need)
		}
		sortLowest(p.pool, score, pos)
		for _, s := range p.pool[:need] {
			p.drop(e, h, s)
		}
	}
	return nil
}

// drop names slot s as one of head h's victims and forgets its score.
func (p *policy) drop(e *policies.Eviction, h int, s int32) {
	e.Victim(h, s, 0)
	p.res.Free(h, s)
	p.score[h][s] = 0
}

// sortLowest sorts slots ascending by lower. It is a heapsort with the order written
// in, not slices.SortFunc: a comparison through a func value costs a call, which
// is most of a sort's time in a policy built to WASM with the Go guest SDK. The
// order is total, so every correct sort gives this one.
func sortLowest(slots []int32, score []float64, pos []int32) {
	siftDown := func(heap []int32, i int) {
		for {
			c := 2*i + 1
			if c >= len(heap) {
				return
			}
			if c+1 < len(heap) && lower(score, pos, heap[c], heap[c+1]) {
				c++
			}
			if !lower(score, pos, heap[i], heap[c]) {
				return
			}
			heap[i], heap[c] = heap[c], heap[i]
			i = c
		}
	}
	for i := len(slots)/2 - 1; i >= 0; i-- {
		siftDown(slots, i)
	}
	for end := len(slots) - 1; end > 0; end-- {
		slots[0], slots[end] = slots[end], slots[0]
		siftDown(slots[:end], 0)
	}
}

// lower orders slots by score, older first on ties.
func lower(score []float64, pos []int32, a, b int32) bool {
	if score[a] != score[b] {
		return score[a] < score[b]
	}
	return pos[a] < pos[b]
}

// TokenStateBytes declares the accumulated attention (a float64) per head and resident token.
func (*policy) TokenStateBytes() int { return 8 }
