/* SPDX-License-Identifier: MIT */
/*
 * `espstm flash`: stream an image to the bridge's HTTP API (POST /api/targets/N/flash,
 * firmware/core/http_api.h "Flashing"), whose own AN3155 master writes it, with a GET of the
 * progress every CLI_FLASH_POLL_S on a second connection (libcurl's multi interface, one
 * thread). The bridge reads the body only as fast as the STM32 takes it, so the POST's
 * answer comes when the run has ended. This file is the I/O; parsing, messages, exit
 * statuses and the progress display are in cli_flash.[ch]. See espstm(1), FLASH.
 */
#include "espstm.h"

#include "cli_client.h"
#include "cli_flash.h"
#include "cli_json.h"
#include "cli_pair.h"  /* known_bridges pins (HTTPS) */
#include "ctl_proto.h" /* CTL_DEFAULT_PATH */

#include <assert.h>
#include <curl/curl.h>
#include <mbedtls/base64.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define CLI_FLASH_POLL_S     0.25  /* progress GET interval (s) */
#define CLI_FLASH_RESP_MAX   65536 /* largest answer body kept (bytes) */
#define CLI_FLASH_STALL_S    120   /* no byte either way for this long: the bridge is gone */
#define CLI_FLASH_CONNECT_MS 10000 /* TCP connect timeout (ms) */
#define CLI_FLASH_ABORT_MS   2000  /* DELETE .../flash after SIGINT/SIGTERM (ms) */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct buf {
	char *p;
	size_t n;
};

static size_t buf_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;
	size_t keep = b->n + n > CLI_FLASH_RESP_MAX ? CLI_FLASH_RESP_MAX - b->n : n;
	if (keep) {
		char *np = realloc(b->p, b->n + keep + 1);
		if (!np)
			return 0; /* curl: write error */
		b->p = np;
		memcpy(b->p + b->n, data, keep);
		b->n += keep;
		b->p[b->n] = '\0';
	}
	return n;
}

struct upload {
	FILE *f;
	uint64_t sent;
	int started; /* the bridge asked for body bytes: the run has begun */
	int read_error;
	long retry_after;
	struct buf resp;
};

static size_t read_body(char *out, size_t size, size_t nitems, void *ud)
{
	struct upload *u = ud;
	u->started = 1;
	size_t n = fread(out, 1, size * nitems, u->f);
	if (n == 0 && ferror(u->f)) {
		u->read_error = errno ? errno : EIO;
		return CURL_READFUNC_ABORT;
	}
	u->sent += n;
	return n;
}

static size_t header_line(char *data, size_t size, size_t nitems, void *ud)
{
	struct upload *u = ud;
	size_t n = size * nitems;
	if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
		char tmp[32];
		size_t k = n - 12 < sizeof tmp - 1 ? n - 12 : sizeof tmp - 1;
		memcpy(tmp, data + 12, k);
		tmp[k] = '\0';
		u->retry_after = strtol(tmp, NULL, 10);
	}
	return n;
}

/* The progress output on stderr. */
struct shown {
	enum cli_flash_progress_mode mode;
	struct cli_flash_progress p;
	int bar_drawn; /* a bar line is on the screen (no newline after it yet) */
	int width;
	struct cli_flash_status last;
	int have_last;
};

static void show(struct shown *s, const struct cli_flash_status *st)
{
	char line[256];
	double now = mono();
	s->last = *st;
	s->have_last = 1;
	if (s->mode == CLI_PROGRESS_BAR) {
		cli_flash_bar_line(&s->p, st, now, s->width, line, sizeof line);
		fprintf(stderr, "\r%s\033[K", line);
		s->bar_drawn = 1;
		fflush(stderr);
	} else if (s->mode == CLI_PROGRESS_LINES) {
		while (cli_flash_plain_line(&s->p, st, now, line, sizeof line))
			fprintf(stderr, "espstm flash: %s\n", line);
	}
}

static void end_bar(struct shown *s)
{
	if (s->bar_drawn) {
		fputc('\n', stderr);
		s->bar_drawn = 0;
	}
}

/* The bridge's pinned certificate (known_bridges, cli_pair.h), "" = none: plain HTTP. Every
 * handle of this run uses it (set_common). */
static char flash_pin[CLI_PAIR_PIN_MAX];

static void set_common(CURL *h, const char *url, const char *pw)
{
	if (flash_pin[0])
		cli_pair_pin_curl(h, flash_pin);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*"); /* the bridge is on the local network */
	curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(h, CURLOPT_USERNAME, "admin");
	curl_easy_setopt(h, CURLOPT_PASSWORD, pw);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLI_FLASH_CONNECT_MS);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "espstm/" ESPSTM_VERSION);
	curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
}

/* DELETE /api/targets/N/flash (http_api.h "Abort"): the bridge stops the run at once
 * instead of first using the image bytes it already holds. Returns the HTTP status (200
 * aborted, 409 nothing was running) or 0 when there was no answer in CLI_FLASH_ABORT_MS. */
static long abort_run(const char *url, const char *pw)
{
	CURL *h = curl_easy_init();
	struct buf b = {0};
	struct curl_slist *hdr = curl_slist_append(NULL, "X-Espstm-Request: 1");
	long code = 0;
	if (!h || !hdr) {
		curl_easy_cleanup(h);
		curl_slist_free_all(hdr);
		return 0;
	}
	set_common(h, url, pw);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "DELETE");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CLI_FLASH_ABORT_MS);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CLI_FLASH_ABORT_MS);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) != CURLE_OK ||
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) != CURLE_OK)
		code = 0;
	free(b.p);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return code;
}

/* zlib CRC-32 of the whole file (for --stage's crc32=). 0 or an errno. */
static int file_crc32(FILE *f, uint32_t *crc)
{
	unsigned char chunk[16384];
	uLong c = crc32(0L, Z_NULL, 0);
	size_t n;
	rewind(f);
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		c = crc32(c, chunk, (uInt)n);
	int e = ferror(f) ? (errno ? errno : EIO) : 0;
	rewind(f);
	*crc = (uint32_t)c;
	return e;
}

/* One blocking GET of the flash state (after a lost POST connection). 0 or -1. */
static int get_once(const char *url, const char *pw, struct cli_flash_status *st)
{
	CURL *h = curl_easy_init();
	struct buf b = {0};
	long code = 0;
	int rc = -1;
	if (!h)
		return -1;
	set_common(h, url, pw);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (curl_easy_perform(h) == CURLE_OK &&
	    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200 &&
	    cli_flash_parse_status(b.p, b.n, st) == 0)
		rc = 0;
	free(b.p);
	curl_easy_cleanup(h);
	return rc;
}

static int term_width(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
		return ws.ws_col;
	return 80;
}

/* The bridge of a DEVICE, from espstmd. Returns 0 or an exit status. */
static int bridge_of_device(const struct cli_flash_opts *o, char *host, size_t cap, unsigned *port)
{
	const char *sock = o->socket                                   ? o->socket
	                   : cli_globals.socket && *cli_globals.socket ? cli_globals.socket
	                                                               : CTL_DEFAULT_PATH;
	char req[96], msg[256], perr[96];
	char *raw = NULL;
	enum cli_stage stage;
	snprintf(req, sizeof req, "status %s", o->device);
	int r = cli_request(sock, req, CLI_TIMEOUT_MS, &raw, &stage);
	if (r < 0) {
		fprintf(stderr, "espstm flash: cannot ask espstmd at %s for %s's bridge: %s\n",
		        sock, o->device, strerror(-r));
		if (stage == CLI_STAGE_CONNECT && (r == -ENOENT || r == -ECONNREFUSED))
			fprintf(stderr,
			        "espstm flash: is espstmd running with --control %s? (--socket or "
			        "$%s select another socket; --host HOST:PORT needs no espstmd)\n",
			        sock, CLI_SOCKET_ENV);
		return CLI_FLASH_EXIT_UNAVAILABLE;
	}
	struct cj *a = cj_parse(raw, strlen(raw), perr, sizeof perr);
	int ok = a ? cj_bool(cj_get(a, "ok")) : -1;
	if (ok != 1) {
		const char *e = a ? cj_str(cj_get(a, "error")) : NULL;
		if (e)
			fprintf(stderr, "espstm flash: espstmd: %s\n", e);
		else
			fprintf(stderr,
			        "espstm flash: unreadable answer from espstmd at %s: %.200s\n",
			        sock, raw);
		cj_free(a);
		free(raw);
		return CLI_FLASH_EXIT_FAILED;
	}
	r = cli_flash_bridge_from_status(a, o->device, host, cap, port, msg, sizeof msg);
	cj_free(a);
	free(raw);
	if (r < 0) {
		fprintf(stderr, "espstm flash: %s\n", msg);
		return CLI_FLASH_EXIT_FAILED;
	}
	return 0;
}

/* Open and check IMAGE. Returns 0 (*f, *size, *total: image bytes for the progress, *hexaddr
 * for Intel HEX, *ex: what the bridge's final counts must match) or an exit status. */
static int open_image(const char *path, enum cli_flash_format fmt, FILE **f, uint64_t *size,
                      uint64_t *total, uint32_t *hexaddr, struct cli_flash_expect *ex)
{
	struct stat sb;
	FILE *fp = fopen(path, "rbe");
	if (!fp) {
		fprintf(stderr, "espstm flash: cannot open %s: %s\n", path, strerror(errno));
		return CLI_FLASH_EXIT_NOINPUT;
	}
	if (fstat(fileno(fp), &sb) < 0 || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "espstm flash: %s is not a regular file\n", path);
		fclose(fp);
		return CLI_FLASH_EXIT_NOINPUT;
	}
	if (sb.st_size == 0 || (uint64_t)sb.st_size > 0xFFFFFFFFu) {
		fprintf(stderr, "espstm flash: %s is %s\n", path,
		        sb.st_size == 0 ? "empty" : "larger than 4 GiB");
		fclose(fp);
		return CLI_FLASH_EXIT_DATAERR;
	}
	uint8_t head[64];
	size_t hn = fread(head, 1, sizeof head, fp);
	const char *why = cli_flash_check_head(head, hn, fmt);
	if (why) {
		fprintf(stderr, "espstm flash: %s %s\n", path, why);
		fclose(fp);
		return CLI_FLASH_EXIT_DATAERR;
	}
	*size = (uint64_t)sb.st_size;
	*total = *size;
	*hexaddr = 0;
	ex->fmt = fmt;
	ex->bytes = *size;
	ex->span = 0;
	if (fmt == CLI_FMT_HEX) {
		struct cli_hex_scan sc;
		uint32_t a, t;
		char chunk[8192];
		size_t n;
		cli_hex_scan_init(&sc);
		rewind(fp);
		while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0)
			if (cli_hex_scan_feed(&sc, chunk, n) < 0)
				break;
		if (ferror(fp)) {
			fprintf(stderr, "espstm flash: cannot read %s: %s\n", path,
			        strerror(errno));
			fclose(fp);
			return CLI_FLASH_EXIT_NOINPUT;
		}
		if (cli_hex_scan_finish(&sc, &a, &t) < 0) {
			fprintf(stderr, "espstm flash: %s: %s\n", path, sc.err);
			fclose(fp);
			return CLI_FLASH_EXIT_DATAERR;
		}
		*total = t;
		*hexaddr = a;
		ex->bytes = sc.data;
		ex->span = sc.next - sc.first;
	}
	rewind(fp);
	*f = fp;
	return 0;
}

/* Everything one run of `espstm flash` holds between its steps. */
struct flash_run {
	struct cli_flash_opts o;
	enum cli_flash_format fmt;
	int json; /* --json or the tool's global --json */
	char pw[CLI_FLASH_PASS_MAX + 1];
	char msg[512];
	FILE *img;
	uint64_t size;    /* IMAGE's bytes (the POST's Content-Length) */
	uint64_t total;   /* image bytes, for the progress */
	uint32_t hexaddr; /* Intel HEX: the first address */
	struct cli_flash_expect expect;
	char host[CLI_FLASH_HOST_MAX + 1];
	char who[CLI_FLASH_HOST_MAX + 80]; /* DEVICE, or [host]:port: the summary's name */
	unsigned port;
	char url[512], geturl[512]; /* POST (with the query) and GET/DELETE */
	struct shown sh;
	struct upload up;
	char cerr[CURL_ERROR_SIZE]; /* libcurl's message for the POST */
	int post_done;
	CURLcode post_res;
	long code;        /* HTTP status of the POST's answer, 0 if none */
	long abort_code;  /* HTTP status of the DELETE after a signal, -1 if none was sent */
	double secs;      /* how long the upload ran */
	char sighdr[160]; /* "X-Espstm-Signature: BASE64" (--sig or IMAGE.sig), "" none */
};

/* The two connections of an upload: the POST with the image, the GET of the progress. */
struct transfer {
	CURLM *m;
	CURL *post, *get;
	struct curl_slist *hdr;
	struct buf gbuf; /* answer of the GET */
	int get_busy;    /* a GET is in flight */
};

/* The bridge's web password (--password-file or $ESPSTM_PASSWORD) into run->pw. Returns 0
 * or an exit status (said on stderr). */
static int get_password(struct flash_run *run)
{
	int r = cli_flash_read_password(run->o.password_file, run->pw, sizeof run->pw, run->msg,
	                                sizeof run->msg, stderr);
	if (r >= 0)
		return 0;
	fprintf(stderr, "espstm flash: %s\n", run->msg);
	return r == -ENOENT && !run->o.password_file ? CLI_FLASH_EXIT_USAGE
	       : r == -EINVAL                        ? CLI_FLASH_EXIT_USAGE
	                                             : CLI_FLASH_EXIT_NOINPUT;
}

/* The bridge's host and port (espstmd's for a DEVICE, else --host) and the name the
 * summary gives it. Returns 0 or an exit status. */
static int find_bridge(struct flash_run *run)
{
	run->port = run->o.port;
	if (run->o.device) {
		int r = bridge_of_device(&run->o, run->host, sizeof run->host, &run->port);
		if (r)
			return r;
		snprintf(run->who, sizeof run->who, "%s", run->o.device);
		return 0;
	}
	snprintf(run->host, sizeof run->host, "%s", run->o.host);
	snprintf(run->who, sizeof run->who, "%s%s%s:%u", strchr(run->host, ':') ? "[" : "",
	         run->host, strchr(run->host, ':') ? "]" : "", run->port);
	return 0;
}

/* HTTPS when known_bridges has a pin for the bridge (and no --http-plain): the URLs become
 * https:// and every handle pins the certificate. Returns 0 or an exit status. */
static int choose_scheme(struct flash_run *run)
{
	flash_pin[0] = '\0';
	if (run->o.http_plain)
		return 0;
	int k = cli_pair_pin_for(run->host, run->port, flash_pin, sizeof flash_pin);
	if (k < 0) {
		fprintf(stderr, "espstm flash: known_bridges unreadable: %s\n", strerror(-k));
		return CLI_FLASH_EXIT_NOINPUT;
	}
	if (k == 0) {
		flash_pin[0] = '\0';
		return 0;
	}
	char *urls[] = {run->url, run->geturl};
	for (int i = 0; i < 2; i++) {
		size_t l = strlen(urls[i]);
		if (strncmp(urls[i], "http://", 7) != 0 || l + 2 > sizeof run->url) {
			fprintf(stderr, "espstm flash: host name too long\n");
			return CLI_FLASH_EXIT_USAGE;
		}
		memmove(urls[i] + 5, urls[i] + 4, l - 4 + 1);
		urls[i][4] = 's';
	}
	return 0;
}

/* The signature for a locked bridge (http_api.h "Signed images"): --sig FILE, else IMAGE.sig
 * if it exists, as the X-Espstm-Signature header (base64 of the DER); a signed image is
 * staged (the bridge implies it). Returns 0 or an exit status. */
static int prepare_sig(struct flash_run *run)
{
	char def[4096];
	const char *path = run->o.sig;
	if (!path && snprintf(def, sizeof def, "%s.sig", run->o.image) < (int)sizeof def &&
	    access(def, F_OK) == 0)
		path = def;
	if (!path)
		return 0;
	uint8_t der[96];
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(der, 1, sizeof der, f) : 0;
	if (f)
		fclose(f);
	if (!f || n == 0 || n > 80) {
		fprintf(stderr, "espstm flash: signature %s: %s\n", path,
		        !f ? strerror(errno) : "not a DER signature of at most 80 bytes");
		return CLI_FLASH_EXIT_NOINPUT;
	}
	size_t o = (size_t)snprintf(run->sighdr, sizeof run->sighdr, "X-Espstm-Signature: ");
	size_t olen = 0;
	/* 80 bytes -> 108 characters + NUL: fits (sighdr holds 160) */
	int r = mbedtls_base64_encode((unsigned char *)run->sighdr + o, sizeof run->sighdr - o,
	                              &olen, der, n);
	assert(r == 0);
	(void)r;
	run->o.stage = 1;
	fprintf(stderr, "espstm flash: signature %s sent along (X-Espstm-Signature)\n", path);
	return 0;
}

/* --stage's CRC-32 of IMAGE, and the URLs of the upload and of the progress. Returns 0 or
 * an exit status. */
static int prepare_urls(struct flash_run *run)
{
	int sr = prepare_sig(run);
	if (sr)
		return sr;
	if (run->o.stage) {
		int e = file_crc32(run->img, &run->o.crc32);
		if (e) {
			fprintf(stderr, "espstm flash: cannot read %s: %s\n", run->o.image,
			        strerror(e));
			return CLI_FLASH_EXIT_NOINPUT;
		}
		run->expect.has_crc = 1;
		run->expect.crc = run->o.crc32;
	}
	char query[200];
	cli_flash_query(query, sizeof query, &run->o, run->fmt);
	if (cli_flash_url(run->url, sizeof run->url, run->host, run->port, run->o.target, query) <
	        0 ||
	    cli_flash_url(run->geturl, sizeof run->geturl, run->host, run->port, run->o.target,
	                  NULL) < 0) {
		fprintf(stderr, "espstm flash: host name too long\n");
		return CLI_FLASH_EXIT_USAGE;
	}
	return 0;
}

/* The progress display's mode (--progress; auto: a bar on a terminal) and, unless it is
 * none, the line saying what goes where. */
static void start_progress(struct flash_run *run)
{
	struct shown *sh = &run->sh;
	const struct cli_flash_opts *o = &run->o;
	sh->mode = o->progress;
	if (sh->mode == CLI_PROGRESS_AUTO)
		sh->mode = isatty(STDERR_FILENO) ? CLI_PROGRESS_BAR : CLI_PROGRESS_LINES;
	sh->width = term_width();
	if (sh->mode == CLI_PROGRESS_NONE)
		return;
	char b[24], where[40];
	if (run->fmt == CLI_FMT_HEX)
		snprintf(where, sizeof where, "at 0x%08X", (unsigned)run->hexaddr);
	else if (o->has_address)
		snprintf(where, sizeof where, "at 0x%08X", (unsigned)o->address);
	else
		snprintf(where, sizeof where, "at the flash base");
	char br[CLI_FLASH_HOST_MAX + 16];
	snprintf(br, sizeof br, "%s%s%s:%u", strchr(run->host, ':') ? "[" : "", run->host,
	         strchr(run->host, ':') ? "]" : "", run->port);
	fprintf(stderr, "espstm flash: %s (%s, %s) %s -> %s%s%s%s, target %u\n", o->image,
	        run->fmt == CLI_FMT_HEX ? "Intel HEX" : "binary",
	        cli_flash_fmt_bytes(b, sizeof b, run->total), where, o->device ? o->device : "",
	        o->device ? " (bridge " : "bridge ", br, o->device ? ")" : "", o->target);
	if (o->stage)
		fprintf(stderr,
		        "espstm flash: --stage: the bridge stores the image first and flashes "
		        "it only if its CRC-32 is 0x%08X\n",
		        (unsigned)o->crc32);
}

/* The POST streaming IMAGE (Content-Length: its size; "Expect: 100-continue", so a refusal -
 * 401, 403, 409, 413 - comes before any image byte is sent) and the GET of the progress.
 * Returns 0, or -1 when libcurl has no memory. */
static int transfer_init(struct transfer *tr, struct flash_run *run)
{
	CURL *post = tr->post = curl_easy_init();
	CURL *get = tr->get = curl_easy_init();
	tr->m = curl_multi_init();
	tr->hdr = curl_slist_append(tr->hdr, "X-Espstm-Request: 1");
	tr->hdr = curl_slist_append(tr->hdr, "Content-Type: application/octet-stream");
	tr->hdr = curl_slist_append(tr->hdr, "Expect: 100-continue");
	if (run->sighdr[0])
		tr->hdr = curl_slist_append(tr->hdr, run->sighdr);
	if (!post || !get || !tr->m || !tr->hdr)
		return -1;
	set_common(post, run->url, run->pw);
	curl_easy_setopt(post, CURLOPT_POST, 1L);
	curl_easy_setopt(post, CURLOPT_READFUNCTION, read_body);
	curl_easy_setopt(post, CURLOPT_READDATA, &run->up);
	curl_easy_setopt(post, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)run->size);
	curl_easy_setopt(post, CURLOPT_HTTPHEADER, tr->hdr);
	curl_easy_setopt(post, CURLOPT_EXPECT_100_TIMEOUT_MS, 2000L);
	curl_easy_setopt(post, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(post, CURLOPT_WRITEDATA, &run->up.resp);
	curl_easy_setopt(post, CURLOPT_HEADERFUNCTION, header_line);
	curl_easy_setopt(post, CURLOPT_HEADERDATA, &run->up);
	curl_easy_setopt(post, CURLOPT_ERRORBUFFER, run->cerr);
	curl_easy_setopt(post, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(post, CURLOPT_LOW_SPEED_TIME, (long)CLI_FLASH_STALL_S);
	set_common(get, run->geturl, run->pw);
	curl_easy_setopt(get, CURLOPT_TIMEOUT_MS, 10000L);
	curl_easy_setopt(get, CURLOPT_WRITEFUNCTION, buf_write);
	curl_easy_setopt(get, CURLOPT_WRITEDATA, &tr->gbuf);
	return 0;
}

/* Close both connections (an interrupted upload ends here) and free what tr holds. */
static void transfer_free(struct transfer *tr)
{
	if (tr->m && tr->get_busy)
		curl_multi_remove_handle(tr->m, tr->get);
	if (tr->m && tr->post)
		curl_multi_remove_handle(tr->m, tr->post);
	curl_easy_cleanup(tr->post);
	curl_easy_cleanup(tr->get);
	curl_multi_cleanup(tr->m);
	curl_slist_free_all(tr->hdr);
	free(tr->gbuf.p);
}

/* The transfers libcurl has finished: the POST's result, or a GET's progress (shown while
 * the POST runs). */
static void collect_done(struct transfer *tr, struct flash_run *run)
{
	CURLMsg *cm;
	int q;
	while ((cm = curl_multi_info_read(tr->m, &q))) {
		if (cm->msg != CURLMSG_DONE)
			continue;
		if (cm->easy_handle == tr->post) {
			run->post_done = 1;
			run->post_res = cm->data.result;
		} else if (cm->easy_handle == tr->get) {
			long code = 0;
			struct cli_flash_status st;
			curl_easy_getinfo(tr->get, CURLINFO_RESPONSE_CODE, &code);
			if (cm->data.result == CURLE_OK && code == 200 &&
			    cli_flash_parse_status(tr->gbuf.p, tr->gbuf.n, &st) == 0 &&
			    !run->post_done)
				show(&run->sh, &st);
			curl_multi_remove_handle(tr->m, tr->get);
			tr->get_busy = 0;
			free(tr->gbuf.p);
			tr->gbuf.p = NULL;
			tr->gbuf.n = 0;
		}
	}
}

/* Drive both connections until the POST has its answer or a signal arrives: once the
 * bridge takes body bytes (the run has begun), a GET every CLI_FLASH_POLL_S. */
static void transfer_loop(struct transfer *tr, struct flash_run *run)
{
	int polling = run->sh.mode != CLI_PROGRESS_NONE;
	double next_poll = 0;
	curl_multi_add_handle(tr->m, tr->post);
	while (!run->post_done && !interrupted) {
		int running;
		curl_multi_perform(tr->m, &running);
		collect_done(tr, run);
		if (run->post_done)
			break;
		double now = mono();
		if (run->up.started && !tr->get_busy && polling && now >= next_poll) {
			curl_multi_add_handle(tr->m, tr->get);
			tr->get_busy = 1;
			next_poll = now + CLI_FLASH_POLL_S;
			continue;
		}
		int wait_ms = 100;
		if (run->up.started && !tr->get_busy && polling) {
			double left = (next_poll - now) * 1000.0;
			wait_ms = left < 1 ? 1 : left < 100 ? (int)left : 100;
		}
		curl_multi_poll(tr->m, NULL, 0, wait_ms, NULL);
	}
}

/* After SIGINT/SIGTERM during the upload: ask the bridge to abort (DELETE) and make the
 * upload's close a reset. */
static void interrupt_upload(struct transfer *tr, struct flash_run *run)
{
	if (run->up.started) {
		/* ask the bridge to stop now: it would otherwise first use the image bytes it
		 * already holds in its socket buffer (seconds at UART speed) */
		end_bar(&run->sh);
		fprintf(stderr,
		        "espstm flash: interrupted: asking the bridge to abort the flash\n");
		run->abort_code = abort_run(run->geturl, run->pw);
	}
	/* close the upload with a reset (SO_LINGER 0), not a FIN: the bridge's kernel then
	 * drops the image bytes it holds unread, so the run is aborted (a FIN after the last
	 * byte would make the image look complete) */
	curl_socket_t fd = CURL_SOCKET_BAD;
	if (curl_easy_getinfo(tr->post, CURLINFO_ACTIVESOCKET, &fd) == CURLE_OK &&
	    fd != CURL_SOCKET_BAD) {
		struct linger lg = {.l_onoff = 1, .l_linger = 0};
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	}
}

/* Send IMAGE and wait for the POST's answer (SIGINT/SIGTERM caught meanwhile); closes
 * IMAGE. Returns 0 (the outcome is in run), or an exit status if libcurl has no memory. */
static int upload(struct flash_run *run)
{
	struct transfer tr;
	memset(&tr, 0, sizeof tr);
	run->up.f = run->img;
	run->up.retry_after = -1;
	run->abort_code = -1;
	if (transfer_init(&tr, run) < 0) {
		fprintf(stderr, "espstm flash: out of memory\n");
		transfer_free(&tr);
		fclose(run->img);
		return CLI_FLASH_EXIT_FAILED;
	}
	struct sigaction sa, old_int, old_term;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);

	double t0 = mono();
	cli_flash_progress_init(&run->sh.p, run->total, run->o.verify, t0);
	transfer_loop(&tr, run);
	run->secs = mono() - t0;
	if (interrupted && !run->post_done)
		interrupt_upload(&tr, run);
	if (run->post_done)
		curl_easy_getinfo(tr.post, CURLINFO_RESPONSE_CODE, &run->code);
	transfer_free(&tr);
	fclose(run->img);
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	return 0;
}

/* Say how an interrupted run ended (the DELETE's answer). Returns the exit status. */
static int report_interrupted(const struct flash_run *run)
{
	long ac = run->abort_code;
	if (ac == 200)
		fprintf(stderr,
		        "espstm flash: interrupted after %.1f s: the bridge aborted the run (the "
		        "chip stays in its bootloader)\n",
		        run->secs);
	else if (ac == 409)
		fprintf(stderr,
		        "espstm flash: interrupted after %.1f s: the bridge's run had already "
		        "ended\n",
		        run->secs);
	else
		fprintf(stderr,
		        "espstm flash: interrupted after %.1f s: the upload was cut off%s; the "
		        "bridge fails the run once it has used the image bytes it already "
		        "received (the chip stays in its bootloader)\n",
		        run->secs,
		        ac == 0  ? " (the bridge did not answer the abort request)"
		        : ac > 0 ? " (the bridge refused the abort request)"
		                 : "");
	return CLI_FLASH_EXIT_INTERRUPTED;
}

/* The POST got no answer: IMAGE unreadable, the bridge unreachable, or the connection
 * broke (then one GET asks the bridge how the run ended). Returns the exit status. */
static int report_no_answer(const struct flash_run *run)
{
	const char *why = run->cerr[0] ? run->cerr : curl_easy_strerror(run->post_res);
	struct cli_flash_status st;
	if (run->up.read_error) {
		fprintf(stderr, "espstm flash: reading %s failed: %s\n", run->o.image,
		        strerror(run->up.read_error));
		return CLI_FLASH_EXIT_NOINPUT;
	}
	if (run->post_res == CURLE_SSL_PINNEDPUBKEYNOTMATCH) {
		char name[CLI_FLASH_HOST_MAX + 16], file[4096], line[4800];
		cli_known_name(run->host, run->port, name, sizeof name);
		if (cli_known_path(NULL, file, sizeof file) < 0)
			snprintf(file, sizeof file, "known_bridges");
		char got[CLI_PAIR_PIN_MAX], why[300];
		if (cli_pair_probe(run->host, run->port, got, sizeof got, why, sizeof why) < 0)
			snprintf(got, sizeof got, "another key");
		cli_pair_changed_msg(line, sizeof line, name, flash_pin, got, file);
		fprintf(stderr, "%s\n", line);
		return CLI_PAIR_EXIT_CHANGED;
	}
	if (!run->up.started) {
		fprintf(stderr, "espstm flash: cannot reach the bridge at %s%s%s:%u: %s\n",
		        strchr(run->host, ':') ? "[" : "", run->host,
		        strchr(run->host, ':') ? "]" : "", run->port, why);
		if (flash_pin[0] && run->post_res == CURLE_SSL_CONNECT_ERROR)
			fprintf(stderr,
			        "espstm flash: (the bridge is paired, so HTTPS was used; a bridge "
			        "started with --http-plain needs --http-plain here too)\n");
		if (!flash_pin[0] && !run->o.http_plain &&
		    (run->post_res == CURLE_UNSUPPORTED_PROTOCOL ||
		     run->post_res == CURLE_WEIRD_SERVER_REPLY ||
		     run->post_res == CURLE_RECV_ERROR || run->post_res == CURLE_GOT_NOTHING))
			fprintf(stderr,
			        "espstm flash: (a bridge with a unit key serves HTTPS only: pair "
			        "with it first, 'espstm pair HOST:PORT')\n");
		return CLI_FLASH_EXIT_UNAVAILABLE;
	}
	if (get_once(run->geturl, run->pw, &st) == 0 && st.state == CFS_FAILED) {
		fprintf(stderr,
		        "espstm flash: the connection to the bridge broke (%s); the flash "
		        "failed%s%s: %s\n",
		        why, st.step[0] ? " while " : "", st.step, st.error);
		return CLI_FLASH_EXIT_FAILED;
	}
	fprintf(stderr,
	        "espstm flash: the connection to the bridge broke during the flash (%s) after "
	        "%llu bytes; the flash did not complete\n",
	        why, (unsigned long long)run->up.sent);
	return CLI_FLASH_EXIT_UNAVAILABLE;
}

/* The POST's answer: its exit status and message (cli_flash_outcome), the last progress,
 * --json's copy of the answer, the summary line. Returns the exit status. */
static int report_answer(struct flash_run *run)
{
	struct cli_flash_status st;
	struct shown *sh = &run->sh;
	cli_flash_parse_status(run->up.resp.p, run->up.resp.n, &st);
	int rc = cli_flash_outcome(run->code, &st, run->o.verify, &run->expect, run->up.retry_after,
	                           run->o.target, run->msg, sizeof run->msg);
	if (st.json && st.state != CFS_UNKNOWN && sh->mode != CLI_PROGRESS_NONE &&
	    (rc == 0 || sh->have_last))
		show(sh, &st);
	end_bar(sh);
	if (run->json && run->up.resp.p)
		printf("%s%s", run->up.resp.p,
		       run->up.resp.n && run->up.resp.p[run->up.resp.n - 1] == '\n' ? "" : "\n");
	if (rc != CLI_FLASH_EXIT_OK) {
		fprintf(stderr, "espstm flash: %s\n", run->msg);
		return rc;
	}
	char line[512];
	cli_flash_summary(line, sizeof line, run->who, &st, run->secs);
	if (!run->json)
		printf("%s\n", line);
	else if (sh->mode != CLI_PROGRESS_NONE)
		fprintf(stderr, "espstm flash: %s\n", line);
	if (!run->o.verify)
		fprintf(stderr, "espstm flash: written, NOT verified (--no-verify: nothing was "
		                "read back)\n");
	return rc;
}

/* Upload IMAGE with libcurl and report how the run ended; closes IMAGE. Returns the exit
 * status. */
static int flash_over_http(struct flash_run *run)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "espstm flash: libcurl initialisation failed\n");
		fclose(run->img);
		return CLI_FLASH_EXIT_FAILED;
	}
	int rc = upload(run);
	if (rc == 0) {
		if (interrupted) {
			end_bar(&run->sh);
			rc = report_interrupted(run);
		} else if (run->post_res != CURLE_OK || run->code == 0) {
			end_bar(&run->sh);
			rc = report_no_answer(run);
		} else {
			rc = report_answer(run);
		}
	}
	free(run->up.resp.p);
	curl_global_cleanup();
	fflush(stdout);
	return rc;
}

int espstm_flash_main(int argc, char **argv)
{
	struct flash_run run;
	memset(&run, 0, sizeof run);
	int r = cli_flash_parse_args(argc, argv, &run.o, stdout, stderr);
	if (r == 1)
		return CLI_FLASH_EXIT_OK;
	if (r < 0)
		return -r;
	run.json = run.o.json || cli_globals.json;
	run.fmt =
	    run.o.format != CLI_FMT_AUTO ? run.o.format : cli_flash_detect_format(run.o.image);
	r = get_password(&run);
	if (r == 0)
		r = open_image(run.o.image, run.fmt, &run.img, &run.size, &run.total, &run.hexaddr,
		               &run.expect);
	if (r == 0) {
		r = find_bridge(&run);
		if (r == 0)
			r = prepare_urls(&run);
		if (r == 0)
			r = choose_scheme(&run);
		if (r == 0) {
			start_progress(&run);
			r = flash_over_http(&run);
		} else {
			fclose(run.img);
		}
	}
	memset(run.pw, 0, sizeof run.pw);
	return r;
}
