package kvtrace_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

func Example() {
	dir, err := os.MkdirTemp("", "kvtrace-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sample-0.safetensors")

	// A two-layer trace of one head, three tokens (two prompt, one generated) and
	// head_dim 2, without values.
	meta := kvtrace.Meta{Model: "synthetic/opt-tiny", Layers: 2, Heads: 1, HeadDim: 2,
		PromptLen: 2, GenLen: 1, Source: kvtrace.SourceSynthetic, SampleID: "sample-0"}
	err = kvtrace.Write(path, meta, half.F16, []int32{2, 100, 7},
		func(l int) (q, k, v []float32, err error) {
			q = []float32{1, 0, 0, 1, 0.5, 0.5}
			k = []float32{float32(l), 1, 2, 3, 4, 1.0 / 3}
			return q, k, nil, nil
		})
	if err != nil {
		log.Fatal(err)
	}

	tr, err := kvtrace.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	m := tr.Meta()
	fmt.Println(m.Model, m.Layers, "layers,", m.Tokens(), "tokens", tr.Tokens(), tr.DType(), "V:", tr.HasV())
	k, err := tr.Read(kvtrace.K, 1, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(k) // 1/3 comes back as the nearest F16
	// Output:
	// synthetic/opt-tiny 2 layers, 3 tokens [2 100 7] F16 V: false
	// [1 1 2 3 4 0.33325195]
}
