package half

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// halfValue is the value of a finite binary16 pattern, straight from the IEEE 754
// definition, computed in float64.
func halfValue(h uint16) float64 {
	exp, mant := int(h>>10)&0x1f, float64(h&0x3ff)
	v := math.Ldexp(mant, -24) // subnormal: mant × 2^-24
	if exp != 0 {
		v = math.Ldexp(1024+mant, exp-15-10)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

// bfloat16Value is the value of a finite bfloat16 pattern, computed in float64.
func bfloat16Value(h uint16) float64 {
	exp, mant := int(h>>7)&0xff, float64(h&0x7f)
	v := math.Ldexp(mant, -126-7)
	if exp != 0 {
		v = math.Ldexp(128+mant, exp-127-7)
	}
	if h&0x8000 != 0 {
		v = -v
	}
	return v
}

func TestHalfAllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := HalfToFloat32(h)
		isNaN := h&0x7c00 == 0x7c00 && h&0x3ff != 0
		isInf := h&0x7fff == 0x7c00
		switch {
		case isNaN:
			if !math.IsNaN(float64(f)) {
				t.Errorf("HalfToFloat32(%#04x) = %v, want NaN", h, f)
			}
		case isInf:
			if !math.IsInf(float64(f), 0) || math.Signbit(float64(f)) != (h&0x8000 != 0) {
				t.Errorf("HalfToFloat32(%#04x) = %v, want signed infinity", h, f)
			}
		default:
			want := halfValue(h)
			if float64(f) != want || math.Signbit(float64(f)) != math.Signbit(want) {
				t.Errorf("HalfToFloat32(%#04x) = %v, want %v", h, f, want)
			}
		}
		// Round trip is exact, NaN payloads included.
		if back := Float32ToHalf(f); back != h {
			t.Errorf("Float32ToHalf(HalfToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

func TestBFloat16AllPatterns(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		f := BFloat16ToFloat32(h)
		isNaN := h&0x7f80 == 0x7f80 && h&0x7f != 0
		if isNaN != math.IsNaN(float64(f)) {
			t.Errorf("BFloat16ToFloat32(%#04x) = %v, NaN-ness differs", h, f)
		}
		if !isNaN && h&0x7fff != 0x7f80 {
			if want := bfloat16Value(h); float64(f) != want || math.Signbit(float64(f)) != math.Signbit(want) {
				t.Errorf("BFloat16ToFloat32(%#04x) = %v, want %v", h, f, want)
			}
		}
		if back := Float32ToBFloat16(f); back != h {
			t.Errorf("Float32ToBFloat16(BFloat16ToFloat32(%#04x)) = %#04x", h, back)
		}
	}
}

func TestFloat32ToHalfCases(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{0.5, 0x3800},
		{65504, 0x7bff},                         // largest finite half
		{65519, 0x7bff},                         // below the midpoint to 65536
		{65520, 0x7c00},                         // the midpoint: ties to even (65536, i.e. infinity)
		{0x1p-24, 0x0001},                       // smallest subnormal
		{0x1p-25, 0x0000},                       // half of it: a tie, to the even 0
		{0x1.8p-25, 0x0001},                     // above the tie
		{0x3p-25, 0x0002},                       // 1.5 × 2^-24: a tie, to the even 2
		{0x1p-14, 0x0400},                       // smallest normal
		{0x3ffp-24, 0x03ff},                     // largest subnormal
		{0x7ffp-25, 0x0400},                     // rounds up out of the subnormals
		{1 + 0x1p-11, 0x3c00},                   // tie between 1 and 1+2^-10: to even 1
		{1 + 0x3p-11, 0x3c02},                   // tie between 1+2^-10 and 1+2^-9: to even
		{1 + 0x1p-11 + 0x1p-20, 0x3c01},         // just above a tie
		{float32(math.Copysign(0, -1)), 0x8000}, // -0
		{float32(math.Inf(1)), 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{1e10, 0x7c00},
		{1e-30, 0x0000},
		{math.Float32frombits(0x7fc00000), 0x7e00}, // the quiet NaN
		{math.Float32frombits(0x7f800001), 0x7e00}, // payload only in dropped bits: still NaN
		{math.Float32frombits(0xffc00000), 0xfe00},
	}
	for _, c := range cases {
		if got := Float32ToHalf(c.in); got != c.want {
			t.Errorf("Float32ToHalf(%v [%#08x]) = %#04x, want %#04x", c.in, math.Float32bits(c.in), got, c.want)
		}
	}
}

func TestFloat32ToBFloat16Cases(t *testing.T) {
	cases := []struct {
		in   float32
		want uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{1 + 0x1p-8, 0x3f80},              // tie: to even 1
		{1 + 0x3p-8, 0x3f82},              // tie: to even
		{1 + 0x1p-8 + 0x1p-20, 0x3f81},    // just above a tie
		{math.MaxFloat32, 0x7f80},         // beyond the largest bfloat16's midpoint
		{0x1.fep127, 0x7f7f},              // largest finite bfloat16
		{math.Float32frombits(1), 0x0000}, // smallest float32 subnormal
		{float32(math.Inf(-1)), 0xff80},
		{math.Float32frombits(0x7fc00000), 0x7fc0},
		{math.Float32frombits(0x7f800001), 0x7fc0}, // payload only in dropped bits: still NaN
	}
	for _, c := range cases {
		if got := Float32ToBFloat16(c.in); got != c.want {
			t.Errorf("Float32ToBFloat16(%v [%#08x]) = %#04x, want %#04x", c.in, math.Float32bits(c.in), got, c.want)
		}
	}
}

// nearest rounds |f| to the closest of the ascending positive finite patterns
// 0..last (valued by value), ties to the even pattern, with last+1 standing for
// infinity valued at the next power of two, as IEEE 754 rounds on overflow.
func nearest(f float32, last uint16, inf float64, value func(uint16) float64) uint16 {
	x := math.Abs(float64(f))
	val := func(h uint16) float64 {
		if h > last {
			return inf
		}
		return value(h)
	}
	var sign uint16
	if math.Signbit(float64(f)) {
		sign = 0x8000
	}
	if x >= inf {
		return sign | (last + 1)
	}
	// the first pattern whose value exceeds x, minus one
	lo := uint16(sort.Search(int(last)+2, func(i int) bool { return val(uint16(i)) > x }) - 1)
	below, above := x-val(lo), val(lo+1)-x
	if above < below || above == below && lo&1 == 1 {
		lo++
	}
	return sign | lo
}

// randomFloats returns n float32s spread over magnitudes from 2^-minExp to 2^maxExp,
// both signs, plus random bit patterns, from a fixed seed.
func randomFloats(n, minExp, maxExp int) []float32 {
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]float32, 0, n)
	for range n / 2 {
		e := minExp + rng.IntN(maxExp-minExp+1)
		f := float32(math.Ldexp(1+rng.Float64(), e))
		if rng.IntN(2) == 0 {
			f = -f
		}
		out = append(out, f)
	}
	for len(out) < n {
		if f := math.Float32frombits(rng.Uint32()); !math.IsNaN(float64(f)) {
			out = append(out, f)
		}
	}
	return out
}

func TestFloat32ToHalfMatchesNearest(t *testing.T) {
	for _, f := range randomFloats(100_000, -27, 17) {
		want := nearest(f, 0x7bff, 65536, halfValue)
		if got := Float32ToHalf(f); got != want {
			t.Fatalf("Float32ToHalf(%v [%#08x]) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

func TestFloat32ToBFloat16MatchesNearest(t *testing.T) {
	for _, f := range randomFloats(100_000, -135, 127) {
		want := nearest(f, 0x7f7f, math.Ldexp(1, 128), bfloat16Value)
		if got := Float32ToBFloat16(f); got != want {
			t.Fatalf("Float32ToBFloat16(%v [%#08x]) = %#04x, want %#04x", f, math.Float32bits(f), got, want)
		}
	}
}

// TestDecodeLengths covers the unrolled loops' tails: every length from 0 to 9,
// checked element by element against the scalar conversions, and the round trip.
func TestDecodeLengths(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	formats := []struct {
		name   string
		size   int
		widen  func(b []byte) float32
		decode func([]float32, []byte)
		encode func([]byte, []float32)
	}{
		{"f16", 2, func(b []byte) float32 { return HalfToFloat32(uint16(b[0]) | uint16(b[1])<<8) }, DecodeF16, EncodeF16},
		{"bf16", 2, func(b []byte) float32 { return BFloat16ToFloat32(uint16(b[0]) | uint16(b[1])<<8) }, DecodeBF16, EncodeBF16},
		{"f32", 4, func(b []byte) float32 {
			return math.Float32frombits(uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24)
		}, DecodeF32, EncodeF32},
	}
	for _, f := range formats {
		for n := range 10 {
			src := make([]byte, n*f.size)
			for i := range src {
				src[i] = byte(rng.Uint32())
			}
			dst := make([]float32, n)
			f.decode(dst, src)
			for i, got := range dst {
				if want := f.widen(src[i*f.size:]); math.Float32bits(got) != math.Float32bits(want) {
					t.Errorf("%s n=%d: element %d = %#08x, want %#08x", f.name, n, i, math.Float32bits(got), math.Float32bits(want))
				}
			}
			back := make([]byte, len(src))
			f.encode(back, dst)
			if string(back) != string(src) {
				t.Errorf("%s n=%d: encode(decode(% x)) = % x", f.name, n, src, back)
			}
		}
	}
}

// TestDecodeF16Bulk widens every finite binary16 pattern in one slice (the hardware
// path where the CPU has one) and checks each against HalfToFloat32, bit for bit;
// then the same slice with one signalling NaN, which must keep its payload, and
// lengths around the 16-element blocks.
func TestDecodeF16Bulk(t *testing.T) {
	var halves []uint16
	for i := range 1 << 16 {
		if h := uint16(i); h&0x7c00 != 0x7c00 {
			halves = append(halves, h)
		}
	}
	check := func(name string, halves []uint16) {
		src := make([]byte, 2*len(halves))
		for i, h := range halves {
			src[2*i], src[2*i+1] = byte(h), byte(h>>8)
		}
		dst := make([]float32, len(halves))
		DecodeF16(dst, src)
		for i, h := range halves {
			if got, want := math.Float32bits(dst[i]), math.Float32bits(HalfToFloat32(h)); got != want {
				t.Fatalf("%s: element %d (%#04x) = %#08x, want %#08x", name, i, h, got, want)
			}
		}
	}
	check("finite", halves)
	check("a signalling NaN", append(halves[:1000:1000], 0x7c01, 0xfd55))
	for _, n := range []int{15, 16, 17, 31, 32, 33, 47} {
		check(fmt.Sprintf("n=%d", n), halves[3000:3000+n])
	}
}

// TestDecodeFinite finds the first non-finite value wherever it is, in the blocks
// the hardware path widens or in the tail after them, for every format.
func TestDecodeFinite(t *testing.T) {
	for _, d := range []DType{F16, BF16, F32} {
		for _, bad := range []int{-1, 0, 5, 17, 35, 39} {
			for _, value := range []float32{float32(math.Inf(-1)), float32(math.NaN())} {
				vals := make([]float32, 40)
				for i := range vals {
					vals[i] = float32(i) / 8
				}
				if bad >= 0 {
					vals[bad] = value
					vals[min(bad+2, 39)] = value // a later one is not the first
				}
				src := make([]byte, len(vals)*d.Size())
				d.Encode(src, vals)
				dst := make([]float32, len(vals))
				if got := d.DecodeFinite(dst, src); got != bad {
					t.Errorf("%v, %v at %d: first non-finite at %d", d, value, bad, got)
				}
				if bad < 0 && !slices.Equal(dst, vals) {
					t.Errorf("%v: decoded %v, want %v", d, dst, vals)
				}
			}
		}
	}
}
