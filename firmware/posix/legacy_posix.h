/* SPDX-License-Identifier: MIT */
/* espstm-bridge --legacy: the seed firmware's raw port and control port (legacy.c). */
#ifndef ESPSTM_LEGACY_POSIX_H
#define ESPSTM_LEGACY_POSIX_H

#include "bridge.h"

#include <stdint.h>
#include <uv.h>

struct legacy_posix_hooks {
	struct bridge *br;        /* the target's session */
	void *app;                /* data of the main listening server (passed to on_conn) */
	uv_connection_cb on_conn; /* main.c's accept: one client per target, busy otherwise */
	void (*pump)(void *app);  /* run the bridge + target and re-arm main's timer */
	int (*plain_ok)(void);    /* 1: plaintext clients are served (the legacy ports open);
	                             0: a unit key without plaintext: they are refused */
};

/* Parse "RAW,CONTROL" (each 0..65535; 0 = ephemeral). Returns 0 or -EINVAL. */
int legacy_posix_parse_ports(const char *s, uint32_t *raw, uint32_t *ctl);

/* Listen on host:raw (raw byte bridge, same session and single-client slot as the RFC 2217
 * port) and host:ctl (control: r/u/e). Prints "espstm-bridge: legacy raw port on
 * HOST:PORT, control port on HOST:PORT" to stderr. The handles do not keep the loop alive.
 * Returns 0 or a negative libuv error (message printed). */
int legacy_posix_start(uv_loop_t *loop, const char *host, uint32_t raw, uint32_t ctl,
                       const struct legacy_posix_hooks *h);

#endif
