// Package tova is TOVA (Token Omission Via Attention, Oren et al. 2024): when the cache
// is over budget, evict the tokens the newest query attends to least.
//
// Scoring rule: a resident token's score is the attention probability it gets from the
// newest observed query. Each eviction removes the Need lowest-scored tokens of a head;
// the newest token itself is a candidate, as in the paper.
//
// Choices where the paper is open, or where kvsim differs:
//   - Per head by default. The paper's layer-wise form (layerwise=true) scores a slot by
//     its attention averaged over the heads, and every head evicts the same slots. The
//     slot tables then stay aligned: all heads start from the same prompt layout, drop
//     the same slots, and the host fills the lowest free slot, so each decode token
//     lands in the same slot in every head. Observe checks that and fails if a host
//     breaks it.
//   - Compression at the end of the prompt scores with the last prompt row alone: it is
//     the newest query.
//   - Ties go to the older token (lower position), which is evicted first.
//   - One eviction per step: Layout.Slack is 0.
//
// Params: layerwise (bool, default false).
package tova

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
)

type policy struct {
	layerwise bool

	cfg   policies.Config
	width int // slot ids stay below width
	next  int // position of the next query row
	res   policies.Residency
	// score[h*width+s] is the newest query's attention on head h's slot s. Layer-wise,
	// head 0's row holds the average over heads and the other rows are unused.
	score []float64
	ids   []int32 // scratch candidate list
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	t := &policy{layerwise: p.Bool("layerwise", false)}
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("tova: %w", err)
	}
	return t, nil
}

func (t *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, fmt.Errorf("tova: %w", err)
	}
	t.cfg, t.next = cfg, 0
	t.width = policies.SlotWidth(cfg, policies.Layout{})
	t.res.Reset(cfg)
	t.score = make([]float64, cfg.Heads*t.width)
	t.ids = make([]int32, 0, t.width)
	return policies.Layout{}, nil
}

// Observe keeps the newest query's attention.
func (t *policy) Observe(a *policies.Attention) error {
	if err := policies.CheckAttention(t.cfg, policies.Layout{}, &t.res, t.next, a); err != nil {
		return fmt.Errorf("tova: %w", err)
	}
	if t.layerwise && a.Phase == policies.Decode {
		for h := range a.Heads {
			if a.Slot[h] != a.Slot[0] {
				return fmt.Errorf("tova: layerwise: head %d put position %d in slot %d, head 0 in slot %d; the slot tables are no longer aligned",
					h, a.Pos, a.Slot[h], a.Slot[0])
			}
		}
	}
	t.res.Enter(a)
	t.next += a.Rows

	w, last := t.width, a.Rows-1
	cols := min(w, a.Stride)
	if t.layerwise {
		avg := t.score[:w]
		clear(avg)
		for h := range a.Heads {
			for s, v := range a.Row(h, last)[:cols] {
				avg[s] += float64(v)
			}
		}
		for s := range avg {
			avg[s] /= float64(a.Heads)
		}
		return nil
	}
	for h := range a.Heads {
		score := t.score[h*w : h*w+cols]
		for s, v := range a.Row(h, last)[:cols] {
			score[s] = float64(v)
		}
	}
	return nil
}

// Evict names, per head, the Need resident tokens the newest query attends to least.
func (t *policy) Evict(e *policies.Eviction) error {
	if err := policies.CheckEviction(t.cfg, policies.Layout{}, &t.res, t.next, e); err != nil {
		return fmt.Errorf("tova: %w", err)
	}
	if !t.layerwise {
		for h := range e.Heads {
			e.Count[h] = 0
			for _, s := range t.lowest(h, h, int(e.Need[h])) {
				e.Victim(h, s, 0)
				t.res.Free(h, s)
			}
		}
		return nil
	}
	need := e.Need[0]
	for h := range e.Heads {
		if e.Need[h] != need {
			return fmt.Errorf("tova: layerwise: head 0 needs %d victims but head %d needs %d", need, h, e.Need[h])
		}
	}
	victims := t.lowest(0, 0, int(need))
	for h := range e.Heads {
		e.Count[h] = 0
		for _, s := range victims {
			e.Victim(h, s, 0)
			t.res.Free(h, s)
		}
	}
	return nil
}

// lowest returns the n resident slots of head h that score lowest in score row
// scoreRow, the older token first on ties.
func (t *policy) lowest(h, scoreRow, n int) []int32 {
	table := &t.res.Heads[h]
	pos := table.Positions()[:t.width]
	score := t.score[scoreRow*t.width : (scoreRow+1)*t.width]
	less := func(a, b int32) bool {
		if score[a] != score[b] {
			return score[a] < score[b]
		}
		return pos[a] < pos[b]
	}
	ids := t.ids[:0]
	if n == 1 && table.Resident() > 0 {
		// A decode step's one victim: the least resident slot, in one pass over
		// the resident list (the order is total, so the list's order is moot).
		best := table.Live()[0]
		for _, s := range table.Live()[1:] {
			if less(s, best) {
				best = s
			}
		}
		return append(ids, best)
	}
	// The compression lists the slots in slot order: the selection's order, which
	// becomes the victims' order, depends on it.
	for s, p := range pos {
		if p >= 0 {
			ids = append(ids, int32(s))
		}
	}
	ranking.Smallest(ids, n, less)
	return ids[:n]
}

// TokenStateBytes declares the newest query's attention (a float64) per head and resident token.
func (*policy) TokenStateBytes() int { return 8 }
