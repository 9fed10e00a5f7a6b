/* SPDX-License-Identifier: MIT */
/*
 * Self-signed certificates for a unit's HTTPS server (espstm-bridge --http; the ESP's web
 * server): an ECDSA P-256 key and an X.509 v3 certificate signed with it (RFC 5280;
 * CN = the unit's name, valid 10 years), both PEM; and the public-key pin of a certificate
 * in curl's CURLOPT_PINNEDPUBLICKEY form "sha256//" + base64(SHA-256(SubjectPublicKeyInfo
 * DER)) (the RFC 7469 pin-sha256 value), which espstm stores in known_bridges and checks on
 * every HTTPS connection (trust on first use, like ssh). mbedTLS (2.28 and 3.x); no OS calls:
 * entropy and the time come from the caller.
 */
#ifndef ESPSTM_SELF_CERT_H
#define ESPSTM_SELF_CERT_H

#include <stddef.h>
#include <stdint.h>

/* Fill buf with n random bytes from the platform's CSPRNG. Returns 0 or -errno. The same
 * signature as tls_entropy_fn of tls_session.h (getrandom(2); esp_fill_random()). */
typedef int (*self_cert_entropy_fn)(void *ctx, uint8_t *buf, size_t n);

#define SELF_CERT_KEY_PEM_MAX  512  /* "-----BEGIN EC PRIVATE KEY-----" P-256: ~227 bytes */
#define SELF_CERT_CERT_PEM_MAX 1536 /* a P-256 certificate with a 64-byte CN: ~700 bytes */
#define SELF_CERT_PIN_LEN      52   /* "sha256//" + 44 base64 characters, without the NUL */
#define SELF_CERT_CN_MAX       64   /* RFC 5280 ub-common-name */
#define SELF_CERT_YEARS        10

/*
 * Make a new ECDSA P-256 key (SEC 1 "EC PRIVATE KEY" PEM into key_pem, key_cap bytes) and a
 * self-signed X.509 v3 certificate for it (PEM into cert_pem, cert_cap bytes): subject and
 * issuer "CN=<cn>" (cn: 1..SELF_CERT_CN_MAX printable ASCII characters, no ',', '=', '+',
 * '\\', '"'), a random positive 128-bit serial, validity from now_s (Unix time in seconds;
 * <= 0 when the platform has no clock yet: 2025-01-01 is used) for SELF_CERT_YEARS years,
 * basicConstraints CA:FALSE, signature ecdsa-with-SHA256. ent: the caller's CSPRNG (all the
 * randomness: key, serial, signature nonce seed). Both outputs are NUL-terminated strings.
 * Returns 0, -EINVAL (bad cn, NULL argument), -ENOSPC (a buffer too small: use the _MAX
 * sizes), -EIO (entropy failed) or -EPROTO (mbedTLS failed). The key is secret: store it
 * mode 0600.
 */
int self_cert_make(const char *cn, int64_t now_s, self_cert_entropy_fn ent, void *ent_ctx,
                   char *key_pem, size_t key_cap, char *cert_pem, size_t cert_cap);

/*
 * The public-key pin of a certificate: "sha256//" + base64 (RFC 4648, with padding) of
 * SHA-256 over its SubjectPublicKeyInfo DER (RFC 5280 4.1.2.7), what
 *   openssl x509 -pubkey -noout | openssl pkey -pubin -outform der |
 *   openssl dgst -sha256 -binary | base64
 * prints and curl's CURLOPT_PINNEDPUBLICKEY takes. cert: PEM (len = strlen; a NUL at
 * cert[len - 1] is allowed; shorter than SELF_CERT_CERT_PEM_MAX) or DER (len bytes).
 * pin: cap bytes (>= SELF_CERT_PIN_LEN + 1), NUL-terminated. Stack: about 2 KB (a PEM is
 * copied to add its NUL). Returns 0, -EINVAL (not a certificate mbedTLS parses), -ENOSPC
 * (cap too small).
 */
int self_cert_pin(const uint8_t *cert, size_t len, char *pin, size_t cap);

/*
 * Check that key_pem (NUL-terminated) is the private key of cert_pem's public key, both
 * parsing (a pair read back from files before serving it). Returns 0, -EINVAL (either does
 * not parse) or -EACCES (they do not belong together).
 */
int self_cert_check_pair(const char *key_pem, const char *cert_pem);

#endif
