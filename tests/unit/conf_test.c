/* SPDX-License-Identifier: MIT */
/* conf.c: parsing espstm.conf files written to a temporary directory. */
#include "conf.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[128];
static char *errtext;
static size_t errlen;

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/conf_test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/espstm.conf", dir);
	errtext = NULL;
	errlen = 0;
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
	free(errtext);
}

/* Write text to path, load it; errors are captured in errtext. */
static int load(const char *text, struct conf *c)
{
	FILE *f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	free(errtext);
	errtext = NULL;
	FILE *e = open_memstream(&errtext, &errlen);
	ck_assert_ptr_nonnull(e);
	int r = conf_load(path, c, e);
	fclose(e);
	return r;
}

static int count_lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* errtext contains a line "PATH: [sec] key: ..." containing sub */
static void assert_problem(const char *sec, const char *key, const char *sub)
{
	char want[256];
	if (key)
		snprintf(want, sizeof want, "%s: [%s] %s: ", path, sec, key);
	else
		snprintf(want, sizeof want, "%s: [%s] ", path, sec);
	const char *p = errtext;
	while ((p = strstr(p, want))) {
		const char *eol = strchr(p, '\n');
		ck_assert_ptr_nonnull(eol);
		char *hit = strstr(p, sub);
		if (hit && hit < eol)
			return;
		p = eol;
	}
	ck_abort_msg("no problem line '%s...%s' in:\n%s", want, sub, errtext ? errtext : "");
}

START_TEST(valid_file)
{
	struct conf c;
	int r = load("; comment\n"
	             "[ttySTM0]\n"
	             "host = 192.168.4.1\n"
	             "port = 2300\n"
	             "protocol = rfc2217\n"
	             "baud = 9600\n"
	             "reconnect_min_ms = 100\n"
	             "reconnect_max_ms = 1000\n"
	             "connect_timeout_ms = 500\n"
	             "\n"
	             "[Board_2-b]\n"
	             "host = espstm.local ; inline comment\n",
	             &c);
	ck_assert_msg(r == 0, "%s", errtext);
	ck_assert_uint_eq(c.ndevs, 2);
	ck_assert_str_eq(c.devs[0].name, "ttySTM0"); /* case kept */
	ck_assert_str_eq(c.devs[0].host, "192.168.4.1");
	ck_assert_uint_eq(c.devs[0].port, 2300);
	ck_assert_int_eq(c.devs[0].protocol, CONF_PROTO_RFC2217);
	ck_assert_uint_eq(c.devs[0].baud, 9600);
	ck_assert_uint_eq(c.devs[0].reconnect_min_ms, 100);
	ck_assert_uint_eq(c.devs[0].reconnect_max_ms, 1000);
	ck_assert_uint_eq(c.devs[0].connect_timeout_ms, 500);
	ck_assert_str_eq(c.devs[1].name, "Board_2-b");
	ck_assert_str_eq(c.devs[1].host, "espstm.local");
	ck_assert_uint_eq(c.devs[1].port, CONF_DEFAULT_PORT);
	ck_assert_uint_eq(c.devs[1].baud, CONF_DEFAULT_BAUD);
	ck_assert_uint_eq(c.devs[1].reconnect_min_ms, CONF_DEFAULT_RMIN_MS);
	ck_assert_uint_eq(c.devs[1].reconnect_max_ms, CONF_DEFAULT_RMAX_MS);
	ck_assert_uint_eq(c.devs[1].connect_timeout_ms, CONF_DEFAULT_CTO_MS);
	ck_assert_uint_eq(errlen, 0);
	conf_free(&c);
}
END_TEST

START_TEST(example_file_is_valid)
{
	struct conf c;
	FILE *e = open_memstream(&errtext, &errlen);
	int r = conf_load("conf/espstm.conf", &c, e);
	fclose(e);
	if (r == -ENOENT)
		return; /* not run from the repository root */
	ck_assert_msg(r == 0, "%s", errtext);
	ck_assert_uint_eq(c.ndevs, 1);
	ck_assert_str_eq(c.devs[0].name, "ttySTM0");
	ck_assert_str_eq(c.devs[0].host, "127.0.0.1");
	conf_free(&c);
}
END_TEST

START_TEST(each_error_kind)
{
	struct conf c;
	struct {
		const char *text, *sec, *key, *sub;
	} cases[] = {
	    {"[ttySTM0]\nport = 2217\n", "ttySTM0", "host", "missing"},
	    {"[ttySTM0]\nhost = a\nspeed = 9600\n", "ttySTM0", "speed", "unknown key"},
	    {"[ttySTM0]\nhost = a\nport = abc\n", "ttySTM0", "port", "not a number"},
	    {"[ttySTM0]\nhost = a\nport = 70000\n", "ttySTM0", "port", "out of range"},
	    {"[ttySTM0]\nhost = a\nport = 0\n", "ttySTM0", "port", "out of range"},
	    {"[ttySTM0]\nhost = a\nport = -5\n", "ttySTM0", "port", "not a number"},
	    {"[ttySTM0]\nhost = a\nbaud = 9600x\n", "ttySTM0", "baud", "not a number"},
	    {"[ttySTM0]\nhost = a\nbaud = 99999999999\n", "ttySTM0", "baud", "out of range"},
	    {"[ttySTM0]\nhost = a\nprotocol = espstm-legacy\n", "ttySTM0", "protocol",
	     "not supported yet"},
	    {"[ttySTM0]\nhost = a\nprotocol = telnet\n", "ttySTM0", "protocol", "unknown protocol"},
	    {"[ttySTM0]\nhost = a\nreconnect_min_ms = 900\nreconnect_max_ms = 800\n", "ttySTM0",
	     "reconnect_max_ms", "below reconnect_min_ms"},
	    {"[ttySTM0]\nhost = a\nconnect_timeout_ms = 1\n", "ttySTM0", "connect_timeout_ms",
	     "out of range"},
	    {"[tty/STM0]\nhost = a\n", "tty/STM0", NULL, "bad device name"},
	    {"[tty STM0]\nhost = a\n", "tty STM0", NULL, "bad device name"},
	    {"[abcdefghijabcdefghijabcdefghijabc]\nhost = a\n", "abcdefghijabcdefghijabcdefghijabc",
	     NULL, "bad device name"},
	    {"[ttySTM0]\nhost = \n", "ttySTM0", "host", "empty"},
	    {"[ttySTM0]\nhost = a\n[TTYstm0]\nhost = b\n", "TTYstm0", NULL, "duplicate"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = load(cases[i].text, &c);
		ck_assert_msg(r == -EINVAL, "case %zu: r=%d", i, r);
		ck_assert_ptr_nonnull(errtext);
		assert_problem(cases[i].sec, cases[i].key, cases[i].sub);
		ck_assert_ptr_null(c.devs);
	}
}
END_TEST

START_TEST(file_level_errors)
{
	struct conf c;
	FILE *e = open_memstream(&errtext, &errlen);
	ck_assert_int_eq(conf_load("/nonexistent/espstm.conf", &c, e), -ENOENT);
	fclose(e);
	ck_assert_ptr_nonnull(strstr(errtext, "/nonexistent/espstm.conf: cannot open"));

	ck_assert_int_eq(load("; nothing\n", &c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(errtext, "no device section"));

	ck_assert_int_eq(load("host = a\n[ttySTM0]\nhost = b\n", &c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(errtext, "host: key outside any"));
}
END_TEST

START_TEST(all_errors_listed)
{
	struct conf c;
	int r = load("[ttySTM0]\n"
	             "port = x\n"
	             "colour = blue\n"
	             "baud = 0\n"
	             "[bad/name]\n"
	             "host = h\n"
	             "protocol = espstm-legacy\n"
	             "[ok]\n"
	             "host = fine\n",
	             &c);
	ck_assert_int_eq(r, -EINVAL);
	assert_problem("ttySTM0", "port", "not a number");
	assert_problem("ttySTM0", "colour", "unknown key");
	assert_problem("ttySTM0", "baud", "out of range");
	assert_problem("ttySTM0", "host", "missing");
	assert_problem("bad/name", NULL, "bad device name");
	assert_problem("bad/name", "protocol", "not supported yet");
	ck_assert_int_eq(count_lines(errtext), 6);
}
END_TEST

START_TEST(hostport)
{
	char h[64];
	uint16_t p;
	ck_assert_int_eq(conf_parse_hostport("127.0.0.1:2300", h, sizeof h, &p), 0);
	ck_assert_str_eq(h, "127.0.0.1");
	ck_assert_uint_eq(p, 2300);
	ck_assert_int_eq(conf_parse_hostport("[::1]:2217", h, sizeof h, &p), 0);
	ck_assert_str_eq(h, "::1");
	ck_assert_uint_eq(p, 2217);
	ck_assert_int_eq(conf_parse_hostport("esp.local", h, sizeof h, &p), 0);
	ck_assert_str_eq(h, "esp.local");
	ck_assert_uint_eq(p, CONF_DEFAULT_PORT);
	ck_assert_int_eq(conf_parse_hostport("[fe80::1]", h, sizeof h, &p), 0);
	ck_assert_str_eq(h, "fe80::1");
	ck_assert_int_eq(conf_parse_hostport("::1:2217", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("host:0", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("host:65536", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("host:", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport(":2217", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("[::1", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("[::1]x", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("abcdefgh", h, 4, &p), -EINVAL);
	ck_assert(conf_valid_name("ttySTM0"));
	ck_assert(!conf_valid_name(""));
	ck_assert(!conf_valid_name("../x"));
	ck_assert(conf_valid_name("abcdefghijabcdefghijabcdefghijab"));
	ck_assert(!conf_valid_name("abcdefghijabcdefghijabcdefghijabc"));
}
END_TEST

static Suite *conf_suite(void)
{
	Suite *s = suite_create("conf");
	TCase *tc = tcase_create("conf");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, valid_file);
	tcase_add_test(tc, example_file_is_valid);
	tcase_add_test(tc, each_error_kind);
	tcase_add_test(tc, file_level_errors);
	tcase_add_test(tc, all_errors_listed);
	tcase_add_test(tc, hostport);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(conf_suite)
