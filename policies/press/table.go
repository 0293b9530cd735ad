package press

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
)

// table is the press's mirror of the host's slot tables, and the protocol checks made
// against it. It is the one place that knows how policies.Residency and the checks of
// package policies are spelled.
type table struct {
	res   policies.Residency
	width int     // MaxLen: slot ids stay below it whatever the layout
	live  []int32 // live[h*width:][:res.Count[h]]: head h's resident slots
	at    []int32 // at[h*width+s]: where slot s sits in head h's live list
}

func (t *table) reset(cfg policies.Config) {
	t.res.Reset(cfg)
	t.width = cfg.MaxLen
	n := cfg.Heads * t.width
	if cap(t.live) < n {
		t.live, t.at = make([]int32, n), make([]int32, n)
	}
	t.live, t.at = t.live[:n], t.at[:n]
	for h := range cfg.Heads {
		for s := range cfg.PromptLen {
			t.live[h*t.width+s], t.at[h*t.width+s] = int32(s), int32(s)
		}
	}
}

func (t *table) pos(h int, s int32) int { return int(t.res.Pos[h][s]) }

func (t *table) resident(h int) []int32 { return t.live[h*t.width:][:t.res.Count[h]] }

// enter records a decode step's new tokens.
func (t *table) enter(a *policies.Attention) {
	if a.Phase != policies.Decode {
		return
	}
	for h, s := range a.Slot[:a.Heads] {
		n := t.res.Count[h]
		t.live[h*t.width+n], t.at[h*t.width+int(s)] = s, int32(n)
	}
	t.res.Enter(a)
}

// free records that head h's slot s was evicted: the last live slot takes its place.
func (t *table) free(h int, s int32) {
	live := t.resident(h)
	i, last := t.at[h*t.width+int(s)], live[len(live)-1]
	live[i], t.at[h*t.width+int(last)] = last, i
	t.res.Free(h, s)
}

// checkAttention rejects calls that break the protocol or lack what the layout asks.
func (t *table) checkAttention(cfg policies.Config, layout policies.Layout, next int, a *policies.Attention) error {
	width := policies.SlotWidth(cfg, layout)
	if layout.Pool != policies.PoolHead {
		width = cfg.MaxLen // a pooled head may hold more than Budget+Slack+1 tokens
	}
	if err := policies.CheckAttention(cfg, &t.res, width, next, a); err != nil {
		return err
	}
	want := a.Heads * a.Rows * cfg.HeadDim
	for _, v := range []struct {
		name  string
		asked bool
		got   []float32
	}{{"keys", layout.Keys, a.Keys}, {"values", layout.Values, a.Values}, {"queries", layout.Queries, a.Queries}} {
		if v.asked && (a.HeadDim != cfg.HeadDim || len(v.got) < want) {
			return fmt.Errorf("position %d: the layout asks for %s, got %d of head dimension %d, want %d of head dimension %d",
				a.Pos, v.name, len(v.got), a.HeadDim, want, cfg.HeadDim)
		}
	}
	if layout.Compact && a.Phase == policies.Decode && a.Live == nil {
		return fmt.Errorf("position %d: the layout asks for compact decode rows, got a wide row", a.Pos)
	}
	return nil
}

// checkEviction rejects requests the press cannot answer: Need for a pooled layout,
// or a pool need beyond what the layer holds.
func (t *table) checkEviction(cfg policies.Config, layout policies.Layout, next int, e *policies.Eviction) error {
	if err := policies.CheckEviction(cfg, &t.res, next, e); err != nil {
		return err
	}
	total := 0
	for h, n := range e.Need[:e.Heads] {
		total += t.res.Count[h]
		if layout.Pool != policies.PoolHead && n != 0 {
			return fmt.Errorf("a %v pool reads PoolNeed, but head %d has need %d", layout.Pool, h, n)
		}
	}
	if e.PoolNeed < 0 || e.PoolNeed > total || layout.Pool == policies.PoolHead && e.PoolNeed != 0 {
		return fmt.Errorf("pool need %d with %d tokens resident in the layer and a %v pool", e.PoolNeed, total, layout.Pool)
	}
	return nil
}
