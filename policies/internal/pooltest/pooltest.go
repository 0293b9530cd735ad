// Package pooltest drives pooled policies (policies.PoolLayer, PoolModel) in unit
// tests and benchmarks, while policytest's reference host serves per-head budgets
// only: it asks for victims by a pool need, as a pooled host does, by hand (Evict) or
// over a whole sequence (Run).
package pooltest

import (
	"fmt"
	"math/rand/v2"
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

// Log is what a pooled policy did over a sequence that Run drove.
type Log struct {
	Layout  policies.Layout
	Entries int // the layer's pool, slack not counted
	// Held[i][h] lists the positions head h held after the eviction (if any) of
	// step i: i = 0 after the compression, i = t−P+1 after decode step t.
	Held [][][]int
	// Need[i] is what step i's eviction asked of the pool, 0 when it had room.
	Need []int
}

// Run drives p through one layer of a sequence as a pooled host would, with seeded
// random attention over the resident tokens: the prompt as one block, the compression
// when the prompt overflows the pool, then one decode step per position, each new token
// in its head's lowest free slot, and an eviction of the overflow whenever the layer
// holds more than its pool and slack. It checks every victim list (resident slots,
// each named once, at least the pool's need) and returns what each head held.
func Run(p policies.Policy, cfg policies.Config, seed uint64) (*Log, error) {
	layout, err := p.Init(cfg)
	if err != nil {
		return nil, err
	}
	H, P, T := cfg.Heads, cfg.PromptLen, cfg.MaxLen
	log := &Log{Layout: layout, Entries: H * cfg.Budget}
	if layout.Pool == policies.PoolModel {
		lb, ok := p.(policies.LayerBudgeter)
		if !ok {
			return nil, fmt.Errorf("a model pool without LayerBudgets")
		}
		all := make([]int, cfg.Layers)
		whole := cfg
		whole.Layer = -1
		if err := lb.LayerBudgets(whole, all); err != nil {
			return nil, err
		}
		log.Entries = all[cfg.Layer]
	}
	r := rand.New(rand.NewPCG(seed, 1))
	pos := make([][]int, H) // slot → position, -1 when free
	for h := range pos {
		pos[h] = make([]int, T)
		for s := range pos[h] {
			pos[h][s] = -1
			if s < P {
				pos[h][s] = s
			}
		}
	}
	pre := &policies.Attention{Phase: policies.Prefill, Rows: P, Heads: H, Stride: T, Probs: make([]float32, H*P*T)}
	for h := range H {
		for i := range P {
			normalize(pre.Row(h, i)[:i+1], r, func(int) bool { return true })
		}
	}
	if err := p.Observe(pre); err != nil {
		return nil, err
	}
	held := func() {
		step := make([][]int, H)
		for h := range H {
			for _, q := range pos[h] {
				if q >= 0 {
					step[h] = append(step[h], q)
				}
			}
			slices.Sort(step[h])
		}
		log.Held = append(log.Held, step)
	}
	e := &policies.Eviction{Heads: H, Need: make([]int32, H), Stride: T, Count: make([]int32, H), Victims: make([]int32, H*T)}
	evict := func(phase policies.Phase, at, slack int) error {
		total := 0
		for h := range H {
			for _, q := range pos[h] {
				if q >= 0 {
					total++
				}
			}
		}
		need := max(0, total-log.Entries-H*slack)
		log.Need = append(log.Need, need)
		if need == 0 {
			return nil
		}
		e.Phase, e.Pos, e.PoolNeed = phase, at, need
		clear(e.Count)
		if err := p.Evict(e); err != nil {
			return err
		}
		given := 0
		for h := range H {
			for _, s := range e.Victims[h*T : h*T+int(e.Count[h])] {
				if s < 0 || int(s) >= T || pos[h][s] < 0 {
					return fmt.Errorf("%v eviction at %d: head %d: victim slot %d is not resident", phase, at, h, s)
				}
				pos[h][s] = -1
				given++
			}
		}
		if given < need {
			return fmt.Errorf("%v eviction at %d: %d victims, the pool needs %d", phase, at, given, need)
		}
		return nil
	}
	if err := evict(policies.Prefill, P-1, 0); err != nil {
		return nil, err
	}
	held()
	a := &policies.Attention{Phase: policies.Decode, Rows: 1, Heads: H, Stride: T, Probs: make([]float32, H*T), Slot: make([]int32, H)}
	for t := P; t < T; t++ {
		a.Pos = t
		for h := range H {
			free := slices.Index(pos[h], -1)
			if free < 0 {
				return nil, fmt.Errorf("step %d: head %d has no free slot", t, h)
			}
			pos[h][free], a.Slot[h] = t, int32(free)
			row := a.Row(h, 0)
			clear(row)
			normalize(row, r, func(s int) bool { return pos[h][s] >= 0 })
		}
		if err := p.Observe(a); err != nil {
			return nil, err
		}
		if err := evict(policies.Decode, t, layout.Slack); err != nil {
			return nil, err
		}
		held()
	}
	return log, nil
}

// normalize fills the entries of row that keep allows with random weights summing to 1.
func normalize(row []float32, r *rand.Rand, keep func(int) bool) {
	sum := float32(0)
	for s := range row {
		if keep(s) {
			row[s] = r.Float32() * r.Float32()
			sum += row[s]
		}
	}
	for s := range row {
		row[s] /= sum
	}
}
