package synth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/opt"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// GeneratorVersion changes whenever the generator's output changes, so that caches made
// by Ensure with an older generator are never reused.
const GeneratorVersion = 1

// WriteFile writes the trace the options select to path as a kvtrace file, one layer at
// a time. The file appears only when complete; a cancelled ctx stops the write
// between layers and removes the temporary file.
func WriteFile(ctx context.Context, path string, opts Options, dtype half.DType) error {
	tr, err := New(opts)
	if err != nil {
		return fmt.Errorf("synth: writing %s: %w", path, err)
	}
	// kvtrace's errors name the file.
	w, err := kvtrace.Create(path, tr.Meta(), dtype)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if err := writeLayers(ctx, w, tr); err != nil {
		w.Abort()
		return fmt.Errorf("synth: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

func writeLayers(ctx context.Context, w *kvtrace.Writer, tr *Trace) error {
	if err := w.WriteTokens(tr.tokens); err != nil {
		return err
	}
	var q, k, v []float32
	var err error
	for layer := range tr.meta.Layers {
		if err := ctx.Err(); err != nil {
			return err
		}
		if q, err = tr.Read(kvtrace.Q, layer, q); err != nil {
			return err
		}
		if k, err = tr.Read(kvtrace.K, layer, k); err != nil {
			return err
		}
		if tr.HasV() {
			if v, err = tr.Read(kvtrace.V, layer, v); err != nil {
				return err
			}
		}
		if err := w.WriteLayer(layer, q, k, v); err != nil {
			return err
		}
	}
	return nil
}

// Ensure makes dir a cache of the traces for samples 0..samples-1 of the options
// (Options.Sample is ignored) and returns their paths in sample order. File names carry
// a hash of everything that shapes the bytes (options, dtype, GeneratorVersion), so
// different options never share a file. Files already present are reused: WriteFile
// only ever renames complete files into place.
func Ensure(ctx context.Context, dir string, opts Options, samples int, dtype half.DType) ([]string, error) {
	if samples < 1 {
		return nil, fmt.Errorf("synth cache %s: %d samples, want at least 1", dir, samples)
	}
	shape, err := opts.shape()
	if err != nil {
		return nil, fmt.Errorf("synth cache %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return nil, fmt.Errorf("synth cache: %w", err)
	}
	key := cacheKey(shape, opts, dtype)
	paths := make([]string, samples)
	for i := range paths {
		path := filepath.Join(dir, fmt.Sprintf("synthetic-%s-%s-%d.safetensors", shape.Name, key, i))
		paths[i] = path
		switch _, err := os.Stat(path); {
		case err == nil:
			continue
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("synth cache: %w", err)
		}
		sample := opts
		sample.Sample = i
		if err := WriteFile(ctx, path, sample, dtype); err != nil {
			return nil, fmt.Errorf("synth cache %s: sample %d: %w", dir, i, err)
		}
	}
	return paths, nil
}

// cacheKey hashes what determines a cached file's bytes, with the overrides resolved so
// that equal shapes share files.
func cacheKey(shape opt.Shape, opts Options, dtype half.DType) string {
	canonical := fmt.Sprintf("synth v%d|%s|layers %d|heads %d|head_dim %d|prompt %d|gen %d|seed %d|v %t|%s",
		GeneratorVersion, shape.Name, shape.Layers, shape.Heads, shape.HeadDim,
		opts.PromptLen, opts.GenLen, opts.Seed, opts.WithV, dtype)
	if ctx := opts.context(); ctx != MaxTokens {
		canonical += fmt.Sprintf("|positions %d", ctx) // absent at OPT's context, so older keys stand
	}
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:6])
}
