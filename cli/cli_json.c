/* SPDX-License-Identifier: MIT */
/* cli_json: JSON reader of the espstm tool (RFC 8259 grammar). See cli_json.h. */
#include "cli_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
	const char *s;
	size_t len, pos;
	char *err;
	size_t errcap;
	int failed;
};

static void fail(struct parser *p, const char *what)
{
	if (p->failed)
		return;
	p->failed = 1;
	if (p->err && p->errcap)
		snprintf(p->err, p->errcap, "offset %zu: %s", p->pos, what);
}

static void oom(struct parser *p)
{
	if (p->failed)
		return;
	p->failed = 1;
	if (p->err && p->errcap)
		snprintf(p->err, p->errcap, "out of memory");
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static struct cj *node(struct parser *p, enum cj_type t)
{
	struct cj *v = calloc(1, sizeof *v);
	if (!v)
		oom(p);
	else
		v->type = t;
	return v;
}

/* A growing byte buffer for unescaped strings. */
struct sbuf {
	char *b;
	size_t n, cap;
};

static int sb_put(struct sbuf *b, char c)
{
	if (b->n + 1 >= b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 32;
		char *nb = realloc(b->b, cap);
		if (!nb)
			return -1;
		b->b = nb;
		b->cap = cap;
	}
	b->b[b->n++] = c;
	b->b[b->n] = '\0';
	return 0;
}

static int sb_utf8(struct sbuf *b, uint32_t cp)
{
	int r = 0;
	if (cp < 0x80) {
		r |= sb_put(b, (char)cp);
	} else if (cp < 0x800) {
		r |= sb_put(b, (char)(0xC0 | (cp >> 6)));
		r |= sb_put(b, (char)(0x80 | (cp & 0x3F)));
	} else if (cp < 0x10000) {
		r |= sb_put(b, (char)(0xE0 | (cp >> 12)));
		r |= sb_put(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
		r |= sb_put(b, (char)(0x80 | (cp & 0x3F)));
	} else {
		r |= sb_put(b, (char)(0xF0 | (cp >> 18)));
		r |= sb_put(b, (char)(0x80 | ((cp >> 12) & 0x3F)));
		r |= sb_put(b, (char)(0x80 | ((cp >> 6) & 0x3F)));
		r |= sb_put(b, (char)(0x80 | (cp & 0x3F)));
	}
	return r;
}

static int hex4(struct parser *p, uint32_t *out)
{
	uint32_t v = 0;
	if (p->len - p->pos < 4) {
		p->pos = p->len;
		fail(p, "truncated \\u escape");
		return -1;
	}
	for (int i = 0; i < 4; i++) {
		char c = p->s[p->pos++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (uint32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (uint32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (uint32_t)(c - 'A' + 10);
		else {
			p->pos--;
			fail(p, "bad hex digit in \\u escape");
			return -1;
		}
	}
	*out = v;
	return 0;
}

/* At the opening quote. Returns the unescaped string (malloc'd) or NULL. */
static char *parse_string(struct parser *p)
{
	struct sbuf b = {0};
	p->pos++;                /* '"' */
	if (sb_put(&b, 'x') < 0) /* allocate, then drop: "" becomes a valid empty string */
		goto nomem;
	b.n = 0;
	b.b[0] = '\0';
	for (;;) {
		if (p->pos >= p->len) {
			fail(p, "unterminated string");
			goto bad;
		}
		unsigned char c = (unsigned char)p->s[p->pos];
		if (c == '"') {
			p->pos++;
			return b.b;
		}
		if (c < 0x20) {
			fail(p, "control character in string");
			goto bad;
		}
		if (c != '\\') {
			if (sb_put(&b, (char)c) < 0)
				goto nomem;
			p->pos++;
			continue;
		}
		p->pos++;
		if (p->pos >= p->len) {
			fail(p, "unterminated string");
			goto bad;
		}
		char e = p->s[p->pos++];
		char out;
		switch (e) {
		case '"':
		case '\\':
		case '/':
			out = e;
			break;
		case 'b':
			out = '\b';
			break;
		case 'f':
			out = '\f';
			break;
		case 'n':
			out = '\n';
			break;
		case 'r':
			out = '\r';
			break;
		case 't':
			out = '\t';
			break;
		case 'u': {
			uint32_t cp, lo;
			if (hex4(p, &cp) < 0)
				goto bad;
			if (cp >= 0xDC00 && cp <= 0xDFFF) {
				fail(p, "unpaired low surrogate");
				goto bad;
			}
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (p->len - p->pos < 2 || p->s[p->pos] != '\\' ||
				    p->s[p->pos + 1] != 'u') {
					fail(p, "unpaired high surrogate");
					goto bad;
				}
				p->pos += 2;
				if (hex4(p, &lo) < 0)
					goto bad;
				if (lo < 0xDC00 || lo > 0xDFFF) {
					fail(p, "unpaired high surrogate");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
			}
			if (cp == 0) {
				fail(p, "\\u0000 in string");
				goto bad;
			}
			if (sb_utf8(&b, cp) < 0)
				goto nomem;
			continue;
		}
		default:
			p->pos--;
			fail(p, "bad escape in string");
			goto bad;
		}
		if (sb_put(&b, out) < 0)
			goto nomem;
	}
nomem:
	oom(p);
bad:
	free(b.b);
	return NULL;
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static struct cj *parse_number(struct parser *p)
{
	size_t start = p->pos;
	if (p->pos < p->len && p->s[p->pos] == '-')
		p->pos++;
	if (p->pos >= p->len || !is_digit(p->s[p->pos])) {
		fail(p, "bad number");
		return NULL;
	}
	if (p->s[p->pos] == '0') {
		p->pos++;
	} else {
		while (p->pos < p->len && is_digit(p->s[p->pos]))
			p->pos++;
	}
	if (p->pos < p->len && p->s[p->pos] == '.') {
		p->pos++;
		if (p->pos >= p->len || !is_digit(p->s[p->pos])) {
			fail(p, "bad number");
			return NULL;
		}
		while (p->pos < p->len && is_digit(p->s[p->pos]))
			p->pos++;
	}
	if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || !is_digit(p->s[p->pos])) {
			fail(p, "bad number");
			return NULL;
		}
		while (p->pos < p->len && is_digit(p->s[p->pos]))
			p->pos++;
	}
	struct cj *v = node(p, CJ_NUM);
	if (!v)
		return NULL;
	size_t n = p->pos - start;
	v->str = malloc(n + 1);
	if (!v->str) {
		free(v);
		oom(p);
		return NULL;
	}
	memcpy(v->str, p->s + start, n);
	v->str[n] = '\0';
	return v;
}

static int add_item(struct parser *p, struct cj *parent, struct cj *child, size_t *cap)
{
	if (parent->n == *cap) {
		size_t nc = *cap ? *cap * 2 : 4;
		struct cj **ni = realloc(parent->items, nc * sizeof *ni);
		if (!ni) {
			oom(p);
			return -1;
		}
		parent->items = ni;
		*cap = nc;
	}
	parent->items[parent->n++] = child;
	return 0;
}

static int literal(struct parser *p, const char *word)
{
	size_t l = strlen(word);
	if (p->len - p->pos >= l && memcmp(p->s + p->pos, word, l) == 0) {
		p->pos += l;
		return 1;
	}
	return 0;
}

static struct cj *parse_value(struct parser *p, int depth);

static struct cj *parse_container(struct parser *p, int depth, int is_obj)
{
	struct cj *v = node(p, is_obj ? CJ_OBJ : CJ_ARR);
	size_t cap = 0;
	char close = is_obj ? '}' : ']';
	if (!v)
		return NULL;
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->s[p->pos] == close) {
		p->pos++;
		return v;
	}
	for (;;) {
		char *key = NULL;
		skip_ws(p);
		if (is_obj) {
			if (p->pos >= p->len || p->s[p->pos] != '"') {
				fail(p, "expected a member name");
				goto bad;
			}
			key = parse_string(p);
			if (!key)
				goto bad;
			skip_ws(p);
			if (p->pos >= p->len || p->s[p->pos] != ':') {
				free(key);
				fail(p, "expected ':'");
				goto bad;
			}
			p->pos++;
		}
		struct cj *child = parse_value(p, depth + 1);
		if (!child) {
			free(key);
			goto bad;
		}
		child->key = key;
		if (add_item(p, v, child, &cap) < 0) {
			cj_free(child);
			goto bad;
		}
		skip_ws(p);
		if (p->pos >= p->len) {
			fail(p, is_obj ? "unterminated object" : "unterminated array");
			goto bad;
		}
		if (p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->s[p->pos] == close) {
			p->pos++;
			return v;
		}
		fail(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
		goto bad;
	}
bad:
	cj_free(v);
	return NULL;
}

static struct cj *parse_value(struct parser *p, int depth)
{
	skip_ws(p);
	if (depth > CJ_MAX_DEPTH) {
		fail(p, "nested too deeply");
		return NULL;
	}
	if (p->pos >= p->len) {
		fail(p, "expected a value");
		return NULL;
	}
	char c = p->s[p->pos];
	if (c == '{' || c == '[')
		return parse_container(p, depth, c == '{');
	if (c == '"') {
		char *s = parse_string(p);
		if (!s)
			return NULL;
		struct cj *v = node(p, CJ_STR);
		if (!v) {
			free(s);
			return NULL;
		}
		v->str = s;
		return v;
	}
	if (c == '-' || is_digit(c))
		return parse_number(p);
	if (literal(p, "true"))
		return node(p, CJ_TRUE);
	if (literal(p, "false"))
		return node(p, CJ_FALSE);
	if (literal(p, "null"))
		return node(p, CJ_NULL);
	fail(p, "expected a value");
	return NULL;
}

struct cj *cj_parse(const char *text, size_t len, char *err, size_t errcap)
{
	struct parser p = {.s = text, .len = len, .err = err, .errcap = errcap};
	if (err && errcap)
		err[0] = '\0';
	if (!text) {
		fail(&p, "no text");
		return NULL;
	}
	struct cj *v = parse_value(&p, 0);
	if (!v)
		return NULL;
	skip_ws(&p);
	if (p.pos != p.len) {
		fail(&p, "text after the value");
		cj_free(v);
		return NULL;
	}
	return v;
}

void cj_free(struct cj *v)
{
	if (!v)
		return;
	for (size_t i = 0; i < v->n; i++)
		cj_free(v->items[i]);
	free(v->items);
	free(v->str);
	free(v->key);
	free(v);
}

const struct cj *cj_get(const struct cj *v, const char *key)
{
	if (!v || v->type != CJ_OBJ || !key)
		return NULL;
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->items[i]->key, key) == 0)
			return v->items[i];
	return NULL;
}

const struct cj *cj_at(const struct cj *v, size_t i)
{
	if (!v || v->type != CJ_ARR || i >= v->n)
		return NULL;
	return v->items[i];
}

size_t cj_len(const struct cj *v)
{
	if (!v || (v->type != CJ_ARR && v->type != CJ_OBJ))
		return 0;
	return v->n;
}

const char *cj_str(const struct cj *v)
{
	return v && v->type == CJ_STR ? v->str : NULL;
}

int cj_uint(const struct cj *v, uint64_t *out)
{
	if (!v || v->type != CJ_NUM || !is_digit(v->str[0]))
		return -1;
	uint64_t r = 0;
	for (const char *s = v->str; *s; s++) {
		if (!is_digit(*s))
			return -1; /* fraction or exponent */
		unsigned d = (unsigned)(*s - '0');
		if (r > (UINT64_MAX - d) / 10)
			return -1;
		r = r * 10 + d;
	}
	*out = r;
	return 0;
}

int cj_int(const struct cj *v, int64_t *out)
{
	if (!v || v->type != CJ_NUM)
		return -1;
	int neg = v->str[0] == '-';
	struct cj mag = {.type = CJ_NUM, .str = v->str + neg};
	uint64_t u;
	if (cj_uint(&mag, &u) < 0)
		return -1;
	if (neg) {
		if (u > (uint64_t)INT64_MAX + 1)
			return -1;
		*out = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
	} else {
		if (u > (uint64_t)INT64_MAX)
			return -1;
		*out = (int64_t)u;
	}
	return 0;
}

int cj_bool(const struct cj *v)
{
	if (!v)
		return -1;
	if (v->type == CJ_TRUE)
		return 1;
	if (v->type == CJ_FALSE)
		return 0;
	return -1;
}
