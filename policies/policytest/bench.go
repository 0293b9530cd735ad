package policytest

import (
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// BenchmarkDecode times one decode step of the policy New builds from params (Observe then a one-victim Evict) on 4 heads
// with a 512-token prompt compressed to a 128-token budget.
func BenchmarkDecode(b *testing.B, newPolicy policies.New, params map[string]any) {
	const heads, prompt, budget = 4, 512, 128
	p, err := newPolicy(policies.NewParams(params))
	if err != nil {
		b.Fatal(err)
	}
	cfg := policies.Config{Heads: heads, PromptLen: prompt, MaxLen: prompt + b.N, Budget: budget, Seed: 1}
	if _, err := p.Init(cfg); err != nil {
		b.Fatal(err)
	}
	pre := &policies.Attention{Phase: policies.Prefill, Rows: prompt, Heads: heads, Stride: prompt,
		Probs: make([]float32, heads*prompt*prompt)}
	for h := range heads {
		for i := range prompt {
			row := pre.Row(h, i)
			for j := 0; j <= i; j++ {
				row[j] = float32((i*31+j*17+h)%97+1) / float32(49*(i+1))
			}
		}
	}
	if err := p.Observe(pre); err != nil {
		b.Fatal(err)
	}
	e := &policies.Eviction{Phase: policies.Prefill, Pos: prompt - 1, Heads: heads, Need: make([]int32, heads),
		Stride: prompt, Count: make([]int32, heads), Victims: make([]int32, heads*prompt)}
	for h := range heads {
		e.Need[h] = prompt - budget
	}
	if err := p.Evict(e); err != nil {
		b.Fatal(err)
	}
	// Each head's lowest free slot, then, step after step, the slot just freed.
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: heads, Stride: prompt,
		Probs: make([]float32, heads*prompt), Slot: make([]int32, heads)}
	for h := range heads {
		a.Slot[h] = prompt
		for _, s := range e.Victims[h*prompt : h*prompt+int(e.Count[h])] {
			a.Slot[h] = min(a.Slot[h], s)
		}
		e.Need[h] = 1
	}
	e.Phase = policies.Decode
	for i := range a.Probs {
		a.Probs[i] = float32(i%13+1) / float32(7*budget)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a.Pos, e.Pos = prompt+i, prompt+i
		if err := p.Observe(a); err != nil {
			b.Fatal(err)
		}
		clear(e.Count)
		if err := p.Evict(e); err != nil {
			b.Fatal(err)
		}
		for h := range heads {
			a.Slot[h] = e.Victims[h*prompt]
		}
	}
}
