// Package knorm is KNorm (Devoto, Zhao, Scardapane and Minervini, "A Simple and
// Effective L2 Norm-Based Strategy for KV Cache Compression", EMNLP 2024): a token's
// worth is read from its key alone. The paper finds that keys with a low L2 norm draw
// high attention, so the cache keeps the keys of lowest norm and evicts those of
// highest norm: the score is −‖k‖. It needs no attention, so it asks the host for keys
// and for compact decode rows.
//
// Choices where the paper is open, or where kvsim differs:
//   - The paper leaves the first layers of its models uncompressed; kvsim compresses
//     every layer, so that policies compare at equal memory.
//   - Norms are computed once per token from the key the host sends (the trace's
//     precision), in float64.
//   - Ties (equal norms) go to the older token, which is evicted first.
//   - keep = "high" inverts the rule (evict the lowest norms), to test whether a
//     model shares the paper's finding. The paper's models use RoPE; in kvsim's
//     trained OPT (learned positions) and its synthetic traces, high-norm keys are
//     the ones that draw attention: the paper's rule falls below random eviction
//     there, and the inverted one above TOVA on the trained OPT.
//
// # Decoding
//
// Through press: decode "score" (the default) applies the same rule at every step,
// the new token scored with the rest, as the paper's language-modelling runs keep a
// fixed cache size while generating; "append" compresses the prompt only (kvpress's
// KnormPress); "window" keeps the compressed prompt and the newest `window` tokens.
//
// Params: keep ("low", the paper's, or "high"), decode ("score", "append" or
// "window"), window (default 0, required ≥ 1 with decode=window), protect (newest
// positions never evicted, default 0), sinks (first positions never evicted,
// default 0).
package knorm

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
)

type scorer struct {
	sign float64     // −1 keeps low norms, +1 high ones
	norm press.Norms // ‖k‖ by head and slot
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	s := &scorer{sign: -1}
	if p.String("keep", "low", "low", "high") == "high" {
		s.sign = 1
	}
	opt, err := press.ReadOptions(p, press.Options{Keys: true, Compact: true, Decode: press.Score, StateBytes: 8})
	if err != nil {
		return nil, fmt.Errorf("knorm: %w", err)
	}
	return press.New("knorm", s, opt), nil
}

func (s *scorer) Start(cfg policies.Config, _ *press.Tokens) error {
	s.norm.Reset(cfg)
	return nil
}

func (s *scorer) Observe(a *policies.Attention) error {
	s.norm.Record(a, a.Keys)
	return nil
}

func (s *scorer) Score(h int, slots []int32, scores []float64) {
	for i, slot := range slots {
		scores[i] = s.sign * s.norm.At(h, slot)
	}
}
