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
// ns/(head·step); pooled layouts and slack are not timed here.
func BenchmarkDecode(b *testing.B, newPolicy policies.New, params map[string]any) {
	const heads, dim, promptLen, budget = 4, 64, 512, 128
	p, err := newPolicy(policies.NewParams(params))
	if err != nil {
		b.Fatal(err)
	}
	// A table of vectors, reused cyclically, so that none is made while timing.
	const distinct = 1024
	rng := rand.New(rand.NewPCG(1, 2))
	table := make([]float32, distinct*heads*dim)
	for i := range table {
		table[i] = float32(rng.NormFloat64())
	}
	vector := func(salt int) func(h, pos int) []float32 {
		return func(h, pos int) []float32 { return table[((pos*7+salt)%distinct*heads+h)*dim:][:dim] }
	}
	seq := Sequence{Heads: heads, HeadDim: dim, PromptLen: promptLen, MaxLen: promptLen + b.N,
		Key: vector(0), Value: vector(1), Query: vector(2)}
	h, err := prompt(p, policies.Config{Budget: budget, Seed: 1}, seq)
	if err != nil {
		b.Fatal(err)
	}
	if h.layout.Pool != policies.PoolHead || h.layout.Slack != 0 {
		b.Fatalf("layout %+v: BenchmarkDecode times per-head pools without slack", h.layout)
	}
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: heads, Stride: promptLen,
		Probs: make([]float32, heads*promptLen), Slot: make([]int32, heads), HeadDim: dim}
	for i := range a.Probs {
		a.Probs[i] = float32(i%13+1) / float32(7*budget)
	}
	row := func(asked bool) []float32 {
		if !asked {
			return nil
		}
		return make([]float32, heads*dim)
	}
	a.Keys, a.Values, a.Queries = row(h.layout.Keys), row(h.layout.Values), row(h.layout.Queries)
	if h.layout.Compact {
		a.Live, a.Len = make([]int32, heads*promptLen), make([]int32, heads)
	}
	// The host's live lists, kept by swap-removal, and each head's first free slot.
	live := make([][]int32, heads)
	for hd, row := range h.pos {
		a.Slot[hd] = -1
		for s, q := range row[:promptLen] {
			switch {
			case q >= 0:
				live[hd] = append(live[hd], int32(s))
			case a.Slot[hd] < 0:
				a.Slot[hd] = int32(s)
			}
		}
	}
	e := &policies.Eviction{Phase: policies.Decode, Heads: heads, Need: make([]int32, heads), Stride: promptLen,
		Count: make([]int32, heads), Victims: make([]int32, heads*promptLen)}
	for hd := range heads {
		e.Need[hd] = 1
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		a.Pos, e.Pos = promptLen+i, promptLen+i
		for hd := range heads {
			live[hd] = append(live[hd], a.Slot[hd])
			if a.Live != nil {
				a.Len[hd] = int32(copy(a.Live[hd*promptLen:], live[hd]))
			}
			for _, v := range []struct {
				dst []float32
				f   func(h, pos int) []float32
			}{{a.Keys, seq.Key}, {a.Values, seq.Value}, {a.Queries, seq.Query}} {
				if v.dst != nil {
					copy(v.dst[hd*dim:][:dim], v.f(hd, a.Pos))
				}
			}
		}
		if err := p.Observe(a); err != nil {
			b.Fatal(err)
		}
		clear(e.Count)
		if err := p.Evict(e); err != nil {
			b.Fatal(err)
		}
		for hd := range heads {
			victim := e.Victims[hd*promptLen]
			for j, s := range live[hd] {
				if s == victim {
					live[hd][j] = live[hd][len(live[hd])-1]
					live[hd] = live[hd][:len(live[hd])-1]
					break
				}
			}
			a.Slot[hd] = victim
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*heads), "ns/head·step")
}
