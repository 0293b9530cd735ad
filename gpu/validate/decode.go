// Package validate decodes with an eviction policy deciding evictions inside the
// model, so that what replay predicts from traces can be checked against real
// generations: the policy sees the attention of the evicted run itself, and what it
// evicts changes the tokens that follow.
//
// # Protocol
//
// Decode drives each layer's policy instance exactly as replay does (package sim),
// through the same host code (package policies/host):
// Init with the sequence's Config; the whole prompt, run with full attention, is
// observed as one prefill block; if the prompt is longer than the budget, one
// compression asks for P−Budget victims per head; then each decoded token enters the
// lowest free slot of every head, its attention over the resident slots (and the
// compensation slot, when the layout keeps one) is observed, and a head holding more
// than Budget+Slack tokens is asked for the excess (a budget pool: the pool's
// excess, host.Bound; a model pool is divided once, before decoding). Key, value and
// query vectors come from the backend (gpu.Want.QKV) and compact rows from the
// host's slot tables, for layouts that ask. The cache has policies.SlotWidth slots
// per head, the width replay gives the policy, and it never grows.
//
// Positions stay the tokens' original positions: OPT adds a learned absolute
// position embedding to each input, so a token's position is baked into its key and
// value; after eviction a query at position p sees fewer tokens, not renumbered ones.
//
// # The stage
//
// Besides decoding, the package is the validate stage's home: the samples' prompts
// (Samples), a cell's metrics (RunCell, Aggregate), whole runs (Run) and shard parts
// (RunPart, MergeParts), the resume state of finished cells (ReadState, AppendState,
// keyed by policy and budget value), and the results kvsim validate prints
// (Validation, finished with intervals, paired differences and the rank agreement
// with replay; Write renders them, Plot draws them). The [validate] table is parsed
// with the rest of the scenario by package scenario; the command line keeps flags
// and printing, and hands replay's hit rates in (RunOptions.Simulated).
package validate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/kvsim/kvsim/gpu"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
)

// Options configure one policy-in-the-loop decoding.
type Options struct {
	// Budget is the resident tokens per head once the prompt is compressed, or,
	// with Peak set, the most KV entries a head may hold while attending (as
	// replay's peak accounting: each layer's policy gets the largest nominal budget
	// whose layout stays within it, host.PeakBudget).
	Budget int
	Peak   bool
	// MaxNew is the most tokens to generate; with Force it must be len(Force).
	MaxNew int
	// IgnoreEOS keeps generating after the model predicts end-of-sequence.
	IgnoreEOS bool
	// Force, when set, is fed instead of the model's own predictions (teacher
	// forcing), so that NLL scores this continuation under eviction.
	Force []int32
	// Sample and Seed derive each layer's policy seed as replay does.
	Sample int
	Seed   uint64
	// Workers bounds how many layers' Observe calls a backend may run at once (see
	// gpu.Batch.ObserveConcurrency); 0 is GOMAXPROCS. Each layer's calls keep their
	// order, so the results do not depend on it.
	Workers int
}

// Decoding is the outcome of one policy-in-the-loop decoding.
type Decoding struct {
	// Tokens are the generated tokens (Force, when forcing).
	Tokens []int32
	// EOS reports that generation stopped at an end-of-sequence prediction.
	EOS bool
	// NLL is the mean −log p of Tokens, each under the logits that predicted it.
	NLL float64
	// Decode is the time spent on generated tokens, eviction included. Of it,
	// PolicyTime is the wall-clock time while a policy call runs (Observe or Evict,
	// of any layer: calls that run at once count once), and SlotTime goes to slot
	// bookkeeping: placing tokens, counting residents, checking and applying
	// victims. Together they are what eviction adds to decoding.
	Decode, PolicyTime, SlotTime time.Duration
	// PeakEntries is the most KV entries (tokens, plus the compensation slot when
	// the cache keeps one) held in all layers and heads together while a decoded
	// token attends, as replay's peak counts them.
	PeakEntries int
	// PeakBytes is PeakEntries in float32 keys and values.
	PeakBytes int64
	// Capacity is the slots per (layer, head) the cache was allocated with.
	Capacity int
	// NominalBudget is the budget the policies were given, averaged over layers:
	// Options.Budget, or less under peak accounting.
	NominalBudget float64
	// Evictions counts victims over all layers and heads.
	Evictions int
}

// layerPolicy is one layer's policy instance and its eviction request.
type layerPolicy struct {
	policy policies.Policy
	layout policies.Layout
	cfg    policies.Config
	bound  host.Bound
	evict  policies.Eviction
	attn   policies.Attention
	inputs policies.Attention // the vectors and compact rows the layout asks for
	needs  bool               // some head, or the pool, must give victims now
}

// Decode runs prompt through the engine, then decodes greedily (or feeds o.Force)
// with one instance of newPolicy per layer deciding evictions. Clairvoyant policies
// are refused: only replay knows the future.
func Decode(ctx context.Context, e *gpu.Engine, prompt []int32, newPolicy func() (policies.Policy, error), o Options) (*Decoding, error) {
	if len(prompt) == 0 {
		return nil, errors.New("validate: empty prompt")
	}
	if o.Force != nil && o.MaxNew != len(o.Force) {
		return nil, fmt.Errorf("validate: MaxNew %d with %d forced tokens", o.MaxNew, len(o.Force))
	}
	if o.MaxNew < 0 || o.Budget < 1 {
		return nil, fmt.Errorf("validate: MaxNew %d, budget %d", o.MaxNew, o.Budget)
	}
	cfg := e.Config()
	L, H, P := cfg.NumHiddenLayers, cfg.NumAttentionHeads, len(prompt)
	T := P + o.MaxNew
	layers := make([]*layerPolicy, L)
	defer func() {
		for _, lp := range layers {
			if lp != nil {
				host.Close(lp.policy)
			}
		}
	}()
	capacity, compensation := 0, false
	for l := range layers {
		lp := &layerPolicy{cfg: policies.Config{Layer: l, Layers: L, Heads: H, HeadDim: cfg.HiddenSize / H,
			PromptLen: P, MaxLen: T, Budget: o.Budget, Seed: host.Seed(o.Seed, o.Sample, l)}}
		layers[l] = lp
		p, err := newPolicy()
		if err != nil {
			return nil, fmt.Errorf("validate: layer %d: %w", l, err)
		}
		lp.policy = p
		if err := host.Call(func() (err error) { lp.layout, err = p.Init(lp.cfg); return err }); err != nil {
			return nil, fmt.Errorf("validate: init at layer %d: %w", l, err)
		}
		if lp.layout.Clairvoyant {
			return nil, fmt.Errorf("validate: %w: they need the future, which only replay has", host.ErrClairvoyant)
		}
		if o.Peak && !lp.layout.Unbounded {
			if err := lp.fitPeak(o.Budget, o.MaxNew); err != nil {
				return nil, fmt.Errorf("validate: layer %d: %w", l, err)
			}
		}
		if err := host.CheckLayout(lp.layout, false); err != nil {
			return nil, fmt.Errorf("validate: init at layer %d: %w", l, err)
		}
		capacity = max(capacity, policies.SlotWidth(lp.cfg, lp.layout))
		compensation = compensation || lp.layout.Compensation
	}
	var division host.Division // a model pool's, shared by the layers
	for l, lp := range layers {
		share := 0
		if lp.layout.Pool == policies.PoolModel {
			budgets, err := host.LayerBudgets(lp.policy)
			if err == nil {
				share, err = division.Share(lp.cfg, func(c policies.Config, entries []int) error {
					return host.Call(func() error { return budgets(c, entries) })
				})
			}
			if err != nil {
				return nil, fmt.Errorf("validate: init at layer %d: %w", l, err)
			}
		}
		lp.bound = host.NewBound(lp.cfg, lp.layout, share)
	}
	seq, err := e.NewSequence(capacity, compensation)
	if err != nil {
		return nil, fmt.Errorf("validate: %w", err)
	}
	defer seq.Close()
	for _, lp := range layers {
		lp.evict = policies.Eviction{Heads: H, Stride: capacity, Need: make([]int32, H),
			Count: make([]int32, H), Victims: make([]int32, H*capacity)}
		if lp.layout.Compensation {
			lp.evict.Weights = make([]float32, H*capacity)
		}
	}

	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var policyClock busyClock
	d := &Decoding{Capacity: capacity}
	for _, lp := range layers {
		d.NominalBudget += float64(lp.cfg.Budget) / float64(L)
	}
	perEntry := int64(2 * 4 * (cfg.HiddenSize / H))
	noComp := make([]float32, H) // the Comp policies read when the cache keeps no compensation slot
	observe := func(v *gpu.LayerView) error {
		lp := layers[v.Layer]
		a := &lp.attn
		*a = policies.Attention{Phase: policies.Decode, Pos: int(v.Positions[0]), Rows: v.Rows, Heads: v.Heads,
			Stride: v.Capacity, Probs: v.Probs}
		if v.Positions[0] < int32(P) {
			a.Phase = policies.Prefill
		} else {
			a.Slot = v.Slots
			a.Comp = v.Comp
			if a.Comp == nil {
				a.Comp = noComp
			}
		}
		lp.serve(a, v, seq.Slots(v.Layer))
		if a.Phase == policies.Decode {
			policyClock.begin()
			defer policyClock.end()
		}
		if err := host.Call(func() error { return lp.policy.Observe(a) }); err != nil {
			return fmt.Errorf("observe %s at layer %d, position %d: %w", a.Phase, v.Layer, a.Pos, err)
		}
		return nil
	}
	want := gpu.Want{Probs: true}
	for _, lp := range layers {
		want.QKV = want.QKV || lp.layout.Keys || lp.layout.Values || lp.layout.Queries
	}
	logits := make([]float32, cfg.VocabSize)

	if err := seq.Feed(prompt, gpu.Outputs{Logits: logits, Want: want, Observe: observe}); err != nil {
		return nil, fmt.Errorf("validate: prompt: %w", err)
	}
	for l, lp := range layers {
		lp.needs = lp.bound.Need(&lp.evict, seq.Slots(l).Tables(), policies.Prefill)
	}
	if err := evictLayers(seq, layers, policies.Prefill, P-1, &policyClock, d); err != nil {
		return nil, err
	}
	start, slotsBefore := time.Now(), seq.SlotTime()
	var nll float64
	for len(d.Tokens) < o.MaxNew {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var next int32
		if o.Force != nil {
			next = o.Force[len(d.Tokens)]
			if next < 0 || int(next) >= cfg.VocabSize {
				return nil, fmt.Errorf("validate: forced token %d is outside the vocabulary of %d", next, cfg.VocabSize)
			}
		} else {
			var err error
			if next, err = gpu.Argmax(logits); err != nil {
				return nil, fmt.Errorf("validate: position %d: %w", seq.Len()-1, err)
			}
			if next == int32(cfg.EOSTokenID) && !o.IgnoreEOS {
				d.EOS = true
				break
			}
		}
		nll += negLogProb(logits, next)
		d.Tokens = append(d.Tokens, next)
		if err := seq.Feed([]int32{next}, gpu.Outputs{Logits: logits, Want: want, Observe: observe, ObserveConcurrency: workers}); err != nil {
			return nil, fmt.Errorf("validate: position %d: %w", seq.Len()-1, err)
		}
		t := seq.Len() - 1
		scan := time.Now()
		entries := 0
		for l, lp := range layers {
			tables := seq.Slots(l).Tables()
			entries += host.Resident(tables)
			if seq.KV().Compensation() {
				entries += H
			}
			lp.needs = lp.bound.Need(&lp.evict, tables, policies.Decode)
		}
		d.PeakEntries = max(d.PeakEntries, entries)
		d.SlotTime += time.Since(scan)
		if err := evictLayers(seq, layers, policies.Decode, t, &policyClock, d); err != nil {
			return nil, err
		}
		scan = time.Now()
		for l, lp := range layers {
			if err := lp.bound.CheckHeld(seq.Slots(l).Tables()); err != nil {
				return nil, fmt.Errorf("validate: layer %d, position %d: %w", l, t, err)
			}
		}
		d.SlotTime += time.Since(scan)
	}
	d.Decode = time.Since(start)
	d.PolicyTime = policyClock.total
	d.SlotTime += seq.SlotTime() - slotsBefore
	d.PeakBytes = int64(d.PeakEntries) * perEntry
	if len(d.Tokens) > 0 {
		d.NLL = nll / float64(len(d.Tokens))
	}
	return d, nil
}

// evictLayers asks the policy of every layer that needs victims for them, then
// checks and applies the victims.
func evictLayers(seq *gpu.Sequence, layers []*layerPolicy, phase policies.Phase, pos int, clock *busyClock, d *Decoding) error {
	for l, lp := range layers {
		if !lp.needs {
			continue
		}
		e := &lp.evict
		e.Phase, e.Pos = phase, pos
		clear(e.Count)
		if phase == policies.Decode {
			clock.begin()
		}
		err := host.Call(func() error { return lp.policy.Evict(e) })
		if phase == policies.Decode {
			clock.end()
		}
		if err != nil {
			return fmt.Errorf("validate: evict at layer %d, position %d: %w", l, pos, err)
		}
		if err := seq.Evict(l, e); err != nil {
			if lp.bound.Pooled() {
				err = fmt.Errorf("%w (the %v)", err, lp.bound)
			}
			return fmt.Errorf("validate: policy's victims at position %d: %w", pos, err)
		}
		for h := range e.Heads {
			d.Evictions += int(e.Count[h])
		}
	}
	return nil
}

// busyClock measures the wall-clock time during which at least one policy call
// runs: the time policies add to decoding, however many run at once.
type busyClock struct {
	mu     sync.Mutex
	active int
	since  time.Time
	total  time.Duration
}

func (c *busyClock) begin() {
	c.mu.Lock()
	if c.active == 0 {
		c.since = time.Now()
	}
	c.active++
	c.mu.Unlock()
}

func (c *busyClock) end() {
	c.mu.Lock()
	if c.active--; c.active == 0 {
		c.total += time.Since(c.since)
	}
	c.mu.Unlock()
}

// fitPeak restarts the layer's policy at the largest nominal budget whose layout
// keeps a head within limit entries while attending over gen decode steps.
func (lp *layerPolicy) fitPeak(limit, gen int) error {
	probe := lp.cfg
	b, err := host.PeakBudget(limit, lp.cfg.PromptLen, gen, func(b int) (layout policies.Layout, err error) {
		probe.Budget = b
		err = host.Call(func() (err error) { layout, err = lp.policy.Init(probe); return err })
		return layout, err
	})
	if err != nil {
		return err
	}
	lp.cfg.Budget = b
	return host.Call(func() (err error) { lp.layout, err = lp.policy.Init(lp.cfg); return err })
}

// negLogProb is −log softmax(logits)[token], computed stably in float64.
func negLogProb(logits []float32, token int32) float64 {
	m := math.Inf(-1)
	for _, x := range logits {
		m = math.Max(m, float64(x))
	}
	var sum float64
	for _, x := range logits {
		sum += math.Exp(float64(x) - m)
	}
	return m + math.Log(sum) - float64(logits[token])
}
