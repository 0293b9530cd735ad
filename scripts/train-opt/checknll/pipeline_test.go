package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/half"
)

// TestTrainingPipeline runs the training scripts on a tiny corpus and a tiny model
// (4 steps), exports the checkpoint, and checks that kvsim's engine scores the
// held-out blocks as transformers did, to 1e-4 nats per block. It needs Debian's
// python3-torch and the transformers snapshot in ../shared/reference (or
// $KVSIM_TRANSFORMERS), and skips without them.
func TestTrainingPipeline(t *testing.T) {
	python := "/usr/bin/python3"
	if out, err := exec.Command(python, "-c", "import torch").CombinedOutput(); err != nil {
		t.Skipf("skipped: %s cannot import torch (apt-get install python3-torch python3-numpy python3-packaging "+
			"python3-filelock python3-regex python3-tqdm): %v %s", python, err, out)
	}
	ref := os.Getenv("KVSIM_TRANSFORMERS")
	if ref == "" {
		ref = filepath.Join("..", "..", "..", "..", "shared", "reference", "transformers")
	}
	if _, err := os.Stat(filepath.Join(ref, "src", "transformers")); err != nil {
		t.Skipf("skipped: no transformers snapshot at %s (set KVSIM_TRANSFORMERS)", ref)
	}
	dir := t.TempDir()
	corpus := filepath.Join(dir, "corpus")
	text := writeCorpus(t, corpus)
	tok := filepath.Join(dir, "tok")
	if err := checkpoint.WriteSynth(tok, checkpoint.SynthOptions{NumHiddenLayers: 1, HiddenSize: 32, NumAttentionHeads: 2,
		VocabSize: 320, MaxPositionEmbeddings: 64, Formats: checkpoint.PyTorch, TokenizerCorpus: text}); err != nil {
		t.Fatal(err)
	}
	script := func(name string, args ...string) {
		t.Helper()
		// A bound of its own: four steps of a tiny model take seconds, imports included.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, python, append([]string{filepath.Join("..", name)}, args...)...)
		cmd.Env = append(os.Environ(), "KVSIM_TRANSFORMERS="+ref, "OPENBLAS_NUM_THREADS=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	run := filepath.Join(dir, "run")
	script("train.py", "--corpus", corpus, "--tokenizer", tok, "--out", run, "--layers", "1", "--hidden", "32", "--heads", "2",
		"--ffn", "64", "--positions", "64", "--seq", "32", "--batch", "2", "--steps", "4", "--warmup", "2", "--lr", "3e-3",
		"--log-every", "2", "--eval-every", "2", "--eval-blocks", "2", "--threads", "1")
	curve, err := os.ReadFile(filepath.Join(run, "loss.tsv"))
	if err != nil || len(strings.Split(strings.TrimSpace(string(curve)), "\n")) != 3 {
		t.Fatalf("loss.tsv: want a header and 2 rows: %v\n%s", err, curve)
	}
	// The same run stopped after its first step (a wall-time limit of 0) and resumed
	// ends where the uninterrupted one does: the same held-out loss at step 4.
	cut := filepath.Join(dir, "cut")
	args := []string{"--corpus", corpus, "--tokenizer", tok, "--out", cut, "--layers", "1", "--hidden", "32", "--heads", "2",
		"--ffn", "64", "--positions", "64", "--seq", "32", "--batch", "2", "--steps", "4", "--warmup", "2", "--lr", "3e-3",
		"--log-every", "2", "--eval-every", "2", "--eval-blocks", "2", "--threads", "1"}
	script("train.py", append(args, "--max-minutes", "0")...)
	script("train.py", append(args, "--resume")...)
	lastHeldOut := func(run string) string {
		curve, _ := os.ReadFile(filepath.Join(run, "loss.tsv"))
		lines := strings.Split(strings.TrimSpace(string(curve)), "\n")
		return lines[len(lines)-1][strings.LastIndexByte(lines[len(lines)-1], '\t')+1:]
	}
	if got, want := lastHeldOut(cut), lastHeldOut(run); got != want || want == "" {
		t.Errorf("resumed run: held-out loss %q at step 4, want %q as without the stop", got, want)
	}
	if info, _ := os.ReadFile(filepath.Join(cut, "run.json")); !strings.Contains(string(info), `"resumes": 1`) ||
		!strings.Contains(string(info), `"stop": "steps"`) {
		t.Errorf("resumed run.json: want one resume and a stop at the end of the schedule:\n%s", info)
	}
	// A second run continues the first from its weights.
	run2 := filepath.Join(dir, "run2")
	script("train.py", "--corpus", corpus, "--tokenizer", tok, "--out", run2, "--init-from", filepath.Join(run, "checkpoint"),
		"--layers", "1", "--hidden", "32", "--heads", "2", "--ffn", "64", "--positions", "64", "--seq", "32", "--batch", "2",
		"--steps", "2", "--warmup", "1", "--seed", "1", "--log-every", "1", "--eval-every", "2", "--eval-blocks", "2", "--threads", "1")
	cmds := filepath.Join(dir, "commands.sh")
	os.WriteFile(cmds, []byte("train.py --steps 4\n"), 0o644)
	model := filepath.Join(dir, "model")
	nll := filepath.Join(dir, "nll.json")
	script("export.py", "--previous-run", run, "--run", run2, "--corpus", corpus, "--out", model, "--commands", cmds, "--nll-out", nll,
		"--name", "kvsim/smoke", "--threads", "1")

	m, err := checkpoint.Load(model)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.NameOrPath != "kvsim/smoke" || m.Weights.EmbedTokens.DType != half.F16 {
		t.Errorf("exported %q in %v, want kvsim/smoke in f16", m.Config.NameOrPath, m.Weights.EmbedTokens.DType)
	}
	m.Close()
	card, _ := os.ReadFile(filepath.Join(model, "README.md"))
	for _, want := range []string{"# kvsim/smoke", "Run 1 started from random initialization", "It stopped at step 4 (the end of its schedule)",
		"Run 2 started from the weights of run 1 with a fresh optimizer", "In all, 384 tokens", "| held-out, all", "train.py --steps 4"} {
		if !strings.Contains(string(card), want) {
			t.Errorf("model card lacks %q:\n%s", want, card)
		}
	}
	curve, _ = os.ReadFile(filepath.Join(model, "loss.tsv"))
	if want := "run\tstep\ttokens\tminutes\tlr\ttrain_loss\theldout_loss\n1\t2\t128\t"; !strings.HasPrefix(string(curve), want) ||
		!strings.Contains(string(curve), "\n2\t6\t384\t") {
		t.Errorf("joined loss curve: want run 1 from step 2 and run 2 at step 6 (4 + 2):\n%s", curve)
	}
	if err := runCheck(model, nll, 1e-4, 0); err != nil {
		t.Error(err)
	}
}

// writeCorpus writes what corpus.py would, from a few sentences, and returns the
// training text.
func writeCorpus(t *testing.T, dir string) string {
	t.Helper()
	sentences := []string{
		"In the beginning the council said the new bridge would open in the spring.",
		"And the people went out to see the river, and the water was high.",
		"A fool and his money are soon parted, said the old man at the gate.",
		"The light shone in the darkness, and the darkness was not afraid of it.",
		"Officials blamed the delay on rising costs and a shortage of workers.",
	}
	var train, held []string
	var text strings.Builder
	for i := range 40 {
		doc := sentences[i%5] + " " + sentences[(i*3+1)%5] + " " + sentences[(i*7+2)%5]
		rec, _ := json.Marshal(map[string]string{"id": fmt.Sprintf("d:%d", i), "text": doc})
		if i%8 == 7 {
			held = append(held, string(rec))
			continue
		}
		train = append(train, string(rec))
		text.WriteString(doc + "\n\n")
	}
	demo := `{"id": "d:7", "document": "` + sentences[0] + `", "summary": "` + sentences[1] + `"}`
	files := map[string]string{
		"train.jsonl":   strings.Join(train, "\n") + "\n",
		"heldout.jsonl": strings.Join(held, "\n") + "\n",
		"demo.jsonl":    demo + "\n",
		"corpus.json":   `{"documents": {"train": 35, "heldout": 5, "demo": 1}}`,
	}
	os.MkdirAll(dir, 0o755)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return text.String()
}
