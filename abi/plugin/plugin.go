// Package plugin loads eviction policies built as Go plugins (go build
// -buildmode=plugin): native speed, and no sandbox. A plugin's main package defines
//
//	func New(p *policies.Params) (policies.Policy, error)
//
// which `kvsim policy build -plugin PKG` writes for any policy package. Go loads a
// plugin only into a program built by the same Go version from the same versions of
// every package they share, kvsim's included, and only with cgo on linux, freebsd or
// darwin; Open says how to rebuild when that is not so.
package plugin

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/kvsim/kvsim/policies"
)

// Open loads the plugin at path and returns its New. A plugin stays loaded for the
// life of the process.
func Open(path string) (policies.New, error) {
	newPolicy, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", path, err)
	}
	return newPolicy, nil
}

// lookupNew checks the type of the symbol New.
func lookupNew(sym any) (policies.New, error) {
	switch f := sym.(type) {
	case func(*policies.Params) (policies.Policy, error):
		return f, nil
	case *policies.New: // var New policies.New = ...
		if *f != nil {
			return *f, nil
		}
	case *func(*policies.Params) (policies.Policy, error):
		if *f != nil {
			return *f, nil
		}
	}
	return nil, fmt.Errorf("symbol New is a %T, want func(*policies.Params) (policies.Policy, error)", sym)
}

// explain adds how to rebuild to Go's version-mismatch errors.
func explain(err error) error {
	if !strings.Contains(err.Error(), "different version") {
		return err
	}
	return fmt.Errorf("%w; rebuild the plugin with this kvsim's Go (%s) and kvsim module (%s), with the same build flags: go build -buildmode=plugin, or kvsim policy build -plugin PKG",
		err, runtime.Version(), kvsimVersion())
}

// kvsimVersion is the version of the kvsim module this program was built from.
func kvsimVersion() string {
	const path = "github.com/kvsim/kvsim"
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	if info.Main.Path == path {
		return info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path == path {
			return d.Version
		}
	}
	return "unknown"
}
