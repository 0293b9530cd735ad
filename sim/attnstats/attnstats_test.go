package attnstats

import (
	"errors"
	"math"
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

// newFake builds three heads of head_dim 2 over T tokens:
//   - head 0: q = 0, uniform attention (every row's maximum is shared);
//   - head 1: k_0 = (8, 0), every other key 0, q = (1, 0): the sink takes most;
//   - head 2: k_j = 6·(cos θj, sin θj) and q_t = (cos θ(t−1), sin θ(t−1)): each query
//     points at the previous token.
func newFake(T int) *fakeTrace {
	const H, d, theta = 3, 2, 0.3
	f := &fakeTrace{meta: kvtrace.Meta{Model: "m", Source: kvtrace.SourceCPU, Layers: 1, Heads: H, HeadDim: d, PromptLen: T}}
	f.q, f.k = make([]float32, H*T*d), make([]float32, H*T*d)
	at := func(h, t int) int { return (h*T + t) * d }
	f.k[at(1, 0)] = 8
	for t := range T {
		f.q[at(1, t)] = 1
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
	if err := st.Add(f); err != nil {
		t.Fatal(err)
	}
	for h, got := range st.PerHead {
		want := reference(f, h)
		if got.Rows != want.Rows || !near(got.Sink, want.Sink) || !near(got.Previous, want.Previous) || !near(got.Self, want.Self) ||
			!near(got.SinkTop, want.SinkTop) || !near(got.PreviousTop, want.PreviousTop) {
			t.Errorf("head %d: got %+v\nwant %+v", h, got, want)
		}
	}
	// Head 0 is uniform: rows 2..11 put 1/(t+1) on each key; no row has a unique top.
	var uniform float64
	for r := 2; r < 12; r++ {
		uniform += 1 / float64(r+1) / 10
	}
	h0, h1, h2 := st.PerHead[0], st.PerHead[1], st.PerHead[2]
	if !near(h0.Sink, uniform) || !near(h0.Previous, uniform) || h0.SinkTop != 0 || h0.SinkHead() || h0.PreviousHead() {
		t.Errorf("uniform head: %+v, want sink = previous = %.6f and no kind", h0, uniform)
	}
	if !h1.SinkHead() || h1.PreviousHead() || h1.SinkTop != 1 || h1.Sink < 0.99 {
		t.Errorf("sink head: %+v", h1)
	}
	if !h2.PreviousHead() || h2.SinkHead() || h2.PreviousTop != 1 {
		t.Errorf("previous-token head: %+v", h2)
	}
	sum := st.Summary()
	if sum.Heads != 3 || sum.SinkHeads != 1 || sum.PreviousHeads != 1 || !near(sum.Sink, (h0.Sink+h1.Sink+h2.Sink)/3) {
		t.Errorf("summary %+v", sum)
	}
}

// Samples of different lengths weigh by their rows.
func TestSamplesWeighByRows(t *testing.T) {
	a, b := newFake(5), newFake(12)
	var st Stats
	if err := st.Add(a); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(b); err != nil {
		t.Fatal(err)
	}
	ra, rb := reference(a, 0), reference(b, 0)
	want := (ra.Sink*3 + rb.Sink*10) / 13
	if got := st.PerHead[0]; got.Rows != 13 || !near(got.Sink, want) || st.Samples != 2 {
		t.Errorf("two samples: %+v (samples %d), want 13 rows and sink %.6f", got, st.Samples, want)
	}
}

func TestRefusesBadTraces(t *testing.T) {
	var st Stats
	if err := st.Add(newFake(2)); err == nil || !strings.Contains(err.Error(), "fake: 2 tokens") {
		t.Errorf("2 tokens: %v", err)
	}
	if err := st.Add(newFake(6)); err != nil {
		t.Fatal(err)
	}
	other := newFake(6)
	other.meta.Heads = 2
	if err := st.Add(other); err == nil || !strings.Contains(err.Error(), "1 layers × 2 heads, but the first trace has 1 × 3") {
		t.Errorf("shape mismatch: %v", err)
	}
}
