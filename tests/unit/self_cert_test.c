/* SPDX-License-Identifier: MIT */
/* firmware/crypto/self_cert.c: a made certificate parses back (CN, 10 years, ECDSA P-256,
 * self-signed), its pin is stable and equals what openssl computes from the same file, the
 * key belongs to it, and bad input / failing entropy / small buffers are refused. */
#include "self_cert.h"
#include "unit.h"

#include <errno.h>
#include <mbedtls/x509_crt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static int ent_ok(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	return getrandom(buf, n, 0) == (ssize_t)n ? 0 : -EIO;
}

static int ent_fail(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	(void)buf;
	(void)n;
	return -EIO;
}

static char key[SELF_CERT_KEY_PEM_MAX], cert[SELF_CERT_CERT_PEM_MAX];

static void make(const char *cn)
{
	/* 2026-12-08T00:00:00Z */
	ck_assert_int_eq(
	    self_cert_make(cn, 1796688000, ent_ok, NULL, key, sizeof(key), cert, sizeof(cert)), 0);
}

START_TEST(parses_back)
{
	make("espstm-bridge");
	ck_assert(strncmp(cert, "-----BEGIN CERTIFICATE-----", 27) == 0);
	ck_assert(strstr(key, "PRIVATE KEY-----") != NULL);
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	ck_assert_int_eq(
	    mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert, strlen(cert) + 1), 0);
	char dn[128];
	ck_assert_int_gt(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.subject), 0);
	ck_assert_str_eq(dn, "CN=espstm-bridge");
	ck_assert_int_gt(mbedtls_x509_dn_gets(dn, sizeof(dn), &crt.issuer), 0);
	ck_assert_str_eq(dn, "CN=espstm-bridge");
	ck_assert_int_eq(crt.valid_from.year, 2026);
	ck_assert_int_eq(crt.valid_from.mon, 12);
	ck_assert_int_eq(crt.valid_from.day, 8);
	ck_assert_int_eq(crt.valid_to.year, 2036);
	ck_assert_int_eq(crt.valid_to.mon, 12);
	ck_assert_int_eq(crt.version, 3);
	ck_assert_int_eq(mbedtls_pk_get_type(&crt.pk), MBEDTLS_PK_ECKEY);
	ck_assert_uint_eq(mbedtls_pk_get_bitlen(&crt.pk), 256);
	ck_assert(crt.serial.len == 16 && (crt.serial.p[0] & 0x80) == 0);
	/* self-signed: its own key verifies it */
	uint32_t flags = 0;
	ck_assert_int_eq(mbedtls_x509_crt_verify(&crt, &crt, NULL, NULL, &flags, NULL, NULL), 0);
	mbedtls_x509_crt_free(&crt);
	ck_assert_int_eq(self_cert_check_pair(key, cert), 0);
}
END_TEST

/* The pin against openssl's pipeline on the same certificate file. */
START_TEST(pin_matches_openssl)
{
	make("unit-7");
	char pin[SELF_CERT_PIN_LEN + 1], pin2[SELF_CERT_PIN_LEN + 1];
	ck_assert_int_eq(self_cert_pin((const uint8_t *)cert, strlen(cert), pin, sizeof(pin)), 0);
	ck_assert_uint_eq(strlen(pin), SELF_CERT_PIN_LEN);
	ck_assert(strncmp(pin, "sha256//", 8) == 0);
	/* stable, and the same with the NUL counted */
	ck_assert_int_eq(
	    self_cert_pin((const uint8_t *)cert, strlen(cert) + 1, pin2, sizeof(pin2)), 0);
	ck_assert_str_eq(pin, pin2);
	char path[] = "/tmp/self_cert_test-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, cert, strlen(cert)), (ssize_t)strlen(cert));
	close(fd);
	char cmd[512];
	snprintf(cmd, sizeof(cmd),
	         "openssl x509 -in %s -pubkey -noout | openssl pkey -pubin -outform der | "
	         "openssl dgst -sha256 -binary | base64",
	         path);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	char line[128] = "";
	char *got = fgets(line, sizeof(line), p);
	int st = pclose(p);
	unlink(path);
	ck_assert_ptr_nonnull(got);
	ck_assert_int_eq(st, 0);
	line[strcspn(line, "\n")] = '\0';
	ck_assert_str_eq(pin + 8, line);
	/* the DER form gives the same pin */
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	ck_assert_int_eq(
	    mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert, strlen(cert) + 1), 0);
	ck_assert_int_eq(self_cert_pin(crt.raw.p, crt.raw.len, pin2, sizeof(pin2)), 0);
	mbedtls_x509_crt_free(&crt);
	ck_assert_str_eq(pin, pin2);
}
END_TEST

START_TEST(two_certs_differ)
{
	char pin1[64], pin2[64], key1[SELF_CERT_KEY_PEM_MAX];
	make("a");
	memcpy(key1, key, sizeof(key));
	ck_assert_int_eq(self_cert_pin((const uint8_t *)cert, strlen(cert), pin1, sizeof(pin1)), 0);
	make("a");
	ck_assert_int_eq(self_cert_pin((const uint8_t *)cert, strlen(cert), pin2, sizeof(pin2)), 0);
	ck_assert_str_ne(pin1, pin2);
	/* another certificate's key does not belong to this one */
	ck_assert_int_eq(self_cert_check_pair(key1, cert), -EACCES);
	ck_assert_int_eq(self_cert_check_pair("garbage", cert), -EINVAL);
	ck_assert_int_eq(self_cert_check_pair(key, "garbage"), -EINVAL);
}
END_TEST

START_TEST(refusals)
{
	char pin[64];
	ck_assert_int_eq(
	    self_cert_make("", 0, ent_ok, NULL, key, sizeof(key), cert, sizeof(cert)), -EINVAL);
	ck_assert_int_eq(
	    self_cert_make("a,O=x", 0, ent_ok, NULL, key, sizeof(key), cert, sizeof(cert)),
	    -EINVAL);
	ck_assert_int_eq(
	    self_cert_make("a\nb", 0, ent_ok, NULL, key, sizeof(key), cert, sizeof(cert)),
	    -EINVAL);
	ck_assert_int_eq(
	    self_cert_make("unit", 0, ent_fail, NULL, key, sizeof(key), cert, sizeof(cert)),
	    -EIO);
	ck_assert_int_eq(self_cert_make("unit", 0, ent_ok, NULL, key, sizeof(key), cert, 200),
	                 -ENOSPC);
	ck_assert_int_eq(self_cert_make("unit", 0, ent_ok, NULL, key, 50, cert, sizeof(cert)),
	                 -ENOSPC);
	for (size_t i = 0; i < sizeof(key); i++)
		ck_assert_int_eq(key[i], 0); /* no half-written secret left behind */
	/* no clock: 2025-01-01 */
	ck_assert_int_eq(
	    self_cert_make("unit", 0, ent_ok, NULL, key, sizeof(key), cert, sizeof(cert)), 0);
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	ck_assert_int_eq(
	    mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert, strlen(cert) + 1), 0);
	ck_assert_int_eq(crt.valid_from.year, 2025);
	ck_assert_int_eq(crt.valid_to.year, 2035);
	mbedtls_x509_crt_free(&crt);
	ck_assert_int_eq(self_cert_pin((const uint8_t *)cert, strlen(cert), pin, 20), -ENOSPC);
	ck_assert_int_eq(self_cert_pin((const uint8_t *)"-----BEGIN CERTIFICATE-----\nAAAA\n",
	                               34, pin, sizeof(pin)),
	                 -EINVAL);
	static const uint8_t der[] = {0x30, 0x82, 0xff, 0xff, 0x00};
	ck_assert_int_eq(self_cert_pin(der, sizeof(der), pin, sizeof(pin)), -EINVAL);
	ck_assert_int_eq(self_cert_pin(der, 0, pin, sizeof(pin)), -EINVAL);
}
END_TEST

static Suite *self_cert_suite(void)
{
	Suite *s = suite_create("self_cert");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, parses_back);
	tcase_add_test(tc, pin_matches_openssl);
	tcase_add_test(tc, two_certs_differ);
	tcase_add_test(tc, refusals);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(self_cert_suite)
