// Package tests holds end-to-end tests: they build the kvsim binary and run it the way
// a user would.
package tests

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// kvsim builds the binary once per test run.
func kvsim(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kvsim-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kvsim")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/kvsim").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build kvsim: %v\n%s", buildErr, binPath)
	}
	return binPath
}

type runResult struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, args ...string) runResult {
	t.Helper()
	cmd := exec.Command(kvsim(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return runResult{out.String(), errb.String(), code}
}

// TestDemoScenario runs the shipped demo and checks the table's shape and the numbers
// that must hold whatever the traces: full cache keeps all attention, and the oracle
// beats random at every budget.
func TestDemoScenario(t *testing.T) {
	r := run(t, "replay", "../scenarios/demo.toml")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"source=synthetic", "not OPT measurements", "2%", "10%"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, r.stdout)
		}
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) == 8 { // hit-rate table: policy + 5 budgets
			name := strings.TrimSpace(cells[1])
			if _, seen := rows[name]; !seen {
				rows[name] = cells[2:7]
			}
		}
	}
	for _, p := range []string{"policy", "full", "window", "random", "h2o", "oracle"} { // "policy": the header
		if rows[p] == nil {
			t.Fatalf("no row for %s in:\n%s", p, r.stdout)
		}
	}
	for j := 0; j < 5; j++ {
		if got := strings.TrimSpace(rows["full"][j]); got != "100.00 ±0.00" {
			t.Errorf("full cache hit rate %s, want 100.00 ±0.00", got)
		}
		if percent(t, rows["oracle"][j]) <= percent(t, rows["random"][j]) {
			t.Errorf("budget %d: oracle %s ≤ random %s", j, rows["oracle"][j], rows["random"][j])
		}
	}
}

func percent(t *testing.T, s string) float64 {
	t.Helper()
	mean, _, _ := strings.Cut(strings.TrimSpace(s), " ±") // "43.67 ±4.40"
	f, err := strconv.ParseFloat(mean, 64)
	if err != nil {
		t.Fatalf("cell %q: %v", s, err)
	}
	return f
}

// TestSyntheticDemoByName: `kvsim replay demo` runs scenarios/demo.toml. The flag
// comes after the scenario, as --flag: both as git and kubectl take them.
func TestSyntheticDemoByName(t *testing.T) {
	a := run(t, "replay", "../scenarios/demo.toml", "--format", "csv")
	b := run(t, "replay", "-format", "csv", "demo")
	if a.code != 0 || b.code != 0 {
		t.Fatalf("exit %d/%d: %s %s", a.code, b.code, a.stderr, b.stderr)
	}
	if strip(a.stdout) != strip(b.stdout) {
		t.Errorf("kvsim replay demo differs from scenarios/demo.toml")
	}
}

// strip drops the timing columns, the only figures that vary between runs.
func strip(csvText string) string {
	recs, _ := csv.NewReader(strings.NewReader(csvText)).ReadAll()
	if len(recs) == 0 {
		return ""
	}
	policy := slices.Index(recs[0], "policy_ns_per_head_step")
	host := slices.Index(recs[0], "host_ns_per_head_step")
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(strings.Join(slices.Delete(slices.Delete(r, host, host+1), policy, policy+1), ",") + "\n")
	}
	return b.String()
}

// TestTraceFilesRoundTrip writes synthetic trace files, inspects them, replays them
// from a scenario with a glob, and checks the JSON and the atomic -out file.
func TestTraceFilesRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := run(t, "trace", "synth", "-preset", "opt-125m", "-layers", "2", "-heads", "4", "-prompt", "128", "-gen", "16",
		"-samples", "2", "-out", dir)
	if r.code != 0 {
		t.Fatalf("synth: %s", r.stderr)
	}
	files := strings.Fields(r.stdout)
	if len(files) != 2 {
		t.Fatalf("synth printed %q", r.stdout)
	}
	info := run(t, "trace", "info", files[0])
	if info.code != 0 || !strings.Contains(info.stdout, "2 layers × 4 heads × 64 head_dim") || !strings.Contains(info.stdout, "not an OPT measurement") {
		t.Fatalf("info: %d %s %s", info.code, info.stdout, info.stderr)
	}
	sc := filepath.Join(dir, "s.toml")
	os.WriteFile(sc, []byte(`
budgets = [0.1, 32]
traces = ["*.kvtrace.safetensors"]
[[policy]]
name = "h2o"
[[policy]]
name = "full"
`), 0o644)
	out := filepath.Join(dir, "result.json")
	r = run(t, "replay", "-format", "json", "-out", out, sc)
	if r.code != 0 {
		t.Fatalf("replay: %s", r.stderr)
	}
	var res struct {
		Source  string
		Samples int
		Budgets []string
		Cells   []struct {
			Policy       string
			Budget       string
			BudgetTokens float64 `json:"budget_tokens"`
			HitRate      float64 `json:"hit_rate"`
		}
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	if res.Source != "synthetic" || res.Samples != 2 || len(res.Cells) != 4 {
		t.Fatalf("result %+v", res)
	}
	if c := res.Cells[0]; c.Policy != "h2o" || c.Budget != "10%" || c.BudgetTokens != 13 || c.HitRate <= 0 || c.HitRate >= 1 {
		t.Errorf("h2o cell %+v", c)
	}
	if c := res.Cells[1]; c.Budget != "32 tok" || c.BudgetTokens != 32 {
		t.Errorf("token budget cell %+v", c)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".result.json.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

// TestBadInput: each mistake exits non-zero with a message naming the file and key.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		return p
	}
	head := "budgets = [0.1]\n[synth]\npreset = \"opt-125m\"\nlayers = 1\nheads = 2\nprompt_len = 64\ngen_len = 4\nsamples = 1\n"
	cases := []struct {
		name, body, want string
		code             int
	}{
		{"unknown.toml", head + "bogus = 1\n[[policy]]\nname = \"h2o\"\n", "unknown.toml:9: unknown key \"synth.bogus\"", 1},
		{"syntax.toml", "budgets = [0.1\n", "syntax.toml:", 1},
		{"budget.toml", "budgets = [1.5]\n[synth]\npreset = \"opt-125m\"\nsamples = 1\nprompt_len = 64\n[[policy]]\nname = \"h2o\"\n",
			"budget.toml:1: budgets[0] = 1.5: a fraction of the prompt must be in (0, 1]", 1},
		{"policy.toml", head + "[[policy]]\nname = \"lru\"\n", "policy.toml:9: policy \"lru\": source \"builtin:lru\": no builtin policy \"lru\"", 1},
		{"param.toml", head + "[[policy]]\nname = \"h2o\"\nparams = { recent = 3 }\n", "policy \"h2o\": unknown param \"recent\"", 1},
		{"paramval.toml", head + "[[policy]]\nname = \"h2o\"\nparams = { recent_share = \"half\" }\n", "param \"recent_share\": want a number", 1},
		{"glob.toml", "budgets = [0.1]\ntraces = [\"nothing-*.safetensors\"]\n[[policy]]\nname = \"h2o\"\n", "glob.toml:2: traces: ", 1},
	}
	for _, tc := range cases {
		r := run(t, "replay", write(tc.name, tc.body))
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", tc.name, r.code, r.stderr, tc.code, tc.want)
		}
		if strings.Contains(r.stderr, "goroutine") {
			t.Errorf("%s: panic reached the user: %s", tc.name, r.stderr)
		}
	}
	truncated := write("short.kvtrace.safetensors", "\x10\x00\x00\x00\x00\x00\x00\x00{}")
	r := run(t, "trace", "info", truncated)
	if r.code != 1 || !strings.Contains(r.stderr, truncated) {
		t.Errorf("truncated trace: exit %d, %q", r.code, r.stderr)
	}
	r = run(t, "replay", "-format", "xml")
	if r.code != 2 || !strings.Contains(r.stderr, `-format "xml"`) {
		t.Errorf("bad flag: exit %d, %q", r.code, r.stderr)
	}
	// A plot path of an unknown format fails before the replay runs, not after.
	for _, cmd := range []string{"replay", "validate"} {
		r = run(t, cmd, "-plot", "out.gif", "no-scenario.toml")
		if r.code != 2 || !strings.Contains(r.stderr, "out.gif: want a .png, .svg or .pdf file") {
			t.Errorf("%s -plot out.gif: exit %d, %q", cmd, r.code, r.stderr)
		}
	}
	// An output that cannot be written fails before anything else, even the scenario.
	missing := filepath.Join(dir, "no-such-folder")
	for _, args := range [][]string{
		{"replay", "-out", filepath.Join(missing, "r.json"), "no-scenario.toml"},
		{"replay", "-plot", filepath.Join(missing, "r.svg"), "no-scenario.toml"},
		{"validate", "-state", filepath.Join(missing, "v.jsonl"), "no-scenario.toml"},
		{"validate", "-out", filepath.Join(dir, "v.json"), "-plot", filepath.Join(missing, "v.svg"), "no-scenario.toml"},
	} {
		r = run(t, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "cannot write "+missing) {
			t.Errorf("%q: exit %d, %q; want a failure naming %s", args, r.code, r.stderr, missing)
		}
	}
	r = run(t, "frobnicate")
	if r.code != 2 || !strings.Contains(r.stderr, `unknown command "frobnicate"`) {
		t.Errorf("bad command: exit %d, %q", r.code, r.stderr)
	}
}

// TestHelp: every command documents itself.
func TestHelp(t *testing.T) {
	r := run(t, "help")
	for _, c := range []string{"replay", "trace"} {
		if !strings.Contains(r.stdout, c) {
			t.Errorf("help lacks %s", c)
		}
	}
	for _, args := range [][]string{{"replay", "-h"}, {"trace", "synth", "-h"}, {"trace", "info", "-h"}} {
		r := run(t, args...)
		if r.code != 0 || !strings.Contains(r.stderr, "Usage: kvsim") {
			t.Errorf("%v: exit %d, %q", args, r.code, r.stderr)
		}
	}
}
