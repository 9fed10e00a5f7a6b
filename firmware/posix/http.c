/* SPDX-License-Identifier: MIT */
/* espstm-bridge --http (http_posix.h). */
#include "plog.h"
#include "http_posix.h"
#include "pair_posix.h"
#include "http_limits.h"

#include "http_api.h"
#include "image_sig.h"
#include "settings.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define BODY_MAX 4096

struct conn;

static struct {
	const struct hal_ops *inner;
	struct hal_ops wrap;
	uint32_t to_uart, to_net, errors;
	struct settings_mgr sm;
	char settings_path[4096];
	int settings_in_file;
	struct http_api api;
	char pass[HTTP_API_PASS_MAX + 1];
	char host[64];
	unsigned port;
	struct http_posix_hooks h;
	uv_loop_t *loop;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer;
	uv_timer_t again; /* a staged replay has more to do now: main's pump at once */
	int started;
	uint64_t t0;
	char peer[64];
	struct conn *flash_conn[SETTINGS_MAX_TARGETS]; /* the upload of each target */
	uint32_t stage_max;                            /* --stage-max (bytes) */
	int stage_fd; /* staged image: unlinked temporary file, -1 none */
	char stage_dir[512];
	/* HTTPS and pairing */
	const char *key_path; /* NULL: no unit key */
	int have_key, tls, plain_explicit;
	struct tls_psk psk;
	struct pair_cert cert;
} H = {.stage_fd = -1};

/* ---- HAL wrapper: counters ---- */

static int w_uart_config(void *ctx, struct hal_uart_cfg *c)
{
	int r = H.inner->uart_config(ctx, c);
	if (r < 0)
		H.errors++;
	return r;
}

static size_t w_uart_write(void *ctx, const uint8_t *p, size_t n)
{
	size_t k = H.inner->uart_write(ctx, p, n);
	H.to_uart += (uint32_t)k;
	return k;
}

static size_t w_net_send(void *ctx, const uint8_t *p, size_t n)
{
	size_t k = H.inner->net_send(ctx, p, n);
	H.to_net += (uint32_t)k;
	return k;
}

static void w_log(void *ctx, enum hal_log_level level, const char *line)
{
	if (level == HAL_LOG_ERROR)
		H.errors++;
	if (H.inner->log)
		H.inner->log(ctx, level, line);
}

/* ---- storage ---- */

static int st_load(void *ctx, char *buf, size_t cap)
{
	(void)ctx;
	if (!H.settings_in_file)
		return -ENOENT;
	FILE *f = fopen(H.settings_path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, cap - 1, f);
	int err = ferror(f);
	fclose(f);
	if (err)
		return -EIO;
	buf[n] = '\0';
	return (int)n;
}

static int st_save(void *ctx, const char *text, size_t len)
{
	(void)ctx;
	if (!H.settings_in_file)
		return 0;
	char tmp[sizeof(H.settings_path) + 8];
	snprintf(tmp, sizeof(tmp), "%s.tmp", H.settings_path);
	FILE *f = fopen(tmp, "w");
	if (!f) {
		plog(HAL_LOG_INFO, "settings: %s: %s", tmp, strerror(errno));
		return -EIO;
	}
	int ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
	ok = fflush(f) == 0 && ok;
	ok = fsync(fileno(f)) == 0 && ok;
	ok = fclose(f) == 0 && ok;
	if (!ok || rename(tmp, H.settings_path) < 0) {
		plog(HAL_LOG_INFO, "settings: writing %s failed: %s", H.settings_path,
		     strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	plog(HAL_LOG_INFO, "settings saved to %s", H.settings_path);
	return 0;
}

static void to_bridge(const struct settings *s, struct bridge_settings *b)
{
	const struct settings_target *t = &s->target[0];
	b->uart.baud = t->baud;
	b->uart.data_bits = 8;
	b->uart.parity = RFC2217_PARITY_NONE;
	b->uart.stop = RFC2217_STOPSIZE_1;
	b->line_map = (enum bridge_line_map)t->line_map;
	b->auto_boot = (enum bridge_auto_boot)t->auto_boot;
	b->settle_ms = t->settle_ms;
}

static int read_password(const char *path)
{
	if (path) {
		FILE *f = fopen(path, "r");
		if (!f) {
			plog(HAL_LOG_INFO, "--password-file %s: %s", path, strerror(errno));
			return -1;
		}
		/* like ssh with its keys: warn (not refuse) when others may read the secret */
		struct stat st;
		if (fstat(fileno(f), &st) == 0) {
			if (st.st_mode & 077)
				plog(HAL_LOG_ERROR,
				     "warning: --password-file %s is accessible by group/others "
				     "(mode "
				     "%03o); chmod 600 it",
				     path, (unsigned)(st.st_mode & 0777));
			if (st.st_uid != geteuid())
				plog(HAL_LOG_ERROR,
				     "warning: --password-file %s is owned by uid %lu, not by the "
				     "running user (uid %lu)",
				     path, (unsigned long)st.st_uid, (unsigned long)geteuid());
		}
		char line[256];
		if (!fgets(line, sizeof(line), f))
			line[0] = '\0';
		fclose(f);
		line[strcspn(line, "\r\n")] = '\0';
		size_t l = strlen(line);
		if (l == 0 || l > HTTP_API_PASS_MAX) {
			plog(HAL_LOG_INFO, "--password-file %s: want one line of 1..%d characters",
			     path, HTTP_API_PASS_MAX);
			return -2;
		}
		memcpy(H.pass, line, l + 1);
		if (l < HTTP_POSIX_PASS_MIN)
			plog(HAL_LOG_ERROR,
			     "warning: --password-file %s: the password has only %zu characters; "
			     "use at least %d (e.g. 16 random ones: 'head -c 12 /dev/urandom | "
			     "base64')",
			     path, l, HTTP_POSIX_PASS_MIN);
		return 0;
	}
	static const char abc[] = "23456789abcdefghijkmnpqrstuvwxyz"; /* 32: no bias */
	uint8_t rnd[16];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		plog(HAL_LOG_INFO, "getrandom: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		H.pass[i] = abc[rnd[i] & 31];
	H.pass[sizeof(rnd)] = '\0';
	plog(HAL_LOG_INFO, "web password (user %s, generated, shown once): %s", HTTP_API_USER,
	     H.pass);
	return 0;
}

/* ---- HTTPS and pairing (pair_posix.h) ---- */

/* The unit key and, unless --http-plain, the certificate. Returns 0 or -1 (logged). */
static int https_prepare(const struct http_posix_opts *o)
{
	H.key_path = o->key_path;
	H.plain_explicit = o->http_plain;
	if (!o->key_path && !o->unit_key) {
		if (o->http_plain)
			plog(HAL_LOG_INFO, "--http-plain: plain HTTP (this unit has no key)");
		return 0;
	}
	if (o->unit_key)
		H.psk = *o->unit_key;
	else if (pair_posix_load(o->key_path, &H.psk) < 0)
		return -1;
	H.have_key = 1;
	if (o->http_plain) {
		plog(HAL_LOG_ERROR,
		     "warning: --http-plain: the web password, every API call and the unit key "
		     "(POST /api/pair) cross the network unencrypted");
		return 0;
	}
	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		plog(HAL_LOG_ERROR,
		     "--http: this libmicrohttpd has no TLS support (MHD_FEATURE_TLS): HTTPS is "
		     "not possible; install a libmicrohttpd built with GnuTLS, or give "
		     "--http-plain to serve plain HTTP (unencrypted)");
		return -1;
	}
	char cn[SELF_CERT_CN_MAX + 1] = "espstm-bridge";
	if (o->cert_name)
		snprintf(cn, sizeof(cn), "%s", o->cert_name);
	else if (gethostname(cn, sizeof(cn) - 1) < 0 || !cn[0])
		snprintf(cn, sizeof(cn), "espstm-bridge");
	cn[sizeof(cn) - 1] = '\0';
	for (char *c = cn; *c; c++)
		if (strchr(",=+\\\"<>;", *c) || (unsigned char)*c < 0x20 ||
		    (unsigned char)*c > 0x7e)
			*c = '-';
	if (pair_posix_cert(o->key_path, cn, &H.cert) < 0)
		return -1;
	H.tls = 1;
	return 0;
}

const struct tls_psk *http_posix_unit_key(void)
{
	return H.have_key ? &H.psk : NULL;
}

static int api_pair_key(void *ctx, struct api_pair *out)
{
	(void)ctx;
	if (!H.have_key)
		return -ENOENT;
	if (!H.tls && !H.plain_explicit)
		return -EPERM;
	if (!H.tls)
		plog(HAL_LOG_ERROR, "warning: pair: the unit key goes out over plain HTTP "
		                    "(--http-plain)");
	_Static_assert(sizeof(out->identity) >= sizeof(H.psk.identity), "identity size");
	_Static_assert(sizeof(out->key) == sizeof(H.psk.key), "key size");
	memcpy(out->identity, H.psk.identity, sizeof(H.psk.identity));
	memcpy(out->key, H.psk.key, sizeof(out->key));
	snprintf(out->pin, sizeof(out->pin), "%s", H.tls ? H.cert.pin : "");
	out->port = (uint16_t)H.h.rfc2217_port;
	return 0;
}

static int api_pair_rotate(void *ctx)
{
	(void)ctx;
	if (!H.have_key)
		return -ENOENT;
	if (!H.tls && !H.plain_explicit)
		return -EPERM;
	struct tls_psk k;
	if (pair_posix_rotate(H.key_path, &k) < 0)
		return -EIO;
	H.psk = k;
	memset(&k, 0, sizeof(k));
	if (H.h.key_rotated)
		H.h.key_rotated(H.h.app, &H.psk);
	return 0;
}

int http_posix_prepare(const struct http_posix_opts *o, struct bridge_settings *set,
                       const struct hal_ops **hal)
{
	const char *colon = strrchr(o->addr, ':');
	char *end;
	unsigned long port = colon ? strtoul(colon + 1, &end, 10) : 0;
	if (!colon || (size_t)(colon - o->addr) >= sizeof(H.host) || colon[1] == '\0' ||
	    *end != '\0' || port > 65535) {
		plog(HAL_LOG_INFO, "--http: want HOST:PORT, got '%s'", o->addr);
		return -2;
	}
	memcpy(H.host, o->addr, (size_t)(colon - o->addr));
	H.host[colon - o->addr] = '\0';
	H.port = (unsigned)port;
	struct in_addr ia;
	if (inet_pton(AF_INET, H.host, &ia) != 1) {
		plog(HAL_LOG_INFO, "--http: '%s' is not an IPv4 address", H.host);
		return -2;
	}
	int r = read_password(o->password_file);
	if (r < 0)
		return r;
	if (o->settings_file) {
		snprintf(H.settings_path, sizeof(H.settings_path), "%s", o->settings_file);
		H.settings_in_file = 1;
	} else if (o->flash) {
		snprintf(H.settings_path, sizeof(H.settings_path), "%s.settings.json", o->flash);
		H.settings_in_file = 1;
	}
	struct settings_caps caps;
	settings_caps_nominal(&caps, 1);
	struct settings_store st = {.load = st_load, .save = st_save};
	static struct settings_error err;
	r = settings_mgr_init(&H.sm, &caps, &st, &err);
	if (r != 0) {
		/* defaults: the command line's values */
		struct settings_target *t = &H.sm.cur.target[0];
		t->baud = set->uart.baud;
		t->line_map = (uint8_t)set->line_map;
		t->auto_boot = (uint8_t)set->auto_boot;
		t->settle_ms = set->settle_ms;
		for (unsigned i = 0; i < err.count; i++)
			plog(HAL_LOG_INFO, "settings %s: %s: %s (defaults used)", H.settings_path,
			     err.e[i].field, err.e[i].msg);
		if (r < 0 && r != -ENOENT)
			plog(HAL_LOG_INFO, "settings %s: %s (defaults used)", H.settings_path,
			     strerror(-r));
	} else {
		plog(HAL_LOG_INFO, "settings loaded from %s", H.settings_path);
	}
	to_bridge(&H.sm.cur, set);
	if (https_prepare(o) < 0)
		return -1;
	H.stage_max = o->stage_max == HTTP_POSIX_STAGE_NONE ? 0
	              : o->stage_max                        ? o->stage_max
	                                                    : HTTP_POSIX_STAGE_DEFAULT;
	H.inner = *hal;
	H.wrap = **hal;
	H.wrap.uart_config = w_uart_config;
	H.wrap.uart_write = w_uart_write;
	H.wrap.net_send = w_net_send;
	H.wrap.log = w_log;
	*hal = &H.wrap;
	return 0;
}

/* ---- API callbacks ---- */

static void api_status(void *ctx, struct api_status *st)
{
	(void)ctx;
	static const char *const modes[] = {"idle", "pending", "telnet", "raw"};
	st->version = BRIDGE_SIGNATURE;
	st->uptime_s = (uint32_t)((uv_hrtime() - H.t0) / 1000000000u);
	st->target_count = 1;
	struct api_target_status *t = &st->t[0];
	t->client_connected = bridge_connected(H.h.br);
	enum bridge_mode m = bridge_mode(H.h.br);
	t->mode = (unsigned)m < 4 ? modes[m] : NULL;
	t->client_addr = NULL;
	if (H.h.client && *H.h.client) {
		struct sockaddr_storage ss;
		int sl = sizeof(ss);
		if (uv_tcp_getpeername(*H.h.client, (struct sockaddr *)&ss, &sl) == 0 &&
		    ss.ss_family == AF_INET) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
			char ip[INET_ADDRSTRLEN];
			inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
			snprintf(H.peer, sizeof(H.peer), "%s:%u", ip, ntohs(sin->sin_port));
			t->client_addr = H.peer;
		}
	}
	t->uart = *bridge_uart(H.h.br);
	bridge_pins(H.h.br, &t->nrst, &t->boot0);
	t->bytes_to_uart = H.to_uart;
	t->bytes_from_uart = H.to_net; /* bytes sent to the client (incl. Telnet escapes) */
	t->errors = H.errors;
}

static void api_apply(void *ctx, const struct settings *s)
{
	(void)ctx;
	to_bridge(s, H.h.set);
	bridge_update_settings(H.h.br, H.h.set);
	plog(HAL_LOG_INFO,
	     "settings applied: user baud %u, line map %s, auto-boot %s, settle %u ms%s",
	     (unsigned)s->target[0].baud, settings_line_map_name(s->target[0].line_map),
	     settings_auto_boot_name(s->target[0].auto_boot), (unsigned)s->target[0].settle_ms,
	     bridge_connected(H.h.br) ? " (framing after the client leaves)" : "");
	H.h.pump(H.h.app);
}

static int api_action(void *ctx, unsigned target, enum api_action a)
{
	(void)ctx;
	(void)target;
	static const enum bridge_action map[] = {BRIDGE_ACT_RESET, BRIDGE_ACT_BOOTLOADER,
	                                         BRIDGE_ACT_RUN};
	int r = bridge_action(H.h.br, map[a]);
	H.h.pump(H.h.app);
	return r;
}

static void api_log(void *ctx, const char *line)
{
	(void)ctx;
	plog(HAL_LOG_INFO, "%s", line);
}

static struct stm32_isp *api_isp(void *ctx, unsigned target)
{
	(void)ctx;
	return target == 0 ? H.h.isp : NULL;
}

static void api_flash_claim(void *ctx, unsigned target, int on)
{
	(void)ctx;
	(void)target;
	if (H.h.flash_claim)
		H.h.flash_claim(H.h.app, on);
}

/* ---- staging store (stage=1, http_api.h "Staged upload"): an unlinked temporary file
 * (O_TMPFILE, else mkstemp + unlink) in $TMPDIR or /tmp, space reserved up front
 * (posix_fallocate), so the image is never held in memory. One at a time. ---- */

static uint32_t api_stage_capacity(void *ctx, unsigned target)
{
	(void)ctx;
	return target == 0 ? H.stage_max : 0;
}

static int api_stage_begin(void *ctx, unsigned target, uint32_t size)
{
	(void)ctx;
	(void)target;
	if (H.stage_fd >= 0)
		return -EBUSY;
	if (size > H.stage_max)
		return -ENOSPC;
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(H.stage_dir, sizeof(H.stage_dir), "%s", dir);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		char path[600];
		snprintf(path, sizeof(path), "%s/espstm-stage-XXXXXX", dir);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0) {
		plog(HAL_LOG_ERROR, "staging: no temporary file in %s: %s", dir, strerror(errno));
		return -EIO;
	}
	int r = size ? posix_fallocate(fd, 0, (off_t)size) : 0;
	if (r != 0 && r != EOPNOTSUPP && r != EINVAL) {
		plog(HAL_LOG_ERROR, "staging: %u bytes in %s: %s", (unsigned)size, dir,
		     strerror(r));
		close(fd);
		return r == ENOSPC ? -ENOSPC : -EIO;
	}
	H.stage_fd = fd;
	return 0;
}

static int api_stage_write(void *ctx, unsigned target, uint32_t off, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)target;
	while (n) {
		ssize_t k = pwrite(H.stage_fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			plog(HAL_LOG_ERROR, "staging: write in %s: %s", H.stage_dir,
			     k < 0 ? strerror(errno) : "no progress");
			return -EIO;
		}
		p += k;
		n -= (size_t)k;
		off += (uint32_t)k;
	}
	return 0;
}

static int api_stage_read(void *ctx, unsigned target, uint32_t off, uint8_t *p, size_t n)
{
	(void)ctx;
	(void)target;
	while (n) {
		ssize_t k = pread(H.stage_fd, p, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			plog(HAL_LOG_ERROR, "staging: read in %s: %s", H.stage_dir,
			     k < 0 ? strerror(errno) : "short file");
			return -EIO;
		}
		p += k;
		n -= (size_t)k;
		off += (uint32_t)k;
	}
	return 0;
}

static void api_stage_end(void *ctx, unsigned target)
{
	(void)ctx;
	(void)target;
	if (H.stage_fd >= 0)
		close(H.stage_fd); /* unlinked: the space is freed */
	H.stage_fd = -1;
}

static unsigned api_clients(void *ctx, struct api_client *c, unsigned max)
{
	(void)ctx;
	return H.h.clients ? H.h.clients(H.h.app, c, max) : 0;
}

static int api_disconnect(void *ctx, unsigned target)
{
	(void)ctx;
	return H.h.disconnect ? H.h.disconnect(H.h.app, target) : 0;
}

static uint32_t api_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
	return (uint32_t)crc32((uLong)crc, p, (uInt)n); /* zlib: ISO-HDLC CRC-32 */
}

/* ---- signed images (locked mode, http_api.h "Signed images"): the verification key of
 * --verify-key and the check of the one staged upload (image_sig.h) ---- */

static struct image_sig_key vkey;
static struct image_sig vsig;

int http_posix_verify_key(const char *path, struct bridge_settings *set)
{
	static char pem[IMAGE_SIG_PEM_MAX + 1];
	FILE *f = fopen(path, "r");
	if (!f) {
		plog(HAL_LOG_INFO, "--verify-key %s: %s", path, strerror(errno));
		return -1;
	}
	size_t n = fread(pem, 1, sizeof(pem), f);
	fclose(f);
	image_sig_key_free(&vkey);
	if (n > IMAGE_SIG_PEM_MAX || image_sig_key_load_public(&vkey, pem, n) < 0) {
		plog(HAL_LOG_INFO,
		     "--verify-key %s: not a PEM ECDSA P-256 public key (openssl ec -in signer.pem "
		     "-pubout -out signer.pub)",
		     path);
		return -1;
	}
	set->locked = 1;
	plog(HAL_LOG_INFO,
	     "locked mode: images must be signed for the key in %s; bootloader entry by "
	     "DTR/RTS, auto-boot, legacy 'u' and POST .../bootloader refused",
	     path);
	return 0;
}

static int api_locked(void *ctx)
{
	(void)ctx;
	return vkey.loaded;
}

static int api_sig_begin(void *ctx, unsigned target, const char *addr_text, const uint8_t *sig,
                         size_t siglen)
{
	(void)ctx;
	(void)target;
	image_sig_cancel(&vsig);
	return image_sig_begin(&vsig, addr_text, sig, siglen);
}

static void api_sig_update(void *ctx, unsigned target, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)target;
	image_sig_update(&vsig, p, n);
}

static int api_sig_check(void *ctx, unsigned target)
{
	(void)ctx;
	(void)target;
	return image_sig_check(&vsig, &vkey);
}

static const struct api_ops ops = {.status = api_status,
                                   .apply = api_apply,
                                   .action = api_action,
                                   .log = api_log,
                                   .isp = api_isp,
                                   .flash_claim = api_flash_claim,
                                   .stage_capacity = api_stage_capacity,
                                   .stage_begin = api_stage_begin,
                                   .stage_write = api_stage_write,
                                   .stage_read = api_stage_read,
                                   .stage_end = api_stage_end,
                                   .crc32 = api_crc32,
                                   .pair_key = api_pair_key,
                                   .pair_rotate = api_pair_rotate,
                                   .clients = api_clients,
                                   .disconnect = api_disconnect,
                                   .locked = api_locked,
                                   .sig_begin = api_sig_begin,
                                   .sig_update = api_sig_update,
                                   .sig_check = api_sig_check};

/* ---- libmicrohttpd ---- */

/* One request. Flash uploads (http_api.h "Flashing") are streamed: the body goes to
 * http_api_flash_body() as the ISP takes it; when it takes nothing the connection is
 * suspended (MHD_suspend_connection: its socket is not read, so TCP pushes back on the
 * client) until http_posix_flash_pump() sees room, and again after the body until the run
 * has ended and the answer is ready. */
struct conn {
	struct MHD_Connection *c;
	int flash; /* 1: POST /api/targets/N/flash */
	unsigned target;
	int body_ended; /* http_api_flash_body_end() called */
	int suspended;
	int answered; /* a response was queued */
	size_t len;
	int too_big;
	char buf[BODY_MAX + 1];
};

static void schedule_mhd(void);

static enum MHD_Result send_response(struct conn *cn, const struct api_response *rs)
{
	struct MHD_Response *r =
	    MHD_create_response_from_buffer(rs->len, (void *)rs->body, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", rs->content_type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Content-Security-Policy",
	                        "default-src 'none'; connect-src 'self'; script-src "
	                        "'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors "
	                        "'none'");
	if (rs->www_authenticate)
		MHD_add_response_header(r, "WWW-Authenticate", HTTP_API_CHALLENGE);
	if (rs->retry_after_s) {
		char ra[16];
		snprintf(ra, sizeof(ra), "%u", (unsigned)rs->retry_after_s);
		MHD_add_response_header(r, "Retry-After", ra);
	}
	enum MHD_Result ret = MHD_queue_response(cn->c, (unsigned)rs->status, r);
	MHD_destroy_response(r);
	cn->answered = 1;
	return ret;
}

static void suspend(struct conn *cn)
{
	if (!cn->suspended) {
		MHD_suspend_connection(cn->c);
		cn->suspended = 1;
	}
}

/* Rebuild the query string from libmicrohttpd's parsed arguments. */
struct qbuf {
	char s[512];
	size_t len;
	int overflow;
};

static enum MHD_Result add_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
	(void)kind;
	struct qbuf *q = cls;
	int n = snprintf(q->s + q->len, sizeof(q->s) - q->len, "%s%s%s%s", q->len ? "&" : "", key,
	                 value ? "=" : "", value ? value : "");
	if (n < 0 || (size_t)n >= sizeof(q->s) - q->len) {
		q->overflow = 1;
		return MHD_NO;
	}
	q->len += (size_t)n;
	return MHD_YES;
}

static void fill_request(struct api_request *rq, struct MHD_Connection *c, const char *url,
                         const char *method)
{
	memset(rq, 0, sizeof(*rq));
	rq->method = method;
	rq->path = url;
	rq->authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	rq->x_request = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Espstm-Request");
	rq->signature = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Espstm-Signature");
	rq->now_ms = (uint32_t)(uv_hrtime() / 1000000u);
	static uint8_t addr[16]; /* the lock-out is per client address */
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	rq->client_addr_len = http_limits_addr(ci ? ci->client_addr : NULL, addr);
	rq->client_addr = addr;
}

/* First call of a flash upload: check and start it, or answer at once. */
static enum MHD_Result flash_first(struct conn *cn, struct MHD_Connection *c, const char *url,
                                   const char *method)
{
	struct api_request rq;
	fill_request(&rq, c, url, method);
	static struct qbuf q;
	memset(&q, 0, sizeof(q));
	MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, &q);
	int64_t cl = -1;
	const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Transfer-Encoding");
	const char *cls = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
	if (cls && !te) {
		char *end;
		errno = 0;
		long long v = strtoll(cls, &end, 10);
		if (errno == 0 && *end == '\0' && v >= 0)
			cl = v;
	}
	struct api_response rs;
	if (q.overflow) {
		static const char e[] = "{\"error\":\"query string too long\"}";
		memset(&rs, 0, sizeof(rs));
		rs.status = 400;
		rs.content_type = "application/json";
		rs.body = e;
		rs.len = sizeof(e) - 1;
		return send_response(cn, &rs);
	}
	if (!http_api_flash_start(&H.api, &rq, q.s, cl, &rs))
		return send_response(cn, &rs); /* the body is not read */
	cn->flash = 1;
	if (cn->target < SETTINGS_MAX_TARGETS)
		H.flash_conn[cn->target] = cn;
	H.h.pump(H.h.app); /* the ISP starts connecting */
	return MHD_YES;
}

/* Later calls of a flash upload: body bytes, then the wait for the result. */
static enum MHD_Result flash_more(struct conn *cn, const char *upload_data,
                                  size_t *upload_data_size)
{
	unsigned t = cn->target;
	if (*upload_data_size) {
		const uint8_t *p = (const uint8_t *)upload_data;
		size_t n = *upload_data_size;
		size_t used = http_api_flash_body(&H.api, t, p, n);
		H.h.pump(H.h.app); /* the ISP sends what it took */
		if (used < n)
			used += http_api_flash_body(&H.api, t, p + used, n - used);
		*upload_data_size = n - used;
		if (used < n)
			suspend(cn); /* resumed by http_posix_flash_pump() */
		return MHD_YES;
	}
	if (!cn->body_ended) {
		cn->body_ended = 1;
		http_api_flash_body_end(&H.api, t);
		H.h.pump(H.h.app);
	}
	struct api_response rs;
	if (http_api_flash_result(&H.api, t, &rs)) {
		if (t < SETTINGS_MAX_TARGETS && H.flash_conn[t] == cn)
			H.flash_conn[t] = NULL;
		return send_response(cn, &rs);
	}
	suspend(cn);
	return MHD_YES;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
	(void)cls;
	(void)version;
	struct conn *cn = *con_cls;
	http_limits_request_seen(c, cn && (cn->flash || cn->answered || !*upload_data_size));
	if (!cn) {
		cn = calloc(1, sizeof(*cn));
		if (!cn)
			return MHD_NO;
		cn->c = c;
		*con_cls = cn;
		if (http_api_flash_route(method, url, &cn->target))
			return flash_first(cn, c, url, method);
		return MHD_YES;
	}
	if (cn->answered) {
		*upload_data_size = 0; /* answered early: the rest of the body is dropped */
		return MHD_YES;
	}
	if (cn->flash)
		return flash_more(cn, upload_data, upload_data_size);
	if (*upload_data_size) {
		size_t n = *upload_data_size;
		if (cn->len + n > BODY_MAX)
			cn->too_big = 1;
		else {
			memcpy(cn->buf + cn->len, upload_data, n);
			cn->len += n;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	cn->buf[cn->len] = '\0';
	struct api_response rs;
	static const char big[] = "{\"error\":\"request body too large\"}";
	if (cn->too_big) {
		memset(&rs, 0, sizeof(rs));
		rs.status = 413;
		rs.content_type = "application/json";
		rs.body = big;
		rs.len = sizeof(big) - 1;
	} else {
		struct api_request rq;
		fill_request(&rq, c, url, method);
		rq.body = cn->buf;
		rq.body_len = cn->len;
		http_api_handle(&H.api, &rq, &rs);
		if (strcmp(method, "DELETE") == 0) {
			/* an abort: rs is in the API's buffer, send it before anything else
			 * calls into the API; then wake the aborted upload (its answer) and the
			 * bridge session (the claim is released) */
			enum MHD_Result ret = send_response(cn, &rs);
			http_posix_flash_pump();
			H.h.pump(H.h.app);
			return ret;
		}
	}
	return send_response(cn, &rs);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	http_limits_request_over(c);
	struct conn *cn = *con_cls;
	if (cn && cn->flash) {
		unsigned t = cn->target;
		if (t < SETTINGS_MAX_TARGETS && H.flash_conn[t] == cn)
			H.flash_conn[t] = NULL;
		if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK || !cn->answered) {
			static const char *const why[] = {
			    "connection closed",          "connection error",
			    "no data for 10 s (timeout)", "server shutting down",
			    "connection error",           "connection closed by the client"};
			http_api_flash_cancel(&H.api, t,
			                      (unsigned)toe < 6 ? why[toe] : "connection closed");
			if (H.h.pump)
				H.h.pump(H.h.app);
		}
	}
	free(cn);
	*con_cls = NULL;
}

static void on_again(uv_timer_t *t)
{
	(void)t;
	if (H.h.pump)
		H.h.pump(H.h.app); /* drives the ISP and calls http_posix_flash_pump() */
}

/* Also: a staged replay that stopped at its bound with more to do (HTTP_API_FLASH_AGAIN, e.g.
 * Intel HEX records without data, which never wait for the ISP) gets main's pump again from
 * a zero timer, at the loop's next turn, not at its next wake-up (up to 1 s later). */
void http_posix_flash_pump(void)
{
	if (!H.started)
		return;
	int again = 0;
	for (unsigned t = 0; t < SETTINGS_MAX_TARGETS; t++) {
		int r = http_api_flash_poll(&H.api, t);
		if (r & HTTP_API_FLASH_AGAIN)
			again = 1;
		struct conn *cn = H.flash_conn[t];
		if (!cn || !cn->suspended)
			continue;
		if (((r & HTTP_API_FLASH_ROOM) && !cn->body_ended) || (r & HTTP_API_FLASH_RESULT)) {
			cn->suspended = 0;
			MHD_resume_connection(cn->c);
			schedule_mhd();
		}
	}
	if (again)
		uv_timer_start(&H.again, on_again, 0, 0);
}

static void run_mhd(void);

static void on_timer(uv_timer_t *t)
{
	(void)t;
	run_mhd();
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	(void)p;
	(void)status;
	(void)events;
	run_mhd();
}

/* Run libmicrohttpd from the loop soon (never from inside one of its callbacks). */
static void schedule_mhd(void)
{
	if (H.started)
		uv_timer_start(&H.timer, on_timer, 0, 0);
}

static void run_mhd(void)
{
	if (!H.d)
		return;
	MHD_run(H.d);
	int again = http_limits_sweep();
	MHD_UNSIGNED_LONG_LONG to = 0;
	uint64_t ms = again ? 0 : 500;
	if (MHD_get_timeout(H.d, &to) == MHD_YES && to < ms)
		ms = to;
	uv_timer_start(&H.timer, on_timer, ms, 0);
}

int http_posix_start(uv_loop_t *loop, const struct http_posix_hooks *h)
{
	H.h = *h;
	H.loop = loop;
	H.t0 = uv_hrtime();
	if (http_api_init(&H.api, &ops, NULL, &H.sm, H.pass) < 0) {
		plog(HAL_LOG_INFO, "http: bad password");
		return -1;
	}
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)H.port);
	inet_pton(AF_INET, H.host, &sa.sin_addr);
	unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
	/* with TLS: the certificate and its key from memory (GnuTLS inside libmicrohttpd);
	 * without: the same options end the list early */
	H.d = MHD_start_daemon(flags | (H.tls ? MHD_USE_TLS : 0), (uint16_t)H.port,
	                       http_limits_accept, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR,
	                       (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
	                       MHD_OPTION_ARRAY, http_limits_options(),
	                       H.tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, H.cert.key_pem,
	                       MHD_OPTION_HTTPS_MEM_CERT, H.cert.cert_pem, MHD_OPTION_END);
	if (!H.d) {
		plog(HAL_LOG_INFO, "http: cannot listen on %s:%u", H.host, H.port);
		return -1;
	}
	const union MHD_DaemonInfo *ep = MHD_get_daemon_info(H.d, MHD_DAEMON_INFO_EPOLL_FD);
	const union MHD_DaemonInfo *bp = MHD_get_daemon_info(H.d, MHD_DAEMON_INFO_BIND_PORT);
	if (!ep) {
		plog(HAL_LOG_INFO, "http: no epoll fd from libmicrohttpd");
		MHD_stop_daemon(H.d);
		H.d = NULL;
		return -1;
	}
	uv_poll_init(loop, &H.poll, ep->epoll_fd);
	uv_poll_start(&H.poll, UV_READABLE, on_poll);
	uv_timer_init(loop, &H.timer);
	uv_timer_init(loop, &H.again);
	H.started = 1;
	if (H.tls)
		plog(HAL_LOG_INFO, "https on %s:%u, certificate %s", H.host,
		     bp ? (unsigned)bp->port : H.port, H.cert.pin);
	else
		plog(HAL_LOG_INFO, "http on %s:%u", H.host, bp ? (unsigned)bp->port : H.port);
	run_mhd();
	return 0;
}

void http_posix_stop(void)
{
	if (!H.started)
		return;
	/* libmicrohttpd wants every suspended connection resumed before it stops */
	for (unsigned t = 0; t < SETTINGS_MAX_TARGETS; t++) {
		struct conn *cn = H.flash_conn[t];
		if (cn && cn->suspended) {
			cn->suspended = 0;
			MHD_resume_connection(cn->c);
		}
	}
	uv_poll_stop(&H.poll);
	uv_timer_stop(&H.timer);
	uv_timer_stop(&H.again);
	uv_close((uv_handle_t *)&H.poll, NULL);
	uv_close((uv_handle_t *)&H.timer, NULL);
	uv_close((uv_handle_t *)&H.again, NULL);
	MHD_stop_daemon(H.d);
	H.d = NULL;
	H.started = 0;
}
