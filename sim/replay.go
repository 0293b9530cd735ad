package sim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
	"github.com/kvsim/kvsim/sim/kvtrace"
)

// Source is one sample's trace: a kvtrace file (*kvtrace.Trace) or a synthetic trace
// generated in memory (*synth.Trace).
type Source interface {
	Name() string
	Meta() kvtrace.Meta
	// Read returns a layer tensor as float32 in [heads][tokens][headDim] order,
	// reusing dst.
	Read(kind kvtrace.Kind, layer int, dst []float32) ([]float32, error)
}

// PolicySpec is one row of the results: a named policy and how to make instances.
type PolicySpec struct {
	Name string
	New  func() (policies.Policy, error)
	// AllowClairvoyant lets the policy's layout be Clairvoyant: replay fills
	// Eviction.Future for it from the trace.
	AllowClairvoyant bool
	// Accounting is what a budget bounds for this policy.
	Accounting host.Accounting
}

// Options tune a replay.
type Options struct {
	Budgets []host.Budget
	TopK    int // default 8
	Seed    uint64
	// Threads is the number of workers; 0 means one per CPU.
	Threads int
	// BlockRows is the prefill block height; 0 means 64.
	BlockRows int
	// NoOutputError skips the output-error metric even when traces carry V.
	NoOutputError bool
	// Accounting labels the scenario's mode in the result; each PolicySpec carries
	// the mode it runs under.
	Accounting host.Accounting
	// Compare names the reference policy of the paired differences; "" for none.
	Compare string
	// Progress, if set, is called after each (sample, layer) job, from one goroutine
	// at a time.
	Progress func(done, total int)
}

type job struct{ sample, layer int }

// jobResult holds one job's per-instance stats, indexed [policy][budget].
type jobResult struct {
	stats      []instanceStats
	failed     []error
	budget     []int // the resolved budget B
	nominal    []int // the budget the policy was given
	stateBytes []int // declared policy state per head and resident token
	heads      int
	headDim    int
	perf       Perf
	err        error // a trace error: fatal for the whole replay
}

// Replay runs every policy at every budget over every layer of every source. A
// policy that fails marks its cells failed; other cells finish. Trace errors abort.
func Replay(ctx context.Context, sources []Source, specs []PolicySpec, opts Options) (*Result, error) {
	res, jobs, results, err := runJobs(ctx, sources, specs, opts, nil)
	if err != nil {
		return nil, err
	}
	fold(res, specs, opts, jobs, results)
	return res, nil
}

// fold turns the job results, in job order, into the result's cells.
func fold(res *Result, specs []PolicySpec, opts Options, jobs []job, results []jobResult) {
	merge(res, specs, opts, jobs, results)
	mergeSamples(res, specs, jobs, results)
	summarize(res)
}

// runJobs replays the (sample, layer) jobs of the samples keep accepts (all when
// keep is nil), in job order, and returns the result's header (every sample counts
// in it) for fold to fill.
func runJobs(ctx context.Context, sources []Source, specs []PolicySpec, opts Options, keep func(sample int) bool) (*Result, []job, []jobResult, error) {
	if len(sources) == 0 {
		return nil, nil, nil, errors.New("replay: no traces")
	}
	if len(specs) == 0 {
		return nil, nil, nil, errors.New("replay: no policies")
	}
	if len(opts.Budgets) == 0 {
		return nil, nil, nil, errors.New("replay: no budgets")
	}
	if opts.Compare != "" && !slices.ContainsFunc(specs, func(s PolicySpec) bool { return s.Name == opts.Compare }) {
		return nil, nil, nil, fmt.Errorf("replay: compare: no policy %q", opts.Compare)
	}
	for _, b := range opts.Budgets {
		if b.Tokens > host.MaxBudgetTokens || b.Tokens < 0 || !(b.Fraction >= 0 && b.Fraction <= 1) || (b.Tokens == 0) == (b.Fraction == 0) {
			return nil, nil, nil, fmt.Errorf("replay: budget %+v: want tokens in [1, %d] or a fraction in (0, 1]", b, host.MaxBudgetTokens)
		}
	}
	if opts.TopK <= 0 {
		opts.TopK = 8
	}
	if opts.BlockRows <= 0 {
		opts.BlockRows = defaultBlockRows
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}

	res := &Result{Samples: len(sources), TopK: opts.TopK, HasV: !opts.NoOutputError,
		Accounting: opts.Accounting.String(), Compare: opts.Compare, KVBytesPerValue: KVBytesPerValue}
	metas := make([]kvtrace.Meta, len(sources))
	var srcKinds []string
	for i, s := range sources {
		m := s.Meta()
		if m.Layers <= 0 || m.Heads <= 0 || m.HeadDim <= 0 || m.PromptLen <= 0 {
			return nil, nil, nil, fmt.Errorf("trace %s: empty shape", s.Name())
		}
		if i > 0 && m.Layers != metas[0].Layers {
			return nil, nil, nil, fmt.Errorf("trace %s: %d layers, but %s has %d", s.Name(), m.Layers, sources[0].Name(), metas[0].Layers)
		}
		metas[i] = m
		res.SampleNames = append(res.SampleNames, s.Name())
		res.HasV = res.HasV && m.HasV
		res.Prompt += float64(m.PromptLen) / float64(len(sources))
		res.Gen += float64(m.GenLen) / float64(len(sources))
		if !slices.Contains(srcKinds, m.Source) {
			srcKinds = append(srcKinds, m.Source)
		}
		if !slices.Contains(res.Models, m.Model) {
			res.Models = append(res.Models, m.Model)
		}
	}
	res.Source = strings.Join(srcKinds, ",")
	res.Layers = metas[0].Layers
	for _, s := range specs {
		res.Policies = append(res.Policies, s.Name)
	}
	for _, b := range opts.Budgets {
		res.Budgets = append(res.Budgets, b.String())
	}
	res.BudgetSpecs = opts.Budgets

	var jobs []job
	for s := range sources {
		if keep != nil && !keep(s) {
			continue
		}
		for l := 0; l < metas[s].Layers; l++ {
			jobs = append(jobs, job{s, l})
		}
	}
	results := make([]jobResult, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	var progressMu sync.Mutex
	done := 0
	pools := &divisions{}
	for w := 0; w < min(threads, len(jobs)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := newWorker(specs, opts, res.HasV, pools)
			defer wk.close()
			for i := range next {
				j := jobs[i]
				results[i] = wk.run(sources[j.sample], metas[j.sample], j.sample, j.layer)
				if opts.Progress != nil {
					progressMu.Lock()
					done++
					opts.Progress(done, len(jobs))
					progressMu.Unlock()
				}
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, nil, err
	}
	for _, r := range results {
		if r.err != nil {
			return nil, nil, nil, r.err
		}
	}
	return res, jobs, results, nil
}

// merge folds job results into cells in job order, which keeps sums bit-identical
// whatever the thread count.
func merge(res *Result, specs []PolicySpec, opts Options, jobs []job, results []jobResult) {
	nb := len(opts.Budgets)
	res.Cells = make([]Cell, len(specs)*nb)
	layers := res.Layers
	type acc struct {
		statSums
		evictions, nanos, budget float64
		hostNanos                float64
		layer                    []Metrics
		layerN                   []float64
	}
	accs := make([]acc, len(res.Cells))
	for i := range accs {
		accs[i].layer = make([]Metrics, layers)
		accs[i].layerN = make([]float64, layers)
	}
	for ji, r := range results {
		res.Perf.ScoreFLOP += r.perf.ScoreFLOP
		res.Perf.ScoreSeconds += r.perf.ScoreSeconds
		res.Perf.ReadSeconds += r.perf.ReadSeconds
		res.Perf.PolicySeconds += r.perf.PolicySeconds
		res.Perf.DecodeSteps += r.perf.DecodeSteps
		l := jobs[ji].layer
		for c := range accs {
			cell, a := &res.Cells[c], &accs[c]
			if r.failed[c] != nil {
				if cell.Failed == "" {
					cell.Failed = r.failed[c].Error()
				}
				continue
			}
			st := r.stats[c]
			a.add(st)
			a.evictions += st.evictions
			a.nanos += float64(st.policyTime.Nanoseconds())
			a.hostNanos += float64((st.cellTime - st.policyTime).Nanoseconds())
			a.layer[l].HitRate += st.hit
			a.layer[l].TopKHitRate += st.topk
			a.layer[l].OutputError += st.outErr
			a.layerN[l] += st.n
			if l == 0 {
				a.budget += float64(r.budget[c]) / float64(res.Samples)
			}
		}
	}
	heads := 0.0 // (layer, head) pairs over all samples
	for _, r := range results {
		heads += float64(r.heads)
	}
	for c := range accs {
		cell, a := &res.Cells[c], &accs[c]
		cell.Policy = specs[c/nb].Name
		cell.Budget = opts.Budgets[c%nb].String()
		cell.BudgetTokens = a.budget
		cell.Evictions = a.evictions / heads
		if cell.Failed != "" || a.n == 0 {
			continue
		}
		cell.HitRate = a.hit / a.n
		cell.TopKHitRate = a.topk / a.n
		if res.HasV {
			cell.OutputError = a.outErr / a.n
		}
		cell.PeakResident = float64(a.peak)
		cell.MeanResident = a.resident / a.n
		cell.PolicyNs = a.nanos / a.n
		cell.HostNs = max(0, a.hostNanos/a.n)
		cell.Layers = make([]Metrics, layers)
		for l := range cell.Layers {
			if n := a.layerN[l]; n > 0 {
				cell.Layers[l] = Metrics{HitRate: a.layer[l].HitRate / n, TopKHitRate: a.layer[l].TopKHitRate / n}
				if res.HasV {
					cell.Layers[l].OutputError = a.layer[l].OutputError / n
				}
			}
		}
	}
}
