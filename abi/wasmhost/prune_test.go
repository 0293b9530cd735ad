package wasmhost

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	write := func(name string, size int, age time.Duration) {
		path := filepath.Join(dir, "wazero-v1-amd64-linux", name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		f, err := os.Create(path)
		if err == nil {
			err = f.Truncate(int64(size)) // sparse: the size counts, not the disk
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	day := 24 * time.Hour
	write("stale", 10, 15*day)
	write("old", 600<<20, 3*day) // with "new", over the 1 GiB cap: the older goes
	write("new", 600<<20, 1*day)
	write("fresh", 10, 0)
	pruneCache(dir, now)
	var left []string
	entries, _ := os.ReadDir(filepath.Join(dir, "wazero-v1-amd64-linux"))
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if want := []string{"fresh", "new"}; !slices.Equal(left, want) {
		t.Errorf("left %v, want %v", left, want)
	}
	pruneCache(filepath.Join(dir, "missing"), now) // nothing to prune, no panic
}
