package gpu_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
)

// Greedy decoding on the CPU backend with layer 0 observed: the prompt attends in
// one batch, then each generated token alone, every row over the cache's slots.
func Example() {
	tmp, err := os.MkdirTemp("", "engine")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "tiny-opt")
	err = checkpoint.WriteSynth(dir, checkpoint.SynthOptions{NumHiddenLayers: 2, HiddenSize: 32,
		NumAttentionHeads: 4, VocabSize: 100, MaxPositionEmbeddings: 64, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	model, err := checkpoint.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer model.Close()
	backend, err := cpu.New(model, cpu.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	engine := gpu.New(backend)
	g, err := engine.Generate(context.Background(), []int32{2, 40, 41, 42}, gpu.GenerateOptions{
		MaxNew: 3, IgnoreEOS: true,
		Want: gpu.Want{QKV: true, Probs: true, Layers: []bool{true, false}},
		Observe: func(v *gpu.LayerView) error {
			fmt.Printf("layer %d: %d rows from position %d, %d heads × %d slots, last row sums to %.3f\n",
				v.Layer, v.Rows, v.Positions[0], v.Heads, v.Capacity, lastRowMass(v))
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("generated", len(g.Tokens), "tokens")
	// Output:
	// layer 0: 4 rows from position 0, 4 heads × 7 slots, last row sums to 1.000
	// layer 0: 1 rows from position 4, 4 heads × 7 slots, last row sums to 1.000
	// layer 0: 1 rows from position 5, 4 heads × 7 slots, last row sums to 1.000
	// layer 0: 1 rows from position 6, 4 heads × 7 slots, last row sums to 1.000
	// generated 3 tokens
}

// lastRowMass is the attention probability of the last row, summed over its slots
// and averaged over heads: 1, since every row is a distribution.
func lastRowMass(v *gpu.LayerView) float64 {
	var total float64
	for h := range v.Heads {
		for _, p := range v.ProbsRow(h, v.Rows-1) {
			total += float64(p)
		}
	}
	return total / float64(v.Heads)
}
