/* SPDX-License-Identifier: MIT */
/*
 * The espstm tool's plain-C parts: the JSON reader (cli_json), the human status output
 * and its helpers (cli_status), the command line (cli_main: usage errors, help, exit
 * statuses, the flash hand-off) and cli_request's failure modes against small socket
 * servers in a temp dir. The tool against the real control socket is in ctl_test.c.
 */
#include "cli_client.h"
#include "cli_cmd.h"
#include "cli_json.h"
#include "cli_status.h"
#include "unit.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static struct cj *parse(const char *s)
{
	char err[96];
	struct cj *v = cj_parse(s, strlen(s), err, sizeof err);
	ck_assert_msg(v != NULL, "'%s' did not parse: %s", s, err);
	return v;
}

static void parse_fails(const char *s, size_t len, const char *why)
{
	char err[96];
	struct cj *v = cj_parse(s, len, err, sizeof err);
	ck_assert_msg(v == NULL, "'%s' parsed", s);
	ck_assert_msg(strstr(err, why), "'%s': error '%s' lacks '%s'", s, err, why);
}

/* ------------------------------------------------------------ cli_json */

START_TEST(json_values)
{
	struct cj *v = parse(" {\"a\":1,\"b\":[true,false,null,\"x\"],\"c\":{\"d\":-12},"
	                     "\"e\":\"\",\"f\":[] ,\"g\":{}, \"a\":2}\n");
	int64_t i;
	ck_assert_int_eq(v->type, CJ_OBJ);
	ck_assert_uint_eq(cj_len(v), 7);
	ck_assert_int_eq(cj_int(cj_get(v, "a"), &i), 0);
	ck_assert_int_eq(i, 1); /* the first of duplicate keys */
	const struct cj *b = cj_get(v, "b");
	ck_assert_uint_eq(cj_len(b), 4);
	ck_assert_int_eq(cj_bool(cj_at(b, 0)), 1);
	ck_assert_int_eq(cj_bool(cj_at(b, 1)), 0);
	ck_assert_int_eq(cj_at(b, 2)->type, CJ_NULL);
	ck_assert_int_eq(cj_bool(cj_at(b, 2)), -1);
	ck_assert_str_eq(cj_str(cj_at(b, 3)), "x");
	ck_assert_ptr_null(cj_at(b, 4));
	ck_assert_ptr_null(cj_str(cj_at(b, 0)));
	ck_assert_int_eq(cj_int(cj_get(cj_get(v, "c"), "d"), &i), 0);
	ck_assert_int_eq(i, -12);
	ck_assert_str_eq(cj_str(cj_get(v, "e")), "");
	ck_assert_uint_eq(cj_len(cj_get(v, "f")), 0);
	ck_assert_int_eq(cj_get(v, "g")->type, CJ_OBJ);
	ck_assert_ptr_null(cj_get(v, "zz"));
	ck_assert_ptr_null(cj_get(b, "a")); /* not an object */
	ck_assert_ptr_null(cj_get(NULL, "a"));
	cj_free(v);

	v = parse("\"top\"");
	ck_assert_str_eq(cj_str(v), "top");
	cj_free(v);
}
END_TEST

START_TEST(json_strings)
{
	struct cj *v = parse("[\"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\", \"\\u00e9\\u20ac\","
	                     "\"\\ud83d\\ude00\", \"\\u0001x\", \"caf\xc3\xa9\"]");
	ck_assert_str_eq(cj_str(cj_at(v, 0)), "q\"b\\s/n\nt\tr\rb\bf\f");
	ck_assert_str_eq(cj_str(cj_at(v, 1)), "\xc3\xa9\xe2\x82\xac");
	ck_assert_str_eq(cj_str(cj_at(v, 2)), "\xf0\x9f\x98\x80");
	ck_assert_str_eq(cj_str(cj_at(v, 3)), "\x01x"); /* jw_str's escape of a control byte */
	ck_assert_str_eq(cj_str(cj_at(v, 4)), "caf\xc3\xa9");
	cj_free(v);

	parse_fails("\"abc", 4, "unterminated string");
	parse_fails("\"a\nb\"", 5, "control character");
	parse_fails("\"\\x\"", 4, "bad escape");
	parse_fails("\"\\u12x4\"", 8, "bad hex digit");
	parse_fails("\"\\u12", 5, "truncated");
	parse_fails("\"\\ud83d\"", 8, "unpaired high surrogate");
	parse_fails("\"\\ud83d\\u0041\"", 14, "unpaired high surrogate");
	parse_fails("\"\\ude00\"", 8, "unpaired low surrogate");
	parse_fails("\"\\u0000\"", 8, "\\u0000");
	/* an embedded NUL in the text is a control character */
	parse_fails("\"a\0b\"", 5, "control character");
}
END_TEST

START_TEST(json_numbers)
{
	struct cj *v = parse("[0, -0, 18446744073709551615, 18446744073709551616, "
	                     "9223372036854775807, -9223372036854775808, -9223372036854775809,"
	                     "1.5, 1e3, -1]");
	int64_t i;
	uint64_t u;
	ck_assert_int_eq(cj_uint(cj_at(v, 0), &u), 0);
	ck_assert_uint_eq(u, 0);
	ck_assert_int_eq(cj_int(cj_at(v, 1), &i), 0);
	ck_assert_int_eq(i, 0);
	ck_assert_int_eq(cj_uint(cj_at(v, 2), &u), 0);
	ck_assert(u == UINT64_MAX);
	ck_assert_int_eq(cj_int(cj_at(v, 2), &i), -1);
	ck_assert_int_eq(cj_uint(cj_at(v, 3), &u), -1);
	ck_assert_int_eq(cj_int(cj_at(v, 4), &i), 0);
	ck_assert(i == INT64_MAX);
	ck_assert_int_eq(cj_int(cj_at(v, 5), &i), 0);
	ck_assert(i == INT64_MIN);
	ck_assert_int_eq(cj_int(cj_at(v, 6), &i), -1);
	ck_assert_int_eq(cj_int(cj_at(v, 7), &i), -1);  /* fraction */
	ck_assert_int_eq(cj_uint(cj_at(v, 8), &u), -1); /* exponent */
	ck_assert_int_eq(cj_uint(cj_at(v, 9), &u), -1); /* negative */
	ck_assert_int_eq(cj_int(cj_at(v, 9), &i), 0);
	ck_assert_int_eq(i, -1);
	ck_assert_int_eq(cj_int(NULL, &i), -1);
	cj_free(v);

	parse_fails("01", 2, "text after");
	parse_fails("1.", 2, "bad number");
	parse_fails("-", 1, "bad number");
	parse_fails("1e", 2, "bad number");
	parse_fails("+1", 2, "expected a value");
}
END_TEST

START_TEST(json_syntax_and_depth)
{
	parse_fails("", 0, "offset 0: expected a value");
	parse_fails("{\"a\" 1}", 7, "offset 5: expected ':'");
	parse_fails("{\"a\":1,}", 8, "expected a member name");
	parse_fails("{\"a\":1 \"b\":2}", 13, "expected ',' or '}'");
	parse_fails("[1 2]", 5, "expected ',' or ']'");
	parse_fails("[1,", 3, "expected a value");
	parse_fails("[1", 2, "unterminated array");
	parse_fails("{1:2}", 5, "member name");
	parse_fails("tru", 3, "expected a value");
	parse_fails("{} {}", 5, "text after the value");

	char deep[80];
	/* CJ_MAX_DEPTH (32) nested arrays inside the top one parse; one more does not */
	memset(deep, '[', 33);
	memset(deep + 33, ']', 33);
	struct cj *v = cj_parse(deep, 66, NULL, 0);
	ck_assert_ptr_nonnull(v);
	cj_free(v);
	memset(deep, '[', 34);
	memset(deep + 34, ']', 34);
	parse_fails(deep, 68, "nested too deeply");
	ck_assert_ptr_null(cj_parse(NULL, 0, NULL, 0));
}
END_TEST

/* ------------------------------------------------------------ cli_status */

START_TEST(devname)
{
	ck_assert_str_eq(cli_devname("ttySTM0"), "ttySTM0");
	ck_assert_str_eq(cli_devname("/dev/ttySTM1"), "ttySTM1");
	ck_assert_ptr_null(cli_devname("/dev/"));
	ck_assert_ptr_null(cli_devname(""));
	ck_assert_ptr_null(cli_devname("tty/STM0"));
	ck_assert_ptr_null(cli_devname("/dev/pts/1"));
	ck_assert_ptr_null(cli_devname("tty STM0"));
	ck_assert_ptr_null(cli_devname("tty\x01"));
	ck_assert_ptr_null(cli_devname(".."));
	ck_assert_ptr_null(cli_devname(NULL));
	char lng[80];
	memset(lng, 'a', sizeof lng);
	lng[CLI_DEVNAME_MAX] = '\0';
	ck_assert_ptr_nonnull(cli_devname(lng));
	lng[CLI_DEVNAME_MAX] = 'a';
	lng[CLI_DEVNAME_MAX + 1] = '\0';
	ck_assert_ptr_null(cli_devname(lng));
}
END_TEST

START_TEST(line_and_duration)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
	    {"{\"baud\":115200,\"data_bits\":8,\"parity\":\"N\",\"stop_bits\":1}", "115200 8N1"},
	    {"{\"baud\":9600,\"data_bits\":8,\"parity\":\"E\",\"stop_bits\":1}", "9600 8E1"},
	    {"{\"baud\":57600,\"data_bits\":7,\"parity\":\"O\",\"stop_bits\":2}", "57600 7O2"},
	    {"{\"baud\":300,\"data_bits\":5,\"parity\":\"M\",\"stop_bits\":3}", "300 5M1.5"},
	    {"{\"baud\":null,\"data_bits\":null,\"parity\":null,\"stop_bits\":null}", "? ???"},
	    {"{\"baud\":-1,\"data_bits\":8,\"parity\":\"NN\",\"stop_bits\":4}", "? 8??"},
	};
	char buf[64];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct cj *v = parse(cases[i].json);
		ck_assert_str_eq(cli_fmt_line(buf, sizeof buf, v), cases[i].want);
		cj_free(v);
	}
	ck_assert_str_eq(cli_fmt_duration(buf, sizeof buf, 0), "0ms");
	ck_assert_str_eq(cli_fmt_duration(buf, sizeof buf, 999), "999ms");
	ck_assert_str_eq(cli_fmt_duration(buf, sizeof buf, 42000), "42s");
	ck_assert_str_eq(cli_fmt_duration(buf, sizeof buf, 307000), "5m07s");
	ck_assert_str_eq(cli_fmt_duration(buf, sizeof buf, 3 * 3600000 + 2 * 60000 + 5), "3h02m");
	ck_assert_str_eq(cli_fmt_duration(buf, sizeof buf, 2 * 86400000ull + 4 * 3600000), "2d04h");
	ck_assert_str_eq(cli_fmt_duration(buf, 4, 307000), "5m0"); /* cut, still terminated */
}
END_TEST

static char *print_status(const char *json, int *rc)
{
	char *out = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&out, &n);
	struct cj *v = parse(json);
	*rc = cli_print_status(f, v);
	fclose(f);
	cj_free(v);
	return out;
}

START_TEST(status_human)
{
	const char *js =
	    "{\"ok\":true,\"devices\":[{\"name\":\"ttySTM0\",\"host\":\"esp.local\",\"port\":2217,"
	    "\"protocol\":\"rfc2217\",\"state\":\"up\",\"peer\":\"192.168.4.1:2217\","
	    "\"rtt_us\":1234,\"up_ms\":65000,\"baud\":9600,\"data_bits\":8,\"parity\":\"E\","
	    "\"stop_bits\":1,\"flow\":\"hardware\",\"dtr\":1,\"rts\":0,\"cts\":1,\"dsr\":1,"
	    "\"cd\":0,\"ri\":0,\"opens\":2,\"exclusive\":true,\"tx_bytes\":18446744073709551615,"
	    "\"rx_bytes\":5678,\"tx_dropped\":3,\"rx_dropped\":4,\"connects\":3,"
	    "\"reconnects\":2,\"errors\":5,\"last_error\":\"connect: refused\\u001b[31m\","
	    "\"icount\":{\"cts\":1,\"dsr\":1,\"rng\":0,\"dcd\":0,\"rx\":5678,\"tx\":9,"
	    "\"frame\":7,\"overrun\":6,\"parity\":5,\"brk\":4,\"buf_overrun\":0}},"
	    "{\"name\":\"ttySTM1\",\"host\":\"fe80::1\",\"port\":1234,\"protocol\":"
	    "\"espstm-legacy\",\"state\":\"connecting\",\"peer\":\"\",\"rtt_us\":-1}]}";
	int rc;
	char *out = print_status(js, &rc);
	ck_assert_int_eq(rc, 0);
	const char *want = "ttySTM0\n"
	                   "  state       up for 1m05s\n"
	                   "  peer        192.168.4.1:2217 (rfc2217)\n"
	                   "  rtt         1.23 ms\n"
	                   "  line        9600 8E1\n"
	                   "  flow        hardware\n"
	                   "  modem       DTR on  RTS off  CTS on  DSR on  CD off  RI off\n"
	                   "  bytes       tx 18446744073709551615  rx 5678\n"
	                   "  dropped     tx 3  rx 4\n"
	                   "  opens       2 (exclusive)\n"
	                   "  connects    3, reconnects 2, errors 5\n"
	                   "  line errors frame 7  overrun 6  parity 5  break 4\n"
	                   "  last error  connect: refused?[31m\n"
	                   "\n"
	                   "ttySTM1\n"
	                   "  state       connecting\n"
	                   "  peer        - (configured [fe80::1]:1234, espstm-legacy)\n"
	                   "  rtt         -\n"
	                   "  line        ? ???\n"
	                   "  flow        -\n"
	                   "  modem       DTR -  RTS -  CTS -  DSR -  CD -  RI -\n"
	                   "  bytes       tx -  rx -\n"
	                   "  dropped     tx -  rx -\n"
	                   "  opens       -\n"
	                   "  connects    -, reconnects -, errors -\n"
	                   "  last error  -\n";
	ck_assert_str_eq(out, want);
	free(out);

	out = print_status("{\"ok\":true,\"devices\":[]}", &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "no devices\n");
	free(out);
	out = print_status("{\"ok\":true}", &rc);
	ck_assert_int_eq(rc, -EPROTO);
	ck_assert_str_eq(out, "");
	free(out);
	out = print_status("{\"ok\":true,\"devices\":{}}", &rc);
	ck_assert_int_eq(rc, -EPROTO);
	free(out);
}
END_TEST

/* ------------------------------------------------------------ cli_main */

struct run {
	int rc;
	char *out, *err;
	size_t no, ne;
};

static int flash_calls, flash_argc;
static char flash_args[4][32];
static int fake_flash(int argc, char **argv)
{
	flash_calls++;
	flash_argc = argc;
	for (int i = 0; i < argc && i < 4; i++)
		snprintf(flash_args[i], sizeof flash_args[i], "%s", argv[i]);
	return 42;
}

static void run(struct run *r, cli_subcommand_fn flash, ...)
{
	char *argv[16];
	int argc = 0;
	va_list ap;
	argv[argc++] = (char *)"espstm";
	va_start(ap, flash);
	for (char *a; (a = va_arg(ap, char *)) != NULL && argc < 15;)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	FILE *o = open_memstream(&r->out, &r->no);
	FILE *e = open_memstream(&r->err, &r->ne);
	r->rc = cli_main(argc, argv, o, e, flash);
	fclose(o);
	fclose(e);
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

#define EXPECT(r, code, where, needle)                                                             \
	do {                                                                                       \
		ck_assert_msg((r).rc == (code), "exit %d, want %d; out '%s' err '%s'", (r).rc,     \
		              (code), (r).out, (r).err);                                           \
		ck_assert_msg(strstr((r).where, (needle)), #where " '%s' lacks '%s'", (r).where,   \
		              (needle));                                                           \
	} while (0)

START_TEST(usage_errors)
{
	struct run r;
	run(&r, NULL, NULL);
	EXPECT(r, 2, err, "espstm: missing COMMAND");
	ck_assert_str_eq(r.out, "");
	run_free(&r);
	run(&r, NULL, "frob", NULL);
	EXPECT(r, 2, err, "espstm: unknown command 'frob'");
	run_free(&r);
	run(&r, NULL, "--frob", "status", NULL);
	EXPECT(r, 2, err, "unknown option '--frob'");
	run_free(&r);
	run(&r, NULL, "reset", NULL);
	EXPECT(r, 2, err, "espstm: reset: missing DEVICE\nTry 'espstm reset --help'.");
	run_free(&r);
	run(&r, NULL, "boot", "ttySTM0", "ttySTM1", NULL);
	EXPECT(r, 2, err, "unexpected argument 'ttySTM1'");
	run_free(&r);
	run(&r, NULL, "run", "/dev/pts/3", NULL);
	EXPECT(r, 2, err, "'/dev/pts/3' is not a device name");
	run_free(&r);
	run(&r, NULL, "status", "--verbose", NULL);
	EXPECT(r, 2, err, "status: unknown option '--verbose'");
	run_free(&r);
	run(&r, NULL, "--socket", NULL);
	EXPECT(r, 2, err, "option '--socket' needs a PATH");
	run_free(&r);
	run(&r, NULL, "status", "--socket=", NULL);
	EXPECT(r, 2, err, "empty socket path");
	run_free(&r);
	run(&r, NULL, "version", "extra", NULL);
	EXPECT(r, 2, err, "version: unexpected argument 'extra'");
	run_free(&r);
	run(&r, NULL, "help", "frob", NULL);
	EXPECT(r, 2, err, "help: unknown command 'frob'");
	run_free(&r);
}
END_TEST

START_TEST(help_and_version)
{
	struct run r;
	run(&r, NULL, "--help", NULL);
	EXPECT(r, 0, out, "Usage: espstm [--socket PATH] [--json] COMMAND");
	static const char *const cmds[] = {"  status [DEVICE] ", "  reset DEVICE ",
	                                   "  boot DEVICE ",     "  run DEVICE ",
	                                   "  version ",         "  flash DEVICE FILE"};
	for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
		ck_assert_msg(strstr(r.out, cmds[i]), "help lacks '%s'", cmds[i]);
	ck_assert_str_eq(r.err, "");
	run_free(&r);
	run(&r, NULL, "help", NULL);
	EXPECT(r, 0, out, "Commands:");
	run_free(&r);
	run(&r, NULL, "boot", "--help", NULL);
	EXPECT(r, 0, out, "Usage: espstm [--socket PATH] [--json] boot DEVICE\n\nRaise BOOT0");
	run_free(&r);
	run(&r, NULL, "help", "status", NULL);
	EXPECT(r, 0, out, "status [DEVICE]\n\nShow each device");
	run_free(&r);
	run(&r, NULL, "--version", NULL);
	EXPECT(r, 0, out, "espstm " ESPSTM_VERSION "\n");
	run_free(&r);
	/* no daemon needed for any of these */
	setenv(CLI_SOCKET_ENV, "/nonexistent/espstm.sock", 1);
	run(&r, NULL, "-h", NULL);
	EXPECT(r, 0, out, "Commands:");
	run_free(&r);
	unsetenv(CLI_SOCKET_ENV);
}
END_TEST

START_TEST(flash_handoff)
{
	struct run r;
	run(&r, NULL, "flash", "ttySTM0", "app.bin", NULL);
	EXPECT(r, 2, err, "espstm flash: not available in this build");
	run_free(&r);
	flash_calls = 0;
	run(&r, fake_flash, "--json", "flash", "ttySTM0", "--socket", NULL);
	ck_assert_int_eq(r.rc, 42);
	ck_assert_int_eq(flash_calls, 1);
	ck_assert_int_eq(flash_argc, 3); /* its own arguments untouched, even "--socket" */
	ck_assert_str_eq(flash_args[0], "flash");
	ck_assert_str_eq(flash_args[1], "ttySTM0");
	ck_assert_str_eq(flash_args[2], "--socket");
	ck_assert_int_eq(cli_globals.json, 1);
	run_free(&r);
	run(&r, fake_flash, "help", "flash", NULL);
	ck_assert_int_eq(flash_calls, 2);
	ck_assert_str_eq(flash_args[1], "--help");
	run_free(&r);
}
END_TEST

/* ------------------------------------------------------------ unreachable daemon */

static char tdir[64];

static void tmp_setup(void)
{
	snprintf(tdir, sizeof tdir, "/tmp/cli_test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tdir));
	unsetenv(CLI_SOCKET_ENV);
}

static void tmp_teardown(void)
{
	char p[128];
	static const char *const names[] = {"a.sock", "b.sock", "c.sock", "d.sock"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", tdir, names[i]);
		unlink(p);
	}
	rmdir(tdir);
	unsetenv(CLI_SOCKET_ENV);
}

/* A listening socket at tdir/name; returns its fd. */
static int listen_at(const char *name, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", tdir, name);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	ck_assert_uint_lt(strlen(path), sizeof sa.sun_path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 4), 0);
	return fd;
}

START_TEST(daemon_unreachable)
{
	struct run r;
	char path[128], want[200];
	snprintf(path, sizeof path, "%s/missing.sock", tdir);

	run(&r, NULL, "--socket", path, "status", NULL);
	snprintf(want, sizeof want, "cannot connect to espstmd at %s: No such file", path);
	EXPECT(r, 69, err, want);
	ck_assert_str_eq(r.out, "");
	run_free(&r);

	/* $ESPSTM_SOCKET is used, --socket (before or after the command) wins over it */
	setenv(CLI_SOCKET_ENV, path, 1);
	run(&r, NULL, "reset", "ttySTM0", NULL);
	EXPECT(r, 69, err, want);
	run_free(&r);
	char other[128];
	snprintf(other, sizeof other, "%s/other.sock", tdir);
	run(&r, NULL, "run", "ttySTM0", "--socket", other, NULL);
	snprintf(want, sizeof want, "espstmd at %s:", other);
	EXPECT(r, 69, err, want);
	run_free(&r);
	unsetenv(CLI_SOCKET_ENV);
	run(&r, NULL, "status", NULL);
	EXPECT(r, 69, err, "espstmd at /run/espstm/espstmd.sock");
	run_free(&r);

	/* a socket file nobody listens on: refused */
	int fd = listen_at("a.sock", path, sizeof path);
	close(fd);
	run(&r, NULL, "-s", path, "version", NULL);
	EXPECT(r, 69, err, "Connection refused");
	EXPECT(r, 69, out, "espstm " ESPSTM_VERSION "\n"); /* its own version still shown */
	run_free(&r);
}
END_TEST

START_TEST(request_timeout)
{
	char path[128];
	int fd = listen_at("b.sock", path, sizeof path);
	char *reply = (char *)"unchanged";
	enum cli_stage st;
	/* connect succeeds (backlog), nobody answers */
	ck_assert_int_eq(cli_request(path, "status", 200, &reply, &st), -ETIMEDOUT);
	ck_assert_int_eq(st, CLI_STAGE_RECEIVE);
	ck_assert_ptr_null(reply);
	close(fd);

	char lng[200];
	memset(lng, 'x', sizeof lng - 1);
	lng[sizeof lng - 1] = '\0';
	ck_assert_int_eq(cli_request(lng, "status", 200, &reply, &st), -ENAMETOOLONG);
	ck_assert_int_eq(st, CLI_STAGE_CONNECT);
}
END_TEST

/* A one-shot server thread: accept, read the request line, send `answer` (len bytes,
 * possibly several times), close. */
struct oneshot {
	int fd;
	const char *answer;
	size_t len;
	int repeat;
	char got[300];
};

static void *oneshot_thread(void *arg)
{
	struct oneshot *o = arg;
	int c = accept(o->fd, NULL, NULL);
	if (c < 0)
		return NULL;
	size_t n = 0;
	while (n < sizeof o->got - 1) {
		ssize_t k = read(c, o->got + n, 1);
		if (k <= 0 || o->got[n] == '\n')
			break;
		n++;
	}
	o->got[n] = '\0';
	for (int i = 0; i < o->repeat; i++)
		if (send(c, o->answer, o->len, MSG_NOSIGNAL) < 0)
			break;
	close(c);
	return NULL;
}

static int oneshot(const char *name, const char *answer, size_t len, int repeat, char **reply,
                   enum cli_stage *st, struct oneshot *o)
{
	char path[128];
	memset(o, 0, sizeof *o);
	o->fd = listen_at(name, path, sizeof path);
	o->answer = answer;
	o->len = len;
	o->repeat = repeat;
	pthread_t th;
	ck_assert_int_eq(pthread_create(&th, NULL, oneshot_thread, o), 0);
	int rc = cli_request(path, "status ttySTM0", 5000, reply, st);
	pthread_join(th, NULL);
	close(o->fd);
	return rc;
}

START_TEST(request_answers)
{
	struct oneshot o;
	char *reply;
	enum cli_stage st;
	ck_assert_int_eq(oneshot("a.sock", "{\"ok\":true}\r\nignored", 21, 1, &reply, &st, &o), 0);
	ck_assert_str_eq(o.got, "status ttySTM0");
	ck_assert_str_eq(reply, "{\"ok\":true}");
	ck_assert_int_eq(st, CLI_STAGE_NONE);
	free(reply);
	/* closed before a whole line */
	ck_assert_int_eq(oneshot("b.sock", "{\"ok\":tr", 8, 1, &reply, &st, &o), -ECONNRESET);
	ck_assert_int_eq(st, CLI_STAGE_RECEIVE);
	ck_assert_ptr_null(reply);
	/* an endless line is cut off */
	static char big[64 * 1024];
	memset(big, ' ', sizeof big);
	ck_assert_int_eq(oneshot("c.sock", big, sizeof big, 20, &reply, &st, &o), -EMSGSIZE);
	ck_assert_int_eq(st, CLI_STAGE_RECEIVE);

	/* the tool on answers that are not what ctl.h says */
	char path[128];
	struct run r;
	snprintf(path, sizeof path, "%s/d.sock", tdir);
	pthread_t th;
	memset(&o, 0, sizeof o);
	o.fd = listen_at("d.sock", path, sizeof path);
	o.answer = "not json\n";
	o.len = 9;
	o.repeat = 1;
	ck_assert_int_eq(pthread_create(&th, NULL, oneshot_thread, &o), 0);
	run(&r, NULL, "--socket", path, "status", NULL);
	pthread_join(th, NULL);
	EXPECT(r, 1, err, "unreadable answer from espstmd");
	run_free(&r);
	o.answer = "{\"ok\":true,\"devices\":5}\n";
	o.len = strlen(o.answer);
	ck_assert_int_eq(pthread_create(&th, NULL, oneshot_thread, &o), 0);
	run(&r, NULL, "--socket", path, "status", NULL);
	pthread_join(th, NULL);
	EXPECT(r, 1, err, "no device list");
	run_free(&r);
	o.answer = "{\"ok\":false,\"error\":\"busy\"}\n";
	o.len = strlen(o.answer);
	ck_assert_int_eq(pthread_create(&th, NULL, oneshot_thread, &o), 0);
	run(&r, NULL, "--socket", path, "--json", "boot", "ttySTM0", NULL);
	pthread_join(th, NULL);
	EXPECT(r, 1, err, "espstm: busy\n");
	ck_assert_str_eq(r.out, "{\"ok\":false,\"error\":\"busy\"}\n"); /* --json: as it came */
	ck_assert_str_eq(o.got, "boot ttySTM0");
	run_free(&r);
	close(o.fd);
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("json");
	tcase_add_test(tc, json_values);
	tcase_add_test(tc, json_strings);
	tcase_add_test(tc, json_numbers);
	tcase_add_test(tc, json_syntax_and_depth);
	suite_add_tcase(s, tc);
	tc = tcase_create("status");
	tcase_add_test(tc, devname);
	tcase_add_test(tc, line_and_duration);
	tcase_add_test(tc, status_human);
	suite_add_tcase(s, tc);
	tc = tcase_create("main");
	tcase_add_test(tc, usage_errors);
	tcase_add_test(tc, help_and_version);
	tcase_add_test(tc, flash_handoff);
	suite_add_tcase(s, tc);
	tc = tcase_create("socket");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, daemon_unreachable);
	tcase_add_test(tc, request_timeout);
	tcase_add_test(tc, request_answers);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(cli_suite)
