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
	// Fuel bounds the work of one call into the guest, in units of function entries
	// and loop iterations (default wasmhost.DefaultFuel). It is the rule: the same
	// guest on the same input passes or fails identically on any machine.
	Fuel *int64 `toml:"fuel"`
	// DeadlineMS is the wall-clock backstop of one call (default 300000; 0 turns it
	// off).
	DeadlineMS *int `toml:"deadline_ms"`
}

func (l *Limits) check() error {
	if l == nil {
		return nil
	}
	if p := l.MemoryPages; p != nil && (*p < 1 || *p > 65536) {
		return fmt.Errorf("limits.memory_pages = %d: want 1 to 65536 pages of 64 KiB", *p)
	}
	if f := l.Fuel; f != nil && *f < 1 {
		return fmt.Errorf("limits.fuel = %d: want a positive number of units of work per call", *f)
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
	if l.Fuel != nil {
		o.Fuel = *l.Fuel
	}
	if d := l.DeadlineMS; d != nil {
		o.Deadline = time.Duration(*d) * time.Millisecond
		if *d == 0 {
			o.Deadline = wasmhost.NoDeadline
		}
	}
	return o
}
