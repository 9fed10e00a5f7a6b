/* SPDX-License-Identifier: MIT */
/* firmware/posix/tty_termios2.c: the c_cflag bits of each framing, and termios2 on a real
 * tty (a pty): standard and BOTHER bauds read back with TCGETS2, bad values and a non-tty
 * refused. Only <asm/termbits.h>, as tty_termios2.c (no <termios.h>). */
#include "tty_termios2.h"
#include "unit.h"

#include <asm/termbits.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

static struct tty_line L(uint32_t baud, uint8_t data, uint8_t par, uint8_t stop, uint8_t flow) {
	return (struct tty_line){
	    .baud = baud, .data_bits = data, .parity = par, .stop = stop, .flow = flow};
}

START_TEST(cflag_bits)
{
	struct tty_line l = L(115200, 8, 1, 1, 1);
	ck_assert_uint_eq(tty_termios2_cflag(&l), CS8 | CREAD | CLOCAL);
	l = L(115200, 8, 3, 1, 1); /* 8E1: the STM32 bootloader */
	ck_assert_uint_eq(tty_termios2_cflag(&l), CS8 | PARENB | CREAD | CLOCAL);
	l = L(9600, 7, 2, 2, 3);
	ck_assert_uint_eq(tty_termios2_cflag(&l),
	                  CS7 | PARENB | PARODD | CSTOPB | CRTSCTS | CREAD | CLOCAL);
	l = L(9600, 8, 4, 1, 1); /* mark */
	ck_assert_uint_eq(tty_termios2_cflag(&l), CS8 | PARENB | PARODD | CMSPAR | CREAD | CLOCAL);
	l = L(9600, 6, 5, 1, 2); /* space; XON/XOFF is in c_iflag */
	ck_assert_uint_eq(tty_termios2_cflag(&l), CS6 | PARENB | CMSPAR | CREAD | CLOCAL);
	l = L(9600, 5, 1, 3, 1); /* 1.5 stop bits: CSTOPB with 5 data bits */
	ck_assert_uint_eq(tty_termios2_cflag(&l), CS5 | CSTOPB | CREAD | CLOCAL);
}
END_TEST

static const struct tty_line bad[] = {
    {115200, 9, 1, 1, 1}, {115200, 4, 1, 1, 1}, {115200, 8, 0, 1, 1}, {115200, 8, 6, 1, 1},
    {115200, 8, 1, 0, 1}, {115200, 8, 1, 3, 1}, {115200, 8, 1, 4, 1}, {115200, 8, 1, 1, 0},
    {115200, 8, 1, 1, 4}, {0, 8, 1, 1, 1},
};

START_TEST(cflag_bad)
{
	int fd = open("/dev/null", O_RDWR);
	ck_assert_int_ge(fd, 0);
	if (bad[_i].baud)
		ck_assert_uint_eq(tty_termios2_cflag(&bad[_i]), 0);
	ck_assert_int_eq(tty_termios2_apply(fd, &bad[_i], NULL), -EINVAL);
	close(fd);
}
END_TEST

/* a pty's slave side, opened as the bridge opens its tty */
static int open_pty(int *master)
{
	*master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(*master, 0);
	ck_assert_int_eq(grantpt(*master), 0);
	ck_assert_int_eq(unlockpt(*master), 0);
	int fd = open(ptsname(*master), O_RDWR | O_NOCTTY | O_NONBLOCK);
	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(apply_on_pty)
{
	int m, fd = open_pty(&m);
	ck_assert_int_eq(tty_termios2_probe(fd), 0);
	struct tty_line l = L(57600, 8, 1, 2, 3);
	uint32_t actual = 0;
	ck_assert_int_eq(tty_termios2_apply(fd, &l, &actual), 0);
	ck_assert_uint_eq(actual, 57600);
	struct termios2 t;
	ck_assert_int_eq(ioctl(fd, TCGETS2, &t), 0);
	ck_assert_uint_eq(t.c_cflag & CBAUD, B57600);
	ck_assert_uint_eq(t.c_ospeed, 57600);
	ck_assert_uint_ne(t.c_cflag & CSTOPB, 0);
	ck_assert_uint_ne(t.c_cflag & CRTSCTS, 0);
	ck_assert_uint_eq(t.c_lflag & (ICANON | ECHO | ISIG), 0);
	ck_assert_uint_eq(t.c_cc[VMIN], 0);
	/* a baud without a Bnnn code: BOTHER with the number */
	l = L(250000, 8, 1, 1, 2);
	ck_assert_int_eq(tty_termios2_apply(fd, &l, &actual), 0);
	ck_assert_uint_eq(actual, 250000);
	ck_assert_int_eq(ioctl(fd, TCGETS2, &t), 0);
	ck_assert_uint_eq(t.c_cflag & CBAUD, BOTHER);
	ck_assert_uint_eq(t.c_ospeed, 250000);
	ck_assert_uint_eq(t.c_ispeed, 250000);
	ck_assert_uint_ne(t.c_iflag & IXON, 0);
	ck_assert_uint_eq(t.c_cflag & (CSTOPB | CRTSCTS), 0);
	/* raw bytes through: no CR/LF mapping */
	ck_assert_int_eq(write(m, "a\r\n\x03", 4), 4);
	usleep(20000);
	char buf[8];
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4);
	ck_assert_mem_eq(buf, "a\r\n\x03", 4);
	close(fd);
	close(m);
}
END_TEST

START_TEST(not_a_tty)
{
	int fd = open("/dev/null", O_RDWR);
	ck_assert_int_ge(fd, 0);
	struct tty_line l = L(115200, 8, 1, 1, 1);
	ck_assert_int_eq(tty_termios2_probe(fd), -ENOTTY);
	ck_assert_int_eq(tty_termios2_apply(fd, &l, NULL), -ENOTTY);
	close(fd);
}
END_TEST

static Suite *tty_termios2_suite(void)
{
	Suite *s = suite_create("tty_termios2");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, cflag_bits);
	tcase_add_loop_test(tc, cflag_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, apply_on_pty);
	tcase_add_test(tc, not_a_tty);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(tty_termios2_suite)
