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
	             "keepalive = 0\n"
	             "http_port = 8080\n"
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
	ck_assert_uint_eq(c.devs[0].keepalive_s, 0);
	ck_assert_uint_eq(c.devs[0].http_port, 8080);
	ck_assert_uint_eq(c.devs[0].control_port, 0);
	ck_assert_str_eq(c.devs[1].name, "Board_2-b");
	ck_assert_str_eq(c.devs[1].host, "espstm.local");
	ck_assert_uint_eq(c.devs[1].port, CONF_DEFAULT_PORT);
	ck_assert_uint_eq(c.devs[1].baud, CONF_DEFAULT_BAUD);
	ck_assert_uint_eq(c.devs[1].reconnect_min_ms, CONF_DEFAULT_RMIN_MS);
	ck_assert_uint_eq(c.devs[1].reconnect_max_ms, CONF_DEFAULT_RMAX_MS);
	ck_assert_uint_eq(c.devs[1].connect_timeout_ms, CONF_DEFAULT_CTO_MS);
	ck_assert_uint_eq(c.devs[1].keepalive_s, CONF_DEFAULT_KEEPALIVE_S);
	ck_assert_uint_eq(c.devs[1].http_port, CONF_DEFAULT_HTTP_PORT);
	ck_assert_int_eq(c.devs[1].protocol, CONF_PROTO_RFC2217);
	ck_assert_str_eq(c.control_socket, ""); /* no [global] */
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
	    {"[ttySTM0]\nhost = a b\n", "ttySTM0", "host", "not a host name"},
	    {"[ttySTM0]\nhost = a\nport =\n", "ttySTM0", "port", "empty"},
	    /* protocol, control_port */
	    {"[ttySTM0]\nhost = a\nprotocol = rfc-2217\n", "ttySTM0", "protocol",
	     "expected rfc2217 or espstm-legacy"},
	    {"[ttySTM0]\nhost = a\ncontrol_port = 1235\n", "ttySTM0", "control_port",
	     "only used with protocol = espstm-legacy"},
	    {"[ttySTM0]\nhost = a\nprotocol = rfc2217\ncontrol_port = 1235\n", "ttySTM0",
	     "control_port", "only used with protocol = espstm-legacy"},
	    {"[ttySTM0]\nhost = a\nprotocol = espstm-legacy\ncontrol_port = 1234\n", "ttySTM0",
	     "control_port", "is the data port too"},
	    {"[ttySTM0]\nhost = a\nprotocol = espstm-legacy\nport = 4000\ncontrol_port = 4000\n",
	     "ttySTM0", "control_port", "is the data port too"},
	    {"[ttySTM0]\nhost = a\nprotocol = espstm-legacy\nport = 65535\n", "ttySTM0",
	     "control_port", "past 65535"},
	    {"[ttySTM0]\nhost = a\nprotocol = espstm-legacy\ncontrol_port = 0\n", "ttySTM0",
	     "control_port", "out of range"},
	    {"[ttySTM0]\nhost = a\nprotocol = espstm-legacy\ncontrol_port = x\n", "ttySTM0",
	     "control_port", "not a number"},
	    /* keepalive, http_port */
	    {"[ttySTM0]\nhost = a\nkeepalive = 32768\n", "ttySTM0", "keepalive", "out of range"},
	    {"[ttySTM0]\nhost = a\nkeepalive = 10s\n", "ttySTM0", "keepalive", "not a number"},
	    {"[ttySTM0]\nhost = a\nkeepalive = -1\n", "ttySTM0", "keepalive", "not a number"},
	    {"[ttySTM0]\nhost = a\nhttp_port = 0\n", "ttySTM0", "http_port", "out of range"},
	    {"[ttySTM0]\nhost = a\nhttp_port = 65536\n", "ttySTM0", "http_port", "out of range"},
	    {"[ttySTM0]\nhost = a\nhttp_port = http\n", "ttySTM0", "http_port", "not a number"},
	    /* unknown keys: a hint when a known key is close */
	    {"[ttySTM0]\nhots = a\n", "ttySTM0", "hots", "did you mean 'host'?"},
	    {"[ttySTM0]\nhost = a\nprotcol = rfc2217\n", "ttySTM0", "protcol",
	     "did you mean 'protocol'?"},
	    {"[ttySTM0]\nhost = a\nspeed = 9600\n", "ttySTM0", "speed", "did you mean 'baud'?"},
	    {"[ttySTM0]\nhost = a\nkeep_alive = 5\n", "ttySTM0", "keep_alive",
	     "did you mean 'keepalive'?"},
	    {"[ttySTM0]\nhost = a\nreconnect_max = 5000\n", "ttySTM0", "reconnect_max",
	     "did you mean 'reconnect_max_ms'?"},
	    {"[ttySTM0]\nhost = a\ncontrol = 1235\n", "ttySTM0", "control",
	     "did you mean 'control_port'?"},
	    {"[ttySTM0]\nhost = a\nhttpport = 80\n", "ttySTM0", "httpport",
	     "did you mean 'http_port'?"},
	    {"[ttySTM0]\nhost = a\ncolour = blue\n", "ttySTM0", "colour",
	     "unknown key (known: host,"},
	    {"[ttySTM0]\nhost = a\ncontrol_socket = /run/x.sock\n", "ttySTM0", "control_socket",
	     "belongs in the [global] section"},
	    /* duplicate keys (iniparser alone would keep the last silently) */
	    {"[ttySTM0]\nhost = a\nbaud = 9600\nBaud = 19200\n", "ttySTM0", "baud",
	     "set twice (lines 3 and 4)"},
	    /* [global] */
	    {"[global]\ncontrol_socket = run/x.sock\n[ttySTM0]\nhost = a\n", "global",
	     "control_socket", "want an absolute path or 'none'"},
	    {"[global]\ncontrol_socket = /"
	     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	     "a"
	     "aaaaaaaaaaaaaaaaaaaaa\n[ttySTM0]\nhost = a\n", /* 108 bytes */
	     "global", "control_socket", "longer than 107"},
	    {"[global]\ncontrol_sockt = /x\n[ttySTM0]\nhost = a\n", "global", "control_sockt",
	     "did you mean 'control_socket'?"},
	    {"[global]\nloglevel = 3\n[ttySTM0]\nhost = a\n", "global", "loglevel",
	     "unknown key (known in [global]: control_socket)"},
	    {"[global]\nhost = a\n[ttySTM0]\nhost = a\n", "global", "host", "is a device key"},
	    {"[global]\n[Global]\n[ttySTM0]\nhost = a\n", "Global", NULL, "duplicate section"},
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

/* A host must be printable ASCII: it goes into the status JSON (UTF-8) and logs; the
 * message names the byte rather than echoing it. */
START_TEST(host_not_ascii)
{
	struct conf c;
	struct {
		const char *text, *sub;
	} cases[] = {
	    {"[ttySTM0]\nhost = h\xc3\xa9te.local\n", "byte 2 is not ASCII (0xc3)"},
	    {"[ttySTM0]\nhost = esp\xff\n", "byte 4 is not ASCII (0xff)"},
	    {"[ttySTM0]\nhost = a\x01z\n", "byte 2 is a control character (0x01)"},
	    {"[ttySTM0]\nhost = ab\x7f\n", "byte 3 is a control character (0x7f)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int r = load(cases[i].text, &c);
		ck_assert_msg(r == -EINVAL, "case %zu: r=%d", i, r);
		assert_problem("ttySTM0", "host", "not a host name or address");
		assert_problem("ttySTM0", "host", cases[i].sub);
		for (const char *p = errtext; *p; p++)
			ck_assert_msg(((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7F) ||
			                  *p == '\n',
			              "case %zu: message byte 0x%02x", i, (unsigned char)*p);
		ck_assert_int_eq(count_lines(errtext), 1);
		ck_assert_ptr_null(c.devs);
	}
	/* the same host in ASCII (punycode) is fine */
	ck_assert_int_eq(load("[ttySTM0]\nhost = xn--hte-9la.local\n", &c), 0);
	ck_assert_str_eq(c.devs[0].host, "xn--hte-9la.local");
	conf_free(&c);
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
	             "keepalive = 99999\n"
	             "[ok]\n"
	             "host = fine\n",
	             &c);
	ck_assert_int_eq(r, -EINVAL);
	assert_problem("ttySTM0", "port", "not a number");
	assert_problem("ttySTM0", "colour", "unknown key");
	assert_problem("ttySTM0", "baud", "out of range");
	assert_problem("ttySTM0", "host", "missing");
	assert_problem("bad/name", NULL, "bad device name");
	assert_problem("bad/name", "keepalive", "out of range");
	ck_assert_int_eq(count_lines(errtext), 6);
	ck_assert_ptr_null(c.devs);
	ck_assert_uint_eq(c.ndevs, 0);
}
END_TEST

START_TEST(legacy_protocol)
{
	struct conf c;
	int r = load("[a]\nhost = h\nprotocol = espstm-legacy\n"
	             "[b]\nhost = h\nprotocol = espstm-legacy\nport = 4000\n"
	             "[c]\nhost = h\nprotocol = ESPSTM-LEGACY\nport = 4000\ncontrol_port = 3000\n"
	             "[d]\nhost = h\nprotocol = rfc2217\n",
	             &c);
	ck_assert_msg(r == 0, "%s", errtext);
	ck_assert_uint_eq(c.ndevs, 4);
	ck_assert_int_eq(c.devs[0].protocol, CONF_PROTO_LEGACY);
	ck_assert_uint_eq(c.devs[0].port, CONF_DEFAULT_LEGACY_PORT); /* 1234 */
	ck_assert_uint_eq(c.devs[0].control_port, CONF_DEFAULT_LEGACY_PORT + 1);
	ck_assert_uint_eq(c.devs[1].port, 4000);
	ck_assert_uint_eq(c.devs[1].control_port, 4001);
	ck_assert_int_eq(c.devs[2].protocol, CONF_PROTO_LEGACY);
	ck_assert_uint_eq(c.devs[2].control_port, 3000);
	ck_assert_int_eq(c.devs[3].protocol, CONF_PROTO_RFC2217);
	ck_assert_uint_eq(c.devs[3].port, CONF_DEFAULT_PORT);
	ck_assert_uint_eq(c.devs[3].control_port, 0);
	ck_assert_str_eq(conf_protocol_name(c.devs[0].protocol), "espstm-legacy");
	ck_assert_str_eq(conf_protocol_name(c.devs[3].protocol), "rfc2217");
	conf_free(&c);
}
END_TEST

START_TEST(global_section)
{
	struct conf c;
	int r =
	    load("[GLOBAL]\ncontrol_socket = /run/espstm/other.sock\n[ttySTM0]\nhost = h\n", &c);
	ck_assert_msg(r == 0, "%s", errtext);
	ck_assert_uint_eq(c.ndevs, 1); /* [global] is not a device */
	ck_assert_str_eq(c.devs[0].name, "ttySTM0");
	ck_assert_str_eq(c.control_socket, "/run/espstm/other.sock");
	conf_free(&c);
	ck_assert_str_eq(c.control_socket, "");

	r = load("[ttySTM0]\nhost = h\n[global]\ncontrol_socket = none\n", &c);
	ck_assert_msg(r == 0, "%s", errtext);
	ck_assert_str_eq(c.control_socket, "none");
	conf_free(&c);

	/* the longest path a unix socket takes: 107 bytes */
	char text[256], want[CONF_PATH_MAX + 1];
	memset(want, 'a', sizeof want);
	want[0] = '/';
	want[CONF_PATH_MAX] = '\0';
	snprintf(text, sizeof text, "[global]\ncontrol_socket = %s\n[ttySTM0]\nhost = h\n", want);
	r = load(text, &c);
	ck_assert_msg(r == 0, "%s", errtext);
	ck_assert_str_eq(c.control_socket, want);
	conf_free(&c);

	/* a [global] section alone is no device */
	ck_assert_int_eq(load("[global]\ncontrol_socket = none\n", &c), -EINVAL);
	ck_assert_ptr_nonnull(strstr(errtext, "no device section"));
	ck_assert(!conf_valid_name("global"));
	ck_assert(!conf_valid_name("Global"));
}
END_TEST

START_TEST(multiline_value_not_a_key)
{
	/* a continued value line holding "=" is not a second key */
	struct conf c;
	int r = load("[ttySTM0]\nhost = a\\\nhost = b\n", &c);
	ck_assert_ptr_null(strstr(errtext ? errtext : "", "set twice"));
	if (r == 0)
		conf_free(&c);
}
END_TEST

/* ------------------------------------------------------------------ reload diff */

static struct conf_device dev(const char *name, const char *host)
{
	struct conf_device d;
	conf_device_defaults(&d, name);
	snprintf(d.host, sizeof d.host, "%s", host);
	return d;
}

static const struct conf_diff_entry *entry(const struct conf_diff_entry *e, size_t n,
                                           const char *name)
{
	for (size_t i = 0; i < n; i++) {
		const struct conf_device *d = e[i].new_dev ? e[i].new_dev : e[i].old_dev;
		if (strcmp(d->name, name) == 0)
			return &e[i];
	}
	ck_abort_msg("no diff entry for %s", name);
	return NULL;
}

START_TEST(diff_classifies)
{
	struct conf_device olds[5] = {dev("keep", "h"), dev("gone", "h"), dev("moved", "h"),
	                              dev("web", "h"), dev("Case", "h")};
	struct conf_device news[5] = {dev("new", "h2"), dev("keep", "h"), dev("moved", "h2"),
	                              dev("web", "h"), dev("case", "h")};
	struct conf_diff_entry *e;
	size_t n;

	news[3].http_port = 8080;
	ck_assert_int_eq(conf_diff(olds, 5, news, 5, &e, &n), 0);
	ck_assert_uint_eq(n, 7); /* 2 removed (gone, Case) + 5 new */
	/* removed first, in old order; then the new devices in new order */
	ck_assert_int_eq(e[0].change, CONF_REMOVED);
	ck_assert_str_eq(e[0].old_dev->name, "gone");
	ck_assert_ptr_null(e[0].new_dev);
	ck_assert_int_eq(e[1].change, CONF_REMOVED);
	ck_assert_str_eq(e[1].old_dev->name, "Case"); /* names are case-sensitive here */
	ck_assert_str_eq(e[2].new_dev->name, "new");
	ck_assert_int_eq(e[2].change, CONF_ADDED);
	ck_assert_ptr_null(e[2].old_dev);
	ck_assert_str_eq(e[3].new_dev->name, "keep");
	ck_assert_int_eq(e[3].change, CONF_UNCHANGED);
	ck_assert_ptr_eq(e[3].old_dev, &olds[0]);
	ck_assert_ptr_eq(e[3].new_dev, &news[1]);
	ck_assert_int_eq(entry(e, n, "moved")->change, CONF_CHANGED);
	ck_assert_int_eq(entry(e, n, "web")->change, CONF_UPDATED);
	ck_assert_int_eq(entry(e, n, "case")->change, CONF_ADDED);
	ck_assert_str_eq(conf_change_name(entry(e, n, "web")->change), "updated");
	free(e);

	/* empty sides */
	ck_assert_int_eq(conf_diff(NULL, 0, news, 2, &e, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(e[0].change, CONF_ADDED);
	ck_assert_int_eq(e[1].change, CONF_ADDED);
	free(e);
	ck_assert_int_eq(conf_diff(olds, 2, NULL, 0, &e, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(e[0].change, CONF_REMOVED);
	ck_assert_int_eq(e[1].change, CONF_REMOVED);
	free(e);
	ck_assert_int_eq(conf_diff(olds, 5, olds, 5, &e, &n), 0);
	ck_assert_uint_eq(n, 5);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(e[i].change, CONF_UNCHANGED);
	free(e);
}
END_TEST

START_TEST(diff_each_field)
{
	/* every setting the running device was built with forces a recreation */
	struct conf_device a = dev("ttySTM0", "h"), b;

	b = a;
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_UNCHANGED);
#define CHANGED_BY(stmt)                                                                           \
	do {                                                                                       \
		b = a;                                                                             \
		stmt;                                                                              \
		ck_assert_msg(conf_device_compare(&a, &b) == CONF_CHANGED, "%s", #stmt);           \
	} while (0)
	CHANGED_BY(snprintf(b.host, sizeof b.host, "h2"));
	CHANGED_BY(b.port = 2300);
	CHANGED_BY(b.protocol = CONF_PROTO_LEGACY);
	CHANGED_BY(b.control_port = 1235);
	CHANGED_BY(b.baud = 9600);
	CHANGED_BY(b.reconnect_min_ms = 100);
	CHANGED_BY(b.reconnect_max_ms = 100000);
	CHANGED_BY(b.connect_timeout_ms = 100);
	CHANGED_BY(b.keepalive_s = 0);
#undef CHANGED_BY
	b = a;
	b.http_port = 8080;
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_UPDATED);
	b.port = 1;
	ck_assert_int_eq(conf_device_compare(&a, &b), CONF_CHANGED);
}
END_TEST

START_TEST(diff_of_loaded_files)
{
	/* the reload case: the same file with ttySTM1 added, then removed again */
	struct conf c1, c2;
	struct conf_diff_entry *e;
	size_t n;

	ck_assert_int_eq(load("[ttySTM0]\nhost = 127.0.0.1\nport = 4000\n", &c1), 0);
	ck_assert_int_eq(load("[ttySTM0]\nhost = 127.0.0.1\nport = 4000\n"
	                      "[ttySTM1]\nhost = 127.0.0.1\nport = 4001\n",
	                      &c2),
	                 0);
	ck_assert_int_eq(conf_diff(c1.devs, c1.ndevs, c2.devs, c2.ndevs, &e, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(entry(e, n, "ttySTM0")->change, CONF_UNCHANGED);
	ck_assert_int_eq(entry(e, n, "ttySTM1")->change, CONF_ADDED);
	free(e);
	ck_assert_int_eq(conf_diff(c2.devs, c2.ndevs, c1.devs, c1.ndevs, &e, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(entry(e, n, "ttySTM0")->change, CONF_UNCHANGED);
	ck_assert_int_eq(entry(e, n, "ttySTM1")->change, CONF_REMOVED);
	free(e);
	conf_free(&c1);
	conf_free(&c2);
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
	/* --connect: printable ASCII only, as in the file */
	ck_assert_int_eq(conf_parse_hostport("h\xc3\xa9te:2217", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("esp\xff", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("a\x01z:2217", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("[::1\x7f]:2217", h, sizeof h, &p), -EINVAL);
	ck_assert_int_eq(conf_parse_hostport("xn--hte-9la.local:2217", h, sizeof h, &p), 0);
	ck_assert_str_eq(h, "xn--hte-9la.local");
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
	tcase_add_test(tc, host_not_ascii);
	tcase_add_test(tc, file_level_errors);
	tcase_add_test(tc, all_errors_listed);
	tcase_add_test(tc, legacy_protocol);
	tcase_add_test(tc, global_section);
	tcase_add_test(tc, multiline_value_not_a_key);
	tcase_add_test(tc, diff_classifies);
	tcase_add_test(tc, diff_each_field);
	tcase_add_test(tc, diff_of_loaded_files);
	tcase_add_test(tc, hostport);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(conf_suite)
