package main

import (
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
)

// TestSimulatedHitRateByValue: replay's cell is found by the budget's value, so two
// budgets that print alike (or a label formatted differently) cannot be confused.
func TestSimulatedHitRateByValue(t *testing.T) {
	tenth := 0.1
	a, b := host.Budget{Fraction: 0.3}, host.Budget{Fraction: tenth + 0.2} // 0.3 and 0.30000000000000004
	r := &sim.Result{Policies: []string{"h2o"}, Budgets: []string{"30%", "30%"}, BudgetSpecs: []host.Budget{a, b},
		Cells: []sim.Cell{{Policy: "h2o", Metrics: sim.Metrics{HitRate: 0.25}}, {Policy: "h2o", Metrics: sim.Metrics{HitRate: 0.75}}}}
	for _, c := range []struct {
		budget host.Budget
		want   float64
	}{{a, 0.25}, {b, 0.75}} {
		if got := simulatedHitRate(r, "h2o", c.budget); got == nil || *got != c.want {
			t.Errorf("budget %v: hit rate %v, want %g", c.budget, got, c.want)
		}
	}
	if got := simulatedHitRate(r, "h2o", host.Budget{Tokens: 30}); got != nil {
		t.Errorf("a budget replay did not run: %v", *got)
	}
}

// The table shows each cell's interval and its difference from the reference
// (the numbers are validate's TestValidationIntervals).
func TestValidationTable(t *testing.T) {
	nll := func(x float64) *float64 { return &x }
	cell := func(policy string, agree []float64, nlls []*float64) validate.ValidatedCell {
		c := validate.ValidatedCell{Cell: validate.Cell{Policy: policy, Budget: "10%", Samples: len(agree)}}
		for i, a := range agree {
			c.PerSample = append(c.PerSample, validate.SampleMetrics{Agreement: a, NLL: nlls[i]})
		}
		return c
	}
	res := validate.Validation{Compare: "h2o", Cells: []validate.ValidatedCell{
		cell("auv", []float64{0.2, 0.4, 0.6}, []*float64{nll(1), nll(2), nil}),
		cell("h2o", []float64{0.1, 0.4, 0.4}, []*float64{nll(2), nll(2), nll(2)}),
	}}
	validate.AddIntervals(&res)
	var b strings.Builder
	if err := writeValidation(&b, &res, "table"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.4000 ±0.4968", "+0.1000 ±0.2484", "Minus h2o at the same budget"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
