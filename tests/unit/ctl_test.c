/* SPDX-License-Identifier: MIT */
/*
 * ctl (espstmd's control socket) against a real unix socket in a temp dir: the protocol
 * of ctl.h (status keys and values, actions, errors, limits, timeouts) spoken by a libuv
 * client in the same loop, and the espstm tool's cli_main() run whole in a thread.
 * The devices behind it are real: a link to a small fake RFC 2217 server on 127.0.0.1
 * (which records the SET-CONTROL commands the actions send) and a tty built with
 * tty_test_new (no CUSE); plus one device with neither, as espstmd has before connecting.
 */
#include "uvtest.h"
#include "cli_cmd.h"
#include "cli_json.h"
#include "ctl.h"
#include "link.h"
#include "log.h"
#include "rfc2217.h"
#include "tty.h"
#include "unit.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <wchar.h>

static uv_loop_t loop;

/* ------------------------------------------------------------ fake RFC 2217 server */

static struct {
	uv_tcp_t listener;
	uint16_t port;
	uv_tcp_t *cur;
	struct tn_decoder dec;
	uint8_t controls[64]; /* SET-CONTROL values received, in order */
	size_t ncontrols;
	char rbuf[4096];
} srv;

static void srv_write_done(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

static void srv_write(const uint8_t *p, size_t n)
{
	if (!srv.cur)
		return;
	uv_write_t *req = malloc(sizeof *req + n);
	ck_assert_ptr_nonnull(req);
	memcpy(req + 1, p, n);
	uv_buf_t b = uv_buf_init((char *)(req + 1), (unsigned)n);
	ck_assert_int_eq(uv_write(req, (uv_stream_t *)srv.cur, &b, 1, srv_write_done), 0);
}

static void srv_ev(void *ctx, const struct tn_event *ev)
{
	(void)ctx;
	struct rfc2217_msg m;
	if (ev->type == TN_EV_SB && ev->opt == TELOPT_COMPORT &&
	    rfc2217_parse(ev->data, ev->len, &m) == 0 && m.cmd == RFC2217_SET_CONTROL &&
	    srv.ncontrols < sizeof srv.controls)
		srv.controls[srv.ncontrols++] = (uint8_t)m.value;
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

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	if (n < 0) {
		if ((uv_tcp_t *)st == srv.cur)
			srv.cur = NULL;
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
	uv_tcp_init(&loop, c);
	ck_assert_int_eq(uv_accept(ls, (uv_stream_t *)c), 0);
	ck_assert_ptr_null(srv.cur);
	srv.cur = c;
	tn_decoder_init(&srv.dec);
	uv_read_start((uv_stream_t *)c, srv_alloc, srv_read);
	static const uint8_t opts[][2] = {{TN_DO, TELOPT_COMPORT},
	                                  {TN_DO, TELOPT_BINARY},
	                                  {TN_WILL, TELOPT_BINARY},
	                                  {TN_DO, TELOPT_SGA},
	                                  {TN_WILL, TELOPT_SGA}};
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
		uint8_t b[3];
		ck_assert_int_eq(tn_build_option(b, 3, opts[i][0], opts[i][1]), 3);
		srv_write(b, 3);
	}
}

static void srv_start(void)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss;
	memset(&srv, 0, sizeof srv);
	uv_tcp_init(&loop, &srv.listener);
	uv_ip4_addr("127.0.0.1", 0, &a);
	ck_assert_int_eq(uv_tcp_bind(&srv.listener, (struct sockaddr *)&a, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&srv.listener, 4, srv_on_conn), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&srv.listener, (struct sockaddr *)&ss, &len), 0);
	srv.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* ------------------------------------------------------------ the daemon's side */

static struct link *lk;
static struct tty_dev *tty;
static struct ctl *ctl;
static char dir[64], sock_path[128];
static struct ctl_device devs[2];

static size_t ops_count(void *ctx)
{
	ck_assert_ptr_eq(ctx, devs);
	return 2;
}

static int ops_get(void *ctx, size_t i, struct ctl_device *out)
{
	(void)ctx;
	if (i >= 2)
		return -ENOENT;
	*out = devs[i];
	return 0;
}

static const struct ctl_ops ops = {.count = ops_count, .get = ops_get};

static bool is_up(void)
{
	return lk && link_get_state(lk) == LINK_UP;
}

static void setup(void)
{
	/* As espstmd (daemon/main.c): a client that writes to a connection the server has
	 * just closed gets EPIPE, not a signal that ends the test. */
	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("CTL_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	srv_start();
	snprintf(dir, sizeof dir, "/tmp/ctl_test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(sock_path, sizeof sock_path, "%s/espstmd.sock", dir);

	struct link_config lc = {.host = "127.0.0.1",
	                         .port = srv.port,
	                         .reconnect_min_ms = 50,
	                         .reconnect_max_ms = 400,
	                         .connect_timeout_ms = 2000};
	ck_assert_int_eq(link_new(&loop, "ttySTM0", &lc, &lk), 0);
	struct tty_config tc = {.name = "ttySTM0", .initial_baud = 9600};
	ck_assert_int_eq(tty_test_new(&loop, &tc, lk, &tty), 0);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
	uvtest_run_for(&loop, 20);

	devs[0] = (struct ctl_device){.name = "ttySTM0",
	                              .host = "127.0.0.1",
	                              .port = srv.port,
	                              .protocol = LINK_PROTO_RFC2217,
	                              .http_port = 8080,
	                              .link = lk,
	                              .tty = tty};
	devs[1] = (struct ctl_device){
	    .name = "ttySTM1", .host = "192.0.2.1", .port = 2217, .protocol = LINK_PROTO_LEGACY};
	ck_assert_int_eq(ctl_new(&loop, sock_path, &ops, devs, &ctl), 0);
}

static void teardown(void)
{
	if (ctl)
		ctl_close(ctl);
	ctl = NULL;
	if (tty)
		tty_dev_free(tty);
	tty = NULL;
	if (lk)
		link_close(lk);
	lk = NULL;
	if (srv.cur)
		uv_close((uv_handle_t *)srv.cur, srv_closed);
	srv.cur = NULL;
	uv_close((uv_handle_t *)&srv.listener, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uvtest_close_loop(&loop), 0);
	unlink(sock_path);
	rmdir(dir);
}

/* ------------------------------------------------------------ a libuv client */

struct client {
	uv_pipe_t pipe;
	uv_connect_t conn;
	uv_write_t wr;
	uv_shutdown_t sd;
	bool connected, eof, closed;
	int status;
	char *send;
	size_t send_len;
	bool half_close; /* shut down the write side after sending */
	char in[8192];
	size_t nin;
};

static void cl_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)sz;
	struct client *c = h->data;
	*b = uv_buf_init(c->in + c->nin, (unsigned)(sizeof c->in - 1 - c->nin));
}

static void cl_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	(void)b;
	struct client *c = s->data;
	if (n > 0) {
		c->nin += (size_t)n;
		c->in[c->nin] = '\0';
		ck_assert_uint_lt(c->nin, sizeof c->in - 1);
	} else if (n < 0) {
		c->eof = true;
		uv_read_stop(s);
	}
}

static void cl_written(uv_write_t *w, int status)
{
	(void)w;
	(void)status;
}

static void cl_shut(uv_shutdown_t *r, int status)
{
	(void)r;
	(void)status;
}

static void cl_connected(uv_connect_t *r, int status)
{
	struct client *c = r->data;
	c->status = status;
	c->connected = true;
	if (status < 0)
		return;
	uv_read_start((uv_stream_t *)&c->pipe, cl_alloc, cl_read);
	if (c->send_len) {
		uv_buf_t b = uv_buf_init(c->send, (unsigned)c->send_len);
		ck_assert_int_eq(uv_write(&c->wr, (uv_stream_t *)&c->pipe, &b, 1, cl_written), 0);
	}
	if (c->half_close)
		ck_assert_int_eq(uv_shutdown(&c->sd, (uv_stream_t *)&c->pipe, cl_shut), 0);
}

static void cl_closed(uv_handle_t *h)
{
	struct client *c = h->data;
	c->closed = true;
}

/* Start a client sending len bytes of text (0: nothing) on connect. */
static void cl_start(struct client *c, const char *text, size_t len, bool half_close)
{
	memset(c, 0, sizeof *c);
	c->send = (char *)text;
	c->send_len = len;
	c->half_close = half_close;
	uv_pipe_init(&loop, &c->pipe, 0);
	c->pipe.data = c;
	c->conn.data = c;
	uv_pipe_connect(&c->conn, &c->pipe, sock_path, cl_connected);
}

static void cl_close(struct client *c)
{
	uv_close((uv_handle_t *)&c->pipe, cl_closed);
	while (!c->closed)
		uv_run(&loop, UV_RUN_ONCE);
}

static struct client *waiting;
static bool waiting_eof(void)
{
	return waiting->eof;
}
static bool waiting_connected(void)
{
	return waiting->connected;
}

/* One exchange: send text (as given, no newline added), wait for EOF, return the text
 * received (static buffer of the client; valid until the next call). */
static struct client one;
static const char *exchange_n(const char *text, size_t len, bool half_close)
{
	cl_start(&one, text, len, half_close);
	waiting = &one;
	ck_assert_msg(uvtest_run_until(&loop, waiting_eof, 8000), "no answer (and no close)");
	ck_assert_int_eq(one.status, 0);
	cl_close(&one);
	return one.in;
}

static const char *exchange(const char *text)
{
	return exchange_n(text, strlen(text), false);
}

/* Parse an answer: exactly one line, a JSON object. */
static struct cj *parse_answer(const char *a)
{
	size_t n = strlen(a);
	ck_assert_msg(n > 0 && a[n - 1] == '\n', "answer not one line: '%s'", a);
	ck_assert_msg(memchr(a, '\n', n - 1) == NULL, "answer has more than one line: '%s'", a);
	char err[96];
	struct cj *v = cj_parse(a, n - 1, err, sizeof err);
	ck_assert_msg(v != NULL, "answer is not JSON (%s): '%s'", err, a);
	ck_assert_int_eq(v->type, CJ_OBJ);
	return v;
}

/* The answer is {"ok":false,"error":"...needle..."}. */
static void expect_error(const char *answer, const char *needle)
{
	struct cj *v = parse_answer(answer);
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 0);
	const char *e = cj_str(cj_get(v, "error"));
	ck_assert_msg(e && strstr(e, needle), "error '%s' lacks '%s'", e ? e : "(none)", needle);
	cj_free(v);
}

static int64_t num(const struct cj *o, const char *key)
{
	int64_t v;
	ck_assert_msg(cj_int(cj_get(o, key), &v) == 0, "key '%s' is not an integer", key);
	return v;
}

static const char *str(const struct cj *o, const char *key)
{
	const char *s = cj_str(cj_get(o, key));
	ck_assert_msg(s != NULL, "key '%s' is not a string", key);
	return s;
}

/* ------------------------------------------------------------ tests: protocol */

START_TEST(status_keys_and_values)
{
	/* the bridge reports CTS and DSR: the tty's modem lines show them */
	uint8_t b[16];
	int n = rfc2217_build_u8(b, sizeof b, RFC2217_NOTIFY_MODEMSTATE + RFC2217_SERVER_OFFSET,
	                         RFC2217_MODEM_CTS | RFC2217_MODEM_DSR);
	ck_assert_int_gt(n, 0);
	srv_write(b, (size_t)n);
	uvtest_run_for(&loop, 50);

	struct cj *v = parse_answer(exchange("status\n"));
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
	const struct cj *list = cj_get(v, "devices");
	ck_assert_int_eq(list->type, CJ_ARR);
	ck_assert_uint_eq(cj_len(list), 2);

	static const char *const keys[] = {
	    "name",       "host",       "http_port", "port",       "protocol",  "state",
	    "peer",       "rtt_us",     "up_ms",     "baud",       "data_bits", "parity",
	    "stop_bits",  "flow",       "dtr",       "rts",        "cts",       "dsr",
	    "cd",         "ri",         "opens",     "exclusive",  "tx_bytes",  "rx_bytes",
	    "tx_dropped", "rx_dropped", "connects",  "reconnects", "errors",    "last_error",
	    "icount"};
	static const char *const ickeys[] = {"cts",    "dsr", "rng",        "dcd",
	                                     "rx",     "tx",  "frame",      "overrun",
	                                     "parity", "brk", "buf_overrun"};
	for (size_t d = 0; d < 2; d++) {
		const struct cj *dev = cj_at(list, d);
		ck_assert_uint_eq(cj_len(dev), sizeof keys / sizeof keys[0]);
		for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
			ck_assert_msg(cj_get(dev, keys[i]) != NULL, "device %zu lacks '%s'", d,
			              keys[i]);
		const struct cj *ic = cj_get(dev, "icount");
		ck_assert_uint_eq(cj_len(ic), sizeof ickeys / sizeof ickeys[0]);
		for (size_t i = 0; i < sizeof ickeys / sizeof ickeys[0]; i++)
			ck_assert_int_ge(num(ic, ickeys[i]), 0);
	}

	const struct cj *d0 = cj_at(list, 0);
	char peer[32];
	snprintf(peer, sizeof peer, "127.0.0.1:%u", srv.port);
	ck_assert_str_eq(str(d0, "name"), "ttySTM0");
	ck_assert_str_eq(str(d0, "host"), "127.0.0.1");
	ck_assert_int_eq(num(d0, "port"), srv.port);
	ck_assert_int_eq(num(d0, "http_port"), 8080);
	ck_assert_str_eq(str(d0, "protocol"), "rfc2217");
	ck_assert_str_eq(str(d0, "state"), "up");
	ck_assert_str_eq(str(d0, "peer"), peer);
	ck_assert_int_ge(num(d0, "rtt_us"), -1);
	ck_assert_int_ge(num(d0, "up_ms"), 0);
	ck_assert_int_eq(num(d0, "baud"), 9600); /* tty_config.initial_baud */
	ck_assert_int_eq(num(d0, "data_bits"), 8);
	ck_assert_str_eq(str(d0, "parity"), "N");
	ck_assert_int_eq(num(d0, "stop_bits"), 1);
	ck_assert_str_eq(str(d0, "flow"), "none");
	ck_assert_int_eq(num(d0, "dtr"), 0);
	ck_assert_int_eq(num(d0, "rts"), 0);
	ck_assert_int_eq(num(d0, "cts"), 1);
	ck_assert_int_eq(num(d0, "dsr"), 1);
	ck_assert_int_eq(num(d0, "cd"), 0);
	ck_assert_int_eq(num(d0, "ri"), 0);
	ck_assert_int_eq(num(d0, "opens"), 0);
	ck_assert_int_eq(cj_bool(cj_get(d0, "exclusive")), 0);
	ck_assert_int_eq(num(d0, "connects"), 1);
	ck_assert_int_eq(num(d0, "reconnects"), 0);
	ck_assert_int_eq(num(cj_get(d0, "icount"), "cts"), 1); /* one CTS transition */
	ck_assert_int_eq(num(cj_get(d0, "icount"), "dsr"), 1);

	const struct cj *d1 = cj_at(list, 1);
	ck_assert_str_eq(str(d1, "name"), "ttySTM1");
	ck_assert_str_eq(str(d1, "host"), "192.0.2.1");
	ck_assert_int_eq(num(d1, "port"), 2217);
	ck_assert_int_eq(num(d1, "http_port"), 0);
	ck_assert_str_eq(str(d1, "protocol"), "espstm-legacy");
	ck_assert_str_eq(str(d1, "state"), "down");
	ck_assert_str_eq(str(d1, "peer"), "");
	ck_assert_int_eq(num(d1, "rtt_us"), -1);
	ck_assert_int_eq(cj_get(d1, "baud")->type, CJ_NULL); /* no tty yet */
	ck_assert_int_eq(cj_get(d1, "parity")->type, CJ_NULL);
	ck_assert_int_eq(num(d1, "connects"), 0);
	ck_assert_str_eq(str(d1, "last_error"), "");
	cj_free(v);
}
END_TEST

/* 1 if the n bytes at s are well-formed UTF-8 (checked with the C library's UTF-8 locale,
 * independently of ctl's own check). */
static bool valid_utf8(const char *s, size_t n)
{
	locale_t loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	ck_assert_msg(loc != (locale_t)0, "no C.UTF-8 locale");
	locale_t prev = uselocale(loc);
	mbstate_t st;
	memset(&st, 0, sizeof st);
	bool ok = true;
	while (n > 0) {
		size_t r = mbrtowc(NULL, s, n, &st);
		if (r == (size_t)-1 || r == (size_t)-2) {
			ok = false;
			break;
		}
		if (r == 0)
			r = 1;
		s += r;
		n -= r;
	}
	uselocale(prev);
	freelocale(loc);
	return ok;
}

static struct link *lk2;
static bool lk2_failed(void)
{
	struct link_stats ls;
	link_get_stats(lk2, &ls);
	return ls.errors > 0;
}

/* The answer is UTF-8 (RFC 8259) even when what it quotes is not: a host with bytes of
 * another encoding, and a link error message cut inside a character (here: "connect to
 * %.40s" of a host whose 40th byte is the first half of an e-acute). */
START_TEST(status_json_is_utf8)
{
	char host[128] = "a";
	for (int i = 0; i < 30; i++)
		strcat(host, "\xc3\xa9"); /* e-acute, 2 bytes */
	strcat(host, "\xff.invalid");     /* and a byte that is no UTF-8 at all */
	struct link_config lc = {.host = host,
	                         .port = 2217,
	                         .reconnect_min_ms = 50,
	                         .reconnect_max_ms = 400,
	                         .connect_timeout_ms = 2000};
	ck_assert_int_eq(link_new(&loop, "ttySTM1", &lc, &lk2), 0);
	devs[1].host = host;
	devs[1].protocol = LINK_PROTO_RFC2217;
	devs[1].link = lk2;
	ck_assert_msg(uvtest_run_until(&loop, lk2_failed, 10000), "the link did not fail");

	const char *a = exchange("status ttySTM1\n");
	ck_assert_msg(valid_utf8(a, strlen(a)), "status answer is not UTF-8: '%s'", a);
	struct cj *v = parse_answer(a);
	const struct cj *d = cj_at(cj_get(v, "devices"), 0);
	char want[128];
	snprintf(want, sizeof want, "%.61s?.invalid", host); /* the valid part kept */
	ck_assert_str_eq(str(d, "host"), want);
	const char *le = str(d, "last_error");
	ck_assert_msg(strncmp(le, "connect to a\xc3\xa9", 14) == 0, "last_error '%s'", le);
	cj_free(v);

	/* an error message quoting the host */
	a = exchange("run ttySTM1\n");
	ck_assert_msg(valid_utf8(a, strlen(a)), "error answer is not UTF-8: '%s'", a);
	expect_error(a, "?.invalid:2217");

	devs[1].link = NULL;
	link_close(lk2);
	lk2 = NULL;
}
END_TEST

START_TEST(status_one_device)
{
	static const char *const reqs[] = {"status ttySTM1\n", "status /dev/ttySTM1\n",
	                                   "  status\tttySTM1  \r\n"};
	for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		struct cj *v = parse_answer(exchange(reqs[i]));
		ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
		const struct cj *list = cj_get(v, "devices");
		ck_assert_uint_eq(cj_len(list), 1);
		ck_assert_str_eq(str(cj_at(list, 0), "name"), "ttySTM1");
		cj_free(v);
	}
	expect_error(exchange("status ttySTM9\n"), "unknown device 'ttySTM9'");
	expect_error(exchange("status ttySTM0 ttySTM1\n"), "usage: status");
}
END_TEST

START_TEST(version_and_errors)
{
	struct cj *v = parse_answer(exchange("version\n"));
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
	ck_assert_str_eq(str(v, "version"), ESPSTM_VERSION);
	cj_free(v);

	expect_error(exchange("frobnicate ttySTM0\n"), "unknown command 'frobnicate'");
	expect_error(exchange("\n"), "empty request");
	expect_error(exchange("reset\n"), "usage: reset NAME");
	expect_error(exchange("boot a b\n"), "usage: boot NAME");
	expect_error(exchange("reset ttySTM9\n"), "unknown device 'ttySTM9'");
	expect_error(exchange("run ttySTM1\n"), "ttySTM1: link down");
	/* what the request echoes is kept printable (and the answer valid JSON) */
	expect_error(exchange("reset tty\"\x01\xff\n"), "unknown device 'tty\"?\?'");
	expect_error(exchange_n("stat\0us\n", 8, false), "NUL");
	/* EOF instead of a newline ends the request too */
	v = parse_answer(exchange_n("version", 7, true));
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
	cj_free(v);
	/* a client that connects and closes at once is no problem */
	ck_assert_str_eq(exchange_n("", 0, true), "");
	v = parse_answer(exchange("version\n"));
	cj_free(v);
}
END_TEST

START_TEST(too_long_line)
{
	char buf[400];
	/* 256 bytes is still a request (an unknown command), 257 is not */
	memset(buf, 'a', 256);
	memcpy(buf + 256, "\n", 2);
	expect_error(exchange(buf), "unknown command 'aaaa");
	memset(buf, 'a', 256);
	memcpy(buf + 256, "\r\n", 3);
	expect_error(exchange(buf), "unknown command 'aaaa");
	memset(buf, 'a', 257);
	memcpy(buf + 257, "\n", 2);
	expect_error(exchange(buf), "line too long");
	/* no newline at all: answered as soon as the buffer is full, the rest unread */
	memset(buf, 'b', sizeof buf - 1);
	buf[sizeof buf - 1] = '\0';
	expect_error(exchange(buf), "line too long");
}
END_TEST

static size_t ctl_count(size_t from)
{
	size_t n = 0;
	for (size_t i = from; i < srv.ncontrols; i++)
		n++;
	return n;
}

static size_t want_controls;
static bool controls_seen(void)
{
	return srv.ncontrols >= want_controls;
}

/* The action's SET-CONTROL sequence reaches the bridge (link.h: RESET = DTR on/off, BOOT =
 * RTS on first, RUN = RTS off first; afterwards the desired lines, both off, again). */
static void check_action(const char *req, const uint8_t *seq, size_t nseq)
{
	size_t from = srv.ncontrols;
	struct cj *v = parse_answer(exchange(req));
	ck_assert_msg(cj_bool(cj_get(v, "ok")) == 1, "%s answered %s", req, one.in);
	cj_free(v);
	want_controls = from + nseq;
	ck_assert_msg(uvtest_run_until(&loop, controls_seen, 3000), "%s: %zu SET-CONTROL seen", req,
	              ctl_count(from));
	for (size_t i = 0; i < nseq; i++)
		ck_assert_msg(srv.controls[from + i] == seq[i],
		              "%s: SET-CONTROL #%zu is %u, not %u", req, i, srv.controls[from + i],
		              seq[i]);
	uvtest_run_for(&loop, 100); /* the action ends (act_busy cleared) */
}

START_TEST(actions_reach_the_bridge)
{
	const uint8_t reset[] = {RFC2217_CONTROL_DTR_ON, RFC2217_CONTROL_DTR_OFF};
	const uint8_t boot[] = {RFC2217_CONTROL_RTS_ON, RFC2217_CONTROL_DTR_ON,
	                        RFC2217_CONTROL_DTR_OFF};
	const uint8_t run[] = {RFC2217_CONTROL_RTS_OFF, RFC2217_CONTROL_DTR_ON,
	                       RFC2217_CONTROL_DTR_OFF};
	check_action("reset ttySTM0\n", reset, sizeof reset);
	check_action("boot /dev/ttySTM0\n", boot, sizeof boot);
	check_action("run ttySTM0\n", run, sizeof run);
}
END_TEST

START_TEST(second_action_while_one_runs)
{
	/* both requests are on the socket before the loop runs: the second finds the first's
	 * 100 ms NRST pulse still going */
	static struct client a, b;
	cl_start(&a, "reset ttySTM0\n", 14, false);
	cl_start(&b, "reset ttySTM0\n", 14, false);
	waiting = &a;
	ck_assert(uvtest_run_until(&loop, waiting_eof, 8000));
	waiting = &b;
	ck_assert(uvtest_run_until(&loop, waiting_eof, 8000));
	int oks = 0, busy = 0;
	const char *ans[2] = {a.in, b.in};
	for (int i = 0; i < 2; i++) {
		struct cj *v = parse_answer(ans[i]);
		if (cj_bool(cj_get(v, "ok")) == 1)
			oks++;
		else if (strstr(str(v, "error"), "still running"))
			busy++;
		cj_free(v);
	}
	ck_assert_int_eq(oks, 1);
	ck_assert_int_eq(busy, 1);
	cl_close(&a);
	cl_close(&b);
}
END_TEST

START_TEST(idle_client_dropped)
{
	uint64_t t0 = uv_hrtime();
	static struct client c;
	cl_start(&c, "stat", 4, false); /* part of a request, then silence */
	waiting = &c;
	ck_assert(uvtest_run_until(&loop, waiting_eof, 10000));
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	ck_assert_str_eq(c.in, ""); /* dropped, not answered */
	ck_assert_msg(ms >= 4900, "dropped after %llu ms, before the 5 s", (unsigned long long)ms);
	cl_close(&c);
	/* still serving */
	struct cj *v = parse_answer(exchange("version\n"));
	cj_free(v);
}
END_TEST

/* A client sending one byte a second (never a whole line) is still dropped about 5 s
 * after it connected: the bytes it sends do not extend its time (16 such clients would
 * otherwise make every later request "busy" for minutes). */
static struct client trickler;
static unsigned trickled;
static void trickle_cb(uv_timer_t *t)
{
	(void)t;
	if (!trickler.connected || trickler.eof)
		return;
	uv_buf_t b = uv_buf_init((char *)"x", 1);
	if (uv_try_write((uv_stream_t *)&trickler.pipe, &b, 1) == 1)
		trickled++;
}

START_TEST(trickling_client_dropped)
{
	uv_timer_t tick;
	uint64_t t0 = uv_hrtime();
	trickled = 0;
	cl_start(&trickler, "s", 1, false);
	ck_assert_int_eq(uv_timer_init(&loop, &tick), 0);
	ck_assert_int_eq(uv_timer_start(&tick, trickle_cb, 1000, 1000), 0);
	waiting = &trickler;
	/* before the fix it was kept until 5 s of silence: never, within this wait */
	bool dropped = uvtest_run_until(&loop, waiting_eof, 12000);
	uint64_t ms = (uv_hrtime() - t0) / 1000000;
	uv_close((uv_handle_t *)&tick, NULL);
	ck_assert_msg(dropped, "a client sending a byte a second was kept %llu ms (%u bytes)",
	              (unsigned long long)ms, trickled);
	ck_assert_uint_ge(trickled, 3); /* it really was sending while it was dropped */
	ck_assert_str_eq(trickler.in, "");
	ck_assert_msg(ms >= 4900, "dropped after %llu ms, before the 5 s", (unsigned long long)ms);
	cl_close(&trickler);
	struct cj *v = parse_answer(exchange("version\n"));
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
	cj_free(v);
}
END_TEST

START_TEST(seventeenth_client_busy)
{
	static struct client idle[16], extra;
	for (int i = 0; i < 16; i++) {
		cl_start(&idle[i], NULL, 0, false);
		waiting = &idle[i];
		ck_assert(uvtest_run_until(&loop, waiting_connected, 3000));
		ck_assert_int_eq(idle[i].status, 0);
	}
	uvtest_run_for(&loop, 50);
	for (int i = 0; i < 16; i++)
		ck_assert(!idle[i].eof);
	/* the 17th gets "busy" even though it sends a valid request */
	cl_start(&extra, "version\n", 8, false);
	waiting = &extra;
	ck_assert(uvtest_run_until(&loop, waiting_eof, 3000));
	ck_assert_str_eq(extra.in, "{\"ok\":false,\"error\":\"busy\"}\n");
	cl_close(&extra);
	for (int i = 0; i < 16; i++)
		ck_assert(!idle[i].eof);
	/* one leaves: the next client is served */
	cl_close(&idle[0]);
	uvtest_run_for(&loop, 50);
	struct cj *v = parse_answer(exchange("version\n"));
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
	cj_free(v);
	for (int i = 1; i < 16; i++)
		cl_close(&idle[i]);
}
END_TEST

START_TEST(socket_file)
{
	struct stat st;
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0660);

	/* a second daemon on the same path is refused; the first keeps its socket */
	struct ctl *c2 = NULL;
	ck_assert_int_eq(ctl_new(&loop, sock_path, &ops, devs, &c2), -EADDRINUSE);
	ck_assert_ptr_null(c2);
	struct cj *v = parse_answer(exchange("version\n"));
	cj_free(v);

	/* closing removes the socket */
	ctl_close(ctl);
	ctl = NULL;
	uvtest_run_for(&loop, 20);
	ck_assert_int_eq(stat(sock_path, &st), -1);
	ck_assert_int_eq(errno, ENOENT);

	/* a stale socket (nobody listening) is replaced */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(sock_path), sizeof sa.sun_path);
	memcpy(sa.sun_path, sock_path, strlen(sock_path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	ck_assert_int_eq(stat(sock_path, &st), 0);
	ck_assert_int_eq(ctl_new(&loop, sock_path, &ops, devs, &ctl), 0);
	v = parse_answer(exchange("version\n"));
	cj_free(v);

	/* a file that is not a socket is left alone */
	char other[160];
	snprintf(other, sizeof other, "%s/plain", dir);
	FILE *f = fopen(other, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(ctl_new(&loop, other, &ops, devs, &c2), -EADDRINUSE);
	ck_assert_int_eq(stat(other, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	unlink(other);

	/* a missing parent directory is created (one level) */
	char sub[160];
	snprintf(sub, sizeof sub, "%s/run/x.sock", dir);
	ck_assert_int_eq(ctl_new(&loop, sub, &ops, devs, &c2), 0);
	ck_assert_int_eq(stat(sub, &st), 0);
	ctl_close(c2);
	uvtest_run_for(&loop, 20);
	snprintf(sub, sizeof sub, "%s/run", dir);
	ck_assert_int_eq(rmdir(sub), 0);

	/* a path longer than sun_path */
	char lng[200];
	memset(lng, 'x', sizeof lng - 1);
	lng[0] = '/';
	lng[sizeof lng - 1] = '\0';
	ck_assert_int_eq(ctl_new(&loop, lng, &ops, devs, &c2), -ENAMETOOLONG);
	ck_assert_int_eq(ctl_new(&loop, "", &ops, devs, &c2), -EINVAL);
}
END_TEST

/* ctl.c (ESPSTM_UNIT_TEST): the next this many client allocations fail. */
extern unsigned ctl_test_alloc_failures;

/* Out of memory for clients: each connection is still accepted (answered "busy" or just
 * closed), also while the handle that drops them is still closing from the previous one,
 * and the socket keeps serving afterwards (a connection never accepted would stop libuv
 * watching the listener for good). */
START_TEST(no_memory_for_clients)
{
	static struct client cs[4];
	signal(SIGPIPE, SIG_IGN); /* as espstmd: a request written to a closed connection */
	ctl_test_alloc_failures = 4;
	/* all four wait on the socket before the loop runs: one after another in one pass */
	for (int i = 0; i < 4; i++)
		cl_start(&cs[i], "version\n", 8, false);
	for (int i = 0; i < 4; i++) {
		waiting = &cs[i];
		ck_assert_msg(uvtest_run_until(&loop, waiting_eof, 3000),
		              "connection %d was never accepted", i);
		ck_assert_int_eq(cs[i].status, 0);
		ck_assert_msg(cs[i].in[0] == '\0' ||
		                  strcmp(cs[i].in, "{\"ok\":false,\"error\":\"busy\"}\n") == 0,
		              "connection %d answered '%s'", i, cs[i].in);
	}
	ck_assert_uint_eq(ctl_test_alloc_failures, 0);
	for (int i = 0; i < 4; i++)
		cl_close(&cs[i]);
	struct cj *v = parse_answer(exchange("version\n"));
	ck_assert_int_eq(cj_bool(cj_get(v, "ok")), 1);
	cj_free(v);
}
END_TEST

/* The socket is created 0660 (owner and group may connect) whatever the process umask,
 * without a chmod(2) by path after bind (which would follow a symlink put there), and the
 * umask is left as it was. */
START_TEST(socket_mode_any_umask)
{
	static const mode_t masks[] = {0, 022, 077, 0777};
	for (size_t i = 0; i < sizeof masks / sizeof masks[0]; i++) {
		char p[160];
		struct stat st;
		struct ctl *c2 = NULL;
		snprintf(p, sizeof p, "%s/m%zu.sock", dir, i);
		mode_t saved = umask(masks[i]);
		int rc = ctl_new(&loop, p, &ops, devs, &c2);
		mode_t after = umask(saved);
		ck_assert_int_eq(rc, 0);
		ck_assert_msg(after == masks[i], "umask %03o became %03o", (unsigned)masks[i],
		              (unsigned)after);
		ck_assert_int_eq(lstat(p, &st), 0);
		ck_assert(S_ISSOCK(st.st_mode));
		ck_assert_msg((st.st_mode & 07777) == 0660, "umask %03o: mode %04o",
		              (unsigned)masks[i], (unsigned)(st.st_mode & 07777));
		ctl_close(c2);
		uvtest_run_for(&loop, 20);
		ck_assert_int_eq(lstat(p, &st), -1);
	}
}
END_TEST

/* ------------------------------------------------------------ tests: the espstm tool */

struct cli_run {
	int argc;
	char *argv[8];
	int rc;
	char *out, *err;
	size_t outn, errn;
	atomic_bool done;
	uv_async_t wake;
};

static void *cli_thread(void *arg)
{
	struct cli_run *r = arg;
	FILE *out = open_memstream(&r->out, &r->outn);
	FILE *err = open_memstream(&r->err, &r->errn);
	r->rc = cli_main(r->argc, r->argv, out, err, NULL);
	fclose(out);
	fclose(err);
	atomic_store(&r->done, true);
	uv_async_send(&r->wake);
	return NULL;
}

static struct cli_run *cur_run;
static bool run_done(void)
{
	return atomic_load(&cur_run->done);
}

static void wake_cb(uv_async_t *a)
{
	(void)a;
}

/* Run `espstm ARGS...` (NULL-terminated) with --socket sock_path in a thread while this
 * thread runs the loop. */
static void cli(struct cli_run *r, ...)
{
	va_list ap;
	memset(r, 0, sizeof *r);
	r->argv[r->argc++] = (char *)"espstm";
	r->argv[r->argc++] = (char *)"--socket";
	r->argv[r->argc++] = sock_path;
	va_start(ap, r);
	for (char *a; (a = va_arg(ap, char *)) != NULL;)
		r->argv[r->argc++] = a;
	va_end(ap);
	ck_assert_int_eq(uv_async_init(&loop, &r->wake, wake_cb), 0);
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, cli_thread, r), 0);
	cur_run = r;
	ck_assert(uvtest_run_until(&loop, run_done, 15000));
	pthread_join(th, NULL);
	uv_close((uv_handle_t *)&r->wake, NULL);
	uv_run(&loop, UV_RUN_NOWAIT);
}

static void cli_free(struct cli_run *r)
{
	free(r->out);
	free(r->err);
}

START_TEST(tool_status_human)
{
	struct cli_run r;
	char want[64];
	cli(&r, "status", NULL);
	ck_assert_msg(r.rc == 0, "rc %d, stderr: %s", r.rc, r.err);
	ck_assert_str_eq(r.err, "");
	snprintf(want, sizeof want, "  peer        127.0.0.1:%u (rfc2217)\n", srv.port);
	ck_assert_msg(strstr(r.out, want), "no '%s' in:\n%s", want, r.out);
	static const char *const lines[] = {
	    "ttySTM0\n  state       up for ",
	    "  line        9600 8N1\n",
	    "  flow        none\n",
	    "  modem       DTR off  RTS off  CTS off  DSR off  CD off  RI off\n",
	    "  connects    1, reconnects 0, errors 0\n",
	    "\n\nttySTM1\n  state       down\n",
	    "  peer        - (configured 192.0.2.1:2217, espstm-legacy)\n",
	    "  line        ? ?\?\?\n"};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
		ck_assert_msg(strstr(r.out, lines[i]), "no '%s' in:\n%s", lines[i], r.out);
	cli_free(&r);
}
END_TEST

START_TEST(tool_json_actions_errors)
{
	struct cli_run r;
	cli(&r, "status", "--json", "/dev/ttySTM0", NULL);
	ck_assert_int_eq(r.rc, 0);
	struct cj *v = parse_answer(r.out);
	ck_assert_str_eq(str(cj_at(cj_get(v, "devices"), 0), "name"), "ttySTM0");
	cj_free(v);
	cli_free(&r);

	size_t from = srv.ncontrols;
	cli(&r, "reset", "ttySTM0", NULL);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_eq(r.out, "ttySTM0: reset\n");
	cli_free(&r);
	want_controls = from + 2;
	ck_assert(uvtest_run_until(&loop, controls_seen, 3000));
	ck_assert_uint_eq(srv.controls[from], RFC2217_CONTROL_DTR_ON);
	uvtest_run_for(&loop, 150);

	cli(&r, "boot", "ttySTM9", NULL);
	ck_assert_int_eq(r.rc, 1);
	ck_assert_str_eq(r.out, "");
	ck_assert_str_eq(r.err, "espstm: unknown device 'ttySTM9'\n");
	cli_free(&r);

	cli(&r, "run", "ttySTM1", NULL);
	ck_assert_int_eq(r.rc, 1);
	ck_assert_msg(strstr(r.err, "ttySTM1: link down"), "%s", r.err);
	cli_free(&r);

	cli(&r, "version", NULL);
	ck_assert_int_eq(r.rc, 0);
	ck_assert_str_eq(r.out, "espstm " ESPSTM_VERSION "\nespstmd " ESPSTM_VERSION "\n");
	cli_free(&r);
}
END_TEST

static Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("protocol");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, status_keys_and_values);
	tcase_add_test(tc, status_one_device);
	tcase_add_test(tc, status_json_is_utf8);
	tcase_add_test(tc, version_and_errors);
	tcase_add_test(tc, too_long_line);
	tcase_add_test(tc, actions_reach_the_bridge);
	tcase_add_test(tc, second_action_while_one_runs);
	tcase_add_test(tc, idle_client_dropped);
	tcase_add_test(tc, trickling_client_dropped);
	tcase_add_test(tc, seventeenth_client_busy);
	tcase_add_test(tc, socket_file);
	tcase_add_test(tc, socket_mode_any_umask);
	tcase_add_test(tc, no_memory_for_clients);
	suite_add_tcase(s, tc);
	TCase *tt = tcase_create("tool");
	tcase_add_checked_fixture(tt, setup, teardown);
	tcase_set_timeout(tt, 30);
	tcase_add_test(tt, tool_status_human);
	tcase_add_test(tt, tool_json_actions_errors);
	suite_add_tcase(s, tt);
	return s;
}
UNIT_SUITE(ctl_suite)
