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
};

struct fuse_pollhandle {
	unsigned notified;
	bool destroyed;
};

static uint8_t *rd_sink; /* read replies are appended here */
static size_t rd_n, rd_cap;

static void reply_done(fuse_req_t req)
{
	ck_assert_msg(!req->replied, "request answered twice");
	req->replied = true;
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
	(void)buf;
	(void)size;
	reply_done(req);
	req->err = result;
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
	size_t ndata;      /* data bytes received on the current connection */
	unsigned do_bin;   /* DO BINARY received */
	unsigned dont_bin; /* DONT BINARY received */
	char rbuf[65536];
};

static uv_loop_t loop;
static struct srv srv;

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
	if (ev->type == TN_EV_DATA)
		srv.ndata += ev->len;
	else if (ev->type == TN_EV_DO && ev->opt == TELOPT_BINARY)
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

static void walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void teardown(void)
{
	if (dev)
		tty_dev_free(dev);
	dev = NULL;
	if (lk)
		link_close(lk);
	lk = NULL;
	srv_drop();
	uv_close((uv_handle_t *)&srv.listener, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_walk(&loop, walk_close, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(rd_sink);
	rd_sink = NULL;
	rd_cap = rd_n = 0;
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
	ck_assert_uint_le(el, 4000);
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
	return s;
}

UNIT_SUITE(tty_link_suite)
