/* SPDX-License-Identifier: MIT */
/* Unit tests for firmware/core/rfc2217.c: Telnet decoder/escaper and RFC 2217 messages. */
#include "rfc2217.h"
#include "unit.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Events rendered as text; data bytes one by one so chunking does not matter. */
struct evlog {
	char s[8192];
	size_t n;
};

__attribute__((format(printf, 2, 3))) static void evlog_add(struct evlog *l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, ap);
	va_end(ap);
	ck_assert(r > 0 && (size_t)r < sizeof(l->s) - l->n);
	l->n += (size_t)r;
}

static void record(void *ctx, const struct tn_event *ev)
{
	struct evlog *l = ctx;
	switch (ev->type) {
	case TN_EV_DATA:
		ck_assert_uint_gt(ev->len, 0);
		for (size_t i = 0; i < ev->len; i++)
			evlog_add(l, "d%02x ", ev->data[i]);
		break;
	case TN_EV_SB:
		evlog_add(l, "SB%u/%d:", ev->opt, ev->truncated);
		for (size_t i = 0; i < ev->len; i++)
			evlog_add(l, "%02x", ev->data[i]);
		evlog_add(l, " ");
		break;
	default:
		evlog_add(l, "E%u/%u ", (unsigned)ev->type, ev->opt);
		break;
	}
}

static const uint8_t stream[] = {
    'a',     'b',   0xFF, 0xFF,    'c',  0xFF, TN_WILL, 44,   0xFF,  TN_DO, 1,      0x00,
    0xFF,    TN_SB, 44,   1,       0x00, 0x01, 0xC2,    0x00, 0xFF,  TN_SE, 'x',    0xFF,
    TN_SB,   44,    0,    'h',     0xFF, 0xFF, 'i',     0xFF, TN_SE, 0xFF,  TN_NOP, 0xFF,
    TN_WONT, 3,     0xFF, TN_DONT, 0,    '\r', 0,       '\r', '\n',  0xFF,  0xFF,
};

static void decode_all(const uint8_t *p, size_t n, struct evlog *l)
{
	struct tn_decoder d;
	tn_decoder_init(&d);
	memset(l, 0, sizeof(*l));
	ck_assert_uint_eq(tn_decode(&d, p, n, record, l), n);
}

START_TEST(decode_whole)
{
	struct evlog l;
	decode_all(stream, sizeof(stream), &l);
	ck_assert_str_eq(l.s, "d61 d62 dff d63 E1/44 E3/1 d00 SB44/0:010001c200 d78 "
	                      "SB44/0:0068ff69 E6/241 E2/3 E4/0 d0d d00 d0d d0a dff ");
}
END_TEST

/* Split the stream at every pair of positions: events must be identical. */
START_TEST(decode_split_everywhere)
{
	struct evlog whole, part;
	decode_all(stream, sizeof(stream), &whole);
	size_t n = sizeof(stream);
	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b++) {
			struct tn_decoder d;
			tn_decoder_init(&d);
			memset(&part, 0, sizeof(part));
			tn_decode(&d, stream, a, record, &part);
			tn_decode(&d, stream + a, b - a, record, &part);
			tn_decode(&d, stream + b, n - b, record, &part);
			ck_assert_str_eq(part.s, whole.s);
		}
	}
	/* and byte by byte */
	struct tn_decoder d;
	tn_decoder_init(&d);
	memset(&part, 0, sizeof(part));
	for (size_t i = 0; i < n; i++)
		tn_decode(&d, stream + i, 1, record, &part);
	ck_assert_str_eq(part.s, whole.s);
}
END_TEST

START_TEST(decode_sb_truncated)
{
	uint8_t buf[3 + 100 + 2 + 1];
	size_t n = 0;
	buf[n++] = 0xFF;
	buf[n++] = TN_SB;
	buf[n++] = 44;
	for (int i = 0; i < 100; i++)
		buf[n++] = (uint8_t)i;
	buf[n++] = 0xFF;
	buf[n++] = TN_SE;
	buf[n++] = 'z';
	struct evlog l;
	decode_all(buf, n, &l);
	char want[512] = "SB44/1:";
	for (int i = 0; i < TN_SB_MAX; i++)
		snprintf(want + strlen(want), sizeof(want) - strlen(want), "%02x", i);
	strcat(want, " d7a ");
	ck_assert_str_eq(l.s, want);
}
END_TEST

START_TEST(decode_sb_missing_se)
{
	/* IAC SB 44 5 IAC WILL 3: the SB ends at the IAC, WILL 3 is still seen. */
	const uint8_t in[] = {0xFF, TN_SB, 44, 5, 0xFF, TN_WILL, 3, 'q'};
	struct evlog l;
	decode_all(in, sizeof(in), &l);
	ck_assert_str_eq(l.s, "SB44/0:05 E1/3 d71 ");
}
END_TEST

START_TEST(escape_basic)
{
	const uint8_t in[] = {1, 0xFF, 2, 0xFF};
	uint8_t out[16];
	size_t used;
	size_t n = tn_escape(in, sizeof(in), out, sizeof(out), &used);
	ck_assert_uint_eq(n, 6);
	ck_assert_uint_eq(used, 4);
	const uint8_t want[] = {1, 0xFF, 0xFF, 2, 0xFF, 0xFF};
	ck_assert_mem_eq(out, want, 6);
	/* never split an IAC pair */
	n = tn_escape(in, sizeof(in), out, 2, &used);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(used, 1);
	n = tn_escape(in, sizeof(in), out, 5, &used);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(used, 3);
	n = tn_escape(in, 0, out, 0, &used);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(used, 0);
}
END_TEST

START_TEST(build_messages)
{
	uint8_t out[32];
	ck_assert_int_eq(tn_build_option(out, sizeof(out), TN_DO, 44), 3);
	ck_assert_mem_eq(out, ((uint8_t[]){0xFF, TN_DO, 44}), 3);
	ck_assert_int_eq(tn_build_option(out, 2, TN_DO, 44), -ENOBUFS);
	ck_assert_int_eq(tn_build_option(out, 3, TN_SB, 44), -EINVAL);

	ck_assert_int_eq(rfc2217_build_u32(out, sizeof(out), 101, 115200), 10);
	ck_assert_mem_eq(out, ((uint8_t[]){0xFF, 0xFA, 44, 101, 0, 1, 0xC2, 0, 0xFF, 0xF0}), 10);
	/* 0xFF in a value is doubled */
	ck_assert_int_eq(rfc2217_build_u32(out, sizeof(out), 1, 0x00FFFF01), 12);
	ck_assert_mem_eq(
	    out, ((uint8_t[]){0xFF, 0xFA, 44, 1, 0, 0xFF, 0xFF, 0xFF, 0xFF, 1, 0xFF, 0xF0}), 12);
	ck_assert_int_eq(rfc2217_build_u8(out, sizeof(out), 103, 3), 7);
	ck_assert_mem_eq(out, ((uint8_t[]){0xFF, 0xFA, 44, 103, 3, 0xFF, 0xF0}), 7);
	ck_assert_int_eq(rfc2217_build_u8(out, 6, 103, 3), -ENOBUFS);
	ck_assert_int_eq(rfc2217_build_u8(out, 7, 103, 0xFF), -ENOBUFS);
	ck_assert_int_eq(rfc2217_build(out, sizeof(out), 100, (const uint8_t *)"ab", 2), 8);
	ck_assert_mem_eq(out, ((uint8_t[]){0xFF, 0xFA, 44, 100, 'a', 'b', 0xFF, 0xF0}), 8);
	ck_assert_int_eq(rfc2217_build(out, sizeof(out), 0, NULL, 0), 6);
}
END_TEST

START_TEST(build_then_decode_then_parse)
{
	for (uint32_t v = 0; v < 70000; v += 251) {
		uint8_t out[32];
		uint32_t val = v * 2654435761u;
		int n = rfc2217_build_u32(out, sizeof(out), 101, val);
		ck_assert_int_gt(n, 0);
		struct tn_decoder d;
		tn_decoder_init(&d);
		struct evlog l;
		memset(&l, 0, sizeof(l));
		tn_decode(&d, out, (size_t)n, record, &l);
		char want[64];
		snprintf(want, sizeof(want), "SB44/0:65%08x ", val);
		ck_assert_str_eq(l.s, want);
		struct rfc2217_msg m;
		uint8_t pl[5] = {101, (uint8_t)(val >> 24), (uint8_t)(val >> 16),
		                 (uint8_t)(val >> 8), (uint8_t)val};
		ck_assert_int_eq(rfc2217_parse(pl, 5, &m), 0);
		ck_assert_uint_eq(m.value, val);
		ck_assert_int_eq(m.from_server, 1);
		ck_assert_uint_eq(m.cmd, RFC2217_SET_BAUDRATE);
	}
}
END_TEST

START_TEST(parse_messages)
{
	struct rfc2217_msg m;
	ck_assert_int_eq(rfc2217_parse(NULL, 0, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){3}, 0, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){13, 1}, 2, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){99, 1}, 2, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){113, 1}, 2, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){1, 0, 1, 2}, 4, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){1, 0, 1, 2, 3, 4}, 6, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){2}, 1, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){2, 8, 8}, 3, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){8, 1}, 2, &m), -EINVAL);

	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){3, 3}, 2, &m), 0);
	ck_assert_uint_eq(m.cmd, RFC2217_SET_PARITY);
	ck_assert_uint_eq(m.value, 3);
	ck_assert_int_eq(m.from_server, 0);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){112, 3}, 2, &m), 0);
	ck_assert_uint_eq(m.cmd, RFC2217_PURGE_DATA);
	ck_assert_uint_eq(m.code, 112);
	ck_assert_int_eq(m.from_server, 1);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){8}, 1, &m), 0);
	ck_assert_uint_eq(m.cmd, RFC2217_FLOWCONTROL_SUSPEND);
	/* poll from a client: empty; from a server a value is required */
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){7}, 1, &m), 0);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){107}, 1, &m), -EINVAL);
	ck_assert_int_eq(rfc2217_parse((const uint8_t[]){107, 0xB0}, 2, &m), 0);
	ck_assert_uint_eq(m.value, 0xB0);

	const uint8_t sig[] = {100, 'e', 's', 'p'};
	ck_assert_int_eq(rfc2217_parse(sig, sizeof(sig), &m), 0);
	ck_assert_uint_eq(m.text_len, 3);
	ck_assert_mem_eq(m.text, "esp", 3);
	ck_assert_int_eq(rfc2217_parse(sig, 1, &m), 0);
	ck_assert_uint_eq(m.text_len, 0);
}
END_TEST

START_TEST(names)
{
	ck_assert_str_eq(rfc2217_cmd_name(1), "SET-BAUDRATE");
	ck_assert_str_eq(rfc2217_cmd_name(101), "SET-BAUDRATE");
	ck_assert_str_eq(rfc2217_cmd_name(0), "SIGNATURE");
	ck_assert_str_eq(rfc2217_cmd_name(112), "PURGE-DATA");
	ck_assert_str_eq(rfc2217_cmd_name(13), "UNKNOWN");
	ck_assert_str_eq(rfc2217_cmd_name(50), "UNKNOWN");
	ck_assert_str_eq(rfc2217_cmd_name(113), "UNKNOWN");
	ck_assert_str_eq(rfc2217_cmd_name(255), "UNKNOWN");
}
END_TEST

static Suite *rfc2217_suite(void)
{
	Suite *s = suite_create("rfc2217");
	TCase *tc = tcase_create("codec");
	tcase_add_test(tc, decode_whole);
	tcase_add_test(tc, decode_split_everywhere);
	tcase_add_test(tc, decode_sb_truncated);
	tcase_add_test(tc, decode_sb_missing_se);
	tcase_add_test(tc, escape_basic);
	tcase_add_test(tc, build_messages);
	tcase_add_test(tc, build_then_decode_then_parse);
	tcase_add_test(tc, parse_messages);
	tcase_add_test(tc, names);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(rfc2217_suite)
