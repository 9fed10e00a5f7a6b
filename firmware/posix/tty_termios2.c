/* SPDX-License-Identifier: MIT */
/*
 * termios2 for the tty target: raw mode, any baud (BOTHER), parity including mark/space
 * (CMSPAR), 5..8 data bits, 1/1.5/2 stop bits, RTS/CTS or XON/XOFF flow. Only
 * <asm/termbits.h> and <sys/ioctl.h> from the system: <termios.h> clashes with them
 * (see tty_termios2.h).
 */
#include "tty_termios2.h"

#include <asm/termbits.h>
#include <errno.h>
#include <sys/ioctl.h>

/* the baud rates with their own Bnnn code (termbits.h); others go as BOTHER */
static const struct {
	uint32_t baud;
	unsigned code;
} std_bauds[] = {
    {50, B50},           {75, B75},           {110, B110},         {134, B134},
    {150, B150},         {200, B200},         {300, B300},         {600, B600},
    {1200, B1200},       {1800, B1800},       {2400, B2400},       {4800, B4800},
    {9600, B9600},       {19200, B19200},     {38400, B38400},     {57600, B57600},
    {115200, B115200},   {230400, B230400},   {460800, B460800},   {500000, B500000},
    {576000, B576000},   {921600, B921600},   {1000000, B1000000}, {1152000, B1152000},
    {1500000, B1500000}, {2000000, B2000000}, {2500000, B2500000}, {3000000, B3000000},
    {3500000, B3500000}, {4000000, B4000000},
};

int tty_termios2_probe(int fd)
{
	struct termios2 t;
	if (ioctl(fd, TCGETS2, &t) < 0)
		return -errno;
	return 0;
}

unsigned tty_termios2_cflag(const struct tty_line *l)
{
	static const unsigned csize[] = {CS5, CS6, CS7, CS8};
	if (l->data_bits < 5 || l->data_bits > 8)
		return 0;
	unsigned c = csize[l->data_bits - 5] | CREAD | CLOCAL;
	switch (l->parity) {
	case 1:
		break;
	case 2:
		c |= PARENB | PARODD;
		break;
	case 3:
		c |= PARENB;
		break;
	case 4:
		c |= PARENB | CMSPAR | PARODD; /* stick parity: PARODD = mark */
		break;
	case 5:
		c |= PARENB | CMSPAR;
		break;
	default:
		return 0;
	}
	if (l->stop == 2 || (l->stop == 3 && l->data_bits == 5))
		c |= CSTOPB; /* a 16550 sends 1.5 stop bits for CSTOPB with 5 data bits */
	else if (l->stop != 1)
		return 0;
	if (l->flow == 3)
		c |= CRTSCTS;
	else if (l->flow != 1 && l->flow != 2)
		return 0;
	return c;
}

int tty_termios2_apply(int fd, const struct tty_line *l, uint32_t *actual)
{
	if (l->baud == 0 || l->data_bits < 5 || l->data_bits > 8)
		return -EINVAL;
	unsigned cflag = tty_termios2_cflag(l);
	if (cflag == 0)
		return -EINVAL;
	struct termios2 t;
	if (ioctl(fd, TCGETS2, &t) < 0)
		return -errno;
	unsigned code = BOTHER;
	for (size_t i = 0; i < sizeof(std_bauds) / sizeof(std_bauds[0]); i++)
		if (std_bauds[i].baud == l->baud)
			code = std_bauds[i].code;
	t.c_iflag = 0; /* no INPCK: a byte with a parity error is passed on as received */
	if (l->flow == 2)
		t.c_iflag |= IXON | IXOFF;
	t.c_oflag = 0;
	t.c_lflag = 0;
	t.c_cflag = cflag | code | ((unsigned)code << IBSHIFT);
	t.c_ispeed = l->baud;
	t.c_ospeed = l->baud;
	for (size_t i = 0; i < sizeof(t.c_cc); i++)
		t.c_cc[i] = 0;
	t.c_cc[VSTART] = 0x11;
	t.c_cc[VSTOP] = 0x13;
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (ioctl(fd, TCSETS2, &t) < 0)
		return -errno;
	if (actual) {
		struct termios2 back;
		*actual = ioctl(fd, TCGETS2, &back) == 0 && back.c_ospeed ? back.c_ospeed : l->baud;
	}
	return 0;
}
