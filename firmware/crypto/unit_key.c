/* SPDX-License-Identifier: MIT */
/* The unit key file (unit_key.h): parse (fuzzed: tests/fuzz/fuzz_unit_key.c), format,
 * generate. Strict on purpose: a key file that is not exactly understood is refused with
 * the line and the reason, never half-read. */
#include "unit_key.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/platform_util.h>

static const char hexdig[] = "0123456789abcdef";

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static int blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Checks an identity (1..TLS_PSK_ID_MAX characters of id_char); returns NULL or the reason. */
static const char *identity_problem(const char *v, size_t n)
{
	if (n == 0)
		return "identity is empty";
	if (n > TLS_PSK_ID_MAX)
		return "identity is longer than 40 characters";
	for (size_t i = 0; i < n; i++)
		if (!id_char(v[i]))
			return "identity has a character outside A-Z a-z 0-9 . _ -";
	return NULL;
}

/* One "identity VALUE" or "key VALUE" line (word and value already split); 0 or -EINVAL. */
static int parse_field(const char *w, size_t wn, const char *v, size_t vn, unsigned line,
                       struct tls_psk *out, int *have, char *err, size_t errlen)
{
	if (wn == 8 && memcmp(w, "identity", 8) == 0) {
		const char *why = identity_problem(v, vn);
		if (have[0] || why) {
			set_err(err, errlen, "line %u: %s", line,
			        have[0] ? "identity given twice" : why);
			return -EINVAL;
		}
		memcpy(out->identity, v, vn);
		out->identity[vn] = '\0';
		have[0] = 1;
		return 0;
	}
	if (wn == 3 && memcmp(w, "key", 3) == 0) {
		if (have[1]) {
			set_err(err, errlen, "line %u: key given twice", line);
			return -EINVAL;
		}
		if (vn != 2 * TLS_PSK_KEY_LEN) {
			set_err(err, errlen, "line %u: key must be %d hex digits (got %zu)", line,
			        2 * TLS_PSK_KEY_LEN, vn);
			return -EINVAL;
		}
		uint8_t any = 0;
		for (size_t i = 0; i < TLS_PSK_KEY_LEN; i++) {
			int hi = hexval(v[2 * i]), lo = hexval(v[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				set_err(err, errlen,
				        "line %u: key has a character that is not a hex digit",
				        line);
				return -EINVAL;
			}
			out->key[i] = (uint8_t)(hi << 4 | lo);
			any |= out->key[i];
		}
		if (!any) {
			set_err(err, errlen, "line %u: key is all zeros", line);
			return -EINVAL;
		}
		have[1] = 1;
		return 0;
	}
	set_err(err, errlen, "line %u: expected 'identity NAME' or 'key HEX' or a # comment", line);
	return -EINVAL;
}

/* One line without its end (LF, and CR before it); 0 or -EINVAL. */
static int parse_line(const char *s, size_t n, unsigned line, struct tls_psk *out, int *have,
                      char *err, size_t errlen)
{
	if (memchr(s, '\0', n)) {
		set_err(err, errlen, "line %u: NUL byte", line);
		return -EINVAL;
	}
	while (n > 0 && (blank(s[n - 1]) || s[n - 1] == '\r'))
		n--;
	size_t i = 0;
	while (i < n && blank(s[i]))
		i++;
	if (i == n || s[i] == '#')
		return 0;
	size_t w = i;
	while (i < n && !blank(s[i]))
		i++;
	size_t wn = i - w;
	while (i < n && blank(s[i]))
		i++;
	for (size_t j = i; j < n; j++)
		if (blank(s[j]) || s[j] == '\r') {
			set_err(err, errlen, "line %u: more than one word after '%.*s'", line,
			        (int)(wn < 8 ? wn : 8), s + w);
			return -EINVAL;
		}
	return parse_field(s + w, wn, s + i, n - i, line, out, have, err, errlen);
}

int unit_key_parse(const char *text, size_t len, struct tls_psk *out, char *err, size_t errlen)
{
	int have[2] = {0, 0};
	int r = 0;
	memset(out, 0, sizeof(*out));
	set_err(err, errlen, "%s", "");
	if (len > UNIT_KEY_TEXT_MAX) {
		set_err(err, errlen, "longer than %d bytes: not a unit key file",
		        UNIT_KEY_TEXT_MAX);
		r = -EINVAL;
	}
	unsigned line = 1;
	size_t pos = 0;
	while (r == 0 && pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		r = parse_line(text + pos, n, line, out, have, err, errlen);
		pos += n + (nl ? 1 : 0);
		line++;
	}
	if (r == 0 && (!have[0] || !have[1])) {
		set_err(err, errlen, "no '%s' line", have[0] ? "key" : "identity");
		r = -EINVAL;
	}
	if (r != 0)
		mbedtls_platform_zeroize(out, sizeof(*out));
	return r;
}

int unit_key_format(const struct tls_psk *k, const char *comment, char *buf, size_t cap)
{
	if (cap > 0)
		buf[0] = '\0';
	const char *nul = memchr(k->identity, '\0', sizeof(k->identity)); /* C11: no strnlen */
	size_t idn = nul ? (size_t)(nul - k->identity) : sizeof(k->identity);
	if (idn > TLS_PSK_ID_MAX || identity_problem(k->identity, idn))
		return -EINVAL;
	if (comment && strpbrk(comment, "\r\n"))
		return -EINVAL;
	char hex[2 * TLS_PSK_KEY_LEN + 1];
	for (size_t i = 0; i < TLS_PSK_KEY_LEN; i++) {
		hex[2 * i] = hexdig[k->key[i] >> 4];
		hex[2 * i + 1] = hexdig[k->key[i] & 15];
	}
	hex[sizeof(hex) - 1] = '\0';
	int n = snprintf(buf, cap, "%s%s%sidentity %s\nkey %s\n", comment ? "# " : "",
	                 comment ? comment : "", comment ? "\n" : "", k->identity, hex);
	mbedtls_platform_zeroize(hex, sizeof(hex));
	if (n < 0 || (size_t)n >= cap) {
		if (cap > 0)
			mbedtls_platform_zeroize(buf, cap);
		return -ENOSPC;
	}
	return n;
}

int unit_key_generate(struct tls_psk *k, tls_entropy_fn ent, void *ctx)
{
	uint8_t id[8], any = 0;
	memset(k, 0, sizeof(*k));
	for (int tries = 0; tries < 4 && !any; tries++) {
		int r = ent(ctx, id, sizeof(id));
		if (r == 0)
			r = ent(ctx, k->key, sizeof(k->key));
		if (r != 0) {
			mbedtls_platform_zeroize(k, sizeof(*k));
			mbedtls_platform_zeroize(id, sizeof(id));
			return r < 0 ? r : -EIO;
		}
		for (size_t i = 0; i < sizeof(k->key); i++)
			any |= k->key[i];
	}
	if (!any) { /* an entropy source that gives zeros is broken */
		mbedtls_platform_zeroize(k, sizeof(*k));
		return -EIO;
	}
	memcpy(k->identity, "espstm-", 7);
	for (size_t i = 0; i < sizeof(id); i++) {
		k->identity[7 + 2 * i] = hexdig[id[i] >> 4];
		k->identity[8 + 2 * i] = hexdig[id[i] & 15];
	}
	k->identity[7 + 2 * sizeof(id)] = '\0';
	mbedtls_platform_zeroize(id, sizeof(id));
	return 0;
}
