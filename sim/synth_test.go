package sim_test

import (
	"context"
	"math"
	"reflect"
	"testing"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/builtin"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/kvtrace"
	"github.com/kvsim/kvsim/sim/synth"
)

func builtinSpecs(t testing.TB, names ...string) []sim.PolicySpec {
	t.Helper()
	var specs []sim.PolicySpec
	for _, n := range names {
		newPolicy, ok := builtin.Lookup(n)
		if !ok {
			t.Fatalf("no builtin %s", n)
		}
		specs = append(specs, sim.PolicySpec{Name: n, AllowClairvoyant: true,
			New: func() (policies.Policy, error) { return newPolicy(policies.NewParams(nil)) }})
	}
	return specs
}

func synthSources(t testing.TB, opts synth.Options, samples int) []sim.Source {
	t.Helper()
	var out []sim.Source
	for i := 0; i < samples; i++ {
		opts.Sample = i
		tr, err := synth.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tr)
	}
	return out
}

var budgets = []host.Budget{{Fraction: 0.02}, {Fraction: 0.04}, {Fraction: 0.06}, {Fraction: 0.08}, {Fraction: 0.10}}

// withoutTimings zeroes the figures that measure time, the only ones allowed to vary.
func withoutTimings(r *sim.Result) *sim.Result {
	c := *r
	c.Perf = sim.Perf{}
	c.Cells = append([]sim.Cell(nil), r.Cells...)
	for i := range c.Cells {
		c.Cells[i].PolicyNs, c.Cells[i].HostNs = 0, 0
	}
	return &c
}

// TestDeterministicAcrossThreads: every figure but the timings is bit-identical at 1,
// 2 and 5 workers, in every accounting mode.
func TestDeterministicAcrossThreads(t *testing.T) {
	src := synthSources(t, synth.Options{Preset: "opt-125m", Layers: 3, Heads: 4, PromptLen: 96, GenLen: 12, Seed: 3, WithV: true}, 2)
	for _, mode := range []host.Accounting{host.Nominal, host.Peak, host.Mean} {
		specs := builtinSpecs(t, "full", "window", "random", "h2o", "oracle", "auv")
		for i := range specs {
			specs[i].Accounting = mode
		}
		var first *sim.Result
		for _, threads := range []int{1, 2, 5} {
			// Budgets of 5, 10 and 19 tokens, so that every policy fits every cap.
			res, err := sim.Replay(context.Background(), src, specs, sim.Options{Budgets: []host.Budget{{Fraction: 0.05}, {Fraction: 0.1}, {Fraction: 0.2}},
				Threads: threads, Seed: 11, BlockRows: 7, Compare: "h2o"})
			if err != nil {
				t.Fatal(err)
			}
			res = withoutTimings(res)
			if first == nil {
				first = res
				continue
			}
			if !reflect.DeepEqual(first, res) {
				t.Fatalf("%s: %d threads differ from 1", mode, threads)
			}
		}
		for _, c := range first.Cells {
			if c.Failed != "" {
				t.Errorf("%s: %s @ %s failed: %s", mode, c.Policy, c.Budget, c.Failed)
			}
		}
	}
}

// TestOrdering checks relations that hold on any trace: full keeps everything, the
// oracle beats random, and hit rate grows with the budget for the oracle.
func TestOrdering(t *testing.T) {
	src := synthSources(t, synth.Options{Preset: "opt-125m", Layers: 2, Heads: 6, PromptLen: 200, GenLen: 16, Seed: 5, WithV: true}, 2)
	res, err := sim.Replay(context.Background(), src, builtinSpecs(t, "full", "random", "oracle"), sim.Options{Budgets: budgets, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	for j := range budgets {
		full, random, oracle := res.Cell(0, j), res.Cell(1, j), res.Cell(2, j)
		if full.HitRate < 1-1e-6 || full.OutputError != 0 {
			t.Errorf("full @ %s: hit %v, output error %v", full.Budget, full.HitRate, full.OutputError)
		}
		if oracle.HitRate <= random.HitRate || oracle.OutputError >= random.OutputError {
			t.Errorf("@ %s: oracle %+v vs random %+v", oracle.Budget, oracle.Metrics, random.Metrics)
		}
		if j > 0 && oracle.HitRate <= res.Cell(2, j-1).HitRate {
			t.Errorf("oracle hit rate fell from %s to %s", res.Cell(2, j-1).Budget, oracle.Budget)
		}
		if random.PeakResident != float64(budgetTokens(budgets[j], 200)+1) {
			t.Errorf("random @ %s: peak resident %v, want budget+1", random.Budget, random.PeakResident)
		}
	}
}

func budgetTokens(b host.Budget, p int) int { return b.TokensFor(p) }

// TestReplayMatchesReferenceHost: the victims sim's H2O picks give the same resident
// sets as policytest's plain float64 host, so the fast engine and the reference agree
// on the protocol. Compared through the hit rate of a one-head sequence.
func TestH2OAgreesWithReferenceHost(t *testing.T) {
	seq := policytest.RandomSequence(2, 24, 30, 9)
	newH2O, _ := builtin.Lookup("h2o")
	p, err := newH2O(policies.NewParams(nil))
	if err != nil {
		t.Fatal(err)
	}
	log, err := policytest.Run(p, policies.Config{Budget: 6}, seq)
	if err != nil {
		t.Fatal(err)
	}
	// Replay the same logits through sim: keys are one-hot rows of the logit matrix.
	src := logitSource(seq)
	spec := builtinSpecs(t, "h2o")
	res, err := sim.Replay(context.Background(), []sim.Source{src}, spec, sim.Options{Budgets: []host.Budget{{Tokens: 6}}, Threads: 1, BlockRows: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Cells[0].Failed != "" {
		t.Fatal(res.Cells[0].Failed)
	}
	if got, want := res.Cells[0].Evictions, float64(totalVictims(log))/float64(seq.Heads); got != want {
		t.Errorf("evictions per head: sim %v, reference %v", got, want)
	}
	hit := referenceHitRate(seq, log)
	if d := res.Cells[0].HitRate - hit; d > 1e-5 || d < -1e-5 {
		t.Errorf("hit rate: sim %.7f, reference %.7f", res.Cells[0].HitRate, hit)
	}
}

// logitSource turns a policytest sequence into a trace: head_dim = T, key j is the
// unit vector e_j and query t holds row t of the logits, so q_t·k_j is the logit.
func logitSource(seq policytest.Sequence) sim.Source {
	T := seq.MaxLen
	m := &matrixSource{meta: kvtrace.Meta{Model: "policytest", Layers: 1, Heads: seq.Heads, HeadDim: T,
		PromptLen: seq.PromptLen, GenLen: T - seq.PromptLen, Source: kvtrace.SourceSynthetic, SampleID: "seq"}}
	m.q = make([]float32, seq.Heads*T*T)
	m.k = make([]float32, seq.Heads*T*T)
	for h := 0; h < seq.Heads; h++ {
		for t := 0; t < T; t++ {
			m.k[(h*T+t)*T+t] = 1
			for j := 0; j <= t; j++ {
				m.q[(h*T+t)*T+j] = float32(seq.Logit(h, t, j))
			}
		}
	}
	return m
}

type matrixSource struct {
	meta kvtrace.Meta
	q, k []float32
}

func (m *matrixSource) Name() string       { return "matrix" }
func (m *matrixSource) Meta() kvtrace.Meta { return m.meta }
func (m *matrixSource) Read(kind kvtrace.Kind, _ int, dst []float32) ([]float32, error) {
	if kind == kvtrace.Q {
		return append(dst[:0], m.q...), nil
	}
	return append(dst[:0], m.k...), nil
}

func totalVictims(log *policytest.Log) int {
	n := 0
	for _, e := range log.Events {
		for _, v := range e.Victims {
			n += len(v)
		}
	}
	return n
}

// referenceHitRate replays the reference log's evictions in float64.
func referenceHitRate(seq policytest.Sequence, log *policytest.Log) float64 {
	var sum float64
	var n int
	for h := 0; h < seq.Heads; h++ {
		resident := map[int]bool{}
		for j := 0; j < seq.PromptLen; j++ {
			resident[j] = true
		}
		apply := func(phase policies.Phase, pos int) {
			for _, e := range log.Events {
				if e.Phase == phase && e.Pos == pos {
					for _, p := range e.VictimPos[h] {
						delete(resident, p)
					}
				}
			}
		}
		apply(policies.Prefill, seq.PromptLen-1)
		for t := seq.PromptLen; t < seq.MaxLen; t++ {
			resident[t] = true
			var total, kept float64
			for j := 0; j <= t; j++ {
				e := math.Exp(seq.Logit(h, t, j))
				total += e
				if resident[j] {
					kept += e
				}
			}
			sum += kept / total
			n++
			apply(policies.Decode, t)
		}
	}
	return sum / float64(n)
}
