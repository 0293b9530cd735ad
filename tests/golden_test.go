package tests

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// goldenReplays are the replays whose JSON must not change: the synthetic demo (peak
// accounting) and every builtin under nominal accounting and under peak.
var goldenReplays = []struct {
	file string
	args []string
}{
	{"golden-demo.json", []string{"replay", "-format", "json", "-progress", "off", "testdata/golden-demo.toml"}},
	{"golden-builtins-nominal.json", []string{"replay", "-format", "json", "-progress", "off", "testdata/golden-builtins.toml"}},
	{"golden-builtins-peak.json", []string{"replay", "-format", "json", "-progress", "off", "-threads", "1", "-accounting", "peak", "testdata/golden-builtins.toml"}},
}

// TestReplayGolden pins every number `kvsim replay -format json` prints, timings
// aside, so a change of structure cannot silently change a result. Regenerate with
// `go test ./tests -run TestReplayGolden -update` only for an intended change.
func TestReplayGolden(t *testing.T) {
	exact := exactFloats()
	for _, g := range goldenReplays {
		t.Run(g.file, func(t *testing.T) {
			r := run(t, g.args...)
			if r.code != 0 {
				t.Fatalf("kvsim %s: exit %d: %s", strings.Join(g.args, " "), r.code, r.stderr)
			}
			got := decodeUntimed(t, r.stdout)
			path := filepath.Join("testdata", g.file)
			if *update {
				b, err := json.MarshalIndent(got, "", " ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := decodeUntimed(t, string(raw))
			var diffs []string
			compareJSON("", want, got, exact, &diffs)
			if len(diffs) > 0 {
				t.Errorf("%d differences from %s, first ones:\n%s", len(diffs), path, strings.Join(diffs[:min(len(diffs), 20)], "\n"))
			}
		})
	}
}

// exactFloats reports whether this build computes floats like the one that wrote the
// golden files (amd64 without FMA fusion). Elsewhere the compiler may fuse x*y+z, which
// moves the last bits, so numbers are compared to a relative 1e-9.
func exactFloats() bool {
	if runtime.GOARCH != "amd64" {
		return false
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOAMD64" && s.Value != "v1" && s.Value != "v2" {
				return false
			}
		}
	}
	return true
}

// decodeUntimed parses a replay's JSON with numbers kept as text, dropping the fields
// that measure time.
func decodeUntimed(t *testing.T, s string) any {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("replay JSON: %v", err)
	}
	return dropTimings(v)
}

func dropTimings(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if strings.HasSuffix(k, "_seconds") || k == "policy_ns_per_head_step" || k == "host_ns_per_head_step" {
				delete(x, k)
				continue
			}
			x[k] = dropTimings(e)
		}
	case []any:
		for i, e := range x {
			x[i] = dropTimings(e)
		}
	}
	return v
}

func compareJSON(path string, want, got any, exact bool, diffs *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*diffs = append(*diffs, fmt.Sprintf("%s: want an object, got %v", path, got))
			return
		}
		keys := make([]string, 0, len(w)+len(g))
		for k := range w {
			keys = append(keys, k)
		}
		for k := range g {
			if _, ok := w[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			compareJSON(path+"."+k, w[k], g[k], exact, diffs)
		}
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			*diffs = append(*diffs, fmt.Sprintf("%s: want %d elements, got %v", path, len(w), shorten(got)))
			return
		}
		for i := range w {
			compareJSON(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], exact, diffs)
		}
	case json.Number:
		g, ok := got.(json.Number)
		if ok && (g == w || !exact && closeNumbers(w, g)) {
			return
		}
		*diffs = append(*diffs, fmt.Sprintf("%s: want %s, got %v", path, w, got))
	default:
		wb, _ := json.Marshal(want)
		gb, _ := json.Marshal(got)
		if !bytes.Equal(wb, gb) {
			*diffs = append(*diffs, fmt.Sprintf("%s: want %s, got %s", path, wb, shorten(got)))
		}
	}
}

func closeNumbers(a, b json.Number) bool {
	x, err1 := a.Float64()
	y, err2 := b.Float64()
	return err1 == nil && err2 == nil && math.Abs(x-y) <= 1e-9*math.Max(math.Abs(x), math.Abs(y))
}

func shorten(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	return string(b)
}
