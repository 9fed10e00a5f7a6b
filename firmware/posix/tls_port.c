/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge: the client of the RFC 2217 port and of the legacy raw port (one slot per
 * target), with the unit key and TLS-PSK (tls_port.h says what and why). Data path:
 *   socket -> [TLS: cbuf -> tls_session_feed/read] -> app.rbuf -> bridge_from_net (main.c)
 *   bridge -> hal_net_send -> port_send -> [TLS: tls_session_write/out] -> socket
 * Both ways bounded: the socket is read only while there is room (cbuf, rbuf), the bridge is
 * told how many bytes were taken (the TLS output buffer, NET_INFLIGHT_MAX handed to libuv).
 */
#include "bridge_app.h"
#include "plog.h"
#include "allow_posix.h"
#include "lookalike.h"
#include "pair_posix.h"
#include "tls_session.h"
#include "unit_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

static const char plain_off_line[] =
    "espstm-bridge: plaintext RFC 2217 is off on this unit: pair with 'espstm pair HOST' or "
    "enable plaintext in the settings\r\n";
static const char legacy_off_line[] = "espstm-bridge: the legacy ports are off on this unit: "
                                      "plaintext is off (enable plaintext in the settings)\r\n";

static struct {
	int have_key;
	struct tls_psk psk;
	int plaintext_cli, plaintext_set;
	int idle_cli;
	uint32_t idle_cli_s, idle_set_s;
	char desc[160];
	char path[4096]; /* the key file, "" for a key of this run only */
} K = {.idle_set_s = SETTINGS_IDLE_DEFAULT_S};

/* ---- unit key ---- */

int tls_port_setup(const struct tls_port_opts *o)
{
	K.plaintext_cli = o->plaintext;
	K.idle_cli = o->idle_set;
	K.idle_cli_s = o->idle_s;
	if (o->no_key) {
		K.have_key = 0;
		return 0;
	}
	K.have_key = 1;
	if (o->key_file || o->flash) {
		int n = o->key_file ? snprintf(K.path, sizeof(K.path), "%s", o->key_file)
		                    : snprintf(K.path, sizeof(K.path), "%s.key", o->flash);
		if (n < 0 || n >= (int)sizeof(K.path)) {
			fprintf(stderr, "espstm-bridge: key file path too long\n");
			return 1;
		}
		/* read it, or make it at the first start (0600); a group/other-readable or bad
		 * file is refused (pair_posix.c, the same code as the HTTPS side's) */
		return pair_posix_load(K.path, &K.psk) < 0 ? 1 : 0;
	}
	/* no file to keep it in: a key for this run only (pairing over HTTP hands it out) */
	if (unit_key_generate(&K.psk, pair_posix_entropy, NULL) < 0) {
		fprintf(stderr, "espstm-bridge: cannot make a unit key (no entropy)\n");
		return 1;
	}
	plog(HAL_LOG_INFO, "unit key for this run only (no --flash, no --key-file): identity %s",
	     K.psk.identity);
	return 0;
}

int tls_port_key(struct tls_psk *out)
{
	if (!K.have_key)
		return -ENOENT;
	*out = K.psk;
	return 0;
}

void tls_port_set_key(void *app, const struct tls_psk *k)
{
	struct app *a = app;
	if (!K.have_key)
		return;
	K.psk = *k;
	plog(HAL_LOG_INFO, "unit key replaced: identity %s", K.psk.identity);
	if (a && a->client && a->pc.ts)
		port_drop(a, "unit key replaced");
}

const char *tls_port_key_path(void)
{
	return K.have_key ? K.path : NULL;
}

void tls_port_settings(const struct settings *s)
{
	static int seen;
	int changed = K.plaintext_set != s->plaintext || K.idle_set_s != s->idle_timeout_s;
	K.plaintext_set = s->plaintext;
	K.idle_set_s = s->idle_timeout_s;
	if (seen++ && changed)
		plog(HAL_LOG_INFO, "settings: %s", tls_port_describe());
}

int tls_port_plaintext_ok(void)
{
	return !K.have_key || K.plaintext_cli || K.plaintext_set;
}

static uint32_t idle_s(void)
{
	return K.idle_cli ? K.idle_cli_s : K.idle_set_s;
}

const char *tls_port_describe(void)
{
	char idle[32];
	if (idle_s())
		snprintf(idle, sizeof(idle), "%u s", (unsigned)idle_s());
	else
		snprintf(idle, sizeof(idle), "none");
	if (K.have_key)
		snprintf(K.desc, sizeof(K.desc),
		         "RFC 2217: TLS-PSK (identity %s), plaintext %s%s; "
		         "idle timeout %s",
		         K.psk.identity, tls_port_plaintext_ok() ? "on" : "off",
		         K.plaintext_cli ? " (--plaintext)" : "", idle);
	else
		snprintf(K.desc, sizeof(K.desc),
		         "RFC 2217: plaintext (--no-key: no TLS); "
		         "idle timeout %s",
		         idle);
	return K.desc;
}

/* ---- socket writes ---- */

static void on_client_closed(uv_handle_t *h)
{
	free(h);
}

static void on_write(uv_write_t *req, int status)
{
	struct app *a = req->data;
	(void)status; /* errors show up as a read error / EOF and drop the client */
	a->inflight -= *(size_t *)(req + 1);
	free(req);
	app_pump(a); /* the socket took bytes: the bridge may send more */
}

/* Bytes to the client's socket: written now or copied into a queued write, at most
 * NET_INFLIGHT_MAX queued in all. Returns how many were taken. */
static size_t net_write(struct app *a, const uint8_t *p, size_t n)
{
	if (a->inflight >= NET_INFLIGHT_MAX)
		return 0;
	if (n > NET_INFLIGHT_MAX - a->inflight)
		n = NET_INFLIGHT_MAX - a->inflight;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int r = uv_try_write((uv_stream_t *)a->client, &b, 1);
	size_t done = r > 0 ? (size_t)r : 0;
	if (done < n) {
		size_t rest = n - done;
		uv_write_t *req = malloc(sizeof(*req) + sizeof(size_t) + rest);
		if (!req) {
			n = done;
			goto out;
		}
		*(size_t *)(req + 1) = rest;
		uint8_t *copy = (uint8_t *)(req + 1) + sizeof(size_t);
		memcpy(copy, p + done, rest);
		req->data = a;
		b = uv_buf_init((char *)copy, (unsigned)rest);
		if (uv_write(req, (uv_stream_t *)a->client, &b, 1, on_write) < 0) {
			free(req);
			n = done;
			goto out;
		}
		a->inflight += rest;
	}
out:
	if (n) {
		a->pc.bytes_out += n;
		a->pc.last_ms = app_now_ms();
	}
	return n;
}

/* The TLS session's ciphertext to the socket, as much as it takes. */
static void tls_flush(struct app *a)
{
	const uint8_t *p;
	size_t n;
	while (a->client && a->pc.ts && (n = tls_session_out(a->pc.ts, &p)) > 0) {
		size_t w = net_write(a, p, n);
		tls_session_out_done(a->pc.ts, w);
		if (w < n)
			break;
	}
}

/* ---- the client slot ---- */

static void on_shut(uv_shutdown_t *req, int status)
{
	(void)status;
	uv_close((uv_handle_t *)req->handle, on_client_closed);
	free(req);
}

/* Forget the client: its session ends (bridge_disconnect, only if it had begun: a client
 * refused before never touched the target), its TLS state is wiped. With graceful, what
 * was queued (a refusal line, a TLS alert) is sent before the socket closes. */
static void release(struct app *a, int graceful)
{
	uv_tcp_t *c = a->client;
	struct port_client *pc = &a->pc;
	if (!c)
		return;
	uv_shutdown_t *req = graceful ? malloc(sizeof(*req)) : NULL;
	if (req && uv_shutdown(req, (uv_stream_t *)c, on_shut) == 0) {
		uv_read_stop((uv_stream_t *)c);
	} else {
		free(req);
		uv_close((uv_handle_t *)c, on_client_closed);
	}
	a->client = NULL;
	a->reading = 0;
	a->rlen = 0;
	int had_session = pc->session;
	if (pc->ts) {
		tls_session_free(pc->ts);
		free(pc->ts);
	}
	memset(pc->cbuf, 0, pc->clen);
	memset(pc, 0, sizeof(*pc));
	if (had_session)
		bridge_disconnect(&a->br);
}

void port_drop(struct app *a, const char *why)
{
	if (!a->client)
		return;
	plog(HAL_LOG_INFO, "client %s disconnected (%s)", a->pc.peer, why);
	release(a, 0);
	app_pump(a);
}

/* Send line (NULL: only what TLS queued), close, log "client X: why". */
static void refuse(struct app *a, const char *line, const char *why)
{
	plog(HAL_LOG_INFO, "client %s: %s; closed", a->pc.peer, why);
	if (line)
		net_write(a, (const uint8_t *)line, strlen(line));
	release(a, 1);
	app_pump(a);
}

static void start_session(struct app *a)
{
	a->pc.session = 1;
	bridge_connect(&a->br);
}

static int wants_input(const struct app *a)
{
	const struct port_client *pc = &a->pc;
	if (pc->ts)
		return pc->clen < sizeof(pc->cbuf);
	if (pc->detect || pc->gate)
		return a->rlen < sizeof(a->rbuf);
	return a->rlen == 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct app *a = h->data;
	(void)hint;
	if (a->pc.ts)
		*buf = uv_buf_init((char *)a->pc.cbuf + a->pc.clen,
		                   (unsigned)(sizeof(a->pc.cbuf) - a->pc.clen));
	else
		*buf =
		    uv_buf_init((char *)a->rbuf + a->rlen, (unsigned)(sizeof(a->rbuf) - a->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

void port_resume(struct app *a)
{
	if (a->client && !a->reading && wants_input(a)) {
		if (uv_read_start((uv_stream_t *)a->client, on_alloc, on_read) == 0)
			a->reading = 1;
	}
}

static void stop_reading(struct app *a)
{
	if (a->client && a->reading) {
		uv_read_stop((uv_stream_t *)a->client);
		a->reading = 0;
	}
}

/* TLS: ciphertext into the session, plaintext out into rbuf (while there is room), the
 * session's output to the socket; opens the bridge session once the handshake is done.
 * Returns 0, or -1 if the client was dropped. */
static int tls_pump(struct app *a)
{
	struct port_client *pc = &a->pc;
	int err = 0;
	for (int guard = 0; guard < 64 && !err; guard++) {
		size_t k = pc->clen ? tls_session_feed(pc->ts, pc->cbuf, pc->clen) : 0;
		memmove(pc->cbuf, pc->cbuf + k, pc->clen - k);
		pc->clen -= k;
		int r = 0;
		if (a->rlen < sizeof(a->rbuf))
			r = tls_session_read(pc->ts, a->rbuf + a->rlen, sizeof(a->rbuf) - a->rlen);
		if (r < 0)
			err = r;
		else
			a->rlen += (size_t)r;
		if (k == 0 && r <= 0)
			break;
	}
	if (!err && !pc->session && tls_session_state(pc->ts) == TLS_OPEN) {
		pc->detect = 0;
		plog(HAL_LOG_INFO, "client %s: TLS session open (identity %s)", pc->peer,
		     K.psk.identity);
		start_session(a);
	}
	tls_flush(a);
	if (!err && tls_session_state(pc->ts) != TLS_FAILED &&
	    tls_session_state(pc->ts) != TLS_CLOSED)
		return 0;
	if (!err)
		err = tls_session_errno(pc->ts);
	char why[160];
	if (!pc->session)
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		         err == -EACCES ? "wrong key or unknown identity"
		                        : tls_session_error(pc->ts));
	else
		snprintf(why, sizeof(why), "TLS: %s", tls_session_error(pc->ts));
	if (!pc->session || err != -ECONNRESET)
		refuse(a, NULL, why); /* the alert goes out first */
	else
		port_drop(a, why);
	return -1;
}

/* The first bytes of a connection (pc->detect: TLS or plaintext; pc->gate: HTTP?). Returns
 * 0, or -1 if the client was refused. */
static int first_bytes(struct app *a)
{
	struct port_client *pc = &a->pc;
	if (pc->detect && a->rlen) {
		pc->detect = 0;
		if (a->rbuf[0] == 0x16 && K.have_key) {
			/* a TLS handshake record (RFC 5246 section 6.2.1, content type 22) */
			pc->ts = malloc(sizeof(*pc->ts));
			if (!pc->ts || tls_session_init(pc->ts, TLS_SERVER, &K.psk,
			                                pair_posix_entropy, NULL) < 0) {
				if (pc->ts) {
					tls_session_free(pc->ts);
					free(pc->ts);
					pc->ts = NULL;
				}
				refuse(a, NULL, "TLS session setup failed");
				return -1;
			}
			memcpy(pc->cbuf, a->rbuf, a->rlen);
			pc->clen = a->rlen;
			a->rlen = 0;
			return tls_pump(a);
		}
		if (!tls_port_plaintext_ok()) {
			refuse(a, plain_off_line, "plaintext client refused (plaintext is off)");
			return -1;
		}
		pc->gate = 1;
	}
	if (pc->gate && a->rlen) {
		int h = http_lookalike(a->rbuf, a->rlen);
		if (h < 0)
			return 0; /* wait for more (at most HTTP_LOOKALIKE_MAX bytes) */
		if (h == 1) {
			refuse(a, http_lookalike_answer, "HTTP request on a serial port refused");
			return -1;
		}
		pc->gate = 0;
		if (!pc->session)
			start_session(a);
	}
	return 0;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct app *a = st->data;
	struct port_client *pc = &a->pc;
	(void)buf;
	if (nread < 0) {
		port_drop(a, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
		return;
	}
	if (nread == 0)
		return;
	pc->bytes_in += (uint64_t)nread;
	pc->last_ms = app_now_ms();
	if (pc->ts) {
		pc->clen += (size_t)nread;
		if (tls_pump(a) < 0)
			return;
	} else {
		if (a->rlen == 0)
			pc->gate_ms = pc->last_ms; /* the first held byte (pc->gate) */
		a->rlen += (size_t)nread;
		if (first_bytes(a) < 0)
			return;
	}
	if (pc->session && !pc->gate && a->rlen) {
		size_t k = bridge_from_net(&a->br, a->rbuf, a->rlen);
		memmove(a->rbuf, a->rbuf + k, a->rlen - k);
		a->rlen -= k;
	}
	if (!wants_input(a))
		stop_reading(a); /* backpressure: the UART side is full */
	app_pump(a);
}

int port_poll(struct app *a)
{
	struct port_client *pc = &a->pc;
	if (!a->client)
		return 0;
	if (pc->ts && tls_pump(a) < 0)
		return 0;
	uint64_t now = app_now_ms();
	if ((pc->detect || pc->ts) && !pc->session && now - pc->since_ms >= PORT_FIRST_MS) {
		refuse(a, NULL,
		       pc->ts ? "no TLS handshake within 10 s" : "no first byte within 10 s");
		return 0;
	}
	if (pc->gate && a->rlen && now - pc->gate_ms >= PORT_GATE_HOLD_MS) {
		/* no browser pauses in its request line: a person typing (held bytes go on) */
		pc->gate = 0;
		if (!pc->session)
			start_session(a);
	}
	uint32_t idle = idle_s();
	if (pc->session && idle && now - pc->last_ms >= (uint64_t)idle * 1000u) {
		char why[64];
		snprintf(why, sizeof(why), "idle for %u s: no byte either way", (unsigned)idle);
		port_drop(a, why);
		return 0;
	}
	port_resume(a);
	return pc->session && !pc->gate;
}

size_t port_send(struct app *a, const uint8_t *p, size_t n)
{
	struct port_client *pc = &a->pc;
	if (!a->client || !pc->session)
		return n; /* nobody to send to (as a serial line without a listener) */
	if (!pc->ts)
		return net_write(a, p, n);
	tls_flush(a);
	int w = tls_session_write(pc->ts, p, n);
	if (w < 0)
		return n; /* the session failed: port_poll drops the client */
	tls_flush(a);
	return (size_t)w;
}

static void peer_name(uv_tcp_t *c, char *out, size_t cap)
{
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	snprintf(out, cap, "?");
	if (uv_tcp_getpeername(c, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
		char ip[INET_ADDRSTRLEN] = "?";
		uv_ip4_name(in, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
	}
}

static void on_busy_written(uv_write_t *req, int status)
{
	(void)status;
	uv_close((uv_handle_t *)req->handle, on_client_closed);
	free(req);
}

/* Write a line to a client that does not get the slot, then close it. */
static void turn_away(uv_tcp_t *c, const char *msg)
{
	size_t n = strlen(msg);
	uv_write_t *req = malloc(sizeof(*req) + n);
	if (!req) {
		uv_close((uv_handle_t *)c, on_client_closed);
		return;
	}
	memcpy(req + 1, msg, n);
	uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
	if (uv_write(req, (uv_stream_t *)c, &b, 1, on_busy_written) < 0) {
		free(req);
		uv_close((uv_handle_t *)c, on_client_closed);
	}
}

void port_on_connection(uv_stream_t *server, int status)
{
	struct app *a = server->data;
	int rfc = server == (uv_stream_t *)&a->server;
	if (status < 0) {
		plog(HAL_LOG_ERROR, "accept: %s", uv_strerror(status));
		return;
	}
	uv_tcp_t *c = malloc(sizeof(*c));
	if (!c)
		return;
	uv_tcp_init(a->loop, c);
	c->data = a;
	if (uv_accept(server, (uv_stream_t *)c) < 0) {
		uv_close((uv_handle_t *)c, on_client_closed);
		return;
	}
	if (!allow_posix_admit(c, rfc ? "RFC 2217" : "legacy raw"))
		return; /* refused: line written, closed */
	char peer[48];
	peer_name(c, peer, sizeof(peer));
	if (!rfc && !tls_port_plaintext_ok()) {
		plog(HAL_LOG_INFO, "client %s: legacy raw port refused (plaintext is off)", peer);
		turn_away(c, legacy_off_line);
		return;
	}
	if (a->client) {
		static char msg[160];
		snprintf(msg, sizeof(msg),
		         "espstm-bridge: busy: another client is connected to %s; closing\r\n",
		         a->target);
		plog(HAL_LOG_INFO, "client %s: refused (target busy)", peer);
		turn_away(c, msg);
		return;
	}
	uv_tcp_nodelay(c, 1);
	uv_tcp_keepalive(c, 1, PORT_KEEPALIVE_S);
	a->client = c;
	a->rlen = 0;
	struct port_client *pc = &a->pc;
	memset(pc, 0, sizeof(*pc));
	pc->kind = rfc ? PORT_RFC2217 : PORT_RAW;
	snprintf(pc->peer, sizeof(pc->peer), "%s", peer);
	pc->since_ms = pc->last_ms = app_now_ms();
	plog(HAL_LOG_INFO, "client %s connected%s", peer, rfc ? "" : " (legacy raw port)");
	if (rfc && K.have_key) {
		pc->detect = 1; /* TLS or plaintext: the first byte says */
	} else {
		/* plaintext only: the session starts now (output flows to a client that only
		 * listens); its bytes wait for the HTTP check */
		pc->gate = 1;
		start_session(a);
	}
	port_resume(a);
	app_pump(a);
}

unsigned port_clients(void *app, struct api_client *c, unsigned max)
{
	struct app *a = app;
	if (!a->client || max == 0)
		return 0;
	uint64_t now = app_now_ms();
	memset(c, 0, sizeof(*c));
	c->target = 0;
	snprintf(c->peer, sizeof(c->peer), "%s", a->pc.peer);
	c->tls = a->pc.ts != NULL;
	c->since_s = (uint32_t)((now - a->pc.since_ms) / 1000u);
	c->idle_s = (uint32_t)((now - a->pc.last_ms) / 1000u);
	c->bytes_in = a->pc.bytes_in;
	c->bytes_out = a->pc.bytes_out;
	return 1;
}

int port_disconnect(void *app, unsigned target)
{
	struct app *a = app;
	if (target != 0 || !a->client)
		return 0;
	port_drop(a, "dropped over HTTP (take-over)");
	return 1;
}

void port_shutdown(struct app *a)
{
	if (!a->client)
		return;
	uv_close((uv_handle_t *)a->client, on_client_closed);
	a->client = NULL;
	if (a->pc.ts) {
		tls_session_free(a->pc.ts);
		free(a->pc.ts);
		a->pc.ts = NULL;
	}
}
