package scenario

import (
	"fmt"
	"time"

	"github.com/kvsim/kvsim/abi/wasmhost"
)

// Limits is a [policy.limits] table: the sandbox of a wasm: policy.
type Limits struct {
	// MemoryPages caps the guest's memory in 64 KiB pages (default 4096: 256 MiB).
	MemoryPages *int `toml:"memory_pages"`
	// DeadlineMS stops a call into the guest that runs longer (default 1000; 0 turns
	// the deadline off).
	DeadlineMS *int `toml:"deadline_ms"`
}

func (l *Limits) check() error {
	if l == nil {
		return nil
	}
	if p := l.MemoryPages; p != nil && (*p < 1 || *p > 65536) {
		return fmt.Errorf("limits.memory_pages = %d: want 1 to 65536 pages of 64 KiB", *p)
	}
	if d := l.DeadlineMS; d != nil && *d < 0 {
		return fmt.Errorf("limits.deadline_ms = %d: want milliseconds, or 0 for no deadline", *d)
	}
	return nil
}

// wasmOptions turns the limits into the WASM host's options; unset limits keep the
// host's defaults.
func (l *Limits) wasmOptions() wasmhost.Options {
	var o wasmhost.Options
	if l == nil {
		return o
	}
	if l.MemoryPages != nil {
		o.MemoryPages = uint32(*l.MemoryPages)
	}
	if d := l.DeadlineMS; d != nil {
		o.Deadline = time.Duration(*d) * time.Millisecond
		if *d == 0 {
			o.Deadline = wasmhost.NoDeadline
		}
	}
	return o
}
