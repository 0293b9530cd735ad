package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// useModelCache points the embedded model's cache at a temporary directory, so that
// the tests leave the user's cache alone.
func useModelCache(t *testing.T) {
	t.Setenv("KVSIM_MODEL_CACHE", t.TempDir())
}

// TestEmbeddedScenarioByName: an embedded scenario runs by name, the same as its file.
func TestEmbeddedScenarioByName(t *testing.T) {
	a := run(t, "replay", "-format", "csv", "../scenarios/demo.toml")
	b := run(t, "replay", "-format", "csv", "demo")
	if a.code != 0 || b.code != 0 {
		t.Fatalf("exit %d/%d: %s %s", a.code, b.code, a.stderr, b.stderr)
	}
	if strip(a.stdout) != strip(b.stdout) {
		t.Errorf("`replay demo` differs from scenarios/demo.toml")
	}
	r := run(t, "replay", "no-such-scenario")
	if r.code != 2 || !strings.Contains(r.stderr, "nor an embedded scenario of that name (have demo, opt-kjv-demo, opt-kjv-paper, paper)") {
		t.Errorf("unknown name: exit %d, %q", r.code, r.stderr)
	}
}

// TestTrainedModelShortRun captures two short held-out documents from the embedded
// model through a scenario's [capture] table, replays and validates them in the
// loop, and measures the captured attention with trace stats.
func TestTrainedModelShortRun(t *testing.T) {
	useModelCache(t)
	dir := t.TempDir()
	scenario := filepath.Join(dir, "s.toml")
	os.WriteFile(scenario, []byte(`
budgets = [0.25]
[capture]
model = "builtin:opt-kjv-4l"
data = "builtin:opt-kjv-4l/heldout.jsonl"
template = "{document}"
samples = 2
max_prompt_tokens = 48
gen_tokens = 8
ignore_eos = true
[[policy]]
name = "window"
[[policy]]
name = "h2o"
[[policy]]
name = "oracle"
[validate]
model = "builtin:opt-kjv-4l"
data = "builtin:opt-kjv-4l/heldout.jsonl"
template = "{document}"
samples = 2
max_prompt_tokens = 48
gen_tokens = 8
ignore_eos = true
budgets = [0.25, 0.5]
`), 0o644)
	r := run(t, "validate", "-format", "json", scenario)
	if r.code != 0 {
		t.Fatalf("validate: exit %d\n%s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "captured 2 samples from kvsim/opt-kjv-4l on cpu") || !strings.Contains(r.stderr, "leaving out oracle") {
		t.Errorf("validate's stderr:\n%s", r.stderr)
	}
	var res struct {
		Cells []struct {
			Policy       string   `json:"policy"`
			Budget       string   `json:"budget"`
			NLL          float64  `json:"nll"`
			SimulatedHit *float64 `json:"simulated_hit_rate"`
		} `json:"cells"`
		Agreement []struct {
			Metric string `json:"metric"`
			Cells  int    `json:"cells"`
		} `json:"agreement"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	if len(res.Cells) != 4 || len(res.Agreement) == 0 || res.Agreement[0].Cells != 4 {
		t.Fatalf("want 4 cells (window, h2o × 2 budgets), each with a simulated hit rate: %s", r.stdout)
	}
	for _, c := range res.Cells {
		if c.SimulatedHit == nil || c.NLL <= 0 || c.NLL > 9 {
			t.Errorf("cell %s %s: NLL %.3f, simulated hit %v", c.Policy, c.Budget, c.NLL, c.SimulatedHit)
		}
	}

	traces := filepath.Join(dir, "traces")
	if r := run(t, "capture", "-model", "builtin:opt-kjv-4l", "-data", "builtin:opt-kjv-4l/heldout.jsonl", "-template", "{document}",
		"-out", traces, "-samples", "1", "-max-prompt", "48", "-gen", "8", "-ignore-eos", "-progress", "off"); r.code != 0 {
		t.Fatalf("capture: exit %d\n%s", r.code, r.stderr)
	}
	file := filepath.Join(traces, "sample-000000.kvtrace.safetensors")
	r = run(t, "trace", "stats", file)
	for _, want := range []string{"model kvsim/opt-kjv-4l, source=cpu; 1 sample × 4 layers × 8 heads; 54 query rows per head",
		"sink (token 0):", "previous token:", "a delimiter (punctuation, a line break): most attended in most rows of",
		"effective keys of the 29.5 a row has", "| layer | head |", "top keys (share of rows)"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("trace stats lacks %q: exit %d\n%s%s", want, r.code, r.stdout, r.stderr)
		}
	}
	r = run(t, "trace", "stats", "-format", "json", file)
	var st struct {
		PerHead []struct {
			SinkTop      float64 `json:"sink_top"`
			DelimiterTop float64 `json:"delimiter_top"`
			TopKeys      []struct {
				Token int32   `json:"token"`
				Share float64 `json:"share"`
			} `json:"top_keys"`
		} `json:"per_head"`
		Summary struct {
			Heads          int `json:"heads"`
			SinkHeads      int `json:"sink_heads"`
			DelimiterHeads int `json:"delimiter_heads"`
		} `json:"summary"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	sinks, delimiters := 0, 0
	for i, h := range st.PerHead {
		if h.SinkTop > 0.5 {
			sinks++
		}
		if h.DelimiterTop > 0.5 {
			delimiters++
		}
		if len(h.TopKeys) == 0 || len(h.TopKeys) > 3 || h.TopKeys[0].Share <= 0 {
			t.Errorf("head %d: top keys %+v, want one to three with their shares", i, h.TopKeys)
		}
	}
	if st.Summary.Heads != 32 || len(st.PerHead) != 32 || st.Summary.SinkHeads != sinks || st.Summary.DelimiterHeads != delimiters {
		t.Errorf("stats JSON: %d heads, %d sink and %d delimiter heads; counted %d and %d from the heads",
			st.Summary.Heads, st.Summary.SinkHeads, st.Summary.DelimiterHeads, sinks, delimiters)
	}
}
