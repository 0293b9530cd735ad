package synth

import (
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// small is a shape cheap enough to generate in every test.
var small = Options{Preset: "opt-125m", Layers: 2, Heads: 3, HeadDim: 48, PromptLen: 40, GenLen: 8, Seed: 7, Sample: 1, WithV: true}

func mustNew(t *testing.T, opts Options) *Trace {
	t.Helper()
	tr, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	return tr
}

func mustRead(t *testing.T, tr *Trace, kind kvtrace.Kind, layer int) []float32 {
	t.Helper()
	x, err := tr.Read(kind, layer, nil)
	if err != nil {
		t.Fatalf("Read(%v, %d): %v", kind, layer, err)
	}
	return x
}

// traceReader is the method set replay reads traces through: a synthetic trace must
// stand in for a kvtrace file.
type traceReader interface {
	Meta() kvtrace.Meta
	Name() string
	Tokens() []int32
	HasV() bool
	DType() half.DType
	Read(kind kvtrace.Kind, layer int, dst []float32) ([]float32, error)
	Close() error
}

var (
	_ traceReader = (*kvtrace.Trace)(nil)
	_ traceReader = (*Trace)(nil)
)

func TestValidate(t *testing.T) {
	ok := Options{Preset: "opt-1.3b", PromptLen: 8}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v", ok, err)
	}
	tests := []struct {
		change func(*Options)
		want   string
	}{
		{func(o *Options) { o.Preset = "gpt2" }, `Preset: unknown preset "gpt2"`},
		{func(o *Options) { o.Layers = -1 }, "Layers = -1: must be positive"},
		{func(o *Options) { o.Heads = 33 }, "Heads = 33: exceeds opt-1.3b's 32"},
		{func(o *Options) { o.HeadDim = 16 }, "HeadDim = 16: must be at least 32"},
		{func(o *Options) { o.PromptLen = 7 }, "PromptLen = 7: must be at least 8"},
		{func(o *Options) { o.GenLen = -2 }, "GenLen = -2: must not be negative"},
		{func(o *Options) { o.GenLen = 2041 }, "PromptLen+GenLen = 2049: exceeds OPT's context of 2048"},
		{func(o *Options) { o.PromptLen = math.MaxInt }, "exceeds OPT's context"},
		{func(o *Options) { o.Positions = -1 }, "Positions = -1: want 0 (OPT's 2048) up to 32768"},
		{func(o *Options) { o.Positions = 40000 }, "Positions = 40000"},
		{func(o *Options) { o.Positions, o.GenLen = 4096, 4089 }, "PromptLen+GenLen = 4097: exceeds Positions = 4096"},
		// 3 tensors × 56 heads × 32768 tokens × 128 × 4 bytes = 2.625 GiB.
		{func(o *Options) { o.Preset, o.Positions, o.PromptLen, o.WithV = "opt-30b", 32768, 32768, true },
			"one layer of 56 heads × 32768 tokens × 128 head_dim takes 2.6 GiB in float32, over the 2 GiB bound"},
		{func(o *Options) { o.Sample = -1 }, "Sample = -1: must not be negative"},
	}
	for _, tt := range tests {
		opts := ok
		tt.change(&opts)
		err := opts.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Validate(%+v) = %v, want an error containing %q", opts, err, tt.want)
		}
		if _, newErr := New(opts); newErr == nil {
			t.Errorf("New(%+v) succeeded", opts)
		}
	}
	// Every problem is reported, not just the first.
	err := Options{Preset: "opt-125m", PromptLen: 3, Sample: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "PromptLen") || !strings.Contains(err.Error(), "Sample") {
		t.Errorf("Validate with two problems = %v, want both named", err)
	}
}

// TestPositions: a longer synthetic context takes traces past OPT's 2048 tokens, and
// naming OPT's own context is the default, sample for sample.
func TestPositions(t *testing.T) {
	long := Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: 4000, GenLen: 96, Positions: 4096, Seed: 3}
	tr := mustNew(t, long)
	q, err := tr.Read(kvtrace.Q, 0, nil)
	if err != nil || len(q) != 2*4096*64 {
		t.Fatalf("Read: %d values, %v; want %d", len(q), err, 2*4096*64)
	}
	max13b := Options{Preset: "opt-13b", PromptLen: MaxPositions - 64, GenLen: 64, Positions: MaxPositions, WithV: true}
	if err := max13b.Validate(); err != nil {
		t.Errorf("OPT-13B at %d tokens: %v", MaxPositions, err)
	}
	def, opt := small, small
	opt.Positions = MaxTokens
	a, errA := mustNew(t, def).Read(kvtrace.K, 1, nil)
	b, errB := mustNew(t, opt).Read(kvtrace.K, 1, nil)
	if errA != nil || errB != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("Positions = %d differs from the default (%v, %v)", MaxTokens, errA, errB)
	}
}

func TestMetaNameTokens(t *testing.T) {
	tr := mustNew(t, small)
	want := kvtrace.Meta{
		Model: "synthetic/opt-125m", Layers: 2, Heads: 3, HeadDim: 48, PromptLen: 40, GenLen: 8,
		Source: kvtrace.SourceSynthetic, SampleID: "synthetic-opt-125m-s7-1", HasV: true,
	}
	if got := tr.Meta(); !reflect.DeepEqual(got, want) {
		t.Errorf("Meta() = %+v, want %+v", got, want)
	}
	if got := tr.Name(); got != "synthetic:opt-125m#1" {
		t.Errorf("Name() = %q", got)
	}
	if !tr.HasV() {
		t.Error("HasV() = false with WithV")
	}
	tokens := tr.Tokens()
	if len(tokens) != 48 || tokens[0] != 2 {
		t.Fatalf("Tokens() = %v, want 48 ids starting with 2", tokens)
	}
	for i, id := range tokens[1:] {
		if id < 4 || id > 50264 {
			t.Errorf("token %d = %d, outside OPT's ordinary ids 4..50264", i+1, id)
		}
	}
	tokens[1] = -1
	if tr.Tokens()[1] == -1 {
		t.Error("Tokens() shares its slice with the trace")
	}
	// The input depends on (Seed, Sample) only: another model size sees the same tokens.
	other := small
	other.Preset, other.PromptLen, other.GenLen = "opt-13b", 100, 0
	if got := mustNew(t, other).Tokens(); !slices.Equal(got[:48], tr.Tokens()) {
		t.Error("opt-13b's tokens for the same seed and sample differ from opt-125m's")
	}
}

func TestReadIsDeterministicInAnyOrder(t *testing.T) {
	a, b := mustNew(t, small), mustNew(t, small)
	kinds := []kvtrace.Kind{kvtrace.Q, kvtrace.K, kvtrace.V}
	want := map[[2]int][]float32{}
	for layer := range 2 {
		for _, kind := range kinds {
			want[[2]int{int(kind), layer}] = mustRead(t, a, kind, layer)
		}
	}
	// Reverse order, into a reused buffer full of junk.
	buf := make([]float32, 3*48*48)
	for layer := 1; layer >= 0; layer-- {
		for i := len(kinds) - 1; i >= 0; i-- {
			for j := range buf {
				buf[j] = float32(math.NaN())
			}
			got, err := b.Read(kinds[i], layer, buf)
			if err != nil {
				t.Fatal(err)
			}
			if &got[0] != &buf[0] {
				t.Error("Read did not reuse a large enough dst")
			}
			if !slices.Equal(got, want[[2]int{int(kinds[i]), layer}]) {
				t.Errorf("%v layer %d differs between read orders", kinds[i], layer)
			}
		}
	}
}

func TestSamplesSeedsAndPresetsDiffer(t *testing.T) {
	base := mustNew(t, small)
	q0, k0 := mustRead(t, base, kvtrace.Q, 1), mustRead(t, base, kvtrace.K, 1)
	for _, change := range []func(*Options){
		func(o *Options) { o.Sample = 2 },
		func(o *Options) { o.Seed = 8 },
		func(o *Options) { o.Preset = "opt-350m" },
	} {
		opts := small
		change(&opts)
		tr := mustNew(t, opts)
		q, k := mustRead(t, tr, kvtrace.Q, 1), mustRead(t, tr, kvtrace.K, 1)
		if same := countEqual(q, q0); same > len(q)/4 {
			t.Errorf("%+v: %d of %d query values equal the base trace's", opts, same, len(q))
		}
		if same := countEqual(k, k0); same > len(k)/2 {
			t.Errorf("%+v: %d of %d key values equal the base trace's", opts, same, len(k))
		}
	}
}

func countEqual(a, b []float32) int {
	n := 0
	for i := range a {
		if a[i] == b[i] {
			n++
		}
	}
	return n
}

func TestShrinkingKeepsHeads(t *testing.T) {
	full := small
	full.Layers, full.Heads = 0, 0 // opt-125m: 12 layers of 12 heads
	big, shrunk := mustNew(t, full), mustNew(t, small)
	perHead := 48 * 48
	for _, kind := range []kvtrace.Kind{kvtrace.Q, kvtrace.K, kvtrace.V} {
		for layer := range 2 {
			want := mustRead(t, big, kind, layer)[:3*perHead]
			if !slices.Equal(mustRead(t, shrunk, kind, layer), want) {
				t.Errorf("%v layer %d: the shrunk trace's heads differ from the full trace's", kind, layer)
			}
		}
	}
}

func TestReadErrors(t *testing.T) {
	noV := small
	noV.WithV = false
	tr := mustNew(t, noV)
	tests := []struct {
		kind  kvtrace.Kind
		layer int
		want  string
	}{
		{kvtrace.Q, 2, "layer 2 out of range (the trace has 2 layers)"},
		{kvtrace.K, -1, "layer -1 out of range"},
		{kvtrace.V, 0, "no V tensors"},
		{kvtrace.Kind('x'), 0, "unknown tensor kind"},
	}
	for _, tt := range tests {
		_, err := tr.Read(tt.kind, tt.layer, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "synthetic:opt-125m#1") {
			t.Errorf("Read(%v, %d) = %v, want an error naming the trace and containing %q", tt.kind, tt.layer, err, tt.want)
		}
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Read(kvtrace.Q, 0, nil); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Read after Close = %v, want a closed-trace error", err)
	}
}

// TestChannels checks the channel layout the package comment documents, value by value.
func TestChannels(t *testing.T) {
	opts := Options{Preset: "opt-125m", Layers: 3, Heads: 4, PromptLen: 100, GenLen: 20, Seed: 3}
	tr := mustNew(t, opts)
	const T, D, layer = 120, 64, 2
	q, k := mustRead(t, tr, kvtrace.Q, layer), mustRead(t, tr, kvtrace.K, layer)
	if tr.switchAt < 50 || tr.switchAt > 110 {
		t.Fatalf("switch at %d, outside [⌈P/2⌉, P+⌊G/2⌋] = [50, 110]", tr.switchAt)
	}
	const tol = 1e-5
	for h := range 4 {
		m := tr.models[layer*4+h]
		qh, kh := q[h*T*D:(h+1)*T*D], k[h*T*D:(h+1)*T*D]
		for j := range T {
			key, query := kh[j*D:(j+1)*D], qh[j*D:(j+1)*D]
			wantSink := []float64{1, m.sinkDecay, m.sinkDecay * 0.8, m.sinkDecay * 0.64}
			if j < 4 && math.Abs(float64(key[0])-wantSink[j]) > tol || j >= 4 && key[0] != 0 {
				t.Errorf("head %d key %d: sink channel %v, want %v", h, j, key[0], wantSink[min(j, 3)])
			}
			if math.Abs(float64(key[3])-math.Cos(math.Pi/4096*float64(j))) > tol ||
				math.Abs(float64(key[4])-math.Sin(math.Pi/4096*float64(j))) > tol {
				t.Errorf("head %d key %d: slow pair (%v, %v) is not (cos, sin)(πj/4096)", h, j, key[3], key[4])
			}
			for r := range 12 {
				c, s := float64(key[5+2*r]), float64(key[6+2*r])
				if math.Abs(c*c+s*s-1) > tol {
					t.Errorf("head %d key %d: recency pair %d has norm² %v, want 1", h, j, r, c*c+s*s)
				}
			}
			if late := query[2]; (j < tr.switchAt) != (late == 0) {
				t.Errorf("head %d query %d: late channel %v with the switch at %d", h, j, late, tr.switchAt)
			}
			if key[2] != 0 && (j < 4 || j >= min(tr.switchAt, 100) || key[1] != 0) {
				t.Errorf("head %d key %d: a late token outside [4, min(switch, P)) or also heavy", h, j)
			}
			for _, w := range []float32{key[1], key[2]} {
				if w != 0 && (w < 0.5 || w >= 1) {
					t.Errorf("head %d key %d: heavy or late weight %v outside [0.5, 1)", h, j, w)
				}
			}
		}
		// q_t·k_t on the recency channels is a_rec·τ exactly: the band peaks at Δ = 0.
		for tq := range T {
			var dot float64
			for c := 5; c < 29; c++ {
				dot += float64(qh[tq*D+c]) * float64(kh[tq*D+c])
			}
			if want := m.temperature * m.recency; math.Abs(dot-want) > 1e-4*want {
				t.Errorf("head %d token %d: recency self-logit %v, want τ·a_rec = %v", h, tq, dot, want)
			}
		}
	}
}

// TestValueStatistics checks the documented value model on a long head: unit variance,
// small sink values, and neighbours correlated by valueLowRank·ρ_v.
func TestValueStatistics(t *testing.T) {
	opts := Options{Preset: "opt-6.7b", Layers: 1, Heads: 4, PromptLen: 2000, Seed: 11, WithV: true}
	tr := mustNew(t, opts)
	const T, D = 2000, 128
	v := mustRead(t, tr, kvtrace.V, 0)
	for h := range 4 {
		vh := v[h*T*D : (h+1)*T*D]
		var sumSq, lag, sinkSq float64
		for j := range T {
			for d := range D {
				x := float64(vh[j*D+d])
				if j < 4 {
					sinkSq += x * x
					continue
				}
				sumSq += x * x
				if j > 4 {
					lag += x * float64(vh[(j-1)*D+d])
				}
			}
		}
		variance := sumSq / float64((T-4)*D)
		corr := lag / float64((T-5)*D) / variance
		wantCorr := 0.6 * tr.models[h].valueCorr
		if math.Abs(variance-1) > 0.15 {
			t.Errorf("head %d: value variance %.3f, want ≈ 1", h, variance)
		}
		if math.Abs(corr-wantCorr) > 0.1 {
			t.Errorf("head %d: neighbour correlation %.3f, want ≈ 0.6·ρ_v = %.3f", h, corr, wantCorr)
		}
		if sinkVar := sinkSq / (4 * D); sinkVar > 0.04*2 {
			t.Errorf("head %d: sink value variance %.4f, want ≈ 0.2² = 0.04", h, sinkVar)
		}
	}
}
