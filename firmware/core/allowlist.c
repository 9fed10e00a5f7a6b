/* SPDX-License-Identifier: MIT */
#include "allowlist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void allowlist_init(struct allowlist *al)
{
	memset(al, 0, sizeof(*al));
}

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix == 0 ? 0 : 0xFFFFFFFFu << (32u - prefix);
}

/* Decimal 0..max from s[0..n), no sign, no leading zero (except "0"). */
static int dec(const char *s, size_t n, unsigned max, unsigned *out)
{
	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10u + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

/* One entry s[0..n): returns NULL or the reason it is bad. */
static const char *parse_entry(const char *s, size_t n, struct allowlist_entry *e)
{
	if (n == 0)
		return "empty entry";
	const char *slash = memchr(s, '/', n);
	size_t an = slash ? (size_t)(slash - s) : n;
	uint32_t a = 0;
	size_t o = 0;
	for (unsigned k = 0; k < 4; k++) {
		size_t st = o;
		while (o < an && s[o] != '.')
			o++;
		unsigned v;
		if (o == st)
			return "not an IPv4 address (want A.B.C.D or A.B.C.D/PREFIX)";
		for (size_t i = st; i < o; i++)
			if (s[i] < '0' || s[i] > '9')
				return "not an IPv4 address (want A.B.C.D or A.B.C.D/PREFIX)";
		if (dec(s + st, o - st, 255, &v) < 0)
			return "octet out of range 0..255 (or leading zero)";
		a = (a << 8) | v;
		if (k < 3) {
			if (o >= an)
				return "not an IPv4 address (want A.B.C.D or A.B.C.D/PREFIX)";
			o++; /* '.' */
		}
	}
	if (o != an)
		return "not an IPv4 address (want A.B.C.D or A.B.C.D/PREFIX)";
	unsigned prefix = 32;
	if (slash && dec(slash + 1, n - an - 1, 32, &prefix) < 0)
		return "prefix must be /0../32";
	e->prefix = (uint8_t)prefix;
	e->mask = prefix_mask(prefix);
	e->addr = a & e->mask;
	return NULL;
}

int allowlist_parse(struct allowlist *al, const char *list, char *err, size_t errcap)
{
	struct allowlist t;
	allowlist_init(&t);
	if (errcap)
		err[0] = '\0';
	if (!list || !*list) {
		if (errcap)
			snprintf(err, errcap, "empty list (want ADDR[/PREFIX][,...])");
		return -EINVAL;
	}
	const char *p = list;
	for (unsigned idx = 1;; idx++) {
		const char *c = strchr(p, ',');
		size_t n = c ? (size_t)(c - p) : strlen(p);
		if (t.count >= ALLOWLIST_MAX) {
			if (errcap)
				snprintf(err, errcap, "more than %u entries", ALLOWLIST_MAX);
			return -EINVAL;
		}
		const char *why = parse_entry(p, n, &t.e[t.count]);
		if (why) {
			if (errcap)
				snprintf(err, errcap, "entry %u '%.*s': %s", idx,
				         (int)(n > 40 ? 40 : n), p, why);
			return -EINVAL;
		}
		t.count++;
		if (!c)
			break;
		p = c + 1;
	}
	*al = t;
	return 0;
}

int allowlist_allows(const struct allowlist *al, uint32_t addr)
{
	if (al->count == 0)
		return 1;
	for (unsigned i = 0; i < al->count && i < ALLOWLIST_MAX; i++)
		if ((addr & al->e[i].mask) == al->e[i].addr)
			return 1;
	return 0;
}

const char *allowlist_format(const struct allowlist *al, char *buf, size_t cap)
{
	if (!cap)
		return buf;
	buf[0] = '\0';
	if (al->count == 0) {
		snprintf(buf, cap, "all");
		return buf;
	}
	size_t o = 0;
	for (unsigned i = 0; i < al->count && i < ALLOWLIST_MAX && o < cap; i++) {
		uint32_t a = al->e[i].addr;
		int r = snprintf(buf + o, cap - o, "%s%u.%u.%u.%u/%u", i ? "," : "",
		                 (unsigned)(a >> 24), (unsigned)((a >> 16) & 255u),
		                 (unsigned)((a >> 8) & 255u), (unsigned)(a & 255u),
		                 (unsigned)al->e[i].prefix);
		if (r < 0)
			break;
		o += (size_t)r;
	}
	return buf;
}
