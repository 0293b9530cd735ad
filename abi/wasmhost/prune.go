package wasmhost

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// The compilation cache keeps an entry per module and wazero version, and wazero
// never deletes one: a day of rebuilding policies leaves hundreds of megabytes.
const (
	cacheMaxAge   = 14 * 24 * time.Hour
	cacheMaxBytes = 1 << 30
)

// pruneCache deletes the cache's files written more than cacheMaxAge before now,
// then the oldest ones until the rest fit in cacheMaxBytes. A deleted entry costs
// one compilation when its module is next loaded. Errors are ignored: a cache that
// cannot be pruned still works.
func pruneCache(dir string, now time.Time) {
	type entry struct {
		path string
		size int64
		mod  time.Time
	}
	var kept []entry
	var total int64
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if now.Sub(info.ModTime()) > cacheMaxAge {
			os.Remove(path)
			return nil
		}
		kept = append(kept, entry{path, info.Size(), info.ModTime()})
		total += info.Size()
		return nil
	})
	slices.SortFunc(kept, func(a, b entry) int { return a.mod.Compare(b.mod) })
	for _, e := range kept {
		if total <= cacheMaxBytes {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
}
