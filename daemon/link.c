/* SPDX-License-Identifier: MIT */
/*
 * link: espstmd's connection to one bridge, the transport (see link.h for the contract and
 * link_impl.h for how the files divide it). The wire protocol (RFC 2217, or the legacy
 * two-port one) sits behind l->proto.
 *
 * Structure:
 *  - One uv_timer_t per link serves three phases: connect timeout (resolve + TCP connect),
 *    negotiation timeout (waiting for DO COM-PORT-OPTION), reconnect backoff (link_net.c).
 *  - Each TCP attempt gets its own heap "conn" (uv_tcp_t + the one uv_write_t in flight);
 *    a conn is detached from the link (conn->l = NULL) when dropped, so libuv callbacks
 *    that arrive late (UV_ECANCELED) only free memory.
 *  - TX: an ordered queue of segments: escaped data, one RFC 2217 command, or a marker
 *    (a delay or the end of a link_action() sequence; for LINK_PROTO_LEGACY a command
 *    byte for the control connection). One uv_write() in flight gathers up to TX_GATHER
 *    data/command segments; a marker is only taken once nothing is in flight, and holds
 *    everything behind it until it is done. Data, settings and action steps therefore
 *    leave in the order they were requested (link.h "one ordered stream").
 *  - RX: every received byte is decoded at once (so negotiation and answers are handled
 *    even while the tty is full); decoded data the tty has no room for is kept in rxq.
 *    Then (rx_flow/link_may_read): up with COM-PORT-OPTION agreed, FLOWCONTROL-SUSPEND is
 *    sent and reads go on (the bridge stops its UART data, answers still come; RESUME once
 *    rxq is empty); negotiating, reads go on (held data from a previous connection must
 *    not stall the new one, and the negotiation timer does not run out while paused); else
 *    reads stop until link_rx_resume(). rxq is bounded: reads go on only while it holds at
 *    most RXQ_READ_MAX, and one read is at most RAW_READ bytes, which decode to at most as
 *    many data bytes (tn_decode guarantees it). Delivery keeps asking rx_space() until it
 *    answers 0 or nothing is left, so room the tty frees from inside on_data is used.
 *  - Input purge (link_purge 1/3): rxq is dropped, and so is data already on its way: with
 *    RFC 2217 until the bridge's PURGE-DATA answer (the bridge queues it behind the data it
 *    had sent), at most RFC2217_CLIENT_PURGE_WAIT_MS; otherwise what the socket held
 *    readable then.
 *  - Non-data bytes (negotiation answers, RFC 2217 commands) are bounded too (CTL_MAX,
 *    queued + in flight): a peer that makes us answer without reading what we send (e.g.
 *    WILL/WONT BINARY alternating) gets its connection dropped, then the link reconnects.
 */
#include "link_impl.h"
#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- helpers */

static const char *state_name(enum link_state st)
{
	switch (st) {
	case LINK_DOWN:
		return "down";
	case LINK_CONNECTING:
		return "connecting";
	case LINK_UP:
		return "up";
	}
	return "?";
}

void link_set_state(struct link *l, enum link_state st)
{
	if (l->state == st)
		return;
	log_debug("%s: link %s -> %s", l->name, state_name(l->state), state_name(st));
	l->state = st;
	if (l->cb.on_state && !l->closing)
		l->cb.on_state(l->ctx, st);
}

void link_timer_arm(struct link *l, enum phase ph, uint64_t ms)
{
	l->phase = ph;
	uv_timer_start(&l->timer, link_timer_cb, ms, 0);
}

static void timer_stop(struct link *l)
{
	l->phase = PH_NONE;
	uv_timer_stop(&l->timer);
}

/* Count an error for link_get_stats and remember its text. */
void link_note_error(struct link *l, const char *fmt, ...)
{
	va_list ap;

	l->errors++;
	va_start(ap, fmt);
	vsnprintf(l->last_error, sizeof l->last_error, fmt, ap);
	va_end(ap);
}

static void free_segs(struct seg *s)
{
	while (s) {
		struct seg *n = s->next;
		free(s);
		s = n;
	}
}

static void rx_flow(struct link *l);

/* ------------------------------------------------------------------- tx path */

static struct seg *seg_new(size_t cap, enum seg_kind kind)
{
	struct seg *s = malloc(sizeof *s + cap);

	if (!s)
		return NULL;
	memset(s, 0, sizeof *s);
	s->cap = cap;
	s->kind = kind;
	return s;
}

void link_q_append(struct link *l, struct seg *s)
{
	if (l->q_tail)
		l->q_tail->next = s;
	else
		l->q_head = s;
	l->q_tail = s;
}

void link_q_push_front(struct link *l, struct seg *s)
{
	s->next = l->q_head;
	l->q_head = s;
	if (!l->q_tail)
		l->q_tail = s;
}

static struct seg *q_pop(struct link *l)
{
	struct seg *s = l->q_head;

	l->q_head = s->next;
	if (!l->q_head)
		l->q_tail = NULL;
	s->next = NULL;
	return s;
}

/* Account the queued segment s as part of the write in flight on c: its data bytes, its
 * control bytes and, for an RFC 2217 command whose answer is expected, the client
 * session's record of it (rfc2217_client_sent). */
void link_seg_taken(struct link *l, struct conn *c, const struct seg *s)
{
	c->inflight_data += s->data;
	if (s->kind == SEG_CMD) {
		c->inflight_ctl += s->len;
		if (s->ans)
			rfc2217_client_sent(&l->rc, s->cmd, s->val);
	}
}

/* Move the queue's head up to and including last (a segment of it) into c->inflight, the
 * segments the write in flight owns. */
void link_q_take(struct link *l, struct conn *c, struct seg *last)
{
	c->inflight = l->q_head;
	l->q_head = last->next;
	if (!l->q_head)
		l->q_tail = NULL;
	last->next = NULL;
}

/* Start a uv_write with the head of the queue if none is in flight; take markers at the
 * head when nothing is in flight (a delay starts the action timer, the end of an action
 * re-queues the desired DTR/RTS at the head, a legacy control byte goes to cconn). */
void link_kick(struct link *l)
{
	for (;;) {
		struct conn *c = l->conn;
		uv_buf_t bufs[TX_GATHER];
		unsigned n = 0;
		struct seg *s, *last = NULL;
		int r;

		if (!c || !c->connected || c->writing || l->closing)
			return;
		/* TLS: the session's own records (handshake, alerts) go first, then data */
		if (c->tls && link_tls_flush(l, c))
			return;
		if (l->tx_suspended || l->act_wait || !l->q_head)
			return;
		switch (l->q_head->kind) {
		case SEG_DELAY:
			s = q_pop(l);
			l->act_wait = true;
			l->lg.ctrl_waiting = false;
			uv_timer_start(&l->act_timer, link_act_timer_cb, s->val, 0);
			free(s);
			return;
		case SEG_ACT_END:
			free(q_pop(l));
			l->proto->action_done(l);
			continue;
		case SEG_CTRL:
			link_legacy_kick_ctrl(l);
			return;
		case SEG_DATA:
		case SEG_CMD:
			break;
		}
		if (c->tls) {
			link_tls_send(l, c);
			return;
		}
		c->inflight_data = 0;
		c->inflight_ctl = 0;
		for (s = l->q_head;
		     s && n < TX_GATHER && (s->kind == SEG_DATA || s->kind == SEG_CMD);
		     s = s->next) {
			bufs[n++] = uv_buf_init((char *)s->buf, (unsigned)s->len);
			link_seg_taken(l, c, s);
			last = s;
		}
		link_q_take(l, c, last);
		c->writing = true;
		r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, link_write_cb);
		if (r < 0)
			link_write_failed(l, c, r);
		return;
	}
}

void link_inflight_drop(struct link *l, struct conn *c)
{
	/* data stays counted in tx_pending: link_lost reports it dropped */
	c->writing = false;
	free_segs(c->inflight);
	c->inflight = NULL;
	l->ctl_pending -= c->inflight_ctl;
	c->inflight_ctl = 0;
	c->inflight_data = 0;
}

void link_write_failed(struct link *l, struct conn *c, int status)
{
	link_inflight_drop(l, c);
	link_note_error(l, "write to %s: %s", l->addr, uv_strerror(status));
	link_lost(l, status);
}

void link_write_cb(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	struct link *l = c->l;
	size_t done = c->inflight_data, ctl = c->inflight_ctl;

	free_segs(c->inflight);
	c->inflight = NULL;
	c->inflight_data = 0;
	c->inflight_ctl = 0;
	c->writing = false;
	if (!l || l->closing)
		return;
	l->ctl_pending -= ctl;
	if (status < 0) {
		/* the data of this write stays in tx_pending: link_lost counts it dropped */
		link_note_error(l, "write to %s: %s", l->addr, uv_strerror(status));
		link_lost(l, status);
		return;
	}
	l->tx_pending -= done;
	l->tx_bytes += done;
	link_kick(l);
	if (l->closing || l->conn != c)
		return;
	if (c->tls && link_tls_held(l)) {
		rx_flow(l); /* the session may take input now that its output left */
		if (l->closing || l->conn != c)
			return;
	}
	if (l->want_writable && l->tx_pending < LINK_TXQ_MAX / 2) {
		l->want_writable = false;
		if (l->cb.on_writable)
			l->cb.on_writable(l->ctx);
		if (l->closing || l->conn != c)
			return;
	}
	if (done > 0 && l->tx_pending == 0 && l->cb.on_drained)
		l->cb.on_drained(l->ctx);
}

/* Make a non-data segment (Telnet option, RFC 2217 command or legacy control byte) of n
 * bytes. Returns it, or NULL: -ENOMEM, or CTL_MAX non-data bytes are already pending (the
 * peer is not reading what we send; the connection is then marked for dropping, which
 * link_check_overflow() does once the caller is out of the decoder). Not queued. */
struct seg *link_ctl_seg(struct link *l, enum seg_kind kind, const uint8_t *p, size_t n)
{
	struct seg *s;

	if (!l->conn || l->ctl_overflow)
		return NULL;
	if (l->ctl_pending + n > CTL_MAX) {
		l->ctl_overflow = true;
		return NULL;
	}
	s = seg_new(n, kind);
	if (!s)
		return NULL;
	memcpy(s->buf, p, n);
	s->len = n;
	l->ctl_pending += n;
	return s;
}

/* Drop the connection (and reconnect) if link_ctl_seg() hit CTL_MAX. Called where a
 * connection loss is safe to handle: after decoding a read, from the timer, at the end of
 * the public setters. Returns true if the connection was dropped. */
bool link_check_overflow(struct link *l)
{
	if (!l->ctl_overflow || l->closing)
		return false;
	l->ctl_overflow = false;
	if (!l->conn)
		return false;
	log_warn("%s: bridge %s does not read what we send (%u bytes of telnet negotiation/"
	         "commands pending); dropping the connection",
	         l->name, l->addr, (unsigned)CTL_MAX);
	link_note_error(l, "bridge not reading (%u bytes of commands pending)", (unsigned)CTL_MAX);
	link_lost(l, UV_ENOBUFS);
	return true;
}

/* Queue a marker (SEG_DELAY of ms, SEG_ACT_END). Returns 0 or -ENOMEM. */
int link_queue_marker(struct link *l, enum seg_kind kind, uint32_t ms)
{
	struct seg *s = seg_new(0, kind);

	if (!s)
		return -ENOMEM;
	s->val = ms;
	link_q_append(l, s);
	return 0;
}

/* The action timer: a SEG_DELAY is over, or a legacy control byte got no answer in time. */
void link_act_timer_cb(uv_timer_t *t)
{
	struct link *l = t->data;

	if (l->closing || !l->act_wait)
		return;
	l->act_wait = false;
	if (l->lg.ctrl_waiting)
		link_legacy_answer_timeout(l);
	link_kick(l);
	link_check_overflow(l);
}

/* Hand queued rx data to the tty within rx_space(). */
static void deliver_rxq(struct link *l)
{
	if (l->delivering)
		return;
	l->delivering = true;
	while (l->rxq_len > 0 && !l->closing && l->cb.on_data && l->cb.rx_space) {
		size_t k = l->cb.rx_space(l->ctx);
		if (k == 0)
			break;
		if (k > l->rxq_len)
			k = l->rxq_len;
		const uint8_t *p = l->rxq + l->rxq_off;
		l->rx_bytes += k;
		l->rxq_off += k;
		l->rxq_len -= k;
		if (l->rxq_len == 0)
			l->rxq_off = 0;
		l->cb.on_data(l->ctx, p, k);
	}
	l->delivering = false;
}

static void rx_data(struct link *l, const uint8_t *p, size_t n)
{
	/* Ask again after each delivery: the tty may have freed room from inside on_data
	 * (a parked read answered), and link_rx_resume() called there does nothing. */
	while (n > 0 && l->rxq_len == 0 && !l->delivering && !l->closing && l->cb.on_data &&
	       l->cb.rx_space) {
		size_t k = l->cb.rx_space(l->ctx);
		if (k == 0)
			break;
		if (k > n)
			k = n;
		l->delivering = true;
		l->rx_bytes += k;
		l->cb.on_data(l->ctx, p, k);
		l->delivering = false;
		p += k;
		n -= k;
	}
	if (n == 0 || l->closing)
		return;
	if (l->rxq_off > 0 && l->rxq_off + l->rxq_len + n > RXQ_CAP) {
		memmove(l->rxq, l->rxq + l->rxq_off, l->rxq_len);
		l->rxq_off = 0;
	}
	/* reads stop above RXQ_READ_MAX and one read decodes to at most RAW_READ bytes */
	assert(l->rxq_off + l->rxq_len + n <= RXQ_CAP);
	memcpy(l->rxq + l->rxq_off + l->rxq_len, p, n);
	l->rxq_len += n;
}

/* Decoded data bytes from the bridge: discarded when they belong to a part that was
 * readable at an input purge (l->discarding), else delivered or held for the tty. */
void link_rx(struct link *l, const uint8_t *p, size_t n)
{
	if (l->discarding) {
		l->rx_purged += n;
		return;
	}
	rx_data(l, p, n);
}

void link_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = h->data;
	(void)suggested;
	if (!c->l) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	if (c->control)
		*b = uv_buf_init((char *)c->l->lg.craw, sizeof c->l->lg.craw);
	else
		*b = uv_buf_init((char *)c->l->raw, sizeof c->l->raw);
}

void link_read_start(struct link *l)
{
	if (!l->conn || !l->conn->connected || l->reading)
		return;
	if (l->conn->tls && link_tls_held(l))
		return; /* the last read's ciphertext is not all decrypted yet: it lives in raw */
	if (uv_read_start((uv_stream_t *)&l->conn->tcp, link_alloc_cb, link_read_cb) == 0)
		l->reading = true;
}

static void pause_reads(struct link *l)
{
	if (l->reading && l->conn)
		uv_read_stop((uv_stream_t *)&l->conn->tcp);
	l->reading = false;
	l->paused = true;
}

/* Send FLOWCONTROL-SUSPEND (on) or -RESUME (RFC 2217; no answer is expected), at the head
 * of the queue: flow control does not wait behind our output. */
static void send_rx_flow(struct link *l, bool on)
{
	if (l->proto->rx_flow(l, on) == 0)
		l->rx_susp = on;
}

/* Whether socket reads may run with what is held for the tty now (link.h "bridge -> tty"):
 * nothing held; or room for one more read and either negotiating (its answers must be
 * read) or the bridge was asked to suspend (only data already in flight arrives). */
bool link_may_read(const struct link *l)
{
	if (l->rxq_len == 0)
		return true;
	if (l->rxq_len > RXQ_READ_MAX)
		return false;
	return l->state != LINK_UP || l->rx_susp;
}

/* TLS: decrypt what the session still holds (it stopped when the tty was full, or
 * waited for its output to leave) if reads may run now. false: the connection is gone. */
static bool tls_resume(struct link *l)
{
	if (l->conn->tls && link_tls_held(l) && link_may_read(l)) {
		link_tls_pump(l);
		if (l->closing || !l->conn || link_check_overflow(l))
			return false;
	}
	return true;
}

/* After a read or a delivery: suspend the bridge if the tty left data, resume it once
 * everything was delivered, pause reads when may_read() says so (or while the TLS
 * session holds input back). */
static void rx_flow(struct link *l)
{
	bool held;

	if (l->closing || !l->conn || !tls_resume(l))
		return;
	if (l->rxq_len > 0 && !l->rx_susp && l->proto->can_suspend(l))
		send_rx_flow(l, true);
	else if (l->rxq_len == 0 && l->rx_susp && l->state == LINK_UP)
		send_rx_flow(l, false);
	/* once the bridge was asked to suspend, reads go on (its answers still come) */
	if (l->closing || !l->conn || !tls_resume(l))
		return;
	/* reads stay paused while the TLS session holds input back */
	held = l->conn->tls && link_tls_held(l);
	if ((!link_may_read(l) && !link_tls_handshaking(l)) || held) {
		if (l->reading)
			log_debug("%s: %s, %zu bytes held, pausing reads", l->name,
			          held ? "TLS input waits" : "tty full", l->rxq_len);
		pause_reads(l);
	} else if (l->paused) {
		l->paused = false;
		link_read_start(l);
	}
}

void link_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct link *l = c->l;

	(void)buf;
	if (!l || l->closing || nread == 0)
		return;
	if (nread < 0) {
		if (c->tls && link_tls_eof(l, c, (int)nread))
			return;
		if (c->control)
			log_debug("%s: control connection: %s", l->name,
			          nread == UV_EOF ? "closed by the bridge"
			                          : uv_strerror((int)nread));
		link_lost(l, (int)nread);
		return;
	}
	if (c->control) {
		link_legacy_ctrl_rx(l, l->lg.craw, (size_t)nread);
		link_check_overflow(l);
		return;
	}
	if (c->tls)
		link_tls_input(l, (size_t)nread);
	else
		link_input(l, l->raw, (size_t)nread);
	if (l->closing || l->conn != c || link_check_overflow(l))
		return;
	rx_flow(l);
}

void link_input(struct link *l, const uint8_t *p, size_t n)
{
	struct conn *c = l->conn;
	size_t off = 0;

	while (off < n && !l->closing && l->conn == c) {
		/* a part whose data was readable at an input purge: decoded, data discarded */
		size_t k = n - off;
		l->discarding = l->discard_raw > 0;
		if (l->discarding && k > l->discard_raw)
			k = l->discard_raw;
		if (l->discarding)
			l->discard_raw -= k;
		l->proto->input(l, p + off, k);
		l->discarding = false;
		off += k;
	}
}

/* ----------------------------------------------------------- state machine */

/* Connected and negotiated: LINK_UP (stats, logs), the protocol's up step, then the tty's
 * on_state and a pending on_writable. */
void link_go_up(struct link *l)
{
	const char *note = l->tls ? " (TLS-PSK)" : l->proto->up_note;

	if (l->state == LINK_UP || !l->conn)
		return;
	timer_stop(l);
	l->up_since = uv_now(l->loop);
	if (l->connects > 0)
		l->reconnects++;
	l->connects++;
	if (l->connects > 1)
		log_info("%s: up: %s%s (reconnect %u)", l->name, l->addr, note,
		         (unsigned)l->reconnects);
	else if (l->attempts > 0)
		log_info("%s: up: %s%s (after %u failed attempts)", l->name, l->addr, note,
		         l->attempts);
	else
		log_info("%s: up: %s%s", l->name, l->addr, note);
	l->attempts = 0;
	l->fail_status = 0;
	l->lost_logged = false;
	l->state = LINK_UP; /* set first so the protocol's up step sends; on_state below */
	if (l->proto->up)
		l->proto->up(l);
	link_kick(l);
	if (!l->conn)
		return;
	log_debug("%s: link connecting -> up", l->name);
	if (l->cb.on_state && !l->closing)
		l->cb.on_state(l->ctx, LINK_UP);
	if (!l->closing && l->state == LINK_UP && l->want_writable) {
		l->want_writable = false;
		if (l->cb.on_writable)
			l->cb.on_writable(l->ctx);
	}
}

void link_lost(struct link *l, int status)
{
	link_lost_why(l, status, NULL, false);
}

void link_lost_why(struct link *l, int status, const char *reason, bool quiet)
{
	char why[128];
	size_t undelivered = l->tx_pending;
	bool was_up = l->state == LINK_UP;

	if (l->closing)
		return;
	if (reason)
		snprintf(why, sizeof why, "%s", reason);
	else if (status == UV_EOF)
		snprintf(why, sizeof why, "closed by the bridge");
	else
		link_fmt_status(status, why, sizeof why);
	link_conn_drop(l);
	free_segs(l->q_head);
	l->q_head = l->q_tail = NULL;
	l->tx_pending = 0;
	l->ctl_pending = 0;
	l->ctl_overflow = false;
	l->want_writable = false;
	l->tx_suspended = false;
	l->rx_susp = false;
	l->paused = false;
	l->discard_raw = 0;
	uv_timer_stop(&l->act_timer);
	l->act_wait = false;
	l->proto->down(l);
	if (was_up) {
		log_warn("%s: connection to %s lost (%s)", l->name, l->addr, why);
		if (undelivered > 0)
			log_warn("%s: connection lost, %zu bytes for the bridge dropped", l->name,
			         undelivered);
		l->tx_dropped += undelivered;
		link_note_error(l, "connection lost: %.80s", why);
		l->lost_logged = true;
		if (uv_now(l->loop) - l->up_since >= l->cfg.reconnect_max_ms)
			l->backoff_ms = l->cfg.reconnect_min_ms;
		link_timer_arm(l, PH_BACKOFF, l->backoff_ms);
		l->backoff_ms = l->backoff_ms * 2 > l->cfg.reconnect_max_ms
		                    ? l->cfg.reconnect_max_ms
		                    : l->backoff_ms * 2;
		link_set_state(l, LINK_CONNECTING);
		if (!l->closing && undelivered > 0 && l->cb.on_drained)
			l->cb.on_drained(l->ctx); /* nothing is pending any more */
	} else {
		/* lost during negotiation: counts as a failed attempt */
		log_debug("%s: connection to %s closed during negotiation (%s)", l->name, l->addr,
		          why);
		link_round_failed_why(l, status, reason, quiet);
	}
}

/* ------------------------------------------------------------------ public */

static void link_free_cb(uv_handle_t *h)
{
	struct link *l = h->data;

	if (--l->handles > 0)
		return;
	link_tls_destroy(l);
	free(l->name);
	free(l->host);
	free(l);
}

/* Create a link to cfg->host:cfg->port and start connecting at once (state
 * LINK_CONNECTING). Takes: loop, name (for logs, copied), cfg (copied; reconnect and
 * timeout values in ms, keepalive in s; LINK_PROTO_LEGACY also connects control_port, 0 =
 * port + 1). Returns 0 and *out, or -EINVAL (NULL/empty host, port 0, reconnect_min_ms 0 or
 * > reconnect_max_ms, connect_timeout_ms 0, unknown protocol, legacy with port 65535 and
 * no control_port, or control_port == port), -ENOMEM, or a libuv error (negative errno)
 * from uv_timer_init. */
int link_new(uv_loop_t *loop, const char *name, const struct link_config *cfg, struct link **out)
{
	struct link *l;
	int r;

	if (!loop || !cfg || !out || !cfg->host || !cfg->host[0] || cfg->port == 0 ||
	    cfg->reconnect_min_ms == 0 || cfg->reconnect_max_ms < cfg->reconnect_min_ms ||
	    cfg->connect_timeout_ms == 0 ||
	    (cfg->protocol != LINK_PROTO_RFC2217 && cfg->protocol != LINK_PROTO_LEGACY))
		return -EINVAL;
	if (cfg->protocol == LINK_PROTO_LEGACY &&
	    ((cfg->control_port == 0 && cfg->port == 65535) || cfg->control_port == cfg->port ||
	     (cfg->key_path && cfg->key_path[0])))
		return -EINVAL; /* the legacy ports have no TLS */
	l = calloc(1, sizeof *l);
	if (!l)
		return -ENOMEM;
	l->loop = loop;
	l->name = strdup(name ? name : "link");
	l->host = strdup(cfg->host);
	if (!l->name || !l->host) {
		free(l->name);
		free(l->host);
		free(l);
		return -ENOMEM;
	}
	l->cfg = *cfg;
	l->cfg.host = l->host;
	l->cfg.key_path = NULL; /* link_tls owns its copy */
	if (cfg->key_path && cfg->key_path[0] && link_tls_new(l, cfg->key_path) < 0) {
		free(l->name);
		free(l->host);
		free(l);
		return -ENOMEM;
	}
	l->proto = cfg->protocol == LINK_PROTO_LEGACY ? &link_proto_legacy : &link_proto_rfc2217;
	if (cfg->protocol == LINK_PROTO_LEGACY && l->cfg.control_port == 0)
		l->cfg.control_port = (uint16_t)(cfg->port + 1);
	if (strchr(l->host, ':'))
		snprintf(l->addr, sizeof l->addr, "[%s]:%u", l->host, (unsigned)cfg->port);
	else
		snprintf(l->addr, sizeof l->addr, "%s:%u", l->host, (unsigned)cfg->port);
	l->backoff_ms = cfg->reconnect_min_ms;
	l->state = LINK_CONNECTING;
	rfc2217_client_init(&l->rc, &link_rfc2217_ops, l);
	l->lg.sent_rts = l->lg.sent_dtr = -1;
	r = uv_timer_init(loop, &l->timer);
	if (r < 0) {
		link_tls_destroy(l);
		free(l->name);
		free(l->host);
		free(l);
		return r;
	}
	l->timer.data = l;
	l->act_timer.data = l;
	l->handles = 2;
	r = uv_timer_init(loop, &l->act_timer);
	if (r < 0) {
		l->closing = true;
		l->handles = 1;
		uv_close((uv_handle_t *)&l->timer, link_free_cb);
		return r;
	}
	*out = l;
	link_start_attempt(l);
	return 0;
}

/* Install the tty's callbacks (copied; NULL removes them) and context. No callback is
 * made from inside this call; data held for the tty is delivered on link_rx_resume(). */
void link_set_callbacks(struct link *l, const struct link_callbacks *cb, void *ctx)
{
	if (!l)
		return;
	if (cb)
		l->cb = *cb;
	else
		memset(&l->cb, 0, sizeof l->cb);
	l->ctx = ctx;
}

/* A reload saw the key file change (link.h): not up and waiting out a backoff: try now
 * with the backoff reset. */
void link_key_changed(struct link *l)
{
	if (!l || l->closing || !l->tls || l->state == LINK_UP || l->phase != PH_BACKOFF)
		return;
	timer_stop(l);
	l->backoff_ms = l->cfg.reconnect_min_ms;
	link_start_attempt(l);
}

/* Close the connection and free the link once libuv released its handles (the loop must
 * run for that). No callbacks are made after this call. Data still queued is logged as
 * undelivered. */
void link_close(struct link *l)
{
	if (!l || l->closing)
		return;
	if (l->tx_pending > 0) {
		log_warn("%s: closing with %zu bytes undelivered", l->name, l->tx_pending);
		l->tx_dropped += l->tx_pending;
	}
	link_tls_goodbye(l);
	l->closing = true;
	l->state = LINK_DOWN;
	link_gai_drop(l);
	link_conn_drop(l);
	link_ai_drop(l);
	l->proto->down(l);
	free_segs(l->q_head);
	l->q_head = l->q_tail = NULL;
	l->tx_pending = 0;
	uv_timer_stop(&l->timer);
	uv_timer_stop(&l->act_timer);
	uv_close((uv_handle_t *)&l->timer, link_free_cb);
	uv_close((uv_handle_t *)&l->act_timer, link_free_cb);
}

/* Current state: LINK_UP, LINK_CONNECTING (also during an outage: the link keeps
 * reconnecting), LINK_DOWN only after link_close. */
enum link_state link_get_state(const struct link *l)
{
	return l ? l->state : LINK_DOWN;
}

/* Queue n bytes of data for the bridge, 0xFF doubled (RFC 854 / RFC 2217 data; as is for
 * LINK_PROTO_LEGACY). Takes p/n (bytes). Returns bytes accepted (0..n): 0 when not LINK_UP or when
 * the queue holds LINK_TXQ_MAX bytes. After a short return, or a call that left the queue full,
 * on_writable fires once the queue is below half. */
size_t link_write(struct link *l, const uint8_t *p, size_t n)
{
	size_t taken = 0;

	if (!l || l->closing || l->state != LINK_UP || !l->conn)
		return 0;
	while (taken < n && l->tx_pending < LINK_TXQ_MAX) {
		struct seg *s = l->q_tail;
		size_t want = n - taken, consumed = 0;

		if (want > LINK_TXQ_MAX - l->tx_pending)
			want = LINK_TXQ_MAX - l->tx_pending;
		if (!s || s->kind != SEG_DATA || s->cap - s->len < 2) {
			s = seg_new(SEG_DATA_CAP, SEG_DATA);
			if (!s)
				break;
			link_q_append(l, s);
		}
		s->len +=
		    l->proto->encode(p + taken, want, s->buf + s->len, s->cap - s->len, &consumed);
		s->data += consumed;
		l->tx_pending += consumed;
		taken += consumed;
		assert(consumed > 0); /* at least 2 bytes were free */
	}
	if (taken < n || l->tx_pending >= LINK_TXQ_MAX)
		l->want_writable = true;
	link_kick(l);
	return taken;
}

/* Room in the TX queue, bytes of unescaped data (0 when not LINK_UP). */
size_t link_write_space(const struct link *l)
{
	if (!l || l->closing || l->state != LINK_UP || !l->conn)
		return 0;
	return LINK_TXQ_MAX - l->tx_pending;
}

/* Data bytes (unescaped) queued or being written, not yet accepted by the kernel. */
size_t link_tx_pending(const struct link *l)
{
	return l ? l->tx_pending : 0;
}

/* The tty has room again: deliver held data within rx_space(), and restart socket reads
 * once nothing is held. Idempotent and cheap: the tty calls it whenever it frees room.
 * Called from inside on_data it does nothing (the delivery in progress asks rx_space()
 * again before holding anything). */
void link_rx_resume(struct link *l)
{
	if (!l || l->closing || l->delivering)
		return;
	deliver_rxq(l);
	rx_flow(l);
}

/* Remember line settings and send what changed if up (RFC 2217 SET-BAUDRATE, SET-DATASIZE,
 * SET-PARITY, SET-STOPSIZE). Takes baud > 0 (bit/s), data_bits 5..8, parity N/O/E/M/S,
 * stop_bits 1, 2 or 3 (= 1.5). Returns 0 or -EINVAL. */
int link_set_line(struct link *l, const struct link_line *line)
{
	if (!l || !line || line->baud == 0 || line->data_bits < 5 || line->data_bits > 8 ||
	    (line->parity != 'N' && line->parity != 'O' && line->parity != 'E' &&
	     line->parity != 'M' && line->parity != 'S') ||
	    line->stop_bits < 1 || line->stop_bits > 3)
		return -EINVAL;
	l->proto->set_line(l, line);
	link_check_overflow(l);
	return 0;
}

/* Remember DTR (asserted != 0) and send SET-CONTROL 8/9 if up and changed (RFC 2217).
 * Returns 0. */
int link_set_dtr(struct link *l, int asserted)
{
	if (!l)
		return -EINVAL;
	l->proto->set_dtr(l, asserted ? 1 : 0);
	link_check_overflow(l);
	return 0;
}

/* Remember RTS (asserted != 0) and send SET-CONTROL 11/12 if up and changed (RFC 2217).
 * Returns 0. */
int link_set_rts(struct link *l, int asserted)
{
	if (!l)
		return -EINVAL;
	l->proto->set_rts(l, asserted ? 1 : 0);
	link_check_overflow(l);
	return 0;
}

/* Remember flow control and send SET-CONTROL 1/2/3 if up and changed (RFC 2217).
 * Returns 0 or -EINVAL for a value outside enum link_flow. */
int link_set_flow(struct link *l, enum link_flow flow)
{
	if (!l ||
	    (flow != LINK_FLOW_NONE && flow != LINK_FLOW_XONXOFF && flow != LINK_FLOW_HARDWARE))
		return -EINVAL;
	l->proto->set_flow(l, flow);
	link_check_overflow(l);
	return 0;
}

/* Send SET-CONTROL 5 (on != 0) or 6 (RFC 2217) if up; not remembered. Returns 0 (also
 * when down: nothing is sent), -ENOTSUP for LINK_PROTO_LEGACY (no BREAK there). */
int link_set_break(struct link *l, int on)
{
	int r;

	if (!l)
		return -EINVAL;
	r = l->proto->set_break(l, on);
	if (r == 0)
		link_check_overflow(l);
	return r;
}

/* PURGE-DATA (RFC 2217) which = 1 rx, 2 tx, 3 both, sent if up. For 2 and 3 the local data
 * not yet handed to libuv is dropped too (settings stay queued), and then, as after a
 * write completes, on_writable fires if it was awaited and the queue is below half, and
 * on_drained fires if data was dropped and nothing is pending any more; for 1 and 3 data
 * held for the tty (rxq) is dropped. Returns 0 or -EINVAL; LINK_PROTO_LEGACY: the local
 * part is done and -ENOTSUP returned (the bridge cannot be asked to purge). */
int link_purge(struct link *l, int which)
{
	size_t before;
	int ret;

	if (!l || which < RFC2217_PURGE_RX || which > RFC2217_PURGE_BOTH)
		return -EINVAL;
	before = l->tx_pending;
	if (which & RFC2217_PURGE_TX) {
		struct seg **pp = &l->q_head, *s;
		l->q_tail = NULL;
		while ((s = *pp)) {
			if (s->kind == SEG_DATA) {
				*pp = s->next;
				l->tx_pending -= s->data;
				l->tx_purged += s->data;
				free(s);
			} else {
				l->q_tail = s;
				pp = &s->next;
			}
		}
	}
	if (which & RFC2217_PURGE_RX) {
		l->rx_purged += l->rxq_len;
		l->rxq_off = l->rxq_len = 0;
	}
	/* the protocol discards what is still on its way and asks the bridge to purge */
	ret = l->proto->purge(l, which);
	if (link_check_overflow(l))
		return ret; /* connection dropped: link_lost told the tty */
	if (which & RFC2217_PURGE_RX)
		link_rx_resume(l);
	if (l->closing || l->tx_pending == before)
		return ret;
	if (l->want_writable && l->tx_pending < LINK_TXQ_MAX / 2 && l->state == LINK_UP) {
		l->want_writable = false;
		if (l->cb.on_writable)
			l->cb.on_writable(l->ctx);
		if (l->closing)
			return ret;
	}
	if (l->tx_pending == 0 && l->cb.on_drained)
		l->cb.on_drained(l->ctx);
	return ret;
}

/* Unacknowledged bytes in the data connection's socket (link.h; Linux SIOCOUTQ, tcp(7)).
 * 0 when not connected. */
size_t link_tx_unacked(const struct link *l)
{
	if (!l || l->closing)
		return 0;
	return link_conn_unacked(l->conn);
}

/* Data bytes discarded by input purges since link_new (link.h). */
uint64_t link_rx_purged(const struct link *l)
{
	return l ? l->rx_purged : 0;
}

/* Last NOTIFY-MODEMSTATE value (RFC2217_MODEM_* bits), 0 before any. */
uint8_t link_modemstate(const struct link *l)
{
	return l ? l->modemstate : 0;
}

/* Fill st with the counters and state (link.h struct link_stats). peer from
 * uv_tcp_getpeername of the data connection and rtt_us from getsockopt(TCP_INFO)
 * tcpi_rtt (Linux tcp(7)) when up; "" and -1 otherwise. */
void link_get_stats(const struct link *l, struct link_stats *st)
{
	if (!st)
		return;
	memset(st, 0, sizeof *st);
	st->rtt_us = -1;
	if (!l) {
		st->state = LINK_DOWN;
		return;
	}
	st->state = l->state;
	st->tx_bytes = l->tx_bytes;
	st->rx_bytes = l->rx_bytes;
	st->tx_dropped = l->tx_dropped;
	st->tx_purged = l->tx_purged;
	st->connects = l->connects;
	st->reconnects = l->reconnects;
	st->errors = l->errors;
	snprintf(st->last_error, sizeof st->last_error, "%s", l->last_error);
	if (l->state != LINK_UP || !l->conn || l->closing)
		return;
	st->up_since_ms = l->up_since ? l->up_since : 1;
	link_peer_stats(l, st);
}

/* Run a boot-control action (link.h enum link_action). RFC 2217: queue, in stream order,
 * the SET-CONTROL sequence rfc2217_client_action() builds (DTR 8/9, RTS 11/12; the
 * bridge's `direct` line map: DTR asserted = NRST low, RTS asserted = BOOT0 high) with its
 * delays timed by the daemon once the step before was handed to the kernel; then the
 * desired RTS and DTR (deasserted if the tty never set them). Data written meanwhile
 * follows the sequence. LINK_PROTO_LEGACY: the control byte 'r', 'u' or 'e', in order with
 * data; the action lasts until the bridge answers or LEGACY_ANSWER_MS pass. Returns 0
 * (started), -ENOTCONN (not LINK_UP), -EBUSY (another action is still running), -EINVAL
 * (unknown action), -ENOTSUP (the bridge refused COM-PORT-OPTION: it would not apply
 * DTR/RTS), -ENOMEM. */
int link_action(struct link *l, enum link_action a)
{
	int r;

	if (!l || (a != LINK_ACTION_RESET && a != LINK_ACTION_BOOT && a != LINK_ACTION_RUN))
		return -EINVAL;
	if (l->closing || l->state != LINK_UP || !l->conn)
		return -ENOTCONN;
	r = l->proto->action(l, a);
	if (link_check_overflow(l))
		return -ENOTCONN;
	return r == -ENOBUFS ? -ENOTCONN : r;
}
