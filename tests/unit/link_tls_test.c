/* SPDX-License-Identifier: MIT */
/*
 * The link with a unit key (link_tls.c): a fake bridge in this file runs the tls_session
 * server role (firmware/crypto) over a real socket on 127.0.0.1 port 0 in the link's
 * loop and answers RFC 2217 inside it (the core codec), as link_test.c's plaintext fake
 * does. Covered: handshake, RFC 2217 negotiation and data both ways through TLS; a wrong
 * key (logged with the device and address, in last_error, retried); a flipped ciphertext
 * byte (the link drops and reconnects); a missing key file; and the configuration checks
 * of key = PATH (mode 0644, parse errors, legacy protocol).
 */
#include "conf.h"
#include "link.h"
#include "log.h"
#include "rfc2217.h"
#include "tls_session.h"
#include "unit.h"
#include "unit_key.h"
#include "uvtest.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

/* ------------------------------------------------------------ fake TLS bridge */

struct tsrv;

struct tconn {
	uv_tcp_t tcp;
	struct tsrv *s;
	bool open;
	bool tls_up;
	struct tls_session t;
};

struct tsrv {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uint16_t port;
	struct tls_psk psk;
	struct tconn *cur;
	unsigned accepted;
	unsigned handshakes;  /* connections whose TLS handshake completed (server side) */
	unsigned failed;      /* connections whose session failed (server side) */
	unsigned closed;      /* connections the client ended with close_notify */
	bool flip_next;       /* flip one bit in the next data record sent */
	bool comport;         /* the client sent WILL COM-PORT-OPTION */
	bool echo;            /* send received data back */
	bool plain;           /* answer like a bridge whose plaintext port is off, no TLS */
	unsigned app_records; /* application_data records received, current connection */
	size_t rec_left;      /* record parser: body bytes still to skip */
	uint8_t hdr[5];
	size_t hdr_n;
	struct tn_decoder dec;
	uint8_t *data; /* data decoded from the client, current connection */
	size_t ndata, capdata;
	char rbuf[65536];
	uint8_t pbuf[16384];
};

static int srv_entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	return getrandom(buf, n, 0) == (ssize_t)n ? 0 : -EIO;
}

static void grow_append(uint8_t **buf, size_t *n, size_t *cap, const uint8_t *p, size_t k)
{
	if (*n + k > *cap) {
		size_t nc = *cap ? *cap * 2 : 4096;
		while (nc < *n + k)
			nc *= 2;
		*buf = realloc(*buf, nc);
		ck_assert_ptr_nonnull(*buf);
		*cap = nc;
	}
	memcpy(*buf + *n, p, k);
	*n += k;
}

static void srv_write_done(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* Send the session's ciphertext (flipping one bit of a data record if asked). */
static void srv_flush(struct tconn *c)
{
	const uint8_t *p;
	size_t n;

	while (c->open && (n = tls_session_out(&c->t, &p)) > 0) {
		uv_write_t *req = malloc(sizeof *req + n);
		ck_assert_ptr_nonnull(req);
		uint8_t *b = (uint8_t *)(req + 1);
		memcpy(b, p, n);
		tls_session_out_done(&c->t, n);
		if (c->s->flip_next && c->tls_up && n > 5 && b[0] == 23 /* application_data */) {
			b[5] ^= 0x01; /* the first byte after the record header */
			c->s->flip_next = false;
		}
		uv_buf_t ub = uv_buf_init((char *)b, (unsigned)n);
		ck_assert_int_eq(uv_write(req, (uv_stream_t *)&c->tcp, &ub, 1, srv_write_done), 0);
	}
}

/* Plaintext to the client through the session (all of it). */
static void srv_send(struct tsrv *s, const uint8_t *p, size_t n)
{
	struct tconn *c = s->cur;
	size_t off = 0;

	if (!c || !c->open || !c->tls_up)
		return;
	while (off < n) {
		int k = tls_session_write(&c->t, p + off, n - off);
		ck_assert_int_ge(k, 0);
		off += (size_t)k;
		srv_flush(c);
		ck_assert_int_gt(k, 0);
	}
}

static void srv_option(struct tsrv *s, uint8_t verb, uint8_t opt)
{
	uint8_t b[3];
	ck_assert_int_eq(tn_build_option(b, 3, verb, opt), 3);
	srv_send(s, b, 3);
}

static void srv_ev(void *ctx, const struct tn_event *ev)
{
	struct tsrv *s = ctx;
	uint8_t b[80];
	struct rfc2217_msg m;
	int n;

	switch (ev->type) {
	case TN_EV_DATA:
		grow_append(&s->data, &s->ndata, &s->capdata, ev->data, ev->len);
		if (s->echo) {
			uint8_t e[2 * 256];
			size_t used = 0, k;
			ck_assert_uint_le(ev->len, 256);
			k = tn_escape(ev->data, ev->len, e, sizeof e, &used);
			srv_send(s, e, k);
		}
		break;
	case TN_EV_WILL:
		if (ev->opt == TELOPT_COMPORT)
			s->comport = true;
		srv_option(s, TN_DO, ev->opt);
		break;
	case TN_EV_DO:
		if (ev->opt != TELOPT_COMPORT)
			srv_option(s, TN_WILL, ev->opt);
		break;
	case TN_EV_SB:
		if (ev->opt != TELOPT_COMPORT || rfc2217_parse(ev->data, ev->len, &m) < 0)
			break;
		if (m.code == RFC2217_SIGNATURE)
			n = rfc2217_build(b, sizeof b, RFC2217_SIGNATURE + RFC2217_SERVER_OFFSET,
			                  (const uint8_t *)"fake tls", 8);
		else if (m.code == RFC2217_SET_BAUDRATE)
			n = rfc2217_build_u32(b, sizeof b, m.code + RFC2217_SERVER_OFFSET, m.value);
		else
			n = rfc2217_build_u8(b, sizeof b, m.code + RFC2217_SERVER_OFFSET,
			                     (uint8_t)m.value);
		if (n > 0)
			srv_send(s, b, (size_t)n);
		break;
	default:
		break;
	}
}

static void srv_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	struct tconn *c = h->data;
	(void)sz;
	*b = uv_buf_init(c->s->rbuf, sizeof c->s->rbuf);
}

static void tconn_closed(uv_handle_t *h)
{
	struct tconn *c = h->data;
	tls_session_free(&c->t);
	free(c);
}

static void tconn_close(struct tconn *c)
{
	if (!c->open)
		return;
	c->open = false;
	if (c->s->cur == c)
		c->s->cur = NULL;
	uv_close((uv_handle_t *)&c->tcp, tconn_closed);
}

/* Count the client's application_data records (RFC 5246 section 6.2.1 headers). */
static void count_records(struct tsrv *s, const uint8_t *p, size_t n)
{
	while (n > 0) {
		if (s->rec_left > 0) {
			size_t k = n < s->rec_left ? n : s->rec_left;
			s->rec_left -= k;
			p += k;
			n -= k;
			continue;
		}
		s->hdr[s->hdr_n++] = *p++;
		n--;
		if (s->hdr_n == 5) {
			s->app_records += s->hdr[0] == 23;
			s->rec_left = (size_t)s->hdr[3] << 8 | s->hdr[4];
			s->hdr_n = 0;
		}
	}
}

static void srv_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	struct tconn *c = st->data;
	struct tsrv *s = c->s;
	size_t off = 0;

	if (n < 0) {
		tconn_close(c);
		return;
	}
	if (s->cur == c)
		count_records(s, (const uint8_t *)buf->base, (size_t)n);
	while (c->open && off < (size_t)n) {
		size_t k =
		    tls_session_feed(&c->t, (const uint8_t *)buf->base + off, (size_t)n - off);
		int r;
		off += k;
		if (!c->tls_up && tls_session_state(&c->t) == TLS_OPEN) {
			c->tls_up = true;
			s->handshakes++;
		}
		while ((r = tls_session_read(&c->t, s->pbuf, sizeof s->pbuf)) > 0)
			if (s->cur == c)
				tn_decode(&s->dec, s->pbuf, (size_t)r, srv_ev, s);
		if (!c->tls_up && tls_session_state(&c->t) == TLS_OPEN) {
			c->tls_up = true;
			s->handshakes++;
		}
		srv_flush(c);
		if (tls_session_state(&c->t) == TLS_CLOSED) {
			s->closed++;
			tconn_close(c);
			return;
		}
		if (r < 0 || tls_session_state(&c->t) == TLS_FAILED) {
			s->failed++;
			tconn_close(c);
			return;
		}
		ck_assert_msg(k > 0 || r > 0, "fake bridge: the session takes no input");
	}
}

static void srv_on_conn(uv_stream_t *ls, int status)
{
	struct tsrv *s = ls->data;
	struct tconn *c = calloc(1, sizeof *c);

	ck_assert_int_eq(status, 0);
	ck_assert_ptr_nonnull(c);
	c->s = s;
	c->tcp.data = c;
	uv_tcp_init(s->loop, &c->tcp);
	ck_assert_int_eq(uv_accept(ls, (uv_stream_t *)&c->tcp), 0);
	ck_assert_int_eq(tls_session_init(&c->t, TLS_SERVER, &s->psk, srv_entropy, NULL), 0);
	c->open = true;
	s->accepted++;
	if (s->plain) {
		static const char line[] =
		    "espstm-bridge: plaintext RFC 2217 is off on this unit\r\n";
		uv_write_t *req = malloc(sizeof *req);
		uv_buf_t b = uv_buf_init((char *)line, sizeof line - 1);
		ck_assert_ptr_nonnull(req);
		ck_assert_int_eq(uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, srv_write_done), 0);
	}
	if (s->cur)
		tconn_close(s->cur);
	s->cur = c;
	s->ndata = 0;
	s->comport = false;
	s->app_records = 0;
	s->rec_left = s->hdr_n = 0;
	tn_decoder_init(&s->dec);
	uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

static void srv_start(struct tsrv *s, uv_loop_t *loop, const struct tls_psk *psk)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(s, 0, sizeof *s);
	s->loop = loop;
	s->psk = *psk;
	tn_decoder_init(&s->dec);
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	uv_ip4_addr("127.0.0.1", 0, &a);
	ck_assert_int_eq(uv_tcp_bind(&s->listener, (struct sockaddr *)&a, 0), 0);
	ck_assert_int_eq(uv_listen((uv_stream_t *)&s->listener, 16, srv_on_conn), 0);
	ck_assert_int_eq(uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len), 0);
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void srv_stop(struct tsrv *s)
{
	if (s->cur)
		tconn_close(s->cur);
	uv_close((uv_handle_t *)&s->listener, NULL);
	free(s->data);
}

/* ------------------------------------------------------------- fake tty */

struct tty {
	struct link *l;
	size_t space; /* what rx_space answers */
	uint8_t *data;
	size_t ndata, capdata;
	unsigned up, writable, drained, nmodem;
	uint8_t modem;
};

static void t_data(void *ctx, const uint8_t *p, size_t n)
{
	struct tty *t = ctx;
	grow_append(&t->data, &t->ndata, &t->capdata, p, n);
}

static size_t t_space(void *ctx)
{
	return ((struct tty *)ctx)->space;
}

static void t_state(void *ctx, enum link_state st)
{
	if (st == LINK_UP)
		((struct tty *)ctx)->up++;
}

static void t_writable(void *ctx)
{
	((struct tty *)ctx)->writable++;
}

static void t_drained(void *ctx)
{
	((struct tty *)ctx)->drained++;
}

static void t_modem(void *ctx, uint8_t v)
{
	struct tty *t = ctx;
	t->modem = v;
	t->nmodem++;
}

static const struct link_callbacks tcb = {
    .on_modemstate = t_modem,
    .on_data = t_data,
    .rx_space = t_space,
    .on_writable = t_writable,
    .on_state = t_state,
    .on_drained = t_drained,
};

/* ------------------------------------------------------------ harness */

static uv_loop_t loop;
static struct tsrv srv;
static struct tty tty;
static char dir[64];
static char keypath[128];
static struct tls_psk unit_psk, other_psk;

/* Write k as a key file at path with mode. */
static void write_key(const char *path, const struct tls_psk *k, mode_t mode)
{
	char text[512];
	int n =
	    unit_key_format(k, "espstm unit key for test (secret; mode 0600)", text, sizeof text);
	int fd;

	ck_assert_int_gt(n, 0);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, (size_t)n), n);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void setup(void)
{
	log_set_level(getenv("LINK_TEST_DEBUG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_ERROR);
	ck_assert_int_eq(unit_key_generate(&unit_psk, srv_entropy, NULL), 0);
	ck_assert_int_eq(unit_key_generate(&other_psk, srv_entropy, NULL), 0);
	snprintf(dir, sizeof dir, "/tmp/link_tls_test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(keypath, sizeof keypath, "%s/unit.key", dir);
	write_key(keypath, &unit_psk, 0600);
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	srv_start(&srv, &loop, &unit_psk);
	memset(&tty, 0, sizeof tty);
	tty.space = 1 << 20;
}

static void teardown(void)
{
	char path[192];

	if (tty.l)
		link_close(tty.l);
	tty.l = NULL;
	srv_stop(&srv);
	uv_run(&loop, UV_RUN_DEFAULT);
	ck_assert_int_eq(uvtest_close_loop(&loop), 0);
	free(tty.data);
	unlink(keypath);
	snprintf(path, sizeof path, "%s/espstm.conf", dir);
	unlink(path);
	rmdir(dir);
}

static void open_link(const char *key)
{
	struct link_config c = {
	    .host = "127.0.0.1",
	    .port = srv.port,
	    .reconnect_min_ms = 50,
	    .reconnect_max_ms = 200,
	    .connect_timeout_ms = 2000,
	    .key_path = key,
	};
	ck_assert_int_eq(link_new(&loop, "ttyTLS0", &c, &tty.l), 0);
	link_set_callbacks(tty.l, &tcb, &tty);
}

static bool is_up(void)
{
	return tty.l && link_get_state(tty.l) == LINK_UP;
}

static bool not_up(void)
{
	return tty.l && link_get_state(tty.l) != LINK_UP;
}

static bool two_accepted(void)
{
	return srv.accepted >= 2;
}

static bool up_again(void)
{
	return srv.accepted >= 2 && is_up();
}

static size_t want;

static bool srv_has_data(void)
{
	return srv.ndata >= want;
}

static bool tty_has_data(void)
{
	return tty.ndata >= want;
}

static bool drained(void)
{
	return tty.drained > 0 && link_tx_pending(tty.l) == 0;
}

/* stderr captured into a temporary file (log.c writes there) */
static int cap_saved = -1;
static FILE *cap_file;

static void capture_start(void)
{
	fflush(stderr);
	cap_file = tmpfile();
	ck_assert_ptr_nonnull(cap_file);
	cap_saved = dup(2);
	ck_assert_int_ge(cap_saved, 0);
	ck_assert_int_ge(dup2(fileno(cap_file), 2), 0);
}

static char *capture_end(void)
{
	char *text;
	long n;

	fflush(stderr);
	dup2(cap_saved, 2);
	close(cap_saved);
	n = ftell(cap_file);
	ck_assert_int_ge(n, 0);
	text = calloc(1, (size_t)n + 1);
	ck_assert_ptr_nonnull(text);
	rewind(cap_file);
	ck_assert_uint_eq(fread(text, 1, (size_t)n, cap_file), (size_t)n);
	fclose(cap_file);
	return text;
}

/* ------------------------------------------------------------ tests */

/* Handshake, then RFC 2217 negotiation inside TLS, then data both ways (0xFF escaped
 * inside the plaintext), large enough to take several records and the write queue's
 * backpressure; on_drained once everything was written. */
START_TEST(tls_up_and_data)
{
	static uint8_t big[200000];
	struct link_stats st;
	size_t sent = 0;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 7 + 3);
	big[5] = 0xFF;
	open_link(keypath);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
	ck_assert_uint_eq(srv.handshakes, 1);
	ck_assert(srv.comport); /* RFC 2217 ran inside the TLS session */
	ck_assert_uint_eq(tty.up, 1);

	/* link -> bridge: all of big through the bounded queue */
	want = sizeof big;
	while (sent < sizeof big) {
		size_t k = link_write(tty.l, big + sent, sizeof big - sent);
		sent += k;
		if (sent < sizeof big)
			ck_assert_uint_le(link_tx_pending(tty.l), LINK_TXQ_MAX);
		uv_run(&loop, UV_RUN_ONCE);
	}
	ck_assert(uvtest_run_until(&loop, srv_has_data, 10000));
	ck_assert_uint_eq(srv.ndata, sizeof big);
	ck_assert_mem_eq(srv.data, big, sizeof big);
	ck_assert(uvtest_run_until(&loop, drained, 2000));

	/* bridge -> link: escaped data through the server's session */
	{
		static uint8_t esc[2 * sizeof big];
		size_t consumed = 0;
		size_t n = tn_escape(big, sizeof big, esc, sizeof esc, &consumed);
		ck_assert_uint_eq(consumed, sizeof big);
		srv_send(&srv, esc, n);
	}
	ck_assert(uvtest_run_until(&loop, tty_has_data, 10000));
	ck_assert_uint_eq(tty.ndata, sizeof big);
	ck_assert_mem_eq(tty.data, big, sizeof big);

	link_get_stats(tty.l, &st);
	ck_assert_uint_eq(st.tx_bytes, sizeof big);
	ck_assert_uint_eq(st.rx_bytes, sizeof big);
	ck_assert_uint_eq(st.connects, 1);
	ck_assert_str_eq(st.last_error, "");

	/* closing the link ends the session with close_notify */
	link_close(tty.l);
	tty.l = NULL;
	uvtest_run_for(&loop, 200);
	ck_assert_uint_eq(srv.closed, 1);
	ck_assert_uint_eq(srv.failed, 0);
}
END_TEST

/* A key the bridge does not know: the handshake fails, the log names the device and the
 * bridge's address, last_error says it, and the link tries again. */
START_TEST(tls_wrong_key)
{
	struct link_stats st;
	char expect[160];
	char *text;

	write_key(keypath, &other_psk, 0600);
	capture_start();
	log_set_level(LOG_LEVEL_WARN);
	open_link(keypath);
	bool again = uvtest_run_until(&loop, two_accepted, 5000);
	uvtest_run_for(&loop, 100);
	text = capture_end();
	log_set_level(LOG_LEVEL_ERROR);
	ck_assert_msg(again, "no second attempt");
	ck_assert(!is_up());
	ck_assert_uint_eq(srv.handshakes, 0);
	snprintf(expect, sizeof expect,
	         "ttyTLS0: 127.0.0.1:%u: TLS handshake failed: wrong key or unknown identity",
	         (unsigned)srv.port);
	ck_assert_msg(strstr(text, expect), "log lacks '%s': %s", expect, text);
	link_get_stats(tty.l, &st);
	ck_assert_msg(strstr(st.last_error, "TLS handshake failed: wrong key"), "last_error '%s'",
	              st.last_error);
	ck_assert_uint_ge(st.errors, 2);
	free(text);

	/* the right key written later is read by the next attempt */
	write_key(keypath, &unit_psk, 0600);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
}
END_TEST

/* A peer that does not speak TLS (a plaintext-only port answering with a line): the
 * handshake fails with that reason, and the link retries. */
START_TEST(tls_peer_without_tls)
{
	struct link_stats st;

	srv.plain = true;
	open_link(keypath);
	ck_assert(uvtest_run_until(&loop, two_accepted, 5000));
	ck_assert(!is_up());
	link_get_stats(tty.l, &st);
	ck_assert_msg(strstr(st.last_error, "TLS handshake failed: ") &&
	                  !strstr(st.last_error, "failed: TLS handshake failed"),
	              "last_error '%s'", st.last_error);
	ck_assert_msg(strstr(st.last_error, "does not speak TLS"), "last_error '%s'",
	              st.last_error);
}
END_TEST

/* One flipped bit in a record from the bridge: record authentication fails, the link
 * drops the connection and reconnects. */
START_TEST(tls_altered_stream)
{
	struct link_stats st;
	const uint8_t hello[] = "hello";

	open_link(keypath);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
	srv.flip_next = true;
	srv_send(&srv, hello, 5);
	ck_assert(uvtest_run_until(&loop, not_up, 3000));
	ck_assert_uint_eq(tty.ndata, 0); /* nothing of the altered record was delivered */
	link_get_stats(tty.l, &st);
	ck_assert_msg(strstr(st.last_error, "the stream was altered"), "last_error '%s'",
	              st.last_error);
	ck_assert(uvtest_run_until(&loop, up_again, 5000));
	ck_assert_uint_eq(srv.failed, 1); /* the link's alert told the bridge why */
	ck_assert_uint_eq(srv.handshakes, 2);
	want = 5;
	srv_send(&srv, hello, 5);
	ck_assert(uvtest_run_until(&loop, tty_has_data, 3000));
	ck_assert_mem_eq(tty.data, hello, 5);
}
END_TEST

/* One flush is one tls_session_write: a write of a small frame leaves as one record, and
 * writes made while one is in flight are gathered into the next one. Then the latency of
 * small round trips (an AN3155 frame and its answer) through both sessions. */
START_TEST(tls_one_record_per_flush)
{
	uint8_t frame[64];
	unsigned before;
	uint64_t t0, t1;
	const unsigned rounds = 300;

	for (size_t i = 0; i < sizeof frame; i++)
		frame[i] = (uint8_t)i;
	open_link(keypath);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
	uvtest_run_for(&loop, 100);
	before = srv.app_records;
	want = srv.ndata + sizeof frame;
	ck_assert_uint_eq(link_write(tty.l, frame, sizeof frame), sizeof frame);
	ck_assert(uvtest_run_until(&loop, srv_has_data, 2000));
	uvtest_run_for(&loop, 50);
	ck_assert_uint_eq(srv.app_records, before + 1);

	/* three writes in one loop turn: the first leaves at once, the other two together */
	before = srv.app_records;
	want = srv.ndata + 3 * 8;
	for (int i = 0; i < 3; i++)
		ck_assert_uint_eq(link_write(tty.l, frame, 8), 8);
	ck_assert(uvtest_run_until(&loop, srv_has_data, 2000));
	uvtest_run_for(&loop, 50);
	ck_assert_uint_eq(srv.app_records, before + 2);

	/* round trips of 16 bytes, echoed by the fake bridge */
	srv.echo = true;
	tty.ndata = 0;
	t0 = uv_hrtime();
	for (unsigned i = 0; i < rounds; i++) {
		want = (i + 1) * 16;
		ck_assert_uint_eq(link_write(tty.l, frame, 16), 16);
		ck_assert(uvtest_run_until(&loop, tty_has_data, 2000));
	}
	t1 = uv_hrtime();
	ck_assert_uint_eq(tty.ndata, rounds * 16);
	ck_assert_mem_eq(tty.data + (rounds - 1) * 16, frame, 16);
	printf("link_tls: %u round trips of 16 bytes through TLS on loopback: %.1f us each\n",
	       rounds, (double)(t1 - t0) / 1000.0 / rounds);
	/* generous bound (ASan build, shared CPUs): no timer or coalescing delay in the path */
	ck_assert_uint_lt((t1 - t0) / rounds, 5000000u);
}
END_TEST

static bool resumed_all(void)
{
	link_rx_resume(tty.l); /* what the tty does whenever it frees room */
	return tty.ndata >= want;
}

/* A full tty: the link holds what it decrypted up to its bound and stops reading (the
 * rest stays in the socket and the session); every byte arrives intact once the tty
 * takes data again, in pieces of at most what rx_space answered. */
START_TEST(tls_rx_backpressure)
{
	static uint8_t big[300000], esc[2 * sizeof big];
	size_t used = 0, n;

	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (uint8_t)(i * 31 + 1);
	open_link(keypath);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
	tty.space = 0;
	/* some data the tty cannot take: the link asks the bridge to suspend and goes on
	 * reading, so a notification behind the data still arrives */
	n = tn_escape(big, 10000, esc, sizeof esc, &used);
	srv_send(&srv, esc, n);
	uvtest_run_for(&loop, 200);
	{
		uint8_t b[16];
		int k = rfc2217_build_u8(b, sizeof b,
		                         RFC2217_NOTIFY_MODEMSTATE + RFC2217_SERVER_OFFSET, 0x30);
		ck_assert_int_gt(k, 0);
		srv_send(&srv, b, (size_t)k);
	}
	uvtest_run_for(&loop, 200);
	ck_assert_uint_eq(tty.nmodem, 1);
	ck_assert_uint_eq(tty.modem, 0x30);
	ck_assert_uint_eq(tty.ndata, 0);
	/* then a lot more: the link holds up to its bound and stops reading */
	n = tn_escape(big + 10000, sizeof big - 10000, esc, sizeof esc, &used);
	ck_assert_uint_eq(used, sizeof big - 10000);
	srv_send(&srv, esc, n);
	uvtest_run_for(&loop, 500);
	ck_assert_uint_eq(tty.ndata, 0);
	ck_assert(is_up());
	tty.space = 1000; /* small pieces */
	want = sizeof big;
	ck_assert(uvtest_run_until(&loop, resumed_all, 20000));
	ck_assert_uint_eq(tty.ndata, sizeof big);
	ck_assert_mem_eq(tty.data, big, sizeof big);
	ck_assert(is_up());
}
END_TEST

static bool errors_2(void)
{
	struct link_stats st;
	link_get_stats(tty.l, &st);
	return st.errors >= 2;
}

/* A configured key file that is missing: no connection is made, the error names the
 * file, the link retries and connects once the file appears. */
START_TEST(tls_missing_key_file)
{
	struct link_stats st;
	char expect[200];
	char *text;

	unlink(keypath);
	capture_start();
	log_set_level(LOG_LEVEL_WARN);
	open_link(keypath);
	bool retried = uvtest_run_until(&loop, errors_2, 3000);
	text = capture_end();
	log_set_level(LOG_LEVEL_ERROR);
	ck_assert(retried);
	ck_assert_uint_eq(srv.accepted, 0);
	snprintf(expect, sizeof expect, "ttyTLS0: key file %s: No such file or directory", keypath);
	ck_assert_msg(strstr(text, expect), "log lacks '%s': %s", expect, text);
	link_get_stats(tty.l, &st);
	ck_assert_msg(strstr(st.last_error, "No such file"), "last_error '%s'", st.last_error);
	free(text);
	/* a world-readable file is refused the same way */
	write_key(keypath, &unit_psk, 0644);
	uvtest_run_for(&loop, 400);
	ck_assert_uint_eq(srv.accepted, 0);
	link_get_stats(tty.l, &st);
	ck_assert_msg(strstr(st.last_error, "mode 0644"), "last_error '%s'", st.last_error);
	write_key(keypath, &unit_psk, 0600);
	ck_assert(uvtest_run_until(&loop, is_up, 5000));
}
END_TEST

/* link_key_changed (a reload saw a new key): a link waiting out a long backoff tries at
 * once; without the call it would still be waiting. */
START_TEST(tls_key_changed_retries_now)
{
	struct link_config c = {
	    .host = "127.0.0.1",
	    .port = srv.port,
	    .reconnect_min_ms = 3000,
	    .reconnect_max_ms = 3000,
	    .connect_timeout_ms = 2000,
	    .key_path = keypath,
	};

	unlink(keypath);
	ck_assert_int_eq(link_new(&loop, "ttyTLS0", &c, &tty.l), 0);
	link_set_callbacks(tty.l, &tcb, &tty);
	uvtest_run_for(&loop, 100); /* first attempt failed: no key; 3 s backoff */
	write_key(keypath, &unit_psk, 0600);
	uvtest_run_for(&loop, 300);
	ck_assert(!is_up());
	ck_assert_uint_eq(srv.accepted, 0);
	link_key_changed(tty.l);
	ck_assert(uvtest_run_until(&loop, is_up, 1500));
}
END_TEST

/* A key with the legacy protocol is refused by link_new. */
START_TEST(tls_legacy_refused)
{
	struct link_config c = {
	    .host = "127.0.0.1",
	    .port = srv.port,
	    .reconnect_min_ms = 50,
	    .reconnect_max_ms = 200,
	    .connect_timeout_ms = 1000,
	    .protocol = LINK_PROTO_LEGACY,
	    .key_path = keypath,
	};
	struct link *l = NULL;
	ck_assert_int_eq(link_new(&loop, "ttyTLS0", &c, &l), -EINVAL);
}
END_TEST

/* conf_load on a file with one device using keypath; returns its result, the problems in
 * *text (malloc'd). */
static int load_conf(const char *extra, struct conf *cf, char **text)
{
	char path[192];
	size_t len = 0;
	FILE *f, *e;
	int r;

	snprintf(path, sizeof path, "%s/espstm.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[ttySTM0]\nhost = 127.0.0.1\nkey = %s\n%s", keypath, extra);
	fclose(f);
	e = open_memstream(text, &len);
	ck_assert_ptr_nonnull(e);
	r = conf_load(path, cf, e);
	fclose(e);
	return r;
}

START_TEST(conf_key_checks)
{
	struct conf cf;
	char *text = NULL;
	char expect[200];
	uint64_t stamp;
	int fd;

	/* good: 0600, then 0400 */
	ck_assert_int_eq(load_conf("", &cf, &text), 0);
	ck_assert_str_eq(cf.devs[0].key, keypath);
	ck_assert_uint_ne(cf.devs[0].key_stamp, 0);
	stamp = cf.devs[0].key_stamp;
	conf_free(&cf);
	free(text);
	ck_assert_int_eq(chmod(keypath, 0400), 0);
	ck_assert_int_eq(load_conf("", &cf, &text), 0);
	ck_assert_uint_eq(cf.devs[0].key_stamp, stamp);
	conf_free(&cf);
	free(text);

	/* 0644: an error naming the device and the file */
	ck_assert_int_eq(chmod(keypath, 0644), 0);
	ck_assert_int_eq(load_conf("", &cf, &text), -EINVAL);
	snprintf(expect, sizeof expect, "[ttySTM0] key: key file %s: mode 0644", keypath);
	ck_assert_msg(strstr(text, expect), "'%s' not in: %s", expect, text);
	free(text);

	/* a parse error comes with its line */
	fd = open(keypath, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "# x\nidentity espstm-1\nkey 12\n", 29), 29);
	ck_assert_int_eq(fchmod(fd, 0600), 0);
	close(fd);
	ck_assert_int_eq(load_conf("", &cf, &text), -EINVAL);
	ck_assert_msg(strstr(text, "[ttySTM0] key: key file ") && strstr(text, ": line 3"),
	              "no line in: %s", text);
	free(text);

	/* a key with the legacy protocol */
	write_key(keypath, &unit_psk, 0600);
	ck_assert_int_eq(load_conf("protocol = espstm-legacy\n", &cf, &text), -EINVAL);
	ck_assert_msg(strstr(text, "[ttySTM0] key: protocol espstm-legacy has no TLS"), "%s", text);
	free(text);

	/* a file not there yet is accepted (the link reports it and retries) */
	unlink(keypath);
	ck_assert_int_eq(load_conf("", &cf, &text), 0);
	ck_assert_uint_eq(cf.devs[0].key_stamp, 0);
	conf_free(&cf);
	free(text);
}
END_TEST

/* Reload: another key in the same file is an in-place update, another path a recreate. */
START_TEST(conf_key_reload)
{
	struct conf_device a, b;

	conf_device_defaults(&a, "ttySTM0");
	snprintf(a.host, sizeof a.host, "h");
	snprintf(a.key, sizeof a.key, "/k1");
	a.key_stamp = 1;
	b = a;
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_UNCHANGED);
	b.key_stamp = 2;
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_UPDATED);
	snprintf(b.key, sizeof b.key, "/k2");
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_CHANGED);
	b.key[0] = '\0';
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_CHANGED);
}
END_TEST

static Suite *link_tls_suite(void)
{
	Suite *s = suite_create("link_tls");
	TCase *tc = tcase_create("link_tls");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, tls_up_and_data);
	tcase_add_test(tc, tls_wrong_key);
	tcase_add_test(tc, tls_peer_without_tls);
	tcase_add_test(tc, tls_altered_stream);
	tcase_add_test(tc, tls_one_record_per_flush);
	tcase_add_test(tc, tls_rx_backpressure);
	tcase_add_test(tc, tls_missing_key_file);
	tcase_add_test(tc, tls_legacy_refused);
	tcase_add_test(tc, tls_key_changed_retries_now);
	tcase_add_test(tc, conf_key_checks);
	tcase_add_test(tc, conf_key_reload);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(link_tls_suite)
