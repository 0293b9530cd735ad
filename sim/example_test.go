package sim_test

import (
	"context"
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// Replay a synthetic trace through two builtins at two budgets, from Go. Sources are
// kvtrace files (kvtrace.Open) or synthetic traces; a PolicySpec makes one policy
// instance per (worker, budget); the results do not depend on Threads.
func ExampleReplay() {
	trace, err := synth.New(synth.Options{Preset: "opt-125m", Layers: 2, Heads: 4, PromptLen: 128, GenLen: 16, Seed: 1, WithV: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	var specs []sim.PolicySpec
	for _, name := range []string{"window", "h2o"} {
		newPolicy, _ := builtin.Lookup(name)
		specs = append(specs, sim.PolicySpec{Name: name, Accounting: host.Nominal,
			New: func() (policies.Policy, error) { return newPolicy(policies.NewParams(nil)) }})
	}
	res, err := sim.Replay(context.Background(), []sim.Source{trace}, specs,
		sim.Options{Budgets: []host.Budget{{Fraction: 0.1}, {Tokens: 32}}, Seed: 7})
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, name := range res.Policies {
		for j, budget := range res.Budgets {
			c := res.Cell(i, j)
			fmt.Printf("%-6s at %-6s: hit rate %.3f, %.0f victims per head\n", name, budget, c.HitRate, c.Evictions)
		}
	}
	// Output:
	// window at 10%   : hit rate 0.416, 131 victims per head
	// window at 32 tok: hit rate 0.539, 112 victims per head
	// h2o    at 10%   : hit rate 0.482, 131 victims per head
	// h2o    at 32 tok: hit rate 0.629, 112 victims per head
}
