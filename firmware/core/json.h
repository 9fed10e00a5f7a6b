/* SPDX-License-Identifier: MIT */
/*
 * Minimal JSON for the settings model and the HTTP API (portable C11, no heap).
 * Writer: appends to a caller buffer, remembers overflow. Reader: a jsmn-like tokenizer into
 * a caller token array (strings are not unescaped except \" \\ \/ by json_str_eq/json_copy).
 */
#ifndef ESPSTM_JSON_H
#define ESPSTM_JSON_H

#include <stddef.h>
#include <stdint.h>

struct jw {
	char *buf;
	size_t cap, len;
	int overflow;
	int need_comma;
};

void jw_init(struct jw *w, char *buf, size_t cap);
void jw_raw(struct jw *w, const char *s);
void jw_obj(struct jw *w);             /* { */
void jw_obj_end(struct jw *w);         /* } */
void jw_arr(struct jw *w);             /* [ */
void jw_arr_end(struct jw *w);         /* ] */
void jw_key(struct jw *w, const char *k);
void jw_str(struct jw *w, const char *s); /* escaped; NULL writes null */
void jw_int(struct jw *w, long long v);
void jw_bool(struct jw *w, int v);
void jw_null(struct jw *w);
/* Finish: NUL-terminate. Returns the length or -1 on overflow. */
int jw_finish(struct jw *w);

enum jtype { J_OBJ = 1, J_ARR, J_STR, J_NUM, J_TRUE, J_FALSE, J_NULL };

struct jtok {
	uint8_t type;
	uint32_t start, end; /* J_STR: the characters inside the quotes */
	uint16_t size;       /* J_OBJ: keys; J_ARR: elements */
	uint16_t next;       /* index of the token after this subtree */
};

/* Tokenize one JSON value (surrounding whitespace allowed). Returns the token count, or -1
 * on a syntax error, -2 if max tokens are not enough. Depth is limited to 8. */
int json_parse(const char *js, size_t len, struct jtok *t, int max);
/* In object token obj, the value index of key, or -1. */
int json_find(const char *js, const struct jtok *t, int obj, const char *key);
/* Key token k equals s. */
int json_str_eq(const char *js, const struct jtok *k, const char *s);
/* Integer value (J_NUM without fraction/exponent). 0 or -1. */
int json_int(const char *js, const struct jtok *t, long long *out);
/* Copy a string token (unescaping \" \\ \/ \n \t; other escapes fail). 0 or -1. */
int json_copy(const char *js, const struct jtok *t, char *out, size_t cap);

#endif
