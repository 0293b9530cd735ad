package policies

import "fmt"

// CheckConfig rejects configs no policy can work with.
func CheckConfig(cfg Config) error {
	if cfg.Heads < 1 || cfg.PromptLen < 1 || cfg.MaxLen < cfg.PromptLen || cfg.Budget < 1 {
		return fmt.Errorf("bad config: %d heads, prompt %d, max length %d, budget %d",
			cfg.Heads, cfg.PromptLen, cfg.MaxLen, cfg.Budget)
	}
	return nil
}

// SlotWidth is W of the ABI (abi/ABI.md), the width of every slot table the host
// keeps for this layout: T when unbounded, else min(T, max(P, Budget+Slack+1)), since
// at most that many tokens are ever resident and the host fills the lowest free slot.
// Slot ids are below it. Hosts and policies use this one formula.
func SlotWidth(cfg Config, layout Layout) int {
	if layout.Unbounded {
		return cfg.MaxLen
	}
	return min(cfg.MaxLen, max(cfg.PromptLen, cfg.Budget+min(layout.Slack, cfg.MaxLen)+1))
}

// CheckAttention rejects calls that break the protocol before they can index out of
// range: next is the position the next row must have, width the slot bound.
func CheckAttention(cfg Config, res *Residency, width, next int, a *Attention) error {
	switch {
	case a.Heads != cfg.Heads:
		return fmt.Errorf("attention has %d heads, config has %d", a.Heads, cfg.Heads)
	case a.Pos != next || a.Rows < 1:
		return fmt.Errorf("attention rows %d..%d, want rows from position %d", a.Pos, a.Pos+a.Rows-1, next)
	case len(a.Probs) < a.Heads*a.Rows*a.Stride:
		return fmt.Errorf("attention has %d probabilities, want %d heads × %d rows × stride %d",
			len(a.Probs), a.Heads, a.Rows, a.Stride)
	}
	switch a.Phase {
	case Prefill:
		if end := a.Pos + a.Rows; end > cfg.PromptLen || a.Stride < end {
			return fmt.Errorf("prefill rows %d..%d do not fit prompt length %d and stride %d",
				a.Pos, end-1, cfg.PromptLen, a.Stride)
		}
	case Decode:
		if a.Pos < cfg.PromptLen || a.Pos >= cfg.MaxLen || a.Rows != 1 || len(a.Slot) < cfg.Heads {
			return fmt.Errorf("decode at position %d with %d rows and %d slots: want one row after the prompt (%d) and before the end (%d), one slot per head",
				a.Pos, a.Rows, len(a.Slot), cfg.PromptLen, cfg.MaxLen)
		}
		bound := min(width, a.Stride)
		for h, s := range a.Slot[:cfg.Heads] {
			if s < 0 || int(s) >= bound || res.Pos[h][s] >= 0 {
				return fmt.Errorf("head %d: position %d entered slot %d, which is not a free slot below %d", h, a.Pos, s, bound)
			}
		}
	default:
		return fmt.Errorf("unknown phase %v", a.Phase)
	}
	return nil
}

// CheckEviction rejects requests the policy cannot answer; next is the position of the
// next query row.
func CheckEviction(cfg Config, res *Residency, next int, e *Eviction) error {
	heads := cfg.Heads
	switch {
	case e.Heads != heads:
		return fmt.Errorf("eviction has %d heads, config has %d", e.Heads, heads)
	case len(e.Need) < heads || len(e.Count) < heads || len(e.Victims) < heads*e.Stride ||
		(e.Weights != nil && len(e.Weights) < heads*e.Stride):
		return fmt.Errorf("eviction lists are too short for %d heads of stride %d", heads, e.Stride)
	case e.Phase == Prefill && next != cfg.PromptLen:
		return fmt.Errorf("compression after %d of %d prompt rows", next, cfg.PromptLen)
	}
	for h, n := range e.Need[:heads] {
		if n < 0 || int(n) > res.Count[h] || int(n) > e.Stride {
			return fmt.Errorf("head %d: need %d victims with %d tokens resident and stride %d", h, n, res.Count[h], e.Stride)
		}
	}
	return nil
}
