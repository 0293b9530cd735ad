package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/kernel"
	"github.com/kvsim/kvsim/internal/opt"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/synth"
)

const traceUsage = `Usage: kvsim trace <subcommand> [flags]

Subcommands:
  synth   write deterministic synthetic traces shaped like an OPT model
  info    summarize trace files
  stats   measure attention structure per head: sink, previous token, self
`

func runTrace(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, traceUsage)
		return nil
	}
	switch args[0] {
	case "synth":
		return runTraceSynth(ctx, e, args[1:])
	case "info":
		return runTraceInfo(e, args[1:])
	case "stats":
		return runTraceStats(e, args[1:])
	}
	return usageError{fmt.Errorf("trace: unknown subcommand %q (want synth, info or stats)", args[0])}
}

func runTraceSynth(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "trace synth", "trace synth [flags] -out DIR",
		"Writes synthetic kvtrace files (one per sample) for an OPT shape. The attention has\n"+
			"sinks, a recency band, heavy hitters, late-important tokens and diverse heads; the\n"+
			"files are labelled source=synthetic and are not OPT measurements.")
	preset := fs.String("preset", "opt-125m", "OPT shape: "+strings.Join(opt.Names(), ", "))
	layers := fs.Int("layers", 0, "keep only the first `N` layers (0: the preset's)")
	heads := fs.Int("heads", 0, "keep only the first `N` heads (0: the preset's)")
	headDim := fs.Int("head-dim", 0, "head dimension `N` (0: the preset's; at most the preset's)")
	prompt := fs.Int("prompt", 512, "prompt tokens")
	gen := fs.Int("gen", 64, "generated tokens")
	positions := fs.Int("positions", 0, fmt.Sprintf("context length `N` of the synthetic model, up to %d (0: OPT's %d); prompt+gen must fit", synth.MaxPositions, synth.MaxTokens))
	samples := fs.Int("samples", 1, "number of samples (files)")
	seed := fs.Uint64("seed", 1, "seed of the synthetic model")
	dtype := fs.String("dtype", "f16", "tensor dtype: f16, bf16 or f32")
	noV := fs.Bool("no-v", false, "omit value tensors (no output-error metric)")
	out := fs.String("out", "", "output `DIR` (created if missing)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageError{fmt.Errorf("trace synth: -out DIR is required")}
	}
	dt, err := half.ParseDType(*dtype)
	if err != nil {
		return usageError{fmt.Errorf("trace synth: %w", err)}
	}
	if *samples < 1 {
		return usageError{fmt.Errorf("trace synth: -samples %d: want at least 1", *samples)}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	for i := 0; i < *samples; i++ {
		opts := synth.Options{Preset: *preset, Layers: *layers, Heads: *heads, HeadDim: *headDim,
			PromptLen: *prompt, GenLen: *gen, Positions: *positions, Sample: i, Seed: *seed, WithV: !*noV}
		if err := opts.Validate(); err != nil {
			return usageError{fmt.Errorf("trace synth: %w", err)}
		}
		path := filepath.Join(*out, fmt.Sprintf("%s-s%d-%03d.kvtrace.safetensors", *preset, *seed, i))
		if err := synth.WriteFile(ctx, path, opts, dt); err != nil {
			if errors.Is(err, context.Canceled) {
				return fmt.Errorf("trace synth interrupted after %d of %d samples; nothing half-written is left", i, *samples)
			}
			return err
		}
		fmt.Fprintln(e.stdout, path)
	}
	return nil
}

func runTraceInfo(e *env, args []string) error {
	fs := newFlags(e, "trace info", "trace info FILE...",
		"Prints each trace's metadata and shapes, and for every layer the last query's\n"+
			"attention: mass on the first token (sink), mass on the 8 most attended tokens,\n"+
			"and the entropy in bits, averaged over heads.")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError{fmt.Errorf("trace info: want at least one FILE")}
	}
	for _, path := range fs.Args() {
		if err := traceInfo(e, path); err != nil {
			return err
		}
	}
	return nil
}

func traceInfo(e *env, path string) error {
	t, err := kvtrace.Open(path)
	if err != nil {
		return err
	}
	defer t.Close()
	m := t.Meta()
	w := e.stdout
	fmt.Fprintf(w, "%s\n", path)
	src := m.Source
	if src == kvtrace.SourceSynthetic {
		src += " (not an OPT measurement)"
	}
	fmt.Fprintf(w, "  model      %s\n  source     %s\n  sample     %s\n", m.Model, src, m.SampleID)
	fmt.Fprintf(w, "  shape      %d layers × %d heads × %d head_dim, dtype %s, V %v\n", m.Layers, m.Heads, m.HeadDim, t.DType(), m.HasV)
	fmt.Fprintf(w, "  tokens     %d prompt + %d generated\n", m.PromptLen, m.GenLen)
	if st, err := os.Stat(path); err == nil {
		fmt.Fprintf(w, "  size       %.1f MiB\n", float64(st.Size())/(1<<20))
	}
	for _, text := range []struct{ name, s string }{{"prompt", m.Prompt}, {"reference", m.Reference}, {"generated", m.Generated}} {
		if text.s != "" {
			fmt.Fprintf(w, "  %-10s %q\n", text.name, clip(text.s, 100))
		}
	}
	fmt.Fprintf(w, "  layer  sink   top-8  entropy(bits)  — last query, mean over heads\n")
	var q, k []float32
	T, d := m.Tokens(), m.HeadDim
	row := make([]float32, T)
	for l := 0; l < m.Layers; l++ {
		if q, err = t.Read(kvtrace.Q, l, q); err != nil {
			return err
		}
		if k, err = t.Read(kvtrace.K, l, k); err != nil {
			return err
		}
		var sink, top, ent float64
		for h := 0; h < m.Heads; h++ {
			last := q[(h*T+T-1)*d : (h*T+T)*d]
			kernel.MatMulNT(1, T, d, last, d, k[h*T*d:], d, row, T)
			kernel.Softmax(row)
			sink += float64(row[0])
			top += topMass(row, 8)
			for _, p := range row {
				if p > 0 {
					ent -= float64(p) * math.Log2(float64(p))
				}
			}
		}
		n := float64(m.Heads)
		fmt.Fprintf(w, "  %5d  %5.3f  %5.3f  %6.2f\n", l, sink/n, top/n, ent/n)
	}
	return nil
}

// topMass is the mass of the k largest entries.
func topMass(row []float32, k int) float64 {
	top := make([]float32, 0, k)
	for _, p := range row {
		if len(top) < k {
			top = append(top, p)
			continue
		}
		low := 0
		for i := range top {
			if top[i] < top[low] {
				low = i
			}
		}
		if p > top[low] {
			top[low] = p
		}
	}
	var s float64
	for _, p := range top {
		s += float64(p)
	}
	return s
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
