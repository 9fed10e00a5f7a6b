/* SPDX-License-Identifier: MIT */
/* Connection limits of espstm-bridge's HTTP server (http_limits.h): a table of the open
 * connections (from MHD_OPTION_NOTIFY_CONNECTION), an accept policy per address and a sweep
 * after every MHD_run(). */
#include "http_limits.h"

#include "hal.h"
#include "plog.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

struct lconn {
	struct MHD_Connection *c; /* NULL: free */
	int fd;
	uint8_t addr[16];
	uint8_t len;
	uint8_t done;        /* the current request arrived whole (or streams authorised) */
	uint8_t kicked;      /* shut down by us: libmicrohttpd closes it next */
	uint8_t kick_unread; /* the last wake-up found data unread */
	uint64_t since;      /* ms: start of the connection or end of its previous request */
	uint64_t kicked_at;  /* ms: the last wake-up */
};

static struct lconn L[HTTP_LIMITS_TOTAL];
static struct {
	unsigned slow, evicted, refused; /* since the last log line */
	int closed;                      /* a connection closed since the last sweep */
	uint64_t logged;                 /* ms */
} S;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

size_t http_limits_addr(const struct sockaddr *sa, uint8_t out[16])
{
	if (sa && sa->sa_family == AF_INET) {
		memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 4;
	}
	if (sa && sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			memcpy(out, a->s6_addr + 12, 4);
			return 4;
		}
		memcpy(out, a->s6_addr, 16);
		return 16;
	}
	return 0;
}

/* 1 when the peer has closed its side (FIN or reset seen by the kernel). */
static int peer_gone(int fd, int *unread)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
	if (poll(&p, 1, 0) != 1 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR)))
		return 0;
	int n = 0;
	if (ioctl(fd, FIONREAD, &n) < 0)
		n = 0;
	*unread = n;
	return 1;
}

/* Shut c down: libmicrohttpd's next read returns 0 and it closes the connection. how:
 * SHUT_RD (the peer left: only wake it up) or SHUT_RDWR (we end it: the peer sees FIN).
 * Every shutdown() wakes the socket's waiters (a new epoll edge) even when repeated. */
static void kick(struct lconn *e, int how)
{
	if (how == SHUT_RDWR) {
		/* we end it: drop what it sent so far, else libmicrohttpd reads that first and
		 * stops before the end of stream (one more wake-up, see the sweep) */
		char junk[2048];
		for (int i = 0; i < 32 && recv(e->fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
			;
	}
	shutdown(e->fd, how);
	int n = 0;
	if (ioctl(e->fd, FIONREAD, &n) < 0)
		n = 0;
	e->kick_unread = n > 0;
	e->kicked = 1;
	e->kicked_at = now_ms();
}

static struct lconn *find(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* The oldest connection without a complete request, other than skip; NULL: none. */
static struct lconn *oldest_incomplete(const struct lconn *skip)
{
	struct lconn *best = NULL;
	for (unsigned i = 0; i < HTTP_LIMITS_TOTAL; i++) {
		struct lconn *e = &L[i];
		if (e->c && e != skip && !e->done && !e->kicked &&
		    (!best || e->since < best->since))
			best = e;
	}
	return best;
}

static void notify(void *cls, struct MHD_Connection *c, void **socket_context,
                   enum MHD_ConnectionNotificationCode toe)
{
	(void)cls;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		struct lconn *e = *socket_context;
		if (e)
			memset(e, 0, sizeof(*e));
		*socket_context = NULL;
		S.closed = 1;
		return;
	}
	struct lconn *e = NULL;
	unsigned used = 0;
	for (unsigned i = 0; i < HTTP_LIMITS_TOTAL; i++) {
		if (L[i].c)
			used++;
		else if (!e)
			e = &L[i];
	}
	const union MHD_ConnectionInfo *fi =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	const union MHD_ConnectionInfo *ai =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (!e || !fi) {
		*socket_context = NULL; /* not tracked (cannot happen: same limit) */
		return;
	}
	memset(e, 0, sizeof(*e));
	e->c = c;
	e->fd = fi->connect_fd;
	e->len = (uint8_t)http_limits_addr(ai ? ai->client_addr : NULL, e->addr);
	e->since = now_ms();
	*socket_context = e;
	/* the last slot: make room for the next client (a slow one cannot hold them all) */
	if (used + 1 >= HTTP_LIMITS_TOTAL) {
		struct lconn *old = oldest_incomplete(e);
		if (old) {
			kick(old, SHUT_RDWR);
			S.evicted++;
		}
	}
}

const struct MHD_OptionItem *http_limits_options(void)
{
	static const struct MHD_OptionItem o[] = {
	    {MHD_OPTION_CONNECTION_LIMIT, HTTP_LIMITS_TOTAL, NULL},
	    {MHD_OPTION_CONNECTION_TIMEOUT, HTTP_LIMITS_IDLE_S, NULL},
	    {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)notify, NULL},
	    {MHD_OPTION_END, 0, NULL}};
	return o;
}

enum MHD_Result http_limits_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
	(void)cls;
	(void)len;
	uint8_t a[16];
	size_t n = http_limits_addr(addr, a);
	unsigned live = 0;
	struct lconn *old = NULL; /* the address's oldest connection without a whole request */
	for (unsigned i = 0; i < HTTP_LIMITS_TOTAL; i++) {
		struct lconn *e = &L[i];
		int unread;
		if (!e->c || e->kicked || e->len != n || memcmp(e->addr, a, n) != 0 ||
		    peer_gone(e->fd, &unread))
			continue;
		live++;
		if (!e->done && (!old || e->since < old->since))
			old = e;
	}
	if (live < HTTP_LIMITS_PER_IP)
		return MHD_YES;
	if (old) {
		/* the newcomer wins over a slow one of the same address (the admin behind the
		 * attacker's address gets in; the address still holds at most the limit) */
		kick(old, SHUT_RDWR);
		S.evicted++;
		return MHD_YES;
	}
	S.refused++; /* all its connections carry requests being answered */
	return MHD_NO;
}

void http_limits_request_seen(struct MHD_Connection *c, int done)
{
	struct lconn *e = find(c);
	if (e && done)
		e->done = 1;
}

void http_limits_request_over(struct MHD_Connection *c)
{
	struct lconn *e = find(c);
	if (e) {
		e->done = 0;
		e->since = now_ms();
	}
}

static void log_summary(uint64_t now)
{
	if (!(S.slow | S.evicted | S.refused) || now - S.logged < 10000u)
		return;
	plog(HAL_LOG_INFO,
	     "http: connection limits: %u closed without a whole request within %u s, %u closed "
	     "for a newcomer (limits %u, %u per address), %u refused",
	     S.slow, HTTP_LIMITS_REQUEST_MS / 1000u, S.evicted, HTTP_LIMITS_TOTAL,
	     HTTP_LIMITS_PER_IP, S.refused);
	S.slow = S.evicted = S.refused = 0;
	S.logged = now;
}

int http_limits_sweep(void)
{
	uint64_t now = now_ms();
	for (unsigned i = 0; i < HTTP_LIMITS_TOTAL; i++) {
		struct lconn *e = &L[i];
		if (!e->c)
			continue;
		int unread = 0;
		if (peer_gone(e->fd, &unread)) {
			/* (also after our own shutdown: POLLRDHUP) libmicrohttpd may have read the
			 * data in front of the end of stream and stopped there (a short read means
			 * "drained" to it): wake it again once nothing is left unread, at once
			 * after it read, else at most every 250 ms (a suspended connection is not
			 * read: no busy loop) */
			if (unread == 0 &&
			    (!e->kicked || e->kick_unread || now - e->kicked_at >= 250))
				kick(e, SHUT_RD);
			else if (unread > 0)
				e->kick_unread = 1;
		} else if (!e->done && !e->kicked && now - e->since > HTTP_LIMITS_REQUEST_MS) {
			kick(e, SHUT_RDWR);
			S.slow++;
		}
	}
	log_summary(now);
	int again = S.closed;
	S.closed = 0;
	return again;
}
