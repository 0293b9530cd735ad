package gpu

import (
	"errors"
	"fmt"
	"time"

	"github.com/kvsim/kvsim/internal/buf"
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/host"
)

// Engine runs sequences on a backend.
type Engine struct {
	backend Backend
	cfg     checkpoint.Config
}

// New makes an engine on b. The engine does not own b: close b yourself.
func New(b Backend) *Engine {
	return &Engine{backend: b, cfg: b.Config()}
}

// Backend is the backend the engine runs on.
func (e *Engine) Backend() Backend { return e.backend }

// Config is the model's configuration.
func (e *Engine) Config() checkpoint.Config { return e.cfg }

// Sequence is one sequence being decoded: a KV cache on the backend and the host's
// slot tables for it, one per layer. Tokens are fed in order, at positions 0, 1, ...
type Sequence struct {
	engine *Engine
	kv     KV
	tables []*Slots
	n      int // tokens fed so far: the next token's position
	// slotTime is the time spent on the slot tables (see SlotTime).
	slotTime time.Duration

	// Scratch reused between Feed calls.
	positions []int32
	slots     [][]int32
}

// NewSequence starts a sequence whose cache has capacity slots per (layer, head),
// plus a compensation slot per (layer, head) when compensation is set.
func (e *Engine) NewSequence(capacity int, compensation bool) (*Sequence, error) {
	if capacity < 1 {
		return nil, fmt.Errorf("sequence: capacity %d, want at least 1", capacity)
	}
	kv, err := e.backend.NewKV(capacity, compensation)
	if err != nil {
		return nil, err
	}
	s := &Sequence{engine: e, kv: kv, tables: make([]*Slots, e.cfg.NumHiddenLayers),
		slots: make([][]int32, e.cfg.NumHiddenLayers)}
	for l := range s.tables {
		s.tables[l] = NewSlots(e.cfg.NumAttentionHeads, capacity)
	}
	return s, nil
}

// Len is the number of tokens fed so far, which is the next token's position.
func (s *Sequence) Len() int { return s.n }

// Slots is layer l's slot table. It changes only through Feed and Evict.
func (s *Sequence) Slots(l int) *Slots { return s.tables[l] }

// KV is the sequence's cache on the backend.
func (s *Sequence) KV() KV { return s.kv }

// SlotTime is the time spent so far on slot bookkeeping: placing fed tokens in
// free slots, and checking and applying victims, the backend's merge into the
// compensation slot included. It is the eviction cost the model's forward pass
// does not pay without eviction.
func (s *Sequence) SlotTime() time.Duration { return s.slotTime }

// Close releases the cache.
func (s *Sequence) Close() error { return s.kv.Close() }

// Outputs says what a Feed call returns besides filling the cache; see Batch for
// the fields.
type Outputs struct {
	Logits             []float32
	Want               Want
	Observe            func(v *LayerView) error
	ObserveConcurrency int
}

// Feed runs tokens through the model at the next positions: each enters the lowest
// free slot of every (layer, head), attends to what the cache holds, and the logits
// and per-layer views out asks for are produced. Bad input is refused with nothing
// changed; after an error from the backend or the observer, the sequence is in an
// undefined state and should be closed.
func (s *Sequence) Feed(tokens []int32, out Outputs) error {
	cfg := &s.engine.cfg
	n := len(tokens)
	if n == 0 {
		return errors.New("feed: no tokens")
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= cfg.VocabSize {
			return fmt.Errorf("feed: token %d (at position %d) is outside the vocabulary of %d", t, s.n+i, cfg.VocabSize)
		}
	}
	if last := s.n + n - 1; last >= cfg.MaxPositionEmbeddings {
		return fmt.Errorf("feed: position %d is beyond the model's %d positions (max_position_embeddings)",
			last, cfg.MaxPositionEmbeddings)
	}
	if len(out.Logits)%cfg.VocabSize != 0 || len(out.Logits)/cfg.VocabSize > n {
		return fmt.Errorf("feed: %d logits for %d tokens: want a multiple of the vocabulary size %d, at most one row per token",
			len(out.Logits), n, cfg.VocabSize)
	}
	H := cfg.NumAttentionHeads
	for l, t := range s.tables {
		for h := range H {
			if free := t.Capacity() - t.Resident(h); free < n {
				return fmt.Errorf("feed: %d tokens, but layer %d head %d has %d free slots of %d", n, l, h, free, t.Capacity())
			}
		}
	}
	start := time.Now()
	s.positions = buf.Grow(s.positions, n)
	for i := range n {
		s.positions[i] = int32(s.n + i)
	}
	for l, t := range s.tables {
		s.slots[l] = buf.Grow(s.slots[l], n*H)
		for i := range n {
			if err := t.Enter(s.positions[i], s.slots[l][i*H:(i+1)*H]); err != nil {
				return fmt.Errorf("feed: layer %d: %w", l, err) // unreachable: capacity was checked
			}
		}
	}
	s.n += n
	s.slotTime += time.Since(start)
	b := &Batch{Tokens: tokens, Positions: s.positions, Slots: s.slots, Logits: out.Logits, Want: out.Want,
		Observe: out.Observe, ObserveConcurrency: out.ObserveConcurrency}
	return s.engine.backend.Forward(s.kv, b)
}

// Evict frees victims of layer l, named as policies name them (see KV.Evict), after
// checking them as replay does (host.CheckVictims): every victim a resident slot
// named once, counts within the stride and the resident tokens and, when e.Need is
// set, at least the need, all heads together at least e.PoolNeed, and merge
// weights finite and non-negative. On error nothing changes.
func (s *Sequence) Evict(l int, e *policies.Eviction) error {
	if l < 0 || l >= len(s.tables) {
		return fmt.Errorf("evict: layer %d out of range [0, %d)", l, len(s.tables))
	}
	start := time.Now()
	defer func() { s.slotTime += time.Since(start) }()
	t := s.tables[l]
	comp := s.kv.Compensation() && e.Weights != nil
	if len(e.Count) < t.Heads() || len(e.Victims) < t.Heads()*e.Stride || comp && len(e.Weights) < t.Heads()*e.Stride {
		return fmt.Errorf("evict: layer %d: %d counts, %d victims and %d weights for %d heads of stride %d",
			l, len(e.Count), len(e.Victims), len(e.Weights), t.Heads(), e.Stride)
	}
	if e.Need != nil && len(e.Need) < t.Heads() {
		return fmt.Errorf("evict: layer %d: %d needs for %d heads", l, len(e.Need), t.Heads())
	}
	if err := host.CheckVictims(e, t.tables, comp); err != nil {
		return fmt.Errorf("evict: layer %d: %w", l, err)
	}
	for h := range t.Heads() {
		for _, v := range e.Victims[h*e.Stride : h*e.Stride+int(e.Count[h])] {
			t.Free(h, v) // checked above
		}
	}
	return s.kv.Evict(l, e)
}
