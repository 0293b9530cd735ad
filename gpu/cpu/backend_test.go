package cpu_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/policies"
)

// TestCachedDecodeMatchesRecompute feeds a prompt, then one token at a time through
// the KV cache, and compares each step's logits with a fresh run over the whole
// prefix; greedy generation must pick the recomputed argmax at every step.
func TestCachedDecodeMatchesRecompute(t *testing.T) {
	for _, o := range []checkpoint.SynthOptions{tinyOptions(half.F32), postLNOptions()} {
		m := load(t, synth(t, o), checkpoint.Safetensors)
		e := newEngine(t, m, 2)
		V := m.Config.VocabSize
		tokens := randomTokens(5, 90, V)
		full, _ := run(t, e, tokens)

		const P = 70 // two blocks of attention rows
		seq, err := e.NewSequence(len(tokens), false)
		if err != nil {
			t.Fatal(err)
		}
		logits := make([]float32, V)
		for t0 := P; t0 <= len(tokens); t0++ {
			feed := tokens[t0-1 : t0]
			if t0 == P {
				feed = tokens[:P]
			}
			if err := seq.Feed(feed, gpu.Outputs{Logits: logits}); err != nil {
				t.Fatal(err)
			}
			want := make([]float64, V)
			for i, x := range full[(t0-1)*V : t0*V] {
				want[i] = float64(x)
			}
			if err := relErr(logits, want); err > 1e-5 {
				t.Errorf("%s: position %d: cached logits differ from recomputed by %.2g", o.Preset, t0-1, err)
			}
		}
		seq.Close()

		g, err := e.Generate(context.Background(), tokens[:P], gpu.GenerateOptions{MaxNew: 8, IgnoreEOS: true})
		if err != nil {
			t.Fatal(err)
		}
		prefix := slices.Clone(tokens[:P])
		for i, got := range g.Tokens {
			l, _ := run(t, e, prefix)
			want := argmax(l[len(l)-V:])
			if got != want {
				t.Fatalf("%s: generated token %d is %d, the recomputed argmax is %d", o.Preset, i, got, want)
			}
			prefix = append(prefix, got)
		}
		if len(g.Tokens) != 8 {
			t.Errorf("generated %d tokens, want 8", len(g.Tokens))
		}
	}
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// TestThreadsDoNotChangeResults runs prefill and decode with 1, 2 and 5 workers and
// requires bit-identical logits and probabilities.
func TestThreadsDoNotChangeResults(t *testing.T) {
	for _, d := range []half.DType{half.F16, half.F32} {
		testThreads(t, load(t, synth(t, tinyOptions(d)), checkpoint.Safetensors))
	}
}

func testThreads(t *testing.T, m *checkpoint.Model) {
	tokens := randomTokens(9, 33, m.Config.VocabSize)
	var want []float32
	for _, threads := range []int{1, 2, 5} {
		e := newEngine(t, m, threads)
		seq, err := e.NewSequence(len(tokens), false)
		if err != nil {
			t.Fatal(err)
		}
		var got []float32
		out := gpu.Outputs{Logits: make([]float32, m.Config.VocabSize), Want: gpu.Want{Probs: true, QKV: true},
			Observe: func(v *gpu.LayerView) error {
				got = append(append(append(got, v.Probs...), v.Q...), v.V...)
				return nil
			}}
		for i, feed := range [][]int32{tokens[:30], tokens[30:31], tokens[31:32], tokens[32:]} {
			if err := seq.Feed(feed, out); err != nil {
				t.Fatal(i, err)
			}
			got = append(got, out.Logits...)
		}
		seq.Close()
		if want == nil {
			want = got
			continue
		}
		if !slices.Equal(got, want) {
			t.Errorf("%d threads: results differ from 1 thread", threads)
		}
	}
}

// TestPyTorchMatchesSafetensors loads the two weight files of one synthesized model
// and requires identical outputs.
func TestPyTorchMatchesSafetensors(t *testing.T) {
	dir := synth(t, tinyOptions(half.F16))
	tokens := randomTokens(4, 20, 300)
	var outputs [][]float32
	for _, f := range []checkpoint.Format{checkpoint.Safetensors, checkpoint.PyTorch} {
		m := load(t, dir, f)
		if m.Format != f {
			t.Fatalf("loaded %v, asked for %v", m.Format, f)
		}
		logits, _ := run(t, newEngine(t, m, 2), tokens)
		outputs = append(outputs, logits)
	}
	if !slices.Equal(outputs[0], outputs[1]) {
		t.Error("pytorch_model.bin and model.safetensors give different logits")
	}
}

// TestEvictionAndCompensation evicts prompt tokens of layer 0, folding some into the
// compensation slot, then decodes one token and checks its layer-0 attention against
// a float64 softmax over the resident tokens' logits and the compensation slot's
// (logit q·k' with k' the weighted mean of the folded keys). The new token must take
// the lowest freed slot.
func TestEvictionAndCompensation(t *testing.T) {
	m := load(t, synth(t, tinyOptions(half.F32)), checkpoint.Safetensors)
	e := newEngine(t, m, 2)
	cfg := m.Config
	H, d := cfg.NumAttentionHeads, cfg.HeadDim()
	tokens := randomTokens(8, 11, cfg.VocabSize)
	const P, C = 10, 11 // layer 1 evicts nothing, so it needs a slot for the new token
	seq, err := e.NewSequence(C, true)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	// Keys and values by position, layer 0: [pos][heads·head_dim].
	var keys, values [][]float32
	var query []float32
	var probs, comp []float32
	var slots []int32
	observe := func(v *gpu.LayerView) error {
		if v.Layer != 0 {
			return nil
		}
		for r := range v.Rows {
			w := v.Heads * v.HeadDim
			keys = append(keys, slices.Clone(v.K[r*w:(r+1)*w]))
			values = append(values, slices.Clone(v.V[r*w:(r+1)*w]))
		}
		query = slices.Clone(v.Q)
		probs, comp, slots = slices.Clone(v.Probs), slices.Clone(v.Comp), slices.Clone(v.Slots)
		return nil
	}
	want := gpu.Want{QKV: true, Probs: true, Layers: []bool{true, false}}
	if err := seq.Feed(tokens[:P], gpu.Outputs{Want: want, Observe: observe}); err != nil {
		t.Fatal(err)
	}

	// Head h evicts slots 2+h and 6: the first with weight 1+h, the second with 0.5,
	// except head 3, which drops them without merging (weight 0).
	ev := &policies.Eviction{Heads: H, Stride: C, Need: make([]int32, H), Count: make([]int32, H),
		Victims: make([]int32, H*C), Weights: make([]float32, H*C)}
	for h := range H {
		w1, w2 := float32(1+h), float32(0.5)
		if h == 3 {
			w1, w2 = 0, 0
		}
		ev.Victim(h, int32(2+h), w1)
		ev.Victim(h, 6, w2)
	}
	if err := seq.Evict(0, ev); err != nil {
		t.Fatal(err)
	}
	if err := seq.Feed(tokens[P:], gpu.Outputs{Want: want, Observe: observe}); err != nil {
		t.Fatal(err)
	}

	for h := range H {
		if wantSlot := int32(2 + h); slots[h] != wantSlot {
			t.Errorf("head %d: new token in slot %d, want %d (the lowest free)", h, slots[h], wantSlot)
		}
		head := func(x []float32) []float64 {
			out := make([]float64, d)
			for i := range d {
				out[i] = float64(x[h*d+i])
			}
			return out
		}
		dot := func(a, b []float64) float64 {
			var s float64
			for i := range a {
				s += a[i] * b[i]
			}
			return s
		}
		q := head(query)
		// The compensation slot: weighted mean of the folded keys.
		ck, weight := make([]float64, d), 0.0
		for _, f := range []struct {
			pos int
			w   float64
		}{{2 + h, float64(1 + h)}, {6, 0.5}} {
			if h == 3 {
				break
			}
			k := head(keys[f.pos])
			for i := range ck {
				ck[i] = (ck[i]*weight + k[i]*f.w) / (weight + f.w)
			}
			weight += f.w
		}
		// Resident positions by slot after the eviction and the new token.
		resident := map[int]int{} // slot → position
		for s := range P {
			if s != 2+h && s != 6 {
				resident[s] = s
			}
		}
		resident[2+h] = P
		logits := map[int]float64{}
		maxLogit := math.Inf(-1)
		for s, p := range resident {
			logits[s] = dot(q, head(keys[p]))
			maxLogit = math.Max(maxLogit, logits[s])
		}
		compLogit := math.Inf(-1)
		if weight > 0 {
			compLogit = dot(q, ck)
			maxLogit = math.Max(maxLogit, compLogit)
		}
		sum := math.Exp(compLogit - maxLogit)
		for _, x := range logits {
			sum += math.Exp(x - maxLogit)
		}
		row := probs[h*C : (h+1)*C]
		for s := range C {
			want := 0.0
			if x, ok := logits[s]; ok {
				want = math.Exp(x-maxLogit) / sum
			}
			if math.Abs(float64(row[s])-want) > 1e-6 {
				t.Errorf("head %d slot %d: probability %.7f, want %.7f", h, s, row[s], want)
			}
		}
		if wantComp := math.Exp(compLogit-maxLogit) / sum; math.Abs(float64(comp[h])-wantComp) > 1e-6 {
			t.Errorf("head %d: compensation probability %.7f, want %.7f", h, comp[h], wantComp)
		}
	}
	if got := seq.Slots(1).Resident(0); got != P+1 {
		t.Errorf("layer 1 holds %d tokens, want %d: eviction must touch only its layer", got, P+1)
	}
}

// TestFeedErrors checks that bad input is reported, not panicked on.
func TestFeedErrors(t *testing.T) {
	m := load(t, synth(t, tinyOptions(half.F32)), checkpoint.Safetensors)
	e := newEngine(t, m, 1)
	V := m.Config.VocabSize
	cases := []struct {
		name     string
		capacity int
		tokens   []int32
		logits   int
		want     string
	}{
		{"token outside vocabulary", 4, []int32{1, int32(V)}, 0, "outside the vocabulary"},
		{"negative token", 4, []int32{-1}, 0, "outside the vocabulary"},
		{"beyond positions", 170, make([]int32, 161), 0, "max_position_embeddings"},
		{"capacity", 2, []int32{1, 2, 3}, 0, "free slots"},
		{"logits size", 4, []int32{1, 2}, V + 1, "multiple of the vocabulary"},
		{"too many logit rows", 4, []int32{1}, 2 * V, "at most one row per token"},
		{"no tokens", 4, nil, 0, "no tokens"},
	}
	for _, c := range cases {
		seq, err := e.NewSequence(c.capacity, false)
		if err != nil {
			t.Fatal(err)
		}
		err = seq.Feed(c.tokens, gpu.Outputs{Logits: make([]float32, c.logits)})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
		if seq.Len() != 0 {
			t.Errorf("%s: a failed feed advanced the sequence to %d", c.name, seq.Len())
		}
		seq.Close()
	}

	other, err := cpu.New(m, cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := other.NewKV(4, false)
	if err != nil {
		t.Fatal(err)
	}
	err = e.Backend().Forward(kv, &gpu.Batch{Tokens: []int32{1}, Positions: []int32{0}, Slots: [][]int32{{0, 0, 0, 0}, {0, 0, 0, 0}}})
	if err == nil || !strings.Contains(err.Error(), "another backend") {
		t.Errorf("forward with a foreign cache: %v", err)
	}
}
