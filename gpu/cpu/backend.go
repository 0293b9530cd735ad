// Package cpu is the CPU backend of kvsim's OPT engine (package gpu): the forward
// pass of an OPT checkpoint in float32 on the host, the numerical reference for
// the other backends.
//
// # Weights stay as stored
//
// The backend reads the checkpoint's weight matrices straight from their mapping,
// in their stored dtype (f16, bf16 or f32), and widens them to float32 as it goes:
//
//   - with a few rows to multiply (decode), each weight row is widened and
//     multiplied in one pass by AVX2/F16C assembly, so decode reads every weight
//     once per token at its stored size;
//   - with many rows (prefill), a panel of weight rows is widened into a scratch
//     buffer that stays in cache and multiplied by kernel.MatMulNT, the same
//     kernel replay uses for attention logits; the widening is paid once for all
//     rows.
//
// A float32 copy of every weight would spare the widening but double or triple
// the memory of an f16 or bf16 model, and decode would read twice the bytes per
// token; only biases and LayerNorm parameters, which are tiny, are converted once.
//
// # Threads and determinism
//
// Matrix products are split by output columns and attention by heads across
// Options.Threads workers. Every output element is computed by the same
// instructions in the same order whatever the split, so results are bit-identical
// at any thread count.
package cpu

import (
	"errors"
	"fmt"
	"math"
	"runtime"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/kernel"
)

// Options configures the CPU backend.
type Options struct {
	// Threads is the number of workers; 0 means runtime.GOMAXPROCS(0). It never
	// changes results.
	Threads int
}

// Backend runs an OPT model on the CPU. It implements gpu.Backend.
type Backend struct {
	cfg     checkpoint.Config
	threads int
	work    []workspace // one per worker

	embedTokens, embedPositions matrix
	projectIn, projectOut       *linear // nil unless the model has them
	finalNorm                   *norm   // nil unless the model has it
	layers                      []layer
	lmHead                      matrix

	act activations
}

// layer is one decoder layer's parameters.
type layer struct {
	q, k, v, out, fc1, fc2 linear
	attnNorm, ffnNorm      norm
}

// norm is a LayerNorm's affine parameters; both nil without them.
type norm struct {
	weight, bias []float32
}

// activations are the buffers of one Forward call, grown as needed and reused.
type activations struct {
	embed   []float32 // [n][word_embed_proj_dim] when projecting in
	hidden  []float32 // [n][hidden]: the residual stream
	normed  []float32 // [n][hidden]: the LayerNorm output (pre-LN)
	q, k, v []float32 // [n][hidden]
	attn    []float32 // [n][hidden]: attention output, then a projection's output
	ffn     []float32 // [n][ffn_dim]
	final   []float32 // [rows][word_embed_proj_dim]: what the LM head reads
	probs   []float32 // [heads][n][capacity] when observed
	comp    []float32 // [heads][n] when observed with compensation
}

// New builds a CPU backend over a loaded checkpoint. The backend reads the model's
// mapped weights, so m must stay open until the backend is no longer used.
func New(m *checkpoint.Model, o Options) (*Backend, error) {
	if o.Threads < 0 {
		return nil, fmt.Errorf("cpu backend: %d threads", o.Threads)
	}
	cfg := m.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cpu backend: %w", err)
	}
	w := &m.Weights
	if w.EmbedTokens == nil || w.EmbedPositions == nil || w.LMHead == nil || len(w.Layers) != cfg.NumHiddenLayers {
		return nil, errors.New("cpu backend: the model's weights are incomplete")
	}
	b := &Backend{cfg: cfg, threads: o.Threads}
	if b.threads == 0 {
		b.threads = runtime.GOMAXPROCS(0)
	}
	b.work = make([]workspace, b.threads)
	b.embedTokens = newMatrix(w.EmbedTokens)
	b.embedPositions = newMatrix(w.EmbedPositions)
	b.lmHead = newMatrix(w.LMHead)
	if cfg.HasProjection() {
		if w.ProjectIn == nil || w.ProjectOut == nil {
			return nil, errors.New("cpu backend: the config asks for project_in and project_out, the weights lack them")
		}
		in, out := newLinear(checkpoint.Linear{Weight: w.ProjectIn}), newLinear(checkpoint.Linear{Weight: w.ProjectOut})
		b.projectIn, b.projectOut = &in, &out
	}
	if cfg.HasFinalLayerNorm() {
		n := newNorm(w.FinalLayerNorm)
		b.finalNorm = &n
	}
	b.layers = make([]layer, cfg.NumHiddenLayers)
	for i, l := range w.Layers {
		b.layers[i] = layer{
			q: newLinear(l.QProj), k: newLinear(l.KProj), v: newLinear(l.VProj), out: newLinear(l.OutProj),
			fc1: newLinear(l.FC1), fc2: newLinear(l.FC2),
			attnNorm: newNorm(l.SelfAttnLayerNorm), ffnNorm: newNorm(l.FinalLayerNorm),
		}
	}
	return b, nil
}

func newNorm(n checkpoint.LayerNorm) norm {
	var p norm
	if n.Weight != nil {
		p.weight = n.Weight.Float32(nil)
	}
	if n.Bias != nil {
		p.bias = n.Bias.Float32(nil)
	}
	return p
}

// Name is "cpu".
func (b *Backend) Name() string { return "cpu" }

// Config is the model's configuration.
func (b *Backend) Config() checkpoint.Config { return b.cfg }

// Threads is the number of workers.
func (b *Backend) Threads() int { return b.threads }

// Close drops the backend's buffers; Forward fails afterwards. The checkpoint stays
// open.
func (b *Backend) Close() error {
	b.act = activations{}
	b.work = nil
	return nil
}

// Forward runs a batch through the model; see gpu.Backend.
func (b *Backend) Forward(kvi gpu.KV, batch *gpu.Batch) error {
	if b.work == nil {
		return errors.New("cpu backend: Forward after Close")
	}
	kv, ok := kvi.(*cache)
	if !ok || kv.backend != b {
		return errors.New("cpu backend: Forward with a KV cache from another backend")
	}
	if kv.closed {
		return errors.New("cpu backend: Forward with a closed KV cache")
	}
	if err := b.check(kv, batch); err != nil {
		return err
	}
	cfg := &b.cfg
	n, h, f := len(batch.Tokens), cfg.HiddenSize, cfg.FFNDim
	a := &b.act
	a.hidden = buf.Grow(a.hidden, n*h)
	a.normed = buf.Grow(a.normed, n*h)
	a.q, a.k, a.v = buf.Grow(a.q, n*h), buf.Grow(a.k, n*h), buf.Grow(a.v, n*h)
	a.attn = buf.Grow(a.attn, n*h)
	a.ffn = buf.Grow(a.ffn, n*f)
	b.embed(batch)

	scale := float32(1 / math.Sqrt(float64(cfg.HeadDim())))
	for l := range b.layers {
		ly := &b.layers[l]
		x := a.hidden
		if cfg.DoLayerNormBefore {
			layerNorm(a.normed, a.hidden, n, h, &ly.attnNorm)
			x = a.normed
		}
		b.apply(&ly.q, n, x, h, a.q, h, epilogue{scale: scale})
		b.apply(&ly.k, n, x, h, a.k, h, epilogue{})
		b.apply(&ly.v, n, x, h, a.v, h, epilogue{})
		kv.scatter(l, a.k, a.v, batch.Slots[l], batch.Positions)
		observe := batch.Observe != nil && batch.Want.Observes(l)
		probs, comp := b.probsBuffers(kv, n, observe && batch.Want.Probs)
		b.attend(kv, l, n, batch.Positions, probs, comp)
		if observe {
			if err := b.observe(kv, l, batch, probs, comp); err != nil {
				return err
			}
		}
		b.apply(&ly.out, n, a.attn, h, a.q, h, epilogue{}) // q is free again
		kernel.Axpy(1, a.q[:n*h], a.hidden[:n*h])
		if !cfg.DoLayerNormBefore {
			layerNorm(a.hidden, a.hidden, n, h, &ly.attnNorm)
		}
		x = a.hidden
		if cfg.DoLayerNormBefore {
			layerNorm(a.normed, a.hidden, n, h, &ly.ffnNorm)
			x = a.normed
		}
		b.apply(&ly.fc1, n, x, h, a.ffn, f, epilogue{relu: true})
		b.apply(&ly.fc2, n, a.ffn, f, a.q, h, epilogue{})
		kernel.Axpy(1, a.q[:n*h], a.hidden[:n*h])
		if !cfg.DoLayerNormBefore {
			layerNorm(a.hidden, a.hidden, n, h, &ly.ffnNorm)
		}
	}
	b.logits(batch)
	return nil
}

// check validates a batch against the model and the cache.
func (b *Backend) check(kv *cache, batch *gpu.Batch) error {
	cfg := &b.cfg
	n := len(batch.Tokens)
	switch {
	case n == 0:
		return errors.New("cpu backend: empty batch")
	case len(batch.Positions) != n:
		return fmt.Errorf("cpu backend: %d positions for %d tokens", len(batch.Positions), n)
	case len(batch.Slots) != cfg.NumHiddenLayers:
		return fmt.Errorf("cpu backend: slots for %d layers, the model has %d", len(batch.Slots), cfg.NumHiddenLayers)
	case len(batch.Logits)%cfg.VocabSize != 0 || len(batch.Logits)/cfg.VocabSize > n:
		return fmt.Errorf("cpu backend: %d logits for %d tokens and a vocabulary of %d", len(batch.Logits), n, cfg.VocabSize)
	}
	for i, t := range batch.Tokens {
		if t < 0 || int(t) >= cfg.VocabSize {
			return fmt.Errorf("cpu backend: token %d is outside the vocabulary of %d", t, cfg.VocabSize)
		}
		if p := batch.Positions[i]; p < 0 || int(p) >= cfg.MaxPositionEmbeddings {
			return fmt.Errorf("cpu backend: position %d outside [0, %d)", p, cfg.MaxPositionEmbeddings)
		}
	}
	for l, slots := range batch.Slots {
		if len(slots) != n*cfg.NumAttentionHeads {
			return fmt.Errorf("cpu backend: layer %d: %d slots for %d tokens × %d heads", l, len(slots), n, cfg.NumAttentionHeads)
		}
		for _, s := range slots {
			if s < 0 || int(s) >= kv.capacity {
				return fmt.Errorf("cpu backend: layer %d: slot %d outside the capacity %d", l, s, kv.capacity)
			}
		}
	}
	return nil
}

// embed writes the token and position embeddings of the batch into hidden.
func (b *Backend) embed(batch *gpu.Batch) {
	cfg := &b.cfg
	n, h, e := len(batch.Tokens), cfg.HiddenSize, cfg.WordEmbedProjDim
	a := &b.act
	if b.projectIn != nil {
		a.embed = buf.Grow(a.embed, n*e)
		for i, t := range batch.Tokens {
			b.embedTokens.row(int(t), a.embed[i*e:])
		}
		b.apply(b.projectIn, n, a.embed, e, a.hidden, h, epilogue{})
	} else {
		for i, t := range batch.Tokens {
			b.embedTokens.row(int(t), a.hidden[i*h:])
		}
	}
	pos := a.normed[:h] // free until the first layer
	for i, p := range batch.Positions {
		b.embedPositions.row(int(p)+checkpoint.PositionOffset, pos)
		kernel.Axpy(1, pos, a.hidden[i*h:(i+1)*h])
	}
}

// logits computes the logits of the last rows the batch asks for.
func (b *Backend) logits(batch *gpu.Batch) {
	cfg := &b.cfg
	rows := len(batch.Logits) / cfg.VocabSize
	if rows == 0 {
		return
	}
	n, h, e := len(batch.Tokens), cfg.HiddenSize, cfg.WordEmbedProjDim
	a := &b.act
	x := a.hidden[(n-rows)*h : n*h]
	if b.finalNorm != nil {
		layerNorm(a.normed, x, rows, h, b.finalNorm)
		x = a.normed[:rows*h]
	}
	if b.projectOut != nil {
		a.final = buf.Grow(a.final, rows*e)
		b.apply(b.projectOut, rows, x, h, a.final, e, epilogue{})
		x = a.final
	}
	b.apply(&linear{w: b.lmHead}, rows, x, e, batch.Logits, cfg.VocabSize, epilogue{})
}

// layerNorm normalises n rows of width d from x into y (which may be x) with eps
// 1e-5, as torch's LayerNorm; the statistics are accumulated in float64.
func layerNorm(y, x []float32, n, d int, p *norm) {
	const eps = 1e-5
	for i := range n {
		xi, yi := x[i*d:(i+1)*d], y[i*d:(i+1)*d]
		var sum float64
		for _, v := range xi {
			sum += float64(v)
		}
		mean := sum / float64(d)
		var ss float64
		for _, v := range xi {
			dv := float64(v) - mean
			ss += dv * dv
		}
		inv := 1 / math.Sqrt(ss/float64(d)+eps)
		for j, v := range xi {
			z := (float64(v) - mean) * inv
			if p.weight != nil {
				z *= float64(p.weight[j])
			}
			if p.bias != nil {
				z += float64(p.bias[j])
			}
			yi[j] = float32(z)
		}
	}
}
