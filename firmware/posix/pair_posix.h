/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge's unit key and HTTPS certificate files: the unit key of its RFC 2217 port
 * (TLS-PSK, firmware/crypto/unit_key.h format, mode 0600) is made at first start and
 * replaced by POST /api/pair/rotate; the HTTPS certificate and its key
 * (firmware/crypto/self_cert.h) live next to it: for the key file FLASH.key they are
 * FLASH.cert.pem (0644) and FLASH.certkey.pem (0600) (a key file not ending in ".key" gets
 * ".cert.pem" / ".certkey.pem" appended). Every file is written to a temporary name in the
 * same directory, fsync'ed and renamed: a crash leaves the old file or the new one.
 */
#ifndef ESPSTM_PAIR_POSIX_H
#define ESPSTM_PAIR_POSIX_H

#include "self_cert.h"
#include "tls_session.h" /* struct tls_psk */

#include <stddef.h>

/*
 * The unit key in path: read and parsed (unit_key_parse); a missing file is created with a
 * new random key (unit_key_generate on getrandom(2)), mode 0600, and logged ("unit key
 * created in PATH"). A file that group or others may read or write is refused (the key is
 * secret), as is one that does not parse (the parser's message is logged). Returns 0 with
 * *out, or -1 (logged). Call before the RFC 2217 port and the HTTP server start.
 */
int pair_posix_load(const char *path, struct tls_psk *out);
/* tls_entropy_fn on getrandom(2), the kernel's CSPRNG: fills buf with n random bytes.
 * Returns 0 or -EIO. */
int pair_posix_entropy(void *ctx, uint8_t *buf, size_t n);

/*
 * A new random unit key replaces the one in path (atomically, 0600) and is returned in *out;
 * the old key is no longer valid anywhere. path NULL (a key for this run only, no file): only
 * made. Returns 0, or -1 (logged; the old file is kept).
 */
int pair_posix_rotate(const char *path, struct tls_psk *out);

/* The HTTPS certificate of a unit (PEM strings, NUL-terminated) and its pin. */
struct pair_cert {
	char key_pem[SELF_CERT_KEY_PEM_MAX];
	char cert_pem[SELF_CERT_CERT_PEM_MAX];
	char pin[SELF_CERT_PIN_LEN + 1]; /* "sha256//BASE64" */
};

/*
 * The HTTPS certificate next to key_path: both files read and checked to belong together
 * (self_cert_check_pair); when neither exists, a new pair is made (self_cert_make, CN = cn,
 * 10 years from now) and written (certificate 0644, its key 0600). Only one of the two, an
 * unparsable or mismatched pair, or a certificate key that group/others may read: refused
 * with a message naming the files ("remove both to make a new certificate": the pin then
 * changes and every paired host must accept it again). key_path NULL (a unit key for this
 * run only): a certificate for this run, in memory. Returns 0 with *c, or -1 (logged).
 */
int pair_posix_cert(const char *key_path, const char *cn, struct pair_cert *c);

/* The certificate file names of key_path (cap bytes each). Returns 0 or -ENAMETOOLONG. */
int pair_posix_cert_paths(const char *key_path, char *cert, char *certkey, size_t cap);

#endif
