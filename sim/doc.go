// Package sim replays attention traces through eviction policies at many cache budgets
// in one pass, and measures how much of the full cache's attention each policy keeps.
//
// # Semantics
//
// State. Each (sample, layer, head) of each (policy, budget) instance has a slot table
// of fixed width (policies.SlotWidth: max(P, Budget+Slack+1) slots for a per-head
// budget, more for budget pools, T for unbounded policies). Slot ids
// are stable; a new token takes the lowest free slot (scatter filling, AUV §3.4). A
// policy names its victims by slot id.
//
// Prefill. Rows 0..P-1 are computed with full attention and every policy observes them,
// in blocks, in order; row i attends to tokens 0..i, which sit in slots 0..i. The
// blocks, and the key, value and query vectors some layouts ask for, are computed once
// and shared by every instance of the layer.
//
// Compression. If P > Budget the host asks the policy, once, for P-Budget victims per
// head (a budget pool: for the pool's excess, host.Bound; a model pool is divided
// among layers once per (cell, sample), whichever worker runs its first layer).
//
// Decode. At each step t = P..T-1 the new token enters a slot. The host computes q_t's
// attention over the resident slots, and over the compensation slot if the policy
// keeps one: the softmax of the trace's q·k logits over what is kept, so the attention
// a policy sees is counterfactual, not the full run's. The policy observes it; if a
// head then holds more than Budget+Slack tokens, the host asks for the excess. A
// layout that asks for compact rows gets each head's resident slots as a list, in the
// slot table's order.
//
// Accounting. Budget above is the nominal budget handed to the policy. What the
// scenario's budget B bounds is each policy's host.Accounting: Nominal hands B over as
// is; Peak hands over the largest budget whose layout keeps a head within B entries
// while attending (host.PeakEntries) and fails the step that exceeds it; Mean searches, per
// (sample, layer), the budget whose mean resident entries come within one of B.
//
// Multi-step policies declare Slack and may return more victims than asked. A policy
// whose layout keeps a compensation slot gets its victims merged into it, weighted:
// k' = (k·W + Σ w_i k_i) / (W + Σ w_i), W' = W + Σ w_i, the same for v (AUV Eq. 7–8).
// The slot joins attention once W > 0, with logit q·k'.
//
// # Metrics
//
// Per decode step, layer and head, then averaged over steps and heads of a layer, then
// over layers and samples:
//
//   - hit rate: the share of the full-cache attention of q_t that falls on tokens
//     resident at step t (the new token included, the compensation slot not);
//   - top-k hit rate: the share of the k tokens most attended by q_t under full cache
//     that are resident;
//   - output error: ‖o − o_full‖₂ / ‖o_full‖₂ of the attention output (needs V), where o
//     uses the policy's counterfactual attention over its resident slots and
//     compensation slot;
//   - accounting: victims per head per sample, peak and mean resident KV entries per
//     head while attending (tokens plus the compensation slot), the same as KV bytes
//     per sequence (fp16 keys and values plus declared policy state,
//     policies.TokenState), and the time spent inside the policy per
//     (head · decode step).
//
// Every cell also keeps each sample's figures (Cell.Samples), Student-t intervals
// over samples (Cell.CI) and, with Options.Compare, paired differences from a
// reference policy (Cell.Diff); see package stats.
//
// # Determinism
//
// Work is split into (sample, layer) jobs over a pool of workers. Each job is computed
// sequentially and its sums are merged in job order, so results are bit-identical at
// any thread count. Only the policy timings vary.
package sim
