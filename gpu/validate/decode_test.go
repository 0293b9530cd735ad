package validate_test

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/gpu/cpu"
	"github.com/kvsim/kvsim/gpu/validate"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
)

// tinyEngine is a random 2-layer OPT (hidden 64, 4 heads) on the CPU backend.
func tinyEngine(t testing.TB) *gpu.Engine {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny-opt")
	err := checkpoint.WriteSynth(dir, checkpoint.SynthOptions{NumHiddenLayers: 2, HiddenSize: 64,
		NumAttentionHeads: 4, VocabSize: 300, MaxPositionEmbeddings: 128, Seed: 7, Formats: checkpoint.Safetensors})
	if err != nil {
		t.Fatal(err)
	}
	model, err := checkpoint.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { model.Close() })
	backend, err := cpu.New(model, cpu.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { backend.Close() })
	return gpu.New(backend)
}

func newBuiltin(t testing.TB, name string) func() (policies.Policy, error) {
	t.Helper()
	n, ok := builtin.Lookup(name)
	if !ok {
		t.Fatalf("no builtin %q", name)
	}
	return func() (policies.Policy, error) { return n(policies.NewParams(nil)) }
}

var prompt = []int32{2, 17, 250, 33, 91, 8, 140, 61, 200, 5, 77, 12}

const gen = 10

// When nothing needs evicting, the policy in the loop must not change a single
// token: the full-cache policy, and every policy at a budget of prompt+gen.
func TestNoEvictionReproducesPlainDecoding(t *testing.T) {
	e := tinyEngine(t)
	ctx := context.Background()
	plain, err := e.Generate(ctx, prompt, gpu.GenerateOptions{MaxNew: gen, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(plain.Tokens) != gen {
		t.Fatalf("plain decoding gave %d tokens", len(plain.Tokens))
	}
	for _, name := range builtin.Names() {
		if name == "oracle" {
			continue // clairvoyant: refused, see TestRefusesClairvoyant
		}
		budgets := []int{len(prompt) + gen}
		if name == "full" {
			budgets = append(budgets, 3) // unbounded whatever the budget
		}
		for _, b := range budgets {
			d, err := validate.Decode(ctx, e, prompt, newBuiltin(t, name), validate.Options{Budget: b, MaxNew: gen, IgnoreEOS: true})
			if err != nil {
				t.Fatalf("%s at budget %d: %v", name, b, err)
			}
			if !slices.Equal(d.Tokens, plain.Tokens) {
				t.Errorf("%s at budget %d: %v, plain decoding %v", name, b, d.Tokens, plain.Tokens)
			}
			if d.Evictions != 0 {
				t.Errorf("%s at budget %d: %d evictions", name, b, d.Evictions)
			}
		}
	}
}

func TestRefusesClairvoyant(t *testing.T) {
	e := tinyEngine(t)
	_, err := validate.Decode(context.Background(), e, prompt, newBuiltin(t, "oracle"), validate.Options{Budget: 4, MaxNew: 2})
	if !errors.Is(err, host.ErrClairvoyant) {
		t.Fatalf("oracle: %v", err)
	}
	for name, want := range map[string]bool{"oracle": true, "h2o": false, "auv": false} {
		if got, err := host.Clairvoyant(newBuiltin(t, name), policies.Config{Layers: 2, Heads: 4, HeadDim: 16}); got != want || err != nil {
			t.Errorf("Clairvoyant(%s) = %v, %v; want %v", name, got, err, want)
		}
	}
	// The probe has the model's shape, so a head mask for that shape is accepted.
	duo, _ := builtin.Lookup("duo")
	masked := func() (policies.Policy, error) {
		return duo(policies.NewParams(map[string]any{"mask": "sfsf/ffss"}))
	}
	if got, err := host.Clairvoyant(masked, policies.Config{Layers: 2, Heads: 4, HeadDim: 16}); got || err != nil {
		t.Errorf("Clairvoyant(duo with a 2-layer 4-head mask) = %v, %v; want false, nil", got, err)
	}
}

// Under a small budget the cache stays bounded: Decode itself fails if a head ever
// holds more than Budget+Slack tokens after eviction; here the totals are checked.
func TestSmallBudgetStaysBounded(t *testing.T) {
	e := tinyEngine(t)
	cfg := e.Config()
	L, H := cfg.NumHiddenLayers, cfg.NumAttentionHeads
	const budget = 4
	for _, name := range []string{"window", "h2o", "tova", "snapkv", "scissorhands", "nacl", "auv", "random"} {
		d, err := validate.Decode(context.Background(), e, prompt, newBuiltin(t, name),
			validate.Options{Budget: budget, MaxNew: gen, IgnoreEOS: true, Seed: 3})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(d.Tokens) != gen {
			t.Errorf("%s: %d tokens", name, len(d.Tokens))
		}
		if d.Capacity > len(prompt)+gen || d.Capacity < len(prompt) {
			t.Errorf("%s: capacity %d, want between the prompt %d and prompt+gen %d", name, d.Capacity, len(prompt), len(prompt)+gen)
		}
		// Compression evicts P−budget per head; each decode step then needs room.
		if min := L * H * (len(prompt) - budget); d.Evictions < min {
			t.Errorf("%s: %d evictions, want at least %d", name, d.Evictions, min)
		}
		if max := L * H * (d.Capacity + 1); d.PeakEntries > max || d.PeakEntries < L*H*(budget+1) {
			t.Errorf("%s: peak %d entries, want %d..%d", name, d.PeakEntries, L*H*(budget+1), max)
		}
		if want := int64(d.PeakEntries) * 2 * 4 * int64(cfg.HiddenSize/H); d.PeakBytes != want {
			t.Errorf("%s: peak %d bytes, want %d", name, d.PeakBytes, want)
		}
		// Eviction's cost is a part of decoding's: the policy's and the slots' shares.
		if d.PolicyTime <= 0 || d.SlotTime <= 0 || d.PolicyTime+d.SlotTime >= d.Decode {
			t.Errorf("%s: policy %v and slots %v of decode %v", name, d.PolicyTime, d.SlotTime, d.Decode)
		}
	}
	// The sliding window needs no slack: exactly budget+1 tokens per head attend.
	d, err := validate.Decode(context.Background(), e, prompt, newBuiltin(t, "window"), validate.Options{Budget: budget, MaxNew: gen, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.PeakEntries != L*H*(budget+1) {
		t.Errorf("window: peak %d entries, want %d", d.PeakEntries, L*H*(budget+1))
	}
}

// Teacher forcing the plain continuation under the full-cache policy gives the
// NLL of plain decoding, computed here from a plain sequence's logits.
func TestForcedNLL(t *testing.T) {
	e := tinyEngine(t)
	ctx := context.Background()
	plain, err := e.Generate(ctx, prompt, gpu.GenerateOptions{MaxNew: gen, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	seq, err := e.NewSequence(len(prompt)+gen, false)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	V := e.Config().VocabSize
	logits := make([]float32, V)
	var want float64
	feed := prompt
	for _, tok := range plain.Tokens {
		if err := seq.Feed(feed, gpu.Outputs{Logits: logits}); err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, x := range logits {
			sum += math.Exp(float64(x))
		}
		want += math.Log(sum) - float64(logits[tok])
		feed = []int32{tok}
	}
	want /= gen

	d, err := validate.Decode(ctx, e, prompt, newBuiltin(t, "full"), validate.Options{Budget: 1, MaxNew: gen, Force: plain.Tokens})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(d.NLL-want) > 1e-9*math.Max(1, want) {
		t.Errorf("forced NLL %.12f, want %.12f", d.NLL, want)
	}
	// Forcing under eviction scores the same tokens, differently.
	d, err = validate.Decode(ctx, e, prompt, newBuiltin(t, "window"), validate.Options{Budget: 2, MaxNew: gen, Force: plain.Tokens})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(d.Tokens, plain.Tokens) || d.NLL == want || math.IsNaN(d.NLL) {
		t.Errorf("window forced: tokens %v NLL %g; want %v and an NLL other than %g", d.Tokens, d.NLL, plain.Tokens, want)
	}
}

func TestBadOptions(t *testing.T) {
	e := tinyEngine(t)
	full := newBuiltin(t, "full")
	for name, o := range map[string]validate.Options{
		"zero budget":    {Budget: 0, MaxNew: 2},
		"force mismatch": {Budget: 4, MaxNew: 3, Force: []int32{1}},
		"force vocab":    {Budget: 4, MaxNew: 1, Force: []int32{9999}},
	} {
		if _, err := validate.Decode(context.Background(), e, prompt, full, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := validate.Decode(context.Background(), e, nil, full, validate.Options{Budget: 4}); err == nil {
		t.Error("empty prompt accepted")
	}
}

// concurrentBackend holds every layer's view of a Forward call back and delivers
// them all at once, one goroutine each, as the CUDA backend does in decode when the
// batch allows concurrent observers.
type concurrentBackend struct{ gpu.Backend }

func (b concurrentBackend) Forward(kv gpu.KV, batch *gpu.Batch) error {
	if batch.Observe == nil || batch.ObserveConcurrency < 2 {
		return b.Backend.Forward(kv, batch)
	}
	var views []*gpu.LayerView
	held := *batch
	held.Observe = func(v *gpu.LayerView) error {
		c := *v
		c.Probs, c.Comp = slices.Clone(v.Probs), slices.Clone(v.Comp)
		views = append(views, &c)
		return nil
	}
	if err := b.Backend.Forward(kv, &held); err != nil {
		return err
	}
	errs := make([]error, len(views))
	var wg sync.WaitGroup
	for i := range views {
		wg.Go(func() { errs[len(views)-1-i] = batch.Observe(views[len(views)-1-i]) }) // last layer first
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Policies observing several layers at once decide exactly as one at a time.
func TestConcurrentObserversDecideTheSame(t *testing.T) {
	e := tinyEngine(t)
	concurrent := gpu.New(concurrentBackend{e.Backend()})
	for _, name := range []string{"h2o", "auv", "nacl", "random"} {
		o := validate.Options{Budget: 4, MaxNew: gen, IgnoreEOS: true, Seed: 5}
		o.Workers = 1
		one, err := validate.Decode(context.Background(), e, prompt, newBuiltin(t, name), o)
		if err != nil {
			t.Fatal(err)
		}
		o.Workers = 4
		many, err := validate.Decode(context.Background(), concurrent, prompt, newBuiltin(t, name), o)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(one.Tokens, many.Tokens) || one.Evictions != many.Evictions || one.NLL != many.NLL || one.PeakEntries != many.PeakEntries {
			t.Errorf("%s: one at a time %v (%d evictions, NLL %g), concurrent %v (%d, %g)",
				name, one.Tokens, one.Evictions, one.NLL, many.Tokens, many.Evictions, many.NLL)
		}
	}
}

// Under peak accounting no head attends over more than the cap, the compensation
// slot included. For a cap of 8, AUV (local area L = budget/2, slack L−1, a slot)
// gets nominal budget 4: 4 tokens + slack 1 + the incoming token + the slot = 7,
// where budget 5 would reach 5 + 2 + 1 + 1 = 9. The window gets 7, and NACL's
// "append", which never evicts after the prompt, cannot fit at all.
func TestPeakAccounting(t *testing.T) {
	e := tinyEngine(t)
	cfg := e.Config()
	L, H := cfg.NumHiddenLayers, cfg.NumAttentionHeads
	const limit = 8
	for _, c := range []struct {
		name    string
		nominal float64
	}{{"auv", 4}, {"window", 7}} {
		d, err := validate.Decode(context.Background(), e, prompt, newBuiltin(t, c.name),
			validate.Options{Budget: limit, Peak: true, MaxNew: gen, IgnoreEOS: true, Seed: 3})
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d.NominalBudget != c.nominal || d.PeakEntries > L*H*limit {
			t.Errorf("%s: nominal %g, peak %d entries; want %g and at most %d", c.name, d.NominalBudget, d.PeakEntries, c.nominal, L*H*limit)
		}
	}
	_, err := validate.Decode(context.Background(), e, prompt, newBuiltin(t, "nacl"),
		validate.Options{Budget: limit, Peak: true, MaxNew: gen, IgnoreEOS: true})
	if err == nil || !strings.Contains(err.Error(), "peak accounting: cannot hold 8 entries per head") {
		t.Errorf("nacl: %v", err)
	}
}
