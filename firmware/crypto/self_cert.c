/* SPDX-License-Identifier: MIT */
/* Self-signed ECDSA P-256 certificates and their public-key pins (self_cert.h) on mbedTLS:
 * mbedtls_x509write_crt for the certificate (RFC 5280), mbedtls_pk_write_pubkey_der for the
 * SubjectPublicKeyInfo that the pin hashes. */
#include "self_cert.h"

#include <errno.h>
#include <string.h>

#include <mbedtls/base64.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>
#include <mbedtls/version.h>
#include <mbedtls/x509_crt.h>

/* ---- time: Unix seconds to the "YYYYMMDDhhmmss" that mbedtls_x509write_crt takes ---- */

/* Civil date of a day count since 1970-01-01 (H. Hinnant's days_from_civil inverse). */
static void civil(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	days += 719468;
	int64_t era = (days >= 0 ? days : days - 146096) / 146097;
	unsigned doe = (unsigned)(days - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static void x509_time(int64_t t, int add_years, char out[16])
{
	int64_t y;
	unsigned mo, d;
	civil(t / 86400, &y, &mo, &d);
	unsigned s = (unsigned)(t % 86400);
	y += add_years;
	if (mo == 2 && d == 29)
		d = 28; /* a leap day plus 10 years */
	if (y > 9999)
		y = 9999;
	/* the digits one by one: no snprintf in the core's libraries' hot paths needed, and no
	 * format-truncation warnings */
	unsigned v[6] = {(unsigned)y, mo, d, s / 3600, s / 60 % 60, s % 60};
	unsigned w[6] = {4, 2, 2, 2, 2, 2};
	char *p = out;
	for (int i = 0; i < 6; i++) {
		for (unsigned k = w[i]; k > 0; k--) {
			unsigned div = 1;
			for (unsigned j = 1; j < k; j++)
				div *= 10;
			*p++ = (char)('0' + v[i] / div % 10);
		}
	}
	*p = '\0';
}

/* ---- entropy through CTR_DRBG (the caller's CSPRNG seeds it) ---- */

struct ent {
	self_cert_entropy_fn fn;
	void *ctx;
};

static int drbg_entropy(void *ctx, unsigned char *buf, size_t n)
{
	struct ent *e = ctx;
	return e->fn(e->ctx, buf, n) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

static int cn_ok(const char *cn)
{
	size_t l = cn ? strlen(cn) : 0;
	if (l == 0 || l > SELF_CERT_CN_MAX)
		return 0;
	for (size_t i = 0; i < l; i++) {
		unsigned char c = (unsigned char)cn[i];
		if (c < 0x20 || c > 0x7e || strchr(",=+\\\"<>;", c))
			return 0;
	}
	return 1;
}

static int mk_err(int r)
{
	if (r == MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED)
		return -EIO;
	if (r == MBEDTLS_ERR_ASN1_BUF_TOO_SMALL || r == MBEDTLS_ERR_BASE64_BUFFER_TOO_SMALL)
		return -ENOSPC;
	return -EPROTO;
}

/* The certificate of key (already made) into cert_pem. */
static int write_cert(mbedtls_pk_context *key, mbedtls_ctr_drbg_context *drbg, const char *cn,
                      int64_t now_s, char *cert_pem, size_t cert_cap)
{
	char subject[SELF_CERT_CN_MAX + 4];
	memcpy(subject, "CN=", 3);
	memcpy(subject + 3, cn, strlen(cn) + 1);
	if (now_s <= 0)
		now_s = 1735689600; /* 2025-01-01T00:00:00Z */
	char nb[16], na[16];
	x509_time(now_s, 0, nb);
	x509_time(now_s, SELF_CERT_YEARS, na);

	uint8_t serial[16];
	int r = mbedtls_ctr_drbg_random(drbg, serial, sizeof(serial));
	if (r != 0)
		return mk_err(r);
	serial[0] &= 0x7f; /* positive (RFC 5280 4.1.2.2) */
	serial[0] |= 0x40; /* and 16 bytes long */

	mbedtls_x509write_cert crt;
	mbedtls_x509write_crt_init(&crt);
	mbedtls_x509write_crt_set_version(&crt, MBEDTLS_X509_CRT_VERSION_3);
	mbedtls_x509write_crt_set_md_alg(&crt, MBEDTLS_MD_SHA256);
	mbedtls_x509write_crt_set_subject_key(&crt, key);
	mbedtls_x509write_crt_set_issuer_key(&crt, key);
#if MBEDTLS_VERSION_NUMBER >= 0x03040000
	r = mbedtls_x509write_crt_set_serial_raw(&crt, serial, sizeof(serial));
#else
	mbedtls_mpi sn;
	mbedtls_mpi_init(&sn);
	r = mbedtls_mpi_read_binary(&sn, serial, sizeof(serial));
	if (r == 0)
		r = mbedtls_x509write_crt_set_serial(&crt, &sn);
	mbedtls_mpi_free(&sn);
#endif
	if (r == 0)
		r = mbedtls_x509write_crt_set_subject_name(&crt, subject);
	if (r == 0)
		r = mbedtls_x509write_crt_set_issuer_name(&crt, subject);
	if (r == 0)
		r = mbedtls_x509write_crt_set_validity(&crt, nb, na);
	if (r == 0)
		r = mbedtls_x509write_crt_set_basic_constraints(&crt, 0, -1);
#if defined(MBEDTLS_SHA1_C) /* the identifier is a SHA-1 (RFC 5280 4.2.1.2) */
	if (r == 0)
		r = mbedtls_x509write_crt_set_subject_key_identifier(&crt);
#endif
	if (r == 0)
		r = mbedtls_x509write_crt_pem(&crt, (unsigned char *)cert_pem, cert_cap,
		                              mbedtls_ctr_drbg_random, drbg);
	mbedtls_x509write_crt_free(&crt);
	return r == 0 ? 0 : mk_err(r);
}

int self_cert_make(const char *cn, int64_t now_s, self_cert_entropy_fn ent, void *ent_ctx,
                   char *key_pem, size_t key_cap, char *cert_pem, size_t cert_cap)
{
	if (!cn_ok(cn) || !ent || !key_pem || !cert_pem || key_cap == 0 || cert_cap == 0)
		return -EINVAL;
	key_pem[0] = cert_pem[0] = '\0';
	struct ent e = {ent, ent_ctx};
	mbedtls_ctr_drbg_context drbg;
	mbedtls_pk_context key;
	mbedtls_ctr_drbg_init(&drbg);
	mbedtls_pk_init(&key);
	static const unsigned char pers[] = "espstm self_cert";
	int r = mbedtls_ctr_drbg_seed(&drbg, drbg_entropy, &e, pers, sizeof(pers) - 1);
	if (r == 0)
		r = mbedtls_pk_setup(&key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
	if (r == 0)
		r = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(key),
		                        mbedtls_ctr_drbg_random, &drbg);
	if (r == 0)
		r = mbedtls_pk_write_key_pem(&key, (unsigned char *)key_pem, key_cap);
	int ret = r == 0 ? write_cert(&key, &drbg, cn, now_s, cert_pem, cert_cap) : mk_err(r);
	mbedtls_pk_free(&key);
	mbedtls_ctr_drbg_free(&drbg);
	if (ret != 0) {
		memset(key_pem, 0, key_cap);
		cert_pem[0] = '\0';
	}
	return ret;
}

/* SubjectPublicKeyInfo DER of pk: at the end of buf; *der points at it. Length or <0. */
static int spki(mbedtls_pk_context *pk, unsigned char *buf, size_t cap, const unsigned char **der)
{
	int n = mbedtls_pk_write_pubkey_der(pk, buf, cap);
	if (n > 0)
		*der = buf + cap - (size_t)n;
	return n;
}

int self_cert_pin(const uint8_t *cert, size_t len, char *pin, size_t cap)
{
	if (!cert || !pin || cap == 0)
		return -EINVAL;
	pin[0] = '\0';
	if (cap < SELF_CERT_PIN_LEN + 1)
		return -ENOSPC;
	/* mbedtls_x509_crt_parse wants a PEM's terminating NUL counted in len: a PEM (it
	 * starts with '-', a DER certificate with 0x30) is copied and terminated here */
	char pem[SELF_CERT_CERT_PEM_MAX];
	if (len > 0 && cert[0] == '-') {
		if (len > 0 && cert[len - 1] == '\0')
			len--;
		if (len >= sizeof(pem) || memchr(cert, '\0', len))
			return -EINVAL;
		memcpy(pem, cert, len);
		pem[len] = '\0';
		cert = (const uint8_t *)pem;
		len++;
	}
	mbedtls_x509_crt crt;
	mbedtls_x509_crt_init(&crt);
	int r = mbedtls_x509_crt_parse(&crt, cert, len);
	unsigned char buf[256];
	const unsigned char *der = NULL;
	int n = r == 0 ? spki(&crt.pk, buf, sizeof(buf), &der) : -1;
	mbedtls_x509_crt_free(&crt);
	if (n <= 0)
		return -EINVAL;
	unsigned char h[32];
#if MBEDTLS_VERSION_MAJOR >= 3
	r = mbedtls_sha256(der, (size_t)n, h, 0);
#else
	r = mbedtls_sha256_ret(der, (size_t)n, h, 0);
#endif
	if (r != 0)
		return -EPROTO;
	memcpy(pin, "sha256//", 8);
	size_t olen = 0;
	r = mbedtls_base64_encode((unsigned char *)pin + 8, cap - 8, &olen, h, sizeof(h));
	if (r != 0) {
		pin[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

int self_cert_check_pair(const char *key_pem, const char *cert_pem)
{
	if (!key_pem || !cert_pem)
		return -EINVAL;
	mbedtls_pk_context key;
	mbedtls_x509_crt crt;
	mbedtls_pk_init(&key);
	mbedtls_x509_crt_init(&crt);
	int ret = -EINVAL;
#if MBEDTLS_VERSION_MAJOR >= 3
	int r = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, strlen(key_pem) + 1,
	                             NULL, 0, NULL, NULL);
#else
	int r = mbedtls_pk_parse_key(&key, (const unsigned char *)key_pem, strlen(key_pem) + 1,
	                             NULL, 0);
#endif
	if (r == 0)
		r = mbedtls_x509_crt_parse(&crt, (const unsigned char *)cert_pem,
		                           strlen(cert_pem) + 1);
	if (r == 0) {
		/* the private key's public half (SEC 1 keeps it in the file; mbedTLS derives it
		 * otherwise) against the certificate's SubjectPublicKeyInfo */
		unsigned char a[256], b[256];
		const unsigned char *da = NULL, *db = NULL;
		int na = spki(&key, a, sizeof(a), &da);
		int nb = spki(&crt.pk, b, sizeof(b), &db);
		if (na > 0 && nb > 0)
			ret = na == nb && memcmp(da, db, (size_t)na) == 0 ? 0 : -EACCES;
	}
	mbedtls_pk_free(&key);
	mbedtls_x509_crt_free(&crt);
	return ret;
}
