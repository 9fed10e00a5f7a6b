/* SPDX-License-Identifier: MIT */
/*
 * image_sig: signatures of firmware images for locked mode (docs: DESIGN "Signed images").
 * A unit with a verification key (an ECDSA P-256 public key in PEM, made with openssl)
 * flashes only images signed by its private key. The signed message is the line
 * "espstm-image-v1 ADDR\n" (ADDR "0x%08x" of the flash address of a .bin, "hex" for Intel
 * HEX) followed by the uploaded file's bytes exactly; the signature is the DER
 * ECDSA-Sig-Value (SEC 1 / RFC 5480, RFC 3279 section 2.2.3) of its SHA-256 (FIPS 180-4),
 * which is what `openssl dgst -sha256 -sign signer.pem` writes. The hash is streamed (the
 * image is never held in memory). On mbedTLS 2.28 (Debian, ESP8266 RTOS SDK 2.16) and 3.x
 * (ESP-IDF v5); no OS calls: entropy for signing comes from the caller.
 */
#ifndef ESPSTM_IMAGE_SIG_H
#define ESPSTM_IMAGE_SIG_H

#include <mbedtls/pk.h>
#include <mbedtls/sha256.h>

#include <stddef.h>
#include <stdint.h>

#define IMAGE_SIG_MAGIC    "espstm-image-v1"
#define IMAGE_SIG_DER_MAX  80   /* bytes: a P-256 DER signature is at most 72 */
#define IMAGE_SIG_LINE_MAX 32   /* bytes of the first line, NUL included */
#define IMAGE_SIG_PEM_MAX  1024 /* bytes of a PEM key file accepted (P-256: ~250) */
#define IMAGE_SIG_HASH_LEN 32   /* SHA-256 */

/* A key: the public verification key (locked units) or a private signing key (espstm
 * sign). Free with image_sig_key_free(). */
struct image_sig_key {
	mbedtls_pk_context pk;
	int loaded;
};

/* A streamed verification (or signing) in progress: the SHA-256 of the message and the
 * signature to check at its end. */
struct image_sig {
	mbedtls_sha256_context sha;
	uint8_t der[IMAGE_SIG_DER_MAX];
	size_t der_len;
	int active;
};

/*
 * Load a PEM public key (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----", as written by
 * `openssl ec -pubout`) from pem/len (need not be NUL-terminated; at most
 * IMAGE_SIG_PEM_MAX bytes). Only ECDSA P-256 (prime256v1/secp256r1) keys. Returns 0,
 * -EINVAL (not a PEM public key, another curve or algorithm, too long) or -ENOMEM.
 */
int image_sig_key_load_public(struct image_sig_key *k, const char *pem, size_t len);

/* Load a PEM private P-256 key (SEC 1 "EC PRIVATE KEY" from `openssl ecparam -genkey`, or
 * PKCS#8 "PRIVATE KEY"; unencrypted). Returns 0, -EINVAL or -ENOMEM. */
int image_sig_key_load_private(struct image_sig_key *k, const char *pem, size_t len);

/* Free k (also after a failed load, or never loaded but zeroed). */
void image_sig_key_free(struct image_sig_key *k);

/* The message's first line for an image: "espstm-image-v1 0x%08x\n" (hex 0) or
 * "espstm-image-v1 hex\n" (hex 1) into buf (cap >= IMAGE_SIG_LINE_MAX). The ADDR part
 * alone (addr_text of image_sig_begin) is the line without the magic, space and newline.
 * Returns its length, or -ENOSPC. */
int image_sig_line(char *buf, size_t cap, int hex, uint32_t addr);

/*
 * Start checking an image: addr_text is the ADDR of the first line ("0x08000000" or
 * "hex": 1..16 printable characters without spaces), der/len the signature (copied).
 * The DER is checked for its form here (SEQUENCE of two positive INTEGERs of at most 33
 * bytes, nothing after it). Returns 0, or -EINVAL (bad addr_text, or a signature that is
 * not a DER ECDSA-Sig-Value; s is then inactive).
 */
int image_sig_begin(struct image_sig *s, const char *addr_text, const uint8_t *der, size_t len);

/* The next n bytes of the image (in order). No effect on an inactive s. */
void image_sig_update(struct image_sig *s, const uint8_t *p, size_t n);

/* The image is complete: verify the signature with the public key k. Returns 0 (valid),
 * -EBADMSG (well-formed but does not match this image, address and key), -EINVAL (no
 * active begin, or k is not a loaded P-256 key). s is inactive afterwards. */
int image_sig_check(struct image_sig *s, const struct image_sig_key *k);

/* Drop an active check (no result). */
void image_sig_cancel(struct image_sig *s);

/* One-shot: verify der/len over addr_text + img/n with k. Returns as image_sig_check (or
 * -EINVAL from image_sig_begin). */
int image_sig_verify(const struct image_sig_key *k, const char *addr_text, const uint8_t *img,
                     size_t n, const uint8_t *der, size_t len);

/* Entropy for signing: fill buf with n random bytes. Returns 0 or a negative errno. */
typedef int (*image_sig_entropy_fn)(void *ctx, unsigned char *buf, size_t n);

/*
 * Sign: the SHA-256 of the message hashed so far in s (image_sig_begin with any valid
 * signature is not needed: use image_sig_hash_begin) is signed with the private key k
 * (ECDSA, RFC 6979 deterministic k where mbedTLS has it, blinded with ent's bytes); the
 * DER signature goes to der (cap >= IMAGE_SIG_DER_MAX), its length to *len. Returns 0,
 * -EINVAL (k not a private P-256 key, s inactive), -ENOSPC (cap) or -EIO (entropy or
 * mbedTLS failure). s is inactive afterwards.
 */
int image_sig_sign(struct image_sig *s, const struct image_sig_key *k, uint8_t *der, size_t cap,
                   size_t *len, image_sig_entropy_fn ent, void *ent_ctx);

/* Start hashing a message for image_sig_sign (no signature to check). Returns 0 or -EINVAL
 * (bad addr_text, as image_sig_begin). */
int image_sig_hash_begin(struct image_sig *s, const char *addr_text);

#endif
