// Package gpu runs OPT models for kvsim: greedy decoding over a KV cache organised
// as slot tables, on a device backend (the CPU one in gpu/cpu, a CUDA one later), with
// every layer's queries, keys, values and attention probabilities available to the
// caller as they are computed.
//
// # Layers of the engine
//
// A Backend holds the model's weights on its device and runs the forward pass; it is
// the only part that differs between devices, so its interface is coarse: one call
// runs a whole batch of tokens through every layer (Forward), and the KV cache it
// keeps on the device (KV) only stores keys and values and frees slots when told.
// Everything else is host code shared by all backends: the slot bookkeeping (Slots),
// sequences (Sequence) and greedy generation (Engine.Generate).
//
// # The KV cache is a slot table
//
// For each layer and head the cache has a fixed number of slots, its capacity. This
// is the layout of trace replay (package sim) and of the AUV paper's scatter filling
// (§3.4), so that eviction policies run inside the engine exactly as in replay:
//
//   - a new token takes the lowest free slot, in each head separately;
//   - slot ids are stable: nothing is ever compacted or moved;
//   - each slot records the position of the token it holds, and attention masks by
//     position (slot s is visible to the query at position p when it holds a position
//     ≤ p), so a slot freed and refilled later is attended correctly;
//   - freeing a slot (eviction) may fold its key and value into a per-head
//     compensation slot with a weight (AUV Eq. 7–8): k' = (k'·W + w·k)/(W + w),
//     W' = W + w, and likewise v'. The compensation slot joins every attention row
//     with logit q·k' once W > 0.
//
// Plain decoding uses a capacity of prompt plus generated tokens, so nothing is ever
// evicted and token i sits in slot i.
//
// # Numerics
//
// The forward pass follows transformers' modeling_opt.py (OPTForCausalLM): learned
// absolute positions read at row p+2 of embed_positions (no padding, so positions
// are 0..T-1), project_in and project_out when word_embed_proj_dim differs from
// hidden_size (opt-350m), pre- or post-LayerNorm blocks per do_layer_norm_before,
// LayerNorm with eps 1e-5, ReLU feed-forward, queries scaled by head_dim^-0.5 after
// their bias, the decoder's final LayerNorm only in pre-LN models, and an LM head
// tied to embed_tokens when the checkpoint has none. The CPU backend computes in
// float32 from weights kept in their stored dtype and is the numerical reference for
// the others.
//
// Positions are the tokens' original positions even when the tokens around them
// have been evicted: OPT's positions are learned absolute embeddings added to the
// input, so a token's position is baked into its key and value when they are
// computed, and eviction cannot renumber it. A query at position p after eviction
// sees fewer tokens, not closer ones.
package gpu
