package cuda_test

import (
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/gpu/cuda"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
)

// synthDir writes a tiny random OPT (two layers, hidden 64, four heads) in dtype,
// pre-LN or, with postLN, shaped like opt-350m (post-LN, project_in and project_out).
func synthDir(t *testing.T, dtype half.DType, postLN bool) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	o := checkpoint.SynthOptions{NumHiddenLayers: 2, HiddenSize: 64, NumAttentionHeads: 4, VocabSize: 300,
		MaxPositionEmbeddings: 64, DType: dtype, Seed: 5, Formats: checkpoint.Safetensors}
	if postLN {
		o.Preset = "opt-350m"
	}
	if err := checkpoint.WriteSynth(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadModel(t *testing.T, dir string) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// cpuBackend opens a tiny random OPT in dtype on the CPU backend.
func cpuBackend(t *testing.T, dtype half.DType, threads int) *cpu.Backend {
	t.Helper()
	b, err := cpu.New(loadModel(t, synthDir(t, dtype, false)), cpu.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func prompt(n int) []int32 {
	rng := rand.New(rand.NewPCG(9, 9))
	p := make([]int32, n)
	for i := range p {
		p[i] = int32(rng.IntN(300))
	}
	return p
}

// TestCompareIdenticalBackends: the CPU backend is bit-identical at any thread
// count, so every difference must be exactly zero, with and without eviction.
func TestCompareIdenticalBackends(t *testing.T) {
	ref, test := cpuBackend(t, half.F32, 1), cpuBackend(t, half.F32, 2)
	r, err := cuda.CompareBackends(ref, test, cuda.CompareOptions{Prompt: prompt(20), Gen: 6, Budget: 8})
	if err != nil {
		t.Fatal(err)
	}
	if r.LogitsRelErr != 0 || r.QKVRelErr != 0 || r.ProbsMaxAbsErr != 0 || r.EvictLogitsRelErr != 0 {
		t.Errorf("identical backends differ: %+v", r)
	}
	if r.Steps != 14 || r.TokensAgree != 7 || len(r.RefTokens) != 7 {
		t.Errorf("%d steps and %d of %d tokens agreeing, want 14 steps and 7 of 7", r.Steps, r.TokensAgree, len(r.RefTokens))
	}
}

// TestCompareSeesRounding: the same random weights stored in f16 instead of f32
// differ by fp16 rounding (relative 2^-11 per weight), which the comparison must
// see, at a size well under the 1e-2 the CUDA backend is held to.
func TestCompareSeesRounding(t *testing.T) {
	ref, test := cpuBackend(t, half.F32, 1), cpuBackend(t, half.F16, 1)
	r, err := cuda.CompareBackends(ref, test, cuda.CompareOptions{Prompt: prompt(20), Gen: 4, Budget: 8})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct {
		name string
		v    float64
	}{{"logits", r.LogitsRelErr}, {"q, k, v", r.QKVRelErr}, {"probabilities", r.ProbsMaxAbsErr}, {"logits with eviction", r.EvictLogitsRelErr}} {
		if !(e.v > 1e-6 && e.v < 1e-2) {
			t.Errorf("%s differ by %g, want between 1e-6 and 1e-2", e.name, e.v)
		}
	}
}

// TestClearDisagreements: a token choice that loses by more than ten times the
// logits' error counts; a near-tie does not.
func TestClearDisagreements(t *testing.T) {
	r := &cuda.CompareResult{
		LogitsRelErr: 0.01, // with logits up to 1: a tolerance of 0.1
		RefTokens:    []int32{2, 2, 1},
		TestTokens:   []int32{0, 0, 1},
		RefLogits:    [][]float32{{0, 0.5, 1}, {0.95, 0, 1}, {0, 1, 0}},
	}
	if n := r.ClearDisagreements(); n != 1 {
		t.Errorf("%d clear disagreements, want 1 (the first step: a gap of 1 against 0.1)", n)
	}
}
