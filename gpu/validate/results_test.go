package validate

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/kvsim/kvsim/policies/host"
)

func TestRankAgreement(t *testing.T) {
	hit := func(x float64) *float64 { return &x }
	cells := []ValidatedCell{
		{Cell: Cell{Agreement: 0.1, NLL: 2}, SimulatedHitRate: hit(0.2)},
		{Cell: Cell{Agreement: 0.3, NLL: 2}, SimulatedHitRate: hit(0.5)},
		{Cell: Cell{Agreement: 0.9}}, // no simulated hit rate: left out
		{Cell: Cell{Agreement: 0.2, NLL: 2}, SimulatedHitRate: hit(0.9)},
	}
	got := map[string]Correlation{}
	for _, a := range RankAgreement(cells, 1) {
		got[a.Metric] = a
	}
	// Pairs by hit rate: (0.2, 0.5) and (0.2, 0.9) concordant, (0.5, 0.9) discordant:
	// τ = (2−1)/3. Ranks of agreement 1, 3, 2: Σd² = 2, ρ = 1 − 6·2/(3·8) = 0.5.
	a := got["agreement"]
	if a.Cells != 3 || a.KendallTau == nil || math.Abs(*a.KendallTau-1.0/3) > 1e-12 || a.Spearman == nil || math.Abs(*a.Spearman-0.5) > 1e-12 {
		t.Errorf("agreement: %+v", a)
	}
	if n := got["nll"]; n.KendallTau != nil || n.Spearman != nil {
		t.Errorf("a constant Metric correlates: %+v", n)
	}
	if RankAgreement(cells[:1], 1) != nil {
		t.Error("agreement over one cell")
	}
}

func TestReadState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.jsonl")
	tenth := host.Budget{Fraction: 0.1}
	for _, c := range []Cell{{Policy: "h2o", Budget: "10%", BudgetSpec: tenth, NLL: 1.5}, {Policy: "auv", Budget: "10%", BudgetSpec: tenth, NLL: 1.25}} {
		if err := AppendState(path, &c); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"policy": "wi`) // an interrupted write
	f.Close()
	cells, err := ReadState(path)
	if err != nil || len(cells) != 2 || cells[StateKey{Policy: "auv", Budget: tenth}].NLL != 1.25 {
		t.Errorf("cells %v, %v", cells, err)
	}
	// The resumed run appends after the torn line is cut: the next resume reads all.
	if err := AppendState(path, &Cell{Policy: "window", Budget: "10%", BudgetSpec: tenth, NLL: 2}); err != nil {
		t.Fatal(err)
	}
	cells, err = ReadState(path)
	if err != nil || len(cells) != 3 || cells[StateKey{Policy: "window", Budget: tenth}].NLL != 2 {
		t.Errorf("after a resume from a torn state: cells %v, %v", cells, err)
	}
	// A bad line before the last is not an interruption: an error naming the line.
	os.WriteFile(path, []byte("{bad\n{\"policy\": \"x\"}\n"), 0o644)
	if _, err := ReadState(path); err == nil {
		t.Error("a corrupt state file was read")
	}
	if cells, err := ReadState(filepath.Join(t.TempDir(), "missing")); err != nil || len(cells) != 0 {
		t.Errorf("missing state: %v, %v", cells, err)
	}
}

// handValidation is auv against h2o over three samples, with the intervals that
// TestValidationIntervals checks by hand.
func handValidation() Validation {
	nll := func(x float64) *float64 { return &x }
	cell := func(policy string, agree []float64, nlls []*float64) ValidatedCell {
		c := ValidatedCell{Cell: Cell{Policy: policy, Budget: "10%", Samples: len(agree)}}
		for i, a := range agree {
			c.PerSample = append(c.PerSample, SampleMetrics{Agreement: a, NLL: nlls[i]})
		}
		return c
	}
	res := Validation{Compare: "h2o", Cells: []ValidatedCell{
		cell("auv", []float64{0.2, 0.4, 0.6}, []*float64{nll(1), nll(2), nil}),
		cell("h2o", []float64{0.1, 0.4, 0.4}, []*float64{nll(2), nll(2), nll(2)}),
	}}
	AddIntervals(&res)
	return res
}

// Intervals and paired differences of validated Metrics, by hand: agreement over
// samples (0.2, 0.4, 0.6) has mean 0.4, s = 0.2, s/√3 = 0.11547, t(0.975, 2) =
// 4.302653: half-width 0.496828. Against the reference (0.1, 0.4, 0.4) the paired
// differences (0.1, 0, 0.2) have mean 0.1, s = 0.1, half-width 0.248414.
func TestValidationIntervals(t *testing.T) {
	res := handValidation()
	near := func(what string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("%s = %.7f, want %.7f", what, got, want)
		}
	}
	a := res.Cells[0]
	near("agreement mean", a.CI["agreement"].Mean, 0.4)
	near("agreement half-width", a.CI["agreement"].HalfWidth(), 0.496828)
	if a.Diff == nil || res.Cells[1].Diff != nil {
		t.Fatalf("differences: %+v, %+v", a.Diff, res.Cells[1].Diff)
	}
	near("difference", a.Diff.Metrics["agreement"].Mean, 0.1)
	near("difference half-width", a.Diff.Metrics["agreement"].HalfWidth(), 0.248414)
	// NLL pairs only the samples both cells scored: (1−2, 2−2).
	if d := a.Diff.Metrics["nll"]; d.N != 2 || d.Mean != -0.5 {
		t.Errorf("nll difference %+v", d)
	}
}

// τ's bootstrap interval holds the point estimate here, and a seed replays it.
func TestTauInterval(t *testing.T) {
	var cells []*Cell
	hit := []float64{0.2, 0.4, 0.6, 0.8}
	for k := range hit {
		c := &Cell{}
		for i := range 6 {
			c.PerSample = append(c.PerSample, SampleMetrics{Agreement: float64(k) + 0.7*float64((i*(k+2))%5)})
		}
		cells = append(cells, c)
	}
	iv := tauInterval(hit, cells, "agreement", 7)
	if iv == nil || iv.Lo > iv.Mean || iv.Hi < iv.Mean || iv.Hi > 1 || iv.Lo < -1 {
		t.Fatalf("interval %+v", iv)
	}
	if again := tauInterval(hit, cells, "agreement", 7); *again != *iv {
		t.Errorf("seed 7 twice: %+v, %+v", iv, again)
	}
	cells[0].PerSample = cells[0].PerSample[:3]
	if tauInterval(hit, cells, "agreement", 7) != nil {
		t.Error("an interval over cells with different samples")
	}
}
