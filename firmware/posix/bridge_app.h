/* SPDX-License-Identifier: MIT */
/* espstm-bridge: the program's state (main.c), shared with the client code (tls_port.c). */
#ifndef ESPSTM_BRIDGE_APP_H
#define ESPSTM_BRIDGE_APP_H

#include "bridge.h"
#include "settings.h"
#include "stm32_isp.h"
#include "stm32sim.h"
#include "tls_port.h"

#include <stdint.h>
#include <uv.h>

struct target_ops;

#define NET_INFLIGHT_MAX (64 * 1024) /* bytes handed to libuv and not yet written */
/* A run of bytes from the chip (an answer of many bytes) is collected for this long before
 * pump() runs for it, instead of once per byte; a byte after a pause wakes pump() at once. */
#define RX_BATCH_US 500u

struct app {
	uv_loop_t *loop;
	uv_tcp_t server;
	uv_tcp_t *client;      /* the RFC 2217 / legacy raw client (tls_port.c), or NULL */
	struct port_client pc; /* its state */
	/* the next wake-up of pump(): a timerfd (Linux, CLOCK_MONOTONIC, ns resolution) watched
	 * by tfd_poll, else (timerfd unavailable) the libuv timer, which counts whole ms */
	uv_timer_t timer;
	int tfd; /* -1: timer is used */
	uv_poll_t tfd_poll;
	uint64_t byte_ns; /* wire time of one character on the bridge's UART (line settings) */
	int uart_short;   /* the last UART write was not taken whole: a writer waits for room */
	size_t rx_got;    /* bytes read from the UART in this pump() */
	uv_signal_t sigint, sigterm;
	const char *target;
	const struct target_ops *tgt; /* target.h: sim or tty */
	struct stm32sim *sim;         /* --target sim: */
	struct bridge br;
	struct bridge_settings set;
	int nrst, boot0;
	/* network -> bridge leftovers (not yet consumed) */
	uint8_t rbuf[4096];
	size_t rlen;
	int reading;
	/* UART -> bridge leftovers */
	uint8_t ubuf[1024];
	size_t ulen;
	size_t inflight;
	int exit_code;
	int stopping;
	/* flashing over HTTP (http_api.h): the AN3155 master on the same HAL; while claimed
	 * the bridge session is suspended and the UART's bytes go to the ISP */
	struct stm32_isp isp;
	int isp_claimed;
	/* client allow-list: --allow LIST (allow_cli, wins) or the settings' "allow" */
	const char *allow_cli;
	char allow_set[SETTINGS_ALLOW_MAX]; /* the settings' list last seen */
	int allow_seen;
};

/* Move bytes between the client, the bridge and the simulated chip; re-arm the wake-up. */
void app_pump(struct app *a);
uint64_t app_now_ms(void);

#endif
