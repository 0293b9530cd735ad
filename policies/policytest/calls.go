package policytest

import (
	"testing"

	"github.com/kvsim/kvsim/policies"
)

// Prefill sends the prompt as one block; rows[h][i] is head h's row i (length <= stride).
func Prefill(t testing.TB, p policies.Policy, stride int, rows [][][]float32) {
	t.Helper()
	heads, n := len(rows), len(rows[0])
	a := &policies.Attention{Phase: policies.Prefill, Rows: n, Heads: heads, Stride: stride,
		Probs: make([]float32, heads*n*stride)}
	for h := range heads {
		for r := range n {
			copy(a.Row(h, r), rows[h][r])
		}
	}
	if err := p.Observe(a); err != nil {
		t.Fatal(err)
	}
}

// Decode sends one decode row per head; rows[h] is indexed by slot.
func Decode(t testing.TB, p policies.Policy, pos, stride int, slots []int32, rows [][]float32) {
	t.Helper()
	heads := len(rows)
	a := &policies.Attention{Phase: policies.Decode, Pos: pos, Rows: 1, Heads: heads, Stride: stride,
		Probs: make([]float32, heads*stride), Slot: slots}
	for h := range heads {
		copy(a.Row(h, 0), rows[h])
	}
	if err := p.Observe(a); err != nil {
		t.Fatal(err)
	}
}
