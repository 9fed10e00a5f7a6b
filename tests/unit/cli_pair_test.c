/* SPDX-License-Identifier: MIT */
/* cli/cli_pair.c: the known_bridges file (lookup, add, replace, remove, HOST:* removal that
 * does not touch a longer host name, comments kept, malformed lines skipped), its path, the
 * "certificate changed" message. */
#include "cli_pair.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], file[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/cli_pair_test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/sub/known_bridges", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(void)
{
	static char buf[4096];
	FILE *f = fopen(file, "r");
	ck_assert_ptr_nonnull(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

#define PIN_A "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define PIN_B "sha256//BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB="

START_TEST(add_lookup_replace)
{
	char pin[CLI_PAIR_PIN_MAX];
	ck_assert_int_eq(cli_known_lookup(file, "10.0.0.1:80", pin, sizeof(pin)), 0);
	ck_assert_int_eq(cli_known_set(file, "10.0.0.1:80", PIN_A), 0);
	struct stat st;
	ck_assert_int_eq(stat(file, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0644);
	ck_assert_int_eq(cli_known_lookup(file, "10.0.0.1:80", pin, sizeof(pin)), 1);
	ck_assert_str_eq(pin, PIN_A);
	ck_assert_int_eq(cli_known_lookup(file, "10.0.0.1:81", pin, sizeof(pin)), 0);
	ck_assert_int_eq(cli_known_set(file, "10.0.0.1:80", PIN_B), 1); /* replaced */
	ck_assert_int_eq(cli_known_lookup(file, "10.0.0.1:80", pin, sizeof(pin)), 1);
	ck_assert_str_eq(pin, PIN_B);
	ck_assert_str_eq(slurp(), "10.0.0.1:80 " PIN_B "\n");
}
END_TEST

START_TEST(remove_by_host)
{
	FILE *f;
	char sub[128];
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	f = fopen(file, "w");
	fputs("# pins\n10.0.0.1:80 " PIN_A "\n10.0.0.10:80 " PIN_B "\n10.0.0.1:8080 " PIN_B
	      "\nbad line\n[::1]:80 " PIN_A "\n10.0.0.2:80 notapin\n",
	      f);
	fclose(f);
	char pin[CLI_PAIR_PIN_MAX];
	ck_assert_int_eq(cli_known_lookup(file, "10.0.0.2:80", pin, sizeof(pin)),
	                 0); /* malformed */
	ck_assert_int_eq(cli_known_lookup(file, "[::1]:80", pin, sizeof(pin)), 1);
	ck_assert_int_eq(cli_known_set(file, "10.0.0.1:*", NULL), 2);
	const char *t = slurp();
	ck_assert_ptr_nonnull(strstr(t, "# pins\n"));
	ck_assert_ptr_nonnull(strstr(t, "10.0.0.10:80 " PIN_B));
	ck_assert_ptr_null(strstr(t, "10.0.0.1:80 "));
	ck_assert_ptr_null(strstr(t, "10.0.0.1:8080"));
	ck_assert_int_eq(cli_known_set(file, "[::1]:80", NULL), 1);
	ck_assert_int_eq(cli_known_lookup(file, "[::1]:80", pin, sizeof(pin)), 0);
	ck_assert_int_eq(cli_known_set(file, "nothere:80", NULL), 0);
}
END_TEST

START_TEST(names_paths_message)
{
	char n[64], p[256], m[512];
	cli_known_name("::1", 8080, n, sizeof(n));
	ck_assert_str_eq(n, "[::1]:8080");
	cli_known_name("bridge.lan", 80, n, sizeof(n));
	ck_assert_str_eq(n, "bridge.lan:80");
	setenv(CLI_PAIR_KNOWN_ENV, "/x/env", 1);
	ck_assert_int_eq(cli_known_path("/x/explicit", p, sizeof(p)), 0);
	ck_assert_str_eq(p, "/x/explicit");
	ck_assert_int_eq(cli_known_path(NULL, p, sizeof(p)), 0);
	ck_assert_str_eq(p, "/x/env");
	unsetenv(CLI_PAIR_KNOWN_ENV);
	cli_pair_changed_msg(m, sizeof(m), "h:80", PIN_A, PIN_B, "/k");
	ck_assert_str_eq(m, "espstm: h:80: the bridge's certificate changed (pinned " PIN_A
	                    ", got " PIN_B "); if the unit was reset, remove its line from /k");
}
END_TEST

static Suite *cli_pair_suite(void)
{
	Suite *s = suite_create("cli_pair");
	TCase *tc = tcase_create("known_bridges");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, add_lookup_replace);
	tcase_add_test(tc, remove_by_host);
	tcase_add_test(tc, names_paths_message);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(cli_pair_suite)
