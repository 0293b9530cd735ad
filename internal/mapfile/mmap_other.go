//go:build !unix

package mapfile

import (
	"io"
	"os"
)

// Map reads the first size bytes of f into memory, where the OS offers no mmap
// through package syscall (windows, wasip1).
func Map(f *os.File, size int) (data []byte, release func() error, err error) {
	data = make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, nil, err
	}
	return data, func() error { return nil }, nil
}
