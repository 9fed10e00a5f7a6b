/* SPDX-License-Identifier: MIT */
/* firmware/core/ihex.c: records, extended addresses, feeding in pieces of any size,
 * backpressure (pending data), every error with its line number. */
#include "ihex.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Decoded image: bytes at absolute addresses, collected in order. */
static uint8_t img[4096];
static uint32_t img_addr[4096];
static size_t img_len;

/* Feed text in pieces of `step` bytes, taking at most `take` data bytes per ihex_data call.
 * Returns ihex_finish()'s result. */
static int decode(struct ihex *h, const char *text, size_t step, size_t take)
{
	ihex_init(h);
	img_len = 0;
	size_t n = strlen(text), pos = 0;
	int guard = 0;
	while (pos < n) {
		ck_assert_int_lt(guard++, 100000);
		size_t len = n - pos < step ? n - pos : step;
		size_t k = ihex_feed(h, (const uint8_t *)text + pos, len);
		pos += k;
		uint32_t a;
		const uint8_t *d;
		size_t m;
		while ((m = ihex_data(h, &a, &d)) != 0) {
			ck_assert_uint_eq(ihex_feed(h, (const uint8_t *)"x", 1), 0); /* held */
			if (m > take)
				m = take;
			for (size_t i = 0; i < m; i++) {
				ck_assert_uint_lt(img_len, sizeof(img));
				img[img_len] = d[i];
				img_addr[img_len++] = a + (uint32_t)i;
			}
			ihex_take(h, m);
		}
	}
	return ihex_finish(h);
}

static const char sample[] = ":020000040800F2\r\n"
                             ":10000000000400202901000839010008410100080E\r\n"
                             ":04001000DEADBEEFB4\r\n"
                             ":0400000508000129C5\r\n"
                             ":00000001FF\r\n";

START_TEST(records_any_piece_size)
{
	struct ihex h;
	static const uint8_t want[20] = {0x00, 0x04, 0x00, 0x20, 0x29, 0x01, 0x00,
	                                 0x08, 0x39, 0x01, 0x00, 0x08, 0x41, 0x01,
	                                 0x00, 0x08, 0xDE, 0xAD, 0xBE, 0xEF};
	size_t steps[] = {1, 2, 3, 7, 16, 1000};
	size_t takes[] = {1, 5, 300};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		for (size_t j = 0; j < sizeof(takes) / sizeof(takes[0]); j++) {
			ck_assert_int_eq(decode(&h, sample, steps[i], takes[j]), 0);
			ck_assert_uint_eq(img_len, 20);
			ck_assert_mem_eq(img, want, 20);
			for (size_t k = 0; k < 20; k++)
				ck_assert_uint_eq(img_addr[k], 0x08000000u + k);
			ck_assert_int_eq(ihex_done(&h), 1);
			ck_assert_str_eq(ihex_error(&h), "");
		}
}
END_TEST

START_TEST(segment_and_lower_case)
{
	struct ihex h;
	/* type 02: base 0x1000 * 16 = 0x10000; LF only, blanks, lower-case digits */
	const char *t = ":020000021000ec\n  :0300100001020 3e7\n:00000001ff\n";
	ck_assert_int_eq(decode(&h, t, 5, 300), -EINVAL); /* blank inside a record */
	ck_assert_str_eq(ihex_error(&h), "Intel HEX line 2: character that is not a hex digit");
	t = ":020000021000ec\n\t:03001000010203e7\n:00000001ff\n";
	ck_assert_int_eq(decode(&h, t, 5, 300), 0);
	ck_assert_uint_eq(img_len, 3);
	ck_assert_uint_eq(img_addr[0], 0x10010);
	ck_assert_uint_eq(img[2], 3);
	/* a record crossing the segment's end */
	t = ":020000021000EC\n:02FFFF00AABB9B\n:00000001FF\n";
	ck_assert_int_eq(decode(&h, t, 64, 300), -EINVAL);
	ck_assert(strstr(ihex_error(&h), "line 2: data record crosses") != NULL);
}
END_TEST

START_TEST(errors_with_line_numbers)
{
	struct ihex h;
	/* checksum */
	ck_assert_int_eq(decode(&h, ":020000040800F2\n:0400100001020304E1\n", 4, 300), -EINVAL);
	ck_assert_str_eq(ihex_error(&h), "Intel HEX line 2: checksum mismatch");
	ck_assert_int_eq(ihex_failed(&h), 1);
	/* no EOF record: truncated file */
	ck_assert_int_eq(decode(&h, ":0400100001020304E2\n", 4, 300), -EINVAL);
	ck_assert(strstr(ihex_error(&h), "no end-of-file record") != NULL);
	/* cut inside a record */
	ck_assert_int_eq(decode(&h, ":0400100001020304E2\n:04001400010", 4, 300), -EINVAL);
	ck_assert(strstr(ihex_error(&h), "line 2: file ends inside a record") != NULL);
	/* line break inside a record */
	ck_assert_int_eq(decode(&h, ":04001000010203\n04E2\n", 4, 300), -EINVAL);
	ck_assert_str_eq(ihex_error(&h), "Intel HEX line 1: record shorter than its length");
	/* garbage between records */
	ck_assert_int_eq(decode(&h, ":0400100001020304E2\nhello\n", 100, 300), -EINVAL);
	ck_assert_str_eq(ihex_error(&h), "Intel HEX line 2: unexpected character outside a record");
	/* unknown type, wrong extended-address length, EOF with data */
	ck_assert_int_eq(decode(&h, ":00000006FA\n", 100, 300), -EINVAL);
	ck_assert_str_eq(ihex_error(&h), "Intel HEX line 1: unknown record type 06");
	ck_assert_int_eq(decode(&h, ":0100000408F3\n", 100, 300), -EINVAL);
	ck_assert(strstr(ihex_error(&h), "extended address record") != NULL);
	ck_assert_int_eq(decode(&h, ":01000001AA54\n", 100, 300), -EINVAL);
	ck_assert(strstr(ihex_error(&h), "end-of-file record with data") != NULL);
	/* data beyond 4 GiB */
	ck_assert_int_eq(decode(&h, ":02000004FFFFFC\n:02FFFF00AABB9B\n:00000001FF\n", 100, 300),
	                 -EINVAL);
	ck_assert(strstr(ihex_error(&h), "4 GiB") != NULL);
	/* no data pending after an error; feeding consumes without effect */
	uint32_t a;
	const uint8_t *d;
	ck_assert_uint_eq(ihex_data(&h, &a, &d), 0);
	ck_assert_uint_eq(ihex_feed(&h, (const uint8_t *)":00", 3), 3);
}
END_TEST

START_TEST(after_eof_and_empty_records)
{
	struct ihex h;
	/* a zero-length data record yields nothing; blanks and line breaks may follow EOF */
	ck_assert_int_eq(decode(&h, ":00001000F0\n:00000001FF\r\n \t\r\n\n", 3, 300), 0);
	ck_assert_uint_eq(img_len, 0);
	ck_assert_int_eq(ihex_done(&h), 1);
	/* anything else after EOF is an error, in any piece size: two files concatenated
	 * (cat a.hex b.hex) must not lose the second one silently */
	static const char two[] = ":0400100001020304E2\n:00000001FF\n"
	                          ":0400200001020304D2\n:00000001FF\n";
	size_t steps[] = {1, 5, 1000};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		ck_assert_int_eq(decode(&h, two, steps[i], 300), -EINVAL);
		ck_assert_str_eq(ihex_error(&h),
		                 "Intel HEX line 3: data after the end-of-file record");
		ck_assert_uint_eq(img_len, 4); /* the first file's data came out */
	}
	ck_assert_int_eq(decode(&h, ":00000001FF garbage\n", 100, 300), -EINVAL);
	ck_assert_str_eq(ihex_error(&h), "Intel HEX line 1: data after the end-of-file record");
	/* a 255-byte record */
	char big[600];
	uint8_t sum = 0; /* length 0xFF + address 0x01 0x00 + type 0 = 0x100 */
	size_t n = (size_t)snprintf(big, sizeof(big), ":FF010000");
	for (int i = 0; i < 255; i++) {
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%02X", i);
		sum = (uint8_t)(sum + i);
	}
	snprintf(big + n, sizeof(big) - n, "%02X\n:00000001FF\n", (uint8_t)(0x100 - sum));
	ck_assert_int_eq(decode(&h, big, 11, 17), 0);
	ck_assert_uint_eq(img_len, 255);
	ck_assert_uint_eq(img_addr[0], 0x100);
	ck_assert_uint_eq(img[254], 254);
	ck_assert_uint_eq(img_addr[254], 0x100 + 254);
}
END_TEST

static Suite *ihex_suite(void)
{
	Suite *s = suite_create("ihex");
	TCase *tc = tcase_create("decode");
	tcase_add_test(tc, records_any_piece_size);
	tcase_add_test(tc, segment_and_lower_case);
	tcase_add_test(tc, errors_with_line_numbers);
	tcase_add_test(tc, after_eof_and_empty_records);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(ihex_suite)
