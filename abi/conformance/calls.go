package conformance

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/kvsim/kvsim/policies"
)

// The call-by-call host: a small host of its own that serves everything contract 2.0
// offers (key, value and query vectors, compact decode rows, layer and model pools,
// layer budgets), with attention computed from those vectors, so that a policy that
// uses them can be checked, and held to a reference, without a replay host. It drives
// each policy instance through a few layers of one sequence per budget, reusing the
// instance across layers, and checks every answer the way the replay host does.
//
// It has as many layers and heads as the replay battery's main trace, so that params
// tied to the model's shape (a mask of heads, a budget per layer) fit both.
var (
	callShape   = callTrace{Layers: mainTrace.Layers, Heads: mainTrace.Heads, HeadDim: 8, PromptLen: 24, MaxLen: 40, Seed: 11}
	callBudgets = []int{1, 3, 8, 20, 30}
)

// callTrace is the synthetic sequence: random vectors, attention their softmax.
type callTrace struct {
	Layers, Heads, HeadDim, PromptLen, MaxLen int
	Seed                                      uint64
}

// vectors are one layer's keys, values and queries: [h][t][d] flattened.
type vectors struct{ keys, values, queries []float32 }

func (c callTrace) layer(l int) vectors {
	r := rand.New(rand.NewPCG(c.Seed, uint64(l)))
	n := c.Heads * c.MaxLen * c.HeadDim
	v := vectors{make([]float32, n), make([]float32, n), make([]float32, n)}
	for i := range n {
		v.keys[i], v.values[i], v.queries[i] = float32(r.NormFloat64()), float32(r.NormFloat64()), float32(r.NormFloat64())
	}
	// A sink at token 0 of every head, so that policies have something to rank.
	for h := range c.Heads {
		for d := range c.HeadDim {
			v.keys[(h*c.MaxLen)*c.HeadDim+d] *= 3
		}
	}
	// Queries come scaled by HeadDim^-1/2, as hosts pass them: q·k is the logit.
	scale := float32(1 / math.Sqrt(float64(c.HeadDim)))
	for i := range v.queries {
		v.queries[i] *= scale
	}
	return v
}

// logit is head h's attention logit of query t on token j.
func (c callTrace) logit(v vectors, h, t, j int) float64 {
	q := v.queries[(h*c.MaxLen+t)*c.HeadDim:][:c.HeadDim]
	k := v.keys[(h*c.MaxLen+j)*c.HeadDim:][:c.HeadDim]
	var s float64
	for d := range q {
		s += float64(q[d]) * float64(k[d])
	}
	return s
}

// callEviction is one Evict answer, for comparing two policies.
type callEviction struct {
	phase   policies.Phase
	pos     int
	victims [][]int32
	weights [][]float32
}

// callRun is what one policy did on one (budget, layer) sequence.
type callRun struct {
	layout    policies.Layout
	budgets   []int // LayerBudgets' entries, for a model pool
	evictions []callEviction
}

// runCalls drives a policy through every layer at budget, reusing one instance, and
// returns each layer's run. A policy whose layout is clairvoyant gets no run.
func runCalls(build func() (policies.Policy, error), tr callTrace, budget int) ([]*callRun, error) {
	p, err := build()
	if err != nil {
		return nil, err
	}
	var runs []*callRun
	for l := range tr.Layers {
		run, err := runLayer(p, tr, l, budget)
		if run != nil {
			runs = append(runs, run)
		}
		if err != nil {
			return runs, fmt.Errorf("budget %d, layer %d: %w", budget, l, err)
		}
	}
	return runs, nil
}

// errClairvoyant: the call-by-call host cannot serve future attention.
var errClairvoyant = errors.New("clairvoyant: only replay can serve it")

// callHost serves one (budget, layer) sequence to one policy instance.
type callHost struct {
	p      policies.Policy
	tr     callTrace
	cfg    policies.Config
	layout policies.Layout
	run    *callRun
	vec    vectors
	// capacity is what the pool holds, slack not counted, and slack the pool's
	// slack: per head, or for all heads together when pooled.
	capacity, slack, width int
	pooled                 bool
	pos                    [][]int // head -> slot -> position, -1 when free
}

func runLayer(p policies.Policy, tr callTrace, l, budget int) (*callRun, error) {
	c := &callHost{p: p, tr: tr, vec: tr.layer(l), cfg: policies.Config{Layer: l, Layers: tr.Layers, Heads: tr.Heads,
		HeadDim: tr.HeadDim, PromptLen: tr.PromptLen, MaxLen: tr.MaxLen, Budget: budget, Seed: tr.Seed + uint64(l)}}
	layout, err := p.Init(c.cfg)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if layout.Clairvoyant {
		return nil, errClairvoyant
	}
	c.layout, c.run = layout, &callRun{layout: layout}
	if err := c.pool(); err != nil {
		return c.run, err
	}
	c.width = policies.SlotWidth(c.cfg, layout)
	c.pos = make([][]int, tr.Heads)
	for h := range c.pos {
		c.pos[h] = make([]int, c.width)
		for s := range c.pos[h] {
			c.pos[h][s] = -1
			if s < tr.PromptLen {
				c.pos[h][s] = s
			}
		}
	}
	if err := c.prefill(); err != nil {
		return c.run, err
	}
	for t := tr.PromptLen; t < tr.MaxLen; t++ {
		if err := c.decode(t); err != nil {
			return c.run, err
		}
	}
	return c.run, nil
}

// pool sets what the layout's pool holds, asking a model pool's layer budgets.
func (c *callHost) pool() error {
	H, B := c.cfg.Heads, c.cfg.Budget
	c.capacity, c.slack = B, c.layout.Slack
	switch c.layout.Pool {
	case policies.PoolHead:
		return nil
	case policies.PoolLayer:
		c.capacity = H * B
	case policies.PoolModel:
		lb, ok := c.p.(policies.LayerBudgeter)
		if !ok {
			return errors.New("the layout asks for a model pool, but the policy does not implement policies.LayerBudgeter")
		}
		whole := c.cfg
		whole.Layer = -1
		c.run.budgets = make([]int, c.cfg.Layers)
		if err := lb.LayerBudgets(whole, c.run.budgets); err != nil {
			return fmt.Errorf("layer budgets: %w", err)
		}
		sum := 0
		for l, n := range c.run.budgets {
			if n < 0 {
				return fmt.Errorf("layer budgets: layer %d gets %d tokens", l, n)
			}
			sum += n
		}
		if whole := c.cfg.Layers * H * B; sum > whole {
			return fmt.Errorf("layer budgets: %d tokens in all, over the model pool of %d", sum, whole)
		}
		c.capacity = c.run.budgets[c.cfg.Layer]
	default:
		return fmt.Errorf("layout with unknown pool %v", c.layout.Pool)
	}
	c.pooled, c.slack = true, H*c.layout.Slack
	return nil
}

// prefill observes the prompt in blocks of 5 rows, then compresses it if it is over
// the budget or pool.
func (c *callHost) prefill() error {
	H, P := c.cfg.Heads, c.cfg.PromptLen
	for r0 := 0; r0 < P; r0 += 5 {
		rows := min(5, P-r0)
		a := &policies.Attention{Phase: policies.Prefill, Pos: r0, Rows: rows, Heads: H, Stride: P, Probs: make([]float32, H*rows*P)}
		for h := range H {
			for r := range rows {
				t := r0 + r
				for j, pr := range c.softmax(h, t, seq(t+1)) {
					a.Row(h, r)[j] = float32(pr)
				}
			}
		}
		c.inputs(a)
		if err := c.p.Observe(a); err != nil {
			return fmt.Errorf("observe prefill row %d: %w", r0, err)
		}
	}
	need := make([]int32, H)
	switch {
	case c.layout.Unbounded:
	case !c.pooled && P > c.capacity:
		for h := range need {
			need[h] = int32(P - c.capacity)
		}
		return c.evict(policies.Prefill, P-1, need, 0)
	case c.pooled && H*P > c.capacity:
		return c.evict(policies.Prefill, P-1, need, H*P-c.capacity)
	}
	return nil
}

// decode observes step t, its token in each head's lowest free slot, and evicts
// when a head, or the pool, is over.
func (c *callHost) decode(t int) error {
	H, W := c.cfg.Heads, c.width
	a := &policies.Attention{Phase: policies.Decode, Pos: t, Rows: 1, Heads: H, Stride: W,
		Probs: make([]float32, H*W), Slot: make([]int32, H), Comp: make([]float32, H)}
	if c.layout.Compact {
		a.Live, a.Len = make([]int32, H*W), make([]int32, H)
	}
	need, anyNeed, total := make([]int32, H), false, 0
	for h := range H {
		free := slices.Index(c.pos[h], -1)
		if free < 0 {
			return fmt.Errorf("step %d: head %d has no free slot in a table of %d", t, h, W)
		}
		c.pos[h][free] = t
		a.Slot[h] = int32(free)
		var slots, keep []int
		for s, q := range c.pos[h] {
			if q >= 0 {
				slots, keep = append(slots, s), append(keep, q)
			}
		}
		for i, pr := range c.softmax(h, t, keep) {
			if c.layout.Compact {
				a.Live[h*W+i], a.Probs[h*W+i] = int32(slots[i]), float32(pr)
			} else {
				a.Probs[h*W+slots[i]] = float32(pr)
			}
		}
		if c.layout.Compact {
			a.Len[h] = int32(len(slots))
		}
		total += len(slots)
		if extra := len(slots) - c.capacity - c.slack; !c.pooled && !c.layout.Unbounded && extra > 0 {
			need[h], anyNeed = int32(extra), true
		}
	}
	c.inputs(a)
	if err := c.p.Observe(a); err != nil {
		return fmt.Errorf("observe step %d: %w", t, err)
	}
	poolNeed := 0
	if c.pooled && !c.layout.Unbounded {
		poolNeed = max(0, total-c.capacity-c.slack)
	}
	if anyNeed || poolNeed > 0 {
		return c.evict(policies.Decode, t, need, poolNeed)
	}
	return nil
}

// evict asks for victims, checks them the way the replay host does, frees their
// slots and records them.
func (c *callHost) evict(phase policies.Phase, at int, need []int32, poolNeed int) error {
	H, W := c.cfg.Heads, c.width
	e := &policies.Eviction{Phase: phase, Pos: at, Heads: H, Need: need, PoolNeed: poolNeed, Stride: W,
		Count: make([]int32, H), Victims: make([]int32, H*W)}
	if c.layout.Compensation {
		e.Weights = make([]float32, H*W)
	}
	where := fmt.Sprintf("evict %v at position %d", phase, at)
	if err := c.p.Evict(e); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	ev := callEviction{phase: phase, pos: at, victims: make([][]int32, H), weights: make([][]float32, H)}
	total := 0
	for h := range H {
		n := int(e.Count[h])
		if n < int(need[h]) || n > W {
			return fmt.Errorf("%s: head %d gave %d victims, need %d", where, h, n, need[h])
		}
		total += n
		for _, s := range e.Victims[h*W : h*W+n] {
			if s < 0 || int(s) >= W || c.pos[h][s] < 0 {
				return fmt.Errorf("%s: head %d: victim slot %d is not resident (or named twice)", where, h, s)
			}
			c.pos[h][s] = -1
		}
		ev.victims[h] = slices.Clone(e.Victims[h*W : h*W+n])
		if e.Weights != nil {
			ev.weights[h] = slices.Clone(e.Weights[h*W : h*W+n])
		}
	}
	if total < poolNeed {
		return fmt.Errorf("%s: %d victims in all, but the %v pool needs %d: the policy overdraws its pool", where, total, c.layout.Pool, poolNeed)
	}
	c.run.evictions = append(c.run.evictions, ev)
	return nil
}

// inputs gives the rows' own vectors, [h][r][d], for what the layout asks.
func (c *callHost) inputs(a *policies.Attention) {
	H, D, T := c.cfg.Heads, c.cfg.HeadDim, c.cfg.MaxLen
	a.HeadDim = D
	for _, in := range [...]struct {
		asked bool
		src   []float32
		dst   *[]float32
	}{{c.layout.Keys, c.vec.keys, &a.Keys}, {c.layout.Values, c.vec.values, &a.Values}, {c.layout.Queries, c.vec.queries, &a.Queries}} {
		if !in.asked {
			continue
		}
		*in.dst = make([]float32, H*a.Rows*D)
		for h := range H {
			copy((*in.dst)[h*a.Rows*D:], in.src[(h*T+a.Pos)*D:(h*T+a.Pos+a.Rows)*D])
		}
	}
}

// softmax is query t's attention over the tokens at positions keep, in that order.
func (c *callHost) softmax(h, t int, keep []int) []float64 {
	out := make([]float64, len(keep))
	m := math.Inf(-1)
	for i, j := range keep {
		out[i] = c.tr.logit(c.vec, h, t, j)
		m = math.Max(m, out[i])
	}
	sum := 0.0
	for i := range out {
		out[i] = math.Exp(out[i] - m)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// seq is 0, 1, …, n-1.
func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

// sameRuns compares two policies' runs, victim for victim and in order, with merge
// weights within tol of each other, relatively.
func sameRuns(budget int, want, got []*callRun, tol float64) error {
	for l := range min(len(want), len(got)) {
		w, g := want[l], got[l]
		where := fmt.Sprintf("budget %d, layer %d", budget, l)
		if w.layout != g.layout {
			return fmt.Errorf("%s: layout %+v, want %+v", where, g.layout, w.layout)
		}
		if !slices.Equal(w.budgets, g.budgets) {
			return fmt.Errorf("%s: layer budgets %v, want %v", where, g.budgets, w.budgets)
		}
		for j := range min(len(w.evictions), len(g.evictions)) {
			we, ge := w.evictions[j], g.evictions[j]
			at := fmt.Sprintf("%s: eviction %d (%v at position %d)", where, j, we.phase, we.pos)
			for h := range we.victims {
				if !slices.Equal(we.victims[h], ge.victims[h]) {
					return fmt.Errorf("%s: head %d: %s", at, h, victimDiff(we.victims[h], ge.victims[h]))
				}
				if i := firstOutside(we.weights[h], ge.weights[h], tol); i >= 0 {
					return fmt.Errorf("%s: head %d: victim %d's weight differs", at, h, i)
				}
			}
		}
		if len(w.evictions) != len(g.evictions) {
			return fmt.Errorf("%s: %d evictions, want %d", where, len(g.evictions), len(w.evictions))
		}
	}
	if len(want) != len(got) {
		return fmt.Errorf("%d layers run, want %d", len(got), len(want))
	}
	return nil
}

// SameCalls drives want and got, both built with params, through the call-by-call
// host at several budgets and returns the first answer where got differs from want:
// a layout, the layer budgets, or an eviction, victim for victim. Unlike Same it needs
// no replay host, and it serves every input, compact rows and both pools.
func SameCalls(want, got policies.New, params map[string]any) error {
	for _, budget := range callBudgets {
		wantRuns, err := runCalls(func() (policies.Policy, error) { return want(policies.NewParams(params)) }, callShape, budget)
		if errors.Is(err, errClairvoyant) {
			return nil // Same's replay covers it
		} else if err != nil {
			return fmt.Errorf("reference: %w", err)
		}
		gotRuns, err := runCalls(func() (policies.Policy, error) { return got(policies.NewParams(params)) }, callShape, budget)
		if err != nil {
			return err
		}
		if err := sameRuns(budget, wantRuns, gotRuns, 0); err != nil {
			return err
		}
	}
	return nil
}

// checkCalls runs the policy through the call-by-call host twice and says what its
// layouts use; an error if it answers wrongly or differently the second time.
func checkCalls(build func() (policies.Policy, error)) (string, error) {
	var uses []string
	for _, budget := range callBudgets {
		first, err := runCalls(build, callShape, budget)
		if err != nil {
			return "", err
		}
		again, err := runCalls(build, callShape, budget)
		if err == nil {
			err = sameRuns(budget, first, again, 0)
		}
		if err != nil {
			return "", fmt.Errorf("a second run: %w", err)
		}
		for _, r := range first {
			for _, u := range layoutUses(r.layout) {
				if !slices.Contains(uses, u) {
					uses = append(uses, u)
				}
			}
		}
	}
	if len(uses) == 0 {
		return "the layout asks for none of it", nil
	}
	return "the layout uses " + strings.Join(uses, ", "), nil
}

// layoutUses names the contract 2.0 features a layout asks for.
func layoutUses(l policies.Layout) []string {
	var uses []string
	for _, f := range [...]struct {
		on   bool
		name string
	}{{l.Keys, "keys"}, {l.Values, "values"}, {l.Queries, "queries"}, {l.Compact, "compact rows"},
		{l.Pool == policies.PoolLayer, "a layer pool"}, {l.Pool == policies.PoolModel, "a model pool"}} {
		if f.on {
			uses = append(uses, f.name)
		}
	}
	return uses
}
