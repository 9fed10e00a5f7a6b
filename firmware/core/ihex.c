/* SPDX-License-Identifier: MIT */
/* Streaming Intel HEX decoder (ihex.h). */
#include "ihex.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void ihex_init(struct ihex *h)
{
	memset(h, 0, sizeof(*h));
	h->line = 1;
}

static void fail(struct ihex *h, const char *what)
{
	if (h->failed)
		return;
	h->failed = 1;
	h->d_len = 0;
	snprintf(h->msg, sizeof(h->msg), "Intel HEX line %lu: %s", (unsigned long)h->line, what);
}

static int hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A whole record is in rec[]: check and interpret it. */
static void record(struct ihex *h)
{
	uint8_t len = h->rec[0];
	uint16_t off = (uint16_t)(h->rec[1] << 8 | h->rec[2]);
	uint8_t type = h->rec[3];
	uint8_t sum = 0;
	for (unsigned i = 0; i < 5u + len; i++)
		sum = (uint8_t)(sum + h->rec[i]);
	if (sum != 0) {
		fail(h, "checksum mismatch");
		return;
	}
	const uint8_t *d = h->rec + 4;
	switch (type) {
	case 0x00:
		if (!len)
			return;
		if (h->segment && (uint32_t)off + len > 0x10000u) {
			fail(h, "data record crosses the end of its 64 KiB segment");
			return;
		}
		h->d_addr = h->base + off;
		if (h->d_addr + (uint32_t)len - 1u < h->d_addr) {
			fail(h, "data beyond the 4 GiB address space");
			return;
		}
		h->d_len = len;
		h->d_off = 0;
		return;
	case 0x01:
		if (len != 0) {
			fail(h, "end-of-file record with data");
			return;
		}
		h->eof = 1;
		return;
	case 0x02:
	case 0x04:
		if (len != 2) {
			fail(h, "extended address record without 2 data bytes");
			return;
		}
		if (type == 0x02) {
			h->base = (uint32_t)(d[0] << 8 | d[1]) << 4;
			h->segment = 1;
		} else {
			h->base = (uint32_t)(d[0] << 8 | d[1]) << 16;
			h->segment = 0;
		}
		return;
	case 0x03:
	case 0x05:
		if (len != 4)
			fail(h, "start address record without 4 data bytes");
		return;
	default: {
		char m[40];
		snprintf(m, sizeof(m), "unknown record type %02X", type);
		fail(h, m);
		return;
	}
	}
}

size_t ihex_feed(struct ihex *h, const uint8_t *p, size_t n)
{
	size_t i = 0;
	if (h->d_len)
		return 0;
	if (h->failed)
		return n;
	for (; i < n; i++) {
		uint8_t c = p[i];
		if (h->eof) {
			/* only blanks and line breaks may follow the end-of-file record: a
			 * second file after it (cat a.hex b.hex) must not be dropped silently */
			if (c == '\n')
				h->line++;
			else if (c != '\r' && c != ' ' && c != '\t') {
				fail(h, "data after the end-of-file record");
				return n;
			}
			continue;
		}
		if (!h->in_rec) {
			if (c == ':') {
				h->in_rec = 1;
				h->nibbles = 0;
				h->need = 2;
			} else if (c == '\n') {
				h->line++;
			} else if (c != '\r' && c != ' ' && c != '\t') {
				fail(h, "unexpected character outside a record");
				return n;
			}
			continue;
		}
		int v = hexval(c);
		if (v < 0) {
			fail(h, c == '\n' || c == '\r' ? "record shorter than its length"
			                               : "character that is not a hex digit");
			return n;
		}
		uint8_t *b = &h->rec[h->nibbles / 2];
		*b = (h->nibbles & 1) ? (uint8_t)(*b << 4 | v) : (uint8_t)v;
		h->nibbles++;
		if (h->nibbles == 2)
			h->need = (uint16_t)(2u * (5u + h->rec[0]));
		if (h->nibbles < h->need)
			continue;
		h->in_rec = 0;
		record(h);
		if (h->failed)
			return n;
		if (h->d_len)
			return i + 1;
	}
	return i;
}

size_t ihex_data(const struct ihex *h, uint32_t *addr, const uint8_t **data)
{
	if (!h->d_len)
		return 0;
	*addr = h->d_addr + h->d_off;
	*data = h->rec + 4 + h->d_off;
	return (size_t)(h->d_len - h->d_off);
}

void ihex_take(struct ihex *h, size_t k)
{
	if (!h->d_len)
		return;
	if (k > (size_t)(h->d_len - h->d_off))
		k = (size_t)(h->d_len - h->d_off);
	h->d_off = (uint16_t)(h->d_off + k);
	if (h->d_off == h->d_len)
		h->d_len = h->d_off = 0;
}

int ihex_finish(struct ihex *h)
{
	if (h->failed)
		return -EINVAL;
	if (h->in_rec) {
		fail(h, "file ends inside a record");
		return -EINVAL;
	}
	if (!h->eof) {
		fail(h, "no end-of-file record (file truncated?)");
		return -EINVAL;
	}
	return 0;
}

int ihex_failed(const struct ihex *h)
{
	return h->failed;
}

int ihex_done(const struct ihex *h)
{
	return h->eof;
}

const char *ihex_error(const struct ihex *h)
{
	return h->msg;
}
