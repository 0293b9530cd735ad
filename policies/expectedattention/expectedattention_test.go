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
// so with c = 1, s = μ·k + ½kᵀΣk is m + ½m² for full Σ (m = kx + ky), and m without
// covariance.
var (
	queries = [][]float32{{0, 0}, {2, 2}, {0, 0}, {2, 2}}
	keys    = [][]float32{{1, 1}, {0.5, 0.25}, {-1, -2}, {-1, 2.5}}
	values  = [][]float32{{3, 4}, {1, 0}, {0, 2}, {0, 1}} // norms 5, 1, 2, 1
	// Hand-worked s_i per covariance model, for keys 0..3.
	logits = map[string][]float64{
		"full": {4, 1.03125, 1.5, 2.625},
		"none": {2, 0.75, -3, 1.5},
	}
)

// build is New, keeping hold of the scorer.
func build(t *testing.T, params map[string]any) (*press.Press, *scorer) {
	t.Helper()
	s, opt, err := newScorer(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return press.New("expectedattention", s, opt), s
}

func TestScoresAreExpectedAttentionTimesValueNorm(t *testing.T) {
	for cov, s := range logits {
		p, sc := build(t, map[string]any{"covariance": cov, "epsilon": 0.5, "sinks": 0.0})
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
	want := map[string][]int{"full": {1, 2, 3}, "none": {2, 1, 3}}
	for cov, w := range want {
		p, err := New(policies.NewParams(map[string]any{"covariance": cov, "vnorm": false, "sinks": 0.0, "decode": "append"}))
		if err != nil {
			t.Fatal(err)
		}
		seq := presstest.FromTables(4, [][][]float32{keys}, nil, [][][]float32{queries})
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

func TestStatisticsWindow(t *testing.T) {
	var s queryStats
	s.reset(policies.Config{Heads: 1, HeadDim: 2}, 2, true)
	var dropped [][]float32
	for _, q := range [][]float32{{1, 0}, {3, 0}, {0, 2}} {
		if d := s.add(0, q); d != nil {
			dropped = append(dropped, slices.Clone(d))
		}
	}
	// The window holds (3, 0) and (0, 2): for k = (1, 1), Σq·k = 3 + 2 and
	// Σ(q·k)² = 9 + 4; (1, 0) was dropped.
	lin, quad := s.project(0, []float32{1, 1})
	if lin != 5 || quad != 13 || len(dropped) != 1 || !slices.Equal(dropped[0], []float32{1, 0}) {
		t.Errorf("window 2: Σq·k %g, Σ(q·k)² %g, dropped %v; want 5, 13, [[1 0]]", lin, quad, dropped)
	}
}

// TestTrackedSumsMatchTheRunningSums decodes with a window of three queries, after
// sinks, and checks that every resident token's tracked A and B equal those
// recomputed from the running sums at the end. Protecting the newest two positions
// keeps decode tokens, which entered reused slots, among them.
func TestTrackedSumsMatchTheRunningSums(t *testing.T) {
	p, sc := build(t, map[string]any{"queries": 3.0, "sinks": 2.0, "protect": 2.0})
	vec := func(h, pos, salt int) []float32 {
		return []float32{float32((pos*7+h+salt)%5) - 2, float32((pos*3+salt)%4) - 1.5}
	}
	seq := presstest.Sequence{Heads: 2, HeadDim: 2, PromptLen: 6, MaxLen: 12,
		Key:   func(h, pos int) []float32 { return vec(h, pos, 0) },
		Value: func(h, pos int) []float32 { return vec(h, pos, 1) },
		Query: func(h, pos int) []float32 { return vec(h, pos, 2) }}
	log, err := presstest.Run(p, policies.Config{Budget: 3}, seq)
	if err != nil {
		t.Fatal(err)
	}
	for h := range 2 {
		if !slices.Contains(log.Resident[h], 11) {
			t.Fatalf("head %d: resident %v lack the newest token", h, log.Resident[h])
		}
		if n := sc.stats.count[h]; n != 3 {
			t.Errorf("head %d: %d queries counted, want the window's 3", h, n)
		}
		for _, slot := range sc.t.Resident(h) {
			lin, quad := sc.stats.project(h, sc.t.Key(h, slot))
			if math.Abs(sc.lin.At(h, slot)-lin) > 1e-9 || math.Abs(sc.quad.At(h, slot)-quad) > 1e-9 {
				t.Errorf("head %d, position %d: tracked A %g, B %g; recomputed %g, %g",
					h, sc.t.Pos(h, slot), sc.lin.At(h, slot), sc.quad.At(h, slot), lin, quad)
			}
		}
	}
}

func TestSinksAreNotCounted(t *testing.T) {
	// With sinks = 2, the queries of positions 0 and 1 are left out: Σq is that of
	// (0, 0) and (2, 2) alone.
	p, sc := build(t, map[string]any{"sinks": 2.0, "vnorm": false})
	if _, err := p.Init(policies.Config{Heads: 1, HeadDim: 2, PromptLen: 4, MaxLen: 4, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	a := &policies.Attention{Phase: policies.Prefill, Rows: 4, Heads: 1, Stride: 4, Probs: make([]float32, 16), HeadDim: 2,
		Keys: make([]float32, 8), Queries: []float32{9, 9, 9, -9, 0, 0, 2, 2}}
	if err := p.Observe(a); err != nil {
		t.Fatal(err)
	}
	if lin, quad := sc.stats.project(0, []float32{1, 0}); sc.stats.count[0] != 2 || lin != 2 || quad != 4 {
		t.Errorf("sinks 2: %d queries, Σq·k %g, Σ(q·k)² %g; want 2, 2, 4", sc.stats.count[0], lin, quad)
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
	ks := [][][]float32{{{1, 0}, {0, 1}, {0.5, 0.5}}}
	qs := [][][]float32{{{1, 0}, {1, 0}, {-5, 9}}}
	log, err := presstest.Run(p, policies.Config{Budget: 1}, presstest.FromTables(2, ks, nil, qs))
	if err != nil {
		t.Fatal(err)
	}
	if err := presstest.CheckVictims(log, [][][]int{{{1}}, {{0}}}); err != nil {
		t.Error(err)
	}
}

func TestRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{
		{"covariance": "diagonal"}, {"queries": -1.0}, {"scale": 0.0}, {"epsilon": -1.0}, {"vnorm": "yes"}, {"rope": true},
	} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("params %v: no error", params)
		}
	}
}

func TestStateAndReuse(t *testing.T) {
	for params, bytes := range map[string]int{`{}`: 24, `{"vnorm": false}`: 16} {
		table, _ := policies.ParseParams([]byte(params))
		p, err := New(table)
		if err != nil {
			t.Fatal(err)
		}
		if n := p.(policies.TokenState).TokenStateBytes(); n != bytes {
			t.Errorf("params %s: token state %d bytes, want %d", params, n, bytes)
		}
	}
	vec := func(h, pos int) []float32 { return []float32{float32((pos*3+h)%5) - 2, float32(pos%3) - 1} }
	first := presstest.Sequence{Heads: 3, HeadDim: 2, PromptLen: 8, MaxLen: 11, Key: vec, Value: vec, Query: vec}
	more := func(table [][]float32, a, b []float32) [][][]float32 {
		return [][][]float32{append(slices.Clip(table), a, b)}
	}
	second := presstest.FromTables(4, more(keys, []float32{1, 0}, []float32{0, 1}),
		more(values, []float32{1, 0}, []float32{0, 1}), more(queries, []float32{1, 1}, []float32{2, 0}))
	if err := presstest.SameAfterReuse(New, map[string]any{"queries": 2.0}, policies.Config{Budget: 2}, first, second); err != nil {
		t.Error(err)
	}
}
