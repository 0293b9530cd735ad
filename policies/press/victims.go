package press

import (
	"fmt"
	"math"
	"slices"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
)

// picker holds one eviction's candidates, all heads together, and chooses among them.
// Candidate i is head head[i]'s slot slot[i]; it ranks by (tier, score, pos, head),
// lowest first, a strict total order since a head holds each position once.
type picker struct {
	head, slot, pos []int32
	// tier 0 goes before tier 1 whatever the scores: generated tokens that left the
	// window under Decode=Window, ranked by position (score is the position).
	tier  []int8
	score []float64
	start []int   // head h's candidates are start[h]..start[h+1]
	ids   []int32 // candidate indices being ranked
	taken []int   // victims chosen per head
}

func (k *picker) reset(heads, width int) {
	n := heads * width
	if cap(k.slot) < n {
		k.head, k.slot, k.pos = make([]int32, 0, n), make([]int32, 0, n), make([]int32, 0, n)
		k.tier, k.score, k.ids = make([]int8, 0, n), make([]float64, 0, n), make([]int32, 0, n)
	}
	k.start = slices.Grow(k.start[:0], heads+1)[:heads+1]
	k.taken = slices.Grow(k.taken[:0], heads)[:heads]
}

// collect gathers the resident tokens at positions in [sinks, protectFrom): those at
// oldestFirst or later in tier 0, the others in tier 1 with scores from s (left out
// when s is nil).
func (k *picker) collect(t *Tokens, sinks, protectFrom, oldestFirst int, s Scorer) error {
	k.head, k.slot, k.pos = k.head[:0], k.slot[:0], k.pos[:0]
	k.tier, k.score, k.ids = k.tier[:0], k.score[:0], k.ids[:0]
	heads := len(k.start) - 1
	for h := range heads {
		k.start[h] = len(k.slot)
		// Tier 1 first, contiguous, so that one Score call fills its scores.
		if s != nil {
			for _, slot := range t.Resident(h) {
				if p := t.Pos(h, slot); p >= sinks && p < protectFrom && p < oldestFirst {
					k.add(h, slot, p, 1, 0)
				}
			}
			first := k.start[h]
			s.Score(h, k.slot[first:], k.score[first:])
			for i := first; i < len(k.score); i++ {
				if math.IsNaN(k.score[i]) {
					return fmt.Errorf("head %d: the scorer gave NaN for position %d", h, k.pos[i])
				}
			}
		}
		for _, slot := range t.Resident(h) {
			if p := t.Pos(h, slot); p >= sinks && p < protectFrom && p >= oldestFirst {
				k.add(h, slot, p, 0, float64(p))
			}
		}
	}
	k.start[heads] = len(k.slot)
	return nil
}

func (k *picker) add(h int, slot int32, pos int, tier int8, score float64) {
	k.ids = append(k.ids, int32(len(k.slot)))
	k.head, k.slot, k.pos = append(k.head, int32(h)), append(k.slot, slot), append(k.pos, int32(pos))
	k.tier, k.score = append(k.tier, tier), append(k.score, score)
}

func (k *picker) less(a, b int32) bool {
	switch {
	case k.tier[a] != k.tier[b]:
		return k.tier[a] < k.tier[b]
	case k.score[a] != k.score[b]:
		return k.score[a] < k.score[b]
	case k.pos[a] != k.pos[b]:
		return k.pos[a] < k.pos[b]
	}
	return k.head[a] < k.head[b]
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
			if h := k.head[id]; len(t.resident(int(h)))-k.taken[h] > floor && chosen < n {
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
		h := k.head[id]
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
		h := int(k.head[id])
		e.Victim(h, k.slot[id], 0)
		t.free(h, k.slot[id])
	}
}
