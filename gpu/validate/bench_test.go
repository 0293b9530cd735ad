package validate_test

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/checkpoint"
)

// BenchmarkDecodeInLoop decodes the tiny model's 12-token prompt plus 64 tokens at a
// budget of 8, and reports per token the time inside the policy, the slot
// bookkeeping's, the whole decode's, and the share of decode that eviction costs.
func BenchmarkDecodeInLoop(b *testing.B) {
	benchmarkInLoop(b, tinyEngine(b), prompt, 8, 64)
}

// BenchmarkDecodeInLoopOPT125M does the same on random weights shaped like
// opt-125m (12 layers × 12 heads), a 512-token prompt and a budget of 10%.
func BenchmarkDecodeInLoopOPT125M(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "opt-125m")
	if err := checkpoint.WriteSynth(dir, checkpoint.SynthOptions{Preset: "opt-125m", Seed: 1, Formats: checkpoint.Safetensors}); err != nil {
		b.Fatal(err)
	}
	model, err := checkpoint.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer model.Close()
	backend, err := cpu.New(model, cpu.Options{Threads: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	long := make([]int32, 512)
	for i := range long {
		long[i] = int32(rng.IntN(model.Config.VocabSize))
	}
	benchmarkInLoop(b, gpu.New(backend), long, 51, 32)
}

func benchmarkInLoop(b *testing.B, e *gpu.Engine, prompt []int32, budget, gen int) {
	for _, name := range []string{"window", "h2o", "auv"} {
		b.Run(name, func(b *testing.B) {
			var policy, slots, decode time.Duration
			var tokens int
			for b.Loop() {
				d, err := validate.Decode(context.Background(), e, prompt, newBuiltin(b, name),
					validate.Options{Budget: budget, MaxNew: gen, IgnoreEOS: true})
				if err != nil {
					b.Fatal(err)
				}
				policy += d.PolicyTime
				slots += d.SlotTime
				decode += d.Decode
				tokens += len(d.Tokens)
			}
			perToken := func(t time.Duration) float64 { return t.Seconds() * 1e6 / float64(tokens) }
			b.ReportMetric(perToken(policy), "policy-µs/tok")
			b.ReportMetric(perToken(slots), "slots-µs/tok")
			b.ReportMetric(perToken(decode), "decode-µs/tok")
			b.ReportMetric(100*(policy+slots).Seconds()/decode.Seconds(), "evict-%")
		})
	}
}
