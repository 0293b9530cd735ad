package kvtrace

import "github.com/kvsim/kvsim/internal/half"

// decodeFloats converts little-endian elements of dtype in src to dst, which holds
// exactly len(src)/dtype.size() values.
func decodeFloats(dst []float32, src []byte, dtype DType) {
	switch dtype {
	case F16:
		half.DecodeF16(dst, src)
	case BF16:
		half.DecodeBF16(dst, src)
	case F32:
		half.DecodeF32(dst, src)
	}
}

// encodeFloats converts src to little-endian elements of dtype in dst, which holds
// exactly len(src)*dtype.size() bytes.
func encodeFloats(dst []byte, src []float32, dtype DType) {
	switch dtype {
	case F16:
		half.EncodeF16(dst, src)
	case BF16:
		half.EncodeBF16(dst, src)
	case F32:
		half.EncodeF32(dst, src)
	}
}
