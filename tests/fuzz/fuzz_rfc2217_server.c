/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: a bridge session (firmware/core/bridge.c, RFC 2217 server role) fed
 * arbitrary client bytes. The first input byte picks settings and how the UART/socket
 * behave; the rest is split into client chunks with clock steps and UART traffic between.
 */
#include "bridge.h"

#include <stdint.h>
#include <string.h>

static uint32_t clock_ms;
static size_t uart_space, net_space;

static int f_cfg(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	return c->flow == RFC2217_CONTROL_FLOW_HARDWARE ? -95 : 0;
}

static size_t f_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	return n < uart_space ? n : uart_space;
}

static void f_purge(void *ctx, int rx, int tx)
{
	(void)ctx;
	(void)rx;
	(void)tx;
}

static void f_break(void *ctx, int on)
{
	(void)ctx;
	(void)on;
}

static void f_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	(void)pin;
	(void)level;
}

static uint32_t f_now(void *ctx)
{
	(void)ctx;
	return clock_ms;
}

static size_t f_send(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	return n < net_space ? n : net_space;
}

static const struct hal_ops hal = {.uart_config = f_cfg,
                                   .uart_write = f_write,
                                   .uart_purge = f_purge,
                                   .uart_break = f_break,
                                   .gpio_set = f_gpio,
                                   .now_ms = f_now,
                                   .net_send = f_send,
                                   .log = NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct bridge b;
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	struct bridge_settings set;
	bridge_settings_default(&set);
	set.auto_boot = (enum bridge_auto_boot)(mode % 3);
	set.line_map = (enum bridge_line_map)((mode / 3) % 3);
	clock_ms = 0xFFFFFF00u; /* exercise clock wrap */
	uart_space = (mode & 0x40) ? 3 : SIZE_MAX;
	net_space = (mode & 0x80) ? 5 : SIZE_MAX;
	bridge_init(&b, &hal, NULL, &set);
	bridge_connect(&b);
	size_t i = 0;
	while (i < size) {
		size_t chunk = 1 + data[i] % 61;
		if (chunk > size - i)
			chunk = size - i;
		size_t k = bridge_from_net(&b, data + i, chunk);
		if (k > chunk)
			__builtin_trap();
		i += k;
		uint8_t u[8];
		memcpy(u, data + (i < size ? i : 0), size - i < 8 ? size - i : 8);
		bridge_from_uart(&b, u, size - i < 8 ? size - i : 8);
		clock_ms += 7;
		bridge_poll(&b);
		if (k == 0) {
			/* stuck input must free up once the UART and socket drain */
			uart_space = SIZE_MAX;
			net_space = SIZE_MAX;
			clock_ms += 1000;
			bridge_poll(&b);
			clock_ms += 1000;
			bridge_poll(&b);
			if (bridge_net_room(&b) == 0)
				__builtin_trap();
		}
	}
	bridge_disconnect(&b);
	clock_ms += 100;
	bridge_poll(&b);
	return 0;
}
