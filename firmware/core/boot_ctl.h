/* SPDX-License-Identifier: MIT */
/*
 * boot_ctl: the boot-control half of the bridge session (boot_ctl.c): BOOT0/NRST through
 * the line map, reset pulses, automatic bootloader entry, the settle and esptool holds, the
 * restore after a disconnect and the out-of-band actions. Private to bridge.c and
 * boot_ctl.c (the session's state is struct bridge); the public API is bridge.h.
 */
#ifndef ESPSTM_BOOT_CTL_H
#define ESPSTM_BOOT_CTL_H

#include "bridge.h"

/* One printf-style line through the session's HAL log (nothing when hal->log is NULL). */
void bridge_logf(struct bridge *s, enum hal_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The session's millisecond clock (hal_ops.now_ms). */
static inline uint32_t bridge_now(struct bridge *s)
{
	return s->hal->now_ms(s->ctx);
}

/* 1 if c is 8 data bits, even parity, 1 stop bit (the AN3155 bootloader's framing). */
int boot_ctl_is_8e1(const struct hal_uart_cfg *c);

/*
 * Apply UART configuration c through hal->uart_config (recorded only while suspended);
 * what names it in the error log. On failure the old configuration stays. Entering 8E1
 * arms (auto_boot sync) or starts (parity) the automatic bootloader entry; leaving it
 * disarms it and, after an automatic entry, starts the return to the application.
 */
void boot_ctl_apply_cfg(struct bridge *s, struct hal_uart_cfg *c, const char *what);

/* Drive the pins from the client's DTR/RTS through the line map (bridge.h enum
 * bridge_line_map). immediate: without the esptool release hold. A pin that really moves
 * disarms automatic entry until the next switch to 8E1. */
void boot_ctl_lines(struct bridge *s, int immediate);

/* Automatic bootloader entry (why: for the log): BOOT0 high, NRST pulse, settle hold. */
void boot_ctl_enter(struct bridge *s, const char *why);

/* Advance the timed steps (esptool release hold, reset pulse, settle hold). Returns 1 when
 * none holds the queue back (queued operations may run), else 0. */
int boot_ctl_step(struct bridge *s);

/* The queued part of bridge_disconnect(): default framing and the pins for deasserted
 * lines, leaving the bootloader when the chip is in it (bridge.h bridge_disconnect). */
void boot_ctl_restore(struct bridge *s);

/* The queued part of bridge_action(); a is an enum bridge_action, others are ignored. */
void boot_ctl_action(struct bridge *s, uint8_t a);

#endif
