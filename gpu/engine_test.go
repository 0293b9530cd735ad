package gpu_test

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/policies"
)

// scripted is a fake backend whose next-token prediction after position p is
// script[p+1]: it tests the host side of the engine without a model.
type scripted struct {
	cfg     checkpoint.Config
	script  []int32
	batches []gpu.Batch // copies of what Forward saw
	evicted []int       // layers passed to KV.Evict
	nan     bool        // return NaN logits
}

func newScripted(script ...int32) *scripted {
	return &scripted{script: script, cfg: checkpoint.Config{
		VocabSize: 10, HiddenSize: 4, NumHiddenLayers: 2, NumAttentionHeads: 2, FFNDim: 8,
		MaxPositionEmbeddings: 100, WordEmbedProjDim: 4, DoLayerNormBefore: true,
		ActivationFunction: "relu", BOSTokenID: 2, EOSTokenID: 2, PadTokenID: 1,
	}}
}

func (s *scripted) Name() string                           { return "scripted" }
func (s *scripted) Config() checkpoint.Config              { return s.cfg }
func (s *scripted) Close() error                           { return nil }
func (s *scripted) NewKV(c int, comp bool) (gpu.KV, error) { return &scriptedKV{s, c, comp}, nil }

func (s *scripted) Forward(kv gpu.KV, b *gpu.Batch) error {
	saved := *b
	saved.Tokens, saved.Positions = slices.Clone(b.Tokens), slices.Clone(b.Positions)
	saved.Slots = nil
	for _, l := range b.Slots {
		saved.Slots = append(saved.Slots, slices.Clone(l))
	}
	s.batches = append(s.batches, saved)
	V := s.cfg.VocabSize
	rows := len(b.Logits) / V
	for r := range rows {
		p := int(b.Positions[len(b.Tokens)-rows+r])
		row := b.Logits[r*V : (r+1)*V]
		for i := range row {
			row[i] = 0
		}
		row[s.script[p+1]] = 1
		if s.nan {
			row[3] = float32(math.NaN())
		}
	}
	return nil
}

type scriptedKV struct {
	s        *scripted
	capacity int
	comp     bool
}

func (k *scriptedKV) Capacity() int      { return k.capacity }
func (k *scriptedKV) Compensation() bool { return k.comp }
func (k *scriptedKV) Bytes() int64       { return 0 }
func (k *scriptedKV) Close() error       { return nil }
func (k *scriptedKV) Evict(l int, e *policies.Eviction) error {
	k.s.evicted = append(k.s.evicted, l)
	return nil
}

func TestGenerate(t *testing.T) {
	prompt := []int32{5, 6, 7}
	cases := []struct {
		name   string
		script []int32 // predictions after positions -1, 0, 1, ...
		opts   gpu.GenerateOptions
		tokens []int32
		eos    bool
		fed    [][]int32 // the batches' tokens
		logits []int     // the batches' logit rows
	}{
		{"stops at EOS", []int32{0, 0, 0, 4, 8, 2, 9}, gpu.GenerateOptions{MaxNew: 5},
			[]int32{4, 8}, true, [][]int32{{5, 6, 7}, {4}, {8}}, []int{1, 1, 1}},
		{"stops after MaxNew", []int32{0, 0, 0, 4, 8, 9, 9}, gpu.GenerateOptions{MaxNew: 2},
			[]int32{4, 8}, false, [][]int32{{5, 6, 7}, {4}, {8}}, []int{1, 1, 0}},
		{"ignores EOS", []int32{0, 0, 0, 2, 8, 9}, gpu.GenerateOptions{MaxNew: 2, IgnoreEOS: true},
			[]int32{2, 8}, false, [][]int32{{5, 6, 7}, {2}, {8}}, []int{1, 1, 0}},
		{"nothing to generate", []int32{0, 0, 0, 4}, gpu.GenerateOptions{},
			nil, false, [][]int32{{5, 6, 7}}, []int{0}},
	}
	for _, c := range cases {
		b := newScripted(c.script...)
		var progress int
		c.opts.Progress = func(n int) { progress += n }
		g, err := gpu.New(b).Generate(context.Background(), prompt, c.opts)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !slices.Equal(g.Tokens, c.tokens) || g.EOS != c.eos {
			t.Errorf("%s: generated %v (EOS %v), want %v (EOS %v)", c.name, g.Tokens, g.EOS, c.tokens, c.eos)
		}
		if len(b.batches) != len(c.fed) {
			t.Fatalf("%s: %d forward passes, want %d", c.name, len(b.batches), len(c.fed))
		}
		pos := int32(0)
		for i, batch := range b.batches {
			if !slices.Equal(batch.Tokens, c.fed[i]) {
				t.Errorf("%s: pass %d fed %v, want %v", c.name, i, batch.Tokens, c.fed[i])
			}
			if rows := len(batch.Logits) / 10; rows != c.logits[i] {
				t.Errorf("%s: pass %d asked for %d logit rows, want %d", c.name, i, rows, c.logits[i])
			}
			for j, p := range batch.Positions {
				if p != pos {
					t.Errorf("%s: pass %d token %d at position %d, want %d", c.name, i, j, p, pos)
				}
				// Plain decoding: token i sits in slot i of every head.
				for l := range batch.Slots {
					for h := range 2 {
						if s := batch.Slots[l][j*2+h]; s != pos {
							t.Errorf("%s: position %d in slot %d of layer %d head %d", c.name, pos, s, l, h)
						}
					}
				}
				pos++
			}
		}
		if progress != int(pos) {
			t.Errorf("%s: progress counted %d tokens, %d were fed", c.name, progress, pos)
		}
	}

	b := newScripted(0, 0, 0, 4)
	b.nan = true
	if _, err := gpu.New(b).Generate(context.Background(), prompt, gpu.GenerateOptions{MaxNew: 1}); err == nil ||
		!strings.Contains(err.Error(), "NaN") {
		t.Errorf("NaN logits: error %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := gpu.New(newScripted(0, 0, 0, 4, 4)).Generate(ctx, prompt, gpu.GenerateOptions{MaxNew: 2}); err != context.Canceled {
		t.Errorf("cancelled context: error %v", err)
	}
}

// TestSequenceEvict checks the host's validation of victims: each bad request is
// refused whole, and a good one frees the host slots and reaches the backend.
func TestSequenceEvict(t *testing.T) {
	b := newScripted()
	seq, err := gpu.New(b).NewSequence(6, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := seq.Feed([]int32{1, 2, 3, 4}, gpu.Outputs{}); err != nil {
		t.Fatal(err)
	}
	request := func(weight float32, victims ...[]int32) *policies.Eviction {
		e := &policies.Eviction{Heads: 2, Stride: 6, Need: make([]int32, 2), Count: make([]int32, 2),
			Victims: make([]int32, 12), Weights: make([]float32, 12)}
		for h, vs := range victims {
			for _, v := range vs {
				e.Victim(h, v, weight)
			}
		}
		return e
	}
	bad := []struct {
		name string
		e    *policies.Eviction
		want string
	}{
		{"named twice", request(1, []int32{1, 1}, nil), "named twice"},
		{"free slot", request(1, nil, []int32{0, 5}), "slot 5 is empty"},
		{"out of range", request(1, []int32{6}, nil), "out of range"},
		{"negative weight", request(-1, []int32{0}, nil), "merge weight"},
		{"NaN weight", request(float32(math.NaN()), []int32{0}, nil), "merge weight"},
		{"short weights", func() *policies.Eviction {
			e := request(1, []int32{0}, nil)
			e.Weights = e.Weights[:6]
			return e
		}(), "6 weights for 2 heads of stride 6"},
	}
	for _, c := range bad {
		if err := seq.Evict(1, c.e); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}
	if err := seq.Evict(2, request(1)); err == nil {
		t.Error("evicting layer 2 of 2: no error")
	}
	if len(b.evicted) != 0 || seq.Slots(1).Resident(0) != 4 || seq.Slots(1).Resident(1) != 4 {
		t.Fatalf("refused evictions changed state: backend saw %v, residents %d, %d",
			b.evicted, seq.Slots(1).Resident(0), seq.Slots(1).Resident(1))
	}

	if err := seq.Evict(1, request(0.5, []int32{0, 2}, []int32{3})); err != nil {
		t.Fatal(err)
	}
	t1 := seq.Slots(1)
	if t1.Resident(0) != 2 || t1.Resident(1) != 3 || t1.Pos(0, 2) != -1 || t1.Pos(1, 3) != -1 || t1.Pos(0, 1) != 1 {
		t.Errorf("after eviction: residents %d, %d", t1.Resident(0), t1.Resident(1))
	}
	if !slices.Equal(b.evicted, []int{1}) {
		t.Errorf("backend evicted layers %v, want [1]", b.evicted)
	}
	// The next token fills the lowest free slot of each head of layer 1; layer 0 is
	// untouched and continues at slot 4.
	if err := seq.Feed([]int32{5}, gpu.Outputs{}); err != nil {
		t.Fatal(err)
	}
	last := b.batches[len(b.batches)-1]
	if !slices.Equal(last.Slots[1], []int32{0, 3}) || !slices.Equal(last.Slots[0], []int32{4, 4}) {
		t.Errorf("new token's slots: layer 0 %v, layer 1 %v; want [4 4] and [0 3]", last.Slots[0], last.Slots[1])
	}
	if t1.Pos(0, 0) != 4 {
		t.Errorf("slot 0 of head 0 holds position %d, want 4", t1.Pos(0, 0))
	}
}
