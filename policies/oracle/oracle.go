// Package oracle is the clairvoyant upper bound, in the spirit of Belady's MIN for
// caches: it evicts the tokens that will receive the least attention from all later
// queries of the full-cache run. Only replay can serve it, because only replay holds
// the future (Layout.Clairvoyant). Ties go to the older token.
package oracle

import (
	"fmt"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

type policy struct {
	res  policies.Residency
	pool []int32
}

// New takes no parameters.
func New(p *policies.Params) (policies.Policy, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{}, nil
}

func (o *policy) Init(cfg policies.Config) (policies.Layout, error) {
	o.res.Reset(cfg)
	o.pool = make([]int32, 0, cfg.MaxLen)
	return policies.Layout{Clairvoyant: true}, nil
}

func (o *policy) Observe(a *policies.Attention) error {
	o.res.Enter(a)
	return nil
}

func (o *policy) Evict(e *policies.Eviction) error {
	for h := 0; h < e.Heads; h++ {
		need := int(e.Need[h])
		if need == 0 {
			continue
		}
		table := &o.res.Heads[h]
		if need > table.Resident() {
			return fmt.Errorf("head %d: need %d victims with %d tokens resident", h, need, table.Resident())
		}
		pos := table.Positions()
		future := e.Future[h*e.Stride : (h+1)*e.Stride]
		less := func(a, b int32) bool {
			if future[a] != future[b] {
				return future[a] < future[b]
			}
			return pos[a] < pos[b]
		}
		// The order is total (positions differ), so the victims do not depend on the
		// order of the resident list. A decode step owes one victim: take the least
		// slot in one pass over the resident slots. Only the compression (once per
		// sequence) sorts them.
		if need == 1 {
			live := table.Live()
			best := live[0]
			for _, s := range live[1:] {
				if less(s, best) {
					best = s
				}
			}
			e.Victim(h, best, 0)
			o.res.Free(h, best)
			continue
		}
		o.pool = append(o.pool[:0], table.Live()...)
		slices.SortFunc(o.pool, func(a, b int32) int {
			switch {
			case less(a, b):
				return -1
			case less(b, a):
				return 1
			}
			return 0
		})
		for _, s := range o.pool[:need] {
			e.Victim(h, s, 0)
			o.res.Free(h, s)
		}
	}
	return nil
}
