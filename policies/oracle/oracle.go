// Package oracle is the clairvoyant upper bound, in the spirit of Belady's MIN for
// caches: it evicts the tokens that will receive the least attention from all later
// queries of the full-cache run. Only replay can serve it, because only replay holds
// the future (Layout.Clairvoyant). Ties go to the older token.
package oracle

import (
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
		pos := o.res.Heads[h].Positions()
		future := e.Future[h*e.Stride : (h+1)*e.Stride]
		o.pool = o.pool[:0]
		for s, p := range pos {
			if p >= 0 {
				o.pool = append(o.pool, int32(s))
			}
		}
		slices.SortFunc(o.pool, func(a, b int32) int {
			if future[a] != future[b] {
				if future[a] < future[b] {
					return -1
				}
				return 1
			}
			return int(pos[a] - pos[b])
		})
		for _, s := range o.pool[:e.Need[h]] {
			e.Victim(h, s, 0)
			o.res.Free(h, s)
		}
	}
	return nil
}
