package host

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// tables makes one table per resident count, each 8 slots wide with its tokens in
// the lowest slots.
func tables(resident ...int) []policies.SlotTable {
	t := make([]policies.SlotTable, len(resident))
	for h, n := range resident {
		t[h].Reset(8, n)
	}
	return t
}

// TestBoundNeed checks needs by hand: per head, resident − B (− Slack in decode);
// for a pool, the layer's resident − its entries (− Heads×Slack in decode).
func TestBoundNeed(t *testing.T) {
	cfg := policies.Config{Layers: 4, Heads: 2, PromptLen: 5, MaxLen: 9, Budget: 2}
	tb := tables(5, 3)
	for _, c := range []struct {
		name     string
		layout   policies.Layout
		share    int
		phase    policies.Phase
		need     [2]int32
		poolNeed int
	}{
		{"head compression", policies.Layout{Slack: 1}, 0, policies.Prefill, [2]int32{3, 1}, 0},
		{"head decode", policies.Layout{Slack: 1}, 0, policies.Decode, [2]int32{2, 0}, 0},
		{"unbounded", policies.Layout{Unbounded: true}, 0, policies.Prefill, [2]int32{}, 0},
		{"layer compression", policies.Layout{Pool: policies.PoolLayer, Slack: 1}, 0, policies.Prefill, [2]int32{}, 4}, // 8 − 2×2
		{"layer decode", policies.Layout{Pool: policies.PoolLayer, Slack: 1}, 0, policies.Decode, [2]int32{}, 2},       // 8 − 4 − 2×1
		{"model compression", policies.Layout{Pool: policies.PoolModel}, 1, policies.Prefill, [2]int32{}, 7},           // 8 − 1
		{"model decode, a large share", policies.Layout{Pool: policies.PoolModel}, 12, policies.Decode, [2]int32{}, 0},
	} {
		b := NewBound(cfg, c.layout, c.share)
		e := policies.Eviction{Need: []int32{9, 9}, PoolNeed: 9}
		any := b.Need(&e, tb, c.phase)
		if [2]int32(e.Need) != c.need || e.PoolNeed != c.poolNeed || any != (c.poolNeed > 0 || c.need != [2]int32{}) {
			t.Errorf("%s: need %v, pool need %d, any %t; want %v, %d", c.name, e.Need, e.PoolNeed, any, c.need, c.poolNeed)
		}
	}
}

func TestCheckVictimsPool(t *testing.T) {
	tb := tables(3, 3)
	for _, c := range []struct {
		name    string
		victims [2][]int32
		want    string
	}{
		{"one head emptied", [2][]int32{{0, 1, 2}, {}}, ""},
		{"spread", [2][]int32{{2}, {0, 1}}, ""},
		{"overdrawn", [2][]int32{{0}, {1}}, "pool: 2 victims over 2 heads, need at least 3"},
		{"more than a head holds", [2][]int32{{0, 1, 2, 2}, {}}, "head 0: 4 victims, only 3 tokens resident"},
		{"twice", [2][]int32{{0, 0, 1}, {}}, "head 0: victim slot 0 named twice"},
	} {
		e := policies.Eviction{Heads: 2, Stride: 8, Need: make([]int32, 2), PoolNeed: 3, Count: make([]int32, 2), Victims: make([]int32, 16)}
		for h, vs := range c.victims {
			for _, s := range vs {
				e.Victim(h, s, 0)
			}
		}
		err := CheckVictims(&e, tb, false)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

// TestBoundCaps checks what a layer may hold after eviction and while attending
// under peak accounting, by hand.
func TestBoundCaps(t *testing.T) {
	cfg := policies.Config{Layers: 2, Heads: 2, PromptLen: 8, MaxLen: 12, Budget: 3}
	head := NewBound(cfg, policies.Layout{Slack: 1}, 0)
	layer := NewBound(cfg, policies.Layout{Pool: policies.PoolLayer, Slack: 1}, 0) // 6 entries
	model := NewBound(cfg, policies.Layout{Pool: policies.PoolModel}, 10)          // this layer's share: 10 of 12
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"head within", head.CheckHeld(tables(4, 4)), ""},
		{"head over", head.CheckHeld(tables(5, 0)), "head 0 holds 5 tokens: budget 3, slack 1"},
		{"layer within, one head emptied", layer.CheckHeld(tables(8, 0)), ""}, // 6 + 2×1
		{"layer over", layer.CheckHeld(tables(5, 4)), "the layer pool of 6 entries holds 9 tokens, over 8"},
		{"model within", model.CheckHeld(tables(8, 2)), ""},
		{"model over", model.CheckHeld(tables(8, 3)), "the model pool of 10 entries holds 11 tokens, over 10"},
		// Peak cap 5 at nominal 3: a head holds at most 5 entries; a pool its share
		// + 2 heads × (5 − 3).
		{"head cap", head.CheckCap(tables(4, 5), true, 5), "head 1 holds 6 entries while attending, over the peak cap of 5"},
		{"layer cap within", layer.CheckCap(tables(7, 1), true, 5), ""}, // 8 + 2 compensation slots ≤ 6 + 2×2
		{"layer cap over", layer.CheckCap(tables(8, 1), true, 5), "the layer pool of 6 entries holds 11 entries while attending, over its peak cap of 10 (5 per head)"},
		{"model cap within", model.CheckCap(tables(8, 6), false, 5), ""},
		{"model cap over", model.CheckCap(tables(8, 6), true, 5), "the model pool of 10 entries holds 16 entries while attending, over its peak cap of 14"},
	} {
		if c.want == "" && c.err != nil || c.want != "" && (c.err == nil || !strings.Contains(c.err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, c.err, c.want)
		}
	}
}

// TestDivisionOnce has every layer of a sequence ask for its share at once: the
// policy divides the pool exactly once, and every layer gets its entry.
func TestDivisionOnce(t *testing.T) {
	cfg := policies.Config{Layers: 8, Heads: 2, Budget: 5}
	var d Division
	var calls atomic.Int32
	budgets := func(c policies.Config, entries []int) error {
		calls.Add(1)
		if c.Layer != -1 || len(entries) != 8 {
			return errors.New("called for one layer")
		}
		for l := range entries {
			entries[l] = 2 * l // 56 of 80
		}
		return nil
	}
	got := make([]int, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for l := range 8 {
		wg.Go(func() {
			c := cfg
			c.Layer = l
			got[l], errs[l] = d.Share(c, budgets)
		})
	}
	wg.Wait()
	for l := range 8 {
		if errs[l] != nil || got[l] != 2*l {
			t.Errorf("layer %d: share %d, %v; want %d", l, got[l], errs[l], 2*l)
		}
	}
	if calls.Load() != 1 {
		t.Errorf("LayerBudgets called %d times, want once", calls.Load())
	}
	c := cfg
	c.Budget = 4
	if _, err := d.Share(c, budgets); err == nil || !strings.Contains(err.Error(), "layer 0 has nominal budget 4, but the pool was divided at 5") {
		t.Errorf("another budget: %v", err)
	}
}

func TestDivisionRefused(t *testing.T) {
	cfg := policies.Config{Layer: 1, Layers: 3, Heads: 2, Budget: 5} // a pool of 30
	for _, c := range []struct {
		name    string
		entries []int
		err     error
		want    string
	}{
		{"negative", []int{10, -1, 0}, nil, "layer budgets: layer 1 gets -1 entries"},
		{"overdrawn", []int{10, 10, 11}, nil, "layer budgets: layer 2 gets 11 entries: the division must be non-negative and sum to at most the model pool of 30 (3 layers × 2 heads × budget 5)"},
		{"policy error", nil, errors.New("no"), "layer budgets: no"},
		{"exactly the pool", []int{0, 30, 0}, nil, ""},
	} {
		var d Division
		n, err := d.Share(cfg, func(_ policies.Config, entries []int) error {
			copy(entries, c.entries)
			return c.err
		})
		if c.want == "" && (err != nil || n != 30) || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %d, %v; want %q", c.name, n, err, c.want)
		}
	}
}
