package cpu_test

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
)

// tinyOptions is a two-layer random OPT small enough to run in milliseconds.
func tinyOptions(dtype half.DType) checkpoint.SynthOptions {
	return checkpoint.SynthOptions{
		NumHiddenLayers: 2, HiddenSize: 64, NumAttentionHeads: 4,
		VocabSize: 300, MaxPositionEmbeddings: 160, DType: dtype, Seed: 11,
	}
}

// postLNOptions is opt-350m's architecture shrunk: post-LayerNorm, no final
// LayerNorm, and project_in/project_out around a narrower embedding.
func postLNOptions() checkpoint.SynthOptions {
	o := tinyOptions(half.F32)
	o.Preset = "opt-350m"
	return o
}

func synth(t testing.TB, o checkpoint.SynthOptions) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	if err := checkpoint.WriteSynth(dir, o); err != nil {
		t.Fatal(err)
	}
	return dir
}

func load(t testing.TB, dir string, formats checkpoint.Format) *checkpoint.Model {
	t.Helper()
	m, err := checkpoint.LoadFormat(dir, formats)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func newEngine(t testing.TB, m *checkpoint.Model, threads int) *gpu.Engine {
	t.Helper()
	b, err := cpu.New(m, cpu.Options{Threads: threads})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return gpu.New(b)
}

func randomTokens(seed uint64, n, vocab int) []int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	tokens := make([]int32, n)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(vocab))
	}
	return tokens
}

// run feeds tokens to a fresh sequence in one batch and returns the logits of every
// token and each layer's attention probabilities ([layer][head][row][slot]).
func run(t testing.TB, e *gpu.Engine, tokens []int32) (logits []float32, probs [][]float32) {
	t.Helper()
	cfg := e.Config()
	seq, err := e.NewSequence(len(tokens), false)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	logits = make([]float32, len(tokens)*cfg.VocabSize)
	probs = make([][]float32, cfg.NumHiddenLayers)
	err = seq.Feed(tokens, gpu.Outputs{Logits: logits, Want: gpu.Want{Probs: true},
		Observe: func(v *gpu.LayerView) error {
			probs[v.Layer] = append([]float32(nil), v.Probs...)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	return logits, probs
}

// refModel is the model's weights in float64, read with the checkpoint's own
// conversions.
type refModel struct {
	cfg                      checkpoint.Config
	embed, positions, lmHead [][]float64
	projectIn, projectOut    [][]float64
	finalNormW, finalNormB   []float64
	layers                   []refLayer
}

type refLayer struct {
	wq, wk, wv, wo, w1, w2 [][]float64
	bq, bk, bv, bo, b1, b2 []float64
	ln1w, ln1b, ln2w, ln2b []float64
}

func vec(t *checkpoint.Tensor) []float64 {
	if t == nil {
		return nil
	}
	out := make([]float64, t.Numel())
	for i, v := range t.Float32(nil) {
		out[i] = float64(v)
	}
	return out
}

func mat(t *checkpoint.Tensor) [][]float64 {
	if t == nil {
		return nil
	}
	flat := vec(t)
	rows := make([][]float64, t.Shape[0])
	for i := range rows {
		rows[i] = flat[i*t.Shape[1] : (i+1)*t.Shape[1]]
	}
	return rows
}

func newRef(m *checkpoint.Model) *refModel {
	w := &m.Weights
	r := &refModel{cfg: m.Config, embed: mat(w.EmbedTokens), positions: mat(w.EmbedPositions), lmHead: mat(w.LMHead),
		projectIn: mat(w.ProjectIn), projectOut: mat(w.ProjectOut),
		finalNormW: vec(w.FinalLayerNorm.Weight), finalNormB: vec(w.FinalLayerNorm.Bias)}
	for _, l := range w.Layers {
		r.layers = append(r.layers, refLayer{
			wq: mat(l.QProj.Weight), wk: mat(l.KProj.Weight), wv: mat(l.VProj.Weight), wo: mat(l.OutProj.Weight),
			w1: mat(l.FC1.Weight), w2: mat(l.FC2.Weight),
			bq: vec(l.QProj.Bias), bk: vec(l.KProj.Bias), bv: vec(l.VProj.Bias), bo: vec(l.OutProj.Bias),
			b1: vec(l.FC1.Bias), b2: vec(l.FC2.Bias),
			ln1w: vec(l.SelfAttnLayerNorm.Weight), ln1b: vec(l.SelfAttnLayerNorm.Bias),
			ln2w: vec(l.FinalLayerNorm.Weight), ln2b: vec(l.FinalLayerNorm.Bias),
		})
	}
	return r
}

// affine returns W·x + b (b may be nil).
func affine(w [][]float64, b, x []float64) []float64 {
	y := make([]float64, len(w))
	for i, row := range w {
		for j, v := range row {
			y[i] += v * x[j]
		}
		if b != nil {
			y[i] += b[i]
		}
	}
	return y
}

func layerNorm(x, w, b []float64) []float64 {
	var mean, variance float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(len(x))
	for _, v := range x {
		variance += (v - mean) * (v - mean)
	}
	variance /= float64(len(x))
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = (v - mean) / math.Sqrt(variance+1e-5)
		if w != nil {
			y[i] = y[i]*w[i] + b[i]
		}
	}
	return y
}

func add(x, y []float64) []float64 {
	z := make([]float64, len(x))
	for i := range x {
		z[i] = x[i] + y[i]
	}
	return z
}

// forward is OPTForCausalLM.forward on one unpadded sequence, in float64: the logits
// of every token, and each layer's attention probabilities [layer][head][row][j].
func (r *refModel) forward(tokens []int32) (logits [][]float64, probs [][][][]float64) {
	cfg := r.cfg
	T, H, d := len(tokens), cfg.NumAttentionHeads, cfg.HeadDim()
	x := make([][]float64, T)
	for t, tok := range tokens {
		e := r.embed[tok]
		if r.projectIn != nil {
			e = affine(r.projectIn, nil, e)
		}
		x[t] = add(e, r.positions[t+2]) // OPT's learned positions start at row 2
	}
	for _, l := range r.layers {
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			y := x[t]
			if cfg.DoLayerNormBefore {
				y = layerNorm(x[t], l.ln1w, l.ln1b)
			}
			q[t], k[t], v[t] = affine(l.wq, l.bq, y), affine(l.wk, l.bk, y), affine(l.wv, l.bv, y)
			for i := range q[t] {
				q[t][i] /= math.Sqrt(float64(d))
			}
		}
		layerProbs := make([][][]float64, H)
		for h := range H {
			layerProbs[h] = make([][]float64, T)
		}
		for t := range T {
			o := make([]float64, cfg.HiddenSize)
			for h := range H {
				p := make([]float64, t+1)
				maxLogit := math.Inf(-1)
				for j := range p {
					for i := h * d; i < (h+1)*d; i++ {
						p[j] += q[t][i] * k[j][i]
					}
					maxLogit = math.Max(maxLogit, p[j])
				}
				var sum float64
				for j := range p {
					p[j] = math.Exp(p[j] - maxLogit)
					sum += p[j]
				}
				for j := range p {
					p[j] /= sum
					for i := h * d; i < (h+1)*d; i++ {
						o[i] += p[j] * v[j][i]
					}
				}
				layerProbs[h][t] = p
			}
			x[t] = add(x[t], affine(l.wo, l.bo, o))
			if !cfg.DoLayerNormBefore {
				x[t] = layerNorm(x[t], l.ln1w, l.ln1b)
			}
			y := x[t]
			if cfg.DoLayerNormBefore {
				y = layerNorm(x[t], l.ln2w, l.ln2b)
			}
			f := affine(l.w1, l.b1, y)
			for i := range f {
				f[i] = math.Max(f[i], 0)
			}
			x[t] = add(x[t], affine(l.w2, l.b2, f))
			if !cfg.DoLayerNormBefore {
				x[t] = layerNorm(x[t], l.ln2w, l.ln2b)
			}
		}
		probs = append(probs, layerProbs)
	}
	for t := range T {
		y := x[t]
		if cfg.HasFinalLayerNorm() {
			y = layerNorm(y, r.finalNormW, r.finalNormB)
		}
		if r.projectOut != nil {
			y = affine(r.projectOut, nil, y)
		}
		logits = append(logits, affine(r.lmHead, nil, y))
	}
	return logits, probs
}

// relErr is ‖got − want‖₂ / ‖want‖₂.
func relErr(got []float32, want []float64) float64 {
	var diff, norm float64
	for i, w := range want {
		diff += (float64(got[i]) - w) * (float64(got[i]) - w)
		norm += w * w
	}
	return math.Sqrt(diff / norm)
}

// TestMatchesReference compares the engine with the float64 reference above on every
// architecture variant and weight dtype: logits within 1e-5 relative error, and
// attention probabilities within 4e-6.
func TestMatchesReference(t *testing.T) {
	bf16 := tinyOptions(half.BF16)
	bf16.Formats = checkpoint.Safetensors
	cases := []struct {
		name string
		opts checkpoint.SynthOptions
	}{
		{"pre-LN f32", tinyOptions(half.F32)},
		{"pre-LN f16", tinyOptions(half.F16)},
		{"pre-LN bf16", bf16},
		{"post-LN with projections (opt-350m)", postLNOptions()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := load(t, synth(t, c.opts), checkpoint.Safetensors)
			if c.opts.Preset == "opt-350m" && (m.Config.DoLayerNormBefore || !m.Config.HasProjection()) {
				t.Fatalf("config %+v is not opt-350m's architecture", m.Config)
			}
			tokens := randomTokens(3, 100, m.Config.VocabSize) // two blocks of attention rows
			logits, probs := run(t, newEngine(t, m, 2), tokens)
			wantLogits, wantProbs := newRef(m).forward(tokens)
			V, T := m.Config.VocabSize, len(tokens)
			var worstLogits float64
			for i := range T {
				e := relErr(logits[i*V:(i+1)*V], wantLogits[i])
				worstLogits = math.Max(worstLogits, e)
				if e > 1e-5 {
					t.Errorf("token %d: logits relative error %.2g", i, e)
				}
			}
			var worst float64
			for l := range probs {
				for h := range m.Config.NumAttentionHeads {
					for r := range T {
						row := probs[l][(h*T+r)*T : (h*T+r+1)*T]
						for j, p := range row {
							want := 0.0
							if j <= r {
								want = wantProbs[l][h][r][j]
							}
							worst = math.Max(worst, math.Abs(float64(p)-want))
						}
					}
				}
			}
			t.Logf("logits relative error ≤ %.2g, probabilities within %.2g", worstLogits, worst)
			if worst > 4e-6 {
				t.Errorf("attention probabilities differ by up to %.2g", worst)
			}
		})
	}
}
