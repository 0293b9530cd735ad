package sim_test

import (
	"context"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/auv"
	"github.com/kvsim/kvsim/policies/duo"
	"github.com/kvsim/kvsim/policies/expectedattention"
	"github.com/kvsim/kvsim/policies/h2o"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/scissorhands"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// counted is a Forker policy, counting its ForkTo calls.
type counted struct {
	policies.Policy
	forks *int
}

func (c counted) ForkTo(dst policies.Policy) error {
	*c.forks++
	return c.Policy.(policies.Forker).ForkTo(dst.(counted).Policy)
}

// hidden is a Forker policy without ForkTo: every budget observes the prompt itself.
type hidden struct{ policies.Policy }

// TestForkedMatchesFresh replays each Forker policy at five budgets, once forking the
// prompt's state from one instance to the others and once observing it per budget, and
// asks for the same decisions: every metric and eviction count equal to the bit.
func TestForkedMatchesFresh(t *testing.T) {
	src := synthSources(t, synth.Options{Preset: "opt-125m", Layers: 2, Heads: 4, PromptLen: 96, GenLen: 24, Seed: 3, WithV: true}, 2)
	for _, c := range []struct {
		name   string
		new    policies.New
		params map[string]any
	}{
		{"h2o", h2o.New, nil},
		{"auv", auv.New, nil}, // multi-step: its slack varies with the budget
		{"auv-v1", auv.New, map[string]any{"preset": "v1"}},
		{"scissorhands", scissorhands.New, map[string]any{"history": 40}}, // a window shorter than the prompt
		{"duo", duo.New, nil},                                             // streaming heads chosen from the prompt
		{"duo-mask", duo.New, map[string]any{"mask": "sfsf"}},
		{"expectedattention", expectedattention.New, map[string]any{"decode": "score"}}, // a press: keys and values stored
		{"expectedattention-queries", expectedattention.New, map[string]any{"queries": 30, "covariance": "none"}}, // a window of queries
	} {
		t.Run(c.name, func(t *testing.T) {
			forks := 0
			spec := func(wrap func(policies.Policy) policies.Policy) []sim.PolicySpec {
				return []sim.PolicySpec{{Name: c.name, New: func() (policies.Policy, error) {
					p, err := c.new(policies.NewParams(c.params))
					return wrap(p), err
				}}}
			}
			// The whole prompt as a last budget widens the slot table past the prompt.
			forkBudgets := append(budgets[:len(budgets):len(budgets)], host.Budget{Fraction: 1})
			opts := sim.Options{Budgets: forkBudgets, Seed: 1, Threads: 1}
			forked, err := sim.Replay(context.Background(), src, spec(func(p policies.Policy) policies.Policy { return counted{p, &forks} }), opts)
			if err != nil {
				t.Fatal(err)
			}
			fresh, err := sim.Replay(context.Background(), src, spec(func(p policies.Policy) policies.Policy { return hidden{p} }), opts)
			if err != nil {
				t.Fatal(err)
			}
			// One observer per (sample, layer); the other four budgets fork from it.
			if want := 2 * 2 * (len(forkBudgets) - 1); forks != want {
				t.Errorf("%d forks, want %d", forks, want)
			}
			for i, f := range forked.Cells {
				g := fresh.Cells[i]
				if f.Failed != "" || g.Failed != "" {
					t.Fatalf("budget %s failed: %q, %q", f.Budget, f.Failed, g.Failed)
				}
				if f.Metrics != g.Metrics || f.Evictions != g.Evictions || f.MeanResident != g.MeanResident || f.PeakResident != g.PeakResident {
					t.Errorf("budget %s: forked %+v, %v evictions; fresh %+v, %v evictions", f.Budget, f.Metrics, f.Evictions, g.Metrics, g.Evictions)
				}
			}
		})
	}
}
