package auv

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvsim/kvsim/policies"
)

// host is a minimal, allocation-free decode loop for benchmarks and allocation checks:
// random peaked attention rows over the resident slots, the lowest free slot for each
// new token, an eviction when a head holds more than Budget+Slack tokens. It restarts
// the sequence when it reaches MaxLen. observing and evicting are the time spent in
// the policy's decode calls.
type host struct {
	p      policies.Policy
	cfg    policies.Config
	layout policies.Layout
	pos    [][]int32 // by head and slot: the position held, -1 when free
	count  []int
	block  policies.Attention
	attn   policies.Attention
	evict  policies.Eviction
	rng    *rand.Rand
	t      int

	observing, evicting time.Duration
}

const hostBlock = 64

func newHost(p policies.Policy, cfg policies.Config, seed uint64) (*host, error) {
	H, P, T := cfg.Heads, cfg.PromptLen, cfg.MaxLen
	m := &host{p: p, cfg: cfg, rng: rand.New(rand.NewPCG(seed, 1)), count: make([]int, H), pos: make([][]int32, H)}
	for h := range m.pos {
		m.pos[h] = make([]int32, T)
	}
	m.block = policies.Attention{Phase: policies.Prefill, Heads: H, Stride: P, Probs: make([]float32, H*hostBlock*P)}
	m.attn = policies.Attention{Phase: policies.Decode, Rows: 1, Heads: H, Stride: T,
		Probs: make([]float32, H*T), Slot: make([]int32, H), Comp: make([]float32, H)}
	m.evict = policies.Eviction{Phase: policies.Decode, Heads: H, Stride: T, Need: make([]int32, H),
		Count: make([]int32, H), Victims: make([]int32, H*T), Weights: make([]float32, H*T)}
	return m, m.start()
}

// peaked draws an unnormalized attention weight: mostly small, a few large.
func (m *host) peaked() float32 {
	x := m.rng.Float64()
	return float32(x * x * x * x)
}

// start runs Init, the prompt and its compression.
func (m *host) start() error {
	layout, err := m.p.Init(m.cfg)
	if err != nil {
		return err
	}
	m.layout = layout
	P := m.cfg.PromptLen
	for h := range m.pos {
		for s := range m.pos[h] {
			m.pos[h][s] = -1
			if s < P {
				m.pos[h][s] = int32(s)
			}
		}
		m.count[h] = P
	}
	for r0 := 0; r0 < P; r0 += hostBlock {
		m.block.Pos, m.block.Rows = r0, min(hostBlock, P-r0)
		for h := 0; h < m.cfg.Heads; h++ {
			for r := 0; r < m.block.Rows; r++ {
				row := m.block.Row(h, r)[:r0+r+1]
				var sum float32
				for j := range row {
					row[j] = m.peaked()
					sum += row[j]
				}
				for j := range row {
					row[j] /= sum
				}
			}
		}
		if err := m.p.Observe(&m.block); err != nil {
			return err
		}
	}
	m.t = P
	if P > m.cfg.Budget {
		for h := range m.evict.Need {
			m.evict.Need[h] = int32(P - m.cfg.Budget)
		}
		m.evict.Phase = policies.Prefill
		if err := m.p.Evict(&m.evict); err != nil {
			return err
		}
		m.free()
	}
	m.evict.Phase = policies.Decode
	return nil
}

// free applies the last eviction's victims.
func (m *host) free() {
	for h := range m.pos {
		for _, s := range m.evict.Victims[h*m.evict.Stride : h*m.evict.Stride+int(m.evict.Count[h])] {
			m.pos[h][s] = -1
			m.count[h]--
		}
	}
}

// step runs one decode step on every head.
func (m *host) step() error {
	if m.t == m.cfg.MaxLen {
		if err := m.start(); err != nil {
			return err
		}
	}
	need := false
	for h, pos := range m.pos {
		free := -1
		for s, p := range pos {
			if p < 0 {
				free = s
				break
			}
		}
		if free < 0 {
			return fmt.Errorf("step %d: head %d is full", m.t, h)
		}
		pos[free] = int32(m.t)
		m.count[h]++
		m.attn.Slot[h] = int32(free)
		row := m.attn.Row(h, 0)
		var sum float32
		for s, p := range pos {
			row[s] = 0
			if p >= 0 {
				row[s] = m.peaked()
				sum += row[s]
			}
		}
		for s := range row {
			row[s] /= sum
		}
		extra := max(0, m.count[h]-m.cfg.Budget-m.layout.Slack)
		m.evict.Need[h] = int32(extra)
		need = need || extra > 0
	}
	m.attn.Pos, m.evict.Pos = m.t, m.t
	began := time.Now()
	err := m.p.Observe(&m.attn)
	m.observing += time.Since(began)
	if err != nil {
		return err
	}
	if need {
		began = time.Now()
		err = m.p.Evict(&m.evict)
		m.evicting += time.Since(began)
		if err != nil {
			return err
		}
		m.free()
	}
	m.t++
	return nil
}

// BenchmarkDecodeStep times the policy's Observe+Evict per head and decode step, and
// Evict alone, at a 1,024-token prompt, a 100-token budget and 40 heads: V2 (naive
// single-step) and V3 (optimized single-step) against AUV (multistep).
func BenchmarkDecodeStep(b *testing.B) {
	for _, preset := range []string{"v2", "v3", "auv"} {
		b.Run(preset, func(b *testing.B) {
			p, err := New(policies.NewParams(map[string]any{"preset": preset}))
			if err != nil {
				b.Fatal(err)
			}
			cfg := policies.Config{Heads: 40, PromptLen: 1024, MaxLen: 2048, Budget: 100}
			m, err := newHost(p, cfg, 1)
			if err != nil {
				b.Fatal(err)
			}
			m.observing, m.evicting = 0, 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := m.step(); err != nil {
					b.Fatal(err)
				}
			}
			per := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / float64(b.N*cfg.Heads) }
			b.ReportMetric(per(m.observing+m.evicting), "ns/(head·step)")
			b.ReportMetric(per(m.evicting), "evict-ns/(head·step)")
		})
	}
}
