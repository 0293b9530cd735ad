package cpu

import (
	"fmt"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/kernel"
)

// The weight kernels read rows of a weight matrix in its stored dtype. Each set
// computes the same functions; they differ in speed and in float32 rounding, and
// the fastest the CPU supports is chosen at start-up.
type weightKernels struct {
	name string
	// widen converts len(dst) elements of dtype d from src.
	widen func(d half.DType, dst []float32, src []byte)
	// dotRows sets y[j] = Σ_p x[p]·w_j[p] for j < len(y), where row j of w starts
	// at byte j*ldw and holds len(x) elements of dtype d. A row's result must not
	// depend on len(y) or on the other rows.
	dotRows func(d half.DType, x []float32, w []byte, ldw int, y []float32)
}

var (
	genericKernels = weightKernels{name: "generic", widen: half.DType.Decode, dotRows: dotRowsGeneric}
	kernels        = &genericKernels
)

// widen converts len(dst) elements of dtype d from src to float32.
func widen(d half.DType, dst []float32, src []byte) {
	if len(src) < len(dst)*d.Size() {
		panic(fmt.Sprintf("cpu: widen %d elements from %d bytes of %v", len(dst), len(src), d))
	}
	kernels.widen(d, dst, src)
}

// dotRows sets y[j] to the dot product of x with row j of w; see weightKernels.
func dotRows(d half.DType, x []float32, w []byte, ldw int, y []float32) {
	if len(y) > 0 && len(w) < (len(y)-1)*ldw+len(x)*d.Size() {
		panic(fmt.Sprintf("cpu: dotRows of %d rows of %d %v at stride %d from %d bytes", len(y), len(x), d, ldw, len(w)))
	}
	kernels.dotRows(d, x, w, ldw, y)
}

// dotRowsGeneric widens each row in chunks on the stack and uses kernel.Dot.
func dotRowsGeneric(d half.DType, x []float32, w []byte, ldw int, y []float32) {
	const chunk = 256
	var buf [chunk]float32
	size := d.Size()
	for j := range y {
		row := w[j*ldw:]
		var sum float32
		for p := 0; p < len(x); p += chunk {
			n := min(chunk, len(x)-p)
			d.Decode(buf[:n], row[p*size:(p+n)*size])
			sum += kernel.Dot(x[p:p+n], buf[:n])
		}
		y[j] = sum
	}
}
