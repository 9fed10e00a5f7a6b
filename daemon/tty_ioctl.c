/* SPDX-License-Identifier: MIT */
/* tty_ioctl: serial ioctl table with kernel payload sizes. See tty_ioctl.h.
 * Includes the kernel's UAPI headers only; never glibc <termios.h> or <sys/ioctl.h>. */
#include "tty_ioctl.h"

#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <asm/termios.h>
#include <errno.h>
#include <linux/serial.h>
#include <string.h>

#define ENT(cmd, op, in, out)                                                                      \
	{                                                                                          \
		(uint32_t)(cmd),                                                                   \
		{                                                                                  \
			op, in, out                                                                \
		}                                                                                  \
	}
static const struct {
	uint32_t cmd;
	struct tty_ioc_desc d;
} table[] = {
    ENT(TCGETS, TTY_IOC_TCGETS, 0, sizeof(struct termios)),
    ENT(TCSETS, TTY_IOC_TCSETS, sizeof(struct termios), 0),
    ENT(TCSETSW, TTY_IOC_TCSETSW, sizeof(struct termios), 0),
    ENT(TCSETSF, TTY_IOC_TCSETSF, sizeof(struct termios), 0),
    ENT(TCGETS2, TTY_IOC_TCGETS2, 0, sizeof(struct termios2)),
    ENT(TCSETS2, TTY_IOC_TCSETS2, sizeof(struct termios2), 0),
    ENT(TCSETSW2, TTY_IOC_TCSETSW2, sizeof(struct termios2), 0),
    ENT(TCSETSF2, TTY_IOC_TCSETSF2, sizeof(struct termios2), 0),
    ENT(TIOCMGET, TTY_IOC_TIOCMGET, 0, sizeof(int)),
    ENT(TIOCMSET, TTY_IOC_TIOCMSET, sizeof(int), 0),
    ENT(TIOCMBIS, TTY_IOC_TIOCMBIS, sizeof(int), 0),
    ENT(TIOCMBIC, TTY_IOC_TIOCMBIC, sizeof(int), 0),
    ENT(TCFLSH, TTY_IOC_TCFLSH, 0, 0),
    ENT(TCSBRK, TTY_IOC_TCSBRK, 0, 0),
    ENT(TCSBRKP, TTY_IOC_TCSBRKP, 0, 0),
    ENT(TIOCSBRK, TTY_IOC_TIOCSBRK, 0, 0),
    ENT(TIOCCBRK, TTY_IOC_TIOCCBRK, 0, 0),
    ENT(FIONREAD, TTY_IOC_FIONREAD, 0, sizeof(int)),
    ENT(TIOCOUTQ, TTY_IOC_TIOCOUTQ, 0, sizeof(int)),
    ENT(TIOCEXCL, TTY_IOC_TIOCEXCL, 0, 0),
    ENT(TIOCNXCL, TTY_IOC_TIOCNXCL, 0, 0),
    ENT(TIOCGEXCL, TTY_IOC_TIOCGEXCL, 0, sizeof(int)),
    ENT(TIOCGWINSZ, TTY_IOC_TIOCGWINSZ, 0, sizeof(struct winsize)),
    ENT(TIOCSWINSZ, TTY_IOC_TIOCSWINSZ, sizeof(struct winsize), 0),
    ENT(TIOCGSERIAL, TTY_IOC_TIOCGSERIAL, 0, sizeof(struct serial_struct)),
    ENT(TIOCSSERIAL, TTY_IOC_TIOCSSERIAL, sizeof(struct serial_struct), 0),
    ENT(TIOCMIWAIT, TTY_IOC_TIOCMIWAIT, 0, 0),
    ENT(TIOCGICOUNT, TTY_IOC_TIOCGICOUNT, 0, sizeof(struct serial_icounter_struct)),
    ENT(TCXONC, TTY_IOC_TCXONC, 0, 0),
};

_Static_assert(TIOCINQ == FIONREAD, "TIOCINQ is FIONREAD");
_Static_assert(TIOCM_DTR == TTY_TIOCM_DTR && TIOCM_RTS == TTY_TIOCM_RTS &&
                   TIOCM_CTS == TTY_TIOCM_CTS && TIOCM_CAR == TTY_TIOCM_CAR &&
                   TIOCM_RNG == TTY_TIOCM_RNG && TIOCM_DSR == TTY_TIOCM_DSR,
               "TIOCM bits");
_Static_assert(sizeof(struct winsize) == 8, "struct winsize");

enum tty_ioc tty_ioctl_lookup(uint32_t cmd, struct tty_ioc_desc *d)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].cmd == cmd) {
			*d = table[i].d;
			return d->op;
		}
	}
	d->op = TTY_IOC_UNKNOWN;
	d->in_size = 0;
	d->out_size = 0;
	return TTY_IOC_UNKNOWN;
}

int tty_ioctl_fill_serial(void *buf, size_t len, int line, uint32_t baud_base)
{
	struct serial_struct ss;
	if (!buf || len < sizeof(ss))
		return -EINVAL;
	memset(&ss, 0, sizeof(ss));
	ss.type = PORT_16550A;
	ss.line = line;
	ss.xmit_fifo_size = 16;
	ss.baud_base = (int)baud_base;
	ss.close_delay = 50;
	ss.closing_wait = 3000;
	ss.io_type = SERIAL_IO_PORT;
	memcpy(buf, &ss, sizeof(ss));
	return (int)sizeof(ss);
}

int tty_ioctl_fill_icount(void *buf, size_t len, const struct tty_icount *c)
{
	struct serial_icounter_struct ic;
	if (!buf || len < sizeof(ic))
		return -EINVAL;
	memset(&ic, 0, sizeof(ic));
	ic.cts = (int)c->cts;
	ic.dsr = (int)c->dsr;
	ic.rng = (int)c->rng;
	ic.dcd = (int)c->dcd;
	ic.rx = (int)c->rx;
	ic.tx = (int)c->tx;
	ic.frame = (int)c->frame;
	ic.overrun = (int)c->overrun;
	ic.parity = (int)c->parity;
	ic.brk = (int)c->brk;
	ic.buf_overrun = (int)c->buf_overrun;
	memcpy(buf, &ic, sizeof(ic));
	return (int)sizeof(ic);
}

int tty_ioctl_fill_winsize(void *buf, size_t len)
{
	if (!buf || len < sizeof(struct winsize))
		return -EINVAL;
	memset(buf, 0, sizeof(struct winsize));
	return (int)sizeof(struct winsize);
}
