/* SPDX-License-Identifier: MIT */
/* keyfile: a unit key file read with its mode and owner checked (see keyfile.h). */
#include "keyfile.h"
#include "unit_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Whether the open file's metadata are acceptable for a secret; err says why not. */
static int check_stat(const struct stat *st, const char *path, char *err, size_t errlen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "not a regular file");
		return -EINVAL;
	}
	if (st->st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errlen,
		         "mode %04o: group or others may access it (want 0600 or 0400: chmod 600 "
		         "%s)",
		         (unsigned)(st->st_mode & 07777), path);
		return -EPERM;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(err, errlen, "owned by uid %u, not by root or this daemon's user (uid %u)",
		         (unsigned)st->st_uid, (unsigned)geteuid());
		return -EPERM;
	}
	if (st->st_size > KEYFILE_MAX) {
		snprintf(err, errlen, "larger than %d bytes: not a key file", KEYFILE_MAX);
		return -EFBIG;
	}
	return 0;
}

int keyfile_load(const char *path, struct tls_psk *out, char *err, size_t errlen)
{
	char text[KEYFILE_MAX + 1];
	char perr[160];
	struct stat st;
	size_t len = 0;
	int fd, r;

	memset(out, 0, sizeof *out);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "%s", strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(err, errlen, "%s", strerror(-r));
		close(fd);
		return r;
	}
	r = check_stat(&st, path, err, errlen);
	while (r == 0 && len < sizeof text) {
		ssize_t k = read(fd, text + len, sizeof text - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			snprintf(err, errlen, "%s", strerror(-r));
		} else if (k == 0) {
			break;
		} else {
			len += (size_t)k;
		}
	}
	close(fd);
	if (r == 0 && len > KEYFILE_MAX) {
		snprintf(err, errlen, "larger than %d bytes: not a key file", KEYFILE_MAX);
		r = -EFBIG;
	}
	if (r == 0) {
		perr[0] = '\0';
		if (unit_key_parse(text, len, out, perr, sizeof perr) < 0) {
			snprintf(err, errlen, "%s", perr[0] ? perr : "not a unit key file");
			memset(out, 0, sizeof *out);
			r = -EINVAL;
		}
	}
	explicit_bzero(text, sizeof text);
	return r;
}
