//go:build unix

package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalRemovesTemps interrupts `trace synth` with SIGINT and SIGTERM while it
// writes a trace: it must exit 1 saying so, and leave no temporary file behind.
func TestSignalRemovesTemps(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		dir := t.TempDir()
		cmd := exec.Command(kvsim(t), "trace", "synth", "-preset", "opt-13b", "-prompt", "1024", "-gen", "64",
			"-samples", "4", "-out", dir)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		deadline := time.After(2 * time.Minute)
	wait: // until the first temporary file appears
		for {
			select {
			case err := <-exited:
				t.Fatalf("%v: trace synth ended before it wrote anything: %v\n%s", sig, err, stderr.String())
			case <-deadline:
				cmd.Process.Kill()
				t.Fatalf("%v: no temporary file in 2 min", sig)
			case <-time.After(10 * time.Millisecond):
				if hidden(t, dir) > 0 {
					break wait
				}
			}
		}
		cmd.Process.Signal(sig)
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			t.Fatalf("%v: trace synth still running 2 min after the signal", sig)
		}
		if code := cmd.ProcessState.ExitCode(); code != 1 || !strings.Contains(stderr.String(), "trace synth interrupted") {
			t.Errorf("%v: exit %d, stderr %q; want 1 and a message", sig, code, stderr.String())
		}
		if n := hidden(t, dir); n > 0 {
			t.Errorf("%v: %d temporary files left in %s", sig, n, dir)
		}
	}
}

// hidden counts the hidden files in dir: temporary files.
func hidden(t *testing.T, dir string) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasPrefix(filepath.Base(e.Name()), ".") {
			n++
		}
	}
	return n
}
