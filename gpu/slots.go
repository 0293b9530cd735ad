package gpu

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
)

// Slots is the host's record of one layer's slot tables (policies.SlotTable, one per head,
// Capacity slots each): which position each slot holds. It decides where new tokens
// go (the lowest free slot of each head) and checks evictions, and the backend's KV
// follows it.
type Slots struct {
	capacity int
	tables   []policies.SlotTable
	width    int // 1 + the highest slot ever filled, over all heads
}

// NewSlots makes the tables of one layer, every slot free.
func NewSlots(heads, capacity int) *Slots {
	t := &Slots{capacity: capacity, tables: make([]policies.SlotTable, heads)}
	t.Reset()
	return t
}

// Reset frees every slot.
func (t *Slots) Reset() {
	for h := range t.tables {
		t.tables[h].Reset(t.capacity, 0)
	}
	t.width = 0
}

// Heads is the number of heads.
func (t *Slots) Heads() int { return len(t.tables) }

// Capacity is the number of slots per head.
func (t *Slots) Capacity() int { return t.capacity }

// Width is one more than the highest slot that has ever held a token in any head:
// slots from Width on are free, so attention can stop there.
func (t *Slots) Width() int { return t.width }

// Tables are the heads' slot tables, for reading: the host's needs and bounds
// (package policies/host) are computed from them. Change them only through Enter and
// Free.
func (t *Slots) Tables() []policies.SlotTable { return t.tables }

// Resident is the number of tokens head h holds.
func (t *Slots) Resident(h int) int { return t.tables[h].Resident() }

// Pos is the position held by slot s of head h, or -1 when the slot is free.
func (t *Slots) Pos(h int, s int32) int32 { return t.tables[h].Pos(s) }

// Enter puts a token at position p into the lowest free slot of every head and
// writes those slots to slots[h]. If a head is full it changes nothing and returns
// an error.
func (t *Slots) Enter(p int32, slots []int32) error {
	if len(slots) != len(t.tables) {
		return fmt.Errorf("slots: Enter with %d slot outputs for %d heads", len(slots), len(t.tables))
	}
	for h := range t.tables {
		if t.tables[h].Resident() == t.capacity {
			return fmt.Errorf("slots: head %d is full (%d slots) at position %d", h, t.capacity, p)
		}
	}
	for h := range t.tables {
		s := t.tables[h].Enter(p)
		t.width = max(t.width, int(s)+1)
		slots[h] = s
	}
	return nil
}

// Free frees slot s of head h and returns the position it held. Freeing a slot
// that is out of range or already free is an error.
func (t *Slots) Free(h int, s int32) (int32, error) {
	if s < 0 || int(s) >= t.capacity {
		return -1, fmt.Errorf("head %d: slot %d out of range [0, %d)", h, s, t.capacity)
	}
	if t.tables[h].Pos(s) < 0 {
		return -1, fmt.Errorf("head %d: slot %d is free", h, s)
	}
	return t.tables[h].Remove(s), nil
}
