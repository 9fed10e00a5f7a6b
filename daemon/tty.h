/* SPDX-License-Identifier: MIT */
/*
 * tty: one CUSE character device (/dev/NAME) that behaves like a serial port
 * (termios(3), tty_ioctl(4)), backed by a link (link.h). Runs on the libuv loop:
 * the CUSE session fd is watched with a uv_poll_t, requests that cannot be answered
 * yet (blocking reads, tcdrain) are parked and answered later, never blocking the loop.
 */
#ifndef ESPSTM_TTY_H
#define ESPSTM_TTY_H

#include "link.h"
#include <stdint.h>
#include <uv.h>

struct tty_dev;

struct tty_config {
	const char *name;      /* device name: creates /dev/<name> (CUSE DEVNAME) */
	uint32_t initial_baud; /* termios speed a fresh device starts with (default 115200) */
	/* Called once when the kernel has created the device node (CUSE INIT done). */
	void (*on_ready)(void *ctx, struct tty_dev *t);
	void *ctx;
	int debug; /* log every request */
};

/*
 * Open /dev/cuse, register the device and start serving it on loop; the tty installs its
 * callbacks on link. Returns 0 or negative errno (-ENOENT/-ENODEV: no CUSE in this kernel,
 * -EACCES: not root, -EEXIST: name taken).
 */
int tty_dev_new(uv_loop_t *loop, const struct tty_config *cfg, struct link *link,
                struct tty_dev **out);
/* Remove the device (pending requests are answered EIO) and free it. */
void tty_dev_free(struct tty_dev *t);

#endif
