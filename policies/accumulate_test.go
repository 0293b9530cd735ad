package policies

import (
	"math"
	"testing"
)

// TestAddRow: the unrolled sums equal the plain loop's, bit for bit, at every length
// around the unrolling, and leave dst past the row alone.
func TestAddRow(t *testing.T) {
	for n := 0; n <= 9; n++ {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(i+1) / 7
		}
		for _, w := range []float64{1, 0.3} {
			got, want := make([]float64, n+2), make([]float64, n+2)
			for i := range got {
				got[i], want[i] = 0.1*float64(i), 0.1*float64(i)
			}
			if w == 1 {
				AddRow(got, row)
			} else {
				AddRowScaled(got, row, w)
			}
			for i, v := range row {
				if w == 1 {
					want[i] += float64(v)
				} else {
					want[i] += float64(v) * w
				}
			}
			for i := range got {
				if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
					t.Errorf("n=%d w=%g: dst[%d] = %v, want %v", n, w, i, got[i], want[i])
				}
			}
		}
	}
}
