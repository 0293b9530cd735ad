package kvtrace

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzOpen feeds arbitrary files to Open: it must never panic, must name the file in
// every error, and a trace it accepts must read back every tensor.
func FuzzOpen(f *testing.F) {
	for _, c := range []struct {
		dtype DType
		hasV  bool
	}{{F16, true}, {BF16, false}, {F32, true}} {
		valid, err := os.ReadFile(writeSmall(f, c.dtype, c.hasV))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(valid)
		f.Add(valid[:len(valid)-3])
		n := binary.LittleEndian.Uint64(valid)
		header := string(valid[8 : 8+n])
		for _, edit := range []func(string) string{
			func(h string) string { return strings.Replace(h, `"heads":"2"`, `"heads":"3"`, 1) },
			func(h string) string { return strings.Replace(h, `"data_offsets":[0,28]`, `"data_offsets":[0,24]`, 1) },
			func(h string) string { return strings.Replace(h, `"layers":"3"`, `"layers":"99999999999"`, 1) },
		} {
			f.Add(joinFile([]byte(edit(header)), valid[8+n:]))
		}
	}
	f.Add([]byte{})
	f.Add(binary.LittleEndian.AppendUint64(nil, 2))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, file []byte) {
		tmp, err := os.CreateTemp(dir, "fuzz-*.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		path := tmp.Name()
		defer os.Remove(path)
		_, err = tmp.Write(file)
		if cerr := tmp.Close(); err != nil || cerr != nil {
			t.Fatal(err, cerr)
		}
		tr, err := Open(filepath.Clean(path))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "kvtrace "+path+": ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		defer tr.Close()
		m := tr.Meta()
		if len(tr.Tokens()) != m.Tokens() {
			t.Fatalf("%d tokens, metadata says %d", len(tr.Tokens()), m.Tokens())
		}
		var buf []float32
		for layer := range m.Layers {
			for _, kind := range m.kinds() {
				if buf, err = tr.Read(kind, layer, buf); err != nil {
					t.Fatal(err)
				}
				if len(buf) != m.Heads*m.Tokens()*m.HeadDim {
					t.Fatalf("layer %d %v: %d values, want %d", layer, kind, len(buf), m.Heads*m.Tokens()*m.HeadDim)
				}
			}
		}
	})
}
