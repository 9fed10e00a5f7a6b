/* SPDX-License-Identifier: MIT */
/*
 * The AN3155 master's I/O engine: one command ("op") as a list of stages, each a frame to
 * send (possibly empty) and what its answer must look like (ACK, a counted list, fixed
 * bytes + ACK, raw data). An op ends with R_OK, R_NACK (with the stage), R_TIMEOUT or
 * R_PROTO and reports it to the run (isp_on_op). Frames follow ST AN3155 chapter 3.
 */
#include "stm32_isp_priv.h"

#include <assert.h>
#include <string.h>

#define PROBE_MS   10   /* re-sync: wait for the answer to one 0xFF */
#define WUNPROT_MS 2000 /* WRITE UNPROTECT: option-byte programming before the 2nd ACK */

/* XOR of n bytes: the checksum of AN3155 address, count and data frames. */
static uint8_t xor_of(const uint8_t *p, uint16_t n)
{
	uint8_t x = 0;
	for (uint16_t i = 0; i < n; i++)
		x ^= p[i];
	return x;
}

static void io_frame(struct stm32_isp *isp, const uint8_t *p, uint16_t n)
{
	memcpy(isp->io.out, p, n);
	isp->io.out_len = n;
	isp->io.out_off = 0;
}

/* A byte and its complement: a command code (AN3155 3.x) or READ MEMORY's N - 1 (3.4). */
static void io_pair(struct stm32_isp *isp, uint8_t c)
{
	uint8_t f[2] = {c, (uint8_t)(c ^ 0xFF)};
	io_frame(isp, f, 2);
}

/* Start address, MSB first, then the XOR of its 4 bytes (AN3155 3.4, 3.5, 3.6). */
static void io_addr(struct stm32_isp *isp, uint32_t a)
{
	uint8_t f[5] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a, 0};
	f[4] = xor_of(f, 4);
	io_frame(isp, f, 5);
}

/* Stage builders, one per op: set the frame and expectation of io->stage on top of the
 * defaults io_stage() set (no frame, one ACK within STM32_ISP_ACK_MS). Return 0 when the op
 * has no stage left (it is complete), else 1. */

/* 0x7F (AN3155 2) or 0xFF (re-sync filler): one byte, ACK or NACK. */
static int stage_sync(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->stage > 0)
		return 0;
	io->out[0] = io->op == OP_SYNC ? AN3155_SYNC : 0xFF;
	io->out_len = 1;
	io->wait_ms = io->op == OP_SYNC ? STM32_ISP_SYNC_MS : PROBE_MS;
	return 1;
}

/* GET (3.1) and GET ID (3.3): command, then N, N + 1 bytes, ACK. */
static int stage_list(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->stage == 0)
		io_pair(isp, io->op == OP_GET ? AN3155_GET : AN3155_GID);
	else if (io->stage == 1)
		io->x = X_LIST;
	else
		return 0;
	return 1;
}

/* GET VERSION (3.2): command, then version + 2 option bytes, ACK. */
static int stage_gvr(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->stage == 0) {
		io_pair(isp, AN3155_GVR);
	} else if (io->stage == 1) {
		io->x = X_FIXED;
		io->need = 3;
	} else {
		return 0;
	}
	return 1;
}

/* READ MEMORY (3.4): command, address, N - 1 and its complement, then N data bytes. */
static int stage_read(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	switch (io->stage) {
	case 0:
		io_pair(isp, AN3155_READ_MEMORY);
		return 1;
	case 1:
		io_addr(isp, io->addr);
		return 1;
	case 2:
		io_pair(isp, (uint8_t)(io->len - 1));
		return 1;
	case 3:
		io->x = X_DATA;
		io->need = io->len;
		return 1;
	default:
		return 0;
	}
}

/* GO (3.5): command, address. */
static int stage_go(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->stage == 0)
		io_pair(isp, AN3155_GO);
	else if (io->stage == 1)
		io_addr(isp, io->addr);
	else
		return 0;
	return 1;
}

/* WRITE MEMORY's data frame (3.6): N - 1, the block padded with 0xFF to a whole programming
 * unit of the device (stm32_dev_write_align: 4..32 bytes, dividing 256; the block ends at
 * most at a 256-byte boundary, so n <= 256), XOR of all. */
static void io_write_data(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	uint32_t w = stm32_dev_write_align(isp->st.dev);
	uint16_t n = (uint16_t)((io->len + w - 1u) & ~(w - 1u));
	assert(io->len > 0 && n <= STM32_ISP_BLOCK);
	io->out[0] = (uint8_t)(n - 1);
	for (uint16_t i = 0; i < n; i++)
		io->out[1 + i] = i < io->len ? isp_ring_at(isp, i) : 0xFF;
	io->out[1 + n] = xor_of(io->out, (uint16_t)(n + 1));
	io->out_len = (uint16_t)(n + 2);
	io->wait_ms = STM32_ISP_WRITE_MS;
}

/* WRITE MEMORY (3.6): command, address, data. */
static int stage_write(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	switch (io->stage) {
	case 0:
		io_pair(isp, AN3155_WRITE_MEMORY);
		return 1;
	case 1:
		io_addr(isp, io->addr);
		return 1;
	case 2:
		io_write_data(isp);
		return 1;
	default:
		return 0;
	}
}

/* The unit list of ERASE (3.7: N - 1, one byte per page, checksum; global erase 0xFF 0x00)
 * or EXTENDED ERASE (3.8: N - 1 and the units as 16-bit MSB first, checksum; mass erase
 * 0xFFFF + checksum 0x00). Returns the frame length. */
static uint16_t erase_list(const struct stm32_isp *isp, uint8_t *f)
{
	uint16_t k = 0;
	int ext = isp->st.erase_cmd == AN3155_EXTENDED_ERASE;
	if (isp->er_mass && !ext) {
		f[k++] = AN3155_ERASE_GLOBAL; /* and its complement, not a checksum */
		f[k++] = (uint8_t)(AN3155_ERASE_GLOBAL ^ 0xFF);
		return k;
	}
	if (isp->er_mass) {
		f[k++] = (uint8_t)(AN3155_EXTENDED_ERASE_MASS >> 8);
		f[k++] = (uint8_t)AN3155_EXTENDED_ERASE_MASS;
	} else {
		uint32_t n1 = isp->er_count - 1;
		if (ext)
			f[k++] = (uint8_t)(n1 >> 8);
		f[k++] = (uint8_t)n1;
		for (uint32_t u = 0; u < isp->er_count; u++) {
			if (ext)
				f[k++] = (uint8_t)((isp->er_first + u) >> 8);
			f[k++] = (uint8_t)(isp->er_first + u);
		}
	}
	assert(k < sizeof(isp->io.out)); /* at most STM32_ISP_ERASE_BATCH units */
	f[k] = xor_of(f, k);
	return (uint16_t)(k + 1);
}

/* ERASE / EXTENDED ERASE (3.7, 3.8): command, unit list (the run planned it in er_*). */
static int stage_erase(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->stage == 0) {
		io_pair(isp, isp->st.erase_cmd);
		return 1;
	}
	if (io->stage == 1) {
		io->out_len = erase_list(isp, io->out);
		io->wait_ms = isp->er_wait_ms;
		return 1;
	}
	return 0;
}

/* WRITE UNPROTECT (3.10) and READOUT UNPROTECT (3.12): command, then a second ACK after the
 * operation; then the chip resets. */
static int stage_unprotect(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	int w = io->op == OP_WUNPROT;
	if (io->stage == 0) {
		io_pair(isp, w ? AN3155_WRITE_UNPROTECT : AN3155_READOUT_UNPROTECT);
		return 1;
	}
	if (io->stage == 1) {
		io->wait_ms = (w ? WUNPROT_MS : isp->mass_ms) + STM32_ISP_ACK_MS;
		return 1;
	}
	return 0;
}

static int (*const stage_fn[OP_COUNT])(struct stm32_isp *isp) = {
    [OP_SYNC] = stage_sync,
    [OP_PROBE] = stage_sync,
    [OP_GET] = stage_list,
    [OP_GVR] = stage_gvr,
    [OP_GID] = stage_list,
    [OP_READ] = stage_read,
    [OP_GO] = stage_go,
    [OP_WRITE] = stage_write,
    [OP_ERASE] = stage_erase,
    [OP_WUNPROT] = stage_unprotect,
    [OP_RUNPROT] = stage_unprotect,
};

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
	assert(io->op > OP_NONE && io->op < OP_COUNT); /* only a running op has stages */
	return stage_fn[io->op](isp);
}

void isp_op_start(struct stm32_isp *isp, enum isp_op op)
{
	isp->io.op = (uint8_t)op;
	isp->io.stage = 0;
	isp->io.reply_len = 0; /* only an op's last stage collects answer bytes */
	io_stage(isp);
	isp_io_push(isp);
}

static void op_end(struct stm32_isp *isp, enum isp_result r)
{
	isp->io.result_stage = isp->io.stage;
	isp->io.op = OP_NONE;
	isp->io.waiting = 0;
	isp_on_op(isp, r);
}

static void stage_done(struct stm32_isp *isp)
{
	isp->io.stage++;
	if (!io_stage(isp)) {
		op_end(isp, R_OK);
		return;
	}
	isp_io_push(isp);
}

/* Start the answer wait: it ends ms from now. */
static void io_wait(struct stm32_isp *isp, uint32_t ms)
{
	isp->io.deadline = isp_now(isp) + ms;
	isp->io.waiting = 1;
}

void isp_io_push(struct stm32_isp *isp)
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
		io->sent_ms = isp_now(isp);
	}
	if (io->out_len == 0 || !isp->hal->uart_tx_pending) {
		/* nothing sent in this stage, or no way to see the UART drain: count the
		 * frame's wire time into the wait */
		io_wait(isp, io->wait_ms + isp_wire_ms(isp, io->out_len));
		return;
	}
	if (isp->hal->uart_tx_pending(isp->ctx) != 0 &&
	    !hal_time_reached(isp_now(isp), io->sent_ms + isp_wire_ms(isp, io->out_len) + 1000u))
		return; /* still draining */
	/* drained, or the UART claims to be busy far longer than the frame takes: do not
	 * hang */
	io_wait(isp, io->wait_ms);
}

/* An ACK-stage byte: ACK ends the stage, NACK the op (sync and probe: the stage, noting
 * it), BUSY restarts the wait (bounded), anything else is noise. */
static void io_ack_byte(struct stm32_isp *isp, uint8_t b)
{
	struct stm32_isp_io *io = &isp->io;
	if (b == AN3155_ACK) {
		io->nacked = 0;
		stage_done(isp);
	} else if (b == AN3155_NACK) {
		if (io->op == OP_SYNC || io->op == OP_PROBE) {
			io->nacked = 1;
			stage_done(isp);
		} else {
			op_end(isp, R_NACK);
		}
	} else if (b == AN3155_BUSY) {
		/* AN3155 v3.x: still working; restart the wait, bounded */
		if (io->busy_ms < STM32_ISP_BUSY_MAX_MS) {
			io->busy_ms += io->wait_ms;
			if (io->waiting)
				io->deadline = isp_now(isp) + io->wait_ms;
		}
	} else {
		isp->dropped++; /* noise, e.g. the application's output before reset */
	}
}

/* A byte of a counted list (X_LIST), fixed answer (X_FIXED) or READ data (X_DATA). */
static void io_reply_byte(struct stm32_isp *isp, uint8_t b)
{
	struct stm32_isp_io *io = &isp->io;
	/* an answer that is arriving: the wait counts silence, not the whole answer (slow
	 * baud rates, long READ answers) */
	if (io->waiting)
		io->deadline = isp_now(isp) + io->wait_ms;
	if (io->x == X_DATA) {
		if (io->reply_len < sizeof(io->reply))
			io->reply[io->reply_len++] = b;
		if (io->need > 0 && --io->need == 0)
			stage_done(isp);
		return;
	}
	if (io->x == X_LIST && io->reply_len == 0 && io->need == 0 && !io->have_n) {
		io->have_n = 1;
		io->list_n = b;
		io->need = (uint16_t)(b + 1u);
		return;
	}
	if (io->need > 0) {
		if (io->reply_len < sizeof(io->reply))
			io->reply[io->reply_len++] = b;
		io->need--;
		return;
	}
	io->have_n = 0;
	if (b == AN3155_ACK)
		stage_done(isp);
	else
		op_end(isp, R_PROTO);
}

void isp_io_byte(struct stm32_isp *isp, uint8_t b)
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
	switch ((enum isp_expect)io->x) {
	case X_NONE:
		isp->dropped++;
		return;
	case X_ACK:
		io_ack_byte(isp, b);
		return;
	case X_LIST:
	case X_FIXED:
	case X_DATA:
		io_reply_byte(isp, b);
		return;
	}
}

void isp_io_check_timeout(struct stm32_isp *isp)
{
	struct stm32_isp_io *io = &isp->io;
	if (io->op != OP_NONE && io->waiting && hal_time_reached(isp_now(isp), io->deadline)) {
		io->have_n = 0;
		op_end(isp, R_TIMEOUT);
	}
}
