/* SPDX-License-Identifier: MIT */
/* The sans-I/O TLS-PSK session (tls_session.h): mbedTLS runs over two bounded ciphertext
 * buffers through its bio callbacks (mbedtls_ssl_set_bio), never over a socket. Every call
 * that can make progress runs step(), which advances the handshake and a pending
 * close_notify. Errors map to negative errno values and one line of text. */
#include "tls_session.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mbedtls/platform_util.h>
#include <mbedtls/ssl_ciphersuites.h>
#if MBEDTLS_VERSION_MAJOR >= 3
#include <psa/crypto.h>
#define TLS_PRIV(f) MBEDTLS_PRIVATE(f)
#else
#define TLS_PRIV(f) f
#endif

#if !defined(MBEDTLS_KEY_EXCHANGE_PSK_ENABLED) || !defined(MBEDTLS_GCM_C)
#error "tls_session needs mbedTLS with TLS-PSK and GCM: tls_session.h lists the ESP config"
#endif

static const char hs_fail_text[] = "wrong key or unknown identity (handshake failed: %s)";
static const char altered_text[] = "record authentication failed: the stream was altered";

/* RFC 4279 section 2 suites in order of preference, 0-terminated (mbedtls_ssl_conf_ciphersuites
 * keeps the pointer). */
static const int suites[] = {
#if defined(MBEDTLS_KEY_EXCHANGE_ECDHE_PSK_ENABLED) && defined(MBEDTLS_CHACHAPOLY_C)
    MBEDTLS_TLS_ECDHE_PSK_WITH_CHACHA20_POLY1305_SHA256,
#endif
    MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
    0,
};

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* mbedTLS's send callback: appends to the output buffer; WANT_WRITE when it is full. */
static int bio_send(void *ctx, const unsigned char *buf, size_t len)
{
	struct tls_session *t = ctx;
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
	if (TLS_SESSION_OUT_CAP - t->out_len < len && t->out_off > 0) {
		memmove(t->out, t->out + t->out_off, t->out_len - t->out_off);
		t->out_len -= t->out_off;
		t->out_off = 0;
	}
	size_t n = min_size(len, TLS_SESSION_OUT_CAP - t->out_len);
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_WRITE;
	memcpy(t->out + t->out_len, buf, n);
	t->out_len += n;
	return (int)n;
}

/* mbedTLS's receive callback: takes from the input buffer; WANT_READ when it is empty. */
static int bio_recv(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_session *t = ctx;
	size_t n = min_size(len, t->in_len - t->in_off);
	if (n == 0)
		return MBEDTLS_ERR_SSL_WANT_READ;
	memcpy(buf, t->in + t->in_off, n);
	t->in_off += n;
	if (t->in_off == t->in_len)
		t->in_off = t->in_len = 0;
	return (int)n;
}

/* The DRBG's entropy source: the caller's callback. */
static int drbg_entropy(void *ctx, unsigned char *buf, size_t len)
{
	struct tls_session *t = ctx;
	return t->ent(t->ent_ctx, buf, len) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

/* Server: the client's identity (RFC 4279 section 2). The unit's own identity gets the unit's
 * key; any other gets a random key, so that an unknown identity fails exactly as a wrong key
 * does (bad_record_mac on the client's Finished) and reveals nothing (RFC 4279 section 2
 * allows this instead of unknown_psk_identity). */
static int psk_cb(void *ctx, mbedtls_ssl_context *ssl, const unsigned char *id, size_t len)
{
	struct tls_session *t = ctx;
	if (len == strlen(t->psk.identity) && memcmp(id, t->psk.identity, len) == 0)
		return mbedtls_ssl_set_hs_psk(ssl, t->psk.key, TLS_PSK_KEY_LEN);
	uint8_t k[TLS_PSK_KEY_LEN];
	int r = mbedtls_ctr_drbg_random(&t->drbg, k, sizeof(k));
	if (r == 0)
		r = mbedtls_ssl_set_hs_psk(ssl, k, sizeof(k));
	mbedtls_platform_zeroize(k, sizeof(k));
	return r;
}

static void fail(struct tls_session *t, int state, int err, const char *text)
{
	t->state = state;
	t->err = err;
	t->error = text;
}

static const char *alert_name(int a)
{
	switch (a) {
	case MBEDTLS_SSL_ALERT_MSG_BAD_RECORD_MAC:
		return "bad_record_mac";
	case MBEDTLS_SSL_ALERT_MSG_DECRYPT_ERROR:
		return "decrypt_error";
	case MBEDTLS_SSL_ALERT_MSG_UNKNOWN_PSK_IDENTITY:
		return "unknown_psk_identity";
	case MBEDTLS_SSL_ALERT_MSG_HANDSHAKE_FAILURE:
		return "handshake_failure";
	case MBEDTLS_SSL_ALERT_MSG_PROTOCOL_VERSION:
		return "protocol_version";
	case MBEDTLS_SSL_ALERT_MSG_DECODE_ERROR:
		return "decode_error";
	default:
		return NULL;
	}
}

/* The alert that mbedTLS just received (after MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE). */
static int received_alert(const struct tls_session *t)
{
	return t->ssl.TLS_PRIV(in_msg)[1];
}

/* A fatal error from mbedTLS: the state, errno and text. During the handshake a MAC failure
 * (ours or the peer's alert) means the two sides do not share the key (RFC 5246 section
 * 7.4.9: Finished is the first record under the negotiated keys). */
static void fail_mbedtls(struct tls_session *t, int r)
{
	int hs = t->state == TLS_HANDSHAKE;
	const char *name = NULL;
	if (r == MBEDTLS_ERR_SSL_ALLOC_FAILED) {
		fail(t, TLS_FAILED, -ENOMEM, "out of memory");
		return;
	}
	if (r == MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) {
		fail(t, TLS_CLOSED, -ECONNRESET, "peer closed");
		return;
	}
	if (r == MBEDTLS_ERR_SSL_INVALID_MAC)
		name = "bad_record_mac";
	else if (r == MBEDTLS_ERR_SSL_UNKNOWN_IDENTITY)
		name = "unknown_psk_identity";
	else if (r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE)
		name = alert_name(received_alert(t));
	if (hs && name && strcmp(name, "bad_record_mac") && strcmp(name, "decrypt_error") &&
	    strcmp(name, "unknown_psk_identity"))
		name = NULL;
	if (hs && name) {
		snprintf(t->error_buf, sizeof(t->error_buf), hs_fail_text, name);
		fail(t, TLS_FAILED, -EACCES, t->error_buf);
	} else if (r == MBEDTLS_ERR_SSL_INVALID_MAC) {
		fail(t, TLS_FAILED, -EPROTO, altered_text);
	} else if (r == MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE) {
		int a = received_alert(t);
		const char *n = alert_name(a);
		if (n)
			snprintf(t->error_buf, sizeof(t->error_buf),
			         "the peer sent a fatal alert (%s)", n);
		else
			snprintf(t->error_buf, sizeof(t->error_buf), "the peer sent fatal alert %d",
			         a);
		fail(t, TLS_FAILED, -EPROTO, t->error_buf);
	} else {
		const char *what = !hs ? "TLS protocol error"
		                   : t->first_in >= 0 && t->first_in != MBEDTLS_SSL_MSG_HANDSHAKE &&
		                           t->first_in != MBEDTLS_SSL_MSG_ALERT
		                       ? "TLS handshake failed: the peer does not speak TLS"
		                       : "TLS handshake failed: not TLS 1.2 with a pre-shared key";
		snprintf(t->error_buf, sizeof(t->error_buf), "%s (mbedTLS -0x%04x)", what,
		         (unsigned)-r);
		fail(t, TLS_FAILED, -EPROTO, t->error_buf);
	}
}

/* A record that mbedTLS wrote on its own while the output buffer was full (an alert sent
 * from mbedtls_ssl_read, such as no_renegotiation) and that is not all out yet; also while
 * closing, as mbedtls_ssl_close_notify would only flush it and return 0. */
static int record_pending(const struct tls_session *t)
{
	return (t->state == TLS_OPEN || t->closing) && t->ssl.TLS_PRIV(out_left) != 0;
}

/* Advances the handshake, a pending record and a pending close_notify as far as the
 * buffers allow. */
static void step(struct tls_session *t)
{
	if (t->state == TLS_HANDSHAKE) {
		int r = mbedtls_ssl_handshake(&t->ssl);
		if (r == 0)
			t->state = TLS_OPEN;
		else if (r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE)
			fail_mbedtls(t, r);
	}
	if (record_pending(t)) {
		/* a write of 0 bytes only flushes it (ssl_write_real: out_left != 0) */
		int r = mbedtls_ssl_write(&t->ssl, (const unsigned char *)"", 0);
		if (r < 0 && r != MBEDTLS_ERR_SSL_WANT_READ && r != MBEDTLS_ERR_SSL_WANT_WRITE)
			fail_mbedtls(t, r);
	}
	if (t->closing == 2 && t->ssl.TLS_PRIV(out_left) == 0)
		t->closing = 0; /* close_notify is out */
	if (t->closing == 1 && !record_pending(t)) {
		int r = mbedtls_ssl_close_notify(&t->ssl);
		t->closing = r == MBEDTLS_ERR_SSL_WANT_WRITE ? 2 : 0; /* 2: built, not all out */
	}
}

/* TLS 1.2 only (RFC 5246): the PSK suites above are 1.2 suites. */
static void conf_version(mbedtls_ssl_config *c)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03020000
	mbedtls_ssl_conf_min_tls_version(c, MBEDTLS_SSL_VERSION_TLS1_2);
	mbedtls_ssl_conf_max_tls_version(c, MBEDTLS_SSL_VERSION_TLS1_2);
#else
	mbedtls_ssl_conf_min_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
	mbedtls_ssl_conf_max_version(c, MBEDTLS_SSL_MAJOR_VERSION_3, MBEDTLS_SSL_MINOR_VERSION_3);
#endif
}

/* ECDHE groups, cheapest first: X25519 then P-256 (mbedTLS's default list starts with
 * P-521, far too slow for an ESP8266). RFC 8422 section 5.1.1. */
static void conf_groups(mbedtls_ssl_config *c)
{
#if MBEDTLS_VERSION_NUMBER >= 0x03010000
	static const uint16_t groups[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
		MBEDTLS_SSL_IANA_TLS_GROUP_X25519,
#endif
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
		MBEDTLS_SSL_IANA_TLS_GROUP_SECP256R1,
#endif
		MBEDTLS_SSL_IANA_TLS_GROUP_NONE
	};
	mbedtls_ssl_conf_groups(c, groups);
#elif defined(MBEDTLS_ECP_C)
	static const mbedtls_ecp_group_id curves[] = {
#if defined(MBEDTLS_ECP_DP_CURVE25519_ENABLED)
		MBEDTLS_ECP_DP_CURVE25519,
#endif
#if defined(MBEDTLS_ECP_DP_SECP256R1_ENABLED)
		MBEDTLS_ECP_DP_SECP256R1,
#endif
		MBEDTLS_ECP_DP_NONE
	};
	mbedtls_ssl_conf_curves(c, curves);
#else
	(void)c;
#endif
}

/* The client's max_fragment_length request (RFC 6066 section 4) for TLS_SESSION_RECORD. */
static void conf_fragment(mbedtls_ssl_config *c)
{
#if defined(MBEDTLS_SSL_MAX_FRAGMENT_LENGTH)
#if TLS_SESSION_RECORD == 512
	mbedtls_ssl_conf_max_frag_len(c, MBEDTLS_SSL_MAX_FRAG_LEN_512);
#elif TLS_SESSION_RECORD == 1024
	mbedtls_ssl_conf_max_frag_len(c, MBEDTLS_SSL_MAX_FRAG_LEN_1024);
#elif TLS_SESSION_RECORD == 2048
	mbedtls_ssl_conf_max_frag_len(c, MBEDTLS_SSL_MAX_FRAG_LEN_2048);
#elif TLS_SESSION_RECORD == 4096
	mbedtls_ssl_conf_max_frag_len(c, MBEDTLS_SSL_MAX_FRAG_LEN_4096);
#else
#error "TLS_SESSION_RECORD must be 512, 1024, 2048 or 4096 (RFC 6066 max_fragment_length)"
#endif
#else
	(void)c;
#endif
}

static int setup(struct tls_session *t, enum tls_role role)
{
	static const unsigned char pers[] = "espstm tls_session";
	int r;
#if MBEDTLS_VERSION_MAJOR >= 3 && defined(MBEDTLS_PSA_CRYPTO_C)
	if (psa_crypto_init() != PSA_SUCCESS) /* mbedTLS 3.x TLS runs on PSA crypto */
		return -EIO;
#endif
	r = mbedtls_ctr_drbg_seed(&t->drbg, drbg_entropy, t, pers, sizeof(pers) - 1);
	if (r != 0)
		return -EIO;
	r = mbedtls_ssl_config_defaults(
	    &t->conf, role == TLS_CLIENT ? MBEDTLS_SSL_IS_CLIENT : MBEDTLS_SSL_IS_SERVER,
	    MBEDTLS_SSL_TRANSPORT_STREAM, MBEDTLS_SSL_PRESET_DEFAULT);
	if (r != 0)
		return r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EIO;
	mbedtls_ssl_conf_rng(&t->conf, mbedtls_ctr_drbg_random, &t->drbg);
	conf_version(&t->conf);
	conf_groups(&t->conf);
	mbedtls_ssl_conf_ciphersuites(&t->conf, suites);
	if (role == TLS_CLIENT) {
		r = mbedtls_ssl_conf_psk(&t->conf, t->psk.key, TLS_PSK_KEY_LEN,
		                         (const unsigned char *)t->psk.identity,
		                         strlen(t->psk.identity));
		if (r != 0)
			return r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EIO;
		conf_fragment(&t->conf);
	} else {
		mbedtls_ssl_conf_psk_cb(&t->conf, psk_cb, t);
	}
	r = mbedtls_ssl_setup(&t->ssl, &t->conf);
	if (r != 0)
		return r == MBEDTLS_ERR_SSL_ALLOC_FAILED ? -ENOMEM : -EIO;
	mbedtls_ssl_set_bio(&t->ssl, t, bio_send, bio_recv, NULL);
	return 0;
}

int tls_session_init(struct tls_session *t, enum tls_role role, const struct tls_psk *psk,
                     tls_entropy_fn ent, void *ent_ctx)
{
	memset(t, 0, sizeof(*t));
	t->error = "";
	t->state = TLS_FAILED;
	t->first_in = -1;
	t->err = -EINVAL;
	t->error = "TLS setup: bad arguments";
	if (!psk || !ent || (role != TLS_CLIENT && role != TLS_SERVER))
		return -EINVAL;
	const char *nul = memchr(psk->identity, '\0', sizeof(psk->identity)); /* C11: no strnlen */
	size_t idlen = nul ? (size_t)(nul - psk->identity) : sizeof(psk->identity);
	if (idlen == 0 || idlen > TLS_PSK_ID_MAX)
		return -EINVAL;
	t->err = 0;
	t->error = "";
	t->psk = *psk;
	t->ent = ent;
	t->ent_ctx = ent_ctx;
	t->role = role;
	mbedtls_ssl_init(&t->ssl);
	mbedtls_ssl_config_init(&t->conf);
	mbedtls_ctr_drbg_init(&t->drbg);
	t->inited = 1;
	int r = setup(t, role);
	if (r != 0) {
		fail(t, TLS_FAILED, r, "TLS setup failed");
		return r;
	}
	t->state = TLS_HANDSHAKE;
	if (role == TLS_CLIENT)
		step(t); /* the ClientHello */
	return 0;
}

void tls_session_free(struct tls_session *t)
{
	if (t->inited) {
		mbedtls_ssl_free(&t->ssl);
		mbedtls_ssl_config_free(&t->conf);
		mbedtls_ctr_drbg_free(&t->drbg);
	}
	mbedtls_platform_zeroize(t, sizeof(*t));
	t->error = "";
	t->state = TLS_CLOSED;
	t->err = -ECONNRESET;
}

size_t tls_session_feed(struct tls_session *t, const uint8_t *p, size_t n)
{
	if (t->state == TLS_FAILED || t->state == TLS_CLOSED)
		return n; /* nothing more will be read: dropped */
	if (n == 0) {     /* p may be NULL: only drive the handshake */
		if (t->state == TLS_HANDSHAKE)
			step(t);
		return 0;
	}
	if (t->first_in < 0)
		t->first_in = p[0]; /* a TLS stream starts with a handshake or alert record */
	size_t used = 0;
	for (;;) {
		if (t->in_off > 0) {
			memmove(t->in, t->in + t->in_off, t->in_len - t->in_off);
			t->in_len -= t->in_off;
			t->in_off = 0;
		}
		size_t k = min_size(n - used, TLS_SESSION_IN_CAP - t->in_len);
		memcpy(t->in + t->in_len, p + used, k);
		t->in_len += k;
		used += k;
		if (t->state != TLS_HANDSHAKE)
			break;
		size_t before = t->in_len - t->in_off;
		step(t);
		if (used == n || t->in_len - t->in_off == before)
			break;
	}
	return used;
}

int tls_session_read(struct tls_session *t, uint8_t *p, size_t n)
{
	step(t);
	if (t->state == TLS_FAILED || t->state == TLS_CLOSED)
		return t->err;
	if (t->state == TLS_HANDSHAKE || n == 0)
		return 0;
	int r = mbedtls_ssl_read(&t->ssl, p, n);
	if (r >= 0)
		return r;
	if (r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_WANT_WRITE)
		return 0;
	fail_mbedtls(t, r);
	return t->err;
}

int tls_session_write(struct tls_session *t, const uint8_t *p, size_t n)
{
	step(t);
	if (t->state == TLS_FAILED || t->state == TLS_CLOSED)
		return t->err;
	if (t->state == TLS_HANDSHAKE || record_pending(t))
		return 0; /* mbedtls_ssl_write would flush the record and count p as written */
	int maxp = mbedtls_ssl_get_max_out_record_payload(&t->ssl);
	int exp = mbedtls_ssl_get_record_expansion(&t->ssl);
	if (maxp <= 0 || exp < 0) {
		fail_mbedtls(t, maxp <= 0 ? maxp : exp);
		return t->err;
	}
	size_t done = 0;
	while (done < n) {
		/* one whole record must fit, so that mbedTLS never holds a half-sent record
		 * that it would expect to be written again with the same data */
		size_t room = TLS_SESSION_OUT_CAP - (t->out_len - t->out_off);
		if (room <= (size_t)exp)
			break;
		size_t chunk = min_size(min_size(n - done, (size_t)maxp),
		                        min_size(TLS_SESSION_RECORD, room - (size_t)exp));
		int r = mbedtls_ssl_write(&t->ssl, p + done, chunk);
		if (r == MBEDTLS_ERR_SSL_WANT_WRITE && t->ssl.TLS_PRIV(out_left) != 0) {
			done += chunk; /* (not expected) built: it goes out with the next flush */
			break;
		}
		if (r == MBEDTLS_ERR_SSL_WANT_WRITE || r == MBEDTLS_ERR_SSL_WANT_READ)
			break;
		if (r < 0) {
			fail_mbedtls(t, r);
			return t->err;
		}
		done += (size_t)r;
	}
	return (int)min_size(done, (size_t)INT32_MAX);
}

size_t tls_session_out(struct tls_session *t, const uint8_t **p)
{
	if (t->state == TLS_HANDSHAKE || t->closing || record_pending(t))
		step(t);
	*p = t->out + t->out_off;
	return t->out_len - t->out_off;
}

void tls_session_out_done(struct tls_session *t, size_t n)
{
	t->out_off += min_size(n, t->out_len - t->out_off);
	if (t->out_off == t->out_len)
		t->out_off = t->out_len = 0;
}

int tls_session_state(const struct tls_session *t)
{
	return t->state;
}

const char *tls_session_error(const struct tls_session *t)
{
	return t->state == TLS_FAILED || t->state == TLS_CLOSED ? t->error : "";
}

int tls_session_errno(const struct tls_session *t)
{
	return t->state == TLS_FAILED || t->state == TLS_CLOSED ? t->err : 0;
}

void tls_session_close(struct tls_session *t)
{
	if (t->state == TLS_OPEN)
		t->closing = 1;
	if (t->state == TLS_OPEN || t->state == TLS_HANDSHAKE)
		fail(t, TLS_CLOSED, -ECONNRESET, "closed");
	step(t);
}
