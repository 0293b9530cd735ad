package adakv

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/pooltest"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/policies/snapkv"
)

const heads, prompt = 2, 6

// Row 5 votes (window 1, kernel 1: raw votes). On tokens 0..4 head 0's attention is
// spread (0.30, 0.06, 0.25, 0.05, 0.04), head 1's sits on its own token (0.80) and
// leaves little elsewhere (0.10, 0.02, 0.03, 0.04, 0.01).
var rows = [][][]float32{
	policytest.UniformPrompt(prompt, []float32{0.30, 0.06, 0.25, 0.05, 0.04, 0.30}),
	policytest.UniformPrompt(prompt, []float32{0.10, 0.02, 0.03, 0.04, 0.01, 0.80}),
}

func compressed(t *testing.T, params map[string]any, budget int) (policies.Policy, [][]int32) {
	t.Helper()
	params["window"], params["kernel"] = 1, 1
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	layout, err := p.Init(policies.Config{Layer: 0, Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: prompt + 1, Budget: budget})
	if err != nil {
		t.Fatal(err)
	}
	if layout.Pool != policies.PoolLayer {
		t.Fatalf("layout pool %v, want layer", layout.Pool)
	}
	policytest.Prefill(t, p, prompt, rows)
	victims, err := policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, heads*(prompt-budget))
	if err != nil {
		t.Fatal(err)
	}
	return p, victims
}

func TestCompression(t *testing.T) {
	tests := []struct {
		name   string
		alpha  float64
		budget int
		want   [][]int32
	}{
		// Pool 4: both windows (token 5) and the two best votes of the layer, head 0's
		// 0.30 and 0.25. Head 0 keeps 3 tokens, head 1 keeps 1.
		{"adaptive", 0, 2, [][]int32{{1, 3, 4}, {0, 1, 2, 3, 4}}},
		// floor(0.2·1) = 0: the default safeguard protects nothing at this budget.
		{"default safeguard", 0.2, 2, [][]int32{{1, 3, 4}, {0, 1, 2, 3, 4}}},
		// floor(1·1) = 1: each head keeps its best, which is SnapKV.
		{"alpha 1 is SnapKV", 1, 2, [][]int32{{1, 2, 3, 4}, {1, 2, 3, 4}}},
		// Pool 6, floor(0.5·2) = 1: each head keeps its best (token 0); the two
		// entries left go to head 0's 0.25 and 0.06. Head 0 keeps 4, head 1 keeps 2.
		{"safeguard", 0.5, 3, [][]int32{{3, 4}, {1, 2, 3, 4}}},
	}
	for _, tt := range tests {
		_, got := compressed(t, map[string]any{"alpha": tt.alpha}, tt.budget)
		if !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%s: victims %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestDecode continues the adaptive case: head 0 holds tokens 0, 2, 5 in slots 0, 2, 5,
// head 1 holds token 5 in slot 5. Token 6 enters slot 1 in head 0 and slot 0 in head 1,
// and the pool needs 2 victims.
func TestDecode(t *testing.T) {
	decodeRows := [][]float32{
		{0.05, 0.40, 0.10, 0, 0, 0.45},
		{0.40, 0, 0, 0, 0, 0.60},
	}
	tests := []struct {
		decode string
		want   [][]int32
	}{
		// Each head keeps its share (3 and 1): token 5 leaves the window in both.
		{"recency", [][]int32{{5}, {5}}},
		// Re-voted by row 6 over tokens ≤ 5: head 0's 0.05 and 0.10 are the layer's
		// lowest, so head 0 gives both and head 1 none.
		{"rescore", [][]int32{{0, 2}, {}}},
	}
	for _, tt := range tests {
		p, _ := compressed(t, map[string]any{"alpha": 0, "decode": tt.decode}, 2)
		policytest.Decode(t, p, prompt, prompt, []int32{1, 0}, decodeRows)
		got, err := policytest.EvictPool(p, policies.Decode, prompt, heads, prompt, 2)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, tt.want, slices.Equal) {
			t.Errorf("%s: victims %v, want %v", tt.decode, got, tt.want)
		}
	}
}

// TestFullSafeguardIsSnapKV: with alpha = 1 every head keeps B, and the victims are
// SnapKV's on seeded random attention.
func TestFullSafeguardIsSnapKV(t *testing.T) {
	const heads, prompt, budget = 3, 40, 12
	r := rand.New(rand.NewPCG(9, 1))
	rows := make([][][]float32, heads)
	for h := range rows {
		for i := range prompt {
			row := make([]float32, i+1)
			sum := float32(0)
			for j := range row {
				row[j] = r.Float32() * r.Float32()
				sum += row[j]
			}
			for j := range row {
				row[j] /= sum
			}
			rows[h] = append(rows[h], row)
		}
	}
	params := map[string]any{"window": 4, "kernel": 3}
	cfg := policies.Config{Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: prompt, Budget: budget}
	snap, err := snapkv.New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snap.Init(cfg); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, snap, prompt, rows)
	need := []int32{prompt - budget, prompt - budget, prompt - budget}
	want := policytest.MustEvict(t, snap, policies.Prefill, prompt-1, prompt, need)

	params["alpha"] = 1
	ada, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ada.Init(cfg); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, ada, prompt, rows)
	got, err := policytest.EvictPool(ada, policies.Prefill, prompt-1, heads, prompt, heads*(prompt-budget))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("alpha 1 victims %v, SnapKV's %v", got, want)
	}
}

func TestOverdrawnPoolFails(t *testing.T) {
	p, err := New(policies.NewParams(map[string]any{"window": 1}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Init(policies.Config{Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: prompt, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, prompt, rows)
	// The windows keep one token per head: 10 may go, not 11.
	_, err = policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, 11)
	if err == nil || !strings.Contains(err.Error(), "pool needs 11 victims") {
		t.Fatalf("got %v, want an error about the pool's 11 victims", err)
	}
}

func TestParams(t *testing.T) {
	for _, tt := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"alpah": 0.1}, `unknown param "alpah"`},
		{map[string]any{"alpha": 1.5}, `param "alpha"`},
		{map[string]any{"alpha": "low"}, `param "alpha"`},
		{map[string]any{"pooling": "sum"}, `param "pooling"`},
	} {
		_, err := New(policies.NewParams(tt.params))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "adakv: ") {
			t.Errorf("%v: got %v, want an error with %s", tt.params, err, tt.want)
		}
	}
}

// TestMatchesReference recomputes the compression from its definition on seeded random
// attention: raw votes (kernel 1) of the last 3 rows; each head's floor(alpha·(B−3))
// best tokens before the window stay; of the rest, the layer's lowest votes go.
func TestMatchesReference(t *testing.T) {
	const heads, prompt, window = 4, 30, 3
	r := rand.New(rand.NewPCG(5, 6))
	for trial := range 30 {
		budget := window + 1 + r.IntN(prompt-window-1)
		alpha := []float64{0, 0.3, 1}[trial%3]
		rows := make([][][]float32, heads)
		for h := range rows {
			spread := 1 + 4*r.Float32() // heads differ in how peaked they are
			for i := range prompt {
				row := make([]float32, i+1)
				sum := float32(0)
				for j := range row {
					row[j] = float32(math.Pow(float64(r.Float32()), float64(spread)))
					sum += row[j]
				}
				for j := range row {
					row[j] /= sum
				}
				rows[h] = append(rows[h], row)
			}
		}
		type cand struct {
			vote    float64
			head, j int
		}
		var open []cand
		floor := int(alpha * float64(budget-window))
		for h := range heads {
			var mine []cand
			for j := range prompt - window {
				v := 0.0
				for i := prompt - window; i < prompt; i++ {
					v += float64(rows[h][i][j])
				}
				mine = append(mine, cand{v, h, j})
			}
			slices.SortStableFunc(mine, func(a, b cand) int { return cmp.Compare(a.vote, b.vote) })
			open = append(open, mine[:len(mine)-floor]...)
		}
		slices.SortStableFunc(open, func(a, b cand) int {
			return cmp.Or(cmp.Compare(a.vote, b.vote), cmp.Compare(a.head, b.head), cmp.Compare(a.j, b.j))
		})
		want := make([][]int32, heads)
		for _, c := range open[:heads*(prompt-budget)] {
			want[c.head] = append(want[c.head], int32(c.j))
		}
		for h := range want {
			slices.Sort(want[h])
		}

		p, err := New(policies.NewParams(map[string]any{"window": window, "kernel": 1, "alpha": alpha}))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Init(policies.Config{Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: prompt, Budget: budget}); err != nil {
			t.Fatal(err)
		}
		policytest.Prefill(t, p, prompt, rows)
		got, err := policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, heads*(prompt-budget))
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("budget %d, alpha %g: victims %v, reference %v", budget, alpha, got, want)
		}
	}
}

// TestSequence drives whole sequences through a pooled host: after every eviction the
// layer holds its pool exactly, every head its newest `window` tokens and at least its
// safeguard beyond them; under "recency" every head keeps the share the compression
// gave it.
func TestSequence(t *testing.T) {
	const heads, prompt, budget, window = 4, 24, 6, 2
	for _, decode := range []string{"recency", "rescore"} {
		for _, alpha := range []float64{0.2, 0.5} {
			p, err := New(policies.NewParams(map[string]any{"window": window, "alpha": alpha, "decode": decode}))
			if err != nil {
				t.Fatal(err)
			}
			cfg := policies.Config{Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: 50, Budget: budget}
			log, err := pooltest.Run(p, cfg, 8)
			if err != nil {
				t.Fatalf("%s, alpha %g: %v", decode, alpha, err)
			}
			if log.Layout.Pool != policies.PoolLayer || log.Entries != heads*budget {
				t.Fatalf("layout %+v, pool %d", log.Layout, log.Entries)
			}
			floor := int(alpha * (budget - window))
			spread := false // some head kept more than the uniform budget
			for i, step := range log.Held {
				newest := prompt - 1 + i
				total := 0
				for h, held := range step {
					total += len(held)
					spread = spread || len(held) > budget
					if len(held) < window+floor || !slices.Equal(held[len(held)-window:], []int{newest - 1, newest}) {
						t.Fatalf("%s, alpha %g, position %d: head %d holds %v", decode, alpha, newest, h, held)
					}
					if decode == "recency" && len(held) != len(log.Held[0][h]) {
						t.Fatalf("recency, alpha %g, position %d: head %d holds %d, its share is %d", alpha, newest, h, len(held), len(log.Held[0][h]))
					}
				}
				if total != heads*budget {
					t.Fatalf("%s, alpha %g, position %d: the layer holds %d", decode, alpha, newest, total)
				}
			}
			if !spread {
				t.Errorf("%s, alpha %g: every head kept at most the uniform budget", decode, alpha)
			}
		}
	}
}
