package wasmhost

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
)

// The compilation cache holds machine code that kvsim maps and runs without any
// check but wazero's CRC, so kvsim uses only a folder that no one else can write:
// owned by the user and not writable by group or others. wazero keeps its entries in
// a subfolder per version (wazero-<version>-<arch>-<os>), one file per module named
// by a SHA-256 in hex, and never deletes one: kvsim prunes those files, and nothing
// else in the folder.
const (
	cacheMaxAge   = 14 * 24 * time.Hour
	cacheMaxBytes = 1 << 30
)

var (
	// cacheSubdir and cacheEntry match wazero's names, and only them.
	cacheSubdir = regexp.MustCompile(`^wazero-.+-[a-z0-9]+-[a-z0-9]+$`)
	cacheEntry  = regexp.MustCompile(`^[0-9a-f]{64}(\.[0-9]+\.tmp)?$`)

	cachesMu sync.Mutex
	caches   = map[string]wazero.CompilationCache{}
)

// compileCached compiles bin in a new runtime that shares the compilation cache of
// dir (resolved as Options.CacheDir says) with every runtime of the process. A cache
// entry that wazero cannot read is dropped, with the rest of kvsim's entries, and the
// module compiled again; a cache that cannot be written (a full disk) gives way to
// compiling in memory, with a warning.
func compileCached(ctx context.Context, dir string, bin []byte, memPages uint32, warn io.Writer) (wazero.Runtime, wazero.CompiledModule, error) {
	dir, cache, err := compilationCache(dir, warn)
	if err != nil {
		return nil, nil, err
	}
	rt, compiled, err := newRuntime(ctx, cache, bin, memPages)
	if err == nil || dir == "off" {
		return rt, compiled, err
	}
	if strings.Contains(err.Error(), "compilationcache:") {
		n := dropEntries(dir)
		fmt.Fprintf(warn, "kvsim: compilation cache %s: %v; dropped its %d entries and compiled again\n", dir, err, n)
		if rt, compiled, err = newRuntime(ctx, cache, bin, memPages); err == nil {
			return rt, compiled, nil
		}
	}
	// The module itself may be bad: compiling in memory tells.
	rt, compiled, memErr := newRuntime(ctx, memoryCache(), bin, memPages)
	if memErr != nil {
		return nil, nil, memErr
	}
	fmt.Fprintf(warn, "kvsim: compilation cache %s: %v; compiled in memory instead\n", dir, err)
	return rt, compiled, nil
}

// compilationCache returns the directory and the process-wide cache for dir.
func compilationCache(dir string, warn io.Writer) (string, wazero.CompilationCache, error) {
	explicit := true
	if dir == "" {
		dir = os.Getenv("KVSIM_WASM_CACHE")
	}
	if dir == "" {
		explicit = false
		if base, err := os.UserCacheDir(); err == nil {
			dir = filepath.Join(base, "kvsim", "wazero")
		} else {
			dir = "off"
		}
	}
	cachesMu.Lock()
	defer cachesMu.Unlock()
	if c, ok := caches[dir]; ok {
		return dir, c, nil
	}
	if dir == "off" {
		return dir, memoryCache(), nil
	}
	c, err := openCache(dir)
	if err != nil {
		if explicit {
			return "", nil, fmt.Errorf("compilation cache %s: %w", dir, err)
		}
		// A home that cannot hold the cache still runs policies.
		fmt.Fprintf(warn, "kvsim: compilation cache %s: %v; compiling in memory\n", dir, err)
		dir, c = "off", memoryCache()
	}
	caches[dir] = c
	return dir, c, nil
}

var (
	memoryOnce  sync.Once
	memoryShare wazero.CompilationCache
)

// memoryCache is one in-memory cache shared by the process.
func memoryCache() wazero.CompilationCache {
	memoryOnce.Do(func() { memoryShare = wazero.NewCompilationCache() })
	return memoryShare
}

// openCache checks that dir and its wazero subfolders are the user's alone, prunes
// it, and opens it.
func openCache(dir string) (wazero.CompilationCache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := private(dir); err != nil {
		return nil, err
	}
	subdirs, err := wazeroSubdirs(dir)
	if err != nil {
		return nil, err
	}
	for _, sub := range subdirs {
		if err := private(sub); err != nil {
			return nil, err
		}
	}
	pruneCache(dir, time.Now())
	return wazero.NewCompilationCacheWithDir(dir)
}

// private refuses a folder that someone else could write machine code into.
func private(dir string) error {
	info, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("not a folder")
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return fmt.Errorf("owned by user %d, not by you (%d): the cache holds machine code that kvsim runs, so it must be yours alone; set KVSIM_WASM_CACHE to a folder of yours, or to off", st.Uid, os.Getuid())
	}
	if info.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("writable by others (mode %v): the cache holds machine code that kvsim runs, so it must be yours alone; chmod go-w it, or set KVSIM_WASM_CACHE to another folder, or to off", info.Mode().Perm())
	}
	return nil
}

// wazeroSubdirs lists dir's subfolders that wazero made.
func wazeroSubdirs(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && cacheSubdir.MatchString(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// cacheFiles lists the entries wazero wrote in dir's wazero subfolders.
func cacheFiles(dir string) []fs.FileInfo {
	subdirs, _ := wazeroSubdirs(dir)
	var out []fs.FileInfo
	for _, sub := range subdirs {
		entries, _ := os.ReadDir(sub)
		for _, e := range entries {
			if !e.Type().IsRegular() || !cacheEntry.MatchString(e.Name()) {
				continue
			}
			if info, err := e.Info(); err == nil {
				out = append(out, entryInfo{info, filepath.Join(sub, e.Name())})
			}
		}
	}
	return out
}

// entryInfo is a cache file with its path.
type entryInfo struct {
	fs.FileInfo
	path string
}

// pruneCache deletes kvsim's cache entries written more than cacheMaxAge before now,
// then the oldest ones until the rest fit in cacheMaxBytes. A deleted entry costs one
// compilation when its module is next loaded. Errors are ignored: a cache that cannot
// be pruned still works.
func pruneCache(dir string, now time.Time) {
	var kept []entryInfo
	var total int64
	for _, f := range cacheFiles(dir) {
		e := f.(entryInfo)
		if now.Sub(e.ModTime()) > cacheMaxAge {
			os.Remove(e.path)
			continue
		}
		kept = append(kept, e)
		total += e.Size()
	}
	slices.SortFunc(kept, func(a, b entryInfo) int { return a.ModTime().Compare(b.ModTime()) })
	for _, e := range kept {
		if total <= cacheMaxBytes {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.Size()
		}
	}
}

// dropEntries deletes every cache entry of dir and says how many.
func dropEntries(dir string) int {
	n := 0
	for _, f := range cacheFiles(dir) {
		if os.Remove(f.(entryInfo).path) == nil {
			n++
		}
	}
	return n
}
