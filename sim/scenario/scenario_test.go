package scenario

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/scenarios"
)

// openBuiltin opens builtin: sources only; abi/source's tests open wasm: and plugin:
// sources through scenarios.
func openBuiltin(source, dir string, limits *Limits) (policies.New, error) {
	name, ok := strings.CutPrefix(source, "builtin:")
	if !ok {
		return nil, fmt.Errorf("source %q: the scenario tests open builtins only", source)
	}
	newPolicy, ok := builtin.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("source %q: no builtin policy %q", source, name)
	}
	return newPolicy, nil
}

// parseOpen is Parse, then OpenPolicies with the builtins.
func parseOpen(path string, data []byte) (*Scenario, error) {
	s, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if err := s.OpenPolicies(openBuiltin); err != nil {
		return nil, err
	}
	return s, nil
}

const base = `seed = 3
budgets = [0.02, 0.1, 64]
[synth]
preset = "opt-125m"
layers = 1
prompt_len = 64
samples = 2
[[policy]]
name = "h2o"
params = { recent_share = 0.25 }
`

func TestParseValid(t *testing.T) {
	s, err := parseOpen("s.toml", []byte(base+"[metrics]\ntop_k = 4\noutput_error = false\n[run]\nthreads = 3\n"))
	if err != nil {
		t.Fatal(err)
	}
	o := s.Options()
	want := []host.Budget{{Fraction: 0.02}, {Fraction: 0.1}, {Tokens: 64}}
	if len(o.Budgets) != 3 || o.Budgets[0] != want[0] || o.Budgets[1] != want[1] || o.Budgets[2] != want[2] {
		t.Errorf("budgets %v", o.Budgets)
	}
	if o.TopK != 4 || !o.NoOutputError || o.Threads != 3 || o.Seed != 3 {
		t.Errorf("options %+v", o)
	}
	specs, err := s.Specs()
	if err != nil || len(specs) != 1 || specs[0].Name != "h2o" {
		t.Fatalf("specs %v %v", specs, err)
	}
	srcs, err := s.Sources()
	if err != nil || len(srcs) != 2 {
		t.Fatalf("sources %d %v", len(srcs), err)
	}
	if m := srcs[1].Meta(); m.PromptLen != 64 || m.Layers != 1 || m.Source != "synthetic" || !m.HasV {
		t.Errorf("synthetic sample %+v", m)
	}
}

// Accounting: peak unless the scenario says otherwise; a policy may override it, and
// SetAccounting overrides both.
func TestAccounting(t *testing.T) {
	s, err := parseOpen("s.toml", []byte(base+"[[policy]]\nname = \"auv\"\naccounting = \"nominal\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	specs, _ := s.Specs()
	if o := s.Options(); o.Accounting != host.Peak || specs[0].Accounting != host.Peak || specs[1].Accounting != host.Nominal || o.Compare != "" {
		t.Errorf("default: scenario %v, policies %v %v", o.Accounting, specs[0].Accounting, specs[1].Accounting)
	}
	s, err = parseOpen("s.toml", []byte("accounting = \"mean\"\ncompare = \"h2o\"\n"+base+"[[policy]]\nname = \"auv\"\naccounting = \"nominal\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	specs, _ = s.Specs()
	if o := s.Options(); o.Accounting != host.Mean || specs[0].Accounting != host.Mean || specs[1].Accounting != host.Nominal || o.Compare != "h2o" {
		t.Errorf("mean: scenario %v, policies %v %v, compare %q", o.Accounting, specs[0].Accounting, specs[1].Accounting, o.Compare)
	}
	s.SetAccounting(host.Peak)
	specs, _ = s.Specs()
	if s.Options().Accounting != host.Peak || specs[1].Accounting != host.Peak {
		t.Errorf("after SetAccounting(peak): %v %v", s.Options().Accounting, specs[1].Accounting)
	}
	if err := s.SetCompare("auv"); err != nil || s.Options().Compare != "auv" {
		t.Errorf("SetCompare(auv): %v", err)
	}
	if err := s.SetCompare("tova"); err == nil || !strings.Contains(err.Error(), `compare "tova": scenario s.toml has no such policy`) {
		t.Errorf("SetCompare(tova): %v", err)
	}
}

// TestErrors: every bad input names the file, the line and the key.
func TestErrors(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{base + "colour = 1\n", `s.toml:11: unknown key "policy.colour"`},
		{"colour = 1\n" + base, `s.toml:1: unknown key "colour"`},
		{strings.Replace(base, "layers = 1", "layers = 1\nlayer = 2", 1), `s.toml:6: unknown key "synth.layer"`},
		{base + "[[policy]]\nname = \"w\"\nsource = \"builtin:window\"\nparms = {}\n", `s.toml:14: unknown key "policy.parms"`},
		{base + "[metrics]\ntopk = 3\n", `s.toml:12: unknown key "metrics.topk"`},
		{strings.Replace(base, "[0.02, 0.1, 64]", "[0.02, 0]", 1), `s.toml:2: budgets[1] = 0: a token count must be at least 1`},
		{strings.Replace(base, "[0.02, 0.1, 64]", "[2.5]", 1), `s.toml:2: budgets[0] = 2.5: a fraction of the prompt must be in (0, 1]`},
		{strings.Replace(base, "[0.02, 0.1, 64]", `["5%"]`, 1), `s.toml:2: budgets[0] = 5%: want a fraction (0.05) or a token count (64)`},
		{strings.Replace(base, "budgets = [0.02, 0.1, 64]\n", "", 1), `s.toml: no budgets`},
		{strings.Replace(base, "samples = 2", "samples = 0", 1), `s.toml:7: synth.samples = 0: want at least 1`},
		{strings.Replace(base, `"opt-125m"`, `"opt-7b"`, 1), `s.toml:3: synth options: Preset: `},
		{strings.Replace(base, "recent_share = 0.25", "recent_share = 2", 1), `policy "h2o": param "recent_share": must be in [0, 1), got 2`},
		{strings.Replace(base, "recent_share = 0.25", "colour = 2", 1), `policy "h2o": unknown param "colour"`},
		{base + "[[policy]]\nname = \"h2o\"\n", `policy "h2o": name used twice`},
		{"budgets = [0.1\n", `s.toml:1: `},
		{strings.Replace(base, "64]", "9223372036854775807]", 1), `s.toml:2: budgets[2] = 9223372036854775807: a token count must be at most 16777216`},
		{strings.Replace(base, "64]", "0.02]", 1), `s.toml:2: budgets[2] = 0.02 repeats budgets[0]`},
		{strings.Replace(base, "seed = 3", "seed = -1", 1), `s.toml:1: seed = -1: a seed must be 0 or more`},
		{strings.Replace(base, "layers = 1", "layers = 1\nseed = -5", 1), `s.toml:6: synth.seed = -5: a seed must be 0 or more`},
		{base + "[metrics]\ntop_k = 100000000000\n", `s.toml:12: top_k = 100000000000: want 1 to 16777216`},
		// A bad second [[policy]] is reported at its own lines, not the first's.
		{base + "[[policy]]\nname = \"w\"\nsource = \"builtin:nope\"\n", `s.toml:13: policy "w": source "builtin:nope": no builtin policy`},
		{base + "[[policy]]\nname = \"h2o\"\n", `s.toml:12: policy "h2o": name used twice`},
		{base + "[[policy]]\nsource = \"builtin:window\"\n", `s.toml:11: policy[1]: missing name`},
		{base + "[[policy]]\nname = \"w\"\nsource = \"builtin:window\"\nparams = { sink = -1 }\n", `s.toml:14: policy "w": param "sink"`},
		{"seed = \"x\"\n", `s.toml:1: key "seed": incompatible types`},
		{strings.Replace(base, "[synth]", "traces = [\"[\"]\n[synth]", 1), `bad glob`},
		{"accounting = \"median\"\n" + base, `s.toml:1: accounting "median": want one of nominal, peak, mean`},
		{base + "accounting = \"most\"\n", `s.toml:11: policy "h2o": accounting "most": want one of nominal, peak, mean`},
		{"compare = \"auv\"\n" + base, `s.toml:1: compare = "auv": no [[policy]] has that name`},
	} {
		s, err := parseOpen("s.toml", []byte(tc.body))
		if err == nil {
			_, err = s.Sources()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v\nwant %q in:\n%s", err, tc.want, tc.body)
		}
	}
}

func TestTraceGlobsRelativeToScenario(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"b.kvtrace.safetensors", "a.kvtrace.safetensors", "notes.txt"} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o644)
	}
	path := filepath.Join(dir, "s.toml")
	s, err := Parse(path, []byte("budgets = [0.1]\ntraces = [\"*.kvtrace.safetensors\", \"a.*\"]\n[[policy]]\nname = \"full\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.TracePaths()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(dir, "a.kvtrace.safetensors"), filepath.Join(dir, "b.kvtrace.safetensors")}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("paths %v, want %v", got, want)
	}
	// The files are empty, so opening them is an error naming the file.
	if _, err := s.Sources(); err == nil || !strings.Contains(err.Error(), want[0]) {
		t.Errorf("opening empty traces: %v", err)
	}
}

// TestShippedScenarios parse and name only known policies.
func TestShippedScenarios(t *testing.T) {
	entries, err := scenarios.FS.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, _ := scenarios.FS.ReadFile(e.Name())
		if _, err := parseOpen(e.Name(), data); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

func TestKeyLines(t *testing.T) {
	lines := indexKeys([]byte("a = 1 # x = 2\n[t.\"u\"]\nb = \"#\" \n[[p]]\nc.d = 1\n"))
	for key, want := range map[string]int{"a": 1, "x": 0, "t.u": 2, "t.u.b": 3, "p": 4, "p.c.d": 5, "p.c.d.e": 5, "zz": 0} {
		if got := lines.line(key); got != want {
			t.Errorf("line(%q) = %d, want %d", key, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	data, _ := scenarios.FS.ReadFile(scenarios.Demo)
	f.Add(data)
	f.Add([]byte("budgets = [0.1]\n[[policy]]\nname = \"x\"\nparams = { a = [1, {b = 2}] }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("fuzz.toml", data)
		if err == nil && len(s.Options().Budgets) == 0 {
			t.Error("accepted a scenario without budgets")
		}
	})
}
