/* SPDX-License-Identifier: MIT */
/* firmware/crypto/tls_session.c: a client and a server in memory (ciphertext moved between
 * them by pump()): handshake, data both ways (64 KiB in pieces, byte-exact), a wrong key, a
 * wrong identity, one altered ciphertext byte, garbage and truncated first records,
 * close_notify, writes before the handshake, one byte at a time, and the memory a session
 * takes (ASan's allocator hooks). */
#include "tls_session.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Test entropy: xorshift64 from a seed (deterministic runs); a seed of 0 fails. */
static int test_entropy(void *ctx, uint8_t *buf, size_t n)
{
	uint64_t *s = ctx;
	if (*s == 0)
		return -EIO;
	for (size_t i = 0; i < n; i++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		buf[i] = (uint8_t)(*s >> 24);
	}
	return 0;
}

static uint64_t seed_c = 0x1234567887654321u, seed_s = 0x0f1e2d3c4b5a6978u;
static struct tls_session cli, srv;

static const struct tls_psk unit_psk = {
    .identity = "espstm-0123456789abcdef",
    .key = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
            17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32},
};

/* Moves at most `step` bytes of ciphertext from one session to the other; returns the count. */
static size_t move(struct tls_session *from, struct tls_session *to, size_t step)
{
	const uint8_t *p;
	size_t n = tls_session_out(from, &p);
	if (n > step)
		n = step;
	if (n == 0)
		return 0;
	size_t k = tls_session_feed(to, p, n);
	tls_session_out_done(from, k);
	return k;
}

/* Moves ciphertext both ways until neither side has anything to send. */
static void pump(size_t step)
{
	for (int guard = 0;; guard++) {
		ck_assert_int_lt(guard, 1000000);
		if (move(&cli, &srv, step) + move(&srv, &cli, step) == 0)
			break;
	}
}

static void start(const struct tls_psk *cpsk, const struct tls_psk *spsk)
{
	ck_assert_int_eq(tls_session_init(&cli, TLS_CLIENT, cpsk, test_entropy, &seed_c), 0);
	ck_assert_int_eq(tls_session_init(&srv, TLS_SERVER, spsk, test_entropy, &seed_s), 0);
	ck_assert_int_eq(tls_session_state(&cli), TLS_HANDSHAKE);
	ck_assert_int_eq(tls_session_state(&srv), TLS_HANDSHAKE);
}

static void open_pair(size_t step)
{
	start(&unit_psk, &unit_psk);
	pump(step);
	ck_assert_int_eq(tls_session_state(&cli), TLS_OPEN);
	ck_assert_int_eq(tls_session_state(&srv), TLS_OPEN);
	ck_assert_str_eq(tls_session_error(&cli), "");
}

static void finish(void)
{
	tls_session_free(&cli);
	tls_session_free(&srv);
}

/* Sends len bytes from `from` to `to` in writes of varying size, pumping ciphertext `step`
 * bytes at a time and reading in varying sizes; checks they arrive byte-exact. */
static void transfer(struct tls_session *from, struct tls_session *to, size_t len, size_t step)
{
	static uint8_t src[65536], dst[65536];
	ck_assert_uint_le(len, sizeof(src));
	for (size_t i = 0; i < len; i++)
		src[i] = (uint8_t)(i * 7 + i / 256);
	memset(dst, 0, sizeof(dst));
	size_t sent = 0, got = 0, piece = 1;
	for (int guard = 0; got < len; guard++) {
		ck_assert_int_lt(guard, 1000000);
		if (sent < len) {
			size_t n = len - sent < piece ? len - sent : piece;
			int w = tls_session_write(from, src + sent, n);
			ck_assert_int_ge(w, 0);
			sent += (size_t)w;
			piece = piece * 3 % 7001 + 1;
		}
		pump(step);
		int r;
		while ((r = tls_session_read(to, dst + got, (got % 3000) + 1)) > 0)
			got += (size_t)r;
		ck_assert_int_eq(r, 0);
		ck_assert_uint_le(got, sent);
	}
	ck_assert_mem_eq(dst, src, len);
}

START_TEST(handshake_then_data_both_ways)
{
	open_pair(100000);
	ck_assert_int_eq(tls_session_write(&cli, (const uint8_t *)"hello", 5), 5);
	pump(100000);
	uint8_t buf[64];
	ck_assert_int_eq(tls_session_read(&srv, buf, sizeof(buf)), 5);
	ck_assert_mem_eq(buf, "hello", 5);
	ck_assert_int_eq(tls_session_read(&srv, buf, sizeof(buf)), 0);
	ck_assert_int_eq(tls_session_write(&srv, (const uint8_t *)"world!", 6), 6);
	pump(100000);
	ck_assert_int_eq(tls_session_read(&cli, buf, 3), 3); /* a record read in two parts */
	ck_assert_int_eq(tls_session_read(&cli, buf + 3, sizeof(buf) - 3), 3);
	ck_assert_mem_eq(buf, "world!", 6);
	finish();
}
END_TEST

START_TEST(data_64k_in_pieces_byte_exact)
{
	open_pair(100000);
	transfer(&cli, &srv, 65536, 100000);
	transfer(&srv, &cli, 65536, 1500);
	transfer(&cli, &srv, 65536, 333);
	finish();
}
END_TEST

START_TEST(one_byte_at_a_time)
{
	open_pair(1);
	transfer(&cli, &srv, 5000, 1);
	transfer(&srv, &cli, 5000, 1);
	finish();
}
END_TEST

START_TEST(write_before_handshake_returns_zero)
{
	start(&unit_psk, &unit_psk);
	ck_assert_int_eq(tls_session_write(&cli, (const uint8_t *)"x", 1), 0);
	ck_assert_int_eq(tls_session_write(&srv, (const uint8_t *)"x", 1), 0);
	ck_assert_uint_eq(tls_session_feed(&srv, NULL, 0), 0);
	uint8_t b[4];
	ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), 0);
	move(&cli, &srv, 100000); /* ClientHello: the server answers, still not open */
	ck_assert_int_eq(tls_session_state(&srv), TLS_HANDSHAKE);
	ck_assert_int_eq(tls_session_write(&srv, (const uint8_t *)"x", 1), 0);
	pump(100000);
	ck_assert_int_eq(tls_session_write(&cli, (const uint8_t *)"x", 1), 1);
	pump(100000);
	ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), 1);
	ck_assert_int_eq(b[0], 'x');
	finish();
}
END_TEST

/* Both sides fail the handshake with -EACCES and the same text. */
static void expect_access_denied(void)
{
	uint8_t b[4];
	ck_assert_int_eq(tls_session_state(&srv), TLS_FAILED);
	ck_assert_int_eq(tls_session_state(&cli), TLS_FAILED);
	ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), -EACCES);
	ck_assert_int_eq(tls_session_read(&cli, b, sizeof(b)), -EACCES);
	ck_assert_int_eq(tls_session_write(&cli, b, sizeof(b)), -EACCES);
	ck_assert_int_eq(tls_session_errno(&cli), -EACCES);
	ck_assert_str_eq(tls_session_error(&cli),
	                 "wrong key or unknown identity (handshake failed: bad_record_mac)");
	ck_assert_str_eq(tls_session_error(&srv),
	                 "wrong key or unknown identity (handshake failed: bad_record_mac)");
}

START_TEST(wrong_key)
{
	struct tls_psk other = unit_psk;
	other.key[31] ^= 0x01;
	start(&other, &unit_psk);
	pump(100000);
	expect_access_denied();
	finish();
	start(&unit_psk, &other); /* the other way round */
	pump(7);
	expect_access_denied();
	finish();
}
END_TEST

START_TEST(wrong_identity)
{
	struct tls_psk other = unit_psk;
	other.identity[22] = 'e'; /* espstm-0123456789abcdee, the right key */
	start(&other, &unit_psk);
	pump(100000);
	expect_access_denied();
	finish();
	strcpy(other.identity, "espstm-0123456789abcdef0"); /* a longer one */
	start(&other, &unit_psk);
	pump(100000);
	expect_access_denied();
	finish();
}
END_TEST

START_TEST(flipped_ciphertext_byte_after_handshake)
{
	/* ChaCha20-Poly1305 record of 100 bytes: header 5, ciphertext 100, tag 16 */
	static const size_t where[] = {5, 6, 40, 104, 105, 120};
	for (size_t w = 0; w < sizeof(where) / sizeof(where[0]); w++) {
		size_t at = where[w];
		open_pair(100000);
		uint8_t msg[100];
		memset(msg, 'a', sizeof(msg));
		ck_assert_int_eq(tls_session_write(&cli, msg, sizeof(msg)), 100);
		const uint8_t *p;
		size_t n = tls_session_out(&cli, &p);
		ck_assert_uint_gt(n, at);
		uint8_t copy[256];
		ck_assert_uint_le(n, sizeof(copy));
		memcpy(copy, p, n);
		tls_session_out_done(&cli, n);
		copy[at] ^= 0x40; /* a byte after the record header */
		ck_assert_uint_eq(tls_session_feed(&srv, copy, n), n);
		uint8_t b[128];
		ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), -EPROTO);
		ck_assert_int_eq(tls_session_state(&srv), TLS_FAILED);
		ck_assert_str_eq(tls_session_error(&srv),
		                 "record authentication failed: the stream was altered");
		ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), -EPROTO); /* stays failed */
		pump(100000); /* the server's bad_record_mac alert */
		ck_assert_int_eq(tls_session_read(&cli, b, sizeof(b)), -EPROTO);
		ck_assert_str_eq(tls_session_error(&cli),
		                 "the peer sent a fatal alert (bad_record_mac)");
		finish();
	}
}
END_TEST

START_TEST(garbage_first_record)
{
	static const char *garbage[] = {
	    "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	    "\x16\x03\x03\xff\xff",                 /* a handshake record longer than allowed */
	    "\x16\x03\x03\x00\x04\x01\x00\x00\x00", /* a ClientHello of 0 bytes */
	    "\x17\x03\x03\x00\x03"
	    "abc",                  /* application data before the handshake */
	    "\x16\x03\x03\x00\x00", /* an empty handshake record */
	};
	static const size_t len[] = {27, 5, 9, 8, 5};
	uint8_t b[16];
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		start(&unit_psk, &unit_psk);
		tls_session_feed(&srv, (const uint8_t *)garbage[i], len[i]);
		ck_assert_msg(tls_session_state(&srv) == TLS_FAILED, "garbage %zu", i);
		ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), -EPROTO);
		ck_assert_int_eq(tls_session_errno(&srv), -EPROTO);
		static const char not_tls[] = "TLS handshake failed: the peer does not speak TLS (";
		if (i == 0) /* an HTTP request on the TLS port */
			ck_assert_int_eq(strncmp(tls_session_error(&srv), not_tls, strlen(not_tls)),
			                 0);
		/* and the client receiving garbage instead of a ServerHello */
		tls_session_feed(&cli, (const uint8_t *)garbage[i], len[i]);
		ck_assert_msg(tls_session_state(&cli) == TLS_FAILED, "client garbage %zu", i);
		ck_assert_int_eq(tls_session_write(&cli, b, sizeof(b)), -EPROTO);
		/* more bytes after the failure are dropped, not buffered */
		ck_assert_uint_eq(tls_session_feed(&srv, b, sizeof(b)), sizeof(b));
		finish();
	}
}
END_TEST

START_TEST(truncated_first_record)
{
	start(&unit_psk, &unit_psk);
	const uint8_t *p;
	size_t n = tls_session_out(&cli, &p);
	ck_assert_uint_gt(n, 40);
	ck_assert_int_eq(p[0], 0x16);      /* a handshake record: what the bridge looks for */
	for (size_t i = 0; i + 1 < n; i++) /* all but the last byte, one at a time */
		ck_assert_uint_eq(tls_session_feed(&srv, p + i, 1), 1);
	ck_assert_int_eq(tls_session_state(&srv), TLS_HANDSHAKE);
	const uint8_t *q;
	ck_assert_uint_eq(tls_session_out(&srv, &q), 0); /* waits for the rest, says nothing */
	ck_assert_uint_eq(tls_session_feed(&srv, p + n - 1, 1), 1);
	tls_session_out_done(&cli, n);
	ck_assert_uint_gt(tls_session_out(&srv, &q), 0);
	pump(100000);
	ck_assert_int_eq(tls_session_state(&srv), TLS_OPEN);
	finish();
}
END_TEST

START_TEST(close_notify)
{
	open_pair(100000);
	ck_assert_int_eq(tls_session_write(&cli, (const uint8_t *)"bye", 3), 3);
	tls_session_close(&cli);
	ck_assert_int_eq(tls_session_state(&cli), TLS_CLOSED);
	ck_assert_int_eq(tls_session_write(&cli, (const uint8_t *)"x", 1), -ECONNRESET);
	pump(100000);
	uint8_t b[16];
	ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), 3); /* data before the alert */
	ck_assert_mem_eq(b, "bye", 3);
	ck_assert_int_eq(tls_session_read(&srv, b, sizeof(b)), -ECONNRESET);
	ck_assert_int_eq(tls_session_state(&srv), TLS_CLOSED);
	ck_assert_str_eq(tls_session_error(&srv), "peer closed");
	ck_assert_int_eq(tls_session_write(&srv, b, 1), -ECONNRESET);
	finish();
}
END_TEST

/* The output buffer full: write accepts less, then nothing; close_notify waits for room,
 * goes out in pieces, and exactly once (mbedtls_ssl_close_notify called again after its
 * alert is flushed would send a second one). */
START_TEST(output_backpressure)
{
	open_pair(100000);
	static uint8_t big[3 * TLS_SESSION_OUT_CAP];
	memset(big, 'z', sizeof(big));
	int w = tls_session_write(&srv, big, sizeof(big));
	ck_assert_int_gt(w, 0);
	ck_assert_int_lt(w, (int)sizeof(big));
	ck_assert_int_eq(tls_session_write(&srv, big, sizeof(big)), 0);
	const uint8_t *p;
	ck_assert_uint_eq(tls_session_out(&srv, &p), TLS_SESSION_OUT_CAP); /* full */
	tls_session_close(&srv); /* no room for the alert yet */
	static uint8_t wire[2 * TLS_SESSION_OUT_CAP];
	size_t wn = 0, got = 0;
	uint8_t b[8192];
	int r = 0;
	for (int guard = 0; guard < 10000 && r >= 0; guard++) {
		size_t n = tls_session_out(&srv, &p);
		if (n > 10)
			n = 10; /* the alert goes out in pieces */
		ck_assert_uint_le(wn + n, sizeof(wire));
		memcpy(wire + wn, p, n);
		wn += n;
		ck_assert_uint_eq(tls_session_feed(&cli, p, n), n);
		tls_session_out_done(&srv, n);
		r = tls_session_read(&cli, b, sizeof(b));
		if (r > 0)
			got += (size_t)r;
	}
	ck_assert_int_eq(r, -ECONNRESET);
	ck_assert_uint_eq(got, (size_t)w);
	ck_assert_int_eq(tls_session_state(&cli), TLS_CLOSED);
	for (int i = 0; i < 3; i++) /* nothing more comes out */
		ck_assert_uint_eq(tls_session_out(&srv, &p), 0);
	int alerts = 0;
	size_t at = 0;
	while (at + 5 <= wn) { /* TLS records: type, version, length (RFC 5246 6.2.1) */
		alerts += wire[at] == 21;
		at += 5 + ((size_t)wire[at + 3] << 8 | wire[at + 4]);
	}
	ck_assert_uint_eq(at, wn);
	ck_assert_int_eq(alerts, 1);
	finish();
}
END_TEST

START_TEST(input_backpressure)
{
	open_pair(100000);
	static uint8_t big[40000];
	memset(big, 'q', sizeof(big));
	size_t sent = 0;
	while (sent < sizeof(big)) {
		int w = tls_session_write(&cli, big + sent, sizeof(big) - sent);
		ck_assert_int_gt(w, 0);
		sent += (size_t)w;
		const uint8_t *p;
		size_t n;
		while ((n = tls_session_out(&cli, &p)) > 0) {
			size_t k = tls_session_feed(&srv, p, n);
			tls_session_out_done(&cli, k);
			if (k == 0)
				break;
		}
		if (tls_session_out(&cli, &p) > 0)
			break; /* the server's input buffer is full: nobody reads */
	}
	ck_assert_uint_lt(sent, sizeof(big));
	const uint8_t *p;
	size_t n = tls_session_out(&cli, &p);
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_eq(tls_session_feed(&srv, p, n), 0);
	/* read moves the buffered ciphertext into mbedTLS even while it returns 0 (a record
	 * not complete yet): then feed takes more */
	static uint8_t b[40000];
	size_t got = 0;
	for (int guard = 0; got < sent; guard++) {
		ck_assert_int_lt(guard, 1000);
		int r = tls_session_read(&srv, b + got, sizeof(b) - got);
		ck_assert_int_ge(r, 0);
		got += (size_t)r;
		n = tls_session_out(&cli, &p);
		size_t k = tls_session_feed(&srv, p, n);
		ck_assert(n == 0 || k > 0);
		tls_session_out_done(&cli, k);
	}
	ck_assert_uint_eq(got, sent);
	ck_assert_mem_eq(b, big, sent);
	finish();
}
END_TEST

/* A record that mbedTLS queued on its own (here the no_renegotiation warning alert, answering
 * a HelloRequest) while the output buffer was full must be sent before the next write; and
 * that write must not count bytes it did not send (mbedTLS's ssl_write_real returns len
 * after flushing an earlier record). */
/* Fills the client's output buffer, then makes mbedTLS queue a record of its own there: the
 * no_renegotiation warning alert answering the server's HelloRequest (renegotiation enabled
 * on the server only for this). Returns the filler byte count. */
static size_t client_alert_pending(void)
{
	open_pair(100000);
	static uint8_t fill[2 * TLS_SESSION_OUT_CAP];
	memset(fill, 'f', sizeof(fill));
	size_t filled = 0;
	int w;
	while ((w = tls_session_write(&cli, fill, sizeof(fill))) > 0)
		filled += (size_t)w;
	ck_assert_int_eq(w, 0);
	mbedtls_ssl_conf_renegotiation(&srv.conf, MBEDTLS_SSL_RENEGOTIATION_ENABLED);
	ck_assert_int_eq(mbedtls_ssl_renegotiate(&srv.ssl), 0); /* HelloRequest sent */
	move(&srv, &cli, 100000);
	uint8_t b[64];
	ck_assert_int_eq(tls_session_read(&cli, b, sizeof(b)), 0); /* the alert is pending */
	ck_assert_int_eq(tls_session_state(&cli), TLS_OPEN);
	return filled;
}

START_TEST(write_after_pending_alert_loses_nothing)
{
	size_t filled = client_alert_pending();
	int w;
	size_t sent = 0;
	for (int guard = 0; sent < 3; guard++) {
		ck_assert_int_lt(guard, 100);
		w = tls_session_write(&cli, (const uint8_t *)"abc" + sent, 3 - sent);
		ck_assert_int_ge(w, 0);
		sent += (size_t)w;
		move(&cli, &srv, 100000);
	}
	/* the server: the filler, then "abc", nothing lost */
	static uint8_t got[3 * TLS_SESSION_OUT_CAP];
	size_t n = 0;
	for (int guard = 0; guard < 1000; guard++) {
		pump(100000);
		int r = tls_session_read(&srv, got + n, sizeof(got) - n);
		ck_assert_int_ge(r, 0);
		n += (size_t)r;
		if (n == filled + 3)
			break;
	}
	ck_assert_uint_eq(n, filled + 3);
	ck_assert_mem_eq(got + filled, "abc", 3);
	finish();
}
END_TEST

/* tls_session_close while such a record is pending still sends close_notify
 * (mbedtls_ssl_close_notify only flushes when something is pending). */
START_TEST(close_after_pending_alert_sends_close_notify)
{
	size_t filled = client_alert_pending();
	tls_session_close(&cli);
	static uint8_t got[3 * TLS_SESSION_OUT_CAP];
	size_t n = 0;
	int r = 0;
	for (int guard = 0; guard < 1000 && r >= 0; guard++) {
		pump(100000);
		r = tls_session_read(&srv, got + n, sizeof(got) - n);
		if (r > 0)
			n += (size_t)r;
	}
	ck_assert_uint_eq(n, filled);
	ck_assert_int_eq(r, -ECONNRESET);
	ck_assert_str_eq(tls_session_error(&srv), "peer closed");
	finish();
}
END_TEST

START_TEST(init_errors)
{
	uint64_t dead = 0;
	struct tls_psk empty = unit_psk;
	empty.identity[0] = '\0';
	ck_assert_int_eq(tls_session_init(&cli, TLS_CLIENT, &unit_psk, test_entropy, &dead), -EIO);
	tls_session_free(&cli);
	ck_assert_int_eq(tls_session_init(&cli, TLS_CLIENT, &empty, test_entropy, &seed_c),
	                 -EINVAL);
	tls_session_free(&cli);
	ck_assert_int_eq(tls_session_init(&cli, TLS_CLIENT, &unit_psk, NULL, NULL), -EINVAL);
	ck_assert_int_eq(tls_session_init(&cli, (enum tls_role)7, &unit_psk, test_entropy, &seed_c),
	                 -EINVAL);
	ck_assert_int_eq(tls_session_state(&cli), TLS_FAILED);
	tls_session_free(&cli);
	tls_session_free(&cli);
}
END_TEST

/* Heap accounting through ASan's allocator hooks while `counting` (declared here: gcc has
 * no <sanitizer/allocator_interface.h>; the unit tests always run under ASan). */
int __sanitizer_install_malloc_and_free_hooks(void (*m)(const volatile void *, size_t),
                                              void (*f)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);
static int counting;
static long heap_now, heap_peak;

static void count_malloc(const volatile void *p, size_t n)
{
	(void)p;
	if (!counting)
		return;
	heap_now += (long)n;
	if (heap_now > heap_peak)
		heap_peak = heap_now;
}

static void count_free(const volatile void *p)
{
	if (counting && p)
		heap_now -= (long)__sanitizer_get_allocated_size(p);
}

START_TEST(memory_per_session)
{
	__sanitizer_install_malloc_and_free_hooks(count_malloc, count_free);
	heap_now = heap_peak = 0;
	counting = 1;
	start(&unit_psk, &unit_psk);
	long after_init = heap_now;
	pump(100000);
	long open = heap_now, peak = heap_peak;
	ck_assert_int_eq(tls_session_state(&srv), TLS_OPEN);
	transfer(&cli, &srv, 20000, 100000);
	long after_data = heap_now;
	finish();
	counting = 0;
	fprintf(stderr,
	        "tls_session memory (two sessions, mbedTLS %s): struct %zu bytes each; heap "
	        "after init %ld, open %ld, peak %ld, after data %ld, after free %ld\n",
	        MBEDTLS_VERSION_STRING, sizeof(struct tls_session), after_init, open, peak,
	        after_data, heap_now);
	ck_assert_int_eq(heap_now, 0);         /* tls_session_free frees everything */
	ck_assert_int_lt(open / 2, 48 * 1024); /* per session, with 16 KiB records */
	ck_assert_int_lt(peak / 2, 48 * 1024);
	ck_assert_uint_lt(sizeof(struct tls_session), 12 * 1024);
}
END_TEST

static Suite *tls_session_suite(void)
{
	Suite *s = suite_create("tls_session");
	TCase *tc = tcase_create("psk");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, handshake_then_data_both_ways);
	tcase_add_test(tc, data_64k_in_pieces_byte_exact);
	tcase_add_test(tc, one_byte_at_a_time);
	tcase_add_test(tc, write_before_handshake_returns_zero);
	tcase_add_test(tc, wrong_key);
	tcase_add_test(tc, wrong_identity);
	tcase_add_test(tc, flipped_ciphertext_byte_after_handshake);
	tcase_add_test(tc, garbage_first_record);
	tcase_add_test(tc, truncated_first_record);
	tcase_add_test(tc, close_notify);
	tcase_add_test(tc, output_backpressure);
	tcase_add_test(tc, input_backpressure);
	tcase_add_test(tc, write_after_pending_alert_loses_nothing);
	tcase_add_test(tc, close_after_pending_alert_sends_close_notify);
	tcase_add_test(tc, init_errors);
	tcase_add_test(tc, memory_per_session);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(tls_session_suite)
