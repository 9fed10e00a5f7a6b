/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: firmware/crypto/image_sig.c on arbitrary bytes (each part copied to an
 * exact-size heap buffer so ASan sees every over-read). Byte 0 picks the mode:
 *  0: the rest is a PEM public key (image_sig_key_load_public; a key that loads must verify
 *     nothing it did not sign: the fixed vector's signature must not match it unless it is
 *     the signer's key);
 *  1: the rest is a signature container (image_sig_begin's DER check, then a verification
 *     over a fixed image with the fixed key: it must never report a match, since the one
 *     valid signature of that image is not what random bytes produce - checked against the
 *     vector);
 *  2: byte 1 = n, then n bytes of signature and the rest as the image (streamed in pieces
 *     of byte 2 + 1 bytes), verified with the fixed key;
 *  3: pairs (position, byte) written over the valid signature (near-valid DER).
 * Never crashes, never reads out of bounds; results are 0, -EINVAL or -EBADMSG only.
 */
#include "image_sig.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char pub_pem[] = "-----BEGIN PUBLIC KEY-----\n"
                              "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhgjMOrlifNtZkW8MJIVUsEGqE++I\n"
                              "L9F8GgT/C3fY8OtkCNTR5rZfmdXeMCAg5Sn0QG4m/8L+uCkfkJfje7V1bw==\n"
                              "-----END PUBLIC KEY-----\n";
/* (printf 'espstm-image-v1 0x08000000\n'; bytes 0..255 x 4) | openssl dgst -sha256 -sign */
static const uint8_t good_sig[] = {
    0x30, 0x46, 0x02, 0x21, 0x00, 0x82, 0x6a, 0xa4, 0x1e, 0x9e, 0x10, 0x06, 0x7b, 0xbf, 0x93,
    0xc8, 0x31, 0xfd, 0x82, 0x9c, 0xfe, 0x2a, 0x93, 0xa8, 0xb9, 0x36, 0xea, 0x47, 0x5e, 0xd1,
    0x6f, 0x67, 0x88, 0xc8, 0xf6, 0x47, 0x04, 0x02, 0x21, 0x00, 0xdd, 0x69, 0x45, 0x1e, 0x2a,
    0xd4, 0x1d, 0xdb, 0x4d, 0x87, 0x88, 0x47, 0x28, 0x9e, 0xe2, 0x95, 0x7e, 0x9b, 0x1b, 0x90,
    0x12, 0x5a, 0x08, 0xbc, 0x65, 0xc9, 0x09, 0xc2, 0x43, 0x08, 0xbb, 0xf4};

static struct image_sig_key key;
static uint8_t img[1024];

static void setup(void)
{
	static int done;
	if (done)
		return;
	done = 1;
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)i;
	if (image_sig_key_load_public(&key, pub_pem, strlen(pub_pem)) != 0 ||
	    image_sig_verify(&key, "0x08000000", img, sizeof(img), good_sig, sizeof(good_sig)) != 0)
		abort(); /* the fixture itself is wrong */
}

static void result_ok(int r)
{
	if (r != 0 && r != -EINVAL && r != -EBADMSG)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	if (size < 1)
		return 0;
	uint8_t mode = data[0] & 3;
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	uint8_t *b = malloc(n ? n : 1);
	if (!b)
		abort();
	memcpy(b, p, n);
	if (mode == 0) {
		struct image_sig_key k;
		int r = image_sig_key_load_public(&k, (const char *)b, n);
		if (r != 0 && r != -EINVAL && r != -ENOMEM)
			abort();
		if (r == 0) {
			int v = image_sig_verify(&k, "0x08000000", img, sizeof(img), good_sig,
			                         sizeof(good_sig));
			result_ok(v);
			image_sig_key_free(&k);
		}
	} else if (mode == 1) {
		int r = image_sig_verify(&key, "0x08000000", img, sizeof(img), b, n);
		result_ok(r);
		if (r == 0 && (n != sizeof(good_sig) || memcmp(b, good_sig, n) != 0))
			abort(); /* a forgery (or a second encoding accepted) */
	} else if (mode == 2 && n >= 2) {
		size_t sl = b[0] < n - 2 ? b[0] : n - 2;
		size_t piece = (size_t)b[1] + 1;
		uint8_t *sig = malloc(sl ? sl : 1);
		if (!sig)
			abort();
		memcpy(sig, b + 2, sl);
		const uint8_t *im = b + 2 + sl;
		size_t il = n - 2 - sl;
		struct image_sig s;
		if (image_sig_begin(&s, "hex", sig, sl) == 0) {
			for (size_t off = 0; off < il; off += piece)
				image_sig_update(&s, im + off, il - off < piece ? il - off : piece);
			result_ok(image_sig_check(&s, &key));
		}
		free(sig);
	} else if (mode == 3) {
		uint8_t sig[sizeof(good_sig)];
		memcpy(sig, good_sig, sizeof(sig));
		for (size_t i = 0; i + 1 < n; i += 2)
			sig[b[i] % sizeof(sig)] = b[i + 1];
		int r = image_sig_verify(&key, "0x08000000", img, sizeof(img), sig, sizeof(sig));
		result_ok(r);
		if (r == 0 && memcmp(sig, good_sig, sizeof(sig)) != 0)
			abort();
	}
	free(b);
	return 0;
}
