// Package source opens a policy source — builtin:NAME, wasm:PATH or plugin:PATH —
// into the constructor replay and validation call. It is the one place kvsim turns a
// source into a policy, so that parsing a scenario (package scenario) stays pure:
// the command line opens the sources a scenario names through Open.
package source

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/kvsim/kvsim/abi/plugin"
	"github.com/kvsim/kvsim/abi/wasmhost"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
)

// Open opens source. wasm: and plugin: paths are relative to dir; sandbox, which
// only a wasm: policy takes, sets its limits (nil: the host's defaults).
func Open(ctx context.Context, source, dir string, sandbox *wasmhost.Options) (policies.New, error) {
	scheme, rest, ok := strings.Cut(source, ":")
	if !ok {
		return nil, fmt.Errorf("source %q: want builtin:NAME, wasm:PATH or plugin:PATH", source)
	}
	if sandbox != nil && scheme != "wasm" {
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
		var opts wasmhost.Options
		if sandbox != nil {
			opts = *sandbox
		}
		m, err := wasmhost.Load(ctx, relative(dir, rest), opts)
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

// relative anchors path at dir unless it is absolute.
func relative(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}
