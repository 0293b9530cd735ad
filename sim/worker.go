package sim

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// worker owns the buffers and policy instances of one goroutine.
type worker struct {
	specs     []PolicySpec
	opts      Options
	withV     bool
	data      layerData
	instances []instance // [policy][budget]
}

func newWorker(specs []PolicySpec, opts Options, withV bool, pools *divisions) *worker {
	w := &worker{specs: specs, opts: opts, withV: withV}
	w.instances = make([]instance, len(specs)*len(opts.Budgets))
	for i := range w.instances {
		w.instances[i].idx = i
		w.instances[i].pools = pools
		w.instances[i].spec = &specs[i/len(opts.Budgets)]
		w.instances[i].budget = opts.Budgets[i%len(opts.Budgets)]
	}
	return w
}

// run replays one (sample, layer) through every instance.
func (w *worker) run(src Source, meta kvtrace.Meta, sample, layer int) jobResult {
	n := len(w.instances)
	r := jobResult{stats: make([]instanceStats, n), failed: make([]error, n), budget: make([]int, n),
		nominal: make([]int, n), stateBytes: make([]int, n), heads: meta.Heads, headDim: meta.HeadDim}
	l := &w.data
	l.topKWant = min(w.opts.TopK, meta.Tokens()) // a row has at most Tokens() entries
	l.perf = Perf{}
	start := time.Now()
	if err := l.load(src, layer, meta, w.withV); err != nil {
		r.err = fmt.Errorf("trace %s: layer %d: %w", src.Name(), layer, err)
		return r
	}
	l.perf.ReadSeconds = time.Since(start).Seconds()
	l.computeDecode()

	// Start every instance. An unbounded policy ignores the budget, so only its first
	// budget runs and the others copy it.
	nb := len(w.opts.Budgets)
	live := make([]*instance, 0, n)
	searches := map[int]*meanSearch{}
	clairvoyant := false
	for i := range w.instances {
		in := &w.instances[i]
		in.sample = sample
		b := in.budget.TokensFor(meta.PromptLen)
		r.budget[i], r.nominal[i] = b, b
		cfg := policies.Config{Layer: layer, Layers: meta.Layers, Heads: meta.Heads, HeadDim: meta.HeadDim,
			PromptLen: meta.PromptLen, MaxLen: meta.Tokens(), Budget: b, Seed: host.Seed(w.opts.Seed, sample, layer)}
		if i%nb > 0 && w.instances[i-i%nb].layout.Unbounded && r.failed[i-i%nb] == nil {
			continue
		}
		if in.dead != nil {
			// A policy that failed once fails the cell; don't pay for it again
			// (a looping WASM guest costs its whole deadline each time).
			r.failed[i] = in.dead
			continue
		}
		var err error
		switch in.spec.Accounting {
		case host.Peak:
			r.nominal[i], err = in.startPeak(cfg)
		case host.Mean:
			err = in.start(cfg)
			if err == nil && !in.layout.Unbounded && l.gen > 0 {
				searches[i] = &meanSearch{target: b, max: meta.Tokens()}
				if guess := meanGuess(b, l.gen, in.layout); guess != b {
					cfg.Budget = guess
					err = in.start(cfg)
				}
			}
		default:
			err = in.start(cfg)
		}
		if err == nil && in.layout.Values {
			if err = l.needValues(src, layer, meta.HasV); err != nil {
				err = in.callError("init", 0, err)
			}
		}
		if err != nil {
			w.fail(&r, i, err)
			continue
		}
		if ts, ok := in.policy.(policies.TokenState); ok {
			r.stateBytes[i] = ts.TokenStateBytes()
		}
		clairvoyant = clairvoyant || in.layout.Clairvoyant
		live = append(live, in)
	}
	if clairvoyant {
		l.computeFuture()
	}
	w.pass(&r, l, meta, live)
	w.searchMean(&r, l, meta, searches)

	for i := range w.instances {
		in := &w.instances[i]
		first := i - i%nb
		if i != first && w.instances[first].layout.Unbounded && r.failed[first] == nil {
			r.stats[i], r.stateBytes[i] = r.stats[first], r.stateBytes[first]
			continue
		}
		if r.failed[i] == nil && searches[i] == nil {
			r.stats[i] = in.finish()
			l.perf.PolicySeconds += in.stats.policyTime.Seconds()
		}
	}
	l.perf.DecodeSteps = float64(meta.Heads * l.gen)
	r.perf = l.perf
	return r
}

// pass replays the layer through the live instances: prefill, compression, decode.
func (w *worker) pass(r *jobResult, l *layerData, meta kvtrace.Meta, live []*instance) {
	l.want(live)
	observers, source := forkPlan(live)
	for r0 := 0; r0 < meta.PromptLen; r0 += w.opts.BlockRows {
		a := l.prefillBlock(r0, min(w.opts.BlockRows, meta.PromptLen-r0))
		l.blockVectors(a)
		observers = w.each(r, observers, func(in *instance) error { return in.observePrefill(a) })
	}
	kept := live[:0]
	for _, in := range live {
		if r.failed[in.idx] != nil {
			continue // an observer that failed in prefill
		}
		if src := source[in]; src != nil {
			if err := r.failed[src.idx]; err != nil {
				// The prompt's observations are the same at every budget, so the
				// failure is this instance's too.
				w.fail(r, in.idx, err)
				continue
			}
			if err := in.forkFrom(src); err != nil {
				w.fail(r, in.idx, err)
				continue
			}
		}
		kept = append(kept, in)
	}
	live = w.each(r, kept, func(in *instance) error { return in.compress(l) })
	for g := 0; g < l.gen; g++ {
		t := meta.PromptLen + g
		live = w.each(r, live, func(in *instance) error { return in.startStep(l, t) })
		for h := range meta.Heads {
			// One clock reading per call: each ends one instance's time and starts
			// the next one's.
			last := time.Now()
			for _, in := range live {
				in.attend(l, h, t, g)
				now := time.Now()
				in.stats.cellTime += now.Sub(last)
				last = now
			}
		}
		live = w.each(r, live, func(in *instance) error { return in.endStep(l, t, g) })
	}
}

// forkPlan picks the instances that observe the prompt: of the live instances of one
// policy whose policy is a Forker, only the first, which the others fork from
// (source maps each of those to it); every other instance observes for itself.
func forkPlan(live []*instance) (observers []*instance, source map[*instance]*instance) {
	first := map[*PolicySpec]*instance{}
	for _, in := range live {
		if _, ok := in.policy.(policies.Forker); ok {
			if src := first[in.spec]; src != nil && src.sameSequence(in) {
				if source == nil {
					source = map[*instance]*instance{}
				}
				source[in] = src
				continue
			}
			if first[in.spec] == nil {
				first[in.spec] = in
			}
		}
		observers = append(observers, in)
	}
	return observers, source
}

// searchMean runs the Mean-accounting searches, every instance still searching in
// one pass per round, and leaves each instance's chosen stats and nominal budget in r.
func (w *worker) searchMean(r *jobResult, l *layerData, meta kvtrace.Meta, searches map[int]*meanSearch) {
	pending := slices.Sorted(maps.Keys(searches))
	for len(pending) > 0 {
		var next []int
		var live []*instance
		for _, i := range pending {
			in := &w.instances[i]
			if r.failed[i] != nil {
				continue
			}
			l.perf.PolicySeconds += in.stats.policyTime.Seconds()
			m := searches[i]
			b := m.record(in.cfg.Budget, in.finish())
			if b == 0 {
				nominal, st, err := m.result()
				if err != nil {
					w.fail(r, i, fmt.Errorf("policy %q: %w", in.spec.Name, err))
					continue
				}
				r.nominal[i], r.stats[i] = nominal, st
				continue
			}
			cfg := in.cfg
			cfg.Budget = b
			if err := in.start(cfg); err != nil {
				w.fail(r, i, err)
				continue
			}
			next = append(next, i)
			live = append(live, in)
		}
		if len(live) > 0 {
			w.pass(r, l, meta, live)
		}
		pending = next
	}
}

// each calls f on every live instance and drops the ones that fail.
func (w *worker) each(r *jobResult, live []*instance, f func(*instance) error) []*instance {
	kept := live[:0]
	for _, in := range live {
		start := time.Now()
		err := f(in)
		in.stats.cellTime += time.Since(start)
		if err != nil {
			w.fail(r, in.idx, err)
			continue
		}
		kept = append(kept, in)
	}
	return kept
}

// fail records err for instance i and discards its policy, whose state is now
// unknown; the worker's later jobs report the same failure for the cell.
func (w *worker) fail(r *jobResult, i int, err error) {
	r.failed[i] = err
	in := &w.instances[i]
	in.dead = err
	in.close()
}

// close releases every instance's policy.
func (w *worker) close() {
	for i := range w.instances {
		w.instances[i].close()
	}
}
