/*
 * contract2.c: testdata/contract2 (the Go test policy for contract 2.0) in C, against
 * kvpolicy.h's ABI 2.0, decision for decision, so that the tests hold the header's
 * 2.0 fields and arrays to the Go guest SDK's. KIND picks what it asks for, as the Go
 * policy's param kind does: 0 "inputs" (keys, values, queries, compact rows), 1
 * "layer" (a layer pool, slack 2), 2 "model" (a model pool divided by layer budgets
 * proportional to L - l). It reads no params.
 *
 *   clang --target=wasm32 -O2 -mbulk-memory -nostdlib -Wl,--no-entry -DKIND=1
 *         -I ../.. -o contract2-layer.wasm contract2.c
 */
#include "kvpolicy.h"

#ifndef KIND
#define KIND 0
#endif

static kvp_header *region;
static uint32_t region_cap;

static int32_t heads, max_len;
static double *score;  /* score[h*max_len + s] */
static uint8_t *live;  /* live[h*max_len + s] */
static uint32_t state_cap;

KVP_EXPORT(kvpolicy_abi_version) int32_t kvpolicy_abi_version(void) { return KVP_ABI_VERSION; }

KVP_EXPORT(kvpolicy_buffer) kvp_header *kvpolicy_buffer(int32_t size) {
	if (size <= 0) {
		return 0;
	}
	if ((uint32_t)size > region_cap) {
		kvp_header *r = kvp_alloc_pages((uint32_t)size);
		if (r == 0) {
			return 0;
		}
		region = r;
		region_cap = ((uint32_t)size + 65535u) & ~65535u;
	}
	return region;
}

KVP_EXPORT(kvpolicy_new) int32_t kvpolicy_new(void) { return KVP_OK; }

KVP_EXPORT(kvpolicy_init) int32_t kvpolicy_init(void) {
	kvp_header *h = region;
	if (h->heads < 1 || h->max_len < 1) {
		return kvp_fail(h, "contract2: bad config");
	}
	heads = max_len = 0;
	uint32_t n = (uint32_t)h->heads * (uint32_t)h->max_len;
	uint32_t need = n * (sizeof(double) + 1);
	if (need > state_cap) {
		uint8_t *mem = kvp_alloc_pages(need);
		if (mem == 0) {
			return kvp_fail(h, "contract2: out of memory");
		}
		score = (double *)mem;
		live = mem + n * sizeof(double);
		state_cap = need;
	}
	heads = h->heads;
	max_len = h->max_len;
	for (uint32_t i = 0; i < n; i++) {
		score[i] = 0;
		live[i] = 0;
	}
#if KIND == 0
	h->flags = KVP_KEYS | KVP_VALUES | KVP_QUERIES | KVP_COMPACT;
#elif KIND == 1
	h->pool = KVP_POOL_LAYER;
	h->slack = 2;
#else
	h->pool = KVP_POOL_MODEL;
#endif
	return KVP_OK;
}

#if KIND == 2
KVP_EXPORT(kvpolicy_layer_budgets) int32_t kvpolicy_layer_budgets(void) {
	kvp_header *h = region;
	if (h->layer != -1) {
		return kvp_fail(h, "contract2: layer budgets for one layer");
	}
	int64_t L = h->layers, pool = (int64_t)h->layers * h->heads * h->budget, weights = L * (L + 1) / 2;
	int32_t *out = kvp_budgets(h);
	for (int64_t l = 0; l < L; l++) {
		out[l] = (int32_t)(pool * (L - l) / weights);
	}
	return KVP_OK;
}
#endif

#if KIND == 0
static double dot(const float *x, const float *y, int32_t n) {
	double s = 0;
	for (int32_t i = 0; i < n; i++) {
		s += (double)x[i] * (double)y[i];
	}
	return s;
}
#endif

KVP_EXPORT(kvpolicy_observe) int32_t kvpolicy_observe(void) {
	kvp_header *h = region;
	int32_t rows = h->rows, stride = h->stride;
	int decode = h->phase == KVP_DECODE;
	const float *probs = kvp_probs(h);
	for (int32_t hd = 0; hd < heads; hd++) {
		double *sc = score + hd * max_len;
		for (int32_t r = 0; r < rows; r++) {
			int32_t slot = decode ? kvp_slot(h)[hd] : h->pos + r;
			if (slot < 0 || slot >= max_len) {
				return kvp_fail(h, "contract2: a slot outside the table");
			}
			live[hd * max_len + slot] = 1;
#if KIND == 0
			int32_t d = h->head_dim, at = (hd * rows + r) * d;
			const float *k = kvp_keys(h) + at, *v = kvp_values(h) + at, *q = kvp_queries(h) + at;
			sc[slot] = 0.01 * __builtin_sqrt(dot(v, v, d)) - 0.01 * __builtin_sqrt(dot(k, k, d)) + 0.001 * dot(q, k, d);
			if (decode) {
				const int32_t *ls = kvp_live(h) + hd * stride;
				int32_t n = kvp_len(h)[hd], seen = 0;
				for (int32_t i = 0; i < n; i++) {
					seen |= ls[i] == slot;
				}
				if (!seen) {
					return kvp_fail(h, "contract2: the new token's slot is not in its compact row");
				}
				for (int32_t i = 0; i < n; i++) {
					sc[ls[i]] += (double)probs[hd * stride + i];
				}
				continue;
			}
#endif
			const float *row = probs + (hd * rows + r) * stride;
			for (int32_t s = 0; s < stride; s++) {
				sc[s] += (double)row[s];
			}
		}
	}
	return KVP_OK;
}

/* take evicts the lowest (score, slot, head) live token among heads [h0, h1): the
 * order the Go policy sorts its candidates in. */
static void take(kvp_header *h, int32_t h0, int32_t h1) {
	int32_t best_h = -1, best_s = -1;
	double best = 0;
	for (int32_t s = 0; s < max_len; s++) {
		for (int32_t hd = h0; hd < h1; hd++) {
			double v = score[hd * max_len + s];
			if (live[hd * max_len + s] && (best_h < 0 || v < best)) {
				best = v;
				best_h = hd;
				best_s = s;
			}
		}
	}
	if (best_h < 0) {
		return;
	}
	int32_t *cnt = kvp_count(h);
	kvp_victims(h)[best_h * h->stride + cnt[best_h]] = best_s;
	cnt[best_h]++;
	live[best_h * max_len + best_s] = 0;
	score[best_h * max_len + best_s] = 0;
}

KVP_EXPORT(kvpolicy_evict) int32_t kvpolicy_evict(void) {
	kvp_header *h = region;
#if KIND == 0
	for (int32_t hd = 0; hd < heads; hd++) {
		for (int32_t i = 0; i < kvp_need(h)[hd]; i++) {
			take(h, hd, hd + 1);
		}
	}
#else
	for (int32_t i = 0; i < h->pool_need; i++) {
		take(h, 0, heads);
	}
#endif
	return KVP_OK;
}
