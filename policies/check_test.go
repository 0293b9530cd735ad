package policies

import "testing"

// TestSlotWidth checks W = T unbounded, else min(T, max(P, B+Slack+1)), by hand.
func TestSlotWidth(t *testing.T) {
	cfg := Config{PromptLen: 100, MaxLen: 140, Budget: 10}
	for _, c := range []struct {
		layout Layout
		want   int
	}{
		{Layout{}, 100},                   // the prompt is the widest
		{Layout{Slack: 120}, 131},         // budget + slack + 1
		{Layout{Slack: 1 << 62}, 140},     // capped at T without overflow
		{Layout{Unbounded: true}, 140},    // T
		{Layout{Compensation: true}, 100}, // the compensation slot lies outside the table
	} {
		if got := SlotWidth(cfg, c.layout); got != c.want {
			t.Errorf("SlotWidth(%+v) = %d, want %d", c.layout, got, c.want)
		}
	}
}
