package nacl

import (
	"math"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

func newPolicy(t *testing.T, params map[string]any) policies.Policy {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// proxyRow is what each of the three proxy rows gives tokens 1..8 in the sampling
// setup; token 0 gets 0.1 and the rows' own tokens nothing.
var proxyRow = []float32{0.02, 0.25, 0.05, 0.20, 0.15, 0.01, 0.10, 0.12}

// samplingPrompt is a 12-token prompt: uniform rows, then three proxy rows 9..11.
func samplingPrompt() *policies.Attention {
	const n = 12
	a := &policies.Attention{Phase: policies.Prefill, Rows: n, Heads: 1, Stride: n, Probs: make([]float32, n*n)}
	for i := range n {
		row := a.Row(0, i)
		if i < 9 {
			for j := 0; j <= i; j++ {
				row[j] = 1 / float32(i+1)
			}
			continue
		}
		row[0] = 0.1
		copy(row[1:], proxyRow)
	}
	return a
}

// compressSampling runs the sampling setup with one seed and returns the victims.
// proxy_ratio 0.25 makes rows 9..11 the proxies, so recent protects tokens 9..11 and
// sink token 0. Budget 8 leaves 4 places, split 2 : 2.
func compressSampling(t *testing.T, p policies.Policy, seed uint64) []int32 {
	t.Helper()
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 12, MaxLen: 12, Budget: 8, Seed: seed}); err != nil {
		t.Fatal(err)
	}
	if err := p.Observe(samplingPrompt()); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: 11, Heads: 1, Need: []int32{4}, Stride: 12,
		Count: make([]int32, 1), Victims: make([]int32, 12)}
	if err := p.Evict(e); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(slices.Values(e.Victims[:e.Count[0]]))
}

var samplingParams = map[string]any{"proxy_ratio": 0.25, "sink": 1, "proxy_share": 1, "random_share": 1}

// TestRandomPartFollowsSoftmax checks the sampling distribution. The scores of tokens
// 1..8 are 3×proxyRow; tokens 2 and 4 score highest and form the proxy part. The
// random part keeps 2 of the other 6 without replacement, with probability ∝ exp(S).
// Inclusion frequencies over 4000 seeds must match the exact inclusion probabilities
// within 0.03 (four standard deviations at most).
func TestRandomPartFollowsSoftmax(t *testing.T) {
	rest := []int32{1, 3, 5, 6, 7, 8}
	weight := make([]float64, len(rest))
	total := 0.0
	for i, tok := range rest {
		s := 0.0
		for range 3 {
			s += float64(proxyRow[tok-1])
		}
		weight[i] = math.Exp(s)
		total += weight[i]
	}
	for i := range weight {
		weight[i] /= total
	}
	// P(j kept) = p_j + Σ_{i≠j} p_i p_j / (1 − p_i): drawn first or second.
	want := make([]float64, len(rest))
	for j := range rest {
		want[j] = weight[j]
		for i := range rest {
			if i != j {
				want[j] += weight[i] * weight[j] / (1 - weight[i])
			}
		}
	}
	if spread := slices.Max(want) - slices.Min(want); spread < 0.1 {
		t.Fatalf("inclusion probabilities %v are too even for the test to tell them from uniform", want)
	}

	const runs = 4000
	kept := make([]int, len(rest))
	p := newPolicy(t, samplingParams)
	for seed := range uint64(runs) {
		victims := compressSampling(t, p, seed)
		if len(victims) != 4 {
			t.Fatalf("seed %d: %d victims, want 4", seed, len(victims))
		}
		for _, v := range victims {
			if !slices.Contains(rest, v) {
				t.Fatalf("seed %d: victim %d is protected or in the proxy part", seed, v)
			}
		}
		for i, tok := range rest {
			if !slices.Contains(victims, tok) {
				kept[i]++
			}
		}
	}
	for i, tok := range rest {
		got := float64(kept[i]) / runs
		t.Logf("token %d: kept in %.3f of runs, exact %.3f", tok, got, want[i])
		if math.Abs(got-want[i]) > 0.03 {
			t.Errorf("token %d kept in %.3f of runs, want %.3f", tok, got, want[i])
		}
	}
}

func TestSeedDeterminesVictims(t *testing.T) {
	p := newPolicy(t, samplingParams)
	first := compressSampling(t, p, 42)
	if again := compressSampling(t, p, 42); !slices.Equal(first, again) {
		t.Fatalf("seed 42 gave %v, then %v", first, again)
	}
	differs := false
	for seed := range uint64(5) {
		if !slices.Equal(compressSampling(t, p, seed), first) {
			differs = true
		}
	}
	if !differs {
		t.Errorf("seeds 0..4 all gave the victims of seed 42: %v", first)
	}
}

func TestNoRandomPartIsDeterministic(t *testing.T) {
	params := map[string]any{"proxy_ratio": 0.25, "sink": 1, "random_share": 0}
	p := newPolicy(t, params)
	// The four places all go to the best scores: tokens 2, 4, 5 and 8.
	for seed := range uint64(3) {
		if got := compressSampling(t, p, seed); !slices.Equal(got, []int32{1, 3, 6, 7}) {
			t.Errorf("seed %d: victims %v, want [1 3 6 7]", seed, got)
		}
	}
}

func TestProtectedCountsShrinkToBudget(t *testing.T) {
	// sink 4 and recent 3 exceed a budget of 5: sink keeps 0..3 and recent only 11.
	p := newPolicy(t, map[string]any{"proxy_ratio": 0.25})
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 12, MaxLen: 12, Budget: 5}); err != nil {
		t.Fatal(err)
	}
	if err := p.Observe(samplingPrompt()); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: 11, Heads: 1, Need: []int32{7}, Stride: 12,
		Count: make([]int32, 1), Victims: make([]int32, 12)}
	if err := p.Evict(e); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(e.Victims[:e.Count[0]]))
	if want := []int32{4, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("victims %v, want %v", got, want)
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{
		{"proxy": 0.1},
		{"proxy_ratio": 0},
		{"proxy_ratio": 1.5},
		{"sink": -1},
		{"recent": -2},
		{"proxy_share": 0, "random_share": 0},
		{"random_share": -1},
		{"decode": "recency"},
	} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("New(%v) succeeded, want an error", params)
		}
	}
}

func TestAppendLayout(t *testing.T) {
	p := newPolicy(t, nil)
	layout, err := p.Init(policies.Config{Heads: 1, PromptLen: 12, MaxLen: 30, Budget: 8})
	if err != nil {
		t.Fatal(err)
	}
	if layout.Slack != 30 {
		t.Errorf("append slack %d, want MaxLen 30", layout.Slack)
	}
	p = newPolicy(t, map[string]any{"decode": "reevict"})
	if layout, err = p.Init(policies.Config{Heads: 1, PromptLen: 12, MaxLen: 30, Budget: 8}); err != nil {
		t.Fatal(err)
	}
	if layout.Slack != 0 {
		t.Errorf("reevict slack %d, want 0", layout.Slack)
	}
}

func TestNoAllocationsPerCall(t *testing.T) {
	p := newPolicy(t, map[string]any{"decode": "reevict", "proxy_ratio": 0.25, "sink": 1})
	const prompt, budget = 12, 8
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: prompt, MaxLen: 1 << 20, Budget: budget}); err != nil {
		t.Fatal(err)
	}
	if err := p.Observe(samplingPrompt()); err != nil {
		t.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: prompt - 1, Heads: 1, Need: []int32{prompt - budget},
		Stride: prompt, Count: make([]int32, 1), Victims: make([]int32, prompt)}
	if err := p.Evict(e); err != nil {
		t.Fatal(err)
	}
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: 1, Stride: prompt,
		Probs: make([]float32, prompt), Slot: []int32{slices.Min(e.Victims[:e.Count[0]])}}
	for s := range a.Probs {
		a.Probs[s] = float32(s%5+1) / 27
	}
	e.Phase, e.Need[0] = policies.Decode, 1
	pos := prompt
	step := func() {
		a.Pos, e.Pos = pos, pos
		if err := p.Observe(a); err != nil {
			t.Fatal(err)
		}
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		a.Slot[0] = e.Victims[0] // the only free slot now
		pos++
	}
	if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
		t.Errorf("%v allocations per decode step", allocs)
	}
}
