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
	r.size = 2
	if r.dtype == half.F32 {
		r.size = 4
	}
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
				r.encode(r.data[i][k][off:off+r.headDim*r.size], v.Head(src, row, h))
			}
		}
	}
	return nil
}

// write writes the trace of the first len(tokens) positions.
func (r *recorder) write(path string, meta kvtrace.Meta, tokens []int32) error {
	w, err := kvtrace.Create(path, meta, r.dtype)
	if err != nil {
		return err
	}
	defer w.Abort()
	if err := w.WriteTokens(tokens); err != nil {
		return err
	}
	T, H, d := len(tokens), len(r.heads), r.headDim
	buf := make([][]float32, 3)
	for i, tensors := range r.data {
		for k, data := range tensors {
			if buf[k] == nil {
				buf[k] = make([]float32, H*T*d)
			}
			for h := range H {
				src := data[h*r.positions*d*r.size : (h*r.positions+T)*d*r.size]
				r.decode(buf[k][h*T*d:(h+1)*T*d], src)
			}
		}
		if err := w.WriteLayer(i, buf[0], buf[1], buf[2]); err != nil {
			return err
		}
	}
	return w.Close()
}

func (r *recorder) encode(dst []byte, src []float32) {
	switch r.dtype {
	case half.F16:
		half.EncodeF16(dst, src)
	case half.BF16:
		half.EncodeBF16(dst, src)
	default:
		half.EncodeF32(dst, src)
	}
}

func (r *recorder) decode(dst []float32, src []byte) {
	switch r.dtype {
	case half.F16:
		half.DecodeF16(dst, src)
	case half.BF16:
		half.DecodeBF16(dst, src)
	default:
		half.DecodeF32(dst, src)
	}
}
