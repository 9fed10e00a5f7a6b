/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: firmware/core/json.c reader on arbitrary bytes (copied to an exact-size
 * heap buffer so ASan sees every over-read). Byte 0 picks the token budget (1..64 or 256),
 * the rest is the text. Every token is checked (bounds, next links) and every string, number
 * and object lookup helper is run on it; the settings parser and the writer get the same text.
 */
#include "json.h"
#include "settings.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct jtok tok[256];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int max = (data[0] & 0x40) ? 256 : 1 + (data[0] & 63);
	size_t len = size - 1;
	char *js = malloc(len ? len : 1);
	if (!js)
		return 0;
	memcpy(js, data + 1, len);
	int n = json_parse(js, len, tok, max);
	if (n == 0 || n < -2 || n > max)
		abort();
	for (int i = 0; i < n; i++) {
		const struct jtok *t = &tok[i];
		if (t->type < J_OBJ || t->type > J_NULL || t->start > len || t->end > len ||
		    t->next <= i || t->next > n)
			abort();
		if (t->type != J_STR && t->end < t->start)
			abort();
		long long v;
		char out[32], big[512];
		if (json_int(js, t, &v) == 0 && t->type != J_NUM)
			abort();
		(void)json_copy(js, t, out, sizeof(out));
		(void)json_copy(js, t, big, sizeof(big));
		(void)json_copy(js, t, out, 1);
		(void)json_str_eq(js, t, "port");
		if (t->type == J_OBJ) {
			int f = json_find(js, tok, i, "a");
			if (f >= n || (f >= 0 && f <= i))
				abort();
			(void)json_find(js, tok, i, "targets");
		}
	}
	struct settings_caps caps;
	settings_caps_nominal(&caps, 1 + (data[0] >> 7));
	struct settings s;
	settings_default(&s, &caps);
	struct settings_error err;
	(void)settings_from_json(&s, &caps, js, len, &err);
	if (err.count > SETTINGS_MAX_ERRORS)
		abort();
	/* writer: the text as key and string value (NUL-terminated copy) */
	char *z = malloc(len + 1);
	if (z) {
		memcpy(z, js, len);
		z[len] = '\0';
		char wb[64];
		struct jw w;
		jw_init(&w, wb, (data[0] & 63) % sizeof(wb));
		jw_obj(&w);
		jw_key(&w, z);
		jw_str(&w, z);
		jw_int(&w, (long long)(int8_t)data[0] * 0x0102030405060LL);
		jw_int(&w, INT64_MIN);
		jw_obj_end(&w);
		int r = jw_finish(&w);
		if (r >= 0 && (size_t)r != strlen(wb))
			abort();
		free(z);
	}
	free(js);
	return 0;
}
