package kernel

import "fmt"

// PackedNT is a B operand of MatMulNT packed once, so that many products against its
// leading rows (attention's row blocks against a growing prefix of the keys) skip
// the copy MatMulNT makes of B on every call. Results are bit for bit MatMulNT's.
type PackedNT struct {
	b      []float32
	n, k   int
	ldb    int
	im     *impl     // the kernel set that packed it
	panels []float32 // the tiled kernels' panels, or nil
}

// Pack packs the n×k matrix b (row stride ldb), keeping a reference to b: b must not
// change while p is in use. It reuses p's memory.
func (p *PackedNT) Pack(n, k int, b []float32, ldb int) {
	if n < 0 || k < 0 || ldb < k || n > 0 && len(b) < (n-1)*ldb+k {
		panic(fmt.Errorf("kernel: PackedNT.Pack: n=%d k=%d ldb=%d with len(b) %d", n, k, ldb, len(b)))
	}
	p.b, p.n, p.k, p.ldb, p.im = b, n, k, ldb, active
	p.panels = p.panels[:0]
	if active.packNT != nil {
		p.panels = active.packNT(n, k, b, ldb, p.panels)
	}
}

// MatMulNTPacked computes C = A·Bᵀ like MatMulNT for the first n rows of the packed
// B (n at most the rows packed).
func MatMulNTPacked(m, n, k int, a []float32, lda int, p *PackedNT, c []float32, ldc int) {
	if n > p.n || k != p.k {
		panic(fmt.Errorf("kernel: MatMulNTPacked: n=%d k=%d against a packed %d×%d", n, k, p.n, p.k))
	}
	if err := checkMatMulNT(m, n, k, len(a), lda, len(p.b), p.ldb, len(c), ldc); err != nil {
		panic(err)
	}
	if m == 0 || n == 0 {
		return
	}
	if p.im.matMulNTPacked == nil {
		p.im.matMulNT(m, n, k, a, lda, p.b, p.ldb, c, ldc)
		return
	}
	p.im.matMulNTPacked(m, n, k, a, lda, p, c, ldc)
}
