// Package gopolicy is a test policy for the Go guest SDK: no eviction, unless the
// param mode tells it to break the way a buggy policy does, or to draw on the only
// entropy a guest sees. The tests build it to WASM and check what the host reports.
package gopolicy

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/kvsim/kvsim/policies"
)

type policy struct {
	mode  string
	res   policies.Residency
	hoard [][]byte
}

// New reads mode:
//   - "none": keep everything;
//   - "panic": an index out of range in Observe;
//   - "oom": Observe allocates until memory runs out;
//   - "error": Evict returns an error;
//   - "entropy": evict random resident tokens, drawn from the runtime's unseeded
//     generator and the clock, which the host makes deterministic.
func New(p *policies.Params) (policies.Policy, error) {
	mode := p.String("mode", "none", "none", "panic", "oom", "error", "entropy")
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{mode: mode}, nil
}

func (p *policy) Init(cfg policies.Config) (policies.Layout, error) {
	p.res.Reset(cfg)
	return policies.Layout{Unbounded: p.mode == "none"}, nil
}

func (p *policy) Observe(a *policies.Attention) error {
	switch p.mode {
	case "panic":
		_ = a.Slot[a.Heads+a.Pos] // prefill has no slots: out of range
	case "oom":
		for {
			p.hoard = append(p.hoard, make([]byte, 1<<20))
		}
	}
	p.res.Enter(a)
	return nil
}

func (p *policy) Evict(e *policies.Eviction) error {
	switch p.mode {
	case "error":
		return errors.New("gopolicy: asked to fail")
	case "entropy":
		p.evictAtRandom(e)
	}
	return nil
}

func (p *policy) evictAtRandom(e *policies.Eviction) {
	clock := uint64(time.Now().UnixNano())
	for h := range e.Heads {
		for range e.Need[h] {
			pos := p.res.Heads[h].Positions()
			for {
				s := int32((rand.Uint64() ^ clock) % uint64(len(pos)))
				if pos[s] >= 0 {
					e.Victim(h, s, 0)
					p.res.Free(h, s)
					break
				}
			}
		}
	}
}
