//go:build cgo && linux

package plugin

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kvsim/kvsim/abi/conformance"
	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/policies/window"
)

// buildBound bounds each plugin build: a build that hangs fails the test.
const buildBound = 10 * time.Minute

// skipIfInstrumented: coverage and the race detector compile kvsim differently from
// a plain plugin build, so Go would rightly refuse the plugin.
func skipIfInstrumented(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("plugins load only into a binary built like them; run without -cover and -race")
	}
}

// TestOpen: the builtin window, built as a plugin, evicts exactly like itself.
func TestOpen(t *testing.T) {
	skipIfInstrumented(t)
	so := filepath.Join(t.TempDir(), "window.so")
	ctx, cancel := context.WithTimeout(context.Background(), buildBound)
	defer cancel()
	if err := gobuild.Plugin(ctx, "github.com/kvsim/kvsim/policies/window", so); err != nil {
		t.Fatal(err)
	}
	newPolicy, err := Open(so)
	if err != nil {
		t.Fatal(err)
	}
	if err := conformance.Same(context.Background(), window.New, newPolicy, map[string]any{"sink": 3}); err != nil {
		t.Error(err)
	}
}

// TestOpenStalePlugin: a plugin built from another version of kvsim's policies
// package is refused, with how to rebuild it.
func TestOpenStalePlugin(t *testing.T) {
	skipIfInstrumented(t)
	// A copy of the module whose policies package has one more constant.
	mod := t.TempDir()
	write := func(name, body string) {
		path := filepath.Join(mod, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module github.com/kvsim/kvsim\n\ngo 1.26.0\n")
	sources, _ := filepath.Glob("../../policies/*.go")
	for _, src := range sources {
		if strings.HasSuffix(src, "_test.go") {
			continue
		}
		body, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		write("policies/"+filepath.Base(src), string(body))
	}
	write("policies/stale.go", "package policies\n\n// Stale makes this a different version of the package.\nconst Stale = 1\n")
	write("stale/main.go", `package main

import "github.com/kvsim/kvsim/policies"

func New(p *policies.Params) (policies.Policy, error) { return nil, nil }

func main() {}
`)
	so := filepath.Join(mod, "stale.so")
	ctx, cancel := context.WithTimeout(context.Background(), buildBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=plugin", "-o", so, "./stale")
	cmd.Dir = mod
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the stale plugin: %v\n%s", err, out)
	}
	_, err := Open(so)
	want := "plugin " + so + `: plugin.Open("` + strings.TrimSuffix(so, ".so") + `"): plugin was built with a different version of package github.com/kvsim/kvsim/policies; ` +
		"rebuild the plugin with this kvsim's Go (" + runtime.Version() + ") and kvsim module ((devel)), with the same build flags: go build -buildmode=plugin, or kvsim policy build -plugin PKG"
	if err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
