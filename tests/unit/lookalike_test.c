/* SPDX-License-Identifier: MIT */
/* Unit tests for firmware/core/lookalike.c: HTTP request lines on the plaintext ports. */
#include "lookalike.h"
#include "unit.h"

#include <string.h>

static int la(const char *s)
{
	return http_lookalike((const uint8_t *)s, strlen(s));
}

static const char *const http_lines[] = {
    "GET / HTTP/1.1\r\n",   "POST /x HTTP/1.1\r\n",   "PUT / HTTP/1.1\r\n",
    "HEAD / HTTP/1.0\r\n",  "OPTIONS * HTTP/1.1\r\n", "DELETE /a HTTP/1.1\r\n",
    "CONNECT h:1 HTTP/1.1", "PATCH / HTTP/1.1\r\n",
};

START_TEST(every_method_is_http)
{
	const char *l = http_lines[_i];
	ck_assert_int_eq(la(l), 1);
	/* every proper prefix up to the space: not decided yet */
	size_t sp = (size_t)(strchr(l, ' ') - l);
	for (size_t k = 0; k <= sp; k++)
		ck_assert_int_eq(http_lookalike((const uint8_t *)l, k), -1);
	ck_assert_int_eq(http_lookalike((const uint8_t *)l, sp + 1), 1);
}
END_TEST

START_TEST(serial_traffic_is_not_http)
{
	static const uint8_t iac[] = {0xFF, 0xFB, 0x2C}; /* IAC WILL COM-PORT-OPTION */
	static const uint8_t sync[] = {0x7F};            /* AN3155 sync */
	static const uint8_t tls[] = {0x16, 0x03, 0x01}; /* TLS handshake record */
	ck_assert_int_eq(http_lookalike(iac, sizeof(iac)), 0);
	ck_assert_int_eq(http_lookalike(sync, sizeof(sync)), 0);
	ck_assert_int_eq(http_lookalike(tls, sizeof(tls)), 0);
	ck_assert_int_eq(la("r"), 0); /* legacy control commands */
	ck_assert_int_eq(la("u\n"), 0);
	ck_assert_int_eq(la("e"), 0);
	ck_assert_int_eq(la("hello\r\n"), 0);
	ck_assert_int_eq(la("get / HTTP/1.1"), 0); /* methods are case-sensitive */
	ck_assert_int_eq(la("GETX"), 0);
	ck_assert_int_eq(la("GET\r\n"), 0);
	ck_assert_int_eq(la("POS\n"), 0);
	ck_assert_int_eq(la("OPTIONS\t"), 0);
	ck_assert_int_eq(la("P"), -1); /* POST, PUT, PATCH */
	ck_assert_int_eq(la("PA"), -1);
	ck_assert_int_eq(la("PAX"), 0);
	ck_assert_int_eq(http_lookalike(NULL, 0), -1);
}
END_TEST

START_TEST(decided_within_max)
{
	/* a long line: only the first HTTP_LOOKALIKE_MAX bytes count */
	char buf[4096];
	memset(buf, 'A', sizeof(buf));
	memcpy(buf, "OPTIONS ", 8);
	ck_assert_int_eq(http_lookalike((const uint8_t *)buf, sizeof(buf)), 1);
	memcpy(buf, "OPTIONSX", 8);
	ck_assert_int_eq(http_lookalike((const uint8_t *)buf, sizeof(buf)), 0);
	/* every byte string of HTTP_LOOKALIKE_MAX bytes is decided */
	for (unsigned c = 0; c < 256; c++) {
		memset(buf, (int)c, HTTP_LOOKALIKE_MAX);
		ck_assert_int_ge(http_lookalike((const uint8_t *)buf, HTTP_LOOKALIKE_MAX), 0);
	}
	ck_assert_ptr_nonnull(strstr(http_lookalike_answer, "400"));
	ck_assert_ptr_nonnull(strstr(http_lookalike_answer, "\r\n\r\n"));
}
END_TEST

static Suite *lookalike_suite(void)
{
	Suite *s = suite_create("lookalike");
	TCase *tc = tcase_create("core");
	tcase_add_loop_test(tc, every_method_is_http, 0,
	                    (int)(sizeof(http_lines) / sizeof(http_lines[0])));
	tcase_add_test(tc, serial_traffic_is_not_http);
	tcase_add_test(tc, decided_within_max);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(lookalike_suite)
