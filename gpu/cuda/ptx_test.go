package cuda

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPTXUpToDate fails when a kernel source, a header or a PTX file differs from the
// SHA-256 that kernels/generate.sh recorded, or when a .cu file has no PTX: the
// committed PTX must be what `go generate ./gpu/cuda/` makes of the sources. It runs in
// the default build, where no GPU or nvcc is needed.
func TestPTXUpToDate(t *testing.T) {
	recorded := readSums(t, filepath.Join("kernels", "SHA256SUMS"))
	var present []string
	for _, pattern := range []string{"*.cu", "*.cuh", "*.ptx"} {
		matches, err := filepath.Glob(filepath.Join("kernels", pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range matches {
			present = append(present, filepath.Base(m))
		}
	}
	seen := make(map[string]bool)
	for _, name := range present {
		seen[name] = true
		want, ok := recorded[name]
		if !ok {
			t.Errorf("kernels/%s is not in kernels/SHA256SUMS: run go generate ./gpu/cuda/", name)
			continue
		}
		data, err := os.ReadFile(filepath.Join("kernels", name))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("kernels/%s changed since the PTX was generated (sha256 %s, recorded %s): run go generate ./gpu/cuda/", name, got, want)
		}
		if src, ok := strings.CutSuffix(name, ".cu"); ok {
			if _, err := os.Stat(filepath.Join("kernels", src+".ptx")); err != nil {
				t.Errorf("kernels/%s has no PTX: run go generate ./gpu/cuda/", name)
			}
		}
	}
	for name := range recorded {
		if !seen[name] {
			t.Errorf("kernels/SHA256SUMS lists %s, which is gone: run go generate ./gpu/cuda/", name)
		}
	}
}

// readSums parses sha256sum's output: "<hex>  <name>" per line.
func readSums(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v: run go generate ./gpu/cuda/", err)
	}
	defer f.Close()
	sums := make(map[string]string)
	scanner := bufio.NewScanner(f)
	for line := 1; scanner.Scan(); line++ {
		sum, name, ok := strings.Cut(scanner.Text(), "  ")
		if !ok || len(sum) != 2*sha256.Size {
			t.Fatalf("%s:%d: want \"<sha256>  <file>\", got %q", path, line, scanner.Text())
		}
		sums[name] = sum
	}
	if err := scanner.Err(); err != nil {
		t.Fatal(err)
	}
	return sums
}
