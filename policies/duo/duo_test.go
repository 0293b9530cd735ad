package duo

import (
	"math"
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

// TestShares: streaming heads keep min(sink+recent, B), the full heads split the rest,
// the remainder to the lowest full heads.
func TestShares(t *testing.T) {
	tests := []struct {
		mask   string
		layer  int
		budget int
		want   []int
	}{
		{"sff", 0, 5, []int{3, 6, 6}},       // 15 − 3 = 12 for two full heads
		{"sfff", 0, 5, []int{3, 6, 6, 5}},   // 20 − 3 = 17 = 6 + 6 + 5
		{"ssss", 0, 5, []int{3, 3, 3, 3}},   // no full head: 8 entries stay free
		{"ffff", 0, 5, []int{5, 5, 5, 5}},   // uniform
		{"sf/fs", 1, 5, []int{7, 3}},        // layer 1's own mask
		{"sf", 0, 2, []int{2, 2}},           // sink+recent capped at B
		{"ssf/sfs", 0, 10, []int{3, 3, 24}}, // 30 − 6
	}
	for _, tt := range tests {
		p := newPolicy(t, map[string]any{"mask": tt.mask, "sink": 1, "recent": 2})
		heads := len(tt.want)
		layout, err := p.Init(policies.Config{Layer: tt.layer, Layers: 2, Heads: heads, PromptLen: 4, MaxLen: 8, Budget: tt.budget})
		if err != nil {
			t.Fatalf("%s: %v", tt.mask, err)
		}
		if layout.Pool != policies.PoolLayer {
			t.Errorf("%s: layout pool %v, want layer", tt.mask, layout.Pool)
		}
		if !slices.Equal(p.keep, tt.want) {
			t.Errorf("%s, layer %d, budget %d: shares %v, want %v", tt.mask, tt.layer, tt.budget, p.keep, tt.want)
		}
	}
}

// TestEviction: head 0 streams (sink 1, recent 1: keeps 2), head 1 is full and keeps
// the rest of the pool of 2×4, 6 tokens, by accumulated attention.
func TestEviction(t *testing.T) {
	const heads, prompt = 2, 8
	p := newPolicy(t, map[string]any{"mask": "sf", "sink": 1, "recent": 1})
	if _, err := p.Init(policies.Config{Layer: 0, Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: prompt + 1, Budget: 4}); err != nil {
		t.Fatal(err)
	}
	// Head 1's rows 0..6 are uniform, so token j has Σ_{i=j..6} 1/(i+1) from them;
	// row 7 adds its own: tokens 1..6 end at 1.6429, 1.1429, 0.8095, 0.5595, 0.6595,
	// 0.4929. The lowest two outside sink 0 and window 7 are tokens 6 and 4.
	rows := [][][]float32{
		policytest.UniformPrompt(prompt),
		policytest.UniformPrompt(prompt, []float32{0.05, 0.05, 0.05, 0.05, 0.05, 0.35, 0.35, 0.05}),
	}
	policytest.Prefill(t, p, prompt, rows)
	got, err := policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, heads*(prompt-4))
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int32{{1, 2, 3, 4, 5, 6}, {4, 6}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("compression victims %v, want %v", got, want)
	}
	// Token 8 enters slot 1 of head 0 and slot 4 of head 1. Head 0 drops token 7 (slot
	// 7), the oldest after its sink. Head 1 adds the row: tokens 1, 2, 3, 5, 7 reach
	// 1.6629, 1.1629, 0.8295, 0.6795, 0.85, so token 5 (slot 5) goes.
	policytest.Decode(t, p, prompt, prompt, []int32{1, 4}, [][]float32{
		{0.5, 0.25, 0, 0, 0, 0, 0, 0.25},
		{0.02, 0.02, 0.02, 0.02, 0.1, 0.02, 0, 0.8},
	})
	got, err = policytest.EvictPool(p, policies.Decode, prompt, heads, prompt, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int32{{7}, {5}}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("decode victims %v, want %v", got, want)
	}
	// The pool now holds 8 = 2 + 6: asking for one more overdraws it.
	_, err = policytest.EvictPool(p, policies.Decode, prompt, heads, prompt, 1)
	if err == nil || !strings.Contains(err.Error(), "pool needs 1 victims") {
		t.Errorf("got %v, want an error about the pool's victims", err)
	}
}

func TestParams(t *testing.T) {
	for _, tt := range []struct {
		params map[string]any
		want   string
	}{
		{map[string]any{"mask": ""}, `param "mask": is empty`},
		{map[string]any{"mask": "sf", "streaming": 0.5}, `param "streaming": cannot go with a mask`},
		{map[string]any{"streaming": 1.5}, `param "streaming": must be in [0, 1]`},
		{map[string]any{"mask": "sxf"}, `param "mask": layer 0 is "sxf"`},
		{map[string]any{"mask": "sf//fs"}, `param "mask": layer 1 is ""`},
		{map[string]any{"mask": "sf", "sink": -1}, `param "sink"`},
		{map[string]any{"mask": "sf", "recent": 0}, `param "recent"`},
		{map[string]any{"mask": "sf", "window": 4}, `unknown param "window"`},
	} {
		_, err := New(policies.NewParams(tt.params))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "duo: ") {
			t.Errorf("%v: got %v, want an error with %s", tt.params, err, tt.want)
		}
	}
	for _, tt := range []struct {
		mask                 string
		layer, layers, heads int
		want                 string
	}{
		{"sf/fs/ss", 1, 2, 2, `"mask" has 3 layers, the model has 2`},
		{"sfs", 0, 2, 2, `layer 0 is "sfs", 3 heads, but the model has 2 heads`},
		{"sf/fss", 1, 2, 2, `layer 1 is "fss"`},
		{"sf", 2, 2, 2, `layer 2 of a 2-layer model`},
	} {
		p := newPolicy(t, map[string]any{"mask": tt.mask})
		_, err := p.Init(policies.Config{Layer: tt.layer, Layers: tt.layers, Heads: tt.heads, PromptLen: 4, MaxLen: 8, Budget: 2})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("mask %q, layer %d: got %v, want an error with %s", tt.mask, tt.layer, err, tt.want)
		}
	}
}

// TestSequence drives a whole sequence through a pooled host. Every head keeps its
// sinks and newest window; a full head never holds more than its share, 11 = (32 −
// 2×5)/2; and once the layer is full, each step's eviction leaves every streaming head
// exactly its sinks and window and every full head its share.
func TestSequence(t *testing.T) {
	const heads, budget, share = 4, 8, 11
	for _, prompt := range []int{20, 6} { // a prompt that fits the pool: no compression
		p := newPolicy(t, map[string]any{"mask": "sfsf", "sink": 2, "recent": 3})
		cfg := policies.Config{Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: 40, Budget: budget}
		log, err := pooltest.Run(p, cfg, 3)
		if err != nil {
			t.Fatalf("prompt %d: %v", prompt, err)
		}
		full := 0 // steps that ended with the layer at its pool
		for i, step := range log.Held {
			newest := prompt - 1 + i
			total := 0
			for _, held := range step {
				total += len(held)
			}
			if !log.Evicted[i] || total < heads*budget {
				continue // no eviction, or the first trim, which leaves room
			}
			full++
			for h, held := range step {
				want := 5 // streaming
				if h%2 == 1 {
					want = share
				}
				if len(held) != want || !slices.Equal(held[:2], []int{0, 1}) ||
					!slices.Equal(held[len(held)-3:], []int{newest - 2, newest - 1, newest}) {
					t.Fatalf("prompt %d, position %d: head %d holds %v, want %d tokens with sinks 0, 1 and the newest 3", prompt, newest, h, held, want)
				}
			}
		}
		if full < 10 {
			t.Fatalf("prompt %d: the layer was full after %d steps only", prompt, full)
		}
	}
}

// FuzzMask: any mask string is rejected with an error or accepted, and an accepted one
// works for a model of its shape.
func FuzzMask(f *testing.F) {
	for _, m := range []string{"sf", "sf/fs", "ssss", "", "/", "s/", "sx", "ff/s", "ß"} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, mask string) {
		p, err := New(policies.NewParams(map[string]any{"mask": mask}))
		if err != nil {
			if !strings.HasPrefix(err.Error(), `duo: param "mask"`) {
				t.Fatalf("mask %q: %v", mask, err)
			}
			return
		}
		groups := strings.Split(mask, "/")
		cfg := policies.Config{Layer: len(groups) - 1, Layers: len(groups), Heads: len(groups[len(groups)-1]), PromptLen: 4, MaxLen: 8, Budget: 2}
		if _, err := p.Init(cfg); err != nil && len(groups[0]) == cfg.Heads {
			t.Fatalf("mask %q: %v", mask, err)
		}
	})
}

// TestChosenStreamingHeads: without a mask, half the heads stream, those whose prompt
// queries gave the sink (token 0) and their own token the most attention. Heads 1 and
// 2 give them everything (6 over 6 rows); uniform heads 0 and 3 give row i 2/(i+1),
// 3.9 in all.
func TestChosenStreamingHeads(t *testing.T) {
	const heads, prompt = 4, 6
	local := make([][]float32, prompt)
	for i := range local {
		local[i] = make([]float32, i+1)
		local[i][0] += 0.5
		local[i][i] += 0.5
	}
	p := newPolicy(t, map[string]any{"sink": 1, "recent": 1})
	if _, err := p.Init(policies.Config{Layers: 1, Heads: heads, PromptLen: prompt, MaxLen: prompt, Budget: 4}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, prompt, [][][]float32{policytest.UniformPrompt(prompt), local, local, policytest.UniformPrompt(prompt)})
	if want := []bool{false, true, true, false}; !slices.Equal(p.streaming, want) {
		t.Fatalf("streaming %v, want %v", p.streaming, want)
	}
	// Streaming heads keep 2 (sink and newest), full heads share 16 − 4: 6 each, the
	// whole prompt.
	if want := []int{6, 2, 2, 6}; !slices.Equal(p.keep, want) {
		t.Fatalf("shares %v, want %v", p.keep, want)
	}
	got, err := policytest.EvictPool(p, policies.Prefill, prompt-1, heads, prompt, heads*prompt-16)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]int32{nil, {1, 2, 3, 4}, {1, 2, 3, 4}, nil}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("victims %v, want %v", got, want)
	}
}

func TestLocalMass(t *testing.T) {
	row := []float32{0.4, 0.1, 0.2, 0.3}
	for _, tt := range []struct {
		row          []float32
		sink, recent int
		want         float64
	}{
		{row, 1, 1, 0.7},
		{row, 1, 2, 0.9},
		{row, 2, 3, 1},        // the window overlaps the sinks: counted once
		{row[:1], 4, 12, 0.4}, // more sinks than tokens
		{row, 0, 1, 0.3},
	} {
		if got := localMass(tt.row, tt.sink, tt.recent); math.Abs(got-tt.want) > 1e-6 {
			t.Errorf("localMass(%v, %d, %d) = %g, want %g", tt.row, tt.sink, tt.recent, got, tt.want)
		}
	}
}
