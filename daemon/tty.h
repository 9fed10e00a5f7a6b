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
	/* Called once when the CUSE connection is gone (session ended, or its fd reports an
	 * error, e.g. after "echo 1 > /sys/fs/fuse/connections/N/abort"): /dev/<name> no
	 * longer works and cannot come back; parked requests were answered EIO. The caller
	 * should free the tty (tty_dev_free is safe from inside this callback). May be NULL. */
	void (*on_dead)(void *ctx, struct tty_dev *t);
	void *ctx;
	int debug; /* log every request */
};

/*
 * Open /dev/cuse, register the device and start serving it on loop; the tty installs its
 * callbacks on link. Returns 0 or negative errno (-ENOENT/-ENODEV: no CUSE in this kernel,
 * -EACCES: not root, -EEXIST: name taken).
 * Not emulated (divergences from a kernel tty): no line discipline at all: ICANON is
 * treated as raw with VMIN 1 / VTIME 0, no echo, no ICRNL/ONLCR/ISTRIP processing, no
 * signals (ISIG), no controlling terminal, so no hangup on a CD drop with CLOCAL clear;
 * IXON/IXOFF and CRTSCTS are carried to the bridge (RFC 2217 flow control) and done there.
 */
int tty_dev_new(uv_loop_t *loop, const struct tty_config *cfg, struct link *link,
                struct tty_dev **out);
/* Remove the device (pending requests are answered EIO) and free it. */
void tty_dev_free(struct tty_dev *t);

/* What `espstm status` shows of one device (the tty's view; the link has its own). */
struct tty_stats {
	unsigned opens;    /* file descriptors open on the device now */
	int exclusive;     /* TIOCEXCL in effect */
	uint32_t baud;     /* current termios speed, bit/s */
	uint8_t data_bits; /* 5..8 */
	char parity;       /* 'N' 'O' 'E' 'M' 'S' */
	uint8_t stop_bits; /* 1 or 2 */
	enum link_flow flow;
	int modem; /* TIOCMGET bits: TIOCM_DTR|RTS|CTS|DSR|CD|RI */
	/* struct serial_icounter_struct counters (TIOCGICOUNT): modem-line transitions from
	 * NOTIFY-MODEMSTATE, line errors from NOTIFY-LINESTATE, bytes each way */
	uint32_t cts, dsr, rng, dcd, rx, tx, frame, overrun, parity_err, brk, buf_overrun;
	/* bytes from the bridge discarded on purpose, as a serial port does: input flushes
	 * (TCIFLUSH, TCSETSF, including what the link discarded until the bridge's PURGE-DATA
	 * answer), input while no descriptor is open, and what was unread at the last close.
	 * Nothing is dropped while a program has the port open and reads: a full buffer makes
	 * the link send FLOWCONTROL-SUSPEND (RFC 2217) instead. */
	uint64_t rx_dropped;
};

/* Fill st (cheap, no I/O). */
void tty_get_stats(const struct tty_dev *t, struct tty_stats *st);

#ifdef ESPSTM_UNIT_TEST
/* Unit tests only: a tty without a CUSE session (no /dev/cuse, no device node); the test
 * drives the CUSE operations itself with fake requests (it defines the fuse_reply_* and
 * fuse_req_* functions tty.c and tty_ops_ioctl.c call, which take precedence over libfuse's). */
struct cuse_lowlevel_ops;
int tty_test_new(uv_loop_t *loop, const struct tty_config *cfg, struct link *link,
                 struct tty_dev **out);
const struct cuse_lowlevel_ops *tty_test_ops(void);
/* What the uv_poll callback on the CUSE fd does when libuv reports status (< 0: error). */
void tty_test_fuse_event(struct tty_dev *t, int status);
#endif

#endif
