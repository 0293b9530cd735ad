// Package full is the no-eviction reference: every token stays resident, so its row in
// a results table is what the full cache gives.
package full

import (
	"errors"

	"github.com/kvsim/kvsim/policies"
)

type policy struct{}

// New takes no parameters.
func New(p *policies.Params) (policies.Policy, error) {
	if err := p.Err(); err != nil {
		return nil, err
	}
	return policy{}, nil
}

func (policy) Init(policies.Config) (policies.Layout, error) {
	return policies.Layout{Unbounded: true}, nil
}

func (policy) Observe(*policies.Attention) error { return nil }

func (policy) Evict(*policies.Eviction) error {
	return errors.New("full cache never evicts")
}
