/*
 * kvpolicy.h: kvsim's eviction-policy ABI, version 2.1, for guests written in C.
 *
 * The normative spec is abi/ABI.md; this header restates it as C types. A policy
 * module defines and exports its memory and the six functions below, and is built
 * as a reactor, for example:
 *
 *   clang --target=wasm32 -O2 -msimd128 -mbulk-memory -nostdlib -Wl,--no-entry
 *         -I abi -o policy.wasm policy.c
 *
 * Everything crosses the boundary through one exchange region that the guest
 * allocates when the host calls kvpolicy_buffer, and that starts with the 256-byte
 * kvp_header below. Array offsets in the header count from the region's start.
 * All values are little-endian, which wasm is.
 *
 * A 1.x guest, which kvsim's host still runs unchanged, is built by defining
 * KVP_ABI_MAJOR as 1 first (-DKVP_ABI_MAJOR=1): the header is then the 128-byte 1.0
 * header, and the 2.0 fields, flags and export are left out.
 */
#ifndef KVPOLICY_H
#define KVPOLICY_H

#include <stddef.h>
#include <stdint.h>

#ifndef KVP_ABI_MAJOR
#define KVP_ABI_MAJOR 2
#endif
#if KVP_ABI_MAJOR != 1 && KVP_ABI_MAJOR != 2
#error "kvpolicy.h speaks ABI 2.0 and 1.0: define KVP_ABI_MAJOR as 2 (the default) or 1"
#endif
#if KVP_ABI_MAJOR == 2
#define KVP_ABI_MINOR 1
#else
#define KVP_ABI_MINOR 0
#endif
/* What kvpolicy_abi_version returns. */
#define KVP_ABI_VERSION ((KVP_ABI_MAJOR << 16) | KVP_ABI_MINOR)

/* Statuses. Any non-zero status is a failure; set the header's error fields first. */
#define KVP_OK 0
#define KVP_ERROR 1

/* kvp_header.phase */
#define KVP_PREFILL 1
#define KVP_DECODE 2

/* kvp_header.flags, written by kvpolicy_init */
#define KVP_UNBOUNDED (1u << 0)    /* no eviction at all */
#define KVP_COMPENSATION (1u << 1) /* merge victims into a compensation slot by weight */
#define KVP_CLAIRVOYANT (1u << 2)  /* the host fills the future array before evict */
#if KVP_ABI_MAJOR >= 2
#define KVP_KEYS (1u << 3)    /* 2.0: the host fills keys for every observed row */
#define KVP_VALUES (1u << 4)  /* 2.0: values likewise */
#define KVP_QUERIES (1u << 5) /* 2.0: queries likewise */
#define KVP_COMPACT (1u << 6) /* 2.0: decode rows list resident slots (live, len) */

/* kvp_header.pool, written by kvpolicy_init (2.0): what the budget bounds. */
#define KVP_POOL_HEAD 0  /* each head: budget tokens (plus slack) */
#define KVP_POOL_LAYER 1 /* the layer's heads together: heads * budget (plus heads * slack) */
#define KVP_POOL_MODEL 2 /* the model: layers * heads * budget, divided by kvpolicy_layer_budgets */

/* kvp_header.caps, written by kvpolicy_new (2.1), only when host_version is at
 * least KVP_VERSION_2_1: what the instance offers. */
#define KVP_VERSION_2_1 0x00020001u
#define KVP_CAP_FORK (1u << 0) /* kvpolicy_fork_save and kvpolicy_fork_load work */
#endif

typedef struct kvp_header {
	/* Host, when it hands out the region. */
	uint32_t host_version; /*   0: the host's ABI version, encoded as KVP_ABI_VERSION */
	uint32_t region_size;  /*   4: bytes the host asked for */
	/* Host, before kvpolicy_new: the params JSON object, region_start + params_off. */
	uint32_t params_off;   /*   8 */
	uint32_t params_len;   /*  12 */
	/* Host, before kvpolicy_init; kept valid until the next kvpolicy_init. */
	int32_t layer;         /*  16 */
	int32_t layers;        /*  20 */
	int32_t heads;         /*  24: heads batched into every call */
	int32_t head_dim;      /*  28 */
	int32_t prompt_len;    /*  32: P */
	int32_t max_len;       /*  36: T, prompt plus generated tokens */
	int32_t budget;        /*  40 */
	uint32_t reserved0;    /*  44: zero, not a field */
	uint64_t seed;         /*  48 */
	/* Guest, in kvpolicy_init: the layout. */
	int32_t slack;         /*  56: >= 0 */
	uint32_t flags;        /*  60: KVP_UNBOUNDED | KVP_COMPENSATION | KVP_CLAIRVOYANT */
	/* Host, before kvpolicy_observe and kvpolicy_evict. */
	int32_t phase;         /*  64: KVP_PREFILL or KVP_DECODE */
	int32_t pos;           /*  68: observe: first row's position; evict: newest position */
	int32_t rows;          /*  72: observe: query rows (1 in decode); evict: 0 */
	int32_t stride;        /*  76: S, this call's row length: of probs rows, and of each
	                        *      head's part of victims, weights and future */
	/* Host: array offsets from the region's start, multiples of 16 (the region is
	 * 8-aligned). Re-read them on every call: they change when the host asks for a
	 * larger region. The arrays probs, slot, comp, need and future are the host's:
	 * never write them. */
	uint32_t probs_off;    /*  80: float probs[(h*rows + r)*stride + s] */
	uint32_t slot_off;     /*  84: int32 slot[h], decode: the new token's slot */
	uint32_t comp_off;     /*  88: float comp[h], decode: compensation slot's probability */
	uint32_t need_off;     /*  92: int32 need[h], evict */
	uint32_t count_off;    /*  96: int32 count[h], evict: zeroed by the host, set by you */
	uint32_t victims_off;  /* 100: int32 victims[h*stride + i] */
	uint32_t weights_off;  /* 104: float weights[h*stride + i], with KVP_COMPENSATION */
	uint32_t future_off;   /* 108: float future[h*stride + s], with KVP_CLAIRVOYANT */
	/* Guest, with a failed status: a message anywhere in guest memory. */
	uint32_t err_ptr;      /* 112: address */
	uint32_t err_len;      /* 116: bytes, at most 1024 are read */
	/* Host: what the arrays hold. */
	uint32_t probs_cap;    /* 120: floats in probs */
	uint32_t list_cap;     /* 124: room per head in victims, weights, future and live,
	                        *      >= stride (slot_cap in earlier headers; not the table's
	                        *      width) */
#if KVP_ABI_MAJOR >= 2
	/* 2.0. Guest, in kvpolicy_init. */
	uint32_t pool;         /* 128: KVP_POOL_HEAD, KVP_POOL_LAYER or KVP_POOL_MODEL */
	/* Host, before kvpolicy_evict: with a layer or model pool, the fewest victims of
	 * all heads together (need is then all zero); 0 with KVP_POOL_HEAD. */
	int32_t pool_need;     /* 132 */
	/* Host: more array offsets. */
	uint32_t keys_off;     /* 136: float keys[(h*rows + r)*head_dim + d], with KVP_KEYS */
	uint32_t values_off;   /* 140: float values[...], the same layout, with KVP_VALUES */
	uint32_t queries_off;  /* 144: float queries[...], the same layout, with KVP_QUERIES */
	uint32_t live_off;     /* 148: int32 live[h*stride + i], i < len[h], with KVP_COMPACT */
	uint32_t len_off;      /* 152: int32 len[h], decode with KVP_COMPACT */
	uint32_t budgets_off;  /* 156: int32 budgets[l], kvpolicy_layer_budgets writes them */
	uint32_t vec_cap;      /* 160: floats in each of keys, values and queries */
	uint32_t budgets_cap;  /* 164: entries in budgets, >= layers */
	/* 2.1. Guest, in kvpolicy_new, only if host_version >= KVP_VERSION_2_1: KVP_CAP_*
	 * flags; the host zeroes it before the call. */
	uint32_t caps;         /* 168 */
	/* Guest, in kvpolicy_fork_save: the saved prompt state, anywhere in guest memory
	 * (an absolute address), valid until the next call. */
	uint32_t fork_ptr;     /* 172 */
	uint32_t fork_len;     /* 176: its bytes; host, before kvpolicy_fork_load: the same */
	/* Host, before kvpolicy_fork_load: the state to load, at region_start + fork_off. */
	uint32_t fork_off;     /* 180 */
	uint32_t reserved1[18]; /* 184: zero, not fields */
#endif
} kvp_header;

#if KVP_ABI_MAJOR >= 2
_Static_assert(sizeof(kvp_header) == 256, "kvp_header is 256 bytes");
_Static_assert(offsetof(kvp_header, pool) == 128, "pool at 128");
_Static_assert(offsetof(kvp_header, budgets_cap) == 164, "budgets_cap at 164");
_Static_assert(offsetof(kvp_header, fork_off) == 180, "fork_off at 180");
#else
_Static_assert(sizeof(kvp_header) == 128, "a 1.x kvp_header is 128 bytes");
#endif
_Static_assert(offsetof(kvp_header, seed) == 48, "seed at 48");
_Static_assert(offsetof(kvp_header, phase) == 64, "phase at 64");
_Static_assert(offsetof(kvp_header, err_ptr) == 112, "err_ptr at 112");

/* Array accessors. */
#define KVP_ARRAY(type, h, field) ((type *)((uint8_t *)(h) + (h)->field))
static inline float *kvp_probs(kvp_header *h) { return KVP_ARRAY(float, h, probs_off); }
static inline int32_t *kvp_slot(kvp_header *h) { return KVP_ARRAY(int32_t, h, slot_off); }
static inline float *kvp_comp(kvp_header *h) { return KVP_ARRAY(float, h, comp_off); }
static inline int32_t *kvp_need(kvp_header *h) { return KVP_ARRAY(int32_t, h, need_off); }
static inline int32_t *kvp_count(kvp_header *h) { return KVP_ARRAY(int32_t, h, count_off); }
static inline int32_t *kvp_victims(kvp_header *h) { return KVP_ARRAY(int32_t, h, victims_off); }
static inline float *kvp_weights(kvp_header *h) { return KVP_ARRAY(float, h, weights_off); }
static inline float *kvp_future(kvp_header *h) { return KVP_ARRAY(float, h, future_off); }
static inline const char *kvp_params(kvp_header *h) { return (const char *)h + h->params_off; }
#if KVP_ABI_MAJOR >= 2
static inline float *kvp_keys(kvp_header *h) { return KVP_ARRAY(float, h, keys_off); }
static inline float *kvp_values(kvp_header *h) { return KVP_ARRAY(float, h, values_off); }
static inline float *kvp_queries(kvp_header *h) { return KVP_ARRAY(float, h, queries_off); }
static inline int32_t *kvp_live(kvp_header *h) { return KVP_ARRAY(int32_t, h, live_off); }
static inline int32_t *kvp_len(kvp_header *h) { return KVP_ARRAY(int32_t, h, len_off); }
static inline int32_t *kvp_budgets(kvp_header *h) { return KVP_ARRAY(int32_t, h, budgets_off); }
#endif

/* kvp_width is W, the width of the host's slot table (ABI.md 5.1): slot ids are
 * 0 .. W-1. Call it in kvpolicy_init once you have set slack, flags and pool. */
static inline int32_t kvp_width(const kvp_header *h) {
	if ((h->flags & KVP_UNBOUNDED) || h->slack >= h->max_len) {
		return h->max_len;
	}
	int64_t w = (int64_t)h->budget + h->slack + 1;
#if KVP_ABI_MAJOR >= 2
	if (h->pool == KVP_POOL_LAYER) {
		w = (int64_t)h->heads * ((int64_t)h->budget + h->slack) + 1;
	} else if (h->pool == KVP_POOL_MODEL) {
		w = (int64_t)h->layers * h->heads * h->budget + (int64_t)h->heads * h->slack + 1;
	}
#endif
	if (w < h->prompt_len) {
		w = h->prompt_len;
	}
	return w < h->max_len ? (int32_t)w : h->max_len;
}

/* Marks a function as one of the module's exports. */
#define KVP_EXPORT(name) __attribute__((export_name(#name)))

/* The six exports every policy defines. Each returns KVP_OK or a failure status,
 * except kvpolicy_abi_version (KVP_ABI_VERSION) and kvpolicy_buffer (the region's
 * address, 8-byte aligned, or 0 if it cannot allocate size bytes). */
KVP_EXPORT(kvpolicy_abi_version) int32_t kvpolicy_abi_version(void);
KVP_EXPORT(kvpolicy_buffer) kvp_header *kvpolicy_buffer(int32_t size);
KVP_EXPORT(kvpolicy_new) int32_t kvpolicy_new(void);
KVP_EXPORT(kvpolicy_init) int32_t kvpolicy_init(void);
KVP_EXPORT(kvpolicy_observe) int32_t kvpolicy_observe(void);
KVP_EXPORT(kvpolicy_evict) int32_t kvpolicy_evict(void);
#if KVP_ABI_MAJOR >= 2
/* 2.0, optional, required with KVP_POOL_MODEL: write each layer's share of the
 * model pool to kvp_budgets(h)[0 .. layers-1], the header's config being the
 * sequence's with layer = -1. Declared here, exported only if you define it. */
KVP_EXPORT(kvpolicy_layer_budgets) int32_t kvpolicy_layer_budgets(void);
/* 2.1, optional, required with KVP_CAP_FORK (ABI.md 5.3): save the prompt state
 * that does not depend on the budget (fork_ptr, fork_len), after the whole prompt
 * was observed, changing nothing; and load it into an instance initialized for the
 * same sequence at another budget and shown no prompt rows (fork_off, fork_len). */
KVP_EXPORT(kvpolicy_fork_save) int32_t kvpolicy_fork_save(void);
KVP_EXPORT(kvpolicy_fork_load) int32_t kvpolicy_fork_load(void);
#endif

/* The one host import, optional: a line for the host's log. Nothing is imported
 * unless you call it. */
__attribute__((import_module("kvpolicy"), import_name("log"))) void kvp_log(const char *msg, uint32_t len);

/* kvp_fail records a NUL-terminated message (a string literal or any buffer that
 * outlives the call) and returns KVP_ERROR. */
static inline int32_t kvp_fail(kvp_header *h, const char *msg) {
	uint32_t n = 0;
	while (msg[n] != 0) {
		n++;
	}
	h->err_ptr = (uint32_t)(uintptr_t)msg;
	h->err_len = n;
	return KVP_ERROR;
}

/* kvp_alloc_pages grows memory by enough 64 KiB pages for size bytes and returns the
 * new pages (zeroed), or 0 if the host's page limit is reached. It suits a
 * -nostdlib policy that allocates only when the host asks for a region and at
 * init; guests with a libc use malloc instead. */
static inline void *kvp_alloc_pages(uint32_t size) {
	int32_t old = __builtin_wasm_memory_grow(0, (size + 65535u) / 65536u);
	return old < 0 ? (void *)0 : (void *)((uintptr_t)old * 65536u);
}

#endif
