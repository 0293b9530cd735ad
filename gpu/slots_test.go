package gpu

import (
	"slices"
	"strings"
	"testing"
)

func TestSlots(t *testing.T) {
	tab := NewSlots(2, 70) // more than one word of free bits
	slots := make([]int32, 2)
	for p := range int32(66) {
		if err := tab.Enter(p, slots); err != nil {
			t.Fatal(err)
		}
		if slots[0] != p || slots[1] != p {
			t.Fatalf("position %d entered slots %v, want %d in both heads", p, slots, p)
		}
	}
	if tab.Width() != 66 || tab.Resident(0) != 66 {
		t.Fatalf("width %d, resident %d; want 66, 66", tab.Width(), tab.Resident(0))
	}
	for _, s := range []int32{64, 3, 40} {
		if p, err := tab.Free(0, s); err != nil || p != s {
			t.Fatalf("Free(0, %d) = %d, %v", s, p, err)
		}
	}
	// Head 0 refills its lowest free slots in order; head 1 continues at the end.
	for i, want := range [][]int32{{3, 66}, {40, 67}, {64, 68}, {66, 69}} {
		if err := tab.Enter(int32(100+i), slots); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(slots, want) {
			t.Errorf("entry %d went to slots %v, want %v", i, slots, want)
		}
	}
	if tab.Pos(0, 40) != 101 || tab.Pos(1, 40) != 40 {
		t.Errorf("slot 40 holds %d and %d, want 101 and 40", tab.Pos(0, 40), tab.Pos(1, 40))
	}
	if tab.Width() != 70 {
		t.Errorf("width %d, want 70", tab.Width())
	}
	// Head 1 is full now: Enter must fail and change nothing, even in head 0.
	before := tab.Resident(0)
	if err := tab.Enter(200, slots); err == nil || !strings.Contains(err.Error(), "head 1 is full") {
		t.Errorf("Enter into a full head: %v", err)
	}
	if tab.Resident(0) != before {
		t.Errorf("a failed Enter changed head 0 from %d to %d tokens", before, tab.Resident(0))
	}
	for _, c := range []struct {
		slot int32
		want string
	}{{70, "out of range"}, {-1, "out of range"}} {
		if _, err := tab.Free(0, c.slot); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Free(0, %d): %v, want %q", c.slot, err, c.want)
		}
	}
	tab.Free(0, 5)
	if _, err := tab.Free(0, 5); err == nil || !strings.Contains(err.Error(), "is free") {
		t.Errorf("freeing a free slot: %v", err)
	}
	tab.Reset()
	if tab.Resident(0) != 0 || tab.Width() != 0 || tab.Pos(1, 0) != -1 {
		t.Error("Reset left tokens behind")
	}
}
