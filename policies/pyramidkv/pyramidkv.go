// Package pyramidkv is PyramidKV (Cai et al. 2024, "PyramidKV: Dynamic KV Cache
// Compression based on Pyramidal Information Funneling"): SnapKV's vote in every
// layer, under a layer budget that shrinks with depth, since attention spreads wide in
// the lower layers and narrows higher up.
//
// The layout asks for a model pool (policies.PoolModel): the model's L×H×B entries are
// divided among layers by LayerBudgets, and every head of layer l keeps b_l tokens,
// chosen as SnapKV chooses them (package snapkv: its window, kernel, pooling and decode
// params apply unchanged).
//
// # Schedule
//
// Every layer keeps SnapKV's window, w = min(window, B). The rest of the mean per-head
// budget, A = B − w, follows the paper's arithmetic sequence, with the endpoints of the
// authors' code: a_0 = (2 − 1/β)·A in the first layer down to a_{L−1} = A/β in the
// last, a_l = a_0 − l·(a_0 − a_{L−1})/(L−1). Its mean is A, so PyramidKV holds the
// L×H×B entries uniform SnapKV holds. Choices the paper leaves open:
//   - β is an integer (the authors use 20; 1 makes the schedule uniform), so that the
//     schedule is computed in exact integer arithmetic.
//   - Clamp: a layer never gets more than it can use. When a_0 exceeds U − w, with U
//     the prompt length under decode = "append" (no layer grows past the prompt) and
//     the sequence length otherwise, a_0 = U − w and a_{L−1} = 2A − a_0, which keeps
//     the mean (the authors' code clamps on the prompt length the same way).
//   - The schedule is uniform (every layer gets B, as SnapKV) for a one-layer model,
//     when the window takes the whole budget (A = 0), and when U ≤ B, where every
//     layer's tokens fit the uniform budget.
//   - Whole tokens: b_l = w + a_l rounded by largest remainders (ties to the lower
//     layer), so that Σ b_l = L·B exactly and each b_l is within one token of w + a_l.
//     Layer l's pool is H·b_l, and each of its heads holds at most b_l tokens (plus
//     decode slack, which the host adds per head).
//
// Params: beta (integer 1..10000, default 20), and snapkv's window (default 32),
// kernel, pooling and decode.
package pyramidkv

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/snapkv"
)

// maxBeta bounds β so that the schedule's integer products cannot overflow.
const maxBeta = 10000

type policy struct {
	beta int
	snap *snapkv.Policy

	cfg     policies.Config
	perHead []int   // perHead[l] is b_l, every head's budget in layer l
	need    []int32 // per-head victims handed to SnapKV
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	k := &policy{snap: snapkv.Read(p), beta: p.Int("beta", 20)}
	p.Check("beta", k.beta >= 1 && k.beta <= maxBeta, "must be an integer in 1..%d, got %d", maxBeta, k.beta)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("pyramidkv: %w", err)
	}
	return k, nil
}

func (k *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, fmt.Errorf("pyramidkv: %w", err)
	}
	if cfg.Layer < 0 || cfg.Layer >= cfg.Layers {
		return policies.Layout{}, fmt.Errorf("pyramidkv: layer %d of a %d-layer model", cfg.Layer, cfg.Layers)
	}
	k.cfg = cfg
	k.perHead = k.schedule(cfg, k.perHead)
	layer := cfg
	layer.Budget = k.perHead[cfg.Layer]
	layout, err := k.snap.InitPool(layer, policies.PoolModel)
	if err != nil {
		return policies.Layout{}, fmt.Errorf("pyramidkv: layer %d, budget %d per head: %w", cfg.Layer, layer.Budget, err)
	}
	k.need = make([]int32, cfg.Heads)
	return layout, nil
}

// LayerBudgets gives layer l the entries H·b_l of the schedule in the package doc.
func (k *policy) LayerBudgets(cfg policies.Config, entries []int) error {
	if err := policies.CheckConfig(cfg); err != nil {
		return fmt.Errorf("pyramidkv: %w", err)
	}
	if cfg.Layers < 1 || len(entries) != cfg.Layers {
		return fmt.Errorf("pyramidkv: %d layer budgets asked of a %d-layer model", len(entries), cfg.Layers)
	}
	for l, b := range k.schedule(cfg, nil) {
		entries[l] = cfg.Heads * b
	}
	return nil
}

// schedule returns every layer's per-head budget b_l (see the package doc), reusing
// buf.
func (k *policy) schedule(cfg policies.Config, buf []int) []int {
	layers, budget := cfg.Layers, cfg.Budget
	if cap(buf) < layers {
		buf = make([]int, layers)
	}
	perHead := buf[:layers]
	for l := range perHead {
		perHead[l] = budget
	}
	w := min(k.snap.Window(), budget)
	usable := cfg.MaxLen
	if k.snap.Decode() == "append" {
		usable = cfg.PromptLen
	}
	rest := int64(budget - w) // A
	if layers == 1 || rest == 0 || usable <= budget {
		return perHead
	}
	// a_l = n_l / den exactly, with n_l = top − l·step.
	beta, steps := int64(k.beta), int64(layers-1)
	den := beta * steps
	top, bottom := rest*(2*beta-1)*steps, rest*steps
	if room := int64(usable-w) * den; top > room {
		top, bottom = room, 2*rest*den-room
	}
	step := (top - bottom) / steps
	left := int64(layers) * rest // tokens still to hand out beyond the window
	for l := range perHead {
		a := (top - int64(l)*step) / den
		perHead[l] = w + int(a)
		left -= a
	}
	// Largest remainders: left < layers, and only layers with a fraction get a token.
	for ; left > 0; left-- {
		best, bestRem := -1, int64(0)
		for l := range perHead {
			n := top - int64(l)*step
			if rem := n % den; perHead[l]-w == int(n/den) && rem > bestRem {
				best, bestRem = l, rem
			}
		}
		perHead[best]++
	}
	return perHead
}

// Observe passes the rows to SnapKV, which keeps the votes.
func (k *policy) Observe(a *policies.Attention) error {
	if err := k.snap.Observe(a); err != nil {
		return fmt.Errorf("pyramidkv: %w", err)
	}
	return nil
}

// Evict brings every head of the layer back to b_l tokens by SnapKV's rule.
func (k *policy) Evict(e *policies.Eviction) error {
	if e.Heads != k.cfg.Heads {
		return fmt.Errorf("pyramidkv: eviction has %d heads, config has %d", e.Heads, k.cfg.Heads)
	}
	budget := k.perHead[k.cfg.Layer]
	total := 0
	for h := range k.need {
		k.need[h] = int32(max(0, k.snap.Resident(h)-budget))
		total += int(k.need[h])
	}
	if e.PoolNeed > total {
		return fmt.Errorf("pyramidkv: layer %d: pool needs %d victims, but its heads hold only %d tokens over their budget of %d",
			k.cfg.Layer, e.PoolNeed, total, budget)
	}
	if err := k.snap.EvictHeads(e, k.need); err != nil {
		return fmt.Errorf("pyramidkv: %w", err)
	}
	return nil
}

// TokenStateBytes is SnapKV's: its vote per resident token.
func (k *policy) TokenStateBytes() int { return k.snap.TokenStateBytes() }
