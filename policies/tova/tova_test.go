package tova

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

func newPolicy(t *testing.T, params map[string]any) policies.Policy {
	t.Helper()
	p, err := New(policies.NewParams(params))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPerHeadCompressionAndDecode(t *testing.T) {
	p := newPolicy(t, nil)
	cfg := policies.Config{Heads: 2, PromptLen: 5, MaxLen: 7, Budget: 3}
	layout, err := p.Init(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if layout != (policies.Layout{}) {
		t.Fatalf("layout %+v, want the zero layout", layout)
	}
	const stride = 8
	policytest.Prefill(t, p, stride, [][][]float32{
		policytest.UniformPrompt(5, []float32{0.30, 0.05, 0.40, 0.15, 0.10}),
		policytest.UniformPrompt(5, []float32{0.05, 0.50, 0.20, 0.05, 0.20}),
	})
	got := policytest.MustEvict(t, p, policies.Prefill, 4, stride, []int32{2, 2})
	// Head 0: the two lowest are slots 1 (0.05) and 4 (0.10). Head 1: slots 0 and 3 tie
	// at 0.05 and are the two lowest.
	want := [][]int32{{1, 4}, {0, 3}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("compression victims %v, want %v", got, want)
	}

	// Position 5 enters the lowest free slot: 1 in head 0, 0 in head 1.
	policytest.Decode(t, p, 5, stride, []int32{1, 0}, [][]float32{
		{0.4, 0.1, 0.3, 0.2, 0, 0, 0, 0}, // resident slots 0, 1, 2, 3
		{0.1, 0.5, 0.3, 0, 0.1, 0, 0, 0}, // resident slots 0, 1, 2, 4
	})
	got = policytest.MustEvict(t, p, policies.Decode, 5, stride, []int32{1, 1})
	// Head 0: the new token itself (slot 1, 0.1) is the least attended. Head 1: slots
	// 0 (position 5) and 4 (position 4) tie at 0.1; the older, slot 4, goes.
	want = [][]int32{{1}, {4}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("decode victims %v, want %v", got, want)
	}
}

func TestTiesEvictOlderToken(t *testing.T) {
	p := newPolicy(t, nil)
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 4, MaxLen: 4, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, 4, [][][]float32{policytest.UniformPrompt(4, []float32{0.25, 0.25, 0.25, 0.25})})
	got := policytest.MustEvict(t, p, policies.Prefill, 3, 4, []int32{2})
	if !slices.Equal(got[0], []int32{0, 1}) {
		t.Fatalf("victims %v, want [0 1]", got[0])
	}
}

func TestLayerwiseAveragesHeads(t *testing.T) {
	p := newPolicy(t, map[string]any{"layerwise": true})
	cfg := policies.Config{Heads: 2, PromptLen: 4, MaxLen: 6, Budget: 3}
	if _, err := p.Init(cfg); err != nil {
		t.Fatal(err)
	}
	const stride = 6
	// Per head the minima are slots 3 and 0; the averages are 0.3, 0.2, 0.25, 0.25.
	policytest.Prefill(t, p, stride, [][][]float32{
		policytest.UniformPrompt(4, []float32{0.5, 0.3, 0.2, 0.0}),
		policytest.UniformPrompt(4, []float32{0.1, 0.1, 0.3, 0.5}),
	})
	got := policytest.MustEvict(t, p, policies.Prefill, 3, stride, []int32{1, 1})
	want := [][]int32{{1}, {1}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("compression victims %v, want %v", got, want)
	}
	// Both heads put position 4 in slot 1. Averages: 0.35, 0.15, 0.3, 0.2.
	policytest.Decode(t, p, 4, stride, []int32{1, 1}, [][]float32{
		{0.6, 0.1, 0.2, 0.1, 0, 0},
		{0.1, 0.2, 0.4, 0.3, 0, 0},
	})
	got = policytest.MustEvict(t, p, policies.Decode, 4, stride, []int32{1, 1})
	want = [][]int32{{1}, {1}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("decode victims %v, want %v", got, want)
	}
}

func TestLayerwiseRejectsMisalignedSlots(t *testing.T) {
	p := newPolicy(t, map[string]any{"layerwise": true})
	if _, err := p.Init(policies.Config{Heads: 2, PromptLen: 2, MaxLen: 4, Budget: 3}); err != nil {
		t.Fatal(err)
	}
	policytest.Prefill(t, p, 4, [][][]float32{policytest.UniformPrompt(2, []float32{0.5, 0.5}), policytest.UniformPrompt(2, []float32{0.5, 0.5})})
	a := &policies.Attention{Phase: policies.Decode, Pos: 2, Rows: 1, Heads: 2, Stride: 4,
		Probs: make([]float32, 8), Slot: []int32{2, 3}}
	err := p.Observe(a)
	if err == nil || !strings.Contains(err.Error(), "aligned") {
		t.Fatalf("err = %v, want a slot alignment error", err)
	}
}

func TestNewRejectsBadParams(t *testing.T) {
	for _, params := range []map[string]any{
		{"layerwize": true},
		{"layerwise": "yes"},
	} {
		if _, err := New(policies.NewParams(params)); err == nil {
			t.Errorf("New(%v) succeeded, want an error", params)
		}
	}
}

func TestProtocolErrors(t *testing.T) {
	p := newPolicy(t, nil)
	if _, err := p.Init(policies.Config{Heads: 1, PromptLen: 3, MaxLen: 5, Budget: 2}); err != nil {
		t.Fatal(err)
	}
	// A block that skips position 0.
	a := &policies.Attention{Phase: policies.Prefill, Pos: 1, Rows: 1, Heads: 1, Stride: 4, Probs: make([]float32, 4)}
	if err := p.Observe(a); err == nil {
		t.Error("out-of-order prefill block accepted")
	}
	policytest.Prefill(t, p, 4, [][][]float32{policytest.UniformPrompt(3, []float32{0.2, 0.3, 0.5})})
	e := &policies.Eviction{Phase: policies.Prefill, Heads: 1, Need: []int32{4}, Stride: 4,
		Count: make([]int32, 1), Victims: make([]int32, 4)}
	if err := p.Evict(e); err == nil {
		t.Error("need above the resident count accepted")
	}
	// Slot 2 is still occupied by prompt token 2.
	a = &policies.Attention{Phase: policies.Decode, Pos: 3, Rows: 1, Heads: 1, Stride: 4,
		Probs: make([]float32, 4), Slot: []int32{2}}
	if err := p.Observe(a); err == nil {
		t.Error("decode token in an occupied slot accepted")
	}
}

func TestNoAllocationsPerCall(t *testing.T) {
	for _, layerwise := range []bool{false, true} {
		p := newPolicy(t, map[string]any{"layerwise": layerwise})
		const heads, prompt, budget, stride = 2, 16, 8, 16
		if _, err := p.Init(policies.Config{Heads: heads, PromptLen: prompt, MaxLen: 1 << 20, Budget: budget}); err != nil {
			t.Fatal(err)
		}
		last := make([]float32, prompt)
		for j := range last {
			last[j] = float32(j%5+1) / 48
		}
		policytest.Prefill(t, p, stride, [][][]float32{policytest.UniformPrompt(len(last), last), policytest.UniformPrompt(len(last), last)})
		victims := policytest.MustEvict(t, p, policies.Prefill, prompt-1, stride, []int32{prompt - budget, prompt - budget})

		a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: heads, Stride: stride,
			Probs: make([]float32, heads*stride), Slot: make([]int32, heads)}
		e := &policies.Eviction{Phase: policies.Decode, Heads: heads, Need: []int32{1, 1}, Stride: stride,
			Count: make([]int32, heads), Victims: make([]int32, heads*stride)}
		for i := range a.Probs {
			a.Probs[i] = float32(i%stride%7+1) / 64 // the same row in every head
		}
		// Identical heads keep the slot tables aligned, as the layer-wise run needs.
		pos, free := prompt, victims[0][0] // the lowest free slot
		if !slices.Equal(victims[0], victims[1]) {
			t.Fatalf("heads evicted %v and %v; this test needs them aligned", victims[0], victims[1])
		}
		step := func() {
			a.Pos, e.Pos = pos, pos
			for h := range heads {
				a.Slot[h] = free
			}
			if err := p.Observe(a); err != nil {
				t.Fatal(err)
			}
			if err := p.Evict(e); err != nil {
				t.Fatal(err)
			}
			free = e.Victims[0] // the only free slot now
			for h := range heads {
				if e.Victims[h*stride] != free {
					t.Fatalf("heads evicted different slots; this test needs them aligned")
				}
			}
			pos++
		}
		if allocs := testing.AllocsPerRun(50, step); allocs != 0 {
			t.Errorf("layerwise=%v: %v allocations per decode step", layerwise, allocs)
		}
	}
}
