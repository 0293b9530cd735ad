package checkpoint

import (
	"fmt"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/half"
)

// torchName is d as config.json's torch_dtype spells it.
func torchName(d half.DType) string {
	switch d {
	case half.BF16:
		return "bfloat16"
	case half.F32:
		return "float32"
	}
	return "float16"
}

// Tensor is one weight tensor in its stored dtype.
//
// # Notes
//
//   - Data is a read-only view of the checkpoint file's mapping; writing to it
//     crashes the process. It is valid until the Model is closed.
//   - Shape follows torch: a Linear layer's weight is [out_features, in_features].
type Tensor struct {
	Name  string // as stored in the checkpoint, e.g. "model.decoder.layers.0.fc1.weight"
	DType half.DType
	Shape []int
	Data  []byte // little-endian elements, row-major
}

// Numel is the number of elements.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Float32 converts the whole tensor to float32, reusing dst's storage when it is large
// enough, and returns the Numel values.
func (t *Tensor) Float32(dst []float32) []float32 {
	dst = buf.Grow(dst, t.Numel())
	t.DType.Decode(dst, t.Data)
	return dst
}

// Row converts row i of a 2-D tensor to float32, reusing dst's storage when it is
// large enough, and returns the Shape[1] values. Like slice indexing, it panics if the
// tensor is not 2-D or i is out of range.
func (t *Tensor) Row(i int, dst []float32) []float32 {
	if len(t.Shape) != 2 {
		panic(fmt.Sprintf("checkpoint: Row of %d-D tensor %s", len(t.Shape), t.Name))
	}
	if i < 0 || i >= t.Shape[0] {
		panic(fmt.Sprintf("checkpoint: row %d of tensor %s with %d rows", i, t.Name, t.Shape[0]))
	}
	cols := t.Shape[1]
	rowBytes := cols * t.DType.Size()
	dst = buf.Grow(dst, cols)
	t.DType.Decode(dst, t.Data[i*rowBytes:(i+1)*rowBytes])
	return dst
}
