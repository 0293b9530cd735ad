// Package nacl is NACL (Chen et al., ACL 2024): one-shot eviction at the end of the
// prompt that mixes attention-based selection with random sampling.
//
// Scoring rule: the proxy tokens are the last proxy_ratio of the prompt's queries (at
// least one). A token's score is the attention the proxies give it, summed over them:
// S[j] = Σ_q A[q, j]. The first `sink` tokens and the last `recent` tokens are
// protected. What the budget leaves after them is split between a proxy part, which
// keeps the best-scored unprotected tokens, and a random part, which samples from the
// other unprotected tokens without replacement with probability ∝ softmax(S) over
// them. Everything else is evicted.
//
// Choices where the paper is open, or where kvsim differs:
//   - Defaults: proxy_ratio 0.01; a proxy_share:random_share split of 12:7 (the
//     authors keep 12% and 7% of the prompt; kvsim budgets are token counts, so the
//     same proportions split the budget); sink 4 (the authors use 256 for prompts of
//     100k tokens, far longer than OPT's); recent equal to the proxy count, 1% of the
//     prompt like the authors' token_protect_ratio.
//   - The proxy part is round(free·proxy_share/(proxy_share+random_share)) tokens,
//     free being what the protected tokens leave; the random part gets the rest.
//   - Protected counts shrink to what stays resident: sink first, then recent.
//   - The proxies' rows are the causal rows the host shows; the authors' kernel lets
//     a proxy also see the proxy tokens after it.
//   - Sampling uses the Gumbel-top-k trick: each candidate's key is S[j] plus
//     standard Gumbel noise, and the highest keys are kept. That is the same
//     distribution as drawing one by one ∝ softmax(S) without replacement, and it
//     needs no exponentials, so large scores cannot overflow. The noise is drawn in
//     slot order from one PCG stream per head, seeded with (Config.Seed,
//     Layer<<32 | head).
//   - Ties go to the older token (lower position), which is evicted first.
//
// # Decoding
//
// The paper evicts once, at the end of the prompt. The param `decode` chooses what
// happens next:
//   - "append" (the default, the paper's behaviour): Layout.Slack is MaxLen, so the
//     host never evicts during decoding and the cache grows by the generated length,
//     which results must show.
//   - "reevict" (kvsim's extension, not in the paper): Slack 0; each decode eviction
//     applies the same rule, with the same protected counts and split, and with the
//     most recent queries as proxies (as many as at the prompt: prompt rows until
//     decode rows replace them).
//
// Params: proxy_ratio (in (0, 1], default 0.01), sink (int ≥ 0, default 4), recent
// (int ≥ 0, default the proxy count), proxy_share and random_share (≥ 0, not both 0,
// defaults 12 and 7), decode ("append" or "reevict", default "append").
package nacl

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
	"github.com/kvsim/kvsim/policies/internal/rowring"
)

const (
	decodeAppend  = "append"
	decodeReevict = "reevict"
)

type policy struct {
	proxyRatio              float64
	sink, recentParam       int // recentParam < 0: the proxy count
	proxyShare, randomShare float64
	reevict                 bool

	cfg     policies.Config
	layout  policies.Layout
	width   int // slot ids stay below width
	next    int // position of the next query row
	proxies int // proxy rows
	recent  int // protected recent tokens, resolved from recentParam
	res     policies.Residency
	// score[h*width+s] is the proxies' attention on head h's slot s: summed over the
	// prompt's proxies during prefill, refilled from ring before a decode eviction.
	score []float64
	ring  rowring.Ring // the latest proxies' rows; "reevict" only
	rngs  []rand.PCG   // one stream per head
	key   []float64    // key[s]: one head's sampling keys, by slot
	ids   []int32      // scratch candidate list
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	n := &policy{
		proxyRatio:  p.Float("proxy_ratio", 0.01),
		sink:        p.Int("sink", 4),
		recentParam: p.Int("recent", -1),
		proxyShare:  p.Float("proxy_share", 12),
		randomShare: p.Float("random_share", 7),
		reevict:     p.String("decode", decodeAppend, decodeAppend, decodeReevict) == decodeReevict,
	}
	p.Check("proxy_ratio", n.proxyRatio > 0 && n.proxyRatio <= 1, "must be in (0, 1], got %g", n.proxyRatio)
	p.Check("sink", n.sink >= 0, "must be ≥ 0, got %d", n.sink)
	p.Check("recent", !p.Has("recent") || n.recentParam >= 0, "must be ≥ 0, got %d", n.recentParam)
	p.Check("proxy_share", n.proxyShare >= 0, "must be ≥ 0, got %g", n.proxyShare)
	p.Check("random_share", n.randomShare >= 0 && n.proxyShare+n.randomShare > 0,
		"must be ≥ 0 and leave a positive total with proxy_share, got %g", n.randomShare)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("nacl: %w", err)
	}
	return n, nil
}

func (n *policy) Init(cfg policies.Config) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, fmt.Errorf("nacl: %w", err)
	}
	layout := policies.Layout{}
	if !n.reevict {
		layout.Slack = cfg.MaxLen
	}
	n.cfg, n.layout, n.next = cfg, layout, 0
	n.width = policies.SlotWidth(cfg, layout)
	n.proxies = min(cfg.PromptLen, max(1, int(n.proxyRatio*float64(cfg.PromptLen))))
	n.recent = n.recentParam
	if n.recent < 0 {
		n.recent = n.proxies
	}
	n.res.Reset(cfg)
	n.score = make([]float64, cfg.Heads*n.width)
	if n.reevict {
		n.ring.Reset(cfg.Heads, n.proxies, n.width)
	}
	n.rngs = make([]rand.PCG, cfg.Heads)
	for h := range n.rngs {
		n.rngs[h].Seed(cfg.Seed, uint64(cfg.Layer)<<32|uint64(h))
	}
	n.key = make([]float64, n.width)
	n.ids = make([]int32, 0, n.width)
	return layout, nil
}

// Observe sums the prompt proxies' attention and, for "reevict", keeps the latest
// rows.
func (n *policy) Observe(a *policies.Attention) error {
	if err := policies.CheckAttention(n.cfg, n.layout, &n.res, n.next, a); err != nil {
		return fmt.Errorf("nacl: %w", err)
	}
	n.res.Enter(a)
	n.next += a.Rows
	if a.Phase == policies.Decode {
		if n.reevict {
			for h, s := range a.Slot[:a.Heads] {
				n.ring.Forget(h, s)
			}
			n.ring.Push(a, 0)
		}
		return nil
	}
	firstProxy := n.cfg.PromptLen - n.proxies
	for r := max(0, firstProxy-a.Pos); r < a.Rows; r++ {
		i := a.Pos + r
		for h := range a.Heads {
			score := n.score[h*n.width:][:i+1]
			for s, v := range a.Row(h, r)[:i+1] {
				score[s] += float64(v)
			}
		}
		if n.reevict {
			n.ring.Push(a, r)
		}
	}
	return nil
}

// Evict applies the NACL rule at compression and, for "reevict", in decoding.
func (n *policy) Evict(e *policies.Eviction) error {
	if err := policies.CheckEviction(n.cfg, n.layout, &n.res, n.next, e); err != nil {
		return fmt.Errorf("nacl: %w", err)
	}
	if e.Phase == policies.Decode && !n.reevict {
		return fmt.Errorf("nacl: decode eviction at position %d, but decode=append reserves room for every generated token", e.Pos)
	}
	for h := range e.Heads {
		e.Count[h] = 0
		if e.Need[h] == 0 {
			continue
		}
		for _, s := range n.victims(h, int(e.Need[h]), e.Phase == policies.Decode) {
			e.Victim(h, s, 0)
			n.res.Free(h, s)
		}
	}
	return nil
}

// victims picks head h's need victims: everything unprotected that neither the proxy
// part nor the random part keeps.
func (n *policy) victims(h, need int, decoding bool) []int32 {
	pos := n.res.Heads[h].Positions()[:n.width]
	keep := n.res.Heads[h].Resident() - need
	sink := min(n.sink, keep)
	recent := min(n.recent, keep-sink)
	newest := n.next - 1

	ids := n.ids[:0]
	for s, p := range pos {
		if p >= int32(sink) && int(p) <= newest-recent {
			ids = append(ids, int32(s))
		}
	}
	free := len(ids) - need // room the protected tokens leave
	proxyPart := int(math.Round(float64(free) * n.proxyShare / (n.proxyShare + n.randomShare)))

	score := n.score[h*n.width:][:n.width]
	if decoding {
		n.ring.Sums(h, ids, score)
	}
	// The proxy part keeps the best scores; the rest goes to the random draw.
	rest := len(ids) - proxyPart
	ranking.Smallest(ids, rest, func(a, b int32) bool {
		if score[a] != score[b] {
			return score[a] < score[b]
		}
		return pos[a] < pos[b]
	})
	ids = ids[:rest]
	if rest == need {
		return ids
	}
	// Gumbel-top-k: the random part keeps the highest keys, so the lowest are evicted.
	slices.Sort(ids)
	key, rng := n.key, &n.rngs[h]
	for _, s := range ids {
		u := (float64(rng.Uint64()>>12) + 0.5) / (1 << 52) // uniform in (0, 1), both ends excluded
		key[s] = score[s] - math.Log(-math.Log(u))
	}
	ranking.Smallest(ids, need, func(a, b int32) bool {
		if key[a] != key[b] {
			return key[a] < key[b]
		}
		return pos[a] < pos[b]
	})
	return ids[:need]
}

// TokenStateBytes declares the proxies' attention score (a float64) per head and resident token.
func (*policy) TokenStateBytes() int { return 8 }
