// Package auv is the AUV eviction policy (Li et al., "AUV: Efficient KV Cache Eviction
// for LLMs via Attention Score Aggregation and Usage Count", §3.2–3.4), with every
// mechanism behind a parameter so that the paper's ablation (Fig. 6) can be replayed.
//
// # Scoring
//
// A token's aggregated attention score (AAS) is the scaled column mean of Eq. 2: each
// attention row i is scaled by N_i/N_max (N_i its valid entries, N_max the longest row)
// and each column is averaged over the rows that saw the token. In prefill, N_i = i+1
// and N_max = P, the longest row of the prompt's causal matrix, so the scores after the
// prompt are exactly Eq. 2. In decode each new row folds in by Eq. 3–4 with a per-token
// scoreCount: AAS' = (attn·N_t/N_max + AAS·count)/(count+1), where N_t counts the
// row's resident tokens (the compensation slot is not a token and is left out) and N_max
// is the longest row seen so far (P unless the budget exceeds the prompt). The scaling
// makes a row's mean entry 1/N_max whatever its length, which is why the Fig. 2 example
// comes out flat. aggregation=sum (H2O's column sum) and aggregation=mean (the
// unscaled column mean) replace Eq. 2 for the ablation.
//
// The usage count records Strong Attention Frequency: at each decode step the top_k
// highest probabilities of the new query add 1 to their tokens' counts (ties go to the
// lower slot id). The paper counts usage in decode only, so at the end of the prompt
// all counts are 0. top_k defaults to 4: OPT heads put most of a row's mass on a few
// keys, and 4 stays well inside the candidate area even at the paper's smallest
// budget (2% of a 1,024-token prompt, about 20 tokens).
//
// # Eviction
//
// The local area is the L most recent tokens (local, or local_ratio·Budget, default
// half the budget as in the paper's "latter half"; clamped to [1, Budget]); its tokens
// are never candidates, at compression too (the last L prompt tokens are kept). The
// eviction modes are:
//
//   - greedy (V1): evict the candidate with the lowest AAS, one per step, as H2O does.
//   - naive (V2): the second chance algorithm of Fig. 3. Sort the candidates by AAS
//     ascending and traverse them in rounds: a count of 0 is evicted, any other count
//     is decremented and the traversal moves on.
//   - optimized (V3): among the candidates with the lowest usage count, evict the one
//     with the lowest AAS. It picks the naive version's victim in two passes. It leaves
//     the counts alone, since the paper gives it no decrement; V2 and V3 therefore pick
//     the same victim from the same state but their counts drift apart over a sequence.
//   - multistep (V4, AUV): wait until L new tokens have arrived (Layout.Slack = L-1, so
//     the host asks when a head holds Budget+L tokens), then evict L tokens at once:
//     the L lowest values of the composite vector usage·max(AAS)+AAS (Eq. 5) among the
//     Budget candidates, where max is over the candidates. Then every resident count
//     becomes (usage − min(usage))·alpha (Eq. 6).
//
// Ties in AAS go to the lower slot id. The composite vector ties when two counts differ
// by one and the lower-count token holds max(AAS) while the other has AAS 0; ties are
// broken by the usage count, then the slot id, so that with integer counts (alpha = 1)
// the order is exactly (usage, AAS, slot), the single-step rule's order.
//
// At compression (Need = P − Budget) every count is 0, so applying any mode's rule Need
// times evicts the Need lowest AAS among the first P−L prompt tokens; all modes select
// those in one pass (for multistep, the Need lowest composite values are the same set).
//
// With compensation, Layout.Compensation is set and each victim's weight is its AAS
// (the AES_i of Eq. 7–8); the host folds victims into the compensation slot.
//
// # Memory management (§3.4, Fig. 4)
//
// The paper keeps each head's keys in a fixed tensor. Single-step: a candidate area and
// a local area with a circular pointer at the oldest local token; after a candidate row
// is evicted, the oldest local token is copied into it ("scatter-inserted") and the new
// token is written at the pointer, which advances. Multi-step: the tensor grows by L
// rows, a positioning region filled through a positioning pointer; when it is full, L
// candidate rows are evicted, the region's tokens are scattered into them and the
// pointer resets. Peak memory is Budget+1 tokens single-step, Budget+L multi-step (3L
// at L = Budget/2).
//
// kvsim's host owns a slot table in which a new token takes the lowest free slot and
// no token ever moves. A slot plays the role of a row, and since attention does not
// depend on the order of keys (OPT adds positions to the embeddings), the rows' order
// is bookkeeping only, kept here on slot ids with no KV copy: the candidate area is a
// list of slot ids (one entry per row), the local area a ring of L slot ids with the
// circular pointer, and in multistep mode the same ring is the positioning region,
// whose fill level is the positioning pointer. Scatter-inserting a token writes its
// slot id into the victim's entry of the candidate list, and the host hands the freed
// slot to the next token, as the paper's pointer reuses the freed row.
//
// Single-step: the new token takes the ring entry of the oldest local token, which
// waits out this step's eviction (as in the paper it is not yet a candidate) and then
// fills the victim's entry; so an eviction never takes the L+1 newest tokens, the L
// local ones and the new one. With L = Budget there is no candidate area and the
// leaving token itself is evicted: a sliding window. Layout.Slack is 0, so a head
// peaks at Budget+1 tokens. Multistep: the region's L tokens fill the L victims'
// entries, and every resident token is a candidate again until the region refills.
// Before the first eviction (a prompt shorter than the cache) the region overflows
// like a ring, its oldest token joining the candidates. Slack is L-1, so a head peaks
// at Budget+L tokens.
//
// # Params
//
//   - preset: "auv" (default), "v1", "v2", "v3" or "v4"; see Preset. Every other param
//     overrides one field of the preset.
//   - aggregation: "scaled", "sum" or "mean".
//   - usage (bool) and top_k (≥ 1): the usage count and how many keys each query marks.
//   - eviction: "greedy", "naive", "optimized" or "multistep".
//   - local (tokens, ≥ 1) or local_ratio (fraction of the budget, in (0, 1]), not both.
//   - alpha, in [0, 1]: Eq. 6's decay, used by multistep only. AUV's default is 0.5.
//     With 1 a count never fades (Eq. 6 then only subtracts the minimum), so a token
//     that was hot long ago keeps its lead, and a lead of one count, multiplied by
//     max(AAS), outweighs any AAS. Halving the counts at every eviction gives them a
//     half-life of one eviction cycle (L steps): a count weighs about the last 2L
//     queries, the horizon over which the paper wants each key judged (every key sees
//     at least L queries before it can be evicted).
//   - compensation (bool): merge victims into the compensation slot (Eq. 7–8).
//
// Heads are independent. All buffers are sized at Init; later calls allocate nothing.
package auv

import (
	"github.com/kvsim/kvsim/policies"
)

// Aggregation is how a token's attention scores combine into its AAS.
type Aggregation string

const (
	Scaled Aggregation = "scaled" // Eq. 2 and Eq. 3–4
	Sum    Aggregation = "sum"    // H2O's column sum
	Mean   Aggregation = "mean"   // unscaled column mean
)

// Mode is how victims are chosen.
type Mode string

const (
	Greedy    Mode = "greedy"    // lowest AAS, one per step (V1)
	Naive     Mode = "naive"     // second chance over AAS order (V2)
	Optimized Mode = "optimized" // lowest AAS among the lowest usage counts (V3)
	Multistep Mode = "multistep" // L lowest composite values every L steps (V4, AUV)
)

// Settings are the policy's switches.
type Settings struct {
	Aggregation Aggregation
	Usage       bool // count strong attention (top_k per query)
	TopK        int
	Eviction    Mode
	// Local is the local area's length in tokens; 0 means LocalRatio·Budget.
	Local        int
	LocalRatio   float64
	Alpha        float64 // Eq. 6 decay, multistep only
	Compensation bool
}

var presets = map[string]Settings{
	"v1":  {Aggregation: Scaled, TopK: 4, Eviction: Greedy, LocalRatio: 0.5, Alpha: 1},
	"v2":  {Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Naive, LocalRatio: 0.5, Alpha: 1},
	"v3":  {Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Optimized, LocalRatio: 0.5, Alpha: 1},
	"v4":  {Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Multistep, LocalRatio: 0.5, Alpha: 1},
	"auv": {Aggregation: Scaled, Usage: true, TopK: 4, Eviction: Multistep, LocalRatio: 0.5, Alpha: 0.5, Compensation: true},
}

// Preset returns the settings of one of the paper's versions: "v1" (scaled aggregation,
// greedy eviction), "v2" (plus usage counts, naive second chance), "v3" (optimized
// second chance), "v4" (multistep, alpha 1) and "auv" (v4 with alpha 0.5 and
// compensation).
func Preset(name string) (Settings, bool) {
	s, ok := presets[name]
	return s, ok
}

// New reads the preset and its overrides.
func New(p *policies.Params) (policies.Policy, error) {
	s, _ := Preset(p.String("preset", "auv", "auv", "v1", "v2", "v3", "v4"))
	s.Aggregation = Aggregation(p.String("aggregation", string(s.Aggregation), string(Scaled), string(Sum), string(Mean)))
	s.Usage = p.Bool("usage", s.Usage)
	s.TopK = p.Int("top_k", s.TopK)
	p.Check("top_k", s.TopK >= 1, "must be at least 1, got %d", s.TopK)
	s.Eviction = Mode(p.String("eviction", string(s.Eviction),
		string(Greedy), string(Naive), string(Optimized), string(Multistep)))
	p.Check("local", !p.Has("local") || !p.Has("local_ratio"), "set local or local_ratio, not both")
	s.Local = p.Int("local", s.Local)
	p.Check("local", !p.Has("local") || s.Local >= 1, "must be at least 1, got %d", s.Local)
	s.LocalRatio = p.Float("local_ratio", s.LocalRatio)
	p.Check("local_ratio", s.LocalRatio > 0 && s.LocalRatio <= 1, "must be in (0, 1], got %g", s.LocalRatio)
	s.Alpha = p.Float("alpha", s.Alpha)
	p.Check("alpha", s.Alpha >= 0 && s.Alpha <= 1, "must be in [0, 1], got %g", s.Alpha)
	s.Compensation = p.Bool("compensation", s.Compensation)
	if err := p.Err(); err != nil {
		return nil, err
	}
	return &policy{set: s}, nil
}
