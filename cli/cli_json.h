/* SPDX-License-Identifier: MIT */
/*
 * cli_json: the small JSON reader of the `espstm` tool (plain C11, heap, no libuv).
 *
 * Parses one JSON text (RFC 8259) into a tree the tool walks to print espstmd's answers.
 * Why not firmware/core/json.h's reader: that one is built for the ESP (no heap, counters
 * limited to about 1e11, no \uXXXX escapes); the daemon's answers carry 64-bit byte
 * counters and, in last_error, any text jw_str() escapes as \u00XX.
 *
 * Limits: nesting depth CJ_MAX_DEPTH; strings are unescaped to UTF-8 (\uXXXX including
 * surrogate pairs; an unpaired surrogate or a "\u0000" is a syntax error, so every string is
 * a proper C string); numbers keep their text and are read on request. Duplicate object
 * keys: cj_get() returns the first.
 */
#ifndef ESPSTM_CLI_JSON_H
#define ESPSTM_CLI_JSON_H

#include <stddef.h>
#include <stdint.h>

#define CJ_MAX_DEPTH 32

enum cj_type { CJ_NULL, CJ_FALSE, CJ_TRUE, CJ_NUM, CJ_STR, CJ_ARR, CJ_OBJ };

struct cj {
	enum cj_type type;
	char *str;         /* CJ_STR: unescaped text; CJ_NUM: the number's text */
	char *key;         /* member name when inside an object, else NULL */
	struct cj **items; /* CJ_ARR elements / CJ_OBJ members */
	size_t n;
};

/*
 * Parse text[0..len) (one value, whitespace around it allowed). Returns the tree (free it
 * with cj_free) or NULL: then err (if not NULL) holds "offset N: what" (for example
 * "offset 12: expected ':'"), or "out of memory".
 */
struct cj *cj_parse(const char *text, size_t len, char *err, size_t errcap);
/* Free a tree from cj_parse (NULL is fine). */
void cj_free(struct cj *v);

/* Member key of object v, or NULL when v is not an object or has no such member. */
const struct cj *cj_get(const struct cj *v, const char *key);
/* Element i of array v, or NULL (not an array, or i out of range). */
const struct cj *cj_at(const struct cj *v, size_t i);
/* Elements of an array / members of an object; 0 for anything else (or NULL). */
size_t cj_len(const struct cj *v);
/* The string of a CJ_STR value, or NULL for anything else (or NULL). */
const char *cj_str(const struct cj *v);
/* Integer value of a CJ_NUM without fraction or exponent that fits int64_t:
 * 0 and *out, or -1 (not a number, a fraction, out of range, NULL). */
int cj_int(const struct cj *v, int64_t *out);
/* The same for non-negative integers up to UINT64_MAX. 0 or -1. */
int cj_uint(const struct cj *v, uint64_t *out);
/* true -> 1, false -> 0; -1 for anything else. */
int cj_bool(const struct cj *v);

#endif
