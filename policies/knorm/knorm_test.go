package knorm

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press/presstest"
)

// keys: head 0's norms are 5, 1, 2, 10, √2 in the prompt, then 3 and 0.5; head 1's
// are all 1 in the prompt, then 3 and 0.5.
var keys = [][][]float32{
	{{3, 4}, {1, 0}, {0, 2}, {6, 8}, {1, 1}, {0, 3}, {0.5, 0}},
	{{1, 0}, {0, 1}, {-1, 0}, {0, -1}, {1, 0}, {0, 3}, {0.5, 0}},
}

func run(t *testing.T, params map[string]any) presstest.Log {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	log, err := presstest.Run(p, policies.Config{Budget: 3}, presstest.FromTables(5, keys, nil, nil))
	if err != nil {
		t.Fatal(err)
	}
	return log
}

func TestEvictsTheLargestNorms(t *testing.T) {
	log := run(t, nil)
	if l := log.Layout; !l.Keys || !l.Compact || l.Values || l.Queries || l.Slack != 0 {
		t.Errorf("layout %+v: want keys and compact rows only, no slack", l)
	}
	// Head 0: compression drops norms 10 then 5; step 5 drops its own token (3 is the
	// largest of 1, 2, √2, 3); step 6 drops position 2 (norm 2).
	// Head 1: all prompt norms tie at 1, so the oldest go: 0, 1; step 5 drops its own
	// (3); step 6 drops the oldest of the ties, 2.
	if err := presstest.CheckVictims(log, [][][]int{{{3, 0}, {0, 1}}, {{5}, {5}}, {{2}, {2}}}); err != nil {
		t.Error(err)
	}
	if !slices.Equal(log.Resident[0], []int{1, 4, 6}) || !slices.Equal(log.Resident[1], []int{3, 4, 6}) {
		t.Errorf("resident %v, want [[1 4 6] [3 4 6]]", log.Resident)
	}
}

func TestKeepHighEvictsTheSmallestNorms(t *testing.T) {
	// Head 0: compression drops norms 1 and √2 (positions 1, 4); step 5 (norm 3) drops
	// position 2 (norm 2); step 6 drops its own token (0.5). Head 1: the ties go
	// oldest first (0, 1); step 5 drops 2; step 6 its own token.
	log := run(t, map[string]any{"keep": "high"})
	if err := presstest.CheckVictims(log, [][][]int{{{1, 4}, {0, 1}}, {{2}, {2}}, {{6}, {6}}}); err != nil {
		t.Error(err)
	}
}

func TestAppendCompressesThePromptOnly(t *testing.T) {
	log := run(t, map[string]any{"decode": "append"})
	if len(log.Events) != 1 || !slices.Equal(log.Resident[0], []int{1, 2, 4, 5, 6}) {
		t.Errorf("events %+v, resident %v", log.Events, log.Resident)
	}
}

func TestStateAndReuse(t *testing.T) {
	p, _ := New(policies.NewParams(nil))
	if n := p.(policies.TokenState).TokenStateBytes(); n != 8 {
		t.Errorf("token state %d bytes, want 8 (the norm)", n)
	}
	first := presstest.FromTables(6, [][][]float32{keys[1], keys[0], keys[1]}, nil, nil)
	err := presstest.SameAfterReuse(New, nil, policies.Config{Budget: 3}, first, presstest.FromTables(5, keys, nil, nil))
	if err != nil {
		t.Error(err)
	}
}

func TestRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{{"decode": "rescore"}, {"keep": "middle"}, {"norm": "l1"}, {"sinks": -1.0}} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("params %v: no error", params)
		}
	}
}
