/* SPDX-License-Identifier: MIT */
/*
 * `espstm flash`'s plain-C parts (cli/cli_flash.h): the command line (DEVICE or --host,
 * options anywhere, numbers, --password refused), host parsing, format detection and the
 * Intel HEX pre-scan (same rules as the bridge: ascending records, start rounded down to
 * 4, gaps counted), the password file / ESPSTM_PASSWORD, the bridge from espstmd's status
 * answer, query and URL, the bridge's flash answers read into a struct, the exit status
 * each answer means, and the progress display (sizes, rate, ETA, bar, plain lines).
 */
#include "cli_flash.h"
#include "cli_json.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ helpers */

struct cap {
	char *out, *err;
	size_t no, ne;
	FILE *fo, *fe;
};

static void cap_open(struct cap *c)
{
	memset(c, 0, sizeof *c);
	c->fo = open_memstream(&c->out, &c->no);
	c->fe = open_memstream(&c->err, &c->ne);
	ck_assert_ptr_nonnull(c->fo);
	ck_assert_ptr_nonnull(c->fe);
}

static void cap_close(struct cap *c)
{
	fclose(c->fo);
	fclose(c->fe);
}

static void cap_free(struct cap *c)
{
	free(c->out);
	free(c->err);
}

/* Parse a NULL-terminated list of arguments after "flash". Returns the parser's result;
 * its stderr text lands in c (caller frees). */
static int parse_v(struct cli_flash_opts *o, struct cap *c, const char *const *args)
{
	static char *argv[32];
	static char store[32][128];
	int argc = 0;
	argv[argc++] = (char *)"flash";
	for (int i = 0; args[i]; i++) {
		snprintf(store[argc], sizeof store[argc], "%s", args[i]);
		argv[argc] = store[argc];
		argc++;
	}
	argv[argc] = NULL;
	cap_open(c);
	int r = cli_flash_parse_args(argc, argv, o, c->fo, c->fe);
	cap_close(c);
	return r;
}

#define PARSE(o, c, ...) parse_v((o), (c), (const char *const[]){__VA_ARGS__, NULL})

static void usage_fails(const char *want, const char *const *args)
{
	struct cli_flash_opts o;
	struct cap c;
	int r = parse_v(&o, &c, args);
	ck_assert_msg(r == -CLI_FLASH_EXIT_USAGE, "'%s...': result %d, want -2", args[0], r);
	ck_assert_msg(strstr(c.err, want), "'%s...': message '%s' lacks '%s'", args[0], c.err,
	              want);
	ck_assert_msg(strstr(c.err, "Try 'espstm flash --help'."), "no hint: %s", c.err);
	cap_free(&c);
}
#define USAGE_FAILS(want, ...) usage_fails((want), (const char *const[]){__VA_ARGS__, NULL})

/* ------------------------------------------------------------ command line */

START_TEST(args_device_form)
{
	struct cli_flash_opts o;
	struct cap c;
	ck_assert_int_eq(PARSE(&o, &c, "/dev/ttySTM0", "app.bin"), 0);
	cap_free(&c);
	ck_assert_str_eq(o.device, "ttySTM0");
	ck_assert_str_eq(o.image, "app.bin");
	ck_assert_int_eq(o.verify, 1); /* verify is the default: exit 0 only after verify */
	ck_assert_int_eq(o.go, 0);
	ck_assert_int_eq(o.has_address, 0);
	ck_assert_int_eq(o.format, CLI_FMT_AUTO);
	ck_assert_uint_eq(o.target, 0);
	ck_assert_uint_eq(o.baud, 0);
	ck_assert_ptr_null(o.password_file);
	ck_assert_int_eq(o.progress, CLI_PROGRESS_AUTO);

	/* options after and between the positional arguments, short and long */
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM1", "--verify", "app.bin", "-g", "--address",
	                       "0x08004000", "--target=1", "-b", "57600", "--unprotect", "-P",
	                       "pw.txt", "--json", "-q", "--socket", "/tmp/s.sock"),
	                 0);
	cap_free(&c);
	ck_assert_str_eq(o.device, "ttySTM1");
	ck_assert_str_eq(o.image, "app.bin");
	ck_assert_int_eq(o.verify, 1);
	ck_assert_int_eq(o.go, 1);
	ck_assert_int_eq(o.has_address, 1);
	ck_assert_uint_eq(o.address, 0x08004000u);
	ck_assert_uint_eq(o.target, 1);
	ck_assert_uint_eq(o.baud, 57600);
	ck_assert_int_eq(o.unprotect, 1);
	ck_assert_str_eq(o.password_file, "pw.txt");
	ck_assert_int_eq(o.json, 1);
	ck_assert_int_eq(o.progress, CLI_PROGRESS_NONE);
	ck_assert_str_eq(o.socket, "/tmp/s.sock");

	/* decimal address; --progress; --format given explicitly */
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "x.img", "-a", "134234112", "--progress", "lines",
	                       "-f", "bin"),
	                 0);
	cap_free(&c);
	ck_assert_uint_eq(o.address, 134234112u);
	ck_assert_int_eq(o.progress, CLI_PROGRESS_LINES);
	ck_assert_int_eq(o.format, CLI_FMT_BIN);
	/* "--" ends the options: an image named "-v" */
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "--", "-v"), 0);
	cap_free(&c);
	ck_assert_str_eq(o.image, "-v");
	ck_assert_int_eq(o.verify, 1);

	/* --no-verify turns it off; --verify / -v is accepted and keeps it on; the last of
	 * the two wins */
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin", "--no-verify"), 0);
	cap_free(&c);
	ck_assert_int_eq(o.verify, 0);
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin", "--no-verify", "-v"), 0);
	cap_free(&c);
	ck_assert_int_eq(o.verify, 1);
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin", "--verify", "--no-verify"), 0);
	cap_free(&c);
	ck_assert_int_eq(o.verify, 0);
	ck_assert_int_eq(PARSE(&o, &c, "--host", "h", "a.bin", "--verify"), 0);
	cap_free(&c);
	ck_assert_int_eq(o.verify, 1);
}
END_TEST

START_TEST(args_host_form)
{
	struct cli_flash_opts o;
	struct cap c;
	ck_assert_int_eq(PARSE(&o, &c, "--host", "192.168.4.1:8080", "app.hex"), 0);
	cap_free(&c);
	ck_assert_ptr_null(o.device);
	ck_assert_str_eq(o.host, "192.168.4.1");
	ck_assert_uint_eq(o.port, 8080);
	ck_assert_str_eq(o.image, "app.hex");
	ck_assert_int_eq(PARSE(&o, &c, "app.bin", "-H", "espstm.local"), 0);
	cap_free(&c);
	ck_assert_str_eq(o.host, "espstm.local");
	ck_assert_uint_eq(o.port, 80);
	ck_assert_int_eq(PARSE(&o, &c, "--host=[fe80::1%eth0]:81", "app.bin"), 0);
	cap_free(&c);
	ck_assert_str_eq(o.host, "fe80::1%eth0");
	ck_assert_uint_eq(o.port, 81);
}
END_TEST

START_TEST(args_usage_errors)
{
	USAGE_FAILS("missing DEVICE and IMAGE", "-v");
	USAGE_FAILS("missing IMAGE", "ttySTM0");
	USAGE_FAILS("unexpected argument 'c.bin'", "ttySTM0", "a.bin", "c.bin");
	USAGE_FAILS("missing IMAGE", "--host", "h");
	USAGE_FAILS("with --host give only IMAGE", "--host", "h", "ttySTM0", "a.bin");
	USAGE_FAILS("not a device name", "/dev/usb/tty0", "a.bin");
	USAGE_FAILS("not a device name", "/dev/", "a.bin");
	USAGE_FAILS("multiple of 4", "ttySTM0", "a.bin", "--address", "0x08000002");
	USAGE_FAILS("--address '0x1_0'", "ttySTM0", "a.bin", "--address", "0x1_0");
	USAGE_FAILS("--address '010'", "ttySTM0", "a.bin", "--address", "010"); /* no octal */
	USAGE_FAILS("--address '0x100000000'", "ttySTM0", "a.bin", "-a", "0x100000000");
	USAGE_FAILS("--address '-4'", "ttySTM0", "a.bin", "-a", "-4");
	/* Intel HEX carries its own addresses: by name, or by --format */
	USAGE_FAILS("--address is for binary images", "ttySTM0", "a.HEX", "-a", "0x08000000");
	USAGE_FAILS("--address is for binary images", "ttySTM0", "a.bin", "-a", "0x08000000", "-f",
	            "hex");
	USAGE_FAILS("--format 'elf'", "ttySTM0", "a.bin", "--format", "elf");
	USAGE_FAILS("--target '256'", "ttySTM0", "a.bin", "--target", "256");
	USAGE_FAILS("--baud '300'", "ttySTM0", "a.bin", "--baud", "300");
	USAGE_FAILS("--baud '4000001'", "ttySTM0", "a.bin", "--baud", "4000001");
	USAGE_FAILS("--host 'h:0'", "--host", "h:0", "a.bin");
	USAGE_FAILS("--host 'https://h'", "--host", "https://h", "a.bin");
	USAGE_FAILS("--progress 'fancy'", "ttySTM0", "a.bin", "--progress", "fancy");
	USAGE_FAILS("unknown option '-x'", "ttySTM0", "a.bin", "-x");
	USAGE_FAILS("unknown or ambiguous option '--colour'", "ttySTM0", "a.bin", "--colour=red");
	USAGE_FAILS("needs a value", "ttySTM0", "a.bin", "--address");
	USAGE_FAILS("empty IMAGE", "ttySTM0", "");
}
END_TEST

START_TEST(args_password_refused)
{
	/* every way of putting a password on the command line is refused, naming the safe
	 * ways, and the secret itself is never echoed */
	const char *const forms[][4] = {
	    {"ttySTM0", "a.bin", "--password=hunter2", NULL},
	    {"ttySTM0", "a.bin", "--password", "hunter2"},
	    {"--password", "hunter2", "ttySTM0", "a.bin"},
	    {"ttySTM0", "a.bin", "-phunter2", NULL},
	    {"ttySTM0", "a.bin", "-p", "hunter2"},
	};
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		struct cli_flash_opts o;
		struct cap c;
		const char *args[5] = {forms[i][0], forms[i][1], forms[i][2], forms[i][3], NULL};
		int r = parse_v(&o, &c, args);
		ck_assert_int_eq(r, -CLI_FLASH_EXIT_USAGE);
		ck_assert_msg(strstr(c.err, "is not accepted"), "form %zu: %s", i, c.err);
		ck_assert_msg(strstr(c.err, "--password-file"), "form %zu: %s", i, c.err);
		ck_assert_msg(strstr(c.err, "ESPSTM_PASSWORD"), "form %zu: %s", i, c.err);
		ck_assert_msg(!strstr(c.err, "hunter2"), "form %zu echoes the secret: %s", i,
		              c.err);
		cap_free(&c);
	}
	/* the value of an option that takes one may start with -p: a file name */
	struct cli_flash_opts o;
	struct cap c;
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin", "-P", "-pw.txt"), 0);
	ck_assert_str_eq(o.password_file, "-pw.txt");
	cap_free(&c);
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin", "--password-file", "-p"), 0);
	ck_assert_str_eq(o.password_file, "-p");
	cap_free(&c);
}
END_TEST

START_TEST(args_help)
{
	struct cli_flash_opts o;
	struct cap c;
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "--help"), 1);
	ck_assert_ptr_nonnull(strstr(c.out, "Usage: espstm flash DEVICE IMAGE"));
	ck_assert_ptr_nonnull(strstr(c.out, "--password-file"));
	/* the exit statuses are documented in the help */
	ck_assert_ptr_nonnull(strstr(c.out, "77 password refused"));
	ck_assert_ptr_nonnull(strstr(c.out, "69 espstmd or the bridge not reachable"));
	ck_assert_ptr_nonnull(strstr(c.out, "--no-verify"));
	ck_assert_ptr_nonnull(strstr(c.out, "NOT"));
	ck_assert_uint_eq(c.ne, 0);
	cap_free(&c);
	ck_assert_int_eq(PARSE(&o, &c, "-h"), 1);
	cap_free(&c);
}
END_TEST

START_TEST(host_parsing)
{
	char h[64];
	unsigned p;
	static const struct {
		const char *in, *host;
		unsigned port;
	} ok[] = {
	    {"192.168.4.1", "192.168.4.1", 80},
	    {"192.168.4.1:8080", "192.168.4.1", 8080},
	    {"espstm-1a2b.local:65535", "espstm-1a2b.local", 65535},
	    {"http://10.0.0.2:81/", "10.0.0.2", 81},
	    {"HTTP://bridge", "bridge", 80},
	    {"[::1]:8080", "::1", 8080},
	    {"[::1]", "::1", 80},
	    {"fe80::2", "fe80::2", 80},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		ck_assert_msg(cli_flash_parse_host(ok[i].in, h, sizeof h, &p) == 0, "%s", ok[i].in);
		ck_assert_str_eq(h, ok[i].host);
		ck_assert_uint_eq(p, ok[i].port);
	}
	static const char *const bad[] = {"",       ":80",   "h:",        "h:65536", "h:8x",
	                                  "h:-1",   "[::1",  "[::1]x",    "a b",     "https://h",
	                                  "u@h:80", "h/x:1", "[zz::1]:80"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(cli_flash_parse_host(bad[i], h, sizeof h, &p) == -EINVAL, "'%s'",
		              bad[i]);
	char small[4];
	ck_assert_int_eq(cli_flash_parse_host("abcd", small, sizeof small, &p), -ENAMETOOLONG);
	ck_assert_int_eq(cli_flash_parse_host("abc", small, sizeof small, &p), 0);
}
END_TEST

START_TEST(format_detection)
{
	ck_assert_int_eq(cli_flash_detect_format("app.hex"), CLI_FMT_HEX);
	ck_assert_int_eq(cli_flash_detect_format("dir/APP.HEX"), CLI_FMT_HEX);
	ck_assert_int_eq(cli_flash_detect_format("a.ihex"), CLI_FMT_HEX);
	ck_assert_int_eq(cli_flash_detect_format("a.ihx"), CLI_FMT_HEX);
	ck_assert_int_eq(cli_flash_detect_format("app.bin"), CLI_FMT_BIN);
	ck_assert_int_eq(cli_flash_detect_format("app"), CLI_FMT_BIN);
	ck_assert_int_eq(cli_flash_detect_format("app.hex.bin"), CLI_FMT_BIN);
	ck_assert_int_eq(cli_flash_detect_format("hex.d/app"), CLI_FMT_BIN);
	ck_assert_int_eq(cli_flash_detect_format(".hex"), CLI_FMT_BIN); /* a hidden file */

	static const uint8_t elf[] = {0x7F, 'E', 'L', 'F', 1, 1, 1, 0};
	const char *m = cli_flash_check_head(elf, sizeof elf, CLI_FMT_BIN);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_nonnull(strstr(m, "objcopy"));
	ck_assert_ptr_nonnull(cli_flash_check_head(elf, sizeof elf, CLI_FMT_HEX));
	static const uint8_t vt[] = {0x00, 0x40, 0x00, 0x20, 0x31, 0x01, 0x00, 0x08};
	ck_assert_ptr_null(cli_flash_check_head(vt, sizeof vt, CLI_FMT_BIN));
	ck_assert_ptr_nonnull(cli_flash_check_head(vt, sizeof vt, CLI_FMT_HEX));
	static const uint8_t hx[] = "\r\n :020000040800F2";
	ck_assert_ptr_null(cli_flash_check_head(hx, sizeof hx - 1, CLI_FMT_HEX));
}
END_TEST

/* ------------------------------------------------------------ Intel HEX */

/* One record ":LLAAAATT<data>CC" + CRLF appended to out. */
static void rec(char *out, size_t cap, unsigned addr, unsigned type, const uint8_t *d, unsigned n)
{
	unsigned sum = n + (addr >> 8) + (addr & 0xFF) + type;
	size_t l = strlen(out);
	l += (size_t)snprintf(out + l, cap - l, ":%02X%04X%02X", n, addr & 0xFFFF, type);
	for (unsigned i = 0; i < n; i++) {
		l += (size_t)snprintf(out + l, cap - l, "%02X", d[i]);
		sum += d[i];
	}
	snprintf(out + l, cap - l, "%02X\r\n", (-sum) & 0xFF);
}

static int scan(const char *text, size_t piece, uint32_t *a, uint32_t *t, char *err, size_t cap)
{
	struct cli_hex_scan s;
	cli_hex_scan_init(&s);
	size_t n = strlen(text);
	for (size_t off = 0; off < n; off += piece)
		cli_hex_scan_feed(&s, text + off, n - off < piece ? n - off : piece);
	int r = cli_hex_scan_finish(&s, a, t);
	snprintf(err, cap, "%s", s.err);
	return r;
}

START_TEST(hex_scan_rules)
{
	static char text[4096];
	uint8_t d[16];
	char err[200];
	uint32_t a, t;
	for (int i = 0; i < 16; i++)
		d[i] = (uint8_t)(i * 7 + 1);
	/* base 0x0801, records at 0x08010002.., then a gap: address of the first record,
	 * data bytes counted (the gap is not: the bridge writes it only inside erase units
	 * the records touch) */
	text[0] = '\0';
	rec(text, sizeof text, 0, 4, (const uint8_t[]){0x08, 0x01}, 2);
	rec(text, sizeof text, 0x0002, 0, d, 16);
	rec(text, sizeof text, 0x0012, 0, d, 10);
	rec(text, sizeof text, 0x1000, 0, d, 16); /* gap 0x1C..0x1000 counted as 0xFF fill */
	rec(text, sizeof text, 0, 5, (const uint8_t[]){0x08, 0x00, 0x01, 0x31}, 4);
	rec(text, sizeof text, 0, 1, NULL, 0);
	/* whole, and one byte at a time: the same result */
	ck_assert_int_eq(scan(text, 100000, &a, &t, err, sizeof err), 0);
	ck_assert_uint_eq(a, 0x08010002u);
	ck_assert_uint_eq(t, 16 + 10 + 16);
	uint32_t a1, t1;
	ck_assert_int_eq(scan(text, 1, &a1, &t1, err, sizeof err), 0);
	ck_assert_uint_eq(a1, a);
	ck_assert_uint_eq(t1, t);

	/* a record below the previous data: refused as the bridge would */
	text[0] = '\0';
	rec(text, sizeof text, 0, 4, (const uint8_t[]){0x08, 0x00}, 2);
	rec(text, sizeof text, 0x0100, 0, d, 16);
	rec(text, sizeof text, 0x0108, 0, d, 16);
	rec(text, sizeof text, 0, 1, NULL, 0);
	ck_assert_int_eq(scan(text, 7, &a, &t, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, "ascending") && strstr(err, "0x08000108"), "%s", err);

	/* checksum error on line 2: named */
	text[0] = '\0';
	rec(text, sizeof text, 0, 4, (const uint8_t[]){0x08, 0x00}, 2);
	rec(text, sizeof text, 0x0000, 0, d, 16);
	rec(text, sizeof text, 0, 1, NULL, 0);
	char *line2 = strchr(text, '\n') + 1;
	char *cs = strchr(line2, '\r') - 1; /* last checksum digit */
	*cs = *cs == '0' ? '1' : '0';
	ck_assert_int_eq(scan(text, 5, &a, &t, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, "line 2"), "%s", err);

	/* truncated: no end-of-file record */
	text[0] = '\0';
	rec(text, sizeof text, 0x0000, 0, d, 16);
	ck_assert_int_eq(scan(text, 64, &a, &t, err, sizeof err), -EINVAL);
	ck_assert_msg(err[0] != '\0', "no message for a truncated file");

	/* only an end-of-file record: no data */
	text[0] = '\0';
	rec(text, sizeof text, 0, 1, NULL, 0);
	ck_assert_int_eq(scan(text, 64, &a, &t, err, sizeof err), -EINVAL);
	ck_assert_msg(strstr(err, "no data"), "%s", err);

	/* not hex at all */
	ck_assert_int_eq(scan("hello\n", 64, &a, &t, err, sizeof err), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ password */

static char *write_tmp(const char *content, size_t n)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/cli_flash_test.XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, n), (ssize_t)n);
	close(fd);
	return path;
}

START_TEST(password_sources)
{
	char pw[CLI_FLASH_PASS_MAX + 1], msg[200];
	char *p = write_tmp("s3cret pass\r\nsecond line\n", 26);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, NULL), 0);
	ck_assert_str_eq(pw, "s3cret pass");
	unlink(p);
	p = write_tmp("nonl", 4);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, NULL), 0);
	ck_assert_str_eq(pw, "nonl");
	unlink(p);
	p = write_tmp("\nlater\n", 7);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "empty"));
	unlink(p);
	char longpw[80];
	memset(longpw, 'x', sizeof longpw);
	p = write_tmp(longpw, 65);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "longer than 64"));
	unlink(p);
	p = write_tmp(longpw, 64);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, NULL), 0);
	ck_assert_uint_eq(strlen(pw), 64);
	unlink(p);
	p = write_tmp("a\tb\n", 4);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(msg, "control character"));
	unlink(p);
	ck_assert_int_eq(
	    cli_flash_read_password("/nonexistent/pw", pw, sizeof pw, msg, sizeof msg, NULL),
	    -ENOENT);
	ck_assert_ptr_nonnull(strstr(msg, "/nonexistent/pw"));

	/* the environment, when no file is given */
	setenv(CLI_FLASH_PASSWORD_ENV, "from-env", 1);
	ck_assert_int_eq(cli_flash_read_password(NULL, pw, sizeof pw, msg, sizeof msg, NULL), 0);
	ck_assert_str_eq(pw, "from-env");
	setenv(CLI_FLASH_PASSWORD_ENV, "", 1);
	ck_assert_int_eq(cli_flash_read_password(NULL, pw, sizeof pw, msg, sizeof msg, NULL),
	                 -ENOENT);
	ck_assert_ptr_nonnull(strstr(msg, "--password-file"));
	unsetenv(CLI_FLASH_PASSWORD_ENV);
	ck_assert_int_eq(cli_flash_read_password(NULL, pw, sizeof pw, msg, sizeof msg, NULL),
	                 -ENOENT);
}
END_TEST

/* Read p's password with a warning stream; returns what was warned (caller frees). */
static char *read_warned(const char *p, int want_rc)
{
	char pw[CLI_FLASH_PASS_MAX + 1], msg[200];
	char *w = NULL;
	size_t wn = 0;
	FILE *f = open_memstream(&w, &wn);
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(cli_flash_read_password(p, pw, sizeof pw, msg, sizeof msg, f), want_rc);
	fclose(f);
	return w;
}

START_TEST(password_file_mode)
{
	/* like ssh with its keys: a password file its group or others may access is read,
	 * with a warning naming the mode and the fix; 0600 and 0400 are quiet */
	static const struct {
		unsigned mode;
		const char *want; /* NULL: no warning */
	} cases[] = {
	    {0600, NULL},          {0400, NULL},          {0640, "its group (mode 0640)"},
	    {0604, "other users"}, {0644, "other users"}, {0660, "its group (mode 0660)"},
	    {0602, "other users"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *p = write_tmp("pw\n", 3);
		ck_assert_int_eq(chmod(p, cases[i].mode), 0);
		char *w = read_warned(p, 0);
		if (!cases[i].want) {
			ck_assert_msg(w[0] == '\0', "mode %04o: unexpected warning '%s'",
			              cases[i].mode, w);
		} else {
			ck_assert_msg(strstr(w, "warning") && strstr(w, cases[i].want) &&
			                  strstr(w, "chmod 600") && strstr(w, p),
			              "mode %04o: warning '%s' lacks '%s'", cases[i].mode, w,
			              cases[i].want);
			ck_assert_msg(!strstr(w, "pw\n"), "the warning shows the password: %s", w);
		}
		free(w);
		unlink(p);
	}
	/* a bad file still fails as before, warned or not */
	char *p = write_tmp("\n", 1);
	ck_assert_int_eq(chmod(p, 0644), 0);
	free(read_warned(p, -EINVAL));
	unlink(p);
	/* the environment: nothing to warn about */
	setenv(CLI_FLASH_PASSWORD_ENV, "env-pw", 1);
	char *w = read_warned(NULL, 0);
	ck_assert_str_eq(w, "");
	free(w);
	unsetenv(CLI_FLASH_PASSWORD_ENV);
}
END_TEST

/* ------------------------------------------------------------ espstmd, URL */

START_TEST(bridge_from_status)
{
	char host[64], msg[200];
	unsigned port = 0;
	const char *ans = "{\"ok\":true,\"devices\":[{\"name\":\"ttySTM1\",\"host\":\"10.0.0.9\","
	                  "\"port\":2217,\"http_port\":8081},{\"name\":\"ttySTM0\",\"host\":"
	                  "\"espstm.local\",\"port\":2217,\"http_port\":80}]}";
	struct cj *a = cj_parse(ans, strlen(ans), NULL, 0);
	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(
	    cli_flash_bridge_from_status(a, "ttySTM0", host, sizeof host, &port, msg, sizeof msg),
	    0);
	ck_assert_str_eq(host, "espstm.local");
	ck_assert_uint_eq(port, 80);
	ck_assert_int_eq(
	    cli_flash_bridge_from_status(a, "ttySTM1", host, sizeof host, &port, msg, sizeof msg),
	    0);
	ck_assert_str_eq(host, "10.0.0.9");
	ck_assert_uint_eq(port, 8081);
	ck_assert_int_eq(
	    cli_flash_bridge_from_status(a, "ttySTM2", host, sizeof host, &port, msg, sizeof msg),
	    -EPROTO);
	ck_assert_ptr_nonnull(strstr(msg, "ttySTM2"));
	cj_free(a);
	ans = "{\"ok\":true,\"devices\":[{\"name\":\"ttySTM0\",\"host\":\"h\",\"http_port\":0}]}";
	a = cj_parse(ans, strlen(ans), NULL, 0);
	ck_assert_int_eq(
	    cli_flash_bridge_from_status(a, "ttySTM0", host, sizeof host, &port, msg, sizeof msg),
	    -EPROTO);
	ck_assert_ptr_nonnull(strstr(msg, "http_port"));
	cj_free(a);
	ans = "{\"ok\":true,\"devices\":[{\"name\":\"ttySTM0\",\"host\":\"\",\"http_port\":80}]}";
	a = cj_parse(ans, strlen(ans), NULL, 0);
	ck_assert_int_eq(
	    cli_flash_bridge_from_status(a, "ttySTM0", host, sizeof host, &port, msg, sizeof msg),
	    -EPROTO);
	cj_free(a);
}
END_TEST

START_TEST(query_and_url)
{
	struct cli_flash_opts o;
	struct cap c;
	char q[200], u[300];
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin", "-a", "0x08004000", "-v"), 0);
	cap_free(&c);
	cli_flash_query(q, sizeof q, &o, CLI_FMT_BIN);
	ck_assert_str_eq(q, "format=bin&address=0x08004000&verify=1&go=0&unprotect=0");
	/* verify=1 without --verify: the default */
	ck_assert_int_eq(PARSE(&o, &c, "ttySTM0", "a.bin"), 0);
	cap_free(&c);
	cli_flash_query(q, sizeof q, &o, CLI_FMT_BIN);
	ck_assert_str_eq(q, "format=bin&verify=1&go=0&unprotect=0");
	ck_assert_int_eq(
	    PARSE(&o, &c, "ttySTM0", "a.hex", "-g", "--unprotect", "-b", "57600", "--no-verify"),
	    0);
	cap_free(&c);
	cli_flash_query(q, sizeof q, &o, CLI_FMT_HEX);
	ck_assert_str_eq(q, "format=hex&verify=0&go=1&unprotect=1&baud=57600");
	ck_assert_int_eq(cli_flash_url(u, sizeof u, "10.0.0.2", 8080, 1, q), 0);
	ck_assert_str_eq(u, "http://10.0.0.2:8080/api/targets/1/flash?format=hex&verify=0&go=1&"
	                    "unprotect=1&baud=57600");
	ck_assert_int_eq(cli_flash_url(u, sizeof u, "::1", 80, 0, NULL), 0);
	ck_assert_str_eq(u, "http://[::1]:80/api/targets/0/flash");
	ck_assert_int_eq(cli_flash_url(u, 20, "10.0.0.2", 80, 0, NULL), -ENAMETOOLONG);
}
END_TEST

/* ------------------------------------------------------------ answers */

static const char get_writing[] =
    "{\"target\":0,\"state\":\"writing\",\"format\":\"bin\",\"address\":\"0x08000000\","
    "\"verify\":true,\"go\":false,\"bytes_total\":65536,\"bytes_received\":20480,"
    "\"bytes_erased\":65536,\"bytes_written\":19968,\"bytes_verified\":19712,"
    "\"device\":{\"pid\":\"0x410\",\"name\":\"STM32F10x medium-density\",\"family\":\"F1\","
    "\"flash_size\":131072,\"bootloader\":\"2.2\"},\"error\":null,\"step\":null,"
    "\"elapsed_ms\":4321}";

START_TEST(status_parsing)
{
	struct cli_flash_status st;
	ck_assert_int_eq(cli_flash_parse_status(get_writing, strlen(get_writing), &st), 0);
	ck_assert_int_eq(st.json, 1);
	ck_assert_int_eq(st.ok, -1);
	ck_assert_int_eq(st.state, CFS_WRITING);
	ck_assert_int_eq(st.verify, 1);
	ck_assert_int_eq(st.go, 0);
	ck_assert_int_eq(st.total, 65536);
	ck_assert_uint_eq(st.received, 20480);
	ck_assert_uint_eq(st.erased, 65536);
	ck_assert_uint_eq(st.written, 19968);
	ck_assert_uint_eq(st.verified, 19712);
	ck_assert_uint_eq(st.elapsed_ms, 4321);
	ck_assert_str_eq(st.address, "0x08000000");
	ck_assert_str_eq(st.format, "bin");
	ck_assert_str_eq(st.dev_name, "STM32F10x medium-density");
	ck_assert_str_eq(st.pid, "0x410");
	ck_assert_str_eq(st.family, "F1");
	ck_assert_str_eq(st.bootloader, "2.2");
	ck_assert_uint_eq(st.flash_size, 131072);
	ck_assert_str_eq(st.error, "");

	/* a failed run: error and step; control characters of the message replaced */
	const char *f = "{\"ok\":false,\"state\":\"failed\",\"bytes_total\":null,\"device\":null,"
	                "\"error\":\"verify mismatch at 0x08000100\\u0007\\n\",\"step\":"
	                "\"verifying\"}";
	ck_assert_int_eq(cli_flash_parse_status(f, strlen(f), &st), 0);
	ck_assert_int_eq(st.ok, 0);
	ck_assert_int_eq(st.state, CFS_FAILED);
	ck_assert_int_eq(st.total, -1);
	ck_assert_str_eq(st.error, "verify mismatch at 0x08000100??");
	ck_assert_str_eq(st.step, "verifying");
	ck_assert_str_eq(st.dev_name, "");

	/* an error answer of the API (401 ...): only "error" */
	const char *e = "{\"error\":\"wrong user name or password\"}";
	ck_assert_int_eq(cli_flash_parse_status(e, strlen(e), &st), 0);
	ck_assert_int_eq(st.state, CFS_UNKNOWN);
	ck_assert_str_eq(st.error, "wrong user name or password");

	/* not JSON / not an object */
	ck_assert_int_eq(cli_flash_parse_status("<html>", 6, &st), -EPROTO);
	ck_assert_int_eq(st.json, 0);
	ck_assert_int_eq(st.total, -1);
	ck_assert_int_eq(cli_flash_parse_status("[1]", 3, &st), -EPROTO);
	ck_assert_int_eq(cli_flash_parse_status(NULL, 0, &st), -EPROTO);
	ck_assert_int_eq(cli_flash_state_of("verifying"), CFS_VERIFYING);
	ck_assert_int_eq(cli_flash_state_of("Writing"), CFS_UNKNOWN);
	ck_assert_str_eq(cli_flash_state_name(CFS_STARTING), "starting");
}
END_TEST

static int outcome_of(long code, const char *body, int verify, long retry, char *msg, size_t cap)
{
	struct cli_flash_status st;
	cli_flash_parse_status(body, strlen(body), &st);
	return cli_flash_outcome(code, &st, verify, NULL, retry, 0, msg, cap);
}

/* The outcome of a 200 answer body for an image described by fmt/bytes/span. */
static int counted(const char *body, int verify, enum cli_flash_format fmt, uint64_t bytes,
                   uint64_t span, char *msg, size_t cap)
{
	struct cli_flash_status st;
	struct cli_flash_expect e = {.fmt = fmt, .bytes = bytes, .span = span};
	ck_assert_int_eq(cli_flash_parse_status(body, strlen(body), &st), 0);
	return cli_flash_outcome(200, &st, verify, &e, -1, 0, msg, cap);
}

/* A "done" answer with these counts. */
static const char *done_body(int verify, long long total, unsigned long long received,
                             unsigned long long written, unsigned long long verified)
{
	static char b[400];
	char t[24];
	if (total < 0)
		snprintf(t, sizeof t, "null");
	else
		snprintf(t, sizeof t, "%lld", total);
	snprintf(b, sizeof b,
	         "{\"ok\":true,\"state\":\"done\",\"verify\":%s,\"bytes_total\":%s,"
	         "\"bytes_received\":%llu,\"bytes_written\":%llu,\"bytes_verified\":%llu}",
	         verify ? "true" : "false", t, received, written, verified);
	return b;
}

START_TEST(outcome_counts)
{
	char m[512];
	/* bin: everything equal to the file's size: success, with and without verify */
	ck_assert_int_eq(
	    counted(done_body(1, 1001, 1001, 1001, 1001), 1, CLI_FMT_BIN, 1001, 0, m, sizeof m), 0);
	ck_assert_int_eq(
	    counted(done_body(0, 1001, 1001, 1001, 0), 0, CLI_FMT_BIN, 1001, 0, m, sizeof m), 0);
	/* bin: the bridge's total is not the file's size (another image, a truncated upload
	 * taken as whole): failed, naming both */
	ck_assert_int_eq(
	    counted(done_body(1, 1000, 1000, 1000, 1000), 1, CLI_FMT_BIN, 1001, 0, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(m, "1000") && strstr(m, "1001"), "%s", m);
	ck_assert_int_eq(
	    counted(done_body(0, 1004, 1001, 1004, 0), 0, CLI_FMT_BIN, 1001, 0, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(m, "1004 bytes in total"), "%s", m);
	/* bin: fewer bytes received or written than the image */
	ck_assert_int_eq(
	    counted(done_body(0, 1001, 512, 1001, 0), 0, CLI_FMT_BIN, 1001, 0, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(m, "took 512 image bytes, but the image has 1001 bytes"), "%s", m);
	ck_assert_int_eq(
	    counted(done_body(0, 1001, 1001, 768, 0), 0, CLI_FMT_BIN, 1001, 0, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(m, "768 of 1001 bytes written"), "%s", m);
	/* no bytes_total in a done answer */
	ck_assert_int_eq(
	    counted(done_body(0, -1, 1001, 1001, 0), 0, CLI_FMT_BIN, 1001, 0, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "no bytes_total"));

	/* Intel HEX: 8192 data bytes over a span of 8192: total 8192 */
	ck_assert_int_eq(
	    counted(done_body(1, 8192, 8192, 8192, 8192), 1, CLI_FMT_HEX, 8192, 8192, m, sizeof m),
	    0);
	/* short gaps filled and the start rounded down to the unit: total above the data bytes,
	 * at most span + 31 */
	ck_assert_int_eq(
	    counted(done_body(1, 300 + 31, 200, 331, 331), 1, CLI_FMT_HEX, 200, 300, m, sizeof m),
	    0);
	ck_assert_int_eq(
	    counted(done_body(1, 300 + 32, 200, 332, 332), 1, CLI_FMT_HEX, 200, 300, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(m, "332 bytes programmed") && strstr(m, "200..331"), "%s", m);
	/* a far gap skipped: total below the span, not below the data */
	ck_assert_int_eq(
	    counted(done_body(0, 4096, 4096, 4096, 0), 0, CLI_FMT_HEX, 4096, 0x10000, m, sizeof m),
	    0);
	ck_assert_int_eq(
	    counted(done_body(0, 4000, 4000, 4000, 0), 0, CLI_FMT_HEX, 4096, 0x10000, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(m, "Intel HEX records hold 4096 data bytes"), "%s", m);
	/* verify asked (the default) but not every byte verified: that message wins */
	ck_assert_int_eq(
	    counted(done_body(1, 8192, 8192, 8192, 4096), 1, CLI_FMT_HEX, 8192, 8192, m, sizeof m),
	    CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "4096 of 8192 bytes verified"));
	/* a failed answer is failed whatever its counts */
	ck_assert_int_eq(counted("{\"ok\":false,\"state\":\"failed\",\"bytes_total\":8}", 0,
	                         CLI_FMT_BIN, 8, 0, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
}
END_TEST

START_TEST(outcome_exit_statuses)
{
	char m[512];
	const char *done_v = "{\"ok\":true,\"state\":\"done\",\"verify\":true,\"bytes_total\":"
	                     "1024,\"bytes_written\":1024,\"bytes_verified\":1024}";
	const char *done_nv = "{\"ok\":true,\"state\":\"done\",\"verify\":false,\"bytes_total\":"
	                      "1024,\"bytes_written\":1024,\"bytes_verified\":0}";
	ck_assert_int_eq(outcome_of(200, done_v, 1, -1, m, sizeof m), 0);
	ck_assert_str_eq(m, "");
	ck_assert_int_eq(outcome_of(200, done_nv, 0, -1, m, sizeof m), 0);
	/* --verify asked but the answer does not confirm it: not success */
	ck_assert_int_eq(outcome_of(200, done_nv, 1, -1, m, sizeof m), CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "verify was not confirmed"));
	const char *short_v = "{\"ok\":true,\"state\":\"done\",\"verify\":true,\"bytes_total\":"
	                      "1024,\"bytes_written\":1024,\"bytes_verified\":768}";
	ck_assert_int_eq(outcome_of(200, short_v, 1, -1, m, sizeof m), CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "768 of 1024"));
	/* 200 with anything but done */
	ck_assert_int_eq(outcome_of(200, "{\"ok\":false,\"state\":\"failed\",\"error\":\"x\"}", 0,
	                            -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_int_eq(outcome_of(200, "not json", 0, -1, m, sizeof m), CLI_FLASH_EXIT_FAILED);

	ck_assert_int_eq(
	    outcome_of(401, "{\"error\":\"wrong user name or password\"}", 1, -1, m, sizeof m),
	    CLI_FLASH_EXIT_NOPERM);
	ck_assert_ptr_nonnull(strstr(m, "refused the password"));
	ck_assert_ptr_nonnull(strstr(m, "ESPSTM_PASSWORD"));
	ck_assert_int_eq(
	    outcome_of(403, "{\"error\":\"need X-Espstm-Request\"}", 1, -1, m, sizeof m),
	    CLI_FLASH_EXIT_NOPERM);
	ck_assert_ptr_nonnull(strstr(m, "403"));
	ck_assert_int_eq(outcome_of(429, "{\"error\":\"too many\"}", 1, 4, m, sizeof m),
	                 CLI_FLASH_EXIT_NOPERM);
	ck_assert_ptr_nonnull(strstr(m, "try again in 4 s"));
	ck_assert_int_eq(outcome_of(429, "", 1, -1, m, sizeof m), CLI_FLASH_EXIT_NOPERM);
	ck_assert_int_eq(outcome_of(409, "{\"error\":\"busy\"}", 1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "already running"));
	ck_assert_int_eq(outcome_of(413,
	                            "{\"ok\":false,\"state\":\"failed\",\"error\":\"image of "
	                            "196608 bytes larger than the flash\"}",
	                            1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "does not fit"));
	ck_assert_ptr_nonnull(strstr(m, "196608"));
	ck_assert_int_eq(outcome_of(423, "{\"error\":\"read protection\"}", 1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "--unprotect"));
	ck_assert_int_eq(outcome_of(400,
	                            "{\"state\":\"failed\",\"error\":\"Intel HEX line 2: "
	                            "checksum mismatch\",\"step\":\"upload\"}",
	                            1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "line 2"));
	ck_assert_ptr_nonnull(strstr(m, "while upload"));
	ck_assert_int_eq(outcome_of(502,
	                            "{\"state\":\"failed\",\"error\":\"no answer to 0x7F\","
	                            "\"step\":\"connecting\"}",
	                            1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "AN3155"));
	ck_assert_ptr_nonnull(strstr(m, "no answer to 0x7F"));
	ck_assert_int_eq(outcome_of(404, "", 1, -1, m, sizeof m), CLI_FLASH_EXIT_FAILED);
	ck_assert_int_eq(outcome_of(501, "{\"error\":\"x\"}", 1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_int_eq(outcome_of(500, "{\"error\":\"uart\"}", 1, -1, m, sizeof m),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_ptr_nonnull(strstr(m, "HTTP 500"));
	ck_assert_int_eq(outcome_of(0, "", 1, -1, m, sizeof m), CLI_FLASH_EXIT_UNAVAILABLE);
}
END_TEST

/* ------------------------------------------------------------ progress */

/* --stage: the query, the "staging" state, a CRC mismatch (65), an aborted run (409). */
START_TEST(stage_and_abort)
{
	struct cli_flash_opts o;
	struct cap c;
	char q[200], msg[512];
	ck_assert_int_eq(PARSE(&o, &c, "--host", "10.0.0.2", "a.bin", "--stage"), 0);
	cap_free(&c);
	ck_assert_int_eq(o.stage, 1);
	o.crc32 = 0x0BADCAFEu;
	cli_flash_query(q, sizeof q, &o, CLI_FMT_BIN);
	ck_assert_str_eq(q, "format=bin&verify=1&go=0&unprotect=0&stage=1&crc32=0x0BADCAFE");
	ck_assert_int_eq(PARSE(&o, &c, "--host", "10.0.0.2", "a.bin"), 0);
	cap_free(&c);
	ck_assert_int_eq(o.stage, 0);
	cli_flash_query(q, sizeof q, &o, CLI_FMT_BIN);
	ck_assert(strstr(q, "stage") == NULL && strstr(q, "crc32") == NULL);

	struct cli_flash_status st;
	const char *g =
	    "{\"state\":\"staging\",\"stage\":true,\"bytes_staged\":4096,\"crc32\":null}";
	ck_assert_int_eq(cli_flash_parse_status(g, strlen(g), &st), 0);
	ck_assert_int_eq(st.state, CFS_STAGING);
	ck_assert_int_eq(st.stage, 1);
	ck_assert_uint_eq(st.staged, 4096);
	ck_assert_str_eq(st.crc32, "");
	ck_assert_str_eq(cli_flash_state_name(CFS_STAGING), "staging");
	struct cli_flash_progress p;
	cli_flash_progress_init(&p, 8192, 1, 0.0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.5, msg, sizeof msg), 1);
	ck_assert_msg(strstr(msg, "staging") != NULL, "%s", msg);

	/* 400 with the bridge's CRC differing from the file's: damaged on the way, 65 */
	const char *bad = "{\"ok\":false,\"state\":\"failed\",\"error\":\"image CRC-32 0x11111111 "
	                  "does not match crc32=0x22222222: the STM32 was not touched\","
	                  "\"step\":\"upload\",\"stage\":true,\"crc32\":\"0x11111111\"}";
	struct cli_flash_expect e = {
	    .fmt = CLI_FMT_BIN, .bytes = 10, .has_crc = 1, .crc = 0x22222222u};
	cli_flash_parse_status(bad, strlen(bad), &st);
	ck_assert_int_eq(cli_flash_outcome(400, &st, 1, &e, -1, 0, msg, sizeof msg),
	                 CLI_FLASH_EXIT_DATAERR);
	ck_assert_msg(strstr(msg, "damaged") && strstr(msg, "0x22222222"), "%s", msg);
	/* the same CRC (another 400 reason): refused, 1 */
	e.crc = 0x11111111u;
	ck_assert_int_eq(cli_flash_outcome(400, &st, 1, &e, -1, 0, msg, sizeof msg),
	                 CLI_FLASH_EXIT_FAILED);
	/* without --stage: 1 */
	ck_assert_int_eq(cli_flash_outcome(400, &st, 1, NULL, -1, 0, msg, sizeof msg),
	                 CLI_FLASH_EXIT_FAILED);

	/* 409 of an aborted run vs. 409 busy */
	const char *ab = "{\"ok\":false,\"state\":\"failed\",\"error\":\"aborted by the client\","
	                 "\"step\":\"writing\"}";
	cli_flash_parse_status(ab, strlen(ab), &st);
	ck_assert_int_eq(cli_flash_outcome(409, &st, 1, NULL, -1, 0, msg, sizeof msg),
	                 CLI_FLASH_EXIT_FAILED);
	ck_assert_msg(strstr(msg, "aborted by the client") && !strstr(msg, "busy"), "%s", msg);
	const char *busy = "{\"error\":\"a flash is already running on this target\"}";
	cli_flash_parse_status(busy, strlen(busy), &st);
	cli_flash_outcome(409, &st, 1, NULL, -1, 0, msg, sizeof msg);
	ck_assert_msg(strstr(msg, "busy") != NULL, "%s", msg);
}
END_TEST

START_TEST(formatting)
{
	char b[32];
	ck_assert_str_eq(cli_flash_fmt_bytes(b, sizeof b, 0), "0 B");
	ck_assert_str_eq(cli_flash_fmt_bytes(b, sizeof b, 1023), "1023 B");
	ck_assert_str_eq(cli_flash_fmt_bytes(b, sizeof b, 1024), "1.0 KiB");
	ck_assert_str_eq(cli_flash_fmt_bytes(b, sizeof b, 65536), "64.0 KiB");
	ck_assert_str_eq(cli_flash_fmt_bytes(b, sizeof b, 262144 + 512), "256.5 KiB");
	ck_assert_str_eq(cli_flash_fmt_bytes(b, sizeof b, 3 * 1024 * 1024 / 2), "1.50 MiB");
	ck_assert_str_eq(cli_flash_fmt_rate(b, sizeof b, 512), "512 B/s");
	ck_assert_str_eq(cli_flash_fmt_rate(b, sizeof b, 5222.4), "5.1 KiB/s");
	ck_assert_str_eq(cli_flash_fmt_rate(b, sizeof b, -1), "- B/s");
	ck_assert_str_eq(cli_flash_fmt_eta(b, sizeof b, 8.4), "0:08");
	ck_assert_str_eq(cli_flash_fmt_eta(b, sizeof b, 723), "12:03");
	ck_assert_str_eq(cli_flash_fmt_eta(b, sizeof b, 3723), "1:02:03");
	ck_assert_str_eq(cli_flash_fmt_eta(b, sizeof b, -1), "--:--");
	ck_assert_str_eq(cli_flash_fmt_eta(b, sizeof b, 1.0 / 0.0), "--:--");
}
END_TEST

static struct cli_flash_status at(enum cli_flash_state s, uint64_t w, uint64_t v)
{
	struct cli_flash_status st;
	memset(&st, 0, sizeof st);
	st.json = 1;
	st.state = s;
	st.total = 65536;
	st.written = w;
	st.verified = v;
	st.verify = 1;
	snprintf(st.dev_name, sizeof st.dev_name, "STM32F40xxx/41xxx");
	snprintf(st.pid, sizeof st.pid, "0x413");
	return st;
}

START_TEST(fraction_and_bar)
{
	struct cli_flash_progress p;
	cli_flash_progress_init(&p, 65536, 1, 100.0);
	struct cli_flash_status st = at(CFS_WRITING, 32768, 32768);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 0.5, 1e-9);
	st = at(CFS_VERIFYING, 65536, 0);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 0.5, 1e-9);
	st = at(CFS_DONE, 0, 0);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 1.0, 1e-9);
	cli_flash_progress_init(&p, 65536, 0, 100.0);
	st = at(CFS_WRITING, 16384, 0);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 0.25, 1e-9);
	/* counters beyond the total never give more than 100% */
	st = at(CFS_WRITING, 1 << 20, 0);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 1.0, 1e-9);
	/* the bridge's total wins over the estimate (Intel HEX: gaps, padding) */
	cli_flash_progress_init(&p, 60000, 0, 100.0);
	st = at(CFS_WRITING, 16384, 0);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 0.25, 1e-9);
	st.total = -1; /* not known yet: the estimate */
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 16384.0 / 60000.0, 1e-9);
	/* total from the answer when the caller did not know it */
	cli_flash_progress_init(&p, 0, 0, 100.0);
	st = at(CFS_WRITING, 16384, 0);
	ck_assert_double_eq_tol(cli_flash_fraction(&p, &st), 0.25, 1e-9);

	char line[256];
	for (int width = 20; width <= 200; width += 3) {
		cli_flash_progress_init(&p, 65536, 1, 100.0);
		st = at(CFS_ERASING, 0, 0);
		cli_flash_bar_line(&p, &st, 100.5, width, line, sizeof line);
		ck_assert_msg((int)strlen(line) <= width - 1, "width %d: '%s'", width, line);
		ck_assert_ptr_nonnull(strstr(line, "erasing"));
		st = at(CFS_WRITING, 16384, 16128);
		cli_flash_bar_line(&p, &st, 101.0, width, line, sizeof line); /* first write */
		st = at(CFS_VERIFYING, 32768, 32768);
		cli_flash_bar_line(&p, &st, 109.0, width, line, sizeof line);
		ck_assert_msg((int)strlen(line) <= width - 1, "width %d: '%s'", width, line);
		ck_assert_msg(strstr(line, "50%"), "width %d: '%s'", width, line);
		ck_assert_msg(strncmp(line, "write+verify", 12) == 0, "'%s'", line);
		if (width >= 80) {
			/* bar half full; rate: 32 KiB of work in 8 s since the first write; the
			 * rest takes as long again */
			ck_assert_msg(strstr(line, "32.0 KiB/64.0 KiB"), "'%s'", line);
			ck_assert_msg(strstr(line, "4.0 KiB/s"), "'%s'", line);
			ck_assert_msg(strstr(line, "ETA 0:08"), "'%s'", line);
			const char *lb = strchr(line, '['), *rb = strchr(line, ']');
			ck_assert_ptr_nonnull(lb);
			ck_assert_ptr_nonnull(rb);
			int n = (int)(rb - lb - 1), hashes = 0;
			for (const char *c = lb + 1; c < rb; c++)
				hashes += *c == '#';
			ck_assert_int_eq(hashes, n / 2);
		}
	}
	/* the bar's width does not jump while the figures change */
	cli_flash_progress_init(&p, 65536, 1, 100.0);
	st = at(CFS_WRITING, 256, 0);
	cli_flash_bar_line(&p, &st, 101.0, 80, line, sizeof line);
	size_t l1 = strlen(line);
	st = at(CFS_WRITING, 40000, 39936);
	cli_flash_bar_line(&p, &st, 111.0, 80, line, sizeof line);
	ck_assert_uint_eq(strlen(line), l1);
	st = at(CFS_DONE, 65536, 65536);
	cli_flash_bar_line(&p, &st, 120.0, 80, line, sizeof line);
	ck_assert_msg(strstr(line, "100%") && strstr(line, "in 0:20"), "'%s'", line);
}
END_TEST

START_TEST(plain_lines)
{
	struct cli_flash_progress p;
	char line[256];
	int lines = 0, pct = 0;
	cli_flash_progress_init(&p, 65536, 1, 0.0);
	struct cli_flash_status st = at(CFS_CONNECTING, 0, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.1, line, sizeof line), 1);
	ck_assert_str_eq(line, "connecting");
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.2, line, sizeof line), 0);
	st = at(CFS_ERASING, 0, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.5, line, sizeof line), 1);
	ck_assert_str_eq(line, "erasing (STM32F40xxx/41xxx, PID 0x413)");
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 1.0, line, sizeof line), 0);
	/* "writing" while waiting for the first data (nothing erased or written yet): no
	 * line until the run really writes */
	cli_flash_progress_init(&p, 65536, 1, 0.0);
	st = at(CFS_CONNECTING, 0, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.1, line, sizeof line), 1);
	st = at(CFS_WRITING, 0, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.2, line, sizeof line), 0);
	st = at(CFS_ERASING, 0, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 0.5, line, sizeof line), 1);
	ck_assert_str_eq(line, "erasing (STM32F40xxx/41xxx, PID 0x413)");
	/* writing and verifying alternate per block: one phase; a line per 10% */
	double t = 2.0;
	for (uint64_t w = 256; w <= 65536; w += 256) {
		for (int k = 0; k < 2; k++) {
			st = at(k ? CFS_VERIFYING : CFS_WRITING, w, k ? w : w - 256);
			while (cli_flash_plain_line(&p, &st, t, line, sizeof line)) {
				lines++;
				if (strchr(line, '%')) {
					int v = atoi(line);
					ck_assert_int_gt(v, pct); /* rising, never repeated */
					pct = v;
					ck_assert_ptr_nonnull(strstr(line, "of 64.0 KiB"));
					ck_assert_ptr_nonnull(strstr(line, "ETA"));
				} else {
					ck_assert_str_eq(line, "writing and verifying 64.0 KiB");
				}
			}
			t += 0.05;
		}
	}
	ck_assert_int_eq(pct, 90);
	ck_assert_int_eq(lines, 1 + 9); /* the phase line, then 10%..90% */
	st = at(CFS_STARTING, 65536, 65536);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, t, line, sizeof line), 1);
	ck_assert_str_eq(line, "starting the application");
	st = at(CFS_DONE, 65536, 65536);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, t, line, sizeof line), 1);
	ck_assert_str_eq(line, "done");
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, t, line, sizeof line), 0);

	/* without verify: written only */
	cli_flash_progress_init(&p, 65536, 0, 0.0);
	st = at(CFS_WRITING, 6554, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 1, line, sizeof line), 1);
	ck_assert_str_eq(line, "writing 64.0 KiB");
	st = at(CFS_WRITING, 13108, 0);
	ck_assert_int_eq(cli_flash_plain_line(&p, &st, 2, line, sizeof line), 1);
	ck_assert_msg(strncmp(line, " 20%  written 12.8 KiB of 64.0 KiB", 34) == 0, "'%s'", line);
}
END_TEST

START_TEST(summary_line)
{
	char line[512];
	struct cli_flash_status st;
	const char *a =
	    "{\"ok\":true,\"state\":\"done\",\"address\":\"0x08000000\",\"verify\":true,"
	    "\"go\":true,\"bytes_total\":65536,\"bytes_written\":65536,"
	    "\"bytes_verified\":65536,\"device\":{\"pid\":\"0x413\",\"name\":"
	    "\"STM32F40xxx/41xxx\",\"bootloader\":\"3.1\"}}";
	ck_assert_int_eq(cli_flash_parse_status(a, strlen(a), &st), 0);
	cli_flash_summary(line, sizeof line, "ttySTM0", &st, 16.0);
	ck_assert_str_eq(line, "ttySTM0: wrote 64.0 KiB (65536 bytes) at 0x08000000 of "
	                       "STM32F40xxx/41xxx (PID 0x413, bootloader 3.1), verified, "
	                       "application started; 16.0 s, 4.0 KiB/s");
	/* --no-verify: said so */
	const char *nv = "{\"ok\":true,\"state\":\"done\",\"address\":\"0x08000000\","
	                 "\"verify\":false,\"go\":false,\"bytes_total\":1024,\"device\":null}";
	ck_assert_int_eq(cli_flash_parse_status(nv, strlen(nv), &st), 0);
	cli_flash_summary(line, sizeof line, "h:80", &st, 1.0);
	ck_assert_str_eq(line, "h:80: wrote 1.0 KiB (1024 bytes) at 0x08000000, NOT verified, "
	                       "chip left in its bootloader; 1.0 s, 1.0 KiB/s");
}
END_TEST

static Suite *cli_flash_suite(void)
{
	Suite *s = suite_create("cli_flash");
	TCase *tc = tcase_create("all");
	tcase_add_test(tc, args_device_form);
	tcase_add_test(tc, args_host_form);
	tcase_add_test(tc, args_usage_errors);
	tcase_add_test(tc, args_password_refused);
	tcase_add_test(tc, args_help);
	tcase_add_test(tc, host_parsing);
	tcase_add_test(tc, format_detection);
	tcase_add_test(tc, hex_scan_rules);
	tcase_add_test(tc, password_sources);
	tcase_add_test(tc, password_file_mode);
	tcase_add_test(tc, bridge_from_status);
	tcase_add_test(tc, query_and_url);
	tcase_add_test(tc, status_parsing);
	tcase_add_test(tc, outcome_exit_statuses);
	tcase_add_test(tc, outcome_counts);
	tcase_add_test(tc, formatting);
	tcase_add_test(tc, fraction_and_bar);
	tcase_add_test(tc, plain_lines);
	tcase_add_test(tc, summary_line);
	tcase_add_test(tc, stage_and_abort);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(cli_flash_suite)
