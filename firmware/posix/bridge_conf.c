/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge --config FILE (bridge_conf.h). iniparser 4.1 reads the values but neither
 * keeps line numbers nor tells a repeated section from one (it merges them), so a first pass
 * over the file checks its shape line by line (sections, keys, one [target]) and remembers
 * where each key is; the values then come from iniparser, in file order.
 */
#include "bridge_conf.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The keys and the options they stand for; flag: a boolean key for an option without an
 * argument. */
static const struct conf_key {
	const char *section, *key, *option;
	int flag;
} conf_keys[] = {
    {"bridge", "listen", "listen", 0},
    {"bridge", "http", "http", 0},
    {"bridge", "password_file", "password-file", 0},
    {"bridge", "key_file", "key-file", 0},
    {"bridge", "settings", "settings", 0},
    {"bridge", "verify_key", "verify-key", 0},
    {"bridge", "plaintext", "plaintext", 1},
    {"bridge", "idle_timeout", "idle-timeout", 0},
    {"bridge", "allow", "allow", 0},
    {"target", "target", "target", 0},
    {"target", "nrst", "nrst", 0},
    {"target", "boot0", "boot0", 0},
    {"target", "invert_nrst", "invert-nrst", 1},
    {"target", "invert_boot0", "invert-boot0", 1},
    {"target", "auto_boot", "auto-boot", 0},
    {"target", "line_map", "line-map", 0},
    {"target", "settle_ms", "settle-ms", 0},
};
#define NKEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

/* One key line of the file. */
struct seen {
	const struct conf_key *k;
	unsigned line;
};

struct scan {
	const char *path;
	FILE *err;
	int problems;
	struct seen seen[BRIDGE_CONF_KEYS_MAX];
	size_t nseen;
};

static void problem(struct scan *s, unsigned line, const char *sec, const char *key,
                    const char *fmt, ...)
{
	va_list ap;
	s->problems++;
	if (!s->err)
		return;
	fprintf(s->err, "espstm-bridge: %s:%u: ", s->path, line);
	if (sec)
		fprintf(s->err, "[%s] ", sec);
	if (key)
		fprintf(s->err, "%s: ", key);
	va_start(ap, fmt);
	vfprintf(s->err, fmt, ap);
	va_end(ap);
	fputc('\n', s->err);
}

/* s without leading and trailing blanks, in place. */
static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* A "[name]" line (already trimmed) at line n; *sec becomes the section's table name
 * ("bridge", "target"), or NULL when unknown or repeated (its keys are then skipped). */
static void scan_section(struct scan *s, char *t, unsigned n, const char **sec, int count[2])
{
	char *end = strchr(t, ']');
	if (!end || trim(end + 1)[0] != '\0') {
		problem(s, n, NULL, NULL, "'%s' is not a [section] line", t);
		*sec = NULL;
		return;
	}
	*end = '\0';
	char *name = trim(t + 1);
	lower(name);
	if (strcmp(name, "bridge") == 0) {
		*sec = "bridge";
		if (count[0]++) {
			problem(s, n, name, NULL, "a second [bridge] section");
			*sec = NULL;
		}
	} else if (strcmp(name, "target") == 0) {
		*sec = "target";
		if (count[1]++) {
			problem(
			    s, n, name, NULL,
			    "a second [target] section: one target per espstm-bridge process for "
			    "now; run one service instance per target (espstm-bridge@.service)");
			*sec = NULL;
		}
	} else {
		problem(s, n, name, NULL, "unknown section (want [bridge] or [target])");
		*sec = NULL;
	}
}

/* A "key = value" line (already trimmed) at line n in section sec. */
static void scan_key(struct scan *s, char *t, unsigned n, const char *sec)
{
	char *eq = strchr(t, '=');
	if (!eq) {
		problem(s, n, sec, NULL, "'%s' is not a KEY = VALUE line", t);
		return;
	}
	*eq = '\0';
	char *key = trim(t);
	lower(key);
	if (!*key) {
		problem(s, n, sec, NULL, "a value without a key");
		return;
	}
	if (!sec) {
		problem(s, n, NULL, key, "key outside [bridge] or [target]");
		return;
	}
	const struct conf_key *k = NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(conf_keys[i].section, sec) == 0 && strcmp(conf_keys[i].key, key) == 0)
			k = &conf_keys[i];
	if (!k) {
		problem(s, n, sec, key, "unknown key");
		return;
	}
	for (size_t i = 0; i < s->nseen; i++)
		if (s->seen[i].k == k) {
			problem(s, n, sec, key, "given twice (first on line %u)", s->seen[i].line);
			return;
		}
	if (s->nseen == BRIDGE_CONF_KEYS_MAX) {
		problem(s, n, sec, key, "more than %d keys", BRIDGE_CONF_KEYS_MAX);
		return;
	}
	s->seen[s->nseen++] = (struct seen){k, n};
}

/* The first pass over f: its shape into s. Returns 0, or -errno of a read error. */
static int scan_file(struct scan *s, FILE *f)
{
	char buf[BRIDGE_CONF_LINE_MAX];
	const char *sec = NULL;
	int count[2] = {0, 0}, in_bad = 0;
	unsigned n = 0;
	while (fgets(buf, sizeof(buf), f)) {
		n++;
		size_t len = strlen(buf);
		if (len == sizeof(buf) - 1 && buf[len - 1] != '\n' && !feof(f)) {
			problem(s, n, NULL, NULL, "line longer than %d bytes",
			        BRIDGE_CONF_LINE_MAX - 2);
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		char *t = trim(buf);
		if (!*t || *t == ';' || *t == '#')
			continue;
		if (*t == '[') {
			scan_section(s, t, n, &sec, count);
			in_bad = sec == NULL;
		} else if (!in_bad) {
			scan_key(s, t, n, sec);
		}
	}
	if (ferror(f))
		return -EIO;
	if (count[0] + count[1] == 0 && s->problems == 0)
		problem(s, n, NULL, NULL, "no [bridge] or [target] section");
	return 0;
}

/* yes/no and its spellings (case-insensitive) into *on. Returns 0, or -EINVAL. */
static int parse_bool(const char *v, int *on)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(v, yes[i]) == 0)
			return *on = 1, 0;
		if (strcasecmp(v, no[i]) == 0)
			return *on = 0, 0;
	}
	return -EINVAL;
}

static FILE *ini_err;
static const char *ini_path;

/* iniparser's own complaints, with the file name in front. */
static int ini_error(const char *fmt, ...)
{
	va_list ap;
	if (!ini_err)
		return 0;
	fprintf(ini_err, "espstm-bridge: %s: ", ini_path);
	va_start(ap, fmt);
	int r = vfprintf(ini_err, fmt, ap);
	va_end(ap);
	return r;
}

/* Every key seen in the first pass, its value from d, to apply. */
static void apply_keys(struct scan *s, dictionary *d, bridge_conf_apply_fn apply, void *ctx)
{
	for (size_t i = 0; i < s->nseen; i++) {
		const struct conf_key *k = s->seen[i].k;
		char full[64];
		snprintf(full, sizeof(full), "%s:%s", k->section, k->key);
		const char *v = iniparser_getstring(d, full, NULL);
		unsigned n = s->seen[i].line;
		if (!v || !*v) {
			problem(s, n, k->section, k->key, "empty value");
			continue;
		}
		if (k->flag) {
			int on;
			if (parse_bool(v, &on) < 0)
				problem(s, n, k->section, k->key, "'%s' is not yes or no", v);
			else if (on && apply(ctx, k->option, NULL) != 0)
				problem(s, n, k->section, k->key, "not accepted (see above)");
			continue;
		}
		if (apply(ctx, k->option, v) != 0)
			problem(s, n, k->section, k->key, "'%s' not accepted (see above)", v);
	}
}

int bridge_conf_load(const char *path, bridge_conf_apply_fn apply, void *ctx, FILE *err)
{
	struct scan s = {.path = path, .err = err};
	FILE *f = fopen(path, "r");
	if (!f) {
		int r = -errno;
		if (err)
			fprintf(err, "espstm-bridge: --config %s: %s\n", path, strerror(-r));
		return r;
	}
	int r = scan_file(&s, f);
	fclose(f);
	if (r < 0) {
		if (err)
			fprintf(err, "espstm-bridge: --config %s: read error\n", path);
		return r;
	}
	if (s.problems)
		return -EINVAL;
	ini_err = err;
	ini_path = path;
	iniparser_set_error_callback(ini_error);
	dictionary *d = iniparser_load(path);
	iniparser_set_error_callback(NULL);
	if (!d) {
		if (err)
			fprintf(err, "espstm-bridge: --config %s: cannot be read as an INI file\n",
			        path);
		return -EINVAL;
	}
	apply_keys(&s, d, apply, ctx);
	iniparser_freedict(d);
	return s.problems ? -EINVAL : 0;
}
