package tests

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// layers places each package by its path: the first rule whose prefix matches, most
// specific first. Imports go down (cmd → stages → engines → core → internal), or
// stay within one home (see allowed).
var layers = []struct {
	prefix string
	layer  int
}{
	{"cmd/", 4}, {"scripts/", 4},
	// stages
	{"tracecap", 3}, {"sim/scenario", 3}, {"sim/report", 3}, {"sim/shard", 3}, {"sim/attnstats", 3},
	{"gpu/validate", 3}, {"abi/conformance", 3}, {"abi/source", 3}, {"abi/gobuild", 3}, {"scenarios", 3},
	// engines
	{"sim/kvtrace", 1}, {"sim/synth", 1}, // formats, below the replay engine
	{"sim", 2}, {"gpu", 2}, {"abi/wasmhost", 2}, {"abi/plugin", 2}, {"abi/guest", 2}, // abi/guest runs a policy inside a WASM module
	// core: the contract, the policies, the ABI's guest side
	{"policies", 1}, {"abi", 1},
	{"internal/", 0},
	{"tests", 4},
}

const layerNames = "internal, core, engines, stages, cmd"

func layerOf(t *testing.T, pkg string) int {
	for _, l := range layers {
		if pkg == l.prefix || strings.HasPrefix(pkg, strings.TrimSuffix(l.prefix, "/")+"/") {
			return l.layer
		}
	}
	t.Fatalf("package %s has no layer: add it to the table in layout_test.go and to the README's Layout", pkg)
	return 0
}

// allowed reports whether from may import to: a lower layer, or within one home at
// the same layer (a package and its subpackages; in core and internal, one top
// directory).
func allowed(t *testing.T, from, to string) bool {
	lf, lt := layerOf(t, from), layerOf(t, to)
	switch {
	case lt < lf:
		return true
	case lt > lf:
		return false
	case strings.HasPrefix(to, from+"/") || strings.HasPrefix(from, to+"/"):
		return true
	}
	top := func(p string) string { return strings.SplitN(p, "/", 2)[0] }
	return lf <= 1 && top(from) == top(to)
}

// TestLayout: no package imports up or sideways (tests and test files left out), so
// the README's Layout section stays true.
func TestLayout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", "../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/kvsim/kvsim/"
	packages := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := strings.TrimPrefix(fields[0], module)
		packages++
		for _, imp := range fields[1:] {
			to, ok := strings.CutPrefix(imp, module)
			if ok && !allowed(t, from, to) {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go down (%s) or stay within one home",
					from, layerOf(t, from), to, layerOf(t, to), layerNames)
			}
		}
	}
	if packages < 40 {
		t.Errorf("go list gave %d packages: not the whole module", packages)
	}
}

// TestLayoutRules: the rule itself, on edges that must pass and fail.
func TestLayoutRules(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"cmd/kvsim", "gpu/validate", true},
		{"gpu/validate", "gpu", true},
		{"gpu/validate", "gpu/validate/rank", true},
		{"gpu/cpu", "gpu", true},
		{"policies/builtin", "policies/h2o", true},
		{"sim/synth", "sim/kvtrace", true},
		{"internal/checkpoint", "internal/half", true},
		{"sim/shard", "gpu/validate", false}, // stage to stage
		{"abi/source", "sim/scenario", false},
		{"gpu", "gpu/validate", false},       // engine up to a stage
		{"internal/half", "policies", false}, // internal up to core
		{"sim", "gpu", false},                // engine to engine
		{"sim/kvtrace", "sim", false},        // a format up to the replay engine
		{"tracecap", "sim/report", false},    // stage to stage
		{"abi/wasmhost", "abi/internal/region", true},
	} {
		if got := allowed(t, c.from, c.to); got != c.ok {
			t.Errorf("%s → %s: allowed %v, want %v", c.from, c.to, got, c.ok)
		}
	}
}
