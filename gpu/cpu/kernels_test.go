package cpu

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
)

// encodeRows stores values (rows × k) as dtype with a row stride of ldw bytes.
func encodeRows(d half.DType, values []float32, rows, k, ldw int) []byte {
	out := make([]byte, (rows-1)*ldw+k*d.Size())
	for j := range rows {
		dst := out[j*ldw : j*ldw+k*d.Size()]
		src := values[j*k : (j+1)*k]
		switch d {
		case half.F16:
			half.EncodeF16(dst, src)
		case half.BF16:
			half.EncodeBF16(dst, src)
		default:
			half.EncodeF32(dst, src)
		}
	}
	return out
}

// TestWeightKernels checks the generic and the active kernels against a float64 computation from the
// stored values, for every dtype and for lengths around the vector widths, and that a
// row's dot product does not depend on which rows share the call.
func TestWeightKernels(t *testing.T) {
	for _, impl := range []*weightKernels{&genericKernels, kernels} {
		testWeightKernels(t, impl)
	}
}

func testWeightKernels(t *testing.T, impl *weightKernels) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, d := range []half.DType{half.F16, half.BF16, half.F32} {
		for _, k := range []int{1, 7, 8, 9, 31, 32, 33, 64, 100} {
			const rows = 6
			ldw := k*d.Size() + 6 // rows are not packed
			values := make([]float32, rows*k)
			for i := range values {
				values[i] = float32(rng.NormFloat64())
			}
			w := encodeRows(d, values, rows, k, ldw)
			x := make([]float32, k)
			for i := range x {
				x[i] = float32(rng.NormFloat64())
			}
			stored := make([]float32, rows*k)
			for j := range rows {
				d.Decode(stored[j*k:(j+1)*k], w[j*ldw:])
			}

			widened := make([]float32, k)
			impl.widen(d, widened, w[ldw:])
			if !slices.Equal(widened, stored[k:2*k]) {
				t.Errorf("%s %v k=%d: widen %v, want %v", impl.name, d, k, widened, stored[k:2*k])
			}

			y := make([]float32, rows)
			impl.dotRows(d, x, w, ldw, y)
			for j := range rows {
				var want, scale float64
				for p := range k {
					want += float64(x[p]) * float64(stored[j*k+p])
					scale += math.Abs(float64(x[p]) * float64(stored[j*k+p]))
				}
				if math.Abs(float64(y[j])-want) > 1e-6*scale {
					t.Errorf("%s %v k=%d row %d: dot %g, want %g", impl.name, d, k, j, y[j], want)
				}
			}
			for lo := range rows {
				part := make([]float32, rows-lo)
				impl.dotRows(d, x, w[lo*ldw:], ldw, part)
				if !slices.Equal(part, y[lo:]) {
					t.Errorf("%s %v k=%d: rows from %d give %v, all rows %v", impl.name, d, k, lo, part, y[lo:])
				}
			}
		}
	}
}
