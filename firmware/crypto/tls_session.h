/* SPDX-License-Identifier: MIT */
/* A sans-I/O TLS 1.2 session with a pre-shared key (RFC 4279 on RFC 5246), on mbedTLS, for
 * both roles: the caller moves ciphertext between the session and its socket (feed / out /
 * out_done) and plaintext between the session and its user (read / write). No sockets, no
 * OS calls, no clock: entropy comes from the caller's callback (it seeds a CTR-DRBG).
 *
 * Who drives the handshake: every call except tls_session_state/error/out_done advances it
 * (feed, read, write, out, close). A client's ClientHello is ready in tls_session_out()
 * right after tls_session_init(). tls_session_write() accepts nothing (returns 0) until
 * the handshake is over; retry after feeding the peer's bytes.
 *
 * A caller's loop: on bytes from the socket, feed them (and on a short count read, then feed
 * the rest); read until it returns 0 or an error; write what is waiting; send what
 * tls_session_out returns and report it with tls_session_out_done. After an error, still send
 * what tls_session_out returns (the alert that tells the peer why) before closing.
 *
 * Cipher suites (client offers, server accepts, in this order):
 *   TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256 (RFC 7905 / RFC 5489),
 *   TLS-PSK-WITH-AES-128-GCM-SHA256 (RFC 5487).
 * The client asks for a maximum fragment length of TLS_SESSION_RECORD (RFC 6066 section 4)
 * and no record this side writes is larger than TLS_SESSION_RECORD bytes of plaintext.
 *
 * Memory per session (Linux, Debian mbedTLS 2.28.3, default MBEDTLS_SSL_IN/OUT_CONTENT_LEN
 * 16384; measured by tests/unit/tls_session_test.c memory_per_session with ASan's allocator
 * hooks, x86-64):
 *   sizeof(struct tls_session)  8,016 bytes (mbedTLS contexts 1,544: ssl 736, config 416,
 *                               DRBG 392; the ciphertext buffers TLS_SESSION_IN_CAP 2,048 +
 *                               TLS_SESSION_OUT_CAP 4,160)
 *   mbedTLS heap after init     36,978 bytes (its in and out record buffers, 16.7 KiB each,
 *                               allocated by mbedtls_ssl_setup, plus handshake state)
 *   mbedTLS heap, open          34,626 bytes (record buffers, transform, session)
 *   mbedTLS heap, peak          about 38,000 bytes during the handshake (two sessions
 *                               handshaking: 75,963; valgrind massif, no ASan: 75,931)
 * all freed by tls_session_free.
 * On the ESP the mbedTLS config must have (ESP-IDF / ESP8266_RTOS_SDK sdkconfig names):
 *   CONFIG_MBEDTLS_PSK_MODES=y, CONFIG_MBEDTLS_KEY_EXCHANGE_PSK=y,
 *   CONFIG_MBEDTLS_KEY_EXCHANGE_ECDHE_PSK=y, CONFIG_MBEDTLS_CHACHA20_C=y,
 *   CONFIG_MBEDTLS_POLY1305_C=y, CONFIG_MBEDTLS_CHACHAPOLY_C=y, CONFIG_MBEDTLS_GCM_C=y,
 *   CONFIG_MBEDTLS_ECP_DP_CURVE25519_ENABLED=y (or SECP256R1), and small records:
 *   CONFIG_MBEDTLS_ASYMMETRIC_CONTENT_LEN=y, CONFIG_MBEDTLS_SSL_IN_CONTENT_LEN=4096
 *   (TLS_SESSION_RECORD: a tls_session peer never sends more, and as a client asks for
 *   max_fragment_length 4096; MBEDTLS_SSL_MAX_FRAGMENT_LENGTH is on in the SDKs' configs),
 *   CONFIG_MBEDTLS_SSL_OUT_CONTENT_LEN=4096.
 * With that config (tests/lx106/lx106_mbedtls_config.h, `make cross`) the struct is 7,064
 * bytes on the lx106 (ssl 196, config 116, DRBG 320); mbedTLS's heap is then about
 * 2 x 4.2 KiB of record buffers + ~1.5 KiB (transform, session) when open, a few KiB more
 * during the handshake: about 17 KiB per session in all (estimated from the Linux figures;
 * no mbedTLS library for the lx106 here to measure). TLS_SESSION_IN_CAP can be made
 * smaller (512) to save 1.5 KiB.
 *
 * The struct must not move after tls_session_init (mbedTLS keeps pointers into it). */
#ifndef ESPSTM_TLS_SESSION_H
#define ESPSTM_TLS_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>

#define TLS_PSK_KEY_LEN 32 /* bytes of key */
#define TLS_PSK_ID_MAX  40 /* characters of identity, "espstm-" + 16 hex digits today */

/* Largest plaintext per record this side writes, and the fragment length a client asks for. */
#ifndef TLS_SESSION_RECORD
#define TLS_SESSION_RECORD 4096
#endif
/* Ciphertext buffers: received bytes not yet taken by mbedTLS, and bytes to send (room for
 * one full record: header 5 + explicit nonce 8 + tag 16 + plaintext). */
#ifndef TLS_SESSION_IN_CAP
#define TLS_SESSION_IN_CAP 2048
#endif
#define TLS_SESSION_OUT_CAP (TLS_SESSION_RECORD + 64)

struct tls_psk {
	char identity[TLS_PSK_ID_MAX + 1]; /* NUL-terminated */
	uint8_t key[TLS_PSK_KEY_LEN];
};

/* Fills buf with n bytes from a good random source; returns 0 or a negative errno. */
typedef int (*tls_entropy_fn)(void *ctx, uint8_t *buf, size_t n);

enum tls_role { TLS_CLIENT, TLS_SERVER };
enum tls_state { TLS_HANDSHAKE, TLS_OPEN, TLS_CLOSED, TLS_FAILED };

struct tls_session {
	mbedtls_ssl_context ssl;
	mbedtls_ssl_config conf;
	mbedtls_ctr_drbg_context drbg;
	struct tls_psk psk;
	tls_entropy_fn ent;
	void *ent_ctx;
	enum tls_role role;
	int state;         /* enum tls_state */
	int err;           /* negative errno once FAILED or CLOSED */
	const char *error; /* human text once FAILED or CLOSED, "" before */
	int closing;       /* 1: close_notify to send, 2: sent to a full buffer, 0: done/none */
	int inited;        /* the mbedTLS contexts are initialised (tls_session_free frees) */
	int first_in;      /* the peer's first byte (record type), -1 before it */
	char error_buf[96];
	size_t in_off, in_len;   /* received ciphertext: in[in_off .. in_len) */
	size_t out_off, out_len; /* ciphertext to send: out[out_off .. out_len) */
	uint8_t in[TLS_SESSION_IN_CAP];
	uint8_t out[TLS_SESSION_OUT_CAP];
};

/* Sets up a session in role TLS_CLIENT or TLS_SERVER with the unit's identity and key
 * (copied; a server accepts only that identity, RFC 4279 section 2). ent is called now (to
 * seed the DRBG) and when it reseeds; it must stay valid until tls_session_free.
 * Returns 0, -EINVAL (bad role, empty identity, no ent), -ENOMEM, or -EIO (the entropy
 * callback or mbedTLS setup failed). After a failure, tls_session_free is still safe. */
int tls_session_init(struct tls_session *t, enum tls_role role, const struct tls_psk *psk,
                     tls_entropy_fn ent, void *ent_ctx);

/* Frees mbedTLS's allocations and wipes the key and buffers. Safe twice, and after a
 * failed init. */
void tls_session_free(struct tls_session *t);

/* Ciphertext received from the peer: copies what fits (0..n bytes, returns the count) and
 * advances the handshake. Less than n means the input buffer is full: call
 * tls_session_read (which moves buffered ciphertext into mbedTLS even when it returns 0,
 * a record being incomplete) and feed the rest again. After FAILED or CLOSED the bytes are
 * dropped (returns n). */
size_t tls_session_feed(struct tls_session *t, const uint8_t *p, size_t n);

/* Plaintext from the peer into p (at most n bytes). Returns the count (0: nothing yet,
 * feed more), or -EACCES (handshake failed: wrong key or unknown identity), -EPROTO (an
 * altered or garbled stream, a protocol error), -ECONNRESET (the peer sent close_notify,
 * or this side closed), -ENOMEM. */
int tls_session_read(struct tls_session *t, uint8_t *p, size_t n);

/* Plaintext to the peer: encrypts and queues 0..n bytes (returns the count; 0 during the
 * handshake or while the output buffer is full: send tls_session_out first) or the errors
 * of tls_session_read. */
int tls_session_write(struct tls_session *t, const uint8_t *p, size_t n);

/* Ciphertext to send to the peer (handshake, data, alerts, close_notify): sets *p and returns
 * the byte count (0: nothing). *p stays valid until the next call other than
 * tls_session_out_done / _state / _error. */
size_t tls_session_out(struct tls_session *t, const uint8_t **p);

/* The first n bytes that tls_session_out returned were sent (n <= that count). */
void tls_session_out_done(struct tls_session *t, size_t n);

/* TLS_HANDSHAKE, TLS_OPEN, TLS_CLOSED or TLS_FAILED. */
int tls_session_state(const struct tls_session *t);

/* Why the session is FAILED or CLOSED, as text: "wrong key or unknown identity (handshake
 * failed: bad_record_mac)", "record authentication failed: the stream was altered",
 * "peer closed", ...; "" otherwise. */
const char *tls_session_error(const struct tls_session *t);

/* The negative errno behind tls_session_error (0 while HANDSHAKE or OPEN). */
int tls_session_errno(const struct tls_session *t);

/* Ends the session: queues a close_notify alert (RFC 5246 section 7.2.1) for
 * tls_session_out; the state becomes TLS_CLOSED ("closed"). */
void tls_session_close(struct tls_session *t);

#endif
