/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge's targets: what pump() (main.c) needs from the thing behind the bridge's
 * UART, the simulated STM32 (target_sim.c, --target sim:MODEL) or a real tty
 * (tty_target.c, --target tty:DEVICE). Each target has its hal_ops (firmware/core/hal.h)
 * with ctx = the struct app; the clock, network and log callbacks are main.c's.
 */
#ifndef ESPSTM_TARGET_H
#define ESPSTM_TARGET_H

#include "bridge_app.h"
#include "hal.h"

#include <stddef.h>
#include <stdint.h>

struct target_ops {
	const struct hal_ops *hal;
	/* Advance the target to now (us, the now_us() clock); may be NULL. */
	void (*poll)(struct app *a, uint64_t now);
	/* Bytes the target sent to the bridge's UART, up to n, into p; never blocks.
	 * Returns the count (0: none now). */
	size_t (*read)(struct app *a, uint64_t now, uint8_t *p, size_t n);
	/* Bytes written to the UART and not yet on the wire at time t (us). */
	size_t (*tx_pending)(struct app *a, uint64_t t);
	/* When (us) at most left of the txp pending characters at now are still unsent. */
	uint64_t (*tx_drained_at)(struct app *a, uint64_t now, size_t txp, size_t left);
	/* The next moment (us) the target wants pump() to run, UINT64_MAX: none (a tty's
	 * input wakes pump() by itself). */
	uint64_t (*next_event_us)(struct app *a);
	/* End of a pump(): a->ulen tells whether there is room for more input (may be NULL). */
	void (*rx_room)(struct app *a);
	/* At exit (signal): write state back (flash file). Returns 0 or a negative errno;
	 * may be NULL. */
	int (*sync)(struct app *a);
	/* At exit, before the loop's last run: uv_close() the target's handles (may be
	 * NULL). The HAL still works afterwards (close callbacks may use it). */
	void (*stop)(struct app *a);
	/* At exit, after the loop's last run: release everything (may be NULL). */
	void (*close)(struct app *a);
};

/* main.c's clock, network and log callbacks (hal_ops now_ms, net_send, log) */
uint32_t app_hal_now_ms(void *ctx);
size_t app_hal_net_send(void *ctx, const uint8_t *p, size_t n);
void app_hal_log(void *ctx, enum hal_log_level level, const char *line);
uint64_t app_now_us(void);

/* --target sim:MODEL (model = MODEL) with --flash, --instant, --app-baud: the simulated
 * STM32 in a->sim. Returns 0, or 1 (runtime error) / 2 (unknown model), message printed. */
int target_sim_open(struct app *a, const char *model, const char *flash, int instant,
                    uint32_t app_baud);
extern const struct target_ops target_sim_ops;

#endif
