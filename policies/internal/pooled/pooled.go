// Package pooled holds what policies with a layer pool (policies.PoolLayer) share.
package pooled

import "github.com/kvsim/kvsim/policies"

// Width bounds the slot ids of a head under a layer pool (or a model pool's layer
// share, passed as cfg.Budget per head): one head may hold the whole pool,
// Heads×(Budget+Slack) entries, and the host fills the lowest free slot. It is
// SlotWidth with the pool in place of one head's budget.
func Width(cfg policies.Config, layout policies.Layout) int {
	layer := cfg
	layer.Budget = cfg.Heads * cfg.Budget
	layout.Slack = cfg.Heads * min(layout.Slack, cfg.MaxLen)
	layout.Pool = policies.PoolHead // the pool is already in the budget and slack
	return policies.SlotWidth(layer, layout)
}
