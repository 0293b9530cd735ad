package gpu

import (
	"github.com/kvsim/kvsim/internal/checkpoint"
	"github.com/kvsim/kvsim/policies"
)

// Backend runs one OPT model on one device. It owns the weights as the device keeps
// them and the KV caches it hands out.
//
// # Notes
//
//   - A Backend serves one Forward call at a time; callers serialise.
//   - Close releases the device's copy of the weights and must come after every KV
//     is closed. It does not close the checkpoint.Model the backend was built from:
//     the CPU backend reads weights straight from its mapping, so the model must
//     stay open until Close.
type Backend interface {
	// Name is the backend's kind, "cpu" or "cuda".
	Name() string
	// Config is the model's configuration.
	Config() checkpoint.Config
	// NewKV allocates a KV cache with capacity slots per (layer, head), and one
	// compensation slot per (layer, head) when compensation is set. Every slot
	// starts free.
	NewKV(capacity int, compensation bool) (KV, error)
	// Forward runs the tokens of b through the model over kv: it writes their keys
	// and values into the slots b names, computes each token's attention over the
	// slots visible to it, calls b.Observe after each layer, and writes the logits
	// b asks for.
	Forward(kv KV, b *Batch) error
	Close() error
}

// KV is a backend's KV cache: for each layer and head, Capacity slots of keys and
// values, each tagged with the position of the token it holds, and optionally a
// compensation slot. The host decides which slot each token enters (Slots), so a
// KV only stores and frees; see the package doc for the semantics.
type KV interface {
	Capacity() int
	// Compensation reports whether the cache keeps a compensation slot per head.
	Compensation() bool
	// Evict frees the victims of one layer, given as in policies.Eviction: for head
	// h, the slots e.Victims[h*e.Stride+i] for i < e.Count[h]. When the cache keeps
	// compensation slots and e.Weights is set, each victim with a positive weight is
	// first folded into its head's compensation slot, in order. The caller (Sequence)
	// has checked that every victim is resident and named once.
	Evict(layer int, e *policies.Eviction) error
	// Bytes is the device memory the cache holds.
	Bytes() int64
	Close() error
}

// Batch is one Forward call: n tokens, with where they go and what to return.
type Batch struct {
	Tokens    []int32 // the n new tokens
	Positions []int32 // their positions, each below max_position_embeddings
	// Slots[l][i*Heads+h] is the slot token i enters in head h of layer l. The slots
	// must be free, and distinct within a (layer, head).
	Slots [][]int32
	// Logits, when not nil, receives the next-token logits of the last
	// len(Logits)/vocab_size tokens, row by row.
	Logits []float32
	// Want says which per-layer tensors Observe receives.
	Want Want
	// Observe, when set, is called once for each observed layer, in layer order,
	// at the latest before Forward returns. It must not call the backend, and the
	// view's slices are valid only during the call. An error stops Forward and is
	// returned by it.
	Observe func(v *LayerView) error
	// ObserveConcurrency, when above 1, lets Forward make up to that many Observe
	// calls at once, for different layers and in any order. A backend that hands
	// over several layers together (CUDA, in decode) then spreads the observer's
	// work over cores; others may ignore it.
	ObserveConcurrency int
}

// Want selects what a LayerView carries. Asking for less lets a backend copy less
// from its device.
type Want struct {
	QKV   bool // queries, keys and values of the batch's tokens
	Probs bool // attention probabilities (and the compensation slot's share)
	// Layers[l] says whether layer l is observed; nil observes every layer.
	Layers []bool
}

// Observes reports whether layer l is observed.
func (w Want) Observes(l int) bool {
	return (w.QKV || w.Probs) && (w.Layers == nil || (l < len(w.Layers) && w.Layers[l]))
}

// LayerView is what one layer computed for a batch of Rows tokens.
type LayerView struct {
	Layer            int
	Rows             int
	Heads, HeadDim   int
	Capacity         int
	Positions, Slots []int32 // the batch's Positions and Slots[Layer]

	// Q, K and V are [Rows][Heads·HeadDim]: token r, head h at [r*Heads*HeadDim +
	// h*HeadDim]. Q is already scaled by head_dim^-0.5, so q·k is the attention
	// logit. Nil unless Want.QKV.
	Q, K, V []float32
	// Probs[(h*Rows+r)*Capacity+s] is head h's attention probability of token r on
	// slot s, the layout of policies.Attention. Slots that are free or hold a later
	// position have probability 0. Nil unless Want.Probs.
	Probs []float32
	// Comp[h*Rows+r] is the probability on head h's compensation slot. Nil unless
	// Want.Probs and the cache keeps compensation slots.
	Comp []float32
}

// ProbsRow returns head h's attention probabilities of token r, by slot.
func (v *LayerView) ProbsRow(h, r int) []float32 {
	off := (h*v.Rows + r) * v.Capacity
	return v.Probs[off : off+v.Capacity]
}

// Head returns token r's part of x (v.Q, v.K or v.V) for head h.
func (v *LayerView) Head(x []float32, r, h int) []float32 {
	off := (r*v.Heads + h) * v.HeadDim
	return x[off : off+v.HeadDim]
}
