package main

import (
	"testing"

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
