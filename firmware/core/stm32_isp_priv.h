/* SPDX-License-Identifier: MIT */
/*
 * Private to the AN3155 master: what its three files share. stm32_isp.c is the job (API,
 * image buffer, status), stm32_isp_io.c the I/O engine (one AN3155 command as stages of
 * frames and expected answers), stm32_isp_run.c the run (which command comes next,
 * retries, re-synchronisation, erase bookkeeping).
 */
#ifndef ESPSTM_STM32_ISP_PRIV_H
#define ESPSTM_STM32_ISP_PRIV_H

#include "an3155.h"
#include "stm32_isp.h"

#include <stdint.h>

/* AN3155 commands the I/O engine runs (struct stm32_isp_io.op). */
enum isp_op {
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
	OP_COUNT,
};

/* What the answer of the current stage must look like (struct stm32_isp_io.x). */
enum isp_expect {
	X_NONE = 0,
	X_ACK,   /* one ACK (NACK ends the op, BUSY extends the wait) */
	X_LIST,  /* N, then N + 1 bytes, then ACK (GET, GID) */
	X_FIXED, /* need bytes, then ACK (GVR) */
	X_DATA,  /* need bytes (READ MEMORY data) */
};

/* How an op ended. */
enum isp_result {
	R_OK = 0,
	R_NACK,    /* NACK; io.result_stage says after which frame */
	R_TIMEOUT, /* no (complete) answer in time */
	R_PROTO,   /* a byte where AN3155 allows none */
};

/* Run steps (struct stm32_isp.step). */
enum isp_step {
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
	ST_COUNT,
};

static inline uint32_t isp_now(const struct stm32_isp *isp)
{
	return isp->hal->now_ms(isp->ctx);
}

/* Image byte i of the ring (0 = buf[buf_head], the current block's first byte). */
static inline uint8_t isp_ring_at(const struct stm32_isp *isp, uint32_t i)
{
	return isp->buf[(isp->buf_head + i) & (STM32_ISP_BUF - 1)];
}

/* stm32_isp.c: the job. */
/* One log line through hal log (printf format; none when hal log is NULL). */
void isp_logf(struct stm32_isp *isp, enum hal_log_level lvl, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set the status message (printf format, truncated to STM32_ISP_MSG - 1 bytes). */
void isp_setmsg(struct stm32_isp *isp, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Call the progress callback (if any) with the current status. */
void isp_notify(struct stm32_isp *isp);
/* Enter state s (no effect if already in it): log, notify; DONE/FAILED stop the clock. */
void isp_set_state(struct stm32_isp *isp, enum stm32_isp_state s);
/* End the run: FAILED with error e and the message (printf format); nothing more is sent. */
void isp_fail(struct stm32_isp *isp, enum stm32_isp_error e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Arm the step timer: isp_on_timer() runs from stm32_isp_poll() ms milliseconds from now. */
void isp_start_timer(struct stm32_isp *isp, uint32_t ms);
/* Wire time of n bytes at 8E1 (11 bits each) at the run's baud: ms, rounded up, + 1. */
uint32_t isp_wire_ms(const struct stm32_isp *isp, uint32_t n);
/* Drop what the UART has received (hal uart_purge, when the platform has one). */
void isp_purge_rx(struct stm32_isp *isp);
/* Size the current block (blk_len) at pos. Returns 1 when it can be written (complete, or
 * the image or its segment ended), else 0 (wait for image data). */
int isp_block_ready(struct stm32_isp *isp);
/* Carry out a pending stm32_isp_seek() (device known). Returns 0 (done, or waiting for the
 * buffered block), or -1 after failing the run (address outside the flash or backwards). */
int isp_seek_apply(struct stm32_isp *isp);

/* stm32_isp_io.c: the I/O engine. */
/* Start AN3155 command op with io.addr/io.len set as it needs; its end calls isp_on_op(). */
void isp_op_start(struct stm32_isp *isp, enum isp_op op);
/* Hand the UART what it takes of the current frame; once all has left, start the answer
 * wait (STM32_ISP_ACK_MS and the like, + the wire time when the drain cannot be seen). */
void isp_io_push(struct stm32_isp *isp);
/* One byte received from the UART: advances the op or is counted as dropped. */
void isp_io_byte(struct stm32_isp *isp, uint8_t b);
/* End the op with R_TIMEOUT once its answer wait has passed. */
void isp_io_check_timeout(struct stm32_isp *isp);

/* stm32_isp_run.c: the run. */
/* The current op ended with r: the current step decides what comes next. */
void isp_on_op(struct stm32_isp *isp, enum isp_result r);
/* The step timer expired (called from stm32_isp_poll()). */
void isp_on_timer(struct stm32_isp *isp);
/* The entry sequence (stm32_isp.h "One run" 1): BOOT0 + NRST pulse, or straight to sync. */
void isp_enter(struct stm32_isp *isp);
/* Decide what the current block needs next: finish, seek, wait for data, erase or write. */
void isp_do_block(struct stm32_isp *isp);

#endif
