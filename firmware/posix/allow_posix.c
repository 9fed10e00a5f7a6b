/* SPDX-License-Identifier: MIT */
#include "allow_posix.h"
#include "allowlist.h"
#include "hal.h"
#include "plog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct allowlist AL; /* zero: allow all */

int allow_posix_set(const char *list, char *err, size_t cap)
{
	if (!list || !*list) {
		allowlist_init(&AL);
		if (cap)
			err[0] = '\0';
		return 0;
	}
	return allowlist_parse(&AL, list, err, cap);
}

const char *allow_posix_describe(void)
{
	static char buf[ALLOWLIST_MAX * 20];
	return allowlist_format(&AL, buf, sizeof(buf));
}

static void on_closed(uv_handle_t *h)
{
	free(h);
}

static void on_refused_written(uv_write_t *req, int status)
{
	(void)status;
	uv_close((uv_handle_t *)req->handle, on_closed);
	free(req);
}

int allow_posix_admit(uv_tcp_t *c, const char *port_name)
{
	if (AL.count == 0)
		return 1;
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	char text[INET6_ADDRSTRLEN] = "?";
	int ok = 0;
	if (uv_tcp_getpeername(c, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
			uv_ip4_name(in, text, sizeof(text));
			ok = allowlist_allows(&AL, ntohl(in->sin_addr.s_addr));
		} else if (ss.ss_family == AF_INET6) {
			uv_ip6_name((const struct sockaddr_in6 *)&ss, text, sizeof(text));
		}
	}
	if (ok)
		return 1;
	plog(HAL_LOG_INFO, "client %s not allowed on the %s port (allowed: %s); closed", text,
	     port_name, allow_posix_describe());
	char msg[sizeof(text) + 48];
	int n = snprintf(msg, sizeof(msg), "espstm-bridge: client %s not allowed\r\n", text);
	uv_write_t *req = malloc(sizeof(*req) + (size_t)n);
	if (!req) {
		uv_close((uv_handle_t *)c, on_closed);
		return 0;
	}
	char *copy = (char *)(req + 1);
	memcpy(copy, msg, (size_t)n);
	uv_buf_t b = uv_buf_init(copy, (unsigned)n);
	if (uv_write(req, (uv_stream_t *)c, &b, 1, on_refused_written) < 0) {
		free(req);
		uv_close((uv_handle_t *)c, on_closed);
	}
	return 0;
}
