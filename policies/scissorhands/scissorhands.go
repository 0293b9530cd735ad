// Package scissorhands is Scissorhands (Liu et al. 2023), following the paper's
// Algorithm 2 (there is no official code): tokens that were important to recent
// queries are kept, on the persistence-of-importance hypothesis.
//
// Scoring rule: over a history window of the last `history` query rows, a token's
// count is the number of rows in which its attention was at least 1/t, t being the
// number of tokens that row attended to (i+1 for prompt row i, the resident count in
// decoding). The last `recent` tokens are protected; when over budget, the tokens with
// the lowest count are evicted.
//
// Choices where the paper is open, or where kvsim differs:
//   - Among tokens with equal counts, the one with the lower attention sum goes first,
//     then the older. The sum is over every query since the token entered, not only
//     the window, so that no per-row values have to be kept.
//   - Compression at the end of the prompt uses the prompt rows in the window.
//   - A row counts only for the tokens resident when it was seen; a slot reused by a
//     new token starts from a zero count and sum.
//   - One eviction per step (Layout.Slack 0); the paper's batched drop of m tokens is
//     not modelled.
//   - When the budget cannot hold the protected tokens, `recent` shrinks to what stays.
//
// Params: history (int ≥ 1, default 400; clamped to the sequence length), recent
// (int ≥ 0, default 10).
//
// Cost: each query row costs O(resident) to count plus O(width/64) to retire the row
// leaving the window, which keeps one bit per slot.
package scissorhands

import (
	"fmt"
	"math/bits"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
)

type policy struct {
	history, recent int

	cfg   policies.Config
	width int // slot ids stay below width
	next  int // position of the next query row
	res   policies.Residency
	rows  int // rows the window holds
	words int // uint64 words per row bitmap
	// hits[(h*rows+r)*words:][:words] is window row r's bitmap for head h: bit s is set
	// when slot s's token got attention ≥ 1/t from that row.
	hits    []uint64
	rowPos  []int     // rowPos[r] is the position of window row r's query, -1 when empty
	nextRow int       // window row the next query overwrites
	count   []int32   // count[h*width+s]: window rows in which slot s's token was hit
	sum     []float64 // sum[h*width+s]: attention slot s's token got since it entered
	ids     []int32   // scratch candidate list
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	s := &policy{history: p.Int("history", 400), recent: p.Int("recent", 10)}
	p.Check("history", s.history >= 1, "must be ≥ 1, got %d", s.history)
	p.Check("recent", s.recent >= 0, "must be ≥ 0, got %d", s.recent)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("scissorhands: %w", err)
	}
	return s, nil
}

func (s *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, fmt.Errorf("scissorhands: %w", err)
	}
	s.cfg, s.next = cfg, 0
	s.width = policies.SlotWidth(cfg, policies.Layout{})
	s.res.Reset(cfg)
	s.rows = min(s.history, cfg.MaxLen)
	s.words = (s.width + 63) / 64
	s.hits = make([]uint64, cfg.Heads*s.rows*s.words)
	s.rowPos = make([]int, s.rows)
	for r := range s.rowPos {
		s.rowPos[r] = -1
	}
	s.nextRow = 0
	s.count = make([]int32, cfg.Heads*s.width)
	s.sum = make([]float64, cfg.Heads*s.width)
	s.ids = make([]int32, 0, s.width)
	return policies.Layout{}, nil
}

// Observe moves each query row into the window, retiring the oldest.
func (s *policy) Observe(a *policies.Attention) error {
	if err := policies.CheckAttention(s.cfg, policies.Layout{}, &s.res, s.next, a); err != nil {
		return fmt.Errorf("scissorhands: %w", err)
	}
	s.res.Enter(a)
	if a.Phase == policies.Decode {
		for h, slot := range a.Slot[:a.Heads] {
			s.count[h*s.width+int(slot)] = 0
			s.sum[h*s.width+int(slot)] = 0
		}
	}
	for r := range a.Rows {
		s.retire(s.nextRow)
		i := a.Pos + r
		for h := range a.Heads {
			s.record(h, a.Row(h, r), i, a.Phase == policies.Prefill)
		}
		s.rowPos[s.nextRow] = i
		s.nextRow = (s.nextRow + 1) % s.rows
	}
	s.next += a.Rows
	return nil
}

// retire takes window row r's hits off the counts of the tokens they belong to.
func (s *policy) retire(r int) {
	rowPos := s.rowPos[r]
	if rowPos < 0 {
		return
	}
	for h := range s.cfg.Heads {
		pos := s.res.Heads[h].Positions()
		row := s.hits[(h*s.rows+r)*s.words:][:s.words]
		for w, word := range row {
			for word != 0 {
				slot := w*64 + bits.TrailingZeros64(word)
				word &= word - 1
				// A bit belongs to the slot's current token only if it was resident
				// when the row was seen.
				if p := pos[slot]; p >= 0 && int(p) <= rowPos {
					s.count[h*s.width+slot]--
				}
			}
			row[w] = 0
		}
	}
}

// record adds query row i of head h to the counts and sums, writing its bitmap into
// the window row about to be filled.
func (s *policy) record(h int, probs []float32, i int, prefill bool) {
	attended, cols := s.res.Heads[h].Resident(), min(s.width, len(probs))
	if prefill {
		attended, cols = i+1, i+1
	}
	threshold := 1 / float64(attended)
	bitmap := s.hits[(h*s.rows+s.nextRow)*s.words:][:s.words]
	count, sum := s.count[h*s.width:][:cols], s.sum[h*s.width:][:cols]
	for slot, v := range probs[:cols] {
		if v == 0 {
			continue // free slots, and tokens this row gives nothing
		}
		sum[slot] += float64(v)
		if float64(v) >= threshold {
			bitmap[slot/64] |= 1 << (slot % 64)
			count[slot]++
		}
	}
}

// ForkTo hands dst the window, counts and sums the prompt left: none depends on the
// budget (policies.Forker). Only the table width may differ, when a budget reaches
// the prompt; the prompt's slots, and so every bit and count, lie below both widths.
func (s *policy) ForkTo(dst policies.Policy) error {
	d, ok := dst.(*policy)
	switch {
	case !ok || d.history != s.history || d.recent != s.recent || d.cfg.Heads != s.cfg.Heads ||
		d.cfg.PromptLen != s.cfg.PromptLen || d.rows != s.rows:
		return fmt.Errorf("fork: destination is not a scissorhands instance with the same params and sequence")
	case s.next != s.cfg.PromptLen || d.next != 0:
		return fmt.Errorf("fork: source has seen %d and destination %d of %d prompt rows, want all and none",
			s.next, d.next, s.cfg.PromptLen)
	}
	P, words := s.cfg.PromptLen, (s.cfg.PromptLen+63)/64
	for h := range s.cfg.Heads {
		copy(d.count[h*d.width:][:P], s.count[h*s.width:][:P])
		copy(d.sum[h*d.width:][:P], s.sum[h*s.width:][:P])
		for r := range s.rows {
			copy(d.hits[(h*d.rows+r)*d.words:][:words], s.hits[(h*s.rows+r)*s.words:][:words])
		}
	}
	copy(d.rowPos, s.rowPos)
	d.nextRow, d.next = s.nextRow, s.next
	return nil
}

// Evict drops, per head, the unprotected tokens with the lowest counts.
func (s *policy) Evict(e *policies.Eviction) error {
	if err := policies.CheckEviction(s.cfg, policies.Layout{}, &s.res, s.next, e); err != nil {
		return fmt.Errorf("scissorhands: %w", err)
	}
	newest := s.next - 1
	for h := range e.Heads {
		e.Count[h] = 0
		n := int(e.Need[h])
		if n == 0 {
			continue
		}
		table := &s.res.Heads[h]
		recent := min(s.recent, table.Resident()-n)
		pos := table.Positions()[:s.width]
		count, sum := s.count[h*s.width:][:s.width], s.sum[h*s.width:][:s.width]
		less := func(a, b int32) bool {
			switch {
			case count[a] != count[b]:
				return count[a] < count[b]
			case sum[a] != sum[b]:
				return sum[a] < sum[b]
			}
			return pos[a] < pos[b]
		}
		ids := s.ids[:0]
		if n == 1 {
			// A decode step's one victim: the least unprotected slot, in one pass
			// over the resident list (the order is total, so its order is moot).
			best := int32(-1)
			for _, slot := range table.Live() {
				if int(pos[slot]) <= newest-recent && (best < 0 || less(slot, best)) {
					best = slot
				}
			}
			if best >= 0 {
				ids = append(ids, best)
			}
		} else {
			// The compression lists the slots in slot order: the selection's
			// order, which becomes the victims' order, depends on it.
			for slot, p := range pos {
				if p >= 0 && int(p) <= newest-recent {
					ids = append(ids, int32(slot))
				}
			}
			ranking.Smallest(ids, n, less)
		}
		if len(ids) < n {
			return fmt.Errorf("scissorhands: head %d: %d unprotected tokens, need %d victims", h, len(ids), n)
		}
		for _, slot := range ids[:n] {
			e.Victim(h, slot, 0)
			s.res.Free(h, slot)
		}
	}
	return nil
}

// TokenStateBytes declares the hit count (an int32), the attention sum (a float64)
// and one bit per history-window row, per head and resident token.
func (s *policy) TokenStateBytes() int { return 4 + 8 + (s.rows+7)/8 }
