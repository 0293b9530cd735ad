package policytest

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// TestLayerPoolByHand: 2 heads, a 4-token prompt, budget 1 in a layer pool (2
// entries). The compression asks for 8 − 2 = 6 victims in all; each decode step
// adds a token to each head and asks for 4 − 2 = 2.
func TestLayerPoolByHand(t *testing.T) {
	seq := RandomSequence(2, 4, 7, 3)
	log, err := Run(&Pooled{Pool: policies.PoolLayer}, policies.Config{Budget: 1}, seq)
	if err != nil {
		t.Fatal(err)
	}
	if len(log.Events) != 4 || log.PoolEntries != 2 || log.PeakPool != 4 {
		t.Fatalf("%d evictions, pool %d, peak %d; want 4, 2, 4", len(log.Events), log.PoolEntries, log.PeakPool)
	}
	for i, ev := range log.Events {
		n := len(ev.Victims[0]) + len(ev.Victims[1])
		if want := map[bool]int{true: 6, false: 2}[i == 0]; n != want {
			t.Errorf("eviction %d: %d victims, want %d", i, n, want)
		}
	}
	if n := len(log.Resident[0]) + len(log.Resident[1]); n != 2 {
		t.Errorf("%d tokens resident at the end, want the pool's 2", n)
	}
}

// TestModelPoolByHand: 3 layers, 2 heads, budget 2: a model pool of 12, divided
// in proportion to 3, 2, 1: layer 1 gets 12·2·2/12 = 4 entries.
func TestModelPoolByHand(t *testing.T) {
	seq := RandomSequence(2, 6, 8, 4)
	log, err := Run(&Pooled{Pool: policies.PoolModel}, policies.Config{Layer: 1, Layers: 3, Budget: 2}, seq)
	if err != nil {
		t.Fatal(err)
	}
	if log.PoolEntries != 4 || log.PeakPool != 6 {
		t.Errorf("pool %d, peak %d; want 4 and 4 + 2 new tokens", log.PoolEntries, log.PeakPool)
	}
	if n := len(log.Resident[0]) + len(log.Resident[1]); n != 4 {
		t.Errorf("%d tokens resident at the end, want 4", n)
	}
}

func TestOverdrawRefused(t *testing.T) {
	_, err := Run(&Pooled{Pool: policies.PoolLayer, Overdraw: true}, policies.Config{Budget: 1}, RandomSequence(2, 4, 7, 3))
	if err == nil || !strings.Contains(err.Error(), "evict at 3: the layer pool got 5 victims, needs 6") {
		t.Errorf("overdraw: %v", err)
	}
}

// TestCompactAndVectors: a policy asking for everything gets compact rows that list
// the resident slots with the probabilities of the wide rows, and the sequence's own
// vectors of the observed rows.
func TestCompactAndVectors(t *testing.T) {
	seq := VectorSequence(2, 5, 8, 3, 1)
	wide, compact := &spy{}, &spy{layout: policies.Layout{Compact: true, Keys: true, Values: true, Queries: true}}
	for _, s := range []*spy{wide, compact} {
		if _, err := Run(s, policies.Config{Budget: 3}, seq); err != nil {
			t.Fatal(err)
		}
	}
	if len(wide.rows) != 3 || len(compact.rows) != 3 {
		t.Fatalf("%d and %d decode rows, want 3", len(wide.rows), len(compact.rows))
	}
	for i := range wide.rows {
		for h := range 2 {
			var nonzero []float32
			for _, p := range wide.rows[i][h] {
				if p != 0 {
					nonzero = append(nonzero, p)
				}
			}
			got := compact.rows[i][h]
			if len(got) != 4 || !slices.Equal(nonzero, got) { // budget 3 + the new token
				t.Errorf("step %d head %d: compact %v, wide nonzero %v", i, h, got, nonzero)
			}
		}
	}
	for _, c := range compact.vectors {
		for h := range 2 {
			for r := range c.rows {
				at := (h*c.rows + r) * 3
				if !slices.Equal(c.k[at:at+3], seq.Key(h, c.pos+r)) || !slices.Equal(c.v[at:at+3], seq.Value(h, c.pos+r)) ||
					!slices.Equal(c.q[at:at+3], seq.Query(h, c.pos+r)) {
					t.Errorf("position %d head %d: vectors differ from the sequence's", c.pos+r, h)
				}
			}
		}
	}
	if len(compact.vectors) != 5 || wide.vectors[0].k != nil { // 2 prefill blocks and 3 steps
		t.Errorf("%d calls with vectors; the wide policy got keys %v", len(compact.vectors), wide.vectors[0].k)
	}
}

// spy keeps every head's slots while recording what it observes; it evicts the
// lowest slots.
type spy struct {
	layout  policies.Layout
	res     policies.Residency
	rows    [][][]float32 // decode: [step][head] the row's probabilities in slot order
	vectors []observed
}

type observed struct {
	pos, rows int
	k, v, q   []float32
}

func (s *spy) Init(cfg policies.Config) (policies.Layout, error) {
	s.res.Reset(cfg)
	return s.layout, nil
}

func (s *spy) Observe(a *policies.Attention) error {
	s.vectors = append(s.vectors, observed{a.Pos, a.Rows, slices.Clone(a.Keys), slices.Clone(a.Values), slices.Clone(a.Queries)})
	s.res.Enter(a)
	if a.Phase != policies.Decode {
		return nil
	}
	step := make([][]float32, a.Heads)
	for h := range a.Heads {
		if a.Live == nil {
			step[h] = slices.Clone(a.Row(h, 0))
			continue
		}
		// Sort the compact entries by slot, to compare with the wide row.
		live := slices.Clone(a.Live[h*a.Stride : h*a.Stride+int(a.Len[h])])
		probs := map[int32]float32{}
		for i, sl := range live {
			probs[sl] = a.Probs[h*a.Stride+i]
		}
		slices.Sort(live)
		for _, sl := range live {
			step[h] = append(step[h], probs[sl])
		}
	}
	s.rows = append(s.rows, step)
	return nil
}

func (s *spy) Evict(e *policies.Eviction) error {
	for h := range e.Heads {
		for sl, p := range s.res.Heads[h].Positions() {
			if int(e.Count[h]) < int(e.Need[h]) && p >= 0 {
				e.Victim(h, int32(sl), 0)
				s.res.Free(h, int32(sl))
			}
		}
	}
	return nil
}
