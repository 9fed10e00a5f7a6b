/* SPDX-License-Identifier: MIT */
/*
 * The AN3155 master's run: a table of steps (entry, sync, identify, erase, write, verify,
 * start), each with the function that starts it, the one that takes its command's result
 * and the one its timer ends in. Retries, re-synchronisation and the erase plan live here;
 * stm32_isp.h describes the order of a run and its strategies.
 */
#include "stm32_isp_priv.h"

#include <assert.h>
#include <stdio.h>

#define PROBE_MAX  300 /* re-sync: most 0xFF bytes (a WRITE frame is 258) */
#define QUIET_MS   20  /* re-sync: answers still arriving are dropped for this long */
#define REBOOT_MIN 20  /* after an unprotect command the chip resets: wait at least (ms) */

static void run_step(struct stm32_isp *isp);

static void go_step(struct stm32_isp *isp, int step)
{
	isp->step = step;
	isp->retry_left = isp->o.retries;
	run_step(isp);
}

/* Back to deciding what the current block needs (ST_BLOCK). */
static void next_block(struct stm32_isp *isp)
{
	isp->step = ST_BLOCK;
	isp_do_block(isp);
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
	isp_start_timer(isp, QUIET_MS);
}

/* Quiet interval after the NACK of a re-sync probe: a few byte times at the bootloader's
 * baud, plus 2 ms for the platform's UART receive path (ms). */
static uint32_t resync_quiet_ms(const struct stm32_isp *isp)
{
	return isp_wire_ms(isp, 4) + 2;
}

/* NACK or timeout of the current step's op: retry after a re-sync, or fail with what +
 * cause. */
static void retry_or_fail(struct stm32_isp *isp, enum isp_result r, const char *what)
{
	if (isp->retry_left > 0) {
		isp->retry_left--;
		isp_logf(isp, HAL_LOG_INFO, "stm32_isp: %s: %s, retrying", what,
		         r == R_NACK      ? "NACK"
		         : r == R_TIMEOUT ? "no answer"
		                          : "bad answer");
		resync(isp, what); /* also after a NACK: it may have answered a stray byte */
		return;
	}
	if (r == R_NACK)
		isp_fail(isp, STM32_ISP_E_NACK, "%s refused (NACK)", what);
	else if (r == R_TIMEOUT)
		isp_fail(isp, STM32_ISP_E_TIMEOUT, "no answer to %s (link broken?)", what);
	else
		isp_fail(isp, STM32_ISP_E_PROTOCOL, "invalid answer to %s", what);
}

/* ------------------------------------------------------------------------------------ */
/* Blocks and erase units                                                               */
/* ------------------------------------------------------------------------------------ */

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
		isp_fail(isp, STM32_ISP_E_RANGE, "no erase unit for flash offset 0x%lx",
		         (unsigned long)from);
		return -1;
	}
	if (isp->st.erase_cmd == AN3155_ERASE && first + count - 1 > 0xFF) {
		isp_fail(isp, STM32_ISP_E_RANGE,
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

void isp_do_block(struct stm32_isp *isp)
{
	/* the image is complete after end(), or once opts.total bytes are written */
	if ((isp->ended || (isp->o.total && isp->img_off == isp->o.total)) && isp->buf_len == 0) {
		finish(isp);
		return;
	}
	if (isp->seek_on && isp_seek_apply(isp) < 0)
		return;
	if (!isp_block_ready(isp)) {
		isp_set_state(isp, STM32_ISP_WRITING); /* waiting for image data */
		return;
	}
	const struct stm32_dev *d = isp->st.dev;
	uint32_t base = d->flash_base;
	uint32_t a = isp->pos;
	uint64_t end = (uint64_t)a + isp->blk_len;
	if (end > isp->flash_end) {
		isp_fail(isp, STM32_ISP_E_RANGE,
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
	isp_notify(isp);
	next_block(isp);
}

/* Count the current block in bytes_written, once however often it is written. */
static void count_written(struct stm32_isp *isp)
{
	if (!isp->blk_counted) {
		isp->st.bytes_written += isp->blk_len;
		isp->blk_counted = 1;
	}
}

/* Compare the READ answer with the current block. Returns -1 if equal, else the index of
 * the first difference. */
static int block_diff(const struct stm32_isp *isp)
{
	for (uint16_t i = 0; i < isp->blk_len; i++)
		if (i >= isp->io.reply_len || isp->io.reply[i] != isp_ring_at(isp, i))
			return i;
	return -1;
}

/* The run succeeded: the message says what was written, and how the application was
 * started (how, NULL when it was not). */
static void done(struct stm32_isp *isp, const char *how)
{
	isp->step = ST_NONE;
	isp_setmsg(isp, "%lu bytes written at 0x%08lx%s%s%s", (unsigned long)isp->img_off,
	           (unsigned long)isp->st.address, isp->o.verify ? " and verified" : "",
	           how ? "; " : "", how ? how : "");
	isp_logf(isp, HAL_LOG_INFO, "stm32_isp: done: %s", isp->msg);
	isp_set_state(isp, STM32_ISP_DONE);
}

static void finish(struct stm32_isp *isp)
{
	if (isp->o.total && isp->img_off != isp->o.total) {
		isp_fail(isp, STM32_ISP_E_SHORT, "image ended after %lu of %lu bytes",
		         (unsigned long)isp->img_off, (unsigned long)isp->o.total);
		return;
	}
	isp->st.total = isp->img_off;
	switch (isp->o.finish) {
	case STM32_ISP_FINISH_GO:
		isp_set_state(isp, STM32_ISP_STARTING);
		go_step(isp, ST_GO);
		return;
	case STM32_ISP_FINISH_RESET:
		isp_set_state(isp, STM32_ISP_STARTING);
		isp->hal->gpio_set(isp->ctx, HAL_PIN_BOOT0, 0);
		isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 0);
		isp->step = ST_RUN_RESET;
		isp_start_timer(isp, isp->o.reset_ms);
		return;
	case STM32_ISP_FINISH_STAY:
		break;
	}
	done(isp, NULL);
}

/* Image placement, known after GET ID and the flash size: fails the run when the image
 * is outside the flash or misaligned, else starts erasing or writing. */
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
			isp_fail(isp, STM32_ISP_E_RANGE,
			         "%lu bytes at 0x%08lx do not fit in the flash 0x%08lx-0x%08lx "
			         "(%lu KiB)",
			         (unsigned long)isp->o.total, (unsigned long)a,
			         (unsigned long)d->flash_base, (unsigned long)(isp->flash_end - 1),
			         (unsigned long)(isp->st.flash_size / 1024));
		else
			isp_fail(isp, STM32_ISP_E_RANGE,
			         "address 0x%08lx is outside the flash 0x%08lx-0x%08lx",
			         (unsigned long)a, (unsigned long)d->flash_base,
			         (unsigned long)(isp->flash_end - 1));
		return;
	}
	uint32_t w = stm32_dev_write_align(d);
	if (a & (w - 1u)) {
		isp_fail(isp, STM32_ISP_E_ARG,
		         "address 0x%08lx is not a multiple of %lu (the %s writes %lu-byte units)",
		         (unsigned long)a, (unsigned long)w, d->family, (unsigned long)w);
		return;
	}
	if (isp->o.total)
		isp_logf(isp, HAL_LOG_INFO, "stm32_isp: %lu bytes at 0x%08lx",
		         (unsigned long)isp->o.total, (unsigned long)a);
	if ((isp->o.flags & STM32_ISP_NO_ERASE) && !isp->mass_done) {
		isp->erased_to = isp->st.flash_size;
		isp->mass_done = 1;
	}
	if ((isp->o.flags & STM32_ISP_MASS_ERASE) && !isp->mass_done) {
		isp_set_state(isp, STM32_ISP_ERASING);
		isp->mass_off = 0;
		go_step(isp, ST_MASS);
		return;
	}
	next_block(isp);
}

/* The whole flash is erased (mass erase, READOUT UNPROTECT). */
static void all_erased(struct stm32_isp *isp)
{
	isp->erased_to = isp->st.flash_size;
	isp->st.bytes_erased = isp->st.flash_size;
}

static const char *erase_name(const struct stm32_isp *isp)
{
	return isp->st.erase_cmd == AN3155_ERASE ? "ERASE" : "EXTENDED ERASE";
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
		isp_fail(isp, STM32_ISP_E_NACK,
		         "%s: NACK (invalid address/alignment for the %s per the device table)",
		         what, isp->st.dev->family);
		return;
	}
	if ((isp->o.flags & STM32_ISP_UNPROTECT_WRITE) && !(isp->unprot_done & 2)) {
		isp_logf(isp, HAL_LOG_INFO, "stm32_isp: %s refused: removing write protection",
		         what);
		isp->unprot_done |= 2;
		go_step(isp, ST_WUNPROT);
		return;
	}
	isp_fail(isp, STM32_ISP_E_WRITE_PROTECTED,
	         "%s%s: NACK (write protection or invalid address/alignment)", what,
	         (isp->unprot_done & 2) ? " after WRITE UNPROTECT" : "");
}

/* A failed erase command: a NACK of its unit list with no retry left may be write
 * protection (write_refused), anything else is retried or fails. */
static void erase_failed(struct stm32_isp *isp, enum isp_result r, const char *what)
{
	if (r == R_NACK && isp->io.result_stage >= 1 && isp->retry_left == 0)
		write_refused(isp, what);
	else
		retry_or_fail(isp, r, what);
}

/* A chip reset is coming (unprotect): wait, then sync and identify again. */
static void reboot_wait(struct stm32_isp *isp)
{
	isp->step = ST_REBOOT;
	isp->sync_tries = 0;
	isp_start_timer(isp, isp->o.settle_ms > REBOOT_MIN ? isp->o.settle_ms : REBOOT_MIN);
}

/* ------------------------------------------------------------------------------------ */
/* Step starters: the command (or decision) each step begins with                       */
/* ------------------------------------------------------------------------------------ */

/* READ MEMORY of len bytes at addr (AN3155 3.4). */
static void start_read(struct stm32_isp *isp, uint32_t addr, uint16_t len)
{
	isp->io.addr = addr;
	isp->io.len = len;
	isp_op_start(isp, OP_READ);
}

static void start_sync(struct stm32_isp *isp)
{
	isp_purge_rx(isp);
	isp_op_start(isp, OP_SYNC);
}

static void start_rdp_probe(struct stm32_isp *isp)
{
	start_read(isp, isp->st.dev->flash_base, 4);
}

static void start_fsize(struct stm32_isp *isp)
{
	start_read(isp, isp->st.dev->fsize_addr, 2);
}

/* Mass erase: one command, or every unit in batches on parts without one. */
static void start_mass(struct stm32_isp *isp)
{
	const struct stm32_dev *d = isp->st.dev;
	if (!(d->flags & STM32_DEV_NO_MASS_ERASE)) {
		isp->er_mass = 1;
		isp->er_wait_ms = d->mass_erase_ms + STM32_ISP_ACK_MS;
		isp_op_start(isp, OP_ERASE);
		return;
	}
	if (plan_erase(isp, isp->mass_off, isp->st.flash_size) == 0)
		isp_op_start(isp, OP_ERASE);
}

static void start_write(struct stm32_isp *isp)
{
	isp->io.addr = isp->pos;
	isp->io.len = isp->blk_len;
	isp_op_start(isp, OP_WRITE);
}

/* WCHECK and VERIFY: READ MEMORY of the current block. */
static void start_read_block(struct stm32_isp *isp)
{
	start_read(isp, isp->pos, isp->blk_len);
}

static void start_go(struct stm32_isp *isp)
{
	isp->io.addr = isp->o.go_address ? isp->o.go_address : isp->st.address;
	isp_op_start(isp, OP_GO);
}

/* ------------------------------------------------------------------------------------ */
/* Step results: what the step does with its command's result                           */
/* ------------------------------------------------------------------------------------ */

static void done_sync(struct stm32_isp *isp, enum isp_result r)
{
	if (r == R_OK) {
		isp_logf(isp, HAL_LOG_DEBUG, "stm32_isp: synced (%s)",
		         isp->io.nacked ? "NACK: was synced" : "ACK");
		isp_set_state(isp, STM32_ISP_IDENTIFYING);
		go_step(isp, ST_GET);
		return;
	}
	if (++isp->sync_tries >= STM32_ISP_SYNC_TRIES) {
		isp_fail(isp, STM32_ISP_E_NO_SYNC,
		         "no answer to 0x7F at %lu baud 8E1 (wiring, BOOT0, RDP level 2?)",
		         (unsigned long)isp->o.baud);
		return;
	}
	if (isp->o.entry == STM32_ISP_ENTRY_NONE && isp->sync_tries == 2) {
		/* a synced bootloader in the middle of a frame answers no 0x7F: complete its
		 * frame with 0xFF fillers, then it is ready */
		resync(isp, "sync");
		isp->resume = ST_GET;
		isp->resync_is_sync = 1;
		return;
	}
	run_step(isp);
}

/* GET's answer (3.1): version, then the command codes; exactly one erase command is
 * chosen, EXTENDED ERASE first. */
static void done_get(struct stm32_isp *isp, enum isp_result r)
{
	struct stm32_isp_io *io = &isp->io;
	if (r != R_OK) {
		retry_or_fail(isp, r, "GET");
		return;
	}
	isp->st.bl_version = io->reply_len ? io->reply[0] : 0;
	isp->ncmds = 0;
	for (uint16_t i = 1; i < io->reply_len && isp->ncmds < sizeof(isp->cmds); i++)
		isp->cmds[isp->ncmds++] = io->reply[i];
	if (has_cmd(isp, AN3155_EXTENDED_ERASE))
		isp->st.erase_cmd = AN3155_EXTENDED_ERASE;
	else if (has_cmd(isp, AN3155_ERASE))
		isp->st.erase_cmd = AN3155_ERASE;
	else
		isp->st.erase_cmd = 0;
	if (!isp->st.erase_cmd && !(isp->o.flags & STM32_ISP_NO_ERASE)) {
		isp_fail(isp, STM32_ISP_E_NO_ERASE_CMD,
		         "the bootloader offers neither ERASE nor EXTENDED ERASE");
		return;
	}
	int go = isp->o.finish == STM32_ISP_FINISH_GO;
	if (!has_cmd(isp, AN3155_WRITE_MEMORY) || !has_cmd(isp, AN3155_READ_MEMORY) ||
	    (go && !has_cmd(isp, AN3155_GO))) {
		isp_fail(isp, STM32_ISP_E_PROTOCOL,
		         "the bootloader does not offer READ/WRITE MEMORY%s", go ? "/GO" : "");
		return;
	}
	go_step(isp, ST_GVR);
}

static void done_gvr(struct stm32_isp *isp, enum isp_result r)
{
	if (r != R_OK) {
		retry_or_fail(isp, r, "GET VERSION");
		return;
	}
	if (isp->io.reply_len >= 1)
		isp->st.bl_version = isp->io.reply[0];
	go_step(isp, ST_GID);
}

/* GET ID's answer (3.3): the PID, looked up in the device table. */
static void done_gid(struct stm32_isp *isp, enum isp_result r)
{
	struct stm32_isp_io *io = &isp->io;
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
		isp_fail(isp, STM32_ISP_E_UNKNOWN_DEVICE,
		         "unknown device: PID 0x%03x is not in the device table", pid);
		return;
	}
	isp->st.flash_size = isp->st.dev->flash_size;
	isp->mass_ms = isp->st.dev->mass_erase_ms;
	isp_logf(isp, HAL_LOG_INFO, "stm32_isp: %s (PID 0x%03x), bootloader v%u.%u, %s",
	         isp->st.dev->name, pid, isp->st.bl_version >> 4, isp->st.bl_version & 15,
	         isp->st.erase_cmd == AN3155_EXTENDED_ERASE ? "EXTENDED ERASE" : "ERASE");
	go_step(isp, ST_RDP_PROBE);
}

/* Read protection is active (the probe's READ MEMORY was refused after its command byte):
 * READOUT UNPROTECT when allowed, else fail. */
static void read_protected(struct stm32_isp *isp)
{
	isp->st.rdp = 1;
	if ((isp->o.flags & STM32_ISP_UNPROTECT_READ) && !(isp->unprot_done & 1)) {
		isp_logf(isp, HAL_LOG_INFO,
		         "stm32_isp: read protection active: READOUT UNPROTECT (mass erase)");
		isp->unprot_done |= 1;
		go_step(isp, ST_RUNPROT);
		return;
	}
	if (isp->unprot_done & 1)
		isp_fail(isp, STM32_ISP_E_READ_PROTECTED,
		         "still read-protected after READOUT UNPROTECT (power-cycle the chip)");
	else
		isp_fail(isp, STM32_ISP_E_READ_PROTECTED,
		         "read protection (RDP) active; allow read unprotect to remove it: that "
		         "MASS-ERASES the flash");
}

static void done_rdp_probe(struct stm32_isp *isp, enum isp_result r)
{
	if (r == R_OK) {
		isp->st.rdp = 0;
		if (isp->st.dev->fsize_addr)
			go_step(isp, ST_FSIZE);
		else
			check_range(isp);
		return;
	}
	if (r == R_NACK && isp->io.result_stage == 0) {
		/* READ MEMORY refused after its command byte: readout protection (3.4: "if
		 * the read protection is active, NACK") */
		if (isp->retry_left > 0) {
			isp->retry_left--;
			resync(isp, "READ MEMORY (protection probe)");
			return;
		}
		read_protected(isp);
		return;
	}
	retry_or_fail(isp, r, "READ MEMORY (protection probe)");
}

/* The flash-size register (KiB): used when plausible; a NACK keeps the table's size. */
static void done_fsize(struct stm32_isp *isp, enum isp_result r)
{
	struct stm32_isp_io *io = &isp->io;
	if (r == R_OK && io->reply_len >= 2) {
		uint32_t kib = (uint32_t)io->reply[0] | (uint32_t)io->reply[1] << 8;
		if (kib && kib != 0xFFFF && kib * 1024u <= isp->st.dev->flash_size)
			isp->st.flash_size = kib * 1024u;
	} else if (r == R_TIMEOUT || r == R_PROTO) {
		retry_or_fail(isp, r, "READ MEMORY (flash size)");
		return;
	}
	isp_logf(isp, HAL_LOG_INFO, "stm32_isp: flash %lu KiB at 0x%08lx",
	         (unsigned long)(isp->st.flash_size / 1024),
	         (unsigned long)isp->st.dev->flash_base);
	check_range(isp);
}

static void done_runprot(struct stm32_isp *isp, enum isp_result r)
{
	if (r != R_OK) {
		retry_or_fail(isp, r, "READOUT UNPROTECT");
		return;
	}
	all_erased(isp); /* the flash was mass-erased */
	isp_set_state(isp, STM32_ISP_CONNECTING);
	reboot_wait(isp);
}

static void done_wunprot(struct stm32_isp *isp, enum isp_result r)
{
	if (r != R_OK) {
		retry_or_fail(isp, r, "WRITE UNPROTECT");
		return;
	}
	isp_set_state(isp, STM32_ISP_CONNECTING);
	reboot_wait(isp);
}

static void done_mass(struct stm32_isp *isp, enum isp_result r)
{
	if (r != R_OK) {
		char what[64];
		snprintf(what, sizeof(what), "%s (mass erase)", erase_name(isp));
		erase_failed(isp, r, what);
		return;
	}
	if (isp->er_mass) {
		isp->mass_done = 1;
		all_erased(isp);
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
	isp_notify(isp);
	next_block(isp);
}

static void done_erase(struct stm32_isp *isp, enum isp_result r)
{
	if (r != R_OK) {
		char what[64];
		snprintf(what, sizeof(what), "%s of %s %lu..%lu", erase_name(isp),
		         isp->st.dev->page_size ? "pages" : "sectors", (unsigned long)isp->er_first,
		         (unsigned long)(isp->er_first + isp->er_count - 1));
		erase_failed(isp, r, what);
		return;
	}
	isp->erased_to = isp->er_end;
	isp->st.bytes_erased += isp->er_bytes;
	isp_notify(isp);
	next_block(isp);
}

/* "WRITE MEMORY at <addr>" for messages. */
static void write_what(const struct stm32_isp *isp, char *what, size_t n)
{
	snprintf(what, n, "WRITE MEMORY at 0x%08lx", (unsigned long)isp->io.addr);
}

static void done_write(struct stm32_isp *isp, enum isp_result r)
{
	if (r == R_OK) {
		count_written(isp);
		isp_notify(isp);
		if (isp->o.verify)
			go_step(isp, ST_VERIFY);
		else
			block_done(isp);
		return;
	}
	char what[64];
	write_what(isp, what, sizeof(what));
	if (isp->io.result_stage < 2 || isp->retry_left == 0) {
		if (isp->io.result_stage >= 2 && r == R_NACK)
			write_refused(isp, what);
		else
			retry_or_fail(isp, r, what);
		return;
	}
	/* the data frame failed: it may have been programmed anyway (lost ACK). Read it
	 * back before writing again (NOR flash cannot take the same data twice on every
	 * family). */
	isp->wfail = (uint8_t)r;
	isp->step = ST_WCHECK;
	resync(isp, what);
}

/* The read-back of a block whose WRITE failed: equal counts as written and verified;
 * otherwise write it again while retries are left (the read-back may have used some). */
static void done_wcheck(struct stm32_isp *isp, enum isp_result r)
{
	char what[64];
	write_what(isp, what, sizeof(what));
	if (r != R_OK) {
		retry_or_fail(isp, r, what);
		return;
	}
	if (block_diff(isp) < 0) {
		count_written(isp);
		if (isp->o.verify)
			isp->st.bytes_verified += isp->blk_len;
		block_done(isp);
		return;
	}
	if (isp->retry_left <= 0) {
		if (isp->wfail == R_NACK)
			write_refused(isp, what);
		else
			isp_fail(isp, STM32_ISP_E_TIMEOUT, "no answer to %s (link broken?)", what);
		return;
	}
	isp->retry_left--;
	isp_logf(isp, HAL_LOG_INFO, "stm32_isp: %s: %s, retrying", what,
	         isp->wfail == R_NACK ? "NACK" : "no answer");
	isp->step = ST_WRITE;
	run_step(isp);
}

static void done_verify(struct stm32_isp *isp, enum isp_result r)
{
	struct stm32_isp_io *io = &isp->io;
	if (r != R_OK) {
		char what[64];
		snprintf(what, sizeof(what), "READ MEMORY at 0x%08lx", (unsigned long)io->addr);
		retry_or_fail(isp, r, what);
		return;
	}
	int k = block_diff(isp);
	if (k >= 0) {
		uint8_t got = (uint16_t)k < io->reply_len ? io->reply[k] : 0;
		isp_fail(
		    isp, STM32_ISP_E_VERIFY, "verify failed at 0x%08lx: wrote 0x%02x, read 0x%02x",
		    (unsigned long)(io->addr + (uint32_t)k), isp_ring_at(isp, (uint32_t)k), got);
		return;
	}
	isp->st.bytes_verified += isp->blk_len;
	block_done(isp);
}

static void done_go(struct stm32_isp *isp, enum isp_result r)
{
	char s[40];
	if (r != R_OK) {
		snprintf(s, sizeof(s), "GO 0x%08lx", (unsigned long)isp->io.addr);
		retry_or_fail(isp, r, s);
		return;
	}
	isp->hal->gpio_set(isp->ctx, HAL_PIN_BOOT0, 0);
	snprintf(s, sizeof(s), "started at 0x%08lx", (unsigned long)isp->io.addr);
	done(isp, s);
}

/* A re-sync probe's answer: a NACK starts the quiet wait; no answer, or an ACK (late, or the
 * 0xFF completed a frame), sends the next 0xFF. */
static void done_resync(struct stm32_isp *isp, enum isp_result r)
{
	if (r == R_OK && isp->io.nacked) {
		/* synced once nothing else arrives for a few byte times */
		isp->resync_quiet = 1;
		isp->quiet_dropped = isp->dropped;
		isp_start_timer(isp, resync_quiet_ms(isp));
		return;
	}
	if (++isp->probes >= PROBE_MAX) {
		if (isp->resync_is_sync)
			isp_fail(isp, STM32_ISP_E_NO_SYNC,
			         "no answer to 0x7F nor 0xFF at %lu baud 8E1 (is the chip in its "
			         "bootloader?)",
			         (unsigned long)isp->o.baud);
		else
			isp_fail(isp, STM32_ISP_E_TIMEOUT,
			         "no answer to %s nor to re-sync (link broken?); %lu bytes written",
			         isp->what, (unsigned long)isp->st.bytes_written);
		return;
	}
	isp_op_start(isp, OP_PROBE);
}

/* ------------------------------------------------------------------------------------ */
/* Timed steps: what happens when their timer expires                                   */
/* ------------------------------------------------------------------------------------ */

void isp_enter(struct stm32_isp *isp)
{
	if (isp->o.entry == STM32_ISP_ENTRY_PINS) {
		isp->hal->gpio_set(isp->ctx, HAL_PIN_BOOT0, 1);
		isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 0);
		isp->step = ST_RESET_LOW;
		isp_start_timer(isp, isp->o.reset_ms);
	} else {
		go_step(isp, ST_SYNC);
	}
}

static void timer_reset_low(struct stm32_isp *isp)
{
	isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 1);
	isp->step = ST_SETTLE;
	isp_start_timer(isp, isp->o.settle_ms);
}

static void timer_sync(struct stm32_isp *isp)
{
	go_step(isp, ST_SYNC);
}

static void timer_run_reset(struct stm32_isp *isp)
{
	isp->hal->gpio_set(isp->ctx, HAL_PIN_NRST, 1);
	done(isp, "reset into the application");
}

static void timer_drain(struct stm32_isp *isp)
{
	if (isp->hal->uart_tx_pending(isp->ctx) == 0 ||
	    hal_time_reached(isp_now(isp), isp->drain_end))
		isp_enter(isp);
	else
		isp_start_timer(isp, 1);
}

/* Re-sync: the quiet wait after a NACKed probe ended (nothing arrived: synced, resume; else
 * probe again), or the first wait (QUIET_MS) ended: purge and probe. */
static void timer_resync(struct stm32_isp *isp)
{
	if (isp->resync_quiet) {
		isp->resync_quiet = 0;
		if (isp->dropped == isp->quiet_dropped) {
			isp_logf(isp, HAL_LOG_DEBUG, "stm32_isp: re-synced after %u byte(s)",
			         (unsigned)isp->probes + 1);
			if (isp->resync_is_sync) {
				isp->resync_is_sync = 0;
				isp_set_state(isp, STM32_ISP_IDENTIFYING);
				go_step(isp, ST_GET);
				return;
			}
			isp->step = isp->resume;
			run_step(isp);
			return;
		}
		/* more bytes after the NACK: answers were still queued */
		if (++isp->probes >= PROBE_MAX) {
			isp_fail(isp,
			         isp->resync_is_sync ? STM32_ISP_E_NO_SYNC : STM32_ISP_E_TIMEOUT,
			         "no quiet re-sync after %s (noise on the line?)", isp->what);
			return;
		}
	} else {
		isp_purge_rx(isp);
	}
	isp_op_start(isp, OP_PROBE);
}

/* ------------------------------------------------------------------------------------ */
/* The step table                                                                       */
/* ------------------------------------------------------------------------------------ */

/* A step: the state it shows (0: unchanged), then it starts with op (when start is NULL),
 * or start, or waits for its timer (neither). */
struct step_def {
	uint8_t state;                                            /* enum stm32_isp_state */
	uint8_t op;                                               /* enum isp_op */
	void (*start)(struct stm32_isp *isp);                     /* NULL: op, or timer */
	void (*result)(struct stm32_isp *isp, enum isp_result r); /* its command ended */
	void (*timer)(struct stm32_isp *isp);                     /* its timer expired */
};

static const struct step_def steps[ST_COUNT] = {
    [ST_RESET_LOW] = {0, OP_NONE, NULL, NULL, timer_reset_low},
    [ST_SETTLE] = {0, OP_NONE, NULL, NULL, timer_sync},
    [ST_REBOOT] = {0, OP_NONE, NULL, NULL, timer_sync},
    [ST_SYNC] = {0, OP_NONE, start_sync, done_sync, NULL},
    [ST_GET] = {0, OP_GET, NULL, done_get, NULL},
    [ST_GVR] = {0, OP_GVR, NULL, done_gvr, NULL},
    [ST_GID] = {0, OP_GID, NULL, done_gid, NULL},
    [ST_RDP_PROBE] = {0, OP_NONE, start_rdp_probe, done_rdp_probe, NULL},
    [ST_FSIZE] = {0, OP_NONE, start_fsize, done_fsize, NULL},
    [ST_RUNPROT] = {STM32_ISP_UNPROTECTING, OP_RUNPROT, NULL, done_runprot, NULL},
    [ST_WUNPROT] = {STM32_ISP_UNPROTECTING, OP_WUNPROT, NULL, done_wunprot, NULL},
    [ST_MASS] = {STM32_ISP_ERASING, OP_NONE, start_mass, done_mass, NULL},
    [ST_BLOCK] = {0, OP_NONE, isp_do_block, NULL, NULL},
    [ST_ERASE] = {STM32_ISP_ERASING, OP_ERASE, NULL, done_erase, NULL},
    [ST_WRITE] = {STM32_ISP_WRITING, OP_NONE, start_write, done_write, NULL},
    [ST_WCHECK] = {0, OP_NONE, start_read_block, done_wcheck, NULL},
    [ST_VERIFY] = {STM32_ISP_VERIFYING, OP_NONE, start_read_block, done_verify, NULL},
    [ST_GO] = {0, OP_NONE, start_go, done_go, NULL},
    [ST_RUN_RESET] = {0, OP_NONE, NULL, NULL, timer_run_reset},
    [ST_DRAIN] = {0, OP_NONE, NULL, NULL, timer_drain},
    [ST_RESYNC] = {0, OP_NONE, NULL, done_resync, timer_resync},
};

static const struct step_def *step_def(const struct stm32_isp *isp)
{
	assert(isp->step >= 0 && isp->step < ST_COUNT);
	return &steps[isp->step];
}

/* Start the current step (timer-driven steps start with their timer). */
static void run_step(struct stm32_isp *isp)
{
	const struct step_def *s = step_def(isp);
	if (s->state)
		isp_set_state(isp, (enum stm32_isp_state)s->state);
	if (s->start)
		s->start(isp);
	else if (s->op != OP_NONE)
		isp_op_start(isp, (enum isp_op)s->op);
}

void isp_on_op(struct stm32_isp *isp, enum isp_result r)
{
	const struct step_def *s = step_def(isp);
	if (s->result)
		s->result(isp, r);
}

void isp_on_timer(struct stm32_isp *isp)
{
	isp->timer_on = 0;
	const struct step_def *s = step_def(isp);
	if (s->timer)
		s->timer(isp);
}
