// Package press turns a token scorer into an eviction policy of the shape most
// KV-cache compression papers share: compress the cache once when the prompt is in,
// keeping the best-scored tokens, then decode with a simple rule.
//
// The author of a press writes a Scorer: it watches the calls (probabilities, and the
// keys, values or queries its Options ask for) and, when asked, scores a head's
// resident tokens; a higher score keeps a token. The press does the rest: the Layout,
// the record of which position each slot holds (Tokens, with each resident token's key
// and value when asked to store them), the protocol checks, and the choice of victims.
//
// # Choosing victims
//
// At compression and at every decode eviction the press asks the scorer for the
// scores of the candidates, the resident tokens that are neither sinks (the first
// Sinks positions) nor protected (the newest Protect positions), and evicts:
//   - PoolHead: per head, the Need[h] lowest-scored candidates;
//   - PoolLayer: the PoolNeed lowest-scored candidates of the whole layer, but never
//     one that would leave its head with fewer than the floor, ⌊Floor×share/Heads⌋
//     tokens, where share is the layer's entries (Heads×Budget). Scores must then be
//     comparable across heads;
//   - PoolModel: as PoolLayer, with the layer's share given by Options.LayerBudgets.
//
// Ties are broken so that the victims never depend on the order of slots or calls: of
// two candidates with equal scores, the one at the lower position (the older token)
// goes first; in a pool, at equal scores and positions, the lower head goes first.
//
// # Decoding
//
// Options.Decode says what happens after compression:
//   - Append: the cache grows by every generated token (Layout.Slack is MaxLen), as
//     most papers evaluate presses.
//   - Window: the cache holds Budget tokens: generated tokens are evicted oldest
//     first once they leave the newest Window positions; while none has left, the
//     lowest-scored older token goes instead, so that in steady state the cache is
//     Budget−Window compressed prompt tokens plus the Window newest tokens.
//   - Score: the cache holds Budget tokens: each step evicts the lowest-scored
//     candidate (per head, or across the layer under a pool), new tokens scored with
//     the rest (the scorer sees each decode token in Observe before it is asked to
//     score it).
//
// # Writing a press
//
// A scorer that keeps, per head, the tokens with the largest first key element:
//
//	type firstKey struct{ t *press.Tokens }
//
//	func (f *firstKey) Start(cfg policies.Config, t *press.Tokens) error { f.t = t; return nil }
//	func (f *firstKey) Observe(*policies.Attention) error                { return nil }
//	func (f *firstKey) Score(h int, slots []int32, scores []float64) {
//		for i, s := range slots {
//			scores[i] = float64(f.t.Key(h, s)[0])
//		}
//	}
//
//	func New(p *policies.Params) (policies.Policy, error) {
//		opt, err := press.ReadOptions(p, press.Options{StoreKeys: true, Decode: press.Score})
//		if err != nil {
//			return nil, fmt.Errorf("firstkey: %w", err)
//		}
//		return press.New("firstkey", &firstKey{}, opt), nil
//	}
//
// A scorer that only needs something per token (a norm, a count) computes it in
// Observe and keeps it by slot (PerSlot, Norms), rather than storing whole keys:
// policies/knorm is such a press. Package presstest drives a press over hand-made
// keys, values and queries, for tests; the package's Example runs the press above
// through it.
package press

import (
	"fmt"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/policies"
)

// Scorer scores one layer's tokens for a press. The press calls Start, then Observe
// for every Attention it receives, and Score when it must choose victims.
type Scorer interface {
	// Start resets the scorer for a new sequence. t stays valid for the sequence
	// and always reflects what the host holds.
	Start(cfg policies.Config, t *Tokens) error
	// Observe sees every call after the press has recorded its tokens (their keys
	// and values are in t when stored). It must not keep a's slices.
	Observe(a *policies.Attention) error
	// Score writes scores[i], the worth of head h's token in slots[i]; the lowest
	// go first. slots are resident and listed in no particular order.
	Score(h int, slots []int32, scores []float64)
}

// Decode names a decoding rule (see the package doc).
type Decode string

const (
	Append Decode = "append"
	Window Decode = "window"
	Score  Decode = "score"
)

// Options configure a press.
type Options struct {
	// Keys, Values and Queries ask the host for these vectors (Layout.Keys and so
	// on); the scorer reads them in Observe.
	Keys, Values, Queries bool
	// StoreKeys and StoreValues keep each resident token's key or value, for
	// Tokens.Key and Tokens.Value (a copy: Heads × table width × HeadDim float32s
	// per instance). They imply Keys and Values.
	StoreKeys, StoreValues bool
	// Compact asks for compact decode rows (Layout.Compact). The press itself never
	// reads probabilities; a scorer that does must then read Live and Len.
	Compact bool
	Decode  Decode
	// Window is the newest positions Decode=Window keeps; clamped to Budget.
	Window int
	// Protect is the newest positions never evicted (at compression, and under
	// Decode=Score); Sinks the first positions never evicted. Both are clamped so
	// that together they fit the budget, Protect first.
	Protect, Sinks int
	// Pool is what the budget bounds (policies.Layout.Pool).
	Pool policies.Pool
	// Floor (0..1, pools only) is the fraction of its even share each head keeps at
	// least.
	Floor float64
	// LayerBudgets divides the model's entries among layers (PoolModel only); see
	// policies.LayerBudgeter.
	LayerBudgets func(cfg policies.Config, entries []int) error
	// StateBytes is what the scorer keeps per head and resident token, reported
	// through policies.TokenState. Stored keys and values are not counted: they are
	// the cache's own.
	StateBytes int
}

// ReadOptions reads the params every press shares, over defaults: decode ("append",
// "window" or "score"), window, protect and sinks (ints ≥ 0). Call it after reading
// the policy's own params: it ends with Params.Err, which also rejects unknown keys.
func ReadOptions(p *policies.Params, defaults Options) (Options, error) {
	o := defaults
	o.Decode = Decode(p.String("decode", string(defaults.Decode), string(Append), string(Window), string(Score)))
	o.Window = p.Int("window", defaults.Window)
	o.Protect = p.Int("protect", defaults.Protect)
	o.Sinks = p.Int("sinks", defaults.Sinks)
	p.Check("window", o.Window >= 0 && (o.Window >= 1 || o.Decode != Window), "must be ≥ 1 with decode=window, got %d", o.Window)
	p.Check("protect", o.Protect >= 0, "must be ≥ 0, got %d", o.Protect)
	p.Check("sinks", o.Sinks >= 0, "must be ≥ 0, got %d", o.Sinks)
	return o, p.Err()
}

// Tokens is what a press knows of the host's slot tables: the position each slot
// holds, each head's resident slots, and, when stored, each resident token's key and
// value. Scorers read it; the press keeps it up to date.
type Tokens struct {
	table
	HeadDim int
	width   int       // of the key and value stores
	keys    []float32 // keys[(h*width+slot)*HeadDim:][:HeadDim]
	values  []float32
}

// Pos is the position of the token in head h's slot s, or -1 if the slot is free.
func (t *Tokens) Pos(h int, s int32) int { return t.pos(h, s) }

// Resident lists head h's resident slots, in no particular order. The slice aliases
// the press's list: read it, do not keep or modify it.
func (t *Tokens) Resident(h int) []int32 { return t.resident(h) }

// Key is head h's key for the token in slot s (StoreKeys only). The slice aliases the
// store: read it, do not keep it.
func (t *Tokens) Key(h int, s int32) []float32 {
	off := (h*t.width + int(s)) * t.HeadDim
	return t.keys[off : off+t.HeadDim]
}

// Value is head h's value for the token in slot s (StoreValues only).
func (t *Tokens) Value(h int, s int32) []float32 {
	off := (h*t.width + int(s)) * t.HeadDim
	return t.values[off : off+t.HeadDim]
}

func (t *Tokens) reset(cfg policies.Config, width int, storeKeys, storeValues bool) {
	t.table.reset(cfg)
	t.HeadDim, t.width = cfg.HeadDim, width
	t.keys = resize(t.keys, storeKeys, cfg.Heads*width*cfg.HeadDim)
	t.values = resize(t.values, storeValues, cfg.Heads*width*cfg.HeadDim)
}

// resize is buf.Grow for a store the layout may not want.
func resize(s []float32, want bool, n int) []float32 {
	if !want {
		return nil
	}
	return buf.Grow(s, n)
}

// store copies the vectors of a's rows into their slots.
func (t *Tokens) store(dst, src []float32, a *policies.Attention) {
	for h := range a.Heads {
		for r := range a.Rows {
			off := (h*t.width + int(TokenSlot(a, h, r))) * t.HeadDim
			copy(dst[off:off+t.HeadDim], Vector(a, src, h, r))
		}
	}
}

// Press is a policy built from a Scorer.
type Press struct {
	name   string
	opt    Options
	scorer Scorer

	cfg     policies.Config
	layout  policies.Layout
	next    int // position of the next query row
	tokens  Tokens
	protect int // Protect, clamped
	sinks   int // Sinks, clamped
	window  int // Window, clamped
	floor   int // tokens each head keeps at least (pools)
	pick    picker
}

// New builds a press; name prefixes its errors.
func New(name string, s Scorer, opt Options) *Press {
	opt.Keys = opt.Keys || opt.StoreKeys
	opt.Values = opt.Values || opt.StoreValues
	if opt.Decode == "" {
		opt.Decode = Append
	}
	return &Press{name: name, opt: opt, scorer: s}
}

func (p *Press) errorf(format string, args ...any) error {
	return fmt.Errorf(p.name+": "+format, args...)
}

// Init starts a sequence.
func (p *Press) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, p.errorf("%w", err)
	}
	o := p.opt
	if o.Pool != policies.PoolHead && (o.Floor < 0 || o.Floor > 1) {
		return policies.Layout{}, p.errorf("floor %v is not in 0..1", o.Floor)
	}
	if (o.Keys || o.Values || o.Queries) && cfg.HeadDim < 1 {
		return policies.Layout{}, p.errorf("needs key, value or query vectors but the head dimension is %d", cfg.HeadDim)
	}
	layout := policies.Layout{Keys: o.Keys, Values: o.Values, Queries: o.Queries, Compact: o.Compact, Pool: o.Pool}
	if o.Decode == Append {
		layout.Slack = cfg.MaxLen
	}
	share := cfg.Heads * cfg.Budget
	if o.Pool == policies.PoolModel {
		if o.LayerBudgets == nil {
			return policies.Layout{}, p.errorf("a model pool needs LayerBudgets")
		}
		whole := cfg
		whole.Layer = -1
		entries := make([]int, cfg.Layers)
		if cfg.Layer < 0 || cfg.Layer >= cfg.Layers {
			return policies.Layout{}, p.errorf("layer %d of %d", cfg.Layer, cfg.Layers)
		}
		if err := o.LayerBudgets(whole, entries); err != nil {
			return policies.Layout{}, p.errorf("layer budgets: %w", err)
		}
		share = entries[cfg.Layer]
		if share < 0 {
			return policies.Layout{}, p.errorf("layer budgets give layer %d %d entries", cfg.Layer, share)
		}
	}
	p.cfg, p.layout, p.next = cfg, layout, 0
	perHead, width := cfg.Budget, policies.SlotWidth(cfg, layout)
	p.floor = 0
	if o.Pool != policies.PoolHead {
		// A pooled head may hold far more than Budget tokens; slot ids stay below
		// MaxLen whatever the host's table width.
		width = cfg.MaxLen
		perHead = share / cfg.Heads
		p.floor = int(o.Floor * float64(perHead))
	}
	p.protect = min(o.Protect, perHead)
	p.sinks = min(o.Sinks, perHead-p.protect)
	p.window = min(o.Window, perHead)
	p.tokens.reset(cfg, width, o.StoreKeys, o.StoreValues)
	p.pick.reset(cfg.Heads, width)
	if err := p.scorer.Start(cfg, &p.tokens); err != nil {
		return policies.Layout{}, p.errorf("%w", err)
	}
	return layout, nil
}

// LayerBudgets divides the model's entries with Options.LayerBudgets (PoolModel).
func (p *Press) LayerBudgets(cfg policies.Config, entries []int) error {
	if p.opt.LayerBudgets == nil {
		return p.errorf("no layer budgets: the pool is %v", p.opt.Pool)
	}
	return p.opt.LayerBudgets(cfg, entries)
}

// TokenStateBytes reports Options.StateBytes.
func (p *Press) TokenStateBytes() int { return p.opt.StateBytes }

// Observe records the rows' tokens (and their vectors, when stored) and passes the
// call to the scorer.
func (p *Press) Observe(a *policies.Attention) error {
	t := &p.tokens
	if err := t.checkAttention(p.cfg, p.layout, p.next, a); err != nil {
		return p.errorf("%w", err)
	}
	t.enter(a)
	p.next += a.Rows
	if p.opt.StoreKeys {
		t.store(t.keys, a.Keys, a)
	}
	if p.opt.StoreValues {
		t.store(t.values, a.Values, a)
	}
	if err := p.scorer.Observe(a); err != nil {
		return p.errorf("position %d: %w", a.Pos, err)
	}
	return nil
}

// Evict chooses victims as the package doc says.
func (p *Press) Evict(e *policies.Eviction) error {
	t := &p.tokens
	if err := t.checkEviction(p.cfg, p.layout, p.next, e); err != nil {
		return p.errorf("%w", err)
	}
	if e.Phase == policies.Decode && p.opt.Decode == Append {
		return p.errorf("decode eviction at position %d, but decode=append reserves room for every generated token", e.Pos)
	}
	need := e.PoolNeed
	for _, n := range e.Need[:e.Heads] {
		need += int(n)
	}
	clear(e.Count[:e.Heads])
	if need == 0 {
		return nil
	}
	newest := p.next - 1
	protectFrom := newest - p.protect + 1 // positions from here on are protected
	oldestFirst := p.cfg.MaxLen           // positions from here on go oldest first, before scored ones
	if e.Phase == policies.Decode && p.opt.Decode == Window {
		// Generated tokens that left the window go first; only if they do not
		// suffice are the older tokens scored.
		protectFrom = newest - p.window + 1
		oldestFirst = p.cfg.PromptLen
		if err := p.pick.collect(e, t, p.sinks, protectFrom, oldestFirst, nil); err != nil {
			return p.errorf("%w", err)
		}
		if p.pick.choose(e, p.opt.Pool, p.floor, t) {
			return nil
		}
	}
	if err := p.pick.collect(e, t, p.sinks, protectFrom, oldestFirst, p.scorer); err != nil {
		return p.errorf("%v eviction at position %d: %w", e.Phase, e.Pos, err)
	}
	if !p.pick.choose(e, p.opt.Pool, p.floor, t) {
		return p.errorf("%v eviction at position %d: need %d victims but only %d candidates are outside the sinks (%d), the protected newest positions and the floor (%d per head)",
			e.Phase, e.Pos, need, len(p.pick.ids), p.sinks, p.floor)
	}
	return nil
}
