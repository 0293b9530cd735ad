package host_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/h2o"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/synth"
)

// TestReplayAndDecodeAgree drives each builtin through replay (package sim) and
// through in-loop decoding (gpu/validate, on a backend that serves a trace's own
// queries and keys instead of running a model) on the same attention, and checks
// that the policy sees the same configs, slots, needs and attention, and makes the
// same decisions, call for call.
func TestReplayAndDecodeAgree(t *testing.T) {
	const prompt, gen = 48, 20
	tr, err := synth.New(synth.Options{Preset: "opt-125m", Layers: 2, Heads: 4, PromptLen: prompt, GenLen: gen, Seed: 5, WithV: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		policy string
		params map[string]any
		budget int
		peak   bool
		make   func() policies.Policy // instead of the builtin named policy
	}{
		{"full", nil, 8, false, nil},
		{"window", map[string]any{"sink": 4}, 8, false, nil},
		{"random", nil, 8, false, nil},
		{"h2o", nil, 8, false, nil},
		{"h2o", nil, 16, true, nil},
		{"auv", nil, 12, false, nil},
		{"auv", nil, 12, true, nil},
		{"nacl", nil, 10, false, nil},
		{"nacl", map[string]any{"decode": "reevict"}, 10, false, nil},
		{"snapkv", nil, 10, false, nil},
		{"scissorhands", nil, 10, false, nil},
		{"tova", nil, 10, false, nil},
		// Contract 2.0: pools, vectors and compact rows.
		{"pooled-layer", nil, 6, false, func() policies.Policy { return &policytest.Pooled{Pool: policies.PoolLayer} }},
		{"pooled-model", nil, 6, true, func() policies.Policy {
			return &policytest.Pooled{Pool: policies.PoolModel, Slack: 1, Compact: true}
		}},
		{"h2o-with-vectors", nil, 8, false, func() policies.Policy {
			p, _ := h2o.New(policies.NewParams(nil))
			return &asking{Policy: p, layout: policies.Layout{Keys: true, Values: true, Queries: true, Compact: true}}
		}},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%v/B=%d/peak=%t", c.policy, c.params, c.budget, c.peak), func(t *testing.T) {
			mk, ok := builtin.Lookup(c.policy)
			if c.make != nil {
				mk, ok = func(*policies.Params) (policies.Policy, error) { return c.make(), nil }, true
			}
			if !ok {
				t.Fatalf("no builtin %q", c.policy)
			}
			replayed, decoded := &recording{}, &recording{}
			newFor := func(r *recording) func() (policies.Policy, error) {
				return func() (policies.Policy, error) {
					p, err := mk(policies.NewParams(c.params))
					return &recorder{Policy: p, log: r}, err
				}
			}
			acc := host.Nominal
			if c.peak {
				acc = host.Peak
			}
			res, err := sim.Replay(context.Background(), []sim.Source{tr}, []sim.PolicySpec{{Name: c.policy, New: newFor(replayed), Accounting: acc}},
				sim.Options{Budgets: []host.Budget{{Tokens: c.budget}}, Threads: 1, Seed: 9, BlockRows: prompt})
			if err != nil {
				t.Fatal(err)
			}
			if f := res.Cell(0, 0).Failed; f != "" {
				t.Fatalf("replay: %s", f)
			}
			force := make([]int32, gen)
			d, err := validate.Decode(context.Background(), gpu.New(newTraceBackend(t, tr)), make([]int32, prompt), newFor(decoded),
				validate.Options{Budget: c.budget, Peak: c.peak, MaxNew: gen, Force: force, Seed: 9, Workers: 1})
			if err != nil {
				t.Fatal(err)
			}
			evictions := replayed.compare(t, decoded)
			if evictions != d.Evictions {
				t.Errorf("decoding counted %d victims, the policy named %d", d.Evictions, evictions)
			}
			if c.policy != "full" && evictions == 0 {
				t.Errorf("no evictions: the comparison proves little")
			}
			if c.make != nil && replayed.count(func(e *event) bool { return e.live != nil || len(e.vectors) > 0 && e.vectors[0] != nil }) == 0 &&
				replayed.count(func(e *event) bool { return e.poolNeed > 0 }) == 0 {
				t.Errorf("no pool needs, compact rows or vectors: the comparison proves little")
			}
		})
	}
}

// event is one policy call as the policy saw it.
type event struct {
	call     string // init, observe or evict
	cfg      policies.Config
	phase    policies.Phase
	pos      int
	slots    []int32     // decode: the slot each head's new token entered
	probs    [][]float32 // observe: per head and row, the attention by slot, up to the width (or the compact row)
	live     []int32     // observe, compact rows: per head, the listed slots
	vectors  [][]float32 // observe: keys, values, queries
	comp     []float32
	need     []int32
	poolNeed int
	vict     [][]int32 // evict: per head, the victims
	wts      [][]float32
}

// recording is a policy's calls, per layer, since the layer's last Init.
type recording struct{ layers map[int][]event }

type recorder struct {
	policies.Policy
	log   *recording
	cfg   policies.Config
	width int
}

func (r *recorder) add(e event) {
	r.log.layers[r.cfg.Layer] = append(r.log.layers[r.cfg.Layer], e)
}

func (r *recorder) Init(cfg policies.Config) (policies.Layout, error) {
	layout, err := r.Policy.Init(cfg)
	if r.log.layers == nil {
		r.log.layers = map[int][]event{}
	}
	// Peak accounting probes budgets with Init: only the last Init starts the run.
	r.cfg, r.width = cfg, policies.SlotWidth(cfg, layout)
	r.log.layers[cfg.Layer] = []event{{call: "init", cfg: cfg}}
	return layout, err
}

func (r *recorder) Observe(a *policies.Attention) error {
	e := event{call: "observe", phase: a.Phase, pos: a.Pos}
	// Hosts may pass wider rows than needed (Stride); compare the slots that can be
	// resident: the prompt's in prefill, the table's in decode.
	n := r.width
	if a.Phase == policies.Prefill {
		n = r.cfg.PromptLen
	}
	for h := range a.Heads {
		for row := range a.Rows {
			if a.Live != nil {
				n = int(a.Len[h])
				e.live = append(e.live, a.Live[h*a.Stride:h*a.Stride+n]...)
			}
			e.probs = append(e.probs, append([]float32(nil), a.Row(h, row)[:min(n, a.Stride)]...))
		}
	}
	e.vectors = [][]float32{slices.Clone(a.Keys), slices.Clone(a.Values), slices.Clone(a.Queries)}
	if a.Phase == policies.Decode {
		e.slots = append([]int32(nil), a.Slot[:a.Heads]...)
		e.comp = append([]float32(nil), a.Comp[:a.Heads]...)
	}
	r.add(e)
	return r.Policy.Observe(a)
}

func (r *recorder) Evict(ev *policies.Eviction) error {
	err := r.Policy.Evict(ev)
	e := event{call: "evict", phase: ev.Phase, pos: ev.Pos, need: append([]int32(nil), ev.Need[:ev.Heads]...), poolNeed: ev.PoolNeed}
	for h := range ev.Heads {
		n := int(ev.Count[h])
		e.vict = append(e.vict, append([]int32(nil), ev.Victims[h*ev.Stride:h*ev.Stride+n]...))
		if ev.Weights != nil {
			e.wts = append(e.wts, append([]float32(nil), ev.Weights[h*ev.Stride:h*ev.Stride+n]...))
		}
	}
	r.add(e)
	return err
}

func (r *recorder) Close() error { host.Close(r.Policy); return nil }

// LayerBudgets passes a model pool's division on.
func (r *recorder) LayerBudgets(cfg policies.Config, entries []int) error {
	return r.Policy.(policies.LayerBudgeter).LayerBudgets(cfg, entries)
}

// asking is a policy whose layout also asks for the given inputs; compact rows are
// widened for it, so that it decides as it would on wide rows.
type asking struct {
	policies.Policy
	layout policies.Layout
	wide   []float32
}

func (a *asking) Init(cfg policies.Config) (policies.Layout, error) {
	l, err := a.Policy.Init(cfg)
	l.Keys, l.Values, l.Queries, l.Compact = a.layout.Keys, a.layout.Values, a.layout.Queries, a.layout.Compact
	return l, err
}

func (a *asking) Observe(at *policies.Attention) error {
	if at.Live == nil {
		return a.Policy.Observe(at)
	}
	a.wide = append(a.wide[:0], make([]float32, at.Heads*at.Stride)...)
	for h := range at.Heads {
		for i, s := range at.Live[h*at.Stride : h*at.Stride+int(at.Len[h])] {
			a.wide[h*at.Stride+int(s)] = at.Probs[h*at.Stride+i]
		}
	}
	w := *at
	w.Probs, w.Live, w.Len = a.wide, nil, nil
	return a.Policy.Observe(&w)
}

// count is the number of calls f accepts.
func (r *recording) count(f func(e *event) bool) int {
	n := 0
	for _, events := range r.layers {
		for i := range events {
			if f(&events[i]) {
				n++
			}
		}
	}
	return n
}

// TestOverdrawRefusedInLoop: in-loop decoding refuses a policy that gives its pool
// fewer victims than it needs, with the reason. The compression of 4 heads × 48
// prompt tokens to a layer pool of 4 × 6 needs 168 victims; the policy gives 167.
func TestOverdrawRefusedInLoop(t *testing.T) {
	tr, err := synth.New(synth.Options{Preset: "opt-125m", Layers: 1, Heads: 4, PromptLen: 48, GenLen: 4, Seed: 5, WithV: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = validate.Decode(context.Background(), gpu.New(newTraceBackend(t, tr)), make([]int32, 48),
		func() (policies.Policy, error) {
			return &policytest.Pooled{Pool: policies.PoolLayer, Overdraw: true}, nil
		},
		validate.Options{Budget: 6, MaxNew: 4, Force: make([]int32, 4), Workers: 1})
	want := "validate: policy's victims at position 47: evict: layer 0: pool: 167 victims over 4 heads, need at least 168 (the layer pool of 24 entries)"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

// compare holds decoding's calls to replay's, and returns the victims named.
func (want *recording) compare(t *testing.T, got *recording) (victims int) {
	t.Helper()
	if len(want.layers) != len(got.layers) {
		t.Fatalf("replay saw %d layers, decoding %d", len(want.layers), len(got.layers))
	}
	for l, we := range want.layers {
		ge := got.layers[l]
		if len(we) != len(ge) {
			t.Errorf("layer %d: replay made %d calls, decoding %d", l, len(we), len(ge))
		}
		for i := range min(len(we), len(ge)) {
			w, g := &we[i], &ge[i]
			at := fmt.Sprintf("layer %d call %d (%s %v at %d)", l, i, w.call, w.phase, w.pos)
			if w.call != g.call || w.phase != g.phase || w.pos != g.pos || w.cfg != g.cfg {
				t.Fatalf("%s: decoding made %s %v at %d, cfg %+v; replay cfg %+v", at, g.call, g.phase, g.pos, g.cfg, w.cfg)
			}
			if fmt.Sprint(w.slots, w.need, w.poolNeed, w.vict, w.live) != fmt.Sprint(g.slots, g.need, g.poolNeed, g.vict, g.live) {
				t.Fatalf("%s: replay slots %v, need %v, pool need %d, victims %v, compact slots %v; decoding %v, %v, %d, %v, %v",
					at, w.slots, w.need, w.poolNeed, w.vict, w.live, g.slots, g.need, g.poolNeed, g.vict, g.live)
			}
			if err := closeRows(w.vectors, g.vectors, 1e-6); err != nil {
				t.Fatalf("%s: vectors: %v", at, err)
			}
			if err := closeRows(w.probs, g.probs, 1e-5); err != nil {
				t.Fatalf("%s: attention: %v", at, err)
			}
			if err := closeRows([][]float32{w.comp}, [][]float32{g.comp}, 1e-5); err != nil {
				t.Fatalf("%s: compensation share: %v", at, err)
			}
			if err := closeRows(w.wts, g.wts, 1e-5); err != nil {
				t.Fatalf("%s: merge weights: %v", at, err)
			}
			for _, v := range w.vict {
				victims += len(v)
			}
		}
	}
	return victims
}

func closeRows(a, b [][]float32, tol float64) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d rows against %d", len(a), len(b))
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return fmt.Errorf("row %d: %d values against %d", i, len(a[i]), len(b[i]))
		}
		for j := range a[i] {
			if math.Abs(float64(a[i][j])-float64(b[i][j])) > tol {
				return fmt.Errorf("row %d slot %d: %g against %g", i, j, a[i][j], b[i][j])
			}
		}
	}
	return nil
}

// traceBackend is a gpu.Backend without a model: a token at position p has the
// trace's query, key and value at p, so in-loop decoding attends exactly as replay
// does, and serves the same vectors.
type traceBackend struct {
	cfg     checkpoint.Config
	d       int
	q, k, v [][]float32 // per layer, [heads][tokens][d]
}

func newTraceBackend(t *testing.T, tr *synth.Trace) *traceBackend {
	m := tr.Meta()
	b := &traceBackend{d: m.HeadDim, cfg: checkpoint.Config{VocabSize: 4, HiddenSize: m.Heads * m.HeadDim,
		NumHiddenLayers: m.Layers, NumAttentionHeads: m.Heads, MaxPositionEmbeddings: m.Tokens(), EOSTokenID: -1}}
	for l := range m.Layers {
		for kind, dst := range map[kvtrace.Kind]*[][]float32{kvtrace.Q: &b.q, kvtrace.K: &b.k, kvtrace.V: &b.v} {
			x, err := tr.Read(kind, l, nil)
			if err != nil {
				t.Fatal(err)
			}
			*dst = append(*dst, x)
		}
	}
	return b
}

func (b *traceBackend) vec(x [][]float32, l, h, p int) []float32 {
	T := b.cfg.MaxPositionEmbeddings
	return x[l][(h*T+p)*b.d : (h*T+p+1)*b.d]
}

func (b *traceBackend) Name() string              { return "trace" }
func (b *traceBackend) Config() checkpoint.Config { return b.cfg }
func (b *traceBackend) Close() error              { return nil }

func (b *traceBackend) NewKV(capacity int, compensation bool) (gpu.KV, error) {
	L, H := b.cfg.NumHiddenLayers, b.cfg.NumAttentionHeads
	kv := &traceKV{b: b, capacity: capacity, pos: make([]int32, L*H*capacity)}
	for i := range kv.pos {
		kv.pos[i] = -1
	}
	if compensation {
		kv.comp = make([]host.Comp, L*H)
		for i := range kv.comp {
			kv.comp[i].Reset(b.d)
		}
	}
	return kv, nil
}

func (b *traceBackend) Forward(x gpu.KV, batch *gpu.Batch) error {
	kv := x.(*traceKV)
	L, H, C, n := b.cfg.NumHiddenLayers, b.cfg.NumAttentionHeads, kv.capacity, len(batch.Tokens)
	for l := range L {
		for i := range n {
			for h := range H {
				kv.pos[(l*H+h)*C+int(batch.Slots[l][i*H+h])] = batch.Positions[i]
			}
		}
		if batch.Observe == nil || !batch.Want.Observes(l) {
			continue
		}
		v := &gpu.LayerView{Layer: l, Rows: n, Heads: H, HeadDim: b.d, Capacity: C, Positions: batch.Positions,
			Slots: batch.Slots[l], Probs: make([]float32, H*n*C)}
		if kv.comp != nil {
			v.Comp = make([]float32, H*n)
		}
		if batch.Want.QKV {
			for _, x := range []struct {
				dst *[]float32
				src [][]float32
			}{{&v.Q, b.q}, {&v.K, b.k}, {&v.V, b.v}} {
				for r := range n {
					for h := range H {
						*x.dst = append(*x.dst, b.vec(x.src, l, h, int(batch.Positions[r]))...)
					}
				}
			}
		}
		logits := make([]float64, C+1)
		for h := range H {
			for r := range n {
				p := batch.Positions[r]
				q := b.vec(b.q, l, h, int(p))
				m := math.Inf(-1)
				for s := range C {
					logits[s] = math.Inf(-1)
					if sp := kv.pos[(l*H+h)*C+s]; sp >= 0 && sp <= p {
						logits[s] = dot(q, b.vec(b.k, l, h, int(sp)))
						m = math.Max(m, logits[s])
					}
				}
				logits[C] = math.Inf(-1)
				if kv.comp != nil && kv.comp[l*H+h].Weight > 0 {
					var z float64
					for j, y := range kv.comp[l*H+h].K {
						z += float64(q[j]) * y
					}
					logits[C] = z
					m = math.Max(m, z)
				}
				var sum float64
				for s := range logits {
					logits[s] = math.Exp(logits[s] - m)
					sum += logits[s]
				}
				row := v.ProbsRow(h, r)
				for s := range C {
					row[s] = float32(logits[s] / sum)
				}
				if v.Comp != nil {
					v.Comp[h*n+r] = float32(logits[C] / sum)
				}
			}
		}
		if err := batch.Observe(v); err != nil {
			return err
		}
	}
	return nil
}

func dot(a, b []float32) float64 {
	var z float64
	for i := range a {
		z += float64(a[i]) * float64(b[i])
	}
	return z
}

type traceKV struct {
	b        *traceBackend
	capacity int
	pos      []int32 // [layer][head][slot]
	comp     []host.Comp
}

func (kv *traceKV) Capacity() int      { return kv.capacity }
func (kv *traceKV) Compensation() bool { return kv.comp != nil }
func (kv *traceKV) Bytes() int64       { return 0 }
func (kv *traceKV) Close() error       { return nil }

func (kv *traceKV) Evict(l int, e *policies.Eviction) error {
	H, C := kv.b.cfg.NumAttentionHeads, kv.capacity
	for h := range H {
		for i, s := range e.Victims[h*e.Stride : h*e.Stride+int(e.Count[h])] {
			i0 := (l*H+h)*C + int(s)
			p := kv.pos[i0]
			if p < 0 {
				return errors.New("trace KV: victim slot is free")
			}
			if kv.comp != nil && e.Weights != nil {
				kv.comp[l*H+h].Merge(float64(e.Weights[h*e.Stride+i]), kv.b.vec(kv.b.k, l, h, int(p)), kv.b.vec(kv.b.v, l, h, int(p)))
			}
			kv.pos[i0] = -1
		}
	}
	return nil
}
