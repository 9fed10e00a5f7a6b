/* SPDX-License-Identifier: MIT */
/*
 * keyfile: reading a unit key file (firmware/crypto/unit_key.h format) for espstmd, with the
 * checks a secret needs: a regular file, no access for group or others (mode 0600 or
 * 0400), owned by root or the daemon's user. Shared by the configuration check (conf.c)
 * and the link, which reads the file again before every connection attempt (a key
 * written or rotated later is used by the next attempt).
 */
#ifndef ESPSTM_KEYFILE_H
#define ESPSTM_KEYFILE_H

#include <stddef.h>

struct tls_psk;

#define KEYFILE_MAX 4096 /* bytes; a key file is about 120 */

/*
 * Read and parse the key file at path into *out. Takes path, out, err/errlen (one line
 * without the path, e.g. "No such file or directory", "mode 0644: group or others may
 * access it (want 0600 or 0400: chmod 600 FILE)", "line 3: ...", from unit_key_parse).
 * Returns 0, or a negative errno: the open/read error (-ENOENT, -EACCES...), -EPERM (mode
 * or owner), -EINVAL (not a regular file, or the text does not parse), -EFBIG (larger than
 * KEYFILE_MAX). out is zeroed on failure, and the text read is wiped either way.
 */
int keyfile_load(const char *path, struct tls_psk *out, char *err, size_t errlen);

#endif
