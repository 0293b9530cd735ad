//go:build unix

package mapfile

import (
	"fmt"
	"os"
	"syscall"
)

// Map maps the first size bytes of f read-only; release unmaps them. The mapping
// outlives f.
func Map(f *os.File, size int) (data []byte, release func() error, err error) {
	data, err = syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, fmt.Errorf("mmap: %w", err)
	}
	return data, func() error { return syscall.Munmap(data) }, nil
}
