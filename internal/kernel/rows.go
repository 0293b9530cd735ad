package kernel

import "fmt"

// AxpyRows adds alpha[i]·x[idx[i]·ldx : idx[i]·ldx+len(y)] to y for each i in order:
// the same sums, rounded the same way, as calling Axpy once per row, without storing
// y between rows. It panics if len(idx) != len(alpha) or a row lies outside x.
func AxpyRows(alpha []float32, idx []int32, x []float32, ldx int, y []float32) {
	if err := checkRows(len(alpha), idx, len(x), ldx, len(y)); err != nil {
		panic(err)
	}
	active.axpyRows(alpha, idx, x, ldx, y)
}

func checkRows(n int, idx []int32, lenX, ldx, width int) error {
	if len(idx) != n {
		return fmt.Errorf("kernel: rows: len(idx) %d != len(alpha) %d", len(idx), n)
	}
	if ldx < width {
		return fmt.Errorf("kernel: rows: ldx %d < width %d", ldx, width)
	}
	for _, r := range idx {
		if r < 0 || int(r)*ldx+width > lenX {
			return fmt.Errorf("kernel: rows: row %d outside x of %d elements (ldx %d)", r, lenX, ldx)
		}
	}
	return nil
}

// SparseRowTimes sets out[j] = Σ_i w[i]·v[pos[i]·ldv+j] for j < len(out): the product
// of a row that is zero outside the increasing positions pos with the k×len(out)
// matrix v. Its result is bit for bit what MatMulNT(1, len(out), k, a, k, vt, k, out,
// len(out)) gives for the dense row a (a[pos[i]] = w[i], 0 elsewhere) and vt = vᵀ,
// when v is finite, but it reads only the len(pos) rows of v named. s is reusable
// scratch.
//
// It reports false, computing nothing, when this CPU's kernels cannot reproduce
// MatMulNT's rounding for this width (the AVX2 kernels need a multiple of 8).
func SparseRowTimes(k int, pos []int32, w []float32, v []float32, ldv int, out []float32, s *RowScratch) bool {
	n := len(out)
	g := active.gemvLanes
	if n%g.widthMultiple != 0 {
		return false
	}
	if err := checkRows(len(w), pos, len(v), ldv, n); err != nil {
		panic(err)
	}
	for i, p := range pos {
		if p >= int32(k) || i > 0 && p <= pos[i-1] {
			panic(fmt.Errorf("kernel: SparseRowTimes: positions not increasing below %d at index %d", k, i))
		}
	}
	// Sort the entries by lane, keeping position order within a lane, then let each
	// lane accumulate its positions as the dense kernel's accumulator of that lane
	// does (the zeros between them add nothing), and reduce the lanes in the kernel's
	// order.
	s.grow(g.lanes*n, len(pos))
	r := g.rule(k)
	var start [maxLanes + 1]int
	for _, p := range pos {
		start[r.lane(p)+1]++
	}
	for l := 1; l <= g.lanes; l++ {
		start[l] += start[l-1]
	}
	at := start
	for i, p := range pos {
		l := r.lane(p)
		s.rows[at[l]], s.weights[at[l]] = p, w[i]
		at[l]++
	}
	for l := range g.lanes {
		lane := s.acc[l*n : (l+1)*n]
		clear(lane)
		active.axpyRows(s.weights[start[l]:start[l+1]], s.rows[start[l]:start[l+1]], v, ldv, lane)
	}
	g.reduce(s.acc, out)
	return true
}

// RowScratch is SparseRowTimes's scratch, grown as needed and reused across calls.
type RowScratch struct {
	acc, weights []float32
	rows         []int32
}

func (s *RowScratch) grow(acc, entries int) {
	if cap(s.acc) < acc {
		s.acc = make([]float32, acc)
	}
	if cap(s.rows) < entries {
		s.rows = make([]int32, entries)
		s.weights = make([]float32, entries)
	}
	s.acc, s.rows, s.weights = s.acc[:acc], s.rows[:entries], s.weights[:entries]
}

// maxLanes is the most accumulator lanes a gemvLanes has.
const maxLanes = 16

// gemvLanes describes how an implementation's one-row MatMulNT accumulates: rule
// gives the accumulator lane each reduction index p < k feeds, and reduce sums the
// lanes of every output j into out (acc holds lane l of output j at l·len(out)+j).
type gemvLanes struct {
	lanes         int
	widthMultiple int
	rule          func(k int) laneRule
	reduce        func(acc, out []float32)
}

// laneRule maps index p to lane p&maskA below a, p&maskB below b, and
// off+(p&maskC) from b on.
type laneRule struct {
	a, b                     int32
	maskA, maskB, maskC, off int32
}

func (r laneRule) lane(p int32) int32 {
	switch {
	case p < r.a:
		return p & r.maskA
	case p < r.b:
		return p & r.maskB
	}
	return r.off + p&r.maskC
}

// genericLanes follows dotGeneric: four partial sums by p mod 4, the last k mod 4
// products into the first.
var genericLanes = gemvLanes{
	lanes:         4,
	widthMultiple: 1,
	rule: func(k int) laneRule {
		return laneRule{a: int32(k &^ 3), b: int32(k &^ 3), maskA: 3}
	},
	reduce: func(acc, out []float32) {
		n := len(out)
		for j := range out {
			out[j] = (acc[j] + acc[n+j]) + (acc[2*n+j] + acc[3*n+j])
		}
	},
}

func axpyRowsGeneric(alpha []float32, idx []int32, x []float32, ldx int, y []float32) {
	for i, r := range idx {
		axpyGeneric(alpha[i], x[int(r)*ldx:int(r)*ldx+len(y)], y)
	}
}
