package kvtrace

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
)

// smallMeta is a trace small enough to check by hand: 7 tokens, so 28 bytes of
// tokens, and layer tensors of 2×7×4 = 56 elements.
func smallMeta(hasV bool) Meta {
	return Meta{
		Model: "synthetic/tiny", Layers: 3, Heads: 2, HeadDim: 4, PromptLen: 5, GenLen: 2,
		Source: SourceSynthetic, SampleID: "sample-0", HasV: hasV,
		Prompt: "The cat <sat> & \"purred\"", Generated: "ok",
	}
}

var smallTokens = []int32{2, 133, -1, 1 << 30, 50264, 7, 0}

// layerValues fills one tensor with multiples of 1/4 in [-7.5, 7.5], exact in every
// dtype, different for each layer and kind.
func layerValues(m Meta, layer int, kind Kind) []float32 {
	values := make([]float32, m.Heads*m.Tokens()*m.HeadDim)
	for i := range values {
		values[i] = float32((i*7+layer*13+int(kind)*5)%61-30) / 4
	}
	return values
}

// specialValues are exact in every dtype and must survive a round trip bit for bit
// (NaN up to its payload).
var specialValues = []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.Copysign(0, -1)),
	float32(math.NaN()), 0x1p-14, 61440}

func smallLayer(m Meta) func(l int) (q, k, v []float32, err error) {
	return func(l int) (q, k, v []float32, err error) {
		q, k = layerValues(m, l, Q), layerValues(m, l, K)
		if l == 0 {
			copy(q, specialValues)
		}
		if m.HasV {
			v = layerValues(m, l, V)
		}
		return q, k, v, nil
	}
}

// writeSmall writes the small trace and returns its path.
func writeSmall(t testing.TB, dtype half.DType, hasV bool) string {
	t.Helper()
	m := smallMeta(hasV)
	path := filepath.Join(t.TempDir(), "small.safetensors")
	if err := Write(path, m, dtype, smallTokens, smallLayer(m)); err != nil {
		t.Fatal(err)
	}
	return path
}

func sameFloat(a, b float32) bool {
	if math.IsNaN(float64(a)) {
		return math.IsNaN(float64(b))
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

func TestRoundTrip(t *testing.T) {
	for _, dtype := range []half.DType{half.F16, half.BF16, half.F32} {
		for _, hasV := range []bool{true, false} {
			path := writeSmall(t, dtype, hasV)
			tr, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			want := smallMeta(hasV)
			if !reflect.DeepEqual(tr.Meta(), want) || tr.HasV() != hasV || tr.DType() != dtype || tr.Name() != path {
				t.Errorf("%s hasV=%v: got meta %+v dtype %s name %s", dtype, hasV, tr.Meta(), tr.DType(), tr.Name())
			}
			if !slices.Equal(tr.Tokens(), smallTokens) {
				t.Errorf("%s: tokens %v, want %v", dtype, tr.Tokens(), smallTokens)
			}
			var buf []float32
			for layer := range want.Layers {
				q, k, v, _ := smallLayer(want)(layer)
				for _, c := range []struct {
					kind Kind
					want []float32
				}{{Q, q}, {K, k}, {V, v}}[:len(want.kinds())] {
					buf, err = tr.Read(c.kind, layer, buf)
					// Layer 0's q starts with specialValues: +Inf at head 0, token 0, dim 0.
					if layer == 0 && c.kind == Q {
						if want := path + ": tensor layer.0.q (layer 0): +Inf at head 0, token 0, dim 0"; err == nil || !strings.Contains(err.Error(), want) {
							t.Errorf("%s: reading non-finite values = %v, want an error with %q", dtype, err, want)
						}
					} else if err != nil {
						t.Fatal(err)
					}
					if !slices.EqualFunc(buf, c.want, sameFloat) {
						t.Errorf("%s: layer %d %v = %v, want %v", dtype, layer, c.kind, buf, c.want)
					}
				}
			}
			if err := tr.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// TestRoundTripRounds checks that values the dtype cannot hold come back rounded as
// the conversion functions round them.
func TestRoundTripRounds(t *testing.T) {
	m := smallMeta(false)
	m.Layers = 1
	q := make([]float32, m.Heads*m.Tokens()*m.HeadDim)
	for i := range q {
		q[i] = 1 + float32(i)*0x1p-12 // steps of a quarter of a half ulp at 1
	}
	for _, c := range []struct {
		dtype half.DType
		round func(float32) float32
	}{
		{half.F16, func(f float32) float32 { return half.HalfToFloat32(half.Float32ToHalf(f)) }},
		{half.BF16, func(f float32) float32 { return half.BFloat16ToFloat32(half.Float32ToBFloat16(f)) }},
		{half.F32, func(f float32) float32 { return f }},
	} {
		path := filepath.Join(t.TempDir(), "r.safetensors")
		err := Write(path, m, c.dtype, smallTokens, func(int) (_, _, _ []float32, _ error) { return q, q, nil, nil })
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tr.Read(K, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range q {
			if got[i] != c.round(q[i]) {
				t.Fatalf("%s: element %d = %v, want %v", c.dtype, i, got[i], c.round(q[i]))
			}
		}
		// 1 + 2^-11 (i = 2) is a tie in F16: to even, 1.
		if c.dtype == half.F16 && (got[2] != 1 || got[6] != 1+0x1p-9) {
			t.Errorf("F16 ties: got %v and %v, want 1 and 1+2^-9", got[2], got[6])
		}
		tr.Close()
	}
}

func TestHeaderBytes(t *testing.T) {
	path := writeSmall(t, half.F16, true)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(file)
	if (8+n)%8 != 0 {
		t.Errorf("data starts at %d, not 8-byte aligned", 8+n)
	}
	header := file[8 : 8+n]
	if trimmed := bytes.TrimRight(header, " "); trimmed[len(trimmed)-1] != '}' || len(header)-len(trimmed) >= 8 {
		t.Errorf("header should be JSON padded with fewer than 8 spaces, ends %q", header[len(header)-10:])
	}
	var parsed map[string]json.RawMessage
	if err := json.Unmarshal(header, &parsed); err != nil {
		t.Fatal(err)
	}
	var metadata map[string]string
	if err := json.Unmarshal(parsed["__metadata__"], &metadata); err != nil {
		t.Fatal(err)
	}
	wantMeta := map[string]string{
		"format": "kvtrace", "version": "1", "model": "synthetic/tiny", "layers": "3", "heads": "2",
		"head_dim": "4", "prompt_len": "5", "gen_len": "2", "source": "synthetic", "sample_id": "sample-0",
		"prompt": "The cat <sat> & \"purred\"", "generated": "ok",
	}
	if !mapsEqual(metadata, wantMeta) {
		t.Errorf("metadata %v, want %v", metadata, wantMeta)
	}
	// tokens: 7 × 4 bytes; each layer tensor: 2×7×4 elements × 2 bytes = 112 bytes.
	type entry struct {
		DType       string `json:"dtype"`
		Shape       []int  `json:"shape"`
		DataOffsets []int  `json:"data_offsets"`
	}
	want := map[string]entry{"tokens": {"I32", []int{7}, []int{0, 28}}}
	offset := 28
	for layer := range 3 {
		for _, kind := range "qkv" {
			want[tensorName(Kind(kind), layer)] = entry{"F16", []int{2, 7, 4}, []int{offset, offset + 112}}
			offset += 112
		}
	}
	if len(parsed) != len(want)+1 {
		t.Errorf("header has %d keys, want %d", len(parsed), len(want)+1)
	}
	for name, w := range want {
		var got entry
		if err := json.Unmarshal(parsed[name], &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) || !slices.Equal(got.DataOffsets, w.DataOffsets) {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	data := file[8+n:]
	if len(data) != 28+9*112 {
		t.Errorf("data buffer has %d bytes, want %d", len(data), 28+9*112)
	}
	if got := int32(binary.LittleEndian.Uint32(data[8:])); got != -1 {
		t.Errorf("token 2 stored as %d, want -1", got)
	}
	// layer.0.q starts with +Inf (0x7c00), -Inf (0xfc00), -0 (0x8000).
	if got := data[28:34]; !bytes.Equal(got, []byte{0x00, 0x7c, 0x00, 0xfc, 0x00, 0x80}) {
		t.Errorf("layer.0.q starts % x, want 00 7c 00 fc 00 80", got)
	}
	// The tensors appear in file order in the header too, for people reading it.
	if i, j := bytes.Index(header, []byte(`"layer.0.v"`)), bytes.Index(header, []byte(`"layer.1.q"`)); i > j {
		t.Errorf("layer.0.v listed after layer.1.q")
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// splitFile returns a trace's header, decoded with numbers kept exact, and its data.
func splitFile(t testing.TB, file []byte) (map[string]any, []byte) {
	t.Helper()
	n := binary.LittleEndian.Uint64(file)
	dec := json.NewDecoder(bytes.NewReader(file[8 : 8+n]))
	dec.UseNumber()
	var header map[string]any
	if err := dec.Decode(&header); err != nil {
		t.Fatal(err)
	}
	return header, file[8+n:]
}

func joinFile(header, data []byte) []byte {
	file := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(file, header...), data...)
}

// editHeader returns file with its JSON header changed by edit.
func editHeader(edit func(h map[string]any)) func(testing.TB, []byte) []byte {
	return func(t testing.TB, file []byte) []byte {
		header, data := splitFile(t, file)
		edit(header)
		js, err := json.Marshal(header)
		if err != nil {
			t.Fatal(err)
		}
		return joinFile(js, data)
	}
}

// editRawHeader returns file with its header text changed by edit.
func editRawHeader(edit func(h string) string) func(testing.TB, []byte) []byte {
	return func(t testing.TB, file []byte) []byte {
		n := binary.LittleEndian.Uint64(file)
		return joinFile([]byte(edit(string(file[8:8+n]))), file[8+n:])
	}
}

func setMeta(key, value string) func(testing.TB, []byte) []byte {
	return editHeader(func(h map[string]any) { h["__metadata__"].(map[string]any)[key] = value })
}

func deleteMeta(key string) func(testing.TB, []byte) []byte {
	return editHeader(func(h map[string]any) { delete(h["__metadata__"].(map[string]any), key) })
}

func setField(tensor, field string, value any) func(testing.TB, []byte) []byte {
	return editHeader(func(h map[string]any) { h[tensor].(map[string]any)[field] = value })
}

func deleteTensor(names ...string) func(testing.TB, []byte) []byte {
	return editHeader(func(h map[string]any) {
		for _, name := range names {
			delete(h, name)
		}
	})
}

// smallOffsets are the data_offsets of the index'th layer tensor of the small F16
// trace: after 28 bytes of tokens, 112 bytes per tensor.
func smallOffsets(index int) [2]int {
	return [2]int{28 + 112*index, 28 + 112*(index+1)}
}

// corruption damages the small F16 trace with V in one way; Open must fail with an
// error containing want.
type corruption struct {
	name    string
	corrupt func(testing.TB, []byte) []byte
	want    string
}

// corruptions covers every check Open makes. The fuzz target seeds from them too.
func corruptions() []corruption {
	dataLen := 28 + 9*112
	return []corruption{
		{"empty", func(testing.TB, []byte) []byte { return nil },
			"truncated: file has 0 bytes, fewer than the 8-byte header length"},
		{"short", func(_ testing.TB, f []byte) []byte { return f[:5] },
			"truncated: file has 5 bytes"},
		{"absurd header length", func(testing.TB, []byte) []byte {
			return binary.LittleEndian.AppendUint64(nil, 1<<40)
		}, "header length 1099511627776 is absurd (the limit is 104857600 bytes)"},
		{"header longer than file", func(_ testing.TB, f []byte) []byte {
			return append(binary.LittleEndian.AppendUint64(nil, 5000), f[8:]...)
		}, "truncated: header length says 5000 bytes of header, file has"},
		{"truncated data", func(_ testing.TB, f []byte) []byte { return f[:len(f)-10] },
			"truncated: header says 1036 bytes of data, file has 1026"},
		{"trailing bytes", func(_ testing.TB, f []byte) []byte { return append(f, 1, 2, 3) },
			"3 bytes after the last tensor: header says 1036 bytes of data, file has 1039"},
		{"invalid JSON", editRawHeader(func(h string) string { return "{not json" }),
			"invalid header JSON: invalid character 'n'"},
		{"JSON array", editRawHeader(func(h string) string { return "[]" }),
			"invalid header JSON: want an object, got ["},
		{"duplicate key", editRawHeader(func(h string) string {
			return strings.Replace(h, `"tokens":`, `"tokens":{},"tokens":`, 1)
		}), `invalid header JSON: duplicate key "tokens"`},
		{"garbage after JSON", editRawHeader(func(h string) string { return strings.TrimRight(h, " ") + "x" }),
			"invalid header JSON after the object"},
		{"no metadata", deleteTensor("__metadata__"), "header has no __metadata__ block"},
		{"metadata not strings", editHeader(func(h map[string]any) { h["__metadata__"] = map[string]any{"layers": 3} }),
			"metadata: want an object of strings"},
		{"tensor entry not an object", editHeader(func(h map[string]any) { h["tokens"] = 5 }),
			"tensor tokens: invalid entry"},
		{"missing heads", deleteMeta("heads"), `metadata: missing key "heads"`},
		{"missing format", deleteMeta("format"), `metadata: missing key "format"`},
		{"heads not integer", setMeta("heads", "x"), `metadata heads: "x" is not an integer`},
		{"heads out of range", setMeta("heads", "99999999999999999999"), `metadata heads: "99999999999999999999" is out of range`},
		{"zero heads", setMeta("heads", "0"), "metadata heads: 0, want at least 1"},
		{"negative layers", setMeta("layers", "-1"), "metadata layers: -1, want at least 1"},
		{"zero prompt", setMeta("prompt_len", "0"), "metadata prompt_len: 0, want at least 1"},
		{"wrong format", setMeta("format", "safetensors"), `metadata format: "safetensors", want "kvtrace"`},
		{"wrong version", setMeta("version", "2"), `metadata version: "2", want "1"`},
		{"unknown source", setMeta("source", "tpu"), `metadata source: "tpu", want gpu, cpu or synthetic`},
		{"huge dims", editHeader(func(h map[string]any) {
			md := h["__metadata__"].(map[string]any)
			md["layers"], md["heads"] = "2000000000", "2000000000"
		}), "too large to address"},
		{"unknown tensor", setTensor("layer.0.x", "F16"), `unknown tensor "layer.0.x"`},
		{"layer beyond metadata", setTensor("layer.3.q", "F16"), `unknown tensor "layer.3.q" (a trace of 3 layers`},
		{"non-canonical layer", setTensor("layer.01.q", "F16"), `unknown tensor "layer.01.q"`},
		{"missing q", deleteTensor("layer.2.q"), "missing tensor layer.2.q"},
		{"missing tokens", deleteTensor("tokens"), "missing tensor tokens"},
		{"V missing in one layer", deleteTensor("layer.1.v"),
			"missing tensor layer.1.v, but layer.0.v is present (V must be present for all layers or none)"},
		{"V only in later layers", deleteTensor("layer.0.v"),
			"tensor layer.1.v is present but layer.0.v is not (V must be present for all layers or none)"},
		{"tokens dtype", setField("tokens", "dtype", "F16"), "tensor tokens: dtype F16, want I32"},
		{"unsupported dtype", setField("layer.1.k", "dtype", "F64"), "tensor layer.1.k: dtype F64, want F16, BF16 or F32"},
		{"mixed dtypes", setField("layer.2.k", "dtype", "BF16"),
			"tensor layer.2.k: dtype BF16, but layer.0.q is F16 (all layer tensors share one dtype)"},
		{"wrong shape", setField("layer.1.k", "shape", []int{2, 6, 4}), "tensor layer.1.k: shape [2 6 4], want [2 7 4]"},
		{"zero dim", setField("layer.0.q", "shape", []int{0, 7, 4}), "tensor layer.0.q: shape [0 7 4], want [2 7 4]"},
		{"negative dim", setField("tokens", "shape", []int{-7}), "tensor tokens: shape [-7], want [7]"},
		{"offsets not a pair", setField("tokens", "data_offsets", []int{0, 28, 56}),
			"tensor tokens: data_offsets [0 28 56], want [begin end]"},
		{"reversed offsets", setField("layer.0.k", "data_offsets", []int{252, 140}),
			"tensor layer.0.k: data_offsets [252 140] are not a range"},
		{"wrong byte length", setField("layer.0.q", "data_offsets", []int{28, 100}),
			"tensor layer.0.q: data_offsets [28 100] hold 72 bytes, want 112 (shape [2 7 4] of F16)"},
		{"overlap", setField("layer.0.k", "data_offsets", smallOffsets(0)),
			"tensor layer.0.k: data_offsets [28 140] overlap tensor layer.0.q [28 140]"},
		{"gap", setField("layer.0.q", "data_offsets", []int{36, 148}),
			"tensor layer.0.q: data_offsets [36 148] leave a gap of 8 bytes after tensor tokens [0 28]"},
		{"out of range", setField("layer.2.v", "data_offsets", []int{dataLen + 100, dataLen + 212}),
			"tensor layer.2.v: data_offsets [1136 1248] run past the end of the 1036-byte data buffer"},
		{"unused start", setField("tokens", "data_offsets", []int{4, 32}),
			"tensor tokens: data_offsets [4 32] leave the first 4 bytes of data unused"},
	}
}

func TestOpenRejects(t *testing.T) {
	valid, err := os.ReadFile(writeSmall(t, half.F16, true))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, c := range corruptions() {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("bad-%02d.safetensors", i))
			if err := os.WriteFile(path, c.corrupt(t, slices.Clone(valid)), 0o644); err != nil {
				t.Fatal(err)
			}
			tr, err := Open(path)
			if err == nil {
				tr.Close()
				t.Fatalf("Open succeeded, want error %q", c.want)
			}
			prefix := "kvtrace " + path + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q\nwant %q followed by %q", err, prefix, c.want)
			}
		})
	}
}

// setTensor adds a tensor entry named name, shaped like the small trace's layers.
func setTensor(name, dtype string) func(testing.TB, []byte) []byte {
	return editHeader(func(h map[string]any) {
		h[name] = map[string]any{"dtype": dtype, "shape": []int{2, 7, 4}, "data_offsets": []int{0, 112}}
	})
}

// TestOpenAcceptsAnyTensorOrder: safetensors only asks that the tensors tile the
// data buffer, not that they follow the header's order.
func TestOpenAcceptsAnyTensorOrder(t *testing.T) {
	path := writeSmall(t, half.F16, true)
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Swap the bytes of layer.0.q and layer.0.k, and their offsets.
	q, k := smallOffsets(0), smallOffsets(1)
	header, data := splitFile(t, file)
	header["layer.0.q"].(map[string]any)["data_offsets"] = k
	header["layer.0.k"].(map[string]any)["data_offsets"] = q
	swapped := slices.Clone(data)
	copy(swapped[q[0]:q[1]], data[k[0]:k[1]])
	copy(swapped[k[0]:k[1]], data[q[0]:q[1]])
	js, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, joinFile(js, swapped), 0o644); err != nil {
		t.Fatal(err)
	}
	tr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	got, err := tr.Read(K, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := layerValues(smallMeta(true), 0, K); !slices.Equal(got, want) {
		t.Errorf("layer.0.k = %v, want %v", got, want)
	}
}

func TestOpenFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.safetensors")
	_, err := Open(missing)
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "kvtrace "+missing+": ") {
		t.Errorf("Open(missing) = %v, want a wrapped fs.ErrNotExist naming the file", err)
	}
	_, err = Open(dir)
	if err == nil || !strings.Contains(err.Error(), "kvtrace "+dir+": not a regular file") {
		t.Errorf("Open(dir) = %v, want not a regular file", err)
	}
}

func TestReadErrors(t *testing.T) {
	path := writeSmall(t, half.BF16, false)
	tr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		kind  Kind
		layer int
		want  string
	}{
		{Q, 3, "layer 3 out of range (the trace has 3 layers)"},
		{K, -1, "layer -1 out of range"},
		{V, 0, "the trace has no V tensors"},
		{'x', 0, "unknown tensor kind Kind(0x78)"},
	}
	for _, c := range cases {
		if _, err := tr.Read(c.kind, c.layer, nil); err == nil || !strings.HasPrefix(err.Error(), "kvtrace "+path+": "+c.want) {
			t.Errorf("Read(%v, %d) = %v, want %q", c.kind, c.layer, err, c.want)
		}
	}
	// Read reuses a large enough dst.
	dst := make([]float32, 1000)
	got, err := tr.Read(Q, 1, dst)
	if err != nil || len(got) != 56 || &got[0] != &dst[0] {
		t.Errorf("Read into a 1000-float dst: len %d, same array %v, err %v; want 56, true, nil",
			len(got), len(got) > 0 && &got[0] == &dst[0], err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	if _, err := tr.Read(Q, 0, nil); err == nil || !strings.Contains(err.Error(), "read from a closed trace") {
		t.Errorf("Read after Close = %v, want a closed-trace error", err)
	}
}

// dirEntries lists the names in dir.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestWriterErrors(t *testing.T) {
	m := smallMeta(true)
	dir := t.TempDir()
	path := filepath.Join(dir, "w.safetensors")
	prefix := "kvtrace " + path + ": "

	bad := m
	bad.Heads = 0
	if _, err := Create(path, bad, half.F16); err == nil || err.Error() != prefix+"metadata heads: 0, want at least 1" {
		t.Errorf("Create with 0 heads = %v", err)
	}
	if _, err := Create(path, m, half.DType(9)); err == nil || err.Error() != prefix+`dtype "DType(9)", want F16, BF16 or F32` {
		t.Errorf("Create with an unknown dtype = %v", err)
	}

	w, err := Create(path, m, half.F16)
	if err != nil {
		t.Fatal(err)
	}
	q, k, v, _ := smallLayer(m)(0)
	steps := []struct {
		call func() error
		want string
	}{
		{func() error { return w.WriteLayer(0, q, k, v) }, "WriteLayer(0) before WriteTokens"},
		{func() error { return w.WriteTokens(smallTokens[:3]) }, "WriteTokens: 3 tokens, want 7 (prompt_len 5 + gen_len 2)"},
		{func() error { return w.WriteTokens(smallTokens) }, ""},
		{func() error { return w.WriteTokens(smallTokens) }, "WriteTokens called twice"},
		{func() error { return w.WriteLayer(1, q, k, v) }, "WriteLayer(1): want layer 0 next (layers are written in order)"},
		{func() error { return w.WriteLayer(0, q, k, nil) }, "WriteLayer(0): v is nil, but the metadata has HasV set"},
		{func() error { return w.WriteLayer(0, q, k[1:], v) },
			"WriteLayer(0): k has 55 values, want 56 (heads 2 × tokens 7 × head_dim 4)"},
		{func() error { return w.WriteLayer(0, q, k, v) }, ""},
		{func() error { return w.WriteLayer(1, q, k, v) }, ""},
		{func() error { return w.WriteLayer(2, q, k, v) }, ""},
		{func() error { return w.WriteLayer(3, q, k, v) }, "WriteLayer(3): all 3 layers are already written"},
	}
	for i, s := range steps {
		err := s.call()
		if s.want == "" && err != nil || s.want != "" && (err == nil || err.Error() != prefix+s.want) {
			t.Errorf("step %d: error %v, want %q", i, err, s.want)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTokens(smallTokens); err == nil || err.Error() != prefix+"writer is closed" {
		t.Errorf("WriteTokens after Close = %v", err)
	}

	noV := smallMeta(false)
	w, err = Create(path, noV, half.F16)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.WriteTokens(smallTokens)
	if err := w.WriteLayer(0, q, k, v); err == nil || err.Error() != prefix+"WriteLayer(0): v given, but the metadata has HasV unset" {
		t.Errorf("WriteLayer with unwanted v = %v", err)
	}
}

// TestWriteLayerEncoded: tensors handed over already encoded make the same file,
// byte for byte, as WriteLayer makes from their float32 values, in every dtype; a
// byte count that is no whole number of values, or the wrong number of them, is
// refused.
func TestWriteLayerEncoded(t *testing.T) {
	m := smallMeta(true)
	layer := smallLayer(m)
	for _, dtype := range []half.DType{half.F16, half.BF16, half.F32} {
		want, err := os.ReadFile(writeSmall(t, dtype, true))
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "encoded.safetensors")
		w, err := Create(path, m, dtype)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Abort()
		if err := w.WriteTokens(smallTokens); err != nil {
			t.Fatal(err)
		}
		encode := func(values []float32) []byte {
			b := make([]byte, len(values)*dtype.Size())
			dtype.Encode(b, values)
			return b
		}
		for l := range m.Layers {
			q, k, v, _ := layer(l)
			if err := w.WriteLayerEncoded(l, encode(q), encode(k), encode(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
			t.Errorf("%s: the encoded layers make a different file", dtype)
		}
	}

	path := filepath.Join(t.TempDir(), "bad.safetensors")
	w, err := Create(path, m, half.F16)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.WriteTokens(smallTokens)
	b := make([]byte, 2*56)
	prefix := "kvtrace " + path + ": "
	if err := w.WriteLayerEncoded(0, b, b[1:], b); err == nil || err.Error() != prefix+"WriteLayerEncoded(0): k has 111 bytes, not a whole number of F16 values" {
		t.Errorf("odd bytes: %v", err)
	}
	if err := w.WriteLayerEncoded(0, b, b, b[2:]); err == nil || err.Error() != prefix+"WriteLayer(0): v has 55 values, want 56 (heads 2 × tokens 7 × head_dim 4)" {
		t.Errorf("short v: %v", err)
	}
}

func TestWriterIsAtomic(t *testing.T) {
	m := smallMeta(false)
	dir := t.TempDir()
	path := filepath.Join(dir, "a.safetensors")
	q, k, _, _ := smallLayer(m)(0)

	// Abort leaves nothing behind.
	w, err := Create(path, m, half.F32)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteTokens(smallTokens)
	w.WriteLayer(0, q, k, nil)
	w.Abort()
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("after Abort the directory holds %v, want nothing", names)
	}

	// An incomplete writer fails to Close and leaves nothing behind.
	w, err = Create(path, m, half.F32)
	if err != nil {
		t.Fatal(err)
	}
	w.WriteTokens(smallTokens)
	if err := w.Close(); err == nil || err.Error() != "kvtrace "+path+": closed after 0 of 3 layers" {
		t.Errorf("Close of an incomplete trace = %v", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("after a failed Close the directory holds %v, want nothing", names)
	}

	// A failing layer callback leaves nothing behind.
	boom := errors.New("boom")
	err = Write(path, m, half.F32, smallTokens, func(l int) (_, _, _ []float32, _ error) { return nil, nil, nil, boom })
	if !errors.Is(err, boom) || err.Error() != "kvtrace "+path+": layer 0: boom" {
		t.Errorf("Write with a failing callback = %v", err)
	}
	if names := dirEntries(t, dir); len(names) != 0 {
		t.Errorf("after a failed Write the directory holds %v, want nothing", names)
	}

	// An existing file survives until Close replaces it, and a failed Close keeps it.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, complete := range []bool{false, true} {
		w, err := Create(path, m, half.F32)
		if err != nil {
			t.Fatal(err)
		}
		w.WriteTokens(smallTokens)
		layers := 1
		if complete {
			layers = m.Layers
		}
		for l := range layers {
			w.WriteLayer(l, q, k, nil)
		}
		if got, _ := os.ReadFile(path); string(got) != "old" {
			t.Errorf("before Close the file holds %q, want old", got)
		}
		if names := dirEntries(t, dir); len(names) != 2 || !strings.HasPrefix(names[0], ".a.safetensors.tmp-") {
			t.Errorf("while writing the directory holds %v, want the file and .a.safetensors.tmp-*", names)
		}
		err = w.Close()
		if complete != (err == nil) {
			t.Errorf("Close (complete %v) = %v", complete, err)
		}
		if names := dirEntries(t, dir); !slices.Equal(names, []string{"a.safetensors"}) {
			t.Errorf("after Close the directory holds %v, want only a.safetensors", names)
		}
	}
	tr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tr.Close()
}

// TestWriterIOError checks that a write failure is reported, sticks, and leaves no
// file behind.
func TestWriterIOError(t *testing.T) {
	m := smallMeta(false)
	m.HeadDim = 10_000 // q and k of one layer overflow the 1 MiB write buffer
	path := filepath.Join(t.TempDir(), "io.safetensors")
	w, err := Create(path, m, half.F32)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	w.file.Close() // every later flush fails
	if err := w.WriteTokens(smallTokens); err != nil {
		t.Fatalf("WriteTokens = %v, want the error deferred by buffering", err)
	}
	values := make([]float32, m.Heads*m.Tokens()*m.HeadDim)
	err = w.WriteLayer(0, values, values, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "kvtrace "+path+": writing "+TempPath(path, "")) ||
		!errors.Is(err, os.ErrClosed) {
		t.Errorf("WriteLayer to a closed file = %v, want a wrapped os.ErrClosed", err)
	}
	if again := w.WriteLayer(1, values, values, nil); again != err {
		t.Errorf("WriteLayer after the failure = %v, want the first error again", again)
	}
	if closeErr := w.Close(); closeErr != err {
		t.Errorf("Close after the failure = %v, want the first error again", closeErr)
	}
	if names := dirEntries(t, filepath.Dir(path)); len(names) != 0 {
		t.Errorf("after a failed write the directory holds %v, want nothing", names)
	}
}

// TestExtraMetadata: keys this version does not define survive a round trip, and an
// extra key may not shadow a defined one.
func TestExtraMetadata(t *testing.T) {
	dir := t.TempDir()
	meta := Meta{Model: "m", Layers: 1, Heads: 1, HeadDim: 2, PromptLen: 2, Source: SourceCPU, SampleID: "x",
		Extra: map[string]string{"template": "Summarize: {doc}", "temperature": "0"}}
	path := filepath.Join(dir, "t.safetensors")
	err := Write(path, meta, half.F32, []int32{2, 5}, func(int) (q, k, v []float32, err error) {
		return make([]float32, 4), make([]float32, 4), nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if !reflect.DeepEqual(tr.Meta().Extra, meta.Extra) {
		t.Errorf("extra %v, want %v", tr.Meta().Extra, meta.Extra)
	}
	meta.Extra = map[string]string{"heads": "3"}
	if _, err := Create(filepath.Join(dir, "u.safetensors"), meta, half.F32); err == nil || !strings.Contains(err.Error(), `extra key "heads" is a kvtrace key`) {
		t.Errorf("shadowing key: %v", err)
	}
}

// TestRemoveTemps checks that the temporary files of killed writers, hidden and of
// older versions, are removed, and nothing else.
func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"sample-000000.kvtrace.safetensors", "notes.tmp-1", ".hidden", "sample.tmp-dir"}
	stale := []string{".sample-000001.kvtrace.safetensors.tmp-abc", "sample-000002.kvtrace.safetensors.tmp-xyz"}
	for _, name := range append(slices.Clone(keep[:3]), stale...) {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	os.Mkdir(filepath.Join(dir, keep[3]), 0o755)
	n, err := RemoveTemps(dir)
	if err != nil || n != len(stale) {
		t.Errorf("RemoveTemps = %d, %v; want %d", n, err, len(stale))
	}
	want := slices.Sorted(slices.Values(keep))
	if names := dirEntries(t, dir); !slices.Equal(names, want) {
		t.Errorf("left %v, want %v", names, want)
	}
}

// TestReadNonFinite checks that a NaN anywhere in a tensor fails the read with the
// file, tensor, layer and position.
func TestReadNonFinite(t *testing.T) {
	m := smallMeta(true)
	path := filepath.Join(t.TempDir(), "nan.safetensors")
	err := Write(path, m, half.BF16, smallTokens, func(l int) (q, k, v []float32, err error) {
		q, k, v = layerValues(m, l, Q), layerValues(m, l, K), layerValues(m, l, V)
		if l == 2 {
			v[(1*m.Tokens()+6)*m.HeadDim+3] = float32(math.NaN()) // head 1, token 6, dim 3
		}
		return q, k, v, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for _, kind := range []Kind{Q, K} {
		if _, err := tr.Read(kind, 2, nil); err != nil {
			t.Errorf("%v: %v", kind, err)
		}
	}
	_, err = tr.Read(V, 2, nil)
	if want := "kvtrace " + path + ": tensor layer.2.v (layer 2): NaN at head 1, token 6, dim 3"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Read = %v, want %q", err, want)
	}
}
