package synth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/opt"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

func TestWriteFileRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.safetensors")
	if err := WriteFile(context.Background(), path, small, half.F32); err != nil {
		t.Fatal(err)
	}
	file, err := kvtrace.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	gen := mustNew(t, small)
	if !reflect.DeepEqual(file.Meta(), gen.Meta()) {
		t.Errorf("file meta %+v, want %+v", file.Meta(), gen.Meta())
	}
	if !slices.Equal(file.Tokens(), gen.Tokens()) {
		t.Error("file tokens differ from the generator's")
	}
	for layer := range 2 {
		for _, kind := range []kvtrace.Kind{kvtrace.Q, kvtrace.K, kvtrace.V} {
			got, err := file.Read(kind, layer, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, mustRead(t, gen, kind, layer)) {
				t.Errorf("%v layer %d: file values differ from the generator's (F32 is exact)", kind, layer)
			}
		}
	}
}

func TestWriteFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := small
	bad.PromptLen = 2
	path := filepath.Join(dir, "bad.safetensors")
	if err := WriteFile(context.Background(), path, bad, half.F16); err == nil || !strings.Contains(err.Error(), "PromptLen") {
		t.Errorf("WriteFile with PromptLen 2 = %v, want a PromptLen error", err)
	}
	if err := WriteFile(context.Background(), path, small, half.DType(9)); err == nil || !strings.Contains(err.Error(), "DType(9)") {
		t.Errorf("WriteFile with an unknown dtype = %v, want a dtype error", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteFile(ctx, path, small, half.F16); !errors.Is(err, context.Canceled) {
		t.Errorf("WriteFile with a cancelled context = %v, want context.Canceled", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("failed writes left %d files behind", len(entries))
	}
}

func TestEnsure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	opts := small
	opts.Sample = 5 // ignored: Ensure makes samples 0..n-1
	paths, err := Ensure(context.Background(), dir, opts, 2, half.F16)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Fatalf("Ensure returned %d paths, want 2", len(paths))
	}
	for i, path := range paths {
		file, err := kvtrace.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		want := opts
		want.Sample = i
		if got := file.Meta().SampleID; got != mustNew(t, want).Meta().SampleID {
			t.Errorf("path %d holds sample %q", i, got)
		}
		file.Close()
	}

	// A second call reuses the files; the stamp proves nothing was rewritten.
	stamp := []byte("reused")
	if err := os.WriteFile(paths[1], stamp, 0o666); err != nil {
		t.Fatal(err)
	}
	again, err := Ensure(context.Background(), dir, opts, 3, half.F16)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again[:2], paths) {
		t.Errorf("second Ensure paths %v, want %v first", again, paths)
	}
	if data, _ := os.ReadFile(paths[1]); string(data) != string(stamp) {
		t.Error("Ensure rewrote a file that was present")
	}
	if _, err := os.Stat(again[2]); err != nil {
		t.Errorf("Ensure did not write the missing sample: %v", err)
	}

	// Anything that changes the bytes changes the names; equal shapes share them.
	for _, change := range []func(*Options){
		func(o *Options) { o.Seed++ },
		func(o *Options) { o.GenLen++ },
		func(o *Options) { o.WithV = false },
		func(o *Options) { o.HeadDim = 40 },
		func(o *Options) { o.Positions = 4096 },
	} {
		other := opts
		change(&other)
		if name := cacheKey(mustShape(t, other), other, half.F16); strings.Contains(paths[0], name) {
			t.Errorf("%+v shares the cache key %s", other, name)
		}
	}
	if cacheKey(mustShape(t, opts), opts, half.F32) == cacheKey(mustShape(t, opts), opts, half.F16) {
		t.Error("F32 and F16 share a cache key")
	}
	opt := opts
	opt.Positions = MaxTokens // OPT's own context, named: the same bytes
	if cacheKey(mustShape(t, opt), opt, half.F16) != cacheKey(mustShape(t, opts), opts, half.F16) {
		t.Error("Positions = MaxTokens changes the cache key")
	}
	full := Options{Preset: "opt-125m", PromptLen: 8}
	explicit := Options{Preset: "opt-125m", Layers: 12, Heads: 12, HeadDim: 64, PromptLen: 8}
	if cacheKey(mustShape(t, full), full, half.F16) != cacheKey(mustShape(t, explicit), explicit, half.F16) {
		t.Error("the preset's own shape, given explicitly, gets a different cache key")
	}

	if _, err := Ensure(context.Background(), dir, opts, 0, half.F16); err == nil {
		t.Error("Ensure with 0 samples succeeded")
	}
	bad := opts
	bad.Preset = "opt-7b"
	if _, err := Ensure(context.Background(), dir, bad, 1, half.F16); err == nil || !strings.Contains(err.Error(), "opt-7b") {
		t.Errorf("Ensure with an unknown preset = %v", err)
	}
}

func mustShape(t *testing.T, opts Options) opt.Shape {
	t.Helper()
	shape, err := opts.shape()
	if err != nil {
		t.Fatal(err)
	}
	return shape
}
