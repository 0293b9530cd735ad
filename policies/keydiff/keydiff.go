// Package keydiff is KeyDiff (Park, Jones, Morse, Goel, Lee and Lott, "KeyDiff: Key
// Similarity-Based KV Cache Eviction for Long-Context LLM Inference in
// Resource-Constrained Environments", 2025): keys that look like the rest of the cache
// draw little attention, so the cache evicts the keys most similar to its anchor, the
// mean of its normalized keys. A token's score is −cos(k, a) with
// a = (1/n) Σ_j k_j/‖k_j‖ over the n tokens the head holds at that moment.
//
// Choices where the paper is open, or where kvsim differs:
//   - The paper processes long prompts in blocks, evicting as each block arrives;
//     kvsim's protocol compresses once after the prompt, with the anchor over the whole
//     prompt. Block-wise prefill changes the attention later blocks see, which a trace
//     of full-cache attention cannot replay.
//   - The anchor is taken over every token the head holds, sinks and protected tokens
//     included, and recomputed at every eviction (O(n·d) per head), in float64.
//   - A zero key has no direction: it adds nothing to the anchor's sum (it still counts
//     in n, which does not change a cosine) and its cosine is 0; a zero anchor gives
//     every token cosine 0, and the ties go to the older token.
//   - Ties go to the older token, which is evicted first.
//
// # Decoding
//
// Through press: decode "score" (the default) applies the rule at every step under a
// fixed budget, the new token scored with the rest, as the paper decodes under its
// memory limit; "append" compresses the prompt only (kvpress's KeyDiffPress); "window"
// keeps the compressed prompt and the newest `window` tokens.
//
// Params: decode ("score", "append" or "window"), window (default 0, required ≥ 1
// with decode=window), protect (newest positions never evicted, default 0), sinks
// (first positions never evicted, default 0).
package keydiff

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
)

type scorer struct {
	t      *press.Tokens
	norm   press.Norms // ‖k‖ by head and slot
	anchor []float64   // scratch: one head's anchor
}

// New reads the press params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	opt, err := press.ReadOptions(p, press.Options{StoreKeys: true, Compact: true, Decode: press.Score, StateBytes: 8})
	if err != nil {
		return nil, fmt.Errorf("keydiff: %w", err)
	}
	return press.New("keydiff", &scorer{}, opt), nil
}

func (s *scorer) Start(cfg policies.Config, t *press.Tokens) error {
	s.t = t
	s.norm.Reset(cfg)
	s.anchor = make([]float64, cfg.HeadDim)
	return nil
}

func (s *scorer) Observe(a *policies.Attention) error {
	s.norm.Record(a, a.Keys)
	return nil
}

func (s *scorer) Score(h int, slots []int32, scores []float64) {
	clear(s.anchor)
	resident := s.t.Resident(h)
	for _, slot := range resident {
		n := s.norm.At(h, slot)
		if n == 0 {
			continue
		}
		inv := 1 / n
		for d, x := range s.t.Key(h, slot) {
			s.anchor[d] += float64(x) * inv
		}
	}
	anchorNorm := 0.0
	for d := range s.anchor {
		s.anchor[d] /= float64(len(resident))
		anchorNorm += s.anchor[d] * s.anchor[d]
	}
	anchorNorm = math.Sqrt(anchorNorm)
	for i, slot := range slots {
		n := s.norm.At(h, slot)
		if n == 0 || anchorNorm == 0 {
			scores[i] = 0
			continue
		}
		dot := 0.0
		for d, x := range s.t.Key(h, slot) {
			dot += float64(x) * s.anchor[d]
		}
		scores[i] = -dot / (n * anchorNorm)
	}
}
