/* SPDX-License-Identifier: MIT */
/*
 * The termios2 part of the tty target (tty_target.c): line settings of a Linux tty through
 * ioctl TCGETS2/TCSETS2 (any baud with BOTHER). Kept apart because <asm/termbits.h> and the
 * C library's <termios.h> (which <uv.h> includes) cannot be in one file.
 */
#ifndef ESPSTM_TTY_TERMIOS2_H
#define ESPSTM_TTY_TERMIOS2_H

#include <stddef.h>
#include <stdint.h>

/* Line settings, with RFC 2217 section 3 (SET-PARITY, SET-STOPSIZE, SET-CONTROL) codes. */
struct tty_line {
	uint32_t baud;     /* bits per second, > 0 */
	uint8_t data_bits; /* 5..8 */
	uint8_t parity;    /* 1 none, 2 odd, 3 even, 4 mark, 5 space */
	uint8_t stop;      /* 1 one, 2 two, 3 one and a half (only with 5 data bits) */
	uint8_t flow;      /* 1 none, 2 XON/XOFF, 3 RTS/CTS */
};

/*
 * Put fd (a tty) in raw mode (no echo, no line editing, no CR/LF mapping, VMIN 0/VTIME 0,
 * CLOCAL, CREAD, no HUPCL) with the settings l: a standard Bnnn code when the baud has one
 * (e.g. 115200 -> B115200), else BOTHER with c_ispeed = c_ospeed = baud. Returns 0, or a
 * negative errno: -EINVAL (a value out of range, 1.5 stop bits without 5 data bits),
 * -ENOTTY (not a tty) or the ioctl's error. On success *actual (may be NULL) receives
 * the baud the driver reports back (TCGETS2 c_ospeed), which may be rounded.
 */
int tty_termios2_apply(int fd, const struct tty_line *l, uint32_t *actual);

/* The c_cflag bits (CSIZE, PARENB, PARODD, CMSPAR, CSTOPB, CRTSCTS, CREAD, CLOCAL; no baud)
 * for l, or 0 when l's data bits, parity, stop bits or flow are out of range. */
unsigned tty_termios2_cflag(const struct tty_line *l);

/* Whether fd is a tty that takes TCGETS2: 0, or a negative errno (-ENOTTY: not a tty). */
int tty_termios2_probe(int fd);

#endif
