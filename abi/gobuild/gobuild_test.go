package gobuild

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

// TestBuildErrors: what the go command says reaches the user, with the package. The
// builds run in parallel, each with its own bound.
func TestBuildErrors(t *testing.T) {
	for pkg, want := range map[string]string{
		"github.com/kvsim/kvsim/cmd/kvsim":     "build github.com/kvsim/kvsim/cmd/kvsim: github.com/kvsim/kvsim/cmd/kvsim is a main package: name the package that exports New",
		"github.com/kvsim/kvsim/policies/host": "build github.com/kvsim/kvsim/policies/host (github.com/kvsim/kvsim/policies/host): go build: exit status 1:",
		"./no/such/dir":                        "build ./no/such/dir: go list: exit status 1:",
	} {
		t.Run(pkg, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			err := WASM(ctx, pkg, filepath.Join(t.TempDir(), "p.wasm"))
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Errorf("got %v\nwant %s…", err, want)
			}
			if pkg == "github.com/kvsim/kvsim/policies/host" && err != nil && !strings.Contains(err.Error(), "undefined: policy.New") {
				t.Errorf("the compiler's reason is missing: %v", err)
			}
		})
	}
}
