package synth

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// Trace is a synthetic trace generated on demand: each Read computes one layer's tensor
// from hashes of the options, so nothing is held but the tokens and the head models. It
// has the read methods of a kvtrace file. A Trace is safe for concurrent use.
type Trace struct {
	opts      Options
	meta      kvtrace.Meta
	tokens    []int32
	models    []headModel // [layer][head], flattened
	modelKey  uint64
	sampleKey uint64
	switchAt  int
	closed    atomic.Bool
}

// New returns the trace the options select, after validating them.
func New(opts Options) (*Trace, error) {
	shape, err := opts.shape()
	if err != nil {
		return nil, err
	}
	tr := &Trace{
		opts: opts,
		meta: kvtrace.Meta{
			Model:     "synthetic/" + shape.Name,
			Layers:    shape.Layers,
			Heads:     shape.Heads,
			HeadDim:   shape.HeadDim,
			PromptLen: opts.PromptLen,
			GenLen:    opts.GenLen,
			Source:    kvtrace.SourceSynthetic,
			SampleID:  fmt.Sprintf("synthetic-%s-s%d-%d", shape.Name, opts.Seed, opts.Sample),
			HasV:      opts.WithV,
		},
		modelKey:  mix(opts.Seed, tagModelHead, stringKey(shape.Name)),
		sampleKey: mix(opts.Seed, tagSample, uint64(opts.Sample)),
	}
	tr.tokens = make([]int32, tr.meta.Tokens())
	tr.tokens[0] = eosToken // OPT's tokenizer prepends </s>
	for t := 1; t < len(tr.tokens); t++ {
		tr.tokens[t] = int32(firstOrdinaryToken + mix(tr.sampleKey, tagToken, uint64(t))%(openVocab-firstOrdinaryToken))
	}
	first := (opts.PromptLen + 1) / 2
	last := opts.PromptLen + opts.GenLen/2
	span := uint64(last - first + 1)
	tr.switchAt = first + int(mix(tr.sampleKey, tagSwitch, uint64(opts.PromptLen), uint64(opts.GenLen))%span)
	tr.models = make([]headModel, shape.Layers*shape.Heads)
	for l := range shape.Layers {
		for h := range shape.Heads {
			tr.models[l*shape.Heads+h] = newHeadModel(tr.modelKey, l, h)
		}
	}
	return tr, nil
}

// Meta returns the trace's metadata. Its Source is kvtrace.SourceSynthetic: these are
// not OPT measurements.
func (tr *Trace) Meta() kvtrace.Meta { return tr.meta }

// Name identifies the trace in output, such as "synthetic:opt-125m#3".
func (tr *Trace) Name() string {
	return fmt.Sprintf("synthetic:%s#%d", tr.opts.Preset, tr.opts.Sample)
}

// Tokens returns a copy of the token ids: </s> (id 2) and then pseudo-random ids.
func (tr *Trace) Tokens() []int32 { return append([]int32(nil), tr.tokens...) }

// HasV reports whether the trace has value tensors.
func (tr *Trace) HasV() bool { return tr.meta.HasV }

// DType is half.F32: the generator computes in float32 and rounds nothing.
func (tr *Trace) DType() half.DType { return half.F32 }

// Close releases the trace; later Reads fail.
func (tr *Trace) Close() error {
	tr.closed.Store(true)
	return nil
}

// Read generates one layer's tensor of the given kind, laid out
// [heads][tokens][headDim]. It stores into dst when dst has the capacity. The result
// depends only on the options, the kind and the layer, never on earlier calls.
func (tr *Trace) Read(kind kvtrace.Kind, layer int, dst []float32) ([]float32, error) {
	if tr.closed.Load() {
		return dst, fmt.Errorf("%s: read from a closed trace", tr.Name())
	}
	m := tr.meta
	if layer < 0 || layer >= m.Layers {
		return dst, fmt.Errorf("%s: layer %d out of range (the trace has %d layers)", tr.Name(), layer, m.Layers)
	}
	switch kind {
	case kvtrace.Q, kvtrace.K:
	case kvtrace.V:
		if !m.HasV {
			return dst, fmt.Errorf("%s: the trace has no V tensors (Options.WithV is false)", tr.Name())
		}
	default:
		return dst, fmt.Errorf("%s: unknown tensor kind %v", tr.Name(), kind)
	}
	tokens, headDim := m.Tokens(), m.HeadDim
	perHead := tokens * headDim
	n := m.Heads * perHead
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	forEachHead(m.Heads, func(h int) {
		hs := tr.headSample(layer, h)
		out := dst[h*perHead : (h+1)*perHead]
		switch kind {
		case kvtrace.Q:
			hs.fillQueries(out, tokens, headDim)
		case kvtrace.K:
			hs.fillKeys(out, tokens, headDim)
		case kvtrace.V:
			hs.fillValues(out, tokens, headDim, mix(tr.modelKey, tagValueBasis, uint64(layer), uint64(h)))
		}
	})
	return dst, nil
}

func (tr *Trace) headSample(layer, head int) headSample {
	return headSample{
		model:     &tr.models[layer*tr.meta.Heads+head],
		key:       mix(tr.sampleKey, tr.modelKey, uint64(layer), uint64(head)),
		salience:  tr.sampleKey,
		prompt:    tr.opts.PromptLen,
		switchAt:  tr.switchAt,
		slowOmega: tr.opts.slowOmega(),
	}
}

// forEachHead runs fill for every head, spread over the available CPUs. Each head writes
// its own part of the output, so the result does not depend on scheduling.
func forEachHead(heads int, fill func(head int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(heads, runtime.GOMAXPROCS(0)) {
		wg.Go(func() {
			for h := int(next.Add(1) - 1); h < heads; h = int(next.Add(1) - 1) {
				fill(h)
			}
		})
	}
	wg.Wait()
}
