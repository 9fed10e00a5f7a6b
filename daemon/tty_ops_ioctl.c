/* SPDX-License-Identifier: MIT */
/*
 * tty_ops_ioctl: the CUSE tty's ioctls (tty_ioctl(4)), one handler per family, and the
 * requests they park until the output drained: tcdrain, TCSETSW/TCSETSF, breaks, and
 * TIOCMIWAIT. Split from tty.c, whose state it shares through tty_priv.h.
 */
#include "tty_priv.h"

#include "rfc2217.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#define TTY_BREAK_MS      250     /* tcsendbreak(fd, 0) duration */
#define TTY_BAUD_BASE     4000000 /* TIOCGSERIAL baud_base (highest Bxxx speed) */
#define TTY_DRAIN_POLL_MS 5       /* tcdrain: re-check the link socket's unacknowledged bytes */

/* One ioctl, its payload checked against the table (tty_ioctl.h). */
struct ioc {
	struct tty_dev *d;
	fuse_req_t req;
	enum tty_ioc op;
	uintptr_t val;  /* the argument itself, for the ioctls that take it by value */
	const void *in; /* what the kernel copied from the caller (at least the table's size) */
	size_t in_len;
};

int tty_modem_bits(const struct tty_dev *d)
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

/* TIOCOUTQ: bytes written and not yet at the bridge: parked writes, the link's queue and
 * what its socket holds unacknowledged. */
static size_t queued_out(const struct tty_dev *d)
{
	size_t n = link_tx_pending(d->link) + link_tx_unacked(d->link);
	for (const struct pend *p = d->writes; p; p = p->next)
		n += p->len - p->off;
	return n;
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

int tty_timed_break_active(const struct tty_dev *d)
{
	for (const struct pend *p = d->drains; p; p = p->next)
		if (p->break_on)
			return 1;
	return 0;
}

uint64_t tty_drains_deadline(struct tty_dev *d)
{
	uint64_t dl = TTY_READ_NO_DEADLINE;
	for (struct pend *p = d->drains; p; p = p->next)
		if (p->break_on && p->break_end < dl)
			dl = p->break_end;
	if (drain_waits_socket(d) && now_ms(d) + TTY_DRAIN_POLL_MS < dl)
		dl = now_ms(d) + TTY_DRAIN_POLL_MS;
	return dl;
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

/*
 * A parked drain completes once no write is parked, the link has handed every queued byte
 * to the socket (link_tx_pending() == 0) and the bridge has acknowledged all of them
 * (link_tx_unacked() == 0, re-checked every TTY_DRAIN_POLL_MS); then TCSETSW/TCSETSF apply
 * their termios, and a break goes on: TIOCSBRK until TIOCCBRK, a timed one (at most one at
 * a time) until break_end, when BREAK goes off and the request is answered.
 */
void tty_service_drains(struct tty_dev *d, uint64_t now)
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
			if (wants_break && tty_timed_break_active(d))
				continue; /* one break at a time */
			if (p->op == TTY_IOC_TCSETSW || p->op == TTY_IOC_TCSETSF ||
			    p->op == TTY_IOC_TCSETSW2 || p->op == TTY_IOC_TCSETSF2)
				tty_apply_termios(d, &p->newt, p->flush_input);
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
		tty_pend_drop(&d->drains, p);
	}
}

static int icount_changed(const struct tty_icount *a, const struct tty_icount *b, int mask)
{
	return ((mask & TTY_TIOCM_CTS) && a->cts != b->cts) ||
	       ((mask & TTY_TIOCM_DSR) && a->dsr != b->dsr) ||
	       ((mask & TTY_TIOCM_RNG) && a->rng != b->rng) ||
	       ((mask & TTY_TIOCM_CAR) && a->dcd != b->dcd);
}

/* TIOCMIWAIT completes when a counter of a line in its mask moved since it was parked, as
 * the kernel's uart_wait_modem_status() compares counters. */
void tty_service_miwaits(struct tty_dev *d)
{
	struct pend *p = d->miwaits, *next;
	for (; p; p = next) {
		next = p->next;
		if (!icount_changed(&p->snap, &d->icount, p->mask))
			continue;
		fuse_reply_ioctl(p->req, 0, NULL, 0);
		tty_pend_drop(&d->miwaits, p);
	}
}

static void reply_int(fuse_req_t req, int v)
{
	fuse_reply_ioctl(req, 0, &v, sizeof(v));
}

static void reply_ok(fuse_req_t req)
{
	fuse_reply_ioctl(req, 0, NULL, 0);
}

/* Park a request until the output drained (tty_service_drains): then apply *nt (flushing
 * input if flush) for TCSETSW/TCSETSF, or send a break of break_ms (0: none). */
static void park_drain(struct tty_dev *d, fuse_req_t req, enum tty_ioc op,
                       const struct tm_termios2 *nt, int flush, uint32_t break_ms)
{
	struct pend *p = tty_pend_new(d, req, PEND_DRAIN);
	if (!p) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p->op = op;
	if (nt)
		p->newt = *nt;
	p->flush_input = flush;
	p->break_ms = break_ms;
	tty_park(&d->drains, p);
	tty_service(d);
}

/* TCGETS, TCGETS2: the stored termios, byte for byte as last set. TCSETS, TCSETS2: store it
 * now; TCSETSW/TCSETSW2 after the output drained, TCSETSF/TCSETSF2 also flushing input
 * (tty_ioctl(4)). A payload termios_model_set() refuses: EINVAL. */
static void ioc_termios(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	if (c->op == TTY_IOC_TCGETS || c->op == TTY_IOC_TCGETS2) {
		uint8_t buf[TM_TERMIOS2_SIZE];
		int n = termios_model_get(&d->t, buf, sizeof(buf), c->op == TTY_IOC_TCGETS2);
		fuse_reply_ioctl(c->req, 0, buf, (size_t)n);
		return;
	}
	int form2 =
	    c->op == TTY_IOC_TCSETS2 || c->op == TTY_IOC_TCSETSW2 || c->op == TTY_IOC_TCSETSF2;
	struct tm_termios2 nt = d->t;
	if (termios_model_set(&nt, c->in, c->in_len, form2) < 0) {
		fuse_reply_err(c->req, EINVAL);
		return;
	}
	if (c->op == TTY_IOC_TCSETS || c->op == TTY_IOC_TCSETS2) {
		tty_apply_termios(d, &nt, 0);
		reply_ok(c->req);
		return;
	}
	int flush = c->op == TTY_IOC_TCSETSF || c->op == TTY_IOC_TCSETSF2;
	park_drain(d, c->req, c->op, &nt, flush, 0);
}

/*
 * TIOCMGET, TIOCMSET, TIOCMBIS, TIOCMBIC (tty_ioctl(4)). DTR/RTS are what the program set
 * (every first open starts with both deasserted, docs/ARCHITECTURE.md); CTS/DSR/RI/CD are
 * the last NOTIFY-MODEMSTATE from the bridge (kept, not cleared, during a link outage: the
 * bridge reports them again after reconnecting); setting them is ignored, as on a UART.
 */
static void ioc_modem(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	if (c->op == TTY_IOC_TIOCMGET) {
		reply_int(c->req, tty_modem_bits(d));
		return;
	}
	int v;
	memcpy(&v, c->in, sizeof(v));
	int dtr = d->dtr, rts = d->rts;
	if (c->op == TTY_IOC_TIOCMSET) {
		dtr = (v & TTY_TIOCM_DTR) != 0;
		rts = (v & TTY_TIOCM_RTS) != 0;
	} else if (c->op == TTY_IOC_TIOCMBIS) {
		dtr |= (v & TTY_TIOCM_DTR) != 0;
		rts |= (v & TTY_TIOCM_RTS) != 0;
	} else {
		assert(c->op == TTY_IOC_TIOCMBIC);
		if (v & TTY_TIOCM_DTR)
			dtr = 0;
		if (v & TTY_TIOCM_RTS)
			rts = 0;
	}
	tty_set_lines(d, dtr, rts);
	reply_ok(c->req);
}

/* TIOCGICOUNT: the serial_icounter_struct counters (modem-line changes and line errors
 * counted by the link callbacks, bytes each way). TIOCMIWAIT mask: wait until a line of
 * mask (TIOCM_CTS|DSR|RNG|CD; no such bit: EINVAL) changes (tty_service_miwaits). */
static void ioc_modem_wait(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	if (c->op == TTY_IOC_TIOCGICOUNT) {
		uint8_t buf[256];
		int n = tty_ioctl_fill_icount(buf, sizeof(buf), &d->icount);
		if (n < 0) {
			fuse_reply_err(c->req, -n);
			return;
		}
		fuse_reply_ioctl(c->req, 0, buf, (size_t)n);
		return;
	}
	assert(c->op == TTY_IOC_TIOCMIWAIT);
	int mask = (int)c->val & (TTY_TIOCM_CTS | TTY_TIOCM_DSR | TTY_TIOCM_RNG | TTY_TIOCM_CAR);
	if (mask == 0) {
		fuse_reply_err(c->req, EINVAL);
		return;
	}
	struct pend *p = tty_pend_new(d, c->req, PEND_MIWAIT);
	if (!p) {
		fuse_reply_err(c->req, ENOMEM);
		return;
	}
	p->mask = mask;
	p->snap = d->icount;
	tty_park(&d->miwaits, p);
}

/* TCFLSH (tcflush(3)): TCIFLUSH 0 empties the input queue and has the link discard what the
 * bridge sent before it and is still on its way; TCOFLUSH 1 purges the link's output;
 * TCIOFLUSH 2 both; anything else EINVAL. */
static void ioc_flush(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	if (c->val > 2) {
		fuse_reply_err(c->req, EINVAL);
		return;
	}
	if (c->val == 0 || c->val == 2)
		tty_flush_input(d);
	if (c->val == 1 || c->val == 2) {
		int r = link_purge(d->link, 2);
		if (r < 0)
			DBG(d, "%s: purge tx: %s", d->name, strerror(-r));
	}
	reply_ok(c->req);
	/* parked tcdrain/TCSETSW and writes may proceed now; POLLOUT may be back */
	tty_service(d);
	tty_notify_poll(d);
}

/* TCXONC (tcflow(3)): TCOOFF 0 / TCOON 1 suspend / resume our output locally (writes wait,
 * tcdrain waits); TCIOFF 2 / TCION 3 send VSTOP / VSTART as data; anything else EINVAL. */
static void ioc_flow(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	switch (c->val) {
	case 0: /* TCOOFF */
	case 1: /* TCOON */
		d->tx_stopped = c->val == 0;
		DBG(d, "%s: output %s", d->name, c->val == 0 ? "suspended" : "resumed");
		break;
	case 2: /* TCIOFF */
		send_xchar(d, d->t.c_cc[TM_VSTOP]);
		break;
	case 3: /* TCION */
		send_xchar(d, d->t.c_cc[TM_VSTART]);
		break;
	default:
		fuse_reply_err(c->req, EINVAL);
		return;
	}
	reply_ok(c->req);
	tty_service(d); /* TCOON: held writes and drains may proceed; POLLOUT may change */
}

/*
 * Breaks (tty_ioctl(4), the kernel's tty_ioctl.c send_break()): TCSBRK 0 = 250 ms (non-zero:
 * tcdrain), TCSBRKP n = n * 100 ms (0: 250 ms), TIOCSBRK on until TIOCCBRK (or the last
 * close). Each first waits until earlier output left the link (TIOCCBRK does not wait),
 * then sends RFC 2217 SET-CONTROL BREAK on, and for the timed ones BREAK off when the time
 * is up (an interrupt ends the break early with EINTR). While a timed break is on, writes
 * wait (O_NONBLOCK: EAGAIN), as the kernel holds the write lock. A link that cannot carry
 * breaks (legacy protocol) makes them succeed at once, as a driver without break_ctl does.
 */
static void ioc_break(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	switch (c->op) {
	case TTY_IOC_TCSBRK:
		park_drain(d, c->req, c->op, NULL, 0, c->val == 0 ? TTY_BREAK_MS : 0);
		return;
	case TTY_IOC_TCSBRKP:
		park_drain(d, c->req, c->op, NULL, 0,
		           c->val ? (uint32_t)c->val * 100u : TTY_BREAK_MS);
		return;
	case TTY_IOC_TIOCSBRK:
		/* after the output drained, as the kernel's tty_ioctl() does */
		park_drain(d, c->req, c->op, NULL, 0, 0);
		return;
	default: {
		assert(c->op == TTY_IOC_TIOCCBRK);
		int r = link_set_break(d->link, 0);
		if (r < 0 && r != -ENOTSUP) {
			fuse_reply_err(c->req, -r);
			return;
		}
		d->break_held = 0;
		DBG(d, "%s: break off (TIOCCBRK)", d->name);
		reply_ok(c->req);
		return;
	}
	}
}

/*
 * The port's description (tty_ioctl(4)): TIOCEXCL makes later opens fail with EBUSY except
 * for root until TIOCNXCL or the last close (op_open), TIOCGEXCL reads it; TIOCGWINSZ is all
 * zeros and TIOCSWINSZ / TIOCSSERIAL are accepted and change nothing; TIOCGSERIAL describes
 * a 16550A with baud_base TTY_BAUD_BASE.
 */
static void ioc_port(const struct ioc *c)
{
	struct tty_dev *d = c->d;
	uint8_t buf[256];
	int n;
	switch (c->op) {
	case TTY_IOC_TIOCEXCL:
	case TTY_IOC_TIOCNXCL:
		d->excl = c->op == TTY_IOC_TIOCEXCL;
		reply_ok(c->req);
		return;
	case TTY_IOC_TIOCGEXCL:
		reply_int(c->req, d->excl);
		return;
	case TTY_IOC_TIOCGWINSZ:
		n = tty_ioctl_fill_winsize(buf, sizeof(buf));
		fuse_reply_ioctl(c->req, 0, buf, (size_t)n);
		return;
	case TTY_IOC_TIOCGSERIAL:
		n = tty_ioctl_fill_serial(buf, sizeof(buf), 0, TTY_BAUD_BASE);
		if (n < 0) {
			fuse_reply_err(c->req, -n);
			return;
		}
		fuse_reply_ioctl(c->req, 0, buf, (size_t)n);
		return;
	default:
		assert(c->op == TTY_IOC_TIOCSWINSZ || c->op == TTY_IOC_TIOCSSERIAL);
		reply_ok(c->req); /* accepted, nothing to change */
		return;
	}
}

/*
 * Check an ioctl's payload against the table. Legacy numbers carry no size, so the first
 * pass (no payload at all) asks the kernel to copy it (fuse_reply_ioctl_retry; a bad pointer
 * then fails in the kernel with EFAULT); a payload still short after that is EINVAL.
 * Returns 1 when the ioctl may go on, 0 when it was answered here.
 */
static int ioc_payload(fuse_req_t req, void *arg, const struct tty_ioc_desc *desc, size_t in_bufsz,
                       size_t out_bufsz)
{
	if ((!desc->in_size || in_bufsz >= desc->in_size) &&
	    (!desc->out_size || out_bufsz >= desc->out_size))
		return 1;
	if (in_bufsz == 0 && out_bufsz == 0) {
		struct iovec in = {arg, desc->in_size}, out = {arg, desc->out_size};
		fuse_reply_ioctl_retry(req, desc->in_size ? &in : NULL, desc->in_size ? 1 : 0,
		                       desc->out_size ? &out : NULL, desc->out_size ? 1 : 0);
		return 0;
	}
	fuse_reply_err(req, EINVAL);
	return 0;
}

/*
 * CUSE ioctl: an ioctl the table does not know is ENOTTY, as are TIOCGSERIAL/TIOCSSERIAL
 * from a 32-bit caller (FUSE_IOCTL_COMPAT: struct serial_struct has another layout there);
 * the rest go to their family's handler once the payload is there.
 */
void tty_op_ioctl(fuse_req_t req, int cmd_i, void *arg, struct fuse_file_info *fi, unsigned flags,
                  const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	struct tty_dev *d = fuse_req_userdata(req);
	uint32_t cmd = (uint32_t)cmd_i;
	struct tty_ioc_desc desc;
	(void)fi;

	if (tty_ioctl_lookup(cmd, &desc) == TTY_IOC_UNKNOWN ||
	    ((flags & FUSE_IOCTL_COMPAT) &&
	     (desc.op == TTY_IOC_TIOCGSERIAL || desc.op == TTY_IOC_TIOCSSERIAL))) {
		DBG(d, "%s: ioctl 0x%08x: ENOTTY", d->name, cmd);
		fuse_reply_err(req, ENOTTY);
		return;
	}
	if (!ioc_payload(req, arg, &desc, in_bufsz, out_bufsz))
		return;
	struct ioc c = {d, req, desc.op, (uintptr_t)arg, in_buf, in_bufsz};
	DBG(d, "%s: ioctl 0x%08x arg %#lx", d->name, cmd, (unsigned long)c.val);

	switch (desc.op) {
	case TTY_IOC_TCGETS:
	case TTY_IOC_TCSETS:
	case TTY_IOC_TCSETSW:
	case TTY_IOC_TCSETSF:
	case TTY_IOC_TCGETS2:
	case TTY_IOC_TCSETS2:
	case TTY_IOC_TCSETSW2:
	case TTY_IOC_TCSETSF2:
		ioc_termios(&c);
		return;
	case TTY_IOC_TIOCMGET:
	case TTY_IOC_TIOCMSET:
	case TTY_IOC_TIOCMBIS:
	case TTY_IOC_TIOCMBIC:
		ioc_modem(&c);
		return;
	case TTY_IOC_TIOCMIWAIT:
	case TTY_IOC_TIOCGICOUNT:
		ioc_modem_wait(&c);
		return;
	case TTY_IOC_TCFLSH:
		ioc_flush(&c);
		return;
	case TTY_IOC_TCXONC:
		ioc_flow(&c);
		return;
	case TTY_IOC_TCSBRK:
	case TTY_IOC_TCSBRKP:
	case TTY_IOC_TIOCSBRK:
	case TTY_IOC_TIOCCBRK:
		ioc_break(&c);
		return;
	case TTY_IOC_FIONREAD:
		reply_int(req, (int)d->rx.len);
		return;
	case TTY_IOC_TIOCOUTQ:
		reply_int(req, (int)queued_out(d));
		return;
	case TTY_IOC_TIOCEXCL:
	case TTY_IOC_TIOCNXCL:
	case TTY_IOC_TIOCGEXCL:
	case TTY_IOC_TIOCGWINSZ:
	case TTY_IOC_TIOCSWINSZ:
	case TTY_IOC_TIOCGSERIAL:
	case TTY_IOC_TIOCSSERIAL:
		ioc_port(&c);
		return;
	case TTY_IOC_UNKNOWN:
		break;
	}
	fuse_reply_err(req, ENOTTY);
}
