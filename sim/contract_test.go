package sim_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/synth"
)

// seqSource is a trace whose layer l is the vectors of policytest sequence l.
type seqSource struct {
	meta kvtrace.Meta
	seqs []policytest.Sequence
}

func newSeqSource(withV bool, seqs ...policytest.Sequence) *seqSource {
	s := seqs[0]
	return &seqSource{seqs: seqs, meta: kvtrace.Meta{Model: "policytest", Layers: len(seqs), Heads: s.Heads, HeadDim: s.HeadDim,
		PromptLen: s.PromptLen, GenLen: s.MaxLen - s.PromptLen, Source: kvtrace.SourceSynthetic, SampleID: "seq", HasV: withV}}
}

func (s *seqSource) Name() string       { return "seq" }
func (s *seqSource) Meta() kvtrace.Meta { return s.meta }
func (s *seqSource) Read(kind kvtrace.Kind, layer int, dst []float32) ([]float32, error) {
	seq := s.seqs[layer]
	get := map[kvtrace.Kind]func(h, t int) []float32{kvtrace.Q: seq.Query, kvtrace.K: seq.Key, kvtrace.V: seq.Value}[kind]
	if kind == kvtrace.V && !s.meta.HasV {
		return dst, errors.New("no V")
	}
	dst = dst[:0]
	for h := range seq.Heads {
		for t := range seq.MaxLen {
			dst = append(dst, get(h, t)...)
		}
	}
	return dst, nil
}

// handVectors: 2 heads, head_dim 2, a 3-token prompt and 2 generated tokens, with
// head h's key at position t (10h+t, −t), value (t, h) and query (t/10, 1).
func handVectors() policytest.Sequence {
	return policytest.Sequence{Heads: 2, PromptLen: 3, MaxLen: 5, HeadDim: 2,
		Key:   func(h, t int) []float32 { return []float32{float32(10*h + t), float32(-t)} },
		Value: func(h, t int) []float32 { return []float32{float32(t), float32(h)} },
		Query: func(h, t int) []float32 { return []float32{float32(t) / 10, 1} }}
}

// vectorSpy records the vectors of every Observe call and never evicts.
type vectorSpy struct {
	layout policies.Layout
	seen   *[]string
}

func (v *vectorSpy) Init(policies.Config) (policies.Layout, error) { return v.layout, nil }
func (v *vectorSpy) Evict(*policies.Eviction) error                { return nil }
func (v *vectorSpy) Observe(a *policies.Attention) error {
	*v.seen = append(*v.seen, fmt.Sprintf("%v %d×%d: k %v v %v q %v", a.Phase, a.Pos, a.Rows, a.Keys, a.Values, a.Queries))
	return nil
}

// TestVectorsByHand: a policy asking for keys, values and queries gets exactly the
// trace's, per head and row, in prefill blocks (of 2 rows here) and decode steps; one
// that does not ask gets none.
func TestVectorsByHand(t *testing.T) {
	all := policies.Layout{Unbounded: true, Keys: true, Values: true, Queries: true}
	want := []string{
		"prefill 0×2: k [0 0 1 -1 10 0 11 -1] v [0 0 1 0 0 1 1 1] q [0 1 0.1 1 0 1 0.1 1]",
		"prefill 2×1: k [2 -2 12 -2] v [2 0 2 1] q [0.2 1 0.2 1]",
		"decode 3×1: k [3 -3 13 -3] v [3 0 3 1] q [0.3 1 0.3 1]",
		"decode 4×1: k [4 -4 14 -4] v [4 0 4 1] q [0.4 1 0.4 1]",
	}
	for _, noOutErr := range []bool{false, true} { // values read for the metric, or for the policy alone
		var asked, plain []string
		specs := []sim.PolicySpec{
			{Name: "asks", New: func() (policies.Policy, error) { return &vectorSpy{layout: all, seen: &asked}, nil }},
			{Name: "plain", New: func() (policies.Policy, error) {
				return &vectorSpy{layout: policies.Layout{Unbounded: true}, seen: &plain}, nil
			}},
		}
		res, err := sim.Replay(context.Background(), []sim.Source{newSeqSource(true, handVectors())}, specs,
			sim.Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1, BlockRows: 2, NoOutputError: noOutErr})
		if err != nil {
			t.Fatal(err)
		}
		if f := res.Cells[0].Failed; f != "" {
			t.Fatal(f)
		}
		if !slices.Equal(asked, want) {
			t.Errorf("no output error %t: the policy saw\n%s\nwant\n%s", noOutErr, strings.Join(asked, "\n"), strings.Join(want, "\n"))
		}
		for _, s := range plain {
			if !strings.HasSuffix(s, "k [] v [] q []") {
				t.Errorf("a policy that did not ask saw %s", s)
			}
		}
	}

	// A trace without values fails a policy that asks for them, and only it.
	only := policies.Layout{Unbounded: true, Values: true}
	var seen []string
	specs := []sim.PolicySpec{{Name: "values", New: func() (policies.Policy, error) { return &vectorSpy{layout: only, seen: &seen}, nil }},
		builtinSpecs(t, "window")[0]}
	res, err := sim.Replay(context.Background(), []sim.Source{newSeqSource(false, handVectors())}, specs,
		sim.Options{Budgets: []host.Budget{{Tokens: 2}}, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	if f, want := res.Cells[0].Failed, `policy "values": init at layer 0, position 0: the layout asks for values, but trace seq carries none`; f != want {
		t.Errorf("failed with %q, want %q", f, want)
	}
	if f := res.Cells[1].Failed; f != "" {
		t.Errorf("window failed: %s", f)
	}
}

// compactH2O is h2o asking for compact rows: it checks each compact row against the
// wide row replay gives plain h2o at the same step (rows, filled by a plain run
// first, keyed by the seed of its sample and layer), then widens it for h2o, which must then decide exactly as in the plain run.
type compactH2O struct {
	policies.Policy
	cfg      policies.Config
	width    int
	wide     map[string][]float32 // (layer, position) → the plain run's row
	record   bool
	mismatch *[]string
	row      []float32
}

func (c *compactH2O) Init(cfg policies.Config) (policies.Layout, error) {
	layout, err := c.Policy.Init(cfg)
	c.cfg, c.width = cfg, policies.SlotWidth(cfg, layout)
	layout.Compact = !c.record
	return layout, err
}

func (c *compactH2O) Observe(a *policies.Attention) error {
	if a.Phase == policies.Prefill {
		return c.Policy.Observe(a)
	}
	key := fmt.Sprintf("seed %x position %d", c.cfg.Seed, a.Pos) // the seed is per (sample, layer)
	if c.record {
		c.wide[key] = slices.Clone(a.Probs[:a.Heads*a.Stride])
		return c.Policy.Observe(a)
	}
	c.row = slices.Grow(c.row[:0], a.Heads*a.Stride)[:a.Heads*a.Stride]
	clear(c.row)
	for h := range a.Heads {
		for i, s := range a.Live[h*a.Stride : h*a.Stride+int(a.Len[h])] {
			c.row[h*a.Stride+int(s)] = a.Probs[h*a.Stride+i]
		}
	}
	if w := c.wide[key]; !slices.Equal(w, c.row) {
		*c.mismatch = append(*c.mismatch, key)
	}
	wide := *a
	wide.Probs, wide.Live, wide.Len = c.row, nil, nil
	return c.Policy.Observe(&wide)
}

// TestCompactRowsMatchWide: at every decode step, a compact row holds exactly the
// wide row's resident entries (the free slots of a wide row are 0), and h2o fed the
// compact rows decides exactly as h2o fed wide rows: every figure of the table
// agrees bit for bit.
func TestCompactRowsMatchWide(t *testing.T) {
	src := synthSources(t, synth.Options{Preset: "opt-125m", Layers: 2, Heads: 3, PromptLen: 60, GenLen: 16, Seed: 2, WithV: true}, 2)
	newH2O, _ := builtin.Lookup("h2o")
	wide := map[string][]float32{}
	var mismatch []string
	mk := func(record bool) func() (policies.Policy, error) {
		return func() (policies.Policy, error) {
			p, err := newH2O(policies.NewParams(nil))
			return &compactH2O{Policy: p, wide: wide, record: record, mismatch: &mismatch}, err
		}
	}
	opts := sim.Options{Budgets: []host.Budget{{Fraction: 0.1}, {Tokens: 7}}, Threads: 1, Seed: 3}
	run := func(name string, record bool) *sim.Result {
		res, err := sim.Replay(context.Background(), src, []sim.PolicySpec{{Name: "h2o", New: mk(record)}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range res.Cells {
			if c.Failed != "" {
				t.Fatalf("%s: %s", name, c.Failed)
			}
		}
		return withoutTimings(res)
	}
	// Budgets run in turn on one thread, so the plain run's rows are per budget:
	// record and compare one budget at a time.
	for _, b := range opts.Budgets {
		opts.Budgets = []host.Budget{b}
		clear(wide)
		plain := run("wide", true)
		compact := run("compact", false)
		if len(wide) == 0 || len(mismatch) > 0 {
			t.Fatalf("budget %v: %d rows recorded; compact rows differ at %v", b, len(wide), mismatch)
		}
		if fmt.Sprintf("%+v", plain.Cells) != fmt.Sprintf("%+v", compact.Cells) {
			t.Errorf("budget %v: compact rows change the table:\n%+v\n%+v", b, plain.Cells, compact.Cells)
		}
	}
}

// victimLog wraps a policy and logs its victims by layer, one line per eviction.
type victimLog struct {
	policies.Policy
	layer int
	log   map[int][]string
}

func (v *victimLog) Init(cfg policies.Config) (policies.Layout, error) {
	v.layer = cfg.Layer
	return v.Policy.Init(cfg)
}

func (v *victimLog) Evict(e *policies.Eviction) error {
	err := v.Policy.Evict(e)
	line := fmt.Sprintf("%v at %d:", e.Phase, e.Pos)
	for h := range e.Heads {
		line += fmt.Sprint(" ", slices.Sorted(slices.Values(e.Victims[h*e.Stride:h*e.Stride+int(e.Count[h])])))
	}
	v.log[v.layer] = append(v.log[v.layer], line)
	return err
}

// LayerBudgets passes the call on, so that the wrapper keeps a model pool's division.
func (v *victimLog) LayerBudgets(cfg policies.Config, entries []int) error {
	return v.Policy.(policies.LayerBudgeter).LayerBudgets(cfg, entries)
}

// TestPoolsAgreeWithReferenceHost replays a layer pool and a model pool (with slack
// and compact rows) and checks every eviction against policytest, the independent
// reference host, layer by layer; and the peak a pool's heads hold.
func TestPoolsAgreeWithReferenceHost(t *testing.T) {
	const L, H, P, T, B = 3, 3, 20, 30, 4
	var seqs []policytest.Sequence
	for l := range L {
		seqs = append(seqs, policytest.VectorSequence(H, P, T, 8, uint64(10+l)))
	}
	for _, pooled := range []policytest.Pooled{
		{Pool: policies.PoolLayer},
		{Pool: policies.PoolModel, Slack: 1, Compact: true},
	} {
		t.Run(pooled.Pool.String(), func(t *testing.T) {
			got := map[int][]string{}
			spec := sim.PolicySpec{Name: "pooled", New: func() (policies.Policy, error) {
				p := pooled
				return &victimLog{Policy: &p, log: got}, nil
			}}
			res, err := sim.Replay(context.Background(), []sim.Source{newSeqSource(true, seqs...)}, []sim.PolicySpec{spec},
				sim.Options{Budgets: []host.Budget{{Tokens: B}}, Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			cell := res.Cells[0]
			if cell.Failed != "" {
				t.Fatal(cell.Failed)
			}
			peak, victims := 0, 0
			for l := range L {
				p := pooled
				ref, err := policytest.Run(&p, policies.Config{Layer: l, Layers: L, Budget: B}, seqs[l])
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, e := range ref.Events {
					line := fmt.Sprintf("%v at %d:", e.Phase, e.Pos)
					for h := range H {
						line += fmt.Sprint(" ", slices.Sorted(slices.Values(e.Victims[h])))
						victims += len(e.Victims[h])
					}
					want = append(want, line)
				}
				if !slices.Equal(got[l], want) {
					t.Errorf("layer %d: replay evicted\n%s\nthe reference host\n%s", l, strings.Join(got[l], "\n"), strings.Join(want, "\n"))
				}
				peak = max(peak, (ref.PeakPool+H-1)/H)
			}
			if cell.PeakResident != float64(peak) || cell.Evictions != float64(victims)/(L*H) {
				t.Errorf("peak %v per head, %v victims per head; the reference host %d, %v", cell.PeakResident, cell.Evictions, peak, float64(victims)/(L*H))
			}
		})
	}
}

// noBudgets asks for a model pool without dividing it.
type noBudgets struct{}

func (noBudgets) Init(policies.Config) (policies.Layout, error) {
	return policies.Layout{Pool: policies.PoolModel}, nil
}
func (noBudgets) Observe(*policies.Attention) error { return nil }
func (noBudgets) Evict(*policies.Eviction) error    { return nil }

// TestPoolRefusals: a policy that overdraws its pool, a model pool without a
// division, and a model pool under mean accounting each fail their cell with the
// reason.
func TestPoolRefusals(t *testing.T) {
	seq := policytest.VectorSequence(2, 4, 7, 4, 3)
	for _, c := range []struct {
		name string
		p    policies.Policy
		acc  host.Accounting
		want string
	}{
		{"overdraw", &policytest.Pooled{Pool: policies.PoolLayer, Overdraw: true}, host.Nominal,
			`policy "overdraw": evict at layer 0, position 3: pool: 5 victims over 2 heads, need at least 6 (the layer pool of 2 entries)`},
		{"overdraw in decode", &overdrawLater{Pooled: policytest.Pooled{Pool: policies.PoolModel}}, host.Nominal,
			`policy "overdraw in decode": evict at layer 0, position 4: pool: 1 victims over 2 heads, need at least 2 (the model pool of 2 entries)`},
		{"no division", &noBudgets{}, host.Nominal,
			`policy "no division": init at layer 0, position 0: the layout asks for a model pool, but the policy has no LayerBudgets method`},
		{"mean", &policytest.Pooled{Pool: policies.PoolModel}, host.Mean,
			`policy "mean": init at layer 0, position 0: mean accounting cannot serve a model pool: its per-layer search would undo the division among layers (use peak or nominal)`},
	} {
		spec := sim.PolicySpec{Name: c.name, Accounting: c.acc, New: func() (policies.Policy, error) { return c.p, nil }}
		res, err := sim.Replay(context.Background(), []sim.Source{newSeqSource(true, seq)}, []sim.PolicySpec{spec},
			sim.Options{Budgets: []host.Budget{{Tokens: 1}}, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		if f := res.Cells[0].Failed; f != c.want {
			t.Errorf("%s: failed with\n%q, want\n%q", c.name, f, c.want)
		}
	}
}

// overdrawLater overdraws its pool at the first decode eviction, not at compression.
type overdrawLater struct{ policytest.Pooled }

func (o *overdrawLater) Evict(e *policies.Eviction) error {
	o.Overdraw = e.Phase == policies.Decode
	return o.Pooled.Evict(e)
}

// TestPoolsUnderPeak: under peak accounting a pool is charged its entries per head,
// so a layer pool with slack 1 gets the nominal budget a per-head policy with slack
// 1 gets (cap − slack − the new token: 6 − 2 = 4), and the host's cap holds at every
// step (it fails the cell otherwise): per head on average over a layer pool, and
// over the model for a model pool, whose first layer here holds more than 6 per head
// (it gets 2/3 of the pool) while the sequence's peak memory stays within the cap.
func TestPoolsUnderPeak(t *testing.T) {
	const L, H, P, T = 2, 3, 20, 30
	var seqs []policytest.Sequence
	for l := range L {
		seqs = append(seqs, policytest.VectorSequence(H, P, T, 8, uint64(20+l)))
	}
	for _, pool := range []policies.Pool{policies.PoolLayer, policies.PoolModel} {
		spec := sim.PolicySpec{Name: "pooled", Accounting: host.Peak, New: func() (policies.Policy, error) {
			return &policytest.Pooled{Pool: pool, Slack: 1}, nil
		}}
		res, err := sim.Replay(context.Background(), []sim.Source{newSeqSource(true, seqs...)}, []sim.PolicySpec{spec},
			sim.Options{Budgets: []host.Budget{{Tokens: 6}}, Threads: 2})
		if err != nil {
			t.Fatal(err)
		}
		c := res.Cells[0]
		capBytes := float64(L * H * 6 * 2 * 8 * res.KVBytesPerValue)
		if c.Failed != "" || c.NominalTokens != 4 || c.PeakKVBytes > capBytes || c.Evictions == 0 {
			t.Errorf("%v pool: failed %q, nominal %v, peak %v bytes, evictions %v; want nominal 4, peak ≤ %v bytes", pool, c.Failed, c.NominalTokens, c.PeakKVBytes, c.Evictions, capBytes)
		}
		if layerPool := pool == policies.PoolLayer; layerPool != (c.PeakResident <= 6) {
			t.Errorf("%v pool: peak %v entries per head", pool, c.PeakResident)
		}
	}
}
