/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge's --target sim:MODEL: the simulated STM32 (stm32sim/) as the thing behind
 * the bridge's UART and pins, with its wire time (target.h).
 */
#include "target.h"
#include "plog.h"
#include "rfc2217.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int sim_uart_config(void *ctx, struct hal_uart_cfg *c)
{
	struct app *a = ctx;
	static const char par[] = "?NOEMS";
	if (c->baud < 50 || c->baud > 4000000 || c->data_bits < 5 || c->data_bits > 8 ||
	    c->parity < 1 || c->parity > 5 || c->stop < 1 || c->stop > 3)
		return -EINVAL;
	if (c->flow != RFC2217_CONTROL_FLOW_NONE)
		return -ENOTSUP; /* the simulated wire has no RTS/CTS or XON/XOFF */
	struct stm32sim_line l = {.baud = c->baud,
	                          .data_bits = c->data_bits,
	                          .parity = par[c->parity],
	                          .stop_bits = (uint8_t)(c->stop == RFC2217_STOPSIZE_1 ? 1 : 2)};
	stm32sim_set_line(a->sim, app_now_us(), &l);
	unsigned bits = 1u + c->data_bits + (c->parity != RFC2217_PARITY_NONE) +
	                (c->stop == RFC2217_STOPSIZE_1 ? 1u : 2u);
	a->byte_ns = (uint64_t)bits * 1000000000u / c->baud;
	plog(HAL_LOG_DEBUG, "uart: %u %u%c%s", (unsigned)c->baud, c->data_bits, par[c->parity],
	     c->stop == 1   ? "1"
	     : c->stop == 2 ? "2"
	                    : "1.5");
	return 0;
}

static size_t sim_uart_write(void *ctx, const uint8_t *p, size_t n)
{
	struct app *a = ctx;
	size_t k = stm32sim_write(a->sim, app_now_us(), p, n);
	a->uart_short = k < n;
	return k;
}

static size_t sim_hal_tx_pending(void *ctx)
{
	struct app *a = ctx;
	return stm32sim_tx_pending(a->sim, app_now_us());
}

static void sim_uart_purge(void *ctx, int rx, int tx)
{
	struct app *a = ctx;
	(void)tx; /* bytes already on the simulated wire cannot be taken back */
	if (rx) {
		uint8_t junk[256];
		while (stm32sim_read(a->sim, app_now_us(), junk, sizeof(junk)) > 0)
			;
		a->ulen = 0;
	}
}

static void sim_uart_break(void *ctx, int on)
{
	(void)ctx;
	plog(HAL_LOG_DEBUG, "uart: break %s (not simulated)", on ? "on" : "off");
}

static void sim_gpio_set(void *ctx, enum hal_pin pin, int level)
{
	struct app *a = ctx;
	if (pin == HAL_PIN_NRST)
		a->nrst = level;
	else
		a->boot0 = level;
	stm32sim_set_pins(a->sim, app_now_us(), a->nrst, a->boot0);
}

static const struct hal_ops sim_hal = {
    .uart_config = sim_uart_config,
    .uart_write = sim_uart_write,
    .uart_purge = sim_uart_purge,
    .uart_break = sim_uart_break,
    .gpio_set = sim_gpio_set,
    .now_ms = app_hal_now_ms,
    .net_send = app_hal_net_send,
    .log = app_hal_log,
    .uart_tx_pending = sim_hal_tx_pending,
};

static void sim_poll(struct app *a, uint64_t now)
{
	stm32sim_poll(a->sim, now);
}

static size_t sim_read(struct app *a, uint64_t now, uint8_t *p, size_t n)
{
	return stm32sim_read(a->sim, now, p, n);
}

static size_t sim_tx_pending(struct app *a, uint64_t t)
{
	return stm32sim_tx_pending(a->sim, t);
}

/*
 * When (us) at most `left` of the txp characters on the bridge's UART at now are still
 * being sent: the simulator fixes each character's end on the wire when it takes it, and
 * stm32sim_tx_pending() counts those not ended by a given time, so search for it around
 * the estimate from the character time.
 */
static uint64_t sim_tx_drained_at(struct app *a, uint64_t now, size_t txp, size_t left)
{
	uint64_t lo = now; /* more than left pending at lo */
	uint64_t hi = now + ((uint64_t)(txp - left) + 1u) * a->byte_ns / 1000u + 2u;
	for (int i = 0; stm32sim_tx_pending(a->sim, hi) > left; i++) {
		if (i >= 40)
			return hi; /* cannot happen: every character has an end */
		lo = hi;
		hi = now + (hi - now) * 2u;
	}
	while (hi - lo > 1u) {
		uint64_t mid = lo + (hi - lo) / 2u;
		if (stm32sim_tx_pending(a->sim, mid) > left)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

static uint64_t sim_next_event_us(struct app *a)
{
	return stm32sim_next_event_us(a->sim);
}

static int sim_sync(struct app *a)
{
	return stm32sim_sync(a->sim);
}

static void sim_close(struct app *a)
{
	if (a->sim)
		stm32sim_free(a->sim);
	a->sim = NULL;
}

const struct target_ops target_sim_ops = {
    .hal = &sim_hal,
    .poll = sim_poll,
    .read = sim_read,
    .tx_pending = sim_tx_pending,
    .tx_drained_at = sim_tx_drained_at,
    .next_event_us = sim_next_event_us,
    .sync = sim_sync,
    .close = sim_close,
};

int target_sim_open(struct app *a, const char *model, const char *flash, int instant,
                    uint32_t app_baud)
{
	char err[256] = "";
	struct stm32sim_options so = {
	    .model = model, .flash_path = flash, .instant = instant, .app_baud = app_baud};
	a->sim = stm32sim_new(&so, app_now_us(), err, sizeof(err));
	if (!a->sim) {
		fprintf(stderr, "espstm-bridge: %s: %s\n", a->target, err);
		return strstr(err, "model") ? 2 : 1;
	}
	a->nrst = 1;
	a->boot0 = 0;
	a->byte_ns = 10u * 1000000000u / 115200u; /* until the UART is configured */
	return 0;
}
