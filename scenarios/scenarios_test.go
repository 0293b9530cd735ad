package scenarios

import (
	"slices"
	"testing"

	"github.com/kvsim/kvsim/internal/models"
	"github.com/kvsim/kvsim/sim/scenario"
)

// Every embedded scenario parses, and the default one captures the embedded trained
// model, replays every builtin at the paper's budgets and has a [validate] table.
func TestEmbeddedScenarios(t *testing.T) {
	names := Names()
	if !slices.Equal(names, []string{"demo", "opt-kjv-demo", "opt-kjv-paper", "paper"}) {
		t.Errorf("names %v", names)
	}
	for _, n := range names {
		if !Has(n) {
			t.Errorf("Has(%q) is false", n)
		}
		data, err := FS.ReadFile(n + ".toml")
		if err != nil {
			t.Fatal(err)
		}
		s, err := scenario.Parse(n+".toml", data)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if n == "opt-kjv-demo" || n == "opt-kjv-paper" {
			if s.Capture == nil || s.Capture.Model != models.Scheme+models.Default || s.Capture.Data != models.Scheme+models.Default+"/heldout.jsonl" {
				t.Errorf("%s: [capture] %+v, want the embedded model and its held-out documents", n, s.Capture)
			}
		}
	}
	if Demo != "opt-kjv-demo.toml" || Has("../demo") || Has("nope") {
		t.Errorf("Demo %q; Has(../demo) %v; Has(nope) %v", Demo, Has("../demo"), Has("nope"))
	}
	data, _ := FS.ReadFile(Demo)
	s, err := scenario.Parse(Demo, data)
	if err != nil {
		t.Fatal(err)
	}
	var policies []string
	for _, p := range s.Policy {
		policies = append(policies, p.Name)
	}
	if !slices.Equal(policies, []string{"full", "window", "random", "h2o", "oracle", "auv", "nacl", "knorm", "keydiff", "expectedattention", "snapkv", "pyramidkv", "adakv", "duo"}) || s.Validate == nil ||
		s.Validate.Model != models.Scheme+models.Default {
		t.Errorf("demo policies %v, [validate] %+v", policies, s.Validate)
	}
}
