package kvtrace

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
)

// FuzzOpen feeds arbitrary files to Open: it must never panic, must name the file in
// every error, and a trace it accepts must read back every tensor.
func FuzzOpen(f *testing.F) {
	for _, c := range []struct {
		dtype half.DType
		hasV  bool
	}{{half.F16, true}, {half.BF16, false}, {half.F32, true}} {
		valid, err := os.ReadFile(writeSmall(f, c.dtype, c.hasV))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(valid)
		if c.dtype == half.F16 && c.hasV { // the trace the corruptions expect
			for _, c := range corruptions() {
				f.Add(c.corrupt(f, slices.Clone(valid)))
			}
		}
	}
	f.Add([]byte{})

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
		tr, err := Open(path)
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
				buf, err = tr.Read(kind, layer, buf)
				if err != nil && (!strings.HasPrefix(err.Error(), "kvtrace "+path+": tensor ") || !strings.Contains(err.Error(), "must hold finite values")) {
					t.Fatal(err) // the only error an opened trace may give: a non-finite value
				}
				if len(buf) != m.Heads*m.Tokens()*m.HeadDim {
					t.Fatalf("layer %d %v: %d values, want %d", layer, kind, len(buf), m.Heads*m.Tokens()*m.HeadDim)
				}
			}
		}
	})
}
