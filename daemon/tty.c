/* SPDX-License-Identifier: MIT */
/*
 * tty: a CUSE character device that behaves like a serial port (termios(3), tty_ioctl(4)),
 * served on the libuv loop through libfuse3's low-level CUSE API and backed by a link
 * (link.h). This file has the session, open/read/write/poll, the service pass that answers
 * parked requests, and the link callbacks; the ioctls are in tty_ops_ioctl.c.
 */
#include "tty_priv.h"

#include "rfc2217.h"

#include <cuse_lowlevel.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define TTY_WRITE_DOWN_MS 3000 /* a blocking write waits this long for a link not up */
#define TTY_FUSE_BATCH    64   /* requests handled per uv_poll wakeup */

static void on_timer(uv_timer_t *h);

/* ---- small helpers ---------------------------------------------------------------- */

/*
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
 * outage_long() says whether the outage is that old at loop time now (ms).
 */
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

struct pend *tty_pend_new(struct tty_dev *d, fuse_req_t req, enum pend_kind kind)
{
	struct pend *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->dev = d;
	p->req = req;
	p->kind = kind;
	return p;
}

void tty_pend_drop(struct pend **list, struct pend *p)
{
	list_remove(list, p);
	pend_free(p);
}

void tty_notify_poll(struct tty_dev *d)
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

void tty_park(struct pend **list, struct pend *p)
{
	list_append(list, p);
	fuse_req_interrupt_func(p->req, on_interrupt, p);
}

/* Change DTR/RTS, telling the link only about lines that change; RTS (BOOT0) first so it
 * is settled before DTR (NRST) is released. */
void tty_set_lines(struct tty_dev *d, int dtr, int rts)
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

/* Carry the stored termios to the link: line settings and flow, each only when changed.
 * Flow: CRTSCTS -> SET-CONTROL hardware, else IXON/IXOFF -> XON/XOFF, else none (RFC 2217;
 * the bridge does the flow control). */
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

void tty_flush_input(struct tty_dev *d)
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
void tty_apply_termios(struct tty_dev *d, const struct tm_termios2 *nt, int flush)
{
	uint32_t old = termios_model_ospeed(&d->t);
	d->t = *nt;
	if (flush)
		tty_flush_input(d);
	sync_link(d);
	if (old != 0 && termios_model_ospeed(&d->t) == 0)
		tty_set_lines(d, 0, 0);
	tty_notify_poll(d); /* VMIN may have changed what POLLIN means */
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

/* Output may not go to the link now: suspended with TCOOFF, or a timed break is on (Linux
 * holds the tty write lock for the whole of send_break(), so writers wait, and O_NONBLOCK
 * writers get EAGAIN). */
static int output_held(const struct tty_dev *d)
{
	return d->tx_stopped || tty_timed_break_active(d);
}

/* What poll reports now, at loop time now (ms): POLLIN per VMIN/VTIME, POLLOUT per the link
 * (outage_long: what programs see in an outage). */
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
		tty_pend_drop(&d->writes, p);
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
		 * (e.g. a NOTIFY-MODEMSTATE ahead of the ACK calls tty_service() from the decoder).
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
		tty_pend_drop(&d->reads, p);
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
		tty_pend_drop(list, p);
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
	uint64_t drains = tty_drains_deadline(d); /* breaks, drains waiting for the socket */
	return drains < dl ? drains : dl;
}

/*
 * A deadline passed (VMIN/VTIME timer, outage, break). libuv runs expired timers before it
 * polls I/O, so if this process was not scheduled for a while, bytes the bridge sent in time
 * may sit unread in the socket while the deadline looks missed. A real tty's driver fills the
 * buffer independently of the reader; to match that, the first expiry only re-arms the timer
 * for 1 ms, which makes the loop poll I/O once (delivering such bytes through cb_data; the
 * uv_check grace_check runs after that poll) before the second expiry decides: then input
 * up to the first expiry is known delivered (input_seen), and only as of that time may a
 * read time out (service_reads), whoever calls tty_service() (a link callback, a CUSE request).
 * Until the second expiry, tty_service() leaves the timer alone while the deadline is past;
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
	tty_service(d);
}

/*
 * Requests that cannot be answered at once (blocking reads per VMIN/VTIME, writes into a
 * full link queue, tcdrain/TCSETSW/TCSETSF, breaks, TIOCMIWAIT) are parked and answered
 * here; this runs on every link event, CUSE request and expiry of the device's timer.
 * Interrupts (FUSE_INTERRUPT: a signal hit the caller) only mark the parked request
 * (on_interrupt); the EINTR reply is sent from here, never from inside libfuse's interrupt
 * callback (libfuse holds the request's lock there).
 */
void tty_service(struct tty_dev *d)
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
		tty_service_drains(d, now);
		service_reads(d, now);
		tty_service_miwaits(d);
	} while (d->service_again);
	d->in_service = 0;

	/* answered writes, a drained queue or an old outage change what poll reports */
	unsigned ev = poll_events(d, now_ms(d));
	if (ev != d->last_pollev) {
		d->last_pollev = ev;
		tty_notify_poll(d);
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

/*
 * All descriptors share one port, as on a kernel tty: one termios, one input queue (each
 * byte goes to the one read that takes it), one set of lines; O_NONBLOCK is per descriptor
 * (taken from each request). TIOCEXCL makes later opens fail with EBUSY except for root
 * (uid 0; the kernel's tty_open() lets CAP_SYS_ADMIN through: the uid is what CUSE tells
 * us), until TIOCNXCL or the last close. flock(2), which pyserial's exclusive=True uses, is
 * done by the kernel on the device inode and never reaches us.
 */
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
		tty_set_lines(d, 0, 0); /* every first open starts with DTR and RTS deasserted */
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
			tty_set_lines(d, 0, 0); /* HUPCL: lower the modem lines on last close */
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
	struct pend *p = tty_pend_new(d, req, PEND_READ);
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->rd = rd;
	p->rd.nonblock = 0;
	p->rd_deadline = dl;
	tty_park(&d->reads, p);
	tty_service(d); /* arms the timer */
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
	struct pend *p = tty_pend_new(d, req, PEND_WRITE);
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
	p->data = copy;
	p->base = n;
	p->len = size - n;
	p->off = 0;
	tty_park(&d->writes, p);
	tty_service(d);
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

static const struct cuse_lowlevel_ops tty_ops = {
    .init_done = op_init_done,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .release = op_release,
    .ioctl = tty_op_ioctl,
    .poll = op_poll,
};

/* ---- link callbacks --------------------------------------------------------------- */

/*
 * Bridge data goes into the 64 KiB ring (cb_rx_space() answers its free room); every time a
 * read takes bytes out, reply_rx() calls link_rx_resume() (the link holds data the ring
 * could not take and applies backpressure to the bridge). While no descriptor is open,
 * received data is dropped (counted in rx_dropped), as a UART does, and the last close
 * drops what was left unread: a closed port never holds the link back. Input flushes
 * (TCIFLUSH, TCSETSF) empty the ring and have the link discard what the bridge sent before
 * them and is still on its way (link_purge; counted in rx_dropped too).
 */
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
	tty_service(d);
	tty_notify_poll(d);
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
	tty_service(d);
	tty_notify_poll(d);
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
	tty_service(d);
	tty_notify_poll(d);
}

/* NOTIFY-MODEMSTATE (RFC 2217 "Notification of Modem State"): the new CTS/DSR/RI/CD for
 * TIOCMGET, one TIOCGICOUNT count per line that changed (state differs from the last
 * notification, or the bridge set the line's delta bit), and TIOCMIWAIT waiters whose mask
 * covers a counted line are answered (tty_service_miwaits compares counters, as the kernel's
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
	tty_service(d);
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
	tty_service(ctx);
	tty_notify_poll(ctx); /* the link queue is empty: room for writers */
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
	st->modem = tty_modem_bits(t);
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

/* The CUSE connection is gone for good (session ended, or an error on its fd): answer
 * everything parked with EIO, stop watching the fd, tell the owner through on_dead (who
 * frees us; nothing may touch d after on_dead; espstmd then exits with status 1). */
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
	tty_set_lines(d, 0, 0);
	sync_link(d);
	tty_service(d); /* arms the outage timer if the link is not up */
}

/*
 * Session setup does what libfuse's cuse_lowlevel_setup() does internally, minus its signal
 * handlers and daemonizing: cuse_lowlevel_new(), open("/dev/cuse"), then hand the fd to the
 * session with fuse_session_mount("/dev/fd/N") (libfuse: "the caller may open /dev/fuse ...
 * and pass on the file descriptor by specifying /dev/fd/N as the mount point"). The fd is
 * watched with a uv_poll_t; requests are read with fuse_session_receive_buf() and
 * dispatched with fuse_session_process_buf() (on_fuse). Contract in tty.h.
 */
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
	r = uv_check_init(loop, &d->grace_check);
	assert(r == 0); /* uv_check_init only initialises the handle */
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
