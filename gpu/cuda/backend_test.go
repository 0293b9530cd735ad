//go:build cuda

package cuda_test

import (
	"testing"

	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/gpu/cuda"
	"github.com/kvsim/kvsim/internal/half"
)

// TestBackendMatchesCPU runs tiny random OPTs of every architecture and dtype on the
// CUDA backend and on the CPU backend, the reference, with and without eviction into
// compensation slots. It needs an NVIDIA GPU.
func TestBackendMatchesCPU(t *testing.T) {
	for _, c := range []struct {
		name   string
		dtype  half.DType
		postLN bool
	}{
		{"pre-LN f16", half.F16, false},
		{"pre-LN bf16", half.BF16, false},
		{"post-LN f32 with projections", half.F32, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := loadModel(t, synthDir(t, c.dtype, c.postLN))
			ref, err := cpu.New(m, cpu.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			test, err := cuda.New(m, cuda.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer test.Close()
			// 20 prompt tokens: the prefill kernels (more than 4 rows); then decode.
			r, err := cuda.CompareBackends(ref, test, cuda.CompareOptions{Prompt: prompt(20), Gen: 8, Budget: 10, KeepLogits: true})
			if err != nil {
				t.Fatal(err)
			}
			if r.LogitsRelErr > 1e-2 || r.EvictLogitsRelErr > 1e-2 || r.QKVRelErr > 1e-2 || r.ProbsMaxAbsErr > 1e-2 {
				t.Errorf("CUDA differs from CPU beyond fp16 tolerance: %+v", r)
			}
			// Greedy choices may differ only at near-ties.
			if n := r.ClearDisagreements(); n > 0 {
				t.Errorf("greedy tokens differ beyond near-ties at %d steps: CPU %v, CUDA %v", n, r.RefTokens, r.TestTokens)
			}
		})
	}
}
