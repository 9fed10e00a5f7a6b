/* SPDX-License-Identifier: MIT */
/*
 * link_legacy: the seed firmware's two-port protocol behind struct link_proto (link.h
 * LINK_PROTO_LEGACY). A second connection (cconn) goes to the control port. Both are
 * opened per attempt (data first, then control, same address), the link is up once both
 * are connected and stayed so for LEGACY_SETTLE_MS (a busy bridge closes at once), and
 * losing either drops both. No Telnet: data passes as is. A control byte waits in the TX
 * queue until the data before it is written and acknowledged by the bridge (SIOCOUTQ 0 on
 * the data socket, at most LEGACY_ANSWER_MS: it must not overtake that data), then holds
 * the data behind it until the bridge answered ("OK ..."/"ERR ...") or LEGACY_ANSWER_MS
 * passed (the seed firmware answers nothing), so 0x7F after 'u' reaches the bridge after
 * the command.
 */
#include "link_impl.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

/* Write one control byte (a SEG_CTRL taken off the queue) on the control connection and
 * make the queue wait for the answer. */
static void ctrl_send(struct link *l, struct seg *s)
{
	struct conn *c = l->cconn;
	uv_buf_t b;
	int r;

	if (!c || c->writing) { /* one control byte at a time: should not happen */
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
	l->lg.ctrl_waiting = true;
	l->lg.ctrl_action = s->action;
	uv_timer_start(&l->act_timer, link_act_timer_cb, LEGACY_ANSWER_MS, 0);
	b = uv_buf_init((char *)s->buf, (unsigned)s->len);
	r = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, link_write_cb);
	if (r < 0) {
		c->writing = false;
		c->inflight = NULL;
		l->ctl_pending -= s->len;
		free(s);
		link_note_error(l, "write to control port: %s", uv_strerror(r));
		link_lost(l, r);
	}
}

/* A SEG_CTRL is at the head of the queue and nothing is in flight. The data before it is
 * in the data socket, but may still sit in its kernel buffer: the control byte travels on
 * another connection and could overtake it. Wait until the bridge acknowledged that data
 * (bounded: after LEGACY_ANSWER_MS it goes anyway), then send it. */
void link_legacy_kick_ctrl(struct link *l)
{
	struct seg *s;

	if (link_conn_unacked(l->conn) > 0) {
		uint64_t now = uv_now(l->loop);
		if (l->lg.ctrl_since == 0)
			l->lg.ctrl_since = now;
		if (now - l->lg.ctrl_since < LEGACY_ANSWER_MS) {
			l->act_wait = true;
			l->lg.ctrl_waiting = false;
			uv_timer_start(&l->act_timer, link_act_timer_cb, CTRL_OUTQ_MS, 0);
			return;
		}
		log_debug("%s: data socket still holds %zu unacknowledged bytes; sending the "
		          "control byte anyway",
		          l->name, link_conn_unacked(l->conn));
	}
	l->lg.ctrl_since = 0;
	s = l->q_head;
	l->q_head = s->next;
	if (!l->q_head)
		l->q_tail = NULL;
	s->next = NULL;
	ctrl_send(l, s);
}

/* The action timer ran out while the queue waited for a control-port answer. */
void link_legacy_answer_timeout(struct link *l)
{
	l->lg.ctrl_waiting = false;
	if (l->lg.ctrl_action)
		l->lg.act_busy = false;
	log_debug("%s: no answer on the control port within %u ms; continuing", l->name,
	          (unsigned)LEGACY_ANSWER_MS);
}

/* Queue control byte c (in order with data). action: from link_action. */
static void send_ctrl(struct link *l, uint8_t c, bool action)
{
	struct seg *s = link_ctl_seg(l, SEG_CTRL, &c, 1);

	if (!s) {
		if (!l->ctl_overflow)
			log_error("%s: cannot queue control byte '%c'", l->name, c);
		return;
	}
	s->action = action;
	link_q_append(l, s);
	link_kick(l);
}

/* One answer line from the control port. */
static void ctrl_line(struct link *l, const char *line)
{
	if (!strncmp(line, "ERR", 3)) {
		log_warn("%s: bridge control port: %s", l->name, line);
		link_note_error(l, "control port: %.80s", line);
	} else {
		log_debug("%s: <- control: %s", l->name, line);
	}
	if (l->lg.ctrl_waiting) {
		uv_timer_stop(&l->act_timer);
		l->act_wait = false;
		l->lg.ctrl_waiting = false;
		if (l->lg.ctrl_action)
			l->lg.act_busy = false;
		link_kick(l);
	}
}

/* n bytes read from the control connection: answer lines. */
void link_legacy_ctrl_rx(struct link *l, const uint8_t *p, size_t n)
{
	struct link_legacy *g = &l->lg;

	for (size_t i = 0; i < n && l->cconn && !l->closing; i++) {
		if (p[i] == '\n') {
			g->cline[g->cline_len] = '\0';
			g->cline_len = 0;
			ctrl_line(l, g->cline);
		} else if (p[i] != '\r' && g->cline_len < CLINE_MAX - 1) {
			g->cline[g->cline_len++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
		}
	}
}

static bool is_boot_line(const struct link_line *ln)
{
	return ln->data_bits == 8 && ln->parity == 'E';
}

/* Log once that the legacy firmware cannot set this line. */
static void log_line_once(struct link *l, const struct link_line *ln, bool boot)
{
	if (l->lg.baud_logged || !(boot ? ln->baud != 115200 || ln->stop_bits != 1
	                                : ln->data_bits != 8 || ln->parity != 'N' ||
	                                      ln->stop_bits != 1 || ln->baud != 115200))
		return;
	l->lg.baud_logged = true;
	log_info("%s: legacy protocol cannot set %u %u%c%s; the bridge uses 115200 8E1 for the "
	         "bootloader and its own baud, 8N1, for the application (logged once)",
	         l->name, (unsigned)ln->baud, (unsigned)ln->data_bits, ln->parity,
	         ln->stop_bits == 1   ? "1"
	         : ln->stop_bits == 2 ? "2"
	                              : "1.5");
}

/* Map the desired line to 'u'/'e' (link.h LINK_PROTO_LEGACY); DTR/RTS are only logged. */
static void legacy_sync(struct link *l)
{
	struct link_legacy *g = &l->lg;

	if (l->state != LINK_UP)
		return;
	if (g->has_line) {
		bool boot = is_boot_line(&g->line);
		log_line_once(l, &g->line, boot);
		if (boot && !g->boot) {
			log_info("%s: 8E1 asked: legacy command 'u' (bootloader)", l->name);
			g->boot = true;
			send_ctrl(l, 'u', false);
		} else if (!boot && g->boot) {
			log_info("%s: leaving 8E1: legacy command 'e' (application)", l->name);
			g->boot = false;
			send_ctrl(l, 'e', false);
		}
	}
	if (g->has_rts && g->sent_rts != g->rts) {
		log_debug("%s: RTS %s (not carried by the legacy protocol)", l->name,
		          g->rts ? "on" : "off");
		g->sent_rts = g->rts;
	}
	if (g->has_dtr && g->sent_dtr != g->dtr) {
		log_debug("%s: DTR %s (not carried by the legacy protocol)", l->name,
		          g->dtr ? "on" : "off");
		g->sent_dtr = g->dtr;
	}
}

/* The control connection of this attempt is up: wait LEGACY_SETTLE_MS (a busy bridge
 * closes at once) before LINK_UP. */
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
		link_conn_drop(l);
		link_connect_next(l);
		return;
	}
	c->connected = true;
	link_ai_drop(l);
	link_conn_opts(l, c);
	log_debug("%s: legacy data and control ports connected", l->name);
	link_timer_arm(l, PH_NEGOTIATE, LEGACY_SETTLE_MS);
	if (uv_read_start((uv_stream_t *)&c->tcp, link_alloc_cb, link_read_cb) < 0) {
		l->last_status = UV_EIO;
		link_conn_drop(l);
		link_connect_next(l);
	}
}

/* The data connection is up: read it (unless held data says wait) and connect the control
 * connection to the same address, control_port. */
static void lg_connected(struct link *l)
{
	struct sockaddr_storage sa = l->cur_addr;
	struct conn *c;
	int r;

	log_debug("%s: TCP connected to %s, connecting the control port %u", l->name, l->addr,
	          (unsigned)l->cfg.control_port);
	if (link_may_read(l))
		link_read_start(l);
	else
		l->paused = true;
	c = link_conn_new(l, true);
	if (!c) {
		link_conn_drop(l);
		link_round_failed(l, UV_ENOMEM);
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
		link_conn_drop(l);
		link_connect_next(l);
		return;
	}
	l->cconn = c;
	r = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&sa, ctrl_connect_cb);
	if (r < 0) {
		l->last_status = r;
		link_conn_drop(l);
		link_connect_next(l);
		return;
	}
	link_timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
}

/* Raw data port: no Telnet, 0xFF as is. */
static void lg_input(struct link *l, const uint8_t *p, size_t n)
{
	link_rx(l, p, n);
}

/* Both connections stayed open for LEGACY_SETTLE_MS: up. */
static void lg_negotiate_timeout(struct link *l)
{
	link_go_up(l);
	link_check_overflow(l);
}

static void lg_up(struct link *l)
{
	l->lg.sent_rts = l->lg.sent_dtr = -1;
	/* the bridge may have restarted; 8E1 asked means bootloader again */
	if (l->lg.has_line && is_boot_line(&l->lg.line))
		l->lg.boot = false;
	legacy_sync(l);
}

static void lg_down(struct link *l)
{
	l->lg.ctrl_since = 0;
	l->lg.act_busy = false;
	l->lg.ctrl_waiting = false;
}

static size_t lg_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *consumed)
{
	size_t k = n < cap ? n : cap;

	memcpy(out, in, k);
	*consumed = k;
	return k;
}

static void lg_set_line(struct link *l, const struct link_line *ln)
{
	l->lg.line = *ln;
	l->lg.has_line = true;
	legacy_sync(l);
}

/* The legacy protocol has no flow control setting; the rest of the state is synced as
 * after any setter (a RUN action may have left 8E1 wanting 'u' again). */
static void lg_set_flow(struct link *l, enum link_flow f)
{
	(void)f;
	legacy_sync(l);
}

static void lg_set_rts(struct link *l, int on)
{
	l->lg.rts = on;
	l->lg.has_rts = true;
	legacy_sync(l);
}

static void lg_set_dtr(struct link *l, int on)
{
	l->lg.dtr = on;
	l->lg.has_dtr = true;
	legacy_sync(l);
}

static int lg_set_break(struct link *l, int on)
{
	(void)l, (void)on;
	return -ENOTSUP;
}

/* The bridge cannot be asked to purge: what was readable in the socket at the purge is
 * discarded; -ENOTSUP. */
static int lg_purge(struct link *l, int which)
{
	if ((which & RFC2217_PURGE_RX) && l->conn)
		l->discard_raw += link_conn_readable(l->conn);
	return -ENOTSUP;
}

/* The single command byte 'r', 'u' or 'e', in order with data; the action lasts until the
 * bridge answers or LEGACY_ANSWER_MS pass. */
static int lg_action(struct link *l, enum link_action a)
{
	static const uint8_t byte[] = {'r', 'u', 'e'};

	if (l->lg.act_busy)
		return -EBUSY;
	log_info("%s: action %s: legacy command '%c'", l->name,
	         a == LINK_ACTION_RESET  ? "reset"
	         : a == LINK_ACTION_BOOT ? "boot"
	                                 : "run",
	         byte[a]);
	/* 'e' runs the application at 8N1: a later 8E1 must send 'u' again. 'u' here is not
	 * recorded: a later non-8E1 line (often the same one re-applied) must not undo the
	 * boot the user asked for. */
	if (a == LINK_ACTION_RUN)
		l->lg.boot = false;
	l->lg.act_busy = true;
	send_ctrl(l, byte[a], true);
	return 0;
}

static bool lg_can_suspend(const struct link *l)
{
	(void)l;
	return false;
}

static int lg_rx_flow(struct link *l, bool on)
{
	(void)l, (void)on;
	return -ENOTSUP;
}

static void lg_action_done(struct link *l)
{
	(void)l; /* no SEG_ACT_END in the legacy queue */
}

const struct link_proto link_proto_legacy = {
    .up_note = " (legacy ports)",
    .connected = lg_connected,
    .input = lg_input,
    .negotiate_timeout = lg_negotiate_timeout,
    .up = lg_up,
    .down = lg_down,
    .encode = lg_encode,
    .set_line = lg_set_line,
    .set_flow = lg_set_flow,
    .set_rts = lg_set_rts,
    .set_dtr = lg_set_dtr,
    .set_break = lg_set_break,
    .purge = lg_purge,
    .action = lg_action,
    .can_suspend = lg_can_suspend,
    .rx_flow = lg_rx_flow,
    .action_done = lg_action_done,
};
