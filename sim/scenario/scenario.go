// Package scenario reads kvsim's TOML scenarios — which traces, which budgets, which
// policies with which params — and turns them into a replay. Every error names the file
// and, where it can, the key and its line.
package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/kvsim/kvsim/abi/plugin"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
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
	Metrics Metrics  `toml:"metrics"`
	Run     Run      `toml:"run"`
	Policy  []Policy `toml:"policy"`
	// Validate configures `kvsim validate` (see validate.go).
	Validate *Validate `toml:"validate"`

	budgets []sim.Budget
	specs   []sim.PolicySpec // resolved by check, so that modules load once
	lines   keyLines
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
}

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
	for i, b := range s.Budgets {
		switch v := b.(type) {
		case float64:
			if !(v > 0 && v <= 1) || math.IsNaN(v) {
				return s.errorf("budgets", "budgets[%d] = %g: a fraction of the prompt must be in (0, 1]; write token counts as integers", i, v)
			}
			s.budgets = append(s.budgets, sim.Budget{Fraction: v})
		case int64:
			if v < 1 {
				return s.errorf("budgets", "budgets[%d] = %d: a token count must be at least 1", i, v)
			}
			s.budgets = append(s.budgets, sim.Budget{Tokens: int(v)})
		default:
			return s.errorf("budgets", "budgets[%d] = %v: want a fraction (0.05) or a token count (64)", i, b)
		}
	}
	if s.Metrics.TopK < 0 {
		return s.errorf("metrics.top_k", "top_k = %d must be positive", s.Metrics.TopK)
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
		if err := s.checkCapture(); err != nil {
			return err
		}
	}
	if len(s.Policy) == 0 {
		return s.errorf("", "no policies: add [[policy]] tables")
	}
	seen := map[string]bool{}
	for i, p := range s.Policy {
		key := fmt.Sprintf("policy[%d]", i)
		if p.Name == "" {
			return s.errorf("policy.name", "%s: missing name", key)
		}
		if seen[p.Name] {
			return s.errorf("policy.name", "policy %q: name used twice", p.Name)
		}
		seen[p.Name] = true
		if err := p.Limits.check(); err != nil {
			return s.errorf("policy.limits", "policy %q: %v", p.Name, err)
		}
		spec, err := s.resolve(p)
		if err != nil {
			return s.errorf("policy.source", "policy %q: %v", p.Name, err)
		}
		s.specs = append(s.specs, spec)
	}
	if s.Validate != nil {
		return s.checkValidate()
	}
	return nil
}

// resolve turns a [[policy]] table into a replay row, checking its params by building
// one instance. wasm: and plugin: paths are relative to the scenario's directory.
func (s *Scenario) resolve(p Policy) (sim.PolicySpec, error) {
	source := p.Source
	if source == "" {
		source = "builtin:" + p.Name
	}
	scheme, rest, ok := strings.Cut(source, ":")
	if !ok {
		return sim.PolicySpec{}, fmt.Errorf("source %q: want builtin:NAME, wasm:PATH or plugin:PATH", source)
	}
	paramsJSON, err := json.Marshal(p.Params)
	if err != nil {
		return sim.PolicySpec{}, fmt.Errorf("params: %w", err)
	}
	if p.Limits != nil && scheme != "wasm" {
		return sim.PolicySpec{}, fmt.Errorf("source %q: limits apply to wasm: policies only (a %s policy runs natively, outside any sandbox)", source, scheme)
	}
	var newPolicy policies.New
	switch scheme {
	case "builtin":
		if newPolicy, ok = builtin.Lookup(rest); !ok {
			return sim.PolicySpec{}, fmt.Errorf("source %q: no builtin policy %q (have %s)", source, rest, strings.Join(builtin.Names(), ", "))
		}
	case "wasm":
		m, err := wasmhost.Load(context.Background(), s.relative(rest), p.Limits.wasmOptions())
		if err != nil {
			return sim.PolicySpec{}, fmt.Errorf("source %q: %w", source, err)
		}
		newPolicy = m.New
	case "plugin":
		if newPolicy, err = plugin.Open(s.relative(rest)); err != nil {
			return sim.PolicySpec{}, fmt.Errorf("source %q: %w", source, err)
		}
	default:
		return sim.PolicySpec{}, fmt.Errorf("source %q: unknown scheme %q (want builtin, wasm or plugin)", source, scheme)
	}
	make := func() (policies.Policy, error) {
		params, err := policies.ParseParams(paramsJSON)
		if err != nil {
			return nil, err
		}
		return newPolicy(params)
	}
	if _, err := make(); err != nil {
		return sim.PolicySpec{}, err
	}
	return sim.PolicySpec{Name: p.Name, New: make, AllowFuture: true}, nil
}

// relative anchors a path from the scenario at the scenario's directory.
func (s *Scenario) relative(path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(filepath.Dir(s.Path), path)
}

// Specs resolves every policy, in scenario order.
func (s *Scenario) Specs() ([]sim.PolicySpec, error) {
	if len(s.specs) == len(s.Policy) {
		return slices.Clone(s.specs), nil
	}
	var specs []sim.PolicySpec
	for _, p := range s.Policy {
		spec, err := s.resolve(p)
		if err != nil {
			return nil, s.errorf("policy.source", "policy %q: %v", p.Name, err)
		}
		specs = append(specs, spec)
	}
	return specs, nil
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
