/* SPDX-License-Identifier: MIT */
/*
 * stm32sim internals shared by its three files: stm32sim.c (models, flash file, pins,
 * application, event loop), wire.c (the UART wire both ways) and bootloader.c (AN3155).
 * Only the files of stm32sim/ include this; the API is stm32sim.h. Times here are in ns.
 */
#ifndef ESPSTM_STM32SIM_INT_H
#define ESPSTM_STM32SIM_INT_H

#include "stm32sim.h"

#include <stddef.h>
#include <stdint.h>

#define KIB 1024u

/* Reset release (or software reset) to bootloader/application ready: reset temporisation
 * plus clock setup. AN2606 gives per-product "bootloader startup" minima; see README. */
#define BOOT_NS 2000000ull /* 2 ms */
/* Time the bootloader takes for WRITE UNPROTECT / READOUT PROTECT / WRITE PROTECT /
 * option-byte writes before its second ACK (option byte programming, RM0008 4.2). */
#define OPT_PROG_NS 10000000ull /* 10 ms */

/* bridge->chip bytes in flight: the bridge UART's transmit FIFO and ring (an ESP32 has a
 * 128-byte hardware FIFO plus the driver's ring), the wire and the receive FIFO. 32 was too
 * few: espstm-bridge refills it from a 1 ms libuv timer, so at 921600 baud (0.35 ms for 32
 * bytes) the line idled most of the time and the 10 MiB echo ran at 0.3 of the line rate. */
#define IN_CAP  256
#define OUT_CAP 1024 /* chip->bridge bytes queued or in flight */
#define DEC_MAX 16   /* most bytes a receiver can see in one garbled frame */

/* AN3155 section 2: the synchronisation byte and the answers. */
enum an3155_byte {
	AN3155_SYNC = 0x7F, /* autobaud byte (AN2606 / AN2662 section 2.1) */
	AN3155_ACK = 0x79,
	AN3155_NACK = 0x1F,
	AN3155_BUSY = 0x76, /* v3.x bootloaders, while an operation runs */
};

/* AN3155 section 3: the command bytes, one subsection each. */
enum an3155_cmd {
	AN3155_GET = 0x00,               /* 3.1 */
	AN3155_GET_VERSION = 0x01,       /* 3.2 Get Version & Read Protection Status */
	AN3155_GET_ID = 0x02,            /* 3.3 */
	AN3155_READ_MEMORY = 0x11,       /* 3.4 */
	AN3155_GO = 0x21,                /* 3.5 */
	AN3155_WRITE_MEMORY = 0x31,      /* 3.6 */
	AN3155_ERASE = 0x43,             /* 3.7 */
	AN3155_EXTENDED_ERASE = 0x44,    /* 3.8 */
	AN3155_WRITE_PROTECT = 0x63,     /* 3.9 */
	AN3155_WRITE_UNPROTECT = 0x73,   /* 3.10 */
	AN3155_READOUT_PROTECT = 0x82,   /* 3.11 */
	AN3155_READOUT_UNPROTECT = 0x92, /* 3.12 */
};

/* One row of the model table (stm32sim.c models[]). */
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

/* One byte on the wire. */
struct wbyte {
	uint64_t t_start;          /* ns: the start bit begins */
	uint64_t t_end;            /* ns: the last bit has been sent */
	struct stm32sim_line line; /* sender's framing */
	uint8_t b;
};

/* Where the bootloader is in a frame (AN3155 section 3 names the commands). */
enum bl_state {
	BL_SYNC,      /* waiting for 0x7F */
	BL_CMD,       /* command byte */
	BL_CMDX,      /* its complement */
	BL_ADDR,      /* READ MEMORY / GO / WRITE MEMORY: 4 address bytes + XOR */
	BL_RD_N,      /* READ MEMORY: N, ~N */
	BL_WR_N,      /* WRITE MEMORY: N */
	BL_WR_DATA,   /* WRITE MEMORY: N+1 bytes */
	BL_WR_CSUM,   /* WRITE MEMORY: checksum */
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

/* ---- stm32sim.c ---- */

/* Erase unit 'page' of model m: offset from the flash base, size (bytes), erase time (us). */
uint32_t sim_page_offset(const struct model *m, uint32_t page);
uint32_t sim_page_size(const struct model *m, uint32_t page);
uint32_t sim_page_erase_us(const struct model *m, uint32_t page);
/* Erase unit holding flash offset off. */
uint32_t sim_page_of(const struct model *m, uint32_t off);
/* Flash bytes [off, off + len) changed: written to the file at the next stm32sim_sync. */
void sim_mark_dirty(struct stm32sim *s, uint32_t off, uint32_t len);
/* Run the user application whose vector table is at flash offset off, from time t: it
 * prints its banner, or the chip is HALTED on an implausible vector table. */
void sim_app_start(struct stm32sim *s, uint64_t t, uint32_t off);
/* Process every internal event up to now (ns). */
void sim_advance(struct stm32sim *s, uint64_t now);

/* ---- wire.c ---- */

/* Wire time of one frame (ns) at line l. */
uint64_t sim_frame_ns(const struct stm32sim_line *l);
/* What a receiver framed as rx makes of w: up to DEC_MAX bytes into out; returns the count
 * (w's byte itself with the ideal_wire option). */
unsigned sim_rx_decode(const struct stm32sim *s, const struct wbyte *w,
                       const struct stm32sim_line *rx, uint8_t *out);
/* The chip sends byte b (bytes p[0..n)) from time t, after what it is already sending. */
void sim_tx(struct stm32sim *s, uint64_t t, uint8_t b);
void sim_tx_buf(struct stm32sim *s, uint64_t t, const uint8_t *p, size_t n);

/* ---- bootloader.c ---- */

/* A byte w from the bridge has fully arrived at time t while the bootloader runs. */
void sim_bl_rx(struct stm32sim *s, uint64_t t, const struct wbyte *w);
/* The bootloader takes byte b (decoded) at time t. */
void sim_bl_byte(struct stm32sim *s, uint64_t t, uint8_t b);
/* The running erase/write/option operation ends (at s->op_end). */
void sim_bl_op_done(struct stm32sim *s);

#endif
