/* SPDX-License-Identifier: MIT */
/*
 * stm32_isp: AN3155 master (see stm32_isp.h for the API, the order of a run, the erase and
 * verify strategies and the timeouts).
 *
 * Two layers:
 *  - the I/O engine ("op"): one AN3155 command as a list of stages, each stage a frame to
 *    send (possibly empty) and what the answer must look like (ACK, a counted list, fixed
 *    bytes + ACK, raw data). It ends with R_OK, R_NACK (with the stage), R_TIMEOUT or
 *    R_PROTO (a byte where AN3155 allows none);
 *  - the run ("step"): which command comes next, retries, re-synchronisation, erase
 *    bookkeeping, the image buffer, status and messages.
 *
 * Protocol references are to ST AN3155 (chapter 3, one section per command).
 */
#include "stm32_isp.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define RFC_PARITY_EVEN 3 /* struct hal_uart_cfg uses RFC 2217 codes */
#define RFC_STOP_1      1
#define RFC_FLOW_NONE   1

#define PROBE_MS   10   /* re-sync: wait for the answer to one 0xFF */
#define PROBE_MAX  300  /* re-sync: most 0xFF bytes (a WRITE frame is 258) */
#define QUIET_MS   20   /* re-sync: answers still arriving are dropped for this long */
#define REBOOT_MIN 20   /* after an unprotect command the chip resets: wait at least (ms) */
#define WUNPROT_MS 2000 /* WRITE UNPROTECT: option-byte programming before the 2nd ACK */

#if (STM32_ISP_BUF & (STM32_ISP_BUF - 1)) != 0
#error "STM32_ISP_BUF must be a power of two"
#endif

/* I/O engine */
enum op {
	OP_NONE = 0,
	OP_SYNC,    /* 0x7F -> ACK or NACK (AN3155 2, AN2606 autobaud) */
	OP_PROBE,   /* 0xFF -> ACK or NACK: re-synchronisation */
	OP_GET,     /* 3.1 */
	OP_GVR,     /* 3.2 */
	OP_GID,     /* 3.3 */
	OP_READ,    /* 3.4 */
	OP_GO,      /* 3.5 */
	OP_WRITE,   /* 3.6 */
	OP_ERASE,   /* 3.7 / 3.8 */
	OP_WUNPROT, /* 3.10 */
	OP_RUNPROT, /* 3.12 */
};

enum expect {
	X_NONE = 0,
	X_ACK,   /* one ACK (NACK ends the op, BUSY extends the wait) */
	X_LIST,  /* N, then N + 1 bytes, then ACK (GET, GID) */
	X_FIXED, /* need bytes, then ACK (GVR) */
	X_DATA,  /* need bytes (READ MEMORY data) */
};

enum result { R_OK = 0, R_NACK, R_TIMEOUT, R_PROTO };

/* Run steps */
enum step {
	ST_NONE = 0,
	ST_RESET_LOW, /* NRST held low */
	ST_SETTLE,    /* NRST released, waiting before 0x7F */
	ST_REBOOT,    /* chip resets after an unprotect command */
	ST_SYNC,
	ST_GET,
	ST_GVR,
	ST_GID,
	ST_RDP_PROBE,
	ST_FSIZE,
	ST_RUNPROT,
	ST_WUNPROT,
	ST_MASS,
	ST_BLOCK, /* decide: erase, write, wait for data, or finish */
	ST_ERASE,
	ST_WRITE,
	ST_WCHECK, /* READ of a block whose WRITE failed: maybe it was written after all */
	ST_VERIFY,
	ST_GO,
	ST_RUN_RESET, /* finish: NRST low, then release */
	ST_DRAIN,     /* begin: bytes the UART could not drop go out before the entry */
	ST_RESYNC,
};

/* ------------------------------------------------------------------------------------ */

static uint32_t now_ms(const struct stm32_isp *isp)
{
	return isp->hal->now_ms(isp->ctx);
}

static int reached(uint32_t now, uint32_t t)
{
	return (int32_t)(now - t) >= 0;
}

static void logf_(struct stm32_isp *isp, enum hal_log_level lvl, const char *fmt, ...)
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

static void setmsg(struct stm32_isp *isp, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(isp->msg, sizeof(isp->msg), fmt, ap);
	va_end(ap);
}

static void notify(struct stm32_isp *isp)
{
	if (!isp->progress)
		return;
	struct stm32_isp_status st;
	stm32_isp_status(isp, &st);
	isp->progress(isp->progress_arg, &st);
}

static void set_state(struct stm32_isp *isp, enum stm32_isp_state s)
{
	if (isp->st.state == s)
		return;
	isp->st.state = s;
	if (s == STM32_ISP_DONE || s == STM32_ISP_FAILED)
		isp->t_end = now_ms(isp);
	logf_(isp, HAL_LOG_DEBUG, "stm32_isp: %s", stm32_isp_state_name(s));
	notify(isp);
}

static void fail(struct stm32_isp *isp, enum stm32_isp_error e, const char *fmt, ...)
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
	logf_(isp, HAL_LOG_ERROR, "stm32_isp: failed (%s): %s", stm32_isp_error_name(e), isp->msg);
	set_state(isp, STM32_ISP_FAILED);
}

static void start_timer(struct stm32_isp *isp, uint32_t ms)
{
	isp->timer = now_ms(isp) + ms;
	isp->timer_on = 1;
}

/* Wire time (ms, rounded up) of n bytes at 8E1 (11 bits each). */
static uint32_t wire_ms(const struct stm32_isp *isp, uint32_t n)
{
	return (n * 11u * 1000u + isp->o.baud - 1) / isp->o.baud + 1;
}

/* ------------------------------------------------------------------------------------ */
/* Image ring buffer                                                                    */
/* ------------------------------------------------------------------------------------ */

static uint8_t ring_at(const struct stm32_isp *isp, uint32_t i)
{
	return isp->buf[(isp->buf_head + i) & (STM32_ISP_BUF - 1)];
}

/* ------------------------------------------------------------------------------------ */
/* I/O engine                                                                           */
/* ------------------------------------------------------------------------------------ */

static void io_frame(struct stm32_isp *isp, const uint8_t *p, uint16_t n)
{
	memcpy(isp->io.out, p, n);
	isp->io.out_len = n;
	isp->io.out_off = 0;
}

static void io_cmd(struct stm32_isp *isp, uint8_t c)
{
	uint8_t f[2] = {c, (uint8_t)(c ^ 0xFF)};
	io_frame(isp, f, 2);
}

static void io_addr(struct stm32_isp *isp, uint32_t a)
{
	uint8_t f[5] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a, 0};
	f[4] = f[0] ^ f[1] ^ f[2] ^ f[3];
	io_frame(isp, f, 5);
}

/* Build the frame and expectation of the current stage of the current op. Returns 0 when
 * the op has no stage left (it is complete). */
static int io_stage(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	io->out_len = io->out_off = 0;
	io->x = X_ACK;
	io->have_n = 0;
	io->need = 0;
	io->wait_ms = STM32_ISP_ACK_MS;
	io->busy_ms = 0;
	io->waiting = 0;
	switch ((enum op)io->op) {
	case OP_NONE:
		return 0;
	case OP_SYNC:
	case OP_PROBE:
		if (io->stage > 0)
			return 0;
		io->out[0] = io->op == OP_SYNC ? 0x7F : 0xFF;
		io->out_len = 1;
		io->wait_ms = io->op == OP_SYNC ? STM32_ISP_SYNC_MS : PROBE_MS;
		return 1;
	case OP_GET:
	case OP_GID:
		if (io->stage == 0)
			io_cmd(isp, io->op == OP_GET ? 0x00 : 0x02);
		else if (io->stage == 1)
			io->x = X_LIST;
		else
			return 0;
		return 1;
	case OP_GVR:
		if (io->stage == 0) {
			io_cmd(isp, 0x01);
		} else if (io->stage == 1) {
			io->x = X_FIXED;
			io->need = 3;
		} else {
			return 0;
		}
		return 1;
	case OP_READ:
		switch (io->stage) {
		case 0:
			io_cmd(isp, 0x11);
			return 1;
		case 1:
			io_addr(isp, io->addr);
			return 1;
		case 2: {
			uint8_t f[2] = {(uint8_t)(io->len - 1), (uint8_t)((io->len - 1) ^ 0xFF)};
			io_frame(isp, f, 2);
			return 1;
		}
		case 3:
			io->x = X_DATA;
			io->need = io->len;
			return 1;
		default:
			return 0;
		}
	case OP_GO:
		if (io->stage == 0)
			io_cmd(isp, 0x21);
		else if (io->stage == 1)
			io_addr(isp, io->addr);
		else
			return 0;
		return 1;
	case OP_WRITE:
		switch (io->stage) {
		case 0:
			io_cmd(isp, 0x31);
			return 1;
		case 1:
			io_addr(isp, io->addr);
			return 1;
		case 2: {
			/* N-1, data padded with 0xFF to a whole programming unit of the
			 * device (stm32_dev_write_align: 4..32 bytes; the block starts on one
			 * and ends at most at a 256-byte boundary, so n <= 256), XOR of all
			 * (3.6) */
			uint32_t w = stm32_dev_write_align(isp->st.dev);
			uint16_t n = (uint16_t)((io->len + w - 1u) & ~(w - 1u));
			if (n > STM32_ISP_BLOCK)
				n = STM32_ISP_BLOCK;
			uint8_t x = (uint8_t)(n - 1);
			io->out[0] = x;
			for (uint16_t i = 0; i < n; i++) {
				uint8_t b = i < io->len ? ring_at(isp, i) : 0xFF;
				io->out[1 + i] = b;
				x ^= b;
			}
			io->out[1 + n] = x;
			io->out_len = (uint16_t)(n + 2);
			io->wait_ms = STM32_ISP_WRITE_MS;
			return 1;
		}
		default:
			return 0;
		}
	case OP_ERASE:
		if (io->stage == 0) {
			io_cmd(isp, isp->st.erase_cmd);
			return 1;
		}
		if (io->stage == 1) {
			uint8_t *f = io->out, x = 0;
			uint16_t k = 0;
			if (isp->er_mass) {
				/* 3.7 global erase 0xFF 0x00; 3.8 mass erase 0xFFFF + checksum */
				if (isp->st.erase_cmd == 0x43) {
					f[k++] = 0xFF;
					f[k++] = 0x00;
				} else {
					f[k++] = 0xFF;
					f[k++] = 0xFF;
					f[k++] = 0x00;
				}
			} else if (isp->st.erase_cmd == 0x43) {
				f[k++] = (uint8_t)(isp->er_count - 1);
				for (uint32_t u = 0; u < isp->er_count; u++)
					f[k++] = (uint8_t)(isp->er_first + u);
				for (uint16_t i = 0; i < k; i++)
					x ^= f[i];
				f[k++] = x;
			} else {
				f[k++] = (uint8_t)((isp->er_count - 1) >> 8);
				f[k++] = (uint8_t)(isp->er_count - 1);
				for (uint32_t u = 0; u < isp->er_count; u++) {
					f[k++] = (uint8_t)((isp->er_first + u) >> 8);
					f[k++] = (uint8_t)(isp->er_first + u);
				}
				for (uint16_t i = 0; i < k; i++)
					x ^= f[i];
				f[k++] = x;
			}
			io->out_len = k;
			io->wait_ms = isp->er_wait_ms;
			return 1;
		}
		return 0;
	case OP_WUNPROT:
	case OP_RUNPROT:
		if (io->stage == 0) {
			io_cmd(isp, io->op == OP_WUNPROT ? 0x73 : 0x92);
			return 1;
		}
		if (io->stage == 1) { /* second ACK after the operation, then the chip resets */
			io->wait_ms = io->op == OP_WUNPROT ? WUNPROT_MS + STM32_ISP_ACK_MS
			                                   : isp->mass_ms + STM32_ISP_ACK_MS;
			return 1;
		}
		return 0;
	}
	return 0;
}

static void on_op(struct stm32_isp *isp, enum result r);
static void io_push(struct stm32_isp *isp);

static void op_start(struct stm32_isp *isp, enum op op)
{
	isp->io.op = (uint8_t)op;
	isp->io.stage = 0;
	isp->io.reply_len = 0; /* only an op's last stage collects answer bytes */
	io_stage(isp);
	io_push(isp);
}

static void op_end(struct stm32_isp *isp, enum result r)
{
	isp->io.result_stage = isp->io.stage;
	isp->io.op = OP_NONE;
	isp->io.waiting = 0;
	on_op(isp, r);
}

static void stage_done(struct stm32_isp *isp)
{
	isp->io.stage++;
	if (!io_stage(isp)) {
		op_end(isp, R_OK);
		return;
	}
	io_push(isp);
}

/* Send what the UART takes; arm the answer timer once everything has left. */
static void io_push(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->op == OP_NONE || io->waiting)
		return;
	if (io->out_off < io->out_len) {
		size_t k = isp->hal->uart_write(isp->ctx, io->out + io->out_off,
		                                (size_t)(io->out_len - io->out_off));
		io->out_off = (uint16_t)(io->out_off + k);
		if (io->out_off < io->out_len)
			return;
		io->sent_ms = now_ms(isp);
	}
	if (io->out_len == 0 || !isp->hal->uart_tx_pending) {
		/* nothing sent in this stage, or no way to see the UART drain: count the
		 * frame's wire time into the wait */
		io->deadline = now_ms(isp) + io->wait_ms + wire_ms(isp, io->out_len);
		io->waiting = 1;
		return;
	}
	if (isp->hal->uart_tx_pending(isp->ctx) == 0) {
		io->deadline = now_ms(isp) + io->wait_ms;
		io->waiting = 1;
	} else if (!reached(now_ms(isp), io->sent_ms + wire_ms(isp, io->out_len) + 1000u)) {
		return; /* still draining */
	} else {
		/* the UART claims to be busy far longer than the frame takes: do not hang */
		io->deadline = now_ms(isp) + io->wait_ms;
		io->waiting = 1;
	}
}

static void io_byte(struct stm32_isp *isp, uint8_t b)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->op == OP_NONE) {
		isp->dropped++;
		return;
	}
	if (io->out_off < io->out_len && io->op != OP_SYNC && io->op != OP_PROBE) {
		isp->dropped++; /* nothing can answer a frame not yet sent: stale byte */
		return;
	}
	switch ((enum expect)io->x) {
	case X_NONE:
		isp->dropped++;
		return;
	case X_ACK:
		if (b == STM32_ISP_ACK) {
			io->nacked = 0;
			stage_done(isp);
		} else if (b == STM32_ISP_NACK) {
			if (io->op == OP_SYNC || io->op == OP_PROBE) {
				io->nacked = 1;
				stage_done(isp);
			} else {
				op_end(isp, R_NACK);
			}
		} else if (b == STM32_ISP_BUSY) {
			/* AN3155 v3.x: still working; restart the wait, bounded */
			if (io->busy_ms < STM32_ISP_BUSY_MAX_MS) {
				io->busy_ms += io->wait_ms;
				if (io->waiting)
					io->deadline = now_ms(isp) + io->wait_ms;
			}
		} else {
			isp->dropped++; /* noise, e.g. the application's output before reset */
		}
		return;
	case X_LIST:
	case X_FIXED:
	case X_DATA:
		/* an answer that is arriving: the wait counts silence, not the whole answer
		 * (slow baud rates, long READ answers) */
		if (io->waiting)
			io->deadline = now_ms(isp) + io->wait_ms;
		break;
	}
	switch ((enum expect)io->x) {
	case X_NONE:
	case X_ACK:
		return;
	case X_LIST:
		if (io->reply_len == 0 && io->need == 0 && !io->have_n) {
			io->have_n = 1;
			io->list_n = b;
			io->need = (uint16_t)(b + 1u);
			return;
		}
		/* fall through */
	case X_FIXED:
		if (io->need > 0) {
			if (io->reply_len < sizeof(io->reply))
				io->reply[io->reply_len++] = b;
			io->need--;
			return;
		}
		io->have_n = 0;
		if (b == STM32_ISP_ACK)
			stage_done(isp);
		else
			op_end(isp, R_PROTO);
		return;
	case X_DATA:
		if (io->reply_len < sizeof(io->reply))
			io->reply[io->reply_len++] = b;
		if (io->need > 0 && --io->need == 0)
			stage_done(isp);
		return;
	}
}

static void io_check_timeout(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->op != OP_NONE && io->waiting && reached(now_ms(isp), io->deadline)) {
		io->have_n = 0;
		op_end(isp, R_TIMEOUT);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Run                                                                                  */
/* ------------------------------------------------------------------------------------ */

static void run_step(struct stm32_isp *isp);

static void go_step(struct stm32_isp *isp, int step)
{
	isp->step = step;
	isp->retry_left = isp->o.retries;
	run_step(isp);
}

static int has_cmd(const struct stm32_isp *isp, uint8_t c)
{
	for (uint8_t i = 0; i < isp->ncmds; i++)
		if (isp->cmds[i] == c)
			return 1;
	return 0;
}

/* Re-synchronise with a bootloader that may be in the middle of a frame, then retry the
 * current step: drop answers for QUIET_MS, then send 0xFF one at a time until one is
 * answered with NACK and nothing more arrives for a quiet interval (resync_quiet_ms): the
 * bootloader then waits for a command. An ACK does not count (a late answer to the
 * command that timed out, or the 0xFF completed a frame, after which the bootloader may
 * still wait for more), nor does a NACK followed by more bytes (answers still queued).
 * 0xFF is the safest filler: as a command it has no complement match (the second 0xFF of
 * a pair is NACKed), as ERASE's N it needs 0x00 next, as EXTENDED ERASE's 0xFFFF it needs
 * the checksum 0x00, as an address it needs checksum 0x00, as READ's count it needs the
 * complement 0x00. */
static void resync(struct stm32_isp *isp, const char *what)
{
	snprintf(isp->what, sizeof(isp->what), "%s", what);
	isp->resume = isp->step;
	isp->step = ST_RESYNC;
	isp->resync_is_sync = 0;
	isp->resync_quiet = 0;
	isp->probes = 0;
	isp->io.op = OP_NONE;
	start_timer(isp, QUIET_MS);
}

/* Quiet interval after the NACK of a re-sync probe: a few byte times at the bootloader's
 * baud, plus 2 ms for the platform's UART receive path (ms). */
static uint32_t resync_quiet_ms(const struct stm32_isp *isp)
{
	return wire_ms(isp, 4) + 2;
}

/* NACK or timeout of the current step's op: retry after a re-sync, or fail with what +
 * cause. */
static void retry_or_fail(struct stm32_isp *isp, enum result r, const char *what)
{
	if (isp->retry_left > 0) {
		isp->retry_left--;
		logf_(isp, HAL_LOG_INFO, "stm32_isp: %s: %s, retrying", what,
		      r == R_NACK      ? "NACK"
		      : r == R_TIMEOUT ? "no answer"
		                       : "bad answer");
		resync(isp, what); /* also after a NACK: it may have answered a stray byte */
		return;
	}
	if (r == R_NACK)
		fail(isp, STM32_ISP_E_NACK, "%s refused (NACK)", what);
	else if (r == R_TIMEOUT)
		fail(isp, STM32_ISP_E_TIMEOUT, "no answer to %s (link broken?)", what);
	else
		fail(isp, STM32_ISP_E_PROTOCOL, "invalid answer to %s", what);
}

/* Current block: flash address pos, at most up to the next STM32_ISP_BLOCK boundary (so
 * blocks are aligned for bootloaders that program whole flash words), limited by total.
 * Sets blk_len (0 if no byte of it is buffered yet). Returns 1 when the block can be
 * written (complete, or the image or its segment ended: stm32_isp_seek() far ahead). */
static int block_ready(struct stm32_isp *isp)
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

/* Append n bytes of 0xFF to the image ring (the caller checked the room). */
static void ring_fill(struct stm32_isp *isp, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		isp->buf[(isp->buf_head + isp->buf_len + i) & (STM32_ISP_BUF - 1)] = 0xFF;
	isp->buf_len += n;
}

/* A pending stm32_isp_seek() (device known): check its address against the flash, then
 * either fill a short gap whose bytes lie only in erase units the image's own data touches
 * (those are erased anyway: writing 0xFF there changes nothing) with 0xFF, or end the
 * current segment (its last block is written, padded to the programming unit) and start
 * the next one at the seek address rounded down to the programming unit, with 0xFF before
 * it. Units in between are neither erased nor written. Returns 0, or -1 after failing the
 * run. */
static int seek_apply(struct stm32_isp *isp)
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
		fail(isp, STM32_ISP_E_RANGE,
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
		fail(isp, STM32_ISP_E_ARG, "data at 0x%08lx after data up to 0x%08lx",
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
	logf_(isp, HAL_LOG_DEBUG, "stm32_isp: next segment at 0x%08lx", (unsigned long)a);
	return 0;
}

static void finish(struct stm32_isp *isp);

/* Plan one erase command for the units covering flash offsets [from, limit) (at most
 * STM32_ISP_ERASE_BATCH of them, from the unit holding from): er_first/er_count, er_end
 * (offset after the last unit), er_bytes, er_wait_ms (sum of the table's worst-case unit
 * erase times + STM32_ISP_ACK_MS). Returns 0, or -1 after failing the run. */
static int plan_erase(struct stm32_isp *isp, uint32_t from, uint32_t limit)
{
	const struct stm32_dev *d = isp->st.dev;
	uint32_t off = from, wait = 0, bytes = 0, count = 0, first = 0;
	while (off < limit && count < STM32_ISP_ERASE_BATCH) {
		uint32_t u, s, z;
		if (stm32_dev_unit(d, isp->st.flash_size, off, &u, &s, &z) < 0)
			break;
		if (count == 0)
			first = u;
		count++;
		wait += stm32_dev_erase_ms(d, z);
		bytes += z;
		off = s + z;
	}
	if (count == 0) {
		fail(isp, STM32_ISP_E_RANGE, "no erase unit for flash offset 0x%lx",
		     (unsigned long)from);
		return -1;
	}
	if (isp->st.erase_cmd == 0x43 && first + count - 1 > 0xFF) {
		fail(isp, STM32_ISP_E_RANGE,
		     "page %lu cannot be named by ERASE (0x43): use a mass erase",
		     (unsigned long)(first + count - 1));
		return -1;
	}
	isp->er_mass = 0;
	isp->er_first = first;
	isp->er_count = count;
	isp->er_end = off;
	isp->er_bytes = bytes;
	isp->er_wait_ms = wait + STM32_ISP_ACK_MS;
	return 0;
}

/* Decide what the current block needs next. */
static void do_block(struct stm32_isp *isp)
{
	/* the image is complete after end(), or once opts.total bytes are written */
	if ((isp->ended || (isp->o.total && isp->img_off == isp->o.total)) && isp->buf_len == 0) {
		finish(isp);
		return;
	}
	if (isp->seek_on && seek_apply(isp) < 0)
		return;
	if (!block_ready(isp)) {
		set_state(isp, STM32_ISP_WRITING); /* waiting for image data */
		return;
	}
	const struct stm32_dev *d = isp->st.dev;
	uint32_t base = d->flash_base;
	uint32_t a = isp->pos;
	uint64_t end = (uint64_t)a + isp->blk_len;
	if (end > isp->flash_end) {
		fail(isp, STM32_ISP_E_RANGE,
		     "image larger than the flash: it goes past 0x%08lx (%lu KiB flash)",
		     (unsigned long)(isp->flash_end - 1),
		     (unsigned long)(isp->st.flash_size / 1024));
		return;
	}
	uint32_t end_off = (uint32_t)(end - base);
	if (end_off > isp->erased_to) {
		/* erase the units from the first not yet erased one the block touches up to the
		 * image's end when known (else up to the block's end), at most ERASE_BATCH */
		uint32_t from = a - base;
		if (from < isp->erased_to)
			from = isp->erased_to;
		uint32_t limit = end_off;
		if (isp->o.total) {
			uint64_t img_end = (uint64_t)isp->st.address + isp->o.total;
			if (img_end > isp->flash_end)
				img_end = isp->flash_end;
			limit = (uint32_t)(img_end - base);
		}
		if (plan_erase(isp, from, limit) == 0)
			go_step(isp, ST_ERASE);
		return;
	}
	go_step(isp, ST_WRITE);
}

/* The current block is written (and verified when asked): drop it from the buffer. */
static void block_done(struct stm32_isp *isp)
{
	isp->buf_head = (isp->buf_head + isp->blk_len) & (STM32_ISP_BUF - 1);
	isp->buf_len -= isp->blk_len;
	isp->img_off += isp->blk_len;
	isp->pos += isp->blk_len;
	isp->blk_len = 0;
	isp->blk_counted = 0;
	notify(isp);
	isp->step = ST_BLOCK;
	do_block(isp);
}

/* Compare the READ answer with the current block. Returns -1 if equal, else the index of
 * the first difference. */
static int block_diff(const struct stm32_isp *isp)
{
	for (uint16_t i = 0; i < isp->blk_len; i++)
		if (i >= isp->io.reply_len || isp->io.reply[i] != ring_at(isp, i))
			return i;
	return -1;
}

static void finish(struct stm32_isp *isp)
{
	if (isp->o.total && isp->img_off != isp->o.total) {
		fail(isp, STM32_ISP_E_SHORT, "image ended after %lu of %lu bytes",
		     (unsigned long)isp->img_off, (unsigned long)isp->o.total);
		return;
	}
	isp->st.total = isp->img_off;
	switch (isp->o.finish) {
	case STM32_ISP_FINISH_GO:
		set_state(isp, STM32_ISP_STARTING);
		go_step(isp, ST_GO);
		return;
	case STM32_ISP_FINISH_RESET:
		set_state(isp, STM32_ISP_STARTING);
		isp->hal->gpio_set(isp->ctx, HAL_PIN_BOOT0, 0);
		isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 0);
		isp->step = ST_RUN_RESET;
		start_timer(isp, isp->o.reset_ms);
		return;
	case STM32_ISP_FINISH_STAY:
		break;
	}
	isp->step = ST_NONE;
	setmsg(isp, "%lu bytes written at 0x%08lx%s", (unsigned long)isp->img_off,
	       (unsigned long)isp->st.address, isp->o.verify ? " and verified" : "");
	logf_(isp, HAL_LOG_INFO, "stm32_isp: done: %s", isp->msg);
	set_state(isp, STM32_ISP_DONE);
}

static void done_after_start(struct stm32_isp *isp, const char *how)
{
	isp->step = ST_NONE;
	setmsg(isp, "%lu bytes written at 0x%08lx%s; %s", (unsigned long)isp->img_off,
	       (unsigned long)isp->st.address, isp->o.verify ? " and verified" : "", how);
	logf_(isp, HAL_LOG_INFO, "stm32_isp: done: %s", isp->msg);
	set_state(isp, STM32_ISP_DONE);
}

/* Image placement, known after GET ID and the flash size. */
static void check_range(struct stm32_isp *isp)
{
	const struct stm32_dev *d = isp->st.dev;
	isp->flash_end = d->flash_base + isp->st.flash_size;
	if (!isp->o.address)
		isp->st.address = d->flash_base;
	if (!isp->pos_set) { /* not again after an unprotect's re-identification */
		isp->pos = isp->st.address;
		isp->pos_set = 1;
	}
	uint32_t a = isp->st.address;
	uint64_t end = (uint64_t)a + (isp->o.total ? isp->o.total : 1);
	if (a < d->flash_base || end > isp->flash_end) {
		if (isp->o.total)
			fail(isp, STM32_ISP_E_RANGE,
			     "%lu bytes at 0x%08lx do not fit in the flash 0x%08lx-0x%08lx "
			     "(%lu KiB)",
			     (unsigned long)isp->o.total, (unsigned long)a,
			     (unsigned long)d->flash_base, (unsigned long)(isp->flash_end - 1),
			     (unsigned long)(isp->st.flash_size / 1024));
		else
			fail(isp, STM32_ISP_E_RANGE,
			     "address 0x%08lx is outside the flash 0x%08lx-0x%08lx",
			     (unsigned long)a, (unsigned long)d->flash_base,
			     (unsigned long)(isp->flash_end - 1));
		return;
	}
	uint32_t w = stm32_dev_write_align(d);
	if (a & (w - 1u)) {
		fail(isp, STM32_ISP_E_ARG,
		     "address 0x%08lx is not a multiple of %lu (the %s writes %lu-byte units)",
		     (unsigned long)a, (unsigned long)w, d->family, (unsigned long)w);
		return;
	}
	if (isp->o.total)
		logf_(isp, HAL_LOG_INFO, "stm32_isp: %lu bytes at 0x%08lx",
		      (unsigned long)isp->o.total, (unsigned long)a);
	if ((isp->o.flags & STM32_ISP_NO_ERASE) && !isp->mass_done) {
		isp->erased_to = isp->st.flash_size;
		isp->mass_done = 1;
	}
	if ((isp->o.flags & STM32_ISP_MASS_ERASE) && !isp->mass_done) {
		set_state(isp, STM32_ISP_ERASING);
		isp->mass_off = 0;
		go_step(isp, ST_MASS);
		return;
	}
	isp->step = ST_BLOCK;
	do_block(isp);
}

/* Mass erase (ST_MASS): one command, or every unit in batches on parts without one. */
static void run_mass(struct stm32_isp *isp)
{
	const struct stm32_dev *d = isp->st.dev;
	if (!(d->flags & STM32_DEV_NO_MASS_ERASE)) {
		isp->er_mass = 1;
		isp->er_wait_ms = d->mass_erase_ms + STM32_ISP_ACK_MS;
		op_start(isp, OP_ERASE);
		return;
	}
	if (plan_erase(isp, isp->mass_off, isp->st.flash_size) == 0)
		op_start(isp, OP_ERASE);
}

static void run_step(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	switch ((enum step)isp->step) {
	case ST_NONE:
	case ST_RESET_LOW:
	case ST_SETTLE:
	case ST_REBOOT:
	case ST_RUN_RESET:
	case ST_RESYNC:
	case ST_DRAIN:
		return; /* timer driven */
	case ST_SYNC:
		if (isp->hal->uart_purge)
			isp->hal->uart_purge(isp->ctx, 1, 0);
		op_start(isp, OP_SYNC);
		return;
	case ST_GET:
		op_start(isp, OP_GET);
		return;
	case ST_GVR:
		op_start(isp, OP_GVR);
		return;
	case ST_GID:
		op_start(isp, OP_GID);
		return;
	case ST_RDP_PROBE:
		io->addr = isp->st.dev->flash_base;
		io->len = 4;
		op_start(isp, OP_READ);
		return;
	case ST_FSIZE:
		io->addr = isp->st.dev->fsize_addr;
		io->len = 2;
		op_start(isp, OP_READ);
		return;
	case ST_RUNPROT:
		set_state(isp, STM32_ISP_UNPROTECTING);
		op_start(isp, OP_RUNPROT);
		return;
	case ST_WUNPROT:
		set_state(isp, STM32_ISP_UNPROTECTING);
		op_start(isp, OP_WUNPROT);
		return;
	case ST_MASS:
		set_state(isp, STM32_ISP_ERASING);
		run_mass(isp);
		return;
	case ST_BLOCK:
		do_block(isp);
		return;
	case ST_ERASE:
		set_state(isp, STM32_ISP_ERASING);
		op_start(isp, OP_ERASE);
		return;
	case ST_WRITE:
		set_state(isp, STM32_ISP_WRITING);
		io->addr = isp->pos;
		io->len = isp->blk_len;
		op_start(isp, OP_WRITE);
		return;
	case ST_WCHECK:
	case ST_VERIFY:
		if (isp->step == ST_VERIFY)
			set_state(isp, STM32_ISP_VERIFYING);
		io->addr = isp->pos;
		io->len = isp->blk_len;
		op_start(isp, OP_READ);
		return;
	case ST_GO:
		io->addr = isp->o.go_address ? isp->o.go_address : isp->st.address;
		op_start(isp, OP_GO);
		return;
	}
}

/* A chip reset is coming (unprotect): wait, then sync and identify again. */
static void reboot_wait(struct stm32_isp *isp)
{
	isp->step = ST_REBOOT;
	isp->sync_tries = 0;
	start_timer(isp, isp->o.settle_ms > REBOOT_MIN ? isp->o.settle_ms : REBOOT_MIN);
}

static const char *erase_name(const struct stm32_isp *isp)
{
	return isp->st.erase_cmd == 0x43 ? "ERASE" : "EXTENDED ERASE";
}

/* 1 if the erase or write that was refused is valid for the device as the table describes
 * it: erase units that exist in its flash, a WRITE inside the flash at a multiple of its
 * programming unit. Only then can a persistent NACK be write protection. */
static int request_valid(const struct stm32_isp *isp)
{
	const struct stm32_dev *d = isp->st.dev;
	if (isp->step == ST_MASS && isp->er_mass)
		return 1;
	if (isp->step == ST_MASS || isp->step == ST_ERASE)
		return isp->er_count > 0 &&
		       isp->er_first + isp->er_count <= stm32_dev_units(d, isp->st.flash_size);
	uint32_t a = isp->pos, w = stm32_dev_write_align(d);
	return (a & (w - 1u)) == 0 && a >= d->flash_base &&
	       (uint64_t)a + isp->blk_len <= isp->flash_end;
}

/* Persistent NACK of an erase or write. AN3155 gives one NACK for write protection and for
 * an invalid address or alignment, so the message names both; WRITE UNPROTECT (opt-in) is
 * sent only when the device table says the request was valid and aligned. */
static void write_refused(struct stm32_isp *isp, const char *what)
{
	if (!request_valid(isp)) {
		fail(isp, STM32_ISP_E_NACK,
		     "%s: NACK (invalid address/alignment for the %s per the device table)", what,
		     isp->st.dev->family);
		return;
	}
	if ((isp->o.flags & STM32_ISP_UNPROTECT_WRITE) && !(isp->unprot_done & 2)) {
		logf_(isp, HAL_LOG_INFO, "stm32_isp: %s refused: removing write protection", what);
		isp->unprot_done |= 2;
		go_step(isp, ST_WUNPROT);
		return;
	}
	fail(isp, STM32_ISP_E_WRITE_PROTECTED,
	     "%s%s: NACK (write protection or invalid address/alignment)", what,
	     (isp->unprot_done & 2) ? " after WRITE UNPROTECT" : "");
}

static void on_op(struct stm32_isp *isp, enum result r)
{
	struct stm32_isp_io *io = &isp->io;
	char what[64];
	switch ((enum step)isp->step) {
	case ST_SYNC:
		if (r == R_OK) {
			logf_(isp, HAL_LOG_DEBUG, "stm32_isp: synced (%s)",
			      io->nacked ? "NACK: was synced" : "ACK");
			set_state(isp, STM32_ISP_IDENTIFYING);
			go_step(isp, ST_GET);
			return;
		}
		if (++isp->sync_tries >= STM32_ISP_SYNC_TRIES) {
			fail(isp, STM32_ISP_E_NO_SYNC,
			     "no answer to 0x7F at %lu baud 8E1 (wiring, BOOT0, RDP level 2?)",
			     (unsigned long)isp->o.baud);
			return;
		}
		if (isp->o.entry == STM32_ISP_ENTRY_NONE && isp->sync_tries == 2) {
			/* a synced bootloader in the middle of a frame answers no 0x7F:
			 * complete its frame with 0xFF fillers, then it is ready */
			resync(isp, "sync");
			isp->resume = ST_GET;
			isp->resync_is_sync = 1;
			return;
		}
		run_step(isp);
		return;
	case ST_GET:
		if (r != R_OK) {
			retry_or_fail(isp, r, "GET");
			return;
		}
		/* reply: version, then N command codes (3.1) */
		isp->st.bl_version = io->reply_len ? io->reply[0] : 0;
		isp->ncmds = 0;
		for (uint16_t i = 1; i < io->reply_len && isp->ncmds < sizeof(isp->cmds); i++)
			isp->cmds[isp->ncmds++] = io->reply[i];
		if (has_cmd(isp, 0x44))
			isp->st.erase_cmd = 0x44;
		else if (has_cmd(isp, 0x43))
			isp->st.erase_cmd = 0x43;
		else
			isp->st.erase_cmd = 0;
		if (!isp->st.erase_cmd && !(isp->o.flags & STM32_ISP_NO_ERASE)) {
			fail(isp, STM32_ISP_E_NO_ERASE_CMD,
			     "the bootloader offers neither ERASE nor EXTENDED ERASE");
			return;
		}
		if (!has_cmd(isp, 0x31) || !has_cmd(isp, 0x11) ||
		    (isp->o.finish == STM32_ISP_FINISH_GO && !has_cmd(isp, 0x21))) {
			fail(isp, STM32_ISP_E_PROTOCOL,
			     "the bootloader does not offer READ/WRITE MEMORY%s",
			     isp->o.finish == STM32_ISP_FINISH_GO ? "/GO" : "");
			return;
		}
		go_step(isp, ST_GVR);
		return;
	case ST_GVR:
		if (r != R_OK) {
			retry_or_fail(isp, r, "GET VERSION");
			return;
		}
		if (io->reply_len >= 1)
			isp->st.bl_version = io->reply[0];
		go_step(isp, ST_GID);
		return;
	case ST_GID: {
		if (r != R_OK) {
			retry_or_fail(isp, r, "GET ID");
			return;
		}
		if (io->reply_len < 2) {
			retry_or_fail(isp, R_PROTO, "GET ID");
			return;
		}
		uint16_t pid = (uint16_t)(io->reply[0] << 8 | io->reply[1]);
		isp->st.pid = pid;
		isp->st.dev = stm32_dev_find(pid);
		if (!isp->st.dev) {
			fail(isp, STM32_ISP_E_UNKNOWN_DEVICE,
			     "unknown device: PID 0x%03x is not in the device table", pid);
			return;
		}
		isp->st.flash_size = isp->st.dev->flash_size;
		isp->mass_ms = isp->st.dev->mass_erase_ms;
		logf_(isp, HAL_LOG_INFO, "stm32_isp: %s (PID 0x%03x), bootloader v%u.%u, %s",
		      isp->st.dev->name, pid, isp->st.bl_version >> 4, isp->st.bl_version & 15,
		      isp->st.erase_cmd == 0x44 ? "EXTENDED ERASE" : "ERASE");
		go_step(isp, ST_RDP_PROBE);
		return;
	}
	case ST_RDP_PROBE:
		if (r == R_OK) {
			isp->st.rdp = 0;
			if (isp->st.dev->fsize_addr)
				go_step(isp, ST_FSIZE);
			else
				check_range(isp);
			return;
		}
		if (r == R_NACK && io->result_stage == 0) {
			/* READ MEMORY refused after its command byte: readout protection
			 * (3.4: "if the read protection is active, NACK") */
			if (isp->retry_left > 0) {
				isp->retry_left--;
				resync(isp, "READ MEMORY (protection probe)");
				return;
			}
			isp->st.rdp = 1;
			if ((isp->o.flags & STM32_ISP_UNPROTECT_READ) && !(isp->unprot_done & 1)) {
				logf_(isp, HAL_LOG_INFO,
				      "stm32_isp: read protection active: READOUT UNPROTECT "
				      "(mass erase)");
				isp->unprot_done |= 1;
				go_step(isp, ST_RUNPROT);
				return;
			}
			if (isp->unprot_done & 1)
				fail(isp, STM32_ISP_E_READ_PROTECTED,
				     "still read-protected after READOUT UNPROTECT (power-cycle "
				     "the chip)");
			else
				fail(isp, STM32_ISP_E_READ_PROTECTED,
				     "read protection (RDP) active; allow read unprotect to remove "
				     "it: that MASS-ERASES the flash");
			return;
		}
		retry_or_fail(isp, r, "READ MEMORY (protection probe)");
		return;
	case ST_FSIZE:
		if (r == R_OK && io->reply_len >= 2) {
			uint32_t kib = (uint32_t)io->reply[0] | (uint32_t)io->reply[1] << 8;
			if (kib && kib != 0xFFFF && kib * 1024u <= isp->st.dev->flash_size)
				isp->st.flash_size = kib * 1024u;
		} else if (r == R_TIMEOUT || r == R_PROTO) {
			retry_or_fail(isp, r, "READ MEMORY (flash size)");
			return;
		}
		/* NACK: the bootloader does not read there; keep the table's size */
		logf_(isp, HAL_LOG_INFO, "stm32_isp: flash %lu KiB at 0x%08lx",
		      (unsigned long)(isp->st.flash_size / 1024),
		      (unsigned long)isp->st.dev->flash_base);
		check_range(isp);
		return;
	case ST_RUNPROT:
	case ST_WUNPROT:
		if (r == R_OK) {
			if (isp->step == ST_RUNPROT) {
				/* the flash was mass-erased */
				isp->erased_to = isp->st.flash_size;
				isp->st.bytes_erased = isp->st.flash_size;
			}
			set_state(isp, STM32_ISP_CONNECTING);
			reboot_wait(isp);
			return;
		}
		retry_or_fail(isp, r,
		              isp->step == ST_RUNPROT ? "READOUT UNPROTECT" : "WRITE UNPROTECT");
		return;
	case ST_MASS:
		if (r == R_OK) {
			if (isp->er_mass) {
				isp->mass_done = 1;
				isp->erased_to = isp->st.flash_size;
				isp->st.bytes_erased = isp->st.flash_size;
			} else {
				isp->mass_off = isp->er_end;
				isp->st.bytes_erased += isp->er_bytes;
				if (isp->mass_off < isp->st.flash_size) {
					go_step(isp, ST_MASS);
					return;
				}
				isp->mass_done = 1;
				isp->erased_to = isp->st.flash_size;
			}
			notify(isp);
			isp->step = ST_BLOCK;
			do_block(isp);
			return;
		}
		snprintf(what, sizeof(what), "%s (mass erase)", erase_name(isp));
		if (r == R_NACK && io->result_stage >= 1 && isp->retry_left == 0) {
			write_refused(isp, what);
			return;
		}
		retry_or_fail(isp, r, what);
		return;
	case ST_ERASE:
		if (r == R_OK) {
			isp->erased_to = isp->er_end;
			isp->st.bytes_erased += isp->er_bytes;
			notify(isp);
			isp->step = ST_BLOCK;
			do_block(isp);
			return;
		}
		snprintf(what, sizeof(what), "%s of %s %lu..%lu", erase_name(isp),
		         isp->st.dev->page_size ? "pages" : "sectors", (unsigned long)isp->er_first,
		         (unsigned long)(isp->er_first + isp->er_count - 1));
		if (r == R_NACK && io->result_stage >= 1 && isp->retry_left == 0) {
			write_refused(isp, what);
			return;
		}
		retry_or_fail(isp, r, what);
		return;
	case ST_WRITE:
		if (r == R_OK) {
			if (!isp->blk_counted) {
				isp->st.bytes_written += isp->blk_len;
				isp->blk_counted = 1;
			}
			notify(isp);
			if (isp->o.verify)
				go_step(isp, ST_VERIFY);
			else
				block_done(isp);
			return;
		}
		snprintf(what, sizeof(what), "WRITE MEMORY at 0x%08lx", (unsigned long)io->addr);
		if (io->result_stage >= 2) {
			/* the data frame failed: it may have been programmed anyway (lost
			 * ACK). Read it back before writing again (NOR flash cannot take
			 * the same data twice on every family). */
			if (isp->retry_left == 0 && r == R_NACK) {
				write_refused(isp, what);
				return;
			}
			if (isp->retry_left == 0) {
				retry_or_fail(isp, r, what);
				return;
			}
			isp->wfail = (uint8_t)r;
			isp->step = ST_WCHECK;
			resync(isp, what);
			return;
		}
		retry_or_fail(isp, r, what);
		return;
	case ST_WCHECK:
		snprintf(what, sizeof(what), "WRITE MEMORY at 0x%08lx", (unsigned long)io->addr);
		if (r == R_OK) {
			if (block_diff(isp) < 0) {
				/* it was written: count it as verified too */
				if (!isp->blk_counted) {
					isp->st.bytes_written += isp->blk_len;
					isp->blk_counted = 1;
				}
				if (isp->o.verify)
					isp->st.bytes_verified += isp->blk_len;
				block_done(isp);
				return;
			}
			/* not (completely) written: write again, if retries are left (the
			 * read-back itself may have used some) */
			if (isp->retry_left <= 0) {
				if (isp->wfail == R_NACK)
					write_refused(isp, what);
				else
					fail(isp, STM32_ISP_E_TIMEOUT,
					     "no answer to %s (link broken?)", what);
				return;
			}
			isp->retry_left--;
			logf_(isp, HAL_LOG_INFO, "stm32_isp: %s: %s, retrying", what,
			      isp->wfail == R_NACK ? "NACK" : "no answer");
			isp->step = ST_WRITE;
			run_step(isp);
			return;
		}
		retry_or_fail(isp, r, what);
		return;
	case ST_VERIFY:
		if (r == R_OK) {
			int k = block_diff(isp);
			if (k >= 0) {
				uint8_t got = (uint16_t)k < io->reply_len ? io->reply[k] : 0;
				fail(isp, STM32_ISP_E_VERIFY,
				     "verify failed at 0x%08lx: wrote 0x%02x, read 0x%02x",
				     (unsigned long)(io->addr + (uint32_t)k),
				     ring_at(isp, (uint32_t)k), got);
				return;
			}
			isp->st.bytes_verified += isp->blk_len;
			block_done(isp);
			return;
		}
		snprintf(what, sizeof(what), "READ MEMORY at 0x%08lx", (unsigned long)io->addr);
		retry_or_fail(isp, r, what);
		return;
	case ST_GO:
		if (r == R_OK) {
			isp->hal->gpio_set(isp->ctx, HAL_PIN_BOOT0, 0);
			char how[40];
			snprintf(how, sizeof(how), "started at 0x%08lx", (unsigned long)io->addr);
			done_after_start(isp, how);
			return;
		}
		snprintf(what, sizeof(what), "GO 0x%08lx", (unsigned long)io->addr);
		retry_or_fail(isp, r, what);
		return;
	case ST_RESYNC:
		if (r == R_OK && io->nacked) {
			/* synced once nothing else arrives for a few byte times */
			isp->resync_quiet = 1;
			isp->quiet_dropped = isp->dropped;
			start_timer(isp, resync_quiet_ms(isp));
			return;
		}
		/* no answer, or an ACK (late, or the 0xFF completed a frame): next 0xFF */
		if (++isp->probes >= PROBE_MAX) {
			if (isp->resync_is_sync)
				fail(isp, STM32_ISP_E_NO_SYNC,
				     "no answer to 0x7F nor 0xFF at %lu baud 8E1 (is the chip in "
				     "its bootloader?)",
				     (unsigned long)isp->o.baud);
			else
				fail(isp, STM32_ISP_E_TIMEOUT,
				     "no answer to %s nor to re-sync (link broken?); %lu bytes "
				     "written",
				     isp->what, (unsigned long)isp->st.bytes_written);
			return;
		}
		op_start(isp, OP_PROBE);
		return;
	default:
		return;
	}
}

static void enter(struct stm32_isp *isp);

/* Timer expiry of the timed steps. */
static void on_timer(struct stm32_isp *isp)
{
	isp->timer_on = 0;
	switch ((enum step)isp->step) {
	case ST_RESET_LOW:
		isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 1);
		isp->step = ST_SETTLE;
		start_timer(isp, isp->o.settle_ms);
		return;
	case ST_SETTLE:
	case ST_REBOOT:
		go_step(isp, ST_SYNC);
		return;
	case ST_RUN_RESET:
		isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 1);
		done_after_start(isp, "reset into the application");
		return;
	case ST_DRAIN:
		if (isp->hal->uart_tx_pending(isp->ctx) == 0 ||
		    reached(now_ms(isp), isp->drain_end))
			enter(isp);
		else
			start_timer(isp, 1);
		return;
	case ST_RESYNC:
		if (isp->resync_quiet) {
			isp->resync_quiet = 0;
			if (isp->dropped == isp->quiet_dropped) {
				logf_(isp, HAL_LOG_DEBUG, "stm32_isp: re-synced after %u byte(s)",
				      (unsigned)isp->probes + 1);
				if (isp->resync_is_sync) {
					isp->resync_is_sync = 0;
					set_state(isp, STM32_ISP_IDENTIFYING);
					go_step(isp, ST_GET);
					return;
				}
				isp->step = isp->resume;
				run_step(isp);
				return;
			}
			/* more bytes after the NACK: answers were still queued */
			if (++isp->probes >= PROBE_MAX) {
				fail(isp,
				     isp->resync_is_sync ? STM32_ISP_E_NO_SYNC
				                         : STM32_ISP_E_TIMEOUT,
				     "no quiet re-sync after %s (noise on the line?)", isp->what);
				return;
			}
		} else if (isp->hal->uart_purge) {
			isp->hal->uart_purge(isp->ctx, 1, 0);
		}
		op_start(isp, OP_PROBE);
		return;
	default:
		return;
	}
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

/* The entry sequence (stm32_isp.h "One run" 1). */
static void enter(struct stm32_isp *isp)
{
	if (isp->o.entry == STM32_ISP_ENTRY_PINS) {
		isp->hal->gpio_set(isp->ctx, HAL_PIN_BOOT0, 1);
		isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 0);
		isp->step = ST_RESET_LOW;
		start_timer(isp, isp->o.reset_ms);
	} else {
		go_step(isp, ST_SYNC);
	}
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
	isp->t_begin = now_ms(isp);
	isp->st.state = STM32_ISP_CONNECTING;

	struct hal_uart_cfg cfg = {isp->o.baud, 8, RFC_PARITY_EVEN, RFC_STOP_1, RFC_FLOW_NONE};
	int r = hal->uart_config(ctx, &cfg);
	if (r < 0) {
		fail(isp, STM32_ISP_E_UART, "the UART refused %lu baud 8E1 (%d)",
		     (unsigned long)isp->o.baud, r);
		return r;
	}
	if (cfg.baud)
		isp->o.baud = cfg.baud;
	logf_(isp, HAL_LOG_INFO, "stm32_isp: connecting at %lu baud 8E1%s",
	      (unsigned long)isp->o.baud,
	      isp->o.entry == STM32_ISP_ENTRY_PINS ? " (BOOT0 + reset)" : "");
	notify(isp);
	/* bytes the bridge session queued for the UART before it was suspended must not reach
	 * the (freshly reset) bootloader, nor old received bytes the master */
	if (hal->uart_purge)
		hal->uart_purge(ctx, 1, 1);
	/* what the platform could not drop (a hardware FIFO) goes out first, to the
	 * application that the reset then ends; bounded by its wire time + 100 ms */
	size_t pending = hal->uart_tx_pending ? hal->uart_tx_pending(ctx) : 0;
	if (pending) {
		isp->drain_end = now_ms(isp) + wire_ms(isp, (uint32_t)pending) + 100u;
		isp->step = ST_DRAIN;
		start_timer(isp, 1);
		return 0;
	}
	enter(isp);
	return 0;
}

size_t stm32_isp_room(const struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp) || isp->ended || isp->seek_on)
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
	if (!stm32_isp_busy(isp) || isp->ended || isp->seek_on || n == 0)
		return 0;
	if (isp->o.total && n > isp->o.total - isp->st.bytes_received) {
		fail(isp, STM32_ISP_E_RANGE, "more than the announced %lu bytes",
		     (unsigned long)isp->o.total);
		return 0;
	}
	size_t k = STM32_ISP_BUF - isp->buf_len;
	if (k > n)
		k = n;
	for (size_t i = 0; i < k; i++)
		isp->buf[(isp->buf_head + isp->buf_len + i) & (STM32_ISP_BUF - 1)] = p[i];
	isp->buf_len += (uint32_t)k;
	isp->st.bytes_received += (uint32_t)k;
	if (k && isp->step == ST_BLOCK && isp->io.op == OP_NONE)
		do_block(isp);
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
	if (isp->flash_end &&
	    (addr < isp->st.dev->flash_base || addr >= isp->flash_end)) { /* device known */
		isp->seek_addr = addr;
		isp->seek_on = 1;
		seek_apply(isp); /* fails the run, naming the address */
		return -ERANGE;
	}
	isp->seek_addr = addr;
	isp->seek_on = 1;
	if (isp->step == ST_BLOCK && isp->io.op == OP_NONE)
		do_block(isp);
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
		fail(isp, STM32_ISP_E_ARG, "empty image");
		return 0;
	}
	if (isp->o.total && isp->st.bytes_received < isp->o.total) {
		fail(isp, STM32_ISP_E_SHORT, "image ended after %lu of %lu bytes",
		     (unsigned long)isp->st.bytes_received, (unsigned long)isp->o.total);
		return 0;
	}
	if (isp->step == ST_BLOCK && isp->io.op == OP_NONE)
		do_block(isp);
	return 0;
}

void stm32_isp_abort(struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp))
		return;
	fail(isp, STM32_ISP_E_ABORTED, "aborted after %lu bytes written",
	     (unsigned long)isp->st.bytes_written);
}

void stm32_isp_input(struct stm32_isp *isp, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (!stm32_isp_busy(isp)) {
			isp->dropped += (uint32_t)(n - i);
			return;
		}
		io_byte(isp, p[i]);
	}
}

void stm32_isp_poll(struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp))
		return;
	if (isp->timer_on && reached(now_ms(isp), isp->timer))
		on_timer(isp);
	if (!stm32_isp_busy(isp))
		return;
	io_push(isp);
	io_check_timeout(isp);
}

int32_t stm32_isp_next_ms(const struct stm32_isp *isp)
{
	if (!stm32_isp_busy(isp))
		return -1;
	uint32_t now = now_ms(isp);
	int32_t best = -1;
	if (isp->timer_on) {
		int32_t d = (int32_t)(isp->timer - now);
		best = d < 0 ? 0 : d;
	}
	if (isp->io.op != OP_NONE) {
		int32_t d;
		if (isp->io.waiting) {
			d = (int32_t)(isp->io.deadline - now);
			if (d < 0)
				d = 0;
		} else {
			d = 1; /* bytes waiting for the UART, or the UART draining */
		}
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
		st->elapsed_ms = (stm32_isp_busy(isp) ? now_ms(isp) : isp->t_end) - isp->t_begin;
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
