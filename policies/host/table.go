package host

import (
	"math/bits"

	"github.com/kvsim/kvsim/internal/buf"
)

// Table is one head's slot table: which position each slot holds. Besides slot →
// position it keeps the resident slots as a dense list and the free slots as a
// bitset, so that a decode step costs O(resident) rather than O(width) at the small
// budgets researchers sweep.
type Table struct {
	pos   []int32  // slot → position, -1 when free
	live  []int32  // resident slots, in no particular order
	where []int32  // slot → index in live, -1 when free
	free  []uint64 // bit s set when slot s is free
}

// Reset makes the table width slots wide, holding positions 0..prompt-1 in slots
// 0..prompt-1 and nothing else. It reuses the table's memory.
func (t *Table) Reset(width, prompt int) {
	t.pos, t.where = buf.Grow(t.pos, width), buf.Grow(t.where, width)
	t.live = buf.Grow(t.live, width)[:0]
	t.free = buf.Grow(t.free, (width+63)/64)
	clear(t.free)
	for s := range t.pos {
		if s < prompt {
			t.pos[s], t.where[s] = int32(s), int32(s)
			t.live = append(t.live, int32(s))
		} else {
			t.pos[s], t.where[s] = -1, -1
			t.free[s/64] |= 1 << (s % 64)
		}
	}
}

// Width is the number of slots.
func (t *Table) Width() int { return len(t.pos) }

// Resident is the number of tokens held.
func (t *Table) Resident() int { return len(t.live) }

// Live lists the resident slots, in no particular order. The table owns the slice.
func (t *Table) Live() []int32 { return t.live }

// Pos is the position slot s holds, or -1 when it is free. s must be below Width.
func (t *Table) Pos(s int32) int32 { return t.pos[s] }

// Enter puts position p into the lowest free slot and returns it, or -1 when full.
func (t *Table) Enter(p int32) int32 {
	for i, w := range t.free {
		if w != 0 {
			s := int32(i*64 + bits.TrailingZeros64(w))
			t.free[i] &^= 1 << (s % 64)
			t.pos[s], t.where[s] = p, int32(len(t.live))
			t.live = append(t.live, s)
			return s
		}
	}
	return -1
}

// Remove frees slot s, which must be resident, and returns the position it held.
func (t *Table) Remove(s int32) int32 {
	p := t.pos[s]
	i := t.where[s]
	last := t.live[len(t.live)-1]
	t.live[i], t.where[last] = last, i
	t.live = t.live[:len(t.live)-1]
	t.pos[s], t.where[s] = -1, -1
	t.free[s/64] |= 1 << (s % 64)
	return p
}
