package sim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/kernel"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
)

// instance is one (policy, budget) state on the layer a job is replaying: the policy
// and the host-side slot tables it is judged by.
type instance struct {
	idx    int // position in the worker's [policy][budget] table
	spec   *PolicySpec
	budget host.Budget
	policy policies.Policy
	dead   error // set once the policy failed in this worker
	// cap is the most entries a head may hold while attending (Peak accounting);
	// 0 checks nothing.
	cap int

	cfg    policies.Config
	layout policies.Layout
	bound  host.Bound
	width  int
	// sample and pools find the division of a model pool (PoolModel layouts).
	sample int
	pools  *divisions

	tables   []policies.SlotTable // one per head
	resident [][]uint64           // resident[h]: bit p set while head h holds position p
	gather   []float32            // scratch: the resident logits of one head
	comp     []host.Comp
	headPeak []int // per head: the most entries held while attending
	// stepEntries sums the entries the heads hold at the current decode step.
	stepEntries int
	poolPeak    int // pooled layouts: the most entries the layer held while attending

	prefill policies.Attention // the shared prefill block, as this policy's layout asks
	attn    policies.Attention
	evict   policies.Eviction

	stats instanceStats
}

// instanceStats are the sums a job contributes to a cell.
type instanceStats struct {
	hit, topk, outErr float64 // sums over (step, head)
	n                 float64 // (step, head) pairs
	evictions         float64 // victims, summed over heads
	residentSum       float64 // resident entries summed over (step, head)
	peak              int
	headPeakSum       int // each head's peak entries, summed over heads
	policyTime        time.Duration
	// cellTime is the time of this instance's prefill, compression and decode
	// steps, policy calls included: less policyTime, what the host spends on the
	// cell alone (the work shared by every cell is not in it).
	cellTime time.Duration
}

// close releases the policy when it holds resources (a WASM instance does).
func (in *instance) close() {
	host.Close(in.policy)
	in.policy = nil
}

// callError names the policy, the call, the layer and the step.
func (in *instance) callError(call string, pos int, err error) error {
	return fmt.Errorf("policy %q: %s at layer %d, position %d: %w", in.spec.Name, call, in.cfg.Layer, pos, err)
}

// guard runs one policy call through host.Call, timing it when timed is set (every
// call but Init, which the policy-time column leaves out).
func (in *instance) guard(timed bool, f func() error) error {
	start := time.Now()
	err := host.Call(f)
	if timed {
		in.stats.policyTime += time.Since(start)
	}
	return err
}

// initLayout makes the policy if needed and starts it on cfg, returning its layout.
func (in *instance) initLayout(cfg policies.Config) (policies.Layout, error) {
	in.cfg = cfg
	if in.policy == nil {
		p, err := in.spec.New()
		if err != nil {
			return policies.Layout{}, fmt.Errorf("policy %q: %w", in.spec.Name, err)
		}
		in.policy = p
	}
	var layout policies.Layout
	err := in.guard(false, func() (err error) { layout, err = in.policy.Init(cfg); return err })
	if err != nil {
		return layout, in.callError("init", 0, err)
	}
	return layout, nil
}

// startPeak starts the instance at the largest nominal budget whose layout keeps every
// head within cfg.Budget entries while attending (Peak accounting), and returns it.
// An unbounded policy ignores budgets and starts as is.
func (in *instance) startPeak(cfg policies.Config) (int, error) {
	layout, err := in.initLayout(cfg)
	if err != nil {
		return 0, err
	}
	if layout.Unbounded {
		return cfg.Budget, in.start(cfg)
	}
	probe := cfg
	b, err := host.PeakBudget(cfg.Budget, cfg.PromptLen, cfg.MaxLen-cfg.PromptLen, func(b int) (policies.Layout, error) {
		probe.Budget = b
		return in.initLayout(probe)
	})
	if err != nil {
		return 0, fmt.Errorf("policy %q: %w", in.spec.Name, err)
	}
	cap := cfg.Budget
	cfg.Budget = b
	if err := in.start(cfg); err != nil {
		return 0, err
	}
	in.cap = cap
	return b, nil
}

// start initializes the instance for a new (sample, layer).
func (in *instance) start(cfg policies.Config) error {
	in.stats = instanceStats{}
	in.cap = 0
	layout, err := in.initLayout(cfg)
	if err != nil {
		return err
	}
	if err := host.CheckLayout(layout, in.spec.AllowClairvoyant); err != nil {
		return in.callError("init", 0, err)
	}
	in.layout = layout
	share := 0
	if layout.Pool == policies.PoolModel {
		if share, err = in.share(cfg); err != nil {
			return err
		}
	}
	in.bound = host.NewBound(cfg, layout, share)
	P, T, H := cfg.PromptLen, cfg.MaxLen, cfg.Heads
	in.width = policies.SlotWidth(cfg, layout)
	w := in.width
	in.tables = buf.Grow(in.tables, H)
	in.resident = buf.Grow2(in.resident, H, (T+63)/64)
	in.gather = buf.Grow(in.gather, w)
	in.comp = buf.Grow(in.comp, H)
	in.headPeak = buf.Grow(in.headPeak, H)
	clear(in.headPeak)
	in.poolPeak = 0
	for h := 0; h < H; h++ {
		in.tables[h].Reset(w, P)
		clear(in.resident[h])
		for p := range P {
			in.resident[h][p/64] |= 1 << (p % 64)
		}
		in.comp[h].Reset(cfg.HeadDim)
	}
	live, lens := in.attn.Live[:cap(in.attn.Live)], in.attn.Len[:cap(in.attn.Len)] // memory to reuse
	in.attn = policies.Attention{Phase: policies.Decode, Rows: 1, Heads: H, Stride: w,
		Probs: buf.Grow(in.attn.Probs, H*w), Slot: buf.Grow(in.attn.Slot, H), Comp: buf.Grow(in.attn.Comp, H)}
	clear(in.attn.Probs) // free slots read as 0; attend writes only resident ones
	if layout.Compact {
		in.attn.Live, in.attn.Len = buf.Grow(live, H*w), buf.Grow(lens, H)
	}
	in.evict = policies.Eviction{Heads: H, Stride: w,
		Need: buf.Grow(in.evict.Need, H), Count: buf.Grow(in.evict.Count, H), Victims: buf.Grow(in.evict.Victims, H*w)}
	if layout.Compensation {
		in.evict.Weights = buf.Grow(in.evict.Weights, H*w)
	}
	if layout.Clairvoyant {
		in.evict.Future = buf.Grow(in.evict.Future, H*w)
		clear(in.evict.Future) // free slots read as 0; fillFuture writes only resident ones
	}
	return nil
}

// finish returns the stats of the sequence the instance has replayed.
func (in *instance) finish() instanceStats {
	st := in.stats
	st.headPeakSum = in.poolPeak
	if !in.bound.Pooled() {
		for _, p := range in.headPeak {
			st.headPeakSum += p
		}
	}
	return st
}

// share divides the model pool of this (cell, sample) once, with whichever layer's
// instance asks first, and returns this layer's entries.
func (in *instance) share(cfg policies.Config) (int, error) {
	if in.spec.Accounting == host.Mean {
		return 0, in.callError("init", 0, errors.New("mean accounting cannot serve a model pool: its per-layer search would undo the division among layers (use peak or nominal)"))
	}
	budgets, err := host.LayerBudgets(in.policy)
	if err != nil {
		return 0, in.callError("init", 0, err)
	}
	n, err := in.pools.get(in.idx, in.sample, cfg.Layers).Share(cfg, func(c policies.Config, entries []int) error {
		return in.guard(true, func() error { return budgets(c, entries) })
	})
	if err != nil {
		return 0, in.callError("init", 0, err)
	}
	return n, nil
}

// observePrefill passes a shared prefill block to the policy, with the vectors its
// layout asks for and no others.
func (in *instance) observePrefill(a *policies.Attention) error {
	in.prefill = *a
	in.prefill.Keys, in.prefill.Values, in.prefill.Queries = pick(in.layout, a)
	return in.observe(&in.prefill)
}

// sameSequence reports whether o replays the same sequence and layer as in, at any
// budget, and is shown the same prompt vectors: then o may fork from in after the
// prompt. (The rest of a layout, its slack for one, may vary with the budget.)
func (in *instance) sameSequence(o *instance) bool {
	a, b := in.cfg, o.cfg
	a.Budget, b.Budget = 0, 0
	x, y := in.layout, o.layout
	return a == b && x.Keys == y.Keys && x.Values == y.Values && x.Queries == y.Queries
}

// forkFrom gives the policy src's state after the prompt, in place of observing it
// (policies.Forker); the call counts as this instance's policy time.
func (in *instance) forkFrom(src *instance) error {
	f := src.policy.(policies.Forker)
	start := time.Now()
	err := in.guard(true, func() error { return f.ForkTo(in.policy) })
	in.stats.cellTime += time.Since(start)
	if err != nil {
		return in.callError("fork", in.cfg.PromptLen-1, err)
	}
	return nil
}

// pick returns a's keys, values and queries where the layout asks for them, nil
// elsewhere.
func pick(layout policies.Layout, a *policies.Attention) (k, v, q []float32) {
	if layout.Keys {
		k = a.Keys
	}
	if layout.Values {
		v = a.Values
	}
	if layout.Queries {
		q = a.Queries
	}
	return k, v, q
}

// observe passes an attention batch to the policy.
func (in *instance) observe(a *policies.Attention) error {
	if err := in.guard(true, func() error { return in.policy.Observe(a) }); err != nil {
		return in.callError("observe "+a.Phase.String(), a.Pos, err)
	}
	return nil
}

// compress asks for the victims that bring the prompt down to the budget.
func (in *instance) compress(l *layerData) error {
	if !in.bound.Need(&in.evict, in.tables, policies.Prefill) {
		return nil
	}
	return in.runEviction(l, policies.Prefill, in.cfg.PromptLen-1, -1)
}

// runEviction asks the policy for victims (Need or PoolNeed already set), checks them,
// and applies them. step is the decode row whose future Future should exclude (-1: all of it).
func (in *instance) runEviction(l *layerData, phase policies.Phase, pos, step int) error {
	e := &in.evict
	e.Phase, e.Pos = phase, pos
	clear(e.Count)
	if e.Future != nil {
		l.fillFuture(in, step)
	}
	if err := in.guard(true, func() error { return in.policy.Evict(e) }); err != nil {
		return in.callError("evict", pos, err)
	}
	if err := host.CheckVictims(e, in.tables, in.layout.Compensation); err != nil {
		if in.bound.Pooled() {
			err = fmt.Errorf("%w (the %v)", err, in.bound)
		}
		return in.callError("evict", pos, err)
	}
	compact := in.layout.Compact
	for h := 0; h < in.cfg.Heads; h++ {
		n := int(e.Count[h])
		table := &in.tables[h]
		for i, s := range e.Victims[h*e.Stride : h*e.Stride+n] {
			p := table.Remove(s)
			if in.layout.Compensation {
				in.comp[h].Merge(float64(e.Weights[h*e.Stride+i]), l.k.vec(h, int(p)), l.v.vec(h, int(p)))
			}
			in.resident[h][p/64] &^= 1 << (p % 64)
			if !compact {
				in.attn.Probs[h*in.width+int(s)] = 0
			}
			if e.Future != nil {
				e.Future[h*e.Stride+int(s)] = 0
			}
		}
		in.stats.evictions += float64(n)
	}
	return nil
}

// startStep starts step t for this instance: the new token enters each head. The
// heads then attend (attend, called head by head across the instances), and
// endStep ends the step.
func (in *instance) startStep(l *layerData, t int) error {
	H := in.cfg.Heads
	a := &in.attn
	a.Pos = t
	for h := 0; h < H; h++ {
		free := in.tables[h].Enter(int32(t))
		if free < 0 {
			return in.callError("decode", t, fmt.Errorf("head %d: no free slot", h))
		}
		in.resident[h][t/64] |= 1 << (t % 64)
		a.Slot[h] = free
	}
	if in.cap > 0 {
		if err := in.bound.CheckCap(in.tables, in.layout.Compensation, in.cap); err != nil {
			return in.callError("decode", t, err)
		}
	}
	if in.layout.Keys || in.layout.Values || in.layout.Queries {
		a.HeadDim = in.cfg.HeadDim
		a.Keys, a.Values, a.Queries = pick(in.layout, l.decodeVectors(t))
	}
	in.stepEntries = 0
	return nil
}

// endStep ends step t (row g of the decode block) once every head has attended: the
// policy observes the step's attention and evicts if the heads are over budget.
func (in *instance) endStep(l *layerData, t, g int) error {
	if in.bound.Pooled() {
		// A pool's entries per head are the layer's divided by its heads.
		H := in.cfg.Heads
		in.poolPeak = max(in.poolPeak, in.stepEntries)
		in.stats.peak = max(in.stats.peak, (in.stepEntries+H-1)/H)
	}
	if err := in.observe(&in.attn); err != nil {
		return err
	}
	if in.bound.Need(&in.evict, in.tables, policies.Decode) {
		return in.runEviction(l, policies.Decode, t, g)
	}
	return nil
}

// softmax writes into e the attention of step t's query over head h's resident
// positions pos and returns the probability on the compensation slot (0 when it is
// empty).
func (in *instance) softmax(l *layerData, h, t, g int, pos []int32, e []float32) float64 {
	logits := l.decodeLogits(h, g)
	c := &in.comp[h]
	for i, p := range pos {
		e[i] = logits[p]
	}
	m := float64(kernel.Max(e))
	var compLogit float64
	if c.Weight > 0 {
		q := l.q.vec(h, t)
		for i, x := range c.K {
			compLogit += float64(q[i]) * x
		}
		m = math.Max(m, compLogit)
	}
	for i := range e {
		e[i] -= float32(m)
	}
	kernel.Exp(e)
	var sum float64
	for _, x := range e {
		sum += float64(x)
	}
	var compProb float64
	if c.Weight > 0 {
		x := math.Exp(compLogit - m)
		sum += x
		compProb = x / sum
	}
	kernel.Scale(float32(1/sum), e)
	return compProb
}

// attend computes head h's counterfactual attention for step t into the instance's
// decode row (by slot, free slots 0; or compact: the live slots in table order),
// scores it against the full cache and counts the entries the head holds. Replay
// calls it head by head across the instances, so that a head's values, read by
// every instance's output error, stay in cache.
func (in *instance) attend(l *layerData, h, t, g int) {
	table := &in.tables[h]
	live, pos := table.Live(), table.LivePositions()
	c := &in.comp[h]
	hasComp := c.Weight > 0
	e := in.gather[:len(live)]
	// Holding every token and no compensation, the head attends as the full cache
	// does: its row is the layer's full-cache row, and its output error is 0.
	whole := !hasComp && len(live) == t+1
	var compProb float64
	if whole {
		full := l.decodeProbs(h, g)
		for i, p := range pos {
			e[i] = full[p]
		}
	} else {
		compProb = in.softmax(l, h, t, g, pos, e)
	}
	w := in.width
	if in.layout.Compact {
		copy(in.attn.Probs[h*w:], e)
		copy(in.attn.Live[h*w:], live)
		in.attn.Len[h] = int32(len(live))
	} else {
		probs := in.attn.Probs[h*w : (h+1)*w]
		for i, s := range live {
			probs[s] = e[i]
		}
	}
	in.attn.Comp[h] = float32(compProb)

	// Scores against the full cache.
	full := l.decodeProbs(h, g)
	hit := 0.0
	for _, p := range pos {
		hit += float64(full[p])
	}
	st := &in.stats
	st.hit += hit
	top := l.topK(h, g)
	kept := 0
	held := in.resident[h]
	for _, p := range top {
		kept += int(held[p/64] >> (p % 64) & 1)
	}
	st.topk += float64(kept) / float64(len(top))
	entries := len(live)
	if hasComp {
		entries++
	}
	st.residentSum += float64(entries)
	if !in.bound.Pooled() {
		st.peak = max(st.peak, entries)
		in.headPeak[h] = max(in.headPeak[h], entries)
	}
	st.n++
	in.stepEntries += entries

	if l.outErr && !whole {
		out := l.scratch[:l.headDim]
		l.residentOutput(h, pos, e, out)
		ref := l.fullOutput(h, g)
		var diff, norm float64
		for i, x := range ref {
			y := float64(out[i])
			if hasComp {
				y += compProb * c.V[i]
			}
			diff += (y - float64(x)) * (y - float64(x))
			norm += float64(x) * float64(x)
		}
		if norm > 0 {
			st.outErr += math.Sqrt(diff / norm)
		}
	}
}
