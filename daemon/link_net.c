/* SPDX-License-Identifier: MIT */
/*
 * link_net: a link's connections (see link_impl.h): resolve the bridge's name, try each
 * address with a connect timeout, back off between failed rounds, socket options, and the
 * one timer's phases (connect timeout, negotiation timeout, reconnect backoff).
 */
#include "link_impl.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>

static void conn_close_cb(uv_handle_t *h)
{
	link_tls_conn_free(h->data);
	free(h->data);
}

/* Detach and close the current connections, data and (legacy) control (no callbacks to
 * the tty). */
void link_conn_drop(struct link *l)
{
	struct conn *c = l->conn;

	if (c) {
		l->conn = NULL;
		c->l = NULL;
		if (l->reading)
			uv_read_stop((uv_stream_t *)&c->tcp);
		uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	}
	l->reading = false;
	c = l->cconn;
	if (c) {
		l->cconn = NULL;
		c->l = NULL;
		uv_close((uv_handle_t *)&c->tcp, conn_close_cb);
	}
	l->lg.cline_len = 0;
}

struct conn *link_conn_new(struct link *l, bool control)
{
	struct conn *c = calloc(1, sizeof *c);

	if (!c)
		return NULL;
	c->l = l;
	c->control = control;
	c->tcp.data = c;
	c->creq.data = c;
	c->wreq.data = c;
	return c;
}

/* Both connections: TCP_NODELAY (small commands and AN3155 frames go out at once), the
 * configured keepalive (link.h link_config.keepalive_s; 0 turns it off), and a bounded
 * kernel send buffer: without it Linux grows it to megabytes, which at 57600 baud is
 * minutes of output that tcdrain would treat as delivered and a flush could not take back.
 * LINK_SNDBUF (Linux doubles it, socket(7)) still covers the bandwidth-delay product of a
 * 921600-baud line (92 KB/s) at far more than WiFi's round trip. */
#define LINK_SNDBUF 32768 /* bytes, as passed to SO_SNDBUF */
/* With keepalive on, also TCP_USER_TIMEOUT (tcp(7), RFC 5482) of keepalive_s * 1000 +
 * USER_TIMEOUT_EXTRA_MS: keepalive probes only run on an idle connection, so a bridge that
 * loses power while we are sending would otherwise be noticed only after the kernel's
 * retransmissions give up (about 15 minutes). */
#define USER_TIMEOUT_EXTRA_MS 10000
void link_conn_opts(struct link *l, struct conn *c)
{
	int sndbuf = LINK_SNDBUF;
	uv_os_fd_t fd;

	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_send_buffer_size((uv_handle_t *)&c->tcp, &sndbuf) < 0)
		log_debug("%s: cannot set the socket send buffer size", l->name);
	if (uv_tcp_keepalive(&c->tcp, l->cfg.keepalive_s > 0, l->cfg.keepalive_s) < 0)
		log_debug("%s: cannot set TCP keepalive", l->name);
	if (l->cfg.keepalive_s > 0 && uv_fileno((const uv_handle_t *)&c->tcp, &fd) == 0) {
		uint64_t ms = (uint64_t)l->cfg.keepalive_s * 1000u + USER_TIMEOUT_EXTRA_MS;
		unsigned int to = ms > 0x7fffffffu ? 0x7fffffffu : (unsigned int)ms;
		if (setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &to, sizeof to) < 0)
			log_debug("%s: cannot set TCP_USER_TIMEOUT", l->name);
	}
}

/* A byte count of c's kernel socket queues: SIOCOUTQ (sent, not yet acknowledged by the
 * peer) or SIOCINQ (readable now), tcp(7). 0 if c is not connected or the kernel cannot
 * tell. */
static size_t conn_queue(const struct conn *c, unsigned long req)
{
	uv_os_fd_t fd;
	int v = 0;

	if (!c || !c->connected || uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0)
		return 0;
	if (ioctl(fd, req, &v) < 0 || v < 0)
		return 0;
	return (size_t)v;
}

size_t link_conn_unacked(const struct conn *c)
{
	return conn_queue(c, SIOCOUTQ);
}

size_t link_conn_readable(const struct conn *c)
{
	return conn_queue(c, SIOCINQ);
}

void link_gai_drop(struct link *l)
{
	if (!l->gai)
		return;
	l->gai->l = NULL;
	uv_cancel((uv_req_t *)&l->gai->req); /* fails harmlessly if already running */
	l->gai = NULL;
}

void link_ai_drop(struct link *l)
{
	if (l->ai_list)
		uv_freeaddrinfo(l->ai_list);
	l->ai_list = l->ai_next = NULL;
}

void link_fmt_status(int status, char *out, size_t cap)
{
	snprintf(out, cap, "%s", status == UV_ETIMEDOUT ? "timed out" : uv_strerror(status));
}

/* A whole round (resolution + every address) failed: log once, wait, retry. */
void link_round_failed(struct link *l, int status)
{
	link_round_failed_why(l, status, NULL, false);
}

void link_round_failed_why(struct link *l, int status, const char *reason, bool quiet)
{
	char why[128];

	link_ai_drop(l);
	l->attempts++;
	if (reason)
		snprintf(why, sizeof why, "%s", reason);
	else
		link_fmt_status(status, why, sizeof why);
	if (!quiet)
		link_note_error(l, "connect to %.40s: %.40s", l->addr, why);
	if (quiet) /* the caller logged it */
		log_debug("%s: attempt %u to %s failed: %s; next in %u ms", l->name, l->attempts,
		          l->addr, why, (unsigned)l->backoff_ms);
	else if (l->attempts == 1 && !l->lost_logged)
		log_warn("%s: cannot connect to %s: %s; retrying every %u..%u ms", l->name, l->addr,
		         why, (unsigned)l->cfg.reconnect_min_ms, (unsigned)l->cfg.reconnect_max_ms);
	else if (status != l->fail_status)
		log_info("%s: still cannot connect to %s: %s", l->name, l->addr, why);
	else
		log_debug("%s: attempt %u to %s failed: %s; next in %u ms", l->name, l->attempts,
		          l->addr, why, (unsigned)l->backoff_ms);
	l->fail_status = status;
	link_timer_arm(l, PH_BACKOFF, l->backoff_ms);
	l->backoff_ms = l->backoff_ms * 2 > l->cfg.reconnect_max_ms ? l->cfg.reconnect_max_ms
	                                                            : l->backoff_ms * 2;
}
/* The data connection's TCP connect finished: on success, set its options and let the
 * protocol start (RFC 2217 negotiation, or the legacy control connection). */
static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct link *l = c->l;

	if (!l || l->closing)
		return;
	if (status < 0) {
		l->last_status = status;
		link_conn_drop(l);
		link_connect_next(l);
		return;
	}
	c->connected = true;
	link_conn_opts(l, c);
	l->tx_suspended = false;
	l->rx_susp = false;
	if (l->tls)
		link_tls_start(l, c); /* the protocol starts after the handshake */
	else
		l->proto->connected(l);
}

/* Try the next resolved address, or fail the round. */
void link_connect_next(struct link *l)
{
	struct addrinfo *ai = l->ai_next;
	struct conn *c;
	int r;

	if (!ai) {
		link_round_failed(l, l->last_status ? l->last_status : UV_ECONNREFUSED);
		return;
	}
	l->ai_next = ai->ai_next;
	c = link_conn_new(l, false);
	if (!c) {
		link_round_failed(l, UV_ENOMEM);
		return;
	}
	r = uv_tcp_init(l->loop, &c->tcp);
	if (r < 0) {
		free(c);
		l->last_status = r;
		link_connect_next(l);
		return;
	}
	l->conn = c;
	memset(&l->cur_addr, 0, sizeof l->cur_addr);
	if (ai->ai_addrlen <= sizeof l->cur_addr)
		memcpy(&l->cur_addr, ai->ai_addr, ai->ai_addrlen);
	r = uv_tcp_connect(&c->creq, &c->tcp, ai->ai_addr, connect_cb);
	if (r < 0) {
		l->last_status = r;
		link_conn_drop(l);
		link_connect_next(l);
		return;
	}
	link_timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
}

static void gai_cb(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct gai *g = req->data;
	struct link *l = g->l;

	free(g);
	if (!l || l->closing) {
		if (res)
			uv_freeaddrinfo(res);
		return;
	}
	l->gai = NULL;
	if (status < 0) {
		if (res)
			uv_freeaddrinfo(res);
		link_round_failed(l, status);
		return;
	}
	l->ai_list = l->ai_next = res;
	l->last_status = 0;
	link_connect_next(l);
}

void link_start_attempt(struct link *l)
{
	struct addrinfo hints;
	char port[8];
	struct gai *g;
	int r;

	if (l->closing)
		return;
	link_set_state(l, LINK_CONNECTING);
	if (l->attempts == 0 && !l->lost_logged)
		log_info("%s: connecting to %s%s", l->name, l->addr, l->tls ? " (TLS-PSK)" : "");
	if (l->tls && link_tls_load_key(l) < 0)
		return; /* logged, backoff armed */
	g = calloc(1, sizeof *g);
	if (!g) {
		link_round_failed(l, UV_ENOMEM);
		return;
	}
	g->l = l;
	g->req.data = g;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	snprintf(port, sizeof port, "%u", (unsigned)l->cfg.port);
	l->gai = g;
	link_timer_arm(l, PH_CONNECT, l->cfg.connect_timeout_ms);
	r = uv_getaddrinfo(l->loop, &g->req, gai_cb, l->host, port, &hints);
	if (r < 0) {
		l->gai = NULL;
		free(g);
		link_round_failed(l, r);
	}
}

void link_timer_cb(uv_timer_t *t)
{
	struct link *l = t->data;
	enum phase ph = l->phase;

	l->phase = PH_NONE;
	switch (ph) {
	case PH_CONNECT:
		if (l->conn && l->conn->tls) {
			link_tls_fail(l, -ETIMEDOUT); /* the handshake's time ran out */
			break;
		}
		l->last_status = UV_ETIMEDOUT;
		if (l->gai) {
			link_gai_drop(l);
			link_round_failed(l, UV_ETIMEDOUT);
		} else {
			link_conn_drop(l);
			link_connect_next(l);
		}
		break;
	case PH_NEGOTIATE:
		if (l->paused) {
			/* we stopped reading (the tty holds data nobody reads): the bridge's
			 * answer may be unread in the socket; not its fault, wait on */
			log_debug("%s: negotiation waits for the tty to take held data", l->name);
			link_timer_arm(l, PH_NEGOTIATE, RFC2217_CLIENT_NEGOTIATE_MS);
			break;
		}
		/* RFC 2217: the negotiation timed out; legacy: both connections stayed open */
		l->proto->negotiate_timeout(l);
		break;
	case PH_BACKOFF:
		link_start_attempt(l);
		break;
	case PH_NONE:
		break;
	}
}

/* The socket part of link_get_stats: peer from uv_tcp_getpeername of the data connection
 * and rtt_us from getsockopt(TCP_INFO) tcpi_rtt (Linux tcp(7)); left as they are when the
 * kernel cannot tell. */
void link_peer_stats(const struct link *l, struct link_stats *st)
{
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char ip[INET6_ADDRSTRLEN] = "";
	uv_os_fd_t fd;

	if (uv_tcp_getpeername(&l->conn->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
			uv_ip6_name(a, ip, sizeof ip);
			snprintf(st->peer, sizeof st->peer, "[%s]:%u", ip,
			         (unsigned)ntohs(a->sin6_port));
		} else if (ss.ss_family == AF_INET) {
			const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
			uv_ip4_name(a, ip, sizeof ip);
			snprintf(st->peer, sizeof st->peer, "%s:%u", ip,
			         (unsigned)ntohs(a->sin_port));
		}
	}
	if (uv_fileno((const uv_handle_t *)&l->conn->tcp, &fd) == 0) {
		struct tcp_info ti;
		socklen_t tl = sizeof ti;
		memset(&ti, 0, sizeof ti);
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
		    tl >= offsetof(struct tcp_info, tcpi_rtt) + sizeof ti.tcpi_rtt)
			st->rtt_us = ti.tcpi_rtt;
	}
}
