/* SPDX-License-Identifier: MIT */
/*
 * Bridge session, the network side: the RFC 2217 server (Telnet RFC 854/855 negotiated by
 * telnet_opt.h, BINARY RFC 856, SGA RFC 858, COM-PORT-OPTION RFC 2217) or a raw byte
 * stream, and the in-band queue that keeps data and commands in stream order. BOOT0/NRST
 * control is in boot_ctl.c. API: bridge.h.
 */
#include "bridge.h"
#include "boot_ctl.h"
#include "telnet_opt.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Operation kinds in the in-band queue. OP_DISC: the client left; restore the default
 * framing and lines (queued so it too waits for the UART to finish sending). */
enum { OP_DATA = 1, OP_CMD = 2, OP_DISC = 3, OP_ACT = 4 /* bridge_action(), code = action */ };

/* SIGNATURE answer: at most SIG_MAX text bytes, each possibly doubled (0xFF), plus
 * IAC SB COM-PORT code ... IAC SE. Other queued answers need at most CMD_ANSWER_MAX. */
#define SIG_MAX        40
#define SIG_ANSWER_MAX (6 + 2 * SIG_MAX)
#define CMD_ANSWER_MAX 24

/* The options the server accepts, on either side (RFC 856, RFC 858, RFC 2217). */
static const uint8_t accepted_opts[] = {TELOPT_BINARY, TELOPT_SGA, TELOPT_COMPORT};

void bridge_logf(struct bridge *s, enum hal_log_level lvl, const char *fmt, ...)
{
	if (!s->hal->log)
		return;
	char line[192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->hal->log(s->ctx, lvl, line);
}

/* ---- network output ring ---- */

static size_t out_free(const struct bridge *s)
{
	return BRIDGE_NET_OUT - s->out_len;
}

static void out_byte(struct bridge *s, uint8_t c)
{
	s->out[(s->out_head + s->out_len) % BRIDGE_NET_OUT] = c;
	s->out_len++;
}

/* Queue a whole protocol message; all or nothing. Returns 0 or -ENOBUFS. */
static int out_put(struct bridge *s, const uint8_t *p, size_t n)
{
	if (s->mode == BRIDGE_IDLE)
		return 0;
	if (n > out_free(s)) {
		bridge_logf(s, HAL_LOG_ERROR,
		            "bridge: network output full, %zu-byte answer dropped", n);
		return -ENOBUFS;
	}
	for (size_t i = 0; i < n; i++)
		out_byte(s, p[i]);
	return 0;
}

static void out_flush(struct bridge *s)
{
	while (s->out_len) {
		size_t seg = BRIDGE_NET_OUT - s->out_head;
		if (seg > s->out_len)
			seg = s->out_len;
		size_t k = s->hal->net_send(s->ctx, s->out + s->out_head, seg);
		if (k > seg)
			k = seg;
		s->out_head = (s->out_head + k) % BRIDGE_NET_OUT;
		s->out_len -= k;
		if (k < seg)
			break;
	}
	if (s->out_len == 0)
		s->out_head = 0;
}

/* Send IAC verb opt (RFC 854); verb 0 (telnet_opt: nothing to send) sends nothing. */
static void send_option(struct bridge *s, uint8_t verb, uint8_t opt)
{
	uint8_t b[3];
	if (verb && tn_build_option(b, sizeof(b), verb, opt) == 3) {
		bridge_logf(s, HAL_LOG_DEBUG, "telnet: send %s %u", telnet_verb_name(verb), opt);
		out_put(s, b, 3);
	}
}

static void send_u8(struct bridge *s, uint8_t cmd, uint8_t v)
{
	uint8_t b[16];
	int n = rfc2217_build_u8(b, sizeof(b), (uint8_t)(cmd + RFC2217_SERVER_OFFSET), v);
	if (n > 0)
		out_put(s, b, (size_t)n);
}

static void send_u32(struct bridge *s, uint8_t cmd, uint32_t v)
{
	uint8_t b[24];
	int n = rfc2217_build_u32(b, sizeof(b), (uint8_t)(cmd + RFC2217_SERVER_OFFSET), v);
	if (n > 0)
		out_put(s, b, (size_t)n);
}

static void exec_control(struct bridge *s, uint8_t v)
{
	uint8_t ans = v;
	struct hal_uart_cfg c = s->uart;
	switch (v) {
	case RFC2217_CONTROL_FLOW_QUERY:
		ans = s->uart.flow;
		break;
	case RFC2217_CONTROL_FLOW_NONE:
	case RFC2217_CONTROL_FLOW_XONXOFF:
	case RFC2217_CONTROL_FLOW_HARDWARE:
		c.flow = v;
		boot_ctl_apply_cfg(s, &c, "flow control");
		ans = s->uart.flow;
		break;
	case RFC2217_CONTROL_BREAK_QUERY:
		ans = s->brk ? RFC2217_CONTROL_BREAK_ON : RFC2217_CONTROL_BREAK_OFF;
		break;
	case RFC2217_CONTROL_BREAK_ON:
	case RFC2217_CONTROL_BREAK_OFF:
		s->brk = v == RFC2217_CONTROL_BREAK_ON;
		if (s->hal->uart_break && !s->held)
			s->hal->uart_break(s->ctx, s->brk);
		break;
	case RFC2217_CONTROL_DTR_QUERY:
		ans = s->dtr ? RFC2217_CONTROL_DTR_ON : RFC2217_CONTROL_DTR_OFF;
		break;
	case RFC2217_CONTROL_DTR_ON:
	case RFC2217_CONTROL_DTR_OFF:
		s->dtr = v == RFC2217_CONTROL_DTR_ON;
		boot_ctl_lines(s, 0);
		break;
	case RFC2217_CONTROL_RTS_QUERY:
		ans = s->rts ? RFC2217_CONTROL_RTS_ON : RFC2217_CONTROL_RTS_OFF;
		break;
	case RFC2217_CONTROL_RTS_ON:
	case RFC2217_CONTROL_RTS_OFF:
		s->rts = v == RFC2217_CONTROL_RTS_ON;
		boot_ctl_lines(s, 0);
		break;
	case RFC2217_CONTROL_INFLOW_QUERY:
	case RFC2217_CONTROL_INFLOW_NONE:
	case RFC2217_CONTROL_INFLOW_XONXOFF:
	case RFC2217_CONTROL_INFLOW_HARDWARE:
		/* Inbound flow follows the outbound setting (one setting per UART). */
		if (v != RFC2217_CONTROL_INFLOW_QUERY &&
		    v - RFC2217_CONTROL_INFLOW_QUERY != s->uart.flow) {
			c.flow = (uint8_t)(v - RFC2217_CONTROL_INFLOW_QUERY);
			boot_ctl_apply_cfg(s, &c, "inbound flow control");
		}
		ans = (uint8_t)(RFC2217_CONTROL_INFLOW_QUERY + s->uart.flow);
		break;
	default:
		bridge_logf(s, HAL_LOG_ERROR,
		            "rfc2217: SET-CONTROL %u not supported, answering flow %u", v,
		            s->uart.flow);
		ans = s->uart.flow;
		break;
	}
	bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: SET-CONTROL %u -> %u", v, ans);
	send_u8(s, RFC2217_SET_CONTROL, ans);
}

/* Execute one in-band RFC 2217 command and answer it (code + 100, value applied). */
static void exec_cmd(struct bridge *s, uint8_t code, uint32_t v)
{
	struct hal_uart_cfg c = s->uart;
	const char *name = rfc2217_cmd_name(code);
	switch (code) {
	case RFC2217_SET_BAUDRATE:
		if (v) {
			c.baud = v;
			boot_ctl_apply_cfg(s, &c, "baud rate");
		}
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: %s %u -> %u", name, (unsigned)v,
		            (unsigned)s->uart.baud);
		send_u32(s, code, s->uart.baud);
		return;
	case RFC2217_SET_DATASIZE:
		if (v >= 5 && v <= 8) {
			c.data_bits = (uint8_t)v;
			boot_ctl_apply_cfg(s, &c, "data size");
		} else if (v) {
			bridge_logf(s, HAL_LOG_ERROR, "rfc2217: invalid %s %u, keeping %u", name,
			            (unsigned)v, s->uart.data_bits);
		}
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: %s %u -> %u", name, (unsigned)v,
		            s->uart.data_bits);
		send_u8(s, code, s->uart.data_bits);
		return;
	case RFC2217_SET_PARITY:
		if (v >= RFC2217_PARITY_NONE && v <= RFC2217_PARITY_SPACE) {
			c.parity = (uint8_t)v;
			boot_ctl_apply_cfg(s, &c, "parity");
		} else if (v) {
			bridge_logf(s, HAL_LOG_ERROR, "rfc2217: invalid %s %u, keeping %u", name,
			            (unsigned)v, s->uart.parity);
		}
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: %s %u -> %u", name, (unsigned)v,
		            s->uart.parity);
		send_u8(s, code, s->uart.parity);
		return;
	case RFC2217_SET_STOPSIZE:
		if (v >= RFC2217_STOPSIZE_1 && v <= RFC2217_STOPSIZE_1_5) {
			c.stop = (uint8_t)v;
			boot_ctl_apply_cfg(s, &c, "stop size");
		} else if (v) {
			bridge_logf(s, HAL_LOG_ERROR, "rfc2217: invalid %s %u, keeping %u", name,
			            (unsigned)v, s->uart.stop);
		}
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: %s %u -> %u", name, (unsigned)v,
		            s->uart.stop);
		send_u8(s, code, s->uart.stop);
		return;
	case RFC2217_SET_CONTROL:
		exec_control(s, (uint8_t)v);
		return;
	case RFC2217_SIGNATURE: {
		const char *sig = s->set.signature ? s->set.signature : BRIDGE_SIGNATURE;
		size_t n = strlen(sig);
		if (n > SIG_MAX)
			n = SIG_MAX;
		uint8_t b[SIG_ANSWER_MAX];
		int r = rfc2217_build(b, sizeof(b), RFC2217_SIGNATURE + RFC2217_SERVER_OFFSET,
		                      (const uint8_t *)sig, n);
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: SIGNATURE -> \"%.*s\"", (int)n, sig);
		if (r > 0)
			out_put(s, b, (size_t)r);
		return;
	}
	default:
		return;
	}
}

/* ---- in-band queue ---- */

static size_t data_free(const struct bridge *s)
{
	return BRIDGE_TX_DATA - s->data_len;
}

static struct bridge_op *op_tail(struct bridge *s)
{
	if (!s->ops_len)
		return NULL;
	return &s->ops[(s->ops_head + s->ops_len - 1) % BRIDGE_OPS];
}

static struct bridge_op *op_push(struct bridge *s)
{
	if (s->ops_len == BRIDGE_OPS)
		return NULL;
	struct bridge_op *o = &s->ops[(s->ops_head + s->ops_len) % BRIDGE_OPS];
	s->ops_len++;
	memset(o, 0, sizeof(*o));
	return o;
}

static void op_pop(struct bridge *s)
{
	s->ops_head = (s->ops_head + 1) % BRIDGE_OPS;
	s->ops_len--;
}

/* Queue data for the UART; the caller checked room (data_free, one op). */
static void push_data(struct bridge *s, const uint8_t *p, size_t n)
{
	while (n) {
		struct bridge_op *o = op_tail(s);
		if (!o || o->kind != OP_DATA || o->len == UINT16_MAX) {
			o = op_push(s);
			if (!o) {
				bridge_logf(s, HAL_LOG_ERROR, "bridge: operation queue full (bug)");
				return;
			}
			o->kind = OP_DATA;
		}
		size_t k = n;
		if (k > (size_t)(UINT16_MAX - o->len))
			k = UINT16_MAX - o->len;
		if (k > data_free(s))
			k = data_free(s);
		if (k == 0) {
			bridge_logf(s, HAL_LOG_ERROR, "bridge: data queue full (bug)");
			return;
		}
		for (size_t i = 0; i < k; i++)
			s->data[(s->data_head + s->data_len + i) % BRIDGE_TX_DATA] = p[i];
		s->data_len += k;
		o->len = (uint16_t)(o->len + k);
		p += k;
		n -= k;
	}
}

static void push_cmd(struct bridge *s, uint8_t code, uint32_t v)
{
	struct bridge_op *o = op_push(s);
	if (!o) {
		bridge_logf(s, HAL_LOG_ERROR, "bridge: operation queue full, %s dropped (bug)",
		            rfc2217_cmd_name(code));
		return;
	}
	o->kind = OP_CMD;
	o->code = code;
	o->value = v;
}

/* 1 if a SET-CONTROL value only asks for the current state (RFC 2217 section "SET-CONTROL":
 * the FLOW, BREAK, DTR, RTS and INFLOW query values), which changes nothing. */
static int control_is_query(uint32_t v)
{
	return v == RFC2217_CONTROL_FLOW_QUERY || v == RFC2217_CONTROL_BREAK_QUERY ||
	       v == RFC2217_CONTROL_DTR_QUERY || v == RFC2217_CONTROL_RTS_QUERY ||
	       v == RFC2217_CONTROL_INFLOW_QUERY;
}

/* 1 if op changes the UART framing, the break state or a pin (directly or through
 * auto-boot): it must wait until the UART has sent every earlier byte. Queries do not. */
static int op_needs_drain(const struct bridge_op *o)
{
	if (o->kind == OP_DISC || o->kind == OP_ACT)
		return 1;
	if (o->kind != OP_CMD)
		return 0;
	switch (o->code) {
	case RFC2217_SET_BAUDRATE:
	case RFC2217_SET_DATASIZE:
	case RFC2217_SET_PARITY:
	case RFC2217_SET_STOPSIZE:
		return o->value != 0;
	case RFC2217_SET_CONTROL:
		return !control_is_query(o->value);
	default:
		return 0;
	}
}

/* 1 if the UART has finished transmitting (or the HAL cannot tell). Otherwise 0, with
 * drain_until set to when the bytes should be out (bridge_next_ms reports it). */
static int tx_drained(struct bridge *s)
{
	size_t n = s->hal->uart_tx_pending ? s->hal->uart_tx_pending(s->ctx) : 0;
	if (n == 0) {
		s->draining = 0;
		return 1;
	}
	const struct hal_uart_cfg *c = &s->uart;
	uint64_t bits = 1u + c->data_bits + (c->parity != RFC2217_PARITY_NONE) +
	                (c->stop == RFC2217_STOPSIZE_1 ? 1u : 2u);
	uint64_t baud = c->baud ? c->baud : 1;
	uint64_t ms = ((uint64_t)n * bits * 1000u + baud - 1) / baud;
	if (ms < 1)
		ms = 1;
	if (ms > 1000)
		ms = 1000;
	s->draining = 1;
	s->drain_until = bridge_now(s) + (uint32_t)ms;
	return 0;
}

/* While suspended (bridge_suspend): 1 if op needs the UART or the pins and must wait for the
 * resume. Data, actions, the disconnect restore, break, DTR/RTS and flow-control changes
 * wait; a framing change (baud, data size, parity, stop bits) that keeps the port in or out
 * of 8E1 (so no auto-boot step follows) and every query run at once on the session's state,
 * so their answers are sent; the framing reaches the UART at resume. */
static int op_needs_hw(const struct bridge *s, const struct bridge_op *o)
{
	if (o->kind == OP_DATA)
		return o->len != 0;
	if (o->kind != OP_CMD)
		return 1;
	if (o->value == 0 || o->code == RFC2217_SIGNATURE)
		return 0; /* query */
	struct hal_uart_cfg c = s->uart;
	switch (o->code) {
	case RFC2217_SET_BAUDRATE:
		return 0;
	case RFC2217_SET_DATASIZE:
		c.data_bits = (uint8_t)o->value;
		break;
	case RFC2217_SET_PARITY:
		c.parity = (uint8_t)o->value;
		break;
	case RFC2217_SET_STOPSIZE:
		c.stop = (uint8_t)o->value;
		break;
	case RFC2217_SET_CONTROL:
		return !control_is_query(o->value);
	default:
		return 0;
	}
	return boot_ctl_is_8e1(&c) != boot_ctl_is_8e1(&s->uart);
}

/* Execute queued operations in stream order until one has to wait. */
static void run_ops(struct bridge *s)
{
	for (;;) {
		if (!boot_ctl_step(s))
			return; /* reset pulse or settle hold running */
		if (!s->ops_len)
			return;
		struct bridge_op *o = &s->ops[s->ops_head];
		if (s->held) {
			if (op_needs_hw(s, o))
				return; /* waits for bridge_suspend(s, 0) */
		} else if (op_needs_drain(o) && !tx_drained(s)) {
			return; /* earlier bytes still leaving the UART */
		}
		if (o->kind == OP_DISC) {
			op_pop(s);
			boot_ctl_restore(s);
			continue;
		}
		if (o->kind == OP_ACT) {
			uint8_t a = o->code;
			op_pop(s);
			boot_ctl_action(s, a);
			continue;
		}
		if (o->kind == OP_DATA) {
			if (o->len == 0) {
				op_pop(s);
				continue;
			}
			if (s->rel_pending)
				return; /* chip still in reset: data waits for release + settle */
			if (s->ab_armed) {
				if (s->data[s->data_head] == 0x7F &&
				    s->set.auto_boot == BRIDGE_AUTO_SYNC) {
					if (!tx_drained(s))
						return;
					s->ab_armed = 0;
					boot_ctl_enter(s, "8E1 and 0x7F");
					continue;
				}
				s->ab_armed = 0;
			}
			size_t seg = BRIDGE_TX_DATA - s->data_head;
			if (seg > o->len)
				seg = o->len;
			size_t k = s->hal->uart_write(s->ctx, s->data + s->data_head, seg);
			if (k > seg)
				k = seg;
			s->data_head = (s->data_head + k) % BRIDGE_TX_DATA;
			s->data_len -= k;
			o->len = (uint16_t)(o->len - k);
			if (s->data_len == 0)
				s->data_head = 0;
			if (k < seg)
				return; /* UART full: bridge_poll() again when it has room */
		} else {
			size_t need =
			    o->code == RFC2217_SIGNATURE ? SIG_ANSWER_MAX : CMD_ANSWER_MAX;
			if (out_free(s) < need && s->mode != BRIDGE_IDLE)
				return; /* answer would not fit: wait for the socket */
			uint8_t code = o->code;
			uint32_t v = o->value;
			op_pop(s);
			exec_cmd(s, code, v);
		}
	}
}

/* ---- Telnet negotiation (RFC 854/855 by RFC 1143's Q method: telnet_opt.h) ---- */

/* NOTIFY-MODEMSTATE (RFC 2217), once per connection, as soon as COM-PORT is enabled on
 * either side. */
static void maybe_modemstate(struct bridge *s)
{
	if (s->modem_sent || (telnet_opt_state(&s->tn, TELNET_US, TELOPT_COMPORT) != TELNET_Q_YES &&
	                      telnet_opt_state(&s->tn, TELNET_HIM, TELOPT_COMPORT) != TELNET_Q_YES))
		return;
	s->modem_sent = 1;
	bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: NOTIFY-MODEMSTATE 0x%02x", s->set.modem_state);
	send_u8(s, RFC2217_NOTIFY_MODEMSTATE, s->set.modem_state);
}

/* A received IAC WILL/WONT/DO/DONT opt: the engine's answer, if any. */
static void negotiate(struct bridge *s, uint8_t verb, uint8_t opt)
{
	bridge_logf(s, HAL_LOG_DEBUG, "telnet: recv %s %u", telnet_verb_name(verb), opt);
	send_option(s, telnet_opt_recv(&s->tn, verb, opt), opt);
	maybe_modemstate(s);
}

/* Ask for opt on side (RFC 1143 "we decide to ask to enable"). */
static void offer(struct bridge *s, enum telnet_side side, uint8_t opt)
{
	send_option(s, telnet_opt_enable(&s->tn, side, opt), opt);
}

static void start_telnet(struct bridge *s)
{
	s->mode = BRIDGE_TELNET;
	bridge_logf(s, HAL_LOG_DEBUG, "bridge: client speaks Telnet: RFC 2217 mode");
	/* Offer what we want: BINARY both ways (RFC 856), SGA (RFC 858), COM-PORT (RFC 2217). */
	offer(s, TELNET_US, TELOPT_BINARY);
	offer(s, TELNET_HIM, TELOPT_BINARY);
	offer(s, TELNET_US, TELOPT_SGA);
	offer(s, TELNET_US, TELOPT_COMPORT);
}

/* A COM-PORT-OPTION subnegotiation from the client (RFC 2217). */
static void handle_comport(struct bridge *s, const struct tn_event *ev)
{
	struct rfc2217_msg m;
	if (ev->truncated) {
		bridge_logf(s, HAL_LOG_ERROR,
		            "rfc2217: subnegotiation longer than %d bytes ignored", TN_SB_MAX);
		return;
	}
	if (rfc2217_parse(ev->data, ev->len, &m) < 0) {
		bridge_logf(s, HAL_LOG_ERROR,
		            "rfc2217: malformed command (code %u, %zu bytes) ignored",
		            ev->len ? ev->data[0] : 0, ev->len);
		return;
	}
	if (m.from_server) {
		bridge_logf(s, HAL_LOG_ERROR, "rfc2217: server code %u from the client ignored",
		            m.code);
		return;
	}
	switch (m.cmd) {
	case RFC2217_SIGNATURE: {
		if (m.text_len) {
			bridge_logf(s, HAL_LOG_INFO, "rfc2217: client signature \"%.*s\"",
			            (int)m.text_len, (const char *)m.text);
			return;
		}
		/* Queued like the SET commands: its answer (up to SIG_ANSWER_MAX bytes) is far
		 * more than bridge_net_room's 5x budget for a 6-byte request, so run_ops sends it
		 * when that much output room is free; it is never dropped. */
		push_cmd(s, RFC2217_SIGNATURE, 0);
		return;
	}
	case RFC2217_SET_BAUDRATE:
	case RFC2217_SET_DATASIZE:
	case RFC2217_SET_PARITY:
	case RFC2217_SET_STOPSIZE:
	case RFC2217_SET_CONTROL:
		push_cmd(s, m.cmd, m.value); /* in-band: applied at its place in the stream */
		return;
	case RFC2217_NOTIFY_LINESTATE:
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: NOTIFY-LINESTATE poll");
		send_u8(s, RFC2217_NOTIFY_LINESTATE, 0);
		return;
	case RFC2217_NOTIFY_MODEMSTATE:
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: NOTIFY-MODEMSTATE poll");
		send_u8(s, RFC2217_NOTIFY_MODEMSTATE, s->set.modem_state & s->modemstate_mask);
		return;
	case RFC2217_FLOWCONTROL_SUSPEND:
	case RFC2217_FLOWCONTROL_RESUME:
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: %s", rfc2217_cmd_name(m.cmd));
		s->suspended = m.cmd == RFC2217_FLOWCONTROL_SUSPEND;
		return;
	case RFC2217_SET_LINESTATE_MASK:
		s->linestate_mask = (uint8_t)m.value;
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: SET-LINESTATE-MASK 0x%02x",
		            s->linestate_mask);
		send_u8(s, m.cmd, s->linestate_mask);
		return;
	case RFC2217_SET_MODEMSTATE_MASK:
		s->modemstate_mask = (uint8_t)m.value;
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: SET-MODEMSTATE-MASK 0x%02x",
		            s->modemstate_mask);
		send_u8(s, m.cmd, s->modemstate_mask);
		return;
	case RFC2217_PURGE_DATA:
		if (m.value < RFC2217_PURGE_RX || m.value > RFC2217_PURGE_BOTH) {
			bridge_logf(s, HAL_LOG_ERROR, "rfc2217: invalid PURGE-DATA %u ignored",
			            (unsigned)m.value);
			return;
		}
		bridge_logf(s, HAL_LOG_DEBUG, "rfc2217: PURGE-DATA %u", (unsigned)m.value);
		if (m.value & RFC2217_PURGE_TX) {
			/* Drop network->UART data not yet written; commands stay in order. */
			for (size_t i = 0; i < s->ops_len; i++) {
				struct bridge_op *o = &s->ops[(s->ops_head + i) % BRIDGE_OPS];
				if (o->kind == OP_DATA)
					o->len = 0;
			}
			s->data_len = 0;
			s->data_head = 0;
		}
		/* Suspended: the UART's buffers hold the flasher's bytes, not the client's. */
		if (s->hal->uart_purge && !s->held)
			s->hal->uart_purge(s->ctx, (m.value & RFC2217_PURGE_RX) != 0,
			                   (m.value & RFC2217_PURGE_TX) != 0);
		send_u8(s, RFC2217_PURGE_DATA, (uint8_t)m.value);
		return;
	default:
		return;
	}
}

static void on_event(void *ctx, const struct tn_event *ev)
{
	struct bridge *s = ctx;
	switch (ev->type) {
	case TN_EV_DATA:
		push_data(s, ev->data, ev->len);
		break;
	case TN_EV_WILL:
		negotiate(s, TN_WILL, ev->opt);
		break;
	case TN_EV_WONT:
		negotiate(s, TN_WONT, ev->opt);
		break;
	case TN_EV_DO:
		negotiate(s, TN_DO, ev->opt);
		break;
	case TN_EV_DONT:
		negotiate(s, TN_DONT, ev->opt);
		break;
	case TN_EV_SB:
		if (ev->opt == TELOPT_COMPORT)
			handle_comport(s, ev);
		else
			bridge_logf(s, HAL_LOG_DEBUG,
			            "telnet: subnegotiation for option %u ignored", ev->opt);
		break;
	case TN_EV_COMMAND:
		bridge_logf(s, HAL_LOG_DEBUG, "telnet: command %u ignored", ev->opt);
		break;
	}
}

/* ---- public API ---- */

int bridge_init(struct bridge *s, const struct hal_ops *hal, void *ctx,
                const struct bridge_settings *set)
{
	memset(s, 0, sizeof(*s));
	s->hal = hal;
	s->ctx = ctx;
	s->set = *set;
	s->mode = BRIDGE_IDLE;
	s->modemstate_mask = 0xFF;
	s->linestate_mask = 0;
	tn_decoder_init(&s->dec);
	s->uart = set->uart;
	struct hal_uart_cfg c = set->uart;
	int r = hal->uart_config(ctx, &c);
	if (r == 0)
		s->uart = c;
	s->nrst = -1; /* unknown: force both pins to be driven */
	s->boot0 = -1;
	hal->gpio_set(ctx, HAL_PIN_BOOT0, 0);
	hal->gpio_set(ctx, HAL_PIN_NRST, 1);
	s->nrst = 1;
	s->boot0 = 0;
	return r;
}

void bridge_connect(struct bridge *s)
{
	s->mode = BRIDGE_PENDING;
	tn_decoder_init(&s->dec);
	telnet_opt_init(&s->tn, accepted_opts, sizeof(accepted_opts));
	s->modem_sent = 0;
	s->suspended = 0;
	s->out_len = s->out_head = 0;
	s->modemstate_mask = 0xFF;
	s->linestate_mask = 0;
	bridge_logf(s, HAL_LOG_DEBUG, "bridge: client connected");
}

void bridge_disconnect(struct bridge *s)
{
	if (s->mode == BRIDGE_IDLE)
		return;
	s->mode = BRIDGE_IDLE;
	s->out_len = s->out_head = 0;
	/* Keep queued out-of-band actions (they are not the client's); drop the rest. */
	size_t keep = 0;
	for (size_t i = 0; i < s->ops_len; i++) {
		struct bridge_op o = s->ops[(s->ops_head + i) % BRIDGE_OPS];
		if (o.kind == OP_ACT)
			s->ops[keep++] = o;
	}
	s->ops_head = 0;
	s->ops_len = keep;
	s->data_len = s->data_head = 0;
	s->ab_armed = 0;
	if (s->brk && s->hal->uart_break && !s->held)
		s->hal->uart_break(s->ctx, 0);
	s->brk = 0;
	s->dtr = s->rts = 0;
	s->draining = 0;
	/* Framing and pins are restored in-band, once the UART has sent what it holds. */
	struct bridge_op *o = op_push(s);
	o->kind = OP_DISC;
	bridge_logf(s, HAL_LOG_DEBUG, "bridge: client disconnected");
	run_ops(s);
}

int bridge_action(struct bridge *s, enum bridge_action a)
{
	if (a != BRIDGE_ACT_RESET && a != BRIDGE_ACT_BOOTLOADER && a != BRIDGE_ACT_RUN)
		return -EINVAL;
	if (a == BRIDGE_ACT_BOOTLOADER && s->set.locked) {
		bridge_logf(s, HAL_LOG_INFO,
		            "action bootloader refused: locked mode (signed images only)");
		return -EPERM;
	}
	/* One entry stays free for the OP_DISC of bridge_disconnect(). */
	struct bridge_op *o = s->ops_len + 1 < BRIDGE_OPS ? op_push(s) : NULL;
	if (!o) {
		bridge_logf(s, HAL_LOG_ERROR, "action %d refused: operation queue full", (int)a);
		return -EBUSY;
	}
	o->kind = OP_ACT;
	o->code = (uint8_t)a;
	bridge_poll(s);
	return 0;
}

void bridge_force_raw(struct bridge *s)
{
	if (s->mode != BRIDGE_PENDING)
		return;
	s->mode = BRIDGE_RAW;
	bridge_logf(s, HAL_LOG_DEBUG, "bridge: raw client (no Telnet detection)");
}

void bridge_log(struct bridge *s, enum hal_log_level level, const char *line)
{
	if (s->hal->log)
		s->hal->log(s->ctx, level, line);
}

int bridge_connected(const struct bridge *s)
{
	return s->mode != BRIDGE_IDLE;
}

size_t bridge_net_room(const struct bridge *s)
{
	size_t ops_free = BRIDGE_OPS - s->ops_len;
	size_t df = data_free(s);
	switch (s->mode) {
	case BRIDGE_IDLE:
		return SIZE_MAX;
	case BRIDGE_RAW:
		return ops_free ? df : 0;
	default: {
		/* Each input byte yields at most one data byte and one queued operation; an
		 * answer is at most ~5 times its request, plus the 12-byte opening offer. */
		size_t of = out_free(s);
		if (of < 64)
			return 0;
		size_t r = (of - 32) / 5;
		if (r > df)
			r = df;
		if (r > ops_free)
			r = ops_free;
		return r;
	}
	}
}

size_t bridge_from_net(struct bridge *s, const uint8_t *p, size_t n)
{
	if (s->mode == BRIDGE_IDLE)
		return n;
	size_t done = 0;
	while (done < n) {
		if (s->mode == BRIDGE_PENDING) {
			if (p[done] == TN_IAC) {
				if (bridge_net_room(s) == 0)
					break;
				start_telnet(s);
			} else {
				s->mode = BRIDGE_RAW;
				bridge_logf(s, HAL_LOG_INFO,
				            "bridge: client sent raw data: raw bridge");
			}
		}
		size_t room = bridge_net_room(s);
		if (room == 0)
			break;
		size_t k = n - done < room ? n - done : room;
		if (s->mode == BRIDGE_RAW)
			push_data(s, p + done, k);
		else
			tn_decode(&s->dec, p + done, k, on_event, s);
		done += k;
	}
	bridge_poll(s);
	return done;
}

size_t bridge_uart_room(const struct bridge *s)
{
	if (s->held)
		return 0;
	if (s->mode == BRIDGE_IDLE)
		return SIZE_MAX;
	if (s->suspended)
		return 0;
	size_t of = out_free(s);
	if (of <= BRIDGE_NET_RSV)
		return 0;
	of -= BRIDGE_NET_RSV;
	return s->mode == BRIDGE_TELNET ? of / 2 : of;
}

size_t bridge_from_uart(struct bridge *s, const uint8_t *p, size_t n)
{
	if (s->held)
		return 0;
	if (s->mode == BRIDGE_IDLE)
		return n;
	if (s->suspended)
		return 0;
	size_t i = 0;
	for (; i < n; i++) {
		size_t of = out_free(s);
		size_t need = (s->mode == BRIDGE_TELNET && p[i] == TN_IAC) ? 2 : 1;
		if (of < BRIDGE_NET_RSV + need)
			break;
		if (s->mode == BRIDGE_PENDING && p[i] == TN_IAC)
			break; /* encoding unknown until the client speaks */
		out_byte(s, p[i]);
		if (need == 2)
			out_byte(s, TN_IAC);
	}
	out_flush(s);
	return i;
}

void bridge_poll(struct bridge *s)
{
	if (s->in_poll)
		return;
	s->in_poll = 1;
	run_ops(s);
	if (s->mode != BRIDGE_IDLE)
		out_flush(s);
	s->in_poll = 0;
}

/* Fold deadline 'at' (ms clock) into *best (-1 = none yet). */
static void next_min(int32_t *best, uint32_t t, uint32_t at)
{
	int32_t d = (int32_t)(at - t);
	if (d < 0)
		d = 0;
	if (*best < 0 || d < *best)
		*best = d;
}

int32_t bridge_next_ms(const struct bridge *s)
{
	uint32_t t = s->hal->now_ms(s->ctx);
	int32_t best = -1;
	if (s->seq || (s->holding && s->ops_len))
		next_min(&best, t, s->hold_until);
	if (s->draining && s->ops_len)
		next_min(&best, t, s->drain_until);
	if (s->rel_pending)
		next_min(&best, t, s->rel_at);
	return best;
}

int bridge_tx_pending(const struct bridge *s)
{
	if (s->held)
		return 0; /* nothing moves until bridge_suspend(s, 0); timed steps: next_ms */
	return s->ops_len != 0 || s->seq != 0;
}

const struct hal_uart_cfg *bridge_uart(const struct bridge *s)
{
	return &s->uart;
}

enum bridge_mode bridge_mode(const struct bridge *s)
{
	return s->mode;
}

/* ---- settings and actions from the HTTP API (bridge.h) ---- */

void bridge_update_settings(struct bridge *s, const struct bridge_settings *set)
{
	s->set = *set;
	if (s->held || s->mode != BRIDGE_IDLE || s->seq || s->ops_len || s->pinned)
		return; /* the framing follows at the next disconnect (disconnect_lines) or at
		           the resume (bridge_suspend) */
	struct hal_uart_cfg c = set->uart;
	boot_ctl_apply_cfg(s, &c, "new settings");
}

/* ---- suspension while the STM32 flasher owns the UART and pins (bridge.h) ---- */

void bridge_suspend(struct bridge *s, int on)
{
	on = on != 0;
	if (on == s->held)
		return;
	if (on) {
		s->held = 1;
		s->draining = 0;
		bridge_logf(s, HAL_LOG_INFO,
		            "bridge: suspended (UART and pins lent to the flasher)");
		return;
	}
	s->held = 0;
	/* Re-apply the session's framing, break and pins: the flasher left its own. */
	struct hal_uart_cfg c = s->uart;
	if (s->hal->uart_config(s->ctx, &c) < 0) {
		bridge_logf(
		    s, HAL_LOG_ERROR,
		    "bridge: framing %u %u/%u/%u refused by the UART at resume, default restored",
		    (unsigned)s->uart.baud, s->uart.data_bits, s->uart.parity, s->uart.stop);
		c = s->set.uart;
		if (s->hal->uart_config(s->ctx, &c) == 0)
			s->uart = c;
	} else {
		s->uart = c;
	}
	if (s->brk && s->hal->uart_break)
		s->hal->uart_break(s->ctx, 1);
	if (s->boot0 >= 0)
		s->hal->gpio_set(s->ctx, HAL_PIN_BOOT0, s->boot0);
	if (s->nrst >= 0)
		s->hal->gpio_set(s->ctx, HAL_PIN_NRST, s->nrst);
	bridge_logf(s, HAL_LOG_INFO, "bridge: resumed: %u baud, NRST=%s BOOT0=%s",
	            (unsigned)s->uart.baud, s->nrst ? "high" : "low", s->boot0 ? "high" : "low");
	/* settings saved meanwhile: their framing now, as bridge_update_settings would have */
	if (s->mode == BRIDGE_IDLE && !s->seq && !s->ops_len && !s->pinned &&
	    memcmp(&s->uart, &s->set.uart, sizeof(s->uart)) != 0) {
		c = s->set.uart;
		boot_ctl_apply_cfg(s, &c, "new settings");
	}
	bridge_poll(s);
}

int bridge_suspended(const struct bridge *s)
{
	return s->held;
}
