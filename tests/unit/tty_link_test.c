/* SPDX-License-Identifier: MIT */
/*
 * tty.c + link.c together, without CUSE: tty_test_new() builds a tty with no CUSE session,
 * this file drives its CUSE operations with fake requests, and defines the libfuse reply
 * functions tty.c calls (an executable's definitions take precedence over libfuse's), so
 * every reply is recorded here. The link is the real one, against a small fake RFC 2217
 * server on 127.0.0.1 in the same libuv loop. Regressions from the daemon review.
 */
#define FUSE_USE_VERSION 31

#include "uvtest.h"
#include "link.h"
#include "log.h"
#include "rfc2217.h"
#include "termios_model.h"
#include "tty.h"
#include "unit.h"

#include <cuse_lowlevel.h>
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <linux/serial.h>
#include <sys/ioctl.h>
#include <uv.h>

/* ------------------------------------------------------------ fake libfuse */

struct fuse_req {
	struct tty_dev *dev;
	bool replied;
	int err;        /* fuse_reply_err */
	size_t written; /* fuse_reply_write */
	unsigned revents;
	bool has_revents;
	size_t nbuf; /* bytes given to fuse_reply_buf/iov */
	fuse_interrupt_func_t intr;
	void *intr_data;
	uint8_t out[256]; /* fuse_reply_ioctl payload */
	size_t outlen;
	uint64_t t_replied; /* uv_now() at the reply */
};

struct fuse_pollhandle {
	unsigned notified;
	bool destroyed;
};

static uint8_t *rd_sink; /* read replies are appended here */
static size_t rd_n, rd_cap;

static uv_loop_t loop;

static void reply_done(fuse_req_t req)
{
	ck_assert_msg(!req->replied, "request answered twice");
	req->replied = true;
	req->t_replied = uv_now(&loop);
}

int fuse_reply_err(fuse_req_t req, int err)
{
	reply_done(req);
	req->err = err;
	return 0;
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	reply_done(req);
	req->written = count;
	return 0;
}

static void sink(const void *p, size_t n)
{
	if (rd_n + n > rd_cap) {
		rd_cap = (rd_n + n) * 2;
		rd_sink = realloc(rd_sink, rd_cap);
		ck_assert_ptr_nonnull(rd_sink);
	}
	memcpy(rd_sink + rd_n, p, n);
	rd_n += n;
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	reply_done(req);
	if (size)
		sink(buf, size);
	req->nbuf = size;
	return 0;
}

int fuse_reply_iov(fuse_req_t req, const struct iovec *iov, int count)
{
	reply_done(req);
	for (int i = 0; i < count; i++) {
		sink(iov[i].iov_base, iov[i].iov_len);
		req->nbuf += iov[i].iov_len;
	}
	return 0;
}

int fuse_reply_ioctl(fuse_req_t req, int result, const void *buf, size_t size)
{
	reply_done(req);
	req->err = result;
	ck_assert_uint_le(size, sizeof req->out);
	if (size)
		memcpy(req->out, buf, size);
	req->outlen = size;
	return 0;
}

int fuse_reply_ioctl_retry(fuse_req_t req, const struct iovec *in_iov, size_t in_count,
                           const struct iovec *out_iov, size_t out_count)
{
	(void)in_iov;
	(void)in_count;
	(void)out_iov;
	(void)out_count;
	reply_done(req);
	req->err = -1;
	return 0;
}

int fuse_reply_poll(fuse_req_t req, unsigned revents)
{
	reply_done(req);
	req->revents = revents;
	req->has_revents = true;
	return 0;
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	(void)fi;
	reply_done(req);
	return 0;
}

void *fuse_req_userdata(fuse_req_t req)
{
	return req->dev;
}

static struct fuse_ctx fake_ctx;
const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	(void)req;
	return &fake_ctx;
}

void fuse_req_interrupt_func(fuse_req_t req, fuse_interrupt_func_t func, void *data)
{
	req->intr = func;
	req->intr_data = data;
}

int fuse_lowlevel_notify_poll(struct fuse_pollhandle *ph)
{
	ph->notified++;
	return 0;
}

void fuse_pollhandle_destroy(struct fuse_pollhandle *ph)
{
	ph->destroyed = true; /* static in the tests: nothing to free */
}

/* ------------------------------------------------------------ fake server */

struct srv {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uint16_t port;
	uv_tcp_t *cur;
	unsigned accepted;
	bool reading;
	struct tn_decoder dec;
	size_t ndata;         /* data bytes received on the current connection */
	unsigned do_bin;      /* DO BINARY received */
	unsigned dont_bin;    /* DONT BINARY received */
	bool no_purge_answer; /* do not answer PURGE-DATA (the bridge does: 112 + value) */
	/* RFC 2217 commands received on the current connection, in order, each with the data
	 * byte count and the loop time at its arrival */
	struct srv_cmd {
		uint8_t cmd;
		uint32_t value;
		size_t at_data;
		uint64_t t;
	} cmds[512];
	unsigned ncmds;
	uint8_t *data; /* data bytes received on the current connection */
	size_t data_cap;
	char rbuf[65536];
};

static struct srv srv;
/* Called after data bytes were counted in srv.ndata/srv.data (the ACK-cycle test's bridge);
 * NULL otherwise. */
static void (*srv_data_hook)(void);

static void srv_write_done(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void srv_write(const uint8_t *p, size_t n)
{
	if (!srv.cur || n == 0)
		return;
	uv_write_t *req = malloc(sizeof *req + n);
	ck_assert_ptr_nonnull(req);
	memcpy(req + 1, p, n);
	uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
	ck_assert_int_eq(uv_write(req, (uv_stream_t *)srv.cur, &b, 1, srv_write_done), 0);
}

static void srv_option(uint8_t verb, uint8_t opt)
{
	uint8_t b[3];
	ck_assert_int_eq(tn_build_option(b, 3, verb, opt), 3);
	srv_write(b, 3);
}

static void srv_ev(void *ctx, const struct tn_event *ev)
{
	(void)ctx;
	if (ev->type == TN_EV_DATA) {
		if (srv.ndata + ev->len > srv.data_cap) {
			srv.data_cap = (srv.ndata + ev->len) * 2;
			srv.data = realloc(srv.data, srv.data_cap);
			ck_assert_ptr_nonnull(srv.data);
		}
		memcpy(srv.data + srv.ndata, ev->data, ev->len);
		srv.ndata += ev->len;
		if (srv_data_hook)
			srv_data_hook();
	} else if (ev->type == TN_EV_SB && ev->opt == TELOPT_COMPORT) {
		struct rfc2217_msg m;
		if (rfc2217_parse(ev->data, ev->len, &m) == 0 && !m.from_server &&
		    srv.ncmds < sizeof srv.cmds / sizeof srv.cmds[0])
			srv.cmds[srv.ncmds++] = (struct srv_cmd){.cmd = m.cmd,
			                                         .value = m.value,
			                                         .at_data = srv.ndata,
			                                         .t = uv_now(srv.loop)};
		if (m.cmd == RFC2217_PURGE_DATA && !m.from_server && !srv.no_purge_answer) {
			/* as firmware/core/bridge.c: the answer follows what was queued before */
			uint8_t b[16];
			int n = rfc2217_build_u8(b, sizeof b,
			                         RFC2217_PURGE_DATA + RFC2217_SERVER_OFFSET,
			                         (uint8_t)m.value);
			ck_assert_int_gt(n, 0);
			srv_write(b, (size_t)n);
		}
	} else if (ev->type == TN_EV_DO && ev->opt == TELOPT_BINARY)
		srv.do_bin++;
	else if (ev->type == TN_EV_DONT && ev->opt == TELOPT_BINARY)
		srv.dont_bin++;
}

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h;
	(void)sz;
	*b = uv_buf_init(srv.rbuf, sizeof srv.rbuf);
}

static void srv_closed(uv_handle_t *h)
{
	free(h);
}

static void srv_drop(void)
{
	if (srv.cur)
		uv_close((uv_handle_t *)srv.cur, srv_closed);
	srv.cur = NULL;
	srv.reading = false;
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	if (n < 0) {
		if ((uv_tcp_t *)st == srv.cur)
			srv_drop();
		else
			uv_close((uv_handle_t *)st, srv_closed);
		return;
	}
	if ((uv_tcp_t *)st == srv.cur)
		tn_decode(&srv.dec, (const uint8_t *)b->base, (size_t)n, srv_ev, NULL);
}

static void srv_on_conn(uv_stream_t *ls, int status)
{
	ck_assert_int_eq(status, 0);
	uv_tcp_t *c = malloc(sizeof *c);
	ck_assert_ptr_nonnull(c);
	uv_tcp_init(srv.loop, c);
	ck_assert_int_eq(uv_accept(ls, (uv_stream_t *)c), 0);
	srv_drop();
	srv.cur = c;
	srv.accepted++;
	srv.ndata = 0;
	srv.ncmds = 0;
	tn_decoder_init(&srv.dec);
	uv_read_start((uv_stream_t *)c, srv_alloc, srv_read);
	srv.reading = true;
	/* agree to everything the client offers (it offers WILL/DO BINARY, SGA, WILL COMPORT) */
	srv_option(TN_DO, TELOPT_COMPORT);
	srv_option(TN_DO, TELOPT_BINARY);
	srv_option(TN_WILL, TELOPT_BINARY);
	srv_option(TN_DO, TELOPT_SGA);
	srv_option(TN_WILL, TELOPT_SGA);
}

static void srv_start(void)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(&srv, 0, sizeof srv);
	srv.loop = &loop;
	uv_tcp_init(&loop, &srv.listener);
	uv_ip4_addr("127.0.0.1", 0, &a);
	ck_assert_int_eq(uv_tcp_bind(&srv.listener, (struct sockaddr *)&a, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&srv.listener, 16, srv_on_conn), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &len), 0);
	srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ------------------------------------------------------------ harness */

static struct link *lk;
static struct tty_dev *dev;
static unsigned dead_calls;

static void on_dead(void *ctx, struct tty_dev *t)
{
	(void)ctx;
	dead_calls++;
	ck_assert_ptr_eq(t, dev);
	tty_dev_free(t); /* as espstmd does (via close_devices) */
	dev = NULL;
}

static void setup(void)
{
	log_set_level(getenv("LINK_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	srv_start();
	lk = NULL;
	dev = NULL;
	dead_calls = 0;
	rd_n = 0;
}

static void teardown(void)
{
	srv_data_hook = NULL;
	if (dev)
		tty_dev_free(dev);
	dev = NULL;
	if (lk)
		link_close(lk);
	lk = NULL;
	srv_drop();
	uv_close((uv_handle_t *)&srv.listener, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uvtest_close_loop(&loop), 0);
	free(rd_sink);
	rd_sink = NULL;
	rd_cap = rd_n = 0;
	free(srv.data);
	srv.data = NULL;
}

static bool run_until(bool (*cond)(void), uint64_t ms)
{
	return uvtest_run_until(&loop, cond, ms);
}

static void run_for(uint64_t ms)
{
	uvtest_run_for(&loop, ms);
}

static bool is_up(void)
{
	return lk && link_get_state(lk) == LINK_UP;
}

static void open_link_to(uint16_t port)
{
	struct link_config c = {
	    .host = "127.0.0.1",
	    .port = port,
	    .reconnect_min_ms = 50,
	    .reconnect_max_ms = 400,
	    .connect_timeout_ms = 1000,
	};
	ck_assert_int_eq(link_new(&loop, "test", &c, &lk), 0);
}

static void do_open(void);

static void open_tty(void)
{
	struct tty_config tc = {.name = "ttyTEST", .on_dead = on_dead};
	ck_assert_int_eq(tty_test_new(&loop, &tc, lk, &dev), 0);
	do_open();
}

static void open_all(void)
{
	open_link_to(srv.port);
	open_tty();
	ck_assert(run_until(is_up, 3000));
	run_for(20); /* settings and their answers */
}

static struct fuse_req *new_req(void)
{
	struct fuse_req *r = calloc(1, sizeof *r);
	ck_assert_ptr_nonnull(r);
	r->dev = dev;
	return r;
}

static struct fuse_req *do_write(const void *buf, size_t n, int flags)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info fi = {.flags = flags};
	tty_test_ops()->write(r, buf, n, 0, &fi);
	return r;
}

static struct fuse_req *do_read(size_t n, int flags)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info fi = {.flags = flags};
	tty_test_ops()->read(r, n, 0, &fi);
	return r;
}

/* One open file (poll handles are kept per open file). */
static struct fuse_file_info open_fi;
static void do_open(void)
{
	struct fuse_req *r = new_req();
	memset(&open_fi, 0, sizeof open_fi);
	open_fi.flags = O_RDWR;
	tty_test_ops()->open(r, &open_fi);
	ck_assert(r->replied);
	ck_assert_int_eq(r->err, 0);
	ck_assert_uint_ne(open_fi.fh, 0);
	free(r);
}

static struct fuse_req *do_poll(struct fuse_pollhandle *ph)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info fi = open_fi;
	tty_test_ops()->poll(r, &fi, ph);
	ck_assert(r->replied);
	return r;
}

static struct fuse_req *do_ioctl(unsigned long cmd, uintptr_t arg)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info fi = {0};
	tty_test_ops()->ioctl(r, (int)cmd, (void *)arg, &fi, 0, NULL, 0, 0);
	return r;
}

/* The bridge stops taking our output (RFC 2217 FLOWCONTROL-SUSPEND): link.c keeps its
 * queue instead of handing it to the socket. */
static void srv_suspend(bool on)
{
	uint8_t b[16];
	int n = rfc2217_build(b, sizeof b,
	                      (on ? RFC2217_FLOWCONTROL_SUSPEND : RFC2217_FLOWCONTROL_RESUME) +
	                          RFC2217_SERVER_OFFSET,
	                      NULL, 0);
	ck_assert_int_gt(n, 0);
	srv_write(b, (size_t)n);
	run_for(30);
}

static struct fuse_req *watched;
static bool watched_replied(void)
{
	return watched->replied;
}

/* ---------------------------------------------------------------- tests */

/* Review defect 1: the link pauses socket reads after a partial delivery (rx_space()
 * answered less than what arrived); only link_rx_resume() restarts them, which the tty
 * must call whenever a read frees ring space. A program reading in small, irregular bites
 * through the real tty (64 KiB ring, parked reads answered from inside on_data) must get
 * a long stream whole and in order. */
#define STREAM_N 400000
static uint8_t *stream;
static size_t stream_sent;
static struct fuse_req *rd_req;
static unsigned rd_round;

static uint8_t pat(size_t i)
{
	return (i / 997) % 7 == 3 ? 0xff : (uint8_t)(i * 31 + i / 253); /* with 0xFF runs */
}

static void feed(void)
{
	/* the server writes in uneven pieces, escaped */
	static uint8_t wire[2 * 20000];
	while (stream_sent < STREAM_N) {
		size_t want = 1 + (stream_sent * 7919) % 20000, used;
		if (want > STREAM_N - stream_sent)
			want = STREAM_N - stream_sent;
		size_t wn = tn_escape(stream + stream_sent, want, wire, sizeof wire, &used);
		srv_write(wire, wn);
		stream_sent += used;
	}
}

static void reader_tick(uv_timer_t *t)
{
	(void)t;
	if (rd_req && !rd_req->replied)
		return; /* still parked: the tty answers it when data arrives */
	free(rd_req);
	rd_round++;
	/* bites from 1 byte to ~3 KiB, VMIN 1 blocking reads */
	rd_req = do_read(1 + (rd_round * 2654435761u) % 3000, 0);
}

static bool all_read(void)
{
	return rd_n >= STREAM_N;
}

START_TEST(rx_long_stream_small_irregular_space)
{
	stream = malloc(STREAM_N);
	ck_assert_ptr_nonnull(stream);
	for (size_t i = 0; i < STREAM_N; i++)
		stream[i] = pat(i);
	stream_sent = 0;
	rd_req = NULL;
	rd_round = 0;
	open_all();
	feed(); /* more than 4x the tty ring; the reader is slower than the socket */
	static uv_timer_t reader;
	uv_timer_init(&loop, &reader);
	uv_timer_start(&reader, reader_tick, 0, 1);
	bool ok = run_until(all_read, 15000);
	uv_close((uv_handle_t *)&reader, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
	ck_assert_msg(ok, "stalled: %zu of %d bytes read", rd_n, STREAM_N);
	ck_assert_uint_eq(rd_n, STREAM_N);
	ck_assert_mem_eq(rd_sink, stream, STREAM_N);
	if (rd_req && !rd_req->replied) {
		tty_dev_free(dev); /* answers the parked read EIO */
		dev = NULL;
		ck_assert(rd_req->replied);
	}
	free(rd_req);
	free(stream);
}
END_TEST

/* Review defect 2: a write that fills the link queue exactly (no short write) must still
 * lead to a poll notification once the queue has room (pyserial select()s for POLLOUT
 * after each write). */
static struct fuse_pollhandle ph1;
static bool ph1_notified(void)
{
	return ph1.notified > 0;
}

START_TEST(pollout_after_exact_fill)
{
	static uint8_t buf[LINK_TXQ_MAX];
	memset(buf, 0x55, sizeof buf);
	open_all();
	struct fuse_req *w = do_write(buf, sizeof buf, O_NONBLOCK);
	ck_assert(w->replied);
	ck_assert_uint_eq(w->written, LINK_TXQ_MAX);
	ck_assert_uint_eq(link_write_space(lk), 0);
	memset(&ph1, 0, sizeof ph1);
	struct fuse_req *p = do_poll(&ph1);
	ck_assert_uint_eq(p->revents & POLLOUT, 0);
	ck_assert(run_until(ph1_notified, 2000));
	free(p);
	p = do_poll(NULL);
	ck_assert_uint_ne(p->revents & POLLOUT, 0);
	free(p);
	free(w);
}
END_TEST

/* Review defect 3: an error on the CUSE fd (uv_poll status < 0, e.g. EPOLLERR after the
 * connection was aborted) ends the device: parked requests get EIO and on_dead fires
 * (espstmd exits 1 from there). */
START_TEST(cuse_fd_error_is_fatal)
{
	open_all();
	struct fuse_req *r = do_read(10, 0); /* VMIN 1, nothing received: parked */
	ck_assert(!r->replied);
	tty_test_fuse_event(dev, UV_EBADF);
	ck_assert_uint_eq(dead_calls, 1);
	ck_assert(r->replied);
	ck_assert_int_eq(r->err, EIO);
	ck_assert_ptr_null(dev); /* freed from on_dead */
	free(r);
}
END_TEST

/* Review defect 4: a blocking write the link took only partly is parked; every reply for
 * it (completion, interrupt) counts the bytes accepted before parking too. */
START_TEST(parked_write_reply_counts_accepted_bytes)
{
	static uint8_t buf[LINK_TXQ_MAX + 1000];
	memset(buf, 0x33, sizeof buf);
	open_all();
	srv_suspend(true);
	struct fuse_req *w = do_write(buf, sizeof buf, 0);
	ck_assert(!w->replied); /* LINK_TXQ_MAX accepted, 1000 parked */
	srv_suspend(false);
	watched = w;
	ck_assert(run_until(watched_replied, 2000));
	ck_assert_int_eq(w->err, 0);
	ck_assert_uint_eq(w->written, sizeof buf);
	free(w);

	/* interrupted: the reply is what the link accepted, not what was parked */
	run_for(50);
	srv_suspend(true);
	w = do_write(buf, LINK_TXQ_MAX + 500, 0);
	ck_assert(!w->replied);
	ck_assert_ptr_nonnull(w->intr);
	w->intr(w, w->intr_data);
	watched = w;
	ck_assert(run_until(watched_replied, 2000));
	ck_assert_int_eq(w->err, 0);
	ck_assert_uint_eq(w->written, LINK_TXQ_MAX);
	free(w);
}
END_TEST

/* Review defect 5: a peer that flips BINARY on and off without reading what we answer
 * must not make us queue answers without bound: the link drops it and reconnects. Option
 * requests that do not change our state get no answer at all (RFC 1143). */
static bool reconnected(void)
{
	return srv.accepted >= 2 && is_up();
}

START_TEST(negotiation_flood_bounded)
{
	open_link_to(srv.port);
	ck_assert(run_until(is_up, 3000));
	run_for(50);
	/* no-change requests: not answered */
	unsigned do0 = srv.do_bin, dont0 = srv.dont_bin;
	for (int i = 0; i < 50; i++)
		srv_option(TN_WILL, TELOPT_BINARY); /* already agreed */
	run_for(100);
	ck_assert_uint_eq(srv.do_bin, do0);
	ck_assert_uint_eq(srv.dont_bin, dont0);

	/* flood: stop reading, flip BINARY until the link gives up on us */
	uv_read_stop((uv_stream_t *)srv.cur);
	srv.reading = false;
	static uint8_t flip[6 * 10000];
	for (size_t i = 0; i < sizeof flip; i += 6) {
		tn_build_option(flip + i, 3, TN_WONT, TELOPT_BINARY);
		tn_build_option(flip + i + 3, 3, TN_WILL, TELOPT_BINARY);
	}
	uv_tcp_t *first = srv.cur;
	size_t sent = 0;
	while (srv.cur == first && srv.accepted == 1 && sent < (size_t)512 << 20) {
		/* keep at most a few MB in flight from our side */
		if (uv_stream_get_write_queue_size((uv_stream_t *)first) < (4u << 20)) {
			srv_write(flip, sizeof flip);
			sent += sizeof flip;
		}
		uv_run(&loop, UV_RUN_NOWAIT);
		if (link_get_state(lk) != LINK_UP)
			break;
	}
	ck_assert_msg(link_get_state(lk) != LINK_UP || srv.accepted >= 2,
	              "link still up after %zu bytes of WILL/WONT flood", sent);
	ck_assert(run_until(reconnected, 5000));
}
END_TEST

/* Review defect 6: TCFLSH(TCOFLUSH) empties the link queue; a parked tcdrain must be
 * answered then (not at some unrelated later event), and writers polled for POLLOUT woken. */
static struct fuse_pollhandle ph6;

START_TEST(tcoflush_wakes_drain_and_poll)
{
	static uint8_t buf[LINK_TXQ_MAX];
	memset(buf, 0x44, sizeof buf);
	open_all();
	srv_suspend(true);
	struct fuse_req *w = do_write(buf, sizeof buf, O_NONBLOCK);
	ck_assert(w->replied);
	ck_assert_uint_eq(w->written, LINK_TXQ_MAX);
	ck_assert_uint_eq(link_tx_pending(lk), LINK_TXQ_MAX);
	memset(&ph6, 0, sizeof ph6);
	struct fuse_req *p = do_poll(&ph6);
	ck_assert_uint_eq(p->revents & POLLOUT, 0);
	struct fuse_req *drain = do_ioctl(TCSBRK, 1); /* tcdrain */
	ck_assert(!drain->replied);
	struct fuse_req *fl = do_ioctl(TCFLSH, 1); /* TCOFLUSH */
	ck_assert(fl->replied);
	ck_assert_int_eq(fl->err, 0);
	ck_assert_uint_eq(link_tx_pending(lk), 0);
	ck_assert(drain->replied); /* at once, from the TCFLSH */
	ck_assert_int_eq(drain->err, 0);
	ck_assert_uint_ge(ph6.notified, 1);
	free(p);
	p = do_poll(NULL);
	ck_assert_uint_ne(p->revents & POLLOUT, 0);
	free(p);
	free(drain);
	free(fl);
	free(w);
	srv_suspend(false);
}
END_TEST

/* Review defect 7: during an outage the link is LINK_CONNECTING (never LINK_DOWN before
 * link_close). The tty's outage behaviour (tty.c header): O_NONBLOCK writes EAGAIN for the
 * first 3 s, then EIO; a parked blocking write fails EIO at 3 s; poll then reports
 * POLLOUT|POLLERR (and notifies); later writes fail at once. */
static struct fuse_pollhandle ph7;
static struct fuse_req *w7;
static bool w7_replied(void)
{
	return w7->replied;
}

START_TEST(outage_writes_fail_after_3s)
{
	/* a port that refuses connections: bound, not listening */
	static uv_tcp_t dead;
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss;
	uv_tcp_init(&loop, &dead);
	uv_ip4_addr("127.0.0.1", 0, &a);
	ck_assert_int_eq(uv_tcp_bind(&dead, (struct sockaddr *)&a, 0), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&dead, (struct sockaddr *)&ss, &len), 0);
	open_link_to(ntohs(((struct sockaddr_in *)&ss)->sin_port));
	open_tty();
	uint64_t t0 = uv_now(&loop);
	run_for(300);
	ck_assert_int_eq(link_get_state(lk), LINK_CONNECTING);

	static const uint8_t msg[] = "hello";
	struct fuse_req *r = do_write(msg, sizeof msg, O_NONBLOCK);
	ck_assert(r->replied);
	ck_assert_int_eq(r->err, EAGAIN);
	free(r);
	memset(&ph7, 0, sizeof ph7);
	r = do_poll(&ph7);
	ck_assert_uint_eq(r->revents & (POLLOUT | POLLERR), 0);
	free(r);

	w7 = do_write(msg, sizeof msg, 0);
	ck_assert(!w7->replied);
	ck_assert(run_until(w7_replied, 5000));
	uint64_t el = uv_now(&loop) - t0;
	ck_assert_uint_ge(el, 2900);
	ck_assert_uint_le(el, 10000); /* generous: a loaded machine stalls; >= 2900 is the check */
	ck_assert_int_eq(w7->err, EIO);
	free(w7);
	ck_assert_uint_ge(ph7.notified, 1);
	r = do_poll(NULL);
	ck_assert_uint_eq(r->revents & (POLLOUT | POLLERR), POLLOUT | POLLERR);
	free(r);
	r = do_write(msg, sizeof msg, O_NONBLOCK);
	ck_assert_int_eq(r->err, EIO);
	free(r);
	r = do_write(msg, sizeof msg, 0);
	ck_assert(r->replied); /* at once */
	ck_assert_int_eq(r->err, EIO);
	free(r);
	ck_assert_int_eq(link_get_state(lk), LINK_CONNECTING);
	uv_close((uv_handle_t *)&dead, NULL);
}
END_TEST

/* ============================================================== tty behaviour */

/* ---- helpers */

static struct fuse_req *ioctl_io(const struct fuse_file_info *fi, unsigned long cmd, uintptr_t arg,
                                 const void *in, size_t inlen, size_t outlen)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info f = fi ? *fi : open_fi;
	tty_test_ops()->ioctl(r, (int)cmd, (void *)arg, &f, 0, in, inlen, outlen);
	return r;
}

/* An ioctl that must be answered at once with success; returns its output length. */
static size_t ioctl_now(unsigned long cmd, uintptr_t arg, const void *in, size_t inlen, void *out,
                        size_t outlen)
{
	struct fuse_req *r = ioctl_io(NULL, cmd, arg, in, inlen, outlen);
	ck_assert_msg(r->replied, "ioctl 0x%lx not answered at once", cmd);
	ck_assert_msg(r->err == 0, "ioctl 0x%lx: error %d", cmd, r->err);
	size_t n = r->outlen;
	if (out)
		memcpy(out, r->out, n < outlen ? n : outlen);
	free(r);
	return n;
}

static int mget(void)
{
	int v = -1;
	ck_assert_uint_eq(ioctl_now(TIOCMGET, 0x1000, NULL, 0, &v, sizeof v), sizeof v);
	return v;
}

static void mset(unsigned long cmd, int bits)
{
	ioctl_now(cmd, 0x1000, &bits, sizeof bits, NULL, 0);
}

static struct serial_icounter_struct icount(void)
{
	struct serial_icounter_struct ic;
	memset(&ic, 0xee, sizeof ic);
	ck_assert_uint_eq(ioctl_now(TIOCGICOUNT, 0x1000, NULL, 0, &ic, sizeof ic), sizeof ic);
	return ic;
}

/* The kernel's 36-byte struct termios (the first bytes of struct tm_termios2). */
static struct tm_termios2 tget(void)
{
	struct tm_termios2 t;
	memset(&t, 0, sizeof t);
	ck_assert_uint_eq(ioctl_now(TCGETS, 0x1000, NULL, 0, &t, TM_TERMIOS_SIZE), TM_TERMIOS_SIZE);
	return t;
}

static void tset(const struct tm_termios2 *t)
{
	ioctl_now(TCSETS, 0x1000, t, TM_TERMIOS_SIZE, NULL, 0);
}

/* NOTIFY-xxx (server code) with a one-byte value, from the fake bridge. */
static void srv_notify(uint8_t cmd, uint8_t v)
{
	uint8_t b[16];
	int n = rfc2217_build_u8(b, sizeof b, (uint8_t)(cmd + RFC2217_SERVER_OFFSET), v);
	ck_assert_int_gt(n, 0);
	srv_write(b, (size_t)n);
}

/* Index of the first command cmd/value received at index >= from, or -1. */
static int srv_find(unsigned from, uint8_t cmd, uint32_t value)
{
	for (unsigned i = from; i < srv.ncmds; i++)
		if (srv.cmds[i].cmd == cmd && srv.cmds[i].value == value)
			return (int)i;
	return -1;
}

static unsigned want_ncmds;
static bool ncmds_reached(void)
{
	return srv.ncmds >= want_ncmds;
}
static size_t want_ndata;
static bool ndata_reached(void)
{
	return srv.ndata >= want_ndata;
}

static int wait_cmd(unsigned from, uint8_t cmd, uint32_t value)
{
	for (uint64_t end = uv_now(&loop) + 3000; uv_now(&loop) < end;) {
		int i = srv_find(from, cmd, value);
		if (i >= 0)
			return i;
		want_ncmds = srv.ncmds + 1;
		run_until(ncmds_reached, end - uv_now(&loop));
	}
	return srv_find(from, cmd, value);
}

static void wait_replied(struct fuse_req *r, uint64_t ms)
{
	watched = r;
	ck_assert_msg(run_until(watched_replied, ms), "request not answered within %llu ms",
	              (unsigned long long)ms);
}

static int open_as(struct fuse_file_info *fi, uid_t uid)
{
	struct fuse_req *r = new_req();
	memset(fi, 0, sizeof *fi);
	fi->flags = O_RDWR;
	fake_ctx.uid = uid;
	tty_test_ops()->open(r, fi);
	fake_ctx.uid = 0;
	ck_assert(r->replied);
	int e = r->err;
	free(r);
	return e;
}

static void release_fi(struct fuse_file_info *fi)
{
	struct fuse_req *r = new_req();
	tty_test_ops()->release(r, fi);
	ck_assert(r->replied);
	ck_assert_int_eq(r->err, 0);
	free(r);
}

static struct fuse_req *read_fi(const struct fuse_file_info *fi, size_t n, int extra_flags)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info f = *fi;
	f.flags |= extra_flags;
	tty_test_ops()->read(r, n, 0, &f);
	return r;
}

static struct fuse_req *poll_fi(const struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct fuse_req *r = new_req();
	struct fuse_file_info f = *fi;
	tty_test_ops()->poll(r, &f, ph);
	ck_assert(r->replied);
	return r;
}

/* ---- modem state */

static struct fuse_req *mw1, *mw2;
static bool mw1_replied(void)
{
	return mw1->replied;
}

/* NOTIFY-MODEMSTATE sets CTS/DSR/RI/CD for TIOCMGET, counts changes in TIOCGICOUNT (ring on
 * the trailing edge, as the 8250 driver), wakes TIOCMIWAIT waiters whose mask changed and
 * only those; an interrupted TIOCMIWAIT gets EINTR. tty_get_stats reports the same. */
START_TEST(modemstate_tiocmget_icount_miwait)
{
	open_all();
	mset(TIOCMSET, TIOCM_DTR);
	int m = mget();
	ck_assert_int_eq(
	    m & (TIOCM_DTR | TIOCM_RTS | TIOCM_CTS | TIOCM_DSR | TIOCM_CAR | TIOCM_RNG), TIOCM_DTR);
	struct serial_icounter_struct ic0 = icount();

	mw1 = do_ioctl(TIOCMIWAIT, TIOCM_CTS | TIOCM_CAR);
	mw2 = do_ioctl(TIOCMIWAIT, TIOCM_RNG);
	struct fuse_req *bad = do_ioctl(TIOCMIWAIT, TIOCM_DTR); /* no input line in the mask */
	ck_assert(bad->replied);
	ck_assert_int_eq(bad->err, EINVAL);
	free(bad);
	ck_assert(!mw1->replied && !mw2->replied);

	srv_notify(RFC2217_NOTIFY_MODEMSTATE, RFC2217_MODEM_CTS | RFC2217_MODEM_DSR |
	                                          RFC2217_MODEM_CD | RFC2217_MODEM_DELTA_CTS);
	ck_assert(run_until(mw1_replied, 2000));
	ck_assert_int_eq(mw1->err, 0);
	run_for(30);
	ck_assert(!mw2->replied);
	ck_assert_int_eq(mget(), TIOCM_DTR | TIOCM_CTS | TIOCM_DSR | TIOCM_CAR);
	struct serial_icounter_struct ic = icount();
	ck_assert_int_eq(ic.cts - ic0.cts, 1); /* state change + delta bit: one transition */
	ck_assert_int_eq(ic.dsr - ic0.dsr, 1);
	ck_assert_int_eq(ic.dcd - ic0.dcd, 1);
	ck_assert_int_eq(ic.rng - ic0.rng, 0);

	/* RI rises: no ring counted yet, the RNG waiter keeps waiting */
	srv_notify(RFC2217_NOTIFY_MODEMSTATE,
	           RFC2217_MODEM_CTS | RFC2217_MODEM_DSR | RFC2217_MODEM_CD | RFC2217_MODEM_RI);
	run_for(50);
	ck_assert_int_ne(mget() & TIOCM_RNG, 0);
	ck_assert_int_eq(icount().rng - ic0.rng, 0);
	ck_assert(!mw2->replied);
	/* RI falls (trailing edge, TERI): one ring, the waiter wakes */
	srv_notify(RFC2217_NOTIFY_MODEMSTATE,
	           RFC2217_MODEM_CTS | RFC2217_MODEM_DSR | RFC2217_MODEM_CD | RFC2217_MODEM_TERI);
	wait_replied(mw2, 2000);
	ck_assert_int_eq(mw2->err, 0);
	ck_assert_int_eq(icount().rng - ic0.rng, 1);
	ck_assert_int_eq(mget() & TIOCM_RNG, 0);
	free(mw1);
	free(mw2);

	/* the same state again without delta bits counts nothing and wakes nobody; a delta
	 * bit alone (the line toggled between notifications) counts */
	mw1 = do_ioctl(TIOCMIWAIT, TIOCM_DSR);
	srv_notify(RFC2217_NOTIFY_MODEMSTATE,
	           RFC2217_MODEM_CTS | RFC2217_MODEM_DSR | RFC2217_MODEM_CD);
	run_for(50);
	ck_assert(!mw1->replied);
	ic = icount();
	ck_assert_int_eq(ic.cts - ic0.cts, 1);
	ck_assert_int_eq(ic.dsr - ic0.dsr, 1);
	srv_notify(RFC2217_NOTIFY_MODEMSTATE, RFC2217_MODEM_CTS | RFC2217_MODEM_DSR |
	                                          RFC2217_MODEM_CD | RFC2217_MODEM_DELTA_DSR);
	ck_assert(run_until(mw1_replied, 2000));
	ck_assert_int_eq(icount().dsr - ic0.dsr, 2);
	free(mw1);

	/* CTS and CD drop */
	srv_notify(RFC2217_NOTIFY_MODEMSTATE, RFC2217_MODEM_DSR);
	run_for(50);
	ck_assert_int_eq(mget(), TIOCM_DTR | TIOCM_DSR);
	ic = icount();
	ck_assert_int_eq(ic.cts - ic0.cts, 2);
	ck_assert_int_eq(ic.dcd - ic0.dcd, 2);

	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_int_eq(st.modem, TIOCM_DTR | TIOCM_DSR);
	ck_assert_uint_eq(st.cts, (uint32_t)ic.cts);
	ck_assert_uint_eq(st.dsr, (uint32_t)ic.dsr);
	ck_assert_uint_eq(st.dcd, (uint32_t)ic.dcd);
	ck_assert_uint_eq(st.rng, (uint32_t)ic.rng);
	ck_assert_uint_eq(st.opens, 1);

	/* a signal during TIOCMIWAIT */
	mw1 = do_ioctl(TIOCMIWAIT, TIOCM_CTS);
	ck_assert(!mw1->replied);
	ck_assert_ptr_nonnull(mw1->intr);
	mw1->intr(mw1, mw1->intr_data);
	ck_assert(run_until(mw1_replied, 2000));
	ck_assert_int_eq(mw1->err, EINTR);
	free(mw1);
}
END_TEST

/* NOTIFY-LINESTATE error bits count in TIOCGICOUNT (frame, parity, overrun, brk); the other
 * bits count nothing. */
START_TEST(linestate_errors_counted)
{
	open_all();
	struct serial_icounter_struct ic0 = icount();
	srv_notify(RFC2217_NOTIFY_LINESTATE, RFC2217_LINE_OVERRUN | RFC2217_LINE_PARITY);
	srv_notify(RFC2217_NOTIFY_LINESTATE, RFC2217_LINE_FRAMING | RFC2217_LINE_BREAK);
	srv_notify(RFC2217_NOTIFY_LINESTATE, RFC2217_LINE_PARITY);
	srv_notify(RFC2217_NOTIFY_LINESTATE,
	           RFC2217_LINE_THRE | RFC2217_LINE_TSRE | RFC2217_LINE_DATA_READY);
	run_for(80);
	struct serial_icounter_struct ic = icount();
	ck_assert_int_eq(ic.overrun - ic0.overrun, 1);
	ck_assert_int_eq(ic.parity - ic0.parity, 2);
	ck_assert_int_eq(ic.frame - ic0.frame, 1);
	ck_assert_int_eq(ic.brk - ic0.brk, 1);
	ck_assert_int_eq(ic.cts - ic0.cts, 0);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.parity_err, (uint32_t)ic.parity);
	ck_assert_uint_eq(st.frame, (uint32_t)ic.frame);
	ck_assert_uint_eq(st.overrun, (uint32_t)ic.overrun);
	ck_assert_uint_eq(st.brk, (uint32_t)ic.brk);
	/* sending a break is not receiving one */
	struct fuse_req *b = do_ioctl(TCSBRKP, 1);
	wait_replied(b, 3000);
	free(b);
	ck_assert_int_eq(icount().brk, ic.brk);
}
END_TEST

/* ---- breaks */

/* TCSBRK 0 = 250 ms, TCSBRKP n = n x 100 ms (0: 250 ms): each waits until earlier output
 * left the link, then BREAK on ... BREAK off (RFC 2217 SET-CONTROL 5/6) on the wire, after
 * all that data; the ioctl returns when the break is over. */
START_TEST(break_durations_after_output)
{
	static uint8_t buf[LINK_TXQ_MAX];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 7);
	open_all();
	static const struct {
		unsigned long cmd;
		uintptr_t arg;
		uint64_t ms;
	} cases[] = {{TCSBRK, 0, 250}, {TCSBRKP, 3, 300}, {TCSBRKP, 0, 250}};
	size_t sent = 0;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		/* output the bridge has not taken yet */
		srv_suspend(true);
		struct fuse_req *w = do_write(buf, sizeof buf, O_NONBLOCK);
		ck_assert_uint_eq(w->written, sizeof buf);
		free(w);
		sent += sizeof buf;
		unsigned c0 = srv.ncmds;
		uint64_t t0 = uv_now(&loop);
		struct fuse_req *b = do_ioctl(cases[k].cmd, cases[k].arg);
		run_for(50);
		ck_assert(!b->replied);
		ck_assert_int_lt(srv_find(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON), 0);
		srv_suspend(false);
		wait_replied(b, 3000);
		ck_assert_int_eq(b->err, 0);
		uint64_t el = b->t_replied - t0;
		ck_assert_msg(el >= cases[k].ms && el < cases[k].ms + 2000,
		              "case %zu: break ioctl took %llu ms, expected >= %llu", k,
		              (unsigned long long)el, (unsigned long long)cases[k].ms);
		int on = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
		int off = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF);
		ck_assert_int_ge(on, 0);
		ck_assert_int_gt(off, on);
		ck_assert_uint_eq(srv.cmds[on].at_data, sent); /* after all earlier output */
		ck_assert_uint_ge(srv.cmds[off].t - srv.cmds[on].t, cases[k].ms - 50);
		free(b);
	}
	ck_assert_uint_eq(srv.ndata, sent);
}
END_TEST

static struct fuse_req *bw;
static bool bw_replied(void)
{
	return bw->replied;
}

/* While a timed break is on: blocking writes wait (their data goes after BREAK off),
 * O_NONBLOCK writes get EAGAIN, poll has no POLLOUT; a second break waits for the first;
 * a signal ends a break early (EINTR, BREAK off sent). */
START_TEST(break_holds_writes_one_at_a_time)
{
	open_all();
	unsigned c0 = srv.ncmds;
	struct fuse_req *b1 = do_ioctl(TCSBRKP, 3);
	struct fuse_req *b2 = do_ioctl(TCSBRK, 0);
	run_for(30);
	ck_assert(!b1->replied && !b2->replied);
	struct fuse_req *w = do_write("abc", 3, O_NONBLOCK);
	ck_assert(w->replied);
	ck_assert_int_eq(w->err, EAGAIN);
	free(w);
	struct fuse_req *p = do_poll(NULL);
	ck_assert_uint_eq(p->revents & POLLOUT, 0);
	free(p);
	bw = do_write("xyz", 3, 0);
	ck_assert(!bw->replied);
	ck_assert(run_until(bw_replied, 3000));
	ck_assert_uint_eq(bw->written, 3);
	free(bw);
	wait_replied(b1, 3000);
	wait_replied(b2, 3000);
	ck_assert_int_eq(b1->err, 0);
	ck_assert_int_eq(b2->err, 0);
	ck_assert_uint_ge(b2->t_replied - b1->t_replied, 250); /* one after the other */
	want_ndata = 3;
	ck_assert(run_until(ndata_reached, 2000));
	/* on, off, on, off on the wire; the held write right after the first off */
	int on1 = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
	int off1 = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF);
	int on2 = wait_cmd((unsigned)off1 + 1, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
	int off2 = wait_cmd((unsigned)on2 + 1, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF);
	ck_assert(on1 >= 0 && off1 > on1 && on2 > off1 && off2 > on2);
	ck_assert_uint_eq(srv.cmds[on1].at_data, 0);
	ck_assert_uint_eq(srv.cmds[on2].at_data, 3);
	ck_assert_mem_eq(srv.data, "xyz", 3);
	free(b1);
	free(b2);
	p = do_poll(NULL);
	ck_assert_uint_ne(p->revents & POLLOUT, 0);
	free(p);

	/* interrupted */
	c0 = srv.ncmds;
	uint64_t t0 = uv_now(&loop);
	b1 = do_ioctl(TCSBRKP, 50); /* 5 s */
	run_for(50);
	ck_assert(!b1->replied);
	ck_assert_ptr_nonnull(b1->intr);
	b1->intr(b1, b1->intr_data);
	wait_replied(b1, 2000);
	ck_assert_int_eq(b1->err, EINTR);
	ck_assert_uint_lt(b1->t_replied - t0, 4500); /* < the 5 s break: ended early */
	int on = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
	ck_assert_int_gt(wait_cmd((unsigned)on + 1, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF),
	                 on);
	free(b1);
}
END_TEST

/* TIOCSBRK waits until earlier output left the link, then BREAK on until TIOCCBRK (at
 * once), and a break still on at the last close is released. */
START_TEST(tiocsbrk_tioccbrk)
{
	static uint8_t buf[LINK_TXQ_MAX];
	memset(buf, 0x5a, sizeof buf);
	open_all();
	srv_suspend(true);
	struct fuse_req *w = do_write(buf, sizeof buf, O_NONBLOCK);
	ck_assert_uint_eq(w->written, sizeof buf);
	free(w);
	unsigned c0 = srv.ncmds;
	struct fuse_req *b = do_ioctl(TIOCSBRK, 0);
	run_for(50);
	ck_assert(!b->replied);
	srv_suspend(false);
	wait_replied(b, 3000);
	ck_assert_int_eq(b->err, 0);
	free(b);
	int on = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
	ck_assert_int_ge(on, 0);
	ck_assert_uint_eq(srv.cmds[on].at_data, sizeof buf);
	run_for(300);
	ck_assert_int_lt(srv_find((unsigned)on, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF), 0);
	ioctl_now(TIOCCBRK, 0, NULL, 0, NULL, 0);
	ck_assert_int_gt(wait_cmd((unsigned)on, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF),
	                 on);

	/* on at the last close: released */
	c0 = srv.ncmds;
	b = do_ioctl(TIOCSBRK, 0);
	wait_replied(b, 2000);
	free(b);
	on = wait_cmd(c0, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_ON);
	ck_assert_int_ge(on, 0);
	release_fi(&open_fi);
	ck_assert_int_gt(wait_cmd((unsigned)on, RFC2217_SET_CONTROL, RFC2217_CONTROL_BREAK_OFF),
	                 on);
}
END_TEST

/* ---- tcdrain, TCSETSW */

/* tcdrain (TCSBRK 1) answers once every byte written before it, including a write still
 * parked in the tty, has been handed to the bridge's socket; TCSETSW applies the new line
 * settings only after that, so SET-BAUDRATE follows the data on the wire. */
START_TEST(tcdrain_waits_for_bridge)
{
	static uint8_t buf[LINK_TXQ_MAX + 3000];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)(i * 13 + 1);
	open_all();
	srv_suspend(true);
	struct fuse_req *w = do_write(buf, sizeof buf, 0);
	ck_assert(!w->replied); /* 3000 bytes parked */
	struct fuse_req *dr = do_ioctl(TCSBRK, 1);
	run_for(100);
	ck_assert(!dr->replied);
	ck_assert_uint_eq(srv.ndata, 0);
	srv_suspend(false);
	wait_replied(dr, 3000);
	ck_assert_int_eq(dr->err, 0);
	ck_assert(w->replied);
	ck_assert_uint_eq(w->written, sizeof buf);
	ck_assert_uint_eq(link_tx_pending(lk), 0);
	want_ndata = sizeof buf;
	ck_assert(run_until(ndata_reached, 3000));
	ck_assert_mem_eq(srv.data, buf, sizeof buf);
	free(dr);
	free(w);

	/* TCSETSW: the baud change goes after the data */
	srv_suspend(true);
	w = do_write(buf, 1000, 0);
	ck_assert(w->replied);
	free(w);
	struct tm_termios2 t = tget();
	t.c_cflag = (t.c_cflag & ~(tcflag_t)CBAUD) | B57600;
	unsigned c0 = srv.ncmds;
	struct fuse_req *ts = ioctl_io(NULL, TCSETSW, 0x1000, &t, TM_TERMIOS_SIZE, 0);
	run_for(50);
	ck_assert(!ts->replied);
	ck_assert_int_lt(srv_find(c0, RFC2217_SET_BAUDRATE, 57600), 0);
	srv_suspend(false);
	wait_replied(ts, 3000);
	ck_assert_int_eq(ts->err, 0);
	free(ts);
	int i = wait_cmd(c0, RFC2217_SET_BAUDRATE, 57600);
	ck_assert_int_ge(i, 0);
	ck_assert_uint_eq(srv.cmds[i].at_data, sizeof buf + 1000);
	struct tm_termios2 g = tget();
	ck_assert_mem_eq(&g, &t, TM_TERMIOS_SIZE);
}
END_TEST

/* ---- flow control */

/* CRTSCTS -> SET-CONTROL 3 (hardware), IXON or IXOFF -> 2 (XON/XOFF), neither -> 1,
 * each sent when the termios change it; the termios read back as set. */
START_TEST(flow_control_carried)
{
	open_all();
	static const struct {
		tcflag_t iflag, cflag;
		uint32_t want;
	} cases[] = {
	    {0, CRTSCTS, RFC2217_CONTROL_FLOW_HARDWARE},
	    {IXON, 0, RFC2217_CONTROL_FLOW_XONXOFF},
	    {0, 0, RFC2217_CONTROL_FLOW_NONE},
	    {IXOFF, 0, RFC2217_CONTROL_FLOW_XONXOFF},
	    {IXON | IXOFF, CRTSCTS, RFC2217_CONTROL_FLOW_HARDWARE},
	    {0, 0, RFC2217_CONTROL_FLOW_NONE},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct tm_termios2 t = tget();
		t.c_iflag = (t.c_iflag & ~(tcflag_t)(IXON | IXOFF)) | cases[k].iflag;
		t.c_cflag = (t.c_cflag & ~(tcflag_t)CRTSCTS) | cases[k].cflag;
		unsigned c0 = srv.ncmds;
		tset(&t);
		int i = wait_cmd(c0, RFC2217_SET_CONTROL, cases[k].want);
		ck_assert_msg(i >= 0, "case %zu: no SET-CONTROL %u", k, cases[k].want);
		struct tm_termios2 g = tget();
		ck_assert_mem_eq(&g, &t, TM_TERMIOS_SIZE);
		struct tty_stats st;
		tty_get_stats(dev, &st);
		ck_assert_int_eq(st.flow,
		                 cases[k].want == RFC2217_CONTROL_FLOW_HARDWARE ? LINK_FLOW_HARDWARE
		                 : cases[k].want == RFC2217_CONTROL_FLOW_XONXOFF ? LINK_FLOW_XONXOFF
		                                                                 : LINK_FLOW_NONE);
	}
	/* a change that keeps the flow sends no SET-CONTROL */
	struct tm_termios2 t = tget();
	t.c_cc[VMIN] = 5;
	unsigned c0 = srv.ncmds;
	tset(&t);
	run_for(100);
	for (unsigned i = c0; i < srv.ncmds; i++)
		ck_assert_int_ne(srv.cmds[i].cmd, RFC2217_SET_CONTROL);
}
END_TEST

/* tcflow(3): TCOOFF holds our output (writes wait or EAGAIN, no POLLOUT, tcdrain waits),
 * TCOON releases it; TCIOFF/TCION send VSTOP/VSTART as data. */
START_TEST(tcflow_tcxonc)
{
	open_all();
	ioctl_now(TCXONC, TCOOFF, NULL, 0, NULL, 0);
	struct fuse_req *w = do_write("held", 4, O_NONBLOCK);
	ck_assert_int_eq(w->err, EAGAIN);
	free(w);
	w = do_write("held", 4, 0);
	struct fuse_req *dr = do_ioctl(TCSBRK, 1);
	struct fuse_req *p = do_poll(NULL);
	ck_assert_uint_eq(p->revents & POLLOUT, 0);
	free(p);
	run_for(100);
	ck_assert(!w->replied && !dr->replied);
	ck_assert_uint_eq(srv.ndata, 0);
	ioctl_now(TCXONC, TCOON, NULL, 0, NULL, 0);
	wait_replied(w, 2000);
	ck_assert_uint_eq(w->written, 4);
	wait_replied(dr, 2000);
	ck_assert_int_eq(dr->err, 0);
	free(w);
	free(dr);
	ioctl_now(TCXONC, TCIOFF, NULL, 0, NULL, 0);
	ioctl_now(TCXONC, TCION, NULL, 0, NULL, 0);
	struct fuse_req *bad = do_ioctl(TCXONC, 7);
	ck_assert_int_eq(bad->err, EINVAL);
	free(bad);
	want_ndata = 6;
	ck_assert(run_until(ndata_reached, 2000));
	ck_assert_mem_eq(srv.data, "held\x13\x11", 6); /* VSTOP ^S, VSTART ^Q by default */
}
END_TEST

/* ---- several opens, TIOCEXCL */

/* TIOCEXCL: later opens by non-root users get EBUSY (root passes, as CAP_SYS_ADMIN does in
 * the kernel's tty_open()); TIOCNXCL or the last close ends it. */
START_TEST(tiocexcl_ebusy)
{
	open_all();
	struct fuse_file_info f2, f3;
	ck_assert_int_eq(open_as(&f2, 1000), 0);
	release_fi(&f2);
	ioctl_now(TIOCEXCL, 0, NULL, 0, NULL, 0);
	int v = -1;
	ioctl_now(TIOCGEXCL, 0x1000, NULL, 0, &v, sizeof v);
	ck_assert_int_eq(v, 1);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_int_eq(st.exclusive, 1);
	ck_assert_int_eq(open_as(&f2, 1000), EBUSY);
	ck_assert_int_eq(open_as(&f3, 0), 0);
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.opens, 2);
	release_fi(&f3);
	ioctl_now(TIOCNXCL, 0, NULL, 0, NULL, 0);
	ck_assert_int_eq(open_as(&f2, 1000), 0);
	release_fi(&f2);
	/* exclusive at the last close: gone for the next open */
	ioctl_now(TIOCEXCL, 0, NULL, 0, NULL, 0);
	release_fi(&open_fi);
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.opens, 0);
	ck_assert_int_eq(st.exclusive, 0);
	ck_assert_int_eq(open_as(&f2, 1000), 0);
	release_fi(&f2);
}
END_TEST

static struct fuse_req *ra, *rb;
static bool one_of_two_replied(void)
{
	return ra->replied || rb->replied;
}

/* Two descriptors share one port: termios set through one is read through the other, the
 * input queue is shared (each byte goes to one read), O_NONBLOCK is per descriptor, both
 * pollers are told about new data. */
START_TEST(several_opens_share_the_port)
{
	open_all();
	struct fuse_file_info f2;
	ck_assert_int_eq(open_as(&f2, 0), 0);
	struct tm_termios2 t = tget();
	t.c_cflag = (t.c_cflag & ~(tcflag_t)(CBAUD | CSIZE)) | B9600 | CS7 | PARENB;
	tset(&t);
	struct tm_termios2 g;
	struct fuse_req *r = ioctl_io(&f2, TCGETS, 0x1000, NULL, 0, TM_TERMIOS_SIZE);
	ck_assert_int_eq(r->err, 0);
	memcpy(&g, r->out, TM_TERMIOS_SIZE);
	free(r);
	ck_assert_mem_eq(&g, &t, TM_TERMIOS_SIZE);
	t.c_cflag = (t.c_cflag & ~(tcflag_t)(CBAUD | CSIZE | PARENB)) | B115200 | CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tset(&t);

	/* both poll for input, both are told */
	static struct fuse_pollhandle pa, pb;
	memset(&pa, 0, sizeof pa);
	memset(&pb, 0, sizeof pb);
	free(poll_fi(&open_fi, &pa));
	free(poll_fi(&f2, &pb));
	/* two blocking reads: the first byte goes to one of them only */
	ra = read_fi(&open_fi, 100, 0);
	rb = read_fi(&f2, 100, 0);
	ck_assert(!ra->replied && !rb->replied);
	srv_write((const uint8_t *)"A", 1);
	ck_assert(run_until(one_of_two_replied, 2000));
	run_for(30);
	ck_assert_msg(ra->replied != rb->replied, "one byte answered both reads");
	ck_assert_uint_ge(pa.notified, 1);
	ck_assert_uint_ge(pb.notified, 1);
	struct fuse_req *waiting = ra->replied ? rb : ra;
	srv_write((const uint8_t *)"B", 1);
	wait_replied(waiting, 2000);
	ck_assert_uint_eq(ra->nbuf + rb->nbuf, 2);
	ck_assert_uint_eq(rd_n, 2);
	ck_assert_mem_eq(rd_sink, "AB", 2);
	free(ra);
	free(rb);

	/* the queue is shared: what one descriptor reads, the other does not see */
	srv_write((const uint8_t *)"abcdef", 6);
	run_for(50);
	int n = -1;
	r = ioctl_io(&f2, FIONREAD, 0x1000, NULL, 0, sizeof n);
	memcpy(&n, r->out, sizeof n);
	free(r);
	ck_assert_int_eq(n, 6);
	r = read_fi(&open_fi, 4, 0);
	ck_assert_uint_eq(r->nbuf, 4);
	free(r);
	r = read_fi(&f2, 10, O_NONBLOCK);
	ck_assert_uint_eq(r->nbuf, 2);
	free(r);
	ck_assert_mem_eq(rd_sink + 2, "abcdef", 6);
	/* O_NONBLOCK per descriptor: EAGAIN on one while a blocking read waits on the other */
	ra = read_fi(&open_fi, 10, 0);
	ck_assert(!ra->replied);
	r = read_fi(&f2, 10, O_NONBLOCK);
	ck_assert_int_eq(r->err, EAGAIN);
	free(r);
	release_fi(&f2);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.opens, 1);
	srv_write((const uint8_t *)"z", 1);
	wait_replied(ra, 2000);
	ck_assert_uint_eq(ra->nbuf, 1);
	free(ra);
}
END_TEST

/* TCIFLUSH discards what was received; tty_get_stats counts it in rx_dropped. */
START_TEST(tciflush_counts_rx_dropped)
{
	open_all();
	srv_write((const uint8_t *)"0123456789", 10);
	run_for(50);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.rx_dropped, 0);
	ck_assert_uint_eq(st.rx, 10);
	ioctl_now(TCFLSH, TCIFLUSH, NULL, 0, NULL, 0);
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.rx_dropped, 10);
	ck_assert_uint_eq(st.baud, 115200);
	ck_assert_uint_eq(st.data_bits, 8);
	ck_assert_int_eq(st.parity, 'N');
	ck_assert_uint_eq(st.stop_bits, 1);
	int n = -1;
	ioctl_now(FIONREAD, 0x1000, NULL, 0, &n, sizeof n);
	ck_assert_int_eq(n, 0);
}
END_TEST

/* ---- backpressure */

#define BP_TOTAL (1u << 20)
static uint8_t *bp_src;
static size_t bp_off, bp_parked, bp_eagain, bp_calls;
static struct fuse_req *bp_req;
static bool bp_blocking, bp_suspended;

static void bp_writer(uv_timer_t *t)
{
	(void)t;
	if (bp_req) {
		if (!bp_req->replied)
			return;
		if (bp_req->err == EAGAIN)
			bp_eagain++;
		else {
			ck_assert_int_eq(bp_req->err, 0);
			bp_off += bp_req->written;
		}
		free(bp_req);
		bp_req = NULL;
	}
	if (bp_off >= BP_TOTAL)
		return;
	bp_calls++;
	size_t n = 1 + (bp_calls * 2654435761u) % 40000;
	if (n > BP_TOTAL - bp_off)
		n = BP_TOTAL - bp_off;
	bp_blocking = bp_calls % 3 != 0;
	bp_req = do_write(bp_src + bp_off, n, bp_blocking ? 0 : O_NONBLOCK);
	if (!bp_req->replied)
		bp_parked++;
}

static void bp_toggle(uv_timer_t *t)
{
	(void)t;
	/* the bridge alternately stops and resumes taking our output (a slow UART) */
	bp_suspended = !bp_suspended;
	uint8_t b[16];
	int n = rfc2217_build(
	    b, sizeof b,
	    (bp_suspended ? RFC2217_FLOWCONTROL_SUSPEND : RFC2217_FLOWCONTROL_RESUME) +
	        RFC2217_SERVER_OFFSET,
	    NULL, 0);
	srv_write(b, (size_t)n);
}

static bool bp_all_written(void)
{
	return bp_off >= BP_TOTAL && bp_req == NULL;
}

/* A writer faster than the bridge: blocking writes park until the link has room, O_NONBLOCK
 * writes take what fits or get EAGAIN, poll has no POLLOUT while the queue is full and
 * notifies when it has room; the bridge receives every byte once, in order. */
START_TEST(backpressure_nothing_dropped)
{
	bp_src = malloc(BP_TOTAL);
	ck_assert_ptr_nonnull(bp_src);
	for (size_t i = 0; i < BP_TOTAL; i++)
		bp_src[i] = pat(i);
	bp_off = bp_parked = bp_eagain = bp_calls = 0;
	bp_req = NULL;
	bp_suspended = false;
	open_all();

	/* explicit: fill the queue while the bridge takes nothing */
	srv_suspend(true);
	size_t first = 0;
	for (;;) {
		struct fuse_req *w = do_write(bp_src + first, 5000, O_NONBLOCK);
		ck_assert(w->replied);
		if (w->err == EAGAIN) {
			free(w);
			break;
		}
		ck_assert_int_eq(w->err, 0);
		ck_assert_uint_gt(w->written, 0);
		first += w->written;
		free(w);
		ck_assert_uint_le(first, LINK_TXQ_MAX);
	}
	ck_assert_uint_eq(first, LINK_TXQ_MAX);
	static struct fuse_pollhandle ph;
	memset(&ph, 0, sizeof ph);
	struct fuse_req *p = do_poll(&ph);
	ck_assert_uint_eq(p->revents & POLLOUT, 0);
	free(p);
	int q = -1;
	ioctl_now(TIOCOUTQ, 0x1000, NULL, 0, &q, sizeof q);
	ck_assert_int_eq(q, LINK_TXQ_MAX);
	srv_suspend(false);
	ck_assert_uint_ge(ph.notified, 1);
	bp_off = first;

	/* then a long irregular run against a bridge that keeps stopping */
	static uv_timer_t tw, tt;
	uv_timer_init(&loop, &tw);
	uv_timer_init(&loop, &tt);
	uv_timer_start(&tw, bp_writer, 0, 1);
	uv_timer_start(&tt, bp_toggle, 7, 7);
	bool ok = run_until(bp_all_written, 20000);
	uv_timer_stop(&tt);
	if (bp_suspended)
		bp_toggle(&tt);
	uv_close((uv_handle_t *)&tw, NULL);
	uv_close((uv_handle_t *)&tt, NULL);
	ck_assert_msg(ok, "writer stalled at %zu of %u bytes", bp_off, BP_TOTAL);
	want_ndata = BP_TOTAL;
	ck_assert_msg(run_until(ndata_reached, 10000), "bridge got %zu of %u bytes", srv.ndata,
	              BP_TOTAL);
	run_for(50);
	ck_assert_uint_eq(srv.ndata, BP_TOTAL);
	ck_assert_mem_eq(srv.data, bp_src, BP_TOTAL);
	ck_assert_uint_gt(bp_parked, 0); /* writes of up to 40000 bytes > the 16 KiB queue */
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.tx, BP_TOTAL);
	free(bp_src);
}
END_TEST

/* ---- link loss */

static bool reconnected2(void)
{
	return srv.accepted >= 2 && is_up();
}
static bool link_not_up(void)
{
	return !is_up();
}

/* The bridge connection drops while the device is open: the descriptor keeps working (a
 * read parked before the loss gets data from the new connection, a write made during the
 * outage goes out after it), the termios and lines the program sees are unchanged, and
 * the link sends the desired state again on the new connection. */
START_TEST(link_loss_keeps_open_descriptor)
{
	open_all();
	struct tm_termios2 t = tget();
	t.c_cflag = (t.c_cflag & ~(tcflag_t)(CBAUD | CSIZE | PARODD)) | B57600 | CS7 | PARENB |
	            CSTOPB | CRTSCTS;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	tset(&t);
	mset(TIOCMSET, TIOCM_DTR | TIOCM_RTS);
	run_for(50);
	struct tty_stats st0;
	tty_get_stats(dev, &st0);

	struct fuse_req *r = do_read(64, 0);
	ck_assert(!r->replied);
	srv_drop();
	ck_assert(run_until(link_not_up, 3000));
	struct fuse_req *w = do_write("during", 6, 0);
	ck_assert(!w->replied); /* waits for the link (< 3 s outage) */
	ck_assert(run_until(reconnected2, 5000));
	wait_replied(w, 3000);
	ck_assert_int_eq(w->err, 0);
	ck_assert_uint_eq(w->written, 6);
	free(w);

	/* what the program sees: unchanged */
	struct tm_termios2 g = tget();
	ck_assert_mem_eq(&g, &t, TM_TERMIOS_SIZE);
	ck_assert_int_eq(mget() & (TIOCM_DTR | TIOCM_RTS), TIOCM_DTR | TIOCM_RTS);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.baud, 57600);
	ck_assert_uint_eq(st.data_bits, 7);
	ck_assert_int_eq(st.parity, 'E');
	ck_assert_uint_eq(st.stop_bits, 2);
	ck_assert_int_eq(st.flow, LINK_FLOW_HARDWARE);
	ck_assert_uint_eq(st.opens, 1);

	/* the new connection got the desired state again */
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_BAUDRATE, 57600), 0);
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_DATASIZE, 7), 0);
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_PARITY, RFC2217_PARITY_EVEN), 0);
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_STOPSIZE, RFC2217_STOPSIZE_2), 0);
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_CONTROL, RFC2217_CONTROL_FLOW_HARDWARE), 0);
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_CONTROL, RFC2217_CONTROL_DTR_ON), 0);
	ck_assert_int_ge(wait_cmd(0, RFC2217_SET_CONTROL, RFC2217_CONTROL_RTS_ON), 0);

	/* data both ways on the same descriptor */
	want_ndata = 6;
	ck_assert(run_until(ndata_reached, 2000));
	ck_assert_mem_eq(srv.data, "during", 6);
	ck_assert(!r->replied);
	srv_write((const uint8_t *)"back", 4);
	wait_replied(r, 2000);
	ck_assert_uint_eq(r->nbuf, 4);
	ck_assert_mem_eq(rd_sink, "back", 4);
	free(r);
	w = do_write("after", 5, 0);
	ck_assert(w->replied);
	ck_assert_uint_eq(w->written, 5);
	free(w);
	want_ndata = 11;
	ck_assert(run_until(ndata_reached, 2000));
	ck_assert_mem_eq(srv.data + 6, "after", 5);
}
END_TEST

static Suite *tty_link_suite(void)
{
	Suite *s = suite_create("tty_link");
	TCase *tc = tcase_create("tty_link");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, rx_long_stream_small_irregular_space);
	tcase_add_test(tc, pollout_after_exact_fill);
	tcase_add_test(tc, cuse_fd_error_is_fatal);
	tcase_add_test(tc, parked_write_reply_counts_accepted_bytes);
	tcase_add_test(tc, negotiation_flood_bounded);
	tcase_add_test(tc, tcoflush_wakes_drain_and_poll);
	tcase_add_test(tc, outage_writes_fail_after_3s);
	suite_add_tcase(s, tc);

	/* modem state, breaks, drain, flow, opens, backpressure, link loss */
	tc = tcase_create("tty_behaviour");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 40);
	tcase_add_test(tc, modemstate_tiocmget_icount_miwait);
	tcase_add_test(tc, linestate_errors_counted);
	tcase_add_test(tc, break_durations_after_output);
	tcase_add_test(tc, break_holds_writes_one_at_a_time);
	tcase_add_test(tc, tiocsbrk_tioccbrk);
	tcase_add_test(tc, tcdrain_waits_for_bridge);
	tcase_add_test(tc, flow_control_carried);
	tcase_add_test(tc, tcflow_tcxonc);
	tcase_add_test(tc, tiocexcl_ebusy);
	tcase_add_test(tc, several_opens_share_the_port);
	tcase_add_test(tc, tciflush_counts_rx_dropped);
	tcase_add_test(tc, backpressure_nothing_dropped);
	tcase_add_test(tc, link_loss_keeps_open_descriptor);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(tty_link_suite)

/* ======================================================= review 2: input flow */
#include <linux/sockios.h>
#include <unistd.h>
#include <signal.h>

static size_t count_byte(const uint8_t *p, size_t n, uint8_t c)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += p[i] == c;
	return k;
}

/* Read with O_NONBLOCK until EAGAIN; returns the bytes read (appended to rd_sink). */
static size_t read_all_now(void)
{
	size_t before = rd_n;
	for (int i = 0; i < 5000; i++) {
		struct fuse_req *r = do_read(65536, O_NONBLOCK);
		ck_assert(r->replied);
		int e = r->err;
		free(r);
		if (e == EAGAIN) {
			run_for(20); /* the link may deliver what it held or had in flight */
			r = do_read(65536, O_NONBLOCK);
			e = r->err;
			free(r);
			if (e == EAGAIN)
				break;
		}
		run_for(2);
	}
	return rd_n - before;
}

/* Review (HIGH): TCIFLUSH emptied the ring and the link's held data, but what the bridge
 * had sent before sat in the socket buffers and came right after (stm32flash flushes,
 * then expects 0x79 for its 0x7F). Now the link discards data until the bridge's
 * PURGE-DATA answer, and every discarded byte counts in rx_dropped. */
START_TEST(tciflush_discards_data_in_flight)
{
	static uint8_t chunk[8192];
	memset(chunk, 'A', sizeof chunk);
	open_all();
	for (int i = 0; i < 40; i++) /* 320 KiB the program never reads */
		srv_write(chunk, sizeof chunk);
	run_for(400);
	/* the tty is full: the link asked the bridge to stop sending (FLOWCONTROL-SUSPEND) */
	ck_assert_int_ge(srv_find(0, RFC2217_FLOWCONTROL_SUSPEND, 0), 0);
	unsigned c0 = srv.ncmds;
	ioctl_now(TCFLSH, TCIFLUSH, NULL, 0, NULL, 0);
	ck_assert_int_ge(wait_cmd(c0, RFC2217_PURGE_DATA, RFC2217_PURGE_RX), 0);
	run_for(50);
	srv_write((const uint8_t *)"ZZZZ", 4); /* the answer to the program's next command */
	run_for(300);
	size_t before = rd_n;
	size_t got = read_all_now();
	size_t stale = count_byte(rd_sink + before, got, 'A');
	ck_assert_msg(stale == 0, "after TCIFLUSH read %zu bytes, %zu of them stale", got, stale);
	ck_assert_uint_eq(got, 4);
	ck_assert_mem_eq(rd_sink + before, "ZZZZ", 4);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.rx_dropped, 40 * sizeof chunk); /* every stale byte, once */
	/* the tty took everything again: FLOWCONTROL-RESUME */
	ck_assert_int_ge(srv_find(c0, RFC2217_FLOWCONTROL_RESUME, 0), 0);
}
END_TEST

/* A bridge that never answers PURGE-DATA: discarding stops after 2 s, data flows again. */
START_TEST(tciflush_without_purge_answer)
{
	open_all();
	srv.no_purge_answer = true;
	srv_write((const uint8_t *)"old", 3);
	run_for(50);
	ioctl_now(TCFLSH, TCIFLUSH, NULL, 0, NULL, 0);
	run_for(2300);
	srv_write((const uint8_t *)"new", 3);
	run_for(100);
	size_t before = rd_n;
	ck_assert_uint_eq(read_all_now(), 3);
	ck_assert_mem_eq(rd_sink + before, "new", 3);
}
END_TEST

static int link_sock_fd = -1;
static void find_link_fd(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (h->type != UV_TCP || h == (uv_handle_t *)&srv.listener || h == (uv_handle_t *)srv.cur ||
	    uv_is_closing(h))
		return;
	uv_os_fd_t fd;
	if (uv_fileno(h, &fd) == 0)
		link_sock_fd = fd;
}

/* Review (MEDIUM): tcdrain completed once the bytes were in the daemon's socket, not at
 * the bridge. Now it waits until the socket holds nothing unacknowledged (SIOCOUTQ 0), and
 * TIOCOUTQ counts those bytes. */
START_TEST(tcdrain_waits_for_bridge_ack)
{
	static uint8_t buf[30000];
	memset(buf, 'B', sizeof buf);
	uv_os_fd_t lfd;
	ck_assert_int_eq(uv_fileno((uv_handle_t *)&srv.listener, &lfd), 0);
	int rb = 4096;
	ck_assert_int_eq(setsockopt(lfd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof rb), 0);
	open_all();
	uv_read_stop((uv_stream_t *)srv.cur); /* the bridge's UART is slower than the network */
	srv.reading = false;
	struct fuse_req *w = do_write(buf, sizeof buf, 0);
	run_for(200);
	struct fuse_req *dr = do_ioctl(TCSBRK, 1); /* tcdrain */
	run_for(300);
	link_sock_fd = -1;
	uv_walk(&loop, find_link_fd, NULL);
	ck_assert_int_ge(link_sock_fd, 0);
	int outq = -1;
	ck_assert_int_eq(ioctl(link_sock_fd, SIOCOUTQ, &outq), 0);
	ck_assert_int_gt(outq, 0); /* the test's premise: the bridge has not taken it all */
	ck_assert_uint_eq(link_tx_unacked(lk), (size_t)outq);
	ck_assert_msg(!dr->replied, "tcdrain returned with %d bytes not at the bridge", outq);
	int q = -1;
	ioctl_now(TIOCOUTQ, 0x1000, NULL, 0, &q, sizeof q);
	ck_assert_int_ge(q, outq);
	/* the bridge reads again: the drain completes, all bytes there */
	uv_read_start((uv_stream_t *)srv.cur, srv_alloc, srv_read);
	srv.reading = true;
	wait_replied(dr, 5000);
	ck_assert_int_eq(dr->err, 0);
	ck_assert(w->replied);
	ck_assert_uint_eq(srv.ndata, sizeof buf);
	ck_assert_uint_eq(link_tx_unacked(lk), 0);
	ioctl_now(TIOCOUTQ, 0x1000, NULL, 0, &q, sizeof q);
	ck_assert_int_eq(q, 0);
	free(dr);
	free(w);
}
END_TEST

static bool reconnected_up(void)
{
	return srv.accepted >= 2 && link_get_state(lk) == LINK_UP;
}

/* Review (HIGH): with the ring full the link stopped reading, so it missed the bridge's
 * close, and after a reconnect never read DO COM-PORT-OPTION: the link then declared
 * COM-PORT-OPTION refused and link_action answered -ENOTSUP. Now the bridge is suspended
 * and the link keeps reading; held data survives the reconnect. */
START_TEST(reconnect_with_full_ring)
{
	signal(SIGPIPE, SIG_IGN);
	static uint8_t chunk[8192];
	memset(chunk, 'A', sizeof chunk);
	open_all();
	for (int i = 0; i < 12; i++) /* 96 KiB nobody reads: ring full, the link holds 32 */
		srv_write(chunk, sizeof chunk);
	run_for(300);
	ck_assert_int_ge(srv_find(0, RFC2217_FLOWCONTROL_SUSPEND, 0), 0);
	ck_assert_int_eq(link_action(lk, LINK_ACTION_RESET), 0);
	run_for(400);
	srv_drop(); /* Wi-Fi blip: the bridge closes, the link reconnects */
	ck_assert_msg(run_until(reconnected_up, 3000), "bridge close not noticed (state %d)",
	              link_get_state(lk));
	run_for(300);
	ck_assert_int_eq(link_action(lk, LINK_ACTION_RESET), 0);
	/* nothing was lost: the program reads all 96 KiB */
	size_t before = rd_n;
	ck_assert_uint_eq(read_all_now(), 12 * sizeof chunk);
	ck_assert_uint_eq(count_byte(rd_sink + before, 12 * sizeof chunk, 'A'), 12 * sizeof chunk);
}
END_TEST

/* Review (HIGH): while no descriptor is open the port drops what it receives (a UART does;
 * counted in rx_dropped), so an application that prints with nobody listening never stalls
 * the link: a bridge close is noticed and the reconnect negotiates COM-PORT-OPTION. The
 * last close drops what its user left unread. */
START_TEST(closed_port_drops_input)
{
	static uint8_t chunk[8192];
	memset(chunk, 'C', sizeof chunk);
	open_all();
	srv_write((const uint8_t *)"unread", 6);
	run_for(50);
	release_fi(&open_fi); /* nobody has the port open now */
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.opens, 0);
	ck_assert_uint_eq(st.rx_dropped, 6);
	for (int i = 0; i < 25; i++) /* 200 KiB with nobody listening */
		srv_write(chunk, sizeof chunk);
	run_for(400);
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.rx_dropped, 6 + 25 * sizeof chunk);
	ck_assert_int_lt(srv_find(0, RFC2217_FLOWCONTROL_SUSPEND, 0), 0); /* never held back */
	srv_drop();
	ck_assert_msg(run_until(reconnected_up, 3000), "bridge close not noticed");
	run_for(300);
	ck_assert_int_eq(link_action(lk, LINK_ACTION_RESET), 0);
	/* a new open starts empty and gets what arrives from now on */
	do_open();
	int n = -1;
	ioctl_now(FIONREAD, 0x1000, NULL, 0, &n, sizeof n);
	ck_assert_int_eq(n, 0);
	srv_write((const uint8_t *)"new", 3);
	run_for(100);
	size_t before = rd_n;
	ck_assert_uint_eq(read_all_now(), 3);
	ck_assert_mem_eq(rd_sink + before, "new", 3);
}
END_TEST

static Suite *tty_link_flow_suite(void)
{
	Suite *s = suite_create("tty_link_flow");
	TCase *tc = tcase_create("input_flow");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, tciflush_discards_data_in_flight);
	tcase_add_test(tc, tciflush_without_purge_answer);
	tcase_add_test(tc, tcdrain_waits_for_bridge_ack);
	tcase_add_test(tc, reconnect_with_full_ring);
	tcase_add_test(tc, closed_port_drops_input);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(tty_link_flow_suite)

/* ======================================================= stm32flash ACK cycles */

/*
 * Benchmark failure (seen once, VM under load): Debian's stm32flash writing through the tty
 * failed with "Failed to read ACK byte". It writes each frame whole, then reads the ACK one
 * byte at a time with VMIN 0 / VTIME 5 and gives up when a read returns 0 bytes. This test
 * replays that pattern thousands of times through the real tty and link against a fake
 * bridge that answers every 258-byte frame with 0x79 after 0..3 ms, in every order the
 * events can take (one variant per cycle, picked at random):
 *  - the read parked before the ACK; issued once the ACK is buffered; issued right after the
 *    bridge wrote it (in the socket, not yet in the ring); issued from a timer racing it;
 *  - poll(2) first (the wake-up is the POLLIN notification), then the read;
 *  - tcdrain in flight with the read; two parked reads (two threads) and a 2-byte answer;
 *  - TCIFLUSH just before the frame: the link's discard window, open until the bridge's
 *    PURGE-DATA answer, must not swallow the ACK that follows that answer;
 *  - a NOTIFY-MODEMSTATE ahead of the ACK, in the same TCP write or in its own.
 * Every ACK_EDGE_EVERY-th cycle the bridge's answer is sent when the read's VTIME expires:
 * in the very loop pass (alone; after a NOTIFY-MODEMSTATE in the same TCP write, whose
 * decoding calls service() before the ACK is decoded; after one in its own write), or
 * while the daemon is not scheduled for 0.6 s right after it took the frame and the read
 * (the link's write callback, which calls service() through on_drained, still pending).
 * The tty polls I/O once past a deadline before any read may time out (tty.c, on_timer),
 * so the ACK counts, as on a UART whose driver fills the buffer independently of the
 * reader. Before that fix the edges with the notification and with the stall returned
 * 0 bytes at 0.5 s: stm32flash's failure.
 * Every read must return the ACK. And after every loop iteration (uv_check) no read may be
 * parked, and no poll handle be left un-notified, while bytes are buffered (FIONREAD > 0):
 * that is a lost wake-up, caught even where the VTIME timer would rescue it later.
 */
#define ACK_CYCLES     2000
#define ACK_FRAME      258 /* AN3155 WRITE MEMORY: N-1, 256 data bytes, checksum */
#define ACK_EDGE_EVERY 400

enum ack_variant {
	AV_READ_FIRST,
	AV_READ_AFTER_RX,
	AV_READ_IN_ANSWER,
	AV_READ_RACE,
	AV_POLL_FIRST,
	AV_DRAIN,
	AV_TWO_READERS,
	AV_FLUSH_FIRST,
	AV_N
};

static struct {
	uint64_t rng;
	unsigned cycle;
	enum ack_variant v;
	size_t ack_at;     /* the bridge answers once it has received this many data bytes */
	bool armed;        /* the answer of this cycle has not been scheduled yet */
	unsigned ack_len;  /* answer bytes (2 for two readers) */
	bool notify;       /* NOTIFY-MODEMSTATE ahead of the answer */
	bool notify_split; /* ... in its own TCP write */
	bool edge;         /* the answer leaves when the read's VTIME expires */
	uint64_t rd_start; /* uv_now() when the first read of the cycle was issued */
	uv_timer_t ans_timer, rd_timer;
	uv_check_t check;
	struct fuse_req *rd[2];
	unsigned nrd;
	struct fuse_pollhandle ph;
	bool ph_waiting; /* ph registered by a poll whose reply had no POLLIN */
	struct fuse_req *drain;
} ak;

static uint32_t ak_rand(void)
{
	ak.rng ^= ak.rng << 13; /* xorshift64 */
	ak.rng ^= ak.rng >> 7;
	ak.rng ^= ak.rng << 17;
	return (uint32_t)(ak.rng >> 11);
}

static size_t ak_fionread(void)
{
	int n = -1;
	ioctl_now(FIONREAD, 0x1000, NULL, 0, &n, sizeof n);
	ck_assert_int_ge(n, 0);
	return (size_t)n;
}

static bool ak_buffered(void)
{
	return ak_fionread() > 0;
}

static bool ak_ph_notified(void)
{
	return ak.ph.notified > 0;
}

static void ak_issue_read(void)
{
	ck_assert_uint_lt(ak.nrd, 2);
	if (ak.nrd == 0)
		ak.rd_start = uv_now(&loop);
	ak.rd[ak.nrd++] = do_read(1, 0);
}

static void ak_answer(void)
{
	uint8_t b[32];
	size_t n = 0;
	if (ak.notify) {
		int k = rfc2217_build_u8(b, sizeof b,
		                         RFC2217_NOTIFY_MODEMSTATE + RFC2217_SERVER_OFFSET, 0x30);
		ck_assert_int_gt(k, 0);
		n = (size_t)k;
		if (ak.notify_split) {
			srv_write(b, n);
			n = 0;
		}
	}
	for (unsigned i = 0; i < ak.ack_len; i++)
		b[n++] = 0x79;
	srv_write(b, n);
	if (ak.v == AV_READ_IN_ANSWER)
		ak_issue_read(); /* the ACK is in the socket, not in the ring yet */
}

static void ak_answer_timer(uv_timer_t *t)
{
	(void)t;
	ak_answer();
}

static void ak_read_timer(uv_timer_t *t)
{
	(void)t;
	ak_issue_read();
}

/* The fake bridge got data: once the whole frame is there, answer after 0..3 ms (at once
 * for 0), or when the read's VTIME runs out (edge cycles). */
static void ak_srv_data(void)
{
	if (!ak.armed || srv.ndata < ak.ack_at)
		return;
	ak.armed = false;
	if (ak.edge) {
		uint64_t now = uv_now(&loop), due = ak.rd_start + 500;
		uv_timer_start(&ak.ans_timer, ak_answer_timer, due > now ? due - now : 0, 0);
		return;
	}
	uint64_t delay = ak_rand() % 4;
	if (delay == 0)
		ak_answer();
	else
		uv_timer_start(&ak.ans_timer, ak_answer_timer, delay, 0);
}

/* After every loop iteration: bytes buffered while a read waits or a poll sleeps is a lost
 * wake-up (VMIN 0 / VTIME 5: one byte completes a read and makes POLLIN). */
static void ak_check(uv_check_t *h)
{
	(void)h;
	if (!dev)
		return;
	size_t q = ak_fionread();
	if (q == 0)
		return;
	for (unsigned i = 0; i < ak.nrd; i++)
		ck_assert_msg(ak.rd[i]->replied,
		              "cycle %u (variant %d): read %u still parked with %zu bytes buffered",
		              ak.cycle, (int)ak.v, i, q);
	ck_assert_msg(!ak.ph_waiting || ak.ph.notified > 0,
	              "cycle %u: poll not woken with %zu bytes buffered", ak.cycle, q);
}

static bool ak_cycle_done(void)
{
	unsigned want = ak.v == AV_TWO_READERS ? 2 : 1;
	if (ak.nrd < want)
		return false;
	for (unsigned i = 0; i < ak.nrd; i++)
		if (!ak.rd[i]->replied)
			return false;
	return !ak.drain || ak.drain->replied;
}

START_TEST(stm32flash_ack_cycles_never_miss_a_wakeup)
{
	static uint8_t frame[ACK_FRAME];
	unsigned seen[AV_N] = {0}, edges = 0;
	memset(&ak, 0, sizeof ak);
	ak.rng = 0x9e3779b97f4a7c15ull;
	open_all();
	/* stm32flash's serial_setup: cfmakeraw(), VMIN 0, VTIME 5 */
	struct tm_termios2 t = tget();
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	t.c_oflag &= ~(tcflag_t)OPOST;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 5;
	tset(&t);
	run_for(20);
	/* the premise: VTIME is in effect (a read with no answer returns 0 bytes at 0.5 s) */
	struct fuse_req *r0 = do_read(1, 0);
	ck_assert(!r0->replied);
	wait_replied(r0, 3000);
	ck_assert_int_eq(r0->err, 0);
	ck_assert_uint_eq(r0->nbuf, 0);
	free(r0);
	/* as espstm-bridge and the ESP firmware: without it, Nagle holds an ACK written
	 * right after the PURGE-DATA answer until the daemon's delayed TCP ACK (~40 ms) */
	ck_assert_int_eq(uv_tcp_nodelay(srv.cur, 1), 0);
	ck_assert_int_eq(uv_timer_init(&loop, &ak.ans_timer), 0);
	ck_assert_int_eq(uv_timer_init(&loop, &ak.rd_timer), 0);
	ck_assert_int_eq(uv_check_init(&loop, &ak.check), 0);
	ck_assert_int_eq(uv_check_start(&ak.check, ak_check), 0);
	srv_data_hook = ak_srv_data;
	size_t base = srv.ndata;

	for (unsigned c = 0; c < ACK_CYCLES; c++) {
		ak.cycle = c;
		ak.edge = c % ACK_EDGE_EVERY == ACK_EDGE_EVERY - 1;
		ak.v = ak.edge ? AV_READ_FIRST : (enum ack_variant)(ak_rand() % AV_N);
		ak.notify = ak_rand() % 4 == 0;
		ak.notify_split = ak_rand() % 2;
		bool stall = ak.edge && edges % 4 == 3;
		if (ak.edge) { /* the edge alone, then with the notification in each place */
			ak.notify = edges % 4 == 1 || edges % 4 == 2;
			ak.notify_split = edges % 4 == 2;
		}
		ak.ack_len = ak.v == AV_TWO_READERS ? 2 : 1;
		ak.nrd = 0;
		ak.drain = NULL;
		ak.ph_waiting = false;
		seen[ak.v]++;
		/* the frame: N-1 = 0xFF, data with 0xFF runs (doubled on the wire), XOR */
		frame[0] = 0xff;
		uint8_t x = 0xff;
		for (size_t i = 1; i < ACK_FRAME - 1; i++) {
			frame[i] = (i + c) % 5 == 0 ? 0xff : (uint8_t)(ak_rand() & 0xff);
			x ^= frame[i];
		}
		frame[ACK_FRAME - 1] = x;

		if (ak.v == AV_FLUSH_FIRST)
			ioctl_now(TCFLSH, TCIFLUSH, NULL, 0, NULL, 0);
		ak.ack_at = base + (size_t)(c + 1) * ACK_FRAME;
		ak.armed = !stall;
		size_t before = rd_n;
		struct fuse_req *w = do_write(frame, sizeof frame, 0);
		ck_assert(w->replied);
		ck_assert_uint_eq(w->written, sizeof frame);
		free(w);

		if (stall) {
			/* The daemon is not scheduled for 0.6 s right after it took the frame and
			 * the read (the link's write callback still pending), while the bridge
			 * answers: the loop then runs the expired VTIME timer, the pending write
			 * callback (on_drained -> service()), then polls I/O. */
			ak_issue_read();
			ak_answer(); /* into the socket now (the frame reaches the fake later) */
			usleep(600 * 1000);
		} else
			switch (ak.v) {
			case AV_READ_FIRST:
			case AV_FLUSH_FIRST:
				ak_issue_read();
				break;
			case AV_TWO_READERS:
				ak_issue_read();
				ak_issue_read();
				break;
			case AV_DRAIN:
				ak.drain = do_ioctl(TCSBRK, 1); /* tcdrain */
				ak_issue_read();
				break;
			case AV_READ_RACE:
				uv_timer_start(&ak.rd_timer, ak_read_timer, ak_rand() % 4, 0);
				break;
			case AV_READ_IN_ANSWER:
				break;
			case AV_READ_AFTER_RX:
				ck_assert_msg(run_until(ak_buffered, 3000), "cycle %u: no ACK", c);
				ak_issue_read();
				ck_assert_msg(ak.rd[0]->replied,
				              "cycle %u: ACK buffered, read parked", c);
				break;
			case AV_POLL_FIRST: {
				/* as the kernel's poll loop: register, sleep until notified (other
				 * changes, e.g. POLLOUT, notify too), poll again */
				for (unsigned k = 0;; k++) {
					ck_assert_uint_lt(k, 100);
					memset(&ak.ph, 0, sizeof ak.ph);
					struct fuse_req *pr = do_poll(&ak.ph);
					ak.ph_waiting = !(pr->revents & POLLIN);
					free(pr);
					if (!ak.ph_waiting)
						break;
					ck_assert_msg(run_until(ak_ph_notified, 3000),
					              "cycle %u: poll never woken", c);
				}
				ak.ph_waiting = false;
				ak_issue_read();
				ck_assert_msg(ak.rd[0]->replied, "cycle %u: POLLIN, read parked",
				              c);
				break;
			}
			case AV_N:
				break;
			}

		ck_assert_msg(run_until(ak_cycle_done, 3000),
		              "cycle %u (variant %d): read not answered within 3 s", c, (int)ak.v);
		for (unsigned i = 0; i < ak.nrd; i++) {
			struct fuse_req *r = ak.rd[i];
			ck_assert_msg(r->err == 0 && r->nbuf == 1,
			              "cycle %u (variant %d%s): read %u returned %zu bytes (error "
			              "%d) after %llu ms: stm32flash's \"Failed to read ACK byte\"",
			              c, (int)ak.v, ak.edge ? ", edge" : "", i, r->nbuf, r->err,
			              (unsigned long long)(r->t_replied - ak.rd_start));
			free(r);
		}
		ck_assert_uint_eq(rd_n - before, ak.nrd);
		for (size_t i = before; i < rd_n; i++)
			ck_assert_msg(rd_sink[i] == 0x79, "cycle %u: read 0x%02x, not the ACK", c,
			              rd_sink[i]);
		if (ak.drain) {
			ck_assert_int_eq(ak.drain->err, 0);
			free(ak.drain);
		}
		want_ndata = ak.ack_at;
		ck_assert(run_until(ndata_reached, 3000));
		ck_assert_uint_eq(srv.ndata, ak.ack_at);
		ck_assert_mem_eq(srv.data + ak.ack_at - ACK_FRAME, frame, ACK_FRAME);
		edges += ak.edge;
	}
	srv_data_hook = NULL;
	for (int v = 0; v < AV_N; v++)
		ck_assert_uint_gt(seen[v], ACK_CYCLES / AV_N / 2);
	ck_assert_uint_eq(edges, ACK_CYCLES / ACK_EDGE_EVERY);
	struct tty_stats st;
	tty_get_stats(dev, &st);
	ck_assert_uint_eq(st.rx_dropped, 0); /* no flush ever discarded an ACK */
	uv_close((uv_handle_t *)&ak.ans_timer, NULL);
	uv_close((uv_handle_t *)&ak.rd_timer, NULL);
	uv_close((uv_handle_t *)&ak.check, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}
END_TEST

static Suite *tty_link_ack_suite(void)
{
	Suite *s = suite_create("tty_link_ack");
	TCase *tc = tcase_create("stm32flash_pattern");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, stm32flash_ack_cycles_never_miss_a_wakeup);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(tty_link_ack_suite)
