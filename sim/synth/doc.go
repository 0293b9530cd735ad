// Package synth generates deterministic synthetic attention traces shaped like OPT
// models, so that replay, policies and their tests run with no model and no download.
//
// Synthetic traces are NOT OPT measurements. They are built so that the attention
// phenomena eviction policies rely on (attention sinks, a recency band, persistent heavy
// hitters, tokens that matter only late, heads that differ) are present with known ground
// truth and tunable strength. Their numbers say how a policy behaves on that structure;
// they say nothing about how often the structure occurs in a real model. Their Meta has
// Source "synthetic" and Model "synthetic/<preset>", and results from them must say so.
//
// # Model and sample
//
// Options.Seed and the preset name select a synthetic model: each head's behaviour (the
// parameters below) is drawn from a hash of (Seed, preset, layer, head), so it is the same
// in every sample, as a real head's is. Options.Sample selects an input: tokens, noise,
// which tokens are heavy hitters and when the switch comes. The per-sample draws that do
// not belong to one head (tokens, switch, salience) hash only Seed, Sample and the
// lengths, so models of different sizes see the same input. Every tensor comes from its
// own hash-seeded stream, so Read gives the same bytes in any order, and shrinking Layers
// or Heads keeps the remaining heads bit for bit. Bytes are reproducible for a given
// platform; another CPU architecture may differ in the last bits (fused multiply-adds,
// assembly math routines).
//
// Random draws: U[a,b] is uniform; logU[a,b] has a uniform logarithm; z ~ N(0,1) is a
// standard normal quantized to 65536 levels (the quantile at (i+0.5)/65536 for 16
// random bits i, so |z| ≤ 4.33).
//
// # Logits
//
// Queries are stored already scaled, so that q_t·k_j is the attention logit; replay
// applies the causal mask (j ≤ t) and the softmax. For a head of layer ℓ with head
// dimension D, R = 12 recency frequencies and C = D − 29 content channels:
//
//	q_t·k_j = τ · [ a_sink·f(ℓ)·m¹_t·σ_j               attention sink
//	              + a_H·m²_t·u_j                       persistent heavy hitters
//	              + a_L·g(t)·m³_t·w_j                   tokens that matter late
//	              + a_slow·cos(ω_s·(t−j))               slow recency
//	              + (a_rec/R)·Σ_r cos(θ_r(t) − θ_r(j))  recency band
//	              + (σ/√C)·Σ_c x_{t,c}·y_{j,c} ]        content noise
//
// Each term is the product of one query channel and one key channel (or a cos/sin pair,
// since cos(α−β) = cos α cos β + sin α sin β), so the formula holds exactly, up to float32
// rounding:
//
//	channel   query q_t                          key k_j
//	0         τ·a_sink·f(ℓ)·m¹_t                 σ_j
//	1         τ·a_H·m²_t                         u_j
//	2         τ·a_L·g(t)·m³_t                    w_j
//	3, 4      τ·a_slow·(cos ω_s t, sin ω_s t)    (cos ω_s j, sin ω_s j)
//	5..28     τ·(a_rec/R)·(cos θ_r(t), sin θ_r(t)) for r = 1..R, pairwise
//	                                             (cos θ_r(j), sin θ_r(j))
//	29..D−1   τ·(σ/√C)·x_t                       y_j
//
// The terms:
//
//   - Sink. σ_0 = 1, σ_j = β·0.8^(j−1) for j = 1, 2, 3, and σ_j = 0 from token 4 on:
//     token 0 (</s>) draws a large logit from every query, tokens 1–3 weaker ones.
//     f(ℓ) = min(1, 0.4 + 0.3ℓ) weakens sinks in layers 0 and 1, where real models
//     show fewer of them.
//   - Query jitter. m¹_t, m²_t, m³_t = max(0, 1 + 0.25·z), independent per query, so
//     that the sink and the heavy hitters draw from almost every query, by varying
//     amounts.
//   - Heavy hitters. u_j ∈ [0.5, 1) for tokens j ≥ 4 of the head's heavy set H, else 0.
//     j is in H when a per-sample salience S_j ~ U[0,1] (shared by all heads, layers and
//     model sizes) is below ρ_H/2, or a per-head draw is: about a fraction ρ_H of the
//     tokens, prompt and generated alike, half of them common to many heads. Every query
//     shares the direction, so these tokens draw attention from all later queries.
//   - Late tokens. w_j ∈ [0.5, 1) for prompt tokens 4 ≤ j < min(s*, P) of the head's late
//     set L (chosen like H from its own salience with density ρ_L, and disjoint from H),
//     else 0. The switch s* is one position per sample, uniform in [⌈P/2⌉, P + ⌊G/2⌋]
//     (P = PromptLen, G = GenLen), shared by all heads: before it queries ignore L, then
//     g(t) = clamp((t − s* + 1)/8, 0, 1) ramps the direction in over 8 queries. A policy
//     that decides at the end of the prompt cannot see L's importance when s* ≥ P.
//   - Slow recency. ω_s = π/(2·N), N the context (OPT's 2048 unless Options.Positions
//     sets a longer one): cos(ω_s·Δ) falls from 1 to 0 over the whole context, a gentle
//     preference for nearer tokens.
//   - Recency band. θ_r(t) = ω_r·t + φ_r(t). The frequencies are stratified quantiles of
//     a half-Cauchy spectrum of scale 1/W cut at π: ω_r = tan(π/2·F·(r−1+U_r)/R)/W with
//     F = (2/π)·atan(π·W) and U_r ~ U[0,1], so that (1/R)·Σ_r cos(ω_r·Δ) approximates
//     exp(−Δ/W). A rank-2R kernel cannot stay near zero over a long context, so the
//     phases random-walk per sample: φ_r(0) = 0, φ_r(t+1) = φ_r(t) + atan(s·z) with
//     s = 1/√(2W), shared by the head's queries and keys. The band then has expectation
//     ≈ (1/R)·Σ_r cos(ω_r·Δ)·exp(−Δ/(4W)), exactly 1 at Δ = 0, while at large Δ the
//     leftover is a pair-dependent fluctuation (standard deviation ≈ 1/√(2R) ≈ 0.2, in
//     units of a_rec) instead of a fixed bump at one distance.
//   - Content noise. x_t and y_j are vectors of C independent AR(1) processes of unit
//     variance: x_{t+1} = ρ_q·x_t + √(1−ρ_q²)·z, and y likewise with ρ_k. The noise term
//     has standard deviation ≈ σ; ρ_q makes consecutive queries prefer the same keys
//     (what observation-window policies rely on), ρ_k makes neighbouring keys alike.
//
// Per-head parameters, drawn once per (Seed, preset, layer, head):
//
//	τ        temperature: 15% of heads near-uniform, U[0.15,0.35]; 15% peaked,
//	         U[1.6,2.4]; the rest U[0.8,1.25]
//	a_sink   10% of heads without a sink, U[0,0.5]; the rest U[3,11]
//	β        U[0.3,0.7]    sink weight of token 1 relative to token 0
//	a_rec    U[2,7]        recency band strength
//	W        logU[1,64]    recency band width, in tokens
//	a_slow   U[0,1.5]      slow recency strength
//	ρ_H      logU[0.005,0.06]  heavy-hitter density;  a_H  U[1,4]  their strength
//	ρ_L      U[0.005,0.03]     late-token density;    a_L  U[0,4]  their strength
//	σ        U[0.3,1.5]    content noise
//	ρ_q      U[0.7,0.98]   query content correlation from one token to the next
//	ρ_k      U[0.3,0.9]    key content correlation
//	ρ_v      U[0.5,0.95]   value coefficient correlation
//
// What comes out, measured by TestAttentionStructure on 4 layers × 8 heads of Seed 1
// (256 prompt + 32 generated tokens, queries from token 32 on): token 0 receives 32% of
// the attention in layers 2–3; the last 16 tokens 2.3× their uniform share; a heavy
// hitter 6.3× an ordinary token's attention (outside the sinks and the last 16 tokens);
// a late token 0.9× an ordinary token's before the switch and 6.5× after it; and heads'
// mean normalized entropies range from 0.14 to 1.00.
//
// # Values
//
// v_j = c_j·(√(0.6/4)·Σ_{r=1..4} a_{j,r}·b_r + √0.4·ε_j): four basis vectors b_r ~ N(0,I)
// per head (part of the model), coefficients a_{j,r} that are AR(1) over j with ρ_v, and
// noise ε_j ~ N(0,I), so every element has unit variance. c_j = 0.2 for the sink tokens
// j < 4 and 1 otherwise, following the small value norms reported for sink tokens. Values
// are independent of the logits: an evicted token's value is correlated with its
// neighbours', which makes attention-output error meaningful, but not with its
// attention.
//
// # Tokens
//
// Token 0 is 2 (</s>, which OPT's tokenizer prepends); the others are uniform over OPT's
// ordinary ids 4..50264. They carry no meaning and play no part in the tensors.
//
// # What these traces cannot show
//
// Layers are independent of each other (no residual stream carries a token's importance
// upward); q and k are axis-aligned by channel, where real ones mix their features across
// all dimensions (q·k and attention outputs do not depend on this); the recency band is
// a finite sum with a residual fluctuation; generated tokens are not conditioned on
// anything; and every distribution above is a choice, not a fit to OPT. Use real traces
// for claims about OPT.
package synth
