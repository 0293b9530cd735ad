package tracecap

import (
	"context"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/tokenizer"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

const corpus = `The council said the new bridge would open in the spring, after two years of work.
Residents had complained about the traffic on the old road for a long time.
The minister said the plan would cost less than the one proposed last year.
Scientists found that the birds return to the same island every summer to breed.
The club has not won the cup since 1998, and fans hope the new coach can change that. `

// tinyModel writes a two-layer random OPT with a tokenizer trained on corpus, and
// returns an engine on the CPU backend and the tokenizer.
func tinyModel(t *testing.T) (*gpu.Engine, *tokenizer.Tokenizer) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "model")
	err := checkpoint.WriteSynth(dir, checkpoint.SynthOptions{
		NumHiddenLayers: 2, HiddenSize: 64, NumAttentionHeads: 4, VocabSize: 400,
		MaxPositionEmbeddings: 128, DType: half.F32, Seed: 5, Formats: checkpoint.Safetensors,
		TokenizerCorpus: strings.Repeat(corpus, 3),
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := checkpoint.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b, err := cpu.New(m, cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return gpu.New(b), tok
}

func samples() []dataset.Sample {
	lines := strings.Split(strings.TrimSpace(corpus), "\n")
	return []dataset.Sample{
		{Index: 0, Line: 1, ID: "x0", Document: lines[0] + " " + lines[1], Reference: "A bridge opens."},
		{Index: 1, Line: 2, ID: "x1", Document: lines[3] + " " + lines[4], Reference: "Birds and a cup."},
	}
}

// TestCaptureAttention captures a sample in f32, then decodes it again with the
// engine's attention probabilities observed: the softmax of the trace's q·k over
// tokens 0..t, computed in float64, must equal them for every layer, head and token.
func TestCaptureAttention(t *testing.T) {
	engine, tok := tinyModel(t)
	c, err := New(engine, tok, Options{GenTokens: 6, IgnoreEOS: true, DType: half.F32, Dataset: "test.jsonl"})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jobs, err := c.Plan(samples()[:1], dir)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Capture(context.Background(), &jobs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := kvtrace.Open(res.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	meta := tr.Meta()
	P, T := meta.PromptLen, meta.Tokens()
	if P != len(jobs[0].Prompt.Tokens) || meta.GenLen != 6 || meta.Source != kvtrace.SourceCPU || !meta.HasV {
		t.Fatalf("metadata %+v", meta)
	}

	// The same decoding, observed: probs[l][h][t][j].
	cfg := engine.Config()
	H, d := cfg.NumAttentionHeads, cfg.HeadDim()
	probs := make([][][][]float32, cfg.NumHiddenLayers)
	for l := range probs {
		probs[l] = make([][][]float32, H)
	}
	_, err = engine.Generate(context.Background(), jobs[0].Prompt.Tokens, gpu.GenerateOptions{MaxNew: 6, IgnoreEOS: true,
		Want: gpu.Want{Probs: true}, Observe: func(v *gpu.LayerView) error {
			for h := range H {
				for r := range v.Rows {
					probs[v.Layer][h] = append(probs[v.Layer][h], slices.Clone(v.ProbsRow(h, r)))
				}
			}
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	var worst float64
	for l := range cfg.NumHiddenLayers {
		q, _ := tr.Read(kvtrace.Q, l, nil)
		k, _ := tr.Read(kvtrace.K, l, nil)
		for h := range H {
			for i := range T {
				logits := make([]float64, i+1)
				maxLogit := math.Inf(-1)
				for j := range logits {
					for x := range d {
						logits[j] += float64(q[(h*T+i)*d+x]) * float64(k[(h*T+j)*d+x])
					}
					maxLogit = math.Max(maxLogit, logits[j])
				}
				var sum float64
				for j := range logits {
					logits[j] = math.Exp(logits[j] - maxLogit)
					sum += logits[j]
				}
				for j, e := range probs[l][h][i] {
					want := 0.0
					if j <= i {
						want = logits[j] / sum
					}
					worst = math.Max(worst, math.Abs(float64(e)-want))
				}
			}
		}
	}
	if worst > 1e-6 {
		t.Errorf("attention from the trace differs from the engine's by up to %.2g", worst)
	}
}

// TestCaptureSelectionAndResume keeps one layer, two heads, no V, in bf16; checks
// the trace's shapes, tokens and metadata; then checks that a rerun skips the
// finished samples and that a rerun with other options is refused.
func TestCaptureSelectionAndResume(t *testing.T) {
	engine, tok := tinyModel(t)
	opts := Options{GenTokens: 5, Layers: []int{1}, Heads: []int{3, 1}, NoV: true, DType: half.BF16,
		MaxPromptTokens: 60, Model: "tiny", Dataset: "test.jsonl"}
	c, err := New(engine, tok, opts)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jobs, err := c.Plan(samples(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var fed int
	for i := range jobs {
		if jobs[i].Done {
			t.Fatalf("job %d done before any capture", i)
		}
		res, err := c.Capture(context.Background(), &jobs[i], func(n int) { fed += n })
		if err != nil {
			t.Fatal(err)
		}
		if res.Path != filepath.Join(dir, []string{"sample-000000.kvtrace.safetensors", "sample-000001.kvtrace.safetensors"}[i]) {
			t.Errorf("trace written to %s", res.Path)
		}
		tr, err := kvtrace.Open(res.Path)
		if err != nil {
			t.Fatal(err)
		}
		meta := tr.Meta()
		p := jobs[i].Prompt
		if meta.Layers != 1 || meta.Heads != 2 || meta.HasV || tr.DType() != half.BF16 || meta.Model != "tiny" ||
			meta.PromptLen != len(p.Tokens) || meta.PromptLen > 60 || !p.Truncated {
			t.Errorf("sample %d: metadata %+v, dtype %v", i, meta, tr.DType())
		}
		tokens := tr.Tokens()
		if !slices.Equal(tokens[:meta.PromptLen], p.Tokens) {
			t.Errorf("sample %d: trace tokens %v do not start with the prompt %v", i, tokens, p.Tokens)
		}
		var gen []int // the generated ids the tokenizer knows
		for _, id := range tokens[meta.PromptLen:] {
			if tok.Token(int(id)) != "" {
				gen = append(gen, int(id))
			}
		}
		if text, _ := tok.Decode(gen); text != meta.Generated {
			t.Errorf("sample %d: generated text %q, the tokens decode to %q", i, meta.Generated, text)
		}
		stopped := meta.Extra["stopped_at_eos"] == "true"
		if meta.Prompt != p.Text || meta.Reference != jobs[i].Sample.Reference || meta.SampleID != jobs[i].Sample.ID ||
			meta.Extra["capture_layers"] != "1" || meta.Extra["capture_heads"] != "1,3" ||
			meta.Extra["template"] != dataset.DefaultTemplate || meta.Extra["truncated"] != "true" ||
			meta.Extra["dataset"] != "test.jsonl" || meta.Extra["sample_index"] != []string{"0", "1"}[i] ||
			stopped != (meta.GenLen < 5) || res.EOS != stopped {
			t.Errorf("sample %d: metadata %+v", i, meta)
		}
		tr.Close()
	}
	if want := jobs[0].Prompt.Tokens; fed < len(want)+1 {
		t.Errorf("progress saw %d tokens", fed)
	}

	// The trace's layer 0 is model layer 1; its heads are model heads 1 and 3.
	full, err := New(engine, tok, Options{GenTokens: 5, MaxPromptTokens: 60, DType: half.BF16})
	if err != nil {
		t.Fatal(err)
	}
	fullJobs, err := full.Plan(samples()[:1], t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fullRes, err := full.Capture(context.Background(), &fullJobs[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := kvtrace.Open(jobs[0].Path)
	b, _ := kvtrace.Open(fullRes.Path)
	defer a.Close()
	defer b.Close()
	kSub, _ := a.Read(kvtrace.K, 0, nil)
	kAll, _ := b.Read(kvtrace.K, 1, nil)
	n := len(kSub) / 2
	if !slices.Equal(kSub[:n], kAll[1*n:2*n]) || !slices.Equal(kSub[n:], kAll[3*n:4*n]) {
		t.Error("the selected heads are not model heads 1 and 3 of layer 1")
	}

	// A capture killed while writing leaves a temporary file; the resume removes it.
	stale := kvtrace.TempPath(filepath.Join(dir, "sample-000002.kvtrace.safetensors"), "killed")
	if err := os.WriteFile(stale, []byte("half a trace"), 0o644); err != nil {
		t.Fatal(err)
	}
	again, err := c.Plan(samples(), dir)
	if err != nil || !again[0].Done || !again[1].Done {
		t.Fatalf("rerun: jobs %+v, %v", again, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the resume left %s: %v", stale, err)
	}
	if names, _ := filepath.Glob(filepath.Join(dir, "sample-*")); len(names) != 2 {
		t.Errorf("sample-* matches %v, want the two traces", names)
	}
	opts.GenTokens = 6
	other, err := New(engine, tok, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Plan(samples(), dir); err == nil || !strings.Contains(err.Error(), "other options") {
		t.Errorf("rerun with other options: %v", err)
	}
}

func TestCaptureOptionErrors(t *testing.T) {
	engine, tok := tinyModel(t)
	cases := []struct {
		opts Options
		want string
	}{
		{Options{Template: "no placeholder"}, "placeholders"},
		{Options{GenTokens: -1}, "generated tokens"},
		{Options{GenTokens: 100, MaxPromptTokens: 40}, "40 prompt tokens and 100 generated exceed the model's 128 positions; allow at most 28 prompt tokens"},
		{Options{GenTokens: 127}, "127 generated tokens leave no room for a prompt in the model's 128 positions; generate at most 126"},
		{Options{GenTokens: 64, MaxPromptTokens: 1}, "a prompt of at most 1 tokens cannot hold the text: a prompt needs at least 2"},
		{Options{GenTokens: 64, MaxPromptTokens: -5}, "a prompt of at most -5 tokens"},
		{Options{Layers: []int{2}}, "layer 2 out of range [0, 2)"},
		{Options{Heads: []int{1, 1}}, "head 1 selected twice"},
		{Options{Layers: []int{}}, "no layers"},
		{Options{DType: half.DType(9)}, "dtype"},
	}
	for _, c := range cases {
		if _, err := New(engine, tok, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.opts, err, c.want)
		}
	}
	// A trace that is not one of ours in the output directory.
	c, err := New(engine, tok, Options{GenTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(TracePath(dir, 0), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Plan(samples()[:1], dir); err == nil || !strings.Contains(err.Error(), "sample-000000") {
		t.Errorf("a junk file in place of a trace: %v", err)
	}
}
