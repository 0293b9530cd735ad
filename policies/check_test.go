package policies

import "testing"

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
