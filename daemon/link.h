/* SPDX-License-Identifier: MIT */
/*
 * link: espstmd's RFC 2217 client connection to one bridge (TCP, libuv).
 *
 * Owns the TCP connection, the Telnet negotiation (BINARY both ways, SGA, COM-PORT-OPTION,
 * as RFC 2217 says; firmware/core/rfc2217_client.h), reconnect with backoff, and the *desired*
 * port state (line settings, DTR/RTS, flow control): whatever the tty last asked for is
 * re-sent after every (re)connect, in this order: baud, data size, parity, stop size,
 * flow control, RTS, DTR.
 *
 * Data flow and backpressure:
 *  - tty -> bridge: link_write() accepts at most link_write_space() bytes (a bounded queue,
 *    LINK_TXQ_MAX bytes before Telnet escaping). When a link_write() returned short or
 *    left the queue full (link_write_space() == 0), on_writable fires once the queue is
 *    below half (after writes complete, or after link_purge(2/3) dropped data).
 *    on_drained fires when data was pending and none is any more (written, purged, or
 *    dropped with a lost connection). Settings and data share one ordered stream: a
 *    setting requested after some data is sent after that data.
 *  - bridge -> tty: on_data delivers at most what rx_space() answered just before (the
 *    link asks again after every on_data, so room freed inside on_data is used). When the
 *    tty did not take everything (rx_space() answered less than what arrived) the link
 *    holds the rest and applies backpressure without going deaf to the control channel:
 *    with RFC 2217 agreed it sends FLOWCONTROL-SUSPEND and keeps reading (the bridge
 *    stops sending UART data; answers and notifications still arrive), while negotiating
 *    it keeps reading; only when what it holds reaches a bound (48 KiB), or the bridge
 *    cannot be suspended (legacy protocol, COM-PORT-OPTION refused), does it pause socket
 *    reads (TCP backpressure). A paused negotiation is not timed out. Only
 *    link_rx_resume() delivers held data, restarts reads and sends FLOWCONTROL-RESUME once
 *    nothing is held, so the tty must call it every time it frees room (it is idempotent
 *    and cheap when nothing is held; called from inside on_data it does nothing).
 *  - Telnet: an option request that does not change our state is not answered (RFC 1143).
 *    Negotiation answers and RFC 2217 commands pending towards the bridge are bounded
 *    (4 KiB); a bridge that makes us exceed that without reading is dropped (logged) and
 *    the link reconnects.
 * All functions run on the loop thread; none blocks. Callbacks may be made from inside
 * link_write/link_purge/link_set_* (e.g. on_state when the connection is lost there).
 */
#ifndef ESPSTM_LINK_H
#define ESPSTM_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define LINK_TXQ_MAX 16384 /* bytes of unescaped data queued towards the bridge */

struct link;

/* Line settings as RFC 2217 carries them. parity: 'N' 'O' 'E' 'M' 'S'; stop_bits: 1, 2
 * (3 = 1.5 as RFC 2217 codes it). */
struct link_line {
	uint32_t baud;
	uint8_t data_bits;
	char parity;
	uint8_t stop_bits;
};

enum link_flow { LINK_FLOW_NONE, LINK_FLOW_XONXOFF, LINK_FLOW_HARDWARE };

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP };

/* Wire protocol towards the bridge. */
enum link_protocol {
	LINK_PROTO_RFC2217 = 0, /* RFC 2217 on one TCP port (Telnet COM-PORT-OPTION) */
	/* The seed firmware's two ports (implementation: link_legacy.c): raw data on `port`
	 * (no Telnet, 0xFF not doubled) and single-byte commands on `control_port`:
	 * 'r' reset, 'u' 115200 8E1 + BOOT0 + reset (bootloader), 'e' user baud 8N1 + reset
	 * (application). link_set_line maps: 8 data bits + even parity -> 'u' (when not
	 * already in bootloader mode), anything else after that -> 'e'; a baud the legacy
	 * firmware cannot set is logged once, not an error. DTR/RTS are remembered and
	 * logged but reach no pin (the protocol has none); BREAK and PURGE give -ENOTSUP. */
	LINK_PROTO_LEGACY = 1,
};

struct link_config {
	const char *host;          /* name or address; resolved with uv_getaddrinfo each attempt */
	uint16_t port;             /* TCP port */
	uint32_t reconnect_min_ms; /* first retry delay (default 200) */
	uint32_t reconnect_max_ms; /* backoff cap (default 5000) */
	uint32_t connect_timeout_ms; /* per attempt (default 3000) */
	enum link_protocol protocol; /* default (0) RFC 2217 */
	uint16_t control_port;       /* LINK_PROTO_LEGACY: control port; 0 = port + 1 */
	/* TCP keepalive (uv_tcp_keepalive): first probe after this many idle seconds, 0 = off.
	 * The kernel then declares the peer dead after its probes fail, which the link sees as
	 * a lost connection and reconnects. */
	uint32_t keepalive_s;
	/* Path of the unit key file (firmware/crypto/unit_key.h format), or NULL / "": none.
	 * With a key every connection is TLS 1.2 with that pre-shared key (RFC 4279, client
	 * role; link_tls.c) and RFC 2217 runs inside it; the link counts as up only after the
	 * handshake and the RFC 2217 negotiation. The file is read (mode and owner checked,
	 * keyfile.h) before every connection attempt, so a key written or rotated later is
	 * used by the next attempt; a missing or bad file, a failed handshake (wrong key or
	 * unknown identity), an altered stream or a TLS close count as failed attempts or a
	 * lost connection: logged with the device and bridge address, in last_error, retried
	 * with the usual backoff. LINK_PROTO_RFC2217 only. */
	const char *key_path;
};

/* Counters and state of one link, for `espstm status` (all since link_new). */
struct link_stats {
	enum link_state state;
	char peer[64];        /* "ADDR:PORT" of the current connection, "" when not up */
	int64_t rtt_us;       /* kernel's smoothed TCP RTT (TCP_INFO tcpi_rtt), µs; -1 unknown */
	uint64_t up_since_ms; /* uv_now() when the current connection came up; 0 when not up */
	uint64_t tx_bytes;    /* data bytes handed to the socket (before Telnet escaping) */
	uint64_t rx_bytes;    /* data bytes received and delivered (after Telnet decoding) */
	uint64_t tx_dropped;  /* data bytes accepted by link_write but never sent: dropped when
	                       * the connection was lost (also logged then) */
	uint64_t tx_purged;   /* data bytes dropped by link_purge (asked for, not an error) */
	uint32_t connects;    /* connections that reached LINK_UP */
	uint32_t reconnects;  /* LINK_UP reached again after a loss (connects - 1 at most) */
	uint32_t errors;      /* failed attempts, lost connections, protocol errors */
	char last_error[96];  /* last such error, "" if none */
};

/* Boot-control actions for `espstm reset|boot|run` (NRST pulsed low, BOOT0 high = system
 * bootloader, low = application flash). */
enum link_action {
	LINK_ACTION_RESET, /* pulse NRST, BOOT0 unchanged  (legacy: 'r') */
	LINK_ACTION_BOOT,  /* BOOT0 high, pulse NRST: bootloader (legacy: 'u') */
	LINK_ACTION_RUN,   /* BOOT0 low, pulse NRST: application (legacy: 'e') */
};

struct link_callbacks {
	/* Bytes from the bridge (Telnet already decoded). n <= last rx_space() answer. */
	void (*on_data)(void *ctx, const uint8_t *p, size_t n);
	/* How many bytes the tty can take now. An answer smaller than what arrived pauses
	 * socket reads until link_rx_resume(). */
	size_t (*rx_space)(void *ctx);
	/* The TX queue is below half again (after link_write returned short or filled it). */
	void (*on_writable)(void *ctx);
	/* Link state changed (connected and negotiated = LINK_UP). */
	void (*on_state)(void *ctx, enum link_state st);
	/* NOTIFY-MODEMSTATE from the bridge: RFC2217_MODEM_* bits. */
	void (*on_modemstate)(void *ctx, uint8_t state);
	/* NOTIFY-LINESTATE from the bridge: RFC2217_LINE_* bits. */
	void (*on_linestate)(void *ctx, uint8_t state);
	/* All queued data has been handed to the kernel socket (for tcdrain). */
	void (*on_drained)(void *ctx);
};

/* Create a link and start connecting. name is used in logs. Returns 0 or negative errno
 * (-EINVAL bad config, e.g. a key with LINK_PROTO_LEGACY; -ENOMEM). */
int link_new(uv_loop_t *loop, const char *name, const struct link_config *cfg, struct link **out);
/* Install the tty's callbacks (may be called once, before or after connect). */
void link_set_callbacks(struct link *l, const struct link_callbacks *cb, void *ctx);
/* The key file may hold a new key (a reload saw it change): if the link is not up, try
 * again now (backoff reset) with the file's key; an up link keeps its connection and
 * reads the file at its next attempt. No-op without a key. */
void link_key_changed(struct link *l);
/* Close the socket and free the link once libuv has released its handles. */
void link_close(struct link *l);

/* LINK_UP: connected and negotiated, data flows. LINK_CONNECTING: from link_new until the
 * first LINK_UP, and during every outage (the link keeps reconnecting with backoff).
 * LINK_DOWN: only after link_close (so "outage" means != LINK_UP, not == LINK_DOWN). */
enum link_state link_get_state(const struct link *l);
/* Queue data for the bridge. Returns bytes accepted (0..n); 0 when down or full. */
size_t link_write(struct link *l, const uint8_t *p, size_t n);
/* Room left in the TX queue, bytes (0 when down). */
size_t link_write_space(const struct link *l);
/* Bytes queued but not yet handed to the kernel socket. */
size_t link_tx_pending(const struct link *l);
/* The tty freed room: deliver held data (within rx_space()) and restart socket reads once
 * nothing is held. Call it whenever room is freed; idempotent. */
void link_rx_resume(struct link *l);

/* Desired-state setters: remembered (and re-sent on reconnect) and sent now if up.
 * Return 0, or -EINVAL for a value RFC 2217 cannot carry. */
int link_set_line(struct link *l, const struct link_line *line);
int link_set_dtr(struct link *l, int asserted);
int link_set_rts(struct link *l, int asserted);
int link_set_flow(struct link *l, enum link_flow flow);
/* BREAK on/off (RFC 2217 SET-CONTROL 5/6); not remembered across reconnects.
 * LINK_PROTO_LEGACY: -ENOTSUP. */
int link_set_break(struct link *l, int on);
/* PURGE-DATA 1 (rx), 2 (tx), 3 (both) on the bridge; also drops the local TX queue for 2/3
 * (data already handed to the socket stays) and then fires on_writable / on_drained as a
 * completed write would. LINK_PROTO_LEGACY: the local part is done, then -ENOTSUP. */
int link_purge(struct link *l, int which);

/* Bytes handed to the data connection's kernel socket that the bridge has not acknowledged
 * yet (Linux SIOCOUTQ, tcp(7)): with link_tx_pending() == 0 and this 0, every byte written
 * so far has reached the bridge's TCP stack (tcdrain, TIOCOUTQ). 0 when not connected or
 * when the kernel cannot tell. */
size_t link_tx_unacked(const struct link *l);

/* Data bytes from the bridge the link discarded since link_new (after Telnet decoding):
 * held for the tty when link_purge(1/3) dropped them, and what arrived after such a purge
 * but had been sent by the bridge before it (RFC 2217: until the bridge's PURGE-DATA
 * answer, which it sends in-band after the purged data; without COM-PORT-OPTION or with
 * LINK_PROTO_LEGACY: what was readable in the socket at the purge). The tty counts these
 * in its rx_dropped. */
uint64_t link_rx_purged(const struct link *l);

/* Last NOTIFY-MODEMSTATE value (RFC2217_MODEM_* bits), 0 before any. */
uint8_t link_modemstate(const struct link *l);

/* Fill st with the link's counters and state (cheap; rtt_us read with getsockopt
 * TCP_INFO when up). */
void link_get_stats(const struct link *l, struct link_stats *st);

/*
 * Run a boot-control action on the bridge. RFC 2217: a DTR/RTS sequence on the data
 * stream, assuming the bridge's `direct` line map (DTR asserted = NRST low, RTS asserted =
 * BOOT0 high): RESET = DTR on, 100 ms, DTR off; BOOT = RTS on, DTR on, 100 ms, DTR off,
 * 50 ms (the bridge holds TX for its settle time) then RTS back to the desired state;
 * RUN = RTS off, DTR on, 100 ms, DTR off. The timing runs on the daemon's timers, in stream
 * order with data (a delay starts once the step before it was handed to the kernel, and
 * data written meanwhile waits behind the sequence); afterwards the desired DTR/RTS
 * (link_set_dtr/rts; deasserted if never set) are sent again.
 * LINK_PROTO_LEGACY: the single command byte, in order with data (sent once the data before
 * it is written and acknowledged by the bridge's TCP stack, SIOCOUTQ 0, at most 1 s; data
 * after it waits for the bridge's answer line, at most 1 s).
 * Returns 0 (started), -ENOTCONN when the link is not up, -EBUSY while another action runs,
 * -EINVAL for an unknown action, -ENOTSUP when the bridge refused COM-PORT-OPTION (it would
 * not apply DTR/RTS), -ENOMEM.
 */
int link_action(struct link *l, enum link_action a);

#endif
