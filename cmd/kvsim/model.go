package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/opt"
)

const modelUsage = `Usage: kvsim model <subcommand> [flags]

Subcommands:
  synth   write a random OPT checkpoint directory in Hugging Face's format
`

func runModel(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, modelUsage)
		return nil
	}
	if args[0] == "synth" {
		return runModelSynth(ctx, e, args[1:])
	}
	return usageError{fmt.Errorf("model: unknown subcommand %q (want synth)", args[0])}
}

// synthCorpus is the text the default tokenizer of a synthesized model is trained
// on: a few sentences of news English, so that prompts built from such text
// tokenize into a realistic mix of merged and byte tokens.
const synthCorpus = `The government said on Monday that the new rail line would open next year, two years later than planned.
Officials blamed the delay on rising costs and a shortage of workers, and said the budget would be reviewed.
Police are appealing for witnesses after a man was injured in the city centre on Saturday night.
The club confirmed that its captain will miss the rest of the season with a knee injury.
Scientists say the number of birds returning to the island each summer has fallen by a third since 2010.
The report found that most people in the region had been affected by the floods in some way.
A spokesperson for the company said it was working with the council to find a solution.
Fans have been asked to arrive early because of the work on the roads around the stadium.
`

// maxCorpusBytes bounds -corpus: the tokenizer of a test model trains on a few
// MiB of text at most.
const maxCorpusBytes = 64 << 20

func runModelSynth(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "model synth", "model synth [flags] OUT_DIR",
		"Writes a complete random OPT checkpoint directory for tests and demos: config.json,\n"+
			"model.safetensors and pytorch_model.bin, and a small byte-level BPE tokenizer\n"+
			"(vocab.json, merges.txt). Sizes start from a published preset and can be shrunk.\n"+
			"The weights are random: nothing it generates means anything.")
	preset := fs.String("preset", "opt-125m", "architecture: "+strings.Join(opt.Names(), ", "))
	layers := fs.Int("layers", 0, "decoder layers (0: the preset's)")
	hidden := fs.Int("hidden", 0, "hidden size (0: the preset's)")
	heads := fs.Int("heads", 0, "attention heads (0: the preset's)")
	ffn := fs.Int("ffn", 0, "feed-forward size (0: the preset's ratio to -hidden)")
	vocab := fs.Int("vocab", 0, "vocabulary size (0: the preset's 50272); the tokenizer gets at most this many tokens")
	positions := fs.Int("positions", 0, "max_position_embeddings (0: the preset's 2048)")
	embedDim := fs.Int("embed-dim", 0, "word_embed_proj_dim (0: the preset's ratio to -hidden)")
	layerNorm := fs.String("layer-norm", "", "pre or post (\"\": the preset's; opt-350m is post)")
	dtype := fs.String("dtype", "f16", "weight dtype: f16, bf16 or f32")
	seed := fs.Uint64("seed", 1, "seed of the random weights")
	formats := fs.String("formats", "safetensors,pytorch", "weight files to write: safetensors, pytorch or both")
	shardBytes := fs.Int64("shard-bytes", 0, "split each format into shards of at most `N` bytes, with an index (0: no shards)")
	corpus := fs.String("corpus", "", "train the tokenizer on this text `FILE` (default: a few built-in sentences)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{fmt.Errorf("model synth: want one OUT_DIR, got %d arguments", fs.NArg())}
	}
	dt, err := half.ParseDType(*dtype)
	if err != nil {
		return usageError{fmt.Errorf("model synth: %w", err)}
	}
	var f checkpoint.Format
	for _, name := range strings.Split(*formats, ",") {
		switch strings.TrimSpace(name) {
		case "safetensors":
			f |= checkpoint.Safetensors
		case "pytorch":
			f |= checkpoint.PyTorch
		default:
			return usageError{fmt.Errorf("model synth: -formats %q: want safetensors, pytorch or both", *formats)}
		}
	}
	text := synthCorpus
	if *corpus != "" {
		if text, err = readSmallFile("-corpus", *corpus, maxCorpusBytes); err != nil {
			return err
		}
	}
	o := checkpoint.SynthOptions{Preset: *preset, NumHiddenLayers: *layers, HiddenSize: *hidden, NumAttentionHeads: *heads,
		FFNDim: *ffn, VocabSize: *vocab, MaxPositionEmbeddings: *positions, WordEmbedProjDim: *embedDim,
		LayerNorm: *layerNorm, DType: dt, Seed: *seed, Formats: f, ShardBytes: *shardBytes, TokenizerCorpus: text}
	cfg, err := o.Config()
	if err != nil {
		return usageError{fmt.Errorf("model synth: %w", err)}
	}
	dir := fs.Arg(0)
	if err := checkpoint.WriteSynthContext(ctx, dir, o); err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("model synth interrupted; %s was not written", dir)
		}
		return err
	}
	norm := "pre-LN"
	if !cfg.DoLayerNormBefore {
		norm = "post-LN"
	}
	fmt.Fprintf(e.stdout, "%s: random %s (%s), %d layers × %d heads, hidden %d, ffn %d, vocab %d, %d positions, %v\n",
		dir, *preset, norm, cfg.NumHiddenLayers, cfg.NumAttentionHeads, cfg.HiddenSize, cfg.FFNDim, cfg.VocabSize,
		cfg.MaxPositionEmbeddings, dt)
	return nil
}
