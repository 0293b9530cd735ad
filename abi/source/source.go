// Package source opens a policy source — builtin:NAME, wasm:PATH or plugin:PATH —
// into the constructor replay and validation call. It is the one place kvsim turns a
// source into a policy, so that parsing a scenario (package scenario) stays pure:
// the command line hands Opener to Scenario.OpenPolicies.
package source

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kvsim/kvsim/abi/plugin"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/sim/scenario"
)

// Open opens source. wasm: and plugin: paths are relative to dir; limits, which
// only a wasm: policy takes, bound its sandbox (nil: the host's defaults).
func Open(ctx context.Context, source, dir string, limits *scenario.Limits) (policies.New, error) {
	scheme, rest, ok := strings.Cut(source, ":")
	if !ok {
		return nil, fmt.Errorf("source %q: want builtin:NAME, wasm:PATH or plugin:PATH", source)
	}
	if limits != nil && scheme != "wasm" {
		return nil, fmt.Errorf("source %q: limits apply to wasm: policies only (a %s policy runs natively, outside any sandbox)", source, scheme)
	}
	switch scheme {
	case "builtin":
		newPolicy, ok := builtin.Lookup(rest)
		if !ok {
			return nil, fmt.Errorf("source %q: no builtin policy %q (have %s)", source, rest, strings.Join(builtin.Names(), ", "))
		}
		return newPolicy, nil
	case "wasm":
		m, err := wasmhost.Load(ctx, relative(dir, rest), wasmOptions(limits))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", source, err)
		}
		return m.New, nil
	case "plugin":
		newPolicy, err := plugin.Open(relative(dir, rest))
		if err != nil {
			return nil, fmt.Errorf("source %q: %w", source, err)
		}
		return newPolicy, nil
	}
	return nil, fmt.Errorf("source %q: unknown scheme %q (want builtin, wasm or plugin)", source, scheme)
}

// Opener is Open for Scenario.OpenPolicies.
func Opener(ctx context.Context) scenario.Opener {
	return func(source, dir string, limits *scenario.Limits) (policies.New, error) {
		return Open(ctx, source, dir, limits)
	}
}

// relative anchors path at dir unless it is absolute.
func relative(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// wasmOptions turns the limits into the WASM host's options; unset limits keep the
// host's defaults.
func wasmOptions(l *scenario.Limits) wasmhost.Options {
	var o wasmhost.Options
	if l == nil {
		return o
	}
	if l.MemoryPages != nil {
		o.MemoryPages = uint32(*l.MemoryPages)
	}
	if l.Fuel != nil {
		o.Fuel = *l.Fuel
	}
	if d := l.DeadlineMS; d != nil {
		o.Deadline = time.Duration(*d) * time.Millisecond
		if *d == 0 {
			o.Deadline = wasmhost.NoDeadline
		}
	}
	return o
}
