// Package window is StreamingLLM's cache: the first Sink tokens (attention sinks) plus
// the most recent tokens, evicting the oldest non-sink token. Positions keep their
// original values, since OPT's positions are learned and absolute.
//
// Params: sink (default 4), the number of leading tokens that are never evicted. The
// recent window is whatever the budget leaves after the sinks. A budget too small for
// the sinks and one recent token keeps Budget-1 sinks instead, so that small-budget
// sweeps still run; the row then says what that budget allows.
package window

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
)

type policy struct {
	sink    int // as configured
	effSink int // for the current budget
	// queue[h][front[h]:] holds head h's non-sink slots, oldest first: tokens arrive
	// in position order and leave from the front.
	queue [][]int32
	front []int
}

// New reads the sink count.
func New(p *policies.Params) (policies.Policy, error) {
	sink := p.Int("sink", 4)
	p.Check("sink", sink >= 0, "must be ≥ 0, got %d", sink)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{sink: sink}, nil
}

func (w *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if cfg.Budget < 1 {
		return policies.Layout{}, fmt.Errorf("budget %d: need at least one token", cfg.Budget)
	}
	w.effSink = min(w.sink, cfg.Budget-1, cfg.PromptLen)
	if len(w.queue) != cfg.Heads || cap(w.queue[0]) < cfg.MaxLen {
		w.queue = make([][]int32, cfg.Heads)
		for h := range w.queue {
			w.queue[h] = make([]int32, 0, cfg.MaxLen)
		}
		w.front = make([]int, cfg.Heads)
	}
	for h := range w.queue {
		w.queue[h] = w.queue[h][:0]
		for s := w.effSink; s < cfg.PromptLen; s++ {
			w.queue[h] = append(w.queue[h], int32(s))
		}
		w.front[h] = 0
	}
	return policies.Layout{}, nil
}

func (w *policy) Observe(a *policies.Attention) error {
	if a.Phase == policies.Decode {
		for h, s := range a.Slot {
			w.queue[h] = append(w.queue[h], s)
		}
	}
	return nil
}

// Evict takes the oldest non-sink tokens.
func (w *policy) Evict(e *policies.Eviction) error {
	for h := 0; h < e.Heads; h++ {
		q := w.queue[h]
		for n := int32(0); n < e.Need[h]; n++ {
			if w.front[h] == len(q) {
				return fmt.Errorf("head %d: nothing left to evict", h)
			}
			e.Victim(h, q[w.front[h]], 0)
			w.front[h]++
		}
	}
	return nil
}

// TokenStateBytes declares the slot's entry in the arrival queue (an int32) per head and resident token.
func (*policy) TokenStateBytes() int { return 4 }
