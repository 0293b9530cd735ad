package presstest

import (
	"math/rand/v2"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// BenchmarkDecode times one decode step of the policy newPolicy builds from params:
// Observe, then an Evict of one victim per head, on 4 heads of dimension 64 (OPT's)
// with a 512-token prompt compressed to a 128-token budget. Seeded keys, values and
// queries go to layouts that ask for them, compact rows to those that ask. It reports
// ns/(head·step); pooled layouts are not timed here.
func BenchmarkDecode(b *testing.B, newPolicy policies.New, params map[string]any) {
	const heads, dim, prompt, budget = 4, 64, 512, 128
	p, err := newPolicy(policies.NewParams(params))
	if err != nil {
		b.Fatal(err)
	}
	cfg := policies.Config{Heads: heads, HeadDim: dim, PromptLen: prompt, MaxLen: prompt + b.N, Budget: budget, Layers: 1, Seed: 1}
	layout, err := p.Init(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if layout.Pool != policies.PoolHead || layout.Slack != 0 {
		b.Fatalf("layout %+v: BenchmarkDecode times per-head pools without slack", layout)
	}
	// A table of vectors, reused cyclically, so that none is made while timing.
	const distinct = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	table := make([]float32, distinct*heads*dim)
	for i := range table {
		table[i] = float32(rng.NormFloat64())
	}
	rows := func(dst []float32, pos, n, salt int) []float32 {
		for h := range heads {
			for r := range n {
				src := table[(((pos+r)*7+salt)%distinct*heads+h)*dim:][:dim]
				copy(dst[(h*n+r)*dim:][:dim], src)
			}
		}
		return dst
	}
	vectors := func(a *policies.Attention) {
		a.HeadDim = dim
		n := heads * a.Rows * dim
		if layout.Keys {
			a.Keys = rows(grow(a.Keys, n), a.Pos, a.Rows, 0)
		}
		if layout.Values {
			a.Values = rows(grow(a.Values, n), a.Pos, a.Rows, 1)
		}
		if layout.Queries {
			a.Queries = rows(grow(a.Queries, n), a.Pos, a.Rows, 2)
		}
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
	vectors(pre)
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
	// The host's live lists, kept by swap-removal, for compact rows.
	live := make([][]int32, heads)
	for h := range heads {
		gone := make([]bool, prompt)
		for _, s := range e.Victims[h*prompt : h*prompt+int(e.Count[h])] {
			gone[s] = true
		}
		for s := range prompt {
			if !gone[s] {
				live[h] = append(live[h], int32(s))
			}
		}
	}
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: heads, Stride: prompt,
		Probs: make([]float32, heads*prompt), Slot: make([]int32, heads)}
	if layout.Compact {
		a.Live, a.Len = make([]int32, heads*prompt), make([]int32, heads)
	}
	for h := range heads {
		a.Slot[h] = e.Victims[h*prompt]
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
		for h := range heads {
			live[h] = append(live[h], a.Slot[h])
			if a.Live != nil {
				a.Len[h] = int32(copy(a.Live[h*prompt:], live[h]))
			}
		}
		vectors(a)
		if err := p.Observe(a); err != nil {
			b.Fatal(err)
		}
		clear(e.Count)
		if err := p.Evict(e); err != nil {
			b.Fatal(err)
		}
		for h := range heads {
			victim := e.Victims[h*prompt]
			for j, s := range live[h] {
				if s == victim {
					live[h][j] = live[h][len(live[h])-1]
					live[h] = live[h][:len(live[h])-1]
					break
				}
			}
			a.Slot[h] = victim
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*heads), "ns/head·step")
}

func grow(s []float32, n int) []float32 {
	if cap(s) < n {
		return make([]float32, n)
	}
	return s[:n]
}
