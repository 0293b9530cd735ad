//go:build unix

package kvtrace

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenFIFO checks that a FIFO (which a trace glob may match) is refused at
// once instead of blocking until something writes to it.
func TestOpenFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipe.kvtrace.safetensors")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := Open(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), path+": not a regular file") {
			t.Errorf("Open(FIFO) = %v, want a not-a-regular-file error naming it", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Open(FIFO) still blocked after 20 s")
	}
}
