package half

import (
	"fmt"
	"strings"
)

// DType is the element type of a float tensor in a trace or a checkpoint.
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

// Size is the number of bytes of one element, 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F16, BF16:
		return 2
	case F32:
		return 4
	}
	return 0
}

// LookupDType reads a dtype spelled exactly as safetensors spells it.
func LookupDType(name string) (DType, bool) {
	for _, d := range []DType{F16, BF16, F32} {
		if d.String() == name {
			return d, true
		}
	}
	return 0, false
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

// Decode converts the little-endian elements of d in src to dst, which holds
// exactly len(src)/d.Size() values.
func (d DType) Decode(dst []float32, src []byte) {
	switch d {
	case F16:
		DecodeF16(dst, src)
	case BF16:
		DecodeBF16(dst, src)
	case F32:
		DecodeF32(dst, src)
	}
}

// DecodeFinite is Decode, and returns the index of the first NaN or ±Inf in dst, or
// -1 when every value is finite. The hardware path for f16 tells whether its part
// held any, so only the rest is scanned.
func (d DType) DecodeFinite(dst []float32, src []byte) int {
	checked := 0
	if d == F16 {
		src = src[:2*len(dst)]
		checked = decodeF16Fast(dst, src)
		decodeF16Table(dst[checked:], src[2*checked:])
	} else {
		d.Decode(dst, src)
	}
	for i, x := range dst[checked:] {
		if x-x != 0 { // NaN for NaN and ±Inf, 0 for every finite x
			return checked + i
		}
	}
	return -1
}

// Encode converts src to little-endian elements of d in dst, which holds exactly
// len(src)*d.Size() bytes, rounding to nearest with ties to even.
func (d DType) Encode(dst []byte, src []float32) {
	switch d {
	case F16:
		EncodeF16(dst, src)
	case BF16:
		EncodeBF16(dst, src)
	case F32:
		EncodeF32(dst, src)
	}
}
