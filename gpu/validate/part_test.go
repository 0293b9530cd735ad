package validate

import (
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies/host"
)

func run(rouge float64, nll *float64, peak int64) SampleRun {
	return SampleRun{Budget: 4, Metrics: SampleMetrics{Rouge1Ref: rouge, NLL: nll}, PeakBytes: peak, Evictions: 2, Tokens: 8}
}

// TestMergeParts: samples 0 and 2 in one part, 1 in the other, aggregate in sample
// order to the means computed by hand.
func TestMergeParts(t *testing.T) {
	one, three := 1.0, 3.0
	budget := host.Budget{Tokens: 4}
	a := &Part{Samples: 3, Covered: []int{0, 2}, Seed: 5, Cells: []PartCell{{Policy: "h2o", Budget: budget, Accounting: "peak",
		Runs: []SampleRun{run(0.1, &one, 100), run(0.4, nil, 300)}}}}
	b := &Part{Samples: 3, Covered: []int{1}, Seed: 5, Cells: []PartCell{{Policy: "h2o", Budget: budget, Accounting: "peak",
		Runs: []SampleRun{run(0.25, &three, 200)}}}}
	cells, err := MergeParts([]*Part{b, a}, []string{"b", "a"})
	if err != nil {
		t.Fatal(err)
	}
	c := cells[0]
	if c.Policy != "h2o" || c.Budget != "4 tok" || c.Accounting != "peak" || c.Samples != 3 {
		t.Fatalf("cell %+v", c.Cell)
	}
	if want := (0.1 + 0.25 + 0.4) / 3; c.Rouge1Ref != want {
		t.Errorf("ROUGE-1 %v, want %v", c.Rouge1Ref, want)
	}
	if c.NLL != 2 || c.PeakKVBytes != 300 || c.Evictions != 2 || c.BudgetTokens != 4 {
		t.Errorf("NLL %v (want the mean of 1 and 3), peak %d, evictions %v, budget %v", c.NLL, c.PeakKVBytes, c.Evictions, c.BudgetTokens)
	}
	if len(c.PerSample) != 3 || c.PerSample[1].Rouge1Ref != 0.25 || c.PerSample[2].NLL != nil {
		t.Errorf("per sample %+v", c.PerSample)
	}

	overlap := &Part{Samples: 3, Covered: []int{2}, Seed: 5, Cells: []PartCell{{Policy: "h2o", Budget: budget, Accounting: "peak", Runs: []SampleRun{run(0, nil, 0)}}}}
	other := &Part{Samples: 3, Covered: []int{1}, Seed: 5, Cells: []PartCell{{Policy: "tova", Budget: budget, Accounting: "peak", Runs: []SampleRun{run(0, nil, 0)}}}}
	for _, tc := range []struct {
		parts []*Part
		want  string
	}{
		{[]*Part{a, overlap, b}, "merge: sample 2 is in both a and c"},
		{[]*Part{a}, "merge: sample 1 is in no part"},
		{[]*Part{a, other}, "merge: a and c validate different cells: h2o @ 4 tok and tova @ 4 tok"},
	} {
		if _, err := MergeParts(tc.parts, []string{"a", "c", "b"}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
	}
}
