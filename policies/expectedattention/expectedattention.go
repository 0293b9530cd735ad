// Package expectedattention is Expected Attention (Devoto, Jeblick, Jégou, "Expected
// Attention: KV Cache Compression by Estimating Attention from Future Queries
// Distribution", 2025): a token is worth the attention that future queries are
// expected to give it, estimated from the statistics of the queries seen so far.
//
// Model: future queries q are Gaussian, q ~ N(μ, Σ), with μ and Σ the mean and
// covariance of the observed queries. With the attention logit c·q·k, the expected
// softmax numerator of key k has a closed form (the Gaussian moment generating
// function):
//
//	E[exp(c·q·k)] = exp(c·μ·k + ½·c²·kᵀΣk).
//
// The expected attention of token i is that numerator normalized over the tokens the
// head holds, ẑ_i = exp(s_i) / Σ_j exp(s_j) with s_i = c·μ·k_i + ½·c²·k_iᵀΣk_i, and
// its score, as in the paper, weighs it by the norm of its value: (ẑ_i + ε)·‖v_i‖.
// The lowest scores go.
//
// Choices and approximations where the paper is open, or where kvsim differs:
//   - OPT has learned absolute positions, not RoPE, so the paper's averaging of the
//     rotation over future positions does not apply: μ and Σ are those of the
//     observed queries themselves.
//   - Which queries: every query from position `sinks` on (the paper's reference code
//     leaves out the first tokens, whose hidden states are outliers), or only the
//     newest `queries` of them. In decoding, each step's query joins the statistics
//     before its eviction. Σ is the population covariance (divided by the count).
//   - covariance = "full" is the paper's d×d Σ (O(d²) per token and eviction);
//     "diagonal" keeps the variances only (O(d), it ignores correlations between
//     query dimensions); "none" drops the ½·c²·kᵀΣk term.
//   - c is `scale`. The contract sends the queries the host computes attention with;
//     OPT folds 1/√d into its query projection, so c defaults to 1. A host whose
//     queries are unscaled needs scale = 1/√d.
//   - The softmax runs over every token the head holds (sinks and protected
//     included), in float64. Before any query is counted, μ = 0 and Σ = 0, so every
//     token is expected alike and the value norms decide.
//   - The first `sinks` positions are never evicted (the paper's reference code keeps
//     4); ties go to the older token.
//
// # Decoding
//
// Through press: decode "score" (the default) re-scores the cache with the updated
// statistics at every step, as the paper also compresses while generating; "append"
// compresses the prompt only; "window" keeps the compressed prompt and the newest
// `window` tokens.
//
// Params: covariance ("full", "diagonal" or "none"; default "full"), queries (int ≥ 0,
// 0 for all; default 0), scale (> 0, default 1), vnorm (bool, default true), epsilon
// (≥ 0, default 0), and the press params decode ("score", "append" or "window"),
// window, protect (default 0) and sinks (default 4).
package expectedattention

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
)

type scorer struct {
	cov      string
	queries  int
	scale    float64
	vnorm    bool
	epsilon  float64
	sinks    int
	t        *press.Tokens
	stats    queryStats
	valueLen press.PerSlot // ‖v‖ by head and slot (vnorm only)
	logit    press.PerSlot // scratch: s_i by head and slot
	mu, sig  []float64     // scratch: one head's mean and covariance
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	s := &scorer{
		cov:     p.String("covariance", covFull, covFull, covDiagonal, covNone),
		queries: p.Int("queries", 0),
		scale:   p.Float("scale", 1),
		vnorm:   p.Bool("vnorm", true),
		epsilon: p.Float("epsilon", 0),
	}
	p.Check("queries", s.queries >= 0, "must be ≥ 0, got %d", s.queries)
	p.Check("scale", s.scale > 0 && !math.IsInf(s.scale, 0), "must be a positive number, got %g", s.scale)
	p.Check("epsilon", s.epsilon >= 0 && !math.IsInf(s.epsilon, 0), "must be ≥ 0, got %g", s.epsilon)
	opt, err := press.ReadOptions(p, press.Options{StoreKeys: true, Queries: true, Values: s.vnorm, Compact: true,
		Decode: press.Score, Sinks: 4})
	if err != nil {
		return nil, fmt.Errorf("expectedattention: %w", err)
	}
	if s.vnorm {
		opt.StateBytes = 8 // the value norm; logits are scratch, recomputed at each eviction
	}
	s.sinks = opt.Sinks
	return press.New("expectedattention", s, opt), nil
}

func (s *scorer) Start(cfg policies.Config, t *press.Tokens) error {
	s.t = t
	s.stats.reset(cfg, s.queries, s.cov)
	s.logit.Reset(cfg)
	if s.vnorm {
		s.valueLen.Reset(cfg)
	}
	s.mu = make([]float64, cfg.HeadDim)
	s.sig = make([]float64, len(s.stats.sq[0]))
	return nil
}

// Observe counts the rows' queries and records their tokens' value norms.
func (s *scorer) Observe(a *policies.Attention) error {
	for h := range a.Heads {
		for r := range a.Rows {
			if a.Pos+r >= s.sinks {
				s.stats.add(h, press.Vector(a, a.Queries, h, r))
			}
			if s.vnorm {
				s.valueLen.Set(h, press.TokenSlot(a, h, r), press.Norm(press.Vector(a, a.Values, h, r)))
			}
		}
	}
	return nil
}

func (s *scorer) Score(h int, slots []int32, scores []float64) {
	s.stats.moments(h, s.mu, s.sig)
	top := math.Inf(-1)
	resident := s.t.Resident(h)
	for _, slot := range resident {
		l := s.expectedLogit(s.t.Key(h, slot))
		s.logit.Set(h, slot, l)
		top = max(top, l)
	}
	total := 0.0
	for _, slot := range resident {
		total += math.Exp(s.logit.At(h, slot) - top)
	}
	for i, slot := range slots {
		z := math.Exp(s.logit.At(h, slot)-top) / total
		if s.vnorm {
			z = (z + s.epsilon) * s.valueLen.At(h, slot)
		}
		scores[i] = z
	}
}

// expectedLogit is c·μ·k + ½·c²·kᵀΣk for the covariance model chosen.
func (s *scorer) expectedLogit(k []float32) float64 {
	mean, quad := 0.0, 0.0
	for i, x := range k {
		mean += s.mu[i] * float64(x)
	}
	switch s.cov {
	case covFull:
		d := len(k)
		for i := range d {
			row, sum := s.sig[i*d:][:d], 0.0
			for j, y := range k {
				sum += row[j] * float64(y)
			}
			quad += float64(k[i]) * sum
		}
	case covDiagonal:
		for i, x := range k {
			quad += s.sig[i] * float64(x) * float64(x)
		}
	}
	return s.scale*mean + 0.5*s.scale*s.scale*quad
}
