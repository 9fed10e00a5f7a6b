/* SPDX-License-Identifier: MIT */
/* espstm-bridge's unit key and HTTPS certificate files (pair_posix.h). */
#include "pair_posix.h"

#include "hal.h"
#include "plog.h"
#include "unit_key.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FILE_MAX 4096 /* larger than any key or certificate file of ours */

int pair_posix_entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	while (n) {
		ssize_t k = getrandom(buf, n, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -EIO;
		buf += k;
		n -= (size_t)k;
	}
	return 0;
}

static void wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;
	while (n--)
		*v++ = 0;
}

/* Read a whole small file into buf (NUL-terminated). secret: refuse group/other access.
 * Returns its length, -ENOENT (absent, not logged) or -1 (logged). */
static int read_file(const char *path, char *buf, size_t cap, int secret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		plog(HAL_LOG_ERROR, "%s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		plog(HAL_LOG_ERROR, "%s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (secret && (st.st_mode & 077)) {
		plog(HAL_LOG_ERROR,
		     "%s is accessible by group/others (mode %04o): it holds a secret key; "
		     "chmod 600 it",
		     path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return -1;
	}
	size_t n = 0;
	for (;;) {
		ssize_t k = read(fd, buf + n, cap - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			plog(HAL_LOG_ERROR, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n == cap - 1) {
			plog(HAL_LOG_ERROR, "%s: larger than %zu bytes", path, cap - 1);
			close(fd);
			return -1;
		}
	}
	close(fd);
	buf[n] = '\0';
	return (int)n;
}

/* Write text to path atomically with mode. Returns 0 or -1 (logged). */
static int write_file(const char *path, const char *text, size_t len, mode_t mode)
{
	char tmp[4200];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", path) >= (int)sizeof(tmp)) {
		plog(HAL_LOG_ERROR, "%s: name too long", path);
		return -1;
	}
	int fd = mkostemp(tmp, O_CLOEXEC); /* 0600 */
	if (fd < 0) {
		plog(HAL_LOG_ERROR, "%s: cannot create a file next to it: %s", path,
		     strerror(errno));
		return -1;
	}
	int ok = fchmod(fd, mode) == 0;
	size_t off = 0;
	while (ok && off < len) {
		ssize_t k = write(fd, text + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		ok = k > 0;
		if (ok)
			off += (size_t)k;
	}
	ok = ok && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) < 0) {
		plog(HAL_LOG_ERROR, "%s: writing failed: %s", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int new_key(const char *path, struct tls_psk *out, const char *what)
{
	int r = unit_key_generate(out, pair_posix_entropy, NULL);
	if (r < 0) {
		plog(HAL_LOG_ERROR, "unit key: %s", strerror(-r));
		return -1;
	}
	char host[64] = "";
	if (gethostname(host, sizeof(host) - 1) < 0 || !host[0] || strpbrk(host, "\r\n"))
		snprintf(host, sizeof(host), "espstm-bridge");
	host[sizeof(host) - 1] = '\0';
	char comment[128], text[512];
	snprintf(comment, sizeof(comment), "espstm unit key for %s (secret; mode 0600)", host);
	int n = unit_key_format(out, comment, text, sizeof(text));
	if (n < 0 || (size_t)n >= sizeof(text)) {
		plog(HAL_LOG_ERROR, "unit key: cannot format (%d)", n);
		wipe(out, sizeof(*out));
		return -1;
	}
	r = write_file(path, text, strlen(text), 0600);
	wipe(text, sizeof(text));
	if (r < 0) {
		wipe(out, sizeof(*out));
		return -1;
	}
	plog(HAL_LOG_INFO, "unit key %s in %s (identity %s)", what, path, out->identity);
	return 0;
}

int pair_posix_load(const char *path, struct tls_psk *out)
{
	char text[FILE_MAX];
	int n = read_file(path, text, sizeof(text), 1);
	if (n == -ENOENT)
		return new_key(path, out, "created");
	if (n < 0)
		return -1;
	char err[128] = "";
	int r = unit_key_parse(text, (size_t)n, out, err, sizeof(err));
	wipe(text, sizeof(text));
	if (r < 0) {
		plog(HAL_LOG_ERROR, "%s: %s", path, err[0] ? err : strerror(-r));
		wipe(out, sizeof(*out));
		return -1;
	}
	return 0;
}

int pair_posix_rotate(const char *path, struct tls_psk *out)
{
	if (path)
		return new_key(path, out, "rotated");
	int r = unit_key_generate(out, pair_posix_entropy, NULL); /* a key for this run only */
	if (r < 0) {
		plog(HAL_LOG_ERROR, "unit key: %s", strerror(-r));
		return -1;
	}
	plog(HAL_LOG_INFO, "unit key rotated (identity %s, not stored: no key file)",
	     out->identity);
	return 0;
}

int pair_posix_cert_paths(const char *key_path, char *cert, char *certkey, size_t cap)
{
	size_t l = strlen(key_path);
	if (l >= 4 && strcmp(key_path + l - 4, ".key") == 0)
		l -= 4;
	if (snprintf(cert, cap, "%.*s.cert.pem", (int)l, key_path) >= (int)cap ||
	    snprintf(certkey, cap, "%.*s.certkey.pem", (int)l, key_path) >= (int)cap)
		return -ENAMETOOLONG;
	return 0;
}

static int make_cert(const char *cp, const char *kp, const char *cn, struct pair_cert *c)
{
	int r = self_cert_make(cn, (int64_t)time(NULL), pair_posix_entropy, NULL, c->key_pem,
	                       sizeof(c->key_pem), c->cert_pem, sizeof(c->cert_pem));
	if (r < 0) {
		plog(HAL_LOG_ERROR, "https: cannot make a certificate: %s", strerror(-r));
		return -1;
	}
	if (!cp) {
		plog(HAL_LOG_INFO, "https: certificate for this run only (no key file)");
		return 0;
	}
	/* the key first: a certificate never exists without its key */
	if (write_file(kp, c->key_pem, strlen(c->key_pem), 0600) < 0)
		return -1;
	if (write_file(cp, c->cert_pem, strlen(c->cert_pem), 0644) < 0) {
		unlink(kp);
		return -1;
	}
	plog(HAL_LOG_INFO, "https: certificate created in %s (key %s)", cp, kp);
	return 0;
}

int pair_posix_cert(const char *key_path, const char *cn, struct pair_cert *c)
{
	memset(c, 0, sizeof(*c));
	char cp[4096], kp[4096];
	if (!key_path) {
		if (make_cert(NULL, NULL, cn, c) < 0)
			return -1;
		return self_cert_pin((const uint8_t *)c->cert_pem, strlen(c->cert_pem), c->pin,
		                     sizeof(c->pin)) == 0
		           ? 0
		           : -1;
	}
	if (pair_posix_cert_paths(key_path, cp, kp, sizeof(cp)) < 0) {
		plog(HAL_LOG_ERROR, "%s: name too long", key_path);
		return -1;
	}
	int nk = read_file(kp, c->key_pem, sizeof(c->key_pem), 1);
	int nc = read_file(cp, c->cert_pem, sizeof(c->cert_pem), 0);
	if ((nk < 0 && nk != -ENOENT) || (nc < 0 && nc != -ENOENT))
		return -1;
	if (nk == -ENOENT && nc == -ENOENT) {
		if (make_cert(cp, kp, cn, c) < 0)
			return -1;
	} else if (nk == -ENOENT || nc == -ENOENT) {
		plog(HAL_LOG_ERROR,
		     "https: %s exists but %s does not; remove %s too to make a new "
		     "certificate (its pin changes: paired hosts must accept it again)",
		     nk == -ENOENT ? cp : kp, nk == -ENOENT ? kp : cp, nk == -ENOENT ? cp : kp);
		return -1;
	} else if (self_cert_check_pair(c->key_pem, c->cert_pem) != 0) {
		plog(HAL_LOG_ERROR,
		     "https: %s and %s are not a certificate and its key; remove both to make a "
		     "new certificate (its pin changes: paired hosts must accept it again)",
		     cp, kp);
		wipe(c, sizeof(*c));
		return -1;
	}
	int r = self_cert_pin((const uint8_t *)c->cert_pem, strlen(c->cert_pem), c->pin,
	                      sizeof(c->pin));
	if (r < 0) {
		plog(HAL_LOG_ERROR, "https: %s: no pin (%s)", cp, strerror(-r));
		wipe(c, sizeof(*c));
		return -1;
	}
	return 0;
}
