package attnstats

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/sim/kvtrace"
)

// fakeTrace is a one-layer trace whose q and k the test sets.
type fakeTrace struct {
	meta kvtrace.Meta
	q, k []float32 // [heads][tokens][headDim]
}

func (f *fakeTrace) Name() string       { return "fake" }
func (f *fakeTrace) Meta() kvtrace.Meta { return f.meta }
func (f *fakeTrace) Read(kind kvtrace.Kind, layer int, dst []float32) ([]float32, error) {
	if layer != 0 {
		return nil, errors.New("one layer")
	}
	if kind == kvtrace.Q {
		return append(dst[:0], f.q...), nil
	}
	return append(dst[:0], f.k...), nil
}

// newFake builds four heads of head_dim 2 over T tokens:
//   - head 0: q = 0, uniform attention (every row's maximum is shared);
//   - head 1: k_0 = (8, 0), every other key 0, q = (1, 0): the sink takes most;
//   - head 2: k_j = 6·(cos θj, sin θj) and q_t = (cos θ(t−1), sin θ(t−1)): each query
//     points at the previous token;
//   - head 3: k_5 = (8, 0), every other key 0, q = (1, 0): rows from 5 on attend to
//     key 5, rows before it evenly.
func newFake(T int) *fakeTrace {
	const H, d, theta = 4, 2, 0.3
	f := &fakeTrace{meta: kvtrace.Meta{Model: "m", Source: kvtrace.SourceCPU, Layers: 1, Heads: H, HeadDim: d, PromptLen: T}}
	f.q, f.k = make([]float32, H*T*d), make([]float32, H*T*d)
	at := func(h, t int) int { return (h*T + t) * d }
	f.k[at(1, 0)] = 8
	if T > 5 {
		f.k[at(3, 5)] = 8
	}
	for t := range T {
		f.q[at(1, t)] = 1
		f.q[at(3, t)] = 1
		f.k[at(2, t)] = float32(6 * math.Cos(theta*float64(t)))
		f.k[at(2, t)+1] = float32(6 * math.Sin(theta*float64(t)))
		f.q[at(2, t)] = float32(math.Cos(theta * float64(t-1)))
		f.q[at(2, t)+1] = float32(math.Sin(theta * float64(t-1)))
	}
	return f
}

// reference computes one head's statistics in float64, row by row.
func reference(f *fakeTrace, h int) Head {
	m := f.meta
	T, d := m.Tokens(), m.HeadDim
	out := Head{Head: h, Rows: T - 2}
	for t := 2; t < T; t++ {
		p := make([]float64, t+1)
		var z float64
		for j := range p {
			var s float64
			for i := range d {
				s += float64(f.q[(h*T+t)*d+i]) * float64(f.k[(h*T+j)*d+i])
			}
			p[j] = math.Exp(s)
			z += p[j]
		}
		best, second := 0, -1.0
		for j := range p {
			p[j] /= z
			if p[j] > p[best] {
				best = j
			}
		}
		for j := range p {
			if j != best && p[j] > second {
				second = p[j]
			}
		}
		out.Sink += p[0] / float64(T-2)
		out.Previous += p[t-1] / float64(T-2)
		out.Self += p[t] / float64(T-2)
		var entropy float64
		for _, x := range p {
			entropy -= x * math.Log(x)
		}
		out.Peak += p[best] / float64(T-2)
		out.Keys += math.Exp(entropy) / float64(T-2)
		if p[best]-second > 1e-9 {
			if best == 0 {
				out.SinkTop += 1 / float64(T-2)
			} else if best == t-1 {
				out.PreviousTop += 1 / float64(T-2)
			}
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 2e-6 }

func TestHeadsAgainstReference(t *testing.T) {
	f := newFake(12)
	var st Stats
	// Token ids t mod 4: the sink head's most attended key is always token 0; the
	// previous-token head's, over rows 2..11, tokens 1, 2, 3, 0, 1, 2, 3, 0, 1, 2.
	// Token 1 is the one delimiter: head 3's most attended key, position 5, holds it
	// in rows 5 and 7..11 (in row 6 it is the previous token): 6 rows of 10.
	tokens := make([]int32, 12)
	for i := range tokens {
		tokens[i] = int32(i % 4)
	}
	st.Delimiter = func(id int32) bool { return id == 1 }
	if err := st.Add(f, tokens); err != nil {
		t.Fatal(err)
	}
	for h, got := range st.PerHead {
		want := reference(f, h)
		if got.Rows != want.Rows || !near(got.Sink, want.Sink) || !near(got.Previous, want.Previous) || !near(got.Self, want.Self) ||
			!near(got.SinkTop, want.SinkTop) || !near(got.PreviousTop, want.PreviousTop) || !near(got.Peak, want.Peak) || !near(got.Keys, want.Keys) {
			t.Errorf("head %d: got %+v\nwant %+v", h, got, want)
		}
	}
	// Head 0 is uniform: rows 2..11 put 1/(t+1) on each key; no row has a unique top.
	var uniform float64
	for r := 2; r < 12; r++ {
		uniform += 1 / float64(r+1) / 10
	}
	h0, h1, h2, h3 := st.PerHead[0], st.PerHead[1], st.PerHead[2], st.PerHead[3]
	if !near(h0.Sink, uniform) || !near(h0.Previous, uniform) || !near(h0.Peak, uniform) || !near(h0.Keys, 7.5) ||
		h0.SinkTop != 0 || h0.SinkHead() || h0.PreviousHead() || h0.TopKeys != nil {
		t.Errorf("uniform head: %+v, want sink = previous = peak = %.6f, 7.5 effective keys (the mean of 3..12), no kind and no top keys", h0, uniform)
	}
	if want := []TokenShare{{0, 1}}; !slices.Equal(h1.TopKeys, want) {
		t.Errorf("sink head's top keys %v, want %v", h1.TopKeys, want)
	}
	if want := []TokenShare{{1, 0.3}, {2, 0.3}, {0, 0.2}}; !slices.Equal(h2.TopKeys, want) || h2.DelimiterTop != 0 {
		t.Errorf("previous-token head: top keys %v, want %v, and delimiter top %g, want 0", h2.TopKeys, want, h2.DelimiterTop)
	}
	if want := []TokenShare{{1, 0.7}}; !h3.DelimiterHead() || !near(h3.DelimiterTop, 0.6) || !near(h3.PreviousTop, 0.1) ||
		!slices.Equal(h3.TopKeys, want) || h3.SinkHead() || h3.PreviousHead() {
		t.Errorf("delimiter head: %+v, want delimiter top 0.6, previous top 0.1, top keys %v", h3, want)
	}
	if !h1.SinkHead() || h1.PreviousHead() || h1.SinkTop != 1 || h1.Sink < 0.99 {
		t.Errorf("sink head: %+v", h1)
	}
	if !h2.PreviousHead() || h2.SinkHead() || h2.PreviousTop != 1 {
		t.Errorf("previous-token head: %+v", h2)
	}
	sum := st.Summary()
	if sum.Heads != 4 || sum.SinkHeads != 1 || sum.PreviousHeads != 1 || sum.DelimiterHeads != 1 ||
		!near(sum.Sink, (h0.Sink+h1.Sink+h2.Sink+h3.Sink)/4) || !near(sum.Keys, (h0.Keys+h1.Keys+h2.Keys+h3.Keys)/4) || sum.Width != 7.5 {
		t.Errorf("summary %+v", sum)
	}
}

// Samples of different lengths weigh by their rows.
func TestSamplesWeighByRows(t *testing.T) {
	a, b := newFake(5), newFake(12)
	var st Stats
	if err := st.Add(a, nil); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(b, nil); err != nil {
		t.Fatal(err)
	}
	ra, rb := reference(a, 0), reference(b, 0)
	want := (ra.Sink*3 + rb.Sink*10) / 13
	if got := st.PerHead[0]; got.Rows != 13 || !near(got.Sink, want) || st.Samples != 2 {
		t.Errorf("two samples: %+v (samples %d), want 13 rows and sink %.6f", got, st.Samples, want)
	}
	// Rows of 3..5 keys and of 3..12: 4·3 + 7.5·10 over 13 rows.
	if got, want := st.Summary().Width, (4*3+7.5*10)/13; !near(got, want) {
		t.Errorf("width %g, want %g", got, want)
	}
}

func TestRefusesBadTraces(t *testing.T) {
	var st Stats
	if err := st.Add(newFake(2), nil); err == nil || !strings.Contains(err.Error(), "fake: 2 tokens") {
		t.Errorf("2 tokens: %v", err)
	}
	if err := st.Add(newFake(6), make([]int32, 5)); err == nil || !strings.Contains(err.Error(), "fake: 5 token ids for 6 positions") {
		t.Errorf("5 token ids: %v", err)
	}
	if err := st.Add(newFake(6), nil); err != nil {
		t.Fatal(err)
	}
	other := newFake(6)
	other.meta.Heads = 2
	if err := st.Add(other, nil); err == nil || !strings.Contains(err.Error(), "1 layers × 2 heads, but the first trace has 1 × 4") {
		t.Errorf("shape mismatch: %v", err)
	}
}
