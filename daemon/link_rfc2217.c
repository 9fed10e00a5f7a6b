/* SPDX-License-Identifier: MIT */
/*
 * link_rfc2217: RFC 2217 behind struct link_proto. The protocol itself is the sans-I/O
 * client of firmware/core/rfc2217_client.h; this file feeds it what the data connection
 * reads and the loop's clock, and carries out its output: wire bytes and markers become
 * segments of the link's TX queue, events reach the tty's callbacks.
 */
#include "link_impl.h"
#include "log.h"

#include <errno.h>
#include <string.h>

static struct link *of(void *ctx)
{
	return ctx;
}

/* ops->out: a client output becomes a segment (bytes: at the tail or the head; delay and
 * action-end markers at the tail). Not kicked: the caller kicks after the client call. */
static int rc_out(void *ctx, const struct rfc2217_client_out *o)
{
	struct link *l = of(ctx);
	struct seg *s;

	switch (o->kind) {
	case RFC2217_OUT_DELAY:
		return link_queue_marker(l, SEG_DELAY, o->val);
	case RFC2217_OUT_ACTION_END:
		return link_queue_marker(l, SEG_ACT_END, 0);
	case RFC2217_OUT_BYTES:
		break;
	}
	s = link_ctl_seg(l, SEG_CMD, o->p, o->n);
	if (!s)
		return !l->conn ? -ENOTCONN : l->ctl_overflow ? -ENOBUFS : -ENOMEM;
	s->ans = o->answer;
	s->cmd = o->cmd;
	s->val = o->val;
	if (o->front)
		link_q_push_front(l, s);
	else
		link_q_append(l, s);
	return 0;
}

/* ops->data: decoded data for the tty. */
static void rc_data(void *ctx, const uint8_t *p, size_t n)
{
	struct link *l = of(ctx);

	if (l->closing || !l->conn)
		return; /* link closed or connection dropped by a callback mid-buffer */
	link_rx(l, p, n);
}

static void rc_event(void *ctx, enum rfc2217_client_event ev, uint32_t value)
{
	struct link *l = of(ctx);

	if (l->closing || !l->conn)
		return;
	switch (ev) {
	case RFC2217_EV_UP:
		link_go_up(l);
		break;
	case RFC2217_EV_MODEMSTATE:
		l->modemstate = (uint8_t)value;
		if (l->cb.on_modemstate)
			l->cb.on_modemstate(l->ctx, l->modemstate);
		break;
	case RFC2217_EV_LINESTATE:
		if (l->cb.on_linestate)
			l->cb.on_linestate(l->ctx, (uint8_t)value);
		break;
	case RFC2217_EV_TX_SUSPEND:
		l->tx_suspended = value != 0;
		if (!l->tx_suspended)
			link_kick(l);
		break;
	case RFC2217_EV_PURGED:
		l->rx_purged += value;
		break;
	case RFC2217_EV_ANSWER:
	case RFC2217_EV_ANSWER_DIFFERS:
	case RFC2217_EV_COMPORT_REFUSED:
		break; /* logged by the client */
	}
}

static void rc_log(void *ctx, enum rfc2217_client_log level, const char *line)
{
	struct link *l = of(ctx);
	static const enum log_level map[] = {
	    [RFC2217_LOG_ERROR] = LOG_LEVEL_ERROR,
	    [RFC2217_LOG_WARN] = LOG_LEVEL_WARN,
	    [RFC2217_LOG_INFO] = LOG_LEVEL_INFO,
	    [RFC2217_LOG_DEBUG] = LOG_LEVEL_DEBUG,
	};

	log_msg(map[level], "%s: %s", l->name, line);
}

const struct rfc2217_client_ops link_rfc2217_ops = {
    .out = rc_out,
    .data = rc_data,
    .event = rc_event,
    .log = rc_log,
};

static uint32_t now_ms(const struct link *l)
{
	return (uint32_t)uv_now(l->loop);
}

/* The data connection is up: offer the options and wait for COM-PORT-OPTION (at most
 * RFC2217_CLIENT_NEGOTIATE_MS, the PH_NEGOTIATE timer). */
static void rc_connected(struct link *l)
{
	struct conn *c = l->conn;

	link_ai_drop(l);
	log_debug("%s: TCP connected to %s, negotiating", l->name, l->addr);
	link_timer_arm(l, PH_NEGOTIATE, RFC2217_CLIENT_NEGOTIATE_MS);
	rfc2217_client_start(&l->rc, l->addr, now_ms(l));
	link_kick(l);
	if (l->closing || l->conn != c || link_check_overflow(l))
		return;
	/* data held from the previous connection does not stop this one's negotiation
	 * (link_may_read: reads go on while not up, up to the bound) */
	if (link_may_read(l))
		link_read_start(l);
	else
		l->paused = true;
}

static void rc_input(struct link *l, const uint8_t *p, size_t n)
{
	rfc2217_client_input(&l->rc, p, n, now_ms(l));
	if (!l->closing && l->conn)
		link_kick(l);
}

static void rc_negotiate_timeout(struct link *l)
{
	rfc2217_client_poll(&l->rc, now_ms(l));
	if (!l->closing && l->conn)
		link_kick(l);
	link_check_overflow(l);
}

static void rc_down(struct link *l)
{
	rfc2217_client_stop(&l->rc);
}

static void rc_set_line(struct link *l, const struct link_line *ln)
{
	struct rfc2217_client_line cl = {.baud = ln->baud, .data_bits = ln->data_bits};

	switch (ln->parity) {
	case 'O':
		cl.parity = RFC2217_PARITY_ODD;
		break;
	case 'E':
		cl.parity = RFC2217_PARITY_EVEN;
		break;
	case 'M':
		cl.parity = RFC2217_PARITY_MARK;
		break;
	case 'S':
		cl.parity = RFC2217_PARITY_SPACE;
		break;
	default:
		cl.parity = RFC2217_PARITY_NONE;
		break;
	}
	cl.stop = ln->stop_bits;
	rfc2217_client_set_line(&l->rc, &cl);
	link_kick(l);
}

static void rc_set_flow(struct link *l, enum link_flow f)
{
	rfc2217_client_set_flow(&l->rc, f == LINK_FLOW_XONXOFF    ? RFC2217_CONTROL_FLOW_XONXOFF
	                                : f == LINK_FLOW_HARDWARE ? RFC2217_CONTROL_FLOW_HARDWARE
	                                                          : RFC2217_CONTROL_FLOW_NONE);
	link_kick(l);
}

static void rc_set_rts(struct link *l, int on)
{
	rfc2217_client_set_rts(&l->rc, on);
	link_kick(l);
}

static void rc_set_dtr(struct link *l, int on)
{
	rfc2217_client_set_dtr(&l->rc, on);
	link_kick(l);
}

static int rc_set_break(struct link *l, int on)
{
	if (l->state == LINK_UP && l->conn) {
		rfc2217_client_set_break(&l->rc, on);
		link_kick(l);
	}
	return 0;
}

/* What the bridge sent before the purge may still be on its way (socket buffers both ends,
 * the bridge's own): discard it too. With COM-PORT-OPTION: until the bridge's PURGE-DATA
 * answer, which follows that data in-band (the client waits for it). Otherwise: what is
 * readable now. */
static int rc_purge(struct link *l, int which)
{
	bool wait = false;

	if (l->state == LINK_UP && l->conn)
		wait = rfc2217_client_purge(&l->rc, (uint8_t)which, now_ms(l));
	if ((which & RFC2217_PURGE_RX) && !wait && l->conn)
		l->discard_raw += link_conn_readable(l->conn);
	link_kick(l);
	return 0;
}

static int rc_action(struct link *l, enum link_action a)
{
	int r = rfc2217_client_action(&l->rc, (enum rfc2217_client_action)a);

	link_kick(l);
	return r;
}

static bool rc_can_suspend(const struct link *l)
{
	return l->state == LINK_UP && l->conn && rfc2217_client_can_suspend(&l->rc);
}

static int rc_rx_flow(struct link *l, bool on)
{
	int r = rfc2217_client_rx_flow(&l->rc, on);

	if (r == 0)
		link_kick(l);
	return r;
}

static void rc_action_done(struct link *l)
{
	rfc2217_client_action_done(&l->rc);
}

static size_t rc_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *consumed)
{
	return tn_escape(in, n, out, cap, consumed);
}

const struct link_proto link_proto_rfc2217 = {
    .up_note = "",
    .connected = rc_connected,
    .input = rc_input,
    .negotiate_timeout = rc_negotiate_timeout,
    .up = NULL, /* the client sends the state before it reports RFC2217_EV_UP */
    .down = rc_down,
    .encode = rc_encode,
    .set_line = rc_set_line,
    .set_flow = rc_set_flow,
    .set_rts = rc_set_rts,
    .set_dtr = rc_set_dtr,
    .set_break = rc_set_break,
    .purge = rc_purge,
    .action = rc_action,
    .can_suspend = rc_can_suspend,
    .rx_flow = rc_rx_flow,
    .action_done = rc_action_done,
};
