package tests

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/tokenizer"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/tracecap"
)

// The transformers parity test holds kvsim's OPT engine, checkpoint loaders, captured
// traces and tokenizer to Hugging Face transformers' OPTForCausalLM and GPT2Tokenizer,
// run by scripts/parity/hf_opt.py with Debian's python3-torch.
const (
	// python is Debian's interpreter, the one that sees python3-torch.
	python = "/usr/bin/python3"
	// transformersDir is the transformers snapshot beside the repository (see its README).
	transformersDir = "../../shared/reference/transformers"
	parityScript    = "../scripts/parity/hf_opt.py"
	// trainedModels holds the trained OPT checkpoints the repository ships, one
	// directory each; every one there is compared.
	trainedModels = "../internal/models"

	parityGen = 32 // greedy tokens per prompt
	// Both sides compute in float32 from the same stored weights (transformers reads
	// f16 and bf16 checkpoints into float32), so one bound serves every dtype. Measured
	// once by hand: 3.9e-6 for the logits and 1.4e-5 for the probabilities.
	logitsTolerance = 1e-4 // ‖kvsim − hf‖₂ / ‖hf‖₂ of a row of logits
	probsTolerance  = 1e-4 // |kvsim − hf| of one attention probability
	// pythonTimeout bounds the reference run; it takes about 15 s on 2 cores.
	pythonTimeout = 5 * time.Minute
)

var parityPromptLengths = []int{1, 17, 300, 1000}

// parityModel is one checkpoint; Make, when set, asks the script to write it.
type parityModel struct {
	Name string     `json:"name"`
	Dir  string     `json:"dir"`
	Make *modelMake `json:"make,omitempty"`
}

type modelMake struct {
	Layers     int    `json:"layers"`
	Hidden     int    `json:"hidden"`
	Heads      int    `json:"heads"`
	FFN        int    `json:"ffn"`
	Vocab      int    `json:"vocab"`
	Positions  int    `json:"positions"`
	Proj       int    `json:"proj"` // word_embed_proj_dim
	PreLN      bool   `json:"pre_ln"`
	DType      string `json:"dtype"`  // torch's name: float32, float16, bfloat16
	Format     string `json:"format"` // bin, bin-sharded, safetensors, safetensors-sharded
	ShardBytes int    `json:"shard_bytes,omitempty"`
	Seed       int    `json:"seed"`
}

type parityCase struct {
	Name   string  `json:"name"`
	Model  string  `json:"model"`
	Prompt []int32 `json:"prompt"`
	Gen    int     `json:"gen"`
	Rows   []int   `json:"rows"` // positions whose logits and attention are compared
}

type paritySpec struct {
	Models     []parityModel  `json:"models"`
	Cases      []parityCase   `json:"cases"`
	Texts      []string       `json:"texts"`
	Tokenizers []tokenizerDir `json:"tokenizers"`
}

// tokenizerDir is a directory with vocab.json and merges.txt.
type tokenizerDir struct {
	Dir string `json:"dir"`
}

type parityResult struct {
	Torch        string `json:"torch"`
	Transformers string `json:"transformers"`
	Cases        []struct {
		Name      string  `json:"name"`
		Greedy    []int32 `json:"greedy"`
		Tokens    int     `json:"tokens"` // prompt + greedy
		Vocab     int     `json:"vocab"`
		Layers    int     `json:"layers"`
		Heads     int     `json:"heads"`
		Logits    string  `json:"logits"`    // file name in the output directory
		Attention string  `json:"attention"` // file name in the output directory
		Seconds   float64 `json:"seconds"`
	} `json:"cases"`
	Tokenizers []struct {
		Dir     string   `json:"dir"`
		IDs     [][]int  `json:"ids"`
		Decoded []string `json:"decoded"`
	} `json:"tokenizers"`
}

// randomModels cover pre- and post-LN (the latter with project_in and project_out, as
// opt-350m), each weight dtype with each, and every weights format kvsim reads.
var randomModels = []modelMake{
	{PreLN: true, DType: "float32", Format: "bin"},
	{PreLN: true, DType: "float16", Format: "safetensors"},
	{PreLN: true, DType: "bfloat16", Format: "bin-sharded"},
	{PreLN: false, DType: "float32", Format: "safetensors-sharded"},
	{PreLN: false, DType: "float16", Format: "bin"},
	{PreLN: false, DType: "bfloat16", Format: "safetensors"},
}

// TestTransformersParity writes random OPT checkpoints with transformers, then runs
// prompts of 1, 17, 300 and 1000 tokens through transformers and through kvsim (its
// loaders, the CPU engine and trace capture), and compares the logits, 32 greedy
// tokens, and every layer's attention probabilities, both the engine's and those
// recomputed from the captured trace's q and k. The trained model the repository
// ships is compared the same way, and the tokenizer is compared with GPT2Tokenizer
// set up as OPT's. It skips where Debian's python3-torch or the transformers snapshot
// in ../shared is missing.
func TestTransformersParity(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the transformers parity test runs python")
	}
	requireTransformers(t)
	start := time.Now()
	tmp := t.TempDir()

	spec := paritySpec{Texts: tokenizerTexts(t)}
	tokDir := filepath.Join(tmp, "tokenizer")
	tok := writeTestTokenizer(t, tokDir)
	spec.Tokenizers = append(spec.Tokenizers, tokenizerDir{tokDir})
	tokenizers := map[string]*tokenizer.Tokenizer{}
	for i, mk := range randomModels {
		name := addRandomModel(&spec, tmp, mk, i+1)
		tokenizers[name] = tok
	}
	configs, err := filepath.Glob(filepath.Join(trainedModels, "*", checkpoint.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, config := range configs {
		dir, err := filepath.Abs(filepath.Dir(config))
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(dir)
		tokenizers[name] = addTrainedModel(t, &spec, name, dir)
	}

	out := filepath.Join(tmp, "hf")
	runReference(t, spec, out)
	result := readParityResult(t, filepath.Join(out, "result.json"), len(spec.Cases), len(spec.Tokenizers))
	t.Logf("transformers %s, torch %s: %.1f s to here", result.Transformers, result.Torch, time.Since(start).Seconds())

	traceDir := filepath.Join(tmp, "traces")
	if err := os.Mkdir(traceDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var report []string
	for _, m := range spec.Models {
		t.Run(m.Name, func(t *testing.T) {
			model, err := checkpoint.Load(m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			defer model.Close()
			if m.Make != nil {
				checkLoadedFormat(t, model, m.Make.Format)
			}
			backend, err := cpu.New(model, cpu.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer backend.Close()
			engine := gpu.New(backend)
			for i, c := range spec.Cases {
				if c.Model != m.Name {
					continue
				}
				hf := result.Cases[i]
				if hf.Name != c.Name {
					t.Fatalf("result %d is %q, want %q", i, hf.Name, c.Name)
				}
				d := compareCase(t, engine, tokenizers[m.Name], c, hfCase{greedy: hf.Greedy,
					logits: readF32(t, filepath.Join(out, hf.Logits), len(c.Rows)*hf.Vocab),
					attention: readF32(t, filepath.Join(out, hf.Attention),
						hf.Layers*hf.Heads*len(c.Rows)*hf.Tokens)}, traceDir)
				line := fmt.Sprintf("%-32s logits %.2e  engine attention %.2e  trace attention %.2e  greedy %d/%d  (transformers %.2f s)",
					c.Name, d.logits, d.engineProbs, d.traceProbs, d.agree, c.Gen, hf.Seconds)
				t.Log(line)
				report = append(report, line)
			}
		})
	}
	if len(configs) == 0 {
		t.Run("trained", func(t *testing.T) {
			t.Skipf("no trained model in %s (a directory with %s): nothing to compare", trainedModels, checkpoint.ConfigFile)
		})
	}

	t.Run("tokenizer", func(t *testing.T) {
		for ti, r := range result.Tokenizers {
			kv, err := tokenizer.Load(r.Dir)
			if err != nil {
				t.Fatal(err)
			}
			compared := 0
			for i, text := range spec.Texts {
				got := kv.EncodeWithBOS(text)
				if !slices.Equal(got, r.IDs[i]) {
					t.Errorf("%s: text %d %q:\nkvsim        %v\ntransformers %v", r.Dir, i, clip(text), got, r.IDs[i])
					continue
				}
				compared += len(got)
				back, err := kv.Decode(r.IDs[i])
				if err != nil || back != r.Decoded[i] {
					t.Errorf("%s: text %d: decode: kvsim %q (%v), transformers %q", r.Dir, i, clip(back), err, clip(r.Decoded[i]))
				}
			}
			line := fmt.Sprintf("tokenizer %d (vocab %d): %d texts, %d ids identical", ti, kv.VocabSize(), len(spec.Texts), compared)
			t.Log(line)
			report = append(report, line)
		}
	})
	t.Logf("parity, %.1f s in all:\n%s", time.Since(start).Seconds(), strings.Join(report, "\n"))
}

// requireTransformers skips the test unless Debian's python3 imports torch and the
// packages transformers needs, and the transformers snapshot is beside the repository.
func requireTransformers(t *testing.T) {
	t.Helper()
	if !fileExists(filepath.Join(transformersDir, "src", "transformers", "__init__.py")) {
		t.Skipf("skipped: no transformers snapshot at %s (it lives in ../shared, beside the repository)", transformersDir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", "import torch, numpy, packaging, filelock, regex, tqdm")
	cmd.WaitDelay = 5 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("skipped: %s cannot import Debian's torch and what transformers needs (apt-get install -y python3-torch "+
			"python3-numpy python3-packaging python3-filelock python3-regex python3-tqdm): %v\n%s", python, err, out)
	}
}

// addRandomModel completes mk (2 layers, hidden 64, 4 heads, 1032 positions) and adds
// it to spec with a random prompt of each length; it returns the model's name.
func addRandomModel(spec *paritySpec, dir string, mk modelMake, seed int) string {
	mk.Layers, mk.Hidden, mk.Heads, mk.FFN, mk.Vocab, mk.Positions = 2, 64, 4, 256, 512, 1000+parityGen
	mk.Proj, mk.Seed = 64, seed
	if !mk.PreLN {
		mk.Proj = 32 // project_in and project_out, as opt-350m
	}
	if strings.HasSuffix(mk.Format, "-sharded") {
		mk.ShardBytes = 150_000 // 3 or 4 shards
	}
	name := fmt.Sprintf("%s-%s-%s", map[bool]string{true: "pre", false: "post"}[mk.PreLN], mk.DType, mk.Format)
	spec.Models = append(spec.Models, parityModel{Name: name, Dir: filepath.Join(dir, name), Make: &mk})
	rng := rand.New(rand.NewPCG(uint64(seed), 13))
	for _, n := range parityPromptLengths {
		prompt := make([]int32, n)
		prompt[0] = 2 // "</s>", as OPT's tokenizer starts every prompt
		for j := 1; j < n; j++ {
			prompt[j] = int32(4 + rng.IntN(mk.Vocab-4))
		}
		spec.Cases = append(spec.Cases, newParityCase(name, prompt))
	}
	return name
}

// addTrainedModel adds the trained checkpoint in dir to spec, with prompts cut from
// RATIONALE.md (at most the model's positions less the greedy tokens), and its
// tokenizer to the tokenizer comparison; it returns the tokenizer.
func addTrainedModel(t *testing.T, spec *paritySpec, name, dir string) *tokenizer.Tokenizer {
	t.Helper()
	cfg, err := checkpoint.LoadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile("../RATIONALE.md")
	if err != nil {
		t.Fatal(err)
	}
	ids := tok.EncodeWithBOS(strings.Repeat(string(text), 2))
	spec.Models = append(spec.Models, parityModel{Name: name, Dir: dir})
	spec.Tokenizers = append(spec.Tokenizers, tokenizerDir{dir})
	for i, n := range parityPromptLengths {
		// "</s>", then the text from a different place for each length.
		from := 1 + 97*i
		n = min(n, cfg.MaxPositionEmbeddings-parityGen, len(ids)-from+1)
		prompt := []int32{int32(ids[0])}
		for _, id := range ids[from : from+n-1] {
			prompt = append(prompt, int32(id))
		}
		spec.Cases = append(spec.Cases, newParityCase(name, prompt))
	}
	return tok
}

func newParityCase(model string, prompt []int32) parityCase {
	return parityCase{Name: fmt.Sprintf("%s/%d", model, len(prompt)), Model: model, Prompt: prompt, Gen: parityGen,
		Rows: parityRows(len(prompt) + parityGen)}
}

// parityRows picks the positions compared: all of a short sequence; of a long one
// the first 32, every 29th and the last 64 (the end of the prompt and every
// generated token), which keeps the reference's output small.
func parityRows(tokens int) []int {
	var rows []int
	for r := range tokens {
		if tokens <= 128 || r < 32 || r%29 == 0 || r >= tokens-64 {
			rows = append(rows, r)
		}
	}
	return rows
}

// runReference runs the script on spec, bounded by pythonTimeout.
func runReference(t *testing.T, spec paritySpec, out string) {
	t.Helper()
	specPath := filepath.Join(t.TempDir(), "spec.json")
	data, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(specPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), pythonTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, parityScript, transformersDir, specPath, out)
	cmd.WaitDelay = 10 * time.Second
	start := time.Now()
	text, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s ran past %v:\n%s", parityScript, pythonTimeout, text)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", parityScript, err, text)
	}
	t.Logf("transformers' side: %.1f s, %.1f s of CPU", time.Since(start).Seconds(),
		(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds())
}

func readParityResult(t *testing.T, path string, cases, tokenizers int) parityResult {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r parityResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(r.Cases) != cases || len(r.Tokenizers) != tokenizers {
		t.Fatalf("%s: %d cases and %d tokenizers, want %d and %d", path, len(r.Cases), len(r.Tokenizers), cases, tokenizers)
	}
	return r
}

func readF32(t *testing.T, path string, n int) []float32 {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 4*n {
		t.Fatalf("%s: %d bytes, want %d float32", path, len(data), n)
	}
	x := make([]float32, n)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return x
}

// checkLoadedFormat checks that kvsim read the weights in the form transformers (or
// the script) wrote them: a sharded checkpoint through its index, in several files.
func checkLoadedFormat(t *testing.T, m *checkpoint.Model, format string) {
	t.Helper()
	want := checkpoint.PyTorch
	if strings.HasPrefix(format, "safetensors") {
		want = checkpoint.Safetensors
	}
	sharded := strings.HasSuffix(format, "-sharded")
	if m.Format != want || sharded != (len(m.Files) > 1) {
		t.Errorf("%s checkpoint loaded as %v from %d files", format, m.Format, len(m.Files))
	}
	if len(m.Unused) > 0 {
		t.Errorf("%s checkpoint: tensors left unused: %v", format, m.Unused)
	}
}

// hfCase is transformers' side of one case: its greedy tokens, and the logits
// [rows][vocab] and attention [layers][heads][rows][tokens] of the case's rows over
// prompt + greedy.
type hfCase struct {
	greedy            []int32
	logits, attention []float32
}

// deviations are the largest differences of one case.
type deviations struct {
	logits      float64 // relative, per row
	engineProbs float64 // the engine's attention probabilities
	traceProbs  float64 // probabilities recomputed from the captured trace
	agree       int     // greedy tokens equal before the first difference
}

// compareCase runs one case through kvsim twice: a capture (kvsim's own greedy
// decoding, written as an f32 trace), and the engine fed transformers' tokens, the
// prompt in one batch and then one token at a time, with logits and attention
// probabilities of every row.
func compareCase(t *testing.T, engine *gpu.Engine, tok *tokenizer.Tokenizer, c parityCase, hf hfCase, traceDir string) deviations {
	t.Helper()
	cfg := engine.Config()
	P, T, V := len(c.Prompt), len(c.Prompt)+c.Gen, cfg.VocabSize
	L, H := cfg.NumHiddenLayers, cfg.NumAttentionHeads
	rowIndex := make(map[int]int, len(c.Rows))
	for i, r := range c.Rows {
		rowIndex[r] = i
	}
	var d deviations

	// The engine, teacher-forced on transformers' tokens.
	seq, err := engine.NewSequence(T, false)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	observe := func(v *gpu.LayerView) error {
		for rr, p := range v.Positions {
			ri, ok := rowIndex[int(p)]
			if !ok {
				continue
			}
			for h := range H {
				got := v.ProbsRow(h, rr) // plain decoding: position s sits in slot s
				want := hf.attention[((v.Layer*H+h)*len(c.Rows)+ri)*T:][:T]
				for s := range T {
					d.engineProbs = max(d.engineProbs, math.Abs(float64(got[s])-float64(want[s])))
				}
			}
		}
		return nil
	}
	compareLogits := func(firstPos int, logits []float32) {
		for i := range len(logits) / V {
			ri, ok := rowIndex[firstPos+i]
			if !ok {
				continue
			}
			d.logits = max(d.logits, relativeError(logits[i*V:(i+1)*V], hf.logits[ri*V:(ri+1)*V]))
		}
	}
	want := gpu.Want{Probs: true}
	logits := make([]float32, P*V)
	if err := seq.Feed(c.Prompt, gpu.Outputs{Logits: logits, Want: want, Observe: observe}); err != nil {
		t.Fatal(err)
	}
	compareLogits(0, logits)
	for i, next := range hf.greedy {
		row := logits[:V]
		if err := seq.Feed([]int32{next}, gpu.Outputs{Logits: row, Want: want, Observe: observe}); err != nil {
			t.Fatal(err)
		}
		compareLogits(P+i, row)
	}

	// Capture: kvsim's greedy tokens, and the trace's q and k.
	capturer, err := tracecap.New(engine, tok, tracecap.Options{Template: "{document}", GenTokens: c.Gen,
		IgnoreEOS: true, DType: half.F32, Model: c.Model})
	if err != nil {
		t.Fatal(err)
	}
	job := tracecap.Job{Sample: dataset.Sample{ID: c.Name}, Prompt: dataset.Prompt{Tokens: c.Prompt},
		Path: filepath.Join(traceDir, strings.ReplaceAll(c.Name, "/", "-")+".kvtrace.safetensors")}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := capturer.Capture(ctx, &job, nil); err != nil {
		t.Fatal(err)
	}
	trace, err := kvtrace.Open(job.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer trace.Close()
	greedy := trace.Tokens()[P:]
	for d.agree < len(greedy) && d.agree < len(hf.greedy) && greedy[d.agree] == hf.greedy[d.agree] {
		d.agree++
	}
	if d.agree != c.Gen || len(greedy) != c.Gen {
		t.Errorf("%s: greedy tokens differ at step %d:\nkvsim        %v\ntransformers %v", c.Name, d.agree, greedy, hf.greedy)
	}
	// The trace's attention, where its tokens are transformers' ones.
	D := cfg.HeadDim()
	var q, k []float32
	p := make([]float64, T)
	for l := range L {
		if q, err = trace.Read(kvtrace.Q, l, q); err != nil {
			t.Fatal(err)
		}
		if k, err = trace.Read(kvtrace.K, l, k); err != nil {
			t.Fatal(err)
		}
		for ri, r := range c.Rows {
			if r >= P+d.agree {
				break
			}
			for h := range H {
				softmaxRow(p[:r+1], q[(h*T+r)*D:][:D], k[h*T*D:], D)
				want := hf.attention[((l*H+h)*len(c.Rows)+ri)*T:][:T]
				for s := range T {
					got := 0.0
					if s <= r {
						got = p[s]
					}
					d.traceProbs = max(d.traceProbs, math.Abs(got-float64(want[s])))
				}
			}
		}
	}

	if d.logits > logitsTolerance {
		t.Errorf("%s: logits differ by %.3g relative, above %g", c.Name, d.logits, logitsTolerance)
	}
	if d.engineProbs > probsTolerance || d.traceProbs > probsTolerance {
		t.Errorf("%s: attention probabilities differ by %.3g (engine) and %.3g (trace), above %g",
			c.Name, d.engineProbs, d.traceProbs, probsTolerance)
	}
	return d
}

// softmaxRow sets p[j] to the softmax over j of q·k_j, in float64.
func softmaxRow(p []float64, q, k []float32, d int) {
	top := math.Inf(-1)
	for j := range p {
		var dot float64
		for i, x := range k[j*d : (j+1)*d] {
			dot += float64(q[i]) * float64(x)
		}
		p[j] = dot
		top = max(top, dot)
	}
	var sum float64
	for j := range p {
		p[j] = math.Exp(p[j] - top)
		sum += p[j]
	}
	for j := range p {
		p[j] /= sum
	}
}

// relativeError is ‖got − want‖₂ / ‖want‖₂.
func relativeError(got, want []float32) float64 {
	var diff, norm float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		diff += e * e
		norm += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(diff / norm)
}

// writeTestTokenizer trains a small BPE vocabulary on the repository's prose and
// writes it as vocab.json and merges.txt, for the random models and for the
// tokenizer comparison.
func writeTestTokenizer(t *testing.T, dir string) *tokenizer.Tokenizer {
	t.Helper()
	text, err := os.ReadFile("../RATIONALE.md")
	if err != nil {
		t.Fatal(err)
	}
	vocab, merges := tokenizer.TrainTiny(string(text), 500)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := tokenizer.Write(dir, vocab, merges); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// tokenizerTexts is the tokenizer comparison's text set: the cases GPT-2's
// pre-tokenizer and OPT's special tokens make tricky, then the README whole.
func tokenizerTexts(t *testing.T) []string {
	t.Helper()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	return []string{
		"",
		"Hello world",
		"The model's cache isn't full; they're sure we've seen it, you'll see, I'm told he'd go.",
		"DON'T SHOUT: IT'S LOUD, WE'VE HEARD. 'tis o'clock, rock'n'roll, ''quoted'' '",
		"  leading spaces, trailing ones   ",
		"a  b   c\t\td\n\n\ne \u00a0f\u3000g   \n  h\r\n\r\ni\u2028j \u2009k",
		" \t\n ",
		"a\x1cb\x1fc\u0085d\ufeffe\u200bf\x00g\x7fh",
		"naïve café in Zürich; Ελληνικά; русский текст; 日本語のテキスト; 한국어; العربية; עברית; हिन्दी",
		"emoji 👩‍👩‍👧 🚀🚀 and flags 🇫🇷, combining e\u0301 vs é, math ∑∞≤≠ √2, arrows → ⇒",
		"In 2023, 3.14159 and 1,000,000 people; ١٢٣ and ²³ and ½; phone 555-0100; v1.2.3-rc4",
		"!!!???...---***___ ((()))[]{} <<>> @#$%^&* ~`|\\",
		"before</s>after, </s> spaced </s> and</s></s>twice",
		"<pad>x</s><pad> and <s>not special<unk> and </s</s>> and <pad",
		"func main() {\n\tfmt.Println(\"hi\") // comment\n}\n",
		"mixedCASE camelCaseWord snake_case_word kebab-case-word UPPER123lower",
		strings.Repeat("ab", 300) + " " + strings.Repeat("x", 200),
		string(readme),
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, os.ErrNotExist)
}
