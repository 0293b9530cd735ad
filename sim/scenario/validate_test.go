package scenario

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/sim"
)

const validateBase = base + `[[policy]]
name = "win"
source = "builtin:window"
[[policy]]
name = "full"
`

func TestValidateTable(t *testing.T) {
	s, err := Parse("/d/s.toml", []byte(validateBase+"[validate]\nmodel = \"m\"\ndata = \"x.jsonl\"\npolicies = [\"win\", \"h2o\"]\nbudgets = [8, 0.5]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ValidateBudgets(); !slices.Equal(got, []sim.Budget{{Tokens: 8}, {Fraction: 0.5}}) {
		t.Errorf("budgets %v", got)
	}
	if s.Validate.GenTokens != 64 || s.Validate.Device != "cpu" || s.RelativePath("m") != "/d/m" {
		t.Errorf("defaults %+v, model path %s", s.Validate, s.RelativePath("m"))
	}
	specs, err := s.ValidateSpecs(nil)
	if err != nil || len(specs) != 2 || specs[0].Name != "win" || specs[1].Name != "h2o" {
		t.Errorf("specs %v, %v", specs, err)
	}

	// Without budgets of its own, [validate] takes the scenario's; "all" every policy.
	s, err = Parse("s.toml", []byte(validateBase+"[validate]\nmodel = \"m\"\ndata = \"x.jsonl\"\npolicies = \"all\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ValidateBudgets(); !slices.Equal(got, []sim.Budget{{Fraction: 0.02}, {Fraction: 0.1}, {Tokens: 64}}) {
		t.Errorf("default budgets %v", got)
	}
	if specs, err := s.ValidateSpecs(nil); err != nil || len(specs) != 3 {
		t.Errorf("all: %d specs, %v", len(specs), err)
	}
}

func TestValidateTableErrors(t *testing.T) {
	for _, c := range []struct{ table, want string }{
		{"data = \"x\"\n", "needs model"},
		{"model = \"m\"\ndata = \"x\"\npolicies = \"some\"\n", `policies = "some"`},
		{"model = \"m\"\ndata = \"x\"\npolicies = [\"nope\"]\n", "not the name"},
		{"model = \"m\"\ndata = \"x\"\nbudgets = [0]\n", "at least 1"},
		{"model = \"m\"\ndata = \"x\"\nsamples = -1\n", "≥ 0"},
	} {
		_, err := Parse("s.toml", []byte(validateBase+"[validate]\n"+c.table))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.table, err, c.want)
		}
	}
}

func TestTopPolicies(t *testing.T) {
	r := &sim.Result{Policies: []string{"a", "b", "c"}, Budgets: []string{"1", "2"}, Cells: []sim.Cell{
		{Metrics: sim.Metrics{HitRate: 0.5}}, {Metrics: sim.Metrics{HitRate: 0.7}}, // a: 0.6
		{Metrics: sim.Metrics{HitRate: 0.9}}, {Metrics: sim.Metrics{HitRate: 0.5}}, // b: 0.7
		{Metrics: sim.Metrics{HitRate: 0.1}}, {Metrics: sim.Metrics{HitRate: 0.2}}, // c: 0.15
	}}
	if got := TopPolicies(r, 2, nil); !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("top 2: %v", got)
	}
	if got := TopPolicies(r, 5, []string{"c", "a"}); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("top 5 of a, c: %v", got)
	}
	s, err := Parse("s.toml", []byte(validateBase+"[validate]\nmodel = \"m\"\ndata = \"x\"\ntop = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ValidateSpecs(nil); err == nil {
		t.Error("top without a replay result accepted")
	}
	r.Policies = []string{"h2o", "win", "full"}
	if specs, err := s.ValidateSpecs(r); err != nil || len(specs) != 1 || specs[0].Name != "win" {
		t.Errorf("top 1: %v, %v", specs, err)
	}
}
