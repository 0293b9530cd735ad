package sim_test

import (
	"context"
	"testing"

	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// BenchmarkReplayAttentionOnly replays one OPT-13B-shaped layer (40 heads, 1024 + 64
// tokens) through one policy at five budgets on one thread, without the output-error
// metric: the host's and the policy's work, which richer inputs must not slow down
// for policies that do not ask for them (window and tova; h2o asks for compact rows).
func BenchmarkReplayAttentionOnly(b *testing.B) {
	src := synthSources(b, synth.Options{Preset: "opt-13b", Layers: 1, PromptLen: 1024, GenLen: 64, Seed: 1}, 1)
	for _, name := range []string{"window", "tova", "h2o"} {
		specs := builtinSpecs(b, name)
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := sim.Replay(context.Background(), src, specs, sim.Options{Budgets: budgets, Seed: 1, Threads: 1, NoOutputError: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
