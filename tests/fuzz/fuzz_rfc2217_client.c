/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the client role of the codec (firmware/core/rfc2217.c) fed arbitrary
 * server bytes: tn_decode in random chunk sizes, rfc2217_parse on every COM-PORT
 * subnegotiation, names, and escape/build round trips on the decoded data.
 */
#include "rfc2217.h"

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
	return 0;
}
