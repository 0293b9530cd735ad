package checkpoint

import (
	"fmt"
	"strings"

	"github.com/kvsim/kvsim/internal/half"
)

// DType is the element type of a tensor the engine can use.
type DType uint8

const (
	// F16 is IEEE 754 binary16, the dtype of the published OPT checkpoints.
	F16 DType = iota + 1
	// BF16 is bfloat16: the top 16 bits of a float32.
	BF16
	// F32 is IEEE 754 binary32.
	F32
)

// String returns the safetensors spelling of d: "F16", "BF16" or "F32".
func (d DType) String() string {
	switch d {
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	case F32:
		return "F32"
	}
	return fmt.Sprintf("DType(%d)", uint8(d))
}

// Size is the number of bytes of one element.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// torchName is d as config.json's torch_dtype spells it.
func (d DType) torchName() string {
	switch d {
	case BF16:
		return "bfloat16"
	case F32:
		return "float32"
	}
	return "float16"
}

// ParseDType reads a dtype written the safetensors way (F16, BF16, F32) or the torch
// way (float16, bfloat16, float32, also half and float), ignoring case.
func ParseDType(s string) (DType, error) {
	switch strings.ToLower(s) {
	case "f16", "float16", "half", "fp16":
		return F16, nil
	case "bf16", "bfloat16":
		return BF16, nil
	case "f32", "float32", "float", "fp32":
		return F32, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want f16, bf16 or f32)", s)
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
	DType DType
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
	dst = resize(dst, t.Numel())
	decode(dst, t.Data, t.DType)
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
	dst = resize(dst, cols)
	decode(dst, t.Data[i*rowBytes:(i+1)*rowBytes], t.DType)
	return dst
}

func resize(dst []float32, n int) []float32 {
	if cap(dst) < n {
		return make([]float32, n)
	}
	return dst[:n]
}

// decode converts the little-endian elements of dtype d in src to dst, which holds
// exactly len(src)/d.Size() values.
func decode(dst []float32, src []byte, d DType) {
	switch d {
	case F16:
		half.DecodeF16(dst, src)
	case BF16:
		half.DecodeBF16(dst, src)
	case F32:
		half.DecodeF32(dst, src)
	}
}

// encode converts src to little-endian elements of dtype d in dst, which holds exactly
// len(src)*d.Size() bytes, rounding to nearest with ties to even.
func encode(dst []byte, src []float32, d DType) {
	switch d {
	case F16:
		half.EncodeF16(dst, src)
	case BF16:
		half.EncodeBF16(dst, src)
	case F32:
		half.EncodeF32(dst, src)
	}
}
