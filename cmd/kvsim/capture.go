package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/models"
	"github.com/kvsim/kvsim/tracecap"
)

// maxTemplateBytes bounds -template-file: a prompt template is a few lines
// around the document.
const maxTemplateBytes = 1 << 20

func runCapture(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "capture", "capture -model DIR -data FILE.jsonl -out DIR [flags]",
		"Runs an OPT checkpoint (a Hugging Face directory: config.json, weights, vocab.json,\n"+
			"merges.txt) over a summarization dataset in JSONL and writes one kvtrace file per\n"+
			"sample: the queries, keys and values of every prompt and generated token, for\n"+
			"`kvsim replay`. Decoding is greedy. The default prompt is HELM's summarization\n"+
			"prompt, as H2O and AUV evaluate OPT (see the README). A rerun into the same -out\n"+
			"skips the samples already captured.")
	modelDir := fs.String("model", "", "checkpoint `DIR`, or builtin:NAME for a model embedded in kvsim (required)")
	data := fs.String("data", "", "dataset `FILE` in JSONL, or builtin:NAME/FILE (required)")
	out := fs.String("out", "", "output `DIR`, created if missing (required)")
	docField := fs.String("document-field", dataset.DefaultFields.Document, "JSON field of the document")
	sumField := fs.String("summary-field", dataset.DefaultFields.Summary, "JSON field of the reference summary (\"\": none)")
	idField := fs.String("id-field", dataset.DefaultFields.ID, "JSON field of the sample id, if present")
	template := fs.String("template", dataset.DefaultTemplate, "prompt `TEXT` with one {document}")
	templateFile := fs.String("template-file", "", "read the prompt template from `FILE` instead")
	maxPrompt := fs.Int("max-prompt", 0, "at most `N` prompt tokens, documents cut to fit (0: the model's positions less -gen)")
	gen := fs.Int("gen", 64, "generate at most `N` tokens")
	ignoreEOS := fs.Bool("ignore-eos", false, "generate -gen tokens even past end-of-sequence")
	samples := fs.Int("samples", 0, "capture `N` samples (0: all from -offset)")
	offset := fs.Int("offset", 0, "skip the first `N` samples of the dataset")
	layers := fs.String("layers", "all", "layers to keep: all, or a `LIST` like 0,5,10-12")
	heads := fs.String("heads", "all", "heads to keep: all, or a `LIST` like 0-3")
	noV := fs.Bool("no-v", false, "leave the values out (no output-error metric in replay)")
	dtype := fs.String("dtype", "f16", "trace tensor dtype: f16, bf16 or f32")
	device := fs.String("device", "cpu", deviceUsage)
	threads := fs.Int("threads", 0, "CPU backend threads (0: one per CPU); results do not depend on it")
	progress := fs.String("progress", "auto", progressUsage)
	shardFlag := fs.String("shard", "", strings.Replace(shardUsage, "index", "record number", 1))
	if err := parse(fs, args); err != nil {
		return err
	}
	sp, err := parseShard("capture", *shardFlag)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("capture: unexpected argument %q", fs.Arg(0))}
	}
	for _, f := range []struct{ name, value string }{{"model", *modelDir}, {"data", *data}, {"out", *out}} {
		if f.value == "" {
			return usageError{fmt.Errorf("capture: -%s is required", f.name)}
		}
	}
	if *samples < 0 || *offset < 0 {
		return usageError{fmt.Errorf("capture: -samples %d and -offset %d must not be negative", *samples, *offset)}
	}
	dt, err := half.ParseDType(*dtype)
	if err != nil {
		return usageError{fmt.Errorf("capture: %w", err)}
	}
	if *templateFile != "" {
		if *template, err = readSmallFile("-template-file", *templateFile, maxTemplateBytes); err != nil {
			return err
		}
	}

	// builtin:NAME is a model embedded in kvsim, builtin:NAME/FILE a file beside it.
	for _, p := range []*string{modelDir, data} {
		if *p, err = models.Resolve(*p); err != nil {
			return usageError{fmt.Errorf("capture: %w", err)}
		}
	}
	// The dataset first: a mistake in it should not wait for a big model to load.
	records, err := dataset.ReadJSONL(*data, dataset.Fields{Document: *docField, Summary: *sumField, ID: *idField},
		*offset, *samples)
	if err != nil {
		return err
	}
	if sp != nil {
		records = slices.DeleteFunc(records, func(r dataset.Sample) bool { return !sp.Has(r.Index) })
	}
	om, err := openModel(*modelDir)
	if err != nil {
		return err
	}
	defer om.Close()
	cfg := om.model.Config
	opts := tracecap.Options{Template: *template, MaxPromptTokens: *maxPrompt, GenTokens: *gen, IgnoreEOS: *ignoreEOS,
		NoV: *noV, DType: dt, Model: cfg.NameOrPath, Dataset: filepath.Base(*data)}
	if opts.Model == "" {
		opts.Model = filepath.Base(filepath.Clean(*modelDir))
	}
	if opts.Layers, err = parseIndices("layers", *layers, cfg.NumHiddenLayers); err != nil {
		return err
	}
	if opts.Heads, err = parseIndices("heads", *heads, cfg.NumAttentionHeads); err != nil {
		return err
	}
	if err := om.start(*device, *threads); err != nil {
		return err
	}
	capturer, err := tracecap.New(om.engine, om.tok, opts)
	if err != nil {
		return usageError{err}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	jobs, err := capturer.Plan(records, *out)
	if err != nil {
		return err
	}

	sum, err := captureJobs(ctx, e, e.stdout, capturer, jobs, *progress)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "captured %d %s (%d tokens, %.1f tok/s), skipped %d already done\n",
		sum.captured, plural(sum.captured, "sample"), sum.tokens, float64(sum.tokens)/max(sum.elapsed.Seconds(), 1e-9), sum.skipped)
	return nil
}

// captureSummary is what captureJobs did.
type captureSummary struct {
	captured, skipped, tokens int
	elapsed                   time.Duration
}

// captureJobs captures the jobs not done yet, writing one line per sample to w,
// with a progress bar on stderr when progress asks for one.
func captureJobs(ctx context.Context, e *env, w io.Writer, capturer *tracecap.Capturer, jobs []tracecap.Job, progress string) (captureSummary, error) {
	total := 0
	for i := range jobs {
		if !jobs[i].Done {
			total += capturer.MaxTokens(&jobs[i])
		}
	}
	var bar *progressbar.ProgressBar
	if total > 0 && (progress == "on" || (progress == "auto" && e.stderrIsTTY)) {
		bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(e.stderr),
			progressbar.OptionSetDescription("capture"), progressbar.OptionShowCount(),
			progressbar.OptionShowIts(), progressbar.OptionSetItsString("tok"),
			progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	advance := func(n int) {
		if bar != nil {
			bar.Add(n)
		}
	}
	var sum captureSummary
	start := time.Now()
	for i := range jobs {
		j := &jobs[i]
		if bar != nil {
			bar.Clear() // the line below would otherwise land in the middle of the bar
		}
		if j.Done {
			sum.skipped++
			fmt.Fprintf(w, "%s  done earlier, skipped\n", j.Path)
			continue
		}
		res, err := capturer.Capture(ctx, j, advance)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return sum, fmt.Errorf("capture interrupted after %d of %d samples; run the same command again to resume", sum.captured+sum.skipped, len(jobs))
			}
			return sum, err
		}
		advance(capturer.MaxTokens(j) - res.PromptTokens - res.GeneratedTokens) // stopped early at end-of-sequence
		sum.captured++
		sum.tokens += res.PromptTokens + res.GeneratedTokens
		truncated := ""
		if j.Prompt.Truncated {
			truncated = " (document cut)"
		}
		fmt.Fprintf(w, "%s  prompt %d%s + generated %d  prefill %.2f s, decode %.2f s  %.1f MiB\n", res.Path,
			res.PromptTokens, truncated, res.GeneratedTokens, res.Prefill.Seconds(), res.Decode.Seconds(),
			float64(res.Bytes)/(1<<20))
	}
	if bar != nil {
		bar.Finish()
	}
	sum.elapsed = time.Since(start)
	return sum, nil
}

// parseIndices reads "all" (nil: every index) or a comma-separated list of indices
// and ranges like 0,5,10-12, each below n.
func parseIndices(flag, s string, n int) ([]int, error) {
	if s == "all" {
		return nil, nil
	}
	var out []int
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, errA := strconv.Atoi(lo)
		b, errB := a, error(nil)
		if isRange {
			b, errB = strconv.Atoi(hi)
		}
		if errA != nil || errB != nil || a > b {
			return nil, usageError{fmt.Errorf("capture: -%s %q: want all, or indices and ranges like 0,5,10-12", flag, s)}
		}
		if a < 0 || b >= n {
			return nil, usageError{fmt.Errorf("capture: -%s %q: the model has %d %s (0-%d)", flag, s, n, flag, n-1)}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
