package kvtrace

import (
	"path/filepath"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
)

// BenchmarkRead converts one OPT-13B-sized layer tensor (40 heads × 1024 tokens ×
// 128) per iteration and reports the stored bytes read per second.
func BenchmarkRead(b *testing.B) {
	m := Meta{Model: "synthetic/opt-13b", Layers: 1, Heads: 40, HeadDim: 128, PromptLen: 1000, GenLen: 24,
		Source: SourceSynthetic, SampleID: "bench"}
	values := make([]float32, m.Heads*m.Tokens()*m.HeadDim)
	for i := range values {
		values[i] = float32(i%2001-1000) / 256
	}
	tokens := make([]int32, m.Tokens())
	for _, dtype := range []half.DType{half.F16, half.BF16, half.F32} {
		b.Run(dtype.String(), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "bench.safetensors")
			err := Write(path, m, dtype, tokens, func(int) (_, _, _ []float32, _ error) { return values, values, nil, nil })
			if err != nil {
				b.Fatal(err)
			}
			tr, err := Open(path)
			if err != nil {
				b.Fatal(err)
			}
			defer tr.Close()
			dst := make([]float32, len(values))
			bytes := float64(len(values) * dtype.Size())
			for b.Loop() {
				if dst, err = tr.Read(K, 0, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(bytes*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}
