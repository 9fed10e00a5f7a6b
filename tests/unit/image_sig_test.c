/* SPDX-License-Identifier: MIT */
/* firmware/crypto/image_sig.c: PEM keys, the signed message, DER signatures made by openssl
 * (fixed vectors below: `openssl ecparam -name prime256v1 -genkey`, `openssl dgst -sha256
 * -sign`) and by image_sig_sign, refusals of other keys, images, addresses and malformed
 * signatures. */
#include "image_sig.h"
#include "unit.h"

#include <errno.h>
#include <string.h>

/* test keys (not used anywhere else) */
static const char signer_pem[] =
    "-----BEGIN EC PRIVATE KEY-----\n"
    "MHcCAQEEIBhN70aMYU4FzFb+yJ3Gggr0JEkzSQUJFKL6RV+NeQIGoAoGCCqGSM49\n"
    "AwEHoUQDQgAEhgjMOrlifNtZkW8MJIVUsEGqE++IL9F8GgT/C3fY8OtkCNTR5rZf\n"
    "mdXeMCAg5Sn0QG4m/8L+uCkfkJfje7V1bw==\n"
    "-----END EC PRIVATE KEY-----\n";
static const char signer_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhgjMOrlifNtZkW8MJIVUsEGqE++I\n"
    "L9F8GgT/C3fY8OtkCNTR5rZfmdXeMCAg5Sn0QG4m/8L+uCkfkJfje7V1bw==\n"
    "-----END PUBLIC KEY-----\n";
static const char p384_pub[] = "-----BEGIN PUBLIC KEY-----\n"
                               "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAElt7TioVMG88XpD9juHdL8N/fkpE52+KA\n"
                               "rvRggxRZMG7hvuV+Xae22UDA6RRwFppfdoQfKjWDb/d8YQAxoR0Z9H5YuA0Gf1JV\n"
                               "n1HPm69V3EUwDUz8lfl8/0vWca5AGVF2\n"
                               "-----END PUBLIC KEY-----\n";
/* (printf 'espstm-image-v1 0x08000000\n'; img) | openssl dgst -sha256 -sign signer.pem,
 * img = bytes 0..255 four times */
static const uint8_t openssl_sig[] = {
    0x30, 0x46, 0x02, 0x21, 0x00, 0x82, 0x6a, 0xa4, 0x1e, 0x9e, 0x10, 0x06, 0x7b, 0xbf, 0x93,
    0xc8, 0x31, 0xfd, 0x82, 0x9c, 0xfe, 0x2a, 0x93, 0xa8, 0xb9, 0x36, 0xea, 0x47, 0x5e, 0xd1,
    0x6f, 0x67, 0x88, 0xc8, 0xf6, 0x47, 0x04, 0x02, 0x21, 0x00, 0xdd, 0x69, 0x45, 0x1e, 0x2a,
    0xd4, 0x1d, 0xdb, 0x4d, 0x87, 0x88, 0x47, 0x28, 0x9e, 0xe2, 0x95, 0x7e, 0x9b, 0x1b, 0x90,
    0x12, 0x5a, 0x08, 0xbc, 0x65, 0xc9, 0x09, 0xc2, 0x43, 0x08, 0xbb, 0xf4};

static uint8_t img[1024];

static void img_init(void)
{
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)i;
}

static int ent_ok(void *ctx, unsigned char *p, size_t n)
{
	unsigned *seed = ctx;
	for (size_t i = 0; i < n; i++) {
		*seed = *seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(*seed >> 16);
	}
	return 0;
}

static int ent_fail(void *ctx, unsigned char *p, size_t n)
{
	(void)ctx;
	(void)p;
	(void)n;
	return -EIO;
}

START_TEST(sig_openssl_vector)
{
	img_init();
	struct image_sig_key k;
	ck_assert_int_eq(image_sig_key_load_public(&k, signer_pub, strlen(signer_pub)), 0);
	ck_assert_int_eq(
	    image_sig_verify(&k, "0x08000000", img, sizeof(img), openssl_sig, sizeof(openssl_sig)),
	    0);
	/* streamed in odd pieces: the same */
	struct image_sig s;
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", openssl_sig, sizeof(openssl_sig)), 0);
	for (size_t off = 0; off < sizeof(img); off += 77)
		image_sig_update(&s, img + off, sizeof(img) - off < 77 ? sizeof(img) - off : 77);
	ck_assert_int_eq(image_sig_check(&s, &k), 0);
	ck_assert_int_eq(image_sig_check(&s, &k), -EINVAL); /* used up */
	/* another address, another image, a truncated image, hex instead of the address */
	ck_assert_int_eq(
	    image_sig_verify(&k, "0x08000400", img, sizeof(img), openssl_sig, sizeof(openssl_sig)),
	    -EBADMSG);
	ck_assert_int_eq(
	    image_sig_verify(&k, "hex", img, sizeof(img), openssl_sig, sizeof(openssl_sig)),
	    -EBADMSG);
	img[500] ^= 1;
	ck_assert_int_eq(
	    image_sig_verify(&k, "0x08000000", img, sizeof(img), openssl_sig, sizeof(openssl_sig)),
	    -EBADMSG);
	img[500] ^= 1;
	ck_assert_int_eq(image_sig_verify(&k, "0x08000000", img, sizeof(img) - 1, openssl_sig,
	                                  sizeof(openssl_sig)),
	                 -EBADMSG);
	/* a flipped bit inside r: still DER, no match */
	uint8_t bad[sizeof(openssl_sig)];
	memcpy(bad, openssl_sig, sizeof(bad));
	bad[10] ^= 0x40;
	ck_assert_int_eq(image_sig_verify(&k, "0x08000000", img, sizeof(img), bad, sizeof(bad)),
	                 -EBADMSG);
	image_sig_key_free(&k);
}
END_TEST

START_TEST(sig_malformed)
{
	img_init();
	struct image_sig_key k;
	struct image_sig s;
	ck_assert_int_eq(image_sig_key_load_public(&k, signer_pub, strlen(signer_pub)), 0);
	/* DER form: truncated, trailing byte, wrong tag, empty, negative integer, too long */
	uint8_t b[100];
	memcpy(b, openssl_sig, sizeof(openssl_sig));
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", b, sizeof(openssl_sig) - 1), -EINVAL);
	b[sizeof(openssl_sig)] = 0;
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", b, sizeof(openssl_sig) + 1), -EINVAL);
	b[0] = 0x31;
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", b, sizeof(openssl_sig)), -EINVAL);
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", b, 0), -EINVAL);
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", NULL, 0), -EINVAL);
	memset(b, 0x30, sizeof(b));
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", b, sizeof(b)), -EINVAL);
	static const uint8_t neg[] = {0x30, 0x08, 0x02, 0x02, 0x80, 0x01, 0x02, 0x02, 0x01, 0x01};
	ck_assert_int_eq(image_sig_begin(&s, "0x08000000", neg, sizeof(neg)), -EINVAL);
	/* r = 1, s = 1: well-formed, no match */
	static const uint8_t ones[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01};
	ck_assert_int_eq(image_sig_verify(&k, "0x08000000", img, sizeof(img), ones, sizeof(ones)),
	                 -EBADMSG);
	/* r = 0: out of range, no match */
	static const uint8_t zero[] = {0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01};
	ck_assert_int_eq(image_sig_verify(&k, "0x08000000", img, sizeof(img), zero, sizeof(zero)),
	                 -EBADMSG);
	/* bad address texts */
	ck_assert_int_eq(image_sig_begin(&s, "", openssl_sig, sizeof(openssl_sig)), -EINVAL);
	ck_assert_int_eq(image_sig_begin(&s, "0x0800 0000", openssl_sig, sizeof(openssl_sig)),
	                 -EINVAL);
	ck_assert_int_eq(
	    image_sig_begin(&s, "0x080000000000000000", openssl_sig, sizeof(openssl_sig)), -EINVAL);
	image_sig_key_free(&k);
}
END_TEST

START_TEST(sig_keys)
{
	struct image_sig_key k;
	/* a P-384 key, a private key as public, garbage, an empty text, a NUL inside */
	ck_assert_int_eq(image_sig_key_load_public(&k, p384_pub, strlen(p384_pub)), -EINVAL);
	ck_assert_int_eq(image_sig_key_load_public(&k, signer_pem, strlen(signer_pem)), -EINVAL);
	ck_assert_int_eq(image_sig_key_load_public(&k, "hello", 5), -EINVAL);
	ck_assert_int_eq(image_sig_key_load_public(&k, "", 0), -EINVAL);
	char withnul[sizeof(signer_pub)];
	memcpy(withnul, signer_pub, sizeof(signer_pub));
	withnul[30] = '\0';
	ck_assert_int_eq(image_sig_key_load_public(&k, withnul, sizeof(signer_pub) - 1), -EINVAL);
	/* a damaged base64 body */
	memcpy(withnul, signer_pub, sizeof(signer_pub));
	withnul[40] = withnul[40] == 'A' ? 'B' : 'A';
	int r = image_sig_key_load_public(&k, withnul, sizeof(signer_pub) - 1);
	ck_assert_msg(r == -EINVAL || r == 0, "%d", r); /* may still be a point: then no match */
	if (r == 0) {
		img_init();
		ck_assert_int_ne(image_sig_verify(&k, "0x08000000", img, sizeof(img), openssl_sig,
		                                  sizeof(openssl_sig)),
		                 0);
		image_sig_key_free(&k);
	}
	/* a verification without a loaded key */
	struct image_sig s;
	memset(&k, 0, sizeof(k));
	ck_assert_int_eq(image_sig_begin(&s, "hex", openssl_sig, sizeof(openssl_sig)), 0);
	ck_assert_int_eq(image_sig_check(&s, &k), -EINVAL);
	image_sig_key_free(&k);
}
END_TEST

START_TEST(sig_sign_roundtrip)
{
	img_init();
	struct image_sig_key priv, pub;
	ck_assert_int_eq(image_sig_key_load_private(&priv, signer_pem, strlen(signer_pem)), 0);
	ck_assert_int_eq(image_sig_key_load_public(&pub, signer_pub, strlen(signer_pub)), 0);
	char line[IMAGE_SIG_LINE_MAX];
	ck_assert_int_eq(image_sig_line(line, sizeof(line), 0, 0x08004000), 27);
	ck_assert_str_eq(line, "espstm-image-v1 0x08004000\n");
	ck_assert_int_eq(image_sig_line(line, sizeof(line), 1, 0), 20);
	ck_assert_str_eq(line, "espstm-image-v1 hex\n");
	ck_assert_int_eq(image_sig_line(line, 10, 0, 0), -ENOSPC);
	struct image_sig s;
	uint8_t der[IMAGE_SIG_DER_MAX];
	size_t len = 0;
	unsigned seed = 7;
	ck_assert_int_eq(image_sig_hash_begin(&s, "0x08004000"), 0);
	image_sig_update(&s, img, sizeof(img));
	ck_assert_int_eq(image_sig_sign(&s, &priv, der, sizeof(der), &len, ent_ok, &seed), 0);
	ck_assert_uint_ge(len, 8);
	ck_assert_uint_le(len, 72);
	ck_assert_int_eq(image_sig_verify(&pub, "0x08004000", img, sizeof(img), der, len), 0);
	ck_assert_int_eq(image_sig_verify(&pub, "0x08000000", img, sizeof(img), der, len),
	                 -EBADMSG);
	/* the public key cannot sign; failing entropy; a small buffer */
	ck_assert_int_eq(image_sig_hash_begin(&s, "hex"), 0);
	ck_assert_int_eq(image_sig_sign(&s, &pub, der, sizeof(der), &len, ent_ok, &seed), -EINVAL);
	ck_assert_int_eq(image_sig_hash_begin(&s, "hex"), 0);
	ck_assert_int_eq(image_sig_sign(&s, &priv, der, sizeof(der), &len, ent_fail, NULL), -EIO);
	ck_assert_int_eq(image_sig_hash_begin(&s, "hex"), 0);
	ck_assert_int_eq(image_sig_sign(&s, &priv, der, 16, &len, ent_ok, &seed), -ENOSPC);
	image_sig_key_free(&priv);
	image_sig_key_free(&pub);
}
END_TEST

static Suite *image_sig_suite(void)
{
	Suite *s = suite_create("image_sig");
	TCase *tc = tcase_create("image_sig");
	tcase_add_test(tc, sig_openssl_vector);
	tcase_add_test(tc, sig_malformed);
	tcase_add_test(tc, sig_keys);
	tcase_add_test(tc, sig_sign_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(image_sig_suite)
