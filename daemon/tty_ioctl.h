/* SPDX-License-Identifier: MIT */
/*
 * tty_ioctl: the table of serial-port ioctls the CUSE tty answers (tty_ioctl(4)), with
 * their payload sizes taken from the kernel's own structs. Legacy tty ioctl numbers
 * (0x54xx) encode no direction or size, so with CUSE_UNRESTRICTED_IOCTL the daemon must
 * know them to ask the kernel for the data (fuse_reply_ioctl_retry, libfuse docs).
 * Pure logic; the kernel headers stay inside tty_ioctl.c (they clash with glibc <termios.h>).
 */
#ifndef ESPSTM_TTY_IOCTL_H
#define ESPSTM_TTY_IOCTL_H

#include <stddef.h>
#include <stdint.h>

enum tty_ioc {
	TTY_IOC_UNKNOWN = 0,
	TTY_IOC_TCGETS,      /* out struct termios (36) */
	TTY_IOC_TCSETS,      /* in struct termios */
	TTY_IOC_TCSETSW,     /* in struct termios, after drain */
	TTY_IOC_TCSETSF,     /* in struct termios, after drain, input flushed */
	TTY_IOC_TCGETS2,     /* out struct termios2 (44) */
	TTY_IOC_TCSETS2,     /* in struct termios2 */
	TTY_IOC_TCSETSW2,    /* in struct termios2, after drain */
	TTY_IOC_TCSETSF2,    /* in struct termios2, after drain, input flushed */
	TTY_IOC_TIOCMGET,    /* out int */
	TTY_IOC_TIOCMSET,    /* in int */
	TTY_IOC_TIOCMBIS,    /* in int */
	TTY_IOC_TIOCMBIC,    /* in int */
	TTY_IOC_TCFLSH,      /* by value: TCIFLUSH 0, TCOFLUSH 1, TCIOFLUSH 2 */
	TTY_IOC_TCSBRK,      /* by value: 0 = break 250 ms, else drain */
	TTY_IOC_TCSBRKP,     /* by value: break arg*100 ms (0: 250 ms) */
	TTY_IOC_TIOCSBRK,    /* no argument */
	TTY_IOC_TIOCCBRK,    /* no argument */
	TTY_IOC_FIONREAD,    /* out int (also TIOCINQ) */
	TTY_IOC_TIOCOUTQ,    /* out int */
	TTY_IOC_TIOCEXCL,    /* no argument */
	TTY_IOC_TIOCNXCL,    /* no argument */
	TTY_IOC_TIOCGEXCL,   /* out int */
	TTY_IOC_TIOCGWINSZ,  /* out struct winsize (8) */
	TTY_IOC_TIOCSWINSZ,  /* in struct winsize */
	TTY_IOC_TIOCGSERIAL, /* out struct serial_struct */
	TTY_IOC_TIOCSSERIAL, /* in struct serial_struct */
	TTY_IOC_TIOCMIWAIT,  /* by value: TIOCM_* mask */
	TTY_IOC_TIOCGICOUNT, /* out struct serial_icounter_struct */
	TTY_IOC_TCXONC,      /* by value: TCOOFF..TCION */
};

struct tty_ioc_desc {
	enum tty_ioc op;
	size_t in_size;  /* bytes the ioctl reads from the caller's arg pointer */
	size_t out_size; /* bytes it writes to the caller's arg pointer */
};

/* Look up an ioctl command number (as unsigned: TCGETS2 has the top bit set). Fills *d
 * and returns d->op, TTY_IOC_UNKNOWN (sizes 0) for a command the tty does not serve. */
enum tty_ioc tty_ioctl_lookup(uint32_t cmd, struct tty_ioc_desc *d);

/* TIOCM_* modem bits (asm-generic/termios.h), re-exported without the kernel headers. */
#define TTY_TIOCM_DTR 0x002
#define TTY_TIOCM_RTS 0x004
#define TTY_TIOCM_CTS 0x020
#define TTY_TIOCM_CAR 0x040
#define TTY_TIOCM_RNG 0x080
#define TTY_TIOCM_DSR 0x100

/* Counters reported by TIOCGICOUNT (struct serial_icounter_struct, linux/serial.h). */
struct tty_icount {
	uint32_t cts, dsr, rng, dcd, rx, tx, frame, overrun, parity, brk, buf_overrun;
};

/* Fill a TIOCGSERIAL payload (struct serial_struct) for a virtual 16550A: type PORT_16550A,
 * line, xmit_fifo_size 16, baud_base (bits/s), close_delay 50 (1/100 s), closing_wait 3000.
 * Returns bytes written or -EINVAL when len is too small. */
int tty_ioctl_fill_serial(void *buf, size_t len, int line, uint32_t baud_base);
/* Fill a TIOCGICOUNT payload from *c. Returns bytes written or -EINVAL when len is short. */
int tty_ioctl_fill_icount(void *buf, size_t len, const struct tty_icount *c);
/* Fill a TIOCGWINSZ payload with zeros. Returns bytes written or -EINVAL. */
int tty_ioctl_fill_winsize(void *buf, size_t len);

#endif
