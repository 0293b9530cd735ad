package wasmhost

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/policytest"
)

// TestCompilationCache: compiled code lands in Options.CacheDir, else in
// $KVSIM_WASM_CACHE.
func TestCompilationCache(t *testing.T) {
	path := watModule(t, "../testdata/bad/ok.wat")
	explicit, fromEnv := t.TempDir(), t.TempDir()
	t.Setenv("KVSIM_WASM_CACHE", fromEnv)
	mustLoad(t, path, Options{CacheDir: explicit})
	mustLoad(t, path, Options{})
	for _, dir := range []string{explicit, fromEnv} {
		if len(cacheFiles(dir)) == 0 {
			t.Errorf("cache %s is empty", dir)
		}
	}
}

// TestPruneCache: old and surplus entries go; everything kvsim did not write stays,
// however old: a user's files in the folder, other folders, files of other names.
func TestPruneCache(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	write := func(name string, size int, age time.Duration) {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o700)
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
	entry := func(c byte) string { return "wazero-v1.12.0-amd64-linux/" + strings.Repeat(string(c), 64) }
	write(entry('a'), 10, 15*day)                                                 // stale
	write(entry('b'), 600<<20, 3*day)                                             // with c, over the 1 GiB cap: the older goes
	write(entry('c'), 600<<20, 1*day)                                             //
	write(entry('d'), 10, 0)                                                      // fresh
	write(entry('e')+".123.tmp", 10, 15*day)                                      // a stale temporary file of wazero's
	write("thesis.pdf", 10, 400*day)                                              // the user's
	write("data/results.csv", 700<<20, 400*day)                                   // the user's, big
	write("wazero-v1.12.0-amd64-linux/notes.txt", 10, 400*day)                    // not an entry's name
	write("wazero-v1.12.0-amd64-linux/sub/"+strings.Repeat("f", 64), 10, 400*day) // not where entries go
	pruneCache(dir, now)
	var left []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			left = append(left, rel)
		}
		return nil
	})
	want := []string{"data/results.csv", "thesis.pdf", entry('c'), entry('d'),
		"wazero-v1.12.0-amd64-linux/notes.txt", "wazero-v1.12.0-amd64-linux/sub/" + strings.Repeat("f", 64)}
	slices.Sort(want)
	if !slices.Equal(left, want) {
		t.Errorf("left %v\nwant %v", left, want)
	}
	pruneCache(filepath.Join(dir, "missing"), now) // nothing to prune, no panic
}

// TestCacheMustBePrivate: a cache folder that others can write, or that belongs to
// someone else, is refused, and the error says why.
func TestCacheMustBePrivate(t *testing.T) {
	path := watModule(t, "../testdata/bad/ok.wat")
	open := t.TempDir()
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	_, err := Load(context.Background(), path, Options{CacheDir: open})
	want := "wasm policy " + path + ": compilation cache " + open + ": writable by others (mode -rwxrwxrwx): the cache holds machine code that kvsim runs"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s…", err, want)
	}
	if os.Getuid() != 0 {
		return // only root can give a folder away
	}
	foreign := t.TempDir()
	if err := os.Chown(foreign, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	_, err = Load(context.Background(), path, Options{CacheDir: foreign})
	want = "wasm policy " + path + ": compilation cache " + foreign + ": owned by user 12345, not by you (0)"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got %v\nwant %s…", err, want)
	}
}

// childLoad loads $MODULE with the cache $CACHE and runs it, printing warnings.
func childLoad() error {
	m, err := Load(context.Background(), os.Getenv("MODULE"), Options{CacheDir: os.Getenv("CACHE"), Warn: os.Stdout})
	if err != nil {
		return err
	}
	p, err := m.New(policies.NewParams(nil))
	if err == nil {
		_, err = policytest.Run(p, policies.Config{Budget: 4}, policytest.RandomSequence(2, 8, 12, 1))
	}
	return err
}

// childFullDisk is childLoad where no file can grow: the cache cannot be written.
func childFullDisk() error {
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: 0, Max: 0}); err != nil {
		return err
	}
	return childLoad()
}

// TestCorruptCacheEntry: a truncated entry is dropped and the module compiled again,
// with a warning; the next load finds a good entry.
func TestCorruptCacheEntry(t *testing.T) {
	env := []string{"MODULE=" + watModule(t, "../../examples/policies/wat/window.wat"), "CACHE=" + t.TempDir()}
	cache := strings.TrimPrefix(env[1], "CACHE=")
	load := func() string {
		out, err := child(t, "load", time.Minute, env...)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		return out
	}
	if out := load(); out != "" {
		t.Errorf("first load printed %q", out)
	}
	files := cacheFiles(cache)
	if len(files) != 1 {
		t.Fatalf("%d cache entries, want 1", len(files))
	}
	entry := files[0].(entryInfo).path
	good, _ := os.ReadFile(entry)
	if err := os.WriteFile(entry, good[:len(good)/2], 0o600); err != nil {
		t.Fatal(err)
	}
	if out := load(); !strings.Contains(out, "kvsim: compilation cache "+cache+": compilationcache: ") || !strings.HasSuffix(out, "; dropped its 1 entries and compiled again\n") {
		t.Errorf("load with a truncated entry printed %q", out)
	}
	if again, _ := os.ReadFile(entry); !bytes.Equal(again, good) {
		t.Error("the entry was not written again whole")
	}
	if out := load(); out != "" {
		t.Errorf("load after the repair printed %q", out)
	}
}

// TestCacheOnFullDisk: when no cache entry can be written, modules compile in memory
// and run, with a warning.
func TestCacheOnFullDisk(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("simulates a full disk with RLIMIT_FSIZE, on linux")
	}
	cache := t.TempDir()
	out, err := child(t, "full-disk", time.Minute, "MODULE="+watModule(t, "../testdata/bad/ok.wat"), "CACHE="+cache)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.HasPrefix(out, "kvsim: compilation cache "+cache+": ") || !strings.HasSuffix(out, "; compiled in memory instead\n") {
		t.Errorf("printed %q, want a warning that it compiled in memory", out)
	}
}

// TestModuleFile: only a regular file of at most MaxModuleBytes is read; a device
// such as /dev/zero, which would never end, is refused by name.
func TestModuleFile(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.wasm")
	f, err := os.Create(big)
	if err == nil {
		err = f.Truncate(MaxModuleBytes + 1) // sparse
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// 14 bytes whose data section claims 102,760,395 segments: wazero would
	// allocate gigabytes for them before finding out.
	claims := filepath.Join(dir, "claims.wasm")
	if err := os.WriteFile(claims, []byte("\x00asm\x01\x00\x00\x00\x0b\x04\xcb\xff\xff\x30"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		claims:      "wasm policy " + claims + ": cannot meter the module: section 11: a vector of 102760395 entries in 0 bytes",
		"/dev/zero": "wasm policy /dev/zero: a character device, not a regular file: a module must be a .wasm file",
		dir:         "wasm policy " + dir + ": a folder, not a regular file: a module must be a .wasm file",
		big:         "wasm policy " + big + ": 268435457 bytes, over the 256 MiB a module may have",
	} {
		if _, err := Load(context.Background(), path, Options{}); err == nil || err.Error() != want {
			t.Errorf("got %v\nwant %s", err, want)
		}
	}
}
