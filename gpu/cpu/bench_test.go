package cpu_test

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
)

// randomModel builds an in-memory checkpoint of config c with dtype d: weights
// uniform in ±0.05 (a block of random values repeated, which is as good for timing
// and fast to build), LayerNorm weights 1, biases 0.
func randomModel(c checkpoint.Config, d half.DType) *checkpoint.Model {
	rng := rand.New(rand.NewPCG(1, 1))
	block := make([]float32, 1<<16+7) // an odd length, so rows do not repeat in step
	for i := range block {
		block[i] = float32(rng.Float64()*0.1 - 0.05)
	}
	tensor := func(value func(i int) float32, shape ...int) *checkpoint.Tensor {
		t := &checkpoint.Tensor{Name: fmt.Sprint(shape), DType: d, Shape: shape}
		values := make([]float32, t.Numel())
		for i := range values {
			values[i] = value(i)
		}
		t.Data = make([]byte, len(values)*d.Size())
		switch d {
		case half.F16:
			half.EncodeF16(t.Data, values)
		case half.BF16:
			half.EncodeBF16(t.Data, values)
		default:
			half.EncodeF32(t.Data, values)
		}
		return t
	}
	random := func(shape ...int) *checkpoint.Tensor {
		return tensor(func(i int) float32 { return block[i%len(block)] }, shape...)
	}
	constant := func(v float32, n int) *checkpoint.Tensor { return tensor(func(int) float32 { return v }, n) }
	h, f := c.HiddenSize, c.FFNDim
	linear := func(out, in int) checkpoint.Linear {
		return checkpoint.Linear{Weight: random(out, in), Bias: constant(0, out)}
	}
	layerNorm := func() checkpoint.LayerNorm {
		return checkpoint.LayerNorm{Weight: constant(1, h), Bias: constant(0, h)}
	}
	w := checkpoint.Weights{
		EmbedTokens:    random(c.VocabSize, c.WordEmbedProjDim),
		EmbedPositions: random(c.MaxPositionEmbeddings+checkpoint.PositionOffset, h),
		FinalLayerNorm: layerNorm(),
	}
	w.LMHead = w.EmbedTokens
	for range c.NumHiddenLayers {
		w.Layers = append(w.Layers, checkpoint.Layer{
			QProj: linear(h, h), KProj: linear(h, h), VProj: linear(h, h), OutProj: linear(h, h),
			FC1: linear(f, h), FC2: linear(h, f),
			SelfAttnLayerNorm: layerNorm(), FinalLayerNorm: layerNorm(),
		})
	}
	return &checkpoint.Model{Config: c, Weights: w}
}

// BenchmarkOPT125M runs a 512-token prompt and 16 decode steps on random weights
// shaped like opt-125m, stored as f16 and as f32. It reports prefill speed in
// GFLOP/s of the linear layers (2·P·layers·(4h² + 2h·ffn); attention's own
// products are done but not counted) and decode speed in tokens/s.
func BenchmarkOPT125M(b *testing.B) {
	const prompt, steps = 512, 16
	cfg, err := checkpoint.SynthOptions{Preset: "opt-125m"}.Config()
	if err != nil {
		b.Fatal(err)
	}
	threads := []int{1}
	if n := runtime.GOMAXPROCS(0); n > 1 {
		threads = append(threads, n)
	}
	for _, d := range []half.DType{half.F16, half.F32} {
		var model *checkpoint.Model // built on first use: -bench may select no case of d
		for _, n := range threads {
			b.Run(fmt.Sprintf("%v/threads=%d", d, n), func(b *testing.B) {
				if model == nil {
					model = randomModel(cfg, d)
				}
				backend, err := cpu.New(model, cpu.Options{Threads: n})
				if err != nil {
					b.Fatal(err)
				}
				benchmarkDecoding(b, gpu.New(backend), prompt, steps)
			})
		}
	}
}

func benchmarkDecoding(b *testing.B, e *gpu.Engine, prompt, steps int) {
	cfg := e.Config()
	tokens := randomTokens(1, prompt+steps, cfg.VocabSize)
	logits := make([]float32, cfg.VocabSize)
	var prefill, decode time.Duration
	for b.Loop() {
		seq, err := e.NewSequence(prompt+steps, false)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := seq.Feed(tokens[:prompt], gpu.Outputs{Logits: logits}); err != nil {
			b.Fatal(err)
		}
		prefill += time.Since(start)
		start = time.Now()
		for i := range steps {
			if err := seq.Feed(tokens[prompt+i:prompt+i+1], gpu.Outputs{Logits: logits}); err != nil {
				b.Fatal(err)
			}
		}
		decode += time.Since(start)
		seq.Close()
	}
	h, f := float64(cfg.HiddenSize), float64(cfg.FFNDim)
	flops := 2 * float64(prompt*cfg.NumHiddenLayers) * (4*h*h + 2*h*f) * float64(b.N)
	b.ReportMetric(flops/prefill.Seconds()/1e9, "prefill-GFLOP/s")
	b.ReportMetric(float64(steps*b.N)/decode.Seconds(), "decode-tok/s")
}
