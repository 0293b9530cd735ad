package oracle_test

import (
	"math"
	"reflect"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/oracle"
)

// TestVictimsByFutureMass works the oracle through by hand on one head (budget 3, a
// 6-token prompt): the compression takes the 3 least future masses, ties to the
// older, in that order; the decode step's single victim (taken without a sort) breaks
// a tie between the new token and an older one in favour of evicting the older.
func TestVictimsByFutureMass(t *testing.T) {
	p, err := oracle.New(policies.NewParams(nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg := policies.Config{Heads: 1, HeadDim: 4, PromptLen: 6, MaxLen: 8, Budget: 3}
	if _, err := p.Init(cfg); err != nil {
		t.Fatal(err)
	}
	const stride = 7
	evict := func(phase policies.Phase, pos int, need int32, future []float32) []int32 {
		e := &policies.Eviction{Phase: phase, Pos: pos, Heads: 1, Stride: stride, Need: []int32{need},
			Count: make([]int32, 1), Victims: make([]int32, stride), Future: future}
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		return e.Victims[:e.Count[0]]
	}
	// Slots 0..5 hold positions 0..5.
	got := evict(policies.Prefill, 5, 3, []float32{0.5, 0.1, 0.1, 0.9, 0, 0.3, 0})
	if want := []int32{4, 1, 2}; !reflect.DeepEqual(got, want) {
		t.Fatalf("compression victims %v, want %v", got, want)
	}
	// Position 6 enters the lowest free slot, 1. Slot 1 (position 6) and slot 5
	// (position 5) tie at 0.2: the older goes.
	a := &policies.Attention{Phase: policies.Decode, Pos: 6, Rows: 1, Heads: 1, Stride: stride,
		Probs: make([]float32, stride), Slot: []int32{1}, Comp: make([]float32, 1)}
	if err := p.Observe(a); err != nil {
		t.Fatal(err)
	}
	got = evict(policies.Decode, 6, 1, []float32{0.5, 0.2, 0, 0.9, 0, 0.2, 0})
	if want := []int32{5}; !reflect.DeepEqual(got, want) {
		t.Fatalf("decode victim %v, want %v", got, want)
	}
}

// TestSignedMasses: masses a host computes are non-negative, and the compression
// sorts them by their bits; a negative mass or -0 must still sort by value (-0
// equal to 0, so position breaks the tie) and a NaN must not panic.
func TestSignedMasses(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	for _, c := range []struct {
		future []float32
		want   []int32
	}{
		{[]float32{0.5, negZero, 0, -1, 0.2, 0.3}, []int32{3, 1, 2}},
		{[]float32{0.5, 0, 0, 1, 0.2, 0.3}, []int32{1, 2, 4}},
		{[]float32{float32(math.NaN()), 0.1, 0.4, 0.3, 0.2, 0.6}, nil},
	} {
		p, err := oracle.New(policies.NewParams(nil))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Init(policies.Config{Heads: 1, HeadDim: 4, PromptLen: 6, MaxLen: 6, Budget: 3}); err != nil {
			t.Fatal(err)
		}
		e := &policies.Eviction{Phase: policies.Prefill, Pos: 5, Heads: 1, Stride: 6, Need: []int32{3},
			Count: make([]int32, 1), Victims: make([]int32, 6), Future: c.future}
		if err := p.Evict(e); err != nil {
			t.Fatal(err)
		}
		if got := e.Victims[:e.Count[0]]; c.want != nil && !reflect.DeepEqual(got, c.want) {
			t.Errorf("future %v: victims %v, want %v", c.future, got, c.want)
		}
	}
}
