/* SPDX-License-Identifier: MIT */
/*
 * Connection limits of espstm-bridge's HTTP server (libmicrohttpd, http.c), so that a slow
 * client (slowloris) or a burst of connections cannot keep the admin out:
 *  - at most HTTP_LIMITS_TOTAL connections (MHD_OPTION_CONNECTION_LIMIT); when the last
 *    slot is taken, the oldest connection without a complete request is closed;
 *  - at most HTTP_LIMITS_PER_IP live connections per client address (accept policy; a
 *    connection whose peer has closed its side does not count): a newcomer beyond it closes
 *    the address's oldest connection without a whole request (so the admin behind the
 *    attacker's address, e.g. the same NAT, still gets in), else it is refused;
 *  - a request must arrive whole within HTTP_LIMITS_REQUEST_MS of the connection's start
 *    (or of the previous request's end), however slowly its bytes trickle in; an idle
 *    connection is closed after HTTP_LIMITS_IDLE_S (MHD_OPTION_CONNECTION_TIMEOUT);
 *  - connections whose peer closed before libmicrohttpd read its FIN are closed at once.
 *    Why: MHD_USE_EPOLL registers sockets edge-triggered and treats a short read as
 *    "drained"; a client that sent a partial request and closed while the socket waited in
 *    the listen queue (a burst) queues data and FIN before the first read, no further edge
 *    ever comes, and the connection stayed until the idle timeout (30 s then): 160 such
 *    connections with a limit of 16 kept the API dead for 275 s. The sweep sees the FIN
 *    (POLLRDHUP with nothing left to read) and wakes libmicrohttpd with shutdown(SHUT_RD),
 *    which makes its next read return 0 (end of stream) so it closes the connection.
 * Everything runs on the loop thread (no locks). Linux (POLLRDHUP, FIONREAD).
 */
#ifndef ESPSTM_HTTP_LIMITS_H
#define ESPSTM_HTTP_LIMITS_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define HTTP_LIMITS_TOTAL      32
#define HTTP_LIMITS_PER_IP     4
#define HTTP_LIMITS_IDLE_S     10
#define HTTP_LIMITS_REQUEST_MS 10000u

/* The options for MHD_start_daemon (MHD_OPTION_ARRAY, http_limits_options()): connection
 * limit, idle timeout, connection notification. Static, MHD_OPTION_END-terminated. */
const struct MHD_OptionItem *http_limits_options(void);

/* MHD_AcceptPolicyCallback (MHD_start_daemon's apc): when addr already has
 * HTTP_LIMITS_PER_IP live connections, closes its oldest one without a whole request, or,
 * when every one carries a request, returns MHD_NO (the new one is closed at once); else
 * MHD_YES. */
enum MHD_Result http_limits_accept(void *cls, const struct sockaddr *addr, socklen_t len);

/* From the access handler: done = 1 when c's request has arrived whole or is an
 * authorised streaming upload (its deadline no longer applies). */
void http_limits_request_seen(struct MHD_Connection *c, int done);

/* From the request-completed callback: c may carry another request (keep-alive); its
 * deadline starts now. */
void http_limits_request_over(struct MHD_Connection *c);

/* After every MHD_run(): closes connections whose peer left and those past their
 * deadline (libmicrohttpd closes them in its next run: its epoll fd becomes readable).
 * Returns 1 when a connection was closed since the last call: run MHD_run() again at once
 * (at its connection limit libmicrohttpd stops listening and resumes only in a later run,
 * which the epoll fd does not announce), else 0. */
int http_limits_sweep(void);

/* The address of sa as bytes: 4 (IPv4, also IPv4-mapped IPv6) or 16 (IPv6) into out;
 * returns the length, 0 for another family or NULL. */
size_t http_limits_addr(const struct sockaddr *sa, uint8_t out[16]);

#endif
