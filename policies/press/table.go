package press

import "github.com/kvsim/kvsim/policies"

// table is the press's mirror of the host's slot tables, and the protocol checks made
// against it. It is the one place that knows how policies.Residency and the checks of
// package policies are spelled.
type table struct {
	res policies.Residency
}

func (t *table) reset(cfg policies.Config) { t.res.Reset(cfg) }

func (t *table) pos(h int, s int32) int { return int(t.res.Heads[h].Pos(s)) }

func (t *table) resident(h int) []int32 { return t.res.Heads[h].Live() }

// enter records a decode step's new tokens.
func (t *table) enter(a *policies.Attention) { t.res.Enter(a) }

// free records that head h's slot s was evicted.
func (t *table) free(h int, s int32) { t.res.Free(h, s) }

// checkAttention rejects calls that break the protocol or lack what the layout asks.
func (t *table) checkAttention(cfg policies.Config, layout policies.Layout, next int, a *policies.Attention) error {
	return policies.CheckAttention(cfg, layout, &t.res, next, a)
}

// checkEviction rejects requests the press cannot answer.
func (t *table) checkEviction(cfg policies.Config, layout policies.Layout, next int, e *policies.Eviction) error {
	return policies.CheckEviction(cfg, layout, &t.res, next, e)
}
