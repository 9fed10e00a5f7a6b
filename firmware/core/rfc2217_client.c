/* SPDX-License-Identifier: MIT */
/* rfc2217_client: the sans-I/O RFC 2217 client session (contract in rfc2217_client.h). */
#include "rfc2217_client.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 3, 4))) static void
say(struct rfc2217_client *c, enum rfc2217_client_log level, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!c->ops->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	c->ops->log(c->ctx, level, line);
}

static void event(struct rfc2217_client *c, enum rfc2217_client_event ev, uint32_t value)
{
	if (c->ops->event)
		c->ops->event(c->ctx, ev, value);
}

static int out_bytes(struct rfc2217_client *c, const uint8_t *p, size_t n, bool front)
{
	struct rfc2217_client_out o = {.kind = RFC2217_OUT_BYTES, .p = p, .n = n, .front = front};

	return c->ops->out(c->ctx, &o);
}

static int out_marker(struct rfc2217_client *c, enum rfc2217_client_out_kind kind, uint32_t ms)
{
	struct rfc2217_client_out o = {.kind = kind, .val = ms};

	return c->ops->out(c->ctx, &o);
}

static const char *name_of(const char *peer)
{
	return peer ? peer : "the bridge";
}

void rfc2217_client_init(struct rfc2217_client *c, const struct rfc2217_client_ops *ops, void *ctx)
{
	memset(c, 0, sizeof *c);
	c->ops = ops;
	c->ctx = ctx;
	c->sent_flow = c->sent_rts = c->sent_dtr = -1;
}

/* ----------------------------------------------------------------- commands */

/* Queue one RFC 2217 command (client code cmd, value v) whose answer is expected once it
 * is sent. Returns 0 or the error of ops->out (logged unless -ENOBUFS: the caller drops a
 * peer that does not read). */
static int cmd_out(struct rfc2217_client *c, uint8_t cmd, uint32_t v, bool front)
{
	uint8_t b[32];
	int n, r;

	if (cmd == RFC2217_SET_BAUDRATE)
		n = rfc2217_build_u32(b, sizeof b, cmd, v);
	else
		n = rfc2217_build_u8(b, sizeof b, cmd, (uint8_t)v);
	assert(n > 0);
	struct rfc2217_client_out o = {.kind = RFC2217_OUT_BYTES,
	                               .p = b,
	                               .n = (size_t)n,
	                               .front = front,
	                               .answer = true,
	                               .cmd = cmd,
	                               .val = v};
	r = c->ops->out(c->ctx, &o);
	if (r < 0) {
		if (r != -ENOBUFS)
			say(c, RFC2217_LOG_ERROR, "cannot queue %s", rfc2217_cmd_name(cmd));
		return r;
	}
	say(c, RFC2217_LOG_DEBUG, "-> %s %u", rfc2217_cmd_name(cmd), (unsigned)v);
	return 0;
}

/* Queue a command at the tail unless COM-PORT-OPTION was refused. */
static void send_cmd(struct rfc2217_client *c, uint8_t cmd, uint32_t v)
{
	if (!c->comport_refused)
		(void)cmd_out(c, cmd, v, false);
}

/* Send the parts of the desired state that differ from what this connection was sent
 * (all of it right after going up), in the order the header fixes. */
static void sync_state(struct rfc2217_client *c)
{
	if (!c->up)
		return;
	if (c->has_line) {
		bool all = !c->sent_has_line;
		if (all || c->sent_line.baud != c->line.baud)
			send_cmd(c, RFC2217_SET_BAUDRATE, c->line.baud);
		if (all || c->sent_line.data_bits != c->line.data_bits)
			send_cmd(c, RFC2217_SET_DATASIZE, c->line.data_bits);
		if (all || c->sent_line.parity != c->line.parity)
			send_cmd(c, RFC2217_SET_PARITY, c->line.parity);
		if (all || c->sent_line.stop != c->line.stop)
			send_cmd(c, RFC2217_SET_STOPSIZE, c->line.stop);
		c->sent_line = c->line;
		c->sent_has_line = true;
	}
	if (c->has_flow && c->sent_flow != (int8_t)c->flow) {
		send_cmd(c, RFC2217_SET_CONTROL, c->flow);
		c->sent_flow = (int8_t)c->flow;
	}
	if (c->has_rts && c->sent_rts != c->rts) {
		send_cmd(c, RFC2217_SET_CONTROL,
		         c->rts ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF);
		c->sent_rts = c->rts;
	}
	if (c->has_dtr && c->sent_dtr != c->dtr) {
		send_cmd(c, RFC2217_SET_CONTROL,
		         c->dtr ? RFC2217_CONTROL_DTR_ON : RFC2217_CONTROL_DTR_OFF);
		c->sent_dtr = c->dtr;
	}
}

static void forget_sent(struct rfc2217_client *c)
{
	c->sent_has_line = false;
	c->sent_flow = c->sent_rts = c->sent_dtr = -1;
}

/* Negotiation over: send the whole desired state and SIGNATURE (unless COM-PORT-OPTION was
 * refused), then tell the caller. */
static void go_up(struct rfc2217_client *c)
{
	uint8_t b[8];
	int n;

	if (c->up)
		return;
	c->up = true;
	forget_sent(c);
	sync_state(c);
	if (!c->comport_refused) {
		n = rfc2217_build(b, sizeof b, RFC2217_SIGNATURE, NULL, 0);
		if (n > 0)
			(void)out_bytes(c, b, (size_t)n, false);
	}
	event(c, RFC2217_EV_UP, 0);
}

/* ------------------------------------------------------------- connection */

void rfc2217_client_start(struct rfc2217_client *c, const char *peer, uint32_t now)
{
	static const uint8_t accepted[] = {TELOPT_BINARY, TELOPT_SGA, TELOPT_COMPORT};
	/* As pyserial's client: offer BINARY and SGA both ways and COM-PORT-OPTION (RFC 2217
	 * section "Negotiating the Telnet Com Port Control Option": client sends WILL). */
	static const struct {
		enum telnet_side side;
		uint8_t opt;
	} offer[] = {
	    {TELNET_US, TELOPT_BINARY}, {TELNET_HIM, TELOPT_BINARY}, {TELNET_US, TELOPT_SGA},
	    {TELNET_HIM, TELOPT_SGA},   {TELNET_US, TELOPT_COMPORT},
	};
	uint8_t b[16];
	size_t n = 0;

	c->peer = peer;
	c->active = true;
	c->up = false;
	c->comport_refused = false;
	c->tx_suspended = false;
	c->act_busy = false;
	c->purge_wait = 0;
	memset(c->ans, 0, sizeof c->ans);
	forget_sent(c);
	tn_decoder_init(&c->dec);
	telnet_opt_init(&c->opt, accepted, sizeof accepted);
	for (size_t i = 0; i < sizeof offer / sizeof offer[0]; i++) {
		uint8_t verb = telnet_opt_enable(&c->opt, offer[i].side, offer[i].opt);
		int k = tn_build_option(b + n, sizeof b - n, verb, offer[i].opt);
		if (k > 0)
			n += (size_t)k;
	}
	c->negotiate_deadline = now + RFC2217_CLIENT_NEGOTIATE_MS;
	(void)out_bytes(c, b, n, false);
}

void rfc2217_client_stop(struct rfc2217_client *c)
{
	c->active = false;
	c->up = false;
	c->tx_suspended = false;
	c->act_busy = false;
	c->purge_wait = 0;
	memset(c->ans, 0, sizeof c->ans);
}

void rfc2217_client_poll(struct rfc2217_client *c, uint32_t now)
{
	if (!c->active || c->up || (int32_t)(now - c->negotiate_deadline) < 0)
		return;
	/* Not an RFC 2217 server (or a very slow one): carry data, but do not send
	 * COM-PORT-OPTION commands into what may be a raw byte stream. They are sent if DO
	 * COM-PORT-OPTION still arrives (on_option). */
	say(c, RFC2217_LOG_WARN,
	    "bridge %s did not agree to COM-PORT-OPTION within %u ms; continuing without "
	    "sending port settings",
	    name_of(c->peer), (unsigned)RFC2217_CLIENT_NEGOTIATE_MS);
	c->comport_refused = true;
	event(c, RFC2217_EV_COMPORT_REFUSED, 0);
	go_up(c);
}

/* ------------------------------------------------------------------ receive */

/* A received WILL/WONT/DO/DONT (RFC 1143 by telnet_opt), then what COM-PORT-OPTION's
 * state change means: agreed (go up, or send the settings if it came late) or refused. */
static void on_option(struct rfc2217_client *c, uint8_t verb, uint8_t opt)
{
	enum telnet_q before = telnet_opt_state(&c->opt, TELNET_US, TELOPT_COMPORT);
	uint8_t answer = telnet_opt_recv(&c->opt, verb, opt);
	uint8_t b[3];

	if (answer) {
		if (!telnet_opt_accepts(&c->opt, opt))
			say(c, RFC2217_LOG_DEBUG, "refusing telnet option %u", opt);
		if (tn_build_option(b, sizeof b, answer, opt) == 3)
			(void)out_bytes(c, b, 3, false);
	}
	if (opt != TELOPT_COMPORT)
		return;
	if (telnet_opt_state(&c->opt, TELNET_US, TELOPT_COMPORT) == TELNET_Q_YES &&
	    before != TELNET_Q_YES) {
		bool late = c->comport_refused && c->up;
		c->comport_refused = false;
		if (!c->up) {
			go_up(c);
		} else if (late) { /* agreed after the timeout: send the whole state now */
			say(c, RFC2217_LOG_INFO,
			    "bridge %s agreed to COM-PORT-OPTION late; sending settings",
			    name_of(c->peer));
			forget_sent(c);
			sync_state(c);
		}
	} else if (verb == TN_DONT && before != TELNET_Q_NO) {
		say(c, RFC2217_LOG_WARN,
		    "bridge %s refused COM-PORT-OPTION (RFC 2217): port settings and DTR/RTS "
		    "will not be applied",
		    name_of(c->peer));
		c->comport_refused = true;
		event(c, RFC2217_EV_COMPORT_REFUSED, 0);
		if (!c->up)
			go_up(c);
	}
}

/* An answer (server code) to one of our commands: matched against the oldest value asked
 * with that command (RFC 2217 answers each SET-xxx with the value in force). */
static void on_answer(struct rfc2217_client *c, const struct rfc2217_msg *m)
{
	struct rfc2217_answers *q = &c->ans[m->cmd];
	uint32_t asked;

	if (q->n == 0) {
		say(c, RFC2217_LOG_DEBUG, "unsolicited %s %u", rfc2217_cmd_name(m->code),
		    (unsigned)m->value);
		return;
	}
	asked = q->v[q->head];
	q->head = (uint8_t)((q->head + 1) % RFC2217_CLIENT_ANSQ);
	q->n--;
	event(c, RFC2217_EV_ANSWER, m->cmd);
	if (asked == 0 || m->cmd == RFC2217_PURGE_DATA ||
	    (m->cmd == RFC2217_SET_CONTROL &&
	     (asked == RFC2217_CONTROL_FLOW_QUERY || asked == RFC2217_CONTROL_BREAK_QUERY ||
	      asked == RFC2217_CONTROL_DTR_QUERY || asked == RFC2217_CONTROL_RTS_QUERY))) {
		say(c, RFC2217_LOG_DEBUG, "<- %s %u", rfc2217_cmd_name(m->code),
		    (unsigned)m->value);
		return;
	}
	if (m->value != asked) {
		say(c, RFC2217_LOG_WARN, "bridge answered %s %u, asked for %u",
		    rfc2217_cmd_name(m->code), (unsigned)m->value, (unsigned)asked);
		event(c, RFC2217_EV_ANSWER_DIFFERS, m->cmd);
	} else {
		say(c, RFC2217_LOG_DEBUG, "<- %s %u (ok)", rfc2217_cmd_name(m->code),
		    (unsigned)m->value);
	}
}

/* A COM-PORT-OPTION subnegotiation from the bridge (RFC 2217 server codes 100..112). */
static void on_comport(struct rfc2217_client *c, const struct tn_event *ev)
{
	struct rfc2217_msg m;

	if (rfc2217_parse(ev->data, ev->len, &m) < 0) {
		say(c, RFC2217_LOG_DEBUG, "ignoring malformed COM-PORT-OPTION message (%zu bytes)",
		    ev->len);
		return;
	}
	if (!m.from_server) {
		say(c, RFC2217_LOG_DEBUG, "ignoring client command %s from the bridge",
		    rfc2217_cmd_name(m.code));
		return;
	}
	switch (m.cmd) {
	case RFC2217_SIGNATURE:
		say(c, RFC2217_LOG_INFO, "bridge signature: %.*s",
		    (int)(m.text_len > 200 ? 200 : m.text_len), m.text ? (const char *)m.text : "");
		break;
	case RFC2217_NOTIFY_LINESTATE:
		event(c, RFC2217_EV_LINESTATE, (uint8_t)m.value);
		break;
	case RFC2217_NOTIFY_MODEMSTATE:
		event(c, RFC2217_EV_MODEMSTATE, (uint8_t)m.value);
		break;
	case RFC2217_FLOWCONTROL_SUSPEND:
	case RFC2217_FLOWCONTROL_RESUME:
		c->tx_suspended = m.cmd == RFC2217_FLOWCONTROL_SUSPEND;
		say(c, RFC2217_LOG_DEBUG, "bridge %s our output",
		    c->tx_suspended ? "suspends" : "resumes");
		event(c, RFC2217_EV_TX_SUSPEND, c->tx_suspended);
		break;
	case RFC2217_PURGE_DATA:
		/* the bridge sends its answer after the data it had already queued for us:
		 * what follows it is new */
		if ((m.value & RFC2217_PURGE_RX) && c->purge_wait > 0) {
			c->purge_wait--;
			if (c->purge_wait == 0)
				say(c, RFC2217_LOG_DEBUG, "input purge done");
		}
		on_answer(c, &m);
		break;
	default:
		if (m.cmd < RFC2217_CLIENT_NCMD)
			on_answer(c, &m);
		break;
	}
}

/* Data decoded at time now: discarded (RFC2217_EV_PURGED) while an input purge waits for
 * its answer, else passed on. */
static void on_data(struct rfc2217_client *c, const uint8_t *p, size_t n, uint32_t now)
{
	if (c->purge_wait > 0) {
		if ((int32_t)(now - c->purge_deadline) <= 0) {
			event(c, RFC2217_EV_PURGED, (uint32_t)n);
			return;
		}
		say(c, RFC2217_LOG_WARN,
		    "no PURGE-DATA answer from %s within %u ms; delivering data again",
		    name_of(c->peer), (unsigned)RFC2217_CLIENT_PURGE_WAIT_MS);
		c->purge_wait = 0;
	}
	c->ops->data(c->ctx, p, n);
}

static uint8_t verb_of(enum tn_event_type t)
{
	switch (t) {
	case TN_EV_WILL:
		return TN_WILL;
	case TN_EV_WONT:
		return TN_WONT;
	case TN_EV_DO:
		return TN_DO;
	default:
		return TN_DONT;
	}
}

struct decode_ctx {
	struct rfc2217_client *c;
	uint32_t now;
};

static void tn_cb(void *ctx, const struct tn_event *ev)
{
	struct decode_ctx *d = ctx;
	struct rfc2217_client *c = d->c;

	if (!c->active)
		return; /* stopped by a callback in the middle of a buffer */
	switch (ev->type) {
	case TN_EV_DATA:
		on_data(c, ev->data, ev->len, d->now);
		break;
	case TN_EV_WILL:
	case TN_EV_WONT:
	case TN_EV_DO:
	case TN_EV_DONT:
		say(c, RFC2217_LOG_DEBUG, "<- %s %u", telnet_verb_name(verb_of(ev->type)), ev->opt);
		on_option(c, verb_of(ev->type), ev->opt);
		break;
	case TN_EV_SB:
		if (ev->opt == TELOPT_COMPORT && !ev->truncated)
			on_comport(c, ev);
		else
			say(c, RFC2217_LOG_DEBUG, "ignoring subnegotiation for option %u", ev->opt);
		break;
	case TN_EV_COMMAND:
		say(c, RFC2217_LOG_DEBUG, "ignoring telnet command %u", ev->opt);
		break;
	}
}

void rfc2217_client_input(struct rfc2217_client *c, const uint8_t *p, size_t n, uint32_t now)
{
	struct decode_ctx d = {c, now};

	if (c->active)
		tn_decode(&c->dec, p, n, tn_cb, &d);
}

void rfc2217_client_sent(struct rfc2217_client *c, uint8_t cmd, uint32_t val)
{
	struct rfc2217_answers *q;

	if (cmd >= RFC2217_CLIENT_NCMD)
		return;
	q = &c->ans[cmd];
	if (q->n == RFC2217_CLIENT_ANSQ) { /* server not answering: forget the oldest */
		q->head = (uint8_t)((q->head + 1) % RFC2217_CLIENT_ANSQ);
		q->n--;
	}
	q->v[(q->head + q->n) % RFC2217_CLIENT_ANSQ] = val;
	q->n++;
}

/* ------------------------------------------------------------ desired state */

void rfc2217_client_set_line(struct rfc2217_client *c, const struct rfc2217_client_line *ln)
{
	c->line = *ln;
	c->has_line = true;
	sync_state(c);
}

void rfc2217_client_set_flow(struct rfc2217_client *c, uint8_t flow)
{
	c->flow = flow;
	c->has_flow = true;
	sync_state(c);
}

void rfc2217_client_set_rts(struct rfc2217_client *c, bool on)
{
	c->rts = on ? 1 : 0;
	c->has_rts = true;
	sync_state(c);
}

void rfc2217_client_set_dtr(struct rfc2217_client *c, bool on)
{
	c->dtr = on ? 1 : 0;
	c->has_dtr = true;
	sync_state(c);
}

void rfc2217_client_set_break(struct rfc2217_client *c, bool on)
{
	if (c->up)
		send_cmd(c, RFC2217_SET_CONTROL,
		         on ? RFC2217_CONTROL_BREAK_ON : RFC2217_CONTROL_BREAK_OFF);
}

bool rfc2217_client_purge(struct rfc2217_client *c, uint8_t which, uint32_t now)
{
	bool wait = (which & RFC2217_PURGE_RX) && rfc2217_client_can_suspend(c);

	if (wait) {
		c->purge_wait++;
		c->purge_deadline = now + RFC2217_CLIENT_PURGE_WAIT_MS;
	}
	if (c->up)
		send_cmd(c, RFC2217_PURGE_DATA, which);
	return wait;
}

/* ------------------------------------------------------------------ actions */

static const char *action_name(enum rfc2217_client_action a)
{
	return a == RFC2217_ACTION_RESET ? "reset" : a == RFC2217_ACTION_BOOT ? "boot" : "run";
}

int rfc2217_client_action(struct rfc2217_client *c, enum rfc2217_client_action a)
{
	int r = 0;

	if (a != RFC2217_ACTION_RESET && a != RFC2217_ACTION_BOOT && a != RFC2217_ACTION_RUN)
		return -EINVAL;
	if (!c->up)
		return -ENOTCONN;
	if (c->act_busy)
		return -EBUSY;
	if (c->comport_refused)
		return -ENOTSUP;
	say(c, RFC2217_LOG_INFO, "action %s", action_name(a));
	/* BOOT0 first (RTS), then NRST low (DTR on), pulse, release (DTR off) */
	uint8_t first = a == RFC2217_ACTION_BOOT ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF;
	const uint8_t steps[] = {first, RFC2217_CONTROL_DTR_ON, 0, RFC2217_CONTROL_DTR_OFF};
	for (size_t i = a == RFC2217_ACTION_RESET ? 1 : 0; i < sizeof steps && r == 0; i++) {
		if (steps[i] == 0)
			r = out_marker(c, RFC2217_OUT_DELAY, RFC2217_CLIENT_PULSE_MS);
		else
			r = cmd_out(c, RFC2217_SET_CONTROL, steps[i], false);
	}
	if (r == 0 && a == RFC2217_ACTION_BOOT)
		r = out_marker(c, RFC2217_OUT_DELAY, RFC2217_CLIENT_SETTLE_MS);
	if (r == 0)
		r = out_marker(c, RFC2217_OUT_ACTION_END, 0);
	if (r == 0) {
		c->act_busy = true;
		return 0;
	}
	/* partly queued: re-send the desired lines, nothing is left half done */
	c->sent_rts = c->sent_dtr = -1;
	sync_state(c);
	return r;
}

void rfc2217_client_action_done(struct rfc2217_client *c)
{
	int8_t rts = c->has_rts ? c->rts : 0, dtr = c->has_dtr ? c->dtr : 0;

	c->act_busy = false;
	if (c->comport_refused)
		return;
	/* each goes to the head: DTR first, then RTS before it */
	if (cmd_out(c, RFC2217_SET_CONTROL, dtr ? RFC2217_CONTROL_DTR_ON : RFC2217_CONTROL_DTR_OFF,
	            true) == 0)
		c->sent_dtr = dtr;
	if (cmd_out(c, RFC2217_SET_CONTROL, rts ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF,
	            true) == 0)
		c->sent_rts = rts;
	say(c, RFC2217_LOG_DEBUG, "action done");
}

/* ------------------------------------------------------------- flow control */

bool rfc2217_client_can_suspend(const struct rfc2217_client *c)
{
	return c->active && c->up && !c->comport_refused &&
	       telnet_opt_state(&c->opt, TELNET_US, TELOPT_COMPORT) == TELNET_Q_YES;
}

int rfc2217_client_rx_flow(struct rfc2217_client *c, bool on)
{
	uint8_t b[16];
	int n = rfc2217_build(
	    b, sizeof b, on ? RFC2217_FLOWCONTROL_SUSPEND : RFC2217_FLOWCONTROL_RESUME, NULL, 0);
	int r;

	assert(n > 0);
	r = out_bytes(c, b, (size_t)n, true);
	if (r == 0)
		say(c, RFC2217_LOG_DEBUG, "-> %s",
		    on ? "FLOWCONTROL-SUSPEND" : "FLOWCONTROL-RESUME");
	return r;
}

bool rfc2217_client_is_up(const struct rfc2217_client *c)
{
	return c->up;
}

bool rfc2217_client_comport_refused(const struct rfc2217_client *c)
{
	return c->comport_refused;
}

bool rfc2217_client_tx_suspended(const struct rfc2217_client *c)
{
	return c->tx_suspended;
}

bool rfc2217_client_action_busy(const struct rfc2217_client *c)
{
	return c->act_busy;
}
