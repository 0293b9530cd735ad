package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"sync"
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
		table := halfTable()
		for i := range dst {
			dst[i] = table[binary.LittleEndian.Uint16(src[2*i:])]
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	}
}

// encode converts src to little-endian elements of dtype d in dst, which holds exactly
// len(src)*d.Size() bytes, rounding to nearest with ties to even.
func encode(dst []byte, src []float32, d DType) {
	switch d {
	case F16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], float32ToHalf(v))
		}
	case BF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], float32ToBFloat16(v))
		}
	case F32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	}
}

// halfTable maps every binary16 bit pattern to its float32 value: one lookup per
// element beats the branches of halfToFloat32 when the engine converts weight panels.
// It is built on first use (256 KiB).
var halfTable = sync.OnceValue(func() *[1 << 16]float32 {
	var table [1 << 16]float32
	for h := range table {
		table[h] = halfToFloat32(uint16(h))
	}
	return &table
})

// halfToFloat32 widens a binary16 value; every one, subnormals and NaN payloads
// included, is exactly representable as a float32.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
	// zero or subnormal: mant units of 2^-24
	v := float32(mant) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}

// float32ToHalf narrows f to binary16, rounding to nearest with ties to even. Values
// that round past 65504 become infinity; NaN stays a quiet NaN with its sign.
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // the exponent rebiased for binary16
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// A subnormal half counts units of 2^-24; f is (mant|1<<23) * 2^(e-14) of them.
		// Below 2^-25 (e < -10) it rounds to zero; a round up to 0x400 is the
		// smallest normal, which the encoding handles by itself.
		if e < -10 {
			return sign
		}
		return sign | uint16(roundShift(mant|1<<23, uint(14-e)))
	}
	// Rounding may carry into the exponent, up to infinity, as IEEE 754 wants.
	return sign | uint16(roundShift(uint32(e)<<23|mant, 13))
}

// float32ToBFloat16 narrows f to bfloat16, rounding to nearest with ties to even. NaN
// stays a quiet NaN with its sign.
func float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	return uint16(roundShift(b, 16))
}

// roundShift returns x >> shift rounded to nearest, ties to even.
func roundShift(x uint32, shift uint) uint32 {
	q := x >> shift
	rem := x & (1<<shift - 1)
	half := uint32(1) << (shift - 1)
	if rem > half || rem == half && q&1 == 1 {
		q++
	}
	return q
}
