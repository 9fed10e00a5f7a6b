/* SPDX-License-Identifier: MIT */
/*
 * stm32sim: the simulated STM32 (see stm32sim.h for the API and tests/sim/README.md for
 * what is simulated, the model table and the timing table with their sources).
 *
 * Protocol: ST AN3155 "USART protocol used in the STM32 bootloader" (sections 2 and 3:
 * one section per command). Autobaud on 0x7F sent as 8E1: AN2606 / AN2662 section 2.1.
 * Layout and what unmodified stm32flash 0.7 sends: its dev_table.c (PIDs 0x410, 0x413,
 * 0x468) and stm32.c, as summarised in /work/shared/research/stm32flash.md.
 *
 * Internally every time is in nanoseconds (the API passes microseconds).
 */
#include "stm32sim.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------------------------------ */
/* Models and timing table. THE TIMING TABLE: erase/program times, see README.md.        */
/* ------------------------------------------------------------------------------------ */

#define KIB 1024u

/* F407 sectors (RM0090 section 3.3 table 5): 4x16 KiB, 1x64 KiB, 7x128 KiB. */
static const uint32_t f407_sector_size[12] = {16 * KIB,  16 * KIB,  16 * KIB,  16 * KIB,
                                              64 * KIB,  128 * KIB, 128 * KIB, 128 * KIB,
                                              128 * KIB, 128 * KIB, 128 * KIB, 128 * KIB};
/* F407 sector erase times (us): DS8626 "Flash memory programming" typical values,
 * rounded as the issue asks: 16 KiB 0.4 s, 64 KiB 1.1 s, 128 KiB 2 s; mass erase 8 s. */
static const uint32_t f407_sector_erase_us[12] = {400000,  400000,  400000,  400000,
                                                  1100000, 2000000, 2000000, 2000000,
                                                  2000000, 2000000, 2000000, 2000000};

struct model {
	struct stm32sim_model_info info;
	uint32_t page_size;          /* uniform page size (bytes), 0 if sectors[] used */
	uint32_t page_erase_us;      /* uniform page erase time */
	const uint32_t *sector_size; /* non-uniform erase units (F4) */
	const uint32_t *sector_erase_us;
	uint32_t opt_base, opt_size; /* option bytes (stm32flash dev_table.c ranges) */
	uint32_t sys_base, sys_size; /* system memory */
	uint32_t fsize_addr;         /* flash-size register readable by READ MEMORY, 0 = none */
	uint8_t opt_default[48];     /* option bytes as read, unprotected defaults */
};

static const struct model models[] = {
    {
        /* DS5319 table "Flash memory characteristics": tPROG 16-bit 52.5 us typ,
         * tERASE page 20..40 ms, tME 20..40 ms. RM0008: 1 KiB pages, 128 pages. */
        .info = {"stm32f103", "STM32F103 (medium density)", 0x410, 0x22, 0x43, 0x08000000,
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
        .info = {"stm32f407", "STM32F407 (1 MiB)", 0x413, 0x31, 0x44, 0x08000000, 1024 * KIB,
                 0x20000000, 128 * KIB, 12, 8000000, 4, 16000},
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
        .info = {"stm32g431", "STM32G431 (128 KiB)", 0x468, 0x31, 0x44, 0x08000000, 128 * KIB,
                 0x20000000, 32 * KIB, 64, 22000, 8, 81700},
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

/* Reset release (or software reset) to bootloader/application ready: reset temporisation
 * plus clock setup. AN2606 gives per-product "bootloader startup" minima; see README. */
#define BOOT_NS 2000000ull /* 2 ms */
/* Time the bootloader takes for WRITE UNPROTECT / READOUT PROTECT / WRITE PROTECT /
 * option-byte writes before its second ACK (option byte programming, RM0008 4.2). */
#define OPT_PROG_NS 10000000ull /* 10 ms */

/* ------------------------------------------------------------------------------------ */

/* bridge->chip bytes in flight: the bridge UART's transmit FIFO and ring (an ESP32 has a
 * 128-byte hardware FIFO plus the driver's ring), the wire and the receive FIFO. 32 was too
 * few: espstm-bridge refills it from a 1 ms libuv timer, so at 921600 baud (0.35 ms for 32
 * bytes) the line idled most of the time and the 10 MiB echo ran at 0.3 of the line rate. */
#define IN_CAP  256
#define OUT_CAP 1024 /* chip->bridge bytes queued or in flight */
#define DEC_MAX 16   /* most bytes a receiver can see in one garbled frame */

#define ACK  0x79
#define NACK 0x1F

struct wbyte {
	uint64_t t_start;          /* ns: the start bit begins */
	uint64_t t_end;            /* ns: the last bit has been sent */
	struct stm32sim_line line; /* sender's framing */
	uint8_t b;
};

enum bl_state {
	BL_SYNC,      /* waiting for 0x7F */
	BL_CMD,       /* command byte */
	BL_CMDX,      /* its complement */
	BL_ADDR,      /* 4 address bytes + XOR */
	BL_RD_N,      /* READ: N, ~N */
	BL_WR_N,      /* WRITE: N */
	BL_WR_DATA,   /* WRITE: N+1 bytes */
	BL_WR_CSUM,   /* WRITE: checksum */
	BL_ER_N,      /* ERASE: N */
	BL_ER_GLOBAL, /* ERASE: 0x00 after 0xFF */
	BL_ER_PAGES,  /* ERASE: N+1 page numbers */
	BL_ER_CSUM,   /* ERASE: checksum */
	BL_EE_N,      /* EXTENDED ERASE: 2 bytes N */
	BL_EE_SCSUM,  /* EXTENDED ERASE: checksum after special N */
	BL_EE_PAGES,  /* EXTENDED ERASE: N+1 16-bit page numbers */
	BL_EE_CSUM,   /* EXTENDED ERASE: checksum */
	BL_WP_N,      /* WRITE PROTECT: N */
	BL_WP_SECT,   /* WRITE PROTECT: N+1 sector codes */
	BL_WP_CSUM,   /* WRITE PROTECT: checksum */
	BL_BUSY,      /* operation in progress (op_end) */
};

enum op_kind {
	OP_NONE,
	OP_WRITE,       /* program fb[0..wr_len) at wr_addr, then ACK */
	OP_ERASE_PAGES, /* erase pages[] bitmap, then ACK */
	OP_ERASE_MASS,  /* erase everything, then ACK */
	OP_ACK_RESET,   /* ACK then software reset (UW, RP, WP, option write) */
	OP_UNPROTECT,   /* mass erase, clear RDP, ACK, reset (READOUT UNPROTECT) */
};

struct stm32sim {
	const struct model *m;
	struct stm32sim_options opt;
	int fd; /* flash file or -1 */
	uint8_t *flash, *ram;
	uint8_t optb[48];
	uint32_t dirty_lo, dirty_hi; /* flash byte range not yet written to the file */

	/* pins and state */
	int nrst, boot0;
	int boot0_latched; /* BOOT0 as sampled at the last reset exit (NRST rise, sw reset) */
	enum stm32sim_state state;
	uint64_t boot_at; /* ns, valid when boot_pending */
	int boot_pending;
	int reset_after_tx; /* software reset once the output has drained */

	/* wires */
	struct stm32sim_line bridge; /* bridge side framing */
	struct stm32sim_line chip;   /* chip side framing (valid in BOOTLOADER after sync / APP) */
	struct wbyte in[IN_CAP];
	unsigned in_head, in_len;
	uint64_t in_busy; /* ns: bridge transmitter free again */
	struct wbyte out[OUT_CAP];
	unsigned out_head, out_len;
	uint64_t out_busy;       /* ns: chip transmitter free again */
	uint64_t out_last_start; /* ns: last queued byte starts leaving the chip */
	uint8_t dec[DEC_MAX];    /* decoded bytes not yet handed to stm32sim_read */
	unsigned dec_head, dec_len;

	/* bootloader */
	enum bl_state bl;
	uint8_t cmd;
	uint8_t xr;      /* running XOR */
	uint8_t fb[260]; /* frame buffer */
	unsigned fb_len;
	uint32_t addr;
	uint32_t count; /* bytes/pages still expected */
	uint16_t ee_n;
	int bad;           /* invalid page seen; NACK at checksum */
	uint8_t pages[32]; /* erase/WP bitmap (<= 256 units) */
	uint8_t wp[32];    /* write-protected units */
	int rdp;           /* readout protection active */
	int rdr_full;      /* one byte waiting in the USART data register */
	uint8_t rdr;
	uint64_t last_rx; /* ns */
	enum op_kind op;
	uint64_t op_end; /* ns */
	uint32_t wr_addr, wr_len;

	/* test hooks */
	unsigned inj_left;    /* commands until the injected NACK (0 = none armed) */
	unsigned inj_stage;   /* its acknowledgement index */
	unsigned inj_pending; /* acknowledgements of the current command until the NACK */
	int link_down;
	uint64_t busy_at; /* ns: next BUSY byte while an operation runs (busy_ms) */
	struct stm32sim_stats stats;
};

/* ------------------------------------------------------------------------------------ */
/* Model helpers                                                                        */
/* ------------------------------------------------------------------------------------ */

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

/* Offset (bytes from flash base) of erase unit page. */
static uint32_t page_offset(const struct model *m, uint32_t page)
{
	if (!m->sector_size)
		return page * m->page_size;
	uint32_t off = 0;
	for (uint32_t i = 0; i < page; i++)
		off += m->sector_size[i];
	return off;
}

static uint32_t page_size(const struct model *m, uint32_t page)
{
	return m->sector_size ? m->sector_size[page] : m->page_size;
}

static uint32_t page_erase_us(const struct model *m, uint32_t page)
{
	return m->sector_size ? m->sector_erase_us[page] : m->page_erase_us;
}

/* Erase unit holding flash offset off. */
static uint32_t page_of(const struct model *m, uint32_t off)
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

/* ------------------------------------------------------------------------------------ */
/* Wire model                                                                           */
/* ------------------------------------------------------------------------------------ */

static unsigned frame_bits(const struct stm32sim_line *l)
{
	return 1u + l->data_bits + (l->parity != 'N') + (l->stop_bits >= 2 ? 2u : 1u);
}

static uint64_t frame_ns(const struct stm32sim_line *l)
{
	return ((uint64_t)frame_bits(l) * 1000000000ull + l->baud - 1) / l->baud;
}

static int parity_bit(char parity, uint8_t v)
{
	int ones = __builtin_popcount(v);
	switch (parity) {
	case 'E':
		return ones & 1;
	case 'O':
		return !(ones & 1);
	case 'M':
		return 1;
	default: /* 'S' */
		return 0;
	}
}

static int line_same(const struct stm32sim_line *a, const struct stm32sim_line *b)
{
	return a->baud == b->baud && a->data_bits == b->data_bits && a->parity == b->parity &&
	       (a->stop_bits >= 2) == (b->stop_bits >= 2);
}

/*
 * What a receiver framed as rx sees when a sender framed as tx sends byte b once.
 * Both sides are modelled as real UARTs: the receiver starts on a falling edge and samples
 * every bit at 35 % and 65 % of its own bit time (the late sample wins if they differ,
 * which garbles the byte); a bad parity or a low stop bit drops the byte (the bootloader
 * and the app discard errored bytes). After a frame it waits for the next falling edge
 * inside the sender's frame, so a slow sender yields several garbage bytes. Tolerance is
 * about +-3.3 % for 11-bit frames. Writes up to DEC_MAX bytes to out; returns the count.
 */
static unsigned wire_decode(const struct stm32sim_line *tx, uint8_t b,
                            const struct stm32sim_line *rx, uint8_t *out)
{
	uint8_t bits[13];
	unsigned n = 0, nb = 0;

	if (line_same(tx, rx)) {
		out[0] = (uint8_t)(b & ((1u << rx->data_bits) - 1));
		return 1;
	}
	bits[nb++] = 0;
	for (unsigned i = 0; i < tx->data_bits; i++)
		bits[nb++] = (b >> i) & 1;
	if (tx->parity != 'N')
		bits[nb++] =
		    (uint8_t)parity_bit(tx->parity, (uint8_t)(b & ((1u << tx->data_bits) - 1)));
	bits[nb++] = 1;
	if (tx->stop_bits >= 2)
		bits[nb++] = 1;

	const double ts = 1.0 / tx->baud, tr = 1.0 / rx->baud;
	const unsigned nr = 1u + rx->data_bits + (rx->parity != 'N') + 1u;
	double edge = 0.0;
	for (int guard = 0; guard < DEC_MAX && n < DEC_MAX; guard++) {
		unsigned v = 0;
		int ok = 1, false_start = 0;
		for (unsigned k = 0; k < nr && ok; k++) {
			double t = edge + (k + 0.65) * tr;
			double j = floor(t / ts);
			int bit = (j >= 0 && j < nb) ? bits[(unsigned)j] : 1;
			if (k == 0) {
				if (bit != 0) {
					false_start = 1;
					ok = 0;
				}
			} else if (k <= rx->data_bits) {
				v |= (unsigned)bit << (k - 1);
			} else if (k == rx->data_bits + 1u && rx->parity != 'N') {
				if (bit != parity_bit(rx->parity, (uint8_t)v))
					ok = 0;
			} else if (!bit) {
				ok = 0; /* framing error */
			}
		}
		if (ok)
			out[n++] = (uint8_t)v;
		double cursor = edge + (false_start ? 0.5 : nr - 0.5) * tr;
		/* next falling edge strictly after cursor inside the sender's frame */
		unsigned j = (unsigned)floor(cursor / ts) + 1u;
		while (j < nb && !(bits[j - 1] == 1 && bits[j] == 0))
			j++;
		if (j >= nb)
			break;
		edge = j * ts;
	}
	return n;
}

/* ------------------------------------------------------------------------------------ */
/* Flash file                                                                           */
/* ------------------------------------------------------------------------------------ */

static void mark_dirty(struct stm32sim *s, uint32_t off, uint32_t len)
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
		mark_dirty(s, 0, size); /* new file: all 0xFF */
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

/* ------------------------------------------------------------------------------------ */
/* Lifecycle                                                                            */
/* ------------------------------------------------------------------------------------ */

static void chip_reset(struct stm32sim *s, uint64_t t);
static void chip_boot(struct stm32sim *s, uint64_t t);
static void advance(struct stm32sim *s, uint64_t now);

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
	advance(s, t);
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

/* ------------------------------------------------------------------------------------ */
/* Chip transmitter                                                                     */
/* ------------------------------------------------------------------------------------ */

static void tx(struct stm32sim *s, uint64_t t, uint8_t b)
{
	if (s->state == STM32SIM_RESET || s->out_len >= OUT_CAP)
		return; /* in reset nothing drives the line; full: the app's buffer overflowed */
	uint64_t start = t > s->out_busy ? t : s->out_busy;
	uint64_t end = s->opt.instant ? start : start + frame_ns(&s->chip);
	struct wbyte *w = &s->out[(s->out_head + s->out_len++) % OUT_CAP];
	w->t_start = start;
	w->t_end = end;
	w->line = s->chip;
	w->b = b;
	s->out_busy = end;
	s->out_last_start = start;
}

static void tx_buf(struct stm32sim *s, uint64_t t, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tx(s, t, p[i]);
}

/* ------------------------------------------------------------------------------------ */
/* Reset, boot, application                                                             */
/* ------------------------------------------------------------------------------------ */

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

static void app_start(struct stm32sim *s, uint64_t t, uint32_t off)
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
	tx_buf(s, t, (const uint8_t *)banner, (size_t)n);
}

static void chip_boot(struct stm32sim *s, uint64_t t)
{
	s->boot_pending = 0;
	if (s->boot0_latched) {
		s->state = STM32SIM_BOOTLOADER;
		s->bl = BL_SYNC;
	} else {
		app_start(s, t, 0);
	}
}

/* ------------------------------------------------------------------------------------ */
/* Bootloader (AN3155)                                                                  */
/* ------------------------------------------------------------------------------------ */

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
	uint32_t p0 = page_of(s->m, off), p1 = page_of(s->m, off + len - 1);
	for (uint32_t p = p0; p <= p1; p++)
		if (s->wp[p / 8] & (1u << (p % 8)))
			return 1;
	return 0;
}

static void erase_page(struct stm32sim *s, uint32_t p)
{
	uint32_t off = page_offset(s->m, p), sz = page_size(s->m, p);
	memset(s->flash + off, 0xFF, sz);
	mark_dirty(s, off, sz);
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

static void op_done(struct stm32sim *s)
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
			mark_dirty(s, off, s->wr_len);
			stm32sim_sync(s);
		} else if (r == R_RAM) {
			memcpy(s->ram + (s->wr_addr - mi->ram_base), s->fb, s->wr_len);
		} else if (r == R_OPT) {
			memcpy(s->optb + (s->wr_addr - s->m->opt_base), s->fb, s->wr_len);
			s->reset_after_tx = 1; /* AN3155 3.7: option byte write resets */
		}
		s->stats.writes++;
		tx(s, t, ACK);
		break;
	}
	case OP_ERASE_PAGES:
		if (s->cmd == 0x43)
			s->stats.erase_cmds++;
		else
			s->stats.ext_erase_cmds++;
		for (uint32_t p = 0; p < mi->npages; p++)
			if (s->pages[p / 8] & (1u << (p % 8))) {
				erase_page(s, p);
				s->stats.units_erased++;
			}
		stm32sim_sync(s);
		tx(s, t, ACK);
		break;
	case OP_ERASE_MASS:
	case OP_UNPROTECT:
		s->stats.mass_erases++;
		if (op == OP_ERASE_MASS && s->cmd == 0x43)
			s->stats.erase_cmds++;
		else if (op == OP_ERASE_MASS)
			s->stats.ext_erase_cmds++;
		else
			s->stats.unprotects++;
		memset(s->flash, 0xFF, mi->flash_size);
		mark_dirty(s, 0, mi->flash_size);
		stm32sim_sync(s);
		tx(s, t, ACK);
		if (op == OP_UNPROTECT) {
			s->rdp = 0;
			memset(s->wp, 0, sizeof(s->wp));
			s->reset_after_tx = 1;
		}
		break;
	case OP_ACK_RESET:
		if (s->cmd == 0x73)
			s->stats.unprotects++;
		tx(s, t, ACK);
		s->reset_after_tx = 1;
		break;
	case OP_NONE:
		break;
	}
}

static void nack(struct stm32sim *s, uint64_t t)
{
	tx(s, t, NACK);
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

static int cmd_supported(const struct stm32sim *s, uint8_t c)
{
	switch (c) {
	case 0x00:
	case 0x01:
	case 0x02:
	case 0x11:
	case 0x21:
	case 0x31:
	case 0x63:
	case 0x73:
	case 0x82:
	case 0x92:
		return 1;
	case 0x43:
	case 0x44:
		return c == s->m->info.erase_cmd;
	default:
		return 0;
	}
}

/* After a valid command byte and complement (AN3155 section 3, one subsection each). */
static void bl_command(struct stm32sim *s, uint64_t t)
{
	const struct stm32sim_model_info *mi = &s->m->info;
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
	if (!cmd_supported(s, c)) {
		nack(s, t);
		return;
	}
	/* With readout protection active these are refused (AN3155 3.4-3.9). */
	if (s->rdp && (c == 0x11 || c == 0x21 || c == 0x31 || c == 0x43 || c == 0x44 || c == 0x63 ||
	               c == 0x73 || c == 0x82)) {
		nack(s, t);
		return;
	}
	tx(s, t, ACK);
	s->bl = BL_CMD;
	switch (c) {
	case 0x00: { /* GET (3.1) */
		static const uint8_t cmds[] = {0x00, 0x01, 0x02, 0x11, 0x21, 0x31,
		                               0x00, 0x63, 0x73, 0x82, 0x92};
		uint8_t r[2 + sizeof(cmds) + 1];
		r[0] = sizeof(cmds);
		r[1] = mi->bl_version;
		memcpy(r + 2, cmds, sizeof(cmds));
		r[2 + 6] = mi->erase_cmd;
		r[sizeof(r) - 1] = ACK;
		tx_buf(s, t, r, sizeof(r));
		break;
	}
	case 0x01: { /* GET VERSION & READ PROTECTION STATUS (3.2) */
		uint8_t r[4] = {mi->bl_version, 0x00, 0x00, ACK};
		tx_buf(s, t, r, sizeof(r));
		break;
	}
	case 0x02: { /* GET ID (3.3) */
		uint8_t r[4] = {0x01, (uint8_t)(mi->pid >> 8), (uint8_t)mi->pid, ACK};
		tx_buf(s, t, r, sizeof(r));
		break;
	}
	case 0x11:
	case 0x21:
	case 0x31:
		s->bl = BL_ADDR;
		s->fb_len = 0;
		break;
	case 0x43:
		s->bl = BL_ER_N;
		break;
	case 0x44:
		s->bl = BL_EE_N;
		s->fb_len = 0;
		break;
	case 0x63:
		s->bl = BL_WP_N;
		break;
	case 0x73: /* WRITE UNPROTECT (3.10): ACK, ACK, reset */
		memset(s->wp, 0, sizeof(s->wp));
		start_op(s, t, OP_ACK_RESET, OPT_PROG_NS);
		break;
	case 0x82: /* READOUT PROTECT (3.11): ACK, ACK, reset */
		s->rdp = 1;
		start_op(s, t, OP_ACK_RESET, OPT_PROG_NS);
		break;
	case 0x92: /* READOUT UNPROTECT (3.12): ACK, mass erase, ACK, reset */
		start_op(s, t, OP_UNPROTECT, (uint64_t)mi->mass_erase_us * 1000);
		break;
	}
}

static void bl_byte(struct stm32sim *s, uint64_t t, uint8_t b)
{
	const struct stm32sim_model_info *mi = &s->m->info;
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
		s->fb[s->fb_len++] = b;
		if (s->fb_len < 5)
			break;
		{
			uint8_t x = s->fb[0] ^ s->fb[1] ^ s->fb[2] ^ s->fb[3];
			uint32_t a =
			    (uint32_t)s->fb[0] << 24 | s->fb[1] << 16 | s->fb[2] << 8 | s->fb[3];
			enum region r = region_of(s, a, 1);
			int ok = x == s->fb[4] && r != R_NONE;
			if (s->cmd == 0x31)
				ok = ok && !(a & 3) && r != R_SYS && r != R_FSIZE;
			if (s->cmd == 0x21)
				ok = ok && (r == R_FLASH || r == R_RAM);
			if (!ok || inj_hit(s)) {
				nack(s, t);
				break;
			}
			s->addr = a;
			tx(s, t, ACK);
			if (s->cmd == 0x11) {
				s->bl = BL_RD_N;
				s->fb_len = 0;
			} else if (s->cmd == 0x31) {
				s->bl = BL_WR_N;
			} else { /* GO (3.5): jump after the ACK */
				s->stats.gos++;
				s->bl = BL_CMD;
				if (r == R_RAM) {
					/* code in RAM is not executed; stm32flash's -R stub
					 * requests a system reset, which is what happens */
					s->reset_after_tx = 1;
				} else {
					app_start(s, t, a - mi->flash_base);
				}
			}
		}
		break;
	case BL_RD_N:
		s->fb[s->fb_len++] = b;
		if (s->fb_len < 2)
			break;
		{
			uint32_t n = (uint32_t)s->fb[0] + 1;
			if ((uint8_t)(s->fb[1] ^ s->fb[0]) != 0xFF ||
			    region_of(s, s->addr, n) == R_NONE || inj_hit(s)) {
				nack(s, t);
				break;
			}
			uint8_t data[256];
			mem_read(s, s->addr, data, n);
			s->stats.reads++;
			tx(s, t, ACK);
			tx_buf(s, t, data, n);
			s->bl = BL_CMD;
		}
		break;
	case BL_WR_N:
		s->count = (uint32_t)b + 1;
		s->xr = b;
		s->fb_len = 0;
		s->bl = BL_WR_DATA;
		break;
	case BL_WR_DATA:
		s->fb[s->fb_len++] = b;
		s->xr ^= b;
		if (s->fb_len == s->count)
			s->bl = BL_WR_CSUM;
		break;
	case BL_WR_CSUM: {
		uint32_t n = s->count;
		while (n % 4) /* pad to a whole word with 0xFF (flash: leaves bits as they are) */
			s->fb[n++] = 0xFF;
		enum region r = region_of(s, s->addr, n);
		if (b != s->xr || r == R_NONE || r == R_SYS || r == R_FSIZE ||
		    (r == R_FLASH && wp_touches(s, s->addr - mi->flash_base, n)) || inj_hit(s)) {
			nack(s, t);
			break;
		}
		s->wr_addr = s->addr;
		s->wr_len = n;
		uint64_t dur = 0;
		if (r == R_FLASH)
			dur = (uint64_t)(n / mi->prog_unit + (n % mi->prog_unit != 0)) *
			      mi->prog_unit_ns;
		else if (r == R_OPT)
			dur = OPT_PROG_NS;
		start_op(s, t, OP_WRITE, dur);
		break;
	}
	case BL_ER_N:
		if (b == 0xFF) {
			s->bl = BL_ER_GLOBAL;
			break;
		}
		s->count = (uint32_t)b + 1;
		s->xr = b;
		s->bad = 0;
		memset(s->pages, 0, sizeof(s->pages));
		s->bl = BL_ER_PAGES;
		break;
	case BL_ER_GLOBAL: {
		int protected = 0;
		for (size_t i = 0; i < sizeof(s->wp); i++)
		protected |= s->wp[i];
		if (b != 0x00 || protected || inj_hit(s))
			nack(s, t);
		else
			start_op(s, t, OP_ERASE_MASS, (uint64_t)mi->mass_erase_us * 1000);
		break;
	}
	case BL_ER_PAGES:
	case BL_EE_PAGES:
		s->xr ^= b;
		if (s->bl == BL_EE_PAGES) {
			s->fb[s->fb_len++] = b;
			if (s->fb_len < 2)
				break;
			s->fb_len = 0;
		}
		{
			uint32_t p = s->bl == BL_EE_PAGES ? (uint32_t)s->fb[0] << 8 | s->fb[1] : b;
			if (p >= mi->npages || (s->wp[p / 8] & (1u << (p % 8))))
				s->bad = 1;
			else
				s->pages[p / 8] |= (uint8_t)(1u << (p % 8));
			if (--s->count == 0)
				s->bl = s->bl == BL_EE_PAGES ? BL_EE_CSUM : BL_ER_CSUM;
		}
		break;
	case BL_ER_CSUM:
	case BL_EE_CSUM:
		if (b != s->xr || s->bad || inj_hit(s)) {
			nack(s, t);
			break;
		}
		{
			uint64_t dur = 0;
			for (uint32_t p = 0; p < mi->npages; p++)
				if (s->pages[p / 8] & (1u << (p % 8)))
					dur += (uint64_t)page_erase_us(s->m, p) * 1000;
			start_op(s, t, OP_ERASE_PAGES, dur);
		}
		break;
	case BL_EE_N:
		s->fb[s->fb_len++] = b;
		if (s->fb_len < 2)
			break;
		s->ee_n = (uint16_t)(s->fb[0] << 8 | s->fb[1]);
		s->xr = s->fb[0] ^ s->fb[1];
		s->fb_len = 0;
		if (s->ee_n >= 0xFFF0) {
			s->bl = BL_EE_SCSUM;
		} else {
			s->count = (uint32_t)s->ee_n + 1;
			s->bad = 0;
			memset(s->pages, 0, sizeof(s->pages));
			s->bl = BL_EE_PAGES;
		}
		break;
	case BL_EE_SCSUM: {
		/* 0xFFFF mass erase; 0xFFFE/0xFFFD bank erase: these models are single-bank
		 * so those are refused, as are the reserved codes (AN3155 3.8). */
		int protected = 0;
		for (size_t i = 0; i < sizeof(s->wp); i++)
		protected |= s->wp[i];
		if (b != s->xr || s->ee_n != 0xFFFF || protected || inj_hit(s))
			nack(s, t);
		else
			start_op(s, t, OP_ERASE_MASS, (uint64_t)mi->mass_erase_us * 1000);
		break;
	}
	case BL_WP_N:
		s->count = (uint32_t)b + 1;
		s->xr = b;
		s->bad = 0;
		memset(s->pages, 0, sizeof(s->pages));
		s->bl = BL_WP_SECT;
		break;
	case BL_WP_SECT:
		s->xr ^= b;
		if (b >= mi->npages)
			s->bad = 1;
		else
			s->pages[b / 8] |= (uint8_t)(1u << (b % 8));
		if (--s->count == 0)
			s->bl = BL_WP_CSUM;
		break;
	case BL_WP_CSUM:
		if (b != s->xr || s->bad) {
			nack(s, t);
			break;
		}
		for (size_t i = 0; i < sizeof(s->wp); i++)
			s->wp[i] |= s->pages[i];
		/* WRITE PROTECT (3.9): ACK after the codes, then reset */
		start_op(s, t, OP_ACK_RESET, OPT_PROG_NS);
		break;
	}
}

/* Bootloader is still pushing its reply into the USART or running an operation. */
static uint64_t bl_ready_at(const struct stm32sim *s)
{
	uint64_t r = s->out_last_start;
	if (s->op != OP_NONE && s->op_end > r)
		r = s->op_end;
	return r;
}

/* ------------------------------------------------------------------------------------ */
/* Event loop                                                                           */
/* ------------------------------------------------------------------------------------ */

/* A byte from the bridge has fully arrived at the chip's RX pin at time t. */
static void chip_rx(struct stm32sim *s, uint64_t t, const struct wbyte *w)
{
	uint8_t dec[DEC_MAX];
	unsigned n;

	switch (s->state) {
	case STM32SIM_RESET:
	case STM32SIM_HALTED:
		return;
	case STM32SIM_APP:
		n = s->opt.ideal_wire ? (dec[0] = w->b, 1u)
		                      : wire_decode(&w->line, w->b, &s->chip, dec);
		tx_buf(s, t, dec, n); /* the application echoes */
		return;
	case STM32SIM_BOOTLOADER:
		break;
	}
	if (s->bl == BL_SYNC) {
		/* Autobaud (AN2606/AN2662 2.1): the bootloader times the 0x7F frame sent as
		 * 8E1, then runs its USART at that baud, 8E1. Below 1200 baud its timer
		 * overflows (AN2662 2.3). */
		struct stm32sim_line l = {w->line.baud, 8, 'E', 1};
		if (w->line.baud < 1200)
			return;
		if (s->opt.ideal_wire) {
			if (w->b != 0x7F)
				return;
		} else if (wire_decode(&w->line, w->b, &l, dec) != 1 || dec[0] != 0x7F) {
			return;
		}
		s->chip = l;
		tx(s, t, ACK);
		s->bl = BL_CMD;
		s->last_rx = t;
		return;
	}
	n = s->opt.ideal_wire ? (dec[0] = w->b, 1u) : wire_decode(&w->line, w->b, &s->chip, dec);
	for (unsigned i = 0; i < n; i++) {
		if (t < bl_ready_at(s) || s->rdr_full) {
			/* busy: one byte waits in the data register, others overrun */
			if (!s->rdr_full) {
				s->rdr_full = 1;
				s->rdr = dec[i];
			}
			continue;
		}
		bl_byte(s, t, dec[i]);
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

static void advance(struct stm32sim *s, uint64_t now)
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
			op_done(s);
		} else if (busy_active(s) && s->busy_at == t) {
			tx(s, t, 0x76); /* BUSY */
			s->busy_at = t + (uint64_t)s->opt.busy_ms * 1000000ull;
		} else if (s->rdr_full && s->state == STM32SIM_BOOTLOADER && s->op == OP_NONE &&
		           s->out_last_start == t) {
			s->rdr_full = 0;
			if (s->bl != BL_BUSY && s->bl != BL_SYNC)
				bl_byte(s, t, s->rdr);
		} else if (s->boot_pending && s->nrst && s->boot_at == t) {
			chip_boot(s, t);
		} else if (s->reset_after_tx && s->out_busy == t) {
			chip_reset(s, t);
		} else if (frame_open(s)) {
			s->bl = BL_CMD; /* partial frame dropped silently */
		} else {
			return; /* cannot happen; never spin */
		}
	}
}

/* ------------------------------------------------------------------------------------ */
/* API                                                                                  */
/* ------------------------------------------------------------------------------------ */

void stm32sim_poll(struct stm32sim *s, uint64_t now_us)
{
	advance(s, now_us * 1000ull);
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

void stm32sim_set_line(struct stm32sim *s, uint64_t now_us, const struct stm32sim_line *line)
{
	advance(s, now_us * 1000ull);
	struct stm32sim_line l = *line;
	if (!l.baud)
		l.baud = 1;
	if (l.data_bits < 5 || l.data_bits > 8)
		l.data_bits = 8;
	if (!l.parity || !strchr("NEOMS", l.parity))
		l.parity = 'N';
	l.stop_bits = l.stop_bits >= 2 ? 2 : 1;
	s->bridge = l;
	/* Bytes the bridge's UART has accepted but not started to send go out with the new
	 * framing, as on a real UART (the byte being shifted out keeps the old one). */
	uint64_t now = now_us * 1000ull, prev_end = now;
	for (unsigned i = 0; i < s->in_len; i++) {
		struct wbyte *w = &s->in[(s->in_head + i) % IN_CAP];
		if (w->t_start < now) {
			prev_end = w->t_end;
			continue;
		}
		uint64_t start = w->t_start > prev_end ? w->t_start : prev_end;
		w->line = l;
		w->t_start = start;
		w->t_end = s->opt.instant ? start : start + frame_ns(&l);
		prev_end = w->t_end;
	}
	if (s->in_len)
		s->in_busy = s->in[(s->in_head + s->in_len - 1) % IN_CAP].t_end;
}

size_t stm32sim_tx_pending(const struct stm32sim *s, uint64_t now_us)
{
	uint64_t now = now_us * 1000ull;
	size_t n = 0;
	for (unsigned i = 0; i < s->in_len; i++)
		if (s->in[(s->in_head + i) % IN_CAP].t_end > now)
			n++;
	return n;
}

void stm32sim_set_pins(struct stm32sim *s, uint64_t now_us, int nrst_level, int boot0_level)
{
	uint64_t t = now_us * 1000ull;
	advance(s, t);
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
		advance(s, t);
	}
}

size_t stm32sim_write(struct stm32sim *s, uint64_t now_us, const uint8_t *p, size_t n)
{
	uint64_t now = now_us * 1000ull;
	size_t i;
	advance(s, now);
	if (s->link_down)
		return n; /* accepted and lost on the broken wire */
	for (i = 0; i < n; i++) {
		if (s->in_len >= IN_CAP) {
			advance(s, now);
			if (s->in_len >= IN_CAP)
				break;
		}
		uint64_t start = now > s->in_busy ? now : s->in_busy;
		uint64_t end = s->opt.instant ? start : start + frame_ns(&s->bridge);
		struct wbyte *w = &s->in[(s->in_head + s->in_len++) % IN_CAP];
		w->t_start = start;
		w->t_end = end;
		w->line = s->bridge;
		w->b = p[i];
		s->in_busy = end;
	}
	advance(s, now);
	return i;
}

size_t stm32sim_read(struct stm32sim *s, uint64_t now_us, uint8_t *out, size_t cap)
{
	uint64_t now = now_us * 1000ull;
	size_t n = 0;
	advance(s, now);
	while (n < cap) {
		if (s->dec_len) {
			out[n++] = s->dec[s->dec_head];
			s->dec_head = (s->dec_head + 1) % DEC_MAX;
			s->dec_len--;
			continue;
		}
		if (!s->out_len || s->out[s->out_head].t_end > now)
			break;
		struct wbyte w = s->out[s->out_head];
		s->out_head = (s->out_head + 1) % OUT_CAP;
		s->out_len--;
		if (s->link_down)
			continue; /* lost on the broken wire */
		uint8_t dec[DEC_MAX];
		unsigned k = s->opt.ideal_wire ? (dec[0] = w.b, 1u)
		                               : wire_decode(&w.line, w.b, &s->bridge, dec);
		for (unsigned i = 0; i < k; i++) {
			s->dec[(s->dec_head + s->dec_len) % DEC_MAX] = dec[i];
			s->dec_len++;
		}
	}
	return n;
}

/* ------------------------------------------------------------------------------------ */
/* Test hooks                                                                           */
/* ------------------------------------------------------------------------------------ */

void stm32sim_inject_nack(struct stm32sim *s, unsigned nth, unsigned stage)
{
	s->inj_left = nth;
	s->inj_stage = stage;
}

void stm32sim_set_link(struct stm32sim *s, uint64_t now_us, int up)
{
	advance(s, now_us * 1000ull);
	s->link_down = !up;
	if (!up) {
		/* bytes already on the wire towards the chip are lost too */
		s->in_len = 0;
		s->in_busy = now_us * 1000ull;
		s->dec_len = 0;
	}
}

void stm32sim_get_stats(const struct stm32sim *s, struct stm32sim_stats *st)
{
	*st = s->stats;
}

int stm32sim_rdp_active(const struct stm32sim *s)
{
	return s->rdp;
}
