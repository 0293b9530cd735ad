package snapkv

import "github.com/kvsim/kvsim/policies"

// rowRing keeps each head's most recent query rows, indexed by slot, so that a decode
// eviction can re-run the vote over them. A reused slot's column still holds what
// older rows gave its previous token, but that never reaches a vote: a token becomes a
// candidate only once it leaves the window, and by then the ring holds only rows that
// came after it.
type rowRing struct {
	rows, width int
	vals        []float32 // vals[(h*rows+r)*width+s]
	next        int       // ring row the next query overwrites
}

func (r *rowRing) reset(heads, rows, width int) {
	r.rows, r.width, r.next = rows, width, 0
	r.vals = make([]float32, heads*rows*width)
}

// push stores query row `row` of every head.
func (r *rowRing) push(a *policies.Attention, row int) {
	n := min(r.width, a.Stride)
	for h := range a.Heads {
		dst := r.vals[(h*r.rows+r.next)*r.width:][:r.width]
		copy(dst, a.Row(h, row)[:n])
		clear(dst[n:])
	}
	r.next = (r.next + 1) % r.rows
}

// sums sets dst[s], for each of head h's slots s, to the attention the slot's token
// got from the stored rows. It walks the rows in turn, which keeps memory access
// sequential.
func (r *rowRing) sums(h int, slots []int32, dst []float64) {
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
