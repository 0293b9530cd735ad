package cpu

import (
	"sync"

	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/kernel"
)

// matrix is a weight matrix in its stored dtype, a view of the checkpoint's mapping.
type matrix struct {
	rows, cols int
	dtype      half.DType
	data       []byte
	// panelRows is how many rows prefill widens at a time: a multiple of 32 whose
	// float32 panel stays within about 512 KiB, so it is still in cache when the
	// matrix product reads it.
	panelRows int
}

func newMatrix(t *checkpoint.Tensor) matrix {
	m := matrix{rows: t.Shape[0], cols: t.Shape[1], dtype: t.DType, data: t.Data}
	m.panelRows = min(256, max(32, (128<<10)/m.cols&^31))
	return m
}

func (w *matrix) rowBytes() int { return w.cols * w.dtype.Size() }

// widenRows converts rows j0..j0+len(dst)/cols to float32 into dst.
func (w *matrix) widenRows(j0 int, dst []float32) {
	rb := w.rowBytes()
	widen(w.dtype, dst, w.data[j0*rb:j0*rb+len(dst)/w.cols*rb])
}

// row converts row j to float32 into dst.
func (w *matrix) row(j int, dst []float32) { w.widenRows(j, dst[:w.cols]) }

// linear is a torch Linear layer: y = x·Wᵀ + b.
type linear struct {
	w    matrix
	bias []float32 // nil when the layer has none
}

func newLinear(l checkpoint.Linear) linear {
	lin := linear{w: newMatrix(l.Weight)}
	if l.Bias != nil {
		lin.bias = l.Bias.Float32(nil)
	}
	return lin
}

// epilogue is what apply does to each output element after adding the bias.
type epilogue struct {
	scale float32 // multiply by scale when non-zero
	relu  bool
}

// gemvRows is the most rows of x that apply multiplies row by row, reading W in its
// stored dtype with the fused widen-and-dot kernels. This is decode's path, bound by
// the memory traffic of W, which stays at its stored size. With more rows, W is
// widened a panel at a time and multiplied with kernel.MatMulNT; the widening is
// then paid once for all rows.
const gemvRows = 3

// apply computes y[i][j] = ep(Σ_p x[i][p]·W[j][p] + b[j]) for i < m and every output
// j, splitting the outputs across the workers. Every element is computed the same
// way whatever the split, so the result does not depend on the thread count.
func (b *Backend) apply(l *linear, m int, x []float32, ldx int, y []float32, ldy int, ep epilogue) {
	w := &l.w
	b.split(w.rows, 32, func(worker, lo, hi int) {
		if m <= gemvRows {
			rb := w.rowBytes()
			for i := range m {
				dotRows(w.dtype, x[i*ldx:i*ldx+w.cols], w.data[lo*rb:], rb, y[i*ldy+lo:i*ldy+hi])
			}
		} else {
			panel := b.work[worker].panel(w.panelRows * w.cols)
			for j := lo; j < hi; j += w.panelRows {
				nb := min(w.panelRows, hi-j)
				w.widenRows(j, panel[:nb*w.cols])
				kernel.MatMulNT(m, nb, w.cols, x, ldx, panel, w.cols, y[j:], ldy)
			}
		}
		for i := range m {
			out := y[i*ldy+lo : i*ldy+hi]
			if l.bias != nil {
				for j, bj := range l.bias[lo:hi] {
					out[j] += bj
				}
			}
			if ep.scale != 0 {
				kernel.Scale(ep.scale, out)
			}
			if ep.relu {
				for j, v := range out {
					out[j] = max(v, 0)
				}
			}
		}
	})
}

// split runs fn over [0, n) cut into at most one chunk per thread, the cuts at
// multiples of align, in parallel. fn gets the index of its worker's scratch.
func (b *Backend) split(n, align int, fn func(worker, lo, hi int)) {
	chunks := min(b.threads, (n+align-1)/align)
	if chunks <= 1 {
		fn(0, 0, n)
		return
	}
	per := ((n+chunks-1)/chunks + align - 1) / align * align
	var wg sync.WaitGroup
	for w := 1; w*per < n; w++ {
		wg.Go(func() { fn(w, w*per, min(n, (w+1)*per)) })
	}
	fn(0, 0, min(n, per))
	wg.Wait()
}

// workspace is one worker's scratch memory.
type workspace struct {
	panelBuf  []float32
	scoresBuf []float32
}

func (w *workspace) panel(n int) []float32 {
	if cap(w.panelBuf) < n {
		w.panelBuf = make([]float32, n)
	}
	return w.panelBuf[:n]
}

func (w *workspace) scores(n int) []float32 {
	if cap(w.scoresBuf) < n {
		w.scoresBuf = make([]float32, n)
	}
	return w.scoresBuf[:n]
}
