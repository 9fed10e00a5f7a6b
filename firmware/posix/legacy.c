/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge --legacy: the seed firmware's (EspStmRemote) two ports for the one target.
 *  - raw port (default 1234): plain byte bridge (bridge_force_raw: no Telnet detection). It
 *    shares main.c's single client slot with the RFC 2217 port: one data client at a time.
 *  - control port (default 1235): one client at a time (as in the seed); its bytes go to
 *    legacy_control_input() (firmware/core/legacy.h), answers are written back. Usable while
 *    a data client is connected. A connection whose first bytes look like an HTTP request
 *    (a browser sent by a web page) runs nothing and is closed.
 * With a unit key both ports refuse every client unless plaintext is on (tls_port.h).
 */
#include "legacy_posix.h"
#include "legacy.h"
#include "allow_posix.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	struct legacy_posix_hooks h;
	uv_tcp_t raw, ctl;
	uv_tcp_t *ctl_client;
	struct legacy_ctl ctl_state; /* the control client's HTTP guard */
} L;

static const char plain_off[] = "espstm-bridge: the legacy ports are off on this unit: "
                                "plaintext is off (enable plaintext in the settings)\r\n";

int legacy_posix_parse_ports(const char *s, uint32_t *raw, uint32_t *ctl)
{
	char *end;
	errno = 0;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	unsigned long a = strtoul(s, &end, 10);
	if (errno || *end != ',' || a > 65535)
		return -EINVAL;
	const char *t = end + 1;
	if (*t < '0' || *t > '9')
		return -EINVAL;
	unsigned long b = strtoul(t, &end, 10);
	if (errno || *end != '\0' || b > 65535)
		return -EINVAL;
	if (a == b && a != 0)
		return -EINVAL;
	*raw = (uint32_t)a;
	*ctl = (uint32_t)b;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	free(h);
}

static void on_raw_conn(uv_stream_t *server, int status)
{
	int was = bridge_connected(L.h.br);
	L.h.on_conn(server, status); /* main.c: accepts into the single slot or says busy */
	if (!was && bridge_connected(L.h.br)) {
		bridge_force_raw(L.h.br);
		bridge_log(L.h.br, HAL_LOG_INFO, "legacy: raw port client");
		L.h.pump(L.h.app);
	}
}

static void on_written(uv_write_t *req, int status)
{
	(void)status;
	free(req);
}

/* Copy and queue text to a control client. */
static void ctl_send(uv_tcp_t *c, const char *p, size_t n, uv_write_cb cb)
{
	uv_write_t *req = malloc(sizeof(*req) + n);
	if (!req)
		return;
	char *copy = (char *)(req + 1);
	memcpy(copy, p, n);
	uv_buf_t b = uv_buf_init(copy, (unsigned)n);
	if (uv_write(req, (uv_stream_t *)c, &b, 1, cb) < 0)
		free(req);
}

static void on_ctl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char rbuf[256];
	(void)h;
	(void)hint;
	*buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_busy_written(uv_write_t *req, int status);

static void ctl_emit(void *ctx, const char *line, size_t len)
{
	ctl_send(ctx, line, len, on_written);
}

static void on_ctl_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	uv_tcp_t *c = (uv_tcp_t *)st;
	if (nread < 0) {
		bridge_log(L.h.br, HAL_LOG_INFO, "legacy: control client disconnected");
		if (L.ctl_client == c)
			L.ctl_client = NULL;
		uv_close((uv_handle_t *)c, on_closed);
		return;
	}
	if (nread > 0 && legacy_control_input(&L.ctl_state, L.h.br, (const uint8_t *)buf->base,
	                                      (size_t)nread, ctl_emit, c)) {
		/* an HTTP request: answered and closed, nothing ran */
		uv_read_stop(st);
		if (L.ctl_client == c)
			L.ctl_client = NULL;
		ctl_send(c, http_lookalike_answer, strlen(http_lookalike_answer), on_busy_written);
		return;
	}
	if (nread > 0)
		L.h.pump(L.h.app);
}

static void on_busy_written(uv_write_t *req, int status)
{
	(void)status;
	uv_close((uv_handle_t *)req->handle, on_closed);
	free(req);
}

static void on_ctl_conn(uv_stream_t *server, int status)
{
	if (status < 0)
		return;
	uv_tcp_t *c = malloc(sizeof(*c));
	if (!c)
		return;
	uv_tcp_init(server->loop, c);
	uv_unref((uv_handle_t *)c);
	if (uv_accept(server, (uv_stream_t *)c) < 0) {
		uv_close((uv_handle_t *)c, on_closed);
		return;
	}
	if (!allow_posix_admit(c, "legacy control"))
		return; /* refused: line written, closed */
	if (L.h.plain_ok && !L.h.plain_ok()) {
		bridge_log(L.h.br, HAL_LOG_INFO,
		           "legacy: control client refused (plaintext is off)");
		ctl_send(c, plain_off, sizeof(plain_off) - 1, on_busy_written);
		return;
	}
	if (L.ctl_client) {
		static const char msg[] = "ERR busy: another control client is connected\r\n";
		bridge_log(L.h.br, HAL_LOG_INFO, "legacy: second control client refused");
		ctl_send(c, msg, sizeof(msg) - 1, on_busy_written);
		return;
	}
	uv_tcp_nodelay(c, 1);
	L.ctl_client = c;
	legacy_ctl_init(&L.ctl_state);
	bridge_log(L.h.br, HAL_LOG_INFO, "legacy: control client connected");
	uv_read_start((uv_stream_t *)c, on_ctl_alloc, on_ctl_read);
}

static int listen_on(uv_loop_t *loop, uv_tcp_t *t, const char *host, uint32_t port,
                     uv_connection_cb cb, void *data, unsigned *actual)
{
	struct sockaddr_in sa;
	int r = uv_ip4_addr(host, (int)port, &sa);
	if (r < 0)
		return r;
	uv_tcp_init(loop, t);
	t->data = data;
	r = uv_tcp_bind(t, (const struct sockaddr *)&sa, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)t, 4, cb);
	if (r < 0)
		return r;
	uv_unref((uv_handle_t *)t);
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	uv_tcp_getsockname(t, (struct sockaddr *)&ss, &sl);
	*actual = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

int legacy_posix_start(uv_loop_t *loop, const char *host, uint32_t raw, uint32_t ctl,
                       const struct legacy_posix_hooks *h)
{
	L.h = *h;
	unsigned ar = 0, ac = 0;
	int r = listen_on(loop, &L.raw, host, raw, on_raw_conn, h->app, &ar);
	if (r < 0) {
		fprintf(stderr, "espstm-bridge: legacy raw port %s:%u: %s\n", host, (unsigned)raw,
		        uv_strerror(r));
		return r;
	}
	r = listen_on(loop, &L.ctl, host, ctl, on_ctl_conn, NULL, &ac);
	if (r < 0) {
		fprintf(stderr, "espstm-bridge: legacy control port %s:%u: %s\n", host,
		        (unsigned)ctl, uv_strerror(r));
		return r;
	}
	fprintf(stderr, "espstm-bridge: legacy raw port on %s:%u, control port on %s:%u\n", host,
	        ar, host, ac);
	return 0;
}
