package gobuild

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies/h2o"
	"github.com/kvsim/kvsim/policies/window"
)

func TestPackageOf(t *testing.T) {
	for want, fn := range map[string]func() (string, error){
		"github.com/kvsim/kvsim/policies/h2o":    func() (string, error) { return PackageOf(h2o.New) },
		"github.com/kvsim/kvsim/policies/window": func() (string, error) { return PackageOf(window.New) },
	} {
		if got, err := fn(); err != nil || got != want {
			t.Errorf("got %q, %v; want %q", got, err, want)
		}
	}
}

// TestBuildErrors: what the go command says reaches the user, with the package.
func TestBuildErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "p.wasm")
	for pkg, want := range map[string]string{
		"github.com/kvsim/kvsim/cmd/kvsim": "build github.com/kvsim/kvsim/cmd/kvsim: github.com/kvsim/kvsim/cmd/kvsim is a main package: name the package that exports New",
		"github.com/kvsim/kvsim/sim/half":  "build github.com/kvsim/kvsim/sim/half (github.com/kvsim/kvsim/sim/half): go build: exit status 1:",
		"./no/such/dir":                    "build ./no/such/dir: go list: exit status 1:",
	} {
		err := WASM(context.Background(), pkg, out)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s:\n got %v\nwant %s…", pkg, err, want)
		}
		if pkg == "github.com/kvsim/kvsim/sim/half" && err != nil && !strings.Contains(err.Error(), "undefined: policy.New") {
			t.Errorf("%s: the compiler's reason is missing: %v", pkg, err)
		}
	}
}
