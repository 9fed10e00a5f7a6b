/* SPDX-License-Identifier: MIT */
/*
 * The link (link.c, link_legacy.c) with protocol = LINK_PROTO_LEGACY against a fake seed-firmware
 * bridge: a raw data port and a control port (single bytes r/u/e answered with "OK ...\r\n" lines,
 * as espstm-bridge --legacy does, or not at all, as the seed did), both on 127.0.0.1 in the same
 * libuv loop as the link.
 */
#include "uvtest.h"

/* Deadline of every wait for something that must happen: generous, because a loaded CI
 * machine can stall a process for seconds; a wait that succeeds returns at once. */
#define WAIT_MS 10000
#include "link.h"
#include "log.h"
#include "rfc2217.h"
#include "unit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define MAX_CTL 64

enum answer_mode { ANS_NOW, ANS_DELAY, ANS_SILENT };

struct lsrv;

struct lconn {
	uv_tcp_t tcp;
	struct lsrv *s;
	bool control;
	bool open;
};

struct lsrv {
	uv_loop_t *loop;
	uv_tcp_t data_l, ctl_l;
	uint16_t data_port, ctl_port;
	struct lconn *data, *ctl; /* current clients */
	unsigned data_accepted, ctl_accepted;
	bool ctl_close_on_accept;
	enum answer_mode mode;
	uint32_t answer_delay_ms;
	uv_timer_t answer_timer;
	char pending_answer[40];
	/* received */
	uint8_t rx[65536];
	size_t nrx;
	uint64_t rx_last_ms; /* uv_now() of the last data byte */
	uint64_t rx_first_7f_ms;
	uint8_t ctl_bytes[MAX_CTL];
	uint64_t ctl_ms[MAX_CTL];
	size_t ctl_ndata[MAX_CTL]; /* data bytes received before each control byte */
	unsigned nctl;
	uint64_t answered_ms[MAX_CTL];
	unsigned nanswered;
	char buf[65536];
};

static uv_loop_t loop;
static struct lsrv srv;

static void closed_free(uv_handle_t *h)
{
	free(h->data);
}

static void lconn_close(struct lconn *c)
{
	if (c && c->open) {
		c->open = false;
		uv_close((uv_handle_t *)&c->tcp, closed_free);
	}
}

static void write_done(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void lwrite(struct lconn *c, const void *p, size_t n)
{
	if (!c || !c->open)
		return;
	uv_write_t *req = malloc(sizeof *req + n);
	ck_assert_ptr_nonnull(req);
	memcpy(req + 1, p, n);
	uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
	ck_assert_int_eq(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, write_done), 0);
}

static void send_answer(struct lsrv *s)
{
	if (s->nanswered < MAX_CTL)
		s->answered_ms[s->nanswered++] = uv_now(s->loop);
	lwrite(s->ctl, s->pending_answer, strlen(s->pending_answer));
}

static void answer_timer_cb(uv_timer_t *t)
{
	send_answer(t->data);
}

static void l_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	struct lconn *c = h->data;
	(void)sz;
	*b = uv_buf_init(c->s->buf, sizeof c->s->buf);
}

static void l_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	struct lconn *c = st->data;
	struct lsrv *s = c->s;

	if (n < 0) {
		if (s->data == c)
			s->data = NULL;
		if (s->ctl == c)
			s->ctl = NULL;
		lconn_close(c);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		uint8_t x = (uint8_t)b->base[i];
		if (!c->control) {
			if (s->nrx < sizeof s->rx)
				s->rx[s->nrx++] = x;
			s->rx_last_ms = uv_now(s->loop);
			if (x == 0x7f && !s->rx_first_7f_ms)
				s->rx_first_7f_ms = uv_now(s->loop);
			continue;
		}
		if (s->nctl < MAX_CTL) {
			s->ctl_bytes[s->nctl] = x;
			s->ctl_ms[s->nctl] = uv_now(s->loop);
			s->ctl_ndata[s->nctl] = s->nrx;
			s->nctl++;
		}
		const char *a = x == 'r'   ? "OK reset\r\n"
		                : x == 'u' ? "OK boot 115200 8E1\r\n"
		                : x == 'e' ? "OK run 115200 8N1\r\n"
		                           : NULL;
		if (!a || s->mode == ANS_SILENT)
			continue;
		strcpy(s->pending_answer, a);
		if (s->mode == ANS_NOW)
			send_answer(s);
		else
			uv_timer_start(&s->answer_timer, answer_timer_cb, s->answer_delay_ms, 0);
	}
}

static void on_conn(uv_stream_t *ls, int status, bool control)
{
	struct lsrv *s = ls->data;
	ck_assert_int_eq(status, 0);
	struct lconn *c = calloc(1, sizeof *c);
	ck_assert_ptr_nonnull(c);
	c->s = s;
	c->control = control;
	c->tcp.data = c;
	uv_tcp_init(s->loop, &c->tcp);
	ck_assert_int_eq(uv_accept(ls, (uv_stream_t *)&c->tcp), 0);
	c->open = true;
	if (control) {
		s->ctl_accepted++;
		if (s->ctl_close_on_accept) {
			lconn_close(c);
			return;
		}
		lconn_close(s->ctl);
		s->ctl = c;
	} else {
		s->data_accepted++;
		lconn_close(s->data);
		s->data = c;
	}
	uv_read_start((uv_stream_t *)&c->tcp, l_alloc, l_read);
}

static void on_data_conn(uv_stream_t *ls, int status)
{
	on_conn(ls, status, false);
}

static void on_ctl_conn(uv_stream_t *ls, int status)
{
	on_conn(ls, status, true);
}

/* Listen on port (0 = ephemeral); returns the bound port, 0 if the port is taken. */
static uint16_t listen_on(uv_tcp_t *t, uint16_t port, uv_connection_cb cb)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	uv_tcp_init(&loop, t);
	t->data = &srv;
	uv_ip4_addr("127.0.0.1", port, &a);
	if (uv_tcp_bind(t, (struct sockaddr *)&a, 0) < 0 ||
	    uv_listen((uv_stream_t *)t, 8, cb) < 0) {
		uv_close((uv_handle_t *)t, NULL);
		uv_run(&loop, UV_RUN_NOWAIT);
		return 0;
	}
	ck_assert_int_eq(uv_tcp_getsockname(t, (struct sockaddr *)&ss, &len), 0);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Start the fake bridge. adjacent: the control port is data port + 1 (link's default). */
static void lsrv_start(bool adjacent)
{
	memset(&srv, 0, sizeof srv);
	srv.loop = &loop;
	uv_timer_init(&loop, &srv.answer_timer);
	srv.answer_timer.data = &srv;
	for (int tries = 0; tries < 50; tries++) {
		srv.data_port = listen_on(&srv.data_l, 0, on_data_conn);
		ck_assert_uint_ne(srv.data_port, 0);
		if (!adjacent) {
			srv.ctl_port = listen_on(&srv.ctl_l, 0, on_ctl_conn);
			ck_assert_uint_ne(srv.ctl_port, 0);
			return;
		}
		if (srv.data_port < 65535) {
			srv.ctl_port =
			    listen_on(&srv.ctl_l, (uint16_t)(srv.data_port + 1), on_ctl_conn);
			if (srv.ctl_port)
				return;
		}
		uv_close((uv_handle_t *)&srv.data_l, NULL);
		uv_run(&loop, UV_RUN_NOWAIT);
	}
	ck_abort_msg("no two adjacent free ports");
}

static void lsrv_stop(void)
{
	lconn_close(srv.data);
	lconn_close(srv.ctl);
	srv.data = srv.ctl = NULL;
	uv_close((uv_handle_t *)&srv.data_l, NULL);
	uv_close((uv_handle_t *)&srv.ctl_l, NULL);
	uv_close((uv_handle_t *)&srv.answer_timer, NULL);
}

/* ------------------------------------------------------------- fake tty */

static struct {
	struct link *l;
	uint8_t rx[4096];
	size_t nrx;
	unsigned up, connecting, drained;
} tty;

static void t_data(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	ck_assert_uint_le(tty.nrx + n, sizeof tty.rx);
	memcpy(tty.rx + tty.nrx, p, n);
	tty.nrx += n;
}

static size_t t_space(void *ctx)
{
	(void)ctx;
	return sizeof tty.rx - tty.nrx;
}

static void t_state(void *ctx, enum link_state st)
{
	(void)ctx;
	if (st == LINK_UP)
		tty.up++;
	else if (st == LINK_CONNECTING)
		tty.connecting++;
}

static void t_drained(void *ctx)
{
	(void)ctx;
	tty.drained++;
}

static const struct link_callbacks tcb = {
    .on_data = t_data,
    .rx_space = t_space,
    .on_state = t_state,
    .on_drained = t_drained,
};

static void open_legacy(uint16_t control_port)
{
	struct link_config c = {
	    .host = "127.0.0.1",
	    .port = srv.data_port,
	    .reconnect_min_ms = 50,
	    .reconnect_max_ms = 400,
	    .connect_timeout_ms = 1000,
	    .protocol = LINK_PROTO_LEGACY,
	    .control_port = control_port,
	    .keepalive_s = 5,
	};
	ck_assert_int_eq(link_new(&loop, "leg", &c, &tty.l), 0);
	link_set_callbacks(tty.l, &tcb, &tty);
}

static void setup(void)
{
	log_set_level(getenv("LINK_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	memset(&tty, 0, sizeof tty);
}

static void teardown(void)
{
	if (tty.l)
		link_close(tty.l);
	tty.l = NULL;
	lsrv_stop();
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uvtest_close_loop(&loop), 0);
}

static bool is_up(void)
{
	return link_get_state(tty.l) == LINK_UP;
}

static bool not_up(void)
{
	return link_get_state(tty.l) != LINK_UP;
}

static size_t want;
static bool srv_has(void)
{
	return srv.nrx >= want;
}
static bool tty_has(void)
{
	return tty.nrx >= want;
}
static unsigned want_ctl;
static bool has_ctl(void)
{
	return srv.nctl >= want_ctl;
}

static void set_line(uint32_t baud, uint8_t bits, char parity, uint8_t stop)
{
	struct link_line ln = {baud, bits, parity, stop};
	ck_assert_int_eq(link_set_line(tty.l, &ln), 0);
}

/* ---------------------------------------------------------------- tests */

START_TEST(legacy_raw_data_both_ways)
{
	/* 0xFF and Telnet-looking bytes pass as they are, both ways */
	static const uint8_t out[] = {0xff, 0x00, 0xff, 0xff, 0xfb, 0x2c, 0x7f, 0x0d};
	static const uint8_t in[] = {0xff, 0xfb, 0x01, 0xff, 0xff, 0xfa, 0x2c, 0x00, 0x41};
	struct link_stats st;
	char peer[64];

	lsrv_start(false);
	open_legacy(srv.ctl_port);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	ck_assert_uint_eq(srv.data_accepted, 1);
	ck_assert_uint_eq(srv.ctl_accepted, 1);
	uvtest_run_for(&loop, 50);
	ck_assert_uint_eq(srv.nrx, 0); /* no Telnet negotiation on the raw port */
	ck_assert_uint_eq(srv.nctl, 0);
	ck_assert_uint_eq(link_write(tty.l, out, sizeof out), sizeof out);
	want = sizeof out;
	ck_assert(uvtest_run_until(&loop, srv_has, WAIT_MS));
	uvtest_run_for(&loop, 30);
	ck_assert_uint_eq(srv.nrx, sizeof out);
	ck_assert_mem_eq(srv.rx, out, sizeof out);
	lwrite(srv.data, in, sizeof in);
	want = sizeof in;
	ck_assert(uvtest_run_until(&loop, tty_has, WAIT_MS));
	uvtest_run_for(&loop, 30);
	ck_assert_uint_eq(tty.nrx, sizeof in);
	ck_assert_mem_eq(tty.rx, in, sizeof in);
	ck_assert_uint_eq(srv.nctl, 0);

	link_get_stats(tty.l, &st);
	ck_assert_uint_eq(st.tx_bytes, sizeof out);
	ck_assert_uint_eq(st.rx_bytes, sizeof in);
	ck_assert_uint_eq(st.connects, 1);
	snprintf(peer, sizeof peer, "127.0.0.1:%u", (unsigned)srv.data_port);
	ck_assert_str_eq(st.peer, peer);
}
END_TEST

static bool three_ctl_accepts(void)
{
	return srv.ctl_accepted >= 3;
}

START_TEST(legacy_up_needs_both_ports)
{
	lsrv_start(false);
	srv.ctl_close_on_accept = true; /* control port busy: closes at once */
	open_legacy(srv.ctl_port);
	ck_assert(uvtest_run_until(&loop, three_ctl_accepts, WAIT_MS));
	ck_assert_int_ne(link_get_state(tty.l), LINK_UP);
	ck_assert_uint_eq(tty.up, 0);
	/* it keeps retrying, both ports each time */
	ck_assert_uint_ge(srv.data_accepted, srv.ctl_accepted);
	struct link_stats st;
	link_get_stats(tty.l, &st);
	ck_assert_uint_ge(st.errors, 1);
	ck_assert_str_ne(st.last_error, "");
	srv.ctl_close_on_accept = false;
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	ck_assert_uint_eq(tty.up, 1);
}
END_TEST

START_TEST(legacy_default_control_port)
{
	lsrv_start(true);
	open_legacy(0);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	ck_assert_uint_eq(srv.ctl_accepted, 1);
	ck_assert_int_eq(link_action(tty.l, LINK_ACTION_RESET), 0);
	want_ctl = 1;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_uint_eq(srv.ctl_bytes[0], 'r');
}
END_TEST

START_TEST(legacy_bad_config)
{
	struct link *l = NULL;
	struct link_config c = {
	    .host = "127.0.0.1",
	    .port = 1234,
	    .reconnect_min_ms = 50,
	    .reconnect_max_ms = 400,
	    .connect_timeout_ms = 1000,
	    .protocol = LINK_PROTO_LEGACY,
	    .control_port = 1234,
	};
	lsrv_start(false);
	ck_assert_int_eq(link_new(&loop, "x", &c, &l), -EINVAL);
	c.control_port = 0;
	c.port = 65535;
	ck_assert_int_eq(link_new(&loop, "x", &c, &l), -EINVAL);
	c.protocol = (enum link_protocol)5;
	c.port = 1234;
	ck_assert_int_eq(link_new(&loop, "x", &c, &l), -EINVAL);
}
END_TEST

START_TEST(legacy_line_mapping)
{
	lsrv_start(false);
	open_legacy(srv.ctl_port);
	set_line(115200, 8, 'N', 1); /* before up: application mode, nothing to send */
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	uvtest_run_for(&loop, 50);
	ck_assert_uint_eq(srv.nctl, 0);

	set_line(115200, 8, 'E', 1); /* stm32flash: bootloader */
	set_line(57600, 8, 'E', 1);  /* still 8E1: nothing more */
	set_line(57600, 8, 'N', 1);  /* leaves 8E1: application */
	set_line(9600, 8, 'N', 2);   /* still not 8E1: nothing */
	set_line(9600, 7, 'E', 1);   /* 7E1 is not the bootloader: nothing */
	set_line(115200, 8, 'E', 1); /* bootloader again */
	set_line(115200, 8, 'O', 1); /* and out */
	want_ctl = 4;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	uvtest_run_for(&loop, 100);
	ck_assert_uint_eq(srv.nctl, 4);
	ck_assert_mem_eq(srv.ctl_bytes, "ueue", 4);
	ck_assert_uint_eq(srv.nrx, 0); /* nothing on the data port */

	/* DTR/RTS and flow control are remembered, reach neither port */
	ck_assert_int_eq(link_set_dtr(tty.l, 1), 0);
	ck_assert_int_eq(link_set_rts(tty.l, 1), 0);
	ck_assert_int_eq(link_set_flow(tty.l, LINK_FLOW_HARDWARE), 0);
	uvtest_run_for(&loop, 50);
	ck_assert_uint_eq(srv.nctl, 4);
	ck_assert_uint_eq(srv.nrx, 0);
}
END_TEST

/* The bridge answers 'u' 300 ms late: data written after the 8E1 switch (the 0x7F of
 * stm32flash) waits for the answer; data before it went out before the command. */
START_TEST(legacy_command_ordered_with_data)
{
	static const uint8_t before[] = {'a', 'b'}, sync = 0x7f;

	lsrv_start(false);
	srv.mode = ANS_DELAY;
	srv.answer_delay_ms = 300;
	open_legacy(srv.ctl_port);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	uvtest_run_for(&loop, 30);
	ck_assert_uint_eq(link_write(tty.l, before, 2), 2);
	set_line(115200, 8, 'E', 1);
	ck_assert_uint_eq(link_write(tty.l, &sync, 1), 1);
	want = 3;
	ck_assert(uvtest_run_until(&loop, srv_has, WAIT_MS));
	ck_assert_uint_eq(srv.nctl, 1);
	ck_assert_uint_eq(srv.ctl_bytes[0], 'u');
	ck_assert_uint_eq(srv.ctl_ndata[0], 2); /* "ab" had arrived before 'u' */
	ck_assert_uint_eq(srv.nanswered, 1);
	ck_assert_uint_ge(srv.rx_first_7f_ms, srv.answered_ms[0]);
	ck_assert_uint_ge(srv.rx_first_7f_ms - srv.ctl_ms[0], 250);
	ck_assert_mem_eq(srv.rx, "ab\x7f", 3);
}
END_TEST

/* Review finding 4: the control byte travels on its own connection; it must not overtake
 * data still in the data socket's kernel buffer (written, not yet acknowledged by the
 * bridge). The bridge here reads its data port slowly (4 KiB receive buffer, reading
 * paused): 'u' waits until the bridge has the data, then arrives after all of it. */
START_TEST(legacy_command_waits_for_data_ack)
{
	static uint8_t buf[12000];
	memset(buf, 'd', sizeof buf);
	lsrv_start(false);
	uv_os_fd_t lfd;
	ck_assert_int_eq(uv_fileno((uv_handle_t *)&srv.data_l, &lfd), 0);
	int rb = 4096;
	ck_assert_int_eq(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb), 0);
	open_legacy(srv.ctl_port);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	uvtest_run_for(&loop, 30);
	ck_assert_ptr_nonnull(srv.data);
	uv_read_stop((uv_stream_t *)&srv.data->tcp);
	ck_assert_uint_eq(link_write(tty.l, buf, sizeof buf), sizeof buf);
	set_line(115200, 8, 'E', 1);
	uvtest_run_for(&loop, 300);
	ck_assert_uint_gt(link_tx_unacked(tty.l), 0); /* the premise: data not at the bridge */
	ck_assert_uint_eq(srv.nctl, 0);               /* so 'u' waits */
	uv_read_start((uv_stream_t *)&srv.data->tcp, l_alloc, l_read);
	want_ctl = 1;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_uint_eq(srv.ctl_bytes[0], 'u');
	ck_assert_uint_eq(srv.ctl_ndata[0], sizeof buf);
}
END_TEST

/* The seed firmware answers nothing: data goes on after the answer timeout (1 s). */
START_TEST(legacy_silent_bridge)
{
	static const uint8_t sync = 0x7f;

	lsrv_start(false);
	srv.mode = ANS_SILENT;
	open_legacy(srv.ctl_port);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	set_line(115200, 8, 'E', 1);
	ck_assert_uint_eq(link_write(tty.l, &sync, 1), 1);
	want = 1;
	ck_assert(uvtest_run_until(&loop, srv_has, WAIT_MS));
	ck_assert_uint_eq(srv.nctl, 1);
	/* >= 500, not 1000: the link's timer starts from the loop's cached time, the fake
	 * bridge stamps ctl_ms when it reads the byte; a link that did not wait at all is ~0 */
	ck_assert_uint_ge(srv.rx_first_7f_ms - srv.ctl_ms[0], 500);
	ck_assert_int_eq(link_get_state(tty.l), LINK_UP);
}
END_TEST

START_TEST(legacy_notsup_and_local_purge)
{
	static const uint8_t d[] = "held back";
	struct link_stats st;

	lsrv_start(false);
	srv.mode = ANS_SILENT;
	open_legacy(srv.ctl_port);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	ck_assert_int_eq(link_set_break(tty.l, 1), -ENOTSUP);
	ck_assert_int_eq(link_set_break(tty.l, 0), -ENOTSUP);
	/* data held behind an unanswered control byte is purged locally */
	set_line(115200, 8, 'E', 1);
	ck_assert_uint_eq(link_write(tty.l, d, sizeof d), sizeof d);
	ck_assert_uint_eq(link_tx_pending(tty.l), sizeof d);
	unsigned drained = tty.drained;
	ck_assert_int_eq(link_purge(tty.l, 2), -ENOTSUP);
	ck_assert_uint_eq(link_tx_pending(tty.l), 0);
	ck_assert_uint_eq(tty.drained, drained + 1);
	link_get_stats(tty.l, &st);
	ck_assert_uint_eq(st.tx_purged, sizeof d);
	uvtest_run_for(&loop, 1300);
	ck_assert_uint_eq(srv.nrx, 0);
	ck_assert_uint_eq(srv.nctl, 1);
	ck_assert_int_eq(link_get_state(tty.l), LINK_UP);
}
END_TEST

static enum link_action next_action;
static bool next_started;
/* Try next_action until it is no longer refused with -EBUSY (asserts 0 then); true from
 * then on (uvtest_run_until asks once more at the end). */
static bool action_started(void)
{
	if (next_started)
		return true;
	int r = link_action(tty.l, next_action);
	if (r == -EBUSY)
		return false;
	ck_assert_int_eq(r, 0);
	next_started = true;
	return true;
}

START_TEST(legacy_actions)
{
	lsrv_start(false);
	srv.mode = ANS_DELAY;
	srv.answer_delay_ms = 600; /* well under the link's 1 s answer timeout, long enough that a
	                            * stalled loop does not see the answer before has_ctl */
	open_legacy(srv.ctl_port);
	ck_assert_int_eq(link_action(tty.l, LINK_ACTION_RESET), -ENOTCONN);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	ck_assert_int_eq(link_action(tty.l, LINK_ACTION_RESET), 0);
	ck_assert_int_eq(link_action(tty.l, LINK_ACTION_BOOT), -EBUSY); /* until answered */
	want_ctl = 1;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_uint_eq(srv.nanswered, 0);
	ck_assert_int_eq(link_action(tty.l, LINK_ACTION_BOOT), -EBUSY);
	/* the answer (600 ms later) ends the action: the next one starts */
	next_action = LINK_ACTION_BOOT;
	next_started = false;
	ck_assert(uvtest_run_until(&loop, action_started, WAIT_MS));
	ck_assert_uint_eq(srv.nanswered, 1);
	next_action = LINK_ACTION_RUN;
	next_started = false;
	ck_assert(uvtest_run_until(&loop, action_started, WAIT_MS));
	ck_assert_uint_eq(srv.nanswered, 2);
	want_ctl = 3;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_mem_eq(srv.ctl_bytes, "rue", 3);
	ck_assert_uint_eq(srv.nrx, 0);
	/* after 'e' (application), 8E1 asks for the bootloader with 'u' */
	set_line(115200, 8, 'E', 1);
	want_ctl = 4;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_uint_eq(srv.ctl_bytes[3], 'u');
}
END_TEST

static bool both_reaccepted(void)
{
	return srv.data_accepted >= 2 && srv.ctl_accepted >= 2 && is_up();
}

static bool three_accepted(void)
{
	return srv.data_accepted >= 3 && srv.ctl_accepted >= 3 && is_up();
}

START_TEST(legacy_reconnect_both)
{
	lsrv_start(false);
	open_legacy(srv.ctl_port);
	set_line(115200, 8, 'E', 1);
	ck_assert(uvtest_run_until(&loop, is_up, WAIT_MS));
	want_ctl = 1;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_uint_eq(srv.ctl_bytes[0], 'u');

	/* the control connection drops: the data connection is dropped too, both come back,
	 * and the bootloader mode asked for is asked again */
	struct lconn *old_data = srv.data;
	lconn_close(srv.ctl);
	srv.ctl = NULL;
	ck_assert(uvtest_run_until(&loop, not_up, WAIT_MS));
	ck_assert(uvtest_run_until(&loop, both_reaccepted, WAIT_MS));
	ck_assert_ptr_ne(srv.data, old_data);
	want_ctl = 2;
	ck_assert(uvtest_run_until(&loop, has_ctl, WAIT_MS));
	ck_assert_uint_eq(srv.ctl_bytes[1], 'u');

	/* the data connection drops: same */
	lconn_close(srv.data);
	srv.data = NULL;
	ck_assert(uvtest_run_until(&loop, not_up, WAIT_MS));
	ck_assert(uvtest_run_until(&loop, three_accepted, WAIT_MS));
	ck_assert_uint_eq(tty.up, 3);
	struct link_stats st;
	link_get_stats(tty.l, &st);
	ck_assert_uint_eq(st.connects, 3);
	ck_assert_uint_eq(st.reconnects, 2);
	/* data flows on the new connection */
	srv.nrx = 0;
	ck_assert_uint_eq(link_write(tty.l, (const uint8_t *)"ok", 2), 2);
	want = 2;
	ck_assert(uvtest_run_until(&loop, srv_has, WAIT_MS));
	ck_assert_mem_eq(srv.rx, "ok", 2);
}
END_TEST

static Suite *link_legacy_suite(void)
{
	Suite *s = suite_create("link_legacy");
	TCase *tc = tcase_create("link_legacy");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, legacy_raw_data_both_ways);
	tcase_add_test(tc, legacy_up_needs_both_ports);
	tcase_add_test(tc, legacy_default_control_port);
	tcase_add_test(tc, legacy_bad_config);
	tcase_add_test(tc, legacy_line_mapping);
	tcase_add_test(tc, legacy_command_ordered_with_data);
	tcase_add_test(tc, legacy_command_waits_for_data_ack);
	tcase_add_test(tc, legacy_silent_bridge);
	tcase_add_test(tc, legacy_notsup_and_local_purge);
	tcase_add_test(tc, legacy_actions);
	tcase_add_test(tc, legacy_reconnect_both);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(link_legacy_suite)
