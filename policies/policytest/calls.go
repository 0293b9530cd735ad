package policytest

import (
	"slices"
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

// Evict asks p for need[h] victims of each head, with victim lists stride long, and
// returns each head's victims sorted. Policy unit tests use it to drive Evict by hand.
func Evict(p policies.Policy, phase policies.Phase, pos, stride int, need []int32) ([][]int32, error) {
	heads := len(need)
	return evict(p, &policies.Eviction{Phase: phase, Pos: pos, Heads: heads, Need: need, Stride: stride})
}

// EvictPool is Evict for a pooled policy: it asks for at least poolNeed victims from
// the layer's heads together (Need all zero, as a pooled host sends it).
func EvictPool(p policies.Policy, phase policies.Phase, pos, heads, stride, poolNeed int) ([][]int32, error) {
	return evict(p, &policies.Eviction{Phase: phase, Pos: pos, Heads: heads, Need: make([]int32, heads),
		PoolNeed: poolNeed, Stride: stride})
}

// evict gives e its victim lists, calls p and returns each head's victims sorted.
func evict(p policies.Policy, e *policies.Eviction) ([][]int32, error) {
	heads, stride := e.Heads, e.Stride
	e.Count, e.Victims = make([]int32, heads), make([]int32, heads*stride)
	if err := p.Evict(e); err != nil {
		return nil, err
	}
	out := make([][]int32, heads)
	for h := range heads {
		out[h] = slices.Sorted(slices.Values(e.Victims[h*stride : h*stride+int(e.Count[h])]))
	}
	return out, nil
}

// MustEvict is Evict, failing t on an error.
func MustEvict(t testing.TB, p policies.Policy, phase policies.Phase, pos, stride int, need []int32) [][]int32 {
	t.Helper()
	victims, err := Evict(p, phase, pos, stride, need)
	if err != nil {
		t.Fatal(err)
	}
	return victims
}

// UniformPrompt returns n causal attention rows, row i spread evenly over tokens
// 0..i, with the rows of last replacing the final ones.
func UniformPrompt(n int, last ...[]float32) [][]float32 {
	rows := make([][]float32, n)
	for i := range n - len(last) {
		rows[i] = make([]float32, i+1)
		for j := range rows[i] {
			rows[i][j] = 1 / float32(i+1)
		}
	}
	copy(rows[n-len(last):], last)
	return rows
}
