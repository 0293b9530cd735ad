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
	res     policies.Residency
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
	w.effSink = min(w.sink, cfg.Budget-1)
	w.res.Reset(cfg)
	return policies.Layout{}, nil
}

func (w *policy) Observe(a *policies.Attention) error {
	w.res.Enter(a)
	return nil
}

// Evict takes the oldest non-sink tokens.
func (w *policy) Evict(e *policies.Eviction) error {
	for h := 0; h < e.Heads; h++ {
		pos := w.res.Pos[h]
		for n := int32(0); n < e.Need[h]; n++ {
			victim, oldest := int32(-1), int32(0)
			for s, p := range pos {
				if p >= int32(w.effSink) && (victim < 0 || p < oldest) {
					victim, oldest = int32(s), p
				}
			}
			if victim < 0 {
				return fmt.Errorf("head %d: nothing left to evict", h)
			}
			e.Victim(h, victim, 0)
			w.res.Free(h, victim)
		}
	}
	return nil
}
