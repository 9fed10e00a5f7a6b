/* SPDX-License-Identifier: MIT */
/*
 * stm32sim: a simulated STM32 on the far side of a UART.
 *
 * Passive and single-threaded: the caller owns the clock and passes the current time
 * (monotonic, microseconds) into every call; the simulator never reads a clock or sleeps.
 * The caller (espstm-bridge's sim target, or a unit test) calls stm32sim_poll() at or
 * after stm32sim_next_event_us() and whenever it feeds bytes.
 *
 * What is simulated (see stm32sim/README.md):
 *  - the UART line: the bridge side's baud/data bits/parity/stop bits are compared with the
 *    chip side's; a mismatch garbles or drops bytes as a wire would. Every byte takes wire
 *    time ((1 + data + parity + stop) bits / baud), unless the sim was made "instant".
 *  - NRST and BOOT0: NRST low holds the chip in reset; on release BOOT0 is latched:
 *    high runs the AN3155 USART bootloader, low runs the user application.
 *  - the bootloader (AN3155), with models STM32F103 (PID 0x410), STM32F407 (0x413),
 *    STM32G431 (0x468); flash contents persist in a file.
 *  - the user application: prints "stm32sim app crc32=XXXXXXXX len=N\r\n" at its baud (8N1)
 *    when flash holds a plausible vector table, then echoes; a blank chip stays silent.
 */
#ifndef ESPSTM_STM32SIM_H
#define ESPSTM_STM32SIM_H

#include <stddef.h>
#include <stdint.h>

struct stm32sim;

/* UART framing as seen on one side of the wire. parity: 'N', 'E', 'O', 'M', 'S'. */
struct stm32sim_line {
	uint32_t baud;     /* bits per second, > 0 */
	uint8_t data_bits; /* 5..8 */
	char parity;       /* 'N' 'E' 'O' 'M' 'S' */
	uint8_t stop_bits; /* 1 or 2 (1.5 counted as 2) */
};

struct stm32sim_options {
	const char *model;      /* "stm32f103", "stm32f407" or "stm32g431" (also "f103" etc.) */
	const char *flash_path; /* file holding flash contents; created (all 0xFF) if missing;
	                           NULL keeps flash in memory only */
	int instant;            /* 1: no wire time and no erase/write time (unit tests only) */
	uint32_t app_baud;      /* user application's UART baud; 0 means 115200 */
	/* Added after the first contract; zero-initialised callers get the defaults. */
	uint32_t frame_timeout_ms; /* bootloader: silence (ms) between two bytes of a frame
	                              after which the partial frame is dropped; 0 = never, as
	                              on real parts (AN3155 documents no timeout) */
	int ideal_wire;            /* 1: bytes cross the wire unchanged whatever the two
	                              sides' framing (a tty/pty whose driver does the framing);
	                              wire time is still counted unless instant */
	/* Protection and timing for tests of a master; zero = unprotected part, model's size. */
	int rdp;            /* 1: readout protection (RDP level 1) active from the start:
	                       READ/WRITE/GO/ERASE/WP/UW/RP are NACKed after the command byte;
	                       READOUT UNPROTECT mass-erases and clears it (AN3155 3.12) */
	uint32_t wp_first;  /* erase units [wp_first, wp_first + wp_count) start write-protected: */
	uint32_t wp_count;  /* erasing or writing them is NACKed until WRITE UNPROTECT (3.10) */
	uint16_t fsize_kib; /* value of the flash-size register (F_SIZE, KiB) READ MEMORY
	                       returns where the model has one readable (F103 0x1FFFF7E0, G431
	                       0x1FFF75E0; the F407's 0x1FFF7A22 is outside what its bootloader
	                       reads: NACK); 0 = the model's flash size */
	uint32_t erase_slowdown; /* erase times (page, sector, mass) multiplied by this; 0 = 1 */
	uint32_t busy_ms;        /* > 0: while an erase or write runs, the bootloader sends BUSY
	                            (0x76) every busy_ms (AN3155 v3.x bootloaders may) */
};

/*
 * Create a simulated chip, powered, with NRST released and BOOT0 low at time now_us
 * (so it starts the application if flash holds one).
 * Returns the chip, or NULL with a message in err (errlen bytes) on a bad model,
 * unreadable/wrong-size flash file, or out of memory.
 */
struct stm32sim *stm32sim_new(const struct stm32sim_options *opt, uint64_t now_us, char *err,
                              size_t errlen);

/* Write back flash (if a file was given) and free everything. NULL is a no-op. */
void stm32sim_free(struct stm32sim *s);

/* The bridge side changed its UART settings at now_us (what the ESP's UART is set to).
 * Bytes already written but not yet started on the wire are sent with the new settings,
 * as a real UART's transmit FIFO would (wait for stm32sim_tx_pending() == 0 first). */
void stm32sim_set_line(struct stm32sim *s, uint64_t now_us, const struct stm32sim_line *line);

/* Bytes accepted by stm32sim_write() whose last bit has not left the bridge's transmitter
 * by now_us (0 = the bridge's UART is idle). Added after the first contract. */
size_t stm32sim_tx_pending(const struct stm32sim *s, uint64_t now_us);

/*
 * Drive the pins at now_us. nrst_level / boot0_level: electrical level, 0 = low, 1 = high.
 * NRST low resets the chip (its UART output stops, pending output is lost); the rising
 * edge latches BOOT0 (as real parts do at reset release): the chip then starts, about
 * 2 ms later, the program the latched level selects; BOOT0 changes after the edge have
 * no effect until the next reset. A software reset latches BOOT0 at the moment it happens.
 */
void stm32sim_set_pins(struct stm32sim *s, uint64_t now_us, int nrst_level, int boot0_level);

/*
 * Bytes the bridge transmits towards the chip, starting at now_us.
 * Returns how many were accepted (0..n). The wire holds a bounded queue (a few bytes beyond
 * what is already being shifted out), so a caller faster than the baud rate gets a short
 * count and must retry later: this is the UART's backpressure. Never drops accepted bytes
 * except as the electrical model says (mismatched framing, chip in reset).
 */
size_t stm32sim_write(struct stm32sim *s, uint64_t now_us, const uint8_t *p, size_t n);

/*
 * Bytes the chip has transmitted that have fully arrived at the bridge side by now_us.
 * Copies up to cap bytes into out; returns the count (0 if none yet).
 */
size_t stm32sim_read(struct stm32sim *s, uint64_t now_us, uint8_t *out, size_t cap);

/* Advance internal state (timeouts, erase/write completion, queued output) to now_us. */
void stm32sim_poll(struct stm32sim *s, uint64_t now_us);

/*
 * Earliest time (us) at which something changes: a byte arrives on either side, a
 * bootloader timeout or erase completes. UINT64_MAX if nothing is pending.
 */
uint64_t stm32sim_next_event_us(const struct stm32sim *s);

/* Persist flash to its file now (also done by stm32sim_free). Returns 0 or -errno. */
int stm32sim_sync(struct stm32sim *s);

/* State for tests and logs. */
enum stm32sim_state { STM32SIM_RESET, STM32SIM_BOOTLOADER, STM32SIM_APP, STM32SIM_HALTED };
enum stm32sim_state stm32sim_state(const struct stm32sim *s);

/* ---- Additions (informational; not needed by the bridge) ---- */

/* One model of the table, for --info and tests. Sizes in bytes, times in microseconds. */
struct stm32sim_model_info {
	const char *name;    /* "stm32f103" */
	const char *part;    /* "STM32F103 (medium density)" */
	uint16_t pid;        /* GID answer, e.g. 0x410 */
	uint8_t bl_version;  /* GET/GVR version byte, e.g. 0x22 = v2.2 */
	uint8_t erase_cmd;   /* 0x43 ERASE or 0x44 EXTENDED ERASE */
	uint32_t flash_base; /* 0x08000000 */
	uint32_t flash_size; /* bytes */
	uint32_t ram_base;   /* 0x20000000 */
	uint32_t ram_size;   /* bytes */
	uint32_t npages;     /* erase units (pages or sectors) */
	uint32_t mass_erase_us;
	uint32_t prog_unit;    /* bytes programmed per flash write operation (2, 4 or 8) */
	uint32_t prog_unit_ns; /* time of one such operation (ns) */
};

/* Number of models in the table (>= 3). */
int stm32sim_model_count(void);

/* Model i (0 <= i < count), or NULL if out of range. */
const struct stm32sim_model_info *stm32sim_model(int i);

/* Size (bytes) and erase time (us) of erase unit 'page' of model m. Returns 0 on success,
 * -EINVAL if page is out of range. Source: the README's timing table. */
int stm32sim_model_page(const struct stm32sim_model_info *m, uint32_t page, uint32_t *size,
                        uint32_t *erase_us);

/* The model of a live chip (never NULL). */
const struct stm32sim_model_info *stm32sim_get_model(const struct stm32sim *s);

/*
 * What the application banner would say for the current flash: CRC32 (zlib) and length of
 * flash from its base up to the last non-0xFF byte. Returns 1 if the flash starts with a
 * plausible vector table (the app would print the banner), 0 if the app stays silent.
 */
int stm32sim_flash_summary(const struct stm32sim *s, uint32_t *crc32_out, uint32_t *len_out);

/* Read-only view of the flash contents (flash_size bytes); for tests. */
const uint8_t *stm32sim_flash(const struct stm32sim *s, size_t *size);

/* ---- Test hooks: fault injection and counters ---- */

/*
 * Answer the nth bootloader command from now (1 = the next one; counted when a command
 * byte and its complement arrive, whatever the command) with a NACK at its stage-th
 * acknowledgement instead of the ACK: stage 0 = the ACK of the command byte, 1 = the next
 * one (address of READ/WRITE/GO, the page list or special code of ERASE/EXTENDED ERASE),
 * 2 = the one after (READ's byte count, WRITE's data). The frame is then treated as bad:
 * nothing is read, written or erased, and the bootloader waits for a new command (AN3155:
 * "on NACK ... the bootloader returns to waiting for a command"). One shot; a command that
 * ends before reaching the stage consumes the injection. nth 0 cancels.
 */
void stm32sim_inject_nack(struct stm32sim *s, unsigned nth, unsigned stage);

/* Cut (up = 0) or restore (up = 1) the wire at now_us, both directions: bytes written while
 * cut are accepted and lost, bytes the chip sends are lost; the chip itself keeps running
 * (a broken cable or a dead level shifter). */
void stm32sim_set_link(struct stm32sim *s, uint64_t now_us, int up);

/* Counters since stm32sim_new() (bootloader commands with a valid complement). */
struct stm32sim_stats {
	unsigned commands;       /* every command byte + complement */
	unsigned nacks;          /* NACK bytes sent */
	unsigned injected;       /* of which injected by stm32sim_inject_nack() */
	unsigned erase_cmds;     /* ERASE (0x43) commands completed */
	unsigned ext_erase_cmds; /* EXTENDED ERASE (0x44) commands completed */
	unsigned units_erased;   /* pages/sectors erased by page lists */
	unsigned mass_erases;    /* global / mass erases (incl. READOUT UNPROTECT) */
	unsigned writes;         /* WRITE MEMORY completed */
	unsigned reads;          /* READ MEMORY answered */
	unsigned gos;            /* GO answered */
	unsigned unprotects;     /* READOUT UNPROTECT + WRITE UNPROTECT completed */
};
void stm32sim_get_stats(const struct stm32sim *s, struct stm32sim_stats *st);

/* 1 while readout protection is active. */
int stm32sim_rdp_active(const struct stm32sim *s);

#endif
