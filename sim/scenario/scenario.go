// Package scenario reads kvsim's TOML scenarios — which traces, which budgets, which
// policies with which params, and the [capture] and [validate] tables of the other
// stages — and turns them into a replay. Parsing opens nothing: the command line
// opens policy sources (OpenPolicies) and builtin: model paths afterwards. Every
// error names the file and, where it can, the key and its line.
package scenario

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"

	"github.com/BurntSushi/toml"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim"
)

// Scenario is a parsed scenario file.
type Scenario struct {
	Path  string `toml:"-"`
	Title string `toml:"title"`
	Seed  uint64 `toml:"seed"`
	// Traces are globs of kvtrace files, relative to the scenario's directory.
	Traces []string `toml:"traces"`
	// Synth adds synthetic traces generated on the fly.
	Synth *Synth `toml:"synth"`
	// Capture adds traces captured on the fly from a model (see capture.go).
	Capture *Capture `toml:"capture"`
	Budgets []any    `toml:"budgets"`
	// Accounting is what a budget bounds: "nominal", "peak" (the default) or "mean"
	// (see host.Accounting). A [[policy]] may override it.
	Accounting string `toml:"accounting"`
	// Compare names the reference policy of the paired differences.
	Compare string   `toml:"compare"`
	Metrics Metrics  `toml:"metrics"`
	Run     Run      `toml:"run"`
	Policy  []Policy `toml:"policy"`
	// Validate configures `kvsim validate` (see validate.go).
	Validate *Validate `toml:"validate"`

	budgets    []host.Budget
	accounting host.Accounting
	specs      []sim.PolicySpec // opened by OpenPolicies
	lines      keyLines
}

// Synth describes synthetic traces (see package synth).
type Synth struct {
	Preset    string `toml:"preset"`
	Layers    int    `toml:"layers"`
	Heads     int    `toml:"heads"`
	HeadDim   int    `toml:"head_dim"`
	PromptLen int    `toml:"prompt_len"`
	GenLen    int    `toml:"gen_len"`
	Samples   int    `toml:"samples"`
	Seed      uint64 `toml:"seed"`
	WithV     *bool  `toml:"with_v"`
}

// Metrics are the metric options.
type Metrics struct {
	TopK        int   `toml:"top_k"`
	OutputError *bool `toml:"output_error"`
}

// Run tunes execution; it never changes results.
type Run struct {
	Threads   int `toml:"threads"`
	BlockRows int `toml:"block_rows"`
}

// Policy is one [[policy]] table.
type Policy struct {
	Name   string         `toml:"name"`
	Source string         `toml:"source"`
	Params map[string]any `toml:"params"`
	// Limits bound a wasm: policy's sandbox.
	Limits *Limits `toml:"limits"`
	// Accounting overrides the scenario's accounting for this policy.
	Accounting string `toml:"accounting"`
}

// DefaultAccounting is the accounting of a scenario that sets none: budgets cap the
// entries a head holds while attending, so that equal budgets mean equal memory.
const DefaultAccounting = host.Peak

var typeError = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// Load reads and checks a scenario file.
func Load(path string) (*Scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scenario: %w", err)
	}
	return Parse(path, data)
}

// Parse checks a scenario held in memory; path names it in errors and anchors its
// relative trace globs.
func Parse(path string, data []byte) (*Scenario, error) {
	s := &Scenario{Path: path, lines: indexKeys(data)}
	md, err := toml.Decode(string(data), s)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("scenario %s:%d: %s", path, pe.Position.Line, pe.Message)
		}
		// Type mismatches come as plain errors that carry the line in their text.
		if m := typeError.FindStringSubmatch(err.Error()); m != nil {
			return nil, fmt.Errorf("scenario %s:%s: key %q: %s", path, m[1], m[2], m[3])
		}
		return nil, fmt.Errorf("scenario %s: %w", path, err)
	}
	if err := s.checkSeeds(data); err != nil {
		return nil, err
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		var unknown []string
		for _, k := range undecoded {
			// Params belong to the policy, which checks them itself.
			if len(k) >= 2 && k[0] == "policy" && k[1] == "params" {
				continue
			}
			unknown = append(unknown, k.String())
		}
		if len(unknown) > 0 {
			sort.Slice(unknown, func(i, j int) bool { return s.lines.line(unknown[i]) < s.lines.line(unknown[j]) })
			return nil, s.errorf(unknown[0], "unknown key %q", unknown[0])
		}
	}
	if err := s.check(); err != nil {
		return nil, err
	}
	return s, nil
}

// maxTopK bounds metrics.top_k: no trace kvsim can replay attends to more tokens.
const maxTopK = host.MaxBudgetTokens

// checkSeeds refuses negative seeds, which the decoder would silently wrap into
// huge unsigned ones: TOML integers are signed.
func (s *Scenario) checkSeeds(data []byte) error {
	var seeds struct {
		Seed  int64 `toml:"seed"`
		Synth struct {
			Seed int64 `toml:"seed"`
		} `toml:"synth"`
	}
	toml.Decode(string(data), &seeds) // the full decode has already succeeded
	for _, seed := range []struct {
		key   string
		value int64
	}{{"seed", seeds.Seed}, {"synth.seed", seeds.Synth.Seed}} {
		if seed.value < 0 {
			return s.errorf(seed.key, "%s = %d: a seed must be 0 or more", seed.key, seed.value)
		}
	}
	return nil
}

// errorf formats an error at key's line.
func (s *Scenario) errorf(key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := s.lines.line(key); line > 0 {
		return fmt.Errorf("scenario %s:%d: %s", s.Path, line, msg)
	}
	return fmt.Errorf("scenario %s: %s", s.Path, msg)
}

func (s *Scenario) check() error {
	if len(s.Traces) == 0 && s.Synth == nil && s.Capture == nil {
		return s.errorf("", "no traces: set traces = [\"glob\", ...], a [synth] or a [capture] table")
	}
	if len(s.Budgets) == 0 {
		return s.errorf("", "no budgets: set budgets = [0.02, 0.05] (fractions of the prompt) or [64, 128] (tokens)")
	}
	var err error
	if s.budgets, err = s.parseBudgets("budgets", s.Budgets); err != nil {
		return err
	}
	s.accounting = DefaultAccounting
	if s.Accounting != "" {
		a, err := host.ParseAccounting(s.Accounting)
		if err != nil {
			return s.errorf("accounting", "%v", err)
		}
		s.accounting = a
	}
	if s.Metrics.TopK < 0 || s.Metrics.TopK > maxTopK {
		return s.errorf("metrics.top_k", "top_k = %d: want 1 to %d (0: the default, 8)", s.Metrics.TopK, maxTopK)
	}
	if s.Run.Threads < 0 || s.Run.BlockRows < 0 {
		return s.errorf("run", "threads and block_rows must be ≥ 0 (0 picks the default)")
	}
	if s.Synth != nil {
		if err := s.checkSynth(); err != nil {
			return err
		}
	}
	if s.Capture != nil {
		if err := s.checkDataset("capture", &s.Capture.Dataset); err != nil {
			return err
		}
	}
	if len(s.Policy) == 0 {
		return s.errorf("", "no policies: add [[policy]] tables")
	}
	seen := map[string]bool{}
	for i, p := range s.Policy {
		key := fmt.Sprintf("policy[%d]", i) // errors point at this table's own lines
		if p.Name == "" {
			return s.errorf(key, "%s: missing name", key)
		}
		if seen[p.Name] {
			return s.errorf(key+".name", "policy %q: name used twice", p.Name)
		}
		seen[p.Name] = true
		if err := p.Limits.check(); err != nil {
			return s.errorf(key+".limits", "policy %q: %v", p.Name, err)
		}
		if p.Accounting != "" {
			if _, err := host.ParseAccounting(p.Accounting); err != nil {
				return s.errorf(key+".accounting", "policy %q: %v", p.Name, err)
			}
		}
	}
	if s.Compare != "" && !seen[s.Compare] {
		return s.errorf("compare", "compare = %q: no [[policy]] has that name", s.Compare)
	}
	if s.Validate != nil {
		return s.checkValidate()
	}
	return nil
}

// Opener opens a policy source (builtin:NAME, wasm:PATH or plugin:PATH, paths
// relative to dir) into its constructor; limits are the [policy.limits] table, nil
// when absent. Package abi/source provides it; parsing never opens anything.
type Opener func(source, dir string, limits *Limits) (policies.New, error)

// OpenPolicies opens every [[policy]]'s source with open and checks its params by
// building one instance, so that Specs can hand out the replay rows. Modules load
// once, here. Errors name the policy's line.
func (s *Scenario) OpenPolicies(open Opener) error {
	specs := make([]sim.PolicySpec, len(s.Policy))
	for i, p := range s.Policy {
		spec, err := s.resolve(p, open)
		if err != nil {
			return s.policyErrorf(i, err)
		}
		specs[i] = spec
	}
	s.specs = specs
	return nil
}

// resolve opens a [[policy]] table into a replay row, checking its params by building
// one instance.
func (s *Scenario) resolve(p Policy, open Opener) (sim.PolicySpec, error) {
	source := p.Source
	if source == "" {
		source = "builtin:" + p.Name
	}
	paramsJSON, err := json.Marshal(p.Params)
	if err != nil {
		return sim.PolicySpec{}, fmt.Errorf("params: %w", err)
	}
	newPolicy, err := open(source, filepath.Dir(s.Path), p.Limits)
	if err != nil {
		return sim.PolicySpec{}, err
	}
	make := func() (policies.Policy, error) {
		params, err := policies.ParseParams(paramsJSON)
		if err != nil {
			return nil, err
		}
		return newPolicy(params)
	}
	if _, err := make(); err != nil {
		return sim.PolicySpec{}, paramsError{err}
	}
	return sim.PolicySpec{Name: p.Name, New: make, AllowClairvoyant: true, Accounting: s.policyAccounting(p)}, nil
}

// policyAccounting is p's accounting: its own key, else the scenario's.
func (s *Scenario) policyAccounting(p Policy) host.Accounting {
	if a, err := host.ParseAccounting(p.Accounting); err == nil {
		return a
	}
	return s.accounting
}

// SetAccounting puts every policy under mode, overriding the scenario's keys.
func (s *Scenario) SetAccounting(mode host.Accounting) {
	s.accounting = mode
	for i := range s.Policy {
		s.Policy[i].Accounting = ""
	}
	for i := range s.specs {
		s.specs[i].Accounting = mode
	}
}

// SetCompare names the reference policy of the paired differences ("" for none).
func (s *Scenario) SetCompare(name string) error {
	if name != "" && !slices.ContainsFunc(s.Policy, func(p Policy) bool { return p.Name == name }) {
		return fmt.Errorf("compare %q: scenario %s has no such policy", name, s.Path)
	}
	s.Compare = name
	return nil
}

// paramsError marks a policy's refusal of its params, reported at its params line.
type paramsError struct{ error }

func (e paramsError) Unwrap() error { return e.error }

// policyErrorf reports err of the i-th [[policy]] at the line of its key that
// caused it.
func (s *Scenario) policyErrorf(i int, err error) error {
	key := fmt.Sprintf("policy[%d].source", i)
	if errors.As(err, new(paramsError)) {
		key = fmt.Sprintf("policy[%d].params", i)
	}
	return s.errorf(key, "policy %q: %v", s.Policy[i].Name, err)
}

// relative anchors a path from the scenario at the scenario's directory.
func (s *Scenario) relative(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(s.Path), path)
}

// Specs are the replay rows of every policy, in scenario order, once OpenPolicies
// has opened them.
func (s *Scenario) Specs() ([]sim.PolicySpec, error) {
	if s.specs == nil {
		return nil, fmt.Errorf("scenario %s: policies not opened yet (OpenPolicies)", s.Path)
	}
	return slices.Clone(s.specs), nil
}

// TracePaths expands the trace globs, relative to the scenario's directory, sorted
// and without duplicates.
func (s *Scenario) TracePaths() ([]string, error) {
	var paths []string
	base := filepath.Dir(s.Path)
	for _, g := range s.Traces {
		if !filepath.IsAbs(g) {
			g = filepath.Join(base, g)
		}
		m, err := filepath.Glob(g)
		if err != nil {
			return nil, s.errorf("traces", "traces: bad glob %q: %v", g, err)
		}
		if len(m) == 0 {
			return nil, s.errorf("traces", "traces: %q matches no file", g)
		}
		paths = append(paths, m...)
	}
	sort.Strings(paths)
	return slices.Compact(paths), nil
}
