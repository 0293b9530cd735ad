package press

import (
	"fmt"
	"math"
	"slices"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
)

// picker holds one eviction's candidates, all heads together, and chooses among them.
// Candidates rank by (tier, score, pos, head), lowest first, a strict total order
// since a head holds each position once.
type picker struct {
	cands []cand
	start []int   // head h's candidates are cands[start[h]:start[h+1]]
	ids   []int32 // candidate indices being ranked
	taken []int   // victims chosen per head
	// slots and scores: one head's tier-1 candidates, for Scorer.Score.
	slots  []int32
	scores []float64
}

// cand is head head's token in slot slot, at position pos. Tier 0 goes before tier 1
// whatever the scores: generated tokens that left the window under Decode=Window,
// ranked by position (score is the position).
type cand struct {
	slot, head, pos int32
	tier            int8
	score           float64
}

func (k *picker) reset(heads, width int) {
	k.cands = slices.Grow(k.cands[:0], heads*width)
	k.ids = slices.Grow(k.ids[:0], heads*width)
	k.slots, k.scores = slices.Grow(k.slots[:0], width), slices.Grow(k.scores[:0], width)
	k.start = slices.Grow(k.start[:0], heads+1)[:heads+1]
	k.taken = slices.Grow(k.taken[:0], heads)[:heads]
}

// collect gathers the resident tokens at positions in [sinks, protectFrom): those at
// oldestFirst or later in tier 0, the others in tier 1 with scores from s (left out
// when s is nil). Under a head pool, heads that need no victim are skipped.
func (k *picker) collect(e *policies.Eviction, t *Tokens, sinks, protectFrom, oldestFirst int, s Scorer) error {
	k.cands, k.ids = k.cands[:0], k.ids[:0]
	heads := len(k.start) - 1
	for h := range heads {
		k.start[h] = len(k.cands)
		k.slots = k.slots[:0]
		if e.PoolNeed == 0 && e.Need[h] == 0 {
			continue
		}
		for _, slot := range t.Resident(h) {
			switch p := t.Pos(h, slot); {
			case p < sinks || p >= protectFrom:
			case p >= oldestFirst:
				k.cands = append(k.cands, cand{slot: slot, head: int32(h), pos: int32(p), score: float64(p)})
			case s != nil:
				k.slots = append(k.slots, slot)
			}
		}
		if len(k.slots) == 0 {
			continue
		}
		k.scores = k.scores[:len(k.slots)]
		s.Score(h, k.slots, k.scores)
		for i, slot := range k.slots {
			if math.IsNaN(k.scores[i]) {
				return fmt.Errorf("head %d: the scorer gave NaN for position %d", h, t.Pos(h, slot))
			}
			k.cands = append(k.cands, cand{slot: slot, head: int32(h), pos: int32(t.Pos(h, slot)), tier: 1, score: k.scores[i]})
		}
	}
	k.start[heads] = len(k.cands)
	for i := range k.cands {
		k.ids = append(k.ids, int32(i))
	}
	return nil
}

func (k *picker) less(a, b int32) bool {
	x, y := &k.cands[a], &k.cands[b]
	switch {
	case x.tier != y.tier:
		return x.tier < y.tier
	case x.score != y.score:
		return x.score < y.score
	case x.pos != y.pos:
		return x.pos < y.pos
	}
	return x.head < y.head
}

func (k *picker) compare(a, b int32) int {
	if k.less(a, b) {
		return -1
	}
	if k.less(b, a) {
		return 1
	}
	return 0
}

// choose writes the victims the eviction asks for and frees them in t, or reports
// false, changing nothing, when the candidates do not suffice.
func (k *picker) choose(e *policies.Eviction, pool policies.Pool, floor int, t *Tokens) bool {
	if pool == policies.PoolHead {
		for h := range e.Heads {
			if int(e.Need[h]) > k.start[h+1]-k.start[h] {
				return false
			}
		}
		for h := range e.Heads {
			ids := k.ids[k.start[h]:k.start[h+1]]
			ranking.Smallest(ids, int(e.Need[h]), k.less)
			k.commit(e, t, ids[:e.Need[h]])
		}
		return true
	}
	n := e.PoolNeed
	if n > len(k.ids) {
		return false
	}
	ranking.Smallest(k.ids, n, k.less)
	if !k.keepsFloor(k.ids[:n], floor, t) {
		// Greedy in rank order, skipping the tokens of heads down to the floor.
		slices.SortFunc(k.ids, k.compare)
		clear(k.taken)
		chosen := 0
		for _, id := range k.ids {
			if h := k.cands[id].head; len(t.resident(int(h)))-k.taken[h] > floor && chosen < n {
				k.taken[h]++
				k.ids[chosen] = id
				chosen++
			}
		}
		if chosen < n {
			return false
		}
	}
	k.commit(e, t, k.ids[:n])
	return true
}

// keepsFloor reports whether evicting ids leaves every head at least floor tokens.
func (k *picker) keepsFloor(ids []int32, floor int, t *Tokens) bool {
	if floor == 0 {
		return true
	}
	clear(k.taken)
	for _, id := range ids {
		h := k.cands[id].head
		k.taken[h]++
		if len(t.resident(int(h)))-k.taken[h] < floor {
			return false
		}
	}
	return true
}

// commit writes ids as victims, lowest rank first, and frees their slots.
func (k *picker) commit(e *policies.Eviction, t *Tokens, ids []int32) {
	slices.SortFunc(ids, k.compare)
	for _, id := range ids {
		c := &k.cands[id]
		e.Victim(int(c.head), c.slot, 0)
		t.free(int(c.head), c.slot)
	}
}
