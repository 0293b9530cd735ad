package scissorhands

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

func newPolicy(t *testing.T, params map[string]any) *policy {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p.(*policy)
}

// prefill sends the prompt of one head as one block.
func prefill(t *testing.T, p policies.Policy, stride int, rows [][]float32) {
	t.Helper()
	policytest.Prefill(t, p, stride, [][][]float32{rows})
}

// decode sends one decode row of one head, indexed by slot.
func decode(t *testing.T, p policies.Policy, pos int, slot int32, row []float32) {
	t.Helper()
	policytest.Decode(t, p, pos, len(row), []int32{slot}, [][]float32{row})
}

// Rows i attend to i+1 tokens, so the thresholds are 1, 1/2, 1/3, 1/4, 1/5.
var fiveRows = [][]float32{
	{1},                           // hits 0
	{0.9, 0.1},                    // hits 0
	{0.8, 0.1, 0.1},               // hits 0
	{0.1, 0.5, 0.2, 0.2},          // hits 1
	{0.1, 0.25, 0.15, 0.25, 0.25}, // hits 1, 3, 4
}

func TestCountsAndVictims(t *testing.T) {
	tests := []struct {
		history    int
		budget     int
		wantCounts []int32
		want       []int32
	}{
		// All five rows: counts [3 2 0 1 1]; token 4 is protected.
		{400, 3, []int32{3, 2, 0, 1, 1}, []int32{2, 3}},
		// Rows 3 and 4 only: [0 2 0 1 1]; tokens 0 and 2 have no hits left.
		{2, 3, []int32{0, 2, 0, 1, 1}, []int32{0, 2}},
		// One victim among the tied 0 and 2: token 2 has the lower sum (0.45 < 2.9).
		{2, 4, []int32{0, 2, 0, 1, 1}, []int32{2}},
	}
	for _, tt := range tests {
		p := newPolicy(t, map[string]any{"history": tt.history, "recent": 1})
		if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 5, MaxLen: 5, Budget: tt.budget}); err != nil {
			t.Fatal(err)
		}
		prefill(t, p, 5, fiveRows)
		if got := p.count[:5]; !slices.Equal(got, tt.wantCounts) {
			t.Errorf("history %d: counts %v, want %v", tt.history, got, tt.wantCounts)
		}
		if got := policytest.MustEvict(t, p, policies.Prefill, 4, 16, []int32{int32(5 - tt.budget)})[0]; !slices.Equal(got, tt.want) {
			t.Errorf("history %d, budget %d: victims %v, want %v", tt.history, tt.budget, got, tt.want)
		}
	}
}

func TestTiesGoToOlderToken(t *testing.T) {
	p := newPolicy(t, map[string]any{"recent": 0})
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 3, MaxLen: 3, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	// Tokens 1 and 2 both have no hits and a sum of 0.2.
	prefill(t, p, 3, [][]float32{{1}, {0.9, 0.1}, {0.7, 0.1, 0.2}})
	if got := policytest.MustEvict(t, p, policies.Prefill, 2, 16, []int32{1})[0]; !slices.Equal(got, []int32{1}) {
		t.Errorf("victims %v, want [1]", got)
	}
}

// TestWindowExpiryInDecode follows rows out of a 2-row window, including a row whose
// hit belongs to a token evicted since; its slot's new token must keep its count.
func TestWindowExpiryInDecode(t *testing.T) {
	p := newPolicy(t, map[string]any{"history": 2, "recent": 1})
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 4, MaxLen: 8, Budget: 3}); err != nil {
		t.Fatal(err)
	}
	prefill(t, p, 4, [][]float32{
		{1},
		{0.5, 0.5},
		{0.4, 0.4, 0.2},         // ≥ 1/3: hits 0, 1
		{0.3, 0.26, 0.26, 0.18}, // ≥ 1/4: hits 0, 1, 2
	})
	if got := p.count[:4]; !slices.Equal(got, []int32{2, 2, 1, 0}) {
		t.Fatalf("counts after the prompt %v, want [2 2 1 0]", got)
	}
	if got := policytest.MustEvict(t, p, policies.Prefill, 3, 16, []int32{1})[0]; !slices.Equal(got, []int32{2}) {
		t.Fatalf("compression victims %v, want [2]", got)
	}

	// Position 4 enters slot 2; row 2 leaves the window. Threshold 1/4.
	decode(t, p, 4, 2, []float32{0.1, 0.3, 0.3, 0.3})
	if got := p.count[:4]; !slices.Equal(got, []int32{1, 2, 1, 1}) {
		t.Fatalf("counts after step 4 %v, want [1 2 1 1]", got)
	}
	// Tokens 0 and 3 tie at one hit; token 3 has the lower sum (0.48 < 2.3).
	if got := policytest.MustEvict(t, p, policies.Decode, 4, 16, []int32{1})[0]; !slices.Equal(got, []int32{3}) {
		t.Fatalf("victims at step 4 %v, want [3]", got)
	}

	// Position 5 enters slot 3; row 3 leaves, and its hit on slot 2 was the evicted
	// token 2's, not token 4's.
	decode(t, p, 5, 3, []float32{0.2, 0.2, 0.2, 0.4})
	if got := p.count[:4]; !slices.Equal(got, []int32{0, 1, 1, 1}) {
		t.Fatalf("counts after step 5 %v, want [0 1 1 1]", got)
	}
	if got := policytest.MustEvict(t, p, policies.Decode, 5, 16, []int32{1})[0]; !slices.Equal(got, []int32{0}) {
		t.Fatalf("victims at step 5 %v, want [0]", got)
	}
}

func TestRecentShrinksToBudget(t *testing.T) {
	p := newPolicy(t, nil) // recent 10 > budget 2
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 4, MaxLen: 4, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	prefill(t, p, 4, [][]float32{{1}, {0.5, 0.5}, {0.4, 0.4, 0.2}, {0.1, 0.1, 0.1, 0.7}})
	// Only tokens 2 and 3 stay protected; 0 and 1 go.
	if got := policytest.MustEvict(t, p, policies.Prefill, 3, 16, []int32{2})[0]; !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("victims %v, want [0 1]", got)
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{
		{"window": 8},
		{"history": 0},
		{"recent": -1},
		{"recent": 1.5},
	} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("New(%v) succeeded, want an error", params)
		}
	}
}

func TestNoAllocationsPerCall(t *testing.T) {
	p := newPolicy(t, map[string]any{"history": 5, "recent": 2})
	const prompt, budget = 16, 8
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: prompt, MaxLen: 1 << 20, Budget: budget}); err != nil {
		t.Fatal(err)
	}
	rows := make([][]float32, prompt)
	for i := range rows {
		rows[i] = make([]float32, i+1)
		for j := range rows[i] {
			rows[i][j] = float32((i*7+j*3)%11+1) / float32(6*(i+1))
		}
	}
	prefill(t, p, prompt, rows)
	victims := policytest.MustEvict(t, p, policies.Prefill, prompt-1, 16, []int32{prompt - budget})[0]
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: 1, Stride: prompt,
		Probs: make([]float32, prompt), Slot: []int32{0}}
	for s := range a.Probs {
		a.Probs[s] = float32(s%5+1) / 27
	}
	e := &policies.Eviction{Phase: policies.Decode, Heads: 1, Need: []int32{1}, Stride: prompt,
		Count: make([]int32, 1), Victims: make([]int32, prompt)}
	pos, free := prompt, victims[0] // the lowest free slot
	step := func() {
		a.Pos, e.Pos, a.Slot[0] = pos, pos, free
		if err := p.Observe(a); err != nil {
			t.Fatal(err)
		}
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		free = e.Victims[0] // the only free slot now
		pos++
	}
	if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
		t.Errorf("%v allocations per decode step", allocs)
	}
}
