/* SPDX-License-Identifier: MIT */
/*
 * rfc2217_client: the protocol half of an RFC 2217 client connection (espstmd's side of a
 * bridge), the mirror image of the server session in bridge.c. Sans-I/O: the caller feeds
 * received bytes and a millisecond clock in, and the client answers through callbacks:
 * wire bytes to queue (in stream order with the caller's data), decoded data for the tty,
 * and events (up, modem state, answers, COM-PORT-OPTION refused...). No heap, no OS calls.
 *
 * It negotiates BINARY and SGA both ways and COM-PORT-OPTION (RFC 2217 "Negotiating the
 * Telnet Com Port Control Option", RFC 1143 by telnet_opt.h), keeps the desired port state
 * (line settings, flow control, DTR/RTS) and sends what differs from what this connection
 * was sent, in the order baud, data size, parity, stop size, flow control, RTS, DTR; tracks
 * the answers to its SET-xxx commands; builds the DTR/RTS sequences of the boot-control
 * actions; and handles FLOWCONTROL-SUSPEND/RESUME and input purges.
 */
#ifndef ESPSTM_RFC2217_CLIENT_H
#define ESPSTM_RFC2217_CLIENT_H

#include "rfc2217.h"
#include "telnet_opt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RFC2217_CLIENT_NEGOTIATE_MS  2000 /* wait for DO COM-PORT-OPTION before going up */
#define RFC2217_CLIENT_PURGE_WAIT_MS 2000 /* discard data until the PURGE-DATA answer, at most */
#define RFC2217_CLIENT_PULSE_MS      100  /* NRST (DTR) pulse of an action, ms */
#define RFC2217_CLIENT_SETTLE_MS     50   /* BOOT: after NRST release, before RTS goes back */
#define RFC2217_CLIENT_ANSQ          16   /* outstanding answers remembered per command */
#define RFC2217_CLIENT_NCMD          13   /* RFC 2217 commands 0..12 */

/* What the client asks the caller to queue (struct rfc2217_client_out.kind). */
enum rfc2217_client_out_kind {
	RFC2217_OUT_BYTES,      /* wire bytes (Telnet option or RFC 2217 command) */
	RFC2217_OUT_DELAY,      /* wait ms after what is before, before what follows */
	RFC2217_OUT_ACTION_END, /* marker: call rfc2217_client_action_done() when it is reached */
};

struct rfc2217_client_out {
	enum rfc2217_client_out_kind kind;
	const uint8_t *p; /* BYTES: the bytes (valid during the call only) */
	size_t n;
	bool front;   /* BYTES: before everything queued (flow control, restore after action) */
	bool answer;  /* BYTES: a command whose answer is expected: once these bytes are handed
	               * to the socket, call rfc2217_client_sent(cmd, val) */
	uint8_t cmd;  /* client command code (answer) */
	uint32_t val; /* command value (answer); DELAY: milliseconds */
};

enum rfc2217_client_event {
	RFC2217_EV_UP,              /* negotiation over (agreed, refused or timed out) */
	RFC2217_EV_MODEMSTATE,      /* NOTIFY-MODEMSTATE: value = RFC2217_MODEM_* bits */
	RFC2217_EV_LINESTATE,       /* NOTIFY-LINESTATE: value = RFC2217_LINE_* bits */
	RFC2217_EV_TX_SUSPEND,      /* FLOWCONTROL-SUSPEND (value 1) or -RESUME (value 0) */
	RFC2217_EV_PURGED,          /* value data bytes discarded (sent before an input purge) */
	RFC2217_EV_ANSWER,          /* an answer to our command: value = its client code */
	RFC2217_EV_ANSWER_DIFFERS,  /* ... whose value differs from what was asked (logged) */
	RFC2217_EV_COMPORT_REFUSED, /* DONT COM-PORT-OPTION, or the negotiation timed out */
};

/* Log levels of the client's lines (as espstmd's log.h orders them). */
enum rfc2217_client_log {
	RFC2217_LOG_ERROR,
	RFC2217_LOG_WARN,
	RFC2217_LOG_INFO,
	RFC2217_LOG_DEBUG,
};

struct rfc2217_client_ops {
	/* Queue o (see struct rfc2217_client_out) at the tail, or the head for o->front.
	 * Returns 0, -ENOBUFS (the peer is not reading what we send), -ENOMEM, -ENOTCONN. */
	int (*out)(void *ctx, const struct rfc2217_client_out *o);
	/* Decoded data from the bridge (Telnet removed). */
	void (*data)(void *ctx, const uint8_t *p, size_t n);
	/* An event (enum rfc2217_client_event) with its value. May be NULL. */
	void (*event)(void *ctx, enum rfc2217_client_event ev, uint32_t value);
	/* One log line, without newline and without the connection's name. May be NULL. */
	void (*log)(void *ctx, enum rfc2217_client_log level, const char *line);
};

/* The desired line settings in RFC 2217 encoding. */
struct rfc2217_client_line {
	uint32_t baud;     /* bit/s, > 0 */
	uint8_t data_bits; /* 5..8 */
	uint8_t parity;    /* RFC2217_PARITY_NONE .. RFC2217_PARITY_SPACE */
	uint8_t stop;      /* RFC2217_STOPSIZE_1, _2, _1_5 */
};

/* The boot-control actions (daemon/link.h enum link_action has the same order). */
enum rfc2217_client_action {
	RFC2217_ACTION_RESET, /* DTR on, pulse, DTR off */
	RFC2217_ACTION_BOOT,  /* RTS on, DTR on, pulse, DTR off, settle, RTS back */
	RFC2217_ACTION_RUN,   /* RTS off, DTR on, pulse, DTR off */
};

struct rfc2217_answers {
	uint32_t v[RFC2217_CLIENT_ANSQ];
	uint8_t head, n;
};

struct rfc2217_client {
	const struct rfc2217_client_ops *ops;
	void *ctx;
	const char *peer; /* for logs */
	bool active;      /* between start and stop */
	bool up;
	bool comport_refused;
	bool tx_suspended;
	bool act_busy;
	uint32_t negotiate_deadline;
	struct tn_decoder dec;
	struct telnet_opt opt;
	/* desired state (kept across connections) and what this connection was sent */
	struct rfc2217_client_line line, sent_line;
	bool has_line, sent_has_line;
	bool has_flow, has_rts, has_dtr;
	uint8_t flow; /* RFC2217_CONTROL_FLOW_* */
	int8_t rts, dtr;
	int8_t sent_flow, sent_rts, sent_dtr; /* -1: not sent on this connection */
	struct rfc2217_answers ans[RFC2217_CLIENT_NCMD];
	/* input purge: PURGE-DATA answers awaited, until purge_deadline at most */
	unsigned purge_wait;
	uint32_t purge_deadline;
};

/* Set up a client with its callbacks (ops must stay valid; ctx is passed to them). Nothing
 * desired yet, not connected. */
void rfc2217_client_init(struct rfc2217_client *c, const struct rfc2217_client_ops *ops, void *ctx);

/*
 * A TCP connection to peer (a string kept for logs; must stay valid) is open at time now
 * (ms): reset the connection's state and queue the offer WILL/DO BINARY, WILL/DO SGA, WILL
 * COM-PORT-OPTION (as pyserial's client). The negotiation ends with RFC2217_EV_UP when the
 * bridge agrees or refuses COM-PORT-OPTION, or at rfc2217_client_poll() once
 * RFC2217_CLIENT_NEGOTIATE_MS have passed.
 */
void rfc2217_client_start(struct rfc2217_client *c, const char *peer, uint32_t now);

/* The connection is gone: forget its state (answers awaited, purge, suspend); the desired
 * state stays for the next start. */
void rfc2217_client_stop(struct rfc2217_client *c);

/* n received bytes (any split) at time now (ms): decoded, answered, data passed to
 * ops->data. Takes the whole input. */
void rfc2217_client_input(struct rfc2217_client *c, const uint8_t *p, size_t n, uint32_t now);

/* The clock: when the negotiation has waited RFC2217_CLIENT_NEGOTIATE_MS without an
 * answer, go up without COM-PORT-OPTION (logged; the settings are sent if DO
 * COM-PORT-OPTION still arrives). Call it when that time is due. */
void rfc2217_client_poll(struct rfc2217_client *c, uint32_t now);

/* The command (client code cmd, value val) queued with o->answer was handed to the socket:
 * its answer is expected now (RFC 2217 answers come in order, per command). */
void rfc2217_client_sent(struct rfc2217_client *c, uint8_t cmd, uint32_t val);

/* Desired-state setters (RFC 2217 SET-BAUDRATE/-DATASIZE/-PARITY/-STOPSIZE, SET-CONTROL
 * flow 1/2/3, RTS 11/12, DTR 8/9): remembered, and what differs from what this connection
 * was sent is queued if up. Values are not checked (the caller validates). */
void rfc2217_client_set_line(struct rfc2217_client *c, const struct rfc2217_client_line *ln);
void rfc2217_client_set_flow(struct rfc2217_client *c, uint8_t flow);
void rfc2217_client_set_rts(struct rfc2217_client *c, bool on);
void rfc2217_client_set_dtr(struct rfc2217_client *c, bool on);

/* SET-CONTROL BREAK on (5) or off (6) if up and COM-PORT-OPTION agreed; not remembered. */
void rfc2217_client_set_break(struct rfc2217_client *c, bool on);

/*
 * PURGE-DATA which (RFC2217_PURGE_RX/TX/BOTH) at time now, queued if up. For RX with
 * COM-PORT-OPTION agreed, data received until the bridge's PURGE-DATA answer (which it
 * sends after the data it had queued), at most RFC2217_CLIENT_PURGE_WAIT_MS, is discarded
 * (RFC2217_EV_PURGED). Returns true when it waits so; false when the caller has to discard
 * what was in flight itself.
 */
bool rfc2217_client_purge(struct rfc2217_client *c, uint8_t which, uint32_t now);

/*
 * Queue a boot-control action: the SET-CONTROL sequence (bridge's `direct` line map: DTR
 * asserted = NRST low, RTS asserted = BOOT0 high) with RFC2217_OUT_DELAY steps of
 * RFC2217_CLIENT_PULSE_MS (and RFC2217_CLIENT_SETTLE_MS for BOOT), then the
 * RFC2217_OUT_ACTION_END marker. Returns 0, -ENOTCONN (not up), -EBUSY (an action is
 * running), -ENOTSUP (COM-PORT-OPTION refused), -EINVAL, or the error of ops->out
 * (-ENOBUFS, -ENOMEM; then the desired DTR/RTS are queued again).
 */
int rfc2217_client_action(struct rfc2217_client *c, enum rfc2217_client_action a);

/* The RFC2217_OUT_ACTION_END marker was reached: the action is over; the desired RTS then
 * DTR (deasserted if never set) are queued at the head. */
void rfc2217_client_action_done(struct rfc2217_client *c);

/* True when the bridge can be asked to stop sending data (FLOWCONTROL-SUSPEND) while its
 * answers still come: up with COM-PORT-OPTION agreed. */
bool rfc2217_client_can_suspend(const struct rfc2217_client *c);

/* Queue FLOWCONTROL-SUSPEND (on) or -RESUME at the head (RFC 2217; no answer expected).
 * Returns 0 or the error of ops->out. */
int rfc2217_client_rx_flow(struct rfc2217_client *c, bool on);

/* State: up (negotiation over), COM-PORT-OPTION refused (DONT or timed out), our output
 * suspended by the bridge (FLOWCONTROL-SUSPEND), an action queued and not yet done. */
bool rfc2217_client_is_up(const struct rfc2217_client *c);
bool rfc2217_client_comport_refused(const struct rfc2217_client *c);
bool rfc2217_client_tx_suspended(const struct rfc2217_client *c);
bool rfc2217_client_action_busy(const struct rfc2217_client *c);

#endif
