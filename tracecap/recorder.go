package tracecap

import (
	"fmt"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// recorder keeps the selected layers' and heads' queries, keys and values of every
// position, as an engine observer sees them, stored in the trace's dtype so that a
// long capture of a big model holds no more than its trace will.
type recorder struct {
	heads     []int // model heads kept
	positions int   // room per head
	headDim   int
	dtype     half.DType
	size      int   // bytes per element
	kept      []int // model layer → recorded layer, or -1
	// data[i][kind] is recorded layer i's Q, K or V, [heads][positions][head_dim].
	data [][][]byte
}

func newRecorder(c *Capturer, positions, headDim int) *recorder {
	r := &recorder{heads: c.heads, positions: positions, headDim: headDim, dtype: c.opts.DType,
		kept: make([]int, c.engine.Config().NumHiddenLayers)}
	r.size = r.dtype.Size()
	kinds := 3
	if c.opts.NoV {
		kinds = 2
	}
	for l := range r.kept {
		r.kept[l] = -1
	}
	for i, l := range c.layers {
		r.kept[l] = i
		tensors := make([][]byte, kinds)
		for k := range tensors {
			tensors[k] = make([]byte, len(r.heads)*positions*headDim*r.size)
		}
		r.data = append(r.data, tensors)
	}
	return r
}

// observe records one layer's view.
func (r *recorder) observe(v *gpu.LayerView) error {
	i := r.kept[v.Layer]
	if i < 0 {
		return nil
	}
	sources := [][]float32{v.Q, v.K, v.V}[:len(r.data[i])]
	for row, p := range v.Positions {
		if int(p) >= r.positions {
			return fmt.Errorf("capture: position %d beyond the %d recorded", p, r.positions)
		}
		for hi, h := range r.heads {
			off := (hi*r.positions + int(p)) * r.headDim * r.size
			for k, src := range sources {
				r.dtype.Encode(r.data[i][k][off:off+r.headDim*r.size], v.Head(src, row, h))
			}
		}
	}
	return nil
}

// write writes the trace of the first len(tokens) positions, in the dtype the
// tensors are kept in: no conversion.
func (r *recorder) write(path string, meta kvtrace.Meta, tokens []int32) error {
	w, err := kvtrace.Create(path, meta, r.dtype)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.WriteTokens(tokens); err != nil {
		return err
	}
	// Each head keeps room for r.positions; the trace holds the first T.
	head := len(tokens) * r.headDim * r.size
	buf := make([][]byte, 3)
	for i, tensors := range r.data {
		out := make([][]byte, 3)
		for k, data := range tensors {
			out[k] = data
			if len(tokens) < r.positions {
				buf[k] = buf[k][:0]
				for h := range r.heads {
					start := h * r.positions * r.headDim * r.size
					buf[k] = append(buf[k], data[start:start+head]...)
				}
				out[k] = buf[k]
			}
		}
		if err := w.WriteLayerEncoded(i, out[0], out[1], out[2]); err != nil {
			return err
		}
	}
	return w.Close()
}
