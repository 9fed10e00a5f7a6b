/* SPDX-License-Identifier: MIT */
/* Unit tests of daemon/termios_model.c (kernel termios readback, speeds, line mapping)
 * and daemon/tty_ioctl.c (ioctl table sizes). Uses the kernel's <asm/termbits.h>, so this
 * file must not include glibc <termios.h>. */
#include "unit.h"

#include "termios_model.h"
#include "tty_ioctl.h"

#include <asm/ioctls.h>
#include <asm/termios.h>
#include <asm/termbits.h>
#include <errno.h>
#include <linux/serial.h>
#include <string.h>

static struct termios2 k2_of(const struct tm_termios2 *t)
{
	struct termios2 k;
	memcpy(&k, t, sizeof(k));
	return k;
}

START_TEST(test_init_defaults)
{
	struct tm_termios2 t;
	termios_model_init(&t, 115200);
	struct termios2 k = k2_of(&t);
	ck_assert_uint_eq(k.c_cflag & CBAUD, B115200);
	ck_assert_uint_eq(k.c_cflag & CSIZE, CS8);
	ck_assert(k.c_cflag & CREAD);
	ck_assert(k.c_cflag & CLOCAL);
	ck_assert(k.c_cflag & HUPCL);
	ck_assert_uint_eq(k.c_cc[VMIN], 1);
	ck_assert_uint_eq(k.c_cc[VTIME], 0);
	ck_assert_uint_eq(k.c_ispeed, 115200);
	ck_assert_uint_eq(k.c_ospeed, 115200);
	termios_model_init(&t, 250000); /* no Bxxx code: BOTHER */
	k = k2_of(&t);
	ck_assert_uint_eq(k.c_cflag & CBAUD, BOTHER);
	ck_assert_uint_eq(termios_model_ospeed(&t), 250000);
	ck_assert_uint_eq(termios_model_ispeed(&t), 250000);
}
END_TEST

START_TEST(test_readback_termios)
{
	struct tm_termios2 t;
	termios_model_init(&t, 9600);
	struct termios in;
	memset(&in, 0xA5, sizeof(in)); /* every byte significant, incl. c_line and c_cc */
	in.c_cflag = B921600 | CS7 | PARENB | PARODD | CSTOPB | CREAD | CLOCAL;
	in.c_line = 3;
	ck_assert_int_eq(termios_model_set(&t, &in, sizeof(in), 0), 0);
	struct termios out;
	memset(&out, 0, sizeof(out));
	ck_assert_int_eq(termios_model_get(&t, &out, sizeof(out), 0), 36);
	ck_assert_mem_eq(&in, &out, sizeof(in));
	ck_assert_uint_eq(termios_model_ospeed(&t), 921600);
	/* the *2 form of the same state shows the speeds */
	struct termios2 o2;
	ck_assert_int_eq(termios_model_get(&t, &o2, sizeof(o2), 1), 44);
	ck_assert_mem_eq(&in, &o2, 36);
	ck_assert_uint_eq(o2.c_ospeed, 921600);
	ck_assert_uint_eq(o2.c_ispeed, 921600);
}
END_TEST

START_TEST(test_readback_termios2_bother)
{
	struct tm_termios2 t;
	termios_model_init(&t, 115200);
	struct termios2 in;
	memset(&in, 0x5A, sizeof(in));
	in.c_cflag = BOTHER | (BOTHER << IBSHIFT) | CS8 | CREAD | CLOCAL;
	in.c_ispeed = 250000;
	in.c_ospeed = 250000;
	ck_assert_int_eq(termios_model_set(&t, &in, sizeof(in), 1), 0);
	struct termios2 out;
	ck_assert_int_eq(termios_model_get(&t, &out, sizeof(out), 1), 44);
	ck_assert_mem_eq(&in, &out, sizeof(in));
	ck_assert_uint_eq(termios_model_ospeed(&t), 250000);
	ck_assert_uint_eq(termios_model_ispeed(&t), 250000);
	/* old-form TCSETS with BOTHER keeps the stored explicit speed (set_termios()) */
	struct termios old;
	memcpy(&old, &out, sizeof(old));
	ck_assert_int_eq(termios_model_set(&t, &old, sizeof(old), 0), 0);
	ck_assert_uint_eq(termios_model_ospeed(&t), 250000);
	/* split speeds: input 9600 by code, output BOTHER */
	in.c_cflag = BOTHER | (B9600 << IBSHIFT) | CS8;
	in.c_ospeed = 123456;
	in.c_ispeed = 1;
	ck_assert_int_eq(termios_model_set(&t, &in, sizeof(in), 1), 0);
	ck_assert_uint_eq(termios_model_ospeed(&t), 123456);
	ck_assert_uint_eq(termios_model_ispeed(&t), 9600);
	ck_assert_int_eq(termios_model_get(&t, &out, sizeof(out), 1), 44);
	ck_assert_uint_eq(out.c_ispeed, 9600); /* recomputed from the code, as the kernel does */
}
END_TEST

START_TEST(test_readback_termios2_bxxx)
{
	struct tm_termios2 t;
	termios_model_init(&t, 115200);
	struct termios2 in;
	memset(&in, 0, sizeof(in));
	in.c_cflag = B57600 | CS8 | PARENB | CREAD;
	in.c_ispeed = 57600;
	in.c_ospeed = 57600;
	in.c_cc[VTIME] = 5;
	ck_assert_int_eq(termios_model_set(&t, &in, sizeof(in), 1), 0);
	struct termios2 out;
	termios_model_get(&t, &out, sizeof(out), 1);
	ck_assert_mem_eq(&in, &out, sizeof(in));
	/* a 36-byte read of the same */
	struct termios o1;
	termios_model_get(&t, &o1, sizeof(o1), 0);
	ck_assert_mem_eq(&in, &o1, sizeof(o1));
}
END_TEST

START_TEST(test_short_buffers)
{
	struct tm_termios2 t, before;
	termios_model_init(&t, 115200);
	before = t;
	uint8_t buf[44] = {0};
	ck_assert_int_eq(termios_model_set(&t, buf, 35, 0), -EINVAL);
	ck_assert_int_eq(termios_model_set(&t, buf, 43, 1), -EINVAL);
	ck_assert_int_eq(termios_model_set(&t, NULL, 44, 1), -EINVAL);
	ck_assert_mem_eq(&t, &before, sizeof(t));
	ck_assert_int_eq(termios_model_get(&t, buf, 35, 0), -EINVAL);
	ck_assert_int_eq(termios_model_get(&t, buf, 43, 1), -EINVAL);
}
END_TEST

START_TEST(test_speed_codes)
{
	static const struct {
		uint32_t code, baud;
	} tab[] = {{B0, 0},
	           {B50, 50},
	           {B300, 300},
	           {B9600, 9600},
	           {B19200, 19200},
	           {B38400, 38400},
	           {B57600, 57600},
	           {B115200, 115200},
	           {B230400, 230400},
	           {B460800, 460800},
	           {B500000, 500000},
	           {B921600, 921600},
	           {B1000000, 1000000},
	           {B1500000, 1500000},
	           {B2000000, 2000000},
	           {B3000000, 3000000},
	           {B4000000, 4000000}};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		ck_assert_uint_eq(termios_speed_from_code(tab[i].code), tab[i].baud);
		ck_assert_uint_eq(termios_code_from_speed(tab[i].baud), tab[i].code);
	}
	ck_assert_uint_eq(termios_speed_from_code(BOTHER), 0);
	ck_assert_uint_eq(termios_code_from_speed(250000), B0);
	ck_assert_uint_eq(termios_code_from_speed(12345), B0);
}
END_TEST

static struct termios_line line_of(uint32_t cflag)
{
	struct tm_termios2 t;
	termios_model_init(&t, 115200);
	struct termios k;
	memcpy(&k, &t, sizeof(k));
	k.c_cflag = cflag;
	ck_assert_int_eq(termios_model_set(&t, &k, sizeof(k), 0), 0);
	struct termios_line l;
	termios_model_line(&t, &l);
	return l;
}

START_TEST(test_line_mapping)
{
	struct termios_line l = line_of(B115200 | CS8 | PARENB | CREAD);
	ck_assert_uint_eq(l.baud, 115200);
	ck_assert_uint_eq(l.data_bits, 8);
	ck_assert_int_eq(l.parity, 'E');
	ck_assert_uint_eq(l.stop_bits, 1);

	l = line_of(B921600 | CS7 | PARENB | PARODD | CSTOPB);
	ck_assert_uint_eq(l.baud, 921600);
	ck_assert_uint_eq(l.data_bits, 7);
	ck_assert_int_eq(l.parity, 'O');
	ck_assert_uint_eq(l.stop_bits, 2);

	l = line_of(B9600 | CS8);
	ck_assert_int_eq(l.parity, 'N');
	l = line_of(B9600 | CS8 | PARODD); /* PARODD without PARENB: no parity */
	ck_assert_int_eq(l.parity, 'N');
	l = line_of(B9600 | CS8 | PARENB | CMSPAR | PARODD);
	ck_assert_int_eq(l.parity, 'M');
	l = line_of(B9600 | CS8 | PARENB | CMSPAR);
	ck_assert_int_eq(l.parity, 'S');
	l = line_of(B9600 | CS5);
	ck_assert_uint_eq(l.data_bits, 5);
	l = line_of(B9600 | CS6);
	ck_assert_uint_eq(l.data_bits, 6);
	l = line_of(B0 | CS8);
	ck_assert_uint_eq(l.baud, 0);

	struct termios_line a = line_of(B9600 | CS8), b = a;
	ck_assert(termios_line_equal(&a, &b));
	b.stop_bits = 2;
	ck_assert(!termios_line_equal(&a, &b));
}
END_TEST

START_TEST(test_flow_and_read_cfg)
{
	struct tm_termios2 t;
	termios_model_init(&t, 115200);
	struct termios k;
	memcpy(&k, &t, sizeof(k));
	k.c_iflag = 0;
	k.c_cflag = B115200 | CS8 | CRTSCTS;
	termios_model_set(&t, &k, sizeof(k), 0);
	ck_assert_int_eq(termios_model_flow(&t), TERMIOS_FLOW_HARDWARE);
	k.c_cflag = B115200 | CS8;
	k.c_iflag = IXON;
	termios_model_set(&t, &k, sizeof(k), 0);
	ck_assert_int_eq(termios_model_flow(&t), TERMIOS_FLOW_XONXOFF);
	k.c_iflag = IXOFF;
	termios_model_set(&t, &k, sizeof(k), 0);
	ck_assert_int_eq(termios_model_flow(&t), TERMIOS_FLOW_XONXOFF);
	k.c_iflag = ICRNL;
	k.c_lflag = 0;
	k.c_cc[VMIN] = 0;
	k.c_cc[VTIME] = 5;
	termios_model_set(&t, &k, sizeof(k), 0);
	ck_assert_int_eq(termios_model_flow(&t), TERMIOS_FLOW_NONE);
	struct termios_read_cfg rc;
	termios_model_read_cfg(&t, &rc);
	ck_assert_uint_eq(rc.vmin, 0);
	ck_assert_uint_eq(rc.vtime, 5);
	ck_assert_int_eq(rc.icanon, 0);
	ck_assert_int_eq(termios_model_hupcl(&t), 0);
}
END_TEST

/* stm32flash 0.7's request (57600 8E1, from research/stm32flash.md) round-trips bit for
 * bit through the legacy form, so its readback check passes. */
START_TEST(test_stm32flash_request)
{
	struct tm_termios2 t;
	termios_model_init(&t, 115200);
	struct termios k;
	termios_model_get(&t, &k, sizeof(k), 0);
	k.c_iflag = 0x10;
	k.c_oflag = 0;
	k.c_cflag = 0x19B1;
	k.c_lflag = 0x10;
	k.c_cc[VMIN] = 0;
	k.c_cc[VTIME] = 5;
	termios_model_set(&t, &k, sizeof(k), 0);
	struct termios back;
	termios_model_get(&t, &back, sizeof(back), 0);
	ck_assert_mem_eq(&k, &back, sizeof(k));
	struct termios_line l;
	termios_model_line(&t, &l);
	ck_assert_uint_eq(l.baud, 57600);
	ck_assert_uint_eq(l.data_bits, 8);
	ck_assert_int_eq(l.parity, 'E');
	ck_assert_uint_eq(l.stop_bits, 1);
}
END_TEST

START_TEST(test_ioctl_table)
{
	struct tty_ioc_desc d;
	ck_assert_int_eq(tty_ioctl_lookup(TCGETS, &d), TTY_IOC_TCGETS);
	ck_assert_uint_eq(d.out_size, 36);
	ck_assert_uint_eq(d.in_size, 0);
	ck_assert_int_eq(tty_ioctl_lookup(TCSETSF, &d), TTY_IOC_TCSETSF);
	ck_assert_uint_eq(d.in_size, 36);
	ck_assert_int_eq(tty_ioctl_lookup((uint32_t)TCGETS2, &d), TTY_IOC_TCGETS2);
	ck_assert_uint_eq(d.out_size, 44);
	ck_assert_int_eq(tty_ioctl_lookup((uint32_t)TCSETSW2, &d), TTY_IOC_TCSETSW2);
	ck_assert_uint_eq(d.in_size, 44);
	ck_assert_int_eq(tty_ioctl_lookup(TIOCMGET, &d), TTY_IOC_TIOCMGET);
	ck_assert_uint_eq(d.out_size, sizeof(int));
	ck_assert_int_eq(tty_ioctl_lookup(TIOCMBIS, &d), TTY_IOC_TIOCMBIS);
	ck_assert_uint_eq(d.in_size, sizeof(int));
	ck_assert_int_eq(tty_ioctl_lookup(TIOCINQ, &d), TTY_IOC_FIONREAD);
	ck_assert_int_eq(tty_ioctl_lookup(TCSBRKP, &d), TTY_IOC_TCSBRKP);
	ck_assert_uint_eq(d.in_size + d.out_size, 0);
	ck_assert_int_eq(tty_ioctl_lookup(TIOCGSERIAL, &d), TTY_IOC_TIOCGSERIAL);
	ck_assert_uint_eq(d.out_size, sizeof(struct serial_struct));
	ck_assert_int_eq(tty_ioctl_lookup(TIOCGICOUNT, &d), TTY_IOC_TIOCGICOUNT);
	ck_assert_uint_eq(d.out_size, sizeof(struct serial_icounter_struct));
	ck_assert_int_eq(tty_ioctl_lookup(TIOCGWINSZ, &d), TTY_IOC_TIOCGWINSZ);
	ck_assert_uint_eq(d.out_size, 8);
	ck_assert_int_eq(tty_ioctl_lookup(TIOCSCTTY, &d), TTY_IOC_UNKNOWN);
	ck_assert_int_eq(tty_ioctl_lookup(0xdeadbeef, &d), TTY_IOC_UNKNOWN);
	ck_assert_uint_eq(d.in_size + d.out_size, 0);

	struct serial_struct ss;
	ck_assert_int_eq(tty_ioctl_fill_serial(&ss, sizeof(ss), 0, 921600), (int)sizeof(ss));
	ck_assert_int_eq(ss.type, PORT_16550A);
	ck_assert_int_eq(ss.baud_base, 921600);
	ck_assert_int_eq(tty_ioctl_fill_serial(&ss, sizeof(ss) - 1, 0, 1), -EINVAL);
	struct tty_icount c = {.cts = 3, .rx = 7};
	struct serial_icounter_struct ic;
	ck_assert_int_eq(tty_ioctl_fill_icount(&ic, sizeof(ic), &c), (int)sizeof(ic));
	ck_assert_int_eq(ic.cts, 3);
	ck_assert_int_eq(ic.rx, 7);
	ck_assert_int_eq(tty_ioctl_fill_icount(&ic, 4, &c), -EINVAL);
	struct winsize ws;
	memset(&ws, 0xff, sizeof(ws));
	ck_assert_int_eq(tty_ioctl_fill_winsize(&ws, sizeof(ws)), 8);
	ck_assert_uint_eq(ws.ws_row + ws.ws_col, 0);
}
END_TEST

static Suite *termios_suite(void)
{
	Suite *s = suite_create("termios_model");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_init_defaults);
	tcase_add_test(tc, test_readback_termios);
	tcase_add_test(tc, test_readback_termios2_bother);
	tcase_add_test(tc, test_readback_termios2_bxxx);
	tcase_add_test(tc, test_short_buffers);
	tcase_add_test(tc, test_speed_codes);
	tcase_add_test(tc, test_line_mapping);
	tcase_add_test(tc, test_flow_and_read_cfg);
	tcase_add_test(tc, test_stm32flash_request);
	tcase_add_test(tc, test_ioctl_table);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(termios_suite)
