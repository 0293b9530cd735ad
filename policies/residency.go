package policies

// Residency mirrors the host's slot tables inside a policy: which position each slot of
// each head holds. Policies that reason about recency or need the set of resident slots
// embed one; it follows the host's rules (prompt token i in slot i, decode tokens in
// Attention.Slot) and learns about victims through Free.
type Residency struct {
	Pos   [][]int32 // Pos[h][slot] is the slot's position, -1 when free
	Count []int     // resident tokens per head
}

// Reset allocates (once) and fills the tables for a new sequence: slots 0..P-1 hold the
// prompt. Slot ids never reach MaxLen, so that bounds the tables.
func (r *Residency) Reset(cfg Config) {
	if len(r.Pos) != cfg.Heads || (cfg.Heads > 0 && cap(r.Pos[0]) < cfg.MaxLen) {
		r.Pos = make([][]int32, cfg.Heads)
		for h := range r.Pos {
			r.Pos[h] = make([]int32, cfg.MaxLen)
		}
		r.Count = make([]int, cfg.Heads)
	}
	for h := range r.Pos {
		r.Pos[h] = r.Pos[h][:cfg.MaxLen]
		for s := range r.Pos[h] {
			r.Pos[h][s] = -1
			if s < cfg.PromptLen {
				r.Pos[h][s] = int32(s)
			}
		}
		r.Count[h] = cfg.PromptLen
	}
}

// Enter records a decode step's new tokens.
func (r *Residency) Enter(a *Attention) {
	if a.Phase != Decode {
		return
	}
	for h, s := range a.Slot {
		r.Pos[h][s] = int32(a.Pos)
		r.Count[h]++
	}
}

// Free records that head h's slot was evicted.
func (r *Residency) Free(h int, slot int32) {
	r.Pos[h][slot] = -1
	r.Count[h]--
}
