/* SPDX-License-Identifier: MIT */
/*
 * conf: espstmd configuration (see conf.h). iniparser does the INI syntax; since it
 * lowercases section names and silently keeps the last of two equal keys, the file's lines
 * are also scanned here to keep the device names' case (ttySTM0 must create /dev/ttySTM0,
 * not /dev/ttystm0) and to report duplicate sections and keys.
 */
#include "conf.h"
#include "keyfile.h"
#include "tls_session.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SECTIONS 256
#define SEC_CAP      (CONF_NAME_MAX + 40) /* section names kept for messages, bytes */
#define KEY_CAP      64                   /* keys compared for duplicates, bytes */

struct ctx {
	const char *path;
	FILE *err;
	int problems;
};

static void problem(struct ctx *c, const char *sec, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void problem(struct ctx *c, const char *sec, const char *key, const char *fmt, ...)
{
	va_list ap;

	c->problems++;
	if (!c->err)
		return;
	fprintf(c->err, "%s: ", c->path);
	if (sec)
		fprintf(c->err, "[%s] ", sec);
	if (key)
		fprintf(c->err, "%s: ", key);
	va_start(ap, fmt);
	vfprintf(c->err, fmt, ap);
	va_end(ap);
	fputc('\n', c->err);
}

void conf_device_defaults(struct conf_device *d, const char *name)
{
	memset(d, 0, sizeof *d);
	if (name)
		snprintf(d->name, sizeof d->name, "%s", name);
	d->port = CONF_DEFAULT_PORT;
	d->protocol = CONF_PROTO_RFC2217;
	d->control_port = 0;
	d->baud = CONF_DEFAULT_BAUD;
	d->reconnect_min_ms = CONF_DEFAULT_RMIN_MS;
	d->reconnect_max_ms = CONF_DEFAULT_RMAX_MS;
	d->connect_timeout_ms = CONF_DEFAULT_CTO_MS;
	d->keepalive_s = CONF_DEFAULT_KEEPALIVE_S;
	d->http_port = CONF_DEFAULT_HTTP_PORT;
}

int conf_valid_name(const char *name)
{
	size_t n;

	if (!name)
		return 0;
	n = strlen(name);
	if (n == 0 || n > CONF_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (!isalnum(ch) && ch != '_' && ch != '-')
			return 0;
	}
	return strcasecmp(name, CONF_GLOBAL_SECTION) != 0;
}

const char *conf_protocol_name(enum conf_protocol p)
{
	switch (p) {
	case CONF_PROTO_RFC2217:
		return "rfc2217";
	case CONF_PROTO_LEGACY:
		return "espstm-legacy";
	}
	return "?";
}

int conf_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (unsigned)(*p - '0');
		if (v > 0xffffffffULL)
			return -ERANGE;
	}
	if (v < min || v > max)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

/* Index of the first byte of s[0..n) that is a control character or not ASCII, or n. */
static size_t bad_host_byte(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x20 || ch >= 0x7F)
			return i;
	}
	return n;
}

int conf_parse_hostport(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *h, *colon = NULL;
	size_t hl;
	uint32_t p = CONF_DEFAULT_PORT;

	if (!s || !*s || !host || cap == 0 || !port)
		return -EINVAL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close == s + 1)
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(close - h);
		if (close[1] == ':')
			colon = close + 1;
		else if (close[1] != '\0')
			return -EINVAL;
	} else {
		colon = strchr(s, ':');
		if (colon && strchr(colon + 1, ':'))
			return -EINVAL; /* bare IPv6: needs [addr]:port */
		h = s;
		hl = colon ? (size_t)(colon - s) : strlen(s);
	}
	if (hl == 0 || hl >= cap || bad_host_byte(h, hl) < hl)
		return -EINVAL;
	for (size_t i = 0; i < hl; i++)
		if (isspace((unsigned char)h[i]) || h[i] == '[' || h[i] == ']')
			return -EINVAL;
	if (colon && conf_parse_u32(colon + 1, 1, 65535, &p) < 0)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

/* ------------------------------------------------------------------ key tables */

enum dkey {
	K_HOST,
	K_PORT,
	K_PROTOCOL,
	K_CONTROL_PORT,
	K_BAUD,
	K_RMIN,
	K_RMAX,
	K_CTO,
	K_KEEPALIVE,
	K_HTTP_PORT,
	K_KEY,
	NDKEYS
};

static const char *const device_keys[NDKEYS] = {
    [K_HOST] = "host",
    [K_PORT] = "port",
    [K_PROTOCOL] = "protocol",
    [K_CONTROL_PORT] = "control_port",
    [K_BAUD] = "baud",
    [K_RMIN] = "reconnect_min_ms",
    [K_RMAX] = "reconnect_max_ms",
    [K_CTO] = "connect_timeout_ms",
    [K_KEEPALIVE] = "keepalive",
    [K_HTTP_PORT] = "http_port",
    [K_KEY] = "key",
};

enum gkey { G_CONTROL_SOCKET, NGKEYS };

static const char *const global_keys[NGKEYS] = {
    [G_CONTROL_SOCKET] = "control_socket",
};

/* Other spellings people reach for, and the key meant. */
static const struct {
	const char *alias, *key;
} aliases[] = {
    {"address", "host"},
    {"addr", "host"},
    {"hostname", "host"},
    {"ip", "host"},
    {"server", "host"},
    {"speed", "baud"},
    {"baudrate", "baud"},
    {"baud_rate", "baud"},
    {"bitrate", "baud"},
    {"proto", "protocol"},
    {"timeout", "connect_timeout_ms"},
    {"keepalive_s", "keepalive"},
    {"socket", "control_socket"},
    {"key_file", "key"},
    {"keyfile", "key"},
    {"psk", "key"},
};

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), or a large
 * value for strings too long to bother. */
static size_t edit_distance(const char *a, const char *b)
{
	enum { L = KEY_CAP };
	size_t m = strlen(a), n = strlen(b);
	static size_t dm[L + 1][L + 1];

	if (m > L || n > L)
		return (size_t)-1;
	for (size_t i = 0; i <= m; i++)
		dm[i][0] = i;
	for (size_t j = 0; j <= n; j++)
		dm[0][j] = j;
	for (size_t i = 1; i <= m; i++) {
		for (size_t j = 1; j <= n; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = dm[i - 1][j] + 1;
			if (dm[i][j - 1] + 1 < v)
				v = dm[i][j - 1] + 1;
			if (dm[i - 1][j - 1] + cost < v)
				v = dm[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    dm[i - 2][j - 2] + 1 < v)
				v = dm[i - 2][j - 2] + 1;
			dm[i][j] = v;
		}
	}
	return dm[m][n];
}

/* The known key closest to key, or NULL when none is close enough to suggest. */
static const char *closest(const char *key, const char *const *known, size_t nknown)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, kl = strlen(key);

	for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
		for (size_t k = 0; k < nknown; k++)
			if (strcmp(key, aliases[i].alias) == 0 &&
			    strcmp(known[k], aliases[i].key) == 0)
				return known[k];
	for (size_t k = 0; k < nknown; k++) {
		size_t d = edit_distance(key, known[k]);
		size_t cl = strlen(known[k]);
		/* a prefix of at least 4 characters ("control" for "control_port") counts */
		if (kl >= 4 && kl < cl && strncmp(key, known[k], kl) == 0)
			d = 1;
		if (d < bestd) {
			bestd = d;
			best = known[k];
		}
	}
	if (best && (bestd <= 2 || bestd * 3 <= strlen(best)))
		return best;
	return NULL;
}

static int in_list(const char *key, const char *const *known, size_t nknown)
{
	for (size_t k = 0; k < nknown; k++)
		if (strcmp(key, known[k]) == 0)
			return 1;
	return 0;
}

static void unknown_key(struct ctx *c, const char *sec, const char *key, int global)
{
	const char *const *known = global ? global_keys : device_keys;
	size_t nknown = global ? NGKEYS : NDKEYS;
	const char *const *other = global ? device_keys : global_keys;
	size_t nother = global ? NDKEYS : NGKEYS;
	const char *hint;

	if (in_list(key, other, nother)) {
		if (global)
			problem(c, sec, key,
			        "is a device key: put it in the device's section (e.g. [ttySTM0])");
		else
			problem(c, sec, key, "belongs in the [%s] section", CONF_GLOBAL_SECTION);
		return;
	}
	hint = closest(key, known, nknown);
	if (hint) {
		problem(c, sec, key, "unknown key (did you mean '%s'?)", hint);
		return;
	}
	if (global) {
		problem(c, sec, key, "unknown key (known in [%s]: control_socket)",
		        CONF_GLOBAL_SECTION);
		return;
	}
	problem(c, sec, key,
	        "unknown key (known: host, port, protocol, control_port, baud, reconnect_min_ms, "
	        "reconnect_max_ms, connect_timeout_ms, keepalive, http_port, key)");
}

/* ------------------------------------------------------------------ file scanning */

/* iniparser reports syntax errors through a context-free callback. */
static struct ctx *ini_ctx;

static int ini_error(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (!ini_ctx)
		return 0;
	/* iniparser says "iniparser: syntax error in FILE (LINE):\n-> text": keep LINE, text */
	const char *lp = strrchr(buf, '(');
	const char *tp = strstr(buf, "-> ");
	unsigned line = 0;
	if (lp && sscanf(lp, "(%u)", &line) == 1 && tp) {
		problem(ini_ctx, NULL, NULL, "line %u: syntax error: %s", line, tp + 3);
		return 0;
	}
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = ' ';
	problem(ini_ctx, NULL, NULL, "%s", buf);
	return 0;
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (s[i] && isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

static void lower(char *dst, const char *src, size_t cap)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < cap; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

struct seen_key {
	size_t sec;    /* index into the section names */
	unsigned line; /* 1-based */
	char key[KEY_CAP];
};

/*
 * One pass over the file's lines: section names as written (case kept), in order, with
 * duplicate sections reported; and keys set twice in one section reported (iniparser
 * would silently keep the last). Multi-line values (a trailing backslash) are skipped.
 */
static int scan_file(struct ctx *c, FILE *f, char (*names)[SEC_CAP], size_t *n)
{
	char line[1024];
	struct seen_key *keys = NULL;
	size_t nkeys = 0, capkeys = 0;
	unsigned lineno = 0;
	int cur = -1; /* current section index, -1 before any or inside a duplicate */
	int cont = 0; /* the previous line continues on this one */
	int r = 0;

	*n = 0;
	while (fgets(line, sizeof line, f)) {
		char *p = line, *e;
		int was_cont = cont;
		size_t len;

		lineno++;
		len = strlen(line);
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		while (len > 0 && isspace((unsigned char)line[len - 1]))
			len--;
		cont = len > 0 && line[len - 1] == '\\';
		if (was_cont)
			continue;
		while (isspace((unsigned char)*p))
			p++;
		if (*p == ';' || *p == '#' || *p == '\0')
			continue;
		if (*p == '[') {
			e = strchr(p, ']');
			if (!e)
				continue; /* iniparser reports the syntax error */
			*e = '\0';
			p++;
			trim(p);
			if (strlen(p) >= SEC_CAP)
				p[SEC_CAP - 1] = '\0';
			int dup = 0;
			for (size_t i = 0; i < *n; i++)
				if (strcasecmp(names[i], p) == 0)
					dup = 1;
			cur = -1;
			if (dup) {
				problem(c, p, NULL,
				        "duplicate section (line %u; section names are "
				        "case-insensitive)",
				        lineno);
				continue;
			}
			if (*n == MAX_SECTIONS) {
				problem(c, p, NULL, "too many sections (max %d)", MAX_SECTIONS);
				r = -EINVAL;
				break;
			}
			snprintf(names[*n], SEC_CAP, "%s", p);
			cur = (int)(*n)++;
			continue;
		}
		e = strchr(p, '=');
		if (!e || cur < 0)
			continue; /* syntax errors and keys outside sections: reported later */
		*e = '\0';
		trim(p);
		char key[KEY_CAP];
		lower(key, p, sizeof key);
		int twice = 0;
		for (size_t i = 0; i < nkeys; i++) {
			if (keys[i].sec == (size_t)cur && strcmp(keys[i].key, key) == 0) {
				problem(c, names[cur], key, "set twice (lines %u and %u)",
				        keys[i].line, lineno);
				twice = 1;
				break;
			}
		}
		if (twice)
			continue;
		if (nkeys == capkeys) {
			size_t nc = capkeys ? capkeys * 2 : 32;
			struct seen_key *nk = realloc(keys, nc * sizeof *nk);
			if (!nk) {
				r = -ENOMEM;
				break;
			}
			keys = nk;
			capkeys = nc;
		}
		keys[nkeys].sec = (size_t)cur;
		keys[nkeys].line = lineno;
		snprintf(keys[nkeys].key, sizeof keys[nkeys].key, "%s", key);
		nkeys++;
	}
	free(keys);
	if (r == 0 && ferror(f))
		r = -EIO;
	return r;
}

/* ------------------------------------------------------------------ sections */

static void get_u32(struct ctx *c, const char *sec, const char *key, const char *val, uint32_t min,
                    uint32_t max, const char *what, uint32_t *out)
{
	int r = conf_parse_u32(val, min, max, out);

	if (r == -EINVAL && !*val)
		problem(c, sec, key, "empty (want %s, %u..%u)", what, (unsigned)min, (unsigned)max);
	else if (r == -EINVAL)
		problem(c, sec, key, "'%s' is not a number (want %s, %u..%u)", val, what,
		        (unsigned)min, (unsigned)max);
	else if (r < 0)
		problem(c, sec, key, "%s is out of range (want %s, %u..%u)", val, what,
		        (unsigned)min, (unsigned)max);
}

static int get_port(struct ctx *c, const char *sec, const char *key, const char *val, uint16_t *out)
{
	uint32_t v = 0;
	int before = c->problems;

	get_u32(c, sec, key, val, 1, 65535, "a TCP port", &v);
	if (c->problems != before)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* The section's keys (lowercase, as iniparser stores them "sec:key") and their values,
 * in file order. Returns the count (0 when empty), or -1 (reported) when out of memory. */
static int section_keys(struct ctx *c, dictionary *d, const char *sec, const char ***keys)
{
	char lsec[SEC_CAP];
	int nkeys;

	*keys = NULL;
	lower(lsec, sec, sizeof lsec);
	nkeys = iniparser_getsecnkeys(d, lsec);
	if (nkeys <= 0)
		return 0;
	*keys = calloc((size_t)nkeys, sizeof **keys);
	if (!*keys) {
		problem(c, sec, NULL, "out of memory");
		return -1;
	}
	iniparser_getseckeys(d, lsec, *keys);
	return nkeys;
}

static void parse_global(struct ctx *c, dictionary *d, const char *sec, struct conf *out)
{
	const char **keys;
	int nkeys = section_keys(c, d, sec, &keys);

	for (int i = 0; i < nkeys; i++) {
		const char *full = keys[i];
		const char *key = strchr(full, ':') ? strchr(full, ':') + 1 : full;
		const char *val = iniparser_getstring(d, full, NULL);

		if (!val) {
			problem(c, sec, key, "no value");
		} else if (strcmp(key, global_keys[G_CONTROL_SOCKET]) == 0) {
			if (strcmp(val, "none") == 0 ||
			    (val[0] == '/' && strlen(val) <= CONF_PATH_MAX))
				snprintf(out->control_socket, sizeof out->control_socket, "%s",
				         val);
			else if (val[0] != '/')
				problem(c, sec, key, "'%s': want an absolute path or 'none'", val);
			else
				problem(c, sec, key,
				        "longer than %d characters (a unix socket path's limit)",
				        CONF_PATH_MAX);
		} else {
			unknown_key(c, sec, key, 1);
		}
	}
	free(keys);
}

/* FNV-1a (64 bits) of the key's identity and secret: change detection for reloads only. */
static uint64_t key_stamp(const struct tls_psk *k)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < sizeof k->identity && k->identity[i]; i++)
		h = (h ^ (uint8_t)k->identity[i]) * 0x100000001b3ULL;
	for (size_t i = 0; i < sizeof k->key; i++)
		h = (h ^ k->key[i]) * 0x100000001b3ULL;
	return h ? h : 1;
}

/* key = PATH: an absolute path to a readable unit key file of mode 0600/0400 (keyfile.h);
 * only with protocol rfc2217 (the legacy ports have no TLS). A file that does not exist
 * yet is accepted (the link reports it and retries until it appears). */
static void parse_key(struct ctx *c, const char *sec, const char *val, struct conf_device *dev)
{
	struct tls_psk psk;
	char why[224];
	int r;

	if (!*val) {
		problem(c, sec, "key", "empty (want the path of a unit key file)");
		return;
	}
	if (val[0] != '/') {
		problem(c, sec, "key", "'%s': want an absolute path", val);
		return;
	}
	if (strlen(val) > CONF_KEY_PATH_MAX) {
		problem(c, sec, "key", "longer than %d characters", CONF_KEY_PATH_MAX);
		return;
	}
	if (dev->protocol == CONF_PROTO_LEGACY) {
		problem(c, sec, "key",
		        "protocol espstm-legacy has no TLS: a key needs protocol = rfc2217 (or "
		        "remove the key to use the legacy ports in plaintext)");
		return;
	}
	snprintf(dev->key, sizeof dev->key, "%s", val);
	r = keyfile_load(val, &psk, why, sizeof why);
	if (r == -ENOENT)
		return;
	if (r < 0)
		problem(c, sec, "key", "key file %s: %s", val, why);
	else
		dev->key_stamp = key_stamp(&psk);
	explicit_bzero(&psk, sizeof psk);
}

static void parse_device(struct ctx *c, dictionary *d, const char *sec, struct conf_device *dev)
{
	const char *val[NDKEYS] = {0};
	const char **keys;
	int nkeys;
	size_t bad;

	conf_device_defaults(dev, NULL);
	if (!conf_valid_name(sec))
		problem(c, sec, NULL,
		        "bad device name (want a plain name like ttySTM0: letters, digits, '_' "
		        "or '-', at most %d characters)",
		        CONF_NAME_MAX);
	else
		snprintf(dev->name, sizeof dev->name, "%s", sec);

	/* collect (unknown keys reported in file order), then check in a fixed order, since
	 * port's default depends on protocol and control_port's on both */
	nkeys = section_keys(c, d, sec, &keys);
	for (int i = 0; i < nkeys; i++) {
		const char *full = keys[i];
		const char *key = strchr(full, ':') ? strchr(full, ':') + 1 : full;
		const char *s = iniparser_getstring(d, full, NULL);
		size_t k;

		for (k = 0; k < NDKEYS; k++)
			if (strcmp(key, device_keys[k]) == 0)
				break;
		if (k == NDKEYS)
			unknown_key(c, sec, key, 0);
		else if (!s)
			problem(c, sec, key, "no value");
		else
			val[k] = s;
	}
	free(keys);

	if (!val[K_HOST])
		problem(c, sec, "host", "missing (required)");
	else if (!*val[K_HOST])
		problem(c, sec, "host", "empty");
	else if (strlen(val[K_HOST]) > CONF_HOST_MAX)
		problem(c, sec, "host", "longer than %d characters", CONF_HOST_MAX);
	else if ((bad = bad_host_byte(val[K_HOST], strlen(val[K_HOST]))) < strlen(val[K_HOST]))
		problem(c, sec, "host",
		        "not a host name or address: byte %zu is %s (0x%02x); want ASCII (an "
		        "internationalized name in its xn-- form)",
		        bad + 1,
		        (unsigned char)val[K_HOST][bad] >= 0x80 ? "not ASCII"
		                                                : "a control character",
		        (unsigned)(unsigned char)val[K_HOST][bad]);
	else if (strpbrk(val[K_HOST], " \t[]/"))
		problem(c, sec, "host", "'%s' is not a host name or address", val[K_HOST]);
	else
		snprintf(dev->host, sizeof dev->host, "%s", val[K_HOST]);

	if (val[K_PROTOCOL]) {
		if (strcasecmp(val[K_PROTOCOL], "rfc2217") == 0)
			dev->protocol = CONF_PROTO_RFC2217;
		else if (strcasecmp(val[K_PROTOCOL], "espstm-legacy") == 0)
			dev->protocol = CONF_PROTO_LEGACY;
		else
			problem(c, sec, "protocol",
			        "unknown protocol '%s' (expected rfc2217 or espstm-legacy)",
			        val[K_PROTOCOL]);
	}
	dev->port =
	    dev->protocol == CONF_PROTO_LEGACY ? CONF_DEFAULT_LEGACY_PORT : CONF_DEFAULT_PORT;
	int port_ok = !val[K_PORT] || get_port(c, sec, "port", val[K_PORT], &dev->port) == 0;

	if (val[K_CONTROL_PORT] && dev->protocol != CONF_PROTO_LEGACY) {
		problem(c, sec, "control_port", "only used with protocol = espstm-legacy");
	} else if (val[K_CONTROL_PORT]) {
		if (get_port(c, sec, "control_port", val[K_CONTROL_PORT], &dev->control_port) ==
		        0 &&
		    port_ok && dev->control_port == dev->port)
			problem(c, sec, "control_port", "%u is the data port too (port = %u)",
			        (unsigned)dev->control_port, (unsigned)dev->port);
	} else if (dev->protocol == CONF_PROTO_LEGACY && port_ok) {
		if (dev->port == 65535)
			problem(c, sec, "control_port",
			        "missing: the default (port + 1) is past 65535; set it");
		else
			dev->control_port = (uint16_t)(dev->port + 1);
	}

	if (val[K_BAUD])
		get_u32(c, sec, "baud", val[K_BAUD], 50, 16000000, "a speed in bit/s", &dev->baud);
	if (val[K_RMIN])
		get_u32(c, sec, "reconnect_min_ms", val[K_RMIN], 10, 600000, "a time in ms",
		        &dev->reconnect_min_ms);
	if (val[K_RMAX])
		get_u32(c, sec, "reconnect_max_ms", val[K_RMAX], 10, 3600000, "a time in ms",
		        &dev->reconnect_max_ms);
	if (val[K_CTO])
		get_u32(c, sec, "connect_timeout_ms", val[K_CTO], 100, 600000, "a time in ms",
		        &dev->connect_timeout_ms);
	if (val[K_KEEPALIVE])
		get_u32(c, sec, "keepalive", val[K_KEEPALIVE], 0, CONF_KEEPALIVE_MAX_S,
		        "seconds, 0 = off", &dev->keepalive_s);
	if (val[K_HTTP_PORT])
		get_port(c, sec, "http_port", val[K_HTTP_PORT], &dev->http_port);
	if (dev->reconnect_max_ms < dev->reconnect_min_ms)
		problem(c, sec, "reconnect_max_ms", "%u is below reconnect_min_ms (%u)",
		        (unsigned)dev->reconnect_max_ms, (unsigned)dev->reconnect_min_ms);
	if (val[K_KEY])
		parse_key(c, sec, val[K_KEY], dev);
}

int conf_load(const char *path, struct conf *out, FILE *err)
{
	struct ctx c = {.path = path, .err = err};
	char(*names)[SEC_CAP] = NULL;
	size_t nsec = 0, ndev = 0;
	dictionary *d = NULL;
	FILE *f;
	int r;

	memset(out, 0, sizeof *out);
	f = fopen(path, "r");
	if (!f) {
		r = -errno;
		if (err)
			fprintf(err, "%s: cannot open: %s\n", path, strerror(-r));
		return r;
	}
	names = calloc(MAX_SECTIONS, sizeof *names);
	if (!names) {
		fclose(f);
		return -ENOMEM;
	}
	r = scan_file(&c, f, names, &nsec);
	fclose(f);
	if (r == -EIO || r == -ENOMEM) {
		if (err)
			fprintf(err, "%s: %s\n", path, r == -EIO ? "read error" : "out of memory");
		free(names);
		return r;
	}

	ini_ctx = &c;
	iniparser_set_error_callback(ini_error);
	d = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	ini_ctx = NULL;
	if (!d) {
		if (c.problems == 0)
			problem(&c, NULL, NULL, "cannot be parsed as an INI file");
		free(names);
		return -EINVAL;
	}

	/* keys before any section are stored by iniparser as ":key" (or "key") */
	for (ssize_t i = 0; i < (ssize_t)d->size; i++) {
		if (!d->key[i])
			continue;
		if (d->key[i][0] == ':')
			problem(&c, NULL, d->key[i] + 1, "key outside any [device] section");
		else if (!strchr(d->key[i], ':') && d->val[i])
			problem(&c, NULL, d->key[i], "key outside any [device] section");
	}
	for (size_t i = 0; i < nsec; i++)
		ndev += strcasecmp(names[i], CONF_GLOBAL_SECTION) != 0;
	if (ndev == 0)
		problem(&c, NULL, NULL, "no device section (e.g. [ttySTM0] with host = ...)");

	out->devs = calloc(ndev ? ndev : 1, sizeof *out->devs);
	if (!out->devs) {
		iniparser_freedict(d);
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nsec; i++) {
		if (strcasecmp(names[i], CONF_GLOBAL_SECTION) == 0)
			parse_global(&c, d, names[i], out);
		else
			parse_device(&c, d, names[i], &out->devs[out->ndevs++]);
	}
	iniparser_freedict(d);
	free(names);
	if (c.problems > 0) {
		conf_free(out);
		return -EINVAL;
	}
	return 0;
}

void conf_free(struct conf *c)
{
	if (!c)
		return;
	free(c->devs);
	memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ reload diff */

enum conf_change conf_device_compare(const struct conf_device *a, const struct conf_device *b)
{
	if (strcmp(a->host, b->host) != 0 || a->port != b->port || a->protocol != b->protocol ||
	    a->control_port != b->control_port || a->baud != b->baud ||
	    a->reconnect_min_ms != b->reconnect_min_ms ||
	    a->reconnect_max_ms != b->reconnect_max_ms ||
	    a->connect_timeout_ms != b->connect_timeout_ms || a->keepalive_s != b->keepalive_s ||
	    strcmp(a->key, b->key) != 0)
		return CONF_CHANGED;
	if (a->http_port != b->http_port || a->key_stamp != b->key_stamp)
		return CONF_UPDATED;
	return CONF_UNCHANGED;
}

static const struct conf_device *find(const struct conf_device *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

int conf_diff(const struct conf_device *olds, size_t nold, const struct conf_device *news,
              size_t nnew, struct conf_diff_entry **out, size_t *nout)
{
	struct conf_diff_entry *e = calloc(nold + nnew + 1, sizeof *e);
	size_t n = 0;

	*out = NULL;
	*nout = 0;
	if (!e)
		return -ENOMEM;
	for (size_t i = 0; i < nold; i++)
		if (!find(news, nnew, olds[i].name))
			e[n++] = (struct conf_diff_entry){CONF_REMOVED, &olds[i], NULL};
	for (size_t i = 0; i < nnew; i++) {
		const struct conf_device *o = find(olds, nold, news[i].name);
		e[n++] = (struct conf_diff_entry){o ? conf_device_compare(o, &news[i]) : CONF_ADDED,
		                                  o, &news[i]};
	}
	*out = e;
	*nout = n;
	return 0;
}

const char *conf_change_name(enum conf_change c)
{
	switch (c) {
	case CONF_UNCHANGED:
		return "unchanged";
	case CONF_UPDATED:
		return "updated";
	case CONF_CHANGED:
		return "changed";
	case CONF_ADDED:
		return "added";
	case CONF_REMOVED:
		return "removed";
	}
	return "?";
}
