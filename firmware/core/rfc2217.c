/* SPDX-License-Identifier: MIT */
/*
 * Telnet (RFC 854/855) stream codec and RFC 2217 COM-PORT-OPTION messages.
 * See rfc2217.h for the contract. No OS calls, no heap.
 */
#include "rfc2217.h"

#include <errno.h>
#include <string.h>

/* Decoder states (private to this file). */
enum {
	DS_DATA = 0, /* plain data */
	DS_IAC,      /* IAC seen */
	DS_OPT,      /* IAC WILL/WONT/DO/DONT seen, option byte next (verb in d->opt) */
	DS_SB_OPT,   /* IAC SB seen, option byte next */
	DS_SB,       /* collecting subnegotiation payload */
	DS_SB_IAC,   /* IAC seen inside a subnegotiation */
};

void tn_decoder_init(struct tn_decoder *d)
{
	memset(d, 0, sizeof(*d));
	d->state = DS_DATA;
}

static void emit_data(const uint8_t *p, size_t n, tn_event_cb cb, void *ctx)
{
	if (n == 0)
		return;
	struct tn_event ev = {.type = TN_EV_DATA, .data = p, .len = n};
	cb(ctx, &ev);
}

static void emit_simple(enum tn_event_type t, uint8_t opt, tn_event_cb cb, void *ctx)
{
	struct tn_event ev = {.type = t, .opt = opt};
	cb(ctx, &ev);
}

static void emit_sb(struct tn_decoder *d, tn_event_cb cb, void *ctx)
{
	struct tn_event ev = {.type = TN_EV_SB,
	                      .opt = d->opt,
	                      .data = d->sb,
	                      .len = d->sb_len,
	                      .truncated = d->sb_trunc};
	d->sb_len = 0;
	d->sb_trunc = 0;
	cb(ctx, &ev);
}

static void sb_put(struct tn_decoder *d, uint8_t c)
{
	if (d->sb_len < TN_SB_MAX)
		d->sb[d->sb_len++] = c;
	else
		d->sb_trunc = 1;
}

/* Handle the byte after an IAC (RFC 854 "TELNET COMMAND STRUCTURE"). Returns 1 if the byte
 * is a data byte (IAC IAC), else 0. */
static int after_iac(struct tn_decoder *d, uint8_t c, tn_event_cb cb, void *ctx)
{
	switch (c) {
	case TN_IAC:
		d->state = DS_DATA;
		return 1;
	case TN_WILL:
	case TN_WONT:
	case TN_DO:
	case TN_DONT:
		d->opt = c;
		d->state = DS_OPT;
		return 0;
	case TN_SB:
		d->sb_len = 0;
		d->sb_trunc = 0;
		d->state = DS_SB_OPT;
		return 0;
	default:
		d->state = DS_DATA;
		emit_simple(TN_EV_COMMAND, c, cb, ctx);
		return 0;
	}
}

size_t tn_decode(struct tn_decoder *d, const uint8_t *in, size_t n, tn_event_cb cb, void *ctx)
{
	size_t run = 0; /* start of the pending data run in in[] */
	for (size_t i = 0; i < n; i++) {
		uint8_t c = in[i];
		switch (d->state) {
		case DS_DATA:
			if (c == TN_IAC) {
				emit_data(in + run, i - run, cb, ctx);
				d->state = DS_IAC;
			}
			break;
		case DS_IAC:
			/* IAC IAC: this second 0xFF starts a new data run. */
			run = after_iac(d, c, cb, ctx) ? i : i + 1;
			break;
		case DS_OPT: {
			enum tn_event_type t = d->opt == TN_WILL   ? TN_EV_WILL
			                       : d->opt == TN_WONT ? TN_EV_WONT
			                       : d->opt == TN_DO   ? TN_EV_DO
			                                           : TN_EV_DONT;
			d->state = DS_DATA;
			run = i + 1;
			emit_simple(t, c, cb, ctx);
			break;
		}
		case DS_SB_OPT:
			d->opt = c;
			d->state = DS_SB;
			break;
		case DS_SB:
			if (c == TN_IAC)
				d->state = DS_SB_IAC;
			else
				sb_put(d, c);
			break;
		case DS_SB_IAC:
			if (c == TN_IAC) {
				sb_put(d, c);
				d->state = DS_SB;
			} else if (c == TN_SE) {
				d->state = DS_DATA;
				run = i + 1;
				emit_sb(d, cb, ctx);
			} else {
				/* Protocol error (RFC 855 requires IAC SE): end the subnegotiation
				 * here and treat the byte as the command after IAC. */
				emit_sb(d, cb, ctx);
				run = after_iac(d, c, cb, ctx) ? i : i + 1;
			}
			break;
		default:
			d->state = DS_DATA;
			run = i;
			break;
		}
	}
	if (d->state == DS_DATA)
		emit_data(in + run, n - run, cb, ctx);
	return n;
}

size_t tn_escape(const uint8_t *in, size_t n, uint8_t *out, size_t cap, size_t *consumed)
{
	size_t o = 0, i = 0;
	for (; i < n; i++) {
		if (in[i] == TN_IAC) {
			if (cap - o < 2)
				break;
			out[o++] = TN_IAC;
			out[o++] = TN_IAC;
		} else {
			if (cap - o < 1)
				break;
			out[o++] = in[i];
		}
	}
	if (consumed)
		*consumed = i;
	return o;
}

int tn_build_option(uint8_t *out, size_t cap, uint8_t verb, uint8_t opt)
{
	if (verb != TN_WILL && verb != TN_WONT && verb != TN_DO && verb != TN_DONT)
		return -EINVAL;
	if (cap < 3)
		return -ENOBUFS;
	out[0] = TN_IAC;
	out[1] = verb;
	out[2] = opt;
	return 3;
}

int rfc2217_build(uint8_t *out, size_t cap, uint8_t code, const uint8_t *val, size_t vlen)
{
	size_t need = 3 + (code == TN_IAC ? 2 : 1) + 2;
	for (size_t i = 0; i < vlen; i++)
		need += val[i] == TN_IAC ? 2 : 1;
	if (need > cap)
		return -ENOBUFS;
	size_t o = 0;
	out[o++] = TN_IAC;
	out[o++] = TN_SB;
	out[o++] = TELOPT_COMPORT;
	out[o++] = code;
	if (code == TN_IAC)
		out[o++] = TN_IAC;
	for (size_t i = 0; i < vlen; i++) {
		out[o++] = val[i];
		if (val[i] == TN_IAC)
			out[o++] = TN_IAC;
	}
	out[o++] = TN_IAC;
	out[o++] = TN_SE;
	return (int)o;
}

int rfc2217_build_u8(uint8_t *out, size_t cap, uint8_t code, uint8_t v)
{
	return rfc2217_build(out, cap, code, &v, 1);
}

int rfc2217_build_u32(uint8_t *out, size_t cap, uint8_t code, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	return rfc2217_build(out, cap, code, b, sizeof(b));
}

int rfc2217_parse(const uint8_t *payload, size_t len, struct rfc2217_msg *m)
{
	if (!payload || len == 0)
		return -EINVAL;
	memset(m, 0, sizeof(*m));
	uint8_t code = payload[0];
	int from_server = code >= RFC2217_SERVER_OFFSET;
	uint8_t cmd = from_server ? (uint8_t)(code - RFC2217_SERVER_OFFSET) : code;
	if (cmd > RFC2217_PURGE_DATA)
		return -EINVAL;
	const uint8_t *v = payload + 1;
	size_t vlen = len - 1;
	m->code = code;
	m->cmd = cmd;
	m->from_server = from_server;
	switch (cmd) {
	case RFC2217_SIGNATURE:
		/* RFC 2217: empty text from the client is a request for the signature. */
		m->text = v;
		m->text_len = vlen;
		return 0;
	case RFC2217_SET_BAUDRATE:
		if (vlen != 4)
			return -EINVAL;
		m->value = (uint32_t)v[0] << 24 | (uint32_t)v[1] << 16 | (uint32_t)v[2] << 8 | v[3];
		return 0;
	case RFC2217_FLOWCONTROL_SUSPEND:
	case RFC2217_FLOWCONTROL_RESUME:
		return vlen == 0 ? 0 : -EINVAL;
	case RFC2217_NOTIFY_LINESTATE:
	case RFC2217_NOTIFY_MODEMSTATE:
		/* A client may poll with an empty value (pyserial's poll_modem does). */
		if (vlen == 0 && !from_server)
			return 0;
		/* fall through */
	default:
		if (vlen != 1)
			return -EINVAL;
		m->value = v[0];
		return 0;
	}
}

const char *rfc2217_cmd_name(uint8_t code)
{
	static const char *const names[] = {
	    "SIGNATURE",          "SET-BAUDRATE",       "SET-DATASIZE",
	    "SET-PARITY",         "SET-STOPSIZE",       "SET-CONTROL",
	    "NOTIFY-LINESTATE",   "NOTIFY-MODEMSTATE",  "FLOWCONTROL-SUSPEND",
	    "FLOWCONTROL-RESUME", "SET-LINESTATE-MASK", "SET-MODEMSTATE-MASK",
	    "PURGE-DATA",
	};
	if (code >= RFC2217_SERVER_OFFSET)
		code = (uint8_t)(code - RFC2217_SERVER_OFFSET);
	if (code < sizeof(names) / sizeof(names[0]))
		return names[code];
	return "UNKNOWN";
}
