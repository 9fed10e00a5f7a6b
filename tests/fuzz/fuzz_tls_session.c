/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: firmware/crypto/tls_session.c receiving arbitrary bytes. Byte 0 picks
 * the piece size (bits 0-3: 1..16 bytes, or all at once) and the case (bits 4-5): a server
 * fed from its first byte (what the bridge sees on its RFC 2217 port), a client fed after its
 * ClientHello, or a server after a complete handshake (the bytes as the client's records).
 * After every piece the session is read, written and drained; nothing may crash, leak or
 * hang, and the state and counts stay within their contract. Entropy is deterministic.
 */
#include "tls_session.h"

#include <mbedtls/ssl_ciphersuites.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int entropy(void *ctx, uint8_t *buf, size_t n)
{
	uint32_t *s = ctx;
	for (size_t i = 0; i < n; i++) {
		*s = *s * 1103515245u + 12345u;
		buf[i] = (uint8_t)(*s >> 16);
	}
	return 0;
}

static const struct tls_psk psk = {.identity = "espstm-0123456789abcdef", .key = {7, 7, 7}};
static struct tls_session a, b;

static void drain(struct tls_session *t)
{
	const uint8_t *p;
	size_t n = tls_session_out(t, &p);
	if (n > TLS_SESSION_OUT_CAP)
		abort();
	tls_session_out_done(t, n);
}

/* Moves everything between a and b until quiet (the in-memory handshake). */
static void pump(void)
{
	for (int guard = 0; guard < 1000; guard++) {
		const uint8_t *p;
		size_t n = tls_session_out(&a, &p), m = 0;
		if (n)
			tls_session_out_done(&a, m = tls_session_feed(&b, p, n));
		size_t n2 = tls_session_out(&b, &p), m2 = 0;
		if (n2)
			tls_session_out_done(&b, m2 = tls_session_feed(&a, p, n2));
		if (m + m2 == 0)
			return;
	}
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t step = (data[0] & 15) ? (size_t)(data[0] & 15) : size;
	int mode = (data[0] >> 4) & 3;
	uint32_t sa = 1, sb = 2;
	struct tls_session *t = &a;
	if (tls_session_init(&a, mode == 1 ? TLS_CLIENT : TLS_SERVER, &psk, entropy, &sa) != 0)
		abort();
	if (mode == 1) {
		drain(&a); /* the ClientHello went out */
	} else if (mode >= 2) {
		/* the server picks the PSK suite without ECDHE: 100 times faster handshakes */
		static const int psk_only[] = {MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256, 0};
		mbedtls_ssl_conf_ciphersuites(&a.conf, psk_only);
		if (tls_session_init(&b, TLS_CLIENT, &psk, entropy, &sb) != 0)
			abort();
		pump();
		if (tls_session_state(&a) != TLS_OPEN || tls_session_state(&b) != TLS_OPEN)
			abort();
	}
	uint8_t buf[512];
	for (size_t pos = 1; pos < size;) {
		size_t n = size - pos < step ? size - pos : step;
		size_t k = tls_session_feed(t, data + pos, n);
		if (k > n)
			abort();
		int r;
		int guard = 0;
		while ((r = tls_session_read(t, buf, sizeof(buf))) > 0)
			if (r > (int)sizeof(buf) || ++guard > 100)
				abort();
		int st = tls_session_state(t);
		if (st < TLS_HANDSHAKE || st > TLS_FAILED || (r < 0 && st == TLS_OPEN))
			abort();
		if (r < 0 && r != -EACCES && r != -EPROTO && r != -ECONNRESET && r != -ENOMEM)
			abort();
		int w = tls_session_write(t, (const uint8_t *)"ping", 4);
		if (w > 4 || (w > 0 && st != TLS_OPEN))
			abort();
		drain(t);
		if (k == 0 && r == 0 && st == TLS_OPEN) {
			/* the input buffer is full and read took nothing: impossible */
			abort();
		}
		pos += k ? k : n; /* a failed session drops; a stuck one would loop */
	}
	tls_session_free(&a);
	if (mode >= 2)
		tls_session_free(&b);
	return 0;
}
