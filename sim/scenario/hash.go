package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kvsim/kvsim/sim"
)

// ContentHash identifies what a replay of the scenario over sources computes, so
// that shards of different scenarios are never merged: the scenario's settings as
// decoded (comments, layout, its path and the thread count do not count), each
// source's file name and metadata, and the bytes of every wasm: and plugin: module.
// A trace's tensors are not read: a trace rewritten under the same name, with the
// same metadata, goes unnoticed.
func (s *Scenario) ContentHash(sources []sim.Source) (string, error) {
	h := sha256.New()
	settings := *s
	settings.Path = ""
	settings.Run.Threads = 0
	enc := json.NewEncoder(h)
	if err := enc.Encode(&settings); err != nil {
		return "", fmt.Errorf("scenario %s: %w", s.Path, err)
	}
	for _, src := range sources {
		name := src.Name()
		if !strings.HasPrefix(name, "synthetic:") {
			name = filepath.Base(name) // shards may see the traces under other mounts
		}
		if err := enc.Encode([]any{name, src.Meta()}); err != nil {
			return "", fmt.Errorf("trace %s: %w", src.Name(), err)
		}
	}
	for _, p := range s.Policy {
		scheme, path, _ := strings.Cut(p.Source, ":")
		if scheme != "wasm" && scheme != "plugin" {
			continue
		}
		f, err := os.Open(s.relative(path))
		if err != nil {
			return "", fmt.Errorf("scenario %s: policy %q: %w", s.Path, p.Name, err)
		}
		fmt.Fprintf(h, "%s\n", p.Name)
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("scenario %s: policy %q: %w", s.Path, p.Name, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
