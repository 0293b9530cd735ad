package scenario

import (
	"path/filepath"
	"strings"
	"testing"
)

// noTraces is a scenario with policies and budgets but no traces.
const noTraces = `budgets = [0.1]
[[policy]]
name = "h2o"
`

func TestCaptureTable(t *testing.T) {
	// A [capture] table alone supplies the traces.
	s, err := Parse("/d/s.toml", []byte(noTraces+"[capture]\nmodel = \"m\"\ndata = \"d.jsonl\"\nsamples = 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	c := s.Capture
	if c.GenTokens != 64 || c.Device != "cpu" || c.Samples != 2 || c.Template != "" {
		t.Errorf("defaults %+v", c)
	}
	if p := s.RelativePath("m"); p != filepath.Join("/d", "m") {
		t.Errorf("relative model path: %s", p)
	}
}

func TestCaptureTableErrors(t *testing.T) {
	for _, c := range []struct{ table, want string }{
		{"data = \"x\"\n", "[capture] needs model"},
		{"model = \"m\"\n", "[capture] needs model"},
		{"model = \"m\"\ndata = \"x\"\nsamples = -1\n", "must be ≥ 0"},
		{"model = \"m\"\ndata = \"x\"\ngen_tokens = -4\n", "must be ≥ 0"},
		{"model = \"m\"\ndata = \"x\"\nlayers = 2\n", `unknown key "capture.layers"`},
	} {
		_, err := Parse("s.toml", []byte(noTraces+"[capture]\n"+c.table))
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "s.toml:") {
			t.Errorf("[capture] %q: %v, want %q with the file's line", c.table, err, c.want)
		}
	}
	// No traces, no [synth], no [capture]: the error names all three.
	if _, err := Parse("s.toml", []byte(noTraces)); err == nil || !strings.Contains(err.Error(), "a [synth] or a [capture] table") {
		t.Errorf("no traces: %v", err)
	}
}
