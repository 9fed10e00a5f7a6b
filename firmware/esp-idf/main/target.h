/* SPDX-License-Identifier: MIT */
/* One STM32 target: its UART, BOOT0/NRST pins, bridge session and socket state. Every buffer
 * is static (no heap in the data path). Private to hal_esp.c and rfc2217_task.c. */
#ifndef ESPSTM_TARGET_H
#define ESPSTM_TARGET_H

#include "espstm.h"
#include "legacy.h"
#include "stm32_isp.h"
#include "tls_session.h"

/* FreeRTOS.h first: ESP8266_RTOS_SDK v3.4's driver/uart.h includes freertos/queue.h, which
 * stops with #error unless FreeRTOS.h came before it. */
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "driver/uart.h"

#include <stdint.h>

#define TARGET_NET_BUF      1024 /* network bytes received and not yet taken by the bridge */
#define TARGET_UART_BUF     512  /* UART bytes read and not yet taken by the bridge */
#define TARGET_UART_RX_RING 2048 /* driver RX ring buffer (> 128-byte FIFO) */
#define TARGET_TLS_IN       512  /* ciphertext received and not yet taken by the TLS session */

/* The client of the RFC 2217 / legacy raw port (client.c). */
enum client_state {
	CL_NONE = 0, /* no client */
	CL_GATE,     /* first bytes awaited: TLS, plaintext, or refused */
	CL_TLS_HS,   /* TLS handshake running (the bridge is not connected yet) */
	CL_TLS,      /* TLS-PSK session, RFC 2217 inside */
	CL_PLAIN,    /* plaintext session (setting plaintext = 1, or no unit key) */
};

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
	int net_blocked;              /* the socket refused bytes: wait for it to be writable */
	int net_error;                /* send failed: drop the client */
	uint8_t rbuf[TARGET_NET_BUF]; /* plaintext from the client (gate bytes while CL_GATE) */
	size_t rlen;
	/* the client (client.c): state, TLS session, holder's information */
	int cstate;                  /* enum client_state */
	int craw;                    /* came on the legacy raw port: plaintext, no Telnet */
	int kick;                    /* POST /api/targets/N/disconnect: drop at the next round */
	char peer[24];               /* "A.B.C.D:PORT" */
	int64_t since_us, active_us; /* esp_timer: connected, last byte in either direction */
	uint32_t bytes_in, bytes_out;
	struct tls_session tls;
	uint32_t tls_gen; /* unit key generation the session was made with (security.h) */
	uint8_t cbuf[TARGET_TLS_IN];
	size_t clen;
	uint8_t ubuf[TARGET_UART_BUF];
	size_t ulen;
	/* legacy ports (target 0 only, settings legacy_ports): raw 1234, control 1235 */
	int lfd_raw, lfd_ctl, ctl_fd;
	struct legacy_ctl ctl; /* the control client's input state (HTTP guard) */
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

/* client.c; every call from the target's task with its lock held (client_info: any task
 * holding the lock). */
struct sockaddr_in;
/* A client accepted on fd (sockets options set): the gate starts. raw: legacy raw port. */
void client_begin(struct espstm_target *t, int fd, const struct sockaddr_in *peer, int raw);
/* Close the client (TLS: close_notify first), log why (errno err, 0 none); the bridge
 * session ends if it had started. */
void client_drop(struct espstm_target *t, const char *why, int err);
/* The socket is readable: read what the gate / TLS / bridge can take. Returns bytes read,
 * 0 (nothing now) or -1 (the client was dropped). */
int client_read(struct espstm_target *t);
/* Every round of the task: API disconnect, send errors, gate and handshake timeouts, key
 * rotation, idle timeout (idle_timeout_s, 0 = none), TLS output and pending plaintext.
 * Returns bytes moved towards the bridge. */
size_t client_poll(struct espstm_target *t, int64_t now_us, uint32_t idle_timeout_s);
/* 1 if the socket should be watched for reading now. */
int client_want_read(const struct espstm_target *t);
/* hal net_send: bridge output to the client (TLS: encrypted). Bytes accepted (0..n). */
size_t client_send(struct espstm_target *t, const uint8_t *p, size_t n);
/* The holder's information; 1 with a client, 0 without (ci zeroed). */
int client_info(const struct espstm_target *t, struct client_info *ci, int64_t now_us);
extern const struct hal_ops espstm_hal;

#endif
