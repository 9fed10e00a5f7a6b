/* SPDX-License-Identifier: MIT */
/*
 * link_impl: the inside of a link, shared by its files. link.c is the transport (libuv TCP,
 * TX segment queue, RX hold, state machine, public API), link_net.c resolving, connecting
 * and backoff, link_rfc2217.c the RFC 2217 protocol (the sans-I/O client of
 * firmware/core/rfc2217_client.h), link_legacy.c the two-port legacy protocol, link_tls.c
 * the TLS-PSK layer between the socket and RFC 2217 when the device has a key. The two
 * protocols sit behind struct link_proto.
 */
#ifndef ESPSTM_LINK_IMPL_H
#define ESPSTM_LINK_IMPL_H

#include "link.h"
#include "rfc2217_client.h"

#include <netdb.h>
#include <stdbool.h>
#include <sys/socket.h>

#define RAW_READ         16384                /* bytes per socket read */
#define RXQ_CAP          (4 * RAW_READ)       /* data held for the tty, bytes */
#define RXQ_READ_MAX     (RXQ_CAP - RAW_READ) /* keep reading while holding at most this */
#define SEG_DATA_CAP     4096                 /* escaped bytes per data segment */
#define TX_GATHER        16                   /* segments per uv_write */
#define CTL_MAX          4096 /* non-data bytes (negotiation, commands) queued or in flight */
#define LEGACY_SETTLE_MS 100  /* both legacy connections open this long before LINK_UP */
#define LEGACY_ANSWER_MS 1000 /* wait for a control-port answer line at most this long */
#define CTRL_OUTQ_MS     5    /* legacy: re-check the data socket's SIOCOUTQ this often */
#define CLINE_MAX        80   /* control-port answer line kept, bytes */

enum phase { PH_NONE, PH_CONNECT, PH_NEGOTIATE, PH_BACKOFF };

enum seg_kind {
	SEG_DATA,    /* data (escaped unless legacy) for the data connection */
	SEG_CMD,     /* Telnet option or RFC 2217 command for the data connection */
	SEG_DELAY,   /* marker: wait val ms before what follows (link_action) */
	SEG_ACT_END, /* marker: link_action sequence done, re-send desired DTR/RTS */
	SEG_CTRL,    /* legacy: one command byte for the control connection */
};

struct seg {
	struct seg *next;
	size_t len;  /* bytes in buf */
	size_t cap;  /* bytes allocated for buf */
	size_t data; /* unescaped data bytes carried (0 unless SEG_DATA) */
	enum seg_kind kind;
	bool ans;     /* SEG_CMD: an RFC 2217 command whose answer is expected (cmd, val) */
	bool action;  /* SEG_CTRL: sent by link_action (clears act_busy when answered) */
	uint8_t cmd;  /* SEG_CMD with ans: client command code */
	uint32_t val; /* SEG_CMD: command value; SEG_DELAY: ms */
	uint8_t buf[];
};

struct conn_tls; /* link_tls.c: one connection's TLS session and buffers */
struct link_tls; /* link_tls.c: a link's key and TLS input state */

struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct link *l; /* NULL once detached */
	bool connected;
	bool writing;
	bool control;         /* legacy control connection */
	struct seg *inflight; /* segments owned by wreq */
	size_t inflight_data;
	size_t inflight_ctl;  /* non-data bytes in inflight */
	struct conn_tls *tls; /* TLS session (device with a key), NULL for plaintext */
};

struct gai {
	uv_getaddrinfo_t req;
	struct link *l; /* NULL once abandoned */
};

/* One wire protocol behind the transport (link_rfc2217.c, link_legacy.c). */
struct link_proto {
	const char *up_note; /* appended to the "up" log line */
	/* The data connection is up (socket options set): start the protocol. */
	void (*connected)(struct link *l);
	/* n bytes read from the data connection (l->discarding: their data is discarded). */
	void (*input)(struct link *l, const uint8_t *p, size_t n);
	/* The PH_NEGOTIATE timer ran out while reads were not paused. */
	void (*negotiate_timeout)(struct link *l);
	/* LINK_UP was just set (before on_state): send the desired state. May be NULL. */
	void (*up)(struct link *l);
	/* The connection is gone (lost or closed). */
	void (*down)(struct link *l);
	/* Encode data for the wire (tn_escape's contract). */
	size_t (*encode)(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *consumed);
	/* Desired state, already validated. */
	void (*set_line)(struct link *l, const struct link_line *ln);
	void (*set_flow)(struct link *l, enum link_flow f);
	void (*set_rts)(struct link *l, int on);
	void (*set_dtr)(struct link *l, int on);
	int (*set_break)(struct link *l, int on); /* link_set_break's returns */
	/* The protocol's part of link_purge (the local queues are done): 0 or -ENOTSUP. */
	int (*purge)(struct link *l, int which);
	/* link_action once up and connected: 0, -EBUSY, -ENOTSUP, -ENOBUFS, -ENOMEM. */
	int (*action)(struct link *l, enum link_action a);
	/* Whether the bridge can be asked to stop its data (FLOWCONTROL-SUSPEND). */
	bool (*can_suspend)(const struct link *l);
	/* Queue FLOWCONTROL-SUSPEND (on) or -RESUME at the head: 0 or a negative errno. */
	int (*rx_flow)(struct link *l, bool on);
	/* The SEG_ACT_END marker reached the head of the queue. */
	void (*action_done)(struct link *l);
};

extern const struct link_proto link_proto_rfc2217, link_proto_legacy;
extern const struct rfc2217_client_ops link_rfc2217_ops;

/* State of the legacy protocol (link_legacy.c). */
struct link_legacy {
	struct link_line line; /* desired */
	bool has_line;
	int rts, dtr;
	bool has_rts, has_dtr;
	int sent_rts, sent_dtr; /* -1: not logged on this connection */
	bool act_busy;          /* a link_action byte is queued or awaits its answer */
	bool ctrl_waiting;      /* act_wait is for a control-port answer */
	bool ctrl_action;       /* ... of a link_action byte */
	bool boot;              /* 'u' sent (bridge in bootloader mode), no 'e' since */
	bool baud_logged;
	uint64_t ctrl_since;   /* since when a control byte waits for SIOCOUTQ 0 */
	char cline[CLINE_MAX]; /* control-port answer line being received */
	size_t cline_len;
	uint8_t craw[256];
};

struct link {
	uv_loop_t *loop;
	char *name;
	char *host;
	char addr[300]; /* "host:port" or "[v6]:port" for logs */
	struct link_config cfg;
	const struct link_proto *proto;
	enum link_state state;
	struct link_callbacks cb;
	void *ctx;
	bool closing;
	unsigned handles; /* timers not yet closed (link_close frees at 0) */

	/* connecting */
	uv_timer_t timer;
	enum phase phase;
	struct gai *gai;
	struct addrinfo *ai_list, *ai_next;
	struct conn *conn;                /* data connection (RFC 2217, or legacy raw) */
	struct conn *cconn;               /* legacy control connection */
	struct sockaddr_storage cur_addr; /* address of the attempt in progress */
	uint32_t backoff_ms;
	unsigned attempts; /* failed rounds since the last up */
	int fail_status;   /* last failure status logged (dedup) */
	bool lost_logged;  /* a "lost" message was printed for this outage */
	uint64_t up_since; /* uv_now() at LINK_UP */
	int last_status;   /* last error in the current round */

	/* protocols */
	struct rfc2217_client rc;
	struct link_legacy lg;
	struct link_tls *tls; /* the device has a key (cfg.key_path): TLS-PSK, else NULL */
	bool tx_suspended;    /* FLOWCONTROL-SUSPEND from the server */
	bool rx_susp;         /* we sent FLOWCONTROL-SUSPEND on this connection (tty full) */
	uint8_t modemstate;

	/* link_action: the TX queue waits (a SEG_DELAY, or a legacy control-port answer) */
	uv_timer_t act_timer;
	bool act_wait;

	/* counters (link_get_stats) */
	uint64_t tx_bytes, rx_bytes, tx_dropped, tx_purged;
	uint32_t connects, reconnects, errors;
	char last_error[96];

	/* tx */
	struct seg *q_head, *q_tail;
	size_t tx_pending;  /* unescaped data bytes queued or in flight */
	size_t ctl_pending; /* non-data wire bytes queued or in flight (<= CTL_MAX) */
	bool ctl_overflow;  /* CTL_MAX exceeded: drop this connection (check_overflow) */
	bool want_writable;

	/* rx */
	uint8_t raw[RAW_READ];
	bool reading;
	bool paused;
	bool delivering;
	uint8_t rxq[RXQ_CAP];
	size_t rxq_off, rxq_len;
	/* input purge (link_purge 1/3): raw bytes of the stream whose data is discarded (what
	 * was readable at a purge without RFC 2217) */
	size_t discard_raw;
	bool discarding; /* decoding a part covered by discard_raw */
	uint64_t rx_purged;
};

/* link.c: the transport, for the protocols and link_net.c. None blocks; those that can
 * lose the connection say so. */
/* Count an error for link_get_stats and remember its text (printf format). */
void link_note_error(struct link *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A non-data segment of kind with the n bytes at p (copied), not queued. NULL when not
 * connected, out of memory, or CTL_MAX non-data bytes are pending (l->ctl_overflow set:
 * link_check_overflow() drops the connection later). */
struct seg *link_ctl_seg(struct link *l, enum seg_kind kind, const uint8_t *p, size_t n);
/* Put s at the tail / the head of the TX queue (no write is started). */
void link_q_append(struct link *l, struct seg *s);
void link_q_push_front(struct link *l, struct seg *s);
/* Queue a marker: SEG_DELAY of ms milliseconds, or SEG_ACT_END. 0 or -ENOMEM. */
int link_queue_marker(struct link *l, enum seg_kind kind, uint32_t ms);
/* Start writing the head of the queue if nothing is in flight (may lose the connection). */
void link_kick(struct link *l);
/* Drop the connection if link_ctl_seg() hit CTL_MAX; true if it was dropped. */
bool link_check_overflow(struct link *l);
/* Connected and negotiated: LINK_UP, the protocol's up step, on_state. */
void link_go_up(struct link *l);
/* The connection is gone (status: libuv error): drop both sockets and the queue, log,
 * reconnect after the backoff. */
void link_lost(struct link *l, int status);
/* link_lost with why as the reason's text (NULL: from status). quiet: a failure before
 * LINK_UP is neither logged nor noted here (the caller did both). */
void link_lost_why(struct link *l, int status, const char *why, bool quiet);
/* n decoded-stream bytes (plaintext) of the data connection for the protocol, the parts
 * covered by an input purge (discard_raw) with their data discarded. */
void link_input(struct link *l, const uint8_t *p, size_t n);
/* Free the segments c->inflight holds (not written: their data stays in tx_pending, which
 * the loss of the connection counts dropped). */
void link_inflight_drop(struct link *l, struct conn *c);
/* A write could not be started on c (status: libuv error): free what c->inflight holds
 * and lose the connection. */
void link_write_failed(struct link *l, struct conn *c, int status);
/* A queued segment taken into c's write in flight: count it (link.c). */
void link_seg_taken(struct link *l, struct conn *c, const struct seg *s);
/* The queue's head up to and including last becomes c->inflight (link.c). */
void link_q_take(struct link *l, struct conn *c, struct seg *last);
/* Decoded data bytes for the tty: discarded (counted) while l->discarding, else delivered
 * within rx_space() or held. */
void link_rx(struct link *l, const uint8_t *p, size_t n);
/* Whether socket reads may run with what is held for the tty now. */
bool link_may_read(const struct link *l);
/* Start reading the data connection (if connected and not already reading). */
void link_read_start(struct link *l);
/* Change the state and tell the tty (on_state), unless closing. */
void link_set_state(struct link *l, enum link_state st);
/* Arm the link's one timer for phase ph, ms milliseconds from now. */
void link_timer_arm(struct link *l, enum phase ph, uint64_t ms);
/* libuv callbacks of both connections: write done, read buffer, read, action timer. */
void link_write_cb(uv_write_t *req, int status);
void link_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b);
void link_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
void link_act_timer_cb(uv_timer_t *t);

/* link_net.c: connections */
/* Resolve the host and try its addresses (state LINK_CONNECTING). */
void link_start_attempt(struct link *l);
/* Try the next resolved address, or fail the round. */
void link_connect_next(struct link *l);
/* A round failed with status (libuv error): log once, back off, retry. */
void link_round_failed(struct link *l, int status);
/* The same with why as the text (NULL: from status); quiet: neither log nor note the error
 * (the caller did). */
void link_round_failed_why(struct link *l, int status, const char *why, bool quiet);
/* The link's timer: connect timeout, negotiation timeout, backoff over. */
void link_timer_cb(uv_timer_t *t);
/* Detach and close both connections (no callbacks to the tty). */
void link_conn_drop(struct link *l);
/* A new connection record (control: the legacy control port); NULL: -ENOMEM. */
struct conn *link_conn_new(struct link *l, bool control);
/* TCP_NODELAY, keepalive, TCP_USER_TIMEOUT and a bounded send buffer (tcp(7), socket(7)). */
void link_conn_opts(struct link *l, struct conn *c);
/* Bytes of c's socket sent but not acknowledged (SIOCOUTQ) / readable now (SIOCINQ),
 * tcp(7); 0 when not connected or the kernel cannot tell. */
size_t link_conn_unacked(const struct conn *c);
size_t link_conn_readable(const struct conn *c);
/* Abandon the name resolution in progress / free the resolved addresses. */
void link_gai_drop(struct link *l);
void link_ai_drop(struct link *l);
/* The socket part of link_get_stats (peer address, TCP_INFO RTT). */
void link_peer_stats(const struct link *l, struct link_stats *st);
/* status (libuv error) as text for logs: "timed out" or uv_strerror. */
void link_fmt_status(int status, char *out, size_t cap);

/* link_tls.c: TLS-PSK (RFC 4279) between the socket and the protocol */
/* Set up l->tls for the key file at path: 0 or -ENOMEM. */
int link_tls_new(struct link *l, const char *path);
/* Free l->tls (the key wiped). */
void link_tls_destroy(struct link *l);
/* Before an attempt: read the key file. 0, or a negative errno after the failure was
 * logged, noted and the round failed (backoff armed). */
int link_tls_load_key(struct link *l);
/* TCP connected: start the client handshake on c (the protocol starts once it is done). */
void link_tls_start(struct link *l, struct conn *c);
/* n ciphertext bytes read into l->raw: decrypt and hand the plaintext on. */
void link_tls_input(struct link *l, size_t n);
/* Go on decrypting what the session and l->raw still hold (after reads were paused). */
void link_tls_pump(struct link *l);
/* Whether the data connection's TLS handshake is running (reads go on regardless of what
 * the tty holds: no data comes out of it). */
bool link_tls_handshaking(const struct link *l);
/* Whether ciphertext or plaintext is still held back (reads must not restart yet). */
bool link_tls_held(const struct link *l);
/* Nothing in flight on c: write the session's own output (handshake, alerts) if any;
 * true when a write was started or the connection was lost. */
bool link_tls_flush(struct link *l, struct conn *c);
/* Nothing in flight on c, data/command segments at the head: encrypt them (one
 * tls_session_write for up to TLS_PT_MAX bytes) and write the ciphertext. */
void link_tls_send(struct link *l, struct conn *c);
/* A TLS failure (negative errno, tls_session.h; -ETIMEDOUT for a handshake timeout):
 * log with the device and bridge address, note it, drop the connection and retry. */
void link_tls_fail(struct link *l, int err);
/* link_close: end an open session with close_notify (RFC 5246 section 7.2.1), best effort
 * (handed to the kernel now or not at all). */
void link_tls_goodbye(struct link *l);
/* The connection's TLS state is gone with it (close callback). */
void link_tls_conn_free(struct conn *c);
/* The read side saw the connection end (status) while the handshake ran: true when that
 * was handled as a TLS failure. */
bool link_tls_eof(struct link *l, struct conn *c, int status);

/* link_legacy.c: what the transport calls beyond struct link_proto */
/* A SEG_CTRL is at the head and nothing is in flight: send it once the data before it
 * was acknowledged (or LEGACY_ANSWER_MS passed). */
void link_legacy_kick_ctrl(struct link *l);
/* No control-port answer within LEGACY_ANSWER_MS: the queue goes on. */
void link_legacy_answer_timeout(struct link *l);
/* n bytes read from the control connection (answer lines). */
void link_legacy_ctrl_rx(struct link *l, const uint8_t *p, size_t n);

#endif
