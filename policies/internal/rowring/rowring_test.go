package rowring

import (
	"testing"

	"github.com/kvsim/kvsim/policies"
)

func TestRing(t *testing.T) {
	var r Ring
	r.Reset(2, 2, 4) // 2 heads, the last 2 rows, 4 slots
	// Each push is one decode row per head: head h gives slot s (h+1)·(s+1)·k.
	push := func(k float32, stride int) {
		a := &policies.Attention{Rows: 1, Heads: 2, Stride: stride, Probs: make([]float32, 2*stride)}
		for h := range 2 {
			for s := range stride {
				a.Row(h, 0)[s] = float32(h+1) * float32(s+1) * k
			}
		}
		r.Push(a, 0)
	}
	push(1, 4)
	push(10, 4)
	push(100, 3) // overwrites the first row; a narrower stride leaves slot 3 at 0
	dst := make([]float64, 4)
	r.Sums(1, []int32{0, 3}, dst)
	if dst[0] != 2*10+2*100 || dst[3] != 8*10 {
		t.Errorf("head 1 sums %v, want slot 0 = 220 and slot 3 = 80", dst)
	}
	r.Forget(1, 0)
	r.Sums(1, []int32{0, 1}, dst)
	if dst[0] != 0 || dst[1] != 4*10+4*100 {
		t.Errorf("after Forget: %v, want slot 0 = 0 and slot 1 = 440", dst)
	}
	r.Sums(0, []int32{2}, dst)
	if dst[2] != 3*10+3*100 {
		t.Errorf("head 0 slot 2: %g, want 330", dst[2])
	}
}
