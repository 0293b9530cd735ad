package conformance

import (
	"fmt"
	"math"
	"slices"

	"github.com/kvsim/kvsim/policies"
)

// recording is what the instances of one policy did during a replay, sequence by
// sequence in the order they were started. Replays that are compared run on one
// thread, so that order is fixed.
type recording struct {
	sequences []*sequence
}

// sequence is one Init and the evictions that followed it.
type sequence struct {
	config    policies.Config
	layout    policies.Layout
	division  []int // a model pool's layer budgets, if the host asked this instance
	evictions []eviction
}

// eviction is one Evict call's answer, victims in the order given.
type eviction struct {
	phase   policies.Phase
	pos     int
	victims [][]int32   // per head, slot ids
	weights [][]float32 // per head, parallel to victims; nil without compensation
}

// recorder is a policy that logs what the policy it wraps does. With fresh, every
// Init starts a new instance of the policy, as if the host never reused one.
type recorder struct {
	newPolicy func() (policies.Policy, error)
	fresh     bool
	inner     policies.Policy
	log       *recording
	seq       *sequence
}

// record wraps newPolicy so that every instance it makes logs into log.
func record(newPolicy func() (policies.Policy, error), log *recording, fresh bool) func() (policies.Policy, error) {
	return func() (policies.Policy, error) {
		p, err := newPolicy()
		if err != nil {
			return nil, err
		}
		return &recorder{newPolicy: newPolicy, fresh: fresh, inner: p, log: log}, nil
	}
}

func (r *recorder) Init(cfg policies.Config) (policies.Layout, error) {
	if r.fresh && r.seq != nil {
		p, err := r.newPolicy()
		if err != nil {
			return policies.Layout{}, err
		}
		r.inner = p
	}
	layout, err := r.inner.Init(cfg)
	r.seq = &sequence{config: cfg, layout: layout}
	r.log.sequences = append(r.log.sequences, r.seq)
	return layout, err
}

func (r *recorder) Observe(a *policies.Attention) error { return r.inner.Observe(a) }

// LayerBudgets passes a model pool's division on, so that a recorded policy divides
// like the policy it wraps.
func (r *recorder) LayerBudgets(cfg policies.Config, entries []int) error {
	lb, ok := r.inner.(policies.LayerBudgeter)
	if !ok {
		return fmt.Errorf("%T does not implement policies.LayerBudgeter", r.inner)
	}
	if err := lb.LayerBudgets(cfg, entries); err != nil {
		return err
	}
	if r.seq != nil {
		r.seq.division = slices.Clone(entries)
	}
	return nil
}

func (r *recorder) Evict(e *policies.Eviction) error {
	err := r.inner.Evict(e)
	ev := eviction{phase: e.Phase, pos: e.Pos, victims: make([][]int32, e.Heads)}
	if e.Weights != nil {
		ev.weights = make([][]float32, e.Heads)
	}
	for h := range e.Heads {
		n := min(max(int(e.Count[h]), 0), e.Stride)
		ev.victims[h] = slices.Clone(e.Victims[h*e.Stride : h*e.Stride+n])
		if e.Weights != nil {
			ev.weights[h] = slices.Clone(e.Weights[h*e.Stride : h*e.Stride+n])
		}
	}
	r.seq.evictions = append(r.seq.evictions, ev)
	return err
}

// diff returns the first place where got differs from want, or nil: a config, a
// layout, or an eviction, victim for victim and in order, with merge weights within
// tol of each other, relatively.
func diff(want, got *recording, tol float64) error {
	for i := range min(len(want.sequences), len(got.sequences)) {
		w, g := want.sequences[i], got.sequences[i]
		where := fmt.Sprintf("sequence %d (layer %d, budget %d, prompt %d, max length %d)", i, w.config.Layer, w.config.Budget, w.config.PromptLen, w.config.MaxLen)
		switch {
		case w.config != g.config:
			return fmt.Errorf("%s: config %+v, want %+v", where, g.config, w.config)
		case w.layout != g.layout:
			return fmt.Errorf("%s: layout %+v, want %+v", where, g.layout, w.layout)
		}
		for j := range min(len(w.evictions), len(g.evictions)) {
			we, ge := w.evictions[j], g.evictions[j]
			at := fmt.Sprintf("%s: eviction %d (%v at position %d)", where, j, we.phase, we.pos)
			if we.phase != ge.phase || we.pos != ge.pos {
				return fmt.Errorf("%s: got %v at position %d", at, ge.phase, ge.pos)
			}
			for h := range we.victims {
				wv, gv := we.victims[h], ge.victims[h]
				if !slices.Equal(wv, gv) {
					return fmt.Errorf("%s: head %d: %s", at, h, victimDiff(wv, gv))
				}
				if we.weights != nil {
					var gw []float32
					if ge.weights != nil {
						gw = ge.weights[h]
					}
					if i := firstOutside(we.weights[h], gw, tol); i >= 0 {
						if i >= len(gw) {
							return fmt.Errorf("%s: head %d: %d weights, want %d", at, h, len(gw), len(wv))
						}
						return fmt.Errorf("%s: head %d: victim %d (slot %d) has weight %g, want %g", at, h, i, wv[i], gw[i], we.weights[h][i])
					}
				}
			}
		}
		if len(w.evictions) != len(g.evictions) {
			return fmt.Errorf("%s: %d evictions, want %d", where, len(g.evictions), len(w.evictions))
		}
	}
	if len(want.sequences) != len(got.sequences) {
		return fmt.Errorf("%d sequences, want %d", len(got.sequences), len(want.sequences))
	}
	return nil
}

// firstOutside returns the first index where a and b differ by more than tol,
// relatively, or where one ends; -1 if they agree.
func firstOutside(a, b []float32, tol float64) int {
	for i := range a {
		if i >= len(b) {
			return i
		}
		x, y := float64(a[i]), float64(b[i])
		if x != y && math.Abs(x-y) > tol*math.Max(math.Abs(x), math.Abs(y)) {
			return i
		}
	}
	if len(b) > len(a) {
		return len(a)
	}
	return -1
}

// victimDiff says how the victim list got differs from want in a few words: the
// slots only one of them names, or where the order first differs.
func victimDiff(want, got []int32) string {
	extra, missing := minus(got, want), minus(want, got)
	if len(extra) == 0 && len(missing) == 0 {
		i := 0
		for i < len(want) && i < len(got) && want[i] == got[i] {
			i++
		}
		if i == len(want) || i == len(got) {
			return fmt.Sprintf("%d victims, want %d; the first %d are the same", len(got), len(want), i)
		}
		return fmt.Sprintf("the same %d victims in another order, from victim %d: slot %d, want %d", len(want), i, got[i], want[i])
	}
	msg := fmt.Sprintf("%d victims, want %d", len(got), len(want))
	if len(extra) > 0 {
		msg += "; evicts " + slots(extra) + ", which the reference keeps"
	}
	if len(missing) > 0 {
		msg += "; keeps " + slots(missing) + ", which the reference evicts"
	}
	return msg
}

// minus is the sorted slots of a that b lacks.
func minus(a, b []int32) []int32 {
	var out []int32
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// slots lists at most 8 slots.
func slots(s []int32) string {
	const most = 8
	word := "slots"
	if len(s) == 1 {
		word = "slot"
	}
	if len(s) <= most {
		return fmt.Sprintf("%s %v", word, s)
	}
	return fmt.Sprintf("%d slots %v and %d more", len(s), s[:most], len(s)-most)
}
