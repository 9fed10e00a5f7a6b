/* SPDX-License-Identifier: MIT */
/* Image signatures (image_sig.h): PEM P-256 keys, the streamed SHA-256 of
 * "espstm-image-v1 ADDR\n" + image, DER ECDSA signatures checked and made with mbedTLS. */
#include "image_sig.h"

#include <mbedtls/asn1.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecdsa.h>
#include <mbedtls/ecp.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/version.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
#define SHA_STARTS(c)        mbedtls_sha256_starts(c, 0)
#define SHA_UPDATE(c, p, n)  mbedtls_sha256_update(c, p, n)
#define SHA_FINISH(c, out)   mbedtls_sha256_finish(c, out)
#define EC_GROUP_ID(keypair) ((keypair)->MBEDTLS_PRIVATE(grp).id)
#else
#define SHA_STARTS(c)        mbedtls_sha256_starts_ret(c, 0)
#define SHA_UPDATE(c, p, n)  mbedtls_sha256_update_ret(c, p, n)
#define SHA_FINISH(c, out)   mbedtls_sha256_finish_ret(c, out)
#define EC_GROUP_ID(keypair) ((keypair)->grp.id)
#endif

/* ---- keys ---- */

/* The NUL-terminated copy of a PEM text being parsed (static: small stacks on the ESP; one
 * for both kinds of key, IMAGE_SIG_PEM_MAX + 1 bytes of RAM). */
static char pem_buf[IMAGE_SIG_PEM_MAX + 1];

/* pem/len into a NUL-terminated copy (mbedTLS parses PEM only with the NUL counted). */
static int pem_copy(char *buf, size_t cap, const char *pem, size_t len)
{
	if (!pem || len == 0 || len >= cap)
		return -EINVAL;
	memcpy(buf, pem, len);
	buf[len] = '\0';
	if (strlen(buf) != len)
		return -EINVAL; /* a NUL inside */
	return 0;
}

/* k holds an EC key on P-256. */
static int is_p256(const struct image_sig_key *k)
{
	if (!k || !k->loaded || !mbedtls_pk_can_do(&k->pk, MBEDTLS_PK_ECDSA))
		return 0;
	const mbedtls_ecp_keypair *ec = mbedtls_pk_ec(k->pk);
	return ec && EC_GROUP_ID(ec) == MBEDTLS_ECP_DP_SECP256R1;
}

static int load_done(struct image_sig_key *k, int r)
{
	if (r == 0) {
		k->loaded = 1;
		if (is_p256(k))
			return 0;
		r = -EINVAL;
	}
	mbedtls_pk_free(&k->pk);
	k->loaded = 0;
	return r == MBEDTLS_ERR_PK_ALLOC_FAILED ? -ENOMEM : -EINVAL;
}

int image_sig_key_load_public(struct image_sig_key *k, const char *pem, size_t len)
{
	char *buf = pem_buf;
	mbedtls_pk_init(&k->pk);
	k->loaded = 0;
	if (pem_copy(buf, sizeof(pem_buf), pem, len) < 0 ||
	    !strstr(buf, "-----BEGIN PUBLIC KEY-----"))
		return -EINVAL;
	int r = mbedtls_pk_parse_public_key(&k->pk, (const unsigned char *)buf, len + 1);
	return load_done(k, r);
}

#if MBEDTLS_VERSION_NUMBER >= 0x03000000
/* mbedtls_pk_parse_key's RNG (3.x): only used for blinding an RSA check; EC needs none. */
static int no_rng(void *ctx, unsigned char *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}
#endif

int image_sig_key_load_private(struct image_sig_key *k, const char *pem, size_t len)
{
	char *buf = pem_buf;
	mbedtls_pk_init(&k->pk);
	k->loaded = 0;
	if (pem_copy(buf, sizeof(pem_buf), pem, len) < 0)
		return -EINVAL;
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
	int r = mbedtls_pk_parse_key(&k->pk, (const unsigned char *)buf, len + 1, NULL, 0, no_rng,
	                             NULL);
#else
	int r = mbedtls_pk_parse_key(&k->pk, (const unsigned char *)buf, len + 1, NULL, 0);
#endif
	mbedtls_platform_zeroize(buf, sizeof(pem_buf));
	return load_done(k, r);
}

void image_sig_key_free(struct image_sig_key *k)
{
	if (!k)
		return;
	if (k->loaded)
		mbedtls_pk_free(&k->pk);
	k->loaded = 0;
}

/* ---- the message ---- */

int image_sig_line(char *buf, size_t cap, int hex, uint32_t addr)
{
	int n = hex ? snprintf(buf, cap, "%s hex\n", IMAGE_SIG_MAGIC)
	            : snprintf(buf, cap, "%s 0x%08lx\n", IMAGE_SIG_MAGIC, (unsigned long)addr);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : n;
}

int image_sig_hash_begin(struct image_sig *s, const char *addr_text)
{
	memset(s, 0, sizeof(*s));
	size_t al = addr_text ? strlen(addr_text) : 0;
	if (al == 0 || al > 16)
		return -EINVAL;
	for (size_t i = 0; i < al; i++)
		if (addr_text[i] <= 0x20 || addr_text[i] >= 0x7f)
			return -EINVAL;
	mbedtls_sha256_init(&s->sha);
	if (SHA_STARTS(&s->sha) != 0) {
		mbedtls_sha256_free(&s->sha);
		return -EINVAL;
	}
	s->active = 1;
	image_sig_update(s, (const uint8_t *)IMAGE_SIG_MAGIC " ", sizeof(IMAGE_SIG_MAGIC));
	image_sig_update(s, (const uint8_t *)addr_text, al);
	image_sig_update(s, (const uint8_t *)"\n", 1);
	return 0;
}

/* 1 if der/len is exactly one DER SEQUENCE of two INTEGERs (1..33 bytes, not negative). */
static int der_ok(const uint8_t *der, size_t len)
{
	unsigned char *p = (unsigned char *)der;
	const unsigned char *end = der + len;
	size_t l;
	if (!der || len < 8 || len > IMAGE_SIG_DER_MAX)
		return 0;
	if (mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) !=
	        0 ||
	    p + l != end)
		return 0;
	for (int i = 0; i < 2; i++) {
		if (mbedtls_asn1_get_tag(&p, end, &l, MBEDTLS_ASN1_INTEGER) != 0 || l == 0 ||
		    l > 33 || (p[0] & 0x80))
			return 0;
		p += l;
	}
	return p == end;
}

int image_sig_begin(struct image_sig *s, const char *addr_text, const uint8_t *der, size_t len)
{
	if (!der_ok(der, len)) {
		memset(s, 0, sizeof(*s));
		return -EINVAL;
	}
	int r = image_sig_hash_begin(s, addr_text);
	if (r < 0)
		return r;
	memcpy(s->der, der, len);
	s->der_len = len;
	return 0;
}

void image_sig_update(struct image_sig *s, const uint8_t *p, size_t n)
{
	if (s->active && n)
		SHA_UPDATE(&s->sha, p, n);
}

void image_sig_cancel(struct image_sig *s)
{
	if (s->active)
		mbedtls_sha256_free(&s->sha);
	s->active = 0;
}

/* The digest of an active s; s becomes inactive. 0 or -EINVAL. */
static int digest(struct image_sig *s, uint8_t out[IMAGE_SIG_HASH_LEN])
{
	if (!s->active)
		return -EINVAL;
	int r = SHA_FINISH(&s->sha, out);
	image_sig_cancel(s);
	return r == 0 ? 0 : -EINVAL;
}

int image_sig_check(struct image_sig *s, const struct image_sig_key *k)
{
	uint8_t h[IMAGE_SIG_HASH_LEN];
	if (!is_p256(k)) {
		image_sig_cancel(s);
		return -EINVAL;
	}
	if (digest(s, h) < 0 || s->der_len == 0)
		return -EINVAL;
	/* mbedtls_pk_verify is const-incorrect in 2.x: it does not change the key */
	int r = mbedtls_pk_verify((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256, h, sizeof(h),
	                          s->der, s->der_len);
	if (r == 0)
		return 0;
	/* r or s out of range, or a valid form that does not match: no match */
	return r == MBEDTLS_ERR_ECP_VERIFY_FAILED ? -EBADMSG : -EINVAL;
}

int image_sig_verify(const struct image_sig_key *k, const char *addr_text, const uint8_t *img,
                     size_t n, const uint8_t *der, size_t len)
{
	struct image_sig s;
	int r = image_sig_begin(&s, addr_text, der, len);
	if (r < 0)
		return r;
	image_sig_update(&s, img, n);
	return image_sig_check(&s, k);
}

/* ---- signing ---- */

struct ent {
	image_sig_entropy_fn fn;
	void *ctx;
};

static int ent_cb(void *ctx, unsigned char *p, size_t n)
{
	struct ent *e = ctx;
	return e->fn(e->ctx, p, n) == 0 ? 0 : MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
}

int image_sig_sign(struct image_sig *s, const struct image_sig_key *k, uint8_t *der, size_t cap,
                   size_t *len, image_sig_entropy_fn ent, void *ent_ctx)
{
	uint8_t h[IMAGE_SIG_HASH_LEN];
	if (!is_p256(k) || !ent) {
		image_sig_cancel(s);
		return -EINVAL;
	}
	if (digest(s, h) < 0)
		return -EINVAL;
	if (cap < IMAGE_SIG_DER_MAX)
		return -ENOSPC;
	struct ent e = {ent, ent_ctx};
	mbedtls_ctr_drbg_context drbg;
	mbedtls_ctr_drbg_init(&drbg);
	static const unsigned char pers[] = "espstm image_sig";
	int r = mbedtls_ctr_drbg_seed(&drbg, ent_cb, &e, pers, sizeof(pers) - 1);
	unsigned char sig[MBEDTLS_PK_SIGNATURE_MAX_SIZE];
	size_t sl = 0;
	if (r == 0)
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
		r = mbedtls_pk_sign((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256, h, sizeof(h),
		                    sig, sizeof(sig), &sl, mbedtls_ctr_drbg_random, &drbg);
#else
		r = mbedtls_pk_sign((mbedtls_pk_context *)&k->pk, MBEDTLS_MD_SHA256, h, sizeof(h),
		                    sig, &sl, mbedtls_ctr_drbg_random, &drbg);
#endif
	mbedtls_ctr_drbg_free(&drbg);
	if (r == MBEDTLS_ERR_ECP_INVALID_KEY)
		return -EINVAL; /* a public key: no private part */
	if (r != 0)
		return -EIO;
	if (sl > cap)
		return -ENOSPC;
	memcpy(der, sig, sl);
	*len = sl;
	return 0;
}
