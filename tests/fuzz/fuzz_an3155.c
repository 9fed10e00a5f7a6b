/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes into a bootloader-mode stm32sim (instant, in-memory
 * flash). Input: byte 0 picks the model and the frame timeout; the rest is a stream where
 * 0xF5 escapes a control op (next byte: 0 reset into the bootloader, 1 reset into the
 * app, 2 switch the line to 8N1, 3 back to 8E1, 4 advance time 1 s, 0xF5 a literal 0xF5);
 * everything else is sent to the chip. Asserts that nothing crashes and the output stays
 * bounded (at most one READ reply plus a banner per byte sent).
 */
#include "stm32sim.h"

#include <stdint.h>
#include <stdlib.h>

static void drain(struct stm32sim *s, uint64_t t, size_t *total)
{
	uint8_t buf[512];
	size_t n;
	while ((n = stm32sim_read(s, t, buf, sizeof(buf))) > 0)
		*total += n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[] = {"stm32f103", "stm32g431", "stm32f407"};
	if (size < 1)
		return 0;
	struct stm32sim_options o = {
	    .model = names[(data[0] & 3) % 3],
	    .instant = 1,
	    .frame_timeout_ms = (data[0] & 4) ? 100 : 0,
	};
	char err[128];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	if (!s)
		abort();
	const struct stm32sim_line e81 = {115200, 8, 'E', 1}, n81 = {115200, 8, 'N', 1};
	uint64_t t = 1;
	stm32sim_set_line(s, t, &e81);
	stm32sim_set_pins(s, t, 0, 1);
	stm32sim_set_pins(s, t, 1, 1);
	size_t out = 0, sent = 0;
	for (size_t i = 1; i < size; i++) {
		uint8_t b = data[i];
		if (b == 0xF5 && i + 1 < size) {
			uint8_t op = data[++i];
			switch (op) {
			case 0:
			case 1:
				stm32sim_set_pins(s, t, 0, !op);
				stm32sim_set_pins(s, t, 1, !op);
				continue;
			case 2:
				stm32sim_set_line(s, t, &n81);
				continue;
			case 3:
				stm32sim_set_line(s, t, &e81);
				continue;
			case 4:
				t += 1000000;
				stm32sim_poll(s, t);
				continue;
			default:
				b = op;
				break;
			}
		}
		if (stm32sim_write(s, t, &b, 1) != 1)
			abort(); /* instant mode never applies backpressure */
		sent++;
		drain(s, t, &out);
		if (out > 320 * (sent + 2))
			abort();
	}
	stm32sim_poll(s, t + 100000000);
	drain(s, t + 100000000, &out);
	if (out > 320 * (sent + 2) || stm32sim_next_event_us(s) < t)
		abort();
	stm32sim_free(s);
	return 0;
}
