/* SPDX-License-Identifier: MIT */
/*
 * stm32_isp: the AN3155 master's job and API (stm32_isp.h): options, the image buffer,
 * stm32_isp_seek(), status and messages. The AN3155 commands are in stm32_isp_io.c, the
 * order of a run in stm32_isp_run.c.
 */
#include "stm32_isp_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RFC_PARITY_EVEN 3 /* struct hal_uart_cfg uses RFC 2217 codes */
#define RFC_STOP_1      1
#define RFC_FLOW_NONE   1

#if (STM32_ISP_BUF & (STM32_ISP_BUF - 1)) != 0
#error "STM32_ISP_BUF must be a power of two"
#endif

void isp_logf(struct stm32_isp *isp, enum hal_log_level lvl, const char *fmt, ...)
{
	if (!isp->hal->log)
		return;
	char line[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	isp->hal->log(isp->ctx, lvl, line);
}

void isp_setmsg(struct stm32_isp *isp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(isp->msg, sizeof(isp->msg), fmt, ap);
	va_end(ap);
}

void isp_notify(struct stm32_isp *isp)
{
	if (!isp->progress)
		return;
	struct stm32_isp_status st;
	stm32_isp_status(isp, &st);
	isp->progress(isp->progress_arg, &st);
}

void isp_set_state(struct stm32_isp *isp, enum stm32_isp_state s)
{
	if (isp->st.state == s)
		return;
	isp->st.state = s;
	if (s == STM32_ISP_DONE || s == STM32_ISP_FAILED)
		isp->t_end = isp_now(isp);
	isp_logf(isp, HAL_LOG_DEBUG, "stm32_isp: %s", stm32_isp_state_name(s));
	isp_notify(isp);
}

void isp_fail(struct stm32_isp *isp, enum stm32_isp_error e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(isp->msg, sizeof(isp->msg), fmt, ap);
	va_end(ap);
	isp->st.error = e;
	isp->io.op = OP_NONE;
	isp->io.waiting = 0;
	isp->timer_on = 0;
	isp->step = ST_NONE;
	isp_logf(isp, HAL_LOG_ERROR, "stm32_isp: failed (%s): %s", stm32_isp_error_name(e),
	         isp->msg);
	isp_set_state(isp, STM32_ISP_FAILED);
}

void isp_start_timer(struct stm32_isp *isp, uint32_t ms)
{
	isp->timer = isp_now(isp) + ms;
	isp->timer_on = 1;
}

uint32_t isp_wire_ms(const struct stm32_isp *isp, uint32_t n)
{
	return (n * 11u * 1000u + isp->o.baud - 1) / isp->o.baud + 1;
}

void isp_purge_rx(struct stm32_isp *isp)
{
	if (isp->hal->uart_purge)
		isp->hal->uart_purge(isp->ctx, 1, 0);
}

/* ------------------------------------------------------------------------------------ */
/* Image ring buffer and stm32_isp_seek()                                               */
/* ------------------------------------------------------------------------------------ */

/* Current block: flash address pos, at most up to the next STM32_ISP_BLOCK boundary (so
 * blocks are aligned for bootloaders that program whole flash words), limited by total.
 * Sets blk_len (0 if no byte of it is buffered yet). Returns 1 when the block can be
 * written (complete, or the image or its segment ended: stm32_isp_seek() far ahead). */
int isp_block_ready(struct stm32_isp *isp)
{
	uint32_t a = isp->pos;
	uint32_t len = STM32_ISP_BLOCK - (a & (STM32_ISP_BLOCK - 1));
	if (isp->o.total && isp->o.total - isp->img_off < len)
		len = isp->o.total - isp->img_off;
	if (len == 0)
		return 0;
	if (isp->buf_len >= len) {
		isp->blk_len = (uint16_t)len;
		return 1;
	}
	isp->blk_len = (uint16_t)isp->buf_len;
	return (isp->ended || isp->seg_end) && isp->buf_len > 0;
}

/* The ring slot i bytes after the last buffered image byte. */
static uint8_t *ring_tail(struct stm32_isp *isp, uint32_t i)
{
	return &isp->buf[(isp->buf_head + isp->buf_len + i) & (STM32_ISP_BUF - 1)];
}

/* Append n bytes of 0xFF to the image ring (the caller checked the room). */
static void ring_fill(struct stm32_isp *isp, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		*ring_tail(isp, i) = 0xFF;
	isp->buf_len += n;
}

/* A pending stm32_isp_seek() (device known): check its address against the flash, then
 * either fill a short gap whose bytes lie only in erase units the image's own data touches
 * (those are erased anyway: writing 0xFF there changes nothing) with 0xFF, or end the
 * current segment (its last block is written, padded to the programming unit) and start
 * the next one at the seek address rounded down to the programming unit, with 0xFF before
 * it. Units in between are neither erased nor written. Returns 0, or -1 after failing the
 * run. */
int isp_seek_apply(struct stm32_isp *isp)
{
	const struct stm32_dev *d = isp->st.dev;
	uint32_t a = isp->seek_addr, w = stm32_dev_write_align(d);
	int empty = isp->img_off == 0 && isp->buf_len == 0;
	isp->seg_end = 0;
	if (isp->ended) { /* nothing came after it */
		isp->seek_on = 0;
		return 0;
	}
	if (a < d->flash_base || a >= isp->flash_end) {
		if (empty)
			isp->st.address = a;
		isp_fail(isp, STM32_ISP_E_RANGE,
		         "data at 0x%08lx is outside the flash 0x%08lx-0x%08lx (%lu KiB); nothing "
		         "written there",
		         (unsigned long)a, (unsigned long)d->flash_base,
		         (unsigned long)(isp->flash_end - 1),
		         (unsigned long)(isp->st.flash_size / 1024));
		return -1;
	}
	if (empty) {
		isp->pos = isp->st.address = a & ~(w - 1u);
		ring_fill(isp, a - isp->pos);
		isp->seek_on = 0;
		return 0;
	}
	uint32_t p = isp->pos + isp->buf_len; /* address of the next byte */
	if (a < p) {
		isp_fail(isp, STM32_ISP_E_ARG, "data at 0x%08lx after data up to 0x%08lx",
		         (unsigned long)a, (unsigned long)p);
		return -1;
	}
	uint32_t u1, s1, z1, u2, s2, z2, base = d->flash_base;
	if (a - p <= STM32_ISP_BLOCK &&
	    stm32_dev_unit(d, isp->st.flash_size, p - 1 - base, &u1, &s1, &z1) == 0 &&
	    stm32_dev_unit(d, isp->st.flash_size, a - base, &u2, &s2, &z2) == 0 && u2 <= u1 + 1) {
		/* every gap byte is in the unit of the last byte or of the next one */
		if (STM32_ISP_BUF - isp->buf_len < a - p)
			return 0; /* a whole block is buffered: it goes first */
		ring_fill(isp, a - p);
		isp->seek_on = 0;
		return 0;
	}
	if (isp->buf_len) {
		isp->seg_end = 1; /* write what is buffered first */
		return 0;
	}
	/* a - p > the programming unit here, or a and p - 1 share a unit (filled above) */
	isp->pos = a & ~(w - 1u);
	ring_fill(isp, a - isp->pos);
	isp->seek_on = 0;
	isp_logf(isp, HAL_LOG_DEBUG, "stm32_isp: next segment at 0x%08lx", (unsigned long)a);
	return 0;
}

/* New image bytes, a seek or the end: the run moves on if it waits for them (ST_BLOCK with
 * no command running). */
static void wake_block(struct stm32_isp *isp)
{
	if (isp->step == ST_BLOCK && isp->io.op == OP_NONE)
		isp_do_block(isp);
}

/* ------------------------------------------------------------------------------------ */
/* API                                                                                  */
/* ------------------------------------------------------------------------------------ */

void stm32_isp_init(struct stm32_isp *isp, const struct hal_ops *hal, void *ctx)
{
	memset(isp, 0, sizeof(*isp));
	isp->hal = hal;
	isp->ctx = ctx;
	isp->st.state = STM32_ISP_IDLE;
}

void stm32_isp_set_progress(struct stm32_isp *isp, stm32_isp_progress_fn fn, void *arg)
{
	isp->progress = fn;
	isp->progress_arg = arg;
}

int stm32_isp_busy(const struct stm32_isp *isp)
{
	return isp->st.state != STM32_ISP_IDLE && isp->st.state != STM32_ISP_DONE &&
	       isp->st.state != STM32_ISP_FAILED;
}

int stm32_isp_begin(struct stm32_isp *isp, const struct stm32_isp_opts *opts)
{
	if (stm32_isp_busy(isp))
		return -EBUSY;
	if (!opts || (opts->address & 3) || (unsigned)opts->entry > STM32_ISP_ENTRY_NONE ||
	    (unsigned)opts->finish > STM32_ISP_FINISH_RESET)
		return -EINVAL;
	const struct hal_ops *hal = isp->hal;
	void *ctx = isp->ctx;
	stm32_isp_progress_fn fn = isp->progress;
	void *arg = isp->progress_arg;
	memset(isp, 0, sizeof(*isp));
	isp->hal = hal;
	isp->ctx = ctx;
	isp->progress = fn;
	isp->progress_arg = arg;
	isp->o = *opts;
	if (!isp->o.baud)
		isp->o.baud = 115200;
	if (!isp->o.reset_ms)
		isp->o.reset_ms = 10;
	if (!isp->o.settle_ms)
		isp->o.settle_ms = 50;
	if (!isp->o.retries)
		isp->o.retries = 2;
	isp->st.address = isp->o.address;
	isp->st.total = isp->o.total;
	isp->t_begin = isp_now(isp);
	isp->st.state = STM32_ISP_CONNECTING;

	struct hal_uart_cfg cfg = {isp->o.baud, 8, RFC_PARITY_EVEN, RFC_STOP_1, RFC_FLOW_NONE};
	int r = hal->uart_config(ctx, &cfg);
	if (r < 0) {
		isp_fail(isp, STM32_ISP_E_UART, "the UART refused %lu baud 8E1 (%d)",
		         (unsigned long)isp->o.baud, r);
		return r;
	}
	if (cfg.baud)
		isp->o.baud = cfg.baud;
	isp_logf(isp, HAL_LOG_INFO, "stm32_isp: connecting at %lu baud 8E1%s",
	         (unsigned long)isp->o.baud,
	         isp->o.entry == STM32_ISP_ENTRY_PINS ? " (BOOT0 + reset)" : "");
	isp_notify(isp);
	/* bytes the bridge session queued for the UART before it was suspended must not reach
	 * the (freshly reset) bootloader, nor old received bytes the master */
	if (hal->uart_purge)
		hal->uart_purge(ctx, 1, 1);
	/* what the platform could not drop (a hardware FIFO) goes out first, to the
	 * application that the reset then ends; bounded by its wire time + 100 ms */
	size_t pending = hal->uart_tx_pending ? hal->uart_tx_pending(ctx) : 0;
	if (pending) {
		isp->drain_end = isp_now(isp) + isp_wire_ms(isp, (uint32_t)pending) + 100u;
		isp->step = ST_DRAIN;
		isp_start_timer(isp, 1);
		return 0;
	}
	isp_enter(isp);
	return 0;
}

/* 1 while stm32_isp_write() may take bytes: a run in progress, before stm32_isp_end(), no
 * seek pending. */
static int takes_data(const struct stm32_isp *isp)
{
	return stm32_isp_busy(isp) && !isp->ended && !isp->seek_on;
}

size_t stm32_isp_room(const struct stm32_isp *isp)
{
	if (!takes_data(isp))
		return 0;
	size_t room = STM32_ISP_BUF - isp->buf_len;
	if (isp->o.total) {
		uint32_t left = isp->o.total - isp->st.bytes_received;
		if (left < room)
			room = left;
	}
	return room;
}

size_t stm32_isp_write(struct stm32_isp *isp, const uint8_t *p, size_t n)
{
	if (!takes_data(isp) || n == 0)
		return 0;
	if (isp->o.total && n > isp->o.total - isp->st.bytes_received) {
		isp_fail(isp, STM32_ISP_E_RANGE, "more than the announced %lu bytes",
		         (unsigned long)isp->o.total);
		return 0;
	}
	size_t k = STM32_ISP_BUF - isp->buf_len;
	if (k > n)
		k = n;
	for (size_t i = 0; i < k; i++)
		*ring_tail(isp, (uint32_t)i) = p[i];
	isp->buf_len += (uint32_t)k;
	isp->st.bytes_received += (uint32_t)k;
	if (k)
		wake_block(isp);
	return k;
}

int stm32_isp_seek(struct stm32_isp *isp, uint32_t addr)
{
	if (!stm32_isp_busy(isp) || isp->ended || isp->o.total)
		return -EINVAL;
	if (isp->seek_on) {
		if (addr < isp->seek_addr)
			return -EINVAL;
	} else if (isp->pos_set || isp->o.address) {
		uint32_t next = (isp->pos_set ? isp->pos : isp->o.address) + isp->buf_len;
		if ((isp->img_off || isp->buf_len) && addr < next)
			return -EINVAL;
	}
	isp->seek_addr = addr;
	isp->seek_on = 1;
	if (isp->flash_end &&
	    (addr < isp->st.dev->flash_base || addr >= isp->flash_end)) { /* device known */
		isp_seek_apply(isp); /* fails the run, naming the address */
		return -ERANGE;
	}
	wake_block(isp);
	return 0;
}

int stm32_isp_end(struct stm32_isp *isp)
{
	if (isp->st.state == STM32_ISP_IDLE)
		return -EINVAL;
	if (!stm32_isp_busy(isp) || isp->ended)
		return 0;
	isp->ended = 1;
	if (!isp->o.total) /* bytes received + 0xFF put in by stm32_isp_seek() */
		isp->st.total = isp->img_off + isp->buf_len;
	if (isp->st.bytes_received == 0) {
		isp_fail(isp, STM32_ISP_E_ARG, "empty image");
		return 0;
	}
	if (isp->o.total && isp->st.bytes_received < isp->o.total) {
		isp_fail(isp, STM32_ISP_E_SHORT, "image ended after %lu of %lu bytes",
		         (unsigned long)isp->st.bytes_received, (unsigned long)isp->o.total);
		return 0;
	}
	wake_block(isp);
	return 0;
}

void stm32_isp_abort(struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp))
		return;
	isp_fail(isp, STM32_ISP_E_ABORTED, "aborted after %lu bytes written",
	         (unsigned long)isp->st.bytes_written);
}

void stm32_isp_input(struct stm32_isp *isp, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!stm32_isp_busy(isp)) {
			isp->dropped += (uint32_t)(n - i);
			return;
		}
		isp_io_byte(isp, p[i]);
	}
}

void stm32_isp_poll(struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp))
		return;
	if (isp->timer_on && hal_time_reached(isp_now(isp), isp->timer))
		isp_on_timer(isp);
	if (!stm32_isp_busy(isp))
		return;
	isp_io_push(isp);
	isp_io_check_timeout(isp);
}

/* Milliseconds from now until deadline t, 0 once it has passed (wrap-safe). */
static int32_t ms_until(uint32_t now, uint32_t t)
{
	int32_t d = (int32_t)(t - now);
	return d < 0 ? 0 : d;
}

int32_t stm32_isp_next_ms(const struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp))
		return -1;
	uint32_t now = isp_now(isp);
	int32_t best = -1;
	if (isp->timer_on)
		best = ms_until(now, isp->timer);
	if (isp->io.op != OP_NONE) {
		/* 1: bytes waiting for the UART, or the UART draining */
		int32_t d = isp->io.waiting ? ms_until(now, isp->io.deadline) : 1;
		if (best < 0 || d < best)
			best = d;
	}
	return best;
}

enum stm32_isp_state stm32_isp_state(const struct stm32_isp *isp)
{
	return isp->st.state;
}

void stm32_isp_status(const struct stm32_isp *isp, struct stm32_isp_status *st)
{
	*st = isp->st;
	st->message = isp->msg;
	if (isp->st.state == STM32_ISP_IDLE)
		st->elapsed_ms = 0;
	else
		st->elapsed_ms = (stm32_isp_busy(isp) ? isp_now(isp) : isp->t_end) - isp->t_begin;
}

const char *stm32_isp_state_name(enum stm32_isp_state s)
{
	switch (s) {
	case STM32_ISP_IDLE:
		return "idle";
	case STM32_ISP_CONNECTING:
		return "connecting";
	case STM32_ISP_IDENTIFYING:
		return "identifying";
	case STM32_ISP_UNPROTECTING:
		return "unprotecting";
	case STM32_ISP_ERASING:
		return "erasing";
	case STM32_ISP_WRITING:
		return "writing";
	case STM32_ISP_VERIFYING:
		return "verifying";
	case STM32_ISP_STARTING:
		return "starting";
	case STM32_ISP_DONE:
		return "done";
	case STM32_ISP_FAILED:
		return "failed";
	}
	return "unknown";
}

const char *stm32_isp_error_name(enum stm32_isp_error e)
{
	switch (e) {
	case STM32_ISP_E_NONE:
		return "none";
	case STM32_ISP_E_ARG:
		return "argument";
	case STM32_ISP_E_UART:
		return "uart";
	case STM32_ISP_E_NO_SYNC:
		return "no_sync";
	case STM32_ISP_E_TIMEOUT:
		return "timeout";
	case STM32_ISP_E_NACK:
		return "nack";
	case STM32_ISP_E_PROTOCOL:
		return "protocol";
	case STM32_ISP_E_UNKNOWN_DEVICE:
		return "unknown_device";
	case STM32_ISP_E_NO_ERASE_CMD:
		return "no_erase_command";
	case STM32_ISP_E_READ_PROTECTED:
		return "read_protected";
	case STM32_ISP_E_WRITE_PROTECTED:
		return "write_protected";
	case STM32_ISP_E_RANGE:
		return "range";
	case STM32_ISP_E_SHORT:
		return "short";
	case STM32_ISP_E_VERIFY:
		return "verify";
	case STM32_ISP_E_ABORTED:
		return "aborted";
	}
	return "unknown";
}
