// Package pooltest helps test pooled policies (policies.PoolLayer, PoolModel): Run
// lays out, step by step, what each head held over a sequence on policytest's
// reference host, and BenchmarkDecode times a pooled decode step. Single evictions by
// hand go through policytest.EvictPool.
package pooltest

import (
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

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

// Log is what a pooled policy did over a sequence that Run drove.
type Log struct {
	Layout  policies.Layout
	Entries int // the layer's pool, slack not counted
	// Held[i][h] lists the positions head h held after the eviction (if any) of
	// step i: i = 0 after the compression, i = t−P+1 after decode step t.
	Held [][][]int
	// Evicted[i] tells whether step i evicted (the layer overflowed its pool).
	Evicted []bool
}

// Run drives p through one layer of a seeded random sequence on policytest's
// reference host, which checks the pool, and lays its evictions out step by step.
func Run(p policies.Policy, cfg policies.Config, seed uint64) (*Log, error) {
	ref, err := policytest.Run(p, cfg, policytest.RandomSequence(cfg.Heads, cfg.PromptLen, cfg.MaxLen, seed))
	if err != nil {
		return nil, err
	}
	P, T := cfg.PromptLen, cfg.MaxLen
	log := &Log{Layout: ref.Layout, Entries: ref.PoolEntries}
	held := make([]map[int]bool, cfg.Heads)
	for h := range held {
		held[h] = map[int]bool{}
		for q := range P {
			held[h][q] = true
		}
	}
	events := ref.Events
	step := func(pos int) {
		evicted := len(events) > 0 && events[0].Pos == pos
		if evicted {
			for h, victims := range events[0].VictimPos {
				for _, q := range victims {
					delete(held[h], q)
				}
			}
			events = events[1:]
		}
		snap := make([][]int, len(held))
		for h, set := range held {
			snap[h] = slices.Sorted(maps.Keys(set))
		}
		log.Held, log.Evicted = append(log.Held, snap), append(log.Evicted, evicted)
	}
	step(P - 1)
	for t := P; t < T; t++ {
		for h := range held {
			held[h][t] = true
		}
		step(t)
	}
	if len(events) > 0 {
		return nil, fmt.Errorf("an eviction at position %d matches no step", events[0].Pos)
	}
	return log, nil
}
