package sim

import "math/bits"

// slotTable is one head's slot table. Besides slot → position it keeps the resident
// slots as a dense list and the free slots as a bitset, so that a decode step costs
// O(resident) rather than O(width) at the small budgets researchers sweep.
type slotTable struct {
	pos   []int32  // slot → position, -1 when free
	live  []int32  // resident slots, in no particular order
	where []int32  // slot → index in live, -1 when free
	free  []uint64 // bit s set when slot s is free
}

// reset makes a table of width slots holding the prompt in slots 0..prompt-1.
func (t *slotTable) reset(width, prompt int) {
	t.pos, t.where = grow(t.pos, width), grow(t.where, width)
	t.live = grow(t.live, width)[:0]
	t.free = grow(t.free, (width+63)/64)
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

// enter puts position p into the lowest free slot and returns it, or -1 when full.
func (t *slotTable) enter(p int32) int32 {
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

// remove frees slot s, which must be resident.
func (t *slotTable) remove(s int32) {
	i := t.where[s]
	last := t.live[len(t.live)-1]
	t.live[i], t.where[last] = last, i
	t.live = t.live[:len(t.live)-1]
	t.pos[s], t.where[s] = -1, -1
	t.free[s/64] |= 1 << (s % 64)
}
