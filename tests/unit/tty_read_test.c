/* SPDX-License-Identifier: MIT */
/* Unit tests of daemon/tty_read.c: the rx ring and the VMIN/VTIME read rules of termios(3),
 * driven with fake time (milliseconds). */
#include "unit.h"

#include "tty_read.h"

#include <stdlib.h>
#include <string.h>

static struct tty_ring *ring_new(void)
{
	struct tty_ring *r = malloc(sizeof(*r));
	ck_assert_ptr_nonnull(r);
	tty_ring_clear(r);
	return r;
}

START_TEST(test_ring_wrap_and_bounds)
{
	struct tty_ring *r = ring_new();
	static uint8_t big[TTY_RING_SIZE + 10];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	ck_assert_uint_eq(tty_ring_space(r), TTY_RING_SIZE);
	ck_assert_uint_eq(tty_ring_push(r, big, sizeof(big)), TTY_RING_SIZE);
	ck_assert_uint_eq(tty_ring_space(r), 0);
	ck_assert_uint_eq(tty_ring_push(r, big, 1), 0);
	uint8_t out[100];
	ck_assert_uint_eq(tty_ring_pop(r, out, 100), 100);
	ck_assert_mem_eq(out, big, 100);
	/* wrap around */
	ck_assert_uint_eq(tty_ring_push(r, big + 500, 60), 60);
	ck_assert_uint_eq(tty_ring_pop(r, NULL, TTY_RING_SIZE - 100), TTY_RING_SIZE - 100);
	ck_assert_uint_eq(r->len, 60);
	ck_assert_uint_eq(tty_ring_pop(r, out, 100), 60);
	ck_assert_mem_eq(out, big + 500, 60);
	ck_assert_uint_eq(tty_ring_pop(r, out, 1), 0);
	free(r);
}
END_TEST

static enum tty_read_verdict dec(const struct tty_read_req *r, size_t avail, uint64_t now,
                                 size_t *take, uint64_t *dl)
{
	return tty_read_decide(r, avail, now, take, dl);
}

/* MIN = 0, TIME = 0: return at once, possibly 0 bytes; also with O_NONBLOCK. */
START_TEST(test_min0_time0)
{
	struct tty_read_req r;
	size_t take;
	uint64_t dl;
	tty_read_begin(&r, 0, 0, 0, 0, 10, 1000);
	ck_assert_int_eq(dec(&r, 0, 1000, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 0);
	ck_assert_int_eq(dec(&r, 25, 1000, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 10);
	tty_read_begin(&r, 0, 0, 0, 1, 10, 1000);
	ck_assert_int_eq(dec(&r, 0, 1000, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 0);
}
END_TEST

/* MIN > 0, TIME = 0: block until min(MIN, count) bytes; no deadline. */
START_TEST(test_min_gt0_time0)
{
	struct tty_read_req r;
	size_t take;
	uint64_t dl;
	tty_read_begin(&r, 4, 0, 0, 0, 100, 0);
	ck_assert_int_eq(dec(&r, 0, 0, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, TTY_READ_NO_DEADLINE);
	ck_assert_int_eq(dec(&r, 3, 99999, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, TTY_READ_NO_DEADLINE);
	ck_assert_int_eq(dec(&r, 4, 99999, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 4);
	ck_assert_int_eq(dec(&r, 50, 1, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 50); /* everything there, up to count */
	/* count smaller than MIN: satisfied by count bytes */
	tty_read_begin(&r, 10, 0, 0, 0, 2, 0);
	ck_assert_int_eq(dec(&r, 2, 0, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 2);
	/* O_NONBLOCK: what is there, else EAGAIN */
	tty_read_begin(&r, 4, 0, 0, 1, 100, 0);
	ck_assert_int_eq(dec(&r, 0, 0, &take, &dl), TTY_READ_EAGAIN);
	ck_assert_int_eq(dec(&r, 2, 0, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 2);
}
END_TEST

/* MIN = 0, TIME > 0: overall timeout (stm32flash: VTIME 5 = 0.5 s). */
START_TEST(test_min0_time_gt0)
{
	struct tty_read_req r;
	size_t take;
	uint64_t dl;
	tty_read_begin(&r, 0, 5, 0, 0, 1, 1000);
	ck_assert_int_eq(dec(&r, 0, 1000, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, 1500);
	ck_assert_int_eq(dec(&r, 0, 1499, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, 1500);
	ck_assert_int_eq(dec(&r, 0, 1500, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 0); /* timeout: read returns 0 */
	/* a byte before the timeout returns at once */
	ck_assert_int_eq(dec(&r, 1, 1200, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 1);
	tty_read_begin(&r, 0, 5, 0, 0, 64, 1000);
	ck_assert_int_eq(dec(&r, 3, 1001, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 3);
	/* O_NONBLOCK: EAGAIN when empty */
	tty_read_begin(&r, 0, 5, 0, 1, 64, 1000);
	ck_assert_int_eq(dec(&r, 0, 1000, &take, &dl), TTY_READ_EAGAIN);
}
END_TEST

/* MIN > 0, TIME > 0: no timeout before the first byte; then an inter-byte timer. */
START_TEST(test_min_gt0_time_gt0)
{
	struct tty_read_req r;
	size_t take;
	uint64_t dl;
	tty_read_begin(&r, 10, 2, 0, 0, 100, 0);
	ck_assert_int_eq(dec(&r, 0, 5000, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, TTY_READ_NO_DEADLINE);
	tty_read_on_rx(&r, 6000); /* first bytes at t=6000 */
	ck_assert_int_eq(dec(&r, 3, 6000, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, 6200);
	tty_read_on_rx(&r, 6150); /* more bytes restart the timer */
	ck_assert_int_eq(dec(&r, 5, 6199, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, 6350);
	ck_assert_int_eq(dec(&r, 5, 6350, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 5); /* timer expired: what is there */
	ck_assert_int_eq(dec(&r, 10, 6160, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 10); /* MIN reached before the timer */
	/* bytes already buffered when the read starts: timer runs from the start */
	tty_read_begin(&r, 10, 2, 0, 0, 100, 7000);
	ck_assert_int_eq(dec(&r, 4, 7000, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, 7200);
	ck_assert_int_eq(dec(&r, 4, 7200, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 4);
}
END_TEST

/* ICANON is not emulated: treated as MIN 1, TIME 0. */
START_TEST(test_icanon_raw)
{
	struct tty_read_req r;
	size_t take;
	uint64_t dl;
	tty_read_begin(&r, 0, 5, 1, 0, 100, 0);
	ck_assert_int_eq(dec(&r, 0, 100000, &take, &dl), TTY_READ_WAIT);
	ck_assert_uint_eq(dl, TTY_READ_NO_DEADLINE);
	ck_assert_int_eq(dec(&r, 1, 100000, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 1);
}
END_TEST

START_TEST(test_count_zero_and_poll)
{
	struct tty_read_req r;
	size_t take;
	uint64_t dl;
	tty_read_begin(&r, 5, 0, 0, 0, 0, 0);
	ck_assert_int_eq(dec(&r, 0, 0, &take, &dl), TTY_READ_NOW);
	ck_assert_uint_eq(take, 0);
	ck_assert_uint_eq(tty_read_poll_threshold(0, 5, 0), 1);
	ck_assert_uint_eq(tty_read_poll_threshold(0, 0, 0), 1);
	ck_assert_uint_eq(tty_read_poll_threshold(7, 0, 0), 7);
	ck_assert_uint_eq(tty_read_poll_threshold(7, 1, 0), 1);
	ck_assert_uint_eq(tty_read_poll_threshold(7, 0, 1), 1);
}
END_TEST

static Suite *tty_read_suite(void)
{
	Suite *s = suite_create("tty_read");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_ring_wrap_and_bounds);
	tcase_add_test(tc, test_min0_time0);
	tcase_add_test(tc, test_min_gt0_time0);
	tcase_add_test(tc, test_min0_time_gt0);
	tcase_add_test(tc, test_min_gt0_time_gt0);
	tcase_add_test(tc, test_icanon_raw);
	tcase_add_test(tc, test_count_zero_and_poll);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(tty_read_suite)
