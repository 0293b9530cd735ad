// Package random evicts resident tokens uniformly at random: the floor any informed
// policy should beat. The stream is seeded from the scenario seed, layer and head.
package random

import (
	"fmt"
	"math/rand/v2"

	"github.com/kvsim/kvsim/policies"
)

type policy struct {
	res  policies.Residency
	rngs []*rand.Rand
	pool []int32
}

// New takes no parameters.
func New(p *policies.Params) (policies.Policy, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{}, nil
}

func (r *policy) Init(cfg policies.Config) (policies.Layout, error) {
	r.res.Reset(cfg)
	r.rngs = r.rngs[:0]
	for h := 0; h < cfg.Heads; h++ {
		r.rngs = append(r.rngs, rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Layer)<<32|uint64(h))))
	}
	r.pool = make([]int32, 0, cfg.MaxLen)
	return policies.Layout{}, nil
}

func (r *policy) Observe(a *policies.Attention) error {
	r.res.Enter(a)
	return nil
}

func (r *policy) Evict(e *policies.Eviction) error {
	for h := 0; h < e.Heads; h++ {
		table := &r.res.Heads[h]
		need := int(e.Need[h])
		if need > table.Resident() {
			return fmt.Errorf("head %d: need %d victims with %d tokens resident", h, need, table.Resident())
		}
		if need == 1 {
			// The draw below for one victim, without listing the pool: the slot
			// of rank j in slot order.
			s := table.NthResident(r.rngs[h].IntN(table.Resident()))
			e.Victim(h, s, 0)
			r.res.Free(h, s)
			continue
		}
		r.pool = r.pool[:0]
		for s, p := range table.Positions() {
			if p >= 0 {
				r.pool = append(r.pool, int32(s))
			}
		}
		// A partial Fisher–Yates shuffle of the resident slots, in slot order,
		// draws Need distinct slots.
		for i := 0; i < need; i++ {
			j := i + r.rngs[h].IntN(len(r.pool)-i)
			r.pool[i], r.pool[j] = r.pool[j], r.pool[i]
			e.Victim(h, r.pool[i], 0)
			r.res.Free(h, r.pool[i])
		}
	}
	return nil
}
