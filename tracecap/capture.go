package tracecap

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/tokenizer"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// Options configures a capture. Zero fields take the defaults noted, except
// GenTokens: 0 captures the prompts alone.
type Options struct {
	Template string // with one {document}; "" is dataset.DefaultTemplate
	// MaxPromptTokens bounds each prompt, "</s>" included; documents are cut to fit.
	// 0 means the model's positions less GenTokens.
	MaxPromptTokens int
	GenTokens       int  // generated tokens at most
	IgnoreEOS       bool // generate GenTokens tokens even past end-of-sequence
	// Layers and Heads select what to keep, by model index; nil keeps all.
	Layers, Heads []int
	NoV           bool       // leave the values out
	DType         half.DType // 0 is F16
	// Model names the model in the metadata; "" takes the config's _name_or_path.
	Model string
	// Dataset names the data in the metadata, e.g. the file's base name.
	Dataset string
}

// Capturer captures traces of one model.
type Capturer struct {
	engine   *gpu.Engine
	tok      *tokenizer.Tokenizer
	opts     Options
	template dataset.Template
	layers   []int // model layers kept, ascending
	heads    []int // model heads kept, ascending
	source   string
	options  string // canonical description of the options, for resuming
}

// New checks the options against the engine's model and makes a capturer.
func New(engine *gpu.Engine, tok *tokenizer.Tokenizer, o Options) (*Capturer, error) {
	cfg := engine.Config()
	if o.Template == "" {
		o.Template = dataset.DefaultTemplate
	}
	if o.DType == 0 {
		o.DType = half.F16
	}
	if o.Model == "" {
		o.Model = cfg.NameOrPath
	}
	template, err := dataset.ParseTemplate(o.Template)
	if err != nil {
		return nil, fmt.Errorf("capture: %w", err)
	}
	if o.GenTokens < 0 {
		return nil, fmt.Errorf("capture: %d generated tokens", o.GenTokens)
	}
	positions := cfg.MaxPositionEmbeddings
	room := positions - o.GenTokens // positions left for the prompt
	switch {
	case room < 2:
		return nil, fmt.Errorf("capture: %d generated tokens leave no room for a prompt in the model's %d positions; generate at most %d",
			o.GenTokens, positions, positions-2)
	case o.MaxPromptTokens < 0 || o.MaxPromptTokens == 1:
		return nil, fmt.Errorf("capture: a prompt of at most %d tokens cannot hold the text: a prompt needs at least 2 (</s> and one token of text)",
			o.MaxPromptTokens)
	case o.MaxPromptTokens > room:
		return nil, fmt.Errorf("capture: %d prompt tokens and %d generated exceed the model's %d positions; allow at most %d prompt tokens, or generate fewer",
			o.MaxPromptTokens, o.GenTokens, positions, room)
	case o.MaxPromptTokens == 0:
		o.MaxPromptTokens = room
	}
	switch o.DType {
	case half.F16, half.BF16, half.F32:
	default:
		return nil, fmt.Errorf("capture: dtype %q, want %s, %s or %s", o.DType, half.F16, half.BF16, half.F32)
	}
	c := &Capturer{engine: engine, tok: tok, opts: o, template: template, source: kvtrace.SourceGPU}
	if engine.Backend().Name() == "cpu" {
		c.source = kvtrace.SourceCPU
	}
	if c.layers, err = selection("layer", o.Layers, cfg.NumHiddenLayers); err != nil {
		return nil, err
	}
	if c.heads, err = selection("head", o.Heads, cfg.NumAttentionHeads); err != nil {
		return nil, err
	}
	c.options = fmt.Sprintf("model=%s template=%q max_prompt_tokens=%d gen_tokens=%d ignore_eos=%t layers=%s heads=%s v=%t dtype=%s",
		o.Model, o.Template, o.MaxPromptTokens, o.GenTokens, o.IgnoreEOS, joinInts(c.layers), joinInts(c.heads), !o.NoV, o.DType)
	return c, nil
}

// selection checks and sorts indices below n; nil selects all of them.
func selection(what string, indices []int, n int) ([]int, error) {
	if indices == nil {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all, nil
	}
	if len(indices) == 0 {
		return nil, fmt.Errorf("capture: no %ss selected", what)
	}
	out := slices.Clone(indices)
	slices.Sort(out)
	for i, x := range out {
		if x < 0 || x >= n {
			return nil, fmt.Errorf("capture: %s %d out of range [0, %d)", what, x, n)
		}
		if i > 0 && out[i-1] == x {
			return nil, fmt.Errorf("capture: %s %d selected twice", what, x)
		}
	}
	return out, nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// Job is one sample to capture.
type Job struct {
	Sample dataset.Sample
	Prompt dataset.Prompt
	Path   string
	// Done reports that the trace exists from an earlier run with the same options.
	Done bool
}

// MaxTokens is the most tokens the job runs: its prompt and GenTokens.
func (c *Capturer) MaxTokens(j *Job) int { return len(j.Prompt.Tokens) + c.opts.GenTokens }

// TracePath is where sample index's trace goes in dir.
func TracePath(dir string, index int) string {
	return filepath.Join(dir, fmt.Sprintf("sample-%06d.kvtrace.safetensors", index))
}

// Plan builds each sample's prompt and finds the traces already in dir. A trace
// there that was captured with other options is an error. It removes the
// temporary files of an interrupted capture into dir, so only one capture may use
// dir at a time.
func (c *Capturer) Plan(samples []dataset.Sample, dir string) ([]Job, error) {
	if _, err := kvtrace.RemoveTemps(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("capture: %w", err)
	}
	jobs := make([]Job, len(samples))
	for i, s := range samples {
		p, err := c.template.Build(c.tok, s.Document, c.opts.MaxPromptTokens)
		if err != nil {
			return nil, fmt.Errorf("sample %d (line %d): %w", s.Index, s.Line, err)
		}
		jobs[i] = Job{Sample: s, Prompt: p, Path: TracePath(dir, s.Index)}
		if jobs[i].Done, err = c.done(jobs[i].Path); err != nil {
			return nil, err
		}
	}
	return jobs, nil
}

// done reports whether path holds a trace captured with c's options.
func (c *Capturer) done(path string) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	t, err := kvtrace.Open(path)
	if err != nil {
		return false, fmt.Errorf("capture: existing trace: %w", err)
	}
	defer t.Close()
	if got := t.Meta().Extra[keyOptions]; got != c.options {
		return false, fmt.Errorf("capture: %s exists but was captured with other options:\n  it has  %s\n  now     %s\nuse another output directory, or remove it",
			path, got, c.options)
	}
	return true, nil
}

// Extra metadata keys; see the package doc.
const (
	keyOptions = "capture_options"
)

// Result describes one captured trace.
type Result struct {
	Path            string
	PromptTokens    int
	GeneratedTokens int
	EOS             bool // generation stopped at end-of-sequence
	Prefill, Decode time.Duration
	Bytes           int64 // file size
}

// Capture decodes one job's prompt and writes its trace. progress, when set, is
// called with the number of tokens of each forward pass.
func (c *Capturer) Capture(ctx context.Context, j *Job, progress func(tokens int)) (*Result, error) {
	cfg := c.engine.Config()
	P := len(j.Prompt.Tokens)
	rec := newRecorder(c, P+c.opts.GenTokens, cfg.HeadDim())
	want := gpu.Want{QKV: true, Layers: make([]bool, cfg.NumHiddenLayers)}
	for _, l := range c.layers {
		want.Layers[l] = true
	}
	g, err := c.engine.Generate(ctx, j.Prompt.Tokens, gpu.GenerateOptions{MaxNew: c.opts.GenTokens,
		IgnoreEOS: c.opts.IgnoreEOS, Want: want, Observe: rec.observe, Progress: progress})
	if err != nil {
		return nil, fmt.Errorf("sample %d: %w", j.Sample.Index, err)
	}
	generated, err := c.tok.DecodeKnown(g.Tokens)
	if err != nil {
		return nil, fmt.Errorf("sample %d: decoding the generated tokens: %w", j.Sample.Index, err)
	}
	meta := kvtrace.Meta{
		Model: c.opts.Model, Layers: len(c.layers), Heads: len(c.heads), HeadDim: cfg.HeadDim(),
		PromptLen: P, GenLen: len(g.Tokens), Source: c.source, SampleID: j.Sample.ID, HasV: !c.opts.NoV,
		Prompt: j.Prompt.Text, Reference: j.Sample.Reference, Generated: generated,
		Extra: map[string]string{
			"dataset":           c.opts.Dataset,
			"sample_index":      strconv.Itoa(j.Sample.Index),
			"template":          c.opts.Template,
			"max_prompt_tokens": strconv.Itoa(c.opts.MaxPromptTokens),
			"gen_tokens":        strconv.Itoa(c.opts.GenTokens),
			"ignore_eos":        strconv.FormatBool(c.opts.IgnoreEOS),
			"truncated":         strconv.FormatBool(j.Prompt.Truncated),
			"stopped_at_eos":    strconv.FormatBool(g.EOS),
			"capture_layers":    joinInts(c.layers),
			"capture_heads":     joinInts(c.heads),
			"weights_dtype":     c.weightsDType(),
			keyOptions:          c.options,
		},
	}
	tokens := append(slices.Clone(j.Prompt.Tokens), g.Tokens...)
	if err := rec.write(j.Path, meta, tokens); err != nil {
		return nil, err
	}
	r := &Result{Path: j.Path, PromptTokens: P, GeneratedTokens: len(g.Tokens), EOS: g.EOS,
		Prefill: g.Prefill, Decode: g.Decode}
	if info, err := os.Stat(j.Path); err == nil {
		r.Bytes = info.Size()
	}
	return r, nil
}

// weightsDType is the model's torch_dtype as its config states it.
func (c *Capturer) weightsDType() string {
	if d := c.engine.Config().TorchDType; d != "" {
		return d
	}
	return "unknown"
}
