package policies

import (
	"strings"
	"testing"
)

func TestSlotTable(t *testing.T) {
	var tb SlotTable
	tb.Reset(5, 3)
	if tb.Resident() != 3 || tb.Width() != 5 || tb.Pos(2) != 2 || tb.Pos(3) != -1 {
		t.Fatalf("after reset: resident %d, width %d", tb.Resident(), tb.Width())
	}
	if p := tb.Remove(1); p != 1 {
		t.Errorf("Remove(1) = %d, want position 1", p)
	}
	// The lowest free slot first: 1, then 3, 4, then full.
	for i, want := range []int32{1, 3, 4, -1} {
		if s := tb.Enter(int32(10 + i)); s != want {
			t.Errorf("Enter #%d = slot %d, want %d", i, s, want)
		}
	}
	if tb.Pos(1) != 10 || tb.Pos(4) != 12 || tb.Resident() != 5 {
		t.Errorf("after entering: pos(1) %d, pos(4) %d, resident %d", tb.Pos(1), tb.Pos(4), tb.Resident())
	}
	// Live is swap-removal order: [0 1 2] - 1 = [0 2], then 1, 3, 4 appended.
	if got := tb.Live(); len(got) != 5 || got[0] != 0 || got[1] != 2 || got[2] != 1 || got[3] != 3 || got[4] != 4 {
		t.Errorf("Live = %v, want [0 2 1 3 4]", got)
	}
	if got := tb.LivePositions(); len(got) != 5 || got[0] != 0 || got[1] != 2 || got[2] != 10 || got[3] != 11 || got[4] != 12 {
		t.Errorf("LivePositions = %v, want [0 2 10 11 12]", got)
	}
	tb.Remove(0)
	tb.Put(0, 20) // a mirror follows the host's slot
	if tb.Pos(0) != 20 || tb.Resident() != 5 || tb.Enter(21) != -1 {
		t.Errorf("after Put: pos(0) %d, resident %d", tb.Pos(0), tb.Resident())
	}
}

func TestSlotTableCheckResident(t *testing.T) {
	var tb SlotTable
	tb.Reset(4, 3)
	for _, c := range []struct {
		victims []int32
		want    string
	}{
		{[]int32{0, 2}, ""},
		{[]int32{4}, "slot 4 out of range [0, 4)"},
		{[]int32{3}, "slot 3 is empty"},
		{[]int32{1, 2, 1}, "slot 1 named twice"},
		{[]int32{0, 0}, "slot 0 named twice"},
	} {
		err := tb.CheckResident(c.victims)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.victims, err, c.want)
		}
		for s := range int32(4) { // a check changes nothing
			if want := map[bool]int32{true: s, false: -1}[s < 3]; tb.Pos(s) != want {
				t.Fatalf("%v: slot %d holds %d after the check, want %d", c.victims, s, tb.Pos(s), want)
			}
		}
	}
}

// TestSlotTableNthResident checks NthResident against a scan of the table in slot
// order, and LivePositions against Pos, on a table wider than two bitset words whose last word is partly past the
// width, as slots come and go.
func TestSlotTableNthResident(t *testing.T) {
	var tb SlotTable
	tb.Reset(150, 140)
	check := func(when string) {
		t.Helper()
		var scan []int32
		for s, p := range tb.Positions() {
			if p >= 0 {
				scan = append(scan, int32(s))
			}
		}
		for n, want := range scan {
			if got := tb.NthResident(n); got != want {
				t.Fatalf("%s: NthResident(%d) = %d, want %d", when, n, got, want)
			}
		}
		for i, s := range tb.Live() {
			if p := tb.LivePositions()[i]; p != tb.Pos(s) {
				t.Fatalf("%s: LivePositions()[%d] = %d, but slot %d holds %d", when, i, p, s, tb.Pos(s))
			}
		}
		if got := tb.NthResident(len(scan)); got != -1 {
			t.Fatalf("%s: NthResident(%d) past the %d resident = %d, want -1", when, len(scan), len(scan), got)
		}
	}
	check("after reset")
	for _, s := range []int32{0, 63, 64, 65, 100, 127, 128, 139} {
		tb.Remove(s)
	}
	check("after removals")
	for i := range 12 {
		tb.Enter(int32(200 + i))
	}
	check("after entering")
}
