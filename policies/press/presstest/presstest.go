// Package presstest drives a policy through one layer of a hand-made sequence whose
// keys, values and queries the test chooses, for tests of presses and other policies
// that read vectors or pool their budget. It is a plain host: it fills the vectors the
// layout asks for, enforces per-head, layer and model budgets, checks every victim
// list, and logs victims by position.
//
// Attention is uniform (each query gives every token it sees the same probability),
// since the policies it serves score from vectors; prompt rows arrive in blocks of
// three, so that scorers see more than one prefill call.
package presstest

import (
	"fmt"
	"reflect"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

// Sequence is one layer of a sequence. Key, Value and Query return head h's vector for
// the token at pos (HeadDim long); a nil function gives zero vectors.
type Sequence struct {
	Heads, HeadDim, PromptLen, MaxLen int
	Key, Value, Query                 func(h, pos int) []float32
}

// Event is one Evict call: per head, the victims' positions in the order given.
type Event struct {
	Phase   policies.Phase
	Pos     int
	Victims [][]int
}

// Log is what a policy did over a sequence.
type Log struct {
	Layout   policies.Layout
	Events   []Event
	Resident [][]int // per head: positions resident at the end, ascending
}

const block = 3 // prompt rows per prefill call

// Run drives p over seq with cfg's Budget, Layer, Layers and Seed (its Heads,
// HeadDim, PromptLen and MaxLen come from seq).
func Run(p policies.Policy, cfg policies.Config, seq Sequence) (Log, error) {
	h, err := prompt(p, cfg, seq)
	if err != nil {
		return h.log, err
	}
	cfg = h.cfg
	for t := cfg.PromptLen; t < cfg.MaxLen; t++ {
		if err := p.Observe(h.decode(t)); err != nil {
			return h.log, err
		}
		if err := h.evict(p, policies.Decode, t); err != nil {
			return h.log, err
		}
	}
	h.log.Resident = make([][]int, cfg.Heads)
	for hd, row := range h.pos {
		for _, q := range row {
			if q >= 0 {
				h.log.Resident[hd] = append(h.log.Resident[hd], q)
			}
		}
		slices.Sort(h.log.Resident[hd])
	}
	return h.log, nil
}

// prompt starts p on seq and drives it through the prompt and its compression.
func prompt(p policies.Policy, cfg policies.Config, seq Sequence) (*host, error) {
	cfg.Heads, cfg.HeadDim, cfg.PromptLen, cfg.MaxLen = seq.Heads, seq.HeadDim, seq.PromptLen, seq.MaxLen
	if cfg.Layers == 0 {
		cfg.Layers = 1
	}
	h := &host{cfg: cfg, seq: seq}
	layout, err := p.Init(cfg)
	if err != nil {
		return h, err
	}
	h.layout, h.log.Layout = layout, layout
	if err := h.budget(p); err != nil {
		return h, err
	}
	h.pos = make([][]int, cfg.Heads)
	for hd := range h.pos {
		h.pos[hd] = make([]int, cfg.MaxLen)
		for s := range h.pos[hd] {
			h.pos[hd][s] = -1
		}
	}
	for start := 0; start < cfg.PromptLen; start += block {
		if err := p.Observe(h.prefill(start, min(block, cfg.PromptLen-start))); err != nil {
			return h, err
		}
	}
	return h, h.evict(p, policies.Prefill, cfg.PromptLen-1)
}

type host struct {
	cfg    policies.Config
	layout policies.Layout
	seq    Sequence
	log    Log
	pos    [][]int // pos[h][slot]: the slot's position, -1 when free
	share  int     // entries the layer's heads may hold together (pools)
}

// budget sets the layer's share: Heads×Budget, or the policy's division of the model.
func (h *host) budget(p policies.Policy) error {
	h.share = h.cfg.Heads * h.cfg.Budget
	if h.layout.Pool != policies.PoolModel {
		return nil
	}
	lb, ok := p.(policies.LayerBudgeter)
	if !ok {
		return fmt.Errorf("presstest: a model pool without LayerBudgets")
	}
	whole := h.cfg
	whole.Layer = -1
	entries := make([]int, h.cfg.Layers)
	if err := lb.LayerBudgets(whole, entries); err != nil {
		return err
	}
	total := 0
	for l, n := range entries {
		if n < 0 {
			return fmt.Errorf("presstest: layer %d gets %d entries", l, n)
		}
		total += n
	}
	if total > h.cfg.Layers*h.share {
		return fmt.Errorf("presstest: layer budgets sum to %d, over the model's %d", total, h.cfg.Layers*h.share)
	}
	h.share = entries[h.cfg.Layer]
	return nil
}

// vectors fills the vectors the layout asks for, for the rows of a.
func (h *host) vectors(a *policies.Attention) {
	a.HeadDim = h.cfg.HeadDim
	fill := func(asked bool, f func(h, pos int) []float32) []float32 {
		if !asked {
			return nil
		}
		out := make([]float32, a.Heads*a.Rows*a.HeadDim)
		for hd := range a.Heads {
			for r := range a.Rows {
				if f != nil {
					copy(out[(hd*a.Rows+r)*a.HeadDim:][:a.HeadDim], f(hd, a.Pos+r))
				}
			}
		}
		return out
	}
	a.Keys = fill(h.layout.Keys, h.seq.Key)
	a.Values = fill(h.layout.Values, h.seq.Value)
	a.Queries = fill(h.layout.Queries, h.seq.Query)
}

func (h *host) prefill(start, rows int) *policies.Attention {
	P := h.cfg.PromptLen
	a := &policies.Attention{Phase: policies.Prefill, Pos: start, Rows: rows, Heads: h.cfg.Heads, Stride: P,
		Probs: make([]float32, h.cfg.Heads*rows*P)}
	for hd := range a.Heads {
		for r := range rows {
			i := start + r
			h.pos[hd][i] = i
			row := a.Row(hd, r)
			for j := 0; j <= i; j++ {
				row[j] = 1 / float32(i+1)
			}
		}
	}
	h.vectors(a)
	return a
}

func (h *host) decode(t int) *policies.Attention {
	width := h.cfg.MaxLen
	a := &policies.Attention{Phase: policies.Decode, Pos: t, Rows: 1, Heads: h.cfg.Heads, Stride: width,
		Probs: make([]float32, h.cfg.Heads*width), Slot: make([]int32, h.cfg.Heads)}
	if h.layout.Compact {
		a.Live, a.Len = make([]int32, h.cfg.Heads*width), make([]int32, h.cfg.Heads)
	}
	for hd, row := range h.pos {
		free := slices.Index(row, -1)
		row[free] = t
		a.Slot[hd] = int32(free)
		n := 0
		for _, q := range row {
			if q >= 0 {
				n++
			}
		}
		for s, q := range row {
			switch {
			case q < 0:
			case a.Live != nil:
				a.Live[hd*width+int(a.Len[hd])] = int32(s)
				a.Probs[hd*width+int(a.Len[hd])] = 1 / float32(n)
				a.Len[hd]++
			default:
				a.Probs[hd*width+s] = 1 / float32(n)
			}
		}
	}
	h.vectors(a)
	return a
}

// evict asks for victims when the budget is exceeded and checks the answer.
func (h *host) evict(p policies.Policy, phase policies.Phase, newest int) error {
	heads := h.cfg.Heads
	slack := 0
	if phase == policies.Decode {
		slack = min(h.layout.Slack, h.cfg.MaxLen)
	}
	e := &policies.Eviction{Phase: phase, Pos: newest, Heads: heads, Need: make([]int32, heads),
		Stride: h.cfg.MaxLen, Count: make([]int32, heads), Victims: make([]int32, heads*h.cfg.MaxLen)}
	resident := make([]int, heads)
	total, asked := 0, false
	for hd, row := range h.pos {
		for _, q := range row {
			if q >= 0 {
				resident[hd]++
			}
		}
		total += resident[hd]
		if over := resident[hd] - h.cfg.Budget - slack; h.layout.Pool == policies.PoolHead && over > 0 {
			e.Need[hd], asked = int32(over), true
		}
	}
	if over := total - h.share - heads*slack; h.layout.Pool != policies.PoolHead && over > 0 {
		e.PoolNeed, asked = over, true
	}
	if !asked || h.layout.Unbounded {
		return nil
	}
	if err := p.Evict(e); err != nil {
		return err
	}
	ev := Event{Phase: phase, Pos: newest, Victims: make([][]int, heads)}
	given := 0
	for hd := range heads {
		n := int(e.Count[hd])
		if n < int(e.Need[hd]) || n > resident[hd] {
			return fmt.Errorf("presstest: head %d gave %d victims, need %d of %d resident", hd, n, e.Need[hd], resident[hd])
		}
		for _, s := range e.Victims[hd*e.Stride:][:n] {
			if s < 0 || int(s) >= len(h.pos[hd]) || h.pos[hd][s] < 0 {
				return fmt.Errorf("presstest: head %d named slot %d, which holds no token", hd, s)
			}
			ev.Victims[hd] = append(ev.Victims[hd], h.pos[hd][s])
			h.pos[hd][s] = -1
		}
		given += n
	}
	if given < e.PoolNeed {
		return fmt.Errorf("presstest: the layer gave %d victims, pool need %d", given, e.PoolNeed)
	}
	h.log.Events = append(h.log.Events, ev)
	return nil
}

// SameAfterReuse builds two policies from params, runs one over first and then second,
// the other over second alone, and reports where the two runs over second differ: a
// policy must reset all its state in Init.
func SameAfterReuse(newPolicy policies.New, params map[string]any, cfg policies.Config, first, second Sequence) error {
	reused, err := newPolicy(policies.NewParams(params))
	if err != nil {
		return err
	}
	fresh, err := newPolicy(policies.NewParams(params))
	if err != nil {
		return err
	}
	if _, err := Run(reused, cfg, first); err != nil {
		return err
	}
	got, err := Run(reused, cfg, second)
	if err != nil {
		return err
	}
	want, err := Run(fresh, cfg, second)
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("presstest: after another sequence the policy did %+v, a fresh one %+v", got, want)
	}
	return nil
}

// FromTables is the sequence whose head h holds keys[h][pos], values[h][pos] and
// queries[h][pos] at position pos; a nil table gives zero vectors. Heads, HeadDim and
// MaxLen come from the first table given.
func FromTables(prompt int, keys, values, queries [][][]float32) Sequence {
	seq := Sequence{PromptLen: prompt}
	lookup := func(table [][][]float32) func(h, pos int) []float32 {
		if table == nil {
			return nil
		}
		if seq.Heads == 0 {
			seq.Heads, seq.MaxLen, seq.HeadDim = len(table), len(table[0]), len(table[0][0])
		}
		return func(h, pos int) []float32 { return table[h][pos] }
	}
	seq.Key, seq.Value, seq.Query = lookup(keys), lookup(values), lookup(queries)
	return seq
}

// CheckVictims reports the first eviction whose victims differ from want[event][head]
// (positions, in the order given), or a count of events that differs.
func CheckVictims(log Log, want [][][]int) error {
	if len(log.Events) != len(want) {
		return fmt.Errorf("presstest: %d evictions %+v, want %d", len(log.Events), log.Events, len(want))
	}
	for i, w := range want {
		for h := range w {
			if got := log.Events[i].Victims[h]; !slices.Equal(got, w[h]) {
				return fmt.Errorf("presstest: eviction %d (%v at %d), head %d: victims %v, want %v",
					i, log.Events[i].Phase, log.Events[i].Pos, h, got, w[h])
			}
		}
	}
	return nil
}
