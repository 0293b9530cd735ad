package synth_test

import (
	"fmt"

	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/synth"
)

// A synthetic trace reads like a kvtrace file, one layer at a time.
func Example() {
	tr, err := synth.New(synth.Options{Preset: "opt-13b", Layers: 2, Heads: 4, PromptLen: 64, GenLen: 8, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tr.Close()
	meta := tr.Meta()
	q, err := tr.Read(kvtrace.Q, 1, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(tr.Name(), meta.Model, meta.Source, meta.SampleID)
	fmt.Printf("%d heads × %d tokens × %d = %d query values\n", meta.Heads, meta.Tokens(), meta.HeadDim, len(q))
	// Output:
	// synthetic:opt-13b#0 synthetic/opt-13b synthetic synthetic-opt-13b-s1-0
	// 4 heads × 72 tokens × 128 = 36864 query values
}
