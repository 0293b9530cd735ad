package pyramidkv

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/pooltest"
	"github.com/kvsim/kvsim/policies/policytest"
)

func newPolicy(t *testing.T, params map[string]any) *policy {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p.(*policy)
}

// TestLayerBudgets checks the schedule against budgets worked out by hand.
func TestLayerBudgets(t *testing.T) {
	tests := []struct {
		name                          string
		params                        map[string]any
		layers, budget, prompt, total int
		want                          []int // per head
	}{
		// w = 4, A = 12, β = 20: a_l = 23.4, 15.8, 8.2, 0.6 (sum 48). Floors 23, 15, 8, 0
		// leave 2 tokens, which go to the largest fractions, .8 (layer 1) and .6 (layer 3).
		{"pyramid", map[string]any{"window": 4}, 4, 16, 40, 48, []int{27, 20, 12, 5}},
		// A 20-token prompt under "append" can use 16 tokens beyond the window, so
		// a_0 = 16 and a_3 = 2·12 − 16 = 8: a_l = 16, 13⅓, 10⅔, 8; the one token left
		// goes to layer 2 (⅔).
		{"clamped to the prompt", map[string]any{"window": 4}, 4, 16, 20, 48, []int{20, 17, 15, 12}},
		// Under "recency" the layers grow to the sequence length: no clamp.
		{"recency uses the sequence", map[string]any{"window": 4, "decode": "recency"}, 4, 16, 20, 48, []int{27, 20, 12, 5}},
		// β = 2, w = 2, A = 8: a_l = 12, 8, 4 exactly.
		{"beta 2", map[string]any{"window": 2, "beta": 2}, 3, 10, 100, 110, []int{14, 10, 6}},
		// Two layers, w = 1, A = 3, β = 2: a_l = 4.5, 1.5; the tie goes to layer 0.
		{"tie to the lower layer", map[string]any{"window": 1, "beta": 2}, 2, 4, 8, 8, []int{6, 2}},
		{"beta 1 is uniform", map[string]any{"window": 4, "beta": 1}, 4, 16, 40, 48, []int{16, 16, 16, 16}},
		{"window takes the budget", map[string]any{"window": 32}, 4, 16, 40, 48, []int{16, 16, 16, 16}},
		{"prompt fits the budget", map[string]any{"window": 4}, 4, 16, 16, 48, []int{16, 16, 16, 16}},
		{"one layer", map[string]any{"window": 4}, 1, 16, 40, 48, []int{16}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const heads = 2
			p := newPolicy(t, tt.params)
			cfg := policies.Config{Layer: -1, Layers: tt.layers, Heads: heads, PromptLen: tt.prompt, MaxLen: tt.total, Budget: tt.budget}
			entries := make([]int, tt.layers)
			if err := p.LayerBudgets(cfg, entries); err != nil {
				t.Fatal(err)
			}
			var want []int
			sum := 0
			for _, b := range tt.want {
				want = append(want, heads*b)
				sum += heads * b
			}
			if !slices.Equal(entries, want) {
				t.Errorf("entries %v, want %v", entries, want)
			}
			if sum != tt.layers*heads*tt.budget {
				t.Fatalf("test case sums to %d, not L×H×B", sum)
			}
		})
	}
}

// TestScheduleProperties checks seeded random configs against the schedule in float64:
// the budgets sum to L×B, shrink with depth, keep the window, and stay within one
// token of w + a_l.
func TestScheduleProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		layers, budget := 1+r.IntN(40), 1+r.IntN(300)
		window, beta := 1+r.IntN(64), 1+r.IntN(50)
		prompt := 1 + r.IntN(2000)
		decode := []string{"append", "recency", "rescore"}[r.IntN(3)]
		cfg := policies.Config{Layer: -1, Layers: layers, Heads: 1, PromptLen: prompt, MaxLen: prompt + r.IntN(100), Budget: budget}
		p := newPolicy(t, map[string]any{"window": window, "beta": beta, "decode": decode})
		got := p.schedule(cfg, nil)
		w := min(window, budget)
		rest := float64(budget - w)
		usable := cfg.MaxLen
		if decode == "append" {
			usable = prompt
		}
		top, bottom := (2-1/float64(beta))*rest, rest/float64(beta)
		if top > float64(usable-w) {
			top, bottom = float64(usable-w), 2*rest-float64(usable-w)
		}
		uniform := layers == 1 || rest == 0 || usable <= budget
		sum := 0
		for l, b := range got {
			sum += b
			ideal := float64(budget)
			if !uniform {
				ideal = float64(w) + top - float64(l)*(top-bottom)/float64(layers-1)
			}
			if math.Abs(float64(b)-ideal) >= 1+1e-9 || b < w || (l > 0 && b > got[l-1]) {
				t.Fatalf("%+v window %d beta %d %s: budgets %v (layer %d ideal %.3f)", cfg, window, beta, decode, got, l, ideal)
			}
		}
		if sum != layers*budget {
			t.Fatalf("%+v window %d beta %d: budgets %v sum to %d, want %d", cfg, window, beta, got, sum, layers*budget)
		}
	}
}

// TestCompression drives both layers of the two-layer schedule above (b = 6, 2) on an
// 8-token prompt with window 1: row 7 votes, kernel 1 leaves the votes raw.
func TestCompression(t *testing.T) {
	const heads, prompt = 2, 8
	vote := [][]float32{
		{0.02, 0.30, 0.05, 0.20, 0.03, 0.10, 0.15, 0.15},
		{0.25, 0.01, 0.04, 0.02, 0.16, 0.07, 0.05, 0.40},
	}
	rows := [][][]float32{policytest.UniformPrompt(prompt, vote[0]), policytest.UniformPrompt(prompt, vote[1])}
	tests := []struct {
		layer    int
		poolNeed int
		want     [][]int32
	}{
		// Layer 0 keeps 5 of tokens 0..6 besides the window: it drops the two lowest.
		{0, heads * (prompt - 6), [][]int32{{0, 4}, {1, 3}}},
		// Layer 1 keeps the best one: token 1 in head 0, token 0 in head 1.
		{1, heads * (prompt - 2), [][]int32{{0, 2, 3, 4, 5, 6}, {1, 2, 3, 4, 5, 6}}},
	}
	for _, tt := range tests {
		p := newPolicy(t, map[string]any{"window": 1, "kernel": 1, "beta": 2, "decode": "recency"})
		cfg := policies.Config{Layer: tt.layer, Layers: 2, Heads: heads, PromptLen: prompt, MaxLen: prompt + 1, Budget: 4}
		layout, err := p.Init(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if layout.Pool != policies.PoolModel {
			t.Fatalf("layout pool %v, want model", layout.Pool)
		}
		policytest.Prefill(t, p, prompt, rows)
		got, err := policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, tt.poolNeed)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("layer %d: victims %v, want %v", tt.layer, got, tt.want)
		}
		if tt.layer != 1 {
			continue
		}
		// Decode step 8 enters the lowest free slot (0 in head 0, 1 in head 1);
		// "recency" drops the prompt's window token (slot 7) from each head to get back
		// to 2.
		policytest.Decode(t, p, prompt, prompt, []int32{0, 1}, [][]float32{{0.5, 0.25, 0, 0, 0, 0, 0, 0.25}, {0.5, 0.25, 0, 0, 0, 0, 0, 0.25}})
		got, err = policytest.EvictPool(p, policies.Decode, prompt, heads, prompt, heads)
		if err != nil {
			t.Fatal(err)
		}
		if want := [][]int32{{7}, {7}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("decode victims %v, want %v", got, want)
		}
	}
}

func TestOverdrawnPoolFails(t *testing.T) {
	const heads, prompt = 2, 8
	p := newPolicy(t, map[string]any{"window": 1, "beta": 2})
	if _, err := p.Init(policies.Config{Layer: 1, Layers: 2, Heads: heads, PromptLen: prompt, MaxLen: prompt, Budget: 4}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, prompt, [][][]float32{policytest.UniformPrompt(prompt), policytest.UniformPrompt(prompt)})
	_, err := policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, heads*prompt-1)
	if err == nil || !strings.Contains(err.Error(), "pool needs 15 victims") {
		t.Fatalf("got %v, want an error about the pool's 15 victims", err)
	}
}

func TestParams(t *testing.T) {
	for _, tt := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"betta": 2}, `unknown param "betta"`},
		{map[string]any{"beta": 0}, `param "beta"`},
		{map[string]any{"beta": 1.5}, `param "beta"`},
		{map[string]any{"window": 0}, `param "window"`},
		{map[string]any{"decode": "rescore", "kernel": 2}, `param "kernel"`},
	} {
		_, err := New(policies.NewParams(tt.params))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "pyramidkv: ") {
			t.Errorf("%v: got %v, want an error with %s", tt.params, err, tt.want)
		}
	}
	p := newPolicy(t, nil)
	if _, err := p.Init(policies.Config{Layer: 4, Layers: 4, Heads: 1, PromptLen: 8, MaxLen: 8, Budget: 4}); err == nil {
		t.Error("layer 4 of 4 accepted")
	}
}

// TestSequence drives every layer of a 3-layer model through a pooled host: each head
// of layer l holds b_l tokens after every eviction, the window among them.
func TestSequence(t *testing.T) {
	const heads, prompt, budget = 3, 24, 6
	// w = 2, A = 4, β = 20: a_l = 7.8, 4, 0.2 → b_l = 10, 6, 2 (sum 18 = 3×6).
	want := []int{10, 6, 2}
	for _, decode := range []string{"recency", "rescore"} {
		for l, b := range want {
			p := newPolicy(t, map[string]any{"window": 2, "decode": decode})
			cfg := policies.Config{Layer: l, Layers: 3, Heads: heads, PromptLen: prompt, MaxLen: 40, Budget: budget}
			log, err := pooltest.Run(p, cfg, uint64(l))
			if err != nil {
				t.Fatalf("%s, layer %d: %v", decode, l, err)
			}
			if log.Entries != heads*b {
				t.Fatalf("%s, layer %d: pool %d, want %d", decode, l, log.Entries, heads*b)
			}
			for i, step := range log.Held {
				newest := prompt - 1 + i
				for h, held := range step {
					if len(held) != b || !slices.Equal(held[b-2:], []int{newest - 1, newest}) {
						t.Fatalf("%s, layer %d, position %d: head %d holds %v", decode, l, newest, h, held)
					}
				}
			}
		}
	}
}
