/* SPDX-License-Identifier: MIT */
/* The unit key file: the identity and pre-shared key (tls_session.h, RFC 4279) of one
 * bridge, as text that espstm-bridge creates, `espstm pair` writes and espstmd reads:
 *
 *     # espstm unit key for HOST (secret; mode 0600)
 *     identity espstm-0123456789abcdef
 *     key <64 hex digits>
 *
 * Lines end in LF or CRLF; '#' lines and blank lines are ignored; words are separated by
 * spaces or tabs. Each of "identity" and "key" appears exactly once. The identity is 1 to
 * TLS_PSK_ID_MAX characters from [A-Za-z0-9._-]; the key is exactly 64 hex digits and not
 * all zeros. File permissions are the caller's business (this code does no I/O). */
#ifndef ESPSTM_UNIT_KEY_H
#define ESPSTM_UNIT_KEY_H

#include <stddef.h>

#include "tls_session.h"

/* Longest text unit_key_parse accepts (a key file is under 200 bytes). */
#define UNIT_KEY_TEXT_MAX 4096

/* Parses len bytes of key file text (need not be NUL-terminated) into *out. Returns 0, or
 * -EINVAL with a one-line reason in err ("line 3: key must be 64 hex digits (got 63)"),
 * truncated to errlen - 1 characters (err may be NULL when errlen is 0). *out is zeroed on
 * failure. */
int unit_key_parse(const char *text, size_t len, struct tls_psk *out, char *err, size_t errlen);

/* Writes the key file text of *k into buf (cap bytes, NUL-terminated): the line "# COMMENT"
 * when comment is not NULL, then the identity and key lines. Returns the length written
 * (without the NUL), -EINVAL (an identity the parser would refuse, a comment with a line
 * break) or -ENOSPC (cap too small; buf then holds ""). */
int unit_key_format(const struct tls_psk *k, const char *comment, char *buf, size_t cap);

/* A new unit key: identity "espstm-" + 16 hex digits from 8 random bytes, and 32 random
 * key bytes, from ent. Returns 0 or the callback's negative errno (-EIO if it returned a
 * positive value); *k is zeroed on failure. */
int unit_key_generate(struct tls_psk *k, tls_entropy_fn ent, void *ctx);

#endif
