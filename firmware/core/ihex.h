/* SPDX-License-Identifier: MIT */
/*
 * Streaming Intel HEX decoder (Intel "Hexadecimal Object File Format Specification",
 * revision A, 1988): text goes in in pieces of any size, data records come out one at a
 * time with their absolute address. Portable C11, no heap, no OS calls; memory is one
 * record (struct ihex, about 300 bytes), so an image of any size can be decoded while it
 * arrives (the HTTP upload of firmware/core/http_api.h).
 *
 * Accepted: records ":LLAAAATT<data>CC" separated by any mix of CR, LF, blanks and tabs;
 * hex digits in either case. Types: 00 data, 01 end of file, 02 extended segment address
 * (base = value * 16), 04 extended linear address (base = value << 16), 03 / 05 start
 * address (ignored: the start is the image base, see http_api.h). The address of a data
 * byte is base + the record's 16-bit offset (+ its index). Only blanks and line breaks
 * may follow the end-of-file record.
 * Errors (the decoder stops; ihex_error() gives one line with the line number): a
 * character other than the above, anything but blanks and line breaks after the end-of-file
 * record (e.g. two files concatenated), a record cut by a line break, a checksum mismatch, a
 * wrong length for types 01/02/03/04/05, an unknown type, a data record that crosses the end
 * of its 64 KiB segment (type 02 bases; the specification's wrap-around is not supported)
 * or of the 32-bit address space, and ihex_finish() without an end-of-file record (a
 * truncated file).
 */
#ifndef ESPSTM_IHEX_H
#define ESPSTM_IHEX_H

#include <stddef.h>
#include <stdint.h>

#define IHEX_REC_MAX (1 + 2 + 1 + 255 + 1) /* decoded bytes of the longest record */
#define IHEX_MSG     80

struct ihex {
	/* All fields are private: use the functions below. */
	uint8_t rec[IHEX_REC_MAX]; /* decoded bytes of the record being read */
	uint16_t nibbles;          /* hex digits of the current record so far */
	uint16_t need;             /* hex digits the record has (known after its length) */
	int in_rec;                /* after ':' */
	int eof;                   /* end-of-file record seen */
	int failed;
	uint32_t line;  /* 1-based line of the current character */
	uint32_t base;  /* extended address base */
	int segment;    /* base from type 02: offsets wrap at 64 KiB */
	uint16_t d_len; /* data of the last data record not yet taken */
	uint16_t d_off;
	uint32_t d_addr;
	char msg[IHEX_MSG];
};

void ihex_init(struct ihex *h);

/*
 * Decode text p (n bytes). Returns the bytes consumed (0..n). Stops right after a data
 * record with at least one byte is complete: its data must be taken with ihex_data() /
 * ihex_take() before ihex_feed() consumes more (it returns 0 while data is pending). After
 * an error, input is consumed without effect (check ihex_failed()); after the end-of-file
 * record, input is only checked to be blanks and line breaks (anything else is an error).
 */
size_t ihex_feed(struct ihex *h, const uint8_t *p, size_t n);

/* Pending data of the last data record: sets *addr (absolute address of *data[0]) and
 * *data, returns the byte count (0 = none pending). */
size_t ihex_data(const struct ihex *h, uint32_t *addr, const uint8_t **data);

/* k (<= the count ihex_data returned) pending bytes were used. */
void ihex_take(struct ihex *h, size_t k);

/* The text has ended. Returns 0 if an end-of-file record was seen and no record is cut,
 * -EINVAL otherwise (the message says why; ihex_failed() is then 1). */
int ihex_finish(struct ihex *h);

/* 1 after an error. */
int ihex_failed(const struct ihex *h);
/* 1 once the end-of-file record was decoded. */
int ihex_done(const struct ihex *h);
/* The error message ("" if none), e.g. "Intel HEX line 12: checksum mismatch". */
const char *ihex_error(const struct ihex *h);

#endif
