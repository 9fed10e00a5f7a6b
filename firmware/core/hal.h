/* SPDX-License-Identifier: MIT */
/*
 * Hardware abstraction used by the portable core (bridge.c, boot_ctl.c, stm32_isp.c). A
 * platform (ESP-IDF, firmware/posix, a unit test) fills a struct hal_ops and passes it to
 * bridge_init() (and stm32_isp_init()).
 * Every callback receives the platform's ctx pointer. Callbacks must not call back into the
 * bridge session synchronously.
 */
#ifndef ESPSTM_HAL_H
#define ESPSTM_HAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* UART framing, in RFC 2217 encoding so answers can be sent as they are. */
struct hal_uart_cfg {
	uint32_t baud;     /* bits per second, > 0 */
	uint8_t data_bits; /* 5..8 */
	uint8_t parity;    /* RFC2217_PARITY_NONE (1) .. RFC2217_PARITY_SPACE (5) */
	uint8_t stop;      /* RFC2217_STOPSIZE_1 (1), _2 (2), _1_5 (3) */
	uint8_t flow;      /* RFC2217_CONTROL_FLOW_NONE (1), _XONXOFF (2), _HARDWARE (3) */
};

/* Pins driven by the bridge. */
enum hal_pin { HAL_PIN_NRST = 0, HAL_PIN_BOOT0 = 1 };

/* Log levels: HAL_LOG_INFO is printed normally, HAL_LOG_DEBUG only when verbose. */
enum hal_log_level { HAL_LOG_ERROR = 0, HAL_LOG_INFO = 1, HAL_LOG_DEBUG = 2 };

struct hal_ops {
	/* Apply a UART configuration. Returns 0, or a negative errno (-EINVAL: not supported
	 * by this UART) in which case the previous configuration stays in force. The callee
	 * may round cfg->baud to what the hardware really produces and write it back. */
	int (*uart_config)(void *ctx, struct hal_uart_cfg *cfg);
	/* Queue bytes for transmission. Returns bytes accepted (0..n): the free space of the
	 * UART's transmit FIFO/buffer. Never blocks. */
	size_t (*uart_write)(void *ctx, const uint8_t *p, size_t n);
	/* Discard the UART's receive (rx != 0) and/or transmit (tx != 0) buffers. */
	void (*uart_purge)(void *ctx, int rx, int tx);
	/* Drive a break condition on TX (on != 0) or end it. */
	void (*uart_break)(void *ctx, int on);
	/* Set a pin's electrical level (0 low, 1 high). */
	void (*gpio_set)(void *ctx, enum hal_pin pin, int level);
	/* Monotonic clock in milliseconds (wraps at 2^32; the core compares with wrap). */
	uint32_t (*now_ms)(void *ctx);
	/* Send bytes to the connected network client. Returns bytes accepted (0..n); the
	 * rest stays queued in the session and is offered again from bridge_poll(). */
	size_t (*net_send)(void *ctx, const uint8_t *p, size_t n);
	/* One log line without trailing newline (may be NULL). */
	void (*log)(void *ctx, enum hal_log_level level, const char *line);
	/* Added after the first contract (may be NULL; a zero-initialised field keeps the old
	 * behaviour). Bytes accepted by uart_write() whose last bit has not yet left the
	 * transmitter (FIFO + ring buffer + shift register; 0 = idle). The core waits for 0
	 * before it changes the UART framing, breaks, or moves NRST/BOOT0, so earlier bytes go
	 * out at the framing and into the chip state they were sent for. NULL: the platform
	 * cannot tell, the core assumes idle (ESP-IDF: uart_wait_tx_done(port, 0) == ESP_OK
	 * means idle; the count only needs to be 0 vs. non-zero, more is used to estimate
	 * when to look again). */
	size_t (*uart_tx_pending)(void *ctx);
};

/*
 * True once the millisecond clock now (hal_ops.now_ms) has reached deadline t. Wrap-safe:
 * correct while the two are less than 2^31 ms (24.8 days) apart, across the 49.7-day wrap
 * of a uint32_t clock.
 */
static inline bool hal_time_reached(uint32_t now, uint32_t t)
{
	return (int32_t)(now - t) >= 0;
}

#endif
