package gpu

import (
	"fmt"
	"math/bits"
)

// Slots is the host's record of one layer's slot tables: for each head, which
// position each of Capacity slots holds. It decides where new tokens go (the lowest
// free slot of each head) and checks evictions, and the backend's KV follows it.
type Slots struct {
	heads, capacity int
	words           int      // uint64 words per head in free
	pos             []int32  // [heads][capacity]: position held, -1 when free
	free            []uint64 // [heads][words]: bit s set when slot s is free
	resident        []int    // tokens held per head
	width           int      // 1 + the highest slot ever filled, over all heads
}

// NewSlots makes the tables of one layer, every slot free.
func NewSlots(heads, capacity int) *Slots {
	t := &Slots{heads: heads, capacity: capacity, words: (capacity + 63) / 64}
	t.pos = make([]int32, heads*capacity)
	t.free = make([]uint64, heads*t.words)
	t.resident = make([]int, heads)
	t.Reset()
	return t
}

// Reset frees every slot.
func (t *Slots) Reset() {
	for i := range t.pos {
		t.pos[i] = -1
	}
	for h := range t.heads {
		words := t.free[h*t.words : (h+1)*t.words]
		for i := range words {
			words[i] = ^uint64(0)
		}
		if r := t.capacity % 64; r != 0 {
			words[len(words)-1] = 1<<r - 1
		}
		t.resident[h] = 0
	}
	t.width = 0
}

// Heads is the number of heads.
func (t *Slots) Heads() int { return t.heads }

// Capacity is the number of slots per head.
func (t *Slots) Capacity() int { return t.capacity }

// Width is one more than the highest slot that has ever held a token in any head:
// slots from Width on are free, so attention can stop there.
func (t *Slots) Width() int { return t.width }

// Resident is the number of tokens head h holds.
func (t *Slots) Resident(h int) int { return t.resident[h] }

// Pos is the position held by slot s of head h, or -1 when the slot is free.
func (t *Slots) Pos(h int, s int32) int32 { return t.pos[h*t.capacity+int(s)] }

// Enter puts a token at position p into the lowest free slot of every head and
// writes those slots to slots[h]. If a head is full it changes nothing and returns
// an error.
func (t *Slots) Enter(p int32, slots []int32) error {
	if len(slots) != t.heads {
		return fmt.Errorf("slots: Enter with %d slot outputs for %d heads", len(slots), t.heads)
	}
	for h := range t.heads {
		if t.resident[h] == t.capacity {
			return fmt.Errorf("slots: head %d is full (%d slots) at position %d", h, t.capacity, p)
		}
	}
	for h := range t.heads {
		words := t.free[h*t.words : (h+1)*t.words]
		for i, w := range words {
			if w != 0 {
				s := i*64 + bits.TrailingZeros64(w)
				words[i] &^= 1 << (s % 64)
				t.pos[h*t.capacity+s] = p
				t.resident[h]++
				t.width = max(t.width, s+1)
				slots[h] = int32(s)
				break
			}
		}
	}
	return nil
}

// Free frees slot s of head h and returns the position it held. Freeing a slot
// that is out of range or already free is an error.
func (t *Slots) Free(h int, s int32) (int32, error) {
	if s < 0 || int(s) >= t.capacity {
		return -1, fmt.Errorf("head %d: slot %d out of range [0, %d)", h, s, t.capacity)
	}
	i := h*t.capacity + int(s)
	p := t.pos[i]
	if p < 0 {
		return -1, fmt.Errorf("head %d: slot %d is free", h, s)
	}
	t.pos[i] = -1
	t.free[h*t.words+int(s)/64] |= 1 << (s % 64)
	t.resident[h]--
	return p, nil
}
