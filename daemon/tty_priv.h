/* SPDX-License-Identifier: MIT */
/*
 * tty_priv: the state of one CUSE tty and the helpers its two halves share: tty.c (the
 * session, open/read/write/poll, the service pass, the link callbacks) and tty_ops_ioctl.c
 * (the ioctls and the requests they park). Private to those two files.
 */
#ifndef ESPSTM_TTY_PRIV_H
#define ESPSTM_TTY_PRIV_H

#define FUSE_USE_VERSION 31

#include "link.h"
#include "log.h"
#include "termios_model.h"
#include "tty.h"
#include "tty_ioctl.h"
#include "tty_read.h"

#include <fuse_lowlevel.h>

#include <stdint.h>
#include <uv.h>

#define TTY_DEVNAME_MAX 64

struct tty_open {
	struct tty_dev *dev;
	struct fuse_pollhandle *ph; /* last poll handle of this open file, or NULL */
	struct tty_open *next;
};

enum pend_kind { PEND_READ, PEND_WRITE, PEND_DRAIN, PEND_MIWAIT };

/* A request answered later, from the service pass (tty_service). */
struct pend {
	struct tty_dev *dev;
	fuse_req_t req;
	enum pend_kind kind;
	int interrupted;
	struct pend *next;
	/* PEND_READ */
	struct tty_read_req rd;
	uint64_t rd_deadline;
	/* PEND_WRITE: data holds what was left after the immediate link_write; base is what
	 * that call accepted. Replies count base + off. */
	uint8_t *data;
	size_t len, off, base;
	/* PEND_DRAIN: after output drained, apply termios and/or send a break */
	enum tty_ioc op;
	struct tm_termios2 newt;
	int flush_input;
	uint32_t break_ms; /* 0: no break */
	int break_on;
	uint64_t break_end;
	/* PEND_MIWAIT */
	int mask;
	struct tty_icount snap;
};

struct tty_dev {
	uv_loop_t *loop;
	struct link *link;
	char name[TTY_DEVNAME_MAX + 1];
	int debug;
	void (*on_ready)(void *ctx, struct tty_dev *t);
	void (*on_dead)(void *ctx, struct tty_dev *t);
	void *ctx;

	struct fuse_session *se; /* NULL only in unit tests (tty_test_new) */
	int fpoll_inited;
	struct fuse_buf fbuf;
	uv_poll_t fpoll;
	uv_timer_t timer;
	int timer_grace; /* 1: the timer expired once and was re-armed for an I/O pass (on_timer) */
	uint64_t grace_at;      /* loop time of that first expiry */
	uv_check_t grace_check; /* runs after the loop's next I/O poll: sets grace_polled */
	int grace_polled;
	uint64_t input_seen; /* loop time up to which input is known delivered: the loop polled
	                      * I/O after it (on_timer); reads time out only as of this time */
	int handles;         /* libuv handles not yet closed */
	int session_dead;
	int freeing;

	struct tm_termios2 t;
	struct termios_line sent_line;
	int line_sent;
	enum termios_flow sent_flow;
	int flow_sent;
	int dtr, rts, excl;
	int break_held; /* TIOCSBRK in effect (until TIOCCBRK or the last close) */
	int tx_stopped; /* output suspended with TCXONC TCOOFF (until TCOON / last close) */

	struct tty_ring rx;
	struct tty_icount icount;
	uint8_t modem;       /* last RFC 2217 modem state */
	uint64_t rx_dropped; /* received bytes discarded: TCIFLUSH, TCSETSF, ring overflow */

	struct tty_open *opens;
	unsigned nopen;
	struct pend *reads, *writes, *drains, *miwaits;
	int in_service, service_again;

	int link_was_up;      /* last state the link reported was LINK_UP */
	uint64_t down_since;  /* when the link was last seen leaving LINK_UP (or start) */
	unsigned last_pollev; /* poll_events() at the end of the last service pass */
};

#define DBG(d, ...)                                                                                \
	do {                                                                                       \
		if ((d)->debug)                                                                    \
			log_info(__VA_ARGS__);                                                     \
	} while (0)

/* The loop's time, ms. */
static inline uint64_t now_ms(const struct tty_dev *d)
{
	return uv_now(d->loop);
}

static inline int link_is_up(const struct tty_dev *d)
{
	return link_get_state(d->link) == LINK_UP;
}

/* ---- tty.c, for tty_ops_ioctl.c ---- */

/* A zeroed pending request of kind for req on d, or NULL when out of memory. */
struct pend *tty_pend_new(struct tty_dev *d, fuse_req_t req, enum pend_kind kind);
/* Put p (from tty_pend_new) at the end of list and route the request's interrupt to it. */
void tty_park(struct pend **list, struct pend *p);
/* Take p (answered) off list and free it. */
void tty_pend_drop(struct pend **list, struct pend *p);
/* Answer whatever parked request can be answered now and re-arm the device's timer. */
void tty_service(struct tty_dev *d);
/* Wake every poll(2) waiting on the device. */
void tty_notify_poll(struct tty_dev *d);
/* Set DTR and RTS (0/1), telling the link only about lines that change. */
void tty_set_lines(struct tty_dev *d, int dtr, int rts);
/* Empty the input queue and have the link discard what is on its way (TCIFLUSH). */
void tty_flush_input(struct tty_dev *d);
/* Store new termios (TCSETS*), flush input if flush, carry it to the link. */
void tty_apply_termios(struct tty_dev *d, const struct tm_termios2 *nt, int flush);

/* ---- tty_ops_ioctl.c, for tty.c ---- */

/* The CUSE ioctl operation (struct cuse_lowlevel_ops .ioctl). */
void tty_op_ioctl(fuse_req_t req, int cmd, void *arg, struct fuse_file_info *fi, unsigned flags,
                  const void *in_buf, size_t in_bufsz, size_t out_bufsz);
/* The TIOCMGET bits (TTY_TIOCM_*): DTR/RTS as set, CTS/DSR/RI/CD from the bridge. */
int tty_modem_bits(const struct tty_dev *d);
/* A timed break (TCSBRK 0, TCSBRKP) is on the line. */
int tty_timed_break_active(const struct tty_dev *d);
/* The service pass over parked drains and breaks (at loop time now, ms) and TIOCMIWAITs. */
void tty_service_drains(struct tty_dev *d, uint64_t now);
void tty_service_miwaits(struct tty_dev *d);
/* The earliest loop time (ms) a parked drain or break needs the timer at, or
 * TTY_READ_NO_DEADLINE. */
uint64_t tty_drains_deadline(struct tty_dev *d);

#endif
