/*
 * AUV (Li et al., "AUV: Efficient KV Cache Eviction for LLMs via Attention Score
 * Aggregation and Usage Count") in C, against abi/kvpolicy.h.
 *
 * It is kvsim's builtin auv (policies/auv, whose package doc describes the
 * algorithm), decision for decision and victim for victim, in the same order and
 * with the same compensation weights, for every preset and param:
 *   - a token's aggregated attention score (AAS) is its column mean with each row
 *     scaled by N_i/N_max (aggregation "scaled", Eq. 2-4), or the column sum ("sum")
 *     or the unscaled mean ("mean"), summed in double precision;
 *   - its usage count adds 1 whenever a decode query puts it among its top_k;
 *   - the local area (the newest L tokens) is never evicted; the others are
 *     candidates, evicted by the mode: greedy (V1), naive second chance (V2),
 *     optimized second chance (V3) or multistep (V4 and auv: L at a time, by Eq. 5's
 *     composite, then Eq. 6's decay);
 *   - with compensation, a victim's weight is its AAS.
 * Params: preset ("auv", "v1" .. "v4"), aggregation, usage, top_k, eviction, local
 * or local_ratio, alpha, compensation; see policies/auv.
 *
 * In ABI 2.x it offers to fork (ABI.md 5.3): the prompt's weighted column sums do
 * not depend on the budget, and the rest of the prompt's state follows from them.
 *
 * Build (no libc, no WASI):
 *   clang --target=wasm32 -O2 -msimd128 -mbulk-memory -nostdlib -Wl,--no-entry
 *         -I ../../../abi -o auv.wasm auv.c
 * (or make)
 */
#include "kvpolicy.h"
#include "params.h"

enum { SCALED, SUM, MEAN };
enum { GREEDY, NAIVE, OPTIMIZED, MULTISTEP };

typedef struct settings {
	int aggregation, usage, top_k, eviction;
	int32_t local; /* 0: local_ratio * budget */
	double local_ratio, alpha;
	int compensation;
} settings;

static settings set;

static kvp_header *region;
static uint32_t region_cap;

/* One head's state: by slot, the position held (-1 when free), the weighted
 * attention sum, the rows in it, the AAS and the usage count; the candidates; the
 * local area as a ring of slot ids; the token waiting to fill a victim's entry. */
typedef struct head {
	int32_t *pos;
	double *sum, *count, *aas, *usage;
	int32_t nmax;
	int32_t *cand, ncand;
	int32_t *ring, nring, ptr;
	int32_t pending;
} head;

static int32_t heads, prompt_len, local, width, rows_seen, multistep;
static head *hs;
/* Scratch shared by the heads. */
static int32_t *resident, *top, *order;
static double *comp;
static double *saved; /* the prompt's sums, head by head, for a fork */
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

/* one_of reads a string param that must be one of names[0..n) and returns its
 * index, or -1 after recording a failure. */
static int one_of(kvp_json *j, const char *const *names, int n, const char *want) {
	const char *s;
	uint32_t len;
	if (!kvp_json_string(j, &s, &len)) {
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (kvp_json_is(s, len, names[i])) {
			return i;
		}
	}
	kvp_json_fail(j, want);
	return -1;
}

KVP_EXPORT(kvpolicy_new) int32_t kvpolicy_new(void) {
	static const char *const presets[] = {"auv", "v1", "v2", "v3", "v4"};
	static const char *const aggregations[] = {"scaled", "sum", "mean"};
	static const char *const modes[] = {"greedy", "naive", "optimized", "multistep"};
	static const settings preset[] = {
	    {SCALED, 1, 4, MULTISTEP, 0, 0.5, 0.5, 1}, /* auv */
	    {SCALED, 0, 4, GREEDY, 0, 0.5, 1, 0},      /* v1 */
	    {SCALED, 1, 4, NAIVE, 0, 0.5, 1, 0},       /* v2 */
	    {SCALED, 1, 4, OPTIMIZED, 0, 0.5, 1, 0},   /* v3 */
	    {SCALED, 1, 4, MULTISTEP, 0, 0.5, 1, 0},   /* v4 */
	};
	/* Keys arrive in byte order, "preset" after most overrides: read them all, then
	 * apply the preset and the overrides. */
	settings over = {0};
	int which = 0, has_agg = 0, has_usage = 0, has_topk = 0, has_mode = 0, has_local = 0, has_ratio = 0,
	    has_alpha = 0, has_comp = 0;
	kvp_json j = kvp_json_start(region, "auv");
	const char *key;
	uint32_t len;
	while (kvp_json_key(&j, &key, &len)) {
		int ok;
		if (kvp_json_is(key, len, "preset")) {
			ok = (which = one_of(&j, presets, 5, "want auv, v1, v2, v3 or v4")) >= 0;
		} else if (kvp_json_is(key, len, "aggregation")) {
			ok = has_agg = (over.aggregation = one_of(&j, aggregations, 3, "want scaled, sum or mean")) >= 0;
		} else if (kvp_json_is(key, len, "usage")) {
			ok = has_usage = kvp_json_bool(&j, &over.usage);
		} else if (kvp_json_is(key, len, "top_k")) {
			int32_t k = 0;
			ok = has_topk = kvp_json_integer(&j, &k) && (k >= 1 || kvp_json_fail(&j, "must be at least 1"));
			over.top_k = k;
		} else if (kvp_json_is(key, len, "eviction")) {
			ok = has_mode = (over.eviction = one_of(&j, modes, 4, "want greedy, naive, optimized or multistep")) >= 0;
		} else if (kvp_json_is(key, len, "local")) {
			ok = has_local = kvp_json_integer(&j, &over.local) && (over.local >= 1 || kvp_json_fail(&j, "must be at least 1"));
		} else if (kvp_json_is(key, len, "local_ratio")) {
			double r = 0;
			ok = has_ratio = kvp_json_number(&j, &r) && ((r > 0 && r <= 1) || kvp_json_fail(&j, "must be in (0, 1]"));
			over.local_ratio = r;
		} else if (kvp_json_is(key, len, "alpha")) {
			double a = 0;
			ok = has_alpha = kvp_json_number(&j, &a) && ((a >= 0 && a <= 1) || kvp_json_fail(&j, "must be in [0, 1]"));
			over.alpha = a;
		} else if (kvp_json_is(key, len, "compensation")) {
			ok = has_comp = kvp_json_bool(&j, &over.compensation);
		} else {
			ok = kvp_json_unknown(&j);
		}
		if (!ok) {
			break;
		}
	}
	if (j.failed) {
		return kvp_fail(region, j.msg);
	}
	if (has_local && has_ratio) {
		return kvp_fail(region, "auv: param \"local\": set local or local_ratio, not both");
	}
	set = preset[which];
	set.aggregation = has_agg ? over.aggregation : set.aggregation;
	set.usage = has_usage ? over.usage : set.usage;
	set.top_k = has_topk ? over.top_k : set.top_k;
	set.eviction = has_mode ? over.eviction : set.eviction;
	set.local = has_local ? over.local : set.local;
	set.local_ratio = has_ratio ? over.local_ratio : set.local_ratio;
	set.alpha = has_alpha ? over.alpha : set.alpha;
	set.compensation = has_comp ? over.compensation : set.compensation;
#if KVP_ABI_MAJOR >= 2
	if (region->host_version >= KVP_VERSION_2_1) {
		region->caps = KVP_CAP_FORK;
	}
#endif
	return KVP_OK;
}

/* round_half_away is Go's math.Round for the non-negative values it sees here. */
static double round_half_away(double x) {
	double t = (double)(int64_t)x;
	return x - t >= 0.5 ? t + 1 : t;
}

/* take hands out n bytes of the state block, 8-aligned. */
static uint8_t *take(uint32_t *at, uint32_t n) {
	uint8_t *p = state + *at;
	*at += (n + 7u) & ~7u;
	return p;
}

KVP_EXPORT(kvpolicy_init) int32_t kvpolicy_init(void) {
	kvp_header *h = region;
	if (h->heads < 1) {
		return kvp_fail(h, "auv: need at least one head");
	}
	if (h->prompt_len < 1 || h->max_len < h->prompt_len) {
		return kvp_fail(h, "auv: need 1 <= prompt <= length");
	}
	if (h->budget < 1) {
		return kvp_fail(h, "auv: need a budget of at least one token");
	}
	heads = h->heads, prompt_len = h->prompt_len, rows_seen = 0;
	multistep = set.eviction == MULTISTEP;
	local = set.local;
	if (local == 0) {
		local = (int32_t)round_half_away(set.local_ratio * (double)h->budget);
	}
	local = local < 1 ? 1 : local > h->budget ? h->budget : local;
	h->slack = multistep ? local - 1 : 0;
	h->flags = set.compensation ? KVP_COMPENSATION : 0;
	width = kvp_width(h);

	uint64_t w = (uint64_t)width, per_head = w * (4 + 8 * 4 + 4) + (uint64_t)local * 4 + 64;
	uint64_t need = (uint64_t)heads * (sizeof(head) + 8 + per_head + (uint64_t)prompt_len * 8) + w * (4 + 4 + 8) +
	                (uint64_t)set.top_k * 4 + 64;
	if (need > 0xffff0000u) {
		return kvp_fail(h, "auv: the config does not fit a 32-bit guest");
	}
	if (need > state_cap) {
		uint8_t *mem = kvp_alloc_pages((uint32_t)need);
		if (mem == 0) {
			return kvp_fail(h, "auv: out of memory");
		}
		state = mem;
		state_cap = ((uint32_t)need + 65535u) & ~65535u;
	}
	uint32_t at = 0;
	hs = (head *)take(&at, (uint32_t)heads * sizeof(head));
	for (int32_t hd = 0; hd < heads; hd++) {
		head *x = &hs[hd];
		x->pos = (int32_t *)take(&at, width * 4);
		x->sum = (double *)take(&at, width * 8);
		x->count = (double *)take(&at, width * 8);
		x->aas = (double *)take(&at, width * 8);
		x->usage = (double *)take(&at, width * 8);
		x->cand = (int32_t *)take(&at, width * 4);
		x->ring = (int32_t *)take(&at, local * 4);
		for (int32_t s = 0; s < width; s++) {
			x->pos[s] = s < prompt_len ? s : -1;
			x->sum[s] = x->count[s] = x->aas[s] = x->usage[s] = 0;
		}
		x->nmax = prompt_len;
		x->ncand = x->nring = x->ptr = 0;
		x->pending = -1;
	}
	resident = (int32_t *)take(&at, width * 4);
	order = (int32_t *)take(&at, width * 4);
	comp = (double *)take(&at, width * 8);
	top = (int32_t *)take(&at, set.top_k * 4);
	saved = (double *)take(&at, heads * prompt_len * 8);
	return KVP_OK;
}

/* push adds the newest token to the local area; when the area is full the oldest
 * leaves, is returned, and the new token takes its place; otherwise -1. */
static int32_t push(head *x, int32_t slot) {
	if (x->nring < local) {
		x->ring[x->nring++] = slot;
		return -1;
	}
	int32_t old = x->ring[x->ptr];
	x->ring[x->ptr] = slot;
	x->ptr = (x->ptr + 1) % local;
	return old;
}

static double row_weight(int32_t n, int32_t nmax) {
	return set.aggregation == SCALED ? (double)n / (double)nmax : 1;
}

/* end_prompt counts the rows in each prompt token's sum and lays the prompt out: the
 * last L tokens form the local area, the rest are candidates. */
static void end_prompt(void) {
	for (int32_t hd = 0; hd < heads; hd++) {
		head *x = &hs[hd];
		for (int32_t j = 0; j < prompt_len; j++) {
			x->count[j] = (double)(prompt_len - j);
			int32_t left = push(x, j);
			if (left >= 0) {
				x->cand[x->ncand++] = left;
			}
		}
	}
}

/* residents lists the head's resident slots into resident and returns how many:
 * candidates, local area, pending, in that order. */
static int32_t residents(const head *x) {
	int32_t n = 0;
	for (int32_t i = 0; i < x->ncand; i++) {
		resident[n++] = x->cand[i];
	}
	for (int32_t i = 0; i < x->nring; i++) {
		resident[n++] = x->ring[i];
	}
	if (x->pending >= 0) {
		resident[n++] = x->pending;
	}
	return n;
}

/* better ranks a before b among a query's strongest: higher probability, then the
 * lower slot id. */
static int better(const float *row, int32_t a, int32_t b) {
	if (row[a] != row[b]) {
		return row[a] > row[b];
	}
	return a < b;
}

/* top_k puts the top_k slots of resident[0..n) with the highest probabilities in row
 * into top, best first, and returns how many. */
static int32_t top_k(int32_t n, const float *row) {
	int32_t k = set.top_k, m = 0;
	float floor = -__builtin_inff();
	for (int32_t r = 0; r < n; r++) {
		int32_t s = resident[r];
		if (row[s] < floor) {
			continue;
		}
		if (m == k) {
			if (!better(row, s, top[k - 1])) {
				continue;
			}
			m = k - 1;
		}
		int32_t i = m++;
		for (; i > 0 && better(row, s, top[i - 1]); i--) {
			top[i] = top[i - 1];
		}
		top[i] = s;
		if (m == k) {
			floor = row[top[k - 1]];
		}
	}
	return m;
}

static int32_t observe_prompt(kvp_header *h) {
	int32_t rows = h->rows, stride = h->stride;
	if (h->pos != rows_seen) {
		return kvp_fail(h, "auv: prompt rows out of order");
	}
	if (h->pos + rows > prompt_len || stride < h->pos + rows) {
		return kvp_fail(h, "auv: prompt rows do not fit the prompt and stride");
	}
	const float *probs = kvp_probs(h);
	for (int32_t hd = 0; hd < heads; hd++) {
		double *sum = hs[hd].sum;
		for (int32_t r = 0; r < rows; r++) {
			int32_t n = h->pos + r + 1;
			double w = row_weight(n, prompt_len);
			const float *row = probs + (hd * rows + r) * stride;
			/* Eight f64x2 additions a pass: the host meters every loop iteration. */
#pragma clang loop vectorize_width(2) interleave_count(8)
			for (int32_t j = 0; j < n; j++) {
				sum[j] += (double)row[j] * w;
			}
		}
	}
	rows_seen += rows;
	if (rows_seen == prompt_len) {
		end_prompt();
	}
	return KVP_OK;
}

#if KVP_ABI_MAJOR >= 2
/* kvpolicy_fork_save saves the prompt's weighted sums, head by head. */
KVP_EXPORT(kvpolicy_fork_save) int32_t kvpolicy_fork_save(void) {
	kvp_header *h = region;
	if (rows_seen != prompt_len) {
		return kvp_fail(h, "auv: fork before the whole prompt was observed");
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		for (int32_t j = 0; j < prompt_len; j++) {
			saved[hd * prompt_len + j] = hs[hd].sum[j];
		}
	}
	h->fork_ptr = (uint32_t)(uintptr_t)saved;
	h->fork_len = (uint32_t)heads * (uint32_t)prompt_len * 8u;
	return KVP_OK;
}

/* kvpolicy_fork_load takes the sums another instance saved and lays the prompt out. */
KVP_EXPORT(kvpolicy_fork_load) int32_t kvpolicy_fork_load(void) {
	kvp_header *h = region;
	if (rows_seen != 0 || h->fork_len != (uint32_t)heads * (uint32_t)prompt_len * 8u) {
		return kvp_fail(h, "auv: a fork state that does not fit this sequence, or after prompt rows");
	}
	const uint8_t *src = (const uint8_t *)h + h->fork_off;
	for (int32_t hd = 0; hd < heads; hd++) {
		for (int32_t j = 0; j < prompt_len; j++) {
			double v;
			__builtin_memcpy(&v, src + 8 * (hd * prompt_len + j), 8); /* the region is only 8-aligned */
			hs[hd].sum[j] = v;
		}
	}
	rows_seen = prompt_len;
	end_prompt();
	return KVP_OK;
}
#endif

/* enter places a decode token in the local area; the token pushed out joins the
 * candidates at once (multistep) or after this step's eviction (pending). */
static void enter(head *x, int32_t slot, int32_t pos) {
	if (x->pending >= 0) { /* the last step evicted nothing */
		x->cand[x->ncand++] = x->pending;
		x->pending = -1;
	}
	x->pos[slot] = pos;
	x->sum[slot] = x->count[slot] = x->usage[slot] = 0;
	int32_t left = push(x, slot);
	if (left >= 0) {
		if (multistep) {
			x->cand[x->ncand++] = left;
		} else {
			x->pending = left;
		}
	}
}

static int32_t observe_step(kvp_header *h) {
	if (rows_seen < prompt_len) {
		return kvp_fail(h, "auv: a decode step before the whole prompt");
	}
	if (h->rows != 1 || h->stride < width) {
		return kvp_fail(h, "auv: a decode step wants 1 row and a stride of at least the table's width");
	}
	const int32_t *slot = kvp_slot(h);
	const float *probs = kvp_probs(h);
	for (int32_t hd = 0; hd < heads; hd++) {
		head *x = &hs[hd];
		int32_t s = slot[hd];
		if (s < 0 || s >= width || x->pos[s] >= 0) {
			return kvp_fail(h, "auv: a decode token entered a slot that is not free");
		}
		enter(x, s, h->pos);
		int32_t n = residents(x);
		x->nmax = n > x->nmax ? n : x->nmax;
		double w = row_weight(n, x->nmax);
		const float *row = probs + hd * h->stride;
		for (int32_t i = 0; i < n; i++) {
			int32_t j = resident[i];
			x->sum[j] += (double)row[j] * w;
			x->count[j]++;
		}
		if (set.usage) {
			for (int32_t i = 0, m = top_k(n, row); i < m; i++) {
				x->usage[top[i]]++;
			}
		}
	}
	return KVP_OK;
}

KVP_EXPORT(kvpolicy_observe) int32_t kvpolicy_observe(void) {
	kvp_header *h = region;
	if (h->rows < 1 || h->stride < 1) {
		return kvp_fail(h, "auv: attention without rows");
	}
	if (h->phase == KVP_PREFILL) {
		return observe_prompt(h);
	}
	if (h->phase == KVP_DECODE) {
		return observe_step(h);
	}
	return kvp_fail(h, "auv: unknown phase");
}

/* score sets the AAS of the head's resident slots. */
static void score(head *x) {
	for (int32_t i = 0, n = residents(x); i < n; i++) {
		int32_t s = resident[i];
		if (set.aggregation == SUM) {
			x->aas[s] = x->sum[s];
		} else {
			x->aas[s] = x->count[s] > 0 ? x->sum[s] / x->count[s] : 0;
		}
	}
}

/* lower_score orders slots by AAS, the lower slot id first on ties. */
static int lower_score(const double *aas, int32_t a, int32_t b) {
	if (aas[a] != aas[b]) {
		return aas[a] < aas[b];
	}
	return a < b;
}

/* lower_composite orders candidate indices by composite value, usage, slot id. */
static int lower_composite(const head *x, int32_t a, int32_t b) {
	if (comp[a] != comp[b]) {
		return comp[a] < comp[b];
	}
	int32_t sa = x->cand[a], sb = x->cand[b];
	if (x->usage[sa] != x->usage[sb]) {
		return x->usage[sa] < x->usage[sb];
	}
	return sa < sb;
}

static void swap(int32_t *v, int32_t i, int32_t j) {
	int32_t t = v[i];
	v[i] = v[j];
	v[j] = t;
}

/* select_lowest reorders idx[0..n) so that its first k entries are the k lowest
 * under lower_composite: the builtin's quickselect, step for step, so that the
 * victims come out in its order. */
static void select_lowest(const head *x, int32_t *idx, int32_t n, int32_t k) {
	if (k <= 0 || k >= n) {
		return;
	}
	int32_t target = k - 1, lo = 0, hi = n - 1;
	while (lo < hi) {
		int32_t mid = lo + (hi - lo) / 2;
		if (lower_composite(x, idx[mid], idx[lo])) {
			swap(idx, mid, lo);
		}
		if (lower_composite(x, idx[hi], idx[lo])) {
			swap(idx, hi, lo);
		}
		if (lower_composite(x, idx[hi], idx[mid])) {
			swap(idx, hi, mid);
		}
		swap(idx, mid, hi);
		int32_t pivot = idx[hi], store = lo;
		for (int32_t i = lo; i < hi; i++) {
			if (lower_composite(x, idx[i], pivot)) {
				swap(idx, i, store);
				store++;
			}
		}
		swap(idx, store, hi);
		if (store == target) {
			return;
		}
		if (store > target) {
			hi = store - 1;
		} else {
			lo = store + 1;
		}
	}
}

/* victim names slot as head hd's next victim, weighted by its AAS. */
static int victim(kvp_header *h, int32_t hd, int32_t slot) {
	int32_t *cnt = kvp_count(h), stride = h->stride;
	if (cnt[hd] >= stride) {
		return 0;
	}
	kvp_victims(h)[hd * stride + cnt[hd]] = slot;
	if (set.compensation) {
		kvp_weights(h)[hd * stride + cnt[hd]] = (float)hs[hd].aas[slot];
	}
	cnt[hd]++;
	hs[hd].pos[slot] = -1;
	return 1;
}

/* scatter puts fill's slot ids into the holes (-1) of the candidates, in order;
 * holes left over are dropped and ids left over appended. */
static void scatter(head *x, const int32_t *fill, int32_t nfill) {
	int32_t f = 0, out = 0;
	for (int32_t i = 0; i < x->ncand; i++) {
		int32_t s = x->cand[i];
		if (s < 0) {
			if (f == nfill) {
				continue;
			}
			s = fill[f++];
		}
		x->cand[out++] = s;
	}
	while (f < nfill) {
		x->cand[out++] = fill[f++];
	}
	x->ncand = out;
}

/* evict_lowest evicts the k candidates lowest in the composite order; in multistep
 * mode the local area then fills the victims' entries and the counts decay. */
static int32_t evict_lowest(kvp_header *h, int32_t hd, int32_t k) {
	head *x = &hs[hd];
	int32_t n = x->ncand;
	if (k > n) {
		return kvp_fail(h, "auv: more victims needed than tokens outside the local area");
	}
	double best = 0;
	for (int32_t i = 0; i < n; i++) {
		double a = x->aas[x->cand[i]];
		best = a > best ? a : best;
	}
	for (int32_t i = 0; i < n; i++) {
		int32_t s = x->cand[i];
		comp[i] = x->usage[s] * best + x->aas[s];
		order[i] = i;
	}
	select_lowest(x, order, n, k);
	for (int32_t i = 0; i < k; i++) {
		if (!victim(h, hd, x->cand[order[i]])) {
			return kvp_fail(h, "auv: more victims than the list holds");
		}
		x->cand[order[i]] = -1;
	}
	if (!multistep) {
		scatter(x, 0, 0);
		return KVP_OK;
	}
	scatter(x, x->ring, x->nring);
	x->nring = x->ptr = 0;
	if (x->ncand > 0) { /* Eq. 6 over every resident token, all candidates now */
		double least = x->usage[x->cand[0]];
		for (int32_t i = 0; i < x->ncand; i++) {
			double u = x->usage[x->cand[i]];
			least = u < least ? u : least;
		}
		for (int32_t i = 0; i < x->ncand; i++) {
			int32_t s = x->cand[i];
			x->usage[s] = (x->usage[s] - least) * set.alpha;
		}
	}
	return KVP_OK;
}

/* sort_by_score sorts order[0..n), indices into the candidates, by lower_score: a
 * heapsort, since the order is total and every correct sort gives this one. */
static const double *sort_aas;
static const int32_t *sort_cand;

static int before(int32_t a, int32_t b) { return lower_score(sort_aas, sort_cand[a], sort_cand[b]); }

static void sift(int32_t *v, int32_t n, int32_t i) {
	for (;;) {
		int32_t c = 2 * i + 1;
		if (c >= n) {
			return;
		}
		if (c + 1 < n && before(v[c], v[c + 1])) {
			c++;
		}
		if (!before(v[i], v[c])) {
			return;
		}
		swap(v, i, c);
		i = c;
	}
}

static void sort_by_score(const head *x, int32_t n) {
	sort_aas = x->aas, sort_cand = x->cand;
	for (int32_t i = 0; i < n; i++) {
		order[i] = i;
	}
	for (int32_t i = n / 2 - 1; i >= 0; i--) {
		sift(order, n, i);
	}
	for (int32_t end = n - 1; end > 0; end--) {
		swap(order, 0, end);
		sift(order, end, 0);
	}
}

/* single_victim is the index of the mode's victim among the head's candidates. */
static int32_t single_victim(head *x) {
	const double *aas = x->aas;
	double *usage = x->usage;
	int32_t n = x->ncand, best = 0;
	switch (set.eviction) {
	case GREEDY:
		for (int32_t i = 1; i < n; i++) {
			if (lower_score(aas, x->cand[i], x->cand[best])) {
				best = i;
			}
		}
		return best;
	case NAIVE:
		/* Second chance: traverse by AAS in rounds; a count of 0 (or below, or NaN)
		 * is the victim, every other count passed is decremented. */
		sort_by_score(x, n);
		for (;;) {
			for (int32_t i = 0; i < n; i++) {
				int32_t s = x->cand[order[i]];
				if (!(usage[s] > 0)) {
					return order[i];
				}
				usage[s]--;
			}
		}
	default: { /* OPTIMIZED: the lowest AAS among the lowest counts */
		double least = usage[x->cand[0]];
		for (int32_t i = 0; i < n; i++) {
			double u = usage[x->cand[i]];
			least = u < least ? u : least;
		}
		best = -1;
		for (int32_t i = 0; i < n; i++) {
			int32_t s = x->cand[i];
			if (usage[s] == least && (best < 0 || lower_score(aas, s, x->cand[best]))) {
				best = i;
			}
		}
		return best;
	}
	}
}

/* evict_single applies the single-step rule need times. */
static int32_t evict_single(kvp_header *h, int32_t hd, int32_t need) {
	head *x = &hs[hd];
	for (; need > 0; need--) {
		if (x->ncand == 0) { /* no candidate area (L = budget): the leaving token goes */
			if (x->pending < 0) {
				return kvp_fail(h, "auv: no token outside the local area");
			}
			if (!victim(h, hd, x->pending)) {
				return kvp_fail(h, "auv: more victims than the list holds");
			}
			x->pending = -1;
			continue;
		}
		int32_t i = single_victim(x);
		if (!victim(h, hd, x->cand[i])) {
			return kvp_fail(h, "auv: more victims than the list holds");
		}
		if (x->pending >= 0) { /* the oldest local token takes the victim's place */
			x->cand[i] = x->pending;
			x->pending = -1;
		} else {
			x->cand[i] = x->cand[--x->ncand];
		}
	}
	return KVP_OK;
}

KVP_EXPORT(kvpolicy_evict) int32_t kvpolicy_evict(void) {
	kvp_header *h = region;
	const int32_t *need = kvp_need(h);
	if (rows_seen < prompt_len) {
		return kvp_fail(h, "auv: eviction before the whole prompt was observed");
	}
	if (h->phase != KVP_PREFILL && h->phase != KVP_DECODE) {
		return kvp_fail(h, "auv: unknown phase");
	}
	for (int32_t hd = 0; hd < heads; hd++) {
		if (need[hd] <= 0) {
			continue;
		}
		score(&hs[hd]);
		int32_t status;
		if (h->phase == KVP_PREFILL) {
			status = evict_lowest(h, hd, need[hd]);
		} else if (multistep) { /* L at once, more only if the host asks for more */
			status = evict_lowest(h, hd, need[hd] > local ? need[hd] : local);
		} else {
			status = evict_single(h, hd, need[hd]);
		}
		if (status != KVP_OK) {
			return status;
		}
	}
	return KVP_OK;
}
