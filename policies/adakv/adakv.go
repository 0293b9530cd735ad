// Package adakv is Ada-KV on SnapKV's scores (Feng et al. 2024, "Ada-KV: Optimizing KV
// Cache Eviction by Adaptive Budget Allocation for Efficient LLM Inference", in its
// AdaSnapKV form): one budget per layer, shared adaptively among the layer's heads.
//
// The layout asks for a layer pool (policies.PoolLayer): the layer's heads hold H×B
// tokens together. Every head keeps SnapKV's window (package snapkv: window, kernel,
// pooling and decode params apply unchanged). The other H·(B − w) entries, w =
// min(window, B), go to the highest pooled votes across all heads of the layer, so a
// head whose attention is spread keeps more tokens than one that attends to a few; the
// votes of different heads are comparable because each voter's row sums to 1. Each
// head then keeps its own best tokens, as SnapKV does, in the number that selection
// gave it.
//
// Choices where the paper is open, or where kvsim differs:
//   - Safeguard: every head first keeps its floor(alpha·(B − w)) best-voted tokens
//     beyond the window (the paper's α; 0.2 by default as in the authors' code), so
//     that no head is emptied. alpha = 0 is pure top-k across heads; alpha = 1 gives
//     every head B tokens, which is SnapKV.
//   - Ties between equal votes evict the lower head first, then the older token.
//   - Decoding follows SnapKV's decode param. Under "recency" each head keeps the
//     share the compression gave it (B each when the prompt needed no compression),
//     its newest tokens sliding through the window. Under "rescore" (kvsim's
//     extension, as in snapkv) every decode eviction re-runs the adaptive selection on
//     the last `window` queries' votes, so shares move between heads as decoding goes.
//
// Params: alpha (number in [0, 1], default 0.2), and snapkv's window (default 32),
// kernel, pooling and decode.
package adakv

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
	"github.com/kvsim/kvsim/policies/snapkv"
)

type policy struct {
	alpha float64
	snap  *snapkv.Policy

	cfg       policies.Config
	safeguard int     // candidates each head keeps before the layer-wide selection
	share     []int   // per head: tokens kept under "recency" decoding
	need      []int32 // per head: victims handed to SnapKV
	// The layer-wide selection: candidate i is head cand[i].head's token at rank
	// cand[i].rank of its position order, voted cand[i].vote.
	cand []candidate
	ids  []int32 // scratch: indexes into cand
}

type candidate struct {
	vote       float64
	head, rank int32
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	k := &policy{snap: snapkv.Read(p), alpha: p.Float("alpha", 0.2)}
	p.Check("alpha", k.alpha >= 0 && k.alpha <= 1, "must be in [0, 1], got %g", k.alpha)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("adakv: %w", err)
	}
	return k, nil
}

func (k *policy) Init(cfg policies.Config) (policies.Layout, error) {
	layout, err := k.snap.InitPool(cfg, policies.PoolLayer)
	if err != nil {
		return policies.Layout{}, fmt.Errorf("adakv: %w", err)
	}
	k.cfg = cfg
	k.safeguard = int(math.Floor(k.alpha * float64(cfg.Budget-min(k.snap.Window(), cfg.Budget))))
	k.share = make([]int, cfg.Heads)
	for h := range k.share {
		k.share[h] = cfg.Budget
	}
	k.need = make([]int32, cfg.Heads)
	slots := cfg.Heads * policies.SlotWidth(cfg, layout) // candidates, all heads together
	k.cand = make([]candidate, 0, slots)
	k.ids = make([]int32, 0, slots)
	return layout, nil
}

// Observe passes the rows to SnapKV, which keeps the votes.
func (k *policy) Observe(a *policies.Attention) error {
	if err := k.snap.Observe(a); err != nil {
		return fmt.Errorf("adakv: %w", err)
	}
	return nil
}

// Evict divides the pool's victims among heads and lets SnapKV pick each head's.
func (k *policy) Evict(e *policies.Eviction) error {
	if e.Heads != k.cfg.Heads || e.PoolNeed < 0 {
		return fmt.Errorf("adakv: eviction of %d victims from %d heads, config has %d heads", e.PoolNeed, e.Heads, k.cfg.Heads)
	}
	var err error
	if e.Phase == policies.Prefill || k.snap.Decode() == "rescore" {
		err = k.adaptiveNeeds(e.Phase, e.PoolNeed)
	} else {
		err = k.shareNeeds(e.PoolNeed)
	}
	if err != nil {
		return fmt.Errorf("adakv: position %d: %w", e.Pos, err)
	}
	if err := k.snap.EvictHeads(e, k.need); err != nil {
		return fmt.Errorf("adakv: %w", err)
	}
	if e.Phase == policies.Prefill {
		for h := range k.share {
			k.share[h] = k.snap.Resident(h)
		}
	}
	return nil
}

// adaptiveNeeds sets k.need to each head's part of the n lowest votes of the layer,
// after every head's safeguard.
func (k *policy) adaptiveNeeds(phase policies.Phase, n int) error {
	k.cand, k.ids = k.cand[:0], k.ids[:0]
	less := func(a, b int32) bool {
		x, y := k.cand[a], k.cand[b]
		if x.vote != y.vote {
			return x.vote < y.vote
		}
		if x.head != y.head {
			return x.head < y.head
		}
		return x.rank < y.rank
	}
	for h := range k.cfg.Heads {
		slots, votes := k.snap.Votes(h, phase)
		start := len(k.ids)
		for i, s := range slots {
			k.ids = append(k.ids, int32(len(k.cand)))
			k.cand = append(k.cand, candidate{vote: votes[s], head: int32(h), rank: int32(i)})
		}
		// Only the head's candidates below its safeguard may go.
		open := max(0, len(slots)-k.safeguard)
		ranking.Smallest(k.ids[start:], open, less)
		k.ids = k.ids[:start+open]
	}
	if n > len(k.ids) {
		return fmt.Errorf("the pool needs %d victims but the heads' windows and safeguards (%d each) leave %d", n, k.safeguard, len(k.ids))
	}
	ranking.Smallest(k.ids, n, less)
	clear(k.need)
	for _, i := range k.ids[:n] {
		k.need[k.cand[i].head]++
	}
	return nil
}

// shareNeeds sets k.need to bring every head back to its share, at least n in all.
func (k *policy) shareNeeds(n int) error {
	total := 0
	for h := range k.need {
		k.need[h] = int32(max(0, k.snap.Resident(h)-k.share[h]))
		total += int(k.need[h])
	}
	if n > total {
		return fmt.Errorf("the pool needs %d victims but the heads hold only %d over their shares", n, total)
	}
	return nil
}

// TokenStateBytes is SnapKV's: its vote per resident token.
func (k *policy) TokenStateBytes() int { return k.snap.TokenStateBytes() }
