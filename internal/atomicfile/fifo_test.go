//go:build unix

package atomicfile

import (
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestWriteIntoFIFO checks that a target that is not a regular file (here a FIFO;
// /dev/null is the common case) gets the data written into it and is not
// replaced by a regular file.
func TestWriteIntoFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	got := make(chan string, 1)
	go func() {
		f, err := os.Open(path)
		if err != nil {
			got <- err.Error()
			return
		}
		data, _ := io.ReadAll(f)
		f.Close()
		got <- string(data)
	}()
	done := make(chan error, 1)
	go func() { done <- WriteBytes(path, []byte("through the pipe")) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the write into the FIFO did not finish in 20 s")
	}
	select {
	case s := <-got:
		if s != "through the pipe" {
			t.Errorf("the reader got %q", s)
		}
	case <-time.After(20 * time.Second):
		t.Error("the FIFO's reader got nothing in 20 s")
	}
	if info, err := os.Lstat(path); err != nil || info.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("the FIFO was replaced: %v, %v", info, err)
	}
	// /dev/stdout is a link to /proc/self/fd/1, itself a link to "pipe:[N]" when
	// stdout is a pipe: no path a rename could use.
	if err := CheckWritable("/dev/stdout"); err != nil {
		t.Errorf("/dev/stdout: %v", err)
	}
}
