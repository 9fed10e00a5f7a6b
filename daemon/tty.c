/* SPDX-License-Identifier: MIT */
/*
 * tty: a CUSE character device that behaves like a serial port (termios(3), tty_ioctl(4)),
 * served on the libuv loop through libfuse3's low-level CUSE API, backed by a link (link.h).
 *
 * Session setup does what libfuse's cuse_lowlevel_setup() does internally, minus its
 * signal handlers and daemonizing: cuse_lowlevel_new(), open("/dev/cuse"), then hand the
 * fd to the session with fuse_session_mount("/dev/fd/N") (libfuse: "the caller may open
 * /dev/fuse ... and pass on the file descriptor by specifying /dev/fd/N as the mount
 * point"). The fd is watched with a uv_poll_t; requests are read with
 * fuse_session_receive_buf() and dispatched with fuse_session_process_buf().
 *
 * Requests that cannot be answered at once (blocking reads per VMIN/VTIME, writes into a
 * full link queue, tcdrain/TCSETSW/TCSETSF, breaks, TIOCMIWAIT) are parked and answered from
 * service(), which runs on every link event and from one uv_timer per device. Interrupts
 * (FUSE_INTERRUPT: a signal hit the caller) mark the parked request; the EINTR reply is
 * sent from the timer, never from inside libfuse's interrupt callback (libfuse holds the
 * request's lock there).
 *
 * Receive: bridge data goes into a 64 KiB ring (rx_space() answers its free room); every
 * time a read takes bytes out, the tty calls link_rx_resume() (link.h: the link holds data
 * the ring could not take and applies backpressure to the bridge). While no descriptor is
 * open, received data is dropped (counted in rx_dropped), as a UART does, and the last
 * close drops what was left unread: a closed port never holds the link back. Input flushes
 * (TCIFLUSH, TCSETSF) empty the ring and have the link discard what the bridge sent before
 * them and is still on its way (link_purge; counted in rx_dropped too).
 *
 * Link outage (link state != LINK_UP: reconnecting; link.h) -- what programs see:
 *  - blocking write: waits for the link; once the link has been not up for
 *    TTY_WRITE_DOWN_MS (3 s, counted from when it went down, or from the device's start),
 *    fails with EIO (or returns the count already accepted, if any). A write made when
 *    the outage is already that old fails at once.
 *  - O_NONBLOCK write: EAGAIN while the outage is younger than 3 s, then EIO.
 *  - poll: POLLOUT only while up with room in the link queue and no parked write; once
 *    the outage is 3 s old, POLLOUT|POLLERR (a select()ing writer wakes and gets EIO).
 *  - tcdrain: completes once no write is parked (the link dropped its queue).
 *  - reads: unaffected (bytes already received stay readable; VMIN/VTIME as usual).
 *
 * Modem lines: DTR/RTS are what the program set (TIOCMSET/BIS/BIC; every first open starts
 * with both deasserted, see ../shared/ARCHITECTURE.md); CTS/DSR/RI/CD are the last
 * NOTIFY-MODEMSTATE from the bridge (kept, not cleared, during a link outage: the bridge
 * reports them again after reconnecting). Their changes count in TIOCGICOUNT and wake
 * TIOCMIWAIT; NOTIFY-LINESTATE errors count there too (cb_modemstate, cb_linestate).
 *
 * Breaks (tty_ioctl(4), kernel tty_ioctl.c/send_break()): TCSBRK 0 = 250 ms, TCSBRKP n =
 * n * 100 ms (0: 250 ms), TIOCSBRK on until TIOCCBRK (or the last close). Each first waits
 * until earlier output left the link (TIOCCBRK does not wait), then sends RFC 2217
 * SET-CONTROL BREAK on, and for the timed ones BREAK off when the time is up (on a uv
 * timer; an interrupt ends the break early with EINTR). One timed break at a time; while
 * it is on, writes wait (O_NONBLOCK: EAGAIN), as the kernel holds the write lock. A link
 * that cannot carry breaks (legacy protocol) makes them succeed at once, as a Linux driver
 * without break_ctl does. tcdrain (TCSBRK non-zero), TCSETSW/TCSETSF and the wait before a
 * break complete once no write is parked, the link has handed every queued byte to the
 * socket (link_tx_pending() == 0) and the bridge has acknowledged all of them
 * (link_tx_unacked() == 0, re-checked every TTY_DRAIN_POLL_MS). TIOCOUTQ counts all three.
 *
 * Flow control: CRTSCTS -> SET-CONTROL hardware, else IXON/IXOFF -> XON/XOFF, else none,
 * sent whenever the termios change it (the bridge does the flow control). tcflow(3):
 * TCOOFF/TCOON suspend/resume our output locally (writes wait, tcdrain waits), TCIOFF/TCION
 * send VSTOP/VSTART as data.
 *
 * Opens: all descriptors share one port, as on a kernel tty: one termios, one input queue
 * (each byte goes to the one read that takes it), one set of lines; O_NONBLOCK is per
 * descriptor (taken from each request). TIOCEXCL makes later opens fail with EBUSY except
 * for root (uid 0; the kernel's tty_open() lets CAP_SYS_ADMIN through: the uid is what
 * CUSE tells us), until TIOCNXCL or the last close. flock(2), which pyserial's
 * exclusive=True uses, is done by the kernel on the device inode and never reaches us.
 *
 * A dead CUSE connection (session ended, or an error on its fd) fails every parked request
 * with EIO and is reported through tty_config.on_dead; espstmd then exits with status 1.
 *
 * Not emulated (documented divergences from a kernel tty): no line discipline at all:
 * ICANON is treated as raw with VMIN 1 / VTIME 0, no echo, no ICRNL/ONLCR/ISTRIP
 * processing, no signals (ISIG), no controlling terminal, so no hangup on a CD drop with
 * CLOCAL clear; IXON/IXOFF and CRTSCTS are carried to the bridge (RFC 2217 flow control)
 * and done there.
 */
#define FUSE_USE_VERSION 31

#include "tty.h"

#include "log.h"
#include "rfc2217.h"
#include "termios_model.h"
#include "tty_ioctl.h"
#include "tty_read.h"

#include <cuse_lowlevel.h>
#include <fuse_lowlevel.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define TTY_WRITE_DOWN_MS 3000    /* a blocking write waits this long for a link not up */
#define TTY_BREAK_MS      250     /* tcsendbreak(fd, 0) duration */
#define TTY_BAUD_BASE     4000000 /* TIOCGSERIAL baud_base (highest Bxxx speed) */
#define TTY_FUSE_BATCH    64      /* requests handled per uv_poll wakeup */
#define TTY_DEVNAME_MAX   64
#define TTY_DRAIN_POLL_MS 5 /* tcdrain: re-check the link socket's unacknowledged bytes */

struct tty_open {
	struct tty_dev *dev;
	struct fuse_pollhandle *ph; /* last poll handle of this open file, or NULL */
	struct tty_open *next;
};

enum pend_kind { PEND_READ, PEND_WRITE, PEND_DRAIN, PEND_MIWAIT };

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

static void service(struct tty_dev *d);
static void on_timer(uv_timer_t *h);

/* ---- small helpers ---------------------------------------------------------------- */

static uint64_t now_ms(struct tty_dev *d)
{
	return uv_now(d->loop);
}

static int link_is_up(const struct tty_dev *d)
{
	return link_get_state(d->link) == LINK_UP;
}

/* The link has been not up for TTY_WRITE_DOWN_MS: writes fail (tty.c header comment). */
static int outage_long(struct tty_dev *d, uint64_t now)
{
	return !link_is_up(d) && now - d->down_since >= TTY_WRITE_DOWN_MS;
}

static void list_append(struct pend **head, struct pend *p)
{
	p->next = NULL;
	while (*head)
		head = &(*head)->next;
	*head = p;
}

static void list_remove(struct pend **head, struct pend *p)
{
	for (; *head; head = &(*head)->next) {
		if (*head == p) {
			*head = p->next;
			p->next = NULL;
			return;
		}
	}
}

static void pend_free(struct pend *p)
{
	free(p->data);
	free(p);
}

static void notify_poll(struct tty_dev *d)
{
	for (struct tty_open *o = d->opens; o; o = o->next) {
		if (o->ph) {
			fuse_lowlevel_notify_poll(o->ph);
			fuse_pollhandle_destroy(o->ph);
			o->ph = NULL;
		}
	}
}

static void kick(struct tty_dev *d)
{
	if (d->in_service)
		d->service_again = 1;
	else if (!d->freeing)
		uv_timer_start(&d->timer, on_timer, 0, 0);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	(void)req;
	struct pend *p = data;
	p->interrupted = 1;
	kick(p->dev);
}

static void park(struct pend **list, struct pend *p)
{
	list_append(list, p);
	fuse_req_interrupt_func(p->req, on_interrupt, p);
}

static int modem_bits(const struct tty_dev *d)
{
	int v = 0;
	if (d->dtr)
		v |= TTY_TIOCM_DTR;
	if (d->rts)
		v |= TTY_TIOCM_RTS;
	if (d->modem & RFC2217_MODEM_CTS)
		v |= TTY_TIOCM_CTS;
	if (d->modem & RFC2217_MODEM_DSR)
		v |= TTY_TIOCM_DSR;
	if (d->modem & RFC2217_MODEM_RI)
		v |= TTY_TIOCM_RNG;
	if (d->modem & RFC2217_MODEM_CD)
		v |= TTY_TIOCM_CAR;
	return v;
}

/* Change DTR/RTS, telling the link only about lines that change; RTS (BOOT0) first so it
 * is settled before DTR (NRST) is released. */
static void set_lines(struct tty_dev *d, int dtr, int rts)
{
	dtr = !!dtr;
	rts = !!rts;
	if (rts != d->rts) {
		int r = link_set_rts(d->link, rts);
		if (r < 0)
			log_warn("%s: set RTS: %s", d->name, strerror(-r));
		d->rts = rts;
	}
	if (dtr != d->dtr) {
		int r = link_set_dtr(d->link, dtr);
		if (r < 0)
			log_warn("%s: set DTR: %s", d->name, strerror(-r));
		d->dtr = dtr;
	}
	DBG(d, "%s: lines DTR=%d RTS=%d", d->name, d->dtr, d->rts);
}

/* Carry the stored termios to the link: line settings and flow, each only when changed. */
static void sync_link(struct tty_dev *d)
{
	struct termios_line tl;
	termios_model_line(&d->t, &tl);
	if (tl.baud != 0 && (!d->line_sent || !termios_line_equal(&tl, &d->sent_line))) {
		struct link_line ll = {.baud = tl.baud,
		                       .data_bits = tl.data_bits,
		                       .parity = tl.parity,
		                       .stop_bits = tl.stop_bits};
		int r = link_set_line(d->link, &ll);
		if (r < 0)
			log_warn("%s: line %u %u%c%u not carried: %s", d->name, tl.baud,
			         tl.data_bits, tl.parity, tl.stop_bits, strerror(-r));
		else
			DBG(d, "%s: line %u %u%c%u", d->name, tl.baud, tl.data_bits, tl.parity,
			    tl.stop_bits);
		d->sent_line = tl;
		d->line_sent = 1;
	}
	enum termios_flow f = termios_model_flow(&d->t);
	if (!d->flow_sent || f != d->sent_flow) {
		enum link_flow lf = f == TERMIOS_FLOW_HARDWARE  ? LINK_FLOW_HARDWARE
		                    : f == TERMIOS_FLOW_XONXOFF ? LINK_FLOW_XONXOFF
		                                                : LINK_FLOW_NONE;
		int r = link_set_flow(d->link, lf);
		if (r < 0)
			log_warn("%s: flow control not carried: %s", d->name, strerror(-r));
		d->sent_flow = f;
		d->flow_sent = 1;
	}
}

static void flush_input(struct tty_dev *d)
{
	d->rx_dropped += d->rx.len;
	tty_ring_clear(&d->rx);
	int r = link_purge(d->link, 1);
	if (r < 0)
		DBG(d, "%s: purge rx: %s", d->name, strerror(-r));
	link_rx_resume(d->link);
}

/* Store new termios (TCSETS* after any drain), flush input if asked, carry it to the link.
 * A change to speed B0 hangs up (drops DTR and RTS), as serial drivers do. */
static void apply_termios(struct tty_dev *d, const struct tm_termios2 *nt, int flush)
{
	uint32_t old = termios_model_ospeed(&d->t);
	d->t = *nt;
	if (flush)
		flush_input(d);
	sync_link(d);
	if (old != 0 && termios_model_ospeed(&d->t) == 0)
		set_lines(d, 0, 0);
	notify_poll(d); /* VMIN may have changed what POLLIN means */
}

/* TIOCOUTQ: bytes written and not yet at the bridge: parked writes, the link's queue and
 * what its socket holds unacknowledged. */
static size_t queued_out(const struct tty_dev *d)
{
	size_t n = link_tx_pending(d->link) + link_tx_unacked(d->link);
	for (const struct pend *p = d->writes; p; p = p->next)
		n += p->len - p->off;
	return n;
}

/* Answer a read with n bytes taken from the rx ring. */
static void reply_rx(struct tty_dev *d, fuse_req_t req, size_t n)
{
	if (n == 0) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	struct iovec iov[2];
	int cnt = 1;
	size_t first = TTY_RING_SIZE - d->rx.head;
	if (first >= n) {
		iov[0].iov_base = d->rx.buf + d->rx.head;
		iov[0].iov_len = n;
	} else {
		iov[0].iov_base = d->rx.buf + d->rx.head;
		iov[0].iov_len = first;
		iov[1].iov_base = d->rx.buf;
		iov[1].iov_len = n - first;
		cnt = 2;
	}
	fuse_reply_iov(req, iov, cnt);
	tty_ring_pop(&d->rx, NULL, n);
	DBG(d, "%s: read -> %zu bytes", d->name, n);
	link_rx_resume(d->link); /* room freed: the link may hold data for us (link.h) */
}

/* During an outage the link holds nothing (it dropped its queue): drained once no write
 * is parked. */
static int output_drained(struct tty_dev *d)
{
	return d->writes == NULL && link_tx_pending(d->link) == 0 && link_tx_unacked(d->link) == 0;
}

/* A parked drain waits only for the bridge to acknowledge what the socket holds: nothing
 * signals that, so the timer re-checks every TTY_DRAIN_POLL_MS. */
static int drain_waits_socket(struct tty_dev *d)
{
	int parked = 0;
	for (const struct pend *p = d->drains; p; p = p->next)
		if (!p->break_on)
			parked = 1;
	return parked && d->writes == NULL && link_tx_pending(d->link) == 0 &&
	       link_tx_unacked(d->link) > 0;
}

/* A timed break (TCSBRK 0, TCSBRKP) is on the line. */
static int timed_break_active(const struct tty_dev *d)
{
	for (const struct pend *p = d->drains; p; p = p->next)
		if (p->break_on)
			return 1;
	return 0;
}

/* Output may not go to the link now: suspended with TCOOFF, or a timed break is on (Linux
 * holds the tty write lock for the whole of send_break(), so writers wait, and O_NONBLOCK
 * writers get EAGAIN). */
static int output_held(const struct tty_dev *d)
{
	return d->tx_stopped || timed_break_active(d);
}

/* BREAK on (RFC 2217 SET-CONTROL 5). Returns 0, 1 when the link cannot carry a break at
 * all (-ENOTSUP, the legacy protocol: like a Linux driver without break_ctl the request
 * then succeeds without a break), or a negative errno from link_set_break(). */
static int break_start(struct tty_dev *d)
{
	int r = link_set_break(d->link, 1);
	if (r == -ENOTSUP)
		return 1;
	if (r < 0)
		log_warn("%s: break: %s", d->name, strerror(-r));
	return r;
}

/* TCXONC TCIOFF/TCION: transmit the STOP/START character (termios(3) tcflow), unless it is
 * disabled (_POSIX_VDISABLE, 0 on Linux). It goes at the end of the link queue (a kernel
 * UART sends it ahead of queued output). Best effort, as the kernel's tty_send_xchar(). */
static void send_xchar(struct tty_dev *d, uint8_t c)
{
	if (c == 0)
		return;
	size_t n = link_is_up(d) ? link_write(d->link, &c, 1) : 0;
	d->icount.tx += (uint32_t)n;
	if (n == 0)
		log_warn("%s: flow character 0x%02x not sent: link %s", d->name, c,
		         link_is_up(d) ? "queue full" : "not up");
}

/* What poll reports now (tty.c header comment: "Link outage"). */
static unsigned poll_events(struct tty_dev *d, uint64_t now)
{
	struct termios_read_cfg rc;
	termios_model_read_cfg(&d->t, &rc);
	unsigned ev = 0;
	if (d->rx.len > 0 && d->rx.len >= tty_read_poll_threshold(rc.vmin, rc.vtime, rc.icanon))
		ev |= POLLIN | POLLRDNORM;
	if (link_is_up(d) && d->writes == NULL && !output_held(d) && link_write_space(d->link) > 0)
		ev |= POLLOUT | POLLWRNORM;
	else if (outage_long(d, now))
		ev |= POLLOUT | POLLWRNORM | POLLERR;
	return ev;
}

/* ---- the service pass: answer whatever parked request can be answered ------------- */

static void service_writes(struct tty_dev *d, uint64_t now)
{
	struct pend *p;
	while ((p = d->writes) != NULL) {
		if (link_is_up(d)) {
			if (output_held(d))
				return; /* TCOON or the end of the break resumes */
			size_t n = link_write(d->link, p->data + p->off, p->len - p->off);
			p->off += n;
			d->icount.tx += (uint32_t)n;
			if (p->off < p->len)
				return; /* queue full: on_writable resumes */
			fuse_reply_write(p->req, p->base + p->len);
			DBG(d, "%s: write <- %zu bytes (parked)", d->name, p->base + p->len);
		} else {
			if (!outage_long(d, now))
				return; /* next_deadline() wakes us when it is */
			if (p->base + p->off > 0) {
				fuse_reply_write(p->req, p->base + p->off);
			} else {
				log_warn("%s: write: link not up for %d ms: EIO", d->name,
				         TTY_WRITE_DOWN_MS);
				fuse_reply_err(p->req, EIO);
			}
		}
		list_remove(&d->writes, p);
		pend_free(p);
	}
}

static void service_drains(struct tty_dev *d, uint64_t now)
{
	struct pend *p = d->drains, *next;
	for (; p; p = next) {
		next = p->next;
		if (p->break_on) {
			if (now < p->break_end)
				continue;
			link_set_break(d->link, 0);
			p->break_on = 0;
			DBG(d, "%s: break off", d->name);
			fuse_reply_ioctl(p->req, 0, NULL, 0);
			d->service_again = 1; /* held writes and waiting breaks may go now */
		} else {
			if (!output_drained(d))
				continue;
			int wants_break = p->break_ms != 0 || p->op == TTY_IOC_TIOCSBRK;
			if (wants_break && timed_break_active(d))
				continue; /* one break at a time */
			if (p->op == TTY_IOC_TCSETSW || p->op == TTY_IOC_TCSETSF ||
			    p->op == TTY_IOC_TCSETSW2 || p->op == TTY_IOC_TCSETSF2)
				apply_termios(d, &p->newt, p->flush_input);
			int r = wants_break ? break_start(d) : 0;
			if (r < 0) {
				fuse_reply_err(p->req, -r);
			} else if (r == 0 && p->op == TTY_IOC_TIOCSBRK) {
				d->break_held = 1;
				DBG(d, "%s: break on (TIOCSBRK)", d->name);
				fuse_reply_ioctl(p->req, 0, NULL, 0);
			} else if (r == 0 && p->break_ms) {
				p->break_on = 1;
				p->break_end = now + p->break_ms;
				DBG(d, "%s: break %u ms", d->name, p->break_ms);
				continue;
			} else {
				fuse_reply_ioctl(p->req, 0, NULL, 0);
			}
		}
		list_remove(&d->drains, p);
		pend_free(p);
	}
}

static void service_reads(struct tty_dev *d, uint64_t now)
{
	struct pend *p = d->reads, *next;
	for (; p; p = next) {
		next = p->next;
		size_t take;
		uint64_t dl;
		/* Decide as of input_seen, not now: a deadline that passed since then may have
		 * bytes sent in time still in the socket, or later in the buffer being decoded
		 * (e.g. a NOTIFY-MODEMSTATE ahead of the ACK calls service() from the decoder).
		 * Enough data completes a read at any time; a timeout waits for on_timer. */
		uint64_t t = now < d->input_seen ? now : d->input_seen;
		if (t < p->rd.last_rx_ms)
			t = p->rd.last_rx_ms; /* >= start_ms: no time has passed for this read */
		enum tty_read_verdict v = tty_read_decide(&p->rd, d->rx.len, t, &take, &dl);
		if (v == TTY_READ_WAIT) {
			p->rd_deadline = dl;
			continue;
		}
		if (v == TTY_READ_EAGAIN)
			fuse_reply_err(p->req, EAGAIN);
		else
			reply_rx(d, p->req, take);
		list_remove(&d->reads, p);
		pend_free(p);
	}
}

static int icount_changed(const struct tty_icount *a, const struct tty_icount *b, int mask)
{
	return ((mask & TTY_TIOCM_CTS) && a->cts != b->cts) ||
	       ((mask & TTY_TIOCM_DSR) && a->dsr != b->dsr) ||
	       ((mask & TTY_TIOCM_RNG) && a->rng != b->rng) ||
	       ((mask & TTY_TIOCM_CAR) && a->dcd != b->dcd);
}

static void service_miwaits(struct tty_dev *d)
{
	struct pend *p = d->miwaits, *next;
	for (; p; p = next) {
		next = p->next;
		if (!icount_changed(&p->snap, &d->icount, p->mask))
			continue;
		fuse_reply_ioctl(p->req, 0, NULL, 0);
		list_remove(&d->miwaits, p);
		pend_free(p);
	}
}

static void service_interrupts(struct tty_dev *d, struct pend **list)
{
	struct pend *p = *list, *next;
	for (; p; p = next) {
		next = p->next;
		if (!p->interrupted)
			continue;
		if (p->kind == PEND_DRAIN && p->break_on)
			link_set_break(d->link, 0);
		if (p->kind == PEND_WRITE && p->base + p->off > 0)
			fuse_reply_write(p->req, p->base + p->off);
		else
			fuse_reply_err(p->req, EINTR);
		DBG(d, "%s: request interrupted", d->name);
		list_remove(list, p);
		pend_free(p);
	}
}

static uint64_t next_deadline(struct tty_dev *d)
{
	uint64_t dl = TTY_READ_NO_DEADLINE;
	for (struct pend *p = d->reads; p; p = p->next)
		if (p->rd_deadline < dl)
			dl = p->rd_deadline;
	/* an outage turns old at down_since + TTY_WRITE_DOWN_MS: parked writes fail, poll
	 * changes */
	if (!link_is_up(d) && now_ms(d) - d->down_since < TTY_WRITE_DOWN_MS &&
	    d->down_since + TTY_WRITE_DOWN_MS < dl)
		dl = d->down_since + TTY_WRITE_DOWN_MS;
	for (struct pend *p = d->drains; p; p = p->next)
		if (p->break_on && p->break_end < dl)
			dl = p->break_end;
	if (drain_waits_socket(d) && now_ms(d) + TTY_DRAIN_POLL_MS < dl)
		dl = now_ms(d) + TTY_DRAIN_POLL_MS;
	return dl;
}

/*
 * A deadline passed (VMIN/VTIME timer, outage, break). libuv runs expired timers before it
 * polls I/O, so if this process was not scheduled for a while, bytes the bridge sent in time
 * may sit unread in the socket while the deadline looks missed. A real tty's driver fills the
 * buffer independently of the reader; to match that, the first expiry only re-arms the timer
 * for 1 ms, which makes the loop poll I/O once (delivering such bytes through cb_data; the
 * uv_check grace_check runs after that poll) before the second expiry decides: then input
 * up to the first expiry is known delivered (input_seen), and only as of that time may a
 * read time out (service_reads), whoever calls service() (a link callback, a CUSE request).
 * Until the second expiry, service() leaves the timer alone while the deadline is past;
 * otherwise it re-arms it and clears the flag.
 */
static void on_grace_check(uv_check_t *h)
{
	struct tty_dev *d = h->data;
	d->grace_polled = 1;
	uv_check_stop(h);
}

static void on_timer(uv_timer_t *h)
{
	struct tty_dev *d = h->data;
	if (!d->timer_grace) {
		d->timer_grace = 1;
		d->grace_at = now_ms(d);
		d->grace_polled = 0;
		uv_check_start(&d->grace_check, on_grace_check);
		uv_timer_start(h, on_timer, 1, 0);
		return;
	}
	if (!d->grace_polled) {
		/* no I/O poll since the first expiry: with UV_RUN_ONCE (libuv 1.44) the timers
		 * run at the end of one call and again at the start of the next */
		uv_timer_start(h, on_timer, 1, 0);
		return;
	}
	d->timer_grace = 0;
	if (d->grace_at > d->input_seen)
		d->input_seen = d->grace_at;
	service(d);
}

static void service(struct tty_dev *d)
{
	if (d->freeing)
		return;
	if (d->in_service) {
		d->service_again = 1;
		return;
	}
	d->in_service = 1;
	do {
		d->service_again = 0;
		uint64_t now = now_ms(d);
		service_interrupts(d, &d->reads);
		service_interrupts(d, &d->writes);
		service_interrupts(d, &d->drains);
		service_interrupts(d, &d->miwaits);
		service_writes(d, now);
		service_drains(d, now);
		service_reads(d, now);
		service_miwaits(d);
	} while (d->service_again);
	d->in_service = 0;

	/* answered writes, a drained queue or an old outage change what poll reports */
	unsigned ev = poll_events(d, now_ms(d));
	if (ev != d->last_pollev) {
		d->last_pollev = ev;
		notify_poll(d);
	}

	uint64_t dl = next_deadline(d);
	uint64_t now = now_ms(d);
	if (d->timer_grace && dl <= now)
		return; /* on_timer's I/O pass for a passed deadline is under way: restarting
		         * it here would postpone the decision on every event */
	d->timer_grace = 0;
	uv_check_stop(&d->grace_check);
	if (dl == TTY_READ_NO_DEADLINE)
		uv_timer_stop(&d->timer);
	else
		uv_timer_start(&d->timer, on_timer, dl > now ? dl - now : 0, 0);
}

/* ---- CUSE operations -------------------------------------------------------------- */

static void op_init_done(void *userdata)
{
	struct tty_dev *d = userdata;
	log_info("%s: device /dev/%s ready", d->name, d->name);
	if (d->on_ready)
		d->on_ready(d->ctx, d);
}

static void op_open(fuse_req_t req, struct fuse_file_info *fi)
{
	struct tty_dev *d = fuse_req_userdata(req);
	/* copied: fuse_req_ctx() points into req, which fuse_reply_* frees */
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	const int pid = (int)ctx->pid;
	const unsigned uid = (unsigned)ctx->uid;
	if (d->excl && uid != 0) {
		log_info("%s: open by pid %d refused: exclusive (TIOCEXCL)", d->name, pid);
		fuse_reply_err(req, EBUSY);
		return;
	}
	struct tty_open *o = calloc(1, sizeof(*o));
	if (!o) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	o->dev = d;
	if (d->nopen == 0)
		set_lines(d, 0, 0); /* every first open starts with DTR and RTS deasserted */
	o->next = d->opens;
	d->opens = o;
	d->nopen++;
	fi->fh = (uint64_t)(uintptr_t)o;
	fi->direct_io = 1;
	fi->nonseekable = 1;
	if (fuse_reply_open(req, fi) != 0) {
		/* the opener is gone; no release will come */
		d->opens = o->next;
		d->nopen--;
		free(o);
		return;
	}
	log_info("%s: open by pid %d uid %u (flags 0%o), %u open", d->name, pid, uid,
	         (unsigned)fi->flags, d->nopen);
}

static void op_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct tty_dev *d = fuse_req_userdata(req);
	struct tty_open *o = (struct tty_open *)(uintptr_t)fi->fh;
	for (struct tty_open **pp = &d->opens; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			if (o->ph)
				fuse_pollhandle_destroy(o->ph);
			free(o);
			d->nopen--;
			break;
		}
	}
	if (d->nopen == 0) {
		/* a fresh tty for the next open, as the kernel frees its tty_struct: no
		 * exclusivity, output not suspended, break released (the serial core's
		 * shutdown clears the break bit) */
		d->excl = 0;
		d->tx_stopped = 0;
		/* input not read by the last user goes with it (the kernel frees the tty's
		 * buffers); data the link held for us is now taken and dropped */
		d->rx_dropped += d->rx.len;
		tty_ring_clear(&d->rx);
		link_rx_resume(d->link);
		if (d->break_held) {
			link_set_break(d->link, 0);
			d->break_held = 0;
		}
		if (termios_model_hupcl(&d->t))
			set_lines(d, 0, 0); /* HUPCL: lower the modem lines on last close */
	}
	log_info("%s: close, %u open", d->name, d->nopen);
	fuse_reply_err(req, 0);
}

static void op_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)off;
	struct tty_dev *d = fuse_req_userdata(req);
	struct termios_read_cfg rc;
	termios_model_read_cfg(&d->t, &rc);
	struct tty_read_req rd;
	uint64_t now = now_ms(d);
	tty_read_begin(&rd, rc.vmin, rc.vtime, rc.icanon, (fi->flags & O_NONBLOCK) != 0, size, now);
	size_t take;
	uint64_t dl;
	enum tty_read_verdict v = tty_read_decide(&rd, d->rx.len, now, &take, &dl);
	DBG(d, "%s: read %zu (vmin %u vtime %u%s), %zu buffered", d->name, size, rc.vmin, rc.vtime,
	    rd.nonblock ? " nonblock" : "", d->rx.len);
	if (v == TTY_READ_NOW) {
		reply_rx(d, req, take);
		return;
	}
	if (v == TTY_READ_EAGAIN) {
		fuse_reply_err(req, EAGAIN);
		return;
	}
	struct pend *p = calloc(1, sizeof(*p));
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->dev = d;
	p->req = req;
	p->kind = PEND_READ;
	p->rd = rd;
	p->rd.nonblock = 0;
	p->rd_deadline = dl;
	park(&d->reads, p);
	service(d); /* arms the timer */
}

static void op_write(fuse_req_t req, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	(void)off;
	struct tty_dev *d = fuse_req_userdata(req);
	int nonblock = (fi->flags & O_NONBLOCK) != 0;
	uint64_t now = now_ms(d);
	size_t n = 0;
	DBG(d, "%s: write %zu%s", d->name, size, nonblock ? " nonblock" : "");
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	if (link_is_up(d) && d->writes == NULL && !output_held(d)) {
		n = link_write(d->link, (const uint8_t *)buf, size);
		d->icount.tx += (uint32_t)n;
		if (n == size) {
			fuse_reply_write(req, n);
			return;
		}
	} else if (outage_long(d, now) && d->writes == NULL) {
		DBG(d, "%s: write: link not up for %d ms: EIO", d->name, TTY_WRITE_DOWN_MS);
		fuse_reply_err(req, EIO);
		return;
	}
	if (nonblock) {
		if (n > 0)
			fuse_reply_write(req, n);
		else
			fuse_reply_err(req, EAGAIN);
		return;
	}
	struct pend *p = calloc(1, sizeof(*p));
	uint8_t *copy = malloc(size - n);
	if (!p || !copy) {
		free(p);
		free(copy);
		if (n > 0)
			fuse_reply_write(req, n);
		else
			fuse_reply_err(req, ENOMEM);
		return;
	}
	/* keep only what is left; the reply counts the n bytes already accepted too */
	memcpy(copy, buf + n, size - n);
	p->dev = d;
	p->req = req;
	p->kind = PEND_WRITE;
	p->data = copy;
	p->base = n;
	p->len = size - n;
	p->off = 0;
	park(&d->writes, p);
	service(d);
}

static void op_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct tty_dev *d = fuse_req_userdata(req);
	struct tty_open *o = (struct tty_open *)(uintptr_t)fi->fh;
	unsigned ev = poll_events(d, now_ms(d));
	d->last_pollev = ev;
	if (ph) {
		if (o) {
			if (o->ph)
				fuse_pollhandle_destroy(o->ph);
			o->ph = ph;
		} else {
			fuse_pollhandle_destroy(ph);
		}
	}
	DBG(d, "%s: poll -> 0x%x", d->name, ev);
	fuse_reply_poll(req, ev);
}

static void reply_int(fuse_req_t req, int v)
{
	fuse_reply_ioctl(req, 0, &v, sizeof(v));
}

static void park_drain(struct tty_dev *d, fuse_req_t req, enum tty_ioc op,
                       const struct tm_termios2 *nt, int flush, uint32_t break_ms)
{
	struct pend *p = calloc(1, sizeof(*p));
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->dev = d;
	p->req = req;
	p->kind = PEND_DRAIN;
	p->op = op;
	if (nt)
		p->newt = *nt;
	p->flush_input = flush;
	p->break_ms = break_ms;
	park(&d->drains, p);
	service(d);
}

static void op_ioctl(fuse_req_t req, int cmd_i, void *arg, struct fuse_file_info *fi,
                     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct tty_dev *d = fuse_req_userdata(req);
	uint32_t cmd = (uint32_t)cmd_i;
	uintptr_t val = (uintptr_t)arg;
	struct tty_ioc_desc desc;
	(void)fi;

	if (tty_ioctl_lookup(cmd, &desc) == TTY_IOC_UNKNOWN ||
	    ((flags & FUSE_IOCTL_COMPAT) &&
	     (desc.op == TTY_IOC_TIOCGSERIAL || desc.op == TTY_IOC_TIOCSSERIAL))) {
		DBG(d, "%s: ioctl 0x%08x: ENOTTY", d->name, cmd);
		fuse_reply_err(req, ENOTTY);
		return;
	}
	if ((desc.in_size && in_bufsz < desc.in_size) ||
	    (desc.out_size && out_bufsz < desc.out_size)) {
		if (in_bufsz == 0 && out_bufsz == 0) {
			/* first pass: ask the kernel to copy the payload (legacy numbers carry
			 * no size); a bad pointer then fails in the kernel with EFAULT */
			struct iovec in = {arg, desc.in_size}, out = {arg, desc.out_size};
			fuse_reply_ioctl_retry(req, desc.in_size ? &in : NULL, desc.in_size ? 1 : 0,
			                       desc.out_size ? &out : NULL, desc.out_size ? 1 : 0);
			return;
		}
		fuse_reply_err(req, EINVAL);
		return;
	}
	DBG(d, "%s: ioctl 0x%08x arg %#lx", d->name, cmd, (unsigned long)val);

	switch (desc.op) {
	case TTY_IOC_TCGETS:
	case TTY_IOC_TCGETS2: {
		uint8_t buf[TM_TERMIOS2_SIZE];
		int n = termios_model_get(&d->t, buf, sizeof(buf), desc.op == TTY_IOC_TCGETS2);
		fuse_reply_ioctl(req, 0, buf, (size_t)n);
		return;
	}
	case TTY_IOC_TCSETS:
	case TTY_IOC_TCSETSW:
	case TTY_IOC_TCSETSF:
	case TTY_IOC_TCSETS2:
	case TTY_IOC_TCSETSW2:
	case TTY_IOC_TCSETSF2: {
		int form2 = desc.op == TTY_IOC_TCSETS2 || desc.op == TTY_IOC_TCSETSW2 ||
		            desc.op == TTY_IOC_TCSETSF2;
		struct tm_termios2 nt = d->t;
		if (termios_model_set(&nt, in_buf, in_bufsz, form2) < 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		if (desc.op == TTY_IOC_TCSETS || desc.op == TTY_IOC_TCSETS2) {
			apply_termios(d, &nt, 0);
			fuse_reply_ioctl(req, 0, NULL, 0);
			return;
		}
		int flush = desc.op == TTY_IOC_TCSETSF || desc.op == TTY_IOC_TCSETSF2;
		park_drain(d, req, desc.op, &nt, flush, 0);
		return;
	}
	case TTY_IOC_TIOCMGET:
		reply_int(req, modem_bits(d));
		return;
	case TTY_IOC_TIOCMSET:
	case TTY_IOC_TIOCMBIS:
	case TTY_IOC_TIOCMBIC: {
		int v;
		memcpy(&v, in_buf, sizeof(v));
		int dtr = d->dtr, rts = d->rts;
		if (desc.op == TTY_IOC_TIOCMSET) {
			dtr = (v & TTY_TIOCM_DTR) != 0;
			rts = (v & TTY_TIOCM_RTS) != 0;
		} else if (desc.op == TTY_IOC_TIOCMBIS) {
			dtr |= (v & TTY_TIOCM_DTR) != 0;
			rts |= (v & TTY_TIOCM_RTS) != 0;
		} else {
			if (v & TTY_TIOCM_DTR)
				dtr = 0;
			if (v & TTY_TIOCM_RTS)
				rts = 0;
		}
		set_lines(d, dtr, rts);
		fuse_reply_ioctl(req, 0, NULL, 0);
		return;
	}
	case TTY_IOC_TCFLSH:
		if (val > 2) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		if (val == 0 || val == 2)
			flush_input(d);
		if (val == 1 || val == 2) {
			int r = link_purge(d->link, 2);
			if (r < 0)
				DBG(d, "%s: purge tx: %s", d->name, strerror(-r));
		}
		fuse_reply_ioctl(req, 0, NULL, 0);
		/* parked tcdrain/TCSETSW and writes may proceed now; POLLOUT may be back */
		service(d);
		notify_poll(d);
		return;
	case TTY_IOC_TCSBRK:
		park_drain(d, req, desc.op, NULL, 0, val == 0 ? TTY_BREAK_MS : 0);
		return;
	case TTY_IOC_TCSBRKP:
		park_drain(d, req, desc.op, NULL, 0, val ? (uint32_t)val * 100u : TTY_BREAK_MS);
		return;
	case TTY_IOC_TIOCSBRK:
		/* after the output drained, as the kernel's tty_ioctl() does */
		park_drain(d, req, desc.op, NULL, 0, 0);
		return;
	case TTY_IOC_TIOCCBRK: {
		int r = link_set_break(d->link, 0);
		if (r < 0 && r != -ENOTSUP) {
			fuse_reply_err(req, -r);
			return;
		}
		d->break_held = 0;
		DBG(d, "%s: break off (TIOCCBRK)", d->name);
		fuse_reply_ioctl(req, 0, NULL, 0);
		return;
	}
	case TTY_IOC_FIONREAD:
		reply_int(req, (int)d->rx.len);
		return;
	case TTY_IOC_TIOCOUTQ:
		reply_int(req, (int)queued_out(d));
		return;
	case TTY_IOC_TIOCEXCL:
	case TTY_IOC_TIOCNXCL:
		d->excl = desc.op == TTY_IOC_TIOCEXCL;
		fuse_reply_ioctl(req, 0, NULL, 0);
		return;
	case TTY_IOC_TIOCGEXCL:
		reply_int(req, d->excl);
		return;
	case TTY_IOC_TIOCGWINSZ: {
		uint8_t buf[16];
		int n = tty_ioctl_fill_winsize(buf, sizeof(buf));
		fuse_reply_ioctl(req, 0, buf, (size_t)n);
		return;
	}
	case TTY_IOC_TIOCSWINSZ:
	case TTY_IOC_TIOCSSERIAL:
		fuse_reply_ioctl(req, 0, NULL, 0); /* accepted, nothing to change */
		return;
	case TTY_IOC_TIOCGSERIAL: {
		uint8_t buf[256];
		int n = tty_ioctl_fill_serial(buf, sizeof(buf), 0, TTY_BAUD_BASE);
		if (n < 0) {
			fuse_reply_err(req, -n);
			return;
		}
		fuse_reply_ioctl(req, 0, buf, (size_t)n);
		return;
	}
	case TTY_IOC_TIOCGICOUNT: {
		uint8_t buf[256];
		int n = tty_ioctl_fill_icount(buf, sizeof(buf), &d->icount);
		if (n < 0) {
			fuse_reply_err(req, -n);
			return;
		}
		fuse_reply_ioctl(req, 0, buf, (size_t)n);
		return;
	}
	case TTY_IOC_TIOCMIWAIT: {
		int mask =
		    (int)val & (TTY_TIOCM_CTS | TTY_TIOCM_DSR | TTY_TIOCM_RNG | TTY_TIOCM_CAR);
		if (mask == 0) {
			fuse_reply_err(req, EINVAL);
			return;
		}
		struct pend *p = calloc(1, sizeof(*p));
		if (!p) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		p->dev = d;
		p->req = req;
		p->kind = PEND_MIWAIT;
		p->mask = mask;
		p->snap = d->icount;
		park(&d->miwaits, p);
		return;
	}
	case TTY_IOC_TCXONC: /* tcflow(3) */
		switch (val) {
		case 0: /* TCOOFF */
		case 1: /* TCOON */
			d->tx_stopped = val == 0;
			DBG(d, "%s: output %s", d->name, val == 0 ? "suspended" : "resumed");
			break;
		case 2: /* TCIOFF */
			send_xchar(d, d->t.c_cc[TM_VSTOP]);
			break;
		case 3: /* TCION */
			send_xchar(d, d->t.c_cc[TM_VSTART]);
			break;
		default:
			fuse_reply_err(req, EINVAL);
			return;
		}
		fuse_reply_ioctl(req, 0, NULL, 0);
		service(d); /* TCOON: held writes and drains may proceed; POLLOUT may change */
		return;
	case TTY_IOC_UNKNOWN:
		break;
	}
	fuse_reply_err(req, ENOTTY);
}

static const struct cuse_lowlevel_ops tty_ops = {
    .init_done = op_init_done,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .release = op_release,
    .ioctl = op_ioctl,
    .poll = op_poll,
};

/* ---- link callbacks --------------------------------------------------------------- */

static void cb_data(void *ctx, const uint8_t *p, size_t n)
{
	struct tty_dev *d = ctx;
	if (d->nopen == 0) {
		/* nobody has the port open: a UART drops what it receives then (and a closed
		 * port must never hold the link back: its control channel would stall) */
		d->rx_dropped += n;
		return;
	}
	size_t got = tty_ring_push(&d->rx, p, n);
	if (got < n) {
		d->icount.buf_overrun++;
		d->rx_dropped += n - got;
		log_warn("%s: rx ring full, %zu bytes dropped", d->name, n - got);
	}
	d->icount.rx += (uint32_t)got;
	uint64_t now = now_ms(d);
	for (struct pend *r = d->reads; r; r = r->next)
		tty_read_on_rx(&r->rd, now);
	service(d);
	notify_poll(d);
}

static size_t cb_rx_space(void *ctx)
{
	struct tty_dev *d = ctx;
	if (d->nopen == 0)
		return SIZE_MAX;       /* not open: cb_data drops everything */
	return tty_ring_space(&d->rx); /* reply_rx() calls link_rx_resume() after each read */
}

static void cb_writable(void *ctx)
{
	struct tty_dev *d = ctx;
	service(d);
	notify_poll(d);
}

static void cb_state(void *ctx, enum link_state st)
{
	struct tty_dev *d = ctx;
	static const char *names[] = {"down", "connecting", "up"};
	DBG(d, "%s: link %s", d->name, (unsigned)st < 3 ? names[st] : "?");
	if (st == LINK_UP) {
		d->link_was_up = 1;
	} else if (d->link_was_up) {
		d->link_was_up = 0;
		d->down_since = now_ms(d); /* an outage starts: writes fail 3 s from now */
	}
	service(d);
	notify_poll(d);
}

/* NOTIFY-MODEMSTATE (RFC 2217 "Notification of Modem State"): the new CTS/DSR/RI/CD for
 * TIOCMGET, one TIOCGICOUNT count per line that changed (state differs from the last
 * notification, or the bridge set the line's delta bit), and TIOCMIWAIT waiters whose mask
 * covers a counted line are answered (service_miwaits compares counters, as the kernel's
 * uart_wait_modem_status() does). */
static void cb_modemstate(void *ctx, uint8_t st)
{
	struct tty_dev *d = ctx;
	uint8_t diff = (uint8_t)(d->modem ^ st);
	if ((diff & RFC2217_MODEM_CTS) || (st & RFC2217_MODEM_DELTA_CTS))
		d->icount.cts++;
	if ((diff & RFC2217_MODEM_DSR) || (st & RFC2217_MODEM_DELTA_DSR))
		d->icount.dsr++;
	/* ring: trailing edge only, as the 8250 driver counts UART_MSR_TERI */
	if (((diff & RFC2217_MODEM_RI) && !(st & RFC2217_MODEM_RI)) || (st & RFC2217_MODEM_TERI))
		d->icount.rng++;
	if ((diff & RFC2217_MODEM_CD) || (st & RFC2217_MODEM_DELTA_CD))
		d->icount.dcd++;
	d->modem = (uint8_t)(st & (RFC2217_MODEM_CD | RFC2217_MODEM_RI | RFC2217_MODEM_DSR |
	                           RFC2217_MODEM_CTS));
	DBG(d, "%s: modem state 0x%02x", d->name, st);
	service(d);
}

/* NOTIFY-LINESTATE (RFC 2217 "Notification of Line State"): every error bit set counts one
 * in TIOCGICOUNT (overrun, parity, frame; break detect counts brk, the count of breaks
 * received, as serial_icounter_struct defines it). */
static void cb_linestate(void *ctx, uint8_t st)
{
	struct tty_dev *d = ctx;
	if (st & RFC2217_LINE_OVERRUN)
		d->icount.overrun++;
	if (st & RFC2217_LINE_PARITY)
		d->icount.parity++;
	if (st & RFC2217_LINE_FRAMING)
		d->icount.frame++;
	if (st & RFC2217_LINE_BREAK)
		d->icount.brk++;
}

static void cb_drained(void *ctx)
{
	service(ctx);
	notify_poll(ctx); /* the link queue is empty: room for writers */
}

static const struct link_callbacks tty_link_cb = {
    .on_data = cb_data,
    .rx_space = cb_rx_space,
    .on_writable = cb_writable,
    .on_state = cb_state,
    .on_modemstate = cb_modemstate,
    .on_linestate = cb_linestate,
    .on_drained = cb_drained,
};

/* Installed on the link when the tty goes away: the link may outlive it. */
static void nop_data(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
}
static size_t nop_space(void *ctx)
{
	(void)ctx;
	return TTY_RING_SIZE;
}
static void nop_void(void *ctx)
{
	(void)ctx;
}
static void nop_state(void *ctx, enum link_state st)
{
	(void)ctx;
	(void)st;
}
static void nop_u8(void *ctx, uint8_t v)
{
	(void)ctx;
	(void)v;
}
static const struct link_callbacks nop_link_cb = {
    .on_data = nop_data,
    .rx_space = nop_space,
    .on_writable = nop_void,
    .on_state = nop_state,
    .on_modemstate = nop_u8,
    .on_linestate = nop_u8,
    .on_drained = nop_void,
};

/* ---- status ------------------------------------------------------------------------ */

void tty_get_stats(const struct tty_dev *t, struct tty_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!t)
		return;
	st->opens = t->nopen;
	st->exclusive = t->excl;
	struct termios_line tl;
	termios_model_line(&t->t, &tl);
	st->baud = tl.baud;
	st->data_bits = tl.data_bits;
	st->parity = tl.parity;
	st->stop_bits = tl.stop_bits;
	enum termios_flow f = termios_model_flow(&t->t);
	st->flow = f == TERMIOS_FLOW_HARDWARE  ? LINK_FLOW_HARDWARE
	           : f == TERMIOS_FLOW_XONXOFF ? LINK_FLOW_XONXOFF
	                                       : LINK_FLOW_NONE;
	st->modem = modem_bits(t);
	st->cts = t->icount.cts;
	st->dsr = t->icount.dsr;
	st->rng = t->icount.rng;
	st->dcd = t->icount.dcd;
	st->rx = t->icount.rx;
	st->tx = t->icount.tx;
	st->frame = t->icount.frame;
	st->overrun = t->icount.overrun;
	st->parity_err = t->icount.parity;
	st->brk = t->icount.brk;
	st->buf_overrun = t->icount.buf_overrun;
	st->rx_dropped = t->rx_dropped + link_rx_purged(t->link);
}

/* ---- session plumbing ------------------------------------------------------------- */

static void fail_all(struct tty_dev *d, int err)
{
	struct pend **lists[] = {&d->reads, &d->writes, &d->drains, &d->miwaits};
	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
		struct pend *p;
		while ((p = *lists[i]) != NULL) {
			*lists[i] = p->next;
			if (p->kind == PEND_DRAIN && p->break_on)
				link_set_break(d->link, 0);
			fuse_reply_err(p->req, err);
			pend_free(p);
		}
	}
}

/* The CUSE connection is gone for good: answer everything parked, stop watching the fd,
 * tell the owner (who frees us; nothing may touch d after on_dead). */
static void session_lost(struct tty_dev *d, const char *why)
{
	if (d->session_dead || d->freeing)
		return;
	log_error("%s: CUSE session ended (%s); /dev/%s is gone", d->name, why, d->name);
	d->session_dead = 1;
	if (d->fpoll_inited)
		uv_poll_stop(&d->fpoll);
	fail_all(d, EIO);
	if (d->on_dead)
		d->on_dead(d->ctx, d);
}

static void on_fuse(uv_poll_t *h, int status, int events)
{
	struct tty_dev *d = h->data;
	(void)events;
	if (d->session_dead || d->freeing)
		return;
	if (status < 0) { /* e.g. EPOLLERR after the connection was aborted */
		char why[96];
		snprintf(why, sizeof(why), "error on the CUSE fd: %s", uv_strerror(status));
		session_lost(d, why);
		return;
	}
	for (int i = 0; i < TTY_FUSE_BATCH; i++) {
		int r = fuse_session_receive_buf(d->se, &d->fbuf);
		if (r == -EAGAIN)
			return;
		if (r == -EINTR)
			continue;
		if (r <= 0 || fuse_session_exited(d->se)) {
			session_lost(d, r < 0 ? strerror(-r) : "device closed");
			return;
		}
		fuse_session_process_buf(d->se, &d->fbuf);
		if (d->session_dead || d->freeing)
			return;
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	struct tty_dev *d = h->data;
	if (--d->handles > 0)
		return;
	if (d->se)
		fuse_session_destroy(d->se); /* closes the /dev/cuse fd: the node goes away */
	free(d->fbuf.mem);
	free(d);
}

static int name_ok(const char *n)
{
	size_t len = n ? strlen(n) : 0;
	if (len == 0 || len > TTY_DEVNAME_MAX || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		char c = n[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.'))
			return 0;
	}
	return 1;
}

static struct tty_dev *dev_alloc(uv_loop_t *loop, const struct tty_config *cfg, struct link *link)
{
	struct tty_dev *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->loop = loop;
	d->link = link;
	snprintf(d->name, sizeof(d->name), "%s", cfg->name);
	d->debug = cfg->debug;
	d->on_ready = cfg->on_ready;
	d->on_dead = cfg->on_dead;
	d->ctx = cfg->ctx;
	termios_model_init(&d->t, cfg->initial_baud ? cfg->initial_baud : 115200);
	/* A fresh port starts raw on input (no IXON), so the link starts without flow
	 * control; tty_std_termios would set ICRNL|IXON. */
	d->t.c_iflag = 0;
	d->down_since = now_ms(d); /* not up yet: the outage clock runs from the start */
	return d;
}

/* Handles are up: attach to the link and set the port's initial state. */
static void dev_start(struct tty_dev *d)
{
	link_set_callbacks(d->link, &tty_link_cb, d);
	d->link_was_up = link_is_up(d);
	/* the port's initial state: DTR and RTS deasserted, line and flow from termios */
	d->dtr = 1;
	d->rts = 1;
	set_lines(d, 0, 0);
	sync_link(d);
	service(d); /* arms the outage timer if the link is not up */
}

int tty_dev_new(uv_loop_t *loop, const struct tty_config *cfg, struct link *link,
                struct tty_dev **out)
{
	if (!loop || !cfg || !link || !out || !name_ok(cfg->name))
		return -EINVAL;
	int fd = open("/dev/cuse", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		log_error("%s: open /dev/cuse: %s%s", cfg->name, strerror(e),
		          (e == ENOENT || e == ENODEV) ? " (no CUSE: try 'modprobe cuse')" : "");
		return -e;
	}
	char path[128];
	struct stat sb;
	snprintf(path, sizeof(path), "/sys/class/cuse/%s", cfg->name);
	int taken = stat(path, &sb) == 0;
	snprintf(path, sizeof(path), "/dev/%s", cfg->name);
	taken = taken || lstat(path, &sb) == 0;
	if (taken) {
		log_error("%s: /dev/%s already exists", cfg->name, cfg->name);
		close(fd);
		return -EEXIST;
	}

	struct tty_dev *d = dev_alloc(loop, cfg, link);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}

	char devname[TTY_DEVNAME_MAX + 16];
	snprintf(devname, sizeof(devname), "DEVNAME=%s", cfg->name);
	const char *info[] = {devname};
	struct cuse_info ci = {.dev_major = 0,
	                       .dev_minor = 0,
	                       .dev_info_argc = 1,
	                       .dev_info_argv = info,
	                       .flags = CUSE_UNRESTRICTED_IOCTL};
	char *argv[] = {(char *)"espstmd", NULL};
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	d->se = cuse_lowlevel_new(&args, &ci, &tty_ops, d);
	fuse_opt_free_args(&args);
	if (!d->se) {
		close(fd);
		free(d);
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "/dev/fd/%d", fd);
	if (fuse_session_mount(d->se, path) != 0) {
		close(fd);
		fuse_session_destroy(d->se);
		free(d);
		return -EIO;
	}
	/* from here the session owns fd */
	int r = uv_poll_init(loop, &d->fpoll, fd);
	if (r == 0) {
		d->handles++;
		d->fpoll_inited = 1;
		d->fpoll.data = d;
		r = uv_timer_init(loop, &d->timer);
		if (r == 0) {
			d->handles++;
			d->timer.data = d;
			r = uv_check_init(loop, &d->grace_check);
		}
		if (r == 0) {
			d->handles++;
			d->grace_check.data = d;
			r = uv_poll_start(&d->fpoll, UV_READABLE, on_fuse);
		}
	}
	if (r != 0) {
		log_error("%s: libuv: %s", d->name, uv_strerror(r));
		d->freeing = 1;
		if (d->handles == 0) {
			fuse_session_destroy(d->se);
			free(d);
		} else {
			int n = d->handles; /* fpoll, timer, grace_check: in that order */
			uv_close((uv_handle_t *)&d->fpoll, on_handle_closed);
			if (n >= 2)
				uv_close((uv_handle_t *)&d->timer, on_handle_closed);
			if (n >= 3)
				uv_close((uv_handle_t *)&d->grace_check, on_handle_closed);
		}
		return r;
	}

	dev_start(d);
	log_info("%s: CUSE device registering as /dev/%s", d->name, d->name);
	*out = d;
	return 0;
}

void tty_dev_free(struct tty_dev *t)
{
	if (!t)
		return;
	fail_all(t, EIO);
	while (t->opens) {
		struct tty_open *o = t->opens;
		t->opens = o->next;
		if (o->ph)
			fuse_pollhandle_destroy(o->ph);
		free(o);
	}
	t->freeing = 1;
	link_set_callbacks(t->link, &nop_link_cb, NULL);
	uv_timer_stop(&t->timer);
	if (t->fpoll_inited) {
		uv_poll_stop(&t->fpoll);
		uv_close((uv_handle_t *)&t->fpoll, on_handle_closed);
	}
	uv_close((uv_handle_t *)&t->timer, on_handle_closed);
	uv_close((uv_handle_t *)&t->grace_check, on_handle_closed);
}

#ifdef ESPSTM_UNIT_TEST
int tty_test_new(uv_loop_t *loop, const struct tty_config *cfg, struct link *link,
                 struct tty_dev **out)
{
	if (!loop || !cfg || !link || !out || !name_ok(cfg->name))
		return -EINVAL;
	struct tty_dev *d = dev_alloc(loop, cfg, link);
	if (!d)
		return -ENOMEM;
	int r = uv_timer_init(loop, &d->timer);
	if (r != 0) {
		free(d);
		return r;
	}
	uv_check_init(loop, &d->grace_check); /* cannot fail */
	d->handles = 2;
	d->timer.data = d;
	d->grace_check.data = d;
	d->fpoll.data = d;
	dev_start(d);
	*out = d;
	return 0;
}

const struct cuse_lowlevel_ops *tty_test_ops(void)
{
	return &tty_ops;
}

void tty_test_fuse_event(struct tty_dev *t, int status)
{
	on_fuse(&t->fpoll, status, 0);
}
#endif
