package checkpoint

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
)

// handTensor is [[1, -2, 0.5], [65280, 2^-24, -0]] in dtype d (values exact in all
// three), bytes written out by hand for F16 and BF16.
func handTensor(t *testing.T, d half.DType) *Tensor {
	t.Helper()
	var bits []uint32
	switch d {
	case half.F16:
		bits = []uint32{0x3c00, 0xc000, 0x3800, 0x7bf8, 0x0001, 0x8000}
	case half.BF16:
		bits = []uint32{0x3f80, 0xc000, 0x3f00, 0x477f, 0x3380, 0x8000}
	case half.F32:
		for _, v := range []float32{1, -2, 0.5, 65280, 1.0 / (1 << 24), float32(math.Copysign(0, -1))} {
			bits = append(bits, math.Float32bits(v))
		}
	}
	var data []byte
	for _, b := range bits {
		if d == half.F32 {
			data = binary.LittleEndian.AppendUint32(data, b)
		} else {
			data = binary.LittleEndian.AppendUint16(data, uint16(b))
		}
	}
	return &Tensor{Name: "hand", DType: d, Shape: []int{2, 3}, Data: data}
}

func TestTensorRowAndFloat32(t *testing.T) {
	want := []float32{1, -2, 0.5, 65280, 1.0 / (1 << 24), float32(math.Copysign(0, -1))}
	for _, d := range []half.DType{half.F16, half.BF16, half.F32} {
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
	tensor := handTensor(t, half.F16)
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
	w := Weights{EmbedPositions: &Tensor{DType: half.F32, Shape: []int{maxPositions + PositionOffset, 2}, Data: data}}
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
	for in, want := range map[string]half.DType{"f16": half.F16, "float16": half.F16, "BF16": half.BF16, "bfloat16": half.BF16, "F32": half.F32, "float32": half.F32} {
		if got, err := half.ParseDType(in); err != nil || got != want {
			t.Errorf("half.ParseDType(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := half.ParseDType("int8"); err == nil {
		t.Error("half.ParseDType(int8) succeeded")
	}
}

func BenchmarkRowF16(b *testing.B) {
	const rows, cols = 64, 4096
	data := make([]byte, rows*cols*2)
	for i := range rows * cols {
		binary.LittleEndian.PutUint16(data[2*i:], half.Float32ToHalf(float32(i%1000)/1000))
	}
	tensor := &Tensor{DType: half.F16, Shape: []int{rows, cols}, Data: data}
	dst := make([]float32, cols)
	b.SetBytes(cols * 2)
	for i := 0; b.Loop(); i++ {
		dst = tensor.Row(i%rows, dst)
	}
}
