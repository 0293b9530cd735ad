// Package policies holds the eviction-policy contract: the one interface through which
// every host (trace replay, the WASM host, the plugin loader, in-loop decoding) drives a
// KV-cache eviction policy.
//
// The host owns the cache. For each (sequence, layer) it keeps one slot table per head
// with a fixed width; slot ids are stable, and a new token takes the lowest free slot
// (scatter filling). The policy never moves tokens: it watches attention, and when the
// host asks, it names victims by slot id. That split keeps a policy small enough to run
// behind a WASM boundary: every call carries plain integers and flat float32/int32
// slices, all heads of a layer batched into one call.
//
// # Protocol
//
// For one sequence of P prompt tokens and T tokens in all, on one layer:
//
//  1. Init(cfg) starts the sequence and returns the policy's Layout.
//  2. Prefill: Observe is called with blocks of prompt rows, in order, until all P rows
//     are seen. Prompt token i sits in slot i; row i attends to slots 0..i with full
//     attention.
//  3. Compression: if P > Budget, Evict is called once with Need[h] = P - Budget
//     (for budget pools, see PoolNeed below).
//  4. Decode, for t = P..T-1: the new token enters the lowest free slot of each head
//     (Attention.Slot). The host computes the query's attention over the resident slots
//     (and the compensation slot, if the layout keeps one) and calls Observe with it.
//     If a head now holds more than Budget+Layout.Slack tokens, Evict is called with
//     Need[h] = resident[h] - Budget - Slack.
//
// # Contract 2.0: inputs, compact rows and budget pools
//
// A layout may ask for more than probabilities, and each costs only the policies that
// ask: the key, value or query vectors of the observed tokens (Layout.Keys, Values,
// Queries fill Attention.Keys, Values, Queries), and compact decode rows
// (Layout.Compact: each head's resident slots listed with their probabilities, so a
// step costs O(resident) rather than O(table width)).
//
// Vectors are those of each observed row's own token: in prefill, the block's prompt
// tokens Pos..Pos+Rows-1; in decode, the new token. They are the vectors the host
// attends with (a trace's values widened to float32 in replay, the backend's in
// in-loop decoding); queries are scaled by HeadDim^-1/2, so that q·k is the logit.
// A policy that needs the keys of older tokens keeps them itself: it has seen every
// token's key once.
//
// A compact row replaces the wide one: Probs[h*Stride+i] is the probability on slot
// Live[h*Stride+i] for i < Len[h], and nothing else of head h's row is meaningful.
// Every resident slot is listed once, the new token's included; Stride is still the
// table width W; Comp is filled as for wide rows. Prefill rows are always wide.
//
// Layout.Pool says what the budget bounds. PoolHead is the 1.x rule above. With
// PoolLayer the heads of a layer share E = Heads×Budget entries, divided as the
// policy likes at each eviction: the host sets Eviction.PoolNeed, the fewest victims
// summed over the layer's heads, instead of Need (which stays all zero). The
// compression asks for PoolNeed = Heads×P − E when positive, and a decode step for
// the layer's resident tokens − E − Heads×Slack when positive. The host checks that
// the counts sum to at least PoolNeed and that each head's victims are resident and
// named once; a head may give all its tokens. With PoolModel the model's
// Layers×Heads×Budget entries are divided among layers by the policy's LayerBudgets,
// called once per sequence by the host, on whichever layer's instance comes first,
// after its Init; each layer is then a layer pool of E = its share. Budget is the
// scenario's per-head budget B in every case, so that pooled and per-head policies
// are compared at equal memory: a pool's entries per head, in every figure and in
// peak and mean accounting, are its entries divided by its heads (peak accounting
// bounds a model pool over the whole model, and mean accounting refuses model pools,
// whose per-layer search would undo the division). The table width (SlotWidth) lets
// one head hold a whole pool.
//
// A policy may return more victims than Need (multi-step eviction). A policy whose
// layout asks for compensation gives each victim a weight; the host folds the victims'
// keys and values into the head's compensation slot by those weights (AUV Eq. 7–8).
//
// # Forking across budgets
//
// A policy whose state after the prompt's Observe calls does not depend on
// Config.Budget may implement Forker. A host that runs one sequence at several budgets
// then observes the prompt with one instance only and, before the compression, calls
// its ForkTo with each other instance (made by the same constructor with the same
// params, Init'ed for the same sequence with only Budget changed, and shown no prompt
// rows); from there each continues as if it had observed the prompt itself, with
// identical decisions. Replay does this; a policy that does not implement Forker
// observes the prompt once per budget.
//
// # Notes
//
//   - Observe must not keep or modify Attention's slices after it returns: hosts reuse
//     them, and a prefill block is shared by every policy instance of a layer.
//   - Instances are not shared between goroutines. A host may reuse an instance for
//     another sequence or layer by calling Init again, which must reset all state.
//   - Randomness comes only from Config.Seed, so that replays are reproducible.
package policies

import "fmt"

// Phase tells which part of the protocol an Observe call belongs to.
type Phase int32

const (
	Prefill Phase = 1
	Decode  Phase = 2
)

func (p Phase) String() string {
	switch p {
	case Prefill:
		return "prefill"
	case Decode:
		return "decode"
	}
	return fmt.Sprintf("phase(%d)", int32(p))
}

// Config describes the sequence an instance is about to see, on one layer.
type Config struct {
	Layer, Layers int // this layer's index, and the model's layer count
	Heads         int // heads batched into every call
	HeadDim       int
	PromptLen     int // P
	MaxLen        int // T: prompt plus generated tokens
	Budget        int // resident tokens per head once compression is done
	Seed          uint64
}

// Layout is what a policy asks of the host's slot table.
type Layout struct {
	// Slack lets a head hold up to Budget+Slack tokens during decoding before the host
	// asks for victims. Multi-step policies use it to evict in batches; the extra
	// tokens are counted as resident, so the overshoot shows in the results.
	Slack int
	// Unbounded turns eviction off entirely: no compression, no decode evictions.
	Unbounded bool
	// Compensation keeps one compensation slot per head; victims are merged into it
	// with the weights the policy gives (Eviction.Weights).
	Compensation bool
	// Clairvoyant asks the host to fill Eviction.Future. Only replay can, since it
	// holds the whole trace; other hosts refuse such policies.
	Clairvoyant bool
	// Keys, Values and Queries ask the host to fill Attention.Keys, Values and
	// Queries with the vectors of the observed rows' own tokens.
	Keys, Values, Queries bool
	// Compact asks for decode rows as lists of resident slots (Attention.Live and
	// Len) instead of rows as wide as the slot table.
	Compact bool
	// Pool says what the budget bounds; the zero value is PoolHead.
	Pool Pool
}

// Pool names what a budget bounds (see the package doc).
type Pool int32

const (
	// PoolHead bounds each head to Budget tokens (plus Slack during decoding).
	PoolHead Pool = 0
	// PoolLayer bounds the layer's heads together to Heads×Budget tokens (plus
	// Heads×Slack during decoding), divided among heads as the policy chooses.
	PoolLayer Pool = 1
	// PoolModel bounds the model to Layers×Heads×Budget tokens, divided among layers
	// by LayerBudgeter.LayerBudgets; each layer is then a layer pool of its share.
	PoolModel Pool = 2
)

func (p Pool) String() string {
	switch p {
	case PoolHead:
		return "head"
	case PoolLayer:
		return "layer"
	case PoolModel:
		return "model"
	}
	return fmt.Sprintf("pool(%d)", int32(p))
}

// Forker is implemented by a policy whose state after the prompt's Observe calls does
// not depend on Config.Budget (see the package doc).
type Forker interface {
	// ForkTo gives dst, another instance of the same policy and params, Init'ed for
	// the same sequence at another budget and shown no prompt rows, the state this
	// instance holds after observing the whole prompt. The receiver is not changed.
	// It fails if dst is not an instance of the same policy.
	ForkTo(dst Policy) error
}

// ForkCodec is implemented by a Forker that can also hand its prompt state over as
// bytes, for hosts whose instances share no memory: a WASM guest's (abi/ABI.md §5.3).
type ForkCodec interface {
	Forker
	// AppendForkState appends to b the state ForkTo would give, and returns it. The
	// receiver is not changed.
	AppendForkState(b []byte) []byte
	// LoadForkState gives the receiver, as ForkTo would, the state that
	// AppendForkState saved from another instance of the same policy and params.
	// It fails on a state that does not fit the receiver's sequence.
	LoadForkState(b []byte) error
}

// LayerBudgeter is implemented by a policy whose layout asks for PoolModel.
type LayerBudgeter interface {
	// LayerBudgets writes to entries[l] the tokens layer l may hold, all heads
	// together and slack not counted, for the sequence cfg describes (cfg.Layer is
	// -1: the call is about the whole model). The host calls it once per sequence,
	// after Init, and refuses entries that are negative or that sum to more than
	// Layers×Heads×Budget. It must depend only on cfg, so that every layer's
	// instance, on any host, computes the same division.
	LayerBudgets(cfg Config, entries []int) error
}

// Attention carries attention probabilities for a batch of queries, all heads of one
// layer. Probs[(h*Rows+r)*Stride+s] is head h's probability, for the query at position
// Pos+r, on slot s. In prefill a row at position i is non-zero only on slots 0..i; in
// decode free slots hold 0.
type Attention struct {
	Phase  Phase
	Pos    int // position of the first query row
	Rows   int // query rows in this batch: a block in prefill, 1 in decode
	Heads  int
	Stride int // elements between consecutive rows; at least the table width
	Probs  []float32
	// Slot[h] is the slot the decode query's own token entered in head h. Nil in
	// prefill, where token i is in slot i.
	Slot []int32
	// Comp[h] is the probability on head h's compensation slot (decode only, when the
	// layout keeps one; 0 while the slot is still empty).
	Comp []float32
	// HeadDim is the length of one key, value or query vector.
	HeadDim int
	// Keys[(h*Rows+r)*HeadDim+d] is element d of head h's key for the token at
	// position Pos+r (the query row's own token); Values and Queries likewise. They
	// are the vectors the host computes attention with (a trace's, in its
	// precision). Each is nil unless the layout asks for it.
	Keys, Values, Queries []float32
	// Live and Len carry compact decode rows (Layout.Compact): head h's row lists
	// Len[h] resident slots, Live[h*Stride+i] for i < Len[h], the new token's slot
	// among them, and Probs[h*Stride+i] is the probability on slot
	// Live[h*Stride+i]. The order is the host's (deterministic, not sorted). Nil
	// unless the layout asks for compact rows, and always nil in prefill.
	Live []int32
	Len  []int32
}

// Row returns head h's probabilities for query row r.
func (a *Attention) Row(h, r int) []float32 {
	off := (h*a.Rows + r) * a.Stride
	return a.Probs[off : off+a.Stride]
}

// Eviction is one request for victims, all heads of a layer. The host fills the
// request fields; the policy writes Count, Victims and, with compensation, Weights.
type Eviction struct {
	Phase Phase // Prefill for the compression at the end of the prompt, else Decode
	Pos   int   // position of the newest token the policy has observed
	Heads int
	// Need[h] is the fewest victims head h must give; 0 means none are needed.
	// All zero for pooled layouts, which read PoolNeed instead.
	Need []int32
	// PoolNeed is the fewest victims the layer's heads must give in all, for
	// PoolLayer and PoolModel layouts; 0 for PoolHead.
	PoolNeed int
	// Stride is the capacity of each head's victim list (the table width).
	Stride int
	// Count[h] is how many victims the policy wrote for head h.
	Count []int32
	// Victims[h*Stride+i], i < Count[h], are head h's victim slot ids: resident slots,
	// each named once.
	Victims []int32
	// Weights parallel Victims: each victim's merge weight into the compensation slot
	// (AUV's aggregated score). Read only when Layout.Compensation is set; a zero
	// weight drops the victim without merging it.
	Weights []float32
	// Future[h*Stride+s] is the attention the token in slot s will receive from all
	// later queries of the full-cache run. Filled only for Clairvoyant layouts.
	Future []float32
}

// Victim records victim i of head h with its merge weight.
func (e *Eviction) Victim(h int, slot int32, weight float32) {
	i := int(e.Count[h])
	e.Victims[h*e.Stride+i] = slot
	if e.Weights != nil {
		e.Weights[h*e.Stride+i] = weight
	}
	e.Count[h]++
}

// Policy is an eviction policy. See the package doc for the protocol.
type Policy interface {
	Init(cfg Config) (Layout, error)
	Observe(a *Attention) error
	Evict(e *Eviction) error
}

// New builds a policy from its scenario parameters. It must reject parameters it does
// not know (Params.Err does that).
type New func(p *Params) (Policy, error)

// TokenState is implemented by a policy that keeps state for every resident token
// besides its key and value (scores, counts, positions), so that the memory a
// policy holds can be reported in bytes. Replay adds it to each resident entry's
// KV bytes.
type TokenState interface {
	// TokenStateBytes is the bytes the policy keeps per head for each resident
	// token, while it holds the token.
	TokenStateBytes() int
}
