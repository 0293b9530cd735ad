/*
 * params.h: reading a policy's params (abi/ABI.md §3: a JSON object, keys in byte
 * order, no spaces) without libc, for the C examples.
 *
 *   kvp_json j = kvp_json_start(region, "h2o");
 *   const char *key; uint32_t len;
 *   while (kvp_json_key(&j, &key, &len)) {
 *       if (kvp_json_is(key, len, "recent_share")) { double v; if (!kvp_json_number(&j, &v)) break; ... }
 *       else { kvp_json_unknown(&j); break; }
 *   }
 *   if (j.failed) return kvp_fail(region, j.msg);
 *
 * Numbers are read exactly for up to 15 significant digits and a decimal exponent of
 * at most 22 either way (every value a scenario writes by hand); others are refused
 * with a message rather than rounded differently from Go.
 */
#ifndef KVP_PARAMS_H
#define KVP_PARAMS_H

#include "kvpolicy.h"

typedef struct kvp_json {
	const char *s;      /* the params */
	uint32_t n, i;      /* their length and the read position */
	const char *policy; /* the policy's name, for messages */
	const char *key;    /* the key being read, for messages */
	uint32_t key_len;
	int started; /* the '{' was read */
	int failed;
	char msg[200]; /* the failure, NUL-terminated */
} kvp_json;

static inline kvp_json kvp_json_start(kvp_header *h, const char *policy) {
	kvp_json j = {0};
	j.s = kvp_params(h);
	j.n = h->params_len;
	j.policy = policy;
	return j;
}

/* kvp_json_fail records "<policy>: <what>" or, while a key is read,
 * "<policy>: param \"<key>\": <what>", and returns 0. */
static inline int kvp_json_fail(kvp_json *j, const char *what) {
	uint32_t n = 0, cap = sizeof j->msg - 1;
	for (const char *p = j->policy; *p && n < cap; p++) {
		j->msg[n++] = *p;
	}
	const char *mid = j->key ? ": param \"" : ": params: ";
	for (const char *p = mid; *p && n < cap; p++) {
		j->msg[n++] = *p;
	}
	if (j->key) {
		for (uint32_t i = 0; i < j->key_len && n < cap; i++) {
			j->msg[n++] = j->key[i];
		}
		for (const char *p = "\": "; *p && n < cap; p++) {
			j->msg[n++] = *p;
		}
	}
	for (const char *p = what; *p && n < cap; p++) {
		j->msg[n++] = *p;
	}
	j->msg[n] = 0;
	j->failed = 1;
	return 0;
}

static inline void kvp_json_space(kvp_json *j) {
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r')) {
		j->i++;
	}
}

/* kvp_json_key reads the next key and the ':' after it; 0 at the end of the object
 * or on a failure (j->failed). */
static inline int kvp_json_key(kvp_json *j, const char **key, uint32_t *len) {
	j->key = 0;
	kvp_json_space(j);
	if (!j->started) {
		if (j->i >= j->n || j->s[j->i] != '{') {
			return kvp_json_fail(j, "want a JSON object");
		}
		j->started = 1;
		j->i++;
		kvp_json_space(j);
	} else if (j->i < j->n && j->s[j->i] == ',') {
		j->i++;
		kvp_json_space(j);
	}
	if (j->i < j->n && j->s[j->i] == '}') {
		return 0;
	}
	if (j->i >= j->n || j->s[j->i] != '"') {
		return kvp_json_fail(j, j->i >= j->n ? "unterminated object" : "want a key");
	}
	uint32_t start = ++j->i;
	while (j->i < j->n && j->s[j->i] != '"' && j->s[j->i] != '\\') {
		j->i++;
	}
	if (j->i >= j->n || j->s[j->i] != '"') {
		return kvp_json_fail(j, "keys with escapes are not supported");
	}
	*key = j->s + start;
	*len = j->i - start;
	j->i++;
	kvp_json_space(j);
	if (j->i >= j->n || j->s[j->i] != ':') {
		return kvp_json_fail(j, "want ':' after a key");
	}
	j->i++;
	kvp_json_space(j);
	j->key = *key;
	j->key_len = *len;
	return 1;
}

/* kvp_json_is says whether the key is word. */
static inline int kvp_json_is(const char *key, uint32_t len, const char *word) {
	uint32_t i = 0;
	for (; i < len; i++) {
		if (word[i] != key[i]) {
			return 0;
		}
	}
	return word[i] == 0;
}

static inline int kvp_json_word(kvp_json *j, const char *word) {
	uint32_t i = j->i;
	for (; *word; word++, i++) {
		if (i >= j->n || j->s[i] != *word) {
			return 0;
		}
	}
	j->i = i;
	return 1;
}

static inline int kvp_json_unknown(kvp_json *j) { return kvp_json_fail(j, "unknown param"); }

static inline int kvp_json_bool(kvp_json *j, int *v) {
	if (kvp_json_word(j, "true")) {
		*v = 1;
		return 1;
	}
	if (kvp_json_word(j, "false")) {
		*v = 0;
		return 1;
	}
	return kvp_json_fail(j, "want true or false");
}

/* kvp_json_number reads a JSON number (see the note at the top on its range). */
static inline int kvp_json_number(kvp_json *j, double *v) {
	static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
	int neg = 0, digits = 0, exp = 0;
	uint64_t mant = 0;
	if (j->i < j->n && j->s[j->i] == '-') {
		neg = 1;
		j->i++;
	}
	uint32_t start = j->i;
	for (int frac = 0; j->i < j->n; j->i++) {
		char c = j->s[j->i];
		if (c == '.' && !frac) {
			frac = 1;
			continue;
		}
		if (c < '0' || c > '9') {
			break;
		}
		if (mant != 0 || c != '0') {
			digits++;
		}
		mant = mant * 10 + (uint64_t)(c - '0');
		exp -= frac;
	}
	if (j->i == start) {
		return kvp_json_fail(j, "want a number");
	}
	if (j->i < j->n && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
		int eneg = 0, e = 0;
		j->i++;
		if (j->i < j->n && (j->s[j->i] == '-' || j->s[j->i] == '+')) {
			eneg = j->s[j->i++] == '-';
		}
		for (; j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9' && e < 1000; j->i++) {
			e = e * 10 + (j->s[j->i] - '0');
		}
		exp += eneg ? -e : e;
	}
	if (digits > 15 || exp > 22 || exp < -22) {
		return kvp_json_fail(j, "numbers of more than 15 digits or beyond 1e±22 are not supported");
	}
	double x = (double)mant;
	x = exp < 0 ? x / pow10[-exp] : x * pow10[exp];
	*v = neg ? -x : x;
	return 1;
}

/* kvp_json_integer reads a number that must be an integer (3 and 3.0 alike). */
static inline int kvp_json_integer(kvp_json *j, int32_t *v) {
	double x;
	if (!kvp_json_number(j, &x)) {
		return 0;
	}
	if (x != (double)(int32_t)x || x < -2147483648.0 || x > 2147483647.0) {
		return kvp_json_fail(j, "want an integer");
	}
	*v = (int32_t)x;
	return 1;
}

/* kvp_json_string reads a string without escapes; *s points into the params. */
static inline int kvp_json_string(kvp_json *j, const char **s, uint32_t *len) {
	if (j->i >= j->n || j->s[j->i] != '"') {
		return kvp_json_fail(j, "want a string");
	}
	uint32_t start = ++j->i;
	while (j->i < j->n && j->s[j->i] != '"' && j->s[j->i] != '\\') {
		j->i++;
	}
	if (j->i >= j->n || j->s[j->i] != '"') {
		return kvp_json_fail(j, "strings with escapes are not supported");
	}
	*s = j->s + start;
	*len = j->i - start;
	j->i++;
	return 1;
}

#endif
