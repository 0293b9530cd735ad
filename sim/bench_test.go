package sim_test

import (
	"context"
	"testing"

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
