/* SPDX-License-Identifier: MIT */
/* firmware/crypto/unit_key.c: generate -> format -> parse round trips, the accepted
 * variants (CRLF, comments, blanks, upper-case hex, no final newline) and every refusal
 * with its line and reason (short key, non-hex, missing lines, overlong identity, ...). */
#include "unit.h"
#include "unit_key.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int counter_entropy(void *ctx, uint8_t *buf, size_t n)
{
	uint8_t *c = ctx;
	for (size_t i = 0; i < n; i++)
		buf[i] = (*c)++;
	return 0;
}

static int failing_entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	memset(buf, 0xAA, n);
	return -EAGAIN;
}

static int zero_entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	memset(buf, 0, n);
	return 0;
}

static const char good[] = "# espstm unit key for bench1 (secret; mode 0600)\n"
                           "identity espstm-0123456789abcdef\n"
                           "key 000102030405060708090a0b0c0d0e0f"
                           "101112131415161718191a1b1c1d1e1f\n";

static int parse(const char *text, struct tls_psk *k, char *err, size_t errlen)
{
	return unit_key_parse(text, strlen(text), k, err, errlen);
}

START_TEST(parse_good)
{
	struct tls_psk k;
	char err[128];
	ck_assert_int_eq(parse(good, &k, err, sizeof(err)), 0);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(k.identity, "espstm-0123456789abcdef");
	for (int i = 0; i < 32; i++)
		ck_assert_uint_eq(k.key[i], i);
}
END_TEST

START_TEST(parse_variants)
{
	static const char *ok[] = {
	    /* CRLF line ends */
	    "# c\r\nidentity espstm-0123456789abcdef\r\nkey "
	    "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F\r\n",
	    /* key first, blanks and tabs, blank lines, no final newline */
	    "\n  key\t000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f  \n\n"
	    "\tidentity   espstm-0123456789abcdef",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct tls_psk k;
		char err[128];
		ck_assert_msg(parse(ok[i], &k, err, sizeof(err)) == 0, "%zu: %s", i, err);
		ck_assert_str_eq(k.identity, "espstm-0123456789abcdef");
		ck_assert_uint_eq(k.key[10], 10);
		ck_assert_uint_eq(k.key[31], 31);
	}
}
END_TEST

START_TEST(parse_refusals)
{
	static const struct {
		const char *text, *err;
	} bad[] = {
	    {"identity espstm-0123456789abcdef\n"
	     "key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n",
	     "line 2: key must be 64 hex digits (got 63)"},
	    {"identity espstm-0123456789abcdef\n"
	     "key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0\n",
	     "line 2: key must be 64 hex digits (got 65)"},
	    {"identity espstm-0123456789abcdef\n"
	     "key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n",
	     "line 2: key has a character that is not a hex digit"},
	    {"identity espstm-0123456789abcdef\n"
	     "key 0000000000000000000000000000000000000000000000000000000000000000\n",
	     "line 2: key is all zeros"},
	    {"# only a comment\nidentity espstm-0123456789abcdef\n", "no 'key' line"},
	    {"key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	     "no 'identity' line"},
	    {"", "no 'identity' line"},
	    {"identity espstm-0123456789abcdef0123456789abcdef01\n", /* 41 characters */
	     "line 1: identity is longer than 40 characters"},
	    {"identity espstm/0123\n",
	     "line 1: identity has a character outside A-Z a-z 0-9 . _ -"},
	    {"identity\n", "line 1: identity is empty"},
	    {"identity a\nidentity b\n", "line 2: identity given twice"},
	    {"identity a b\n", "line 1: more than one word after 'identity'"},
	    {"identity a\r\r\n", "no 'key' line"}, /* trailing CRs and blanks go */
	    {"identity a\rkey 00\n", "line 1: more than one word after 'identity'"},
	    {"password hunter2\n", "line 1: expected 'identity NAME' or 'key HEX' or a # comment"},
	    {"[device]\n", "line 1: expected 'identity NAME' or 'key HEX' or a # comment"},
	    {"key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
	     "key 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	     "line 2: key given twice"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tls_psk k;
		char err[128];
		memset(&k, 0x55, sizeof(k));
		ck_assert_int_eq(parse(bad[i].text, &k, err, sizeof(err)), -EINVAL);
		ck_assert_str_eq(err, bad[i].err);
		static const struct tls_psk zero;
		ck_assert_mem_eq(&k, &zero, sizeof(k)); /* nothing half-read */
	}
}
END_TEST

START_TEST(parse_nul_and_size)
{
	struct tls_psk k;
	char err[128];
	static const char with_nul[] = "identity espstm-01\0x\nkey 00\n";
	ck_assert_int_eq(unit_key_parse(with_nul, sizeof(with_nul) - 1, &k, err, sizeof(err)),
	                 -EINVAL);
	ck_assert_str_eq(err, "line 1: NUL byte");
	static char big[UNIT_KEY_TEXT_MAX + 2];
	memset(big, '#', sizeof(big));
	ck_assert_int_eq(unit_key_parse(big, sizeof(big), &k, err, sizeof(err)), -EINVAL);
	ck_assert_str_eq(err, "longer than 4096 bytes: not a unit key file");
	/* the message truncated to a small buffer, and no buffer at all */
	char small[8];
	ck_assert_int_eq(parse("identity\n", &k, small, sizeof(small)), -EINVAL);
	ck_assert_str_eq(small, "line 1:");
	ck_assert_int_eq(parse("identity\n", &k, NULL, 0), -EINVAL);
	ck_assert_int_eq(parse(good, &k, NULL, 0), 0);
}
END_TEST

START_TEST(format_exact_text)
{
	struct tls_psk k;
	ck_assert_int_eq(parse(good, &k, NULL, 0), 0);
	char buf[256];
	int n =
	    unit_key_format(&k, "espstm unit key for bench1 (secret; mode 0600)", buf, sizeof(buf));
	ck_assert_int_eq(n, (int)strlen(good));
	ck_assert_str_eq(buf, good);
	n = unit_key_format(&k, NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, strchr(good, '\n') + 1);
	ck_assert_int_eq(n, (int)strlen(buf));
	/* exactly big enough, one byte short */
	ck_assert_int_eq(unit_key_format(&k, NULL, buf, (size_t)n + 1), n);
	ck_assert_int_eq(unit_key_format(&k, NULL, buf, (size_t)n), -ENOSPC);
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(unit_key_format(&k, "two\nlines", buf, sizeof(buf)), -EINVAL);
	strcpy(k.identity, "bad identity");
	ck_assert_int_eq(unit_key_format(&k, NULL, buf, sizeof(buf)), -EINVAL);
	k.identity[0] = '\0';
	ck_assert_int_eq(unit_key_format(&k, NULL, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(generate_format_parse_round_trip)
{
	uint8_t c = 0xF0;
	struct tls_psk a, b, back;
	ck_assert_int_eq(unit_key_generate(&a, counter_entropy, &c), 0);
	ck_assert_str_eq(a.identity, "espstm-f0f1f2f3f4f5f6f7");
	ck_assert_uint_eq(a.key[0], 0xF8);
	ck_assert_uint_eq(a.key[31], (uint8_t)(0xF8 + 31));
	ck_assert_int_eq(unit_key_generate(&b, counter_entropy, &c), 0);
	ck_assert_str_ne(a.identity, b.identity);
	ck_assert_int_ne(memcmp(a.key, b.key, sizeof(a.key)), 0);
	char buf[256], err[128];
	int n = unit_key_format(&a, "espstm unit key for x (secret; mode 0600)", buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(unit_key_parse(buf, (size_t)n, &back, err, sizeof(err)), 0);
	ck_assert_str_eq(back.identity, a.identity);
	ck_assert_mem_eq(back.key, a.key, sizeof(a.key));
}
END_TEST

START_TEST(generate_entropy_failures)
{
	struct tls_psk k;
	static const struct tls_psk zero;
	ck_assert_int_eq(unit_key_generate(&k, failing_entropy, NULL), -EAGAIN);
	ck_assert_mem_eq(&k, &zero, sizeof(k));
	ck_assert_int_eq(unit_key_generate(&k, zero_entropy, NULL), -EIO); /* never a zero key */
	ck_assert_mem_eq(&k, &zero, sizeof(k));
}
END_TEST

static Suite *unit_key_suite(void)
{
	Suite *s = suite_create("unit_key");
	TCase *tc = tcase_create("file");
	tcase_add_test(tc, parse_good);
	tcase_add_test(tc, parse_variants);
	tcase_add_test(tc, parse_refusals);
	tcase_add_test(tc, parse_nul_and_size);
	tcase_add_test(tc, format_exact_text);
	tcase_add_test(tc, generate_format_parse_round_trip);
	tcase_add_test(tc, generate_entropy_failures);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(unit_key_suite)
