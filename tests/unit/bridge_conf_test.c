/* SPDX-License-Identifier: MIT */
/* firmware/posix/bridge_conf.c: espstm-bridge --config FILE. Good files hand every key to
 * the callback as its option, in file order; bad ones (unknown key or section, a second
 * [target], bad yes/no, a value the callback refuses, keys outside a section) give -EINVAL
 * and a message naming the file, the line, the section and the key. */
#include "bridge_conf.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct rec {
	char calls[1024];   /* "option=value;" or "option;" per call */
	const char *refuse; /* option the callback refuses */
};

static int record(void *ctx, const char *option, const char *value)
{
	struct rec *r = ctx;
	size_t n = strlen(r->calls);
	snprintf(r->calls + n, sizeof(r->calls) - n, value ? "%s=%s;" : "%s;", option,
	         value ? value : "");
	return r->refuse && strcmp(option, r->refuse) == 0;
}

/* text written to a temporary file; loaded; the messages into err (caller frees). */
static int load(const char *text, struct rec *r, char **err, char *path)
{
	strcpy(path, "/tmp/bridge_conf_XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	size_t n;
	FILE *f = open_memstream(err, &n);
	int rc = bridge_conf_load(path, record, r, f);
	fclose(f);
	unlink(path);
	return rc;
}

START_TEST(good_file)
{
	struct rec r = {0};
	char *err, path[64];
	int rc = load("; comment\n# comment\n[Bridge]\n  LISTEN = 0.0.0.0:2217 ; the port\n"
	              "key_file = /var/lib/espstm-bridge/unit.key\nplaintext = yes\n"
	              "idle_timeout=0\nhttp = 127.0.0.1:443\n\n[target]\n"
	              "target = tty:/dev/ttyAMA0\nnrst = gpiochip0:17\nboot0 = gpiochip0:27\n"
	              "invert_nrst = off\ninvert_boot0 = TRUE\nauto_boot = parity\n"
	              "line_map = esptool\nsettle_ms = 20\n",
	              &r, &err, path);
	ck_assert_msg(rc == 0, "rc %d: %s", rc, err);
	ck_assert_str_eq(err, "");
	ck_assert_str_eq(r.calls, "listen=0.0.0.0:2217;key-file=/var/lib/espstm-bridge/unit.key;"
	                          "plaintext;idle-timeout=0;http=127.0.0.1:443;"
	                          "target=tty:/dev/ttyAMA0;nrst=gpiochip0:17;boot0=gpiochip0:27;"
	                          "invert-boot0;auto-boot=parity;line-map=esptool;settle-ms=20;");
	free(err);
}
END_TEST

static const struct {
	const char *text, *msg;
} bad[] = {
    {"[bridge]\nlisten = 1.2.3.4:1\ncolour = blue\n", ":3: [bridge] colour: unknown key"},
    {"[bridge]\n[target]\ntarget = tty:/dev/ttyS0\n\n[target]\ntarget = tty:/dev/ttyS1\n",
     ":5: [target] a second [target] section: one target per espstm-bridge process for now; "
     "run one service instance per target (espstm-bridge@.service)"},
    {"[bridge]\n[bridge]\n", ":2: [bridge] a second [bridge] section"},
    {"[serial]\nx = 1\n", ":1: [serial] unknown section"},
    {"listen = 1.2.3.4:1\n[bridge]\n", ":1: listen: key outside [bridge] or [target]"},
    {"[target]\ntarget = x\nnrst = dtr\ntarget = y\n",
     ":4: [target] target: given twice (first on line 2)"},
    {"[target]\ntarget\n", ":2: [target] 'target' is not a KEY = VALUE line"},
    {"[target\n", ":1: '[target' is not a [section] line"},
    {"[bridge]\nplaintext = maybe\n", ":2: [bridge] plaintext: 'maybe' is not yes or no"},
    {"[bridge]\nlisten =\n", ":2: [bridge] listen: empty value"},
    {"[target]\nsettle_ms = 99999\n", ":2: [target] settle_ms: '99999' not accepted"},
    {"[target]\nlisten = 1.2.3.4:5\n", ":2: [target] listen: unknown key"},
    {"; nothing\n", "no [bridge] or [target] section"},
};

START_TEST(bad_file)
{
	struct rec r = {.refuse = "settle-ms"};
	char *err, path[64];
	int rc = load(bad[_i].text, &r, &err, path);
	ck_assert_int_eq(rc, -EINVAL);
	char want[300];
	snprintf(want, sizeof(want), "espstm-bridge: %s%s", path, bad[_i].msg);
	if (bad[_i].msg[0] != ':')
		snprintf(want, sizeof(want), "%s", bad[_i].msg);
	ck_assert_msg(strstr(err, want), "case %d: want '%s' in '%s'", _i, want, err);
	free(err);
}
END_TEST

/* A shape problem anywhere: no key is applied at all, even those before it. */
START_TEST(nothing_applied_on_bad_shape)
{
	struct rec r = {0};
	char *err, path[64];
	ck_assert_int_eq(
	    load("[bridge]\nlisten = 1.2.3.4:1\n[target]\nbogus = 1\n", &r, &err, path), -EINVAL);
	ck_assert_str_eq(r.calls, "");
	free(err);
}
END_TEST

START_TEST(missing_file_and_long_line)
{
	struct rec r = {0};
	size_t n;
	char *err;
	FILE *f = open_memstream(&err, &n);
	ck_assert_int_eq(bridge_conf_load("/nonexistent/bridge.conf", record, &r, f), -ENOENT);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(err, "--config /nonexistent/bridge.conf: No such file"));
	free(err);

	char *text = malloc(3 * BRIDGE_CONF_LINE_MAX), path[64];
	strcpy(text, "[bridge]\nlisten = ");
	memset(text + strlen(text), 'x', 2 * BRIDGE_CONF_LINE_MAX);
	strcpy(text + 18 + 2 * BRIDGE_CONF_LINE_MAX, "\n[target]\n");
	ck_assert_int_eq(load(text, &r, &err, path), -EINVAL);
	ck_assert_msg(strstr(err, ":2: line longer than"), "%s", err);
	ck_assert_str_eq(r.calls, "");
	free(err);
	free(text);
}
END_TEST

static Suite *bridge_conf_suite(void)
{
	Suite *s = suite_create("bridge_conf");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, good_file);
	tcase_add_loop_test(tc, bad_file, 0, (int)(sizeof(bad) / sizeof(bad[0])));
	tcase_add_test(tc, nothing_applied_on_bad_shape);
	tcase_add_test(tc, missing_file_and_long_line);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(bridge_conf_suite)
