/*
 * TOVA (Token Omission Via Attention, Oren et al. 2024) in C, against abi/kvpolicy.h.
 *
 * It is the same algorithm as kvsim's builtin tova (policies/tova), decision for
 * decision, so that the two can be compared victim for victim and timed against
 * each other:
 *   - a resident token's score is the attention the newest query gives it;
 *   - evict the Need lowest-scored tokens of each head, the older token first on
 *     ties; the newest token is a candidate;
 *   - layerwise=true scores a slot by its attention averaged over the heads, and
 *     every head evicts the same slots.
 * It even selects with the same max-heap as policies/internal/ranking, so victims come
 * out in the same order.
 *
 * Build (no libc, no WASI):
 *   clang --target=wasm32 -O2 -msimd128 -mbulk-memory -nostdlib -Wl,--no-entry
 *         -I ../../../abi -o tova.wasm tova.c
 * (or make)
 */
#include "kvpolicy.h"

/* The policy's state. Memory comes from kvp_alloc_pages, only when the host asks for
 * a region and at init; nothing is allocated per call. */
static kvp_header *region;
static uint32_t region_cap;

static int layerwise;
static int32_t heads, prompt_len, max_len, width, next;
static int32_t *pos;   /* pos[h*width + s]: the slot's position, -1 when free */
static int32_t *count; /* resident tokens per head */
static double *score;  /* score[h*width + s]; layerwise, row 0 holds the average */
static int32_t *ids;   /* scratch candidate list */
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

/* Error messages that name a param are built here; a failed status points at it. */
static char msg[160];

static int32_t fail_param(const char *key, uint32_t key_len, const char *why) {
	static const char prefix[] = "tova: param \"";
	uint32_t n = 0;
	for (const char *p = prefix; *p && n < sizeof msg - 1; p++) {
		msg[n++] = *p;
	}
	for (uint32_t i = 0; i < key_len && n < sizeof msg - 1; i++) {
		msg[n++] = key[i];
	}
	if (n < sizeof msg - 1) {
		msg[n++] = '"';
	}
	for (const char *p = why; *p && n < sizeof msg - 1; p++) {
		msg[n++] = *p;
	}
	msg[n] = 0;
	return kvp_fail(region, msg);
}

static uint32_t skip_space(const char *s, uint32_t i, uint32_t n) {
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
		i++;
	}
	return i;
}

static int has_word(const char *s, uint32_t i, uint32_t n, const char *word) {
	for (; *word; word++, i++) {
		if (i >= n || s[i] != *word) {
			return 0;
		}
	}
	return 1;
}

/* kvpolicy_new reads the params: a JSON object whose only key may be "layerwise". */
KVP_EXPORT(kvpolicy_new) int32_t kvpolicy_new(void) {
	const char *s = kvp_params(region);
	uint32_t n = region->params_len, i = skip_space(s, 0, n);
	layerwise = 0;
	if (i >= n || s[i] != '{') {
		return kvp_fail(region, "tova: params: want a JSON object");
	}
	i = skip_space(s, i + 1, n);
	while (i < n && s[i] != '}') {
		if (s[i] != '"') {
			return kvp_fail(region, "tova: params: want a key");
		}
		uint32_t key = ++i;
		while (i < n && s[i] != '"' && s[i] != '\\') {
			i++;
		}
		if (i >= n || s[i] != '"') {
			return kvp_fail(region, "tova: params: keys with escapes are not supported");
		}
		uint32_t key_len = i - key;
		i = skip_space(s, i + 1, n);
		if (i >= n || s[i] != ':') {
			return kvp_fail(region, "tova: params: want ':' after a key");
		}
		i = skip_space(s, i + 1, n);
		if (key_len != 9 || !has_word(s, key, n, "layerwise")) {
			return fail_param(s + key, key_len, ": unknown param");
		}
		if (has_word(s, i, n, "true")) {
			layerwise = 1;
			i += 4;
		} else if (has_word(s, i, n, "false")) {
			layerwise = 0;
			i += 5;
		} else {
			return fail_param(s + key, key_len, ": want true or false");
		}
		i = skip_space(s, i, n);
		if (i < n && s[i] == ',') {
			i = skip_space(s, i + 1, n);
		}
	}
	return i < n ? KVP_OK : kvp_fail(region, "tova: params: unterminated object");
}

static int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

KVP_EXPORT(kvpolicy_init) int32_t kvpolicy_init(void) {
	kvp_header *h = region;
	if (h->heads < 1 || h->prompt_len < 1 || h->max_len < h->prompt_len || h->budget < 1) {
		return kvp_fail(h, "tova: bad config");
	}
	heads = h->heads, prompt_len = h->prompt_len, max_len = h->max_len, next = 0;
	h->slack = 0;
	h->flags = 0;
	width = kvp_width(h);
	uint32_t cells = (uint32_t)heads * (uint32_t)width;
	uint32_t need = cells * 8 + cells * 4 + (uint32_t)heads * 4 + (uint32_t)width * 4;
	if (need > state_cap) {
		uint8_t *mem = kvp_alloc_pages(need);
		if (mem == 0) {
			return kvp_fail(h, "tova: out of memory");
		}
		state_cap = (need + 65535u) & ~65535u;
		score = (double *)mem;
		pos = (int32_t *)(mem + cells * 8);
		count = pos + cells;
		ids = count + heads;
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		for (int32_t s = 0; s < width; s++) {
			pos[hd * width + s] = s < prompt_len ? s : -1;
			score[hd * width + s] = 0;
		}
		count[hd] = prompt_len;
	}
	return KVP_OK;
}

KVP_EXPORT(kvpolicy_observe) int32_t kvpolicy_observe(void) {
	kvp_header *h = region;
	int32_t rows = h->rows, stride = h->stride;
	if (h->pos != next || rows < 1) {
		return kvp_fail(h, "tova: attention rows out of order");
	}
	const int32_t *slot = kvp_slot(h);
	if (h->phase == KVP_PREFILL) {
		if (h->pos + rows > prompt_len || stride < h->pos + rows) {
			return kvp_fail(h, "tova: prefill rows do not fit the prompt and stride");
		}
	} else if (h->phase == KVP_DECODE) {
		if (h->pos < prompt_len || h->pos >= max_len || rows != 1) {
			return kvp_fail(h, "tova: decode row outside the generated positions");
		}
		int32_t bound = min32(width, stride);
		for (int32_t hd = 0; hd < heads; hd++) {
			int32_t s = slot[hd];
			if (s < 0 || s >= bound || pos[hd * width + s] >= 0) {
				return kvp_fail(h, "tova: a decode token entered a slot that is not free");
			}
			if (layerwise && s != slot[0]) {
				return kvp_fail(h, "tova: layerwise: the slot tables are no longer aligned");
			}
		}
		for (int32_t hd = 0; hd < heads; hd++) {
			pos[hd * width + slot[hd]] = h->pos;
			count[hd]++;
		}
	} else {
		return kvp_fail(h, "tova: unknown phase");
	}
	next += rows;

	const float *probs = kvp_probs(h);
	int32_t cols = min32(width, stride), last = rows - 1;
	if (layerwise) {
		double *avg = score;
		for (int32_t s = 0; s < width; s++) {
			avg[s] = 0;
		}
		for (int32_t hd = 0; hd < heads; hd++) {
			const float *row = probs + (hd * rows + last) * stride;
			for (int32_t s = 0; s < cols; s++) {
				avg[s] += (double)row[s];
			}
		}
		for (int32_t s = 0; s < width; s++) {
			avg[s] /= (double)heads;
		}
		return KVP_OK;
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		const float *row = probs + (hd * rows + last) * stride;
		double *sc = score + hd * width;
		for (int32_t s = 0; s < cols; s++) {
			sc[s] = (double)row[s];
		}
	}
	return KVP_OK;
}

/* less ranks slot a before slot b: lower score first, then the older token. */
static const double *rank_score;
static const int32_t *rank_pos;

static int less(int32_t a, int32_t b) {
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
		if (child + 1 < n && less(heap[child], heap[child + 1])) {
			child++;
		}
		if (!less(heap[i], heap[child])) {
			return;
		}
		int32_t t = heap[i];
		heap[i] = heap[child];
		heap[child] = t;
		i = child;
	}
}

/* lowest puts the k resident slots of head hd that rank lowest under score row
 * score_row into ids[0..k), with a max-heap of the k best so far. */
static void lowest(int32_t hd, int32_t score_row, int32_t k) {
	rank_score = score + score_row * width;
	rank_pos = pos + hd * width;
	int32_t n = 0;
	for (int32_t s = 0; s < width; s++) {
		if (rank_pos[s] >= 0) {
			ids[n++] = s;
		}
	}
	if (k <= 0 || k >= n) {
		return;
	}
	for (int32_t i = k / 2 - 1; i >= 0; i--) {
		sift_down(ids, k, i);
	}
	for (int32_t i = k; i < n; i++) {
		if (less(ids[i], ids[0])) {
			int32_t t = ids[0];
			ids[0] = ids[i];
			ids[i] = t;
			sift_down(ids, k, 0);
		}
	}
}

KVP_EXPORT(kvpolicy_evict) int32_t kvpolicy_evict(void) {
	kvp_header *h = region;
	const int32_t *need = kvp_need(h);
	int32_t *cnt = kvp_count(h), *victims = kvp_victims(h), stride = h->stride;
	if (h->phase == KVP_PREFILL && next != prompt_len) {
		return kvp_fail(h, "tova: compression before the whole prompt was observed");
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		if (need[hd] < 0 || need[hd] > count[hd] || need[hd] > stride) {
			return kvp_fail(h, "tova: more victims needed than tokens resident");
		}
		if (layerwise && need[hd] != need[0]) {
			return kvp_fail(h, "tova: layerwise: heads need different numbers of victims");
		}
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		/* Layer-wise, head 0's choice (made before any slot is freed) serves all. */
		if (!layerwise || hd == 0) {
			lowest(hd, layerwise ? 0 : hd, need[hd]);
		}
		for (int32_t i = 0; i < need[hd]; i++) {
			victims[hd * stride + i] = ids[i];
			pos[hd * width + ids[i]] = -1;
		}
		cnt[hd] = need[hd];
		count[hd] -= need[hd];
	}
	return KVP_OK;
}
