package kernel

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestMatMulNTPacked holds products against a packed B's leading rows to MatMulNT,
// bit for bit, in every kernel set: row counts below and above the one-row path and
// across tiles, prefixes that end inside a panel, and depths across blockK.
func TestMatMulNTPacked(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for _, k := range []int{1, 8, 64, 128, 300} {
		const rows = 150
		ldb := k + 3
		b := randomSlice(r, rows*ldb)
		for _, im := range implementations {
			var p PackedNT
			withImpl(im, func() { p.Pack(rows, k, b, ldb) })
			for _, m := range []int{1, 3, 4, 7, 64} {
				a := randomSlice(r, m*k)
				for _, n := range []int{1, 17, 32, 33, 100, rows} {
					want := make([]float32, m*rows)
					got := make([]float32, m*rows)
					im.matMulNT(m, n, k, a, k, b, ldb, want, rows)
					MatMulNTPacked(m, n, k, a, k, &p, got, rows)
					for i := range got {
						if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
							t.Fatalf("%s: m=%d n=%d k=%d: c[%d] = %g, MatMulNT gives %g", im.name, m, n, k, i, got[i], want[i])
						}
					}
				}
			}
		}
	}
}

func TestMatMulNTPackedBadArguments(t *testing.T) {
	var p PackedNT
	p.Pack(10, 4, make([]float32, 40), 4)
	defer func() {
		if err, _ := recover().(error); err == nil || !strings.Contains(err.Error(), "n=11 k=4 against a packed 10×4") {
			t.Errorf("panic %v", err)
		}
	}()
	MatMulNTPacked(2, 11, 4, make([]float32, 8), 4, &p, make([]float32, 22), 11)
}
