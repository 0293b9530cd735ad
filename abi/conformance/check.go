// Package conformance is a test kit for eviction policies, whatever they are built
// with: native Go, a Go plugin or a WASM module. Check runs a policy through a
// battery of small replays on synthetic traces (legal victims, determinism, reuse of
// instances, prefill block sizes, tiny budgets and prompts, the reference host, and
// contract 2.0's inputs, compact rows and pools on a call-by-call host) and reports
// each check; Same replays two policies side by side, and drives them call by call,
// and finds the first eviction where they differ, victim for victim.
//
// `kvsim policy check` prints Check's results; kvsim's own tests use Same to hold
// every builtin policy's WASM build to its native build.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/policies/policytest"
	"github.com/kvsim/kvsim/sim"
	"github.com/kvsim/kvsim/sim/synth"
)

// Result is one check's outcome.
type Result struct {
	Name   string
	Detail string // what the check covered, or what it measured
	Err    error  // why it failed; nil if it passed
	// Skipped marks a check that does not apply to this policy; Info, a measurement
	// rather than a check.
	Skipped, Info bool
}

// Options tune Check.
type Options struct {
	// Params are the params to build the policy with (nil: none).
	Params map[string]any
	// SameAs, if set, is a reference the policy must match victim for victim, built
	// with the same params; SameAsName names it in the report.
	SameAs     policies.New
	SameAsName string
}

// Traces of the battery: OPT-125M-shaped synthetic samples, shrunk.
var (
	mainTrace  = synth.Options{Preset: "opt-125m", Layers: 2, Heads: 4, PromptLen: 128, GenLen: 16, Seed: 7, WithV: true}
	tinyTrace  = synth.Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: synth.MinPromptLen, GenLen: 8, Seed: 7, WithV: true}
	noGenTrace = synth.Options{Preset: "opt-125m", Layers: 1, Heads: 2, PromptLen: 32, Seed: 7, WithV: true}

	mainBudgets  = tokens(1, 2, 3, 8, 32, 64, 127, 128, 200)
	tinyBudgets  = tokens(1, 2, 3, 4, 5, 6, 7, 8, 9)
	noGenBudgets = tokens(1, 16, 32, 40)
)

func tokens(n ...int) []host.Budget {
	var b []host.Budget
	for _, t := range n {
		b = append(b, host.Budget{Tokens: t})
	}
	return b
}

// Check runs the battery on the policy newPolicy builds with opts.Params.
func Check(ctx context.Context, newPolicy policies.New, opts Options) []Result {
	var results []Result
	add := func(name, detail string, err error) {
		results = append(results, Result{Name: name, Detail: detail, Err: err})
	}
	build := func() (policies.Policy, error) { return newPolicy(policies.NewParams(opts.Params)) }

	const unknown = "kvsim_conformance_unknown_param"
	if _, err := newPolicy(policies.NewParams(map[string]any{unknown: true})); err == nil {
		add("params", "an unknown param is rejected", fmt.Errorf("param %q was accepted: a policy must reject params it does not know (in Go, New ends with p.Err())", unknown))
	} else {
		add("params", "an unknown param is rejected: "+err.Error(), nil)
	}
	if _, err := build(); err != nil {
		add("build", fmt.Sprintf("New(%s)", paramsText(opts.Params)), err)
		return results // nothing else can run
	}
	add("build", fmt.Sprintf("New(%s)", paramsText(opts.Params)), nil)

	base := replay{trace: mainTrace, samples: 2, budgets: mainBudgets}
	res, log, err := base.run(ctx, build, false)
	add("replay", fmt.Sprintf("%s: no failed row", base), err)

	for _, r := range []replay{
		{trace: tinyTrace, samples: 1, budgets: tinyBudgets},
		{trace: noGenTrace, samples: 1, budgets: noGenBudgets},
	} {
		_, _, err := r.run(ctx, build, false)
		add("small", fmt.Sprintf("%s: no failed row", r), err)
	}

	if err != nil {
		for _, name := range []string{"determinism", "reuse", "prefill blocks", "budget", "reference host"} {
			results = append(results, Result{Name: name, Detail: "needs a replay without failed rows", Skipped: true})
		}
	} else {
		again, log2, err := base.run(ctx, build, false)
		add("determinism", "a second replay evicts the same slots and gives the same rows", firstErr(err, diff(log, log2, 0), sameCells(res, again)))

		fresh, log3, err := base.run(ctx, build, true)
		add("reuse", "an instance that Init resets evicts like a fresh instance", firstErr(err, diff(log3, log, 0), sameCells(fresh, res)))

		blocks := base
		blocks.blockRows = 5
		// Summing a block's rows in another order may move a merge weight by an ulp.
		_, log4, err := blocks.run(ctx, build, false)
		add("prefill blocks", "prefill in blocks of 5 rows evicts like blocks of 64 (merge weights within 1e-5)", firstErr(err, diff(log, log4, 1e-5)))

		add("budget", "peak resident per head ≤ budget (a model pool: its largest layer share per head) + slack + 1 (+1 compensation slot)", checkPeak(res, log))
		clairvoyant := false
		for _, s := range log.sequences {
			clairvoyant = clairvoyant || s.layout.Clairvoyant
		}
		if clairvoyant {
			results = append(results, Result{Name: "reference host", Detail: "clairvoyant: only replay can serve it", Skipped: true})
		} else {
			add("reference host", "policytest.Run on random vector sequences, budgets 1, 5, 12 and 30", referenceHost(build))
		}
		if mid := res.Cell(0, 4); mid.Failed == "" {
			results = append(results, Result{Name: "speed", Detail: fmt.Sprintf("%.0f ns per (head · decode step) at budget %s", mid.PolicyNs, mid.Budget), Info: true})
		}
	}
	// The call-by-call host needs no replay: it runs whatever the replays found.
	const callsDetail = "call by call on a host that serves keys, values, queries, compact rows and pools (2 layers × 4 heads, prompt 24 + 16, budgets 1 to 30): legal victims, pools kept, the same answers twice"
	switch uses, err := checkCalls(build); {
	case errors.Is(err, errClairvoyant):
		results = append(results, Result{Name: "contract 2.0", Detail: err.Error(), Skipped: true})
	case err != nil:
		add("contract 2.0", callsDetail, err)
	default:
		add("contract 2.0", callsDetail+"; "+uses, nil)
	}
	if opts.SameAs != nil {
		add("same as "+opts.SameAsName, "evicts exactly like it, victim for victim, with the same rows", Same(ctx, opts.SameAs, newPolicy, opts.Params))
	}
	return results
}

// Same replays want and got, both built with params, side by side on synthetic traces
// at several budgets, and returns the first eviction where got differs from want,
// victim for victim, or the first row that differs.
func Same(ctx context.Context, want, got policies.New, params map[string]any) error {
	r := replay{trace: mainTrace, samples: 2, budgets: mainBudgets}
	var wantLog, gotLog recording
	specs := []sim.PolicySpec{
		{Name: "want", AllowClairvoyant: true, New: record(func() (policies.Policy, error) { return want(policies.NewParams(params)) }, &wantLog, false)},
		{Name: "got", AllowClairvoyant: true, New: record(func() (policies.Policy, error) { return got(policies.NewParams(params)) }, &gotLog, false)},
	}
	res, err := r.replay(ctx, specs)
	if err != nil {
		return err
	}
	nb := len(r.budgets)
	if err := failed(res.Cells[:nb]); err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	if err := failed(res.Cells[nb:]); err != nil {
		return err
	}
	return firstErr(diff(&wantLog, &gotLog, 0), sameCells(&sim.Result{Cells: res.Cells[:nb]}, &sim.Result{Cells: res.Cells[nb:]}),
		SameCalls(want, got, params))
}

// replay is one battery replay.
type replay struct {
	trace     synth.Options
	samples   int
	budgets   []host.Budget
	blockRows int
}

func (r replay) String() string {
	return fmt.Sprintf("%d sample(s) × %d layer(s) × %d heads, prompt %d + %d, %d budgets",
		r.samples, r.trace.Layers, r.trace.Heads, r.trace.PromptLen, r.trace.GenLen, len(r.budgets))
}

// run replays one policy, recording it, and fails on the first failed row.
func (r replay) run(ctx context.Context, build func() (policies.Policy, error), fresh bool) (*sim.Result, *recording, error) {
	log := &recording{}
	res, err := r.replay(ctx, []sim.PolicySpec{{Name: "policy", AllowClairvoyant: true, New: record(build, log, fresh)}})
	if err == nil {
		err = failed(res.Cells)
	}
	return res, log, err
}

// replay runs on one thread, so that recorded sequences come in a fixed order.
func (r replay) replay(ctx context.Context, specs []sim.PolicySpec) (*sim.Result, error) {
	var sources []sim.Source
	for i := range r.samples {
		opts := r.trace
		opts.Sample = i
		tr, err := synth.New(opts)
		if err != nil {
			return nil, err
		}
		sources = append(sources, tr)
	}
	return sim.Replay(ctx, sources, specs, sim.Options{Budgets: r.budgets, Threads: 1, Seed: 3, BlockRows: r.blockRows})
}

func failed(cells []sim.Cell) error {
	for _, c := range cells {
		if c.Failed != "" {
			return fmt.Errorf("budget %s failed: %s", c.Budget, c.Failed)
		}
	}
	return nil
}

// sameCells compares rows, but for the policy's name and its timing.
func sameCells(want, got *sim.Result) error {
	if want == nil || got == nil {
		return nil // the replay's own error says why
	}
	if len(want.Cells) != len(got.Cells) {
		return fmt.Errorf("%d cells, want %d", len(got.Cells), len(want.Cells))
	}
	for i := range want.Cells {
		w, g := want.Cells[i], got.Cells[i]
		w.Policy, g.Policy, w.PolicyNs, g.PolicyNs, w.HostNs, g.HostNs = "", "", 0, 0, 0, 0
		if !reflect.DeepEqual(w, g) {
			return fmt.Errorf("budget %s: row %+v, want %+v", w.Budget, g.Metrics, w.Metrics)
		}
	}
	return nil
}

// checkPeak holds every row's peak resident entries per head to what its layouts
// allow: the budget, the slack and the new token, per head or, for a pool, per head
// on average, and for a model pool the largest layer share.
func checkPeak(res *sim.Result, log *recording) error {
	share := map[int]int{} // budget in tokens -> a model pool's largest layer share
	for _, s := range log.sequences {
		if len(s.division) > 0 {
			share[s.config.Budget] = max(share[s.config.Budget], slices.Max(s.division))
		}
	}
	allowed := map[int]int{} // budget in tokens -> most entries allowed
	for _, s := range log.sequences {
		if s.layout.Unbounded {
			return nil
		}
		base := s.config.Budget
		if s.layout.Pool == policies.PoolModel {
			base = (share[s.config.Budget] + s.config.Heads - 1) / s.config.Heads
		}
		n := base + s.layout.Slack + 1
		if s.layout.Compensation {
			n++
		}
		allowed[s.config.Budget] = max(allowed[s.config.Budget], n)
	}
	for _, c := range res.Cells {
		limit, ok := allowed[int(c.BudgetTokens)]
		if ok && c.PeakResident > float64(limit) {
			return fmt.Errorf("budget %s: peak resident %.0f, more than %d", c.Budget, c.PeakResident, limit)
		}
	}
	return nil
}

// referenceHost drives the policy through policytest's plain host.
func referenceHost(build func() (policies.Policy, error)) error {
	for i, budget := range []int{1, 5, 12, 30} {
		p, err := build()
		if err != nil {
			return err
		}
		// Vectors, so that a policy that asks for keys, values or queries gets them.
		seq := policytest.VectorSequence(3, 24, 40, 16, uint64(i+1))
		if _, err := policytest.Run(p, policies.Config{Layers: 1, Budget: budget, Seed: uint64(i)}, seq); err != nil {
			return fmt.Errorf("budget %d: %w", budget, err)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func paramsText(m map[string]any) string {
	if len(m) == 0 {
		return "{}"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, m[k]))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}
