package synth

import (
	"testing"

	"github.com/kvsim/kvsim/sim/kvtrace"
)

// BenchmarkRead13B generates one layer's queries and keys of an OPT-13B shaped trace
// (40 heads × 1088 tokens × 128), as replay reads them.
func BenchmarkRead13B(b *testing.B) {
	tr, err := New(Options{Preset: "opt-13b", PromptLen: 1024, GenLen: 64, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var q, k []float32
	layer := 0
	for b.Loop() {
		if q, err = tr.Read(kvtrace.Q, layer, q); err != nil {
			b.Fatal(err)
		}
		if k, err = tr.Read(kvtrace.K, layer, k); err != nil {
			b.Fatal(err)
		}
		layer = (layer + 1) % tr.Meta().Layers
	}
	b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/layer")
}
