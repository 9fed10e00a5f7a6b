/* SPDX-License-Identifier: MIT */
/*
 * Telnet (RFC 854/855/856/858) and COM-PORT-OPTION (RFC 2217) codec.
 *
 * Portable C11, no OS calls, no heap. Used by both roles: the firmware (server) and
 * espstmd (client). The decoder is incremental and never produces more data bytes than
 * it consumes input bytes, so a caller applies backpressure simply by feeding at most
 * as many bytes as its sink has room for.
 */
#ifndef ESPSTM_RFC2217_H
#define ESPSTM_RFC2217_H

#include <stddef.h>
#include <stdint.h>

/* Telnet commands, RFC 854. */
enum {
	TN_SE = 240,
	TN_NOP = 241,
	TN_DM = 242,
	TN_BRK = 243,
	TN_IP = 244,
	TN_AO = 245,
	TN_AYT = 246,
	TN_EC = 247,
	TN_EL = 248,
	TN_GA = 249,
	TN_SB = 250,
	TN_WILL = 251,
	TN_WONT = 252,
	TN_DO = 253,
	TN_DONT = 254,
	TN_IAC = 255,
};

/* Telnet options used here: RFC 856 (BINARY), RFC 857 (ECHO), RFC 858 (SGA), RFC 2217. */
enum {
	TELOPT_BINARY = 0,
	TELOPT_ECHO = 1,
	TELOPT_SGA = 3,
	TELOPT_COMPORT = 44,
};

/* RFC 2217 client command codes; the server answers with code + RFC2217_SERVER_OFFSET. */
enum rfc2217_cmd {
	RFC2217_SIGNATURE = 0,
	RFC2217_SET_BAUDRATE = 1,
	RFC2217_SET_DATASIZE = 2,
	RFC2217_SET_PARITY = 3,
	RFC2217_SET_STOPSIZE = 4,
	RFC2217_SET_CONTROL = 5,
	RFC2217_NOTIFY_LINESTATE = 6,
	RFC2217_NOTIFY_MODEMSTATE = 7,
	RFC2217_FLOWCONTROL_SUSPEND = 8,
	RFC2217_FLOWCONTROL_RESUME = 9,
	RFC2217_SET_LINESTATE_MASK = 10,
	RFC2217_SET_MODEMSTATE_MASK = 11,
	RFC2217_PURGE_DATA = 12,
};
#define RFC2217_SERVER_OFFSET 100

/* SET-PARITY values (RFC 2217 "SET-PARITY"). 0 = query. */
enum { RFC2217_PARITY_NONE = 1, RFC2217_PARITY_ODD = 2, RFC2217_PARITY_EVEN = 3,
       RFC2217_PARITY_MARK = 4, RFC2217_PARITY_SPACE = 5 };
/* SET-STOPSIZE values. 0 = query. */
enum { RFC2217_STOPSIZE_1 = 1, RFC2217_STOPSIZE_2 = 2, RFC2217_STOPSIZE_1_5 = 3 };
/* SET-CONTROL values (RFC 2217 "SET-CONTROL"). */
enum {
	RFC2217_CONTROL_FLOW_QUERY = 0,
	RFC2217_CONTROL_FLOW_NONE = 1,
	RFC2217_CONTROL_FLOW_XONXOFF = 2,
	RFC2217_CONTROL_FLOW_HARDWARE = 3,
	RFC2217_CONTROL_BREAK_QUERY = 4,
	RFC2217_CONTROL_BREAK_ON = 5,
	RFC2217_CONTROL_BREAK_OFF = 6,
	RFC2217_CONTROL_DTR_QUERY = 7,
	RFC2217_CONTROL_DTR_ON = 8,
	RFC2217_CONTROL_DTR_OFF = 9,
	RFC2217_CONTROL_RTS_QUERY = 10,
	RFC2217_CONTROL_RTS_ON = 11,
	RFC2217_CONTROL_RTS_OFF = 12,
	RFC2217_CONTROL_INFLOW_QUERY = 13,
	RFC2217_CONTROL_INFLOW_NONE = 14,
	RFC2217_CONTROL_INFLOW_XONXOFF = 15,
	RFC2217_CONTROL_INFLOW_HARDWARE = 16,
};
/* PURGE-DATA values. */
enum { RFC2217_PURGE_RX = 1, RFC2217_PURGE_TX = 2, RFC2217_PURGE_BOTH = 3 };
/* NOTIFY-MODEMSTATE bits (RFC 2217). */
enum {
	RFC2217_MODEM_CD = 0x80,
	RFC2217_MODEM_RI = 0x40,
	RFC2217_MODEM_DSR = 0x20,
	RFC2217_MODEM_CTS = 0x10,
	RFC2217_MODEM_DELTA_CD = 0x08,
	RFC2217_MODEM_TERI = 0x04,
	RFC2217_MODEM_DELTA_DSR = 0x02,
	RFC2217_MODEM_DELTA_CTS = 0x01,
};
/* NOTIFY-LINESTATE bits (RFC 2217). */
enum {
	RFC2217_LINE_TIMEOUT = 0x80,
	RFC2217_LINE_TSRE = 0x40,
	RFC2217_LINE_THRE = 0x20,
	RFC2217_LINE_BREAK = 0x10,
	RFC2217_LINE_FRAMING = 0x08,
	RFC2217_LINE_PARITY = 0x04,
	RFC2217_LINE_OVERRUN = 0x02,
	RFC2217_LINE_DATA_READY = 0x01,
};

/* Largest subnegotiation payload kept (bytes after IAC SB, before IAC SE, undoubled).
 * Longer ones are reported truncated (tn_event.truncated = 1), never overflow. */
#define TN_SB_MAX 64

enum tn_event_type {
	TN_EV_DATA,    /* data bytes (IAC IAC already undoubled) */
	TN_EV_WILL,    /* IAC WILL opt */
	TN_EV_WONT,    /* IAC WONT opt */
	TN_EV_DO,      /* IAC DO opt */
	TN_EV_DONT,    /* IAC DONT opt */
	TN_EV_SB,      /* IAC SB opt payload IAC SE */
	TN_EV_COMMAND, /* any other IAC x (NOP, BRK, AYT, ...): cmd in .opt */
};

struct tn_event {
	enum tn_event_type type;
	uint8_t opt;         /* option (WILL/WONT/DO/DONT/SB) or command byte (COMMAND) */
	const uint8_t *data; /* DATA: the bytes; SB: the payload (without opt); else NULL */
	size_t len;          /* bytes at data */
	int truncated;       /* SB only: payload was longer than TN_SB_MAX and was cut */
};

/* Called once per decoded event; data is valid only during the call. */
typedef void (*tn_event_cb)(void *ctx, const struct tn_event *ev);

struct tn_decoder {
	int state; /* private */
	uint8_t opt;
	uint8_t sb[TN_SB_MAX];
	size_t sb_len;
	int sb_trunc;
};

/* Reset a decoder to the "plain data" state. */
void tn_decoder_init(struct tn_decoder *d);

/*
 * Decode n bytes of received Telnet stream (RFC 854), calling cb for each event in order.
 * Takes: in/n (n may be 0), cb (must not be NULL), ctx passed to cb.
 * Returns: n (the whole input is always consumed; a sequence split across calls is
 * resumed on the next call). The total of DATA bytes reported is <= n.
 * A CR NUL or CR LF pair is passed through unchanged (BINARY mode is assumed both ways).
 */
size_t tn_decode(struct tn_decoder *d, const uint8_t *in, size_t n, tn_event_cb cb, void *ctx);

/*
 * Escape data for sending: every 0xFF becomes IAC IAC (RFC 854).
 * Takes: in/n data, out/cap output buffer (bytes).
 * Returns: bytes written to out; *consumed = input bytes taken (stops early, never
 * splitting an IAC pair, when out is full).
 */
size_t tn_escape(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *consumed);

/*
 * Build IAC verb opt (verb: TN_WILL/TN_WONT/TN_DO/TN_DONT).
 * Returns 3 (bytes written) or -ENOBUFS if cap < 3, -EINVAL on a bad verb.
 */
int tn_build_option(uint8_t *out, size_t cap, uint8_t verb, uint8_t opt);

/*
 * Build one RFC 2217 command: IAC SB COM-PORT-OPTION code value... IAC SE, with 0xFF in
 * the value doubled. code is the client code, or client code + 100 for a server answer.
 * Returns bytes written, -ENOBUFS if it does not fit in cap.
 */
int rfc2217_build(uint8_t *out, size_t cap, uint8_t code, const uint8_t *val, size_t vlen);

/* Convenience builders on top of rfc2217_build (same returns). Values in host order;
 * the wire is big-endian (network order) as RFC 2217 says. */
int rfc2217_build_u8(uint8_t *out, size_t cap, uint8_t code, uint8_t v);
int rfc2217_build_u32(uint8_t *out, size_t cap, uint8_t code, uint32_t v);

/* One decoded RFC 2217 message (the payload of an SB COM-PORT-OPTION). */
struct rfc2217_msg {
	uint8_t code;        /* as received: 0..12 from a client, 100..112 from a server */
	uint8_t cmd;         /* code with the server offset removed: enum rfc2217_cmd */
	int from_server;     /* 1 if code >= 100 */
	uint32_t value;      /* SET-BAUDRATE: 32-bit value; other 1-byte commands: that byte */
	const uint8_t *text; /* SIGNATURE: the text (not NUL-terminated), else NULL */
	size_t text_len;
};

/*
 * Parse the payload of an SB COM-PORT-OPTION (TN_EV_SB with opt == TELOPT_COMPORT).
 * Takes: payload/len as given by the decoder (starting with the command code).
 * Returns 0, or -EINVAL if the payload is empty, the code unknown, or the value has the
 * wrong length for the command (RFC 2217 section "Com Port Configuration Commands").
 */
int rfc2217_parse(const uint8_t *payload, size_t len, struct rfc2217_msg *m);

/* Human-readable name of a command (client code 0..12 or server code 100..112), e.g.
 * "SET-BAUDRATE". Returns "UNKNOWN" for others. */
const char *rfc2217_cmd_name(uint8_t code);

#endif
