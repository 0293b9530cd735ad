// Command checknll scores held-out blocks with kvsim's OPT engine (CPU backend) and
// compares the mean NLL per block with transformers' figures, which export.py
// writes with --nll-out: {"blocks": [[ids]], "nll": [per-block mean NLL], "mean"}.
//
//	go run ./scripts/train-opt/checknll -model internal/models/opt-kjv-4l nll.json
//
// It prints both means, their perplexities, and the largest per-block difference, and
// exits 1 when a block differs by more than -tol.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/models"
)

type reference struct {
	Blocks [][]int32 `json:"blocks"`
	NLL    []float64 `json:"nll"`
	Mean   float64   `json:"mean"`
}

func main() {
	modelDir := flag.String("model", "builtin:"+models.Default, "checkpoint `DIR` or builtin:NAME")
	tol := flag.Float64("tol", 1e-4, "largest allowed difference of a block's mean NLL")
	limit := flag.Int("blocks", 0, "score only the first `N` blocks (0: all)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: checknll [-model DIR] [-tol X] [-blocks N] NLL.json")
		os.Exit(2)
	}
	if err := runCheck(*modelDir, flag.Arg(0), *tol, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "checknll:", err)
		os.Exit(1)
	}
}

func runCheck(modelDir, refPath string, tol float64, limit int) error {
	data, err := os.ReadFile(refPath)
	if err != nil {
		return err
	}
	var ref reference
	if err := json.Unmarshal(data, &ref); err != nil {
		return fmt.Errorf("%s: %w", refPath, err)
	}
	if len(ref.Blocks) != len(ref.NLL) || len(ref.Blocks) == 0 {
		return fmt.Errorf("%s: %d blocks and %d NLL figures", refPath, len(ref.Blocks), len(ref.NLL))
	}
	if limit > 0 && limit < len(ref.Blocks) {
		ref.Blocks, ref.NLL = ref.Blocks[:limit], ref.NLL[:limit]
	}
	dir, err := models.Resolve(modelDir)
	if err != nil {
		return err
	}
	model, err := checkpoint.Load(dir)
	if err != nil {
		return err
	}
	defer model.Close()
	backend, err := cpu.New(model, cpu.Options{})
	if err != nil {
		return err
	}
	defer backend.Close()
	engine := gpu.New(backend)

	var engineSum, refSum, worst float64
	worstBlock := 0
	for i, block := range ref.Blocks {
		nll, err := blockNLL(engine, block)
		if err != nil {
			return fmt.Errorf("block %d: %w", i, err)
		}
		engineSum += nll
		refSum += ref.NLL[i]
		if d := math.Abs(nll - ref.NLL[i]); d > worst {
			worst, worstBlock = d, i
		}
	}
	n := float64(len(ref.Blocks))
	fmt.Printf("%d blocks of %d tokens\n", len(ref.Blocks), len(ref.Blocks[0]))
	fmt.Printf("kvsim engine:  mean NLL %.6f, perplexity %.4f\n", engineSum/n, math.Exp(engineSum/n))
	fmt.Printf("transformers:  mean NLL %.6f, perplexity %.4f\n", refSum/n, math.Exp(refSum/n))
	fmt.Printf("difference of the means %.2e; largest per block %.2e (block %d)\n", math.Abs(engineSum-refSum)/n, worst, worstBlock)
	if worst > tol {
		return fmt.Errorf("block %d differs by %.2e > %.0e", worstBlock, worst, tol)
	}
	return nil
}

// blockNLL is the mean −log p of tokens 1..n−1 of block, each given those before it.
func blockNLL(engine *gpu.Engine, block []int32) (float64, error) {
	V := engine.Config().VocabSize
	seq, err := engine.NewSequence(len(block), false)
	if err != nil {
		return 0, err
	}
	defer seq.Close()
	logits := make([]float32, len(block)*V)
	if err := seq.Feed(block, gpu.Outputs{Logits: logits}); err != nil {
		return 0, err
	}
	var sum float64
	for t := 1; t < len(block); t++ {
		row := logits[(t-1)*V : t*V]
		maxLogit := math.Inf(-1)
		for _, x := range row {
			maxLogit = math.Max(maxLogit, float64(x))
		}
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x) - maxLogit)
		}
		sum += maxLogit + math.Log(z) - float64(row[block[t]])
	}
	return sum / float64(len(block)-1), nil
}
