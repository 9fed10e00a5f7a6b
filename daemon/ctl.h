/* SPDX-License-Identifier: MIT */
/*
 * ctl: espstmd's control socket (a unix stream socket, libuv), used by the `espstm` tool.
 *
 * Protocol: the client sends one request line (text, '\n'-terminated, at most 256 bytes),
 * the daemon answers with one JSON object on one line and closes the connection.
 *   status               {"ok":true,"devices":[{...per device...}]}
 *   status NAME          {"ok":true,"devices":[{...}]}
 *   reset|boot|run NAME  {"ok":true} or {"ok":false,"error":"..."}
 *   version              {"ok":true,"version":"..."}
 * Errors: {"ok":false,"error":"<message>"} (unknown command, unknown device, link down,
 * line too long). A connection is closed 5 s after it was accepted (request and answer
 * together), whatever it sends meanwhile. At most 16 clients at
 * once; more are accepted and immediately answered {"ok":false,"error":"busy"}.
 * Per-device object keys (stable; the espstm tool and tests rely on them):
 *   name, host, port, http_port, protocol ("rfc2217"|"espstm-legacy"), state ("up"|"connecting"|
 *   "down"), peer, rtt_us, up_ms, baud, data_bits, parity ("N".."S"), stop_bits, flow
 *   ("none"|"xonxoff"|"hardware"), dtr, rts, cts, dsr, cd, ri (0/1), opens, exclusive,
 *   tx_bytes, rx_bytes, tx_dropped, rx_dropped, connects, reconnects, errors, last_error,
 *   icount {cts,dsr,rng,dcd,rx,tx,frame,overrun,parity,brk,buf_overrun}.
 */
#ifndef ESPSTM_CTL_H
#define ESPSTM_CTL_H
#include "link.h"
#include "tty.h"
#include <stdint.h>
#include <uv.h>

#define CTL_DEFAULT_PATH "/run/espstm/espstmd.sock"

struct ctl;

/* One device as the daemon describes it to ctl. */
struct ctl_device {
	const char *name;     /* "ttySTM0" */
	const char *host;
	uint16_t port;
	enum link_protocol protocol;
	uint16_t http_port;   /* the bridge's web/API port (conf http_port), for espstm flash */
	struct link *link;    /* may be NULL (not created yet) */
	struct tty_dev *tty;  /* may be NULL (node not ready yet) */
};

/* The daemon's side: ctl calls these on the loop thread while serving a request. */
struct ctl_ops {
	size_t (*count)(void *ctx);                                 /* devices now */
	int (*get)(void *ctx, size_t i, struct ctl_device *out);    /* 0 or -ENOENT */
};

/*
 * Listen on path (unlinking a stale socket first; mode 0660). Takes: loop, path, ops/ctx.
 * Returns 0 and *out, or a negative errno (-EADDRINUSE when another espstmd answers on it,
 * -ENAMETOOLONG, errors of socket/bind/listen).
 */
int ctl_new(uv_loop_t *loop, const char *path, const struct ctl_ops *ops, void *ctx,
            struct ctl **out);
/* Stop listening, unlink the socket, drop clients, free once libuv released its handles. */
void ctl_close(struct ctl *c);
#endif
