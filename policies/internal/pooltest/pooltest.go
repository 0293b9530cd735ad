// Package pooltest drives pooled policies (policies.PoolLayer, PoolModel) by hand in
// unit tests, while policytest's reference host serves per-head budgets only: it asks
// for victims by a pool need, as a pooled host does.
package pooltest

import (
	"slices"

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
