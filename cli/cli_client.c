/* SPDX-License-Identifier: MIT */
/* cli_client: one request/answer exchange on espstmd's control socket. See cli_client.h. */
#include "cli_client.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
	int64_t l = deadline - now_ms();
	return l < 0 ? 0 : (int)l;
}

static int fail(int err, enum cli_stage st, enum cli_stage *stage, int fd)
{
	if (fd >= 0)
		close(fd);
	if (stage)
		*stage = st;
	return -err;
}

int cli_request(const char *path, const char *line, int timeout_ms, char **reply,
                enum cli_stage *stage)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 1);
	size_t plen = strlen(path);

	*reply = NULL;
	if (stage)
		*stage = CLI_STAGE_NONE;
	if (plen == 0)
		return fail(ENOENT, CLI_STAGE_CONNECT, stage, -1);
	if (plen >= sizeof sa.sun_path)
		return fail(ENAMETOOLONG, CLI_STAGE_CONNECT, stage, -1);
	memcpy(sa.sun_path, path, plen + 1);

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(errno, CLI_STAGE_CONNECT, stage, -1);
	/* unix(7): a blocking connect to a full backlog waits, bounded by SO_SNDTIMEO (then
	 * EAGAIN); the same timeout bounds send(). */
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		int e = errno == EAGAIN ? ETIMEDOUT : errno;
		return fail(e, CLI_STAGE_CONNECT, stage, fd);
	}

	size_t llen = strlen(line);
	char *req = malloc(llen + 2);
	if (!req)
		return fail(ENOMEM, CLI_STAGE_SEND, stage, fd);
	memcpy(req, line, llen);
	req[llen] = '\n';
	req[llen + 1] = '\0';
	size_t off = 0;
	while (off < llen + 1) {
		ssize_t w = send(fd, req + off, llen + 1 - off, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			int e = errno == EAGAIN ? ETIMEDOUT : errno;
			free(req);
			return fail(e, CLI_STAGE_SEND, stage, fd);
		}
		off += (size_t)w;
	}
	free(req);

	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return fail(ENOMEM, CLI_STAGE_RECEIVE, stage, fd);
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, left_ms(deadline));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			free(buf);
			return fail(e, CLI_STAGE_RECEIVE, stage, fd);
		}
		if (r == 0) {
			free(buf);
			return fail(ETIMEDOUT, CLI_STAGE_RECEIVE, stage, fd);
		}
		if (n + 1 >= cap) {
			if (cap >= CLI_REPLY_MAX + 1) {
				free(buf);
				return fail(EMSGSIZE, CLI_STAGE_RECEIVE, stage, fd);
			}
			size_t nc = cap * 2 > CLI_REPLY_MAX + 1 ? CLI_REPLY_MAX + 1 : cap * 2;
			char *nb = realloc(buf, nc);
			if (!nb) {
				free(buf);
				return fail(ENOMEM, CLI_STAGE_RECEIVE, stage, fd);
			}
			buf = nb;
			cap = nc;
		}
		ssize_t got = recv(fd, buf + n, cap - 1 - n, 0);
		if (got < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			int e = errno;
			free(buf);
			return fail(e, CLI_STAGE_RECEIVE, stage, fd);
		}
		if (got == 0) { /* closed: only a complete line is an answer */
			free(buf);
			return fail(ECONNRESET, CLI_STAGE_RECEIVE, stage, fd);
		}
		char *nl = memchr(buf + n, '\n', (size_t)got);
		n += (size_t)got;
		if (nl) {
			n = (size_t)(nl - buf);
			if (n && buf[n - 1] == '\r')
				n--;
			buf[n] = '\0';
			close(fd);
			*reply = buf;
			return 0;
		}
	}
}
