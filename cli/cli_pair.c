/* SPDX-License-Identifier: MIT */
/*
 * `espstm pair HOST[:PORT]` and `espstm unpair HOST[:PORT]` (cli_pair.h): fetch a unit's
 * RFC 2217 key over HTTPS (POST /api/pair, firmware/core/http_api.h "Pairing") into a key
 * file for espstmd, pinning the bridge's self-signed certificate on first use in
 * known_bridges; and the pin lookup that espstm flash uses for its HTTPS calls.
 */
#include "cli_pair.h"

#include "cli_cmd.h"
#include "cli_flash.h" /* cli_flash_parse_host, cli_flash_read_password */
#include "cli_json.h"
#include "self_cert.h"
#include "unit_key.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAIR_CONNECT_MS 10000L
#define PAIR_TIMEOUT_MS 30000L
#define PAIR_RESP_MAX   8192

/* ------------------------------------------------------------------ files */

static int home_config(char *out, size_t cap, const char *leaf)
{
	const char *x = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;
	if (x && x[0] == '/')
		n = snprintf(out, cap, "%s/espstm/%s", x, leaf);
	else if (home && home[0])
		n = snprintf(out, cap, "%s/.config/espstm/%s", home, leaf);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int cli_known_path(const char *explicit_path, char *out, size_t cap)
{
	const char *env = getenv(CLI_PAIR_KNOWN_ENV);
	const char *p = explicit_path ? explicit_path : env && *env ? env : NULL;
	if (!p && geteuid() == 0)
		p = "/etc/espstm/known_bridges";
	if (p) {
		int n = snprintf(out, cap, "%s", p);
		return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
	}
	return home_config(out, cap, "known_bridges");
}

/* The default key directory: /etc/espstm/keys (root) or ~/.config/espstm/keys. */
static int key_dir_default(char *out, size_t cap)
{
	if (geteuid() == 0) {
		snprintf(out, cap, "/etc/espstm/keys");
		return 0;
	}
	return home_config(out, cap, "keys");
}

void cli_known_name(const char *host, unsigned port, char *out, size_t cap)
{
	int v6 = strchr(host, ':') != NULL;
	snprintf(out, cap, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "", port);
}

/* mkdir -p of path's directory part (mode for the directories it makes). 0 or -errno. */
static int make_parents(const char *path, mode_t mode)
{
	char d[4096];
	if (snprintf(d, sizeof(d), "%s", path) >= (int)sizeof(d))
		return -ENAMETOOLONG;
	char *slash = strrchr(d, '/');
	if (!slash || slash == d)
		return 0;
	*slash = '\0';
	for (char *p = d + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(d, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(d, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Write text to path: temporary file next to it, fsync, rename. 0 or -errno. */
static int write_atomic(const char *path, const char *text, size_t len, mode_t mode)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int e = fchmod(fd, mode) == 0 ? 0 : errno;
	for (size_t off = 0; !e && off < len;) {
		ssize_t k = write(fd, text + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			e = k < 0 ? errno : EIO;
		else
			off += (size_t)k;
	}
	if (!e && fsync(fd) < 0)
		e = errno;
	if (close(fd) < 0 && !e)
		e = errno;
	if (!e && rename(tmp, path) < 0)
		e = errno;
	if (e)
		unlink(tmp);
	return -e;
}

/* One "NAME PIN" line: 1 with name/pin split (pointers into line), 0 not such a line. */
static int known_line(char *line, char **name, char **pin)
{
	line[strcspn(line, "\r\n")] = '\0';
	char *p = line + strspn(line, " \t");
	if (!*p || *p == '#')
		return 0;
	*name = p;
	p += strcspn(p, " \t");
	if (!*p)
		return 0;
	*p++ = '\0';
	p += strspn(p, " \t");
	*pin = p;
	p += strcspn(p, " \t");
	*p = '\0';
	return strncmp(*pin, "sha256//", 8) == 0 && strlen(*pin) <= CLI_PAIR_PIN_MAX - 1;
}

int cli_known_lookup(const char *file, const char *name, char *pin, size_t cap)
{
	FILE *f = fopen(file, "r");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	char line[1024];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *n, *p;
		if (known_line(line, &n, &p) && strcmp(n, name) == 0) {
			snprintf(pin, cap, "%s", p);
			found = 1;
		}
	}
	int e = ferror(f) ? -EIO : 0;
	fclose(f);
	return e ? e : found;
}

/* Does line name n match name (or "HOST:*" every port of HOST)? */
static int name_match(const char *n, const char *name)
{
	size_t l = strlen(name);
	if (l >= 2 && strcmp(name + l - 2, ":*") == 0)
		return strncmp(n, name, l - 1) == 0 && !strchr(n + l - 1, ':');
	return strcmp(n, name) == 0;
}

int cli_known_set(const char *file, const char *name, const char *pin)
{
	size_t cap = 65536, len = 0;
	char *out = malloc(cap);
	if (!out)
		return -ENOMEM;
	int hits = 0, e = 0;
	FILE *f = fopen(file, "r");
	if (!f && errno != ENOENT)
		e = -errno;
	char line[1024], copy[1024];
	while (!e && f && fgets(line, sizeof(line), f)) {
		memcpy(copy, line, sizeof(copy));
		char *n, *p;
		if (known_line(copy, &n, &p) && name_match(n, name)) {
			hits++;
			continue; /* dropped; the new line goes at the end */
		}
		size_t l = strlen(line);
		if (len + l + 2 > cap) {
			e = -EFBIG;
			break;
		}
		memcpy(out + len, line, l);
		len += l;
		if (l && line[l - 1] != '\n')
			out[len++] = '\n';
	}
	if (f)
		fclose(f);
	if (!e && pin) {
		int n = snprintf(out + len, cap - len, "%s %s\n", name, pin);
		if (n < 0 || (size_t)n >= cap - len)
			e = -EFBIG;
		else
			len += (size_t)n;
	}
	if (!e && (pin || hits))
		e = make_parents(file, 0755);
	if (!e && (pin || hits))
		e = write_atomic(file, out, len, 0644);
	free(out);
	return e ? e : hits;
}

int cli_pair_pin_for(const char *host, unsigned port, char *pin, size_t cap)
{
	char file[4096], name[300];
	if (cli_known_path(NULL, file, sizeof(file)) < 0)
		return 0;
	cli_known_name(host, port, name, sizeof(name));
	return cli_known_lookup(file, name, pin, cap);
}

void cli_pair_changed_msg(char *out, size_t cap, const char *name, const char *pinned,
                          const char *got, const char *file)
{
	snprintf(out, cap,
	         "espstm: %s: the bridge's certificate changed (pinned %s, got %s); if the unit "
	         "was reset, remove its line from %s",
	         name, pinned, got, file);
}

/* ------------------------------------------------------------------ HTTPS */

void cli_pair_pin_curl(CURL *h, const char *pin)
{
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pin);
}

struct rbuf {
	char p[PAIR_RESP_MAX + 1];
	size_t n;
};

static size_t rb_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct rbuf *b = ud;
	size_t n = size * nmemb;
	size_t keep = b->n + n > PAIR_RESP_MAX ? PAIR_RESP_MAX - b->n : n;
	memcpy(b->p + b->n, data, keep);
	b->n += keep;
	b->p[b->n] = '\0';
	return n;
}

static void url_of(char *url, size_t cap, const char *host, unsigned port, const char *path)
{
	int v6 = strchr(host, ':') != NULL;
	snprintf(url, cap, "https://%s%s%s:%u%s", v6 ? "[" : "", host, v6 ? "]" : "", port, path);
}

int cli_pair_probe(const char *host, unsigned port, char *got, size_t cap, char *msg, size_t mcap)
{
	char url[600];
	url_of(url, sizeof(url), host, port, "/");
	CURL *h = curl_easy_init();
	if (!h) {
		snprintf(msg, mcap, "out of memory");
		return -1;
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(h, CURLOPT_CERTINFO, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, PAIR_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	CURLcode c = curl_easy_perform(h);
	int rc = -1;
	struct curl_certinfo *ci = NULL;
	if (c != CURLE_OK) {
		snprintf(msg, mcap, "no HTTPS connection: %s",
		         cerr[0] ? cerr : curl_easy_strerror(c));
	} else if (curl_easy_getinfo(h, CURLINFO_CERTINFO, &ci) != CURLE_OK || !ci ||
	           ci->num_of_certs < 1) {
		snprintf(msg, mcap, "the bridge sent no certificate");
	} else {
		snprintf(msg, mcap, "the bridge's certificate cannot be read");
		for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next) {
			if (strncmp(s->data, "Cert:", 5) != 0)
				continue;
			const char *pem = s->data + 5;
			if (self_cert_pin((const uint8_t *)pem, strlen(pem), got, cap) == 0)
				rc = 0;
			break;
		}
	}
	curl_easy_cleanup(h);
	return rc;
}

/* POST path on HOST:PORT over HTTPS pinned to pin. Returns the HTTP status (body in b), or
 * -1 with msg (connection failed), or -2 (the pin did not match). */
static long post_pinned(const char *host, unsigned port, const char *path, const char *pin,
                        const char *pw, struct rbuf *b, char *msg, size_t mcap)
{
	char url[600];
	url_of(url, sizeof(url), host, port, path);
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = curl_slist_append(NULL, "X-Espstm-Request: 1");
	long code = -1;
	if (!h || !hdr) {
		snprintf(msg, mcap, "out of memory");
		goto out;
	}
	char cerr[CURL_ERROR_SIZE] = "";
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(h, CURLOPT_USERNAME, "admin");
	curl_easy_setopt(h, CURLOPT_PASSWORD, pw);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "espstm/" ESPSTM_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, PAIR_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, PAIR_TIMEOUT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, rb_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	cli_pair_pin_curl(h, pin);
	CURLcode c = curl_easy_perform(h);
	if (c == CURLE_SSL_PINNEDPUBKEYNOTMATCH)
		code = -2;
	else if (c != CURLE_OK)
		snprintf(msg, mcap, "%s", cerr[0] ? cerr : curl_easy_strerror(c));
	else if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
		code = -1;
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return code;
}

/* ------------------------------------------------------------------ commands */

struct pair_opts {
	char host[CLI_FLASH_HOST_MAX + 1];
	unsigned port;
	const char *password_file;
	const char *key_dir;
	const char *known;
	const char *name; /* --name ttySTMn */
	int rotate;
	int has_port; /* HOST:PORT given (unpair without it: every port of HOST) */
	char known_path[4096], key_path[4400], who[300];
};

static const char pair_help[] =
    "Usage: espstm pair HOST[:PORT] [--password-file F] [--key-dir D] [--name ttySTMn]\n"
    "\n"
    "Pair this host with a bridge that has a unit key: connect to its web port over HTTPS\n"
    "(PORT, default 80), pin its self-signed certificate on first use (printed, stored in\n"
    "known_bridges like ssh's known_hosts), fetch the unit key with the web password\n"
    "(POST /api/pair) into D/HOST.key (mode 0600) and print the espstm.conf lines that\n"
    "make espstmd use it. Later connections (pair again, unpair, espstm flash) must meet\n"
    "the same certificate: a changed one is refused (exit 3).\n"
    "\n"
    "Options:\n"
    "  -P, --password-file F  the bridge's web password: first line of F (default:\n"
    "                         $" CLI_FLASH_PASSWORD_ENV ")\n"
    "  -d, --key-dir D        where the key file goes (default /etc/espstm/keys as root,\n"
    "                         else ~/.config/espstm/keys)\n"
    "  -n, --name ttySTMn     the device name in the printed espstm.conf lines (ttySTM0)\n"
    "      --known-bridges F  the pin file (default $" CLI_PAIR_KNOWN_ENV ", else\n"
    "                         /etc/espstm/known_bridges as root, else\n"
    "                         ~/.config/espstm/known_bridges)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 paired, 1 error (no connection, password refused, no key on the unit,\n"
    "files), 2 usage, 3 the bridge's certificate is not the pinned one.\n";

static const char unpair_help[] =
    "Usage: espstm unpair HOST[:PORT] [--rotate] [--password-file F] [--key-dir D]\n"
    "\n"
    "Forget a bridge: remove D/HOST.key and HOST's line(s) from known_bridges (with PORT:\n"
    "that port's line only). --rotate first makes the unit replace its key (POST\n"
    "/api/pair/rotate over HTTPS, pinned; needs the web password): every host paired with\n"
    "it must pair again, and the connected RFC 2217 client is dropped.\n"
    "\n"
    "Options: --rotate, -P/--password-file F, -d/--key-dir D, --known-bridges F, -h/--help\n"
    "as for espstm pair.\n"
    "Exit status: 0 done, 1 error (not paired, no connection, password refused), 2 usage,\n"
    "3 the bridge's certificate is not the pinned one.\n";

static int usage_err(const char *cmd, const char *fmt, const char *arg)
{
	fprintf(stderr, "espstm %s: ", cmd);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'espstm %s --help'.\n", cmd);
	return CLI_EXIT_USAGE;
}

/* Parse argv; returns -1 to go on, else the exit status (help: 0, usage: 2). */
static int parse(int argc, char **argv, struct pair_opts *o, int unpair)
{
	const char *cmd = unpair ? "unpair" : "pair";
	static const struct option lo[] = {{"password-file", required_argument, NULL, 'P'},
	                                   {"key-dir", required_argument, NULL, 'd'},
	                                   {"name", required_argument, NULL, 'n'},
	                                   {"known-bridges", required_argument, NULL, 'K'},
	                                   {"rotate", no_argument, NULL, 'R'},
	                                   {"help", no_argument, NULL, 'h'},
	                                   {NULL, 0, NULL, 0}};
	memset(o, 0, sizeof(*o));
	optind = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":P:d:n:h", lo, NULL)) != -1) {
		if (c == 'h') {
			fputs(unpair ? unpair_help : pair_help, stdout);
			return CLI_EXIT_OK;
		} else if (c == 'P') {
			o->password_file = optarg;
		} else if (c == 'd') {
			o->key_dir = optarg;
		} else if (c == 'K') {
			o->known = optarg;
		} else if (c == 'n' && !unpair) {
			if (strncmp(optarg, "/dev/", 5) == 0)
				optarg += 5;
			if (!*optarg || strpbrk(optarg, " \t\r\n[]=;/"))
				return usage_err(cmd, "--name '%s': want a device name", optarg);
			o->name = optarg;
		} else if (c == 'R' && unpair) {
			o->rotate = 1;
		} else if (c == ':') {
			return usage_err(cmd, "option '%s' needs a value", argv[optind - 1]);
		} else {
			return usage_err(cmd, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return usage_err(cmd, "%s", optind >= argc ? "missing HOST" : "one HOST only");
	const char *arg = argv[optind];
	const char *h = strncasecmp(arg, "https://", 8) == 0 ? arg + 8 : arg;
	const char *bare = strncasecmp(h, "http://", 7) == 0 ? h + 7 : h;
	const char *c1 = strchr(bare, ':');
	o->has_port =
	    bare[0] == '[' ? strstr(bare, "]:") != NULL : c1 != NULL && strchr(c1 + 1, ':') == NULL;
	if (cli_flash_parse_host(h, o->host, sizeof(o->host), &o->port) < 0 || o->host[0] == '.' ||
	    strchr(o->host, '/'))
		return usage_err(cmd, "'%s': want HOST, HOST:PORT or [IPV6]:PORT", arg);
	/* cli_flash_parse_host's default is the same web port */
	cli_known_name(o->host, o->port, o->who, sizeof(o->who));
	if (cli_known_path(o->known, o->known_path, sizeof(o->known_path)) < 0) {
		fprintf(stderr, "espstm %s: no known_bridges path (set $HOME or --known-bridges)\n",
		        cmd);
		return CLI_EXIT_ERROR;
	}
	char dir[4096];
	if (o->key_dir)
		snprintf(dir, sizeof(dir), "%s", o->key_dir);
	else if (key_dir_default(dir, sizeof(dir)) < 0) {
		fprintf(stderr, "espstm %s: no key directory (set $HOME or --key-dir)\n", cmd);
		return CLI_EXIT_ERROR;
	}
	if (strlen(dir) + strlen(o->host) + 6 > sizeof(o->key_path))
		return usage_err(cmd, "%s", "key directory name too long");
	snprintf(o->key_path, sizeof(o->key_path), "%.4000s/%.255s.key", dir, o->host);
	return -1;
}

static int read_pw(const char *cmd, const struct pair_opts *o, char *pw, size_t cap)
{
	char msg[300];
	int r = cli_flash_read_password(o->password_file, pw, cap, msg, sizeof(msg), stderr);
	if (r >= 0)
		return 0;
	fprintf(stderr, "espstm %s: %s\n", cmd, msg);
	return r == -ENOENT && !o->password_file ? CLI_EXIT_USAGE : CLI_EXIT_ERROR;
}

/* The certificate's pin against known_bridges. Returns -1 to go on (pin in got, *first set
 * when it was not known), or an exit status. */
static int check_pin(const char *cmd, const struct pair_opts *o, char *got, size_t cap, int *first)
{
	char msg[4800], pinned[CLI_PAIR_PIN_MAX];
	if (cli_pair_probe(o->host, o->port, got, cap, msg, sizeof(msg)) < 0) {
		fprintf(stderr, "espstm %s: %s: %s\n", cmd, o->who, msg);
		return CLI_EXIT_ERROR;
	}
	int k = cli_known_lookup(o->known_path, o->who, pinned, sizeof(pinned));
	if (k < 0) {
		fprintf(stderr, "espstm %s: %s: %s\n", cmd, o->known_path, strerror(-k));
		return CLI_EXIT_ERROR;
	}
	*first = k == 0;
	if (k == 1 && strcmp(pinned, got) != 0) {
		cli_pair_changed_msg(msg, sizeof(msg), o->who, pinned, got, o->known_path);
		fprintf(stderr, "%s\n", msg);
		return CLI_PAIR_EXIT_CHANGED;
	}
	return -1;
}

/* An HTTP answer that is not 200: message, exit status. */
static int http_refused(const char *cmd, const struct pair_opts *o, long code, const struct rbuf *b)
{
	struct cj *a = cj_parse(b->p, b->n, NULL, 0);
	const char *e = cj_str(cj_get(a, "error"));
	if (code == 401)
		fprintf(stderr, "espstm %s: %s: the bridge refused the password (HTTP 401)\n", cmd,
		        o->who);
	else if (code == 429)
		fprintf(stderr,
		        "espstm %s: %s: too many wrong passwords: the bridge waits before it "
		        "answers again (HTTP 429)\n",
		        cmd, o->who);
	else
		fprintf(stderr, "espstm %s: %s: HTTP %ld: %s\n", cmd, o->who, code,
		        e ? e : "unexpected answer");
	cj_free(a);
	return CLI_EXIT_ERROR;
}

static int post_checked(const char *cmd, const struct pair_opts *o, const char *path,
                        const char *pin, const char *pw, struct rbuf *b)
{
	char msg[400];
	long code = post_pinned(o->host, o->port, path, pin, pw, b, msg, sizeof(msg));
	if (code == -2) {
		fprintf(stderr,
		        "espstm %s: %s: the bridge's certificate changed during the connection "
		        "(pinned %s); nothing was changed\n",
		        cmd, o->who, pin);
		return CLI_PAIR_EXIT_CHANGED;
	}
	if (code < 0) {
		fprintf(stderr, "espstm %s: %s: %s\n", cmd, o->who, msg);
		return CLI_EXIT_ERROR;
	}
	if (code != 200)
		return http_refused(cmd, o, code, b);
	return -1;
}

static void wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;
	while (n--)
		*v++ = 0;
}

/* The answer of POST /api/pair into a key file's text. 0 with text, else -1 (message). */
static int key_text(const struct pair_opts *o, const struct rbuf *b, char *text, size_t cap,
                    int64_t *port, int64_t *targets)
{
	struct cj *a = cj_parse(b->p, b->n, NULL, 0);
	const char *id = cj_str(cj_get(a, "identity"));
	const char *hex = cj_str(cj_get(a, "key"));
	struct tls_psk k;
	memset(&k, 0, sizeof(k));
	/* the answer's fields as key file lines: unit_key_parse checks and decodes them */
	int ok = id && hex && strlen(id) <= TLS_PSK_ID_MAX && strlen(hex) == 2 * TLS_PSK_KEY_LEN;
	if (ok) {
		char raw[128];
		int m = snprintf(raw, sizeof(raw), "identity %s\nkey %s\n", id, hex);
		ok = m > 0 && (size_t)m < sizeof(raw) &&
		     unit_key_parse(raw, (size_t)m, &k, NULL, 0) == 0;
		wipe(raw, sizeof(raw));
	}
	if (cj_int(cj_get(a, "port"), port) < 0)
		*port = 2217;
	if (cj_int(cj_get(a, "targets"), targets) < 0)
		*targets = 1;
	cj_free(a);
	char comment[400];
	snprintf(comment, sizeof(comment), "espstm unit key for %s (secret; mode 0600)", o->who);
	int n = ok ? unit_key_format(&k, comment, text, cap) : -EINVAL;
	struct tls_psk back;
	/* what espstmd will read must parse */
	if (n >= 0 && unit_key_parse(text, (size_t)n, &back, NULL, 0) < 0)
		n = -EINVAL;
	wipe(&k, sizeof(k));
	wipe(&back, sizeof(back));
	if (n < 0) {
		fprintf(stderr, "espstm pair: %s: the bridge's answer holds no usable key\n",
		        o->who);
		return -1;
	}
	return 0;
}

static int store_key(const struct pair_opts *o, const char *text)
{
	int e = make_parents(o->key_path, 0700);
	if (!e)
		e = write_atomic(o->key_path, text, strlen(text), 0600);
	if (e) {
		fprintf(stderr, "espstm pair: %s: %s\n", o->key_path, strerror(-e));
		return -1;
	}
	return 0;
}

int espstm_pair_main(int argc, char **argv)
{
	struct pair_opts o;
	int rc = parse(argc, argv, &o, 0);
	if (rc >= 0)
		return rc;
	char pw[CLI_FLASH_PASS_MAX + 1], pin[CLI_PAIR_PIN_MAX];
	if ((rc = read_pw("pair", &o, pw, sizeof(pw))) != 0)
		return rc;
	int first = 0;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = check_pin("pair", &o, pin, sizeof(pin), &first);
	static struct rbuf b;
	if (rc < 0)
		rc = post_checked("pair", &o, "/api/pair", pin, pw, &b);
	wipe(pw, sizeof(pw));
	char text[1024];
	int64_t port = 2217, targets = 1;
	if (rc < 0 && key_text(&o, &b, text, sizeof(text), &port, &targets) < 0)
		rc = CLI_EXIT_ERROR;
	wipe(&b, sizeof(b));
	if (rc < 0 && store_key(&o, text) < 0)
		rc = CLI_EXIT_ERROR;
	wipe(text, sizeof(text));
	if (rc < 0 && first) {
		int e = cli_known_set(o.known_path, o.who, pin);
		if (e < 0) {
			fprintf(stderr, "espstm pair: %s: %s\n", o.known_path, strerror(-e));
			rc = CLI_EXIT_ERROR;
		} else {
			printf("%s: certificate %s (first use: pinned in %s)\n", o.who, pin,
			       o.known_path);
		}
	} else if (rc < 0) {
		printf("%s: certificate %s (as pinned in %s)\n", o.who, pin, o.known_path);
	}
	curl_global_cleanup();
	if (rc >= 0)
		return rc;
	printf("key written to %s\n\nAdd to /etc/espstm/espstm.conf (then: systemctl reload "
	       "espstmd):\n\n[%s]\nhost = %s\nport = %lld\nkey = %s\n",
	       o.key_path, o.name ? o.name : "ttySTM0", o.host, (long long)port, o.key_path);
	if (targets > 1)
		printf("\n; the unit has %lld targets: target N listens on port %lld + N, with the "
		       "same key\n",
		       (long long)targets, (long long)port);
	return CLI_EXIT_OK;
}

int espstm_unpair_main(int argc, char **argv)
{
	struct pair_opts o;
	int rc = parse(argc, argv, &o, 1);
	if (rc >= 0)
		return rc;
	if (o.rotate) {
		char pw[CLI_FLASH_PASS_MAX + 1], pin[CLI_PAIR_PIN_MAX];
		if ((rc = read_pw("unpair", &o, pw, sizeof(pw))) != 0)
			return rc;
		int first = 0;
		curl_global_init(CURL_GLOBAL_DEFAULT);
		rc = check_pin("unpair", &o, pin, sizeof(pin), &first);
		if (rc < 0 && first) {
			fprintf(stderr,
			        "espstm unpair: %s: not paired (no pin in %s): the key is not "
			        "rotated over an unknown certificate\n",
			        o.who, o.known_path);
			rc = CLI_EXIT_ERROR;
		}
		static struct rbuf b;
		if (rc < 0)
			rc = post_checked("unpair", &o, "/api/pair/rotate", pin, pw, &b);
		wipe(pw, sizeof(pw));
		curl_global_cleanup();
		if (rc >= 0)
			return rc;
		printf("%s: unit key rotated: every host paired with it must pair again\n", o.who);
	}
	int removed = 0;
	if (unlink(o.key_path) == 0) {
		printf("removed %s\n", o.key_path);
		removed = 1;
	} else if (errno != ENOENT) {
		fprintf(stderr, "espstm unpair: %s: %s\n", o.key_path, strerror(errno));
		return CLI_EXIT_ERROR;
	}
	/* HOST without a port: every port of HOST */
	char name[300];
	if (o.has_port)
		snprintf(name, sizeof(name), "%s", o.who);
	else
		snprintf(name, sizeof(name), "%s%s%s:*", strchr(o.host, ':') ? "[" : "", o.host,
		         strchr(o.host, ':') ? "]" : "");
	int k = cli_known_set(o.known_path, name, NULL);
	if (k < 0) {
		fprintf(stderr, "espstm unpair: %s: %s\n", o.known_path, strerror(-k));
		return CLI_EXIT_ERROR;
	}
	if (k > 0)
		printf("removed %d pin%s of %s from %s\n", k, k == 1 ? "" : "s", o.host,
		       o.known_path);
	if (!removed && k == 0 && !o.rotate) {
		fprintf(stderr, "espstm unpair: %s: not paired (no %s, no line in %s)\n", o.who,
		        o.key_path, o.known_path);
		return CLI_EXIT_ERROR;
	}
	return CLI_EXIT_OK;
}
