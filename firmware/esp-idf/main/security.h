/* SPDX-License-Identifier: MIT */
/*
 * The unit's secrets in NVS (namespace "espstm"): the unit key of the RFC 2217 port (TLS-PSK,
 * firmware/crypto/unit_key.h; made at first boot, never a default), the HTTPS certificate and
 * its private key (ESP-IDF only; firmware/crypto/self_cert.h; made at first boot) and the
 * image verification key (locked mode; installed once over the API, removed only by erasing
 * NVS over USB). Randomness: esp_fill_random(), a true RNG once the radio runs.
 */
#ifndef ESPSTM_SECURITY_H
#define ESPSTM_SECURITY_H

#include "sdkconfig.h"
#include "tls_session.h"

#include <stddef.h>
#include <stdint.h>

#define SEC_VERIFY_KEY_MAX 512 /* PEM of an ECDSA P-256 public key: ~178 bytes */

/* Load the unit key (and on ESP-IDF the HTTPS certificate) from NVS, making what is missing
 * (unit_key_generate, self_cert_make with sec_entropy), and the verification key. Call once
 * after wifi_start() (the RNG is then fed by the radio) and before the servers start.
 * Returns 0, or -EIO when the unit key could neither be read nor made and stored: the
 * RFC 2217 ports then refuse TLS clients (fail closed; plaintext only if the setting allows). */
int sec_init(void);

/* tls_entropy_fn: n random bytes from esp_fill_random(). ctx unused. Always 0. */
int sec_entropy(void *ctx, uint8_t *buf, size_t n);

/* A copy of the unit key in force into *out and its generation into *gen (incremented by
 * every rotation; a TLS session made with an older generation is dropped). Returns 0, or
 * -ENOENT when the unit has no key (sec_init failed). Thread-safe. */
int sec_key_copy(struct tls_psk *out, uint32_t *gen);

/* The generation of the unit key in force (see sec_key_copy); 0 = no key. Thread-safe. */
uint32_t sec_key_gen(void);

/* POST /api/pair/rotate: a new random unit key (new identity too), stored in NVS and in
 * force at once; the RFC 2217 tasks drop their TLS client. Returns 0, -EIO (not stored: the
 * old key stays in force) or -ENOMEM. Thread-safe. */
int sec_key_rotate(void);

#if !CONFIG_IDF_TARGET_ESP8266
/* The HTTPS server's certificate and private key (PEM, NUL-terminated; *_len counts the NUL,
 * as esp_https_server / mbedTLS PEM parsing want). Returns 0 or -ENOENT (none could be made:
 * the web server then serves plain HTTP and logs why). */
int sec_cert(const char **cert, size_t *cert_len, const char **key, size_t *key_len);
#endif

/* The installed verification key (PEM) into pem (cap bytes, NUL-terminated). Returns its
 * length, or -ENOENT (none: not locked), -ENOSPC (cap too small). */
int sec_verify_key(char *pem, size_t cap);

/* PUT /api/verify-key: install the verification key pem (len bytes, a PEM public key), once.
 * Returns 0, -EEXIST (one is installed: replacing or removing it needs an NVS erase over
 * USB), -EINVAL (not a PEM public key of at most SEC_VERIFY_KEY_MAX - 1 bytes) or -EIO. */
int sec_verify_key_install(const char *pem, size_t len);

/* 1 when a verification key is installed (locked mode), else 0. */
int sec_locked(void);

#endif
