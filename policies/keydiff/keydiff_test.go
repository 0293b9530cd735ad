package keydiff

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press/presstest"
)

// Axis-aligned keys, so that every cosine below is exact.
var keys = [][][]float32{
	{{2, 0}, {0, 1}, {5, 0}, {0, -3}, {1, 0}, {0, 2}, {-4, 0}},
	{{0, 0}, {1, 0}, {1, 0}, {0, 1}, {0, 1}, {1, 0}, {0, -1}},
}

func TestEvictsTheKeysMostLikeTheAnchor(t *testing.T) {
	p, err := New(policies.NewParams(nil))
	if err != nil {
		t.Fatal(err)
	}
	log, err := presstest.Run(p, policies.Config{Budget: 3}, presstest.FromTables(5, keys, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	if l := log.Layout; !l.Keys || !l.Compact || l.Slack != 0 {
		t.Errorf("layout %+v: want keys, compact rows, no slack", l)
	}
	// Head 0. Compression: normalized keys sum to (3, 0), so the anchor points along x;
	// cosines 1, 0, 1, 0, 1: of the three at 1, the oldest two go (0, 2).
	// Step 5: resident 1, 3, 4, 5 sum to (1, 1): cosines √½, −√½, √½, √½; the oldest of
	// the ties goes (1). Step 6: resident 3, 4, 5, 6 sum to zero: every cosine is 0 and
	// the oldest goes (3).
	// Head 1. Compression: the zero key (0) has cosine 0; the others sum to (2, 2), all
	// at cosine √½, so the oldest two go (1, 2). Step 5: anchor ∝ (1, 2): cosines 0,
	// 2/√5, 2/√5, 1/√5 for 0, 3, 4, 5: 3 goes. Step 6: anchor ∝ (1, 0): 5 (cosine 1) goes.
	if err := presstest.CheckVictims(log, [][][]int{{{0, 2}, {1, 2}}, {{1}, {3}}, {{3}, {5}}}); err != nil {
		t.Error(err)
	}
	if !slices.Equal(log.Resident[0], []int{4, 5, 6}) || !slices.Equal(log.Resident[1], []int{0, 4, 6}) {
		t.Errorf("resident %v, want [[4 5 6] [0 4 6]]", log.Resident)
	}
	if n := p.(policies.TokenState).TokenStateBytes(); n != 8 {
		t.Errorf("token state %d bytes, want 8 (the norm)", n)
	}
}

func TestReuseResets(t *testing.T) {
	first := presstest.FromTables(6, [][][]float32{keys[1], keys[0], keys[1]}, nil, nil)
	err := presstest.SameAfterReuse(New, map[string]any{"decode": "window", "window": 2.0}, policies.Config{Budget: 3},
		first, presstest.FromTables(5, keys, nil, nil))
	if err != nil {
		t.Error(err)
	}
}

func TestRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{{"decode": "rescore"}, {"anchor": "first"}, {"decode": "window", "window": 0.0}} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("params %v: no error", params)
		}
	}
}
