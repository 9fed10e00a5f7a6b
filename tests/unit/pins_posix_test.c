/* SPDX-License-Identifier: MIT */
/* firmware/posix/pins_posix.c: --nrst/--boot0 spellings, and the backends that need no
 * hardware: DTR/RTS on a tty without modem lines (a pty: warning, no error, set does
 * nothing), GPIO chips and line names that do not exist (clear error). Real GPIO lines
 * are checked with gpio-sim in the VM (not here). */
#include "pins_posix.h"
#include "unit.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(parse_good)
{
	struct pin_spec p;
	ck_assert_int_eq(pins_posix_parse("none", &p), 0);
	ck_assert_int_eq(p.kind, PIN_NONE);
	ck_assert_int_eq(pins_posix_parse("dtr", &p), 0);
	ck_assert_int_eq(p.kind, PIN_DTR);
	ck_assert_int_eq(pins_posix_parse("rts", &p), 0);
	ck_assert_int_eq(p.kind, PIN_RTS);
	ck_assert_int_eq(p.invert, 0);
	ck_assert_int_eq(pins_posix_parse("gpiochip0:17", &p), 0);
	ck_assert_int_eq(p.kind, PIN_GPIO);
	ck_assert_str_eq(p.chip, "gpiochip0");
	ck_assert_int_eq(p.offset, 17);
	ck_assert_int_eq(pins_posix_parse("/dev/gpiochip2:0", &p), 0);
	ck_assert_str_eq(p.chip, "/dev/gpiochip2");
	ck_assert_int_eq(p.offset, 0);
	ck_assert_int_eq(pins_posix_parse("NRST_LINE_NAME", &p), 0);
	ck_assert_int_eq(p.kind, PIN_GPIO);
	ck_assert_int_eq(p.offset, -1);
	ck_assert_str_eq(p.name, "NRST_LINE_NAME");
	/* a colon without a number after it: a name */
	ck_assert_int_eq(pins_posix_parse("PA:B", &p), 0);
	ck_assert_int_eq(p.offset, -1);
	ck_assert_str_eq(p.name, "PA:B");
	ck_assert_int_eq(pins_posix_parse("gpiochip0:65535", &p), 0);
	ck_assert_int_eq(p.offset, 65535);
}
END_TEST

static const char *const bad[] = {
    "",
    ":17",
    "gpiochip0:65536",
    "gpiochip0:999999",
    "a_line_name_that_is_far_too_long_for_the_buffer_of_sixty_four_ch",
};

START_TEST(parse_bad)
{
	struct pin_spec p;
	ck_assert_int_eq(pins_posix_parse(bad[_i], &p), -EINVAL);
}
END_TEST

START_TEST(modem_lines_on_a_pty)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(m, 0);
	ck_assert_int_eq(grantpt(m), 0);
	ck_assert_int_eq(unlockpt(m), 0);
	int fd = open(ptsname(m), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(fd, 0);
	struct pin_spec s;
	struct pin_out p;
	char err[200];
	ck_assert_int_eq(pins_posix_parse("dtr", &s), 0);
	ck_assert_int_eq(pins_posix_open(&p, &s, 1, fd, 1, err, sizeof(err)), 0);
	ck_assert_int_eq(p.modem_ok, 0);
	ck_assert_ptr_nonnull(strstr(err, "no modem lines"));
	ck_assert_ptr_nonnull(strstr(err, "NRST"));
	ck_assert_int_eq(pins_posix_set(&p, 0), 0);
	pins_posix_close(&p);
	/* not a tty at all: TIOCMGET fails the same way */
	int nul = open("/dev/null", O_RDWR);
	ck_assert_int_eq(pins_posix_parse("rts", &s), 0);
	ck_assert_int_eq(pins_posix_open(&p, &s, 0, nul, 0, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "RTS"));
	ck_assert_ptr_nonnull(strstr(err, "BOOT0"));
	pins_posix_close(&p);
	close(nul);
	close(fd);
	close(m);
}
END_TEST

START_TEST(gpio_missing)
{
	struct pin_spec s;
	struct pin_out p;
	char err[200];
	ck_assert_int_eq(pins_posix_parse("gpiochip-espstm-none:3", &s), 0);
	ck_assert_int_lt(pins_posix_open(&p, &s, 1, -1, 1, err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "gpiochip-espstm-none"));
	ck_assert_ptr_null(p.line);
	pins_posix_close(&p);
	ck_assert_int_eq(pins_posix_parse("ESPSTM_NO_SUCH_LINE", &s), 0);
	ck_assert_int_eq(pins_posix_open(&p, &s, 0, -1, 0, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "ESPSTM_NO_SUCH_LINE"));
	ck_assert_int_eq(pins_posix_set(&p, 1), 0); /* nothing requested: nothing done */
	pins_posix_close(&p);
}
END_TEST

START_TEST(none_does_nothing)
{
	struct pin_spec s;
	struct pin_out p;
	char err[64];
	ck_assert_int_eq(pins_posix_parse("none", &s), 0);
	ck_assert_int_eq(pins_posix_open(&p, &s, 1, -1, 1, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(p.desc, "none");
	ck_assert_int_eq(pins_posix_set(&p, 0), 0);
	pins_posix_close(&p);
}
END_TEST

static Suite *pins_posix_suite(void)
{
	Suite *s = suite_create("pins_posix");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, parse_good);
	tcase_add_loop_test(tc, parse_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, modem_lines_on_a_pty);
	tcase_add_test(tc, gpio_missing);
	tcase_add_test(tc, none_does_nothing);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(pins_posix_suite)
