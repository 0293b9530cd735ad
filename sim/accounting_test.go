package sim

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/internal/stats"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/window"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// longTrace: one head, head_dim 2, 8 prompt and 8 generated tokens; key j is
// (ln(j+1), 0) and every query (1, 0), so that attention grows with position.
func longTrace(id string, scale float32) *memSource {
	m := &memSource{meta: kvtrace.Meta{Model: "hand", Layers: 1, Heads: 1, HeadDim: 2, PromptLen: 8, GenLen: 8,
		Source: kvtrace.SourceSynthetic, SampleID: id, HasV: true}}
	for j := range 16 {
		m.q = append(m.q, scale, 0)
		m.k = append(m.k, float32(math.Log(float64(j+1))), 0)
		m.v = append(m.v, float32(j), 1)
	}
	return m
}

// batcher evicts the oldest tokens, always down to the budget: a multi-step policy
// with Slack slack, a compensation slot when comp is set (merge weight 1), and its
// slack grown by one at every Init when creep is set (a layout the host must catch).
type batcher struct {
	slack       int
	comp, creep bool
	budget      int
	res         policies.Residency
}

func (b *batcher) Init(cfg policies.Config) (policies.Layout, error) {
	b.res.Reset(cfg)
	b.budget = cfg.Budget
	if b.creep {
		b.slack++
	}
	return policies.Layout{Slack: b.slack, Compensation: b.comp}, nil
}
func (b *batcher) Observe(a *policies.Attention) error { b.res.Enter(a); return nil }
func (b *batcher) Evict(e *policies.Eviction) error {
	for b.res.Heads[0].Resident() > b.budget {
		victim, oldest := int32(-1), int32(math.MaxInt32)
		for s, p := range b.res.Heads[0].Positions() {
			if p >= 0 && p < oldest {
				victim, oldest = int32(s), p
			}
		}
		e.Victim(0, victim, 1)
		b.res.Free(0, victim)
	}
	return nil
}

func batcherSpec(name string, mode host.Accounting, make func() *batcher) PolicySpec {
	return PolicySpec{Name: name, Accounting: mode, New: func() (policies.Policy, error) { return make(), nil }}
}

func replayOne(t *testing.T, sp PolicySpec, budget int, sources ...Source) *Cell {
	t.Helper()
	if len(sources) == 0 {
		sources = []Source{longTrace("a", 1)}
	}
	res, err := Replay(context.Background(), sources, []PolicySpec{sp}, Options{Budgets: []host.Budget{{Tokens: budget}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	return res.Cell(0, 0)
}

// A multi-step policy (slack 2) with a compensation slot at a cap of 6 entries. Its
// layout peaks at b + 2 + 1 tokens plus the slot, so peak accounting gives it nominal
// budget 2. By hand, from 2 tokens and the slot, the 8 decode steps attend over
// 4, 5, 6, 4, 5, 6, 4, 5 entries (evicting down to 2 after each 6). Nominal
// accounting at 6 attends over up to 6 + 2 + 1 + 1 = 10.
func TestPeakMultiStep(t *testing.T) {
	make := func() *batcher { return &batcher{slack: 2, comp: true} }
	c := replayOne(t, batcherSpec("batch", host.Peak, make), 6)
	if c.Failed != "" {
		t.Fatal(c.Failed)
	}
	if c.NominalTokens != 2 || c.PeakResident != 6 || c.MeanResident != 39.0/8 || c.Accounting != "peak" {
		t.Errorf("peak: nominal %g, peak %g, mean %g, accounting %q; want 2, 6, 4.875, peak", c.NominalTokens, c.PeakResident, c.MeanResident, c.Accounting)
	}
	n := replayOne(t, batcherSpec("batch", host.Nominal, make), 6)
	if n.NominalTokens != 6 || n.PeakResident != 10 {
		t.Errorf("nominal: nominal %g, peak %g; want 6, 10", n.NominalTokens, n.PeakResident)
	}
	// KV bytes: 2 · head_dim 2 · 2 bytes per entry, one head and layer.
	if c.PeakKVBytes != 6*8 || c.MeanKVBytes != 39.0/8*8 {
		t.Errorf("KV bytes: peak %g, mean %g; want 48, 39", c.PeakKVBytes, c.MeanKVBytes)
	}
}

// A policy that never evicts after the prompt (slack beyond the sequence, like NACL's
// "append") holds b + 8 tokens at the last step: at a cap of 10 it gets nominal
// budget 2 and attends over 3..10 entries; at a cap of 8 even budget 1 holds 9, and
// its row fails with the reason.
func TestPeakAppending(t *testing.T) {
	make := func() *batcher { return &batcher{slack: 16} }
	c := replayOne(t, batcherSpec("append", host.Peak, make), 10)
	if c.Failed != "" || c.NominalTokens != 2 || c.PeakResident != 10 || c.MeanResident != 6.5 {
		t.Errorf("cap 10: %+v; want nominal 2, peak 10, mean 6.5", c)
	}
	c = replayOne(t, batcherSpec("append", host.Peak, make), 8)
	if !strings.Contains(c.Failed, "peak accounting: cannot hold 8 entries per head: even at nominal budget 1 it holds 9") {
		t.Errorf("cap 8: failed %q", c.Failed)
	}
}

// A policy whose slack grows at every Init passes the layout probes but then holds
// more than the cap: the host stops it at the first step over.
func TestPeakEnforced(t *testing.T) {
	c := replayOne(t, batcherSpec("creep", host.Peak, func() *batcher { return &batcher{creep: true} }), 6)
	if !strings.Contains(c.Failed, "over the peak cap of 6") {
		t.Errorf("failed %q, want the cap named", c.Failed)
	}
}

// Mean accounting of the multi-step policy above: from nominal budget b it attends
// over b+2, b+3, b+4, ... entries, a mean of b + 23/8. For a target of 6, b = 3 gives
// 5.875 and b = 4 gives 6.875: the search picks 3. The appending policy's mean is
// b + 4.5: budgets 1 and 2 miss a target of 6 by 0.5 each, and the tie goes to 1.
func TestMeanSearch(t *testing.T) {
	c := replayOne(t, batcherSpec("batch", host.Mean, func() *batcher { return &batcher{slack: 2, comp: true} }), 6)
	if c.Failed != "" || c.NominalTokens != 3 || c.MeanResident != 5.875 || c.Accounting != "mean" {
		t.Errorf("multi-step: %+v; want nominal 3, mean 5.875", c)
	}
	c = replayOne(t, batcherSpec("append", host.Mean, func() *batcher { return &batcher{slack: 16} }), 6)
	if c.Failed != "" || c.NominalTokens != 1 || c.MeanResident != 5.5 {
		t.Errorf("appending: %+v; want nominal 1, mean 5.5", c)
	}
	c = replayOne(t, batcherSpec("append", host.Mean, func() *batcher { return &batcher{slack: 16} }), 4)
	if !strings.Contains(c.Failed, "even nominal budget 1 holds 5.50 entries per head on average, more than 4") {
		t.Errorf("target 4: failed %q", c.Failed)
	}
}

// The search alone, on mean functions of the budget: it lands on the closest budget
// in a few probes, and refuses a target that no budget matches within one entry.
func TestMeanSearchSteps(t *testing.T) {
	run := func(target int, mean func(b int) float64) (int, int, error) {
		m := &meanSearch{target: target, max: 10000}
		b := target
		for b != 0 {
			n := float64(100)
			b = m.record(b, instanceStats{residentSum: mean(b) * n, n: n})
		}
		got, _, err := m.result()
		return got, m.probes, err
	}
	for _, c := range []struct {
		name         string
		target       int
		mean         func(int) float64
		want         int
		fail         string
		probesAtMost int
	}{
		{"h2o-like", 100, func(b int) float64 { return float64(b + 1) }, 99, "", 3},
		{"steep", 200, func(b int) float64 { return 1.5*float64(b) + 2 }, 132, "", 6},
		{"too coarse", 10, func(b int) float64 { return 4 * float64(b) }, 0, "budget 2 holds 8.00, budget 3 holds 12.00", 8},
		{"never full", 50, func(b int) float64 { return math.Min(float64(b), 20) }, 50, "", 3},
	} {
		got, probes, err := run(c.target, c.mean)
		if c.fail != "" {
			if err == nil || !strings.Contains(err.Error(), c.fail) {
				t.Errorf("%s: %v, want %q", c.name, err, c.fail)
			}
			continue
		}
		if err != nil || got != c.want || probes > c.probesAtMost {
			t.Errorf("%s: budget %d after %d probes (%v), want %d in at most %d", c.name, got, probes, err, c.want, c.probesAtMost)
		}
	}
}

// The first probe allows for the incoming token, half the usable slack and the slot.
func TestMeanGuess(t *testing.T) {
	for _, c := range []struct {
		target, gen int
		layout      policies.Layout
		want        int
	}{
		{20, 64, policies.Layout{}, 19},
		{20, 64, policies.Layout{Slack: 9, Compensation: true}, 14},
		{10, 64, policies.Layout{Slack: 576}, 1}, // appending: half of 63 steps
		{10, 4, policies.Layout{Slack: 576}, 8},
	} {
		if got := meanGuess(c.target, c.gen, c.layout); got != c.want {
			t.Errorf("meanGuess(%d, %d, %+v) = %d, want %d", c.target, c.gen, c.layout, got, c.want)
		}
	}
}

// Per-sample figures, their intervals and the paired differences, on two samples
// whose queries differ in scale.
func TestSamplesAndIntervals(t *testing.T) {
	sources := []Source{longTrace("a", 1), longTrace("b", 2)}
	specs := []PolicySpec{
		spec("window", window.New, map[string]any{"sink": 1.0}),
		batcherSpec("batch", host.Nominal, func() *batcher { return &batcher{} }),
	}
	res, err := Replay(context.Background(), sources, specs, Options{Budgets: []host.Budget{{Tokens: 4}}, Threads: 1, Compare: "batch"})
	if err != nil {
		t.Fatal(err)
	}
	w, b := res.Cell(0, 0), res.Cell(1, 0)
	if len(w.Samples) != 2 || len(res.SampleNames) != 2 || res.SampleNames[1] != "mem:b" {
		t.Fatalf("samples %+v, names %v", w.Samples, res.SampleNames)
	}
	hits := []float64{w.Samples[0].HitRate, w.Samples[1].HitRate}
	if got := (hits[0] + hits[1]) / 2; math.Abs(got-w.HitRate) > 1e-12 {
		t.Errorf("cell hit rate %g, mean of samples %g", w.HitRate, got)
	}
	if w.Samples[0].Layers[0].HitRate != w.Samples[0].HitRate || w.Samples[0].Steps != 8 {
		t.Errorf("sample 0: %+v", w.Samples[0])
	}
	if want := stats.MeanCI(hits); w.CI.HitRate != want {
		t.Errorf("interval %+v, want %+v", w.CI.HitRate, want)
	}
	ref := []float64{b.Samples[0].HitRate, b.Samples[1].HitRate}
	if w.Diff == nil || w.Diff.Reference != "batch" || w.Diff.HitRate != stats.PairedCI(hits, ref) || b.Diff != nil {
		t.Errorf("differences: window %+v, batch %+v", w.Diff, b.Diff)
	}
	// window declares 4 bytes of state per token: 8 + 4 bytes per entry.
	if w.StateBytesPerToken != 4 || w.PeakKVBytes != 5*12 {
		t.Errorf("window state %d bytes, peak KV %g; want 4, 60", w.StateBytesPerToken, w.PeakKVBytes)
	}
	if _, err := Replay(context.Background(), sources, specs, Options{Budgets: []host.Budget{{Tokens: 4}}, Compare: "nope"}); err == nil ||
		!strings.Contains(err.Error(), `no policy "nope"`) {
		t.Errorf("unknown reference: %v", err)
	}
}

func TestParseAccounting(t *testing.T) {
	if _, err := host.ParseAccounting("median"); err == nil || !strings.Contains(err.Error(), "nominal, peak, mean") {
		t.Errorf("ParseAccounting: %v", err)
	}
}
