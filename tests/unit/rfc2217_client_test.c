/* SPDX-License-Identifier: MIT */
/*
 * Unit tests for firmware/core/rfc2217_client.c on a fake clock, without sockets: the
 * caller's TX queue is a list here (front/tail as the client asks), "sending" it walks the
 * list like daemon/link.c's kick (answers expected once sent, the action-end marker
 * reached), and every queued item is rendered as text ("WILL 0", "SET-BAUDRATE 9600",
 * "DELAY 100", "END") to compare. The last case runs the client against the real server
 * session (bridge.c) with a fake HAL.
 */
#include "bridge.h"
#include "rfc2217_client.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define IAC     0xFF
#define SB(...) IAC, TN_SB, TELOPT_COMPORT, __VA_ARGS__, IAC, TN_SE
#define MAXQ    64

struct item {
	struct rfc2217_client_out o;
	uint8_t b[64];
};

static struct fake {
	struct item q[MAXQ]; /* the caller's TX queue */
	size_t nq;
	int fail_after; /* out() fails with fail_err once this many items were queued; -1 never */
	int fail_err;
	size_t nout;
	char trace[2048]; /* what was "sent", rendered, comma-separated */
	uint8_t data[8192];
	size_t ndata;
	unsigned ev[16]; /* events seen, per enum rfc2217_client_event */
	uint32_t ev_val[16];
	uint32_t purged;
	char log[4096];
	bool stop_in_data; /* ops.data stops the client (connection lost mid-buffer) */
} F;

static struct rfc2217_client C;

static int f_out(void *ctx, const struct rfc2217_client_out *o)
{
	struct item *it;

	(void)ctx;
	if (F.fail_after >= 0 && F.nout >= (size_t)F.fail_after)
		return F.fail_err;
	ck_assert_uint_lt(F.nq, MAXQ);
	ck_assert_uint_le(o->n, sizeof it->b);
	if (o->kind == RFC2217_OUT_BYTES && o->front) {
		memmove(F.q + 1, F.q, F.nq * sizeof F.q[0]);
		it = &F.q[0];
	} else {
		it = &F.q[F.nq];
	}
	F.nq++;
	F.nout++;
	it->o = *o;
	if (o->n)
		memcpy(it->b, o->p, o->n);
	it->o.p = NULL;
	return 0;
}

static void f_data(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	ck_assert_uint_le(F.ndata + n, sizeof F.data);
	memcpy(F.data + F.ndata, p, n);
	F.ndata += n;
	if (F.stop_in_data)
		rfc2217_client_stop(&C);
}

static void f_event(void *ctx, enum rfc2217_client_event ev, uint32_t value)
{
	(void)ctx;
	F.ev[ev]++;
	F.ev_val[ev] = value;
	if (ev == RFC2217_EV_PURGED)
		F.purged += value;
}

static void f_log(void *ctx, enum rfc2217_client_log level, const char *line)
{
	size_t n = strlen(F.log);

	(void)ctx;
	snprintf(F.log + n, sizeof F.log - n, "%d %s\n", (int)level, line);
}

static const struct rfc2217_client_ops ops = {
    .out = f_out, .data = f_data, .event = f_event, .log = f_log};

static void trace_add(const char *fmt, const char *s, unsigned v)
{
	size_t n = strlen(F.trace);

	snprintf(F.trace + n, sizeof F.trace - n, "%s", n ? "," : "");
	n = strlen(F.trace);
	snprintf(F.trace + n, sizeof F.trace - n, fmt, s, v);
}

static void render_ev(void *ctx, const struct tn_event *ev)
{
	struct rfc2217_msg m;

	(void)ctx;
	switch (ev->type) {
	case TN_EV_WILL:
		trace_add("%s %u", "WILL", ev->opt);
		break;
	case TN_EV_WONT:
		trace_add("%s %u", "WONT", ev->opt);
		break;
	case TN_EV_DO:
		trace_add("%s %u", "DO", ev->opt);
		break;
	case TN_EV_DONT:
		trace_add("%s %u", "DONT", ev->opt);
		break;
	case TN_EV_SB:
		ck_assert_int_eq(rfc2217_parse(ev->data, ev->len, &m), 0);
		if (m.cmd == RFC2217_SIGNATURE || m.cmd == RFC2217_FLOWCONTROL_SUSPEND ||
		    m.cmd == RFC2217_FLOWCONTROL_RESUME)
			trace_add("%s%.0u", rfc2217_cmd_name(m.code), 0);
		else
			trace_add("%s %u", rfc2217_cmd_name(m.code), m.value);
		break;
	default:
		ck_abort_msg("unexpected bytes from the client");
	}
}

/* "Send" the queue as daemon/link.c's kick does, rendering it into F.trace. */
static void send_all(void)
{
	while (F.nq > 0) {
		struct item it = F.q[0];
		struct tn_decoder d;

		memmove(F.q, F.q + 1, (F.nq - 1) * sizeof F.q[0]);
		F.nq--;
		switch (it.o.kind) {
		case RFC2217_OUT_BYTES:
			if (it.o.answer)
				rfc2217_client_sent(&C, it.o.cmd, it.o.val);
			tn_decoder_init(&d);
			tn_decode(&d, it.b, it.o.n, render_ev, NULL);
			break;
		case RFC2217_OUT_DELAY:
			trace_add("%s %u", "DELAY", it.o.val);
			break;
		case RFC2217_OUT_ACTION_END:
			trace_add("%s%.0u", "END", 0);
			rfc2217_client_action_done(&C);
			break;
		}
	}
}

/* What was sent since the last call. */
static const char *sent(void)
{
	static char out[sizeof F.trace];

	send_all();
	memcpy(out, F.trace, sizeof out);
	F.trace[0] = '\0';
	return out;
}

static void in(const uint8_t *p, size_t n, uint32_t now)
{
	rfc2217_client_input(&C, p, n, now);
}
#define IN(now, ...)                                                                               \
	do {                                                                                       \
		const uint8_t b_[] = {__VA_ARGS__};                                                \
		in(b_, sizeof b_, now);                                                            \
	} while (0)

static void setup(void)
{
	memset(&F, 0, sizeof F);
	F.fail_after = -1;
	rfc2217_client_init(&C, &ops, NULL);
}

/* Connect at t = 1000 and let the bridge agree to everything (as bridge.c does). */
static void up(void)
{
	rfc2217_client_start(&C, "bridge:2217", 1000);
	ck_assert_str_eq(sent(), "WILL 0,DO 0,WILL 3,DO 3,WILL 44");
	IN(1010, IAC, TN_DO, 0, IAC, TN_WILL, 0, IAC, TN_DO, 3, IAC, TN_WILL, 3, IAC, TN_DO, 44);
	ck_assert(rfc2217_client_is_up(&C));
}

START_TEST(negotiation)
{
	rfc2217_client_start(&C, "bridge:2217", 1000);
	ck_assert_str_eq(sent(), "WILL 0,DO 0,WILL 3,DO 3,WILL 44");
	/* the bridge accepts our offers: nothing to answer (RFC 1143: no loop) */
	IN(1010, IAC, TN_DO, 0, IAC, TN_WILL, 0, IAC, TN_DO, 3, IAC, TN_WILL, 3);
	ck_assert_str_eq(sent(), "");
	ck_assert(!rfc2217_client_is_up(&C));
	ck_assert_uint_eq(F.ev[RFC2217_EV_UP], 0);
	/* it asks for what we accept on its side too: agreed */
	IN(1011, IAC, TN_WILL, 44);
	ck_assert_str_eq(sent(), "DO 44");
	IN(1012, IAC, TN_DO, 44);
	ck_assert_uint_eq(F.ev[RFC2217_EV_UP], 1);
	ck_assert(rfc2217_client_is_up(&C));
	ck_assert(!rfc2217_client_comport_refused(&C));
	ck_assert(rfc2217_client_can_suspend(&C));
	ck_assert_str_eq(sent(), "SIGNATURE"); /* nothing desired yet */
	/* repeated agreement changes nothing */
	IN(1013, IAC, TN_DO, 44, IAC, TN_DO, 0);
	ck_assert_str_eq(sent(), "");
	ck_assert_uint_eq(F.ev[RFC2217_EV_UP], 1);
	/* the bridge's SIGNATURE answer is logged */
	IN(1014, SB(100, 'e', 's', 'p'));
	ck_assert_ptr_nonnull(strstr(F.log, "bridge signature: esp"));
	/* BINARY switched off by the bridge: acknowledged once */
	IN(1015, IAC, TN_DONT, 0, IAC, TN_DONT, 0);
	ck_assert_str_eq(sent(), "WONT 0");
}
END_TEST

START_TEST(refused_once)
{
	up();
	sent();
	for (int i = 0; i < 5; i++)
		IN(1100, IAC, TN_DO, 99, IAC, TN_WILL, 200, IAC, TN_WILL, TELOPT_ECHO, IAC, TN_WONT,
		   99);
	ck_assert_str_eq(sent(), "WONT 99,DONT 200,DONT 1");
	ck_assert_ptr_nonnull(strstr(F.log, "refusing telnet option 99"));
	ck_assert(rfc2217_client_is_up(&C));
}
END_TEST

START_TEST(state_sent_in_order)
{
	struct rfc2217_client_line ln = {19200, 7, RFC2217_PARITY_ODD, RFC2217_STOPSIZE_2};

	/* desired before connecting: nothing is sent yet */
	rfc2217_client_set_line(&C, &ln);
	rfc2217_client_set_flow(&C, RFC2217_CONTROL_FLOW_HARDWARE);
	rfc2217_client_set_dtr(&C, false);
	rfc2217_client_set_rts(&C, true);
	ck_assert_str_eq(sent(), "");
	up();
	ck_assert_str_eq(sent(), "SET-BAUDRATE 19200,SET-DATASIZE 7,SET-PARITY 2,SET-STOPSIZE 2,"
	                         "SET-CONTROL 3,SET-CONTROL 11,SET-CONTROL 9,SIGNATURE");
	/* only what differs from what this connection was sent */
	ln.baud = 115200;
	rfc2217_client_set_line(&C, &ln);
	ck_assert_str_eq(sent(), "SET-BAUDRATE 115200");
	rfc2217_client_set_line(&C, &ln);
	rfc2217_client_set_rts(&C, true);
	rfc2217_client_set_flow(&C, RFC2217_CONTROL_FLOW_HARDWARE);
	ck_assert_str_eq(sent(), "");
	ln.parity = RFC2217_PARITY_EVEN;
	ln.data_bits = 8;
	rfc2217_client_set_line(&C, &ln);
	rfc2217_client_set_dtr(&C, true);
	ck_assert_str_eq(sent(), "SET-DATASIZE 8,SET-PARITY 3,SET-CONTROL 8");
	rfc2217_client_set_break(&C, true);
	rfc2217_client_set_break(&C, false);
	ck_assert_str_eq(sent(), "SET-CONTROL 5,SET-CONTROL 6");
	/* a new connection gets all of it again */
	rfc2217_client_stop(&C);
	rfc2217_client_set_rts(&C, false);
	ck_assert_str_eq(sent(), "");
	up();
	ck_assert_str_eq(sent(), "SET-BAUDRATE 115200,SET-DATASIZE 8,SET-PARITY 3,SET-STOPSIZE 2,"
	                         "SET-CONTROL 3,SET-CONTROL 12,SET-CONTROL 8,SIGNATURE");
}
END_TEST

START_TEST(comport_refused)
{
	struct rfc2217_client_line ln = {9600, 8, RFC2217_PARITY_NONE, RFC2217_STOPSIZE_1};

	rfc2217_client_set_line(&C, &ln);
	rfc2217_client_start(&C, "bridge:2217", 1000);
	sent();
	IN(1010, IAC, TN_DONT, 44);
	ck_assert_uint_eq(F.ev[RFC2217_EV_COMPORT_REFUSED], 1);
	ck_assert_uint_eq(F.ev[RFC2217_EV_UP], 1);
	ck_assert(rfc2217_client_comport_refused(&C));
	ck_assert(!rfc2217_client_can_suspend(&C));
	ck_assert_ptr_nonnull(strstr(F.log, "refused COM-PORT-OPTION"));
	/* no commands into a connection that did not agree to them */
	ck_assert_str_eq(sent(), "");
	rfc2217_client_set_dtr(&C, true);
	rfc2217_client_set_break(&C, true);
	ck_assert(!rfc2217_client_purge(&C, RFC2217_PURGE_BOTH, 1020));
	ck_assert_str_eq(sent(), "");
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_RESET), -ENOTSUP);
	/* the negotiation timer no longer matters */
	rfc2217_client_poll(&C, 9000);
	ck_assert_uint_eq(F.ev[RFC2217_EV_UP], 1);
}
END_TEST

START_TEST(negotiation_timeout)
{
	struct rfc2217_client_line ln = {19200, 7, RFC2217_PARITY_ODD, RFC2217_STOPSIZE_2};

	rfc2217_client_set_line(&C, &ln);
	rfc2217_client_start(&C, "bridge:2217", 1000);
	sent();
	rfc2217_client_poll(&C, 1000 + RFC2217_CLIENT_NEGOTIATE_MS - 1);
	ck_assert(!rfc2217_client_is_up(&C));
	rfc2217_client_poll(&C, 1000 + RFC2217_CLIENT_NEGOTIATE_MS);
	ck_assert(rfc2217_client_is_up(&C));
	ck_assert(rfc2217_client_comport_refused(&C));
	ck_assert_ptr_nonnull(strstr(F.log, "did not agree to COM-PORT-OPTION within 2000 ms"));
	/* up, but no COM-PORT-OPTION commands into a possibly raw stream */
	ck_assert_str_eq(sent(), "");
	IN(3100, 'r', 'a', 'w');
	ck_assert_uint_eq(F.ndata, 3);
	/* a late DO COM-PORT-OPTION: the whole state is sent then */
	IN(3200, IAC, TN_DO, 44);
	ck_assert(!rfc2217_client_comport_refused(&C));
	ck_assert_str_eq(sent(), "SET-BAUDRATE 19200,SET-DATASIZE 7,SET-PARITY 2,SET-STOPSIZE 2");
	ck_assert_uint_eq(F.ev[RFC2217_EV_UP], 1);
}
END_TEST

START_TEST(clock_wraps)
{
	/* the negotiation deadline across the 2^32 ms wrap */
	rfc2217_client_start(&C, NULL, UINT32_MAX - 500);
	sent();
	rfc2217_client_poll(&C, 1000);
	ck_assert(!rfc2217_client_is_up(&C));
	rfc2217_client_poll(&C, RFC2217_CLIENT_NEGOTIATE_MS - 501);
	ck_assert(rfc2217_client_is_up(&C));
}
END_TEST

START_TEST(answers)
{
	struct rfc2217_client_line ln = {115200, 8, RFC2217_PARITY_NONE, RFC2217_STOPSIZE_1};

	up();
	/* an answer for something never sent: unsolicited, not counted */
	IN(1100, SB(101, 0, 0, 0x25, 0x80));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER], 0);
	ck_assert_ptr_nonnull(strstr(F.log, "unsolicited SET-BAUDRATE"));
	rfc2217_client_set_line(&C, &ln);
	/* queued but not sent yet: its answer is not expected */
	IN(1101, SB(101, 0, 1, 0xC2, 0x00));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER], 0);
	sent();
	/* the bridge applied something else: logged, not fatal */
	IN(1102, SB(101, 0, 0, 0xE1, 0x00));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER], 1);
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 1);
	ck_assert_ptr_nonnull(
	    strstr(F.log, "bridge answered SET-BAUDRATE 57600, asked for 115200"));
	/* the others match */
	IN(1103, SB(102, 8), SB(103, 1), SB(104, 1));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER], 4);
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 1);
	/* answers to PURGE-DATA and BREAK come in order per command */
	rfc2217_client_purge(&C, RFC2217_PURGE_TX, 1104);
	rfc2217_client_set_break(&C, true);
	rfc2217_client_set_break(&C, false);
	ck_assert_str_eq(sent(), "PURGE-DATA 2,SET-CONTROL 5,SET-CONTROL 6");
	IN(1105, SB(112, 2), SB(105, 5), SB(105, 6));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER], 7);
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 1);
	/* a client command from the bridge, malformed messages: ignored */
	IN(1106, SB(3, 1), SB(101, 1), SB(250, 1, 2));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER], 7);
	ck_assert(rfc2217_client_is_up(&C));
}
END_TEST

START_TEST(answer_queue_bounded)
{
	up();
	sent();
	/* a bridge that never answers: the oldest expected answers are forgotten */
	for (unsigned i = 0; i < RFC2217_CLIENT_ANSQ + 4; i++)
		rfc2217_client_sent(&C, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
	rfc2217_client_sent(&C, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF);
	for (unsigned i = 0; i < RFC2217_CLIENT_ANSQ - 1; i++)
		IN(1100, SB(105, 5));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 0);
	IN(1101, SB(105, 6));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 0);
	IN(1102, SB(105, 6));
	ck_assert_ptr_nonnull(strstr(F.log, "unsolicited SET-CONTROL"));
	/* out-of-range commands are not tracked */
	rfc2217_client_sent(&C, 200, 1);
}
END_TEST

START_TEST(notifications_and_suspend)
{
	up();
	sent();
	IN(1100, SB(107, 0x30), SB(106, 0x60));
	ck_assert_uint_eq(F.ev[RFC2217_EV_MODEMSTATE], 1);
	ck_assert_uint_eq(F.ev_val[RFC2217_EV_MODEMSTATE], 0x30);
	ck_assert_uint_eq(F.ev[RFC2217_EV_LINESTATE], 1);
	ck_assert_uint_eq(F.ev_val[RFC2217_EV_LINESTATE], 0x60);
	/* the bridge suspends and resumes our output */
	IN(1101, SB(108));
	ck_assert(rfc2217_client_tx_suspended(&C));
	ck_assert_uint_eq(F.ev_val[RFC2217_EV_TX_SUSPEND], 1);
	IN(1102, SB(109));
	ck_assert(!rfc2217_client_tx_suspended(&C));
	ck_assert_uint_eq(F.ev[RFC2217_EV_TX_SUSPEND], 2);
	ck_assert_uint_eq(F.ev_val[RFC2217_EV_TX_SUSPEND], 0);
	/* we suspend the bridge: at the head, before what was queued */
	rfc2217_client_set_dtr(&C, true);
	ck_assert_int_eq(rfc2217_client_rx_flow(&C, true), 0);
	ck_assert_str_eq(sent(), "FLOWCONTROL-SUSPEND,SET-CONTROL 8");
	ck_assert_int_eq(rfc2217_client_rx_flow(&C, false), 0);
	ck_assert_str_eq(sent(), "FLOWCONTROL-RESUME");
	/* a lost connection forgets the suspend */
	IN(1103, SB(108));
	rfc2217_client_stop(&C);
	ck_assert(!rfc2217_client_tx_suspended(&C));
	ck_assert(!rfc2217_client_can_suspend(&C));
}
END_TEST

START_TEST(input_purge)
{
	up();
	sent();
	IN(1100, 'a');
	/* purge: data still on its way is discarded until the bridge's answer */
	ck_assert(rfc2217_client_purge(&C, RFC2217_PURGE_BOTH, 1200));
	ck_assert_str_eq(sent(), "PURGE-DATA 3");
	IN(1210, 'o', 'l', 'd', IAC, IAC);
	ck_assert_uint_eq(F.ndata, 1);
	ck_assert_uint_eq(F.purged, 4);
	IN(1220, 'x', SB(112, 3), 'n', 'e', 'w');
	ck_assert_uint_eq(F.purged, 5);
	ck_assert_uint_eq(F.ndata, 4);
	ck_assert_mem_eq(F.data, "anew", 4);
	/* an answer that never comes: at most RFC2217_CLIENT_PURGE_WAIT_MS */
	ck_assert(rfc2217_client_purge(&C, RFC2217_PURGE_RX, 2000));
	sent();
	IN(2000 + RFC2217_CLIENT_PURGE_WAIT_MS, 'z');
	ck_assert_uint_eq(F.purged, 6);
	IN(2001 + RFC2217_CLIENT_PURGE_WAIT_MS, 'y');
	ck_assert_uint_eq(F.ndata, 5);
	ck_assert_ptr_nonnull(strstr(F.log, "no PURGE-DATA answer from bridge:2217 within 2000"));
	/* TX only: nothing to discard */
	ck_assert(!rfc2217_client_purge(&C, RFC2217_PURGE_TX, 5000));
	ck_assert_str_eq(sent(), "PURGE-DATA 2");
	/* not up: nothing sent, the caller discards */
	rfc2217_client_stop(&C);
	ck_assert(!rfc2217_client_purge(&C, RFC2217_PURGE_RX, 5001));
	ck_assert_str_eq(sent(), "");
}
END_TEST

START_TEST(action_sequences)
{
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_RESET), -ENOTCONN);
	up();
	sent();
	ck_assert_int_eq(rfc2217_client_action(&C, (enum rfc2217_client_action)7), -EINVAL);
	/* RESET: NRST pulse, then the desired lines (never set: deasserted), RTS first */
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_RESET), 0);
	ck_assert(rfc2217_client_action_busy(&C));
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_RUN), -EBUSY);
	ck_assert_str_eq(sent(), "SET-CONTROL 8,DELAY 100,SET-CONTROL 9,END,"
	                         "SET-CONTROL 12,SET-CONTROL 9");
	ck_assert(!rfc2217_client_action_busy(&C));
	ck_assert_ptr_nonnull(strstr(F.log, "action reset"));
	/* BOOT: BOOT0 first, the pulse, the settle time, then RTS back */
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_BOOT), 0);
	ck_assert_str_eq(sent(), "SET-CONTROL 11,SET-CONTROL 8,DELAY 100,SET-CONTROL 9,DELAY 50,"
	                         "END,SET-CONTROL 12,SET-CONTROL 9");
	/* RUN with RTS/DTR asserted by the tty: restored as asserted, before what the tty
	 * asked meanwhile */
	rfc2217_client_set_rts(&C, true);
	rfc2217_client_set_dtr(&C, true);
	ck_assert_str_eq(sent(), "SET-CONTROL 11,SET-CONTROL 8");
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_RUN), 0);
	rfc2217_client_set_dtr(&C, false);
	ck_assert_str_eq(sent(), "SET-CONTROL 12,SET-CONTROL 8,DELAY 100,SET-CONTROL 9,END,"
	                         "SET-CONTROL 11,SET-CONTROL 9,SET-CONTROL 9");
}
END_TEST

START_TEST(action_queue_full)
{
	up();
	sent();
	/* the queue refuses the second step: not busy, the desired lines are queued again */
	F.fail_after = (int)F.nout + 1;
	F.fail_err = -ENOBUFS;
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_RESET), -ENOBUFS);
	ck_assert(!rfc2217_client_action_busy(&C));
	F.fail_after = -1;
	ck_assert_str_eq(sent(), "SET-CONTROL 8");
	/* -ENOMEM is logged */
	F.fail_after = (int)F.nout;
	F.fail_err = -ENOMEM;
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_BOOT), -ENOMEM);
	ck_assert_ptr_nonnull(strstr(F.log, "cannot queue SET-CONTROL"));
}
END_TEST

START_TEST(stop_mid_buffer)
{
	up();
	sent();
	/* the connection is lost while data is delivered: the rest of the buffer is ignored */
	F.stop_in_data = true;
	IN(1100, 'a', IAC, TN_WILL, 99, SB(107, 0x30));
	ck_assert_uint_eq(F.ndata, 1);
	ck_assert_uint_eq(F.ev[RFC2217_EV_MODEMSTATE], 0);
	ck_assert_str_eq(sent(), "");
	IN(1101, 'b');
	ck_assert_uint_eq(F.ndata, 1);
}
END_TEST

START_TEST(bad_bytes)
{
	up();
	sent();
	static const uint8_t junk[] = {
	    IAC,    TN_SB,  TELOPT_COMPORT,
	    101,    IAC,    TN_SE, /* no value */
	    IAC,    TN_SB,  TELOPT_COMPORT,
	    101,    1,      IAC,
	    TN_SE, /* short baud */
	    IAC,    TN_SE,  IAC,
	    TN_NOP, IAC,    17,
	    IAC,    TN_AYT, /* stray */
	    IAC,    TN_SB,  IAC,
	    TN_SE, /* empty SB */
	    IAC,    TN_SB,  5,
	    1,      IAC,    TN_SE, /* another option's SB */
	};
	in(junk, sizeof junk, 1100);
	uint8_t big[400];
	big[0] = IAC;
	big[1] = TN_SB;
	big[2] = TELOPT_COMPORT;
	memset(big + 3, 7, sizeof big - 5);
	big[sizeof big - 2] = IAC;
	big[sizeof big - 1] = TN_SE;
	in(big, sizeof big, 1101);
	uint32_t x = 12345;
	uint8_t rnd[4096];
	for (size_t i = 0; i < sizeof rnd; i++) {
		x = x * 1103515245u + 12345u;
		rnd[i] = (uint8_t)(x >> 16);
	}
	for (size_t i = 0; i < sizeof rnd; i += 7) { /* any split */
		in(rnd + i, sizeof rnd - i < 7 ? sizeof rnd - i : 7, 1102);
		send_all(); /* whatever it answers is well formed */
	}
	F.ndata = 0;
	IN(1103, IAC, TN_SE, 'O', 'K');
	ck_assert_uint_ge(F.ndata, 2);
	ck_assert_mem_eq(F.data + F.ndata - 2, "OK", 2);
	ck_assert(rfc2217_client_is_up(&C));
}
END_TEST

/* ------------------------------------------- against the server session */

static struct bridge B;
static uint32_t b_now;
static uint8_t b_net[4096];
static size_t b_net_len;
static struct hal_uart_cfg b_cfg;

static int b_cfg_fn(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	b_cfg = *c;
	return 0;
}
static size_t b_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx, (void)p;
	return n;
}
static void b_purge(void *ctx, int rx, int tx)
{
	(void)ctx, (void)rx, (void)tx;
}
static void b_break(void *ctx, int on)
{
	(void)ctx, (void)on;
}
static void b_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx, (void)pin, (void)level;
}
static uint32_t b_now_fn(void *ctx)
{
	(void)ctx;
	return b_now;
}
static size_t b_send(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	ck_assert_uint_le(b_net_len + n, sizeof b_net);
	memcpy(b_net + b_net_len, p, n);
	b_net_len += n;
	return n;
}

static const struct hal_ops b_hal = {
    .uart_config = b_cfg_fn,
    .uart_write = b_write,
    .uart_purge = b_purge,
    .uart_break = b_break,
    .gpio_set = b_gpio,
    .now_ms = b_now_fn,
    .net_send = b_send,
};

/* Carry bytes both ways until both sides are quiet. */
static void pump(void)
{
	for (int round = 0; round < 20; round++) {
		bool moved = false;
		while (F.nq > 0) {
			struct item it = F.q[0];
			memmove(F.q, F.q + 1, (F.nq - 1) * sizeof F.q[0]);
			F.nq--;
			if (it.o.kind == RFC2217_OUT_BYTES) {
				if (it.o.answer)
					rfc2217_client_sent(&C, it.o.cmd, it.o.val);
				ck_assert_uint_eq(bridge_from_net(&B, it.b, it.o.n), it.o.n);
			} else if (it.o.kind == RFC2217_OUT_ACTION_END) {
				rfc2217_client_action_done(&C);
			}
			moved = true;
		}
		bridge_poll(&B);
		if (b_net_len > 0) {
			size_t n = b_net_len;
			b_net_len = 0;
			rfc2217_client_input(&C, b_net, n, b_now);
			moved = true;
		}
		if (!moved)
			return;
	}
	ck_abort_msg("client and bridge never went quiet");
}

START_TEST(against_bridge)
{
	struct bridge_settings s;
	struct rfc2217_client_line ln = {57600, 8, RFC2217_PARITY_EVEN, RFC2217_STOPSIZE_1};

	bridge_settings_default(&s);
	s.auto_boot = BRIDGE_AUTO_OFF;
	b_now = 1000;
	b_net_len = 0;
	ck_assert_int_eq(bridge_init(&B, &b_hal, NULL, &s), 0);
	bridge_connect(&B);
	rfc2217_client_set_line(&C, &ln);
	rfc2217_client_start(&C, "bridge", b_now);
	pump();
	ck_assert(rfc2217_client_is_up(&C));
	ck_assert(!rfc2217_client_comport_refused(&C));
	ck_assert_uint_eq(b_cfg.baud, 57600);
	ck_assert_uint_eq(b_cfg.parity, RFC2217_PARITY_EVEN);
	ck_assert_ptr_nonnull(strstr(F.log, "bridge signature: " BRIDGE_SIGNATURE));
	/* every answer matched what was asked */
	ck_assert_uint_ge(F.ev[RFC2217_EV_ANSWER], 4);
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 0);
	ck_assert_uint_ge(F.ev[RFC2217_EV_MODEMSTATE], 1);
	/* data both ways; 0xFF survives */
	static const uint8_t u[] = {0x79, 0xFF, 0x00};
	ck_assert_uint_eq(bridge_from_uart(&B, u, sizeof u), sizeof u);
	pump();
	ck_assert_uint_eq(F.ndata, 3);
	ck_assert_mem_eq(F.data, u, 3);
	/* an action runs through the bridge's SET-CONTROL answers */
	ck_assert_int_eq(rfc2217_client_action(&C, RFC2217_ACTION_BOOT), 0);
	pump();
	ck_assert(!rfc2217_client_action_busy(&C));
	ck_assert_uint_eq(F.ev[RFC2217_EV_ANSWER_DIFFERS], 0);
	bridge_disconnect(&B);
}
END_TEST

static Suite *rfc2217_client_suite(void)
{
	Suite *s = suite_create("rfc2217_client");
	TCase *tc = tcase_create("client");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, negotiation);
	tcase_add_test(tc, refused_once);
	tcase_add_test(tc, state_sent_in_order);
	tcase_add_test(tc, comport_refused);
	tcase_add_test(tc, negotiation_timeout);
	tcase_add_test(tc, clock_wraps);
	tcase_add_test(tc, answers);
	tcase_add_test(tc, answer_queue_bounded);
	tcase_add_test(tc, notifications_and_suspend);
	tcase_add_test(tc, input_purge);
	tcase_add_test(tc, action_sequences);
	tcase_add_test(tc, action_queue_full);
	tcase_add_test(tc, stop_mid_buffer);
	tcase_add_test(tc, bad_bytes);
	tcase_add_test(tc, against_bridge);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(rfc2217_client_suite)
