/* SPDX-License-Identifier: MIT */
/*
 * conf: espstmd configuration (see conf.h). iniparser does the INI syntax; since it
 * lowercases section names, the file's section headers are also scanned here to keep the
 * device names' case (ttySTM0 must create /dev/ttySTM0, not /dev/ttystm0).
 */
#include "conf.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_SECTIONS 256

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
	d->baud = CONF_DEFAULT_BAUD;
	d->reconnect_min_ms = CONF_DEFAULT_RMIN_MS;
	d->reconnect_max_ms = CONF_DEFAULT_RMAX_MS;
	d->connect_timeout_ms = CONF_DEFAULT_CTO_MS;
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
	return 1;
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
	if (hl == 0 || hl >= cap)
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

/* Section names as written in the file (case kept), in order, duplicates reported. */
static int scan_sections(struct ctx *c, FILE *f, char (*names)[CONF_NAME_MAX + 40], size_t *n)
{
	char line[1024];

	*n = 0;
	while (fgets(line, sizeof line, f)) {
		char *p = line, *e;
		while (isspace((unsigned char)*p))
			p++;
		if (*p != '[')
			continue;
		e = strchr(p, ']');
		if (!e)
			continue; /* iniparser reports the syntax error */
		*e = '\0';
		p++;
		trim(p);
		if (strlen(p) >= CONF_NAME_MAX + 40)
			p[CONF_NAME_MAX + 39] = '\0';
		int dup = 0;
		for (size_t i = 0; i < *n; i++)
			if (strcasecmp(names[i], p) == 0)
				dup = 1;
		if (dup) {
			problem(c, p, NULL, "duplicate section (names are case-insensitive)");
			continue;
		}
		if (*n == MAX_SECTIONS) {
			problem(c, p, NULL, "too many sections (max %d)", MAX_SECTIONS);
			return -EINVAL;
		}
		snprintf(names[*n], CONF_NAME_MAX + 40, "%s", p);
		(*n)++;
	}
	return ferror(f) ? -EIO : 0;
}

static void lower(char *dst, const char *src, size_t cap)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < cap; i++)
		dst[i] = (char)tolower((unsigned char)src[i]);
	dst[i] = '\0';
}

static void get_u32(struct ctx *c, const char *sec, const char *key, const char *val, uint32_t min,
                    uint32_t max, const char *unit, uint32_t *out)
{
	int r = conf_parse_u32(val, min, max, out);

	if (r == -EINVAL)
		problem(c, sec, key, "'%s' is not a number (expected %s)", val, unit);
	else if (r < 0)
		problem(c, sec, key, "%s out of range (%u..%u %s)", val, (unsigned)min,
		        (unsigned)max, unit);
}

static void parse_device(struct ctx *c, dictionary *d, const char *sec, struct conf_device *dev)
{
	char lsec[CONF_NAME_MAX + 40];
	const char **keys;
	int nkeys;
	int has_host = 0;
	uint32_t v;

	conf_device_defaults(dev, NULL);
	if (!conf_valid_name(sec))
		problem(c, sec, NULL,
		        "bad device name (want a plain name like ttySTM0: letters, digits, '_' "
		        "or '-', at most %d characters)",
		        CONF_NAME_MAX);
	else
		snprintf(dev->name, sizeof dev->name, "%s", sec);
	lower(lsec, sec, sizeof lsec);
	nkeys = iniparser_getsecnkeys(d, lsec);
	if (nkeys <= 0) {
		problem(c, sec, "host", "missing (required)");
		return;
	}
	keys = calloc((size_t)nkeys, sizeof *keys);
	if (!keys) {
		problem(c, sec, NULL, "out of memory");
		return;
	}
	iniparser_getseckeys(d, lsec, keys);
	for (int i = 0; i < nkeys; i++) {
		const char *full = keys[i];
		const char *key = strchr(full, ':') ? strchr(full, ':') + 1 : full;
		const char *val = iniparser_getstring(d, full, NULL);

		if (!val) {
			problem(c, sec, key, "no value");
			continue;
		}
		if (strcmp(key, "host") == 0) {
			has_host = 1;
			if (!*val)
				problem(c, sec, key, "empty");
			else if (strlen(val) > CONF_HOST_MAX)
				problem(c, sec, key, "longer than %d characters", CONF_HOST_MAX);
			else if (strpbrk(val, " \t[]"))
				problem(c, sec, key, "'%s' is not a host name or address", val);
			else
				snprintf(dev->host, sizeof dev->host, "%s", val);
		} else if (strcmp(key, "port") == 0) {
			v = dev->port;
			get_u32(c, sec, key, val, 1, 65535, "TCP port", &v);
			dev->port = (uint16_t)v;
		} else if (strcmp(key, "protocol") == 0) {
			if (strcmp(val, "rfc2217") == 0)
				dev->protocol = CONF_PROTO_RFC2217;
			else if (strcmp(val, "espstm-legacy") == 0)
				problem(c, sec, key,
				        "'espstm-legacy' is not supported yet (use rfc2217)");
			else
				problem(c, sec, key, "unknown protocol '%s' (expected rfc2217)",
				        val);
		} else if (strcmp(key, "baud") == 0) {
			get_u32(c, sec, key, val, 50, 16000000, "bit/s", &dev->baud);
		} else if (strcmp(key, "reconnect_min_ms") == 0) {
			get_u32(c, sec, key, val, 10, 600000, "ms", &dev->reconnect_min_ms);
		} else if (strcmp(key, "reconnect_max_ms") == 0) {
			get_u32(c, sec, key, val, 10, 3600000, "ms", &dev->reconnect_max_ms);
		} else if (strcmp(key, "connect_timeout_ms") == 0) {
			get_u32(c, sec, key, val, 100, 600000, "ms", &dev->connect_timeout_ms);
		} else {
			problem(c, sec, key,
			        "unknown key (known: host, port, protocol, baud, reconnect_min_ms, "
			        "reconnect_max_ms, connect_timeout_ms)");
		}
	}
	free(keys);
	if (!has_host)
		problem(c, sec, "host", "missing (required)");
	if (dev->reconnect_max_ms < dev->reconnect_min_ms)
		problem(c, sec, "reconnect_max_ms", "%u is below reconnect_min_ms (%u)",
		        (unsigned)dev->reconnect_max_ms, (unsigned)dev->reconnect_min_ms);
}

int conf_load(const char *path, struct conf *out, FILE *err)
{
	struct ctx c = {.path = path, .err = err};
	char(*names)[CONF_NAME_MAX + 40] = NULL;
	size_t nsec = 0;
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
	r = scan_sections(&c, f, names, &nsec);
	fclose(f);
	if (r == -EIO) {
		if (err)
			fprintf(err, "%s: read error\n", path);
		free(names);
		return -EIO;
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
	if (nsec == 0)
		problem(&c, NULL, NULL, "no device section (e.g. [ttySTM0] with host = ...)");

	out->devs = calloc(nsec ? nsec : 1, sizeof *out->devs);
	if (!out->devs) {
		iniparser_freedict(d);
		free(names);
		return -ENOMEM;
	}
	for (size_t i = 0; i < nsec; i++)
		parse_device(&c, d, names[i], &out->devs[i]);
	out->ndevs = nsec;
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
	c->devs = NULL;
	c->ndevs = 0;
}
