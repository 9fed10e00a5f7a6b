/* SPDX-License-Identifier: MIT */
/*
 * ctl: espstmd's control socket (a unix stream socket, libuv), used by the `espstm` tool.
 *
 * The request/answer protocol and the default path are in common/ctl_proto.h, shared with
 * the espstm tool.
 */
#ifndef ESPSTM_CTL_H
#define ESPSTM_CTL_H
#include "ctl_proto.h"
#include "link.h"
#include "tty.h"
#include <stdint.h>
#include <uv.h>

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
