/* SPDX-License-Identifier: MIT */
/*
 * stm32sim: the simulated STM32 (API: stm32sim.h; what is simulated, the model table and the
 * timing table with their sources: README.md). This file holds the models, the flash file,
 * the pins, the user application and the event loop; wire.c the UART line and bootloader.c
 * the AN3155 bootloader. Memory layout and what unmodified stm32flash 0.7 sends follow
 * stm32flash 0.7's source (dev_table.c: PIDs 0x410, 0x413, 0x468; stm32.c).
 */
#include "stm32sim_int.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- Models and THE TIMING TABLE (erase/program times, see README.md) ---- */

/* F407 sectors (RM0090 section 3.3 table 5): 4x16 KiB, 1x64 KiB, 7x128 KiB. */
static const uint32_t f407_sector_size[12] = {16 * KIB,  16 * KIB,  16 * KIB,  16 * KIB,
                                              64 * KIB,  128 * KIB, 128 * KIB, 128 * KIB,
                                              128 * KIB, 128 * KIB, 128 * KIB, 128 * KIB};
/* F407 sector erase times (us): DS8626 "Flash memory programming" typical values,
 * rounded: 16 KiB 0.4 s, 64 KiB 1.1 s, 128 KiB 2 s; mass erase 8 s. */
static const uint32_t f407_sector_erase_us[12] = {400000,  400000,  400000,  400000,
                                                  1100000, 2000000, 2000000, 2000000,
                                                  2000000, 2000000, 2000000, 2000000};

static const struct model models[] = {
    {
        /* DS5319 table "Flash memory characteristics": tPROG 16-bit 52.5 us typ,
         * tERASE page 20..40 ms, tME 20..40 ms. RM0008: 1 KiB pages, 128 pages. */
        .info = {"stm32f103", "STM32F103 (medium density)", 0x410, 0x22, AN3155_ERASE, 0x08000000,
                 128 * KIB, 0x20000000, 20 * KIB, 128, 20000, 2, 52500},
        .page_size = 1 * KIB,
        .page_erase_us = 20000,
        .opt_base = 0x1FFFF800,
        .opt_size = 16,
        .sys_base = 0x1FFFF000,
        .sys_size = 2 * KIB,
        .fsize_addr = 0x1FFFF7E0, /* RM0008 "Flash size register" */
        /* RM0008 section 4.7: RDP=0xA5 (unprotected), every byte followed by its
         * complement; USER 0xFF, data 0xFF, WRP 0xFF (no write protection). */
        .opt_default = {0xA5, 0x5A, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00, 0xFF, 0x00,
                        0xFF, 0x00, 0xFF, 0x00},
    },
    {
        /* DS8626: word (x32) programming 16 us typ; erase times in the table above. */
        .info = {"stm32f407", "STM32F407 (1 MiB)", 0x413, 0x31, AN3155_EXTENDED_ERASE, 0x08000000,
                 1024 * KIB, 0x20000000, 128 * KIB, 12, 8000000, 4, 16000},
        .sector_size = f407_sector_size,
        .sector_erase_us = f407_sector_erase_us,
        .opt_base = 0x1FFFC000,
        .opt_size = 16,
        .sys_base = 0x1FFF0000,
        .sys_size = 30 * KIB,
        /* RM0090 section 3.6.1: USER/RDP word (RDP 0xAA = level 0), nWRP all set. */
        .opt_default = {0xEC, 0xAA, 0x13, 0x55, 0xFF, 0x0F, 0x00, 0xF0, 0xFF, 0xFF, 0xFF, 0xFF,
                        0xFF, 0xFF, 0xFF, 0xFF},
    },
    {
        /* DS12589 "Flash memory characteristics": 64-bit programming 81.7 us typ,
         * page (2 KiB) erase 22 ms typ, mass erase 22 ms typ. RM0440: 64 pages. */
        .info = {"stm32g431", "STM32G431 (128 KiB)", 0x468, 0x31, AN3155_EXTENDED_ERASE, 0x08000000,
                 128 * KIB, 0x20000000, 32 * KIB, 64, 22000, 8, 81700},
        .page_size = 2 * KIB,
        .page_erase_us = 22000,
        .opt_base = 0x1FFF7800,
        .opt_size = 48,
        .sys_base = 0x1FFF0000,
        .sys_size = 28 * KIB,
        .fsize_addr = 0x1FFF75E0, /* RM0440 "Flash size data register" */
        /* RM0440 section 5.4: RDP 0xAA = level 0; the rest left erased. */
        .opt_default = {0xAA, 0xF8, 0xFF, 0xFF},
    },
};
#define NMODELS ((int)(sizeof(models) / sizeof(models[0])))

/* ---- Model helpers ---- */

int stm32sim_model_count(void)
{
	return NMODELS;
}

const struct stm32sim_model_info *stm32sim_model(int i)
{
	if (i < 0 || i >= NMODELS)
		return NULL;
	return &models[i].info;
}

const struct stm32sim_model_info *stm32sim_get_model(const struct stm32sim *s)
{
	return &s->m->info;
}

static const struct model *model_of(const struct stm32sim_model_info *mi)
{
	for (int i = 0; i < NMODELS; i++)
		if (&models[i].info == mi)
			return &models[i];
	return NULL;
}

int stm32sim_model_page(const struct stm32sim_model_info *mi, uint32_t page, uint32_t *size,
                        uint32_t *erase_us)
{
	const struct model *m = model_of(mi);
	if (!m || page >= mi->npages)
		return -EINVAL;
	if (m->sector_size) {
		*size = m->sector_size[page];
		*erase_us = m->sector_erase_us[page];
	} else {
		*size = m->page_size;
		*erase_us = m->page_erase_us;
	}
	return 0;
}

uint32_t sim_page_offset(const struct model *m, uint32_t page)
{
	if (!m->sector_size)
		return page * m->page_size;
	uint32_t off = 0;
	for (uint32_t i = 0; i < page; i++)
		off += m->sector_size[i];
	return off;
}

uint32_t sim_page_size(const struct model *m, uint32_t page)
{
	return m->sector_size ? m->sector_size[page] : m->page_size;
}

uint32_t sim_page_erase_us(const struct model *m, uint32_t page)
{
	return m->sector_size ? m->sector_erase_us[page] : m->page_erase_us;
}

uint32_t sim_page_of(const struct model *m, uint32_t off)
{
	if (!m->sector_size)
		return off / m->page_size;
	uint32_t p = 0, end = m->sector_size[0];
	while (off >= end && p + 1 < m->info.npages)
		end += m->sector_size[++p];
	return p;
}

static const struct model *find_model(const char *name)
{
	if (!name)
		return NULL;
	for (int i = 0; i < NMODELS; i++) {
		const char *n = models[i].info.name;
		if (!strcasecmp(name, n) || !strcasecmp(name, n + 5)) /* "f103" */
			return &models[i];
	}
	return NULL;
}

/* ---- Flash file ---- */

void sim_mark_dirty(struct stm32sim *s, uint32_t off, uint32_t len)
{
	if (s->dirty_hi <= s->dirty_lo) {
		s->dirty_lo = off;
		s->dirty_hi = off + len;
		return;
	}
	if (off < s->dirty_lo)
		s->dirty_lo = off;
	if (off + len > s->dirty_hi)
		s->dirty_hi = off + len;
}

int stm32sim_sync(struct stm32sim *s)
{
	if (!s || s->fd < 0 || s->dirty_hi <= s->dirty_lo)
		return 0;
	uint32_t off = s->dirty_lo, end = s->dirty_hi;
	while (off < end) {
		ssize_t r = pwrite(s->fd, s->flash + off, end - off, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (uint32_t)r;
	}
	s->dirty_lo = s->dirty_hi = 0;
	return 0;
}

static void errf(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int load_flash(struct stm32sim *s, const char *path, char *err, size_t errlen)
{
	uint32_t size = s->m->info.flash_size;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		errf(err, errlen, "flash file %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		errf(err, errlen, "flash file %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	s->fd = fd;
	if (st.st_size == 0) {
		sim_mark_dirty(s, 0, size); /* new file: all 0xFF */
		int r = stm32sim_sync(s);
		if (r < 0) {
			errf(err, errlen, "flash file %s: %s", path, strerror(-r));
			return -1;
		}
		return 0;
	}
	if ((uint64_t)st.st_size != size) {
		errf(err, errlen, "flash file %s is %lld bytes, but %s has %u bytes of flash", path,
		     (long long)st.st_size, s->m->info.name, size);
		return -1;
	}
	uint32_t off = 0;
	while (off < size) {
		ssize_t r = pread(fd, s->flash + off, size - off, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errf(err, errlen, "flash file %s: %s", path,
			     r < 0 ? strerror(errno) : "short read");
			return -1;
		}
		off += (uint32_t)r;
	}
	return 0;
}

/* ---- Lifecycle ---- */

static void chip_reset(struct stm32sim *s, uint64_t t);

struct stm32sim *stm32sim_new(const struct stm32sim_options *opt, uint64_t now_us, char *err,
                              size_t errlen)
{
	if (!opt) {
		errf(err, errlen, "no options");
		return NULL;
	}
	const struct model *m = find_model(opt->model ? opt->model : "stm32f103");
	if (!m) {
		errf(err, errlen, "unknown model '%s' (known: stm32f103, stm32f407, stm32g431)",
		     opt->model);
		return NULL;
	}
	size_t total = sizeof(struct stm32sim) + m->info.flash_size + m->info.ram_size;
	struct stm32sim *s = malloc(total);
	if (!s) {
		errf(err, errlen, "out of memory (%zu bytes)", total);
		return NULL;
	}
	memset(s, 0, sizeof(*s));
	s->m = m;
	s->opt = *opt;
	s->opt.flash_path = NULL; /* not kept: the caller owns the string */
	if (!s->opt.app_baud)
		s->opt.app_baud = 115200;
	s->fd = -1;
	s->flash = (uint8_t *)(s + 1);
	s->ram = s->flash + m->info.flash_size;
	memset(s->flash, 0xFF, m->info.flash_size);
	memset(s->ram, 0, m->info.ram_size);
	memset(s->optb, 0xFF, sizeof(s->optb));
	memcpy(s->optb, m->opt_default, m->opt_size);
	s->rdp = !!opt->rdp;
	for (uint64_t u = opt->wp_first; u < (uint64_t)opt->wp_first + opt->wp_count; u++)
		if (u < m->info.npages && u < 8 * sizeof(s->wp))
			s->wp[u / 8] |= (uint8_t)(1u << (u % 8));
	if (opt->flash_path && load_flash(s, opt->flash_path, err, errlen) < 0) {
		if (s->fd >= 0)
			close(s->fd);
		free(s);
		return NULL;
	}
	s->bridge = (struct stm32sim_line){115200, 8, 'N', 1};
	s->chip = s->bridge;
	uint64_t t = now_us * 1000ull;
	s->in_busy = s->out_busy = s->out_last_start = t;
	s->nrst = 1;
	s->boot0 = 0;
	chip_reset(s, t);
	sim_advance(s, t);
	return s;
}

void stm32sim_free(struct stm32sim *s)
{
	if (!s)
		return;
	stm32sim_sync(s);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}

enum stm32sim_state stm32sim_state(const struct stm32sim *s)
{
	return s->state;
}

const uint8_t *stm32sim_flash(const struct stm32sim *s, size_t *size)
{
	if (size)
		*size = s->m->info.flash_size;
	return s->flash;
}

static int vector_ok(const struct stm32sim *s, uint32_t off)
{
	const struct stm32sim_model_info *mi = &s->m->info;
	if ((uint64_t)off + 8 > mi->flash_size)
		return 0;
	const uint8_t *p = s->flash + off;
	uint32_t sp = p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
	uint32_t pc = p[4] | p[5] << 8 | p[6] << 16 | (uint32_t)p[7] << 24;
	return sp >= mi->ram_base && sp <= mi->ram_base + mi->ram_size && (pc & 1) &&
	       pc >= mi->flash_base && pc < mi->flash_base + mi->flash_size;
}

int stm32sim_flash_summary(const struct stm32sim *s, uint32_t *crc32_out, uint32_t *len_out)
{
	uint32_t len = s->m->info.flash_size;
	while (len > 0 && s->flash[len - 1] == 0xFF)
		len--;
	if (crc32_out)
		*crc32_out = (uint32_t)crc32(crc32(0L, Z_NULL, 0), s->flash, len);
	if (len_out)
		*len_out = len;
	return vector_ok(s, 0);
}

/* ---- Reset, boot, application ---- */

/* Enter reset at t: output not yet on the wire is lost, operations are abandoned. */
static void chip_reset(struct stm32sim *s, uint64_t t)
{
	while (s->out_len > 0 && s->out[(s->out_head + s->out_len - 1) % OUT_CAP].t_end > t)
		s->out_len--;
	if (s->out_busy > t)
		s->out_busy = t;
	s->state = STM32SIM_RESET;
	s->bl = BL_SYNC;
	s->op = OP_NONE;
	s->rdr_full = 0;
	s->reset_after_tx = 0;
	/* A software reset (NRST stays high) samples BOOT0 as it exits reset, now; a reset by
	 * NRST samples it at the rising edge (stm32sim_set_pins). */
	if (s->nrst)
		s->boot0_latched = s->boot0;
	s->boot_pending = s->nrst;
	s->boot_at = t + (s->opt.instant ? 0 : BOOT_NS);
}

void sim_app_start(struct stm32sim *s, uint64_t t, uint32_t off)
{
	if (!vector_ok(s, off)) {
		s->state = STM32SIM_HALTED; /* HardFault on a blank/implausible vector table */
		return;
	}
	s->state = STM32SIM_APP;
	s->chip = (struct stm32sim_line){s->opt.app_baud, 8, 'N', 1};
	uint32_t crc, len;
	stm32sim_flash_summary(s, &crc, &len);
	char banner[64];
	int n = snprintf(banner, sizeof(banner), "stm32sim app crc32=%08x len=%u\r\n", crc, len);
	sim_tx_buf(s, t, (const uint8_t *)banner, (size_t)n);
}

static void chip_boot(struct stm32sim *s, uint64_t t)
{
	s->boot_pending = 0;
	if (s->boot0_latched) {
		s->state = STM32SIM_BOOTLOADER;
		s->bl = BL_SYNC;
	} else {
		sim_app_start(s, t, 0);
	}
}

/* ---- Event loop ---- */

/* A byte from the bridge has fully arrived at the chip's RX pin at time t. */
static void chip_rx(struct stm32sim *s, uint64_t t, const struct wbyte *w)
{
	uint8_t dec[DEC_MAX];

	switch (s->state) {
	case STM32SIM_RESET:
	case STM32SIM_HALTED:
		return;
	case STM32SIM_APP: /* the application echoes */
		sim_tx_buf(s, t, dec, sim_rx_decode(s, w, &s->chip, dec));
		return;
	case STM32SIM_BOOTLOADER:
		sim_bl_rx(s, t, w);
		return;
	}
}

static int frame_open(const struct stm32sim *s)
{
	return s->state == STM32SIM_BOOTLOADER && s->bl != BL_SYNC && s->bl != BL_CMD &&
	       s->bl != BL_BUSY && s->opt.frame_timeout_ms;
}

/* An erase or write runs and the busy_ms option asks for BUSY bytes meanwhile. */
static int busy_active(const struct stm32sim *s)
{
	return s->opt.busy_ms && !s->opt.instant &&
	       (s->op == OP_WRITE || s->op == OP_ERASE_PAGES || s->op == OP_ERASE_MASS);
}

/* Earliest pending internal event in ns (UINT64_MAX if none). */
static uint64_t next_internal(const struct stm32sim *s)
{
	uint64_t t = UINT64_MAX;
#define MIN_T(x)                                                                                   \
	do {                                                                                       \
		uint64_t x_ = (x);                                                                 \
		if (x_ < t)                                                                        \
			t = x_;                                                                    \
	} while (0)
	if (s->in_len)
		MIN_T(s->in[s->in_head].t_end);
	if (s->op != OP_NONE)
		MIN_T(s->op_end);
	if (busy_active(s))
		MIN_T(s->busy_at);
	if (s->rdr_full && s->state == STM32SIM_BOOTLOADER && s->op == OP_NONE)
		MIN_T(s->out_last_start);
	if (s->boot_pending && s->nrst)
		MIN_T(s->boot_at);
	if (s->reset_after_tx)
		MIN_T(s->out_busy);
	if (frame_open(s))
		MIN_T(s->last_rx + (uint64_t)s->opt.frame_timeout_ms * 1000000ull);
#undef MIN_T
	return t;
}

void sim_advance(struct stm32sim *s, uint64_t now)
{
	for (int guard = 0; guard < 100000; guard++) {
		uint64_t t = next_internal(s);
		if (t > now)
			return;
		if (s->in_len && s->in[s->in_head].t_end == t) {
			struct wbyte w = s->in[s->in_head];
			s->in_head = (s->in_head + 1) % IN_CAP;
			s->in_len--;
			chip_rx(s, t, &w);
		} else if (s->op != OP_NONE && s->op_end == t) {
			sim_bl_op_done(s);
		} else if (busy_active(s) && s->busy_at == t) {
			sim_tx(s, t, AN3155_BUSY);
			s->busy_at = t + (uint64_t)s->opt.busy_ms * 1000000ull;
		} else if (s->rdr_full && s->state == STM32SIM_BOOTLOADER && s->op == OP_NONE &&
		           s->out_last_start == t) {
			s->rdr_full = 0;
			if (s->bl != BL_BUSY && s->bl != BL_SYNC)
				sim_bl_byte(s, t, s->rdr);
		} else if (s->boot_pending && s->nrst && s->boot_at == t) {
			chip_boot(s, t);
		} else if (s->reset_after_tx && s->out_busy == t) {
			chip_reset(s, t);
		} else if (frame_open(s)) {
			s->bl = BL_CMD; /* partial frame dropped silently */
		} else {
			assert(0 && "next_internal() found an event nothing handles");
			return; /* never spin */
		}
	}
}

/* ---- API: time and pins ---- */

void stm32sim_poll(struct stm32sim *s, uint64_t now_us)
{
	sim_advance(s, now_us * 1000ull);
}

uint64_t stm32sim_next_event_us(const struct stm32sim *s)
{
	uint64_t t = next_internal(s);
	if (s->out_len && s->out[s->out_head].t_end < t)
		t = s->out[s->out_head].t_end;
	if (s->dec_len)
		t = 0;
	if (t == UINT64_MAX)
		return t;
	return (t + 999) / 1000;
}

void stm32sim_set_pins(struct stm32sim *s, uint64_t now_us, int nrst_level, int boot0_level)
{
	uint64_t t = now_us * 1000ull;
	sim_advance(s, t);
	int was = s->nrst;
	s->nrst = !!nrst_level;
	s->boot0 = !!boot0_level;
	if (was && !s->nrst) {
		chip_reset(s, t); /* held: boot_pending stays 0 while nrst is low */
	} else if (!was && s->nrst) {
		/* Real parts latch BOOT0 as they leave reset (the reference manuals' "Boot
		 * configuration": the BOOT pins are latched on the 4th rising edge of SYSCLK
		 * after a reset, microseconds after release); later changes do not matter
		 * until the next reset. */
		s->boot0_latched = s->boot0;
		s->boot_pending = 1;
		s->boot_at = t + (s->opt.instant ? 0 : BOOT_NS);
		sim_advance(s, t);
	}
}

/* ---- Test hooks ---- */

void stm32sim_inject_nack(struct stm32sim *s, unsigned nth, unsigned stage)
{
	s->inj_left = nth;
	s->inj_stage = stage;
}

void stm32sim_get_stats(const struct stm32sim *s, struct stm32sim_stats *st)
{
	*st = s->stats;
}

int stm32sim_rdp_active(const struct stm32sim *s)
{
	return s->rdp;
}
