/* SPDX-License-Identifier: MIT */
/* firmware/core/allowlist.c: --allow parsing (good and bad entries) and matching. */
#include "allowlist.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define IP(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((c) << 8) | (d))

START_TEST(parse_good)
{
	struct allowlist al;
	char err[128], txt[200];
	allowlist_init(&al);
	ck_assert_int_eq(allowlist_parse(&al, "127.0.0.1", err, sizeof(err)), 0);
	ck_assert_uint_eq(al.count, 1);
	ck_assert_uint_eq(al.e[0].addr, IP(127, 0, 0, 1));
	ck_assert_uint_eq(al.e[0].prefix, 32);
	ck_assert_uint_eq(al.e[0].mask, 0xFFFFFFFFu);
	ck_assert_int_eq(allowlist_parse(&al, "10.0.0.0/8,192.168.1.0/24,0.0.0.0/0,1.2.3.4/32", err,
	                                 sizeof(err)),
	                 0);
	ck_assert_uint_eq(al.count, 4);
	ck_assert_uint_eq(al.e[0].mask, 0xFF000000u);
	ck_assert_uint_eq(al.e[2].mask, 0);
	ck_assert_str_eq(allowlist_format(&al, txt, sizeof(txt)),
	                 "10.0.0.0/8,192.168.1.0/24,0.0.0.0/0,1.2.3.4/32");
	/* host bits after the prefix are masked off */
	ck_assert_int_eq(allowlist_parse(&al, "10.1.2.3/8", err, sizeof(err)), 0);
	ck_assert_uint_eq(al.e[0].addr, IP(10, 0, 0, 0));
	/* exactly ALLOWLIST_MAX entries */
	ck_assert_int_eq(allowlist_parse(&al,
	                                 "1.0.0.1,1.0.0.2,1.0.0.3,1.0.0.4,1.0.0.5,1.0.0.6,"
	                                 "1.0.0.7,255.255.255.255",
	                                 err, sizeof(err)),
	                 0);
	ck_assert_uint_eq(al.count, ALLOWLIST_MAX);
	allowlist_init(&al);
	ck_assert_str_eq(allowlist_format(&al, txt, sizeof(txt)), "all");
}
END_TEST

static const struct {
	const char *in, *msg;
} bad[] = {
    {"", "empty list"},
    {"1.2.3.4,", "entry 2 '': empty entry"},
    {",1.2.3.4", "entry 1 '': empty entry"},
    {"1.2.3.4,,5.6.7.8", "entry 2 '': empty entry"},
    {"1.2.3", "entry 1 '1.2.3': not an IPv4"},
    {"1.2.3.4.5", "entry 1 '1.2.3.4.5': not an IPv4"},
    {"1.2.3.256", "entry 1 '1.2.3.256': octet out of range"},
    {"1.2.3.1000", "octet out of range"},
    {"01.2.3.4", "leading zero"},
    {"1..3.4", "not an IPv4"},
    {"1.2.3.4/33", "entry 1 '1.2.3.4/33': prefix must be /0../32"},
    {"1.2.3.4/", "prefix must be"},
    {"1.2.3.4/-1", "prefix must be"},
    {"1.2.3.4/08", "prefix must be"},
    {"1.2.3.4/8/8", "prefix must be"},
    {"localhost", "not an IPv4"},
    {"::1", "not an IPv4"},
    {" 1.2.3.4", "not an IPv4"},
    {"1.2.3.4 ", "not an IPv4"},
    {"-1.2.3.4", "not an IPv4"},
    {"1.0.0.1,1.0.0.2,1.0.0.3,1.0.0.4,1.0.0.5,1.0.0.6,1.0.0.7,1.0.0.8,1.0.0.9",
     "more than 8 entries"},
};

START_TEST(parse_bad)
{
	struct allowlist al;
	char err[128];
	ck_assert_int_eq(allowlist_parse(&al, "10.0.0.0/8", err, sizeof(err)), 0);
	struct allowlist before = al;
	ck_assert_int_eq(allowlist_parse(&al, bad[_i].in, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, bad[_i].msg), "'%s': got '%s', want '%s'", bad[_i].in, err,
	              bad[_i].msg);
	ck_assert_mem_eq(&al, &before, sizeof(al)); /* unchanged on error */
	/* no error buffer: still refused, nothing written */
	ck_assert_int_eq(allowlist_parse(&al, bad[_i].in, NULL, 0), -EINVAL);
}
END_TEST

START_TEST(match_empty_allows_all)
{
	struct allowlist al;
	allowlist_init(&al);
	ck_assert_int_eq(allowlist_allows(&al, IP(8, 8, 8, 8)), 1);
	ck_assert_int_eq(allowlist_allows(&al, 0), 1);
}
END_TEST

START_TEST(match_exact)
{
	struct allowlist al;
	ck_assert_int_eq(allowlist_parse(&al, "127.0.0.1,192.168.4.2", NULL, 0), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(127, 0, 0, 1)), 1);
	ck_assert_int_eq(allowlist_allows(&al, IP(192, 168, 4, 2)), 1);
	ck_assert_int_eq(allowlist_allows(&al, IP(127, 0, 0, 2)), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(192, 168, 4, 3)), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(1, 0, 0, 127)), 0); /* byte order */
}
END_TEST

/* For every prefix length 0..32: the base address and the last address of the block
 * match, the addresses just outside (if any) do not. */
START_TEST(match_prefix_lengths)
{
	struct allowlist al;
	char list[32];
	unsigned p = (unsigned)_i;
	const uint32_t base = IP(172, 16, 0, 0) & (p ? 0xFFFFFFFFu << (32 - p) : 0);
	uint32_t host = p == 32 ? 0 : p == 0 ? 0xFFFFFFFFu : 0xFFFFFFFFu >> p;
	snprintf(list, sizeof(list), "172.16.0.0/%u", p);
	ck_assert_int_eq(allowlist_parse(&al, list, NULL, 0), 0);
	ck_assert_uint_eq(al.e[0].prefix, p);
	ck_assert_int_eq(allowlist_allows(&al, base), 1);
	ck_assert_int_eq(allowlist_allows(&al, base | host), 1);
	if (p > 0) {
		uint32_t bit = 1u << (32 - p); /* lowest prefix bit: flipped = outside */
		ck_assert_int_eq(allowlist_allows(&al, base ^ bit), 0);
		ck_assert_int_eq(allowlist_allows(&al, (base ^ bit) | host), 0);
		ck_assert_int_eq(allowlist_allows(&al, base ^ 0x80000000u), 0);
	} else {
		ck_assert_int_eq(allowlist_allows(&al, IP(8, 8, 8, 8)), 1);
	}
}
END_TEST

START_TEST(match_several_prefixes)
{
	struct allowlist al;
	ck_assert_int_eq(allowlist_parse(&al, "10.0.0.0/8,192.168.1.0/24,127.0.0.1", NULL, 0), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(10, 255, 1, 2)), 1);
	ck_assert_int_eq(allowlist_allows(&al, IP(192, 168, 1, 200)), 1);
	ck_assert_int_eq(allowlist_allows(&al, IP(127, 0, 0, 1)), 1);
	ck_assert_int_eq(allowlist_allows(&al, IP(11, 0, 0, 1)), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(192, 168, 2, 1)), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(127, 0, 0, 2)), 0);
	ck_assert_int_eq(allowlist_allows(&al, IP(9, 255, 255, 255)), 0);
}
END_TEST

static Suite *allowlist_suite(void)
{
	Suite *s = suite_create("allowlist");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, parse_good);
	tcase_add_loop_test(tc, parse_bad, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, match_empty_allows_all);
	tcase_add_test(tc, match_exact);
	tcase_add_loop_test(tc, match_prefix_lengths, 0, 33);
	tcase_add_test(tc, match_several_prefixes);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(allowlist_suite)
