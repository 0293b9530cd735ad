package checkpoint

import (
	"encoding/binary"
	"math"
	"testing"
)

// referenceHalf evaluates the binary16 definition directly: (-1)^s * 2^(e-15) *
// (1 + m/1024) for normal numbers, (-1)^s * m * 2^-24 for subnormals.
func referenceHalf(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	e, m := int(h>>10&0x1f), float64(h&0x3ff)
	switch e {
	case 0:
		return sign * math.Ldexp(m, -24)
	case 31:
		if m == 0 {
			return math.Inf(int(sign))
		}
		return math.NaN()
	}
	return sign * math.Ldexp(1+m/1024, e-15)
}

func TestHalfToFloat32MatchesDefinition(t *testing.T) {
	table := halfTable()
	for i := range 1 << 16 {
		h := uint16(i)
		got := halfToFloat32(h)
		if math.Float32bits(table[h]) != math.Float32bits(got) {
			t.Fatalf("table[%#04x] = %v, halfToFloat32 = %v", h, table[h], got)
		}
		want := referenceHalf(h)
		if math.IsNaN(want) {
			// NaN keeps its sign and payload, shifted into the float32 mantissa.
			wantBits := uint32(h&0x8000)<<16 | 0x7f800000 | uint32(h&0x3ff)<<13
			if math.Float32bits(got) != wantBits {
				t.Fatalf("halfToFloat32(%#04x) = %#08x, want NaN %#08x", h, math.Float32bits(got), wantBits)
			}
			continue
		}
		if math.Float32bits(got) != math.Float32bits(float32(want)) {
			t.Fatalf("halfToFloat32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func TestFloat32ToHalf(t *testing.T) {
	for i := range 1 << 16 {
		h := uint16(i)
		if h&0x7c00 == 0x7c00 && h&0x3ff != 0 {
			continue // NaN: checked below
		}
		if got := float32ToHalf(halfToFloat32(h)); got != h {
			t.Fatalf("float32ToHalf(halfToFloat32(%#04x)) = %#04x", h, got)
		}
	}
	for _, c := range []struct {
		in   float64
		want uint16
	}{
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65519.99, 0x7bff},
		{65520, 0x7c00},                    // halfway to 65536: ties to even, which is infinity
		{1e6, 0x7c00},                      // overflow
		{1 + math.Ldexp(1, -11), 0x3c00},   // halfway between 0x3c00 and 0x3c01: even
		{1 + 3*math.Ldexp(1, -11), 0x3c02}, // halfway between 0x3c01 and 0x3c02: even
		{1 + math.Ldexp(1, -11) + math.Ldexp(1, -20), 0x3c01}, // just above halfway
		{math.Ldexp(1, -14), 0x0400},                          // smallest normal
		{math.Ldexp(1, -24), 0x0001},                          // smallest subnormal
		{math.Ldexp(1, -25), 0x0000},                          // halfway to it: even is zero
		{1.5 * math.Ldexp(1, -25), 0x0001},
		{1023.5 * math.Ldexp(1, -24), 0x0400}, // halfway between 0x03ff and 0x0400: even
		{1022.5 * math.Ldexp(1, -24), 0x03fe}, // halfway between 0x03fe and 0x03ff: even
		{1e-10, 0x0000},
		{-1e-10, 0x8000},
		{math.Inf(1), 0x7c00},
		{math.Inf(-1), 0xfc00},
	} {
		if got := float32ToHalf(float32(c.in)); got != c.want {
			t.Errorf("float32ToHalf(%v) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	nan := float32ToHalf(float32(math.NaN()))
	if nan&0x7c00 != 0x7c00 || nan&0x3ff == 0 {
		t.Errorf("float32ToHalf(NaN) = %#04x, not a NaN", nan)
	}
}

func TestFloat32ToBFloat16(t *testing.T) {
	for i := range 1 << 16 {
		b := uint16(i)
		if b&0x7f80 == 0x7f80 && b&0x7f != 0 {
			continue // NaN
		}
		f := math.Float32frombits(uint32(b) << 16)
		if got := float32ToBFloat16(f); got != b {
			t.Fatalf("float32ToBFloat16(%v) = %#04x, want %#04x", f, got, b)
		}
	}
	for _, c := range []struct {
		in   float64
		want uint16
	}{
		{1, 0x3f80},
		{-2.5, 0xc020},
		{1 + math.Ldexp(1, -8), 0x3f80},   // halfway between 0x3f80 and 0x3f81: even
		{1 + 3*math.Ldexp(1, -8), 0x3f82}, // halfway between 0x3f81 and 0x3f82: even
		{1 + math.Ldexp(1, -8) + math.Ldexp(1, -20), 0x3f81},
	} {
		if got := float32ToBFloat16(float32(c.in)); got != c.want {
			t.Errorf("float32ToBFloat16(%v) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	if got := float32ToBFloat16(float32(math.NaN())); got&0x7f80 != 0x7f80 || got&0x7f == 0 {
		t.Errorf("float32ToBFloat16(NaN) = %#04x, not a NaN", got)
	}
}

// handTensor is [[1, -2, 0.5], [65280, 2^-24, -0]] in dtype d (values exact in all
// three), bytes written out by hand for F16 and BF16.
func handTensor(t *testing.T, d DType) *Tensor {
	t.Helper()
	var bits []uint32
	switch d {
	case F16:
		bits = []uint32{0x3c00, 0xc000, 0x3800, 0x7bf8, 0x0001, 0x8000}
	case BF16:
		bits = []uint32{0x3f80, 0xc000, 0x3f00, 0x477f, 0x3380, 0x8000}
	case F32:
		for _, v := range []float32{1, -2, 0.5, 65280, 1.0 / (1 << 24), float32(math.Copysign(0, -1))} {
			bits = append(bits, math.Float32bits(v))
		}
	}
	var data []byte
	for _, b := range bits {
		if d == F32 {
			data = binary.LittleEndian.AppendUint32(data, b)
		} else {
			data = binary.LittleEndian.AppendUint16(data, uint16(b))
		}
	}
	return &Tensor{Name: "hand", DType: d, Shape: []int{2, 3}, Data: data}
}

func TestTensorRowAndFloat32(t *testing.T) {
	want := []float32{1, -2, 0.5, 65280, 1.0 / (1 << 24), float32(math.Copysign(0, -1))}
	for _, d := range []DType{F16, BF16, F32} {
		tensor := handTensor(t, d)
		all := tensor.Float32(nil)
		for i := range want {
			if math.Float32bits(all[i]) != math.Float32bits(want[i]) {
				t.Errorf("%v: Float32()[%d] = %v, want %v", d, i, all[i], want[i])
			}
		}
		dst := make([]float32, 1, 8)
		row := tensor.Row(1, dst)
		if len(row) != 3 || &row[0] != &dst[:1][0] {
			t.Errorf("%v: Row(1, dst) has length %d and did not reuse dst", d, len(row))
		}
		for i := range row {
			if math.Float32bits(row[i]) != math.Float32bits(want[3+i]) {
				t.Errorf("%v: Row(1)[%d] = %v, want %v", d, i, row[i], want[3+i])
			}
		}
	}
}

func TestRowPanicsOutOfRange(t *testing.T) {
	tensor := handTensor(t, F16)
	for _, i := range []int{-1, 2} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Row(%d) of a 2-row tensor did not panic", i)
				}
			}()
			tensor.Row(i, nil)
		}()
	}
}

func TestPositionRow(t *testing.T) {
	const maxPositions = 4
	var data []byte
	for r := range maxPositions + PositionOffset {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(r)))
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(float32(-r)))
	}
	w := Weights{EmbedPositions: &Tensor{DType: F32, Shape: []int{maxPositions + PositionOffset, 2}, Data: data}}
	for p := range maxPositions {
		row := w.PositionRow(p, nil)
		if row[0] != float32(p+2) || row[1] != float32(-p-2) {
			t.Errorf("PositionRow(%d) = %v, want row %d = [%d %d]", p, row, p+2, p+2, -p-2)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("PositionRow(max_position_embeddings) did not panic")
		}
	}()
	w.PositionRow(maxPositions, nil)
}

func TestParseDType(t *testing.T) {
	for in, want := range map[string]DType{"f16": F16, "float16": F16, "BF16": BF16, "bfloat16": BF16, "F32": F32, "float32": F32} {
		if got, err := ParseDType(in); err != nil || got != want {
			t.Errorf("ParseDType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := ParseDType("int8"); err == nil {
		t.Error("ParseDType(int8) succeeded")
	}
}

func BenchmarkRowF16(b *testing.B) {
	const rows, cols = 64, 4096
	data := make([]byte, rows*cols*2)
	for i := range rows * cols {
		binary.LittleEndian.PutUint16(data[2*i:], float32ToHalf(float32(i%1000)/1000))
	}
	tensor := &Tensor{DType: F16, Shape: []int{rows, cols}, Data: data}
	dst := make([]float32, cols)
	b.SetBytes(cols * 2)
	for i := 0; b.Loop(); i++ {
		dst = tensor.Row(i%rows, dst)
	}
}
