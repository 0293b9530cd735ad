package safetensors

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	entries, meta, hasMeta, err := ParseHeader([]byte(`{"__metadata__":{"a":"b"},"x":{"dtype":"F16","shape":[2,3],"data_offsets":[0,12]}}`))
	if err != nil || !hasMeta || meta["a"] != "b" || len(entries) != 1 {
		t.Fatalf("%v %v %v %v", entries, meta, hasMeta, err)
	}
	if e := entries["x"]; e.DType != "F16" || len(e.Shape) != 2 || e.Shape[1] != 3 || e.DataOffsets[1] != 12 {
		t.Errorf("entry %+v", e)
	}
	if _, _, hasMeta, err := ParseHeader([]byte(`{}`)); err != nil || hasMeta {
		t.Errorf("empty header: metadata %t, %v", hasMeta, err)
	}
	for header, want := range map[string]string{
		`[]`:                                    "invalid header JSON: want an object, got [",
		`{"x":{},"x":{}}`:                       `invalid header JSON: duplicate key "x"`,
		`{"__metadata__":{},"__metadata__":{}}`: `invalid header JSON: duplicate key "__metadata__"`,
		`{"__metadata__":{"a":1}}`:              "metadata: want an object of strings",
		`{"x":{"shape":"no"}}`:                  "tensor x: invalid entry",
		`{} {}`:                                 "invalid header JSON: { after the object",
		`{"x":`:                                 "tensor x: invalid entry",
	} {
		if _, _, _, err := ParseHeader([]byte(header)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", header, err, want)
		}
	}
}

func TestSplit(t *testing.T) {
	file := binary.LittleEndian.AppendUint64(nil, 2)
	file = append(file, "{}data"...)
	header, data, err := Split(file)
	if err != nil || string(header) != "{}" || string(data) != "data" {
		t.Errorf("Split: %q %q %v", header, data, err)
	}
	for _, c := range []struct {
		file []byte
		want string
	}{
		{[]byte{1, 2}, "truncated: file has 2 bytes, fewer than the 8-byte header length"},
		{binary.LittleEndian.AppendUint64(nil, 1<<40), "header length 1099511627776 is absurd (the limit is 104857600 bytes)"},
		{binary.LittleEndian.AppendUint64(nil, 9), "truncated: header length says 9 bytes of header, file has 0 after the length"},
	} {
		if _, _, err := Split(c.file); err == nil || err.Error() != c.want {
			t.Errorf("Split(%v): %v, want %q", c.file, err, c.want)
		}
	}
	if n, ok := DTypeSize("BF16"); n != 2 || !ok {
		t.Errorf("DTypeSize(BF16) = %d, %t", n, ok)
	}
	if _, ok := DTypeSize("F12"); ok {
		t.Error("DTypeSize(F12) is known")
	}
}

// FuzzParseHeader: any bytes give entries or an error, never a panic.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte(`{"__metadata__":{"a":"b"},"x":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`))
	f.Add([]byte(`{"x":{},"x":{}}`))
	f.Fuzz(func(t *testing.T, header []byte) {
		entries, _, _, err := ParseHeader(header)
		if err == nil && entries == nil {
			t.Error("no error and no entries map")
		}
	})
}
