package models

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/internal/dataset"
	"github.com/kvsim/kvsim/internal/half"
	"github.com/kvsim/kvsim/internal/tokenizer"
)

func TestResolve(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("KVSIM_MODEL_CACHE", cache)
	dir, err := Resolve("builtin:" + Default)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(dir) != cache || !strings.HasPrefix(filepath.Base(dir), Default+"-") {
		t.Errorf("model written to %s, want %s/%s-<hash>", dir, cache, Default)
	}
	for _, f := range []string{"config.json", "pytorch_model.bin", "vocab.json", "merges.txt", "heldout.jsonl", "README.md"} {
		want, err := files.ReadFile(Default + "/" + f)
		if err != nil {
			t.Fatalf("embedded %s: %v", f, err)
		}
		got, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: written copy differs from the embedded one (%v)", f, err)
		}
	}
	// A second call finds the copy; a file resolves beside it.
	again, err := Resolve("builtin:" + Default)
	if err != nil || again != dir {
		t.Errorf("second Resolve: %s, %v; want %s", again, err, dir)
	}
	data, err := Resolve("builtin:" + Default + "/heldout.jsonl")
	if err != nil || data != filepath.Join(dir, "heldout.jsonl") {
		t.Errorf("file: %s, %v", data, err)
	}
	if p, err := Resolve("some/dir"); p != "some/dir" || err != nil {
		t.Errorf("a plain path changed: %s, %v", p, err)
	}
	for in, want := range map[string]string{
		"builtin:opt-nope":                 `no embedded model "opt-nope" (have opt-kjv-4l)`,
		"builtin:" + Default + "/nope.txt": `has no file "nope.txt"`,
		"builtin:" + Default + "/../x":     `bad file name "../x"`,
	} {
		if _, err := Resolve(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Resolve(%q) = %v, want an error with %q", in, err, want)
		}
	}
}

// A damaged copy in the cache is reported, not used.
func TestDamagedCache(t *testing.T) {
	t.Setenv("KVSIM_MODEL_CACHE", t.TempDir())
	dir, err := Dir(Default)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "vocab.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Dir(Default); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("damaged cache: %v", err)
	}
}

// TestTrained loads the embedded model as kvsim's commands do and checks that it
// predicts held-out text far better than chance: the mean NLL of the first held-out
// document's first 128 tokens is well below ln(vocabulary) (a uniform guess), and
// no more than 0.5 nats above the held-out loss of its model card (a chapter of the
// Bible is easier than the average held-out text, which includes fortunes).
func TestTrained(t *testing.T) {
	t.Setenv("KVSIM_MODEL_CACHE", t.TempDir())
	dir, err := Dir(Default)
	if err != nil {
		t.Fatal(err)
	}
	model, err := checkpoint.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	cfg := model.Config
	if cfg.NameOrPath != "kvsim/"+Default || cfg.NumHiddenLayers != 4 || cfg.NumAttentionHeads != 8 || cfg.HiddenSize != 256 ||
		!cfg.DoLayerNormBefore || model.Weights.EmbedTokens.DType != half.F16 {
		t.Errorf("config %+v, dtype %v", cfg, model.Weights.EmbedTokens.DType)
	}
	tok, err := tokenizer.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := dataset.ReadJSONL(filepath.Join(dir, "heldout.jsonl"), dataset.DefaultFields, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	ids := []int32{2} // "</s>" starts every document, as in training
	for _, id := range tok.Encode(samples[0].Document)[:127] {
		ids = append(ids, int32(id))
	}
	backend, err := cpu.New(model, cpu.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	seq, err := gpu.New(backend).NewSequence(len(ids), false)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	V := cfg.VocabSize
	logits := make([]float32, len(ids)*V)
	if err := seq.Feed(ids, gpu.Outputs{Logits: logits}); err != nil {
		t.Fatal(err)
	}
	var nll float64
	for i := 1; i < len(ids); i++ {
		row := logits[(i-1)*V : i*V]
		var z float64
		for _, x := range row {
			z += math.Exp(float64(x))
		}
		nll += math.Log(z) - float64(row[ids[i]])
	}
	nll /= float64(len(ids) - 1)
	card := cardHeldOutLoss(t)
	t.Logf("NLL %.3f on %d tokens of %s; card's held-out loss %.3f; uniform %.3f", nll, len(ids)-1, samples[0].ID, card, math.Log(float64(V)))
	if nll > math.Log(float64(V))-2 || nll > card+0.5 {
		t.Errorf("NLL %.3f: want below %.3f and at most 0.5 above the card's %.3f", nll, math.Log(float64(V))-2, card)
	}
}

// cardHeldOutLoss reads the held-out loss from the model card's table.
func cardHeldOutLoss(t *testing.T) float64 {
	card, err := files.ReadFile(Default + "/README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(card), "\n") {
		if strings.HasPrefix(line, "| held-out") {
			cells := strings.Split(line, "|")
			var x float64
			if _, err := fmt.Sscan(strings.TrimSpace(cells[2]), &x); err == nil {
				return x
			}
		}
	}
	t.Fatal("the model card has no held-out loss row")
	return 0
}

// Concurrent first uses all get the same complete copy: one rename wins and the
// others find its files.
func TestConcurrentFirstUse(t *testing.T) {
	t.Setenv("KVSIM_MODEL_CACHE", t.TempDir())
	const n = 4
	dirs, errs := make([]string, n), make([]error, n)
	done := make(chan int, n)
	for i := range n {
		go func() {
			dirs[i], errs[i] = Dir(Default)
			done <- i
		}()
	}
	for range n {
		<-done
	}
	for i := range n {
		if errs[i] != nil || dirs[i] != dirs[0] {
			t.Errorf("call %d: %s, %v; want %s", i, dirs[i], errs[i], dirs[0])
		}
	}
	if !complete(Default, dirs[0]) {
		t.Errorf("%s is not a complete copy", dirs[0])
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(dirs[0]), ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary directories left behind: %v", leftovers)
	}
}
