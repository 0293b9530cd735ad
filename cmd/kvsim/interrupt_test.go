package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/kvsim/kvsim/internal/checkpoint"
)

// cancelOnWrite is an output that cancels a command's context when the command
// first writes to it: an interruption at a known point of the work.
type cancelOnWrite struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	cancel context.CancelFunc
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.cancel()
	return w.buf.Write(p)
}

// interrupted runs a command whose context is cancelled at its first line of
// output, and returns its error and output.
func interrupted(args ...string) (string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cancelOnWrite{cancel: cancel}
	err := commandByName(args[0]).run(ctx, &env{stdout: out, stderr: io.Discard}, args[1:])
	return out.buf.String(), err
}

func commandByName(name string) command {
	for _, c := range commands {
		if c.name == name {
			return c
		}
	}
	panic("no command " + name)
}

// noTemps fails the test if dir holds a hidden (temporary) file.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("%s left in %s", e.Name(), dir)
		}
	}
}

// TestInterruptedCommands interrupts trace synth and capture after their first
// file: each says how far it got, leaves no temporary file, and a rerun of capture
// resumes.
func TestInterruptedCommands(t *testing.T) {
	dir := t.TempDir()
	traces := filepath.Join(dir, "synth")
	out, err := interrupted("trace", "synth", "-layers", "2", "-heads", "2", "-prompt", "32", "-gen", "4", "-samples", "3", "-out", traces)
	if err == nil || !strings.Contains(err.Error(), "interrupted after 1 of 3 samples") || strings.Count(out, "\n") != 1 {
		t.Errorf("trace synth: %v, printed %q", err, out)
	}
	noTemps(t, traces)

	model := filepath.Join(dir, "model")
	if err := checkpoint.WriteSynth(model, checkpoint.SynthOptions{NumHiddenLayers: 2, HiddenSize: 64, NumAttentionHeads: 4,
		VocabSize: 400, MaxPositionEmbeddings: 128, Seed: 5, Formats: checkpoint.Safetensors, TokenizerCorpus: synthCorpus}); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data.jsonl")
	os.WriteFile(data, []byte(strings.Repeat(`{"document": "The club confirmed that its captain will miss the season.", "summary": "Out."}`+"\n", 3)), 0o644)
	captured := filepath.Join(dir, "captured")
	capture := []string{"capture", "-model", model, "-data", data, "-out", captured, "-gen", "4"}
	out, err = interrupted(capture...)
	if err == nil || !strings.Contains(err.Error(), "capture interrupted after 1 of 3 samples") {
		t.Errorf("capture: %v, printed %q", err, out)
	}
	noTemps(t, captured)
	var stdout bytes.Buffer
	if err := runCapture(context.Background(), &env{stdout: &stdout, stderr: io.Discard}, capture[1:]); err != nil ||
		!strings.Contains(stdout.String(), "captured 2 samples") || !strings.Contains(stdout.String(), "skipped 1 already done") {
		t.Errorf("resumed capture: %v\n%s", err, stdout.String())
	}
}
