// Package snapkv is SnapKV (Li et al. 2024): one-shot compression at the end of the
// prompt, voted by the prompt's last queries.
//
// Scoring rule: the last `window` prompt queries vote. A token's vote is the attention
// those queries give it, summed over them, then smoothed along the key axis by a 1-D
// pooling of width `kernel` (average or max) over the tokens outside the window, in
// position order. The cache keeps the window plus the Budget−window best-voted other
// tokens.
//
// Choices where the paper is open, or where kvsim differs:
//   - Pooling edges follow PyTorch's avg_pool1d and max_pool1d with stride 1 and
//     padding kernel/2, which the authors' code calls: the output has the input's
//     size; the average divides by `kernel` even where the kernel overhangs an edge
//     (the padding counts as zeros); the max ignores the padding. The kernel must be
//     odd.
//   - window is clamped to the budget (and at compression to the prompt), so a budget
//     smaller than the window keeps only the newest tokens.
//   - Ties go to the older token (lower position), which is evicted first.
//
// # Decoding
//
// The paper appends decode tokens without eviction. The param `decode` chooses:
//   - "append" (the default, the paper's behaviour): Layout.Slack is MaxLen, so the
//     host never evicts during decoding and the cache grows by the generated length,
//     which results must show.
//   - "recency" (kvsim's extension): the window keeps sliding. Prompt tokens before
//     the prompt's window stay (the vote kept them; when the prompt fits the budget
//     they count as kept). Every other token is evicted, oldest first, once it falls
//     out of the last `window` positions.
//   - "rescore" (kvsim's extension): each decode eviction re-runs the vote with the
//     last `window` queries as voters (prompt rows until decode rows replace them),
//     over the resident tokens outside the last `window` positions, pooled in
//     position order, and evicts the lowest.
//
// Both extensions use Slack 0: one eviction per step.
//
// Params: window (int ≥ 1, default 32), kernel (odd int, default 5), pooling ("avg" or
// "max", default "avg"), decode ("append", "recency" or "rescore", default "append").
package snapkv

import (
	"fmt"

	"github.com/kvsim/kvsim/policies"
	"github.com/kvsim/kvsim/policies/internal/ranking"
	"github.com/kvsim/kvsim/policies/internal/rowring"
)

const (
	decodeAppend  = "append"
	decodeRecency = "recency"
	decodeRescore = "rescore"
)

// Policy is SnapKV. Policies that divide a pooled budget among heads (PyramidKV,
// Ada-KV) build on it through Read, InitPool, Votes, EvictHeads, Resident, Decode and
// Window.
type Policy struct {
	window, kernel int
	maxPool        bool
	decode         string

	cfg          policies.Config
	layout       policies.Layout
	width        int // slot ids stay below width
	next         int // position of the next query row
	voteWindow   int // window clamped to the budget: voters, and protected tail in decode
	promptWindow int // voteWindow clamped to the prompt
	res          policies.Residency
	// order[h*width:][:resident] (resident: res.Heads[h].Resident()) lists head h's resident slots by position.
	order []int32
	// vote[h*width+s] is the attention head h's slot s got from the voters: summed
	// during prefill, refilled from ring before each decode vote.
	vote []float64
	// ring holds the last voteWindow rows ("rescore" only). A reused slot's column
	// still holds what older rows gave its previous token, but that never reaches a
	// vote: a token becomes a candidate only once it leaves the window, and by then
	// the ring holds only rows that came after it.
	ring rowring.Ring
	// summed[h] is the position of the next row when head h's votes were last
	// refilled from ring: a builder's Votes and the eviction after it share one sum.
	summed []int
	pooled []float64 // pooled[s]: one head's pooled vote, by slot
	line   []float64 // scratch: one head's votes in position order
	ids    []int32   // scratch candidate list
}

// New reads the params listed in the package doc.
func New(p *policies.Params) (policies.Policy, error) {
	k := read(p)
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("snapkv: %w", err)
	}
	return k, nil
}

// Read is New for a policy that builds SnapKV into a pooled layout and reads params of
// its own from p: it leaves the check for unknown keys to the caller (p.Err).
func Read(p *policies.Params) *Policy { return read(p) }

func read(p *policies.Params) *Policy {
	k := &Policy{
		window:  p.Int("window", 32),
		kernel:  p.Int("kernel", 5),
		maxPool: p.String("pooling", "avg", "avg", "max") == "max",
		decode:  p.String("decode", decodeAppend, decodeAppend, decodeRecency, decodeRescore),
	}
	p.Check("window", k.window >= 1, "must be ≥ 1, got %d", k.window)
	p.Check("kernel", k.kernel >= 1 && k.kernel%2 == 1, "must be odd and ≥ 1, got %d", k.kernel)
	return k
}

// Init starts a sequence under a per-head budget.
func (k *Policy) Init(cfg policies.Config) (policies.Layout, error) {
	return k.InitPool(cfg, policies.PoolHead)
}

// InitPool is Init for a policy that builds SnapKV into a pooled layout: the layout
// asks for pool, SnapKV takes any slot id a head can reach in a layer pool of
// cfg.Heads×cfg.Budget entries (for a model pool, cfg.Budget is the layer's share per
// head), and the builder evicts through EvictHeads.
func (k *Policy) InitPool(cfg policies.Config, pool policies.Pool) (policies.Layout, error) {
	if err := policies.CheckConfig(cfg); err != nil {
		return policies.Layout{}, fmt.Errorf("snapkv: %w", err)
	}
	layout := policies.Layout{Pool: pool}
	if k.decode == decodeAppend {
		layout.Slack = cfg.MaxLen
	}
	k.cfg, k.layout, k.next = cfg, layout, 0
	if pool == policies.PoolModel {
		k.layout.Pool = policies.PoolLayer // the layer's share, cfg.Budget per head
	}
	k.width = policies.SlotWidth(cfg, k.layout)
	k.voteWindow = min(k.window, cfg.Budget)
	k.promptWindow = min(k.voteWindow, cfg.PromptLen)
	k.res.Reset(cfg)
	n := cfg.Heads * k.width
	k.order = make([]int32, n)
	for h := range cfg.Heads {
		for s := range cfg.PromptLen {
			k.order[h*k.width+s] = int32(s)
		}
	}
	k.vote = make([]float64, n)
	if k.decode == decodeRescore {
		k.ring.Reset(cfg.Heads, k.voteWindow, k.width)
		k.summed = make([]int, cfg.Heads)
	}
	k.pooled = make([]float64, k.width)
	k.line = make([]float64, k.width)
	k.ids = make([]int32, 0, k.width)
	return layout, nil
}

// Observe sums the prompt voters' attention and, for "rescore", keeps the latest rows.
func (k *Policy) Observe(a *policies.Attention) error {
	if err := policies.CheckAttention(k.cfg, k.layout, &k.res, k.next, a); err != nil {
		return fmt.Errorf("snapkv: %w", err)
	}
	k.res.Enter(a)
	k.next += a.Rows
	rescore := k.decode == decodeRescore
	if a.Phase == policies.Decode {
		for h, s := range a.Slot[:a.Heads] {
			k.order[h*k.width+k.res.Heads[h].Resident()-1] = s
		}
		if rescore {
			k.ring.Push(a, 0)
		}
		return nil
	}
	firstVoter := k.cfg.PromptLen - k.promptWindow
	for r := max(0, firstVoter-a.Pos); r < a.Rows; r++ {
		i := a.Pos + r
		for h := range a.Heads {
			vote := k.vote[h*k.width:][:i+1]
			for s, v := range a.Row(h, r)[:i+1] {
				vote[s] += float64(v)
			}
		}
		if rescore {
			k.ring.Push(a, r)
		}
	}
	return nil
}

// Evict applies the vote at compression and the decode rule afterwards.
func (k *Policy) Evict(e *policies.Eviction) error {
	if err := policies.CheckEviction(k.cfg, k.layout, &k.res, k.next, e); err != nil {
		return fmt.Errorf("snapkv: %w", err)
	}
	return k.evict(e, e.Need)
}

// EvictHeads is Evict for a builder that has divided a pool's victims among heads:
// head h gives need[h], and e.Need is not read.
func (k *Policy) EvictHeads(e *policies.Eviction, need []int32) error {
	perHead := *e
	perHead.Need, perHead.PoolNeed = need, 0
	if err := policies.CheckEviction(k.cfg, policies.Layout{}, &k.res, k.next, &perHead); err != nil {
		return fmt.Errorf("snapkv: %w", err)
	}
	return k.evict(e, need)
}

// evict gives need[h] victims of each head h.
func (k *Policy) evict(e *policies.Eviction, need []int32) error {
	if e.Phase == policies.Decode && k.decode == decodeAppend {
		return fmt.Errorf("snapkv: decode eviction at position %d, but decode=append reserves room for every generated token", e.Pos)
	}
	newest := k.next - 1
	for h := range e.Heads {
		e.Count[h] = 0
		n := int(need[h])
		if n == 0 {
			continue
		}
		resident := k.res.Heads[h].Resident()
		var victims []int32
		var err error
		if e.Phase == policies.Prefill || k.decode == decodeRescore {
			victims, err = k.lowestVoted(h, n, k.prepareVote(h, e.Phase))
		} else {
			victims, err = k.oldestSliding(h, n, newest-k.voteWindow)
		}
		if err != nil {
			return fmt.Errorf("snapkv: head %d: %w", h, err)
		}
		for _, s := range victims {
			e.Victim(h, s, 0)
			k.res.Free(h, s)
		}
		k.compactOrder(h, resident)
	}
	return nil
}

// prepareVote readies head h's votes for an eviction of the given phase, refilling
// them from the ring for "rescore" decoding, and returns the newest position the vote
// may evict.
func (k *Policy) prepareVote(h int, phase policies.Phase) int {
	if phase == policies.Prefill {
		return k.next - 1 - k.promptWindow
	}
	if k.summed[h] != k.next {
		k.ring.Sums(h, k.order[h*k.width:][:k.res.Heads[h].Resident()], k.vote[h*k.width:][:k.width])
		k.summed[h] = k.next
	}
	return k.next - 1 - k.voteWindow
}

// candidates pools head h's votes over the resident tokens at positions ≤ last into
// k.pooled (by slot) and returns those tokens' slots in position order, in k.ids.
func (k *Policy) candidates(h, last int) []int32 {
	pos := k.res.Heads[h].Positions()
	order := k.order[h*k.width:][:k.res.Heads[h].Resident()]
	m := 0 // order is by position, so the candidates are a prefix
	for m < len(order) && int(pos[order[m]]) <= last {
		m++
	}
	line := k.line[:m]
	for i, s := range order[:m] {
		line[i] = k.vote[h*k.width+int(s)]
	}
	ids := append(k.ids[:0], order[:m]...)
	for i, s := range ids {
		k.pooled[s] = pool(line, i, k.kernel, k.maxPool)
	}
	return ids
}

// lowestVoted returns the n lowest pooled votes among head h's resident tokens at
// positions ≤ last.
func (k *Policy) lowestVoted(h, n, last int) ([]int32, error) {
	ids := k.candidates(h, last)
	if n > len(ids) {
		return nil, fmt.Errorf("need %d victims but only %d tokens are outside the window", n, len(ids))
	}
	pos, pooled := k.res.Heads[h].Positions(), k.pooled
	ranking.Smallest(ids, n, func(a, b int32) bool {
		if pooled[a] != pooled[b] {
			return pooled[a] < pooled[b]
		}
		return pos[a] < pos[b]
	})
	return ids[:n], nil
}

// Votes returns the tokens head h's vote may evict at the next Evict of the given
// phase (the resident tokens outside the window, by slot, in position order) and the
// pooled votes, indexed by slot. Decode votes exist only under decode = "rescore".
// Both slices are SnapKV's scratch: valid until its next call.
func (k *Policy) Votes(h int, phase policies.Phase) (slots []int32, pooled []float64) {
	return k.candidates(h, k.prepareVote(h, phase)), k.pooled
}

// Resident is how many tokens head h holds.
func (k *Policy) Resident(h int) int { return k.res.Heads[h].Resident() }

// Decode is the decode rule: "append", "recency" or "rescore".
func (k *Policy) Decode() string { return k.decode }

// Window is the window param: voters at compression, protected tail in decode
// (clamped to the budget and the prompt where they are smaller).
func (k *Policy) Window() int { return k.window }

// oldestSliding returns head h's n oldest tokens at positions ≤ last that the prompt
// vote did not keep.
func (k *Policy) oldestSliding(h, n, last int) ([]int32, error) {
	pos := k.res.Heads[h].Positions()
	voteKept := int32(k.cfg.PromptLen - k.promptWindow) // positions below it stay
	ids := k.ids[:0]
	for _, s := range k.order[h*k.width:][:k.res.Heads[h].Resident()] {
		if len(ids) == n || int(pos[s]) > last {
			break
		}
		if pos[s] >= voteKept {
			ids = append(ids, s)
		}
	}
	if len(ids) < n {
		return nil, fmt.Errorf("need %d victims but only %d tokens left the window since the vote", n, len(ids))
	}
	return ids, nil
}

// compactOrder drops freed slots from head h's position-ordered list, which held n
// slots.
func (k *Policy) compactOrder(h, n int) {
	pos := k.res.Heads[h].Positions()
	order := k.order[h*k.width:]
	kept := 0
	for _, s := range order[:n] {
		if pos[s] >= 0 {
			order[kept] = s
			kept++
		}
	}
}

// pool is output i of a stride-1 pooling of line with the given odd kernel and
// kernel/2 padding: the average counts the padding as zeros, the max ignores it.
func pool(line []float64, i, kernel int, useMax bool) float64 {
	lo, hi := max(0, i-kernel/2), min(len(line)-1, i+kernel/2)
	if useMax {
		m := line[lo]
		for _, v := range line[lo+1 : hi+1] {
			m = max(m, v)
		}
		return m
	}
	sum := 0.0
	for _, v := range line[lo : hi+1] {
		sum += v
	}
	return sum / float64(kernel)
}

// TokenStateBytes declares the observation window's vote (a float64) per head and resident token.
func (*Policy) TokenStateBytes() int { return 8 }
