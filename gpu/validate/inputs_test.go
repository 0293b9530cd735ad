package validate_test

import (
	"context"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/policies"
)

// vectorSpy asks for every vector and compact rows, keeps everything, and records
// what each call carried.
type vectorSpy struct {
	layer int
	calls []spied
}

type spied struct {
	pos, rows int
	k, v, q   []float32
	live      [][]int32 // decode: per head, the listed slots, sorted
}

func (s *vectorSpy) Init(cfg policies.Config) (policies.Layout, error) {
	s.layer, s.calls = cfg.Layer, nil
	return policies.Layout{Unbounded: true, Keys: true, Values: true, Queries: true, Compact: true}, nil
}

func (s *vectorSpy) Observe(a *policies.Attention) error {
	c := spied{pos: a.Pos, rows: a.Rows, k: slices.Clone(a.Keys), v: slices.Clone(a.Values), q: slices.Clone(a.Queries)}
	for h := range a.Len {
		c.live = append(c.live, slices.Sorted(slices.Values(a.Live[h*a.Stride:h*a.Stride+int(a.Len[h])])))
	}
	s.calls = append(s.calls, c)
	return nil
}

func (s *vectorSpy) Evict(*policies.Eviction) error { return nil }

// TestVectorsFromTheBackend: in-loop decoding hands a policy the keys, values and
// queries the CPU backend computes, exactly as a plain run of the same tokens
// observes them (the prompt as one block, then one token at a time), rearranged
// per head; and compact rows listing every token (nothing is evicted).
func TestVectorsFromTheBackend(t *testing.T) {
	e := tinyEngine(t)
	cfg := e.Config()
	L, H, d := cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.HiddenSize/cfg.NumAttentionHeads
	force := []int32{3, 99, 4, 250, 7}
	// plain[l][kind][pos][h] is the backend's vector.
	plain := make([][3][][][]float32, L)
	seq, err := e.NewSequence(len(prompt)+len(force), false)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	observe := func(v *gpu.LayerView) error {
		for kind, x := range [][]float32{v.K, v.V, v.Q} {
			for r := range v.Rows {
				var heads [][]float32
				for h := range H {
					heads = append(heads, slices.Clone(v.Head(x, r, h)))
				}
				plain[v.Layer][kind] = append(plain[v.Layer][kind], heads)
			}
		}
		return nil
	}
	for _, batch := range append([][]int32{prompt}, [][]int32{{force[0]}, {force[1]}, {force[2]}, {force[3]}, {force[4]}}...) {
		if err := seq.Feed(batch, gpu.Outputs{Want: gpu.Want{QKV: true}, Observe: observe}); err != nil {
			t.Fatal(err)
		}
	}

	spies := make([]*vectorSpy, 0, L)
	_, err = validate.Decode(context.Background(), e, prompt, func() (policies.Policy, error) {
		s := &vectorSpy{}
		spies = append(spies, s)
		return s, nil
	}, validate.Options{Budget: 4, MaxNew: len(force), Force: force, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for l, s := range spies {
		if len(s.calls) != 1+len(force) { // the prompt block, then a step per token
			t.Fatalf("layer %d: %d calls, want %d", l, len(s.calls), 1+len(force))
		}
		for _, c := range s.calls {
			for kind, got := range [][]float32{c.k, c.v, c.q} {
				for h := range H {
					for r := range c.rows {
						at := (h*c.rows + r) * d
						if want := plain[l][kind][c.pos+r][h]; !slices.Equal(got[at:at+d], want) {
							t.Fatalf("layer %d, position %d, head %d, vector %d: %v, the backend's %v", l, c.pos+r, h, kind, got[at:at+d], want)
						}
					}
				}
			}
			if c.pos >= len(prompt) {
				for h, live := range c.live {
					if len(live) != c.pos+1 || live[c.pos] != int32(c.pos) {
						t.Fatalf("layer %d, position %d, head %d: compact row lists %v", l, c.pos, h, live)
					}
				}
			}
		}
	}
}
