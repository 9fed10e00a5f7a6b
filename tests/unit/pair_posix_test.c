/* SPDX-License-Identifier: MIT */
/* firmware/posix/pair_posix.c: the unit key file (made 0600 at first load, read back the
 * same, refused when group/others may read it or when it does not parse, rotated to a new
 * key) and the HTTPS certificate files (made once, read back with the same pin, refused when
 * one is missing or they do not belong together). */
#include "pair_posix.h"
#include "unit.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64], key[128];

static void setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/pair_posix_test-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(key, sizeof(key), "%s/u.key", dir);
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static unsigned mode_of(const char *p)
{
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	return st.st_mode & 0777;
}

START_TEST(key_made_read_rotated)
{
	struct tls_psk a, b, c;
	ck_assert_int_eq(pair_posix_load(key, &a), 0);
	ck_assert_uint_eq(mode_of(key), 0600);
	ck_assert(strncmp(a.identity, "espstm-", 7) == 0);
	ck_assert_int_eq(pair_posix_load(key, &b), 0);
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	ck_assert_int_eq(pair_posix_rotate(key, &c), 0);
	ck_assert(memcmp(a.key, c.key, sizeof(a.key)) != 0);
	ck_assert_str_ne(a.identity, c.identity);
	ck_assert_int_eq(pair_posix_load(key, &b), 0);
	ck_assert(memcmp(&b, &c, sizeof(b)) == 0);
	ck_assert_uint_eq(mode_of(key), 0600);
	/* readable by others: refused */
	ck_assert_int_eq(chmod(key, 0644), 0);
	ck_assert_int_eq(pair_posix_load(key, &b), -1);
	/* garbage: refused, not replaced */
	ck_assert_int_eq(chmod(key, 0600), 0);
	FILE *f = fopen(key, "w");
	fputs("identity espstm-00\nkey 1234\n", f);
	fclose(f);
	ck_assert_int_eq(pair_posix_load(key, &b), -1);
	f = fopen(key, "r");
	char line[64];
	ck_assert_ptr_nonnull(fgets(line, sizeof(line), f));
	fclose(f);
	ck_assert_str_eq(line, "identity espstm-00\n");
}
END_TEST

START_TEST(cert_made_once)
{
	static struct pair_cert c1, c2;
	char cp[256], kp[256];
	ck_assert_int_eq(pair_posix_cert_paths(key, cp, kp, sizeof(cp)), 0);
	ck_assert(strstr(cp, "/u.cert.pem") && strstr(kp, "/u.certkey.pem"));
	ck_assert_int_eq(pair_posix_cert(key, "unit", &c1), 0);
	ck_assert_uint_eq(mode_of(cp), 0644);
	ck_assert_uint_eq(mode_of(kp), 0600);
	ck_assert(strncmp(c1.pin, "sha256//", 8) == 0);
	ck_assert_int_eq(pair_posix_cert(key, "unit", &c2), 0);
	ck_assert_str_eq(c1.pin, c2.pin); /* read back, not made again */
	/* another pair's key with this certificate: refused */
	char key2[160], cp2[256], kp2[256];
	snprintf(key2, sizeof(key2), "%s/v.key", dir);
	ck_assert_int_eq(pair_posix_cert(key2, "unit", &c2), 0);
	ck_assert_int_eq(pair_posix_cert_paths(key2, cp2, kp2, sizeof(cp2)), 0);
	ck_assert_int_eq(rename(kp2, kp), 0);
	ck_assert_int_eq(pair_posix_cert(key, "unit", &c2), -1);
	/* only the certificate: refused (no silent new pin) */
	ck_assert_int_eq(unlink(kp), 0);
	ck_assert_int_eq(pair_posix_cert(key, "unit", &c2), -1);
	ck_assert_int_eq(access(kp, F_OK), -1);
	/* a run without a key file: in memory only */
	ck_assert_int_eq(pair_posix_cert(NULL, "unit", &c2), 0);
	ck_assert(strncmp(c2.pin, "sha256//", 8) == 0);
}
END_TEST

static Suite *pair_posix_suite(void)
{
	Suite *s = suite_create("pair_posix");
	TCase *tc = tcase_create("files");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, key_made_read_rotated);
	tcase_add_test(tc, cert_made_once);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(pair_posix_suite)
