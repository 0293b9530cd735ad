package scenario

import (
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
)

const validateBase = base + `[[policy]]
name = "win"
source = "builtin:window"
[[policy]]
name = "full"
`

func TestValidateTable(t *testing.T) {
	s, err := parseOpen("/d/s.toml", []byte(validateBase+"[validate]\nmodel = \"m\"\ndata = \"x.jsonl\"\npolicies = [\"win\", \"h2o\"]\nbudgets = [8, 0.5]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ValidateBudgets(); !slices.Equal(got, []host.Budget{{Tokens: 8}, {Fraction: 0.5}}) {
		t.Errorf("budgets %v", got)
	}
	if s.Validate.GenTokens != 64 || s.Validate.Device != "cpu" || s.RelativePath("m") != "/d/m" {
		t.Errorf("defaults %+v, model path %s", s.Validate, s.RelativePath("m"))
	}
	names, err := s.ValidateCandidates(nil)
	if err != nil || !slices.Equal(names, []string{"win", "h2o"}) {
		t.Errorf("candidates %v, %v", names, err)
	}
	specs, err := s.ValidateSpecs(names, nil)
	if err != nil || len(specs) != 2 || specs[0].Name != "win" || specs[1].Name != "h2o" {
		t.Errorf("specs %v, %v", specs, err)
	}
	if _, err := s.ValidateCandidates([]string{"h2o"}); err == nil || !strings.Contains(err.Error(), `"h2o" is clairvoyant`) {
		t.Errorf("a listed clairvoyant policy: %v", err)
	}

	// Without budgets of its own, [validate] takes the scenario's; "all" every policy.
	s, err = parseOpen("s.toml", []byte(validateBase+"[validate]\nmodel = \"m\"\ndata = \"x.jsonl\"\npolicies = \"all\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.ValidateBudgets(); !slices.Equal(got, []host.Budget{{Fraction: 0.02}, {Fraction: 0.1}, {Tokens: 64}}) {
		t.Errorf("default budgets %v", got)
	}
	names, err = s.ValidateCandidates([]string{"win"})
	if err != nil || !slices.Equal(names, []string{"h2o", "full"}) {
		t.Errorf("all but the clairvoyant: %v, %v", names, err)
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
		_, err := parseOpen("s.toml", []byte(validateBase+"[validate]\n"+c.table))
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
	s, err := parseOpen("s.toml", []byte(validateBase+"[validate]\nmodel = \"m\"\ndata = \"x\"\ntop = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"h2o", "win", "full"}
	if _, err := s.ValidateSpecs(all, nil); err == nil {
		t.Error("top without a replay result accepted")
	}
	r.Policies = all
	if specs, err := s.ValidateSpecs(all, r); err != nil || len(specs) != 1 || specs[0].Name != "win" {
		t.Errorf("top 1: %v, %v", specs, err)
	}
	if specs, err := s.ValidateSpecs([]string{"h2o", "full"}, r); err != nil || len(specs) != 1 || specs[0].Name != "h2o" {
		t.Errorf("top 1 without win: %v, %v", specs, err)
	}
	if _, err := s.ValidateSpecs([]string{"other"}, r); err == nil {
		t.Error("top 1 of policies the result lacks accepted")
	}
}
