/* SPDX-License-Identifier: MIT */
/* The flash job of one target (flash_job.h): query parameters, the image pipeline (bin or
 * Intel HEX) into the AN3155 master, staging with CRC-32 and HEX dry run, the replay of the
 * staged copy, and the states between them. */
#include "flash_job.h"

#include "http_api.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void flash_job_init(struct flash_job *j, unsigned target, const struct api_ops *ops, void *ctx,
                    const struct settings *cur)
{
	memset(j, 0, sizeof(*j));
	j->target = target;
	j->ops = ops;
	j->ctx = ctx;
	j->cur = cur;
}

int flash_job_busy(const struct flash_job *j)
{
	return (j->state != FLASH_JOB_IDLE && j->state != FLASH_JOB_OVER) ||
	       (j->isp && stm32_isp_busy(j->isp));
}

static void job_log(const struct flash_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void job_log(const struct flash_job *j, const char *fmt, ...)
{
	if (!j->ops || !j->ops->log)
		return;
	char line[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	j->ops->log(j->ctx, line);
}

/* The run is over: it failed here, or the ISP it began has stopped (done or failed). Body
 * bytes can then only be dropped. */
static int run_over(const struct flash_job *j)
{
	return j->fail_status || (j->run && !stm32_isp_busy(j->run));
}

static void job_fail(struct flash_job *j, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A failure found here (not by the ISP): the first one wins; a running ISP is aborted. */
static void job_fail(struct flash_job *j, int status, const char *fmt, ...)
{
	if (j->fail_status)
		return;
	if (j->run && stm32_isp_state(j->run) == STM32_ISP_DONE)
		return; /* already written completely */
	if (j->run && stm32_isp_state(j->run) == STM32_ISP_FAILED)
		return; /* the ISP's own error is the cause */
	j->fail_status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
	if (j->run && stm32_isp_busy(j->run))
		stm32_isp_abort(j->run);
}

/* ---- query parameters ---- */

static int parse_u32(const char *v, size_t n, uint32_t *out)
{
	uint64_t x = 0;
	int base = 10;
	size_t i = 0;
	if (n > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == n)
		return -1;
	for (; i < n; i++) {
		char c = v[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		x = x * (uint64_t)base + (uint64_t)d;
		if (x > 0xFFFFFFFFu)
			return -1;
	}
	*out = (uint32_t)x;
	return 0;
}

static int parse_bool(const char *v, size_t n, int *out)
{
	if ((n == 1 && v[0] == '1') || (n == 4 && !memcmp(v, "true", 4)))
		*out = 1;
	else if ((n == 1 && v[0] == '0') || (n == 5 && !memcmp(v, "false", 5)))
		*out = 0;
	else
		return -1;
	return 0;
}

static const char *const param_keys[] = {"format",    "address", "verify", "go",
                                         "unprotect", "baud",    "stage",  "crc32"};
enum { NKEYS = sizeof(param_keys) / sizeof(param_keys[0]) };

/* Value v/vl of parameter k into fp. Returns 0, or -1 if it is malformed. */
static int parse_value(int k, const char *v, size_t vl, struct flash_job_params *fp)
{
	switch (k) {
	case 0:
		if (vl == 3 && !memcmp(v, "bin", 3))
			fp->hex = 0;
		else if (vl == 3 && !memcmp(v, "hex", 3))
			fp->hex = 1;
		else
			return -1;
		return 0;
	case 1:
		fp->has_address = 1;
		return parse_u32(v, vl, &fp->address) < 0 || (fp->address & 3u) != 0 ? -1 : 0;
	case 2:
		return parse_bool(v, vl, &fp->verify);
	case 3:
		return parse_bool(v, vl, &fp->go);
	case 4:
		return parse_bool(v, vl, &fp->unprotect);
	case 5:
		return parse_u32(v, vl, &fp->baud) < 0 || fp->baud < 1200 || fp->baud > 4000000 ? -1
		                                                                                : 0;
	case 6:
		return parse_bool(v, vl, &fp->stage);
	default:
		fp->has_crc = 1;
		return parse_u32(v, vl, &fp->crc);
	}
}

/* The query string q (NULL: none) into fp. Returns 0, or -1 with msg filled. */
static int parse_params(const char *q, struct flash_job_params *fp, char *msg, size_t cap)
{
	memset(fp, 0, sizeof(*fp));
	fp->verify = 1;
	fp->baud = 115200;
	unsigned seen = 0;
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t kl = eq ? (size_t)(eq - q) : len;
		const char *v = eq ? eq + 1 : q + len;
		size_t vl = eq ? len - kl - 1 : 0;
		if (len == 0) {
			q = amp ? amp + 1 : q + len;
			continue;
		}
		int k = -1;
		for (int i = 0; i < NKEYS; i++)
			if (strlen(param_keys[i]) == kl && !memcmp(q, param_keys[i], kl))
				k = i;
		if (k < 0) {
			snprintf(msg, cap,
			         "unknown parameter '%.*s' (format, address, verify, go, "
			         "unprotect, baud, stage, crc32)",
			         (int)(kl > 24 ? 24 : kl), q);
			for (char *c = msg; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';
			return -1;
		}
		if (seen & (1u << k)) {
			snprintf(msg, cap, "parameter '%s' given twice", param_keys[k]);
			return -1;
		}
		seen |= 1u << k;
		if (parse_value(k, v, vl, fp) < 0) {
			static const char *const want[] = {
			    "bin or hex", "an address (0x-hex or decimal, a multiple of 4)",
			    "0 or 1",     "0 or 1",
			    "0 or 1",     "a baud rate 1200..4000000",
			    "0 or 1",     "a CRC-32 (0x-hex, e.g. 0x1A2B3C4D)"};
			snprintf(msg, cap, "parameter '%s': want %s", param_keys[k], want[k]);
			return -1;
		}
		q = amp ? amp + 1 : q + len;
	}
	if (fp->hex && fp->has_address) {
		snprintf(msg, cap, "parameter 'address' is for format=bin (Intel HEX has its own)");
		return -1;
	}
	if (fp->has_crc && !fp->stage) {
		snprintf(msg, cap, "parameter 'crc32' needs stage=1 (verify before commit)");
		return -1;
	}
	return 0;
}

/* ---- the ISP ---- */

static void on_progress(void *arg, const struct stm32_isp_status *st)
{
	struct flash_job *j = arg;
	if (st->state != STM32_ISP_IDLE && st->state != STM32_ISP_DONE &&
	    st->state != STM32_ISP_FAILED)
		j->step = st->state;
}

/* stm32_isp_begin for the job (j->run set). Returns 0, or -1 with the job failed. */
static int isp_begin(struct flash_job *j, uint32_t address, uint32_t total)
{
	struct stm32_isp_opts o;
	memset(&o, 0, sizeof(o));
	o.address = address;
	o.total = total;
	o.baud = j->p.baud;
	o.entry = STM32_ISP_ENTRY_PINS;
	o.settle_ms = j->cur->target[j->target].settle_ms;
	o.verify = j->p.verify;
	/* locked mode: never leave the chip in its bootloader, where an RFC 2217 client could
	 * write it with AN3155 commands */
	o.finish = j->p.go  ? STM32_ISP_FINISH_GO
	           : j->sig ? STM32_ISP_FINISH_RESET
	                    : STM32_ISP_FINISH_STAY;
	o.flags = j->p.unprotect ? STM32_ISP_UNPROTECT_READ | STM32_ISP_UNPROTECT_WRITE : 0;
	j->step = STM32_ISP_CONNECTING;
	stm32_isp_set_progress(j->isp, on_progress, j);
	int r = stm32_isp_begin(j->isp, &o);
	if (r < 0) {
		struct stm32_isp_status st;
		stm32_isp_status(j->isp, &st);
		job_fail(j, r == -EINVAL ? 400 : 500, "cannot start: %s",
		         st.message && *st.message ? st.message : "bad options");
		return -1;
	}
	j->run = j->isp;
	return 0;
}

/* HTTP status of an ISP failure (http_api.h "Status codes"). */
static int isp_status_code(const struct stm32_isp_status *st)
{
	switch (st->error) {
	case STM32_ISP_E_NONE:
		return 500;
	case STM32_ISP_E_ARG:
	case STM32_ISP_E_SHORT:
		return 400;
	case STM32_ISP_E_RANGE:
		if (st->dev && st->address < st->dev->flash_base)
			return 400;
		return 413;
	case STM32_ISP_E_READ_PROTECTED:
	case STM32_ISP_E_WRITE_PROTECTED:
		return 423;
	case STM32_ISP_E_UART:
	case STM32_ISP_E_ABORTED:
		return 500;
	default:
		return 502;
	}
}

/* ---- the image pipeline (bin or Intel HEX into the ISP) ---- */

/* HEX: hand the pending jump (stm32_isp_seek: the ISP decides, once it knows the device,
 * whether a gap is filled or skipped, and fails on an address outside the flash) and the
 * record's data to the ISP. 1 when nothing is pending. */
static int push_pending(struct flash_job *j)
{
	if (!j->run)
		return 1;
	if (j->seek) {
		int r = stm32_isp_seek(j->run, j->seek_addr);
		if (r == -EINVAL)
			job_fail(j, 400,
			         "Intel HEX: data at 0x%08lX cannot be placed after 0x%08lX",
			         (unsigned long)j->seek_addr, (unsigned long)j->next_addr);
		j->seek = 0;
		j->next_addr = j->seek_addr;
		if (r < 0)
			return 1; /* the run failed: nothing more to write */
	}
	uint32_t addr;
	const uint8_t *d;
	size_t n;
	while ((n = ihex_data(&j->ihex, &addr, &d)) != 0) {
		size_t k = stm32_isp_write(j->run, d, n);
		ihex_take(&j->ihex, k);
		j->next_addr += (uint32_t)k;
		if (k < n)
			return 0;
	}
	return 1;
}

/* HEX: a data record was decoded: start the run (the image starts at the first record:
 * a seek before any byte), or plan the jump to a record after a gap. */
static void hex_record(struct flash_job *j)
{
	uint32_t addr;
	const uint8_t *d;
	if (!ihex_data(&j->ihex, &addr, &d))
		return;
	if (!j->run) {
		j->address = addr;
		j->addr_known = 1;
		if (isp_begin(j, 0, 0) < 0)
			return;
		j->seek = 1;
		j->seek_addr = addr;
		return;
	}
	if (addr < j->next_addr) {
		job_fail(j, 400,
		         "Intel HEX: data at 0x%08lX after data up to 0x%08lX: records must be in "
		         "ascending address order without overlap",
		         (unsigned long)addr, (unsigned long)j->next_addr);
		return;
	}
	if (addr > j->next_addr) {
		j->seek = 1;
		j->seek_addr = addr;
	}
}

/* The image pipeline into the ISP, for a streamed body and for the staged copy alike.
 * Returns the bytes taken (0..n); fewer: no room now. Once the run is over every byte is
 * taken and dropped (the answer is sent at the body's end). */
static size_t pipeline_feed(struct flash_job *j, const uint8_t *p, size_t n)
{
	size_t used = 0;
	if (!j->p.hex) {
		if (!run_over(j))
			used = stm32_isp_write(j->run, p, n);
		return run_over(j) ? n : used;
	}
	for (;;) {
		if (run_over(j))
			return n;
		if (!push_pending(j) || used == n)
			return used;
		used += ihex_feed(&j->ihex, p + used, n - used);
		if (ihex_failed(&j->ihex)) {
			job_fail(j, 400, "%s", ihex_error(&j->ihex));
			continue;
		}
		hex_record(j);
	}
}

/* The image is complete (streamed body ended, or the staged copy replayed): the checks of
 * its end. */
static void pipeline_end(struct flash_job *j, uint32_t bytes)
{
	if (j->p.hex) {
		if (ihex_finish(&j->ihex) < 0)
			job_fail(j, 400, "%s", ihex_error(&j->ihex));
		else if (!j->run)
			job_fail(j, 400, "Intel HEX file without data records");
	} else if (j->content_length >= 0 && (int64_t)bytes != j->content_length) {
		job_fail(j, 400, "image not whole: %lu of %lld bytes received",
		         (unsigned long)bytes, (long long)j->content_length);
	}
}

/* ---- staging (stage=1) ---- */

static void dry_fail(struct flash_job *j, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The dry run's first error, kept in j->error until the body's end. */
static void dry_fail(struct flash_job *j, const char *fmt, ...)
{
	j->dry_bad = 1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(j->error, sizeof(j->error), fmt, ap);
	va_end(ap);
}

/* Intel HEX: the staged bytes p/n through the parser as a dry run (nothing goes to the
 * ISP): checksums, record types, the end-of-file record and nothing after it (the parser),
 * ascending addresses without overlap and the data records (here). The first error fails
 * the upload at its end, before the commit; the device's range is checked in the replay,
 * once GET ID has named the device. */
static void hex_dry_run(struct flash_job *j, const uint8_t *p, size_t n)
{
	size_t used = 0;
	while (!j->dry_bad) {
		uint32_t addr;
		const uint8_t *d;
		size_t k = ihex_data(&j->ihex, &addr, &d);
		if (k) {
			if (j->dry_records && addr < j->dry_next) {
				dry_fail(
				    j,
				    "Intel HEX: data at 0x%08lX after data up to 0x%08lX: records "
				    "must be in ascending address order without overlap; the "
				    "STM32 was not touched",
				    (unsigned long)addr, (unsigned long)j->dry_next);
				break;
			}
			if (!j->dry_records) {
				j->address = addr; /* the image starts at its first data record */
				j->addr_known = 1;
			}
			j->dry_records++;
			j->dry_next = (uint64_t)addr + k;
			ihex_take(&j->ihex, k);
			continue;
		}
		if (used == n)
			break;
		used += ihex_feed(&j->ihex, p + used, n - used);
		if (ihex_failed(&j->ihex))
			dry_fail(j, "%s; the STM32 was not touched", ihex_error(&j->ihex));
	}
}

/* The whole body staged: the end of the HEX dry run. 0 or -1 (dry_bad set). */
static int hex_dry_end(struct flash_job *j)
{
	if (!j->dry_bad && ihex_finish(&j->ihex) < 0)
		dry_fail(j, "%s; the STM32 was not touched", ihex_error(&j->ihex));
	else if (!j->dry_bad && !j->dry_records)
		dry_fail(j, "Intel HEX file without data records; the STM32 was not touched");
	return j->dry_bad ? -1 : 0;
}

/* STAGING: the body goes to the staging store, never to the STM32. Takes everything. */
static void stage_body(struct flash_job *j, const uint8_t *p, size_t n)
{
	if (j->fail_status)
		return; /* dropped: the answer is sent at the body's end */
	if (j->content_length >= 0 && (uint64_t)j->staged + n > (uint64_t)j->content_length) {
		job_fail(j, 400,
		         "more than Content-Length (%lld bytes) received; the STM32 was not "
		         "touched",
		         (long long)j->content_length);
		return;
	}
	if (j->content_length < 0 && (uint64_t)j->staged + n > j->stage_cap) {
		job_fail(j, 413,
		         "image larger than the staging area (%lu bytes); the STM32 was not "
		         "touched",
		         (unsigned long)j->stage_cap);
		return;
	}
	if (j->ops->stage_write(j->ctx, j->target, j->staged, p, n) < 0) {
		job_fail(j, 500,
		         "writing the staging area failed at byte %lu; the STM32 was not touched",
		         (unsigned long)j->staged);
		return;
	}
	j->crc = j->ops->crc32(j->crc, p, n);
	if (j->sig)
		j->ops->sig_update(j->ctx, j->target, p, n);
	j->staged += (uint32_t)n;
	if (j->p.hex)
		hex_dry_run(j, p, n);
}

/* STAGING, body complete: its length, CRC-32 and HEX dry run. 0 (commit), or -1 with the
 * job failed. */
static int stage_check(struct flash_job *j)
{
	if (j->fail_status)
		return -1;
	if (j->content_length >= 0 && (int64_t)j->staged != j->content_length) {
		job_fail(j, 400,
		         "upload interrupted: %lu of %lld bytes received; the STM32 was not "
		         "touched",
		         (unsigned long)j->staged, (long long)j->content_length);
		return -1;
	}
	j->crc_done = 1;
	/* the CRC first: a damaged body explains a HEX error too */
	if (j->p.has_crc && j->crc != j->p.crc) {
		job_fail(j, 400,
		         "image CRC-32 0x%08lX does not match crc32=0x%08lX: the STM32 was not "
		         "touched",
		         (unsigned long)j->crc, (unsigned long)j->p.crc);
		return -1;
	}
	if (j->p.hex && hex_dry_end(j) < 0) {
		j->fail_status = 400; /* error: the dry run's message */
		return -1;
	}
	if (j->sig) {
		int r = j->ops->sig_check(j->ctx, j->target);
		if (r < 0) {
			job_fail(j, 403,
			         "signature %s (X-Espstm-Signature over \"espstm-image-v1 %s\\n\" "
			         "and the image); the STM32 was not touched",
			         r == -EBADMSG ? "does not match this image, address and key"
			                       : "cannot be checked",
			         j->sig_addr);
			job_log(j, "http: target %u: signed upload refused: %s", j->target,
			        j->error);
			return -1;
		}
		job_log(j, "http: target %u: image signature verified", j->target);
	}
	return 0;
}

/* STAGING -> REPLAYING: the staged body was checked: claim the target and start the ISP;
 * flash_job_poll() replays the staged copy. */
static void commit(struct flash_job *j)
{
	j->ops->flash_claim(j->ctx, j->target, 1);
	job_log(j,
	        "http: staged image of target %u complete (%lu bytes, CRC-32 0x%08lX%s): "
	        "flashing it",
	        j->target, (unsigned long)j->staged, (unsigned long)j->crc,
	        j->p.has_crc ? ", as given" : "");
	if (!j->p.hex)
		isp_begin(j, j->address, j->staged);
	else
		ihex_init(&j->ihex); /* the dry run's parser: afresh for the replay */
	j->state = FLASH_JOB_REPLAYING;
}

/* REPLAYING a staged Intel HEX: its data waits (in the parser: the ISP takes none before it
 * knows the device) until GET ID has named the device; then the dry run's whole range
 * [address, dry_next) is checked against the device's flash, before anything is erased or
 * written: outside it the run fails (413, 400 below the flash base). A streamed HEX cannot
 * do this (its later records are not known yet). Returns 1 when the data may flow, 0 to
 * wait (or the run failed). */
static int hex_range_ok(struct flash_job *j)
{
	if (!j->p.hex || j->range_ok || !j->run)
		return 1;
	struct stm32_isp_status st;
	stm32_isp_status(j->run, &st);
	if (!st.dev || !st.flash_size)
		return run_over(j); /* the ISP's own failure ends the replay */
	uint64_t lo = st.dev->flash_base, hi = lo + st.flash_size;
	if (j->address < lo || j->dry_next > hi) {
		job_fail(j, j->address < lo ? 400 : 413,
		         "Intel HEX: data 0x%08lX-0x%08lX outside the flash 0x%08lX-0x%08lX of "
		         "the %s; nothing was erased or written",
		         (unsigned long)j->address, (unsigned long)(j->dry_next - 1),
		         (unsigned long)lo, (unsigned long)(hi - 1), st.dev->name);
		return 0;
	}
	j->range_ok = 1;
	return 1;
}

/* REPLAYING: staged bytes into the pipeline while it takes them (FLASH_JOB_REPLAY_BUF at a
 * time, at most FLASH_JOB_REPLAY_STEPS per call, so one poll never holds the loop for long);
 * at the end, the image's end checks and FLUSHING; FINISHING once the run is over. Returns 1
 * when it stopped at that bound with more to do at once (FLASH_JOB_AGAIN), else 0. */
static int replay(struct flash_job *j)
{
	for (int guard = 0; !run_over(j); guard++) {
		if (guard == FLASH_JOB_REPLAY_STEPS)
			return 1; /* not waiting for the ISP: poll again now */
		if (!hex_range_ok(j))
			return 0; /* GET ID has not named the device yet */
		if (j->roff == j->rlen) {
			if (j->replayed == j->staged) {
				pipeline_end(j, j->replayed);
				j->state = FLASH_JOB_FLUSHING;
				return 0;
			}
			uint32_t k = j->staged - j->replayed;
			if (k > sizeof(j->rbuf))
				k = sizeof(j->rbuf);
			if (j->ops->stage_read(j->ctx, j->target, j->replayed, j->rbuf, k) < 0) {
				job_fail(j, 500, "reading the staged image back failed at byte %lu",
				         (unsigned long)j->replayed);
				break;
			}
			j->replayed += k;
			j->roff = 0;
			j->rlen = (uint16_t)k;
		}
		size_t used = pipeline_feed(j, j->rbuf + j->roff, j->rlen - j->roff);
		j->roff = (uint16_t)(j->roff + used);
		if (used == 0)
			return 0; /* no room in the ISP: the next poll goes on */
	}
	j->state = FLASH_JOB_FINISHING;
	return 0;
}

/* ---- the job's life ---- */

/* The STM32 may be touched only between flash_claim(1) and flash_claim(0). */
static int claimed(const struct flash_job *j)
{
	return j->state == FLASH_JOB_STREAMING || j->state == FLASH_JOB_REPLAYING ||
	       j->state == FLASH_JOB_FLUSHING || j->state == FLASH_JOB_FINISHING;
}

/* The staging store is open from stage_begin() until the run stops. */
static int store_open(const struct flash_job *j)
{
	return j->state == FLASH_JOB_STAGING ||
	       (j->p.stage && (j->state == FLASH_JOB_REPLAYING || j->state == FLASH_JOB_FLUSHING ||
	                       j->state == FLASH_JOB_FINISHING));
}

/* The run is over: give back the target (flash_claim(0)) and the staging store that the
 * state holds, with the log lines. The caller then moves to DRAINING, ANSWER or OVER. */
static void release(struct flash_job *j)
{
	assert(run_over(j));
	if (claimed(j)) {
		j->ops->flash_claim(j->ctx, j->target, 0);
		struct stm32_isp_status st;
		stm32_isp_status(j->isp, &st);
		if (j->fail_status)
			job_log(j, "http: flash of target %u failed: %s", j->target, j->error);
		else if (st.state == STM32_ISP_DONE)
			job_log(j, "http: flash of target %u done: %lu bytes in %lu ms", j->target,
			        (unsigned long)st.bytes_written, (unsigned long)st.elapsed_ms);
		else
			job_log(j, "http: flash of target %u failed (%s): %s", j->target,
			        stm32_isp_error_name(st.error), st.message ? st.message : "");
		if (j->sig && st.state != STM32_ISP_DONE && j->ops->action) {
			/* locked mode: a failed run leaves the chip in its bootloader: reset it
			 * into the application (BOOT0 low), nothing may talk AN3155 to it */
			job_log(j, "http: target %u: locked mode: reset into the application",
			        j->target);
			j->ops->action(j->ctx, j->target, API_ACT_RUN);
		}
	}
	if (store_open(j)) {
		j->ops->stage_end(j->ctx, j->target);
		if (j->state == FLASH_JOB_STAGING)
			job_log(j, "http: staged upload of target %u failed: %s", j->target,
			        j->error);
	}
}

/* The run is over and the body complete: release, then ANSWER (OVER when nobody waits). */
static void conclude(struct flash_job *j)
{
	release(j);
	j->state = j->detached ? FLASH_JOB_OVER : FLASH_JOB_ANSWER;
}

/* Checks before anything changes (flash_job_start). Returns 0 or an HTTP status with msg. */
static int start_checks(struct flash_job *j, struct flash_job_params *fp, int64_t content_length,
                        char *msg, size_t cap)
{
	if (!fp->hex && content_length == 0) {
		snprintf(msg, cap, "empty image");
		return 400;
	}
	const struct api_ops *o = j->ops;
	uint32_t size = o->stage_capacity ? o->stage_capacity(j->ctx, j->target) : 0;
	int can_stage = o->stage_begin && o->stage_write && o->stage_read && o->stage_end &&
	                o->crc32 && size != 0;
	if (!fp->hex && content_length < 0 && !fp->stage) {
		/* a .bin of unknown size: staged, so that its size is checked against the
		 * chip's flash before anything is erased (else the chip would be erased and
		 * written up to its end before the 413) */
		if (!can_stage) {
			snprintf(msg, cap,
			         "a .bin upload needs a Content-Length (its size is checked "
			         "against the flash before anything is erased)");
			return 411;
		}
		fp->stage = 1;
	}
	if (fp->stage) {
		if (!can_stage) {
			snprintf(msg, cap,
			         "this platform cannot stage an image (stage=1: no staging area); "
			         "upload without stage=1");
			return 501;
		}
		if (content_length == 0) {
			snprintf(msg, cap, "empty image");
			return 400;
		}
		if (content_length > 0 && (uint64_t)content_length > size) {
			snprintf(msg, cap,
			         "image (%lld bytes) larger than the staging area (%lu bytes)",
			         (long long)content_length, (unsigned long)size);
			return 413;
		}
	}
	uint32_t maxf = 0;
	for (size_t i = 0; i < stm32_dev_count(); i++) {
		const struct stm32_dev *d = stm32_dev_at(i);
		if (d && d->flash_size > maxf)
			maxf = d->flash_size;
	}
	if (!fp->hex && content_length > 0 &&
	    ((uint64_t)content_length > maxf ||
	     (uint64_t)fp->address + (uint64_t)content_length > 0x100000000ull)) {
		snprintf(msg, cap,
		         "image of %lld bytes is larger than the flash of any supported STM32 (%lu "
		         "bytes)",
		         (long long)content_length, (unsigned long)maxf);
		return 413;
	}
	return 0;
}

/* stage_begin() of a staged upload. Returns 0 or an HTTP status with msg. */
static int store_begin(struct flash_job *j, int64_t content_length, char *msg, size_t cap)
{
	/* unknown size (chunked): the whole store, the body is bounded by it */
	uint32_t size = content_length < 0 ? j->ops->stage_capacity(j->ctx, j->target)
	                                   : (uint32_t)content_length;
	int r = j->ops->stage_begin(j->ctx, j->target, size);
	if (r == -ENOSPC) {
		snprintf(msg, cap, "image (%lld bytes) larger than the staging area",
		         (long long)content_length);
		return 413;
	}
	if (r == -EBUSY) {
		snprintf(msg, cap, "the staging area is in use by another target's upload");
		return 409;
	}
	if (r < 0) {
		snprintf(msg, cap, "the staging area cannot be prepared (I/O error)");
		return 500;
	}
	return 0;
}

/* Locked mode (http_api.h "Signed images"): a signature is required, stage=1 implied, a
 * .bin's address is the signed one (default FLASH_JOB_SIGNED_BASE); its ADDR text into
 * addr (16 bytes). Returns 0 or an HTTP status with msg. */
static int locked_params(struct flash_job *j, struct flash_job_params *fp, const uint8_t *sig,
                         size_t siglen, char *addr, char *msg, size_t cap)
{
	const struct api_ops *o = j->ops;
	if (!sig || siglen == 0) {
		snprintf(msg, cap,
		         "this unit only accepts signed images (header X-Espstm-Signature: see "
		         "espstm sign)");
		return 403;
	}
	if (!o->sig_begin || !o->sig_update || !o->sig_check) {
		snprintf(msg, cap, "this platform cannot check image signatures");
		return 501;
	}
	fp->stage = 1;
	if (!fp->hex && !fp->has_address) {
		fp->has_address = 1;
		fp->address = FLASH_JOB_SIGNED_BASE;
	}
	if (fp->hex)
		snprintf(addr, 16, "hex");
	else
		snprintf(addr, 16, "0x%08lx", (unsigned long)fp->address);
	return 0;
}

/* Locked mode: the platform's signature check begins. Returns 0 or 403 with msg. */
static int sig_start(struct flash_job *j, const char *addr, const uint8_t *sig, size_t siglen,
                     char *msg, size_t cap)
{
	if (j->ops->sig_begin(j->ctx, j->target, addr, sig, siglen) == 0)
		return 0;
	snprintf(msg, cap,
	         "signature: not a DER ECDSA signature (X-Espstm-Signature: base64 of what "
	         "openssl dgst -sha256 -sign writes)");
	return 403;
}

int flash_job_start(struct flash_job *j, struct stm32_isp *isp, const char *query,
                    int64_t content_length, const uint8_t *sig, size_t siglen, char *msg,
                    size_t cap)
{
	struct flash_job_params fp;
	if (query && strchr(query, '%')) {
		snprintf(msg, cap, "parameters must not be %%-encoded");
		return 400;
	}
	if (parse_params(query, &fp, msg, cap) < 0)
		return 400;
	char addr[16] = "";
	int lk = j->ops->locked && j->ops->locked(j->ctx);
	int r = lk ? locked_params(j, &fp, sig, siglen, addr, msg, cap) : 0;
	if (r == 0)
		r = start_checks(j, &fp, content_length, msg, cap);
	if (r == 0 && lk)
		r = sig_start(j, addr, sig, siglen, msg, cap);
	/* before the last result is forgotten: a refusal leaves it readable */
	if (r == 0 && fp.stage)
		r = store_begin(j, content_length, msg, cap);
	if (r != 0)
		return r;
	flash_job_init(j, j->target, j->ops, j->ctx, j->cur);
	j->p = fp;
	j->sig = lk;
	memcpy(j->sig_addr, addr, sizeof(addr));
	if (fp.stage)
		j->stage_cap = j->ops->stage_capacity(j->ctx, j->target);
	j->isp = isp;
	j->address = fp.address;
	j->addr_known = fp.has_address;
	j->content_length = content_length < 0 ? -1 : content_length;
	ihex_init(&j->ihex);
	if (fp.stage) {
		j->state = FLASH_JOB_STAGING;
		job_log(j,
		        "http: staged upload for target %u started (%lld bytes%s%s): the STM32 is "
		        "flashed once the whole image is in%s",
		        j->target, (long long)content_length, fp.hex ? ", Intel HEX" : "",
		        fp.verify ? ", verify" : "", fp.has_crc ? " and its CRC-32 matches" : "");
		return 0;
	}
	j->state = FLASH_JOB_STREAMING;
	j->ops->flash_claim(j->ctx, j->target, 1);
	if (fp.hex) {
		job_log(j, "http: flash of target %u started (Intel HEX%s%s)", j->target,
		        fp.verify ? ", verify" : "", fp.go ? ", go" : "");
		return 0;
	}
	job_log(j, "http: flash of target %u started (%lld bytes at %s0x%08lX%s%s)", j->target,
	        (long long)content_length, fp.has_address ? "" : "flash base, ",
	        (unsigned long)fp.address, fp.verify ? ", verify" : "", fp.go ? ", go" : "");
	uint32_t total = content_length > 0 ? (uint32_t)content_length : 0;
	if (isp_begin(j, fp.address, total) < 0)
		conclude(j); /* the claim is released, the answer ready */
	return 0;
}

size_t flash_job_body(struct flash_job *j, const uint8_t *p, size_t n)
{
	size_t used = n;
	if (j->state == FLASH_JOB_STAGING)
		stage_body(j, p, n);
	else if (j->state == FLASH_JOB_STREAMING)
		used = pipeline_feed(j, p, n);
	else if (j->state != FLASH_JOB_DRAINING)
		return n;
	j->body_bytes += (uint32_t)used;
	return used;
}

void flash_job_body_end(struct flash_job *j)
{
	switch (j->state) {
	case FLASH_JOB_STREAMING:
		pipeline_end(j, j->body_bytes);
		j->state = FLASH_JOB_FLUSHING;
		break;
	case FLASH_JOB_STAGING:
		if (stage_check(j) == 0)
			commit(j);
		else
			conclude(j);
		break;
	case FLASH_JOB_DRAINING:
		conclude(j);
		break;
	default:
		return;
	}
	flash_job_poll(j);
}

void flash_job_cancel(struct flash_job *j, const char *why)
{
	if (j->state == FLASH_JOB_IDLE || j->state == FLASH_JOB_OVER)
		return;
	if (j->state == FLASH_JOB_ANSWER) {
		j->state = FLASH_JOB_OVER; /* nobody to answer */
		return;
	}
	if (j->p.stage && j->state != FLASH_JOB_STAGING && j->state != FLASH_JOB_DRAINING) {
		/* staged and checked: the flash goes on from the staged copy */
		if (!j->detached)
			job_log(j,
			        "http: the client of target %u's staged flash left (%s): the flash "
			        "goes on (GET shows the result)",
			        j->target, why ? why : "connection closed");
		j->detached = 1;
		flash_job_poll(j);
		return;
	}
	char total[24] = "?";
	if (j->content_length >= 0)
		snprintf(total, sizeof(total), "%lld", (long long)j->content_length);
	job_fail(j, 400, "upload interrupted: %s after %lu of %s bytes%s",
	         why ? why : "connection closed", (unsigned long)j->body_bytes, total,
	         j->p.stage ? "; the STM32 was not touched" : "");
	if (j->state != FLASH_JOB_DRAINING)
		release(j);
	j->state = FLASH_JOB_OVER; /* nobody to answer */
}

int flash_job_abort(struct flash_job *j, const char *why)
{
	/* running: an upload or run that has not ended (an answer not yet sent is not) */
	if (!flash_job_busy(j) || run_over(j))
		return 0;
	if (!why)
		why = "aborted by the client";
	if (j->state == FLASH_JOB_STAGING)
		job_fail(j, 409, "%s; the STM32 was not touched", why);
	else
		job_fail(j, 409, "%s", why); /* stm32_isp_abort() */
	if (j->state == FLASH_JOB_REPLAYING || j->state == FLASH_JOB_FLUSHING)
		j->state = FLASH_JOB_FINISHING;
	job_log(j, "http: flash of target %u: %s", j->target, why);
	return 1;
}

/* FLUSHING and FINISHING: write what the image pipeline still holds, end the image
 * (stm32_isp_end) and wait until the ISP stops. Returns flash_job_poll()'s bits. */
static int finish(struct flash_job *j)
{
	if (j->state == FLASH_JOB_FLUSHING && !run_over(j)) {
		assert(j->run); /* pipeline_end failed a HEX image without data records */
		if (j->p.hex && !push_pending(j))
			return 0;
		if (!run_over(j))
			stm32_isp_end(j->run);
	}
	j->state = FLASH_JOB_FINISHING;
	if (!run_over(j))
		return 0;
	conclude(j);
	return j->state == FLASH_JOB_ANSWER ? FLASH_JOB_RESULT : 0;
}

int flash_job_poll(struct flash_job *j)
{
	switch (j->state) {
	case FLASH_JOB_STAGING:
		if (j->fail_status) {
			release(j);
			j->state = FLASH_JOB_DRAINING;
		}
		return FLASH_JOB_ROOM;
	case FLASH_JOB_STREAMING:
		if (run_over(j)) {
			release(j);
			j->state = FLASH_JOB_DRAINING;
			return FLASH_JOB_ROOM;
		}
		return (j->p.hex && !j->run) || stm32_isp_room(j->run) > 0 ? FLASH_JOB_ROOM : 0;
	case FLASH_JOB_DRAINING:
		return FLASH_JOB_ROOM;
	case FLASH_JOB_REPLAYING:
		if (replay(j))
			return FLASH_JOB_AGAIN;
		if (j->state == FLASH_JOB_REPLAYING)
			return 0; /* waiting for room in the ISP */
		return finish(j);
	case FLASH_JOB_FLUSHING:
	case FLASH_JOB_FINISHING:
		return finish(j);
	case FLASH_JOB_ANSWER:
		return FLASH_JOB_RESULT;
	default:
		return 0;
	}
}

int flash_job_result(struct flash_job *j)
{
	if (j->state != FLASH_JOB_ANSWER)
		return 0;
	j->state = FLASH_JOB_OVER;
	if (j->fail_status)
		return j->fail_status;
	struct stm32_isp_status st;
	stm32_isp_status(j->run, &st);
	return st.state == STM32_ISP_DONE ? 200 : isp_status_code(&st);
}

void flash_job_isp_status(const struct flash_job *j, struct stm32_isp_status *st)
{
	memset(st, 0, sizeof(*st));
	if (j->run) /* before begin the ISP still holds an older run */
		stm32_isp_status(j->run, st);
}

const char *flash_job_state_name(const struct flash_job *j, const struct stm32_isp_status *st)
{
	if (j->state == FLASH_JOB_IDLE)
		return "idle";
	if (j->fail_status)
		return "failed";
	if (j->state == FLASH_JOB_STAGING)
		return "staging";
	if (!j->run)
		return "connecting";
	return stm32_isp_state_name(st->state);
}

const char *flash_job_error(struct flash_job *j, const struct stm32_isp_status *st)
{
	if (j->fail_status)
		return j->error;
	if (!j->run || st->state != STM32_ISP_FAILED)
		return NULL;
	const char *e = st->message && *st->message ? st->message : stm32_isp_error_name(st->error);
	if ((st->error == STM32_ISP_E_READ_PROTECTED || st->error == STM32_ISP_E_WRITE_PROTECTED) &&
	    !j->p.unprotect) {
		snprintf(j->error, sizeof(j->error), "%s (unprotect=1 removes %s)", e,
		         st->error == STM32_ISP_E_READ_PROTECTED
		             ? "it: READOUT UNPROTECT erases the whole flash"
		             : "a write protection");
		e = j->error;
	}
	return e;
}
