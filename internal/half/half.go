// Package half converts between float32 and the 16-bit float formats that traces and
// checkpoints store: IEEE 754 binary16 (f16) and bfloat16, rounding to nearest with
// ties to even. The bulk converters are on the hot paths of replay (reading traces)
// and of the OPT engine (widening weight panels).
package half

import (
	"encoding/binary"
	"math"
	"sync"
)

// HalfToFloat32 widens an IEEE 754 binary16 value. Every half value, subnormals and
// NaN payloads included, is exactly representable as a float32.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // infinity or NaN; the payload moves to the top of the float32 mantissa
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal: rebias the exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	default: // zero or subnormal: mant × 2^-24, exact in float32
		return math.Float32frombits(sign | math.Float32bits(float32(mant)*0x1p-24))
	}
}

// Float32ToHalf narrows f to binary16, rounding to nearest with ties to even. Values
// that round past the largest half (65504) become infinity; NaN stays NaN, keeping
// its sign and the top of its payload.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		payload := uint16(mant >> 13)
		if payload == 0 { // the payload lived only in the dropped bits; keep it a NaN
			payload = 0x200
		}
		return sign | 0x7c00 | payload
	}
	halfExp := exp - 127 + 15
	if halfExp >= 0x1f {
		return sign | 0x7c00
	}
	if halfExp <= 0 {
		// The result is a half subnormal (or zero), in units of 2^-24. Below 2^-25
		// (halfExp < -10) everything rounds to zero; 2^-25 itself is a tie and goes to
		// the even 0.
		if halfExp < -10 {
			return sign
		}
		significand := mant | 0x800000
		shift := uint(14 - halfExp)
		return sign | uint16(roundShift(significand, shift))
	}
	// Normal. A rounding carry out of the mantissa correctly bumps the exponent, up to
	// infinity.
	return sign | uint16(roundShift(uint32(halfExp)<<23|mant, 13))
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

// BFloat16ToFloat32 widens a bfloat16 value, which is the top half of a float32.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBFloat16 narrows f to bfloat16, rounding to nearest with ties to even. NaN
// stays NaN, keeping its sign and the top of its payload.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		h := uint16(b >> 16)
		if h&0x7f == 0 { // the payload lived only in the dropped bits; keep it a NaN
			h |= 0x40
		}
		return h
	}
	return uint16(roundShift(b, 16))
}

// halfTable maps every binary16 bit pattern to its float32 value; a lookup beats the
// branches of HalfToFloat32 on hot paths. It is built on first use (256 KiB).
var halfTable = sync.OnceValue(func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for h := range t {
		t[h] = HalfToFloat32(uint16(h))
	}
	return &t
})

// DecodeF16 widens the little-endian binary16 values in src into dst, which holds
// exactly len(src)/2 values.
func DecodeF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	n := decodeF16Fast(dst, src)
	decodeF16Table(dst[n:], src[2*n:])
}

// decodeF16Table is DecodeF16 by table lookup.
func decodeF16Table(dst []float32, src []byte) {
	table := halfTable()
	// Four elements per 8-byte load: twice the speed of one load each.
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		x := binary.LittleEndian.Uint64(src[2*i:])
		d := dst[i : i+4 : i+4]
		d[0] = table[uint16(x)]
		d[1] = table[uint16(x>>16)]
		d[2] = table[uint16(x>>32)]
		d[3] = table[uint16(x>>48)]
	}
	for ; i < len(dst); i++ {
		dst[i] = table[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

// DecodeBF16 widens the little-endian bfloat16 values in src into dst.
func DecodeBF16(dst []float32, src []byte) {
	src = src[:2*len(dst)]
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		x := binary.LittleEndian.Uint64(src[2*i:])
		d := dst[i : i+4 : i+4]
		d[0] = math.Float32frombits(uint32(x) << 16)
		d[1] = math.Float32frombits(uint32(x>>16) << 16)
		d[2] = math.Float32frombits(uint32(x>>32) << 16)
		d[3] = math.Float32frombits(uint32(x>>48) << 16)
	}
	for ; i < len(dst); i++ {
		dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
	}
}

// DecodeF32 reads little-endian float32 values from src into dst.
func DecodeF32(dst []float32, src []byte) {
	src = src[:4*len(dst)]
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

// EncodeF16 narrows src into little-endian binary16 values in dst (2·len(src) bytes).
func EncodeF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToHalf(f))
	}
}

// EncodeBF16 narrows src into little-endian bfloat16 values in dst.
func EncodeBF16(dst []byte, src []float32) {
	dst = dst[:2*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBFloat16(f))
	}
}

// EncodeF32 writes src as little-endian float32 values into dst.
func EncodeF32(dst []byte, src []float32) {
	dst = dst[:4*len(src)]
	for i, f := range src {
		binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(f))
	}
}
