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
// keeps for this layout: T when unbounded, else min(T, max(P, C+S+1)). C is the most
// entries the head's pool may assign, slack not counted: Budget for PoolHead,
// Heads×Budget for PoolLayer, Layers×Heads×Budget for PoolModel (a layer's share may
// be the whole model's pool, and a pooled head may hold its whole pool). S is the
// slack: Slack for PoolHead, Heads×Slack for pools. At most that many tokens are
// ever resident in a head, and the host fills the lowest free slot, so slot ids are
// below it. It depends on the config and layout only; hosts and policies use this
// one formula.
func SlotWidth(cfg Config, layout Layout) int {
	T := cfg.MaxLen
	if layout.Unbounded {
		return T
	}
	// Products saturate at T, so that nothing overflows.
	c, slack := min(cfg.Budget, T), min(layout.Slack, T)
	switch layout.Pool {
	case PoolLayer:
		c, slack = mulCap(cfg.Heads, c, T), mulCap(cfg.Heads, slack, T)
	case PoolModel:
		c, slack = mulCap(max(cfg.Layers, 1), mulCap(cfg.Heads, c, T), T), mulCap(cfg.Heads, slack, T)
	}
	return min(T, max(cfg.PromptLen, c+slack+1))
}

// mulCap is min(a×b, limit) for non-negative a, b, without overflow.
func mulCap(a, b, limit int) int {
	if a != 0 && b > limit/a {
		return limit
	}
	return min(a*b, limit)
}

// CheckAttention rejects calls that break the protocol before they can index out of
// range: next is the position the next row must have. It checks the inputs the
// layout asks for (vectors, compact rows) and ignores the others.
func CheckAttention(cfg Config, layout Layout, res *Residency, next int, a *Attention) error {
	switch {
	case a.Heads != cfg.Heads:
		return fmt.Errorf("attention has %d heads, config has %d", a.Heads, cfg.Heads)
	case a.Pos != next || a.Rows < 1:
		return fmt.Errorf("attention rows %d..%d, want rows from position %d", a.Pos, a.Pos+a.Rows-1, next)
	case len(a.Probs) < a.Heads*a.Rows*a.Stride:
		return fmt.Errorf("attention has %d probabilities, want %d heads × %d rows × stride %d",
			len(a.Probs), a.Heads, a.Rows, a.Stride)
	}
	if err := checkVectors(cfg, layout, a); err != nil {
		return err
	}
	width := SlotWidth(cfg, layout)
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
			if s < 0 || int(s) >= bound || res.Heads[h].Pos(s) >= 0 {
				return fmt.Errorf("head %d: position %d entered slot %d, which is not a free slot below %d", h, a.Pos, s, bound)
			}
		}
		if layout.Compact {
			return checkCompact(cfg, res, a)
		}
	default:
		return fmt.Errorf("unknown phase %v", a.Phase)
	}
	return nil
}

// checkVectors checks the vectors the layout asks for.
func checkVectors(cfg Config, layout Layout, a *Attention) error {
	if !layout.Keys && !layout.Values && !layout.Queries {
		return nil
	}
	for _, v := range []struct {
		name  string
		asked bool
		x     []float32
	}{{"keys", layout.Keys, a.Keys}, {"values", layout.Values, a.Values}, {"queries", layout.Queries, a.Queries}} {
		if v.asked && (a.HeadDim != cfg.HeadDim || len(v.x) < a.Heads*a.Rows*a.HeadDim) {
			return fmt.Errorf("attention has %d %s of length %d, want %d heads × %d rows of length %d",
				len(v.x), v.name, a.HeadDim, a.Heads, a.Rows, cfg.HeadDim)
		}
	}
	return nil
}

// checkCompact checks a compact decode row: each head lists every resident slot (the
// new token's included) once. res has not yet seen the new token.
func checkCompact(cfg Config, res *Residency, a *Attention) error {
	if len(a.Len) < cfg.Heads || len(a.Live) < cfg.Heads*a.Stride {
		return fmt.Errorf("compact row has %d lengths and %d slots, want %d heads of stride %d",
			len(a.Len), len(a.Live), cfg.Heads, a.Stride)
	}
	for h, n := range a.Len[:cfg.Heads] {
		t := &res.Heads[h]
		if int(n) != t.Resident()+1 || int(n) > a.Stride {
			return fmt.Errorf("head %d: compact row of %d slots at position %d, want the %d resident (stride %d)",
				h, n, a.Pos, t.Resident()+1, a.Stride)
		}
		// With the new token in, the row must name every resident slot once; the
		// token leaves again, which restores the table exactly (it is the last one
		// entered).
		t.Put(a.Slot[h], int32(a.Pos))
		err := t.CheckResident(a.Live[h*a.Stride : h*a.Stride+int(n)])
		t.Remove(a.Slot[h])
		if err != nil {
			return fmt.Errorf("head %d: compact row at position %d: %w", h, a.Pos, err)
		}
	}
	return nil
}

// CheckEviction rejects requests the policy cannot answer; next is the position of the
// next query row.
func CheckEviction(cfg Config, layout Layout, res *Residency, next int, e *Eviction) error {
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
	total := 0
	for h, n := range e.Need[:heads] {
		resident := res.Heads[h].Resident()
		total += resident
		if n < 0 || int(n) > resident || int(n) > e.Stride || layout.Pool != PoolHead && n != 0 {
			return fmt.Errorf("head %d: need %d victims with %d tokens resident, stride %d and a %v pool",
				h, n, resident, e.Stride, layout.Pool)
		}
	}
	if e.PoolNeed < 0 || e.PoolNeed > total || layout.Pool == PoolHead && e.PoolNeed != 0 {
		return fmt.Errorf("pool need %d victims with %d tokens resident in the layer and a %v pool", e.PoolNeed, total, layout.Pool)
	}
	return nil
}
