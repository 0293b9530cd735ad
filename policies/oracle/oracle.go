// Package oracle is the clairvoyant upper bound, in the spirit of Belady's MIN for
// caches: it evicts the tokens that will receive the least attention from all later
// queries of the full-cache run. Only replay can serve it, because only replay holds
// the future (Layout.Clairvoyant). Ties go to the older token.
package oracle

import (
	"fmt"
	"math"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

type policy struct {
	res    policies.Residency
	pool   []int32
	keys   []uint64 // scratch: sort keys of the pool
	slotAt []int32  // scratch: position → slot, for the slots being sorted
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
	o.keys = make([]uint64, 0, cfg.MaxLen)
	o.slotAt = make([]int32, cfg.MaxLen)
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
		for _, s := range o.sorted(table, future, less)[:need] {
			e.Victim(h, s, 0)
			o.res.Free(h, s)
		}
	}
	return nil
}

// sorted returns head table's resident slots in the order less gives. Future masses
// are sums of probabilities, so normally non-negative: then the float's bits order
// as its value, and (mass, position) packs into one integer key whose plain sort
// replaces a sort through less (the compression sorts the whole prompt).
func (o *policy) sorted(table *policies.SlotTable, future []float32, less func(a, b int32) bool) []int32 {
	o.pool = append(o.pool[:0], table.Live()...)
	o.keys = o.keys[:0]
	for i, s := range o.pool {
		bits := math.Float32bits(future[s])
		if bits > 0x7f800000 { // negative, -0 or NaN
			slices.SortFunc(o.pool, func(a, b int32) int {
				switch {
				case less(a, b):
					return -1
				case less(b, a):
					return 1
				}
				return 0
			})
			return o.pool
		}
		p := table.LivePositions()[i]
		o.keys = append(o.keys, uint64(bits)<<32|uint64(p))
		o.slotAt[p] = s
	}
	slices.Sort(o.keys)
	for i, k := range o.keys {
		o.pool[i] = o.slotAt[uint32(k)]
	}
	return o.pool
}
