/* SPDX-License-Identifier: MIT */
/*
 * link: espstmd's RFC 2217 client (see link.h for the contract).
 *
 * Structure:
 *  - One uv_timer_t per link serves three phases: connect timeout (resolve + TCP connect),
 *    negotiation timeout (waiting for DO COM-PORT-OPTION), reconnect backoff.
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
 *    Then (rx_flow/may_read): up with COM-PORT-OPTION agreed, FLOWCONTROL-SUSPEND is sent
 *    and reads go on (the bridge stops its UART data, answers still come; RESUME once rxq
 *    is empty); negotiating, reads go on (held data from a previous connection must not
 *    stall the new one, and the negotiation timer does not run out while paused); else
 *    reads stop until link_rx_resume(). rxq is bounded: reads go on only while it holds at
 *    most RXQ_READ_MAX, and one read is at most RAW_READ bytes, which decode to at most as
 *    many data bytes (tn_decode guarantees it). Delivery keeps asking rx_space() until it
 *    answers 0 or nothing is left, so room the tty frees from inside on_data is used.
 *  - Input purge (link_purge 1/3): rxq is dropped, and so is data already on its way: with
 *    RFC 2217 until the bridge's PURGE-DATA answer (the bridge queues it behind the data it
 *    had sent), at most PURGE_WAIT_MS; otherwise what the socket held readable then.
 *  - Non-data bytes (negotiation answers, RFC 2217 commands) are bounded too (CTL_MAX,
 *    queued + in flight): a peer that makes us answer without reading what we send (e.g.
 *    WILL/WONT BINARY alternating) gets its connection dropped, then the link reconnects.
 *  - LINK_PROTO_LEGACY: a second connection (cconn) to the control port. Both are opened
 *    per attempt (data first, then control, same address), the link is up once both are
 *    connected and stayed so for LEGACY_SETTLE_MS (a busy bridge closes at once), and
 *    losing either drops both. No Telnet: data passes as is. A control byte waits in the
 *    TX queue until the data before it is written and acknowledged by the bridge (SIOCOUTQ
 *    0 on the data socket, at most LEGACY_ANSWER_MS: it must not overtake that data),
 *    then holds the data behind it until the bridge answered ("OK ..."/"ERR ...") or
 *    LEGACY_ANSWER_MS passed (the seed firmware answers nothing), so 0x7F after 'u'
 *    reaches the bridge after the command.
 * Telnet option negotiation follows RFC 1143's Q method without the queue bits.
 */
#include "link.h"
#include "log.h"
#include "rfc2217.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#define RAW_READ         16384                /* bytes per socket read */
#define RXQ_CAP          (4 * RAW_READ)       /* data held for the tty, bytes */
#define RXQ_READ_MAX     (RXQ_CAP - RAW_READ) /* keep reading while holding at most this */
#define PURGE_WAIT_MS    2000 /* discard data until the PURGE-DATA answer, at most this long */
#define CTRL_OUTQ_MS     5    /* legacy: re-check the data socket's SIOCOUTQ this often */
#define SEG_DATA_CAP     4096 /* escaped bytes per data segment */
#define TX_GATHER        16   /* segments per uv_write */
#define NEGOTIATE_MS     2000 /* wait for DO COM-PORT-OPTION before going up anyway */
#define ANSQ_LEN         16   /* outstanding SET-xxx answers remembered per command */
#define NCMD             13   /* RFC 2217 commands 0..12 */
#define CTL_MAX          4096 /* non-data bytes (negotiation, commands) queued or in flight */
#define ACT_PULSE_MS     100  /* NRST (DTR) pulse of link_action, ms */
#define ACT_SETTLE_MS    50   /* BOOT: after NRST release, before RTS goes back, ms */
#define LEGACY_SETTLE_MS 100  /* both legacy connections open this long before LINK_UP */
#define LEGACY_ANSWER_MS 1000 /* wait for a control-port answer line at most this long */
#define CLINE_MAX        80   /* control-port answer line kept, bytes */

enum phase { PH_NONE, PH_CONNECT, PH_NEGOTIATE, PH_BACKOFF };
enum qstate { Q_NO, Q_YES, Q_WANTNO, Q_WANTYES }; /* RFC 1143 */

enum seg_kind {
	SEG_DATA,    /* data (escaped unless legacy) for the data connection */
	SEG_CMD,     /* Telnet option or RFC 2217 command for the data connection */
	SEG_DELAY,   /* marker: wait val ms before what follows (link_action) */
	SEG_ACT_END, /* marker: link_action sequence done, re-send desired DTR/RTS */
	SEG_CTRL,    /* legacy: one command byte for the control connection */
};

struct seg {
	struct seg *next;
	size_t len;  /* bytes in buf */
	size_t cap;  /* bytes allocated for buf */
	size_t data; /* unescaped data bytes carried (0 unless SEG_DATA) */
	enum seg_kind kind;
	bool ans;     /* SEG_CMD: an RFC 2217 command whose answer is expected (cmd, val) */
	bool action;  /* SEG_CTRL: sent by link_action (clears act_busy when answered) */
	uint8_t cmd;  /* SEG_CMD with ans: client command code */
	uint32_t val; /* SEG_CMD: command value; SEG_DELAY: ms */
	uint8_t buf[];
};

struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct link *l; /* NULL once detached */
	bool connected;
	bool writing;
	bool control;         /* legacy control connection */
	struct seg *inflight; /* segments owned by wreq */
	size_t inflight_data;
	size_t inflight_ctl; /* non-data bytes in inflight */
};

struct gai {
	uv_getaddrinfo_t req;
	struct link *l; /* NULL once abandoned */
};

struct ansq {
	uint32_t v[ANSQ_LEN];
	unsigned head, n;
};

struct link {
	uv_loop_t *loop;
	char *name;
	char *host;
	char addr[300]; /* "host:port" or "[v6]:port" for logs */
	struct link_config cfg;
	enum link_state state;
	struct link_callbacks cb;
	void *ctx;
	bool closing;
	bool legacy;      /* cfg.protocol == LINK_PROTO_LEGACY */
	unsigned handles; /* timers not yet closed (link_close frees at 0) */

	/* connecting */
	uv_timer_t timer;
	enum phase phase;
	struct gai *gai;
	struct addrinfo *ai_list, *ai_next;
	struct conn *conn;                /* data connection (RFC 2217, or legacy raw) */
	struct conn *cconn;               /* legacy control connection */
	struct sockaddr_storage cur_addr; /* address of the attempt in progress */
	uint32_t backoff_ms;
	unsigned attempts; /* failed rounds since the last up */
	int fail_status;   /* last failure status logged (dedup) */
	bool lost_logged;  /* a "lost" message was printed for this outage */
	uint64_t up_since; /* uv_now() at LINK_UP */
	int last_status;   /* last error in the current round */

	/* telnet */
	struct tn_decoder dec;
	uint8_t us[256], him[256];
	bool refused_us[256], refused_him[256];
	bool comport_refused;
	bool tx_suspended; /* FLOWCONTROL-SUSPEND from the server */
	bool rx_susp;      /* we sent FLOWCONTROL-SUSPEND on this connection (tty full) */

	/* desired state (what the tty asked for) and what was sent on this connection */
	struct link_line line;
	bool has_line;
	enum link_flow flow;
	bool has_flow;
	int rts, dtr;
	bool has_rts, has_dtr;
	struct link_line sent_line;
	bool sent_has_line;
	int sent_flow, sent_rts, sent_dtr; /* -1: not sent on this connection */
	uint8_t modemstate, linestate;
	struct ansq ans[NCMD];

	/* link_action and legacy control */
	uv_timer_t act_timer;
	bool act_busy;     /* a link_action sequence is queued or running */
	bool act_wait;     /* the TX queue waits: a SEG_DELAY, or a control-port answer */
	bool ctrl_waiting; /* act_wait is for a control-port answer */
	bool ctrl_action;  /* ... of a link_action byte */
	bool leg_boot;     /* legacy: 'u' sent (bridge in bootloader mode), no 'e' since */
	bool leg_baud_logged;
	char cline[CLINE_MAX]; /* control-port answer line being received */
	size_t cline_len;
	uint8_t craw[256];

	/* counters (link_get_stats) */
	uint64_t tx_bytes, rx_bytes, tx_dropped, tx_purged;
	uint32_t connects, reconnects, errors;
	char last_error[96];

	/* tx */
	struct seg *q_head, *q_tail;
	size_t tx_pending;  /* unescaped data bytes queued or in flight */
	size_t ctl_pending; /* non-data wire bytes queued or in flight (<= CTL_MAX) */
	bool ctl_overflow;  /* CTL_MAX exceeded: drop this connection (check_overflow) */
	bool want_writable;

	/* rx */
	uint8_t raw[RAW_READ];
	bool reading;
	bool paused;
	bool delivering;
	uint8_t rxq[RXQ_CAP];
	size_t rxq_off, rxq_len;
	/* input purge (link_purge 1/3): RFC 2217 PURGE-DATA answers awaited (data before them
	 * was sent before the purge: discarded), until purge_deadline at most; raw bytes of
	 * the stream whose data is discarded (what was readable at a purge without RFC 2217) */
	unsigned purge_wait;
	uint64_t purge_deadline;
	size_t discard_raw;
	bool discarding; /* decoding a part covered by discard_raw */
	uint64_t rx_purged;
	uint64_t ctrl_since; /* legacy: since when a control byte waits for SIOCOUTQ 0 */
};

static void start_attempt(struct link *l);
static void connect_next(struct link *l);
static void link_lost(struct link *l, int status);
static void kick(struct link *l);
static void timer_cb(uv_timer_t *t);
static void act_timer_cb(uv_timer_t *t);
static void go_up(struct link *l);

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

static void set_state(struct link *l, enum link_state st)
{
	if (l->state == st)
		return;
	log_debug("%s: link %s -> %s", l->name, state_name(l->state), state_name(st));
	l->state = st;
	if (l->cb.on_state && !l->closing)
		l->cb.on_state(l->ctx, st);
}

static void timer_arm(struct link *l, enum phase ph, uint64_t ms)
{
	l->phase = ph;
	uv_timer_start(&l->timer, timer_cb, ms, 0);
}

static void timer_stop(struct link *l)
{
	l->phase = PH_NONE;
	uv_timer_stop(&l->timer);
}

/* Count an error for link_get_stats and remember its text. */
__attribute__((format(printf, 2, 3))) static void note_error(struct link *l, const char *fmt, ...)
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

static void ans_clear(struct link *l)
{
	memset(l->ans, 0, sizeof l->ans);
}

static void ans_push(struct link *l, uint8_t cmd, uint32_t v)
{
	struct ansq *q;

	if (cmd >= NCMD)
		return;
	q = &l->ans[cmd];
	if (q->n == ANSQ_LEN) { /* server not answering: forget the oldest */
		q->head = (q->head + 1) % ANSQ_LEN;
		q->n--;
	}
	q->v[(q->head + q->n) % ANSQ_LEN] = v;
	q->n++;
}

/* --------------------------------------------------------------- conn mgmt */

static void conn_close_cb(uv_handle_t *h)
{
	free(h->data);
}

/* Detach and close the current connections, data and (legacy) control (no callbacks to
 * the tty). */
static void conn_drop(struct link *l)
{
	struct conn *c = l->conn;

	if (c) {
		l->conn = NULL;
		c->l = NULL;
		if (l->reading)
			uv_read_stop((uv_stream_t *)&c->tcp);
		uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	}
	l->reading = false;
	c = l->cconn;
	if (c) {
		l->cconn = NULL;
		c->l = NULL;
		uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	}
	l->cline_len = 0;
}

static struct conn *conn_new(struct link *l, bool control)
{
	struct conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->l = l;
	c->control = control;
	c->tcp.data = c;
	c->creq.data = c;
	c->wreq.data = c;
	return c;
}

/* Both connections: TCP_NODELAY (small commands and AN3155 frames go out at once), the
 * configured keepalive (link.h link_config.keepalive_s; 0 turns it off), and a bounded
 * kernel send buffer: without it Linux grows it to megabytes, which at 57600 baud is
 * minutes of output that tcdrain would treat as delivered and a flush could not take back.
 * LINK_SNDBUF (Linux doubles it, socket(7)) still covers the bandwidth-delay product of a
 * 921600-baud line (92 KB/s) at far more than WiFi's round trip. */
#define LINK_SNDBUF 32768 /* bytes, as passed to SO_SNDBUF */
/* With keepalive on, also TCP_USER_TIMEOUT (tcp(7), RFC 5482) of keepalive_s * 1000 +
 * USER_TIMEOUT_EXTRA_MS: keepalive probes only run on an idle connection, so a bridge that
 * loses power while we are sending would otherwise be noticed only after the kernel's
 * retransmissions give up (about 15 minutes). */
#define USER_TIMEOUT_EXTRA_MS 10000
static void conn_opts(struct link *l, struct conn *c)
{
	int sndbuf = LINK_SNDBUF;
	uv_os_fd_t fd;

	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_send_buffer_size((uv_handle_t *)&c->tcp, &sndbuf) < 0)
		log_debug("%s: cannot set the socket send buffer size", l->name);
	if (uv_tcp_keepalive(&c->tcp, l->cfg.keepalive_s > 0, l->cfg.keepalive_s) < 0)
		log_debug("%s: cannot set TCP keepalive", l->name);
	if (l->cfg.keepalive_s > 0 && uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0) {
		uint64_t ms = (uint64_t)l->cfg.keepalive_s * 1000u + USER_TIMEOUT_EXTRA_MS;
		unsigned int to = ms > 0x7fffffffu ? 0x7fffffffu : (unsigned int)ms;
		if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &to, sizeof to) < 0)
			log_debug("%s: cannot set TCP_USER_TIMEOUT", l->name);
	}
}

/* A byte count of c's kernel socket queues: SIOCOUTQ (sent, not yet acknowledged by the
 * peer) or SIOCINQ (readable now), tcp(7). 0 if c is not connected or the kernel cannot
 * tell. */
static size_t conn_queue(const struct conn *c, unsigned long req)
{
	uv_os_fd_t fd;
	int v = 0;

	if (!c || !c->connected || uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
		return 0;
	if (ioctl(fd, req, &v) < 0 || v < 0)
		return 0;
	return (size_t)v;
}

static size_t conn_unacked(const struct conn *c)
{
	return conn_queue(c, SIOCOUTQ);
}

static size_t conn_readable(const struct conn *c)
{
	return conn_queue(c, SIOCINQ);
}

static void gai_drop(struct link *l)
{
	if (!l->gai)
		return;
	l->gai->l = NULL;
	uv_cancel((uv_req_t *)&l->gai->req); /* fails harmlessly if already running */
	l->gai = NULL;
}

static void ai_drop(struct link *l)
{
	if (l->ai_list)
		uv_freeaddrinfo(l->ai_list);
	l->ai_list = l->ai_next = NULL;
}

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

static void q_append(struct link *l, struct seg *s)
{
	if (l->q_tail)
		l->q_tail->next = s;
	else
		l->q_head = s;
	l->q_tail = s;
}

static void q_push_front(struct link *l, struct seg *s)
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

static void write_cb(uv_write_t *req, int status);
static void act_end(struct link *l);

/* legacy: write one control byte (a SEG_CTRL taken off the queue) on the control
 * connection and make the queue wait for the answer. */
static void ctrl_send(struct link *l, struct seg *s)
{
	struct conn *c = l->cconn;
	uv_buf_t b;
	int r;

	if (!c || c->writing) { /* cannot happen: one control byte at a time */
		l->ctl_pending -= s->len;
		free(s);
		return;
	}
	log_debug("%s: -> control '%c'", l->name, s->buf[0]);
	c->inflight = s;
	c->inflight_data = 0;
	c->inflight_ctl = s->len;
	c->writing = true;
	l->act_wait = true;
	l->ctrl_waiting = true;
	l->ctrl_action = s->action;
	uv_timer_start(&l->act_timer, act_timer_cb, LEGACY_ANSWER_MS, 0);
	b = uv_buf_init((char *)s->buf, (unsigned)s->len);
	r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_cb);
	if (r < 0) {
		c->writing = false;
		c->inflight = NULL;
		l->ctl_pending -= s->len;
		free(s);
		note_error(l, "write to control port: %s", uv_strerror(r));
		link_lost(l, r);
	}
}

/* Start a uv_write with the head of the queue if none is in flight; take markers at the
 * head when nothing is in flight (a delay starts the action timer, the end of an action
 * re-queues the desired DTR/RTS at the head, a legacy control byte goes to cconn). */
static void kick(struct link *l)
{
	for (;;) {
		struct conn *c = l->conn;
		uv_buf_t bufs[TX_GATHER];
		unsigned n = 0;
		struct seg *s, *last = NULL;
		int r;

		if (!c || !c->connected || c->writing || l->tx_suspended || l->act_wait ||
		    !l->q_head || l->closing)
			return;
		switch (l->q_head->kind) {
		case SEG_DELAY:
			s = q_pop(l);
			l->act_wait = true;
			l->ctrl_waiting = false;
			uv_timer_start(&l->act_timer, act_timer_cb, s->val, 0);
			free(s);
			return;
		case SEG_ACT_END:
			free(q_pop(l));
			act_end(l);
			continue;
		case SEG_CTRL:
			/* The data before it is in the data socket, but may still sit in its
			 * kernel buffer: the control byte travels on another connection and
			 * could overtake it. Wait until the bridge acknowledged that data
			 * (bounded: after LEGACY_ANSWER_MS it goes anyway). */
			if (conn_unacked(c) > 0) {
				uint64_t now = uv_now(l->loop);
				if (l->ctrl_since == 0)
					l->ctrl_since = now;
				if (now - l->ctrl_since < LEGACY_ANSWER_MS) {
					l->act_wait = true;
					l->ctrl_waiting = false;
					uv_timer_start(&l->act_timer, act_timer_cb, CTRL_OUTQ_MS,
					               0);
					return;
				}
				log_debug("%s: data socket still holds %zu unacknowledged bytes; "
				          "sending the control byte anyway",
				          l->name, conn_unacked(c));
			}
			l->ctrl_since = 0;
			ctrl_send(l, q_pop(l));
			return;
		case SEG_DATA:
		case SEG_CMD:
			break;
		}
		c->inflight_data = 0;
		c->inflight_ctl = 0;
		for (s = l->q_head;
		     s && n < TX_GATHER && (s->kind == SEG_DATA || s->kind == SEG_CMD);
		     s = s->next) {
			bufs[n++] = uv_buf_init((char *)s->buf, (unsigned)s->len);
			c->inflight_data += s->data;
			if (s->kind == SEG_CMD) {
				c->inflight_ctl += s->len;
				if (s->ans)
					ans_push(l, s->cmd, s->val);
			}
			last = s;
		}
		c->inflight = l->q_head;
		l->q_head = last->next;
		if (!l->q_head)
			l->q_tail = NULL;
		last->next = NULL;
		c->writing = true;
		r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, bufs, n, write_cb);
		if (r < 0) {
			/* data stays counted in tx_pending: link_lost reports it dropped */
			c->writing = false;
			free_segs(c->inflight);
			c->inflight = NULL;
			l->ctl_pending -= c->inflight_ctl;
			note_error(l, "write to %s: %s", l->addr, uv_strerror(r));
			link_lost(l, r);
		}
		return;
	}
}

static void write_cb(uv_write_t *req, int status)
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
		note_error(l, "write to %s: %s", l->addr, uv_strerror(status));
		link_lost(l, status);
		return;
	}
	l->tx_pending -= done;
	l->tx_bytes += done;
	kick(l);
	if (l->closing || l->conn != c)
		return;
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
 * check_overflow() does once the caller is out of the decoder). Not queued. */
static struct seg *ctl_seg(struct link *l, enum seg_kind kind, const uint8_t *p, size_t n)
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

/* Queue a non-data wire sequence (Telnet option). Returns 0, or -ENOBUFS/-ENOMEM/-ENOTCONN
 * (see ctl_seg). Does not kick. */
static int queue_raw(struct link *l, const uint8_t *p, size_t n)
{
	struct seg *s = ctl_seg(l, SEG_CMD, p, n);

	if (!s)
		return l->conn ? -ENOBUFS : -ENOTCONN;
	q_append(l, s);
	return 0;
}

/* Drop the connection (and reconnect) if ctl_seg() hit CTL_MAX. Called where a
 * connection loss is safe to handle: after decoding a read, from the timer, at the end of
 * the public setters. Returns true if the connection was dropped. */
static bool check_overflow(struct link *l)
{
	if (!l->ctl_overflow || l->closing)
		return false;
	l->ctl_overflow = false;
	if (!l->conn)
		return false;
	log_warn("%s: bridge %s does not read what we send (%u bytes of telnet negotiation/"
	         "commands pending); dropping the connection",
	         l->name, l->addr, (unsigned)CTL_MAX);
	note_error(l, "bridge not reading (%u bytes of commands pending)", (unsigned)CTL_MAX);
	link_lost(l, UV_ENOBUFS);
	return true;
}

static void send_option(struct link *l, uint8_t verb, uint8_t opt)
{
	uint8_t b[3];

	if (tn_build_option(b, sizeof b, verb, opt) == 3 && queue_raw(l, b, 3) == 0)
		kick(l);
}

static const char *verb_name(enum tn_event_type t)
{
	switch (t) {
	case TN_EV_WILL:
		return "WILL";
	case TN_EV_WONT:
		return "WONT";
	case TN_EV_DO:
		return "DO";
	case TN_EV_DONT:
		return "DONT";
	default:
		return "?";
	}
}

/* Make one RFC 2217 command segment (client code cmd, value v); its answer is expected
 * once it is written (kick). NULL when it cannot be queued (logged). */
static struct seg *cmd_seg(struct link *l, uint8_t cmd, uint32_t v)
{
	uint8_t b[32];
	struct seg *s;
	int n;

	if (cmd == RFC2217_SET_BAUDRATE)
		n = rfc2217_build_u32(b, sizeof b, cmd, v);
	else
		n = rfc2217_build_u8(b, sizeof b, cmd, (uint8_t)v);
	s = n > 0 ? ctl_seg(l, SEG_CMD, b, (size_t)n) : NULL;
	if (!s) {
		if (!l->ctl_overflow)
			log_error("%s: cannot queue %s", l->name, rfc2217_cmd_name(cmd));
		return NULL;
	}
	s->ans = true;
	s->cmd = cmd;
	s->val = v;
	log_debug("%s: -> %s %u", l->name, rfc2217_cmd_name(cmd), (unsigned)v);
	return s;
}

/* Queue one RFC 2217 command (client code cmd) at the tail and kick. */
static void send_cmd(struct link *l, uint8_t cmd, uint32_t v)
{
	struct seg *s;

	if (l->comport_refused)
		return;
	s = cmd_seg(l, cmd, v);
	if (!s)
		return;
	q_append(l, s);
	kick(l);
}

/* Queue a marker (SEG_DELAY of ms, SEG_ACT_END). Returns 0 or -ENOMEM. */
static int queue_marker(struct link *l, enum seg_kind kind, uint32_t ms)
{
	struct seg *s = seg_new(0, kind);

	if (!s)
		return -ENOMEM;
	s->val = ms;
	q_append(l, s);
	return 0;
}

/* legacy: queue control byte c (in order with data). action: from link_action. */
static void send_ctrl(struct link *l, uint8_t c, bool action)
{
	struct seg *s = ctl_seg(l, SEG_CTRL, &c, 1);

	if (!s) {
		if (!l->ctl_overflow)
			log_error("%s: cannot queue control byte '%c'", l->name, c);
		return;
	}
	s->action = action;
	q_append(l, s);
	kick(l);
}

static uint8_t parity_code(char p)
{
	switch (p) {
	case 'N':
		return RFC2217_PARITY_NONE;
	case 'O':
		return RFC2217_PARITY_ODD;
	case 'E':
		return RFC2217_PARITY_EVEN;
	case 'M':
		return RFC2217_PARITY_MARK;
	case 'S':
		return RFC2217_PARITY_SPACE;
	}
	return 0;
}

static uint8_t flow_code(enum link_flow f)
{
	switch (f) {
	case LINK_FLOW_NONE:
		return RFC2217_CONTROL_FLOW_NONE;
	case LINK_FLOW_XONXOFF:
		return RFC2217_CONTROL_FLOW_XONXOFF;
	case LINK_FLOW_HARDWARE:
		return RFC2217_CONTROL_FLOW_HARDWARE;
	}
	return 0;
}

static bool is_boot_line(const struct link_line *ln)
{
	return ln->data_bits == 8 && ln->parity == 'E';
}

/* legacy: map the desired line to 'u'/'e' (link.h LINK_PROTO_LEGACY); DTR/RTS are only
 * remembered. */
static void legacy_sync(struct link *l)
{
	if (l->has_line) {
		const struct link_line *ln = &l->line;
		bool boot = is_boot_line(ln);
		if (!l->leg_baud_logged && (boot ? ln->baud != 115200 || ln->stop_bits != 1
		                                 : ln->data_bits != 8 || ln->parity != 'N' ||
		                                       ln->stop_bits != 1 || ln->baud != 115200)) {
			l->leg_baud_logged = true;
			log_info(
			    "%s: legacy protocol cannot set %u %u%c%s; the bridge uses 115200 "
			    "8E1 for the bootloader and its own baud, 8N1, for the application "
			    "(logged once)",
			    l->name, (unsigned)ln->baud, (unsigned)ln->data_bits, ln->parity,
			    ln->stop_bits == 1   ? "1"
			    : ln->stop_bits == 2 ? "2"
			                         : "1.5");
		}
		if (boot && !l->leg_boot) {
			log_info("%s: 8E1 asked: legacy command 'u' (bootloader)", l->name);
			l->leg_boot = true;
			send_ctrl(l, 'u', false);
		} else if (!boot && l->leg_boot) {
			log_info("%s: leaving 8E1: legacy command 'e' (application)", l->name);
			l->leg_boot = false;
			send_ctrl(l, 'e', false);
		}
	}
	if (l->has_rts && l->sent_rts != l->rts) {
		log_debug("%s: RTS %s (not carried by the legacy protocol)", l->name,
		          l->rts ? "on" : "off");
		l->sent_rts = l->rts;
	}
	if (l->has_dtr && l->sent_dtr != l->dtr) {
		log_debug("%s: DTR %s (not carried by the legacy protocol)", l->name,
		          l->dtr ? "on" : "off");
		l->sent_dtr = l->dtr;
	}
}

/* Send the parts of the desired state that differ from what this connection was sent
 * (all of it right after LINK_UP), in the order link.h fixes. */
static void sync_state(struct link *l)
{
	if (l->state != LINK_UP)
		return;
	if (l->legacy) {
		legacy_sync(l);
		return;
	}
	if (l->has_line) {
		bool all = !l->sent_has_line;
		if (all || l->sent_line.baud != l->line.baud)
			send_cmd(l, RFC2217_SET_BAUDRATE, l->line.baud);
		if (all || l->sent_line.data_bits != l->line.data_bits)
			send_cmd(l, RFC2217_SET_DATASIZE, l->line.data_bits);
		if (all || l->sent_line.parity != l->line.parity)
			send_cmd(l, RFC2217_SET_PARITY, parity_code(l->line.parity));
		if (all || l->sent_line.stop_bits != l->line.stop_bits)
			send_cmd(l, RFC2217_SET_STOPSIZE, l->line.stop_bits);
		l->sent_line = l->line;
		l->sent_has_line = true;
	}
	if (l->has_flow && l->sent_flow != (int)l->flow) {
		send_cmd(l, RFC2217_SET_CONTROL, flow_code(l->flow));
		l->sent_flow = (int)l->flow;
	}
	if (l->has_rts && l->sent_rts != l->rts) {
		send_cmd(l, RFC2217_SET_CONTROL,
		         l->rts ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF);
		l->sent_rts = l->rts;
	}
	if (l->has_dtr && l->sent_dtr != l->dtr) {
		send_cmd(l, RFC2217_SET_CONTROL,
		         l->dtr ? RFC2217_CONTROL_DTR_ON : RFC2217_CONTROL_DTR_OFF);
		l->sent_dtr = l->dtr;
	}
}

/* End of a link_action sequence (its SEG_ACT_END reached the head of the queue): put the
 * desired RTS and DTR (deasserted if never set) at the head, in that order. */
static void act_end(struct link *l)
{
	int rts = l->has_rts ? l->rts : 0, dtr = l->has_dtr ? l->dtr : 0;
	struct seg *sr, *sd;

	l->act_busy = false;
	if (l->comport_refused)
		return;
	sr =
	    cmd_seg(l, RFC2217_SET_CONTROL, rts ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF);
	sd =
	    cmd_seg(l, RFC2217_SET_CONTROL, dtr ? RFC2217_CONTROL_DTR_ON : RFC2217_CONTROL_DTR_OFF);
	if (sd) {
		q_push_front(l, sd);
		l->sent_dtr = dtr;
	}
	if (sr) {
		q_push_front(l, sr);
		l->sent_rts = rts;
	}
	log_debug("%s: action done", l->name);
}

/* The action timer: a SEG_DELAY is over, or a legacy control byte got no answer in time. */
static void act_timer_cb(uv_timer_t *t)
{
	struct link *l = t->data;

	if (l->closing || !l->act_wait)
		return;
	l->act_wait = false;
	if (l->ctrl_waiting) {
		l->ctrl_waiting = false;
		if (l->ctrl_action)
			l->act_busy = false;
		log_debug("%s: no answer on the control port within %u ms; continuing", l->name,
		          (unsigned)LEGACY_ANSWER_MS);
	}
	kick(l);
	check_overflow(l);
}

/* legacy: one answer line from the control port. */
static void ctrl_line(struct link *l, const char *line)
{
	if (!strncmp(line, "ERR", 3)) {
		log_warn("%s: bridge control port: %s", l->name, line);
		note_error(l, "control port: %.80s", line);
	} else {
		log_debug("%s: <- control: %s", l->name, line);
	}
	if (l->ctrl_waiting) {
		uv_timer_stop(&l->act_timer);
		l->act_wait = false;
		l->ctrl_waiting = false;
		if (l->ctrl_action)
			l->act_busy = false;
		kick(l);
	}
}

static void ctrl_rx(struct link *l, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && l->cconn && !l->closing; i++) {
		if (p[i] == '\n') {
			l->cline[l->cline_len] = '\0';
			l->cline_len = 0;
			ctrl_line(l, l->cline);
		} else if (p[i] != '\r' && l->cline_len < CLINE_MAX - 1) {
			l->cline[l->cline_len++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
		}
	}
}

/* ------------------------------------------------------------------ rx path */

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
	if (l->rxq_off + l->rxq_len + n > RXQ_CAP) { /* cannot happen (see top comment) */
		log_error("%s: receive buffer overflow, %zu bytes dropped", l->name, n);
		n = RXQ_CAP - l->rxq_off - l->rxq_len;
	}
	memcpy(l->rxq + l->rxq_off + l->rxq_len, p, n);
	l->rxq_len += n;
}

/* Input purge in progress (link_purge): n data bytes that arrived now were sent by the
 * bridge before the purge. Returns true if they are to be discarded (counted). */
static bool rx_discard(struct link *l, size_t n)
{
	if (l->discarding) {
		l->rx_purged += n;
		return true;
	}
	if (l->purge_wait == 0)
		return false;
	if (uv_now(l->loop) > l->purge_deadline) {
		log_warn("%s: no PURGE-DATA answer from %s within %u ms; delivering data again",
		         l->name, l->addr, (unsigned)PURGE_WAIT_MS);
		l->purge_wait = 0;
		return false;
	}
	l->rx_purged += n;
	return true;
}

static bool accept_opt(uint8_t opt)
{
	return opt == TELOPT_BINARY || opt == TELOPT_SGA || opt == TELOPT_COMPORT;
}

/* RFC 1143 Q method, one side. st: our record of the option on that side; yes/no: the
 * verbs we answer with (DO/DONT for his side, WILL/WONT for ours). */
static void opt_recv(struct link *l, uint8_t *st, bool *refused, uint8_t opt, bool positive,
                     uint8_t yes, uint8_t no)
{
	if (positive) {
		switch (*st) {
		case Q_NO:
			if (accept_opt(opt)) {
				*st = Q_YES;
				send_option(l, yes, opt);
			} else if (!*refused) {
				*refused = true;
				log_debug("%s: refusing telnet option %u", l->name, opt);
				send_option(l, no, opt);
			}
			break;
		case Q_YES:
			break;
		case Q_WANTNO: /* peer answered our "no" with "yes": RFC 1143 error, stay no */
			*st = Q_NO;
			break;
		case Q_WANTYES:
			*st = Q_YES;
			break;
		}
	} else {
		switch (*st) {
		case Q_NO:
			break;
		case Q_YES:
			*st = Q_NO;
			send_option(l, no, opt);
			break;
		case Q_WANTNO:
		case Q_WANTYES:
			*st = Q_NO;
			break;
		}
	}
}

static void handle_option(struct link *l, enum tn_event_type t, uint8_t opt)
{
	uint8_t before = l->us[TELOPT_COMPORT];

	switch (t) {
	case TN_EV_WILL:
		opt_recv(l, &l->him[opt], &l->refused_him[opt], opt, true, TN_DO, TN_DONT);
		break;
	case TN_EV_WONT:
		opt_recv(l, &l->him[opt], &l->refused_him[opt], opt, false, TN_DO, TN_DONT);
		break;
	case TN_EV_DO:
		opt_recv(l, &l->us[opt], &l->refused_us[opt], opt, true, TN_WILL, TN_WONT);
		break;
	case TN_EV_DONT:
		opt_recv(l, &l->us[opt], &l->refused_us[opt], opt, false, TN_WILL, TN_WONT);
		break;
	default:
		return;
	}
	if (opt != TELOPT_COMPORT || !l->conn)
		return;
	if (l->us[TELOPT_COMPORT] == Q_YES && before != Q_YES) {
		bool late = l->comport_refused && l->state == LINK_UP;
		l->comport_refused = false;
		if (l->state != LINK_UP) {
			go_up(l);
		} else if (late) { /* agreed after the timeout: send the whole state now */
			log_info("%s: bridge %s agreed to COM-PORT-OPTION late; sending settings",
			         l->name, l->addr);
			l->sent_has_line = false;
			l->sent_flow = l->sent_rts = l->sent_dtr = -1;
			sync_state(l);
		}
	} else if (t == TN_EV_DONT && before != Q_NO) {
		log_warn("%s: bridge %s refused COM-PORT-OPTION (RFC 2217): port settings "
		         "and DTR/RTS will not be applied",
		         l->name, l->addr);
		l->comport_refused = true;
		if (l->state != LINK_UP)
			go_up(l);
	}
}

static void handle_answer(struct link *l, const struct rfc2217_msg *m)
{
	struct ansq *q = &l->ans[m->cmd];
	uint32_t asked;

	if (q->n == 0) {
		log_debug("%s: unsolicited %s %u", l->name, rfc2217_cmd_name(m->code),
		          (unsigned)m->value);
		return;
	}
	asked = q->v[q->head];
	q->head = (q->head + 1) % ANSQ_LEN;
	q->n--;
	if (asked == 0 || m->cmd == RFC2217_PURGE_DATA ||
	    (m->cmd == RFC2217_SET_CONTROL &&
	     (asked == RFC2217_CONTROL_FLOW_QUERY || asked == RFC2217_CONTROL_BREAK_QUERY ||
	      asked == RFC2217_CONTROL_DTR_QUERY || asked == RFC2217_CONTROL_RTS_QUERY))) {
		log_debug("%s: <- %s %u", l->name, rfc2217_cmd_name(m->code), (unsigned)m->value);
		return;
	}
	if (m->value != asked)
		log_warn("%s: bridge answered %s %u, asked for %u", l->name,
		         rfc2217_cmd_name(m->code), (unsigned)m->value, (unsigned)asked);
	else
		log_debug("%s: <- %s %u (ok)", l->name, rfc2217_cmd_name(m->code),
		          (unsigned)m->value);
}

static void handle_comport(struct link *l, const struct tn_event *ev)
{
	struct rfc2217_msg m;

	if (rfc2217_parse(ev->data, ev->len, &m) < 0) {
		log_debug("%s: ignoring malformed COM-PORT-OPTION message (%zu bytes)", l->name,
		          ev->len);
		return;
	}
	if (!m.from_server) {
		log_debug("%s: ignoring client command %s from the bridge", l->name,
		          rfc2217_cmd_name(m.code));
		return;
	}
	switch (m.cmd) {
	case RFC2217_SIGNATURE:
		log_info("%s: bridge signature: %.*s", l->name,
		         (int)(m.text_len > 200 ? 200 : m.text_len),
		         m.text ? (const char *)m.text : "");
		break;
	case RFC2217_NOTIFY_LINESTATE:
		l->linestate = (uint8_t)m.value;
		if (l->cb.on_linestate)
			l->cb.on_linestate(l->ctx, l->linestate);
		break;
	case RFC2217_NOTIFY_MODEMSTATE:
		l->modemstate = (uint8_t)m.value;
		if (l->cb.on_modemstate)
			l->cb.on_modemstate(l->ctx, l->modemstate);
		break;
	case RFC2217_FLOWCONTROL_SUSPEND:
		log_debug("%s: bridge suspends our output", l->name);
		l->tx_suspended = true;
		break;
	case RFC2217_FLOWCONTROL_RESUME:
		log_debug("%s: bridge resumes our output", l->name);
		l->tx_suspended = false;
		kick(l);
		break;
	case RFC2217_PURGE_DATA:
		/* the bridge sends its answer after the data it had already queued for us:
		 * what follows it is new (link_purge) */
		if ((m.value & RFC2217_PURGE_RX) && l->purge_wait > 0) {
			l->purge_wait--;
			if (l->purge_wait == 0)
				log_debug("%s: input purge done (%" PRIu64
				          " bytes discarded so far)",
				          l->name, l->rx_purged);
		}
		handle_answer(l, &m);
		break;
	default:
		if (m.cmd < NCMD)
			handle_answer(l, &m);
		break;
	}
}

static void tn_cb(void *ctx, const struct tn_event *ev)
{
	struct link *l = ctx;

	if (l->closing || !l->conn)
		return; /* link closed or connection dropped by a callback mid-buffer */
	switch (ev->type) {
	case TN_EV_DATA:
		if (rx_discard(l, ev->len))
			break;
		rx_data(l, ev->data, ev->len);
		break;
	case TN_EV_WILL:
	case TN_EV_WONT:
	case TN_EV_DO:
	case TN_EV_DONT:
		log_debug("%s: <- %s %u", l->name, verb_name(ev->type), ev->opt);
		handle_option(l, ev->type, ev->opt);
		break;
	case TN_EV_SB:
		if (ev->opt == TELOPT_COMPORT && !ev->truncated)
			handle_comport(l, ev);
		else
			log_debug("%s: ignoring subnegotiation for option %u", l->name, ev->opt);
		break;
	case TN_EV_COMMAND:
		log_debug("%s: ignoring telnet command %u", l->name, ev->opt);
		break;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	struct conn *c = h->data;
	(void)suggested;
	if (!c->l) {
		*b = uv_buf_init(NULL, 0);
		return;
	}
	if (c->control)
		*b = uv_buf_init((char *)c->l->craw, sizeof c->l->craw);
	else
		*b = uv_buf_init((char *)c->l->raw, sizeof c->l->raw);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);

static void read_start(struct link *l)
{
	if (!l->conn || !l->conn->connected || l->reading)
		return;
	if (uv_read_start((uv_stream_t *)&l->conn->tcp, alloc_cb, read_cb) == 0)
		l->reading = true;
}

static void pause_reads(struct link *l)
{
	if (l->reading && l->conn)
		uv_read_stop((uv_stream_t *)&l->conn->tcp);
	l->reading = false;
	l->paused = true;
}

/* The bridge can be asked to stop sending data (RFC 2217 FLOWCONTROL-SUSPEND) while its
 * answers and notifications keep coming: COM-PORT-OPTION agreed on this connection. */
static bool can_suspend(const struct link *l)
{
	return !l->legacy && l->state == LINK_UP && l->conn && !l->comport_refused &&
	       l->us[TELOPT_COMPORT] == Q_YES;
}

/* Send FLOWCONTROL-SUSPEND (on) or -RESUME (RFC 2217; no answer is expected), at the head
 * of the queue: flow control does not wait behind our output. */
static void send_rx_flow(struct link *l, bool on)
{
	uint8_t b[16];
	struct seg *s;
	int n = rfc2217_build(
	    b, sizeof b, on ? RFC2217_FLOWCONTROL_SUSPEND : RFC2217_FLOWCONTROL_RESUME, NULL, 0);

	if (n <= 0)
		return;
	s = ctl_seg(l, SEG_CMD, b, (size_t)n);
	if (!s)
		return;
	log_debug("%s: -> %s", l->name, on ? "FLOWCONTROL-SUSPEND" : "FLOWCONTROL-RESUME");
	q_push_front(l, s);
	l->rx_susp = on;
	kick(l);
}

/* Whether socket reads may run with what is held for the tty now (link.h "bridge -> tty"):
 * nothing held; or room for one more read and either negotiating (its answers must be
 * read) or the bridge was asked to suspend (only data already in flight arrives). */
static bool may_read(const struct link *l)
{
	if (l->rxq_len == 0)
		return true;
	if (l->rxq_len > RXQ_READ_MAX)
		return false;
	return l->state != LINK_UP || l->rx_susp;
}

/* After a read or a delivery: suspend the bridge if the tty left data, resume it once
 * everything was delivered, pause reads when may_read() says so. */
static void rx_flow(struct link *l)
{
	if (l->closing || !l->conn)
		return;
	if (l->rxq_len > 0 && !l->rx_susp && can_suspend(l))
		send_rx_flow(l, true);
	else if (l->rxq_len == 0 && l->rx_susp && l->state == LINK_UP)
		send_rx_flow(l, false);
	if (l->closing || !l->conn)
		return;
	if (!may_read(l)) {
		if (l->reading)
			log_debug("%s: tty full, %zu bytes held, pausing reads", l->name,
			          l->rxq_len);
		pause_reads(l);
	} else if (l->paused) {
		l->paused = false;
		read_start(l);
	}
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	struct link *l = c->l;

	(void)buf;
	if (!l || l->closing || nread == 0)
		return;
	if (nread < 0) {
		if (c->control)
			log_debug("%s: control connection: %s", l->name,
			          nread == UV_EOF ? "closed by the bridge"
			                          : uv_strerror((int)nread));
		link_lost(l, (int)nread);
		return;
	}
	if (c->control) {
		ctrl_rx(l, l->craw, (size_t)nread);
		check_overflow(l);
		return;
	}
	size_t off = 0, n = (size_t)nread;
	while (off < n && !l->closing && l->conn == c) {
		/* a part whose data was readable at an input purge: decoded, data discarded */
		size_t k = n - off;
		l->discarding = l->discard_raw > 0;
		if (l->discarding && k > l->discard_raw)
			k = l->discard_raw;
		if (l->discarding)
			l->discard_raw -= k;
		if (l->legacy) {
			if (!rx_discard(l, k))
				rx_data(l, l->raw + off, k);
		} else {
			tn_decode(&l->dec, l->raw + off, k, tn_cb, l);
		}
		l->discarding = false;
		off += k;
	}
	if (l->closing || l->conn != c || check_overflow(l))
		return;
	rx_flow(l);
}

/* ----------------------------------------------------------- state machine */

static void go_up(struct link *l)
{
	uint8_t b[8];
	int n;

	if (l->state == LINK_UP || !l->conn)
		return;
	timer_stop(l);
	l->up_since = uv_now(l->loop);
	if (l->connects > 0)
		l->reconnects++;
	l->connects++;
	if (l->connects > 1)
		log_info("%s: up: %s%s (reconnect %u)", l->name, l->addr,
		         l->legacy ? " (legacy ports)" : "", (unsigned)l->reconnects);
	else if (l->attempts > 0)
		log_info("%s: up: %s%s (after %u failed attempts)", l->name, l->addr,
		         l->legacy ? " (legacy ports)" : "", l->attempts);
	else
		log_info("%s: up: %s%s", l->name, l->addr, l->legacy ? " (legacy ports)" : "");
	l->attempts = 0;
	l->fail_status = 0;
	l->lost_logged = false;
	l->state = LINK_UP; /* set first so sync_state sends; on_state fired below */
	l->sent_has_line = false;
	l->sent_flow = l->sent_rts = l->sent_dtr = -1;
	/* legacy: the bridge may have restarted; 8E1 asked means bootloader again */
	if (l->legacy && l->has_line && is_boot_line(&l->line))
		l->leg_boot = false;
	sync_state(l);
	if (!l->conn)
		return;
	if (!l->comport_refused && !l->legacy) {
		n = rfc2217_build(b, sizeof b, RFC2217_SIGNATURE, NULL, 0);
		if (n > 0 && queue_raw(l, b, (size_t)n) == 0)
			kick(l);
	}
	log_debug("%s: link connecting -> up", l->name);
	if (l->cb.on_state && !l->closing)
		l->cb.on_state(l->ctx, LINK_UP);
	if (!l->closing && l->state == LINK_UP && l->want_writable) {
		l->want_writable = false;
		if (l->cb.on_writable)
			l->cb.on_writable(l->ctx);
	}
}

static void fmt_status(int status, char *out, size_t cap)
{
	snprintf(out, cap, "%s", status == UV_ETIMEDOUT ? "timed out" : uv_strerror(status));
}

/* A whole round (resolution + every address) failed: log once, wait, retry. */
static void round_failed(struct link *l, int status)
{
	char why[128];

	ai_drop(l);
	l->attempts++;
	fmt_status(status, why, sizeof why);
	note_error(l, "connect to %.40s: %.40s", l->addr, why);
	if (l->attempts == 1 && !l->lost_logged)
		log_warn("%s: cannot connect to %s: %s; retrying every %u..%u ms", l->name, l->addr,
		         why, (unsigned)l->cfg.reconnect_min_ms, (unsigned)l->cfg.reconnect_max_ms);
	else if (status != l->fail_status)
		log_info("%s: still cannot connect to %s: %s", l->name, l->addr, why);
	else
		log_debug("%s: attempt %u to %s failed: %s; next in %u ms", l->name, l->attempts,
		          l->addr, why, (unsigned)l->backoff_ms);
	l->fail_status = status;
	timer_arm(l, PH_BACKOFF, l->backoff_ms);
	l->backoff_ms = l->backoff_ms * 2 > l->cfg.reconnect_max_ms ? l->cfg.reconnect_max_ms
	                                                            : l->backoff_ms * 2;
}

static void link_lost(struct link *l, int status)
{
	char why[128];
	size_t undelivered = l->tx_pending;
	bool was_up = l->state == LINK_UP;

	if (l->closing)
		return;
	if (status == UV_EOF)
		snprintf(why, sizeof why, "closed by the bridge");
	else
		fmt_status(status, why, sizeof why);
	conn_drop(l);
	free_segs(l->q_head);
	l->q_head = l->q_tail = NULL;
	l->tx_pending = 0;
	l->ctl_pending = 0;
	l->ctl_overflow = false;
	l->want_writable = false;
	l->tx_suspended = false;
	l->rx_susp = false;
	l->paused = false;
	l->purge_wait = 0;
	l->discard_raw = 0;
	l->ctrl_since = 0;
	uv_timer_stop(&l->act_timer);
	l->act_busy = l->act_wait = l->ctrl_waiting = false;
	ans_clear(l);
	if (was_up) {
		log_warn("%s: connection to %s lost (%s)", l->name, l->addr, why);
		if (undelivered > 0)
			log_warn("%s: connection lost, %zu bytes for the bridge dropped", l->name,
			         undelivered);
		l->tx_dropped += undelivered;
		note_error(l, "connection lost: %.80s", why);
		l->lost_logged = true;
		if (uv_now(l->loop) - l->up_since >= l->cfg.reconnect_max_ms)
			l->backoff_ms = l->cfg.reconnect_min_ms;
		timer_arm(l, PH_BACKOFF, l->backoff_ms);
		l->backoff_ms = l->backoff_ms * 2 > l->cfg.reconnect_max_ms
		                    ? l->cfg.reconnect_max_ms
		                    : l->backoff_ms * 2;
		set_state(l, LINK_CONNECTING);
		if (!l->closing && undelivered > 0 && l->cb.on_drained)
			l->cb.on_drained(l->ctx); /* nothing is pending any more */
	} else {
		/* lost during negotiation: counts as a failed attempt */
		log_debug("%s: connection to %s closed during negotiation (%s)", l->name, l->addr,
		          why);
		round_failed(l, status);
	}
}

/* legacy: the control connection of this attempt is up: wait LEGACY_SETTLE_MS (a busy
 * bridge closes at once) before LINK_UP. */
static void ctrl_connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct link *l = c->l;

	if (!l || l->closing)
		return;
	if (status < 0) {
		log_debug("%s: control port %u: %s", l->name, (unsigned)l->cfg.control_port,
		          uv_strerror(status));
		l->last_status = status;
		conn_drop(l);
		connect_next(l);
		return;
	}
	c->connected = true;
	ai_drop(l);
	conn_opts(l, c);
	log_debug("%s: legacy data and control ports connected", l->name);
	timer_arm(l, PH_NEGOTIATE, LEGACY_SETTLE_MS);
	if (uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb) < 0) {
		l->last_status = UV_EIO;
		conn_drop(l);
		connect_next(l);
	}
}

/* legacy: connect the control connection to the data connection's address, control_port. */
static void ctrl_connect(struct link *l)
{
	struct sockaddr_storage sa = l->cur_addr;
	struct conn *c = conn_new(l, true);
	int r;

	if (!c) {
		conn_drop(l);
		round_failed(l, UV_ENOMEM);
		return;
	}
	if (sa.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&sa)->sin6_port = htons(l->cfg.control_port);
	else
		((struct sockaddr_in *)&sa)->sin_port = htons(l->cfg.control_port);
	r = uv_tcp_init(l->loop, &c->tcp);
	if (r < 0) {
		free(c);
		l->last_status = r;
		conn_drop(l);
		connect_next(l);
		return;
	}
	l->cconn = c;
	r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&sa, ctrl_connect_cb);
	if (r < 0) {
		l->last_status = r;
		conn_drop(l);
		connect_next(l);
		return;
	}
	timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct link *l = c->l;
	uint8_t b[16];
	size_t n = 0;

	if (!l || l->closing)
		return;
	if (status < 0) {
		l->last_status = status;
		conn_drop(l);
		connect_next(l);
		return;
	}
	c->connected = true;
	conn_opts(l, c);
	l->tx_suspended = false;
	l->rx_susp = false;
	if (l->legacy) {
		log_debug("%s: TCP connected to %s, connecting the control port %u", l->name,
		          l->addr, (unsigned)l->cfg.control_port);
		if (may_read(l))
			read_start(l);
		else
			l->paused = true;
		ctrl_connect(l);
		return;
	}
	ai_drop(l);
	log_debug("%s: TCP connected to %s, negotiating", l->name, l->addr);

	tn_decoder_init(&l->dec);
	memset(l->us, Q_NO, sizeof l->us);
	memset(l->him, Q_NO, sizeof l->him);
	memset(l->refused_us, 0, sizeof l->refused_us);
	memset(l->refused_him, 0, sizeof l->refused_him);
	l->comport_refused = false;
	ans_clear(l);
	/* As pyserial's client: offer BINARY and SGA both ways and COM-PORT-OPTION (RFC 2217
	 * section "Negotiating the Telnet Com Port Control Option": client sends WILL). */
	static const uint8_t offer[][2] = {
	    {TN_WILL, TELOPT_BINARY}, {TN_DO, TELOPT_BINARY},    {TN_WILL, TELOPT_SGA},
	    {TN_DO, TELOPT_SGA},      {TN_WILL, TELOPT_COMPORT},
	};
	for (size_t i = 0; i < sizeof offer / sizeof offer[0]; i++) {
		int k = tn_build_option(b + n, sizeof b - n, offer[i][0], offer[i][1]);
		if (k > 0)
			n += (size_t)k;
	}
	l->us[TELOPT_BINARY] = l->him[TELOPT_BINARY] = Q_WANTYES;
	l->us[TELOPT_SGA] = l->him[TELOPT_SGA] = Q_WANTYES;
	l->us[TELOPT_COMPORT] = Q_WANTYES;
	timer_arm(l, PH_NEGOTIATE, NEGOTIATE_MS);
	if (queue_raw(l, b, n) == 0)
		kick(l);
	if (l->closing || l->conn != c || check_overflow(l))
		return;
	/* data held from the previous connection does not stop this one's negotiation
	 * (may_read: reads go on while not up, up to the bound) */
	if (may_read(l))
		read_start(l);
	else
		l->paused = true;
}

/* Try the next resolved address, or fail the round. */
static void connect_next(struct link *l)
{
	struct addrinfo *ai = l->ai_next;
	struct conn *c;
	int r;

	if (!ai) {
		round_failed(l, l->last_status ? l->last_status : UV_ECONNREFUSED);
		return;
	}
	l->ai_next = ai->ai_next;
	c = conn_new(l, false);
	if (!c) {
		round_failed(l, UV_ENOMEM);
		return;
	}
	r = uv_tcp_init(l->loop, &c->tcp);
	if (r < 0) {
		free(c);
		l->last_status = r;
		connect_next(l);
		return;
	}
	l->conn = c;
	memset(&l->cur_addr, 0, sizeof l->cur_addr);
	if (ai->ai_addrlen <= sizeof l->cur_addr)
		memcpy(&l->cur_addr, ai->ai_addr, ai->ai_addrlen);
	r = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, connect_cb);
	if (r < 0) {
		l->last_status = r;
		conn_drop(l);
		connect_next(l);
		return;
	}
	timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gai *g = req->data;
	struct link *l = g->l;

	free(g);
	if (!l || l->closing) {
		if (res)
			uv_freeaddrinfo(res);
		return;
	}
	l->gai = NULL;
	if (status < 0) {
		if (res)
			uv_freeaddrinfo(res);
		round_failed(l, status);
		return;
	}
	l->ai_list = l->ai_next = res;
	l->last_status = 0;
	connect_next(l);
}

static void start_attempt(struct link *l)
{
	struct addrinfo hints;
	char port[8];
	struct gai *g;
	int r;

	if (l->closing)
		return;
	set_state(l, LINK_CONNECTING);
	if (l->attempts == 0 && !l->lost_logged)
		log_info("%s: connecting to %s", l->name, l->addr);
	g = calloc(1, sizeof *g);
	if (!g) {
		round_failed(l, UV_ENOMEM);
		return;
	}
	g->l = l;
	g->req.data = g;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof port, "%u", (unsigned)l->cfg.port);
	l->gai = g;
	timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
	r = uv_getaddrinfo(l->loop, &g->req, gai_cb, l->host, port, &hints);
	if (r < 0) {
		l->gai = NULL;
		free(g);
		round_failed(l, r);
	}
}

static void timer_cb(uv_timer_t *t)
{
	struct link *l = t->data;
	enum phase ph = l->phase;

	l->phase = PH_NONE;
	switch (ph) {
	case PH_CONNECT:
		l->last_status = UV_ETIMEDOUT;
		if (l->gai) {
			gai_drop(l);
			round_failed(l, UV_ETIMEDOUT);
		} else {
			conn_drop(l);
			connect_next(l);
		}
		break;
	case PH_NEGOTIATE:
		if (l->paused) {
			/* we stopped reading (the tty holds data nobody reads): the bridge's
			 * answer may be unread in the socket; not its fault, wait on */
			log_debug("%s: negotiation waits for the tty to take held data", l->name);
			timer_arm(l, PH_NEGOTIATE, NEGOTIATE_MS);
			break;
		}
		if (l->legacy) { /* both legacy connections stayed open: up */
			go_up(l);
			check_overflow(l);
			break;
		}
		/* Not an RFC 2217 server (or a very slow one): carry data, but do not send
		 * COM-PORT-OPTION commands into what may be a raw byte stream. They are sent
		 * if DO COM-PORT-OPTION still arrives (handle_option). */
		log_warn("%s: bridge %s did not agree to COM-PORT-OPTION within %u ms; "
		         "continuing without sending port settings",
		         l->name, l->addr, (unsigned)NEGOTIATE_MS);
		l->comport_refused = true;
		go_up(l);
		check_overflow(l);
		break;
	case PH_BACKOFF:
		start_attempt(l);
		break;
	case PH_NONE:
		break;
	}
}

/* ------------------------------------------------------------------ public */

static void link_free_cb(uv_handle_t *h)
{
	struct link *l = h->data;

	if (--l->handles > 0)
		return;
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
	    ((cfg->control_port == 0 && cfg->port == 65535) || cfg->control_port == cfg->port))
		return -EINVAL;
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
	l->legacy = cfg->protocol == LINK_PROTO_LEGACY;
	if (l->legacy && l->cfg.control_port == 0)
		l->cfg.control_port = (uint16_t)(cfg->port + 1);
	if (strchr(l->host, ':'))
		snprintf(l->addr, sizeof l->addr, "[%s]:%u", l->host, (unsigned)cfg->port);
	else
		snprintf(l->addr, sizeof l->addr, "%s:%u", l->host, (unsigned)cfg->port);
	l->backoff_ms = cfg->reconnect_min_ms;
	l->state = LINK_CONNECTING;
	l->sent_flow = l->sent_rts = l->sent_dtr = -1;
	r = uv_timer_init(loop, &l->timer);
	if (r < 0) {
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
	start_attempt(l);
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
	l->closing = true;
	l->state = LINK_DOWN;
	gai_drop(l);
	conn_drop(l);
	ai_drop(l);
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
 * LINK_PROTO_LEGACY). Takes
 * p/n (bytes). Returns bytes accepted (0..n): 0 when not LINK_UP or when the queue holds
 * LINK_TXQ_MAX bytes. After a short return, or a call that left the queue full,
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
			q_append(l, s);
		}
		if (l->legacy) { /* raw port: no Telnet, 0xFF as is */
			consumed = want < s->cap - s->len ? want : s->cap - s->len;
			memcpy(s->buf + s->len, p + taken, consumed);
			s->len += consumed;
		} else {
			s->len +=
			    tn_escape(p + taken, want, s->buf + s->len, s->cap - s->len, &consumed);
		}
		s->data += consumed;
		l->tx_pending += consumed;
		taken += consumed;
		if (consumed == 0) /* cannot happen with >= 2 bytes free; be safe */
			break;
	}
	if (taken < n || l->tx_pending >= LINK_TXQ_MAX)
		l->want_writable = true;
	kick(l);
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
	    !parity_code(line->parity) || line->stop_bits < 1 || line->stop_bits > 3)
		return -EINVAL;
	l->line = *line;
	l->has_line = true;
	sync_state(l);
	check_overflow(l);
	return 0;
}

/* Remember DTR (asserted != 0) and send SET-CONTROL 8/9 if up and changed (RFC 2217).
 * Returns 0. */
int link_set_dtr(struct link *l, int asserted)
{
	if (!l)
		return -EINVAL;
	l->dtr = asserted ? 1 : 0;
	l->has_dtr = true;
	sync_state(l);
	check_overflow(l);
	return 0;
}

/* Remember RTS (asserted != 0) and send SET-CONTROL 11/12 if up and changed (RFC 2217).
 * Returns 0. */
int link_set_rts(struct link *l, int asserted)
{
	if (!l)
		return -EINVAL;
	l->rts = asserted ? 1 : 0;
	l->has_rts = true;
	sync_state(l);
	check_overflow(l);
	return 0;
}

/* Remember flow control and send SET-CONTROL 1/2/3 if up and changed (RFC 2217).
 * Returns 0 or -EINVAL for a value outside enum link_flow. */
int link_set_flow(struct link *l, enum link_flow flow)
{
	if (!l ||
	    (flow != LINK_FLOW_NONE && flow != LINK_FLOW_XONXOFF && flow != LINK_FLOW_HARDWARE))
		return -EINVAL;
	l->flow = flow;
	l->has_flow = true;
	sync_state(l);
	check_overflow(l);
	return 0;
}

/* Send SET-CONTROL 5 (on != 0) or 6 (RFC 2217) if up; not remembered. Returns 0 (also
 * when down: nothing is sent), -ENOTSUP for LINK_PROTO_LEGACY (no BREAK there). */
int link_set_break(struct link *l, int on)
{
	if (!l)
		return -EINVAL;
	if (l->legacy)
		return -ENOTSUP;
	if (l->state == LINK_UP && l->conn)
		send_cmd(l, RFC2217_SET_CONTROL,
		         on ? RFC2217_CONTROL_BREAK_ON : RFC2217_CONTROL_BREAK_OFF);
	check_overflow(l);
	return 0;
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
		/* What the bridge sent before the purge may still be on its way (socket
		 * buffers both ends, the bridge's own): discard it too. RFC 2217: until the
		 * bridge's PURGE-DATA answer, which follows that data in-band (firmware/core/
		 * bridge.c queues it behind). Otherwise: what is readable now. */
		if (can_suspend(l)) {
			l->purge_wait++;
			l->purge_deadline = uv_now(l->loop) + PURGE_WAIT_MS;
		} else if (l->conn) {
			l->discard_raw += conn_readable(l->conn);
		}
	}
	if (l->state == LINK_UP && l->conn && !l->legacy)
		send_cmd(l, RFC2217_PURGE_DATA, (uint32_t)which);
	ret = l->legacy ? -ENOTSUP : 0;
	if (check_overflow(l))
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
	return conn_unacked(l->conn);
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

	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "";
	if (uv_tcp_getpeername(&l->conn->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, ip, sizeof ip);
			snprintf(st->peer, sizeof st->peer, "[%s]:%u", ip,
			         (unsigned)ntohs(a->sin6_port));
		} else if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
			uv_ip4_name(a, ip, sizeof ip);
			snprintf(st->peer, sizeof st->peer, "%s:%u", ip,
			         (unsigned)ntohs(a->sin_port));
		}
	}
	uv_os_fd_t fd;
	if (uv_fileno((const uv_handle_t *)&l->conn->tcp, &fd) == 0) {
		struct tcp_info ti;
		socklen_t tl = sizeof ti;
		memset(&ti, 0, sizeof ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
		    tl >= offsetof(struct tcp_info, tcpi_rtt) + sizeof ti.tcpi_rtt)
			st->rtt_us = ti.tcpi_rtt;
	}
}

/* Run a boot-control action (link.h enum link_action). RFC 2217: queue, in stream order,
 * the SET-CONTROL sequence (RFC 2217 "SET-CONTROL" DTR 8/9, RTS 11/12; pin meaning from
 * ../shared/ARCHITECTURE.md) with ACT_PULSE_MS (100 ms) of NRST pulse timed by the daemon
 * once the step before it was handed to the kernel, and for BOOT ACT_SETTLE_MS (50 ms)
 * after NRST release before RTS goes back; then the desired RTS and DTR (deasserted if
 * the tty never set them). Data written meanwhile follows the sequence. LINK_PROTO_LEGACY:
 * the control byte 'r', 'u' or 'e', in order with data; the action lasts until the
 * bridge answers or LEGACY_ANSWER_MS pass. Returns 0 (started), -ENOTCONN (not LINK_UP),
 * -EBUSY (another action is still running), -EINVAL (unknown action), -ENOTSUP (the
 * bridge refused COM-PORT-OPTION: it would not apply DTR/RTS), -ENOMEM. */
int link_action(struct link *l, enum link_action a)
{
	static const uint8_t legacy_byte[] = {'r', 'u', 'e'};
	uint8_t first;
	int r = 0;

	if (!l || (a != LINK_ACTION_RESET && a != LINK_ACTION_BOOT && a != LINK_ACTION_RUN))
		return -EINVAL;
	if (l->closing || l->state != LINK_UP || !l->conn)
		return -ENOTCONN;
	if (l->act_busy)
		return -EBUSY;
	if (l->legacy) {
		log_info("%s: action %s: legacy command '%c'", l->name,
		         a == LINK_ACTION_RESET  ? "reset"
		         : a == LINK_ACTION_BOOT ? "boot"
		                                 : "run",
		         legacy_byte[a]);
		/* 'e' runs the application at 8N1: a later 8E1 must send 'u' again. 'u' here is
		 * not recorded: a later non-8E1 line (often the same one re-applied) must not
		 * undo the boot the user asked for. */
		if (a == LINK_ACTION_RUN)
			l->leg_boot = false;
		l->act_busy = true;
		send_ctrl(l, legacy_byte[a], true);
		if (check_overflow(l))
			return -ENOTCONN;
		return 0;
	}
	if (l->comport_refused)
		return -ENOTSUP;
	log_info("%s: action %s", l->name,
	         a == LINK_ACTION_RESET  ? "reset"
	         : a == LINK_ACTION_BOOT ? "boot"
	                                 : "run");
	/* BOOT0 first (RTS), then NRST low (DTR on), pulse, release (DTR off) */
	first = a == LINK_ACTION_BOOT ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF;
	const uint8_t steps[] = {first, RFC2217_CONTROL_DTR_ON, 0, RFC2217_CONTROL_DTR_OFF};
	for (size_t i = a == LINK_ACTION_RESET ? 1 : 0; i < sizeof steps && r == 0; i++) {
		if (steps[i] == 0) {
			r = queue_marker(l, SEG_DELAY, ACT_PULSE_MS);
			continue;
		}
		struct seg *s = cmd_seg(l, RFC2217_SET_CONTROL, steps[i]);
		if (!s)
			r = l->ctl_overflow ? -ENOBUFS : -ENOMEM;
		else
			q_append(l, s);
	}
	if (r == 0 && a == LINK_ACTION_BOOT)
		r = queue_marker(l, SEG_DELAY, ACT_SETTLE_MS);
	if (r == 0)
		r = queue_marker(l, SEG_ACT_END, 0);
	if (r == 0)
		l->act_busy = true;
	if (r < 0) { /* partly queued: re-send the desired lines, nothing is left half done */
		l->sent_rts = l->sent_dtr = -1;
		sync_state(l);
	}
	kick(l);
	if (check_overflow(l))
		return -ENOTCONN;
	return r == -ENOBUFS ? -ENOTCONN : r;
}
