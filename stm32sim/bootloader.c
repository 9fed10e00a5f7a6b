/* SPDX-License-Identifier: MIT */
/*
 * stm32sim bootloader: the STM32's USART bootloader as ST AN3155 "USART protocol used in the
 * STM32 bootloader" describes it (section 2: autobaud, ACK and NACK; section 3: one
 * subsection per command, each handled by one function below) on the memory map of the
 * chip's model. Erase and program take the model's times (README.md "Timing table").
 */
#include "stm32sim_int.h"

#include <assert.h>
#include <string.h>

/* ---- memory map, erase and program operations ---- */

enum region { R_NONE, R_FLASH, R_RAM, R_OPT, R_SYS, R_FSIZE };

/* Region holding [addr, addr+len) entirely, R_NONE if none. */
static enum region region_of(const struct stm32sim *s, uint32_t addr, uint32_t len)
{
	const struct model *m = s->m;
	uint64_t a = addr, e = (uint64_t)addr + len;
	if (m->fsize_addr && a >= m->fsize_addr && e <= (uint64_t)m->fsize_addr + 2)
		return R_FSIZE;
	if (a >= m->info.flash_base && e <= (uint64_t)m->info.flash_base + m->info.flash_size)
		return R_FLASH;
	if (a >= m->info.ram_base && e <= (uint64_t)m->info.ram_base + m->info.ram_size)
		return R_RAM;
	if (a >= m->opt_base && e <= (uint64_t)m->opt_base + m->opt_size)
		return R_OPT;
	if (a >= m->sys_base && e <= (uint64_t)m->sys_base + m->sys_size)
		return R_SYS;
	return R_NONE;
}

static void mem_read(const struct stm32sim *s, uint32_t addr, uint8_t *out, uint32_t len)
{
	const struct model *m = s->m;
	switch (region_of(s, addr, len)) {
	case R_FLASH:
		memcpy(out, s->flash + (addr - m->info.flash_base), len);
		break;
	case R_RAM:
		memcpy(out, s->ram + (addr - m->info.ram_base), len);
		break;
	case R_OPT:
		memcpy(out, s->optb + (addr - m->opt_base), len);
		break;
	case R_FSIZE: { /* 16-bit little-endian KiB */
		uint16_t kib =
		    s->opt.fsize_kib ? s->opt.fsize_kib : (uint16_t)(m->info.flash_size / KIB);
		uint8_t v[2] = {(uint8_t)kib, (uint8_t)(kib >> 8)};
		memcpy(out, v + (addr - m->fsize_addr), len);
		break;
	}
	default: /* system memory: the ROM is not modelled, reads as zeros */
		memset(out, 0, len);
		break;
	}
}

static int wp_touches(const struct stm32sim *s, uint32_t off, uint32_t len)
{
	uint32_t p0 = sim_page_of(s->m, off), p1 = sim_page_of(s->m, off + len - 1);
	for (uint32_t p = p0; p <= p1; p++)
		if (s->wp[p / 8] & (1u << (p % 8)))
			return 1;
	return 0;
}

static void erase_page(struct stm32sim *s, uint32_t p)
{
	uint32_t off = sim_page_offset(s->m, p), sz = sim_page_size(s->m, p);
	memset(s->flash + off, 0xFF, sz);
	sim_mark_dirty(s, off, sz);
}

static void start_op(struct stm32sim *s, uint64_t t, enum op_kind op, uint64_t dur_ns)
{
	if (op == OP_ERASE_PAGES || op == OP_ERASE_MASS || op == OP_UNPROTECT)
		dur_ns *= s->opt.erase_slowdown ? s->opt.erase_slowdown : 1;
	if (s->opt.busy_ms && !s->opt.instant)
		s->busy_at = t + (uint64_t)s->opt.busy_ms * 1000000ull;
	s->op = op;
	s->op_end = t + (s->opt.instant ? 0 : dur_ns);
	s->bl = BL_BUSY;
}

void sim_bl_op_done(struct stm32sim *s)
{
	uint64_t t = s->op_end;
	enum op_kind op = s->op;
	const struct stm32sim_model_info *mi = &s->m->info;
	s->op = OP_NONE;
	s->bl = BL_CMD;
	switch (op) {
	case OP_WRITE: {
		enum region r = region_of(s, s->wr_addr, s->wr_len);
		if (r == R_FLASH) {
			uint32_t off = s->wr_addr - mi->flash_base;
			for (uint32_t i = 0; i < s->wr_len; i++)
				s->flash[off + i] &= s->fb[i]; /* NOR flash: program clears bits */
			sim_mark_dirty(s, off, s->wr_len);
			stm32sim_sync(s);
		} else if (r == R_RAM) {
			memcpy(s->ram + (s->wr_addr - mi->ram_base), s->fb, s->wr_len);
		} else if (r == R_OPT) {
			memcpy(s->optb + (s->wr_addr - s->m->opt_base), s->fb, s->wr_len);
			s->reset_after_tx = 1; /* AN3155 3.6: option byte write resets */
		}
		s->stats.writes++;
		sim_tx(s, t, AN3155_ACK);
		break;
	}
	case OP_ERASE_PAGES:
		if (s->cmd == AN3155_ERASE)
			s->stats.erase_cmds++;
		else
			s->stats.ext_erase_cmds++;
		for (uint32_t p = 0; p < mi->npages; p++)
			if (s->pages[p / 8] & (1u << (p % 8))) {
				erase_page(s, p);
				s->stats.units_erased++;
			}
		stm32sim_sync(s);
		sim_tx(s, t, AN3155_ACK);
		break;
	case OP_ERASE_MASS:
	case OP_UNPROTECT:
		s->stats.mass_erases++;
		if (op == OP_ERASE_MASS && s->cmd == AN3155_ERASE)
			s->stats.erase_cmds++;
		else if (op == OP_ERASE_MASS)
			s->stats.ext_erase_cmds++;
		else
			s->stats.unprotects++;
		memset(s->flash, 0xFF, mi->flash_size);
		sim_mark_dirty(s, 0, mi->flash_size);
		stm32sim_sync(s);
		sim_tx(s, t, AN3155_ACK);
		if (op == OP_UNPROTECT) {
			s->rdp = 0;
			memset(s->wp, 0, sizeof(s->wp));
			s->reset_after_tx = 1;
		}
		break;
	case OP_ACK_RESET:
		if (s->cmd == AN3155_WRITE_UNPROTECT)
			s->stats.unprotects++;
		sim_tx(s, t, AN3155_ACK);
		s->reset_after_tx = 1;
		break;
	case OP_NONE:
		break;
	}
}

static void nack(struct stm32sim *s, uint64_t t)
{
	sim_tx(s, t, AN3155_NACK);
	s->stats.nacks++;
	s->inj_pending = 0;
	s->bl = BL_CMD;
}

/* Test hook: 1 if this acknowledgement of the current command must be a NACK. */
static int inj_hit(struct stm32sim *s)
{
	if (s->inj_pending && --s->inj_pending == 0) {
		s->stats.injected++;
		return 1;
	}
	return 0;
}

/* ---- AN3155 section 3: one function per command ---- */

static int cmd_supported(const struct stm32sim *s, uint8_t c)
{
	switch (c) {
	case AN3155_GET:
	case AN3155_GET_VERSION:
	case AN3155_GET_ID:
	case AN3155_READ_MEMORY:
	case AN3155_GO:
	case AN3155_WRITE_MEMORY:
	case AN3155_WRITE_PROTECT:
	case AN3155_WRITE_UNPROTECT:
	case AN3155_READOUT_PROTECT:
	case AN3155_READOUT_UNPROTECT:
		return 1;
	case AN3155_ERASE:
	case AN3155_EXTENDED_ERASE:
		return c == s->m->info.erase_cmd;
	default:
		return 0;
	}
}

/* With readout protection active these are refused after the command byte (AN3155
 * 3.4-3.11); GET, GET VERSION, GET ID and READOUT UNPROTECT still work. */
static int rdp_refuses(uint8_t c)
{
	return c == AN3155_READ_MEMORY || c == AN3155_GO || c == AN3155_WRITE_MEMORY ||
	       c == AN3155_ERASE || c == AN3155_EXTENDED_ERASE || c == AN3155_WRITE_PROTECT ||
	       c == AN3155_WRITE_UNPROTECT || c == AN3155_READOUT_PROTECT;
}

/* GET (3.1): N = 11, the version, the commands (the model's erase command after WRITE
 * MEMORY), ACK. */
static void bl_get(struct stm32sim *s, uint64_t t)
{
	const struct stm32sim_model_info *mi = &s->m->info;
	const uint8_t cmds[] = {AN3155_GET,
	                        AN3155_GET_VERSION,
	                        AN3155_GET_ID,
	                        AN3155_READ_MEMORY,
	                        AN3155_GO,
	                        AN3155_WRITE_MEMORY,
	                        mi->erase_cmd,
	                        AN3155_WRITE_PROTECT,
	                        AN3155_WRITE_UNPROTECT,
	                        AN3155_READOUT_PROTECT,
	                        AN3155_READOUT_UNPROTECT};
	uint8_t r[2 + sizeof(cmds) + 1];
	r[0] = sizeof(cmds);
	r[1] = mi->bl_version;
	memcpy(r + 2, cmds, sizeof(cmds));
	r[sizeof(r) - 1] = AN3155_ACK;
	sim_tx_buf(s, t, r, sizeof(r));
}

/* GET VERSION & READ PROTECTION STATUS (3.2): version, two option bytes (0), ACK. */
static void bl_get_version(struct stm32sim *s, uint64_t t)
{
	uint8_t r[4] = {s->m->info.bl_version, 0x00, 0x00, AN3155_ACK};
	sim_tx_buf(s, t, r, sizeof(r));
}

/* GET ID (3.3): N = 1, the PID (big-endian), ACK. */
static void bl_get_id(struct stm32sim *s, uint64_t t)
{
	uint16_t pid = s->m->info.pid;
	uint8_t r[4] = {0x01, (uint8_t)(pid >> 8), (uint8_t)pid, AN3155_ACK};
	sim_tx_buf(s, t, r, sizeof(r));
}

/* GO (3.5), after the address's ACK: jump to a in region r. */
static void bl_go(struct stm32sim *s, uint64_t t, uint32_t a, enum region r)
{
	s->stats.gos++;
	s->bl = BL_CMD;
	if (r == R_RAM) {
		/* code in RAM is not executed; stm32flash's -R stub requests a system reset,
		 * which is what happens */
		s->reset_after_tx = 1;
	} else {
		sim_app_start(s, t, a - s->m->info.flash_base);
	}
}

/* READ MEMORY (3.4), GO (3.5), WRITE MEMORY (3.6): the address frame they share, 4 bytes
 * big-endian + XOR. WRITE MEMORY wants a word-aligned address outside system memory, GO
 * one in flash or RAM. */
static void bl_address(struct stm32sim *s, uint64_t t, uint8_t b)
{
	s->fb[s->fb_len++] = b;
	if (s->fb_len < 5)
		return;
	uint8_t x = s->fb[0] ^ s->fb[1] ^ s->fb[2] ^ s->fb[3];
	uint32_t a = (uint32_t)s->fb[0] << 24 | s->fb[1] << 16 | s->fb[2] << 8 | s->fb[3];
	enum region r = region_of(s, a, 1);
	int ok = x == s->fb[4] && r != R_NONE;
	if (s->cmd == AN3155_WRITE_MEMORY)
		ok = ok && !(a & 3) && r != R_SYS && r != R_FSIZE;
	if (s->cmd == AN3155_GO)
		ok = ok && (r == R_FLASH || r == R_RAM);
	if (!ok || inj_hit(s)) {
		nack(s, t);
		return;
	}
	s->addr = a;
	sim_tx(s, t, AN3155_ACK);
	if (s->cmd == AN3155_READ_MEMORY) {
		s->bl = BL_RD_N;
		s->fb_len = 0;
	} else if (s->cmd == AN3155_WRITE_MEMORY) {
		s->bl = BL_WR_N;
	} else {
		bl_go(s, t, a, r);
	}
}

/* READ MEMORY (3.4) after the address: N and ~N; then ACK and N+1 bytes. */
static void bl_read_memory(struct stm32sim *s, uint64_t t, uint8_t b)
{
	s->fb[s->fb_len++] = b;
	if (s->fb_len < 2)
		return;
	uint32_t n = (uint32_t)s->fb[0] + 1;
	if ((uint8_t)(s->fb[1] ^ s->fb[0]) != 0xFF || region_of(s, s->addr, n) == R_NONE ||
	    inj_hit(s)) {
		nack(s, t);
		return;
	}
	uint8_t data[256];
	mem_read(s, s->addr, data, n);
	s->stats.reads++;
	sim_tx(s, t, AN3155_ACK);
	sim_tx_buf(s, t, data, n);
	s->bl = BL_CMD;
}

/* WRITE MEMORY (3.6) after the address: N, N+1 bytes, XOR checksum; ACK once programmed
 * (flash: the model's time per programming unit; option bytes: OPT_PROG_NS, then reset). */
static void bl_write_memory(struct stm32sim *s, uint64_t t, uint8_t b)
{
	const struct stm32sim_model_info *mi = &s->m->info;
	switch (s->bl) {
	case BL_WR_N:
		s->count = (uint32_t)b + 1;
		s->xr = b;
		s->fb_len = 0;
		s->bl = BL_WR_DATA;
		return;
	case BL_WR_DATA:
		s->fb[s->fb_len++] = b;
		s->xr ^= b;
		if (s->fb_len == s->count)
			s->bl = BL_WR_CSUM;
		return;
	case BL_WR_CSUM:
		break;
	default:
		assert(0 && "not a WRITE MEMORY state");
		return;
	}
	uint32_t n = s->count;
	while (n % 4) /* pad to a whole word with 0xFF (flash: leaves bits as they are) */
		s->fb[n++] = 0xFF;
	enum region r = region_of(s, s->addr, n);
	if (b != s->xr || r == R_NONE || r == R_SYS || r == R_FSIZE ||
	    (r == R_FLASH && wp_touches(s, s->addr - mi->flash_base, n)) || inj_hit(s)) {
		nack(s, t);
		return;
	}
	s->wr_addr = s->addr;
	s->wr_len = n;
	uint64_t dur = 0;
	if (r == R_FLASH)
		dur = (uint64_t)(n / mi->prog_unit + (n % mi->prog_unit != 0)) * mi->prog_unit_ns;
	else if (r == R_OPT)
		dur = OPT_PROG_NS;
	start_op(s, t, OP_WRITE, dur);
}

/* 1 if any erase unit is write-protected (a mass erase is then refused). */
static int any_write_protected(const struct stm32sim *s)
{
	int protected = 0;
	for (size_t i = 0; i < sizeof(s->wp); i++)
	protected |= s->wp[i];
	return protected != 0;
}

/* ERASE / EXTENDED ERASE mass erase once its code and checksum arrived (ok: both right). */
static void mass_erase(struct stm32sim *s, uint64_t t, int ok)
{
	if (!ok || any_write_protected(s) || inj_hit(s))
		nack(s, t);
	else
		start_op(s, t, OP_ERASE_MASS, (uint64_t)s->m->info.mass_erase_us * 1000);
}

/* A list of n erase units (ERASE, EXTENDED ERASE, WRITE PROTECT) begins. */
static void unit_list_begin(struct stm32sim *s, uint32_t n)
{
	s->count = n;
	s->bad = 0;
	memset(s->pages, 0, sizeof(s->pages));
}

/* Page p of an ERASE / EXTENDED ERASE list: one out of range or write-protected fails the
 * command at its checksum. Returns 1 after the last page of the list. */
static int erase_list_page(struct stm32sim *s, uint32_t p)
{
	if (p >= s->m->info.npages || (s->wp[p / 8] & (1u << (p % 8))))
		s->bad = 1;
	else
		s->pages[p / 8] |= (uint8_t)(1u << (p % 8));
	return --s->count == 0;
}

/* The checksum b closing an ERASE / EXTENDED ERASE list: erase the listed units (the sum
 * of their erase times), then ACK; or NACK. */
static void erase_list_end(struct stm32sim *s, uint64_t t, uint8_t b)
{
	if (b != s->xr || s->bad || inj_hit(s)) {
		nack(s, t);
		return;
	}
	uint64_t dur = 0;
	for (uint32_t p = 0; p < s->m->info.npages; p++)
		if (s->pages[p / 8] & (1u << (p % 8)))
			dur += (uint64_t)sim_page_erase_us(s->m, p) * 1000;
	start_op(s, t, OP_ERASE_PAGES, dur);
}

/* ERASE (3.7) after its ACK: 0xFF 0x00 (global erase), or N, N+1 page numbers, XOR. */
static void bl_erase(struct stm32sim *s, uint64_t t, uint8_t b)
{
	switch (s->bl) {
	case BL_ER_N:
		if (b == 0xFF) {
			s->bl = BL_ER_GLOBAL;
			return;
		}
		s->xr = b;
		unit_list_begin(s, (uint32_t)b + 1);
		s->bl = BL_ER_PAGES;
		return;
	case BL_ER_GLOBAL:
		mass_erase(s, t, b == 0x00);
		return;
	case BL_ER_PAGES:
		s->xr ^= b;
		if (erase_list_page(s, b))
			s->bl = BL_ER_CSUM;
		return;
	case BL_ER_CSUM:
		erase_list_end(s, t, b);
		return;
	default:
		assert(0 && "not an ERASE state");
		return;
	}
}

/* EXTENDED ERASE (3.8) after its ACK: N (16 bits) and either a checksum (special N) or N+1
 * 16-bit page numbers and a checksum. */
static void bl_extended_erase(struct stm32sim *s, uint64_t t, uint8_t b)
{
	switch (s->bl) {
	case BL_EE_N:
		s->fb[s->fb_len++] = b;
		if (s->fb_len < 2)
			return;
		s->ee_n = (uint16_t)(s->fb[0] << 8 | s->fb[1]);
		s->xr = s->fb[0] ^ s->fb[1];
		s->fb_len = 0;
		if (s->ee_n >= 0xFFF0) {
			s->bl = BL_EE_SCSUM;
		} else {
			unit_list_begin(s, (uint32_t)s->ee_n + 1);
			s->bl = BL_EE_PAGES;
		}
		return;
	case BL_EE_SCSUM:
		/* 0xFFFF mass erase; 0xFFFE/0xFFFD bank erase: these models are single-bank
		 * so those are refused, as are the reserved codes (AN3155 3.8). */
		mass_erase(s, t, b == s->xr && s->ee_n == 0xFFFF);
		return;
	case BL_EE_PAGES:
		s->xr ^= b;
		s->fb[s->fb_len++] = b;
		if (s->fb_len < 2)
			return;
		s->fb_len = 0;
		if (erase_list_page(s, (uint32_t)s->fb[0] << 8 | s->fb[1]))
			s->bl = BL_EE_CSUM;
		return;
	case BL_EE_CSUM:
		erase_list_end(s, t, b);
		return;
	default:
		assert(0 && "not an EXTENDED ERASE state");
		return;
	}
}

/* WRITE PROTECT (3.9) after its ACK: N, N+1 sector codes (taken as erase-unit numbers),
 * XOR; ACK after the option-byte write, then the chip resets. */
static void bl_write_protect(struct stm32sim *s, uint64_t t, uint8_t b)
{
	switch (s->bl) {
	case BL_WP_N:
		s->xr = b;
		unit_list_begin(s, (uint32_t)b + 1);
		s->bl = BL_WP_SECT;
		return;
	case BL_WP_SECT:
		s->xr ^= b;
		if (b >= s->m->info.npages)
			s->bad = 1;
		else
			s->pages[b / 8] |= (uint8_t)(1u << (b % 8));
		if (--s->count == 0)
			s->bl = BL_WP_CSUM;
		return;
	case BL_WP_CSUM:
		if (b != s->xr || s->bad) {
			nack(s, t);
			return;
		}
		for (size_t i = 0; i < sizeof(s->wp); i++)
			s->wp[i] |= s->pages[i];
		start_op(s, t, OP_ACK_RESET, OPT_PROG_NS);
		return;
	default:
		assert(0 && "not a WRITE PROTECT state");
		return;
	}
}

/* WRITE UNPROTECT (3.10): ACK, option-byte write, ACK, reset. */
static void bl_write_unprotect(struct stm32sim *s, uint64_t t)
{
	memset(s->wp, 0, sizeof(s->wp));
	start_op(s, t, OP_ACK_RESET, OPT_PROG_NS);
}

/* READOUT PROTECT (3.11): ACK, option-byte write, ACK, reset. */
static void bl_readout_protect(struct stm32sim *s, uint64_t t)
{
	s->rdp = 1;
	start_op(s, t, OP_ACK_RESET, OPT_PROG_NS);
}

/* READOUT UNPROTECT (3.12): ACK, mass erase, ACK, reset. */
static void bl_readout_unprotect(struct stm32sim *s, uint64_t t)
{
	start_op(s, t, OP_UNPROTECT, (uint64_t)s->m->info.mass_erase_us * 1000);
}

/* After a valid command byte and complement (AN3155 section 3): the test hook's NACK,
 * NACK for an unknown command or one readout protection refuses, else ACK and the
 * command's first step. */
static void bl_command(struct stm32sim *s, uint64_t t)
{
	uint8_t c = s->cmd;
	s->stats.commands++;
	s->inj_pending = 0;
	if (s->inj_left && --s->inj_left == 0) {
		if (s->inj_stage == 0) {
			s->stats.injected++;
			nack(s, t);
			return;
		}
		s->inj_pending = s->inj_stage;
	}
	if (!cmd_supported(s, c) || (s->rdp && rdp_refuses(c))) {
		nack(s, t);
		return;
	}
	sim_tx(s, t, AN3155_ACK);
	s->bl = BL_CMD;
	switch (c) {
	case AN3155_GET:
		bl_get(s, t);
		break;
	case AN3155_GET_VERSION:
		bl_get_version(s, t);
		break;
	case AN3155_GET_ID:
		bl_get_id(s, t);
		break;
	case AN3155_READ_MEMORY:
	case AN3155_GO:
	case AN3155_WRITE_MEMORY:
		s->bl = BL_ADDR;
		s->fb_len = 0;
		break;
	case AN3155_ERASE:
		s->bl = BL_ER_N;
		break;
	case AN3155_EXTENDED_ERASE:
		s->bl = BL_EE_N;
		s->fb_len = 0;
		break;
	case AN3155_WRITE_PROTECT:
		s->bl = BL_WP_N;
		break;
	case AN3155_WRITE_UNPROTECT:
		bl_write_unprotect(s, t);
		break;
	case AN3155_READOUT_PROTECT:
		bl_readout_protect(s, t);
		break;
	case AN3155_READOUT_UNPROTECT:
		bl_readout_unprotect(s, t);
		break;
	}
}

void sim_bl_byte(struct stm32sim *s, uint64_t t, uint8_t b)
{
	s->last_rx = t;
	switch (s->bl) {
	case BL_SYNC:
	case BL_BUSY:
		break; /* handled by the caller */
	case BL_CMD:
		s->cmd = b;
		s->bl = BL_CMDX;
		break;
	case BL_CMDX:
		if ((uint8_t)(b ^ s->cmd) != 0xFF)
			nack(s, t);
		else
			bl_command(s, t);
		break;
	case BL_ADDR:
		bl_address(s, t, b);
		break;
	case BL_RD_N:
		bl_read_memory(s, t, b);
		break;
	case BL_WR_N:
	case BL_WR_DATA:
	case BL_WR_CSUM:
		bl_write_memory(s, t, b);
		break;
	case BL_ER_N:
	case BL_ER_GLOBAL:
	case BL_ER_PAGES:
	case BL_ER_CSUM:
		bl_erase(s, t, b);
		break;
	case BL_EE_N:
	case BL_EE_SCSUM:
	case BL_EE_PAGES:
	case BL_EE_CSUM:
		bl_extended_erase(s, t, b);
		break;
	case BL_WP_N:
	case BL_WP_SECT:
	case BL_WP_CSUM:
		bl_write_protect(s, t, b);
		break;
	}
}

/* ---- AN3155 section 2: autobaud, then bytes into the USART ---- */

/* Bootloader is still pushing its reply into the USART or running an operation. */
static uint64_t bl_ready_at(const struct stm32sim *s)
{
	uint64_t r = s->out_last_start;
	if (s->op != OP_NONE && s->op_end > r)
		r = s->op_end;
	return r;
}

/* Autobaud (AN2606/AN2662 2.1): the bootloader times the 0x7F frame sent as 8E1, then runs
 * its USART at that baud, 8E1. Below 1200 baud its timer overflows (AN2662 2.3). */
static void bl_autobaud(struct stm32sim *s, uint64_t t, const struct wbyte *w)
{
	uint8_t dec[DEC_MAX];
	struct stm32sim_line l = {w->line.baud, 8, 'E', 1};
	if (w->line.baud < 1200)
		return;
	if (sim_rx_decode(s, w, &l, dec) != 1 || dec[0] != AN3155_SYNC)
		return;
	s->chip = l;
	sim_tx(s, t, AN3155_ACK);
	s->bl = BL_CMD;
	s->last_rx = t;
}

void sim_bl_rx(struct stm32sim *s, uint64_t t, const struct wbyte *w)
{
	uint8_t dec[DEC_MAX];
	if (s->bl == BL_SYNC) {
		bl_autobaud(s, t, w);
		return;
	}
	unsigned n = sim_rx_decode(s, w, &s->chip, dec);
	for (unsigned i = 0; i < n; i++) {
		if (t < bl_ready_at(s) || s->rdr_full) {
			/* busy: one byte waits in the data register, others overrun */
			if (!s->rdr_full) {
				s->rdr_full = 1;
				s->rdr = dec[i];
			}
			continue;
		}
		sim_bl_byte(s, t, dec[i]);
	}
}
