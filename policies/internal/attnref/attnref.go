// Package attnref is the attention that policy tests check their policies against:
// a query's softmax over chosen positions, computed in float64 from a policytest
// sequence's logits, independently of any host.
package attnref

import (
	"math"

	"github.com/kvsim/kvsim/policies/policytest"
)

// Probs is head h's softmax for query q of seq over positions, in their order.
func Probs(seq policytest.Sequence, h, q int, positions []int) []float64 {
	out := make([]float64, len(positions))
	m := math.Inf(-1)
	for _, j := range positions {
		m = math.Max(m, seq.Logit(h, q, j))
	}
	sum := 0.0
	for i, j := range positions {
		out[i] = math.Exp(seq.Logit(h, q, j) - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// Sent is Probs by position, rounded to float32 as a host sends them.
func Sent(seq policytest.Sequence, h, q int, positions []int) map[int]float64 {
	out := make(map[int]float64, len(positions))
	for i, p := range Probs(seq, h, q, positions) {
		out[positions[i]] = float64(float32(p))
	}
	return out
}

// Prefix lists the positions 0..n-1.
func Prefix(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
