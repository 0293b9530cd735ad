package abi_test

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kvsim/kvsim/abi/gobuild"
	"github.com/kvsim/kvsim/abi/wasmhost"
)

// workDir holds what the tests build, once per test binary.
var workDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kvsim-abi-test-")
	if err != nil {
		panic(err)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type artifact struct {
	once sync.Once
	path string
	err  error
}

var artifacts sync.Map // name -> *artifact

// build makes the file name in workDir once, with make, and returns its path.
func build(t testing.TB, name string, make func(out string) error) string {
	t.Helper()
	v, _ := artifacts.LoadOrStore(name, &artifact{})
	a := v.(*artifact)
	a.once.Do(func() {
		a.path = filepath.Join(workDir, name)
		a.err = make(a.path)
	})
	if a.err != nil {
		t.Fatalf("build %s: %v", name, a.err)
	}
	return a.path
}

// need skips the test when a tool is missing; CI installs them all.
func need(t testing.TB, tool, install string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Skipf("%s not found: install it to run this test (Debian/Ubuntu: apt-get install -y %s)", tool, install)
	}
}

// buildBound bounds every build a test runs: a compiler that hangs fails the test.
const buildBound = 10 * time.Minute

func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildBound)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return &toolError{name, err, strings.TrimSpace(string(out))}
	}
	return nil
}

type toolError struct {
	tool string
	err  error
	out  string
}

func (e *toolError) Error() string { return e.tool + ": " + e.err.Error() + ": " + e.out }

// wat compiles a WebAssembly text file with wabt's wat2wasm.
func wat(t testing.TB, src string) string {
	need(t, "wat2wasm", "wabt")
	return build(t, strings.TrimSuffix(filepath.Base(src), ".wat")+".wasm", func(out string) error {
		return run("wat2wasm", src, "-o", out)
	})
}

// cPolicy compiles a C policy for wasm32 with clang and lld, without libc, against
// kvpolicy.h's ABI major version major, with more -D defines if given.
func cPolicy(t testing.TB, src string, major int, defines ...string) string {
	need(t, "clang", "clang lld")
	need(t, "wasm-ld", "lld")
	name := fmt.Sprintf("%s-c-abi%d%s.wasm", strings.TrimSuffix(filepath.Base(src), ".c"), major, strings.Join(defines, ""))
	return build(t, name, func(out string) error {
		args := []string{"--target=wasm32", "-O2", "-msimd128", "-mbulk-memory", "-nostdlib", "-Wl,--no-entry",
			"-Wall", "-Werror", fmt.Sprintf("-DKVP_ABI_MAJOR=%d", major), "-I", "."}
		for _, d := range defines {
			args = append(args, "-D"+d)
		}
		return run("clang", append(args, "-o", out, src)...)
	})
}

// gunzip writes the decompressed file src to out.
func gunzip(src, out string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(z, wasmhost.MaxModuleBytes))
	if err != nil {
		return err
	}
	return os.WriteFile(out, b, 0o644)
}

// rustc finds a rustc that can build for wasm32-unknown-unknown: $KVSIM_RUSTC, the
// one in PATH, or Debian's (rustup's toolchains have no wasm32 target offline).
func rustc(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("KVSIM_RUSTC"), "rustc", "/usr/bin/rustc"}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, c, "--print", "target-libdir", "--target", "wasm32-unknown-unknown").Output()
		cancel()
		if err != nil {
			continue
		}
		if libs, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(out)), "libcore-*.rlib")); len(libs) > 0 {
			return c
		}
	}
	t.Skip("no rustc with the wasm32-unknown-unknown target: install one to run this test (Debian/Ubuntu: apt-get install -y rustc libstd-rust-dev-wasm32; rustup: rustup target add wasm32-unknown-unknown), or name it in KVSIM_RUSTC")
	return ""
}

// rustPolicy builds a Rust policy, a no_std cdylib in one file.
func rustPolicy(t testing.TB, src string) string {
	rc := rustc(t)
	return build(t, strings.TrimSuffix(filepath.Base(src), ".rs")+"-rust.wasm", func(out string) error {
		return run(rc, "--edition", "2021", "--crate-type", "cdylib", "--target", "wasm32-unknown-unknown",
			"-O", "-C", "panic=abort", "-D", "warnings", "-o", out, src)
	})
}

// asPolicy builds an AssemblyScript policy with the compiler its folder pins.
func asPolicy(t testing.TB, src string) string {
	t.Helper()
	dir := filepath.Dir(src)
	asc, err := filepath.Abs(filepath.Join(dir, "node_modules", ".bin", "asc"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(asc); err != nil {
		t.Skipf("the AssemblyScript compiler is not installed: run npm ci in %s to run this test (CI does)", dir)
	}
	return build(t, strings.TrimSuffix(filepath.Base(src), ".ts")+"-as.wasm", func(out string) error {
		return run(asc, src, "-o", out, "-O3", "--runtime", "stub", "--use", "abort=")
	})
}

// goPolicy builds a Go policy package to WASM.
func goPolicy(t testing.TB, pkg string) string {
	return build(t, strings.ReplaceAll(pkg, "/", "_")+".wasm", func(out string) error {
		ctx, cancel := context.WithTimeout(context.Background(), buildBound)
		defer cancel()
		return gobuild.WASM(ctx, pkg, out)
	})
}

// load loads a module, closing it when the test ends.
func load(t testing.TB, path string, opts wasmhost.Options) *wasmhost.Module {
	t.Helper()
	m, err := wasmhost.Load(context.Background(), path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}
