package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// benchmarkReplay replays one OPT-13B-shaped synthetic sample (1024 + 64 tokens) with
// the given layer count through the policies at five budgets, and reports the score
// kernel's rate per busy core and the replay time per (head · decode step).
func benchmarkReplay(b *testing.B, layers int, policyNames ...string) {
	src := synthSources(b, synth.Options{Preset: "opt-13b", Layers: layers, PromptLen: 1024, GenLen: 64, Seed: 1, WithV: true}, 1)
	specs := builtinSpecs(b, policyNames...)
	var perf sim.Perf
	var cells []sim.Cell
	b.ResetTimer()
	for b.Loop() {
		res, err := sim.Replay(context.Background(), src, specs, sim.Options{Budgets: budgets, Seed: 1})
		if err != nil {
			b.Fatal(err)
		}
		perf, cells = res.Perf, res.Cells
	}
	b.ReportMetric(perf.ScoreGFLOPS(), "score-GFLOP/s/core")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perf.DecodeSteps, "ns/(head·step)")
	b.ReportMetric(perf.PolicySeconds*1e9/perf.DecodeSteps/float64(len(cells)), "policy-ns/(head·step·cell)")
}

// BenchmarkReplay13B is the benchmark: all 40 layers (about a minute a run on
// two cores).
func BenchmarkReplay13B(b *testing.B) {
	benchmarkReplay(b, 40, "full", "window", "h2o", "oracle")
}

// BenchmarkReplay13BLayers4 is the same on 4 layers, for quick comparisons.
func BenchmarkReplay13BLayers4(b *testing.B) {
	benchmarkReplay(b, 4, "full", "window", "h2o", "oracle")
}

// BenchmarkReplay13BAUV replays 4 layers of the 13B-shaped trace through AUV's
// ablation presets and reports each preset's policy time per (head · decode step),
// averaged over the five budgets. The paper's throughput argument rests on multi-step
// eviction (auv, v4) being much cheaper than naive second chance (v2).
func BenchmarkReplay13BAUV(b *testing.B) {
	src := synthSources(b, synth.Options{Preset: "opt-13b", Layers: 4, PromptLen: 1024, GenLen: 64, Seed: 1, WithV: true}, 1)
	newAUV, _ := builtin.Lookup("auv")
	presets := []string{"v1", "v2", "v3", "v4", "auv"}
	var specs []sim.PolicySpec
	for _, p := range presets {
		specs = append(specs, sim.PolicySpec{Name: p, New: func() (policies.Policy, error) {
			return newAUV(policies.NewParams(map[string]any{"preset": p}))
		}})
	}
	var res *sim.Result
	for b.Loop() {
		var err error
		if res, err = sim.Replay(context.Background(), src, specs, sim.Options{Budgets: budgets, Seed: 1}); err != nil {
			b.Fatal(err)
		}
	}
	for i, p := range presets {
		var ns float64
		for j := range budgets {
			if c := res.Cell(i, j); c.Failed != "" {
				b.Fatal(c.Failed)
			} else {
				ns += c.PolicyNs / float64(len(budgets))
			}
		}
		b.ReportMetric(ns, p+"-policy-ns/(head·step)")
	}
}

// BenchmarkReplayAccounting replays 4 layers of the 13B-shaped trace through h2o and
// auv in each accounting mode: peak adds layout probes, mean reruns the policies
// (and the prompt's attention) once per probe of its budget search.
func BenchmarkReplayAccounting(b *testing.B) {
	src := synthSources(b, synth.Options{Preset: "opt-13b", Layers: 4, PromptLen: 1024, GenLen: 64, Seed: 1, WithV: true}, 1)
	for _, mode := range []host.Accounting{host.Nominal, host.Peak, host.Mean} {
		b.Run(mode.String(), func(b *testing.B) {
			specs := builtinSpecs(b, "h2o", "auv")
			for i := range specs {
				specs[i].Accounting = mode
			}
			for b.Loop() {
				if _, err := sim.Replay(context.Background(), src, specs, sim.Options{Budgets: budgets, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReplayCells replays 4 layers of the 13B-shaped trace as one cell (h2o at
// 10%) and as 80 (window, h2o, tova and random at 20 budgets, 1% to 20%), one run of
// each in turn so that both see the same load, and reports the ratio of their times:
// what the work shared by every cell saves.
func BenchmarkReplayCells(b *testing.B) {
	src := synthSources(b, synth.Options{Preset: "opt-13b", Layers: 4, PromptLen: 1024, GenLen: 64, Seed: 1, WithV: true}, 1)
	var many []host.Budget
	for i := 1; i <= 20; i++ {
		many = append(many, host.Budget{Fraction: float64(i) / 100})
	}
	runs := []struct {
		specs   []sim.PolicySpec
		budgets []host.Budget
		elapsed time.Duration
	}{
		{builtinSpecs(b, "h2o"), []host.Budget{{Fraction: 0.1}}, 0},
		{builtinSpecs(b, "window", "h2o", "tova", "random"), many, 0},
	}
	for b.Loop() {
		for i := range runs {
			start := time.Now()
			if _, err := sim.Replay(context.Background(), src, runs[i].specs, sim.Options{Budgets: runs[i].budgets, Seed: 1}); err != nil {
				b.Fatal(err)
			}
			runs[i].elapsed += time.Since(start)
		}
	}
	b.ReportMetric(runs[1].elapsed.Seconds()/runs[0].elapsed.Seconds(), "80-cells/1-cell")
}
