/* SPDX-License-Identifier: MIT */
/*
 * link_tls: TLS 1.2 with a pre-shared key (RFC 4279; RFC 5246) between a link's socket and
 * its RFC 2217 protocol, for a device configured with a unit key (link.h key_path). The
 * session is the sans-I/O tls_session of firmware/crypto (client role); this file moves
 * bytes: ciphertext read from the socket is fed to it and the plaintext goes to the usual
 * input path (link_input); the TX queue's segments are gathered into one plaintext buffer,
 * encrypted with one tls_session_write per flush and the ciphertext written with the
 * link's one uv_write, so a segment still counts as written when the write of its
 * ciphertext completed (tcdrain, on_drained, on_writable keep their meaning).
 *
 * Bounds: one connection holds at most one socket read of ciphertext (RAW_READ) not yet
 * fed, one read buffer of plaintext, TLS_PT_MAX bytes of plaintext staged and
 * TLS_WBUF_MAX of ciphertext in flight, plus what the session itself buffers. Reading
 * stops while the last read's ciphertext is not all fed (it lives in l->raw) or the tty
 * is full (link_may_read); the session keeps what it has decrypted until then.
 * Entropy for the session comes from getrandom(2).
 *
 * Input purges without COM-PORT-OPTION (link_rfc2217.c rc_purge) count what the socket
 * holds readable in ciphertext bytes: with TLS that discards up to a record's overhead
 * more plaintext than was readable, and not what the session had already decrypted.
 */
#include "keyfile.h"
#include "link_impl.h"
#include "log.h"
#include "tls_session.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Plaintext bytes per flush: one tls_session_write (one record) up to TLS_SESSION_RECORD
 * bytes, more records for a larger backlog; ciphertext per write with their overhead
 * (header, nonce and tag: under 64 bytes a record). */
#define TLS_PT_MAX   16384
#define TLS_WBUF_MAX (TLS_PT_MAX + (TLS_PT_MAX / TLS_SESSION_RECORD + 1) * 64)
#define TLS_WHY_MAX  160

struct link_tls {
	char *path;
	struct tls_psk psk;
	int logged; /* error logged at warning level in this outage (dedup), 0 none */
};

struct conn_tls {
	struct tls_session s;
	bool open;             /* handshake done, the protocol was started */
	bool more;             /* decrypted plaintext may still wait in the session */
	size_t in_off, in_len; /* ciphertext in l->raw not fed yet */
	uint8_t rx[RAW_READ];  /* plaintext out of the session */
	uint8_t pt[TLS_PT_MAX];
	uint8_t wbuf[TLS_WBUF_MAX];
};

/* tls_entropy_fn: the kernel's random bytes (getrandom(2), blocking only before the pool
 * is initialised at boot). Returns 0 or a negative errno. */
static int entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	while (n > 0) {
		ssize_t k = getrandom(buf, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : -EIO;
		buf += k;
		n -= (size_t)k;
	}
	return 0;
}

int link_tls_new(struct link *l, const char *path)
{
	l->tls = calloc(1, sizeof *l->tls);
	if (!l->tls)
		return -ENOMEM;
	l->tls->path = strdup(path);
	if (!l->tls->path) {
		free(l->tls);
		l->tls = NULL;
		return -ENOMEM;
	}
	return 0;
}

void link_tls_destroy(struct link *l)
{
	if (!l->tls)
		return;
	explicit_bzero(&l->tls->psk, sizeof l->tls->psk);
	free(l->tls->path);
	free(l->tls);
	l->tls = NULL;
}

void link_tls_conn_free(struct conn *c)
{
	if (!c || !c->tls)
		return;
	tls_session_free(&c->tls->s);
	explicit_bzero(c->tls, sizeof *c->tls);
	free(c->tls);
	c->tls = NULL;
}

/* Log "DEV: text" for a failure: at warning level the first time in an outage (or when
 * the error changes), at debug level after that. */
static void log_failure(struct link *l, int err, const char *text)
{
	if (l->attempts == 0 || l->tls->logged != err)
		log_warn("%s: %s", l->name, text);
	else
		log_debug("%s: %s", l->name, text);
	l->tls->logged = err;
}

/* Read the key file before an attempt (keyfile_load: mode, owner, unit_key_parse). A
 * failure is logged as "DEV: key file PATH: why", is the link's last_error and fails the
 * round (the usual backoff, then the file is read again). */
int link_tls_load_key(struct link *l)
{
	struct link_tls *t = l->tls;
	char why[224], msg[TLS_WHY_MAX + 96];
	int r = keyfile_load(t->path, &t->psk, why, sizeof why);

	if (r == 0)
		return 0;
	snprintf(msg, sizeof msg, "key file %s: %s", t->path, why);
	log_failure(l, r, msg);
	link_note_error(l, "%.95s", msg);
	link_round_failed_why(l, r, msg, true);
	return r;
}

void link_tls_start(struct link *l, struct conn *c)
{
	struct conn_tls *ct = calloc(1, sizeof *ct);
	int r;

	if (!ct) {
		link_lost(l, UV_ENOMEM);
		return;
	}
	r = tls_session_init(&ct->s, TLS_CLIENT, &l->tls->psk, entropy, NULL);
	if (r < 0) {
		char why[TLS_WHY_MAX];
		free(ct);
		snprintf(why, sizeof why, "TLS: cannot start a session: %s", strerror(-r));
		link_lost_why(l, r, why, false);
		return;
	}
	c->tls = ct;
	log_debug("%s: TCP connected to %s, TLS handshake", l->name, l->addr);
	/* the handshake gets its own connect_timeout_ms (PH_CONNECT: link_tls_fail); it
	 * reads even while the tty holds data from the previous connection (no plaintext
	 * comes out of it: the bound applies in link_tls_pump) */
	link_timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
	link_read_start(l);
	link_kick(l); /* the ClientHello */
}

bool link_tls_handshaking(const struct link *l)
{
	return l->conn && l->conn->tls && !l->conn->tls->open;
}

bool link_tls_held(const struct link *l)
{
	const struct conn_tls *ct = l->conn ? l->conn->tls : NULL;

	return ct && (ct->in_len > 0 || ct->more);
}

/* The reason text of a failure with err (negative errno) for logs and last_error. */
static void fail_text(const struct conn_tls *ct, int err, char *why, size_t cap)
{
	const char *detail = ct ? tls_session_error(&ct->s) : NULL;
	bool hs = ct && !ct->open;

	if (!detail || !*detail)
		detail = strerror(-err);
	/* the session's own texts may carry the prefix this adds */
	if (strncmp(detail, "TLS handshake failed: ", 22) == 0)
		detail += 22;
	else if (strncmp(detail, "TLS: ", 5) == 0)
		detail += 5;
	if (err == -ETIMEDOUT)
		snprintf(why, cap, "TLS handshake timed out");
	else if (hs && err == -EACCES)
		snprintf(why, cap, "TLS handshake failed: wrong key or unknown identity");
	else if (hs && err == -ECONNRESET)
		snprintf(why, cap,
		         "TLS handshake failed: the bridge closed the connection (no TLS there?)");
	else if (hs)
		snprintf(why, cap, "TLS handshake failed: %s", detail);
	else if (err == -ECONNRESET)
		snprintf(why, cap, "closed by the bridge (TLS close)");
	else
		snprintf(why, cap, "TLS: %s", detail);
}

/* Best effort before dropping the connection: hand the session's last records (the alert
 * telling the bridge why, RFC 5246 section 7.2) to the kernel without waiting
 * (uv_try_write; nothing when a write is in flight). */
static void send_alert(struct conn *c)
{
	const uint8_t *p;
	size_t n;

	if (!c || !c->tls || !c->connected || c->writing)
		return;
	n = tls_session_out(&c->tls->s, &p);
	if (n > 0) {
		uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
		(void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	}
}

void link_tls_goodbye(struct link *l)
{
	struct conn *c = l->conn;

	if (!c || !c->tls || !c->tls->open)
		return;
	tls_session_close(&c->tls->s);
	send_alert(c);
}

void link_tls_fail(struct link *l, int err)
{
	struct conn_tls *ct = l->conn ? l->conn->tls : NULL;
	char why[TLS_WHY_MAX], text[TLS_WHY_MAX + 320];

	if (l->closing)
		return;
	fail_text(ct, err, why, sizeof why);
	if (ct && tls_session_error(&ct->s) && *tls_session_error(&ct->s))
		log_debug("%s: TLS session: %s", l->name, tls_session_error(&ct->s));
	if (err != -ETIMEDOUT && err != -ECONNRESET)
		send_alert(l->conn);
	if (l->state == LINK_UP) {
		link_lost_why(l, err, why, false); /* "connection to ADDR lost (why)" */
		return;
	}
	snprintf(text, sizeof text, "%s: %s", l->addr, why);
	log_failure(l, err, text);
	link_note_error(l, "%.40s: %s", l->addr, why);
	link_lost_why(l, err, why, true);
}

bool link_tls_eof(struct link *l, struct conn *c, int status)
{
	(void)status;
	if (!c->tls || c->tls->open)
		return false;
	link_tls_fail(l, -ECONNRESET);
	return true;
}

/* The session's state after input: open (start the protocol once), or failed/closed. */
static int check_state(struct link *l, struct conn *c)
{
	struct conn_tls *ct = c->tls;
	int st = tls_session_state(&ct->s);

	if (st == TLS_FAILED || st == TLS_CLOSED) {
		int e = tls_session_errno(&ct->s);
		return e < 0 ? e : st == TLS_CLOSED ? -ECONNRESET : -EPROTO;
	}
	if (st == TLS_OPEN && !ct->open) {
		ct->open = true;
		log_debug("%s: TLS handshake done with %s", l->name, l->addr);
		l->proto->connected(l); /* RFC 2217 negotiation (re-arms the timer) */
	}
	return 0;
}

void link_tls_pump(struct link *l)
{
	struct conn *c = l->conn;

	while (!l->closing && l->conn == c && c && c->tls) {
		struct conn_tls *ct = c->tls;
		int r = check_state(l, c);

		if (r == 0 && (l->closing || l->conn != c))
			return;
		if (r < 0) {
			link_tls_fail(l, r);
			return;
		}
		if (ct->open) {
			if (!link_may_read(l)) {
				ct->more = true; /* rx_flow pauses; link_rx_resume comes back */
				return;
			}
			r = tls_session_read(&ct->s, ct->rx, sizeof ct->rx);
			if (r < 0) {
				link_tls_fail(l, r);
				return;
			}
			if (r > 0) {
				link_input(l, ct->rx, (size_t)r);
				continue;
			}
		}
		ct->more = false;
		if (ct->in_len == 0)
			break;
		size_t k = tls_session_feed(&ct->s, l->raw + ct->in_off, ct->in_len);
		ct->in_off += k;
		ct->in_len -= k;
		if (k == 0) {
			/* the session takes nothing and has nothing for us: it waits for its
			 * output to leave (the write in flight; rx_flow keeps reads paused
			 * meanwhile and link_write_cb comes back), else it cannot go on */
			if (c->writing)
				return;
			link_tls_fail(l, -EPROTO);
			return;
		}
	}
	if (!l->closing && l->conn == c && c)
		link_kick(l); /* handshake records, alerts */
}

void link_tls_input(struct link *l, size_t n)
{
	struct conn_tls *ct = l->conn->tls;

	ct->in_off = 0;
	ct->in_len = n;
	link_tls_pump(l);
}

/* Write the first n bytes of c's wbuf (c->inflight already set). */
static void write_wbuf(struct link *l, struct conn *c, size_t n)
{
	uv_buf_t b = uv_buf_init((char *)c->tls->wbuf, (unsigned)n);
	int r;

	c->writing = true;
	r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, link_write_cb);
	if (r < 0)
		link_write_failed(l, c, r);
}

/* Move the session's pending ciphertext to wbuf at *w. Returns bytes moved, or -ENOBUFS
 * when it does not fit (more overhead than TLS_WBUF_MAX - TLS_PT_MAX allows). */
static long drain_out(struct conn_tls *ct, size_t *w)
{
	long moved = 0;
	const uint8_t *p;
	size_t n;

	while ((n = tls_session_out(&ct->s, &p)) > 0) {
		if (n > sizeof ct->wbuf - *w)
			return -ENOBUFS;
		memcpy(ct->wbuf + *w, p, n);
		tls_session_out_done(&ct->s, n);
		*w += n;
		moved += (long)n;
	}
	return moved;
}

bool link_tls_flush(struct link *l, struct conn *c)
{
	size_t w = 0;
	long r = drain_out(c->tls, &w);

	if (r == -ENOBUFS && w == 0) {
		/* one chunk larger than wbuf: take what fits */
		const uint8_t *p;
		size_t n = tls_session_out(&c->tls->s, &p);
		w = n < sizeof c->tls->wbuf ? n : sizeof c->tls->wbuf;
		memcpy(c->tls->wbuf, p, w);
		tls_session_out_done(&c->tls->s, w);
	}
	if (w == 0)
		return false;
	c->inflight = NULL;
	c->inflight_data = 0;
	c->inflight_ctl = 0;
	write_wbuf(l, c, w);
	return true;
}

void link_tls_send(struct link *l, struct conn *c)
{
	struct conn_tls *ct = c->tls;
	struct seg *s, *last = NULL;
	size_t len = 0, off = 0, w = 0;

	if (!ct->open)
		return; /* the queue waits for the handshake */
	c->inflight_data = 0;
	c->inflight_ctl = 0;
	for (s = l->q_head;
	     s && (s->kind == SEG_DATA || s->kind == SEG_CMD) && s->len <= sizeof ct->pt - len;
	     s = s->next) {
		memcpy(ct->pt + len, s->buf, s->len);
		len += s->len;
		link_seg_taken(l, c, s);
		last = s;
	}
	assert(last); /* segments are at most SEG_DATA_CAP / CTL_MAX bytes: one always fits */
	link_q_take(l, c, last);
	/* one tls_session_write normally takes it all (one record); a bridge with a smaller
	 * record size (max_fragment_length) makes it take less: go on until all is in */
	while (off < len) {
		int k = tls_session_write(&ct->s, ct->pt + off, len - off);
		long moved;
		if (k < 0) {
			link_inflight_drop(l, c);
			link_tls_fail(l, k);
			return;
		}
		off += (size_t)k;
		moved = drain_out(ct, &w);
		if (moved < 0 || (k == 0 && moved == 0)) {
			link_inflight_drop(l, c);
			link_tls_fail(l, moved < 0 ? (int)moved : -EPROTO);
			return;
		}
	}
	write_wbuf(l, c, w);
}
