package tests

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidateEndToEnd: capture traces from a tiny model, replay them, then validate
// the top 2 policies of the replay with the policies in the loop, and resume.
func TestValidateEndToEnd(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if r := run(t, "model", "synth", "-layers", "2", "-hidden", "64", "-heads", "4", "-vocab", "400",
		"-positions", "256", model); r.code != 0 {
		t.Fatalf("model synth: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	data := filepath.Join(dir, "data.jsonl")
	if err := os.WriteFile(data, []byte(captureData), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "capture", "-model", model, "-data", data, "-out", filepath.Join(dir, "traces"), "-samples", "2",
		"-gen", "8", "-ignore-eos", "-max-prompt", "64"); r.code != 0 {
		t.Fatalf("capture: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	policies := `
budgets = [0.25, 16]
traces = ["traces/*.kvtrace.safetensors"]
[[policy]]
name = "full"
[[policy]]
name = "window"
[[policy]]
name = "h2o"
[[policy]]
name = "random"
[[policy]]
name = "oracle"
`
	scenario := filepath.Join(dir, "s.toml")
	os.WriteFile(scenario, []byte(policies), 0o644)
	if r := run(t, "replay", "-format", "json", "-out", filepath.Join(dir, "replay.json"), scenario); r.code != 0 {
		t.Fatalf("replay: exit %d\n%s", r.code, r.stderr)
	}
	validateTable := `
[validate]
model = "model"
data = "data.jsonl"
samples = 2
gen_tokens = 8
max_prompt_tokens = 64
ignore_eos = true
top = 2
`
	os.WriteFile(scenario, []byte(policies+validateTable+"replay_result = \"replay.json\"\n"), 0o644)
	out := filepath.Join(dir, "validate.json")
	r := run(t, "validate", "-format", "json", "-out", out, scenario)
	if r.code != 0 {
		t.Fatalf("validate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// The oracle has the highest simulated hit rate, but it cannot decode.
	if !strings.Contains(r.stderr, "leaving out oracle: clairvoyant") {
		t.Errorf("no note about the oracle: %s", r.stderr)
	}
	res := readValidation(t, out)
	// The full cache has the highest simulated hit rate of the rest, so it is among the top 2.
	if len(res.Cells) != 4 || res.Cells[0].Policy != "full" || res.Cells[2].Policy == "full" {
		t.Fatalf("cells: %+v", res.Cells)
	}
	for _, c := range res.Cells {
		if c.SimulatedHitRate == nil || c.PeakKVBytes <= 0 || c.NLL <= 0 || c.EvictionShare <= 0 || c.EvictionShare >= 1 {
			t.Errorf("cell %+v", c)
		}
		if c.Policy == "full" && (c.Agreement != 1 || c.Rouge1Full != 1) {
			t.Errorf("full cache against itself: %+v", c)
		}
	}
	if len(res.Agreement) == 0 || res.Agreement[0].Cells != 4 {
		t.Errorf("agreement: %+v", res.Agreement)
	}

	// Without a replay result, validate replays the traces itself: the same top 2,
	// the same simulated hit rates, and a plot of the metrics against them.
	os.WriteFile(scenario, []byte(policies+validateTable), 0o644)
	plot := filepath.Join(dir, "validate.svg")
	out2 := filepath.Join(dir, "validate2.json")
	if r := run(t, "validate", "-format", "json", "-out", out2, "-plot", plot, scenario); r.code != 0 {
		t.Fatalf("validate after a replay of its own: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	res2 := readValidation(t, out2)
	if len(res2.Cells) != len(res.Cells) {
		t.Fatalf("%d cells, want %d", len(res2.Cells), len(res.Cells))
	}
	for i, c := range res2.Cells {
		if c.Policy != res.Cells[i].Policy || c.SimulatedHitRate == nil || *c.SimulatedHitRate != *res.Cells[i].SimulatedHitRate {
			t.Errorf("cell %d: %+v, want the policy and hit rate of %+v", i, c, res.Cells[i])
		}
	}
	svg, err := os.ReadFile(plot)
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("simulated hit rate")) {
		t.Errorf("plot: %v, %.200s", err, svg)
	}
	os.WriteFile(scenario, []byte(policies+validateTable+"replay_result = \"replay.json\"\n"), 0o644)

	// A rerun finds every cell in the state file and prints the same table.
	state := filepath.Join(dir, "validate.cells.jsonl")
	lines, _ := os.ReadFile(state)
	if n := strings.Count(string(lines), "\n"); n != 4 {
		t.Fatalf("state has %d lines:\n%s", n, lines)
	}
	first := run(t, "validate", "-format", "csv", "-state", state, scenario)
	os.WriteFile(state, append(lines, []byte(`{"policy": "torn`)...), 0o644)
	again := run(t, "validate", "-format", "csv", "-state", state, scenario)
	if first.code != 0 || again.code != 0 || first.stdout != again.stdout || !strings.HasPrefix(first.stdout, "policy,budget,sim hit") {
		t.Errorf("resume: exit %d, %d\n%s\n%s%s", first.code, again.code, first.stdout, again.stdout, again.stderr)
	}

	// Cells validated under peak accounting (the default) are not resumed into a
	// nominal run, nor ranked against a replay made under another accounting.
	os.WriteFile(scenario, []byte("accounting = \"nominal\"\n"+policies+validateTable), 0o644)
	if r := run(t, "validate", "-state", state, scenario); r.code == 0 || !strings.Contains(r.stderr, "under peak accounting, the scenario asks for nominal") {
		t.Errorf("a peak state resumed into a nominal run: exit %d\n%s", r.code, r.stderr)
	}
	os.WriteFile(scenario, []byte("accounting = \"nominal\"\n"+policies+validateTable+"replay_result = \"replay.json\"\n"), 0o644)
	if r := run(t, "validate", scenario); r.code == 0 || !strings.Contains(r.stderr, "replayed under peak accounting, the scenario asks for nominal") {
		t.Errorf("a peak replay ranked nominal cells: exit %d\n%s", r.code, r.stderr)
	}

	if r := run(t, "validate", filepath.Join(dir, "nope.toml")); r.code == 0 {
		t.Error("missing scenario accepted")
	}
}

// validation is the part of `kvsim validate -format json` the tests read.
type validation struct {
	Cells []struct {
		Policy, Budget   string
		Agreement, NLL   float64
		Rouge1Full       float64  `json:"rouge1_full"`
		PeakKVBytes      int64    `json:"peak_kv_bytes"`
		EvictionShare    float64  `json:"eviction_share"`
		SimulatedHitRate *float64 `json:"simulated_hit_rate"`
	}
	Agreement []struct {
		Metric string
		Cells  int
	}
}

func readValidation(t *testing.T, path string) validation {
	t.Helper()
	var res validation
	text, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(text, &res)
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, text)
	}
	return res
}
