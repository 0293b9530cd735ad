// Package expectedattention is Expected Attention (Devoto, Jeblick and Jégou,
// "Expected Attention: KV Cache Compression by Estimating Attention from Future
// Queries Distribution", 2025): a token is worth the attention that future queries
// are expected to give it, estimated from the statistics of the queries seen so far.
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
// Computing it: with n counted queries, μ·k = A/n and kᵀΣk = B/n − (A/n)², where
// A = Σ q·k and B = Σ (q·k)² over the counted queries. Each token keeps its A and B
// from the first eviction on (filled once from the running sums Σq and Σqqᵀ, O(d²)),
// and every counted query updates them (O(d) per token), so a decode step costs
// O(resident·d) for the exact full covariance, not O(resident·d²).
//
// Choices and approximations where the paper is open, or where kvsim differs:
//   - OPT has learned absolute positions, not RoPE, so the paper's averaging of the
//     rotation over future positions does not apply: μ and Σ are those of the
//     observed queries themselves.
//   - Which queries: every query from position `sinks` on (the paper's reference code
//     leaves out the first tokens, whose hidden states are outliers), or only the
//     newest `queries` of them. In decoding, each step's query joins the statistics
//     before its eviction. Σ is the population covariance (divided by n).
//   - covariance = "full" is the paper's d×d Σ; "none" drops the ½·c²·kᵀΣk term
//     (the paper's mean-only ablation).
//   - c is `scale`. The contract sends the queries the host computes attention with;
//     OPT folds 1/√d into its query projection, so c defaults to 1. A host whose
//     queries are unscaled needs scale = 1/√d.
//   - The softmax runs over every token the head holds (sinks and protected
//     included), in float64. Before any query is counted, every token is expected
//     alike and the value norms decide.
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
// Params: covariance ("full" or "none"; default "full"), queries (int ≥ 0, 0 for all;
// default 0), scale (> 0, default 1), vnorm (bool, default true), epsilon (≥ 0,
// default 0), and the press params decode ("score", "append" or "window"), window,
// protect (default 0) and sinks (default 4).
package expectedattention

import (
	"fmt"
	"math"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/press"
)

type scorer struct {
	covariance bool
	queries    int
	scale      float64
	vnorm      bool
	epsilon    float64
	sinks      int

	t     *press.Tokens
	stats queryStats
	// tracking[h]: lin and quad hold A and B of every token head h holds (from the
	// head's first eviction on).
	tracking []bool
	// projected[h]: lin and quad already hold A and B of the prompt's tokens, as
	// tracking would start them from the statistics of the whole prompt (a fork
	// computes them once for every budget); cleared by the first decode row.
	projected []bool
	lin, quad press.PerSlot // A = Σ q·k and B = Σ (q·k)² by head and slot
	valueLen  press.Norms   // ‖v‖ by head and slot (vnorm only)
	logit     press.PerSlot // scratch: s_i, then exp(s_i − max), by head and slot
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	s, opt, err := newScorer(p)
	if err != nil {
		return nil, fmt.Errorf("expectedattention: %w", err)
	}
	return press.NewForking("expectedattention", s, opt), nil
}

func newScorer(p *policies.Params) (*scorer, press.Options, error) {
	s := &scorer{
		covariance: p.String("covariance", "full", "full", "none") == "full",
		queries:    p.Int("queries", 0),
		scale:      p.Float("scale", 1),
		vnorm:      p.Bool("vnorm", true),
		epsilon:    p.Float("epsilon", 0),
	}
	p.Check("queries", s.queries >= 0, "must be ≥ 0, got %d", s.queries)
	p.Check("scale", s.scale > 0 && !math.IsInf(s.scale, 0), "must be a positive number, got %g", s.scale)
	p.Check("epsilon", s.epsilon >= 0 && !math.IsInf(s.epsilon, 0), "must be ≥ 0, got %g", s.epsilon)
	opt, err := press.ReadOptions(p, press.Options{Keys: true, Queries: true, Values: s.vnorm, Compact: true,
		Decode: press.Score, Sinks: 4})
	s.sinks = opt.Sinks
	opt.StoreKeys = true // A and B of the resident tokens are filled at the first eviction
	opt.StateBytes = 16  // A and B
	if s.vnorm {
		opt.StateBytes += 8
	}
	return s, opt, err
}

func (s *scorer) Start(cfg policies.Config, t *press.Tokens) error {
	s.t = t
	s.stats.reset(cfg, s.queries, s.covariance)
	s.tracking = make([]bool, cfg.Heads)
	s.projected = make([]bool, cfg.Heads)
	s.lin.Reset(cfg)
	s.quad.Reset(cfg)
	s.logit.Reset(cfg)
	if s.vnorm {
		s.valueLen.Reset(cfg)
	}
	return nil
}

// Observe counts the rows' queries, keeps the tracked tokens' sums up to date and
// records the value norms.
func (s *scorer) Observe(a *policies.Attention) error {
	if s.vnorm {
		s.valueLen.Record(a, a.Values)
	}
	for h := range a.Heads {
		if a.Phase == policies.Decode {
			s.projected[h] = false
		}
		for r := range a.Rows {
			if s.tracking[h] {
				s.startTracking(h, press.TokenSlot(a, h, r))
			}
			if a.Pos+r < s.sinks {
				continue
			}
			q := press.Vector(a, a.Queries, h, r)
			dropped := s.stats.add(h, q)
			if s.tracking[h] {
				s.track(h, q, 1)
				if dropped != nil {
					s.track(h, dropped, -1)
				}
			}
		}
	}
	return nil
}

// ForkTo hands dst the query statistics and value norms of the prompt, which do not
// depend on the budget (tracking starts at the compression, after the prompt).
func (s *scorer) ForkTo(dst press.Scorer) error {
	d, ok := dst.(*scorer)
	if !ok || d.covariance != s.covariance || d.queries != s.queries || d.vnorm != s.vnorm || d.sinks != s.sinks {
		return fmt.Errorf("destination is not an expectedattention scorer with the same params")
	}
	s.stats.copyTo(&d.stats)
	if s.vnorm {
		s.valueLen.CopyTo(&d.valueLen.PerSlot)
	}
	// Tracking starts at a head's first eviction, the compression, by projecting
	// every prompt key on the prompt's statistics (O(prompt × d²) per head): the
	// same for every budget, so it is done here once and handed over.
	for h, done := range s.projected {
		if !done {
			for _, slot := range s.t.Resident(h) {
				s.startTracking(h, slot)
			}
			s.projected[h] = true
		}
	}
	s.lin.CopyTo(&d.lin)
	s.quad.CopyTo(&d.quad)
	copy(d.projected, s.projected)
	return nil
}

// startTracking fills A and B of head h's token in slot from the running sums.
func (s *scorer) startTracking(h int, slot int32) {
	lin, quad := s.stats.project(h, s.t.Key(h, slot))
	s.lin.Set(h, slot, lin)
	s.quad.Set(h, slot, quad)
}

// track adds (sign 1) or removes (sign −1) query q in the sums of head h's tokens.
func (s *scorer) track(h int, q []float32, sign float64) {
	for _, slot := range s.t.Resident(h) {
		dot := 0.0
		for d, x := range s.t.Key(h, slot) {
			dot += float64(q[d]) * float64(x)
		}
		s.lin.Set(h, slot, s.lin.At(h, slot)+sign*dot)
		if s.covariance {
			s.quad.Set(h, slot, s.quad.At(h, slot)+sign*dot*dot)
		}
	}
}

func (s *scorer) Score(h int, slots []int32, scores []float64) {
	resident := s.t.Resident(h)
	if !s.tracking[h] {
		if !s.projected[h] {
			for _, slot := range resident {
				s.startTracking(h, slot)
			}
		}
		s.tracking[h] = true
	}
	n := float64(s.stats.count[h])
	top := math.Inf(-1)
	for _, slot := range resident {
		l := 0.0
		if n > 0 {
			mean := s.lin.At(h, slot) / n
			l = s.scale * mean
			if s.covariance {
				l += 0.5 * s.scale * s.scale * (s.quad.At(h, slot)/n - mean*mean)
			}
		}
		s.logit.Set(h, slot, l)
		top = max(top, l)
	}
	total := 0.0
	for _, slot := range resident {
		w := math.Exp(s.logit.At(h, slot) - top)
		s.logit.Set(h, slot, w)
		total += w
	}
	for i, slot := range slots {
		z := s.logit.At(h, slot) / total
		if s.vnorm {
			z = (z + s.epsilon) * s.valueLen.At(h, slot)
		}
		scores[i] = z
	}
}
