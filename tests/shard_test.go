package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const shardScenario = `
title = "shards"
seed = %d
budgets = [0.05, 0.1]
[synth]
preset = "opt-125m"
layers = 2
heads = 3
prompt_len = 64
gen_len = 8
samples = 5
[[policy]]
name = "full"
[[policy]]
name = "h2o"
[[policy]]
name = "auv"
`

func writeScenario(t *testing.T, path string, seed int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Replace(shardScenario, "%d", string(rune('0'+seed)), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestShardedReplayMerges: three shards of a scenario, merged, print what one
// replay prints, timings aside; a missing shard is named, and shards of another
// scenario are refused.
func TestShardedReplayMerges(t *testing.T) {
	dir := t.TempDir()
	scenario := filepath.Join(dir, "s.toml")
	writeScenario(t, scenario, 1)
	single := filepath.Join(dir, "single.json")
	if r := run(t, "replay", "-format", "json", "-out", single, "-progress", "off", scenario); r.code != 0 {
		t.Fatalf("replay: exit %d\n%s", r.code, r.stderr)
	}
	var shards []string
	for _, i := range []string{"0", "1", "2"} {
		out := filepath.Join(dir, "shard-"+i+".json")
		r := run(t, "replay", "-shard", i+"/3", "-out", out, scenario)
		if r.code != 0 {
			t.Fatalf("replay -shard %s/3: exit %d\n%s", i, r.code, r.stderr)
		}
		shards = append(shards, out)
	}
	merged := filepath.Join(dir, "merged.json")
	if r := run(t, append([]string{"merge", "-format", "json", "-out", merged}, shards...)...); r.code != 0 {
		t.Fatalf("merge: exit %d\n%s", r.code, r.stderr)
	}
	measured := []string{"perf", "policy_ns_per_head_step", "host_ns_per_head_step"}
	if got, want := withoutKeys(t, merged, measured), withoutKeys(t, single, measured); got != want {
		t.Errorf("merged shards differ from one replay:\n got  %s\n want %s", got, want)
	}
	r := run(t, append([]string{"merge"}, shards...)...)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "shards\n") || !strings.Contains(r.stdout, "5 samples × 2 layers") {
		t.Errorf("merge as a table: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = run(t, "merge", shards[2], shards[0])
	if r.code != 1 || !strings.Contains(r.stderr, "missing 1 of 3 shards: 1/3 (samples [1 4])") {
		t.Errorf("a missing shard: exit %d\n%s", r.code, r.stderr)
	}

	writeScenario(t, scenario, 2)
	other := filepath.Join(dir, "other-1.json")
	if r := run(t, "replay", "-shard", "1/3", "-out", other, scenario); r.code != 0 {
		t.Fatalf("replay -shard 1/3: exit %d\n%s", r.code, r.stderr)
	}
	r = run(t, "merge", shards[0], other, shards[2])
	if r.code != 1 || !strings.Contains(r.stderr, "are shards of different scenarios") {
		t.Errorf("another scenario's shard: exit %d\n%s", r.code, r.stderr)
	}

	// Slurm's variables, when -shard slurm asks for them.
	cmd := exec.Command(kvsim(t), "replay", "-shard", "slurm", "-out", other, scenario)
	cmd.Env = append(os.Environ(), "SLURM_ARRAY_TASK_ID=2", "SLURM_ARRAY_TASK_COUNT=1", "SLURM_ARRAY_TASK_MIN=2", "SLURM_ARRAY_TASK_MAX=2", "KVSIM_SHARDS=3")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "shard 2/3: 1 of 5 samples (2 jobs)") {
		t.Errorf("replay -shard slurm: %v\n%s", err, out)
	}

	for _, args := range [][]string{
		{"replay", "-shard", "1/3", scenario},
		{"replay", "-shard", "1/3", "-out", other, "-format", "csv", scenario},
		{"replay", "-shard", "3/3", "-out", other, scenario},
		{"merge"},
	} {
		if r := run(t, args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\n%s", args, r.code, r.stderr)
		}
	}
}

// TestShardedCapture: two capture shards into one directory write the traces one
// capture writes, each once.
func TestShardedCapture(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if r := run(t, "model", "synth", "-layers", "1", "-hidden", "32", "-heads", "2", "-vocab", "300", "-positions", "128", model); r.code != 0 {
		t.Fatalf("model synth: exit %d\n%s", r.code, r.stderr)
	}
	data := filepath.Join(dir, "data.jsonl")
	var records string
	for _, doc := range []string{"one", "two", "three"} {
		records += `{"document": "The ` + doc + ` report.", "summary": "A report."}` + "\n"
	}
	if err := os.WriteFile(data, []byte(records), 0o644); err != nil {
		t.Fatal(err)
	}
	traces := filepath.Join(dir, "traces")
	for _, sh := range []string{"0/2", "1/2"} {
		r := run(t, "capture", "-shard", sh, "-model", model, "-data", data, "-out", traces, "-gen", "2", "-progress", "off")
		if r.code != 0 {
			t.Fatalf("capture -shard %s: exit %d\n%s", sh, r.code, r.stderr)
		}
		want := map[string]string{"0/2": "captured 2 samples", "1/2": "captured 1 sample "}[sh]
		if !strings.Contains(r.stdout, want) {
			t.Errorf("capture -shard %s printed:\n%s", sh, r.stdout)
		}
	}
	files, _ := filepath.Glob(filepath.Join(traces, "*.kvtrace.safetensors"))
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	if strings.Join(names, " ") != "sample-000000.kvtrace.safetensors sample-000001.kvtrace.safetensors sample-000002.kvtrace.safetensors" {
		t.Errorf("traces: %v", names)
	}
}

// TestShardedValidate: two validate shards of three samples, merged, print what
// one validation prints, times aside; a missing shard is named.
func TestShardedValidate(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "model")
	if r := run(t, "model", "synth", "-layers", "2", "-hidden", "64", "-heads", "4", "-vocab", "400", "-positions", "256", model); r.code != 0 {
		t.Fatalf("model synth: exit %d\n%s", r.code, r.stderr)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.jsonl"), []byte(captureData), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "capture", "-model", model, "-data", filepath.Join(dir, "data.jsonl"), "-out", filepath.Join(dir, "traces"),
		"-samples", "2", "-gen", "8", "-ignore-eos", "-max-prompt", "64"); r.code != 0 {
		t.Fatalf("capture: exit %d\n%s", r.code, r.stderr)
	}
	scenario := filepath.Join(dir, "s.toml")
	os.WriteFile(scenario, []byte(`
seed = 3
budgets = [0.25, 16]
traces = ["traces/*.kvtrace.safetensors"]
compare = "h2o"
[[policy]]
name = "window"
[[policy]]
name = "h2o"
[[policy]]
name = "random"
[validate]
model = "model"
data = "data.jsonl"
samples = 3
gen_tokens = 8
max_prompt_tokens = 64
ignore_eos = true
`), 0o644)
	single := filepath.Join(dir, "single.json")
	if r := run(t, "validate", "-format", "json", "-out", single, "-progress", "off", scenario); r.code != 0 {
		t.Fatalf("validate: exit %d\n%s", r.code, r.stderr)
	}
	var shards []string
	for _, i := range []string{"0", "1"} {
		out := filepath.Join(dir, "shard-"+i+".json")
		if r := run(t, "validate", "-shard", i+"/2", "-out", out, "-progress", "off", scenario); r.code != 0 {
			t.Fatalf("validate -shard %s/2: exit %d\n%s", i, r.code, r.stderr)
		}
		shards = append(shards, out)
	}
	merged := filepath.Join(dir, "merged.json")
	if r := run(t, "merge", "-format", "json", "-out", merged, shards[1], shards[0]); r.code != 0 {
		t.Fatalf("merge: exit %d\n%s", r.code, r.stderr)
	}
	measured := []string{"tokens_per_second", "policy_us_per_token", "slot_us_per_token", "eviction_share"}
	got, want := withoutKeys(t, merged, measured), withoutKeys(t, single, measured)
	if got != want {
		t.Errorf("merged validate shards differ from one validation:\n got  %s\n want %s", got, want)
	}
	if !strings.Contains(want, `"per_sample":[{`) || !strings.Contains(want, `"kendall_tau"`) {
		t.Errorf("the comparison lacks per-sample values or the rank agreement: %s", want)
	}
	if r := run(t, "merge", shards[1]); r.code != 1 || !strings.Contains(r.stderr, "missing 1 of 2 shards: 0/2 (samples [0 2])") {
		t.Errorf("a missing validate shard: exit %d\n%s", r.code, r.stderr)
	}
}

// withoutKeys decodes a JSON file and drops the keys named, at any depth.
func withoutKeys(t *testing.T, path string, keys []string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	var drop func(any)
	drop = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range keys {
				delete(x, k)
			}
			for _, y := range x {
				drop(y)
			}
		case []any:
			for _, y := range x {
				drop(y)
			}
		}
	}
	drop(v)
	out, _ := json.Marshal(v)
	return string(out)
}
