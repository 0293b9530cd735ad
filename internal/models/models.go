// Package models embeds the OPT checkpoints that ship with kvsim, so that a fresh
// binary can capture, replay and validate on a trained model with no downloads.
//
// A checkpoint is written out once into the user's cache directory, under a name that
// carries the hash of its files, because the loaders map files from disk. Scenarios
// name an embedded model as "builtin:NAME" and a file beside it as "builtin:NAME/FILE"
// (see Resolve).
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kvsim/kvsim/internal/atomicfile"
)

// files holds every embedded checkpoint, one directory each.
//
//go:embed opt-kjv-4l
var files embed.FS

// Default is the model kvsim's demo, paper and validate scenarios run on: a 4-layer
// OPT trained on the King James Bible and Debian's fortunes (see its README.md).
const Default = "opt-kjv-4l"

// Scheme prefixes an embedded model or file in a scenario: "builtin:opt-kjv-4l".
const Scheme = "builtin:"

// Names lists the embedded models.
func Names() []string {
	entries, _ := files.ReadDir(".") // the embedded root always reads
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

// ReadFile returns a file of an embedded model, such as "opt-kjv-4l/heldout.jsonl".
func ReadFile(name string) ([]byte, error) {
	data, err := files.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("embedded model file %q: %w", name, err)
	}
	return data, nil
}

// Resolve turns "builtin:NAME" into the directory of the embedded model NAME and
// "builtin:NAME/FILE" into that file's path, writing the model out on first use.
// Any other path is returned as it is.
func Resolve(p string) (string, error) {
	rest, ok := strings.CutPrefix(p, Scheme)
	if !ok {
		return p, nil
	}
	name, file, _ := strings.Cut(rest, "/")
	if !slices.Contains(Names(), name) {
		return "", fmt.Errorf("%q: no embedded model %q (have %s)", p, name, strings.Join(Names(), ", "))
	}
	dir, err := Dir(name)
	if err != nil {
		return "", err
	}
	if file == "" {
		return dir, nil
	}
	if !fs.ValidPath(file) {
		return "", fmt.Errorf("%q: bad file name %q", p, file)
	}
	if _, err := fs.Stat(files, path.Join(name, file)); err != nil {
		return "", fmt.Errorf("%q: the embedded model %s has no file %q", p, name, file)
	}
	return filepath.Join(dir, filepath.FromSlash(file)), nil
}

// Dir returns a directory holding the embedded model name, writing it under the
// user's cache directory ($KVSIM_MODEL_CACHE, default kvsim/models in the user
// cache directory, else the temporary directory) when it is not there yet. The
// directory's name ends in the hash of the files, so a newer kvsim never reads an
// older copy; it is written whole, through a temporary directory renamed into place,
// so that concurrent first runs cannot see half of it.
func Dir(name string) (string, error) {
	if !slices.Contains(Names(), name) {
		return "", fmt.Errorf("no embedded model %q (have %s)", name, strings.Join(Names(), ", "))
	}
	sum, err := digest(name)
	if err != nil {
		return "", err
	}
	root, err := cacheRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, name+"-"+sum[:16])
	if complete(name, dir) {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	tmp, err := os.MkdirTemp(root, "."+name+".tmp-*")
	if err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	defer os.RemoveAll(tmp) // empty after the rename
	if err := writeTree(name, tmp); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process may have put the same files there first.
		if complete(name, dir) {
			return dir, nil
		}
		if _, serr := os.Stat(dir); serr == nil {
			return "", fmt.Errorf("model cache %s lacks files of the embedded model or has them at other sizes: delete it and kvsim writes it again", dir)
		}
		return "", fmt.Errorf("model cache: %w", err)
	}
	return dir, nil
}

// cacheRoot is where embedded models are written out.
func cacheRoot() (string, error) {
	if dir := os.Getenv("KVSIM_MODEL_CACHE"); dir != "" {
		return dir, nil
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "kvsim", "models"), nil
	}
	return filepath.Join(os.TempDir(), "kvsim-models"), nil
}

// digest is the SHA-256 of the model's file names and contents, in walk order.
func digest(name string) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(files, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("embedded model %s: %w", name, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// complete reports whether dir holds every file of the model at its size.
func complete(name, dir string) bool {
	err := fs.WalkDir(files, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, err := d.Info()
		if err != nil {
			return err
		}
		got, err := os.Stat(filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, name+"/"))))
		if err != nil {
			return err
		}
		if got.Size() != want.Size() {
			return errors.New("size differs")
		}
		return nil
	})
	return err == nil
}

// writeTree copies the embedded model's files into dir.
func writeTree(name, dir string) error {
	return fs.WalkDir(files, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(strings.TrimPrefix(p, name), "/")))
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		return atomicfile.WriteBytes(dst, data)
	})
}
