/* SPDX-License-Identifier: MIT */
#include "json.h"

#include <string.h>

void jw_init(struct jw *w, char *buf, size_t cap)
{
	w->buf = buf;
	w->cap = cap;
	w->len = 0;
	w->overflow = cap == 0;
	w->need_comma = 0;
	if (cap)
		buf[0] = '\0';
}

static void put(struct jw *w, char c)
{
	if (w->len + 1 < w->cap)
		w->buf[w->len++] = c;
	else
		w->overflow = 1;
}

void jw_raw(struct jw *w, const char *s)
{
	while (*s)
		put(w, *s++);
}

static void sep(struct jw *w)
{
	if (w->need_comma)
		put(w, ',');
	w->need_comma = 1;
}

void jw_obj(struct jw *w)
{
	sep(w);
	put(w, '{');
	w->need_comma = 0;
}

void jw_obj_end(struct jw *w)
{
	put(w, '}');
	w->need_comma = 1;
}

void jw_arr(struct jw *w)
{
	sep(w);
	put(w, '[');
	w->need_comma = 0;
}

void jw_arr_end(struct jw *w)
{
	put(w, ']');
	w->need_comma = 1;
}

static void str(struct jw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	put(w, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			put(w, '\\');
			put(w, (char)c);
		} else if (c < 0x20) {
			jw_raw(w, "\\u00");
			put(w, hex[c >> 4]);
			put(w, hex[c & 15]);
		} else {
			put(w, (char)c);
		}
	}
	put(w, '"');
}

void jw_key(struct jw *w, const char *k)
{
	sep(w);
	str(w, k);
	put(w, ':');
	w->need_comma = 0;
}

void jw_str(struct jw *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	sep(w);
	str(w, s);
}

void jw_int(struct jw *w, long long v)
{
	char tmp[24];
	int n = 0;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	do {
		tmp[n++] = (char)('0' + (int)(u % 10u));
		u /= 10u;
	} while (u);
	sep(w);
	if (v < 0)
		put(w, '-');
	while (n)
		put(w, tmp[--n]);
}

void jw_bool(struct jw *w, int v)
{
	sep(w);
	jw_raw(w, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
	sep(w);
	jw_raw(w, "null");
}

int jw_finish(struct jw *w)
{
	if (w->cap)
		w->buf[w->len < w->cap ? w->len : w->cap - 1] = '\0';
	return w->overflow ? -1 : (int)w->len;
}

/* ---- reader ---- */

struct jp {
	const char *js;
	size_t len, pos;
	struct jtok *t;
	int max, n;
	int err;
};

static void ws(struct jp *p)
{
	while (p->pos < p->len && (p->js[p->pos] == ' ' || p->js[p->pos] == '\t' ||
	                           p->js[p->pos] == '\n' || p->js[p->pos] == '\r'))
		p->pos++;
}

static int alloc(struct jp *p, uint8_t type)
{
	if (p->n >= p->max) {
		p->err = -2;
		return -1;
	}
	struct jtok *t = &p->t[p->n];
	memset(t, 0, sizeof(*t));
	t->type = type;
	t->start = (uint32_t)p->pos;
	return p->n++;
}

static int value(struct jp *p, int depth);

static int string(struct jp *p)
{
	if (p->pos >= p->len || p->js[p->pos] != '"')
		return -1;
	p->pos++;
	int i = alloc(p, J_STR);
	if (i < 0)
		return -1;
	while (p->pos < p->len && p->js[p->pos] != '"') {
		unsigned char c = (unsigned char)p->js[p->pos];
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			p->pos++;
			if (p->pos >= p->len)
				return -1;
		}
		p->pos++;
	}
	if (p->pos >= p->len)
		return -1;
	p->t[i].end = (uint32_t)p->pos;
	p->pos++;
	p->t[i].next = (uint16_t)p->n;
	return i;
}

static int value(struct jp *p, int depth)
{
	ws(p);
	if (p->pos >= p->len || depth > 8)
		return -1;
	char c = p->js[p->pos];
	if (c == '"')
		return string(p);
	if (c == '{' || c == '[') {
		int i = alloc(p, c == '{' ? J_OBJ : J_ARR);
		if (i < 0)
			return -1;
		char close = c == '{' ? '}' : ']';
		p->pos++;
		ws(p);
		if (p->pos < p->len && p->js[p->pos] == close) {
			p->pos++;
		} else {
			for (;;) {
				if (c == '{') {
					ws(p);
					if (string(p) < 0)
						return -1;
					ws(p);
					if (p->pos >= p->len || p->js[p->pos] != ':')
						return -1;
					p->pos++;
				}
				if (value(p, depth + 1) < 0)
					return -1;
				p->t[i].size++;
				ws(p);
				if (p->pos >= p->len)
					return -1;
				if (p->js[p->pos] == ',') {
					p->pos++;
					continue;
				}
				if (p->js[p->pos] != close)
					return -1;
				p->pos++;
				break;
			}
		}
		p->t[i].end = (uint32_t)p->pos;
		p->t[i].next = (uint16_t)p->n;
		return i;
	}
	const char *lit[3] = {"true", "false", "null"};
	uint8_t lt[3] = {J_TRUE, J_FALSE, J_NULL};
	for (int k = 0; k < 3; k++) {
		size_t l = strlen(lit[k]);
		if (p->len - p->pos >= l && memcmp(p->js + p->pos, lit[k], l) == 0) {
			int i = alloc(p, lt[k]);
			if (i < 0)
				return -1;
			p->pos += l;
			p->t[i].end = (uint32_t)p->pos;
			p->t[i].next = (uint16_t)p->n;
			return i;
		}
	}
	if (c == '-' || (c >= '0' && c <= '9')) {
		int i = alloc(p, J_NUM);
		if (i < 0)
			return -1;
		if (c == '-')
			p->pos++;
		size_t digits = 0;
		while (p->pos < p->len) {
			char d = p->js[p->pos];
			if ((d >= '0' && d <= '9') || d == '.' || d == 'e' || d == 'E' || d == '+' ||
			    d == '-') {
				p->pos++;
				digits++;
			} else {
				break;
			}
		}
		if (!digits)
			return -1;
		p->t[i].end = (uint32_t)p->pos;
		p->t[i].next = (uint16_t)p->n;
		return i;
	}
	return -1;
}

int json_parse(const char *js, size_t len, struct jtok *t, int max)
{
	struct jp p = {.js = js, .len = len, .t = t, .max = max > 0xFFF0 ? 0xFFF0 : max};
	if (value(&p, 0) < 0)
		return p.err ? p.err : -1;
	ws(&p);
	if (p.pos != len)
		return -1;
	return p.n;
}

int json_str_eq(const char *js, const struct jtok *k, const char *s)
{
	size_t l = strlen(s);
	return k->type == J_STR && k->end - k->start == l && memcmp(js + k->start, s, l) == 0;
}

int json_find(const char *js, const struct jtok *t, int obj, const char *key)
{
	if (t[obj].type != J_OBJ)
		return -1;
	int i = obj + 1;
	for (unsigned k = 0; k < t[obj].size; k++) {
		if (json_str_eq(js, &t[i], key))
			return i + 1;
		i = t[i + 1].next;
	}
	return -1;
}

int json_int(const char *js, const struct jtok *t, long long *out)
{
	if (t->type != J_NUM)
		return -1;
	size_t i = t->start;
	int neg = 0;
	if (js[i] == '-') {
		neg = 1;
		i++;
	}
	if (i >= t->end)
		return -1;
	long long v = 0;
	for (; i < t->end; i++) {
		char c = js[i];
		if (c < '0' || c > '9' || v > 100000000000LL)
			return -1;
		v = v * 10 + (c - '0');
	}
	*out = neg ? -v : v;
	return 0;
}

int json_copy(const char *js, const struct jtok *t, char *out, size_t cap)
{
	if (t->type != J_STR || cap == 0)
		return -1;
	size_t o = 0;
	for (size_t i = t->start; i < t->end; i++) {
		char c = js[i];
		if (c == '\\') {
			c = js[++i];
			if (c == 'n')
				c = '\n';
			else if (c == 't')
				c = '\t';
			else if (c != '"' && c != '\\' && c != '/')
				return -1;
		}
		if (o + 1 >= cap)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}
