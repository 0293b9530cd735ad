package policies

import (
	"fmt"
	"math/bits"
)

// SlotTable is one head's slot table: which position each slot holds. The host keeps
// one per (sequence, layer, head) and policies that need the resident set keep a
// mirror (Residency); both are this type, so that they follow the same rules.
//
// Besides slot → position it keeps the resident slots as a dense list and the free
// slots as a bitset, so that a decode step costs O(resident) rather than O(width) at
// the small budgets researchers sweep.
type SlotTable struct {
	pos     []int32  // slot → position, -1 when free
	live    []int32  // resident slots, in no particular order
	livePos []int32  // livePos[i] is the position slot live[i] holds
	where   []int32  // slot → index in live, -1 when free
	free    []uint64 // bit s set when slot s is free
}

// Reset makes the table width slots wide, holding positions 0..prompt-1 in slots
// 0..prompt-1 and nothing else. It reuses the table's memory.
func (t *SlotTable) Reset(width, prompt int) {
	t.pos, t.where = grow(t.pos, width), grow(t.where, width)
	t.live = grow(t.live, width)[:0]
	t.livePos = grow(t.livePos, width)[:0]
	t.free = grow(t.free, (width+63)/64)
	clear(t.free)
	for s := range t.pos {
		if s < prompt {
			t.pos[s], t.where[s] = int32(s), int32(s)
			t.live = append(t.live, int32(s))
			t.livePos = append(t.livePos, int32(s))
		} else {
			t.pos[s], t.where[s] = -1, -1
			t.free[s/64] |= 1 << (s % 64)
		}
	}
}

// grow is internal/buf.Grow, repeated because package policies imports nothing of
// kvsim's: plugins and guests build against it alone.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// Width is the number of slots.
func (t *SlotTable) Width() int { return len(t.pos) }

// Resident is the number of tokens held.
func (t *SlotTable) Resident() int { return len(t.live) }

// Live lists the resident slots, in no particular order (deterministic: it depends
// only on the calls made). The table owns the slice.
func (t *SlotTable) Live() []int32 { return t.live }

// LivePositions lists the positions the slots of Live hold, in the same order: a
// scan of it reads memory in order where looking each slot up would not. The table
// owns the slice.
func (t *SlotTable) LivePositions() []int32 { return t.livePos }

// Pos is the position slot s holds, or -1 when it is free. s must be below Width.
func (t *SlotTable) Pos(s int32) int32 { return t.pos[s] }

// Positions is the whole map slot → position (-1 when free), for scans in slot
// order. The table owns the slice; do not modify it.
func (t *SlotTable) Positions() []int32 { return t.pos }

// Enter puts position p into the lowest free slot and returns it, or -1 when full.
func (t *SlotTable) Enter(p int32) int32 {
	for i, w := range t.free {
		if w != 0 {
			s := int32(i*64 + bits.TrailingZeros64(w))
			t.Put(s, p)
			return s
		}
	}
	return -1
}

// NthResident returns the resident slot of rank n (from 0) in slot order, or -1
// when fewer than n+1 slots are resident. It counts the free bitset a word at a
// time, so that it costs O(width/64) rather than a scan of the table.
func (t *SlotTable) NthResident(n int) int32 {
	width := len(t.pos)
	for i, free := range t.free {
		held := ^free
		if rest := width - i*64; rest < 64 {
			held &= 1<<rest - 1
		}
		c := bits.OnesCount64(held)
		if n >= c {
			n -= c
			continue
		}
		for ; n > 0; n-- {
			held &= held - 1 // drop the lowest resident slot
		}
		return int32(i*64 + bits.TrailingZeros64(held))
	}
	return -1
}

// Put puts position p into slot s, which must be free: a mirror follows the slot
// the host chose (Attention.Slot).
func (t *SlotTable) Put(s, p int32) {
	t.free[s/64] &^= 1 << (s % 64)
	t.pos[s], t.where[s] = p, int32(len(t.live))
	t.live = append(t.live, s)
	t.livePos = append(t.livePos, p)
}

// Remove frees slot s, which must be resident, and returns the position it held.
func (t *SlotTable) Remove(s int32) int32 {
	p := t.pos[s]
	i := t.where[s]
	n := len(t.live) - 1
	last := t.live[n]
	t.live[i], t.where[last] = last, i
	t.livePos[i] = t.livePos[n]
	t.live, t.livePos = t.live[:n], t.livePos[:n]
	t.pos[s], t.where[s] = -1, -1
	t.free[s/64] |= 1 << (s % 64)
	return p
}

// CheckResident checks a list of slots (a victim list, a compact row) against the
// table and changes nothing: every slot resident, named once.
func (t *SlotTable) CheckResident(slots []int32) error {
	// A checked slot's position p is marked as -2-p (below -1, the free mark), so
	// that a second naming shows; the marks are undone before returning.
	marked := 0
	defer func() {
		for _, s := range slots[:marked] {
			t.pos[s] = -2 - t.pos[s]
		}
	}()
	for _, s := range slots {
		if s < 0 || int(s) >= t.Width() {
			return fmt.Errorf("slot %d out of range [0, %d)", s, t.Width())
		}
		switch p := t.pos[s]; {
		case p < -1:
			return fmt.Errorf("slot %d named twice", s)
		case p == -1:
			return fmt.Errorf("slot %d is empty", s)
		}
		t.pos[s] = -2 - t.pos[s]
		marked++
	}
	return nil
}

// Residency mirrors the host's slot tables inside a policy, one SlotTable per head.
// Policies that reason about recency or need the set of resident slots embed one; it
// follows the host's rules (prompt token i in slot i, decode tokens in
// Attention.Slot) and learns about victims through Free.
type Residency struct {
	Heads []SlotTable
}

// Reset fills the tables for a new sequence: slots 0..P-1 hold the prompt. Slot ids
// never reach MaxLen, so that bounds the tables whatever the layout.
func (r *Residency) Reset(cfg Config) {
	r.Heads = grow(r.Heads, cfg.Heads)
	for h := range r.Heads {
		r.Heads[h].Reset(cfg.MaxLen, cfg.PromptLen)
	}
}

// Enter records a decode step's new tokens.
func (r *Residency) Enter(a *Attention) {
	if a.Phase != Decode {
		return
	}
	for h, s := range a.Slot[:len(r.Heads)] {
		r.Heads[h].Put(s, int32(a.Pos))
	}
}

// Free records that head h's slot was evicted.
func (r *Residency) Free(h int, slot int32) {
	r.Heads[h].Remove(slot)
}
