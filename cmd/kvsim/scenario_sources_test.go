package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/scenario"
)

// TestDatasetPath: a [capture] or [validate] path is relative to the scenario, and
// a builtin: one is written out from the binary, or named in the error.
func TestDatasetPath(t *testing.T) {
	sc, err := scenario.Parse("/d/s.toml", []byte("budgets = [0.1]\n[[policy]]\nname = \"h2o\"\n[capture]\nmodel = \"m\"\ndata = \"d.jsonl\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := datasetPath(sc, "m"); err != nil || p != filepath.Join("/d", "m") {
		t.Errorf("relative model path: %s, %v", p, err)
	}
	t.Setenv("KVSIM_MODEL_CACHE", t.TempDir())
	if p, err := datasetPath(sc, "builtin:opt-kjv-4l/heldout.jsonl"); err != nil || filepath.Base(p) != "heldout.jsonl" {
		t.Errorf("builtin file: %s, %v", p, err)
	}
	if _, err := datasetPath(sc, "builtin:nope"); err == nil || !strings.Contains(err.Error(), `scenario /d/s.toml: "builtin:nope": no embedded model`) {
		t.Errorf("unknown builtin model: %v", err)
	}
}

// load is scenario.Load, then OpenPolicies with policyOpener, as the command line
// loads a scenario file.
func load(path string) (*scenario.Scenario, error) {
	s, err := scenario.Load(path)
	if err != nil {
		return nil, err
	}
	if err := s.OpenPolicies(policyOpener(context.Background())); err != nil {
		return nil, err
	}
	return s, nil
}

const wasmScenario = `seed = 1
budgets = [8, 16]
[synth]
preset = "opt-125m"
layers = 1
heads = 2
prompt_len = 32
gen_len = 4
samples = 1
[[policy]]
name = "window"
params = { sink = 2 }
[[policy]]
name = "window-wasm"
source = "wasm:policies/window.wasm"
params = { sink = 2 }
[policy.limits]
memory_pages = 512
fuel = 100000000
deadline_ms = 0
`

// TestWASMSource: a wasm: path is relative to the scenario, takes limits, and gives
// the builtin's rows.
func TestWASMSource(t *testing.T) {
	dir := t.TempDir()
	if err := gobuild.WASM(context.Background(), "github.com/kvsim/kvsim/policies/window", filepath.Join(dir, "policies", "window.wasm")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "s.toml")
	if err := os.WriteFile(path, []byte(wasmScenario), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	specs, err := s.Specs()
	if err != nil {
		t.Fatal(err)
	}
	sources, err := s.Sources()
	if err != nil {
		t.Fatal(err)
	}
	res, err := sim.Replay(context.Background(), sources, specs, s.Options())
	if err != nil {
		t.Fatal(err)
	}
	for b := range res.Budgets {
		native, wasm := res.Cell(0, b), res.Cell(1, b)
		if wasm.Failed != "" || native.Metrics != wasm.Metrics || native.Evictions != wasm.Evictions {
			t.Errorf("budget %s: wasm row %+v, builtin row %+v", native.Budget, wasm, native)
		}
	}

	wasmPath := filepath.Join(dir, "policies", "window.wasm")
	for _, tc := range []struct{ from, to, want string }{
		{"memory_pages = 512", "memory_pages = 0", `scenario s.toml:17: policy "window-wasm": limits.memory_pages = 0: want 1 to 65536 pages of 64 KiB`},
		{"fuel = 100000000", "fuel = 0", `scenario s.toml:17: policy "window-wasm": limits.fuel = 0: want a positive number of units of work per call`},
		{"deadline_ms = 0", "deadline_ms = -1", `scenario s.toml:17: policy "window-wasm": limits.deadline_ms = -1: want milliseconds, or 0 for no deadline`},
		{"deadline_ms = 0", "deadline = 3", `scenario s.toml:20: unknown key "policy.limits.deadline"`},
		{"policies/window.wasm", "policies/nope.wasm", `scenario s.toml:15: policy "window-wasm": source "wasm:policies/nope.wasm": wasm policy: open ` + filepath.Join(dir, "policies", "nope.wasm") + ": no such file or directory"},
		{`"wasm:policies/window.wasm"`, `"builtin:window"`, `scenario s.toml:15: policy "window-wasm": source "builtin:window": limits apply to wasm: policies only (a builtin policy runs natively, outside any sandbox)`},
		{"params = { sink = 2 }\n[policy.limits]", "params = { sink = -1 }\n[policy.limits]", `scenario s.toml:16: policy "window-wasm": ` + wasmPath + `: kvpolicy_new: param "sink": must be ≥ 0, got -1`},
	} {
		if err := os.WriteFile(path, []byte(strings.Replace(wasmScenario, tc.from, tc.to, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := load(path)
		if got := strings.ReplaceAll(errString(err), path, "s.toml"); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}
