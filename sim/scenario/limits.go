package scenario

import "fmt"

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
