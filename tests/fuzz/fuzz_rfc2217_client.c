/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the RFC 2217 client, fed arbitrary server bytes. First the codec
 * (firmware/core/rfc2217.c): tn_decode in random chunk sizes, rfc2217_parse on every
 * COM-PORT subnegotiation, names, and escape/build round trips on the decoded data. Then
 * the client session (firmware/core/rfc2217_client.c) on a fake clock: the same bytes in
 * chunks, with setters, purges, actions and clock steps between, its output "sent" as
 * espstmd's link does; what it sends must decode cleanly and stay bounded.
 */
#include "rfc2217_client.h"

#include <stdint.h>
#include <string.h>

struct acc {
	size_t data_bytes;
};

static void on_ev(void *ctx, const struct tn_event *ev)
{
	struct acc *a = ctx;
	if (ev->type == TN_EV_DATA) {
		a->data_bytes += ev->len;
		uint8_t out[128];
		size_t used = 0, off = 0;
		while (off < ev->len) {
			tn_escape(ev->data + off, ev->len - off, out, sizeof(out), &used);
			if (used == 0)
				__builtin_trap();
			off += used;
		}
	} else if (ev->type == TN_EV_SB) {
		if (ev->len > TN_SB_MAX)
			__builtin_trap();
		if (ev->opt == TELOPT_COMPORT) {
			struct rfc2217_msg m;
			if (rfc2217_parse(ev->data, ev->len, &m) == 0) {
				(void)rfc2217_cmd_name(m.code);
				uint8_t out[2 * TN_SB_MAX + 8];
				int n = rfc2217_build(out, sizeof(out), ev->data[0], ev->data + 1,
				                      ev->len - 1);
				if (n < 0)
					__builtin_trap();
			}
		}
	}
}

/* The client session: a bounded queue of what it asked to send. */
#define QMAX 64
static struct rfc2217_client C;
static struct rfc2217_client_out q[QMAX];
static uint8_t qb[QMAX][64];
static size_t nq, delivered;

static int c_out(void *ctx, const struct rfc2217_client_out *o)
{
	(void)ctx;
	if (nq == QMAX)
		return -105; /* -ENOBUFS: the peer does not read */
	if (o->n > sizeof qb[0])
		__builtin_trap();
	size_t i = nq;
	if (o->kind == RFC2217_OUT_BYTES && o->front) {
		memmove(q + 1, q, nq * sizeof q[0]);
		memmove(qb + 1, qb, nq * sizeof qb[0]);
		i = 0;
	}
	q[i] = *o;
	if (o->n)
		memcpy(qb[i], o->p, o->n);
	nq++;
	return 0;
}

static void c_data(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	delivered += n;
}

static const struct rfc2217_client_ops c_ops = {.out = c_out, .data = c_data};

static void check_sent(void *ctx, const struct tn_event *ev)
{
	(void)ctx;
	struct rfc2217_msg m;
	if (ev->type == TN_EV_DATA || ev->type == TN_EV_COMMAND)
		__builtin_trap(); /* the client only sends options and commands */
	if (ev->type == TN_EV_SB && rfc2217_parse(ev->data, ev->len, &m) < 0)
		__builtin_trap();
}

/* "Send" the queue as daemon/link.c does: answers expected once sent, action end run. */
static void send_queue(void)
{
	for (int guard = 0; nq > 0; guard++) {
		struct rfc2217_client_out o = q[0];
		uint8_t b[64];
		struct tn_decoder d;
		if (guard > 4 * QMAX)
			__builtin_trap();
		memcpy(b, qb[0], sizeof b);
		memmove(q, q + 1, (nq - 1) * sizeof q[0]);
		memmove(qb, qb + 1, (nq - 1) * sizeof qb[0]);
		nq--;
		if (o.kind == RFC2217_OUT_BYTES) {
			if (o.answer)
				rfc2217_client_sent(&C, o.cmd, o.val);
			tn_decoder_init(&d);
			tn_decode(&d, b, o.n, check_sent, NULL);
		} else if (o.kind == RFC2217_OUT_ACTION_END) {
			rfc2217_client_action_done(&C);
		}
	}
}

/* One step chosen by byte k: a setter, purge, action, flow control or clock step. */
static void client_step(uint8_t k, uint32_t *now)
{
	struct rfc2217_client_line ln = {1200u << (k & 7), (uint8_t)(5 + (k & 3)),
	                                 (uint8_t)(1 + k % 5), (uint8_t)(1 + k % 3)};
	switch (k >> 4) {
	case 0:
		rfc2217_client_set_line(&C, &ln);
		break;
	case 1:
		rfc2217_client_set_flow(&C, (uint8_t)(1 + k % 3));
		break;
	case 2:
		rfc2217_client_set_dtr(&C, k & 1);
		rfc2217_client_set_rts(&C, k & 2);
		break;
	case 3:
		rfc2217_client_set_break(&C, k & 1);
		break;
	case 4:
		rfc2217_client_purge(&C, (uint8_t)(1 + k % 3), *now);
		break;
	case 5:
		rfc2217_client_action(&C, (enum rfc2217_client_action)(k % 4));
		break;
	case 6:
		rfc2217_client_rx_flow(&C, k & 1);
		break;
	case 7:
		rfc2217_client_stop(&C);
		rfc2217_client_start(&C, "fuzz", *now);
		break;
	default:
		*now += (uint32_t)(k & 0x0f) * 300u;
		rfc2217_client_poll(&C, *now);
		break;
	}
}

static void fuzz_client(const uint8_t *data, size_t size)
{
	uint32_t now = size > 0 ? (uint32_t)data[0] << 24 : 0; /* also across the wrap */
	nq = delivered = 0;
	rfc2217_client_init(&C, &c_ops, NULL);
	rfc2217_client_start(&C, "fuzz", now);
	send_queue();
	for (size_t i = 1; i < size;) {
		size_t chunk = 1 + (data[i] % 13);
		if (chunk > size - i)
			chunk = size - i;
		rfc2217_client_input(&C, data + i, chunk, now);
		client_step(data[i], &now);
		send_queue();
		i += chunk;
	}
	if (delivered > size)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tn_decoder d;
	struct acc a = {0};
	tn_decoder_init(&d);
	size_t i = 0;
	while (i < size) {
		size_t chunk = 1 + (data[i] % 17);
		if (chunk > size - i)
			chunk = size - i;
		if (tn_decode(&d, data + i, chunk, on_ev, &a) != chunk)
			__builtin_trap();
		i += chunk;
	}
	if (a.data_bytes > size)
		__builtin_trap();
	fuzz_client(data, size);
	return 0;
}
