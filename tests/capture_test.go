package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const captureData = `{"id": "a", "document": "The government said on Monday that the new rail line would open next year, two years later than planned. Officials blamed the delay on rising costs.", "summary": "A new rail line is two years late."}
{"id": "b", "document": "Police are appealing for witnesses after a man was injured in the city centre on Saturday night.", "summary": "A man was hurt in the city centre."}
{"id": "c", "document": "The club confirmed that its captain will miss the rest of the season with a knee injury.", "summary": "The captain is out for the season."}
`

// TestCaptureEndToEnd synthesizes a tiny OPT, captures two samples of a JSONL
// dataset, inspects a trace, replays the traces with a scenario, and reruns the
// capture to check that it resumes.
func TestCaptureEndToEnd(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	r := run(t, "model", "synth", "-layers", "2", "-hidden", "64", "-heads", "4", "-vocab", "400",
		"-positions", "256", model)
	if r.code != 0 || !strings.Contains(r.stdout, "2 layers × 4 heads, hidden 64") {
		t.Fatalf("model synth: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, f := range []string{"config.json", "model.safetensors", "pytorch_model.bin", "vocab.json", "merges.txt"} {
		if _, err := os.Stat(filepath.Join(model, f)); err != nil {
			t.Errorf("model synth wrote no %s", f)
		}
	}
	data := filepath.Join(dir, "data.jsonl")
	if err := os.WriteFile(data, []byte(captureData), 0o644); err != nil {
		t.Fatal(err)
	}
	traces := filepath.Join(dir, "traces")
	capture := []string{"capture", "-model", model, "-data", data, "-out", traces, "-samples", "2",
		"-gen", "8", "-ignore-eos", "-max-prompt", "64"}
	r = run(t, capture...)
	if r.code != 0 {
		t.Fatalf("capture: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "captured 2 samples") || !strings.Contains(r.stdout, "(document cut) + generated 8") {
		t.Errorf("capture printed:\n%s", r.stdout)
	}
	files, _ := filepath.Glob(filepath.Join(traces, "*.kvtrace.safetensors"))
	if len(files) != 2 || filepath.Base(files[0]) != "sample-000000.kvtrace.safetensors" {
		t.Fatalf("traces %v", files)
	}

	info := run(t, "trace", "info", files[1])
	for _, want := range []string{"model      kvsim/synth-opt-125m", "source     cpu", "sample     b",
		"2 layers × 4 heads × 16 head_dim, dtype F16, V true", "64 prompt + 8 generated",
		`prompt     "###\nArticle: Police are appealing`, `reference  "A man was hurt in the city centre."`, "generated"} {
		if !strings.Contains(info.stdout, want) {
			t.Errorf("trace info lacks %q:\n%s", want, info.stdout)
		}
	}
	if strings.Contains(info.stdout, "not an OPT measurement") {
		t.Errorf("a captured trace is labelled synthetic:\n%s", info.stdout)
	}

	scenario := filepath.Join(dir, "captured.toml")
	os.WriteFile(scenario, []byte(`
budgets = [0.25, 16]
traces = ["traces/*.kvtrace.safetensors"]
[[policy]]
name = "full"
[[policy]]
name = "h2o"
`), 0o644)
	r = run(t, "replay", "-format", "csv", scenario)
	if r.code != 0 {
		t.Fatalf("replay: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "full,") || !strings.Contains(r.stdout, "h2o,") || strings.Contains(r.stdout, "synthetic") {
		t.Errorf("replay printed:\n%s", r.stdout)
	}

	r = run(t, capture...)
	if r.code != 0 || !strings.Contains(r.stdout, "captured 0 samples") || !strings.Contains(r.stdout, "skipped 2 already done") {
		t.Errorf("rerun: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, append(capture[:len(capture):len(capture)], "-dtype", "f32")...)
	if r.code != 1 || !strings.Contains(r.stderr, "captured with other options") {
		t.Errorf("rerun with other options: exit %d\n%s", r.code, r.stderr)
	}
}

// TestCaptureBadInput: mistakes in the data, the model or the flags exit non-zero
// with a message naming the file, the line or the flag.
func TestCaptureBadInput(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if r := run(t, "model", "synth", "-layers", "1", "-hidden", "32", "-heads", "2", "-vocab", "300", "-positions", "64",
		"-formats", "safetensors", model); r.code != 0 {
		t.Fatalf("model synth: %s", r.stderr)
	}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	good := write("good.jsonl", `{"document": "A short text.", "summary": "Short."}`+"\n")
	out := filepath.Join(dir, "out")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad JSON line", []string{"-model", model, "-data", write("bad.jsonl", "{\"document\": \"a\", \"summary\": \"b\"}\n{oops\n"), "-out", out},
			1, "bad.jsonl:2: not a JSON object"},
		{"missing field", []string{"-model", model, "-data", write("cnn.jsonl", `{"article": "a", "highlights": "b"}`), "-out", out},
			1, `cnn.jsonl:1: no field "document"`},
		{"missing model", []string{"-model", filepath.Join(dir, "nope"), "-data", good, "-out", out}, 1, "config.json"},
		{"missing out", []string{"-model", model, "-data", good}, 2, "-out is required"},
		{"bad layers", []string{"-model", model, "-data", good, "-out", out, "-layers", "3"}, 2, "the model has 1 layers"},
		{"too long", []string{"-model", model, "-data", good, "-out", out, "-gen", "60", "-max-prompt", "10"}, 2,
			"exceed the model's 64 positions"},
		{"bad template", []string{"-model", model, "-data", good, "-out", out, "-template", "Summarize:"}, 2, "placeholders"},
		{"endless template", []string{"-model", model, "-data", good, "-out", out, "-template-file", "/dev/zero"}, 2,
			"-template-file /dev/zero: more than 1 MiB"},
		{"one-token prompts", []string{"-model", model, "-data", good, "-out", out, "-max-prompt", "1", "-gen", "8"}, 2,
			"a prompt of at most 1 tokens cannot hold the text: a prompt needs at least 2"},
	}
	for _, c := range cases {
		r := run(t, append([]string{"capture"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", c.name, r.code, r.stderr, c.code, c.want)
		}
		if strings.Contains(r.stderr, "goroutine") {
			t.Errorf("%s: panic reached the user: %s", c.name, r.stderr)
		}
	}
	r := run(t, "model", "synth", "-preset", "opt-7b", filepath.Join(dir, "m2"))
	if r.code != 2 || !strings.Contains(r.stderr, `unknown preset "opt-7b"`) {
		t.Errorf("model synth with a bad preset: exit %d, %q", r.code, r.stderr)
	}
	r = run(t, "model", "synth", "-layers", "100000000", filepath.Join(dir, "m3"))
	if r.code != 2 || !strings.Contains(r.stderr, "num_hidden_layers is 100000000, want a positive size of at most 1024") {
		t.Errorf("model synth with 10^8 layers: exit %d, %q", r.code, r.stderr)
	}
	r = run(t, "model", "synth", "-corpus", "/dev/zero", filepath.Join(dir, "m4"))
	if r.code != 2 || !strings.Contains(r.stderr, "-corpus /dev/zero: more than 64 MiB") {
		t.Errorf("model synth with an endless corpus: exit %d, %q", r.code, r.stderr)
	}
}

// TestCaptureHelp: the capture and model commands document themselves.
func TestCaptureHelp(t *testing.T) {
	r := run(t, "help")
	for _, c := range []string{"capture", "model"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("help lacks %s", c)
		}
	}
	for _, args := range [][]string{{"capture", "-h"}, {"model", "synth", "-h"}} {
		r := run(t, args...)
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: kvsim") {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
		}
	}
	if r := run(t, "model", "-h"); r.code != 0 || !strings.Contains(r.stdout, "synth") {
		t.Errorf("model -h: exit %d, %q", r.code, r.stdout)
	}
}
