package expectedattention

import (
	"math"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
	"github.com/kvsim/kvsim/policies/press/presstest"
)

// Prompt queries (0,0), (2,2), (0,0), (2,2): μ = (1, 1), Σ = [[1 1] [1 1]] (population),
// so with c = 1, s = μ·k + ½kᵀΣk is m + ½m² for full Σ (m = kx + ky), m + ½(kx² + ky²)
// for the diagonal, and m without covariance.
var (
	queries = [][]float32{{0, 0}, {2, 2}, {0, 0}, {2, 2}}
	keys    = [][]float32{{1, 1}, {0.5, 0.25}, {-1, -2}, {-1, 2.5}}
	values  = [][]float32{{3, 4}, {1, 0}, {0, 2}, {0, 1}} // norms 5, 1, 2, 1
	// Hand-worked s_i per covariance model, for keys 0..3.
	logits = map[string][]float64{
		covFull:     {4, 1.03125, 1.5, 2.625},
		covDiagonal: {3, 0.90625, -0.5, 5.125},
		covNone:     {2, 0.75, -3, 1.5},
	}
)

func TestScoresAreExpectedAttentionTimesValueNorm(t *testing.T) {
	for cov, s := range logits {
		sc := &scorer{cov: cov, scale: 1, vnorm: true, epsilon: 0.5}
		p := press.New("expectedattention", sc, press.Options{StoreKeys: true, Queries: true, Values: true, Compact: true, Decode: press.Score})
		if _, err := p.Init(policies.Config{Heads: 1, HeadDim: 2, PromptLen: 4, MaxLen: 5, Budget: 2}); err != nil {
			t.Fatal(err)
		}
		a := &policies.Attention{Phase: policies.Prefill, Rows: 4, Heads: 1, Stride: 4, Probs: make([]float32, 16), HeadDim: 2}
		for i := range 4 {
			a.Keys = append(a.Keys, keys[i]...)
			a.Values = append(a.Values, values[i]...)
			a.Queries = append(a.Queries, queries[i]...)
		}
		if err := p.Observe(a); err != nil {
			t.Fatal(err)
		}
		total := 0.0
		for _, l := range s {
			total += math.Exp(l)
		}
		slots := []int32{3, 1, 0, 2}
		got := make([]float64, len(slots))
		sc.Score(0, slots, got)
		for i, slot := range slots {
			want := (math.Exp(s[slot])/total + 0.5) * press.Norm(values[slot])
			if math.Abs(got[i]-want) > 1e-12*want {
				t.Errorf("covariance %s, token %d: score %.15g, want %.15g", cov, slot, got[i], want)
			}
		}
	}
}

func TestCompressionRanksByExpectedAttention(t *testing.T) {
	// Budget 1 keeps one token: the rest go, lowest expected attention first.
	want := map[string][]int{covFull: {1, 2, 3}, covDiagonal: {2, 1, 0}, covNone: {2, 1, 3}}
	for cov, w := range want {
		p, err := New(policies.NewParams(map[string]any{"covariance": cov, "vnorm": false, "sinks": 0.0, "decode": "append"}))
		if err != nil {
			t.Fatal(err)
		}
		seq := presstest.Sequence{Heads: 1, HeadDim: 2, PromptLen: 4, MaxLen: 4,
			Key:   func(_, pos int) []float32 { return keys[pos] },
			Query: func(_, pos int) []float32 { return queries[pos] }}
		log, err := presstest.Run(p, policies.Config{Budget: 1}, seq)
		if err != nil {
			t.Fatal(err)
		}
		if l := log.Layout; !l.Keys || !l.Queries || l.Values || !l.Compact {
			t.Errorf("layout %+v: want keys, queries and compact rows, no values without vnorm", l)
		}
		if got := log.Events[0].Victims[0]; !slices.Equal(got, w) {
			t.Errorf("covariance %s: victims %v, want %v", cov, got, w)
		}
	}
}

func TestStatisticsWindowAndSinks(t *testing.T) {
	var s queryStats
	s.reset(policies.Config{Heads: 1, HeadDim: 2}, 2, covFull)
	for _, q := range [][]float32{{1, 0}, {3, 0}, {0, 2}} {
		s.add(0, q)
	}
	// The window holds (3, 0) and (0, 2): μ = (1.5, 1); variances 2.25 and 1,
	// covariance ((1.5)(−1) + (−1.5)(1)) / 2 = −1.5.
	mu, cov := make([]float64, 2), make([]float64, 4)
	s.moments(0, mu, cov)
	if !slices.Equal(mu, []float64{1.5, 1}) || !slices.Equal(cov, []float64{2.25, -1.5, -1.5, 1}) {
		t.Errorf("window 2: μ %v, Σ %v; want [1.5 1], [2.25 -1.5 -1.5 1]", mu, cov)
	}

	// With sinks = 2, the queries of positions 0 and 1 are not counted: of the
	// prompt's queries only (0,0) and (2,2) at positions 2 and 3 are, so μ = (1, 1).
	sc := &scorer{cov: covDiagonal, scale: 1, sinks: 2}
	p := press.New("expectedattention", sc, press.Options{StoreKeys: true, Queries: true})
	if _, err := p.Init(policies.Config{Heads: 1, HeadDim: 2, PromptLen: 4, MaxLen: 4, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	a := &policies.Attention{Phase: policies.Prefill, Rows: 4, Heads: 1, Stride: 4, Probs: make([]float32, 16), HeadDim: 2,
		Keys: make([]float32, 8), Queries: []float32{9, 9, 9, -9, 0, 0, 2, 2}}
	if err := p.Observe(a); err != nil {
		t.Fatal(err)
	}
	sc.stats.moments(0, mu, cov[:2])
	if !slices.Equal(mu, []float64{1, 1}) || !slices.Equal(cov[:2], []float64{1, 1}) {
		t.Errorf("sinks 2: μ %v, diagonal Σ %v; want [1 1], [1 1]", mu, cov[:2])
	}
}

func TestDecodeCountsEachNewQuery(t *testing.T) {
	// One head, no covariance, c = 1: s = μ·k. Prompt queries (1, 0) twice; keys
	// (1, 0), (0, 1): compression to 1 drops key 1 (s 0 < 1). Step 2 brings query
	// (−5, 9): μ = (−1, 3), and key (0.5, 0.5) scores 1; resident key 0 scores −1 and goes.
	p, err := New(policies.NewParams(map[string]any{"covariance": "none", "vnorm": false, "sinks": 0.0}))
	if err != nil {
		t.Fatal(err)
	}
	qs := [][]float32{{1, 0}, {1, 0}, {-5, 9}}
	ks := [][]float32{{1, 0}, {0, 1}, {0.5, 0.5}}
	seq := presstest.Sequence{Heads: 1, HeadDim: 2, PromptLen: 2, MaxLen: 3,
		Key:   func(_, pos int) []float32 { return ks[pos] },
		Query: func(_, pos int) []float32 { return qs[pos] }}
	log, err := presstest.Run(p, policies.Config{Budget: 1}, seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Events) != 2 || !slices.Equal(log.Events[0].Victims[0], []int{1}) || !slices.Equal(log.Events[1].Victims[0], []int{0}) {
		t.Errorf("events %+v: want compression dropping 1, then step 2 dropping 0", log.Events)
	}
}

func TestRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{
		{"covariance": "low-rank"}, {"queries": -1.0}, {"scale": 0.0}, {"epsilon": -1.0}, {"vnorm": "yes"}, {"rope": true},
	} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("params %v: no error", params)
		}
	}
}
