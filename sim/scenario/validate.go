package scenario

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
)

// Validate is the [validate] table: which model, data and policies `kvsim validate`
// decodes with, policies deciding evictions inside the model. Paths are relative to
// the scenario's directory.
type Validate struct {
	Dataset
	// Budgets default to the scenario's.
	Budgets []any `toml:"budgets"`
	Stem    *bool `toml:"stem"`
	// Policies is "all" (the default) or a list of [[policy]] names.
	Policies any `toml:"policies"`
	// Top keeps the N policies of highest simulated hit rate (mean over budgets),
	// read from ReplayResult (a `kvsim replay -format json` file) or, without one,
	// from a replay run first.
	Top          int    `toml:"top"`
	ReplayResult string `toml:"replay_result"`

	budgets []host.Budget
	names   []string // nil: all
}

// checkValidate checks the [validate] table.
func (s *Scenario) checkValidate() error {
	v := s.Validate
	if err := s.checkDataset("validate", &v.Dataset); err != nil {
		return err
	}
	if v.Top < 0 {
		return s.errorf("validate.top", "[validate]: top = %d must be ≥ 0", v.Top)
	}
	if len(v.Budgets) == 0 {
		v.budgets = slices.Clone(s.budgets)
	} else {
		var err error
		if v.budgets, err = s.parseBudgets("validate.budgets", v.Budgets); err != nil {
			return err
		}
	}
	switch p := v.Policies.(type) {
	case nil:
	case string:
		if p != "all" {
			return s.errorf("validate.policies", "policies = %q: want \"all\" or a list of policy names", p)
		}
	case []any:
		for i, n := range p {
			name, ok := n.(string)
			if !ok || !slices.ContainsFunc(s.Policy, func(q Policy) bool { return q.Name == name }) {
				return s.errorf("validate.policies", "policies[%d] = %v: not the name of a [[policy]]", i, n)
			}
			v.names = append(v.names, name)
		}
	default:
		return s.errorf("validate.policies", "policies = %v: want \"all\" or a list of policy names", p)
	}
	return nil
}

// parseBudgets reads a list of budgets: fractions of the prompt or token counts,
// each at most once.
func (s *Scenario) parseBudgets(key string, raw []any) ([]host.Budget, error) {
	var out []host.Budget
	for i, b := range raw {
		var budget host.Budget
		switch x := b.(type) {
		case float64:
			if !(x > 0 && x <= 1) {
				return nil, s.errorf(key, "%s[%d] = %g: a fraction of the prompt must be in (0, 1]; write token counts as integers", key, i, x)
			}
			budget = host.Budget{Fraction: x}
		case int64:
			if x < 1 {
				return nil, s.errorf(key, "%s[%d] = %d: a token count must be at least 1", key, i, x)
			}
			if x > host.MaxBudgetTokens {
				return nil, s.errorf(key, "%s[%d] = %d: a token count must be at most %d (1.0 keeps the whole prompt)", key, i, x, host.MaxBudgetTokens)
			}
			budget = host.Budget{Tokens: int(x)}
		default:
			return nil, s.errorf(key, "%s[%d] = %v: want a fraction (0.05) or a token count (64)", key, i, b)
		}
		if j := slices.Index(out, budget); j >= 0 {
			return nil, s.errorf(key, "%s[%d] = %v repeats %s[%d]: each budget is one column of the table", key, i, b, key, j)
		}
		out = append(out, budget)
	}
	return out, nil
}

// ValidateBudgets are the budgets validation runs at.
func (s *Scenario) ValidateBudgets() []host.Budget { return slices.Clone(s.Validate.budgets) }

// RelativePath resolves a path of the [validate] table against the scenario's
// directory.
func (s *Scenario) RelativePath(path string) string { return s.relative(path) }

// ValidateCandidates names the policies validation may pick from: the listed
// ones, or all, less those in skip (clairvoyant policies, which cannot run in the
// loop). A listed policy in skip is an error.
func (s *Scenario) ValidateCandidates(skip []string) ([]string, error) {
	if names := s.Validate.names; names != nil {
		for _, n := range names {
			if slices.Contains(skip, n) {
				return nil, s.errorf("validate.policies", "policies: %q is clairvoyant: it needs the future, which only replay has", n)
			}
		}
		return slices.Clone(names), nil
	}
	var out []string
	for _, p := range s.Policy {
		if !slices.Contains(skip, p.Name) {
			out = append(out, p.Name)
		}
	}
	return out, nil
}

// ValidateSpecs picks the policies to validate among candidates (see
// ValidateCandidates): all of them, or with top = N the N of highest hit rate in
// replay, which is then required.
func (s *Scenario) ValidateSpecs(candidates []string, replay *sim.Result) ([]sim.PolicySpec, error) {
	v := s.Validate
	keep := candidates
	if v.Top > 0 {
		if replay == nil {
			return nil, fmt.Errorf("scenario %s: [validate] top = %d needs a replay result", s.Path, v.Top)
		}
		keep = TopPolicies(replay, v.Top, candidates)
		if len(keep) == 0 {
			return nil, fmt.Errorf("scenario %s: [validate] top = %d: the replay result has none of the policies %v", s.Path, v.Top, candidates)
		}
	}
	return s.SpecsNamed(keep)
}

// SpecsNamed resolves the named policies, in the order given.
func (s *Scenario) SpecsNamed(names []string) ([]sim.PolicySpec, error) {
	specs, err := s.Specs()
	if err != nil {
		return nil, err
	}
	var out []sim.PolicySpec
	for _, name := range names {
		i := slices.IndexFunc(specs, func(p sim.PolicySpec) bool { return p.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("scenario %s: no [[policy]] named %q", s.Path, name)
		}
		out = append(out, specs[i])
	}
	return out, nil
}

// TopPolicies names the n policies of r with the highest hit rate averaged over
// budgets, best first, among those in only (all when nil). Failed cells count 0.
func TopPolicies(r *sim.Result, n int, only []string) []string {
	type scored struct {
		name string
		hit  float64
	}
	var all []scored
	for i, name := range r.Policies {
		if only != nil && !slices.Contains(only, name) {
			continue
		}
		var sum float64
		for j := range r.Budgets {
			sum += r.Cell(i, j).HitRate
		}
		all = append(all, scored{name, sum / float64(max(1, len(r.Budgets)))})
	}
	slices.SortStableFunc(all, func(a, b scored) int { return cmp.Compare(b.hit, a.hit) })
	var names []string
	for _, p := range all[:min(n, len(all))] {
		names = append(names, p.name)
	}
	return names
}
