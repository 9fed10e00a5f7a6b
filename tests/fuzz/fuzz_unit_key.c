/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: firmware/crypto/unit_key.c parser on arbitrary bytes (copied to an
 * exact-size heap buffer so ASan sees every over-read). Byte 0 picks the error buffer size
 * (0..127) and, with bit 7, the mode: the rest is the text itself, or (bit 7) pairs
 * (position, byte) written over a valid key file, so that near-valid files (and the success
 * path, out of reach of random bytes: 64 hex digits) are explored too. A parse that succeeds must
 * give a valid identity and a non-zero key, and format -> parse must give the same key back; a
 * parse that fails must leave *out zeroed and a NUL-terminated message.
 */
#include "unit_key.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static const char valid[] = "# espstm unit key for HOST (secret; mode 0600)\n"
	                            "identity espstm-0123456789abcdef\n"
	                            "key 00112233445566778899aabbccddeeff"
	                            "0123456789ABCDEF0123456789abcdef\n";
	size_t errlen = data[0] & 127;
	size_t len = (data[0] & 128) ? sizeof(valid) - 1 : size - 1;
	char *text = malloc(len ? len : 1);
	char *err = malloc(errlen ? errlen : 1);
	if (!text || !err)
		abort();
	if (data[0] & 128) {
		memcpy(text, valid, len);
		for (size_t i = 1; i + 1 < size; i += 2)
			text[data[i] % len] = (char)data[i + 1];
	} else {
		memcpy(text, data + 1, len);
	}
	struct tls_psk k, back;
	static const struct tls_psk zero;
	int r = unit_key_parse(text, len, &k, errlen ? err : NULL, errlen);
	if (r == 0) {
		size_t n = strlen(k.identity);
		uint8_t any = 0;
		for (size_t i = 0; i < sizeof(k.key); i++)
			any |= k.key[i];
		if (n == 0 || n > TLS_PSK_ID_MAX || !any)
			abort();
		char buf[256];
		int f = unit_key_format(&k, "fuzz", buf, sizeof(buf));
		if (f <= 0 || unit_key_parse(buf, (size_t)f, &back, NULL, 0) != 0 ||
		    memcmp(&k, &back, sizeof(k)) != 0)
			abort();
	} else {
		if (r != -22 /* EINVAL */ || memcmp(&k, &zero, sizeof(k)) != 0)
			abort();
		if (errlen && (memchr(err, '\0', errlen) == NULL || (errlen > 1 && err[0] == '\0')))
			abort();
	}
	free(text);
	free(err);
	return 0;
}
