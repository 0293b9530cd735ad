package checkpoint_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/kvsim/kvsim/internal/checkpoint"
)

// A random opt-350m-shaped checkpoint, shrunk to two layers, written and loaded back.
func ExampleWriteSynth() {
	tmp, err := os.MkdirTemp("", "synth")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "tiny-opt")
	err = checkpoint.WriteSynth(dir, checkpoint.SynthOptions{
		Preset:          "opt-350m",
		NumHiddenLayers: 2, HiddenSize: 32, NumAttentionHeads: 4,
		VocabSize: 100, MaxPositionEmbeddings: 64,
		Seed: 1,
	})
	if err != nil {
		log.Fatal(err)
	}

	m, err := checkpoint.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	c, w := m.Config, m.Weights
	fmt.Println("format:", m.Format, "files:", filepath.Base(m.Files[0]))
	fmt.Println("pre-LN:", c.DoLayerNormBefore, "head dim:", c.HeadDim(), "ffn:", c.FFNDim)
	fmt.Println("embed_tokens:", w.EmbedTokens.Shape, w.EmbedTokens.DType)
	fmt.Println("project_in:", w.ProjectIn.Shape, "project_out:", w.ProjectOut.Shape)
	fmt.Println("embed_positions:", w.EmbedPositions.Shape)
	fmt.Println("lm_head tied:", w.LMHead == w.EmbedTokens)
	fmt.Println("position 0 is row", checkpoint.PositionOffset, "with", len(w.PositionRow(0, nil)), "values")
	// Output:
	// format: safetensors files: model.safetensors
	// pre-LN: false head dim: 8 ffn: 128
	// embed_tokens: [100 16] F16
	// project_in: [32 16] project_out: [16 32]
	// embed_positions: [66 32]
	// lm_head tied: true
	// position 0 is row 2 with 32 values
}
