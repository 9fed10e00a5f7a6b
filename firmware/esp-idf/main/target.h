/* SPDX-License-Identifier: MIT */
/* One STM32 target: its UART, BOOT0/NRST pins, bridge session and socket state. Every buffer
 * is static (no heap in the data path). Private to hal_esp.c and rfc2217_task.c. */
#ifndef ESPSTM_TARGET_H
#define ESPSTM_TARGET_H

#include "espstm.h"
#include "stm32_isp.h"

/* FreeRTOS.h first: ESP8266_RTOS_SDK v3.4's driver/uart.h includes freertos/queue.h, which
 * stops with #error unless FreeRTOS.h came before it. */
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "driver/uart.h"

#include <stdint.h>

#define TARGET_NET_BUF      1024 /* network bytes received and not yet taken by the bridge */
#define TARGET_UART_BUF     512  /* UART bytes read and not yet taken by the bridge */
#define TARGET_UART_RX_RING 2048 /* driver RX ring buffer (> 128-byte FIFO) */

struct espstm_target {
	unsigned index;
	int ready;
	uart_port_t uart;
	int nrst_gpio, boot0_gpio;
	uint16_t port;
	char tag[12];           /* log tag "espstm.t0" */
	SemaphoreHandle_t lock; /* bridge session: the target's task vs the HTTP API */
	struct bridge br;
	struct bridge_settings bset;
	/* sockets (lwIP descriptors, -1 = none) */
	int lfd, cfd;
	int net_blocked; /* the socket refused bytes: wait for it to be writable */
	int net_error;   /* send failed: drop the client */
	uint8_t rbuf[TARGET_NET_BUF];
	size_t rlen;
	uint8_t ubuf[TARGET_UART_BUF];
	size_t ulen;
	/* legacy ports (target 0 only, settings legacy_ports): raw 1234, control 1235 */
	int lfd_raw, lfd_ctl, ctl_fd;
	/* transmitter state (ESP8266: FIFO count + one character time) */
	uint32_t char_us;       /* time of one character at the current framing (us), rounded up */
	int64_t tx_empty_since; /* esp_timer time the FIFO was first seen empty, -1 unknown */
	/* flashing over HTTP (http_api.h "Flashing"): the AN3155 master on this target's HAL.
	 * While isp_claimed the bridge session is suspended (bridge_suspend) and the task hands
	 * every UART byte to the ISP and polls it every tick; after each round it gives
	 * flash_evt, which wakes the HTTP upload waiting for ISP room or the end of the run.
	 * A staged upload (stage=1) holds the claim from the start of staging too: the
	 * session waits while the image goes to the stm32img partition (flash erases stall
	 * interrupts), and the UART's bytes are dropped as the ISP is not busy yet. */
	struct stm32_isp isp;
	int isp_claimed;
	SemaphoreHandle_t flash_evt;
};

extern struct espstm_target espstm_targets[ESPSTM_MAX_TARGETS];
extern const struct hal_ops espstm_hal;

#endif
