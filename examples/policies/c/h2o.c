/*
 * H2O (Heavy-Hitter Oracle, Zhang et al. 2023) in C, against abi/kvpolicy.h.
 *
 * It is kvsim's builtin h2o (policies/h2o), decision for decision:
 *   - a token's score is the attention it has received from every query so far,
 *     summed in double precision in the order the rows arrive;
 *   - the newest recent = clamp(floor(budget * recent_share + 0.5), 1, budget)
 *     positions are a window that is never evicted;
 *   - the victims are the lowest-scored tokens outside the window, the older token
 *     first on ties, in that order; a victim's score is dropped.
 * Params: recent_share (default 0.5), in [0, 1).
 *
 * In ABI 2.x it asks for compact decode rows (KVP_COMPACT), so that a decode step
 * costs O(budget) rather than O(table width), and offers to fork (ABI.md 5.3: the
 * prompt's column sums do not depend on the budget); built with -DKVP_ABI_MAJOR=1
 * it reads rows as wide as the table, as a 1.0 host sends them.
 *
 * Build (no libc, no WASI):
 *   clang --target=wasm32 -O2 -msimd128 -mbulk-memory -nostdlib -Wl,--no-entry
 *         -I ../../../abi -o h2o.wasm h2o.c
 * (or make)
 */
#include "kvpolicy.h"
#include "params.h"

static kvp_header *region;
static uint32_t region_cap;

static double recent_share;
static int32_t heads, prompt_len, max_len, recent, next;
/* Per head, by slot (max_len slots: every slot id is below it): the position held
 * (-1 when free) and the score; the resident slots as a dense list (live, where
 * gives a slot's index in it) and their number. */
static int32_t *pos, *where, *live, *count;
static double *score;
static int32_t *cand; /* scratch: one head's slots outside the window */
static double *saved; /* scratch: the prompt's sums, head by head, for a fork */
static uint8_t *state;
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

KVP_EXPORT(kvpolicy_new) int32_t kvpolicy_new(void) {
	kvp_json j = kvp_json_start(region, "h2o");
	const char *key;
	uint32_t len;
	recent_share = 0.5;
	while (kvp_json_key(&j, &key, &len)) {
		if (!kvp_json_is(key, len, "recent_share")) {
			kvp_json_unknown(&j);
			break;
		}
		if (!kvp_json_number(&j, &recent_share)) {
			break;
		}
		if (!(recent_share >= 0 && recent_share < 1)) {
			kvp_json_fail(&j, "must be in [0, 1)");
			break;
		}
	}
	if (j.failed) {
		return kvp_fail(region, j.msg);
	}
#if KVP_ABI_MAJOR >= 2
	if (region->host_version >= KVP_VERSION_2_1) {
		region->caps = KVP_CAP_FORK;
	}
#endif
	return KVP_OK;
}

KVP_EXPORT(kvpolicy_init) int32_t kvpolicy_init(void) {
	kvp_header *h = region;
	if (h->heads < 1 || h->prompt_len < 0 || h->max_len < h->prompt_len) {
		return kvp_fail(h, "h2o: bad config");
	}
	if (h->budget < 1) {
		return kvp_fail(h, "h2o: need a budget of at least one token");
	}
	heads = h->heads, prompt_len = h->prompt_len, max_len = h->max_len, next = 0;
	/* Go's int(x + 0.5) truncates toward zero, as the cast does; x ≥ 0.5 here. */
	recent = (int32_t)((double)h->budget * recent_share + 0.5);
	recent = recent < 1 ? 1 : recent > h->budget ? h->budget : recent;
	uint64_t cells = (uint64_t)heads * (uint64_t)max_len;
	uint64_t need = cells * (8 + 4 + 4 + 4) + (uint64_t)heads * 4 + (uint64_t)max_len * 4 +
	                (uint64_t)heads * (uint64_t)prompt_len * 8;
	if (need > 0xffff0000u) {
		return kvp_fail(h, "h2o: the config does not fit a 32-bit guest");
	}
	if (need > state_cap) {
		uint8_t *mem = kvp_alloc_pages((uint32_t)need);
		if (mem == 0) {
			return kvp_fail(h, "h2o: out of memory");
		}
		state = mem;
		state_cap = ((uint32_t)need + 65535u) & ~65535u;
	}
	/* Laid out afresh for every config: the doubles first, so that all are aligned. */
	score = (double *)state;
	saved = score + cells;
	pos = (int32_t *)(saved + (uint64_t)heads * (uint64_t)prompt_len);
	where = pos + cells;
	live = where + cells;
	count = live + cells;
	cand = count + heads;
	for (int32_t hd = 0; hd < heads; hd++) {
		int32_t *p = pos + hd * max_len, *w = where + hd * max_len, *l = live + hd * max_len;
		double *sc = score + hd * max_len;
		for (int32_t s = 0; s < max_len; s++) {
			int held = s < prompt_len;
			p[s] = held ? s : -1;
			w[s] = held ? s : -1;
			l[s] = held ? s : 0;
			sc[s] = 0;
		}
		count[hd] = prompt_len;
	}
	h->slack = 0;
#if KVP_ABI_MAJOR >= 2
	h->flags = KVP_COMPACT;
#else
	h->flags = 0;
#endif
	return KVP_OK;
}

/* enter records that head hd's slot s now holds position p. */
static void enter(int32_t hd, int32_t s, int32_t p) {
	pos[hd * max_len + s] = p;
	where[hd * max_len + s] = count[hd];
	live[hd * max_len + count[hd]++] = s;
}

/* drop frees head hd's slot s and its score. */
static void drop(int32_t hd, int32_t s) {
	int32_t *w = where + hd * max_len, *l = live + hd * max_len;
	int32_t i = w[s], last = l[--count[hd]];
	l[i] = last;
	w[last] = i;
	w[s] = -1;
	pos[hd * max_len + s] = -1;
	score[hd * max_len + s] = 0;
}

KVP_EXPORT(kvpolicy_observe) int32_t kvpolicy_observe(void) {
	kvp_header *h = region;
	int32_t rows = h->rows, stride = h->stride;
	if (h->pos != next || rows < 1) {
		return kvp_fail(h, "h2o: attention rows out of order");
	}
	const float *probs = kvp_probs(h);
	if (h->phase == KVP_PREFILL) {
		if (h->pos + rows > prompt_len || stride < h->pos + rows) {
			return kvp_fail(h, "h2o: prefill rows do not fit the prompt and stride");
		}
		for (int32_t hd = 0; hd < heads; hd++) {
			double *sc = score + hd * max_len;
			for (int32_t r = 0; r < rows; r++) {
				const float *row = probs + (hd * rows + r) * stride;
				/* Eight f64x2 additions a pass: the host meters every loop iteration. */
#pragma clang loop vectorize_width(2) interleave_count(8)
				for (int32_t s = 0, n = h->pos + r + 1; s < n; s++) {
					sc[s] += (double)row[s];
				}
			}
		}
		next += rows;
		return KVP_OK;
	}
	if (h->phase != KVP_DECODE) {
		return kvp_fail(h, "h2o: unknown phase");
	}
	if (h->pos < prompt_len || h->pos >= max_len || rows != 1) {
		return kvp_fail(h, "h2o: decode row outside the generated positions");
	}
	const int32_t *slot = kvp_slot(h);
	for (int32_t hd = 0; hd < heads; hd++) {
		int32_t s = slot[hd];
		if (s < 0 || s >= max_len || s >= stride || pos[hd * max_len + s] >= 0) {
			return kvp_fail(h, "h2o: a decode token entered a slot that is not free");
		}
	}
#if KVP_ABI_MAJOR >= 2
	const int32_t *ids = kvp_live(h), *len = kvp_len(h);
#endif
	for (int32_t hd = 0; hd < heads; hd++) {
		enter(hd, slot[hd], h->pos);
		double *sc = score + hd * max_len;
		const float *row = probs + hd * stride;
#if KVP_ABI_MAJOR >= 2
		const int32_t *l = ids + hd * stride;
		for (int32_t i = 0; i < len[hd]; i++) {
			if (l[i] < 0 || l[i] >= max_len) {
				return kvp_fail(h, "h2o: a compact row lists a slot outside the table");
			}
			sc[l[i]] += (double)row[i];
		}
#else
		for (int32_t s = 0, n = stride < max_len ? stride : max_len; s < n; s++) {
			sc[s] += (double)row[s];
		}
#endif
	}
	next++;
	return KVP_OK;
}

#if KVP_ABI_MAJOR >= 2
/* kvpolicy_fork_save saves the prompt's sums, head by head. */
KVP_EXPORT(kvpolicy_fork_save) int32_t kvpolicy_fork_save(void) {
	kvp_header *h = region;
	if (next != prompt_len) {
		return kvp_fail(h, "h2o: fork before the whole prompt was observed");
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		for (int32_t s = 0; s < prompt_len; s++) {
			saved[hd * prompt_len + s] = score[hd * max_len + s];
		}
	}
	h->fork_ptr = (uint32_t)(uintptr_t)saved;
	h->fork_len = (uint32_t)heads * (uint32_t)prompt_len * 8u;
	return KVP_OK;
}

/* kvpolicy_fork_load takes the sums kvpolicy_fork_save saved in another instance. */
KVP_EXPORT(kvpolicy_fork_load) int32_t kvpolicy_fork_load(void) {
	kvp_header *h = region;
	if (next != 0 || h->fork_len != (uint32_t)heads * (uint32_t)prompt_len * 8u) {
		return kvp_fail(h, "h2o: a fork state that does not fit this sequence, or after prompt rows");
	}
	const uint8_t *src = (const uint8_t *)h + h->fork_off;
	for (int32_t hd = 0; hd < heads; hd++) {
		for (int32_t s = 0; s < prompt_len; s++) {
			double v;
			__builtin_memcpy(&v, src + 8 * (hd * prompt_len + s), 8); /* the region is only 8-aligned */
			score[hd * max_len + s] = v;
		}
	}
	next = prompt_len;
	return KVP_OK;
}
#endif

/* lower orders head slots by score, then position (older first): a total order. */
static const double *rank_score;
static const int32_t *rank_pos;

static int lower(int32_t a, int32_t b) {
	if (rank_score[a] != rank_score[b]) {
		return rank_score[a] < rank_score[b];
	}
	return rank_pos[a] < rank_pos[b];
}

static void sift_down(int32_t *heap, int32_t n, int32_t i) {
	for (;;) {
		int32_t child = 2 * i + 1;
		if (child >= n) {
			return;
		}
		if (child + 1 < n && lower(heap[child], heap[child + 1])) {
			child++;
		}
		if (!lower(heap[i], heap[child])) {
			return;
		}
		int32_t t = heap[i];
		heap[i] = heap[child];
		heap[child] = t;
		i = child;
	}
}

/* sort_lowest sorts ids[0..n) ascending by lower (heapsort: the order is total, so
 * every correct sort gives this order). */
static void sort_lowest(int32_t *ids, int32_t n) {
	for (int32_t i = n / 2 - 1; i >= 0; i--) {
		sift_down(ids, n, i);
	}
	for (int32_t end = n - 1; end > 0; end--) {
		int32_t t = ids[0];
		ids[0] = ids[end];
		ids[end] = t;
		sift_down(ids, end, 0);
	}
}

KVP_EXPORT(kvpolicy_evict) int32_t kvpolicy_evict(void) {
	kvp_header *h = region;
	const int32_t *need = kvp_need(h);
	int32_t *cnt = kvp_count(h), *victims = kvp_victims(h), stride = h->stride;
	if (h->phase == KVP_PREFILL && next != prompt_len) {
		return kvp_fail(h, "h2o: compression before the whole prompt was observed");
	}
	int32_t cutoff = h->pos + 1 - recent; /* positions ≥ cutoff are in the window */
	for (int32_t hd = 0; hd < heads; hd++) {
		rank_score = score + hd * max_len;
		rank_pos = pos + hd * max_len;
		const int32_t *l = live + hd * max_len;
		int32_t k = need[hd], n = 0;
		if (k == 1) { /* a decode step: the lowest in one pass, no list */
			int32_t best = -1;
			for (int32_t i = 0; i < count[hd]; i++) {
				if (rank_pos[l[i]] < cutoff && (best < 0 || lower(l[i], best))) {
					best = l[i];
				}
			}
			if (best >= 0) {
				cand[0] = best;
				n = 1;
			}
		} else if (k > 1) {
			for (int32_t i = 0; i < count[hd]; i++) {
				if (rank_pos[l[i]] < cutoff) {
					cand[n++] = l[i];
				}
			}
		}
		if (k < 0 || k > n || k > stride) {
			return kvp_fail(h, "h2o: more victims needed than tokens outside the recent window");
		}
		if (k > 1) {
			sort_lowest(cand, n);
		}
		for (int32_t i = 0; i < k; i++) {
			victims[hd * stride + i] = cand[i];
			drop(hd, cand[i]);
		}
		cnt[hd] = k;
	}
	return KVP_OK;
}
