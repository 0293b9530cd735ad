// Package rowring keeps each head's most recent attention rows, indexed by slot, for
// policies that rescore the cache with a window of recent queries when they evict
// during decoding (NACL's proxy tokens, SnapKV's observation window).
package rowring

import "github.com/kvsim/kvsim/policies"

// Ring holds the last Rows query rows of every head, Width slots wide.
type Ring struct {
	rows, width int
	vals        []float32 // vals[(h*rows+r)*width+s]
	next        int       // ring row the next query overwrites
}

// Reset empties the ring and shapes it for heads × rows × width.
func (r *Ring) Reset(heads, rows, width int) {
	r.rows, r.width, r.next = rows, width, 0
	r.vals = make([]float32, heads*rows*width)
}

// Push stores query row `row` of every head of a, over the oldest stored row.
func (r *Ring) Push(a *policies.Attention, row int) {
	n := min(r.width, a.Stride)
	for h := range a.Heads {
		dst := r.vals[(h*r.rows+r.next)*r.width:][:r.width]
		copy(dst, a.Row(h, row)[:n])
		clear(dst[n:])
	}
	r.next = (r.next + 1) % r.rows
}

// Forget clears what the stored rows gave head h's slot, for a new token entering
// it: it was not there to receive that attention.
func (r *Ring) Forget(h int, slot int32) {
	for i := range r.rows {
		r.vals[(h*r.rows+i)*r.width+int(slot)] = 0
	}
}

// Sums sets dst[s], for each of head h's slots s, to the attention the slot's token
// got from the stored rows. It walks the rows in turn, which keeps memory access
// sequential.
func (r *Ring) Sums(h int, slots []int32, dst []float64) {
	for _, s := range slots {
		dst[s] = 0
	}
	for i := range r.rows {
		row := r.vals[(h*r.rows+i)*r.width:][:r.width]
		for _, s := range slots {
			dst[s] += float64(row[s])
		}
	}
}
