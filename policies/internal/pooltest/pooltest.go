// Package pooltest drives pooled policies (policies.PoolLayer, PoolModel) by hand in
// unit tests and benchmarks, while policytest's reference host serves per-head budgets
// only: it asks for victims by a pool need, as a pooled host does.
package pooltest

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// Evict asks p for at least poolNeed victims from the layer's heads together, with
// victim lists stride long, and returns each head's victims sorted.
func Evict(p policies.Policy, phase policies.Phase, pos, heads, stride, poolNeed int) ([][]int32, error) {
	e := &policies.Eviction{Phase: phase, Pos: pos, Heads: heads, Need: make([]int32, heads), PoolNeed: poolNeed,
		Stride: stride, Count: make([]int32, heads), Victims: make([]int32, heads*stride)}
	if err := p.Evict(e); err != nil {
		return nil, err
	}
	out := make([][]int32, heads)
	for h := range heads {
		out[h] = slices.Sorted(slices.Values(e.Victims[h*stride : h*stride+int(e.Count[h])]))
	}
	return out, nil
}

// BenchmarkDecode times one decode step of a pooled policy (Observe, then an Evict of
// one victim per head from the pool) on layer 0 of a 4-layer model with 4 heads and a
// 512-token prompt compressed to a budget of 128 per head, and reports the cost per
// (head · step). A freed slot takes the next token of its head.
func BenchmarkDecode(b *testing.B, newPolicy policies.New, params map[string]any) {
	const heads, prompt, budget = 4, 512, 128
	p, err := newPolicy(policies.NewParams(params))
	if err != nil {
		b.Fatal(err)
	}
	cfg := policies.Config{Layer: 0, Layers: 4, Heads: heads, PromptLen: prompt, MaxLen: prompt + b.N, Budget: budget, Seed: 1}
	if _, err := p.Init(cfg); err != nil {
		b.Fatal(err)
	}
	entries := heads * budget
	if lb, ok := p.(policies.LayerBudgeter); ok {
		all := make([]int, cfg.Layers)
		model := cfg
		model.Layer = -1
		if err := lb.LayerBudgets(model, all); err != nil {
			b.Fatal(err)
		}
		entries = all[0]
	}
	pre := &policies.Attention{Phase: policies.Prefill, Rows: prompt, Heads: heads, Stride: prompt,
		Probs: make([]float32, heads*prompt*prompt)}
	for h := range heads {
		for i := range prompt {
			for j, row := 0, pre.Row(h, i); j <= i; j++ {
				row[j] = float32((i*29+j*13+h*7)%89+1) / float32(45*(i+1))
			}
		}
	}
	if err := p.Observe(pre); err != nil {
		b.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: prompt - 1, Heads: heads, Need: make([]int32, heads),
		PoolNeed: heads*prompt - entries, Stride: prompt, Count: make([]int32, heads), Victims: make([]int32, heads*prompt)}
	free := make([][]int32, heads) // per head, a stack of free slots
	evict := func() {
		if err := p.Evict(e); err != nil {
			b.Fatal(err)
		}
		for h := range heads {
			free[h] = append(free[h], e.Victims[h*prompt:h*prompt+int(e.Count[h])]...)
		}
	}
	evict()
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: heads, Stride: prompt,
		Probs: make([]float32, heads*prompt), Slot: make([]int32, heads)}
	for i := range a.Probs {
		a.Probs[i] = float32(i%11+1) / float32(6*budget)
	}
	e.Phase, e.PoolNeed = policies.Decode, heads
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a.Pos, e.Pos = prompt+i, prompt+i
		for h := range heads {
			n := len(free[h]) - 1
			a.Slot[h], free[h] = free[h][n], free[h][:n]
		}
		if err := p.Observe(a); err != nil {
			b.Fatal(err)
		}
		evict()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*heads), "ns/head-step")
}
