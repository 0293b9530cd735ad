package policies

import (
	"strings"
	"testing"
)

// TestSlotWidth checks W = T unbounded, else min(T, max(P, C+S+1)) with C the pool
// cap (B, H×B, L×H×B) and S the slack (Slack, H×Slack for pools), by hand.
func TestSlotWidth(t *testing.T) {
	cfg := Config{Layers: 4, Heads: 3, PromptLen: 100, MaxLen: 140, Budget: 10}
	for _, c := range []struct {
		layout Layout
		want   int
	}{
		{Layout{}, 100},                                 // the prompt is the widest
		{Layout{Slack: 120}, 131},                       // budget + slack + 1
		{Layout{Slack: 1 << 62}, 140},                   // capped at T without overflow
		{Layout{Unbounded: true}, 140},                  // T
		{Layout{Compensation: true}, 100},               // the compensation slot lies outside the table
		{Layout{Pool: PoolLayer}, 100},                  // 3×10 + 1 = 31: the prompt is wider
		{Layout{Pool: PoolLayer, Slack: 30}, 121},       // 3×10 + 3×30 + 1
		{Layout{Pool: PoolLayer, Slack: 1 << 62}, 140},  // capped at T without overflow
		{Layout{Pool: PoolModel}, 121},                  // 4×3×10 + 1: a layer may get the whole pool
		{Layout{Pool: PoolModel, Slack: 2}, 127},        // + 3×2
		{Layout{Pool: PoolModel, Unbounded: true}, 140}, // T
	} {
		if got := SlotWidth(cfg, c.layout); got != c.want {
			t.Errorf("SlotWidth(%+v) = %d, want %d", c.layout, got, c.want)
		}
	}
	big := Config{Layers: 1 << 20, Heads: 1 << 20, PromptLen: 10, MaxLen: 50, Budget: 1 << 24}
	if got := SlotWidth(big, Layout{Pool: PoolModel, Slack: 1 << 40}); got != 50 {
		t.Errorf("huge model pool: SlotWidth = %d, want T = 50", got)
	}
}

// TestCheckContract2 checks what CheckAttention and CheckEviction say about the
// inputs and pools a layout asks for.
func TestCheckContract2(t *testing.T) {
	cfg := Config{Layers: 2, Heads: 2, HeadDim: 2, PromptLen: 3, MaxLen: 6, Budget: 2}
	var res Residency
	res.Reset(cfg)
	res.Free(0, 1) // head 0 holds slots 0 and 2, head 1 slots 0..2
	decode := func() *Attention {
		return &Attention{Phase: Decode, Pos: 3, Rows: 1, Heads: 2, Stride: 4, HeadDim: 2,
			Probs: make([]float32, 8), Slot: []int32{1, 3}, Comp: make([]float32, 2),
			Keys: make([]float32, 4), Live: []int32{0, 2, 1, 0, 0, 1, 2, 3}, Len: []int32{3, 4}}
	}
	compact := Layout{Keys: true, Compact: true, Slack: 1}
	for _, c := range []struct {
		name   string
		layout Layout
		edit   func(a *Attention)
		want   string
	}{
		{"ok", compact, func(*Attention) {}, ""},
		{"wide rows need no list", Layout{Slack: 1}, func(a *Attention) { a.Live, a.Len = nil, nil }, ""},
		{"no keys", compact, func(a *Attention) { a.Keys = nil }, "attention has 0 keys of length 2, want 2 heads × 1 rows of length 2"},
		{"short list", compact, func(a *Attention) { a.Len[1] = 3 }, "head 1: compact row of 3 slots at position 3, want the 4 resident"},
		{"a free slot listed", compact, func(a *Attention) { a.Live[1] = 3 }, "head 0: compact row at position 3: slot 3 is empty"},
		{"a slot listed twice", compact, func(a *Attention) { a.Live[2] = 0 }, "head 0: compact row at position 3: slot 0 named twice"},
		{"beyond the table", compact, func(a *Attention) { a.Live[7] = 6 }, "head 1: compact row at position 3: slot 6 out of range [0, 6)"},
	} {
		a := decode()
		c.edit(a)
		err := CheckAttention(cfg, c.layout, &res, 3, a)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name     string
		layout   Layout
		need     []int32
		poolNeed int
		want     string
	}{
		{"head", Layout{}, []int32{1, 0}, 0, ""},
		{"layer pool", Layout{Pool: PoolLayer}, []int32{0, 0}, 5, ""},
		{"pool need over the layer", Layout{Pool: PoolLayer}, []int32{0, 0}, 6, "pool need 6 victims with 5 tokens resident in the layer and a layer pool"},
		{"need with a pool", Layout{Pool: PoolModel}, []int32{1, 0}, 1, "head 0: need 1 victims with 2 tokens resident, stride 4 and a model pool"},
		{"pool need per head", Layout{}, []int32{1, 0}, 1, "pool need 1 victims with 5 tokens resident in the layer and a head pool"},
	} {
		e := &Eviction{Phase: Decode, Pos: 3, Heads: 2, Need: c.need, PoolNeed: c.poolNeed, Stride: 4, Count: make([]int32, 2), Victims: make([]int32, 8)}
		err := CheckEviction(cfg, c.layout, &res, 4, e)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}
