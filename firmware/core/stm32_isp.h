/* SPDX-License-Identifier: MIT */
/*
 * stm32_isp: an AN3155 master. Flashes an STM32 through its system-memory USART bootloader
 * from the bridge itself, so an image sent over the network once is written at wire speed.
 * Follows ST AN3155 (command codes in an3155.h) and AN2606 (entry, autobaud). Portable C11,
 * no OS calls, no heap, never blocking: struct stm32_isp holds every buffer.
 */
#ifndef ESPSTM_STM32_ISP_H
#define ESPSTM_STM32_ISP_H

#include "an3155.h"
#include "hal.h"
#include "stm32_devices.h"

#include <stddef.h>
#include <stdint.h>

#define STM32_ISP_BLOCK       AN3155_MAX_DATA       /* WRITE/READ MEMORY block (bytes) */
#define STM32_ISP_BUF         (2 * STM32_ISP_BLOCK) /* image bytes buffered (bytes) */
#define STM32_ISP_ERASE_BATCH 64                    /* most units one erase command names */
#define STM32_ISP_SYNC_MS     200                   /* wait for the answer to 0x7F (ms) */
#define STM32_ISP_SYNC_TRIES  5                     /* 0x7F attempts before giving up */
#define STM32_ISP_ACK_MS      1000                  /* command/address/reply wait (ms) */
#define STM32_ISP_WRITE_MS    1000  /* WRITE MEMORY data -> ACK (ms): programming 256 B */
#define STM32_ISP_BUSY_MAX_MS 60000 /* most time BUSY bytes may extend one wait (ms) */
#define STM32_ISP_MSG         112   /* message buffer (bytes incl. NUL) */

#define STM32_ISP_ACK  AN3155_ACK
#define STM32_ISP_NACK AN3155_NACK
#define STM32_ISP_BUSY AN3155_BUSY

enum stm32_isp_state {
	STM32_ISP_IDLE = 0,     /* no run yet (after init) */
	STM32_ISP_CONNECTING,   /* pins, autobaud 0x7F */
	STM32_ISP_IDENTIFYING,  /* GET, GVR, GID, flash size, read-protection probe */
	STM32_ISP_UNPROTECTING, /* READOUT / WRITE UNPROTECT (opt-in only) */
	STM32_ISP_ERASING,      /* an erase command runs */
	STM32_ISP_WRITING,      /* WRITE MEMORY, or waiting for image data */
	STM32_ISP_VERIFYING,    /* READ MEMORY of a written block */
	STM32_ISP_STARTING,     /* GO or reset into the application */
	STM32_ISP_DONE,         /* every byte written (and verified if asked) */
	STM32_ISP_FAILED,       /* see error and message */
};

enum stm32_isp_error {
	STM32_ISP_E_NONE = 0,
	STM32_ISP_E_ARG,             /* bad options or call order, misaligned address */
	STM32_ISP_E_UART,            /* hal uart_config refused 8E1 at the baud */
	STM32_ISP_E_NO_SYNC,         /* no answer to 0x7F (wiring, BOOT0, baud) */
	STM32_ISP_E_TIMEOUT,         /* an answer did not come in time (link broken?) */
	STM32_ISP_E_NACK,            /* the bootloader refused a command after retries */
	STM32_ISP_E_PROTOCOL,        /* an answer that AN3155 does not allow */
	STM32_ISP_E_UNKNOWN_DEVICE,  /* PID not in the device table */
	STM32_ISP_E_NO_ERASE_CMD,    /* GET listed neither ERASE nor EXTENDED ERASE */
	STM32_ISP_E_READ_PROTECTED,  /* RDP active and STM32_ISP_UNPROTECT_READ not set */
	STM32_ISP_E_WRITE_PROTECTED, /* erase/write refused (write protection or invalid
	                                address/alignment): see the message */
	STM32_ISP_E_RANGE,           /* image outside the flash, or larger than announced */
	STM32_ISP_E_SHORT,           /* stm32_isp_end() before opts.total bytes */
	STM32_ISP_E_VERIFY,          /* read back differs from what was written */
	STM32_ISP_E_ABORTED,         /* stm32_isp_abort() */
};

/* How the chip enters its bootloader. */
enum stm32_isp_entry {
	STM32_ISP_ENTRY_PINS = 0, /* BOOT0 high + NRST pulse + settle, then 0x7F */
	STM32_ISP_ENTRY_NONE = 1, /* already in the bootloader (synced or not): 0x7F only */
};

/* What happens after a successful write (and verify). */
enum stm32_isp_finish {
	STM32_ISP_FINISH_STAY = 0,  /* stay in the bootloader */
	STM32_ISP_FINISH_GO = 1,    /* GO command to go_address, then BOOT0 low */
	STM32_ISP_FINISH_RESET = 2, /* BOOT0 low + NRST pulse: the application runs */
};

/* opts.flags */
#define STM32_ISP_UNPROTECT_READ  0x01u /* RDP active: READOUT UNPROTECT (MASS ERASE!) */
#define STM32_ISP_UNPROTECT_WRITE 0x02u /* erase/write refused: WRITE UNPROTECT, retry */
#define STM32_ISP_MASS_ERASE      0x04u /* mass erase instead of the covered units */
#define STM32_ISP_NO_ERASE        0x08u /* do not erase at all */

struct stm32_isp_opts {
	uint32_t address; /* where the image's first byte goes; 0 = the device's flash
	                     base (known after GET ID); must be a multiple of 4 (begin) and
	                     of the device's stm32_dev_write_align() (checked after GET ID) */
	uint32_t total;   /* image length in bytes if known (checked against the flash
	                     before erasing, and against what arrives; the run finishes once
	                     that many bytes are written, stm32_isp_end() is then optional),
	                     0 = unknown (stm32_isp_end() marks the end) */
	uint32_t baud;    /* UART baud for the bootloader, 0 = 115200 */
	enum stm32_isp_entry entry;
	uint32_t reset_ms;  /* NRST low time (ms), 0 = 10 */
	uint32_t settle_ms; /* wait after NRST release before 0x7F (ms), 0 = 50 */
	int verify;         /* 1: READ MEMORY each block back and compare */
	enum stm32_isp_finish finish;
	uint32_t go_address; /* STM32_ISP_FINISH_GO target, 0 = the image address */
	uint32_t flags;      /* STM32_ISP_UNPROTECT_READ | ... */
	uint8_t retries;     /* extra attempts of a NACKed/timed-out command, 0 = 2 */
};

/* Snapshot of a run for progress displays and the HTTP API. */
struct stm32_isp_status {
	enum stm32_isp_state state;
	enum stm32_isp_error error;
	const char *message;     /* one line, "" while nothing to say; valid until the next
	                            call into this stm32_isp */
	uint32_t address;        /* image start (resolved after GET ID) */
	uint32_t total;          /* opts.total, or once end() is called the bytes received
	                            plus the 0xFF stm32_isp_seek() put in */
	uint32_t bytes_received; /* accepted by stm32_isp_write() */
	uint32_t bytes_erased;   /* flash bytes in erase units erased so far */
	uint32_t bytes_written;  /* image bytes written (ACKed by WRITE MEMORY), with the 0xFF
	                            stm32_isp_seek() put in (so possibly > bytes_received) */
	uint32_t bytes_verified; /* of those, read back and found equal */
	/* device (valid from IDENTIFYING on; 0/NULL before) */
	uint16_t pid;
	uint8_t bl_version;          /* 0x31 = v3.1 */
	uint8_t erase_cmd;           /* 0x43 or 0x44 */
	uint8_t rdp;                 /* 1: read protection was found active */
	const struct stm32_dev *dev; /* table entry (name, family, layout) */
	uint32_t flash_size;         /* bytes (F_SIZE register, else the table's) */
	uint32_t elapsed_ms;         /* since stm32_isp_begin() */
};

/* Progress callback: called on every state change and after every block written or
 * verified, from inside stm32_isp_poll()/input()/write()/end()/abort(). It must not call
 * stm32_isp_begin() on the same instance. */
typedef void (*stm32_isp_progress_fn)(void *arg, const struct stm32_isp_status *st);

/* The command in progress (private; see stm32_isp_io.c). */
struct stm32_isp_io {
	uint8_t op, stage, result_stage;
	uint8_t x;      /* expected answer kind */
	uint8_t have_n; /* counted list: count byte seen */
	uint8_t list_n;
	uint8_t nacked;  /* sync/probe answered with NACK */
	uint8_t waiting; /* 1: the answer timer runs */
	uint16_t out_len, out_off;
	uint16_t need; /* answer bytes still expected */
	uint16_t reply_len;
	uint16_t len;      /* READ/WRITE length (bytes) */
	uint32_t addr;     /* READ/WRITE/GO address */
	uint32_t deadline; /* now_ms value the answer wait ends at */
	uint32_t wait_ms;  /* length of the answer wait */
	uint32_t busy_ms;  /* BUSY extensions used */
	uint32_t sent_ms;  /* when the frame was handed to the UART */
	uint8_t out[STM32_ISP_BLOCK + 4];
	uint8_t reply[STM32_ISP_BLOCK + 4];
};

struct stm32_isp {
	/* All fields are private; use the functions below. */
	const struct hal_ops *hal;
	void *ctx;
	stm32_isp_progress_fn progress;
	void *progress_arg;
	struct stm32_isp_opts o;
	struct stm32_isp_status st;
	char msg[STM32_ISP_MSG];
	uint32_t t_begin, t_end;
	int step, resume; /* run step, and the one a re-sync returns to */
	int retry_left;
	int timer_on;
	uint32_t timer; /* now_ms value a timed step ends at */
	uint16_t probes;
	uint8_t sync_tries;
	uint8_t resync_is_sync;
	uint8_t resync_quiet;   /* re-sync: a probe was NACKed, waiting for silence */
	uint32_t quiet_dropped; /* dropped count when that wait began */
	uint8_t unprot_done;    /* 1: READOUT UNPROTECT sent, 2: WRITE UNPROTECT sent */
	uint8_t mass_done;
	uint8_t wfail;       /* how the WRITE being checked failed */
	uint8_t blk_counted; /* current block counted in bytes_written */
	uint8_t ended;       /* stm32_isp_end() called */
	uint8_t ncmds;
	uint8_t cmds[32]; /* GET command list */
	uint32_t flash_end;
	uint32_t drain_end; /* begin: give up waiting for the UART TX to drain (now_ms) */
	uint32_t mass_ms;
	/* erase plan of the running erase command */
	uint32_t er_first, er_count, er_end, er_bytes, er_wait_ms;
	uint8_t er_mass;
	uint32_t mass_off;  /* mass erase unit by unit: next flash offset */
	uint32_t erased_to; /* flash offset below which every unit the image needs is erased */
	/* image: ring of STM32_ISP_BUF bytes; buf[buf_head] is image byte img_off */
	uint8_t buf[STM32_ISP_BUF];
	uint32_t buf_head, buf_len, img_off;
	uint16_t blk_len; /* current block (bytes, before padding) */
	uint32_t dropped; /* bytes received that answered nothing */
	uint32_t pos;     /* flash address of buf[buf_head] (the current block) */
	uint8_t pos_set;  /* pos resolved (after GET ID) */
	uint8_t seek_on;  /* stm32_isp_seek() pending: seek_addr */
	uint8_t seg_end;  /* the pending seek ends the current segment */
	uint32_t seek_addr;
	char what[64]; /* the command a re-sync follows (for the message) */
	struct stm32_isp_io io;
};

/*
 * How a platform runs the master (ESP8266 main loop, espstm-bridge's libuv loop):
 *  - calls stm32_isp_init() once with the same struct hal_ops as the bridge session
 *    (uart_config, uart_write, uart_tx_pending, uart_purge, gpio_set, now_ms, log are used;
 *    net_send and uart_break are not);
 *  - while stm32_isp_busy(): hands every byte received from the UART to stm32_isp_input()
 *    (and NOT to the bridge session), keeps the bridge session away from the UART and the
 *    pins, calls stm32_isp_poll() whenever bytes arrived, the UART has room again, data
 *    was written, and no later than stm32_isp_next_ms() milliseconds from now;
 *  - streams the image with stm32_isp_write() (backpressure: it returns 0 while its
 *    bounded buffer is full) and calls stm32_isp_end() after the last byte (optional when
 *    opts.total was given). There is no timeout on the image source: a platform whose
 *    upload stalls calls stm32_isp_abort();
 *  - afterwards restores the bridge's UART framing itself (stm32_isp leaves the UART at
 *    8E1 and the bootloader's baud).
 *
 * stm32_isp_init(): prepare isp (state IDLE). hal/ctx as for bridge_init(); hal must
 * outlive isp. Does not touch the UART or pins.
 */
void stm32_isp_init(struct stm32_isp *isp, const struct hal_ops *hal, void *ctx);

/* Optional progress callback (fn NULL = none). */
void stm32_isp_set_progress(struct stm32_isp *isp, stm32_isp_progress_fn fn, void *arg);

/*
 * stm32_isp_begin(): start a run with opts (copied). Applies 8E1 at opts->baud through hal
 * uart_config and starts the entry sequence (1. below). Returns 0, -EBUSY if a run is in
 * progress (abort it first), -EINVAL on bad options (address not a multiple of 4, unknown
 * entry/finish), or the negative errno of uart_config (state FAILED, STM32_ISP_E_UART).
 *
 * One run, in order (stm32_isp_state() names the current step; sections are AN3155's):
 *  1. CONNECTING: UART 8E1 at opts.baud, its TX and RX queues purged (uart_purge: bytes the
 *     bridge session queued before it was suspended never reach the bootloader); what the
 *     platform cannot drop (uart_tx_pending() > 0, e.g. a hardware FIFO) is let out first,
 *     to the application the reset then ends (at most its wire time + 100 ms). With
 *     STM32_ISP_ENTRY_PINS: BOOT0 high, NRST low for reset_ms, NRST high, wait settle_ms.
 *     Purge RX, send 0x7F; ACK = synced; NACK = the bootloader was already synced (it took
 *     0x7F as a command byte); no answer within STM32_ISP_SYNC_MS: send 0x7F again (an
 *     already-synced bootloader then NACKs the 0x7F 0x7F pair), up to STM32_ISP_SYNC_TRIES
 *     times. With STM32_ISP_ENTRY_NONE, after two unanswered 0x7F the bootloader is taken
 *     to be synced and in the middle of a frame: 0xFF fillers are sent one by one until it
 *     answers (see "re-sync" below).
 *  2. IDENTIFYING: GET (3.1: command list; exactly one of ERASE 0x43 / EXTENDED ERASE 0x44
 *     is chosen from it, never both), GET VERSION (3.2), GET ID (3.3) -> device table
 *     (stm32_devices.h; unknown PID: failed). A READ MEMORY of 4 bytes at the flash base
 *     probes read protection (then READ MEMORY of the flash-size register: refused or
 *     implausible -> the table's size): the probe's command NACKed (after the retries)
 *     -> STM32_ISP_E_READ_PROTECTED, unless STM32_ISP_UNPROTECT_READ is set, then
 *     UNPROTECTING: READOUT UNPROTECT (3.12; the chip MASS-ERASES its flash and resets) and
 *     back to CONNECTING (sync again, no pin reset needed: BOOT0 is still high). The image
 *     range is checked against the flash (address below flash_base, or address + total
 *     beyond its end: STM32_ISP_E_RANGE, before anything is erased).
 *  3. ERASING / WRITING / VERIFYING, block by block: blocks end at multiples of
 *     STM32_ISP_BLOCK of the target address (the first one is shorter when opts.address is
 *     not 256-aligned; opts.address must be a multiple of 4, and of the device's
 *     programming unit, stm32_dev_write_align(): 8 on G0/G4/L4/WB/WL, 16 on U5, 32 on most
 *     H7, else STM32_ISP_E_ARG before anything is erased). Erase strategy (streaming): the
 *     erase units (pages/sectors) are erased just before the first block that falls into
 *     them, never units the image does not touch; when opts.total is known, one erase
 *     command covers every not yet erased unit up to the image's end (up to
 *     STM32_ISP_ERASE_BATCH units per command, so one command on the usual small image),
 *     else the single unit. STM32_ISP_MASS_ERASE instead mass-erases once before the first
 *     write (0x43: 0xFF 0x00; 0x44: 0xFFFF). STM32_ISP_NO_ERASE skips erasing (the caller
 *     knows the range is blank). WRITE MEMORY (3.6) of each block; a short last block is
 *     padded with 0xFF to a whole programming unit (stm32_dev_write_align()). With
 *     opts.verify, READ MEMORY (3.4) of the block right after it was written, compared with
 *     the data still in the buffer (so no copy of the image is kept: memory stays one
 *     block plus the next one being filled); a mismatch is STM32_ISP_E_VERIFY.
 *  4. STARTING (STM32_ISP_FINISH_GO): GO (3.5) to opts.go_address (0 = the image
 *     address), then BOOT0 low (without a reset) so the next reset also runs the
 *     application. STM32_ISP_FINISH_RESET: BOOT0 low, NRST pulse (the application runs).
 *     STM32_ISP_FINISH_STAY: the chip stays in the bootloader.
 *  5. DONE. A failed or aborted run ends in FAILED, never in DONE, and leaves the pins as
 *     they are (the chip stays in its bootloader, ready for another run).
 *
 * Answers: every ACK (0x79) wait has a timeout; BUSY (0x76, AN3155 v3.x bootloaders)
 * restarts it (up to STM32_ISP_BUSY_MAX_MS in all); bytes of an answer arriving restart
 * it too (the wait measures silence). A NACK (0x1F) or a timeout of any command is
 * retried after a re-sync (a NACK may have answered a stray byte, and a late ACK after a
 * timeout would leave the bootloader one byte out of step): answers still arriving are
 * dropped for a moment, then single 0xFF bytes are sent until one is answered with NACK
 * and nothing else arrives for a few byte times (an ACK does not count: it may be a late
 * answer or the 0xFF may have completed a frame). 0xFF completes any partial frame without
 * forming a harmful one (no valid complement, ERASE's global code needs 0x00, addresses
 * and EXTENDED ERASE's special codes need a 0x00 checksum); at most 300 of them. Up to
 * opts.retries retries, then the run fails with the command, the address and the cause in
 * the message. A WRITE whose data frame was NACKed or not answered is read back before it
 * is written again (its ACK may have been lost after programming, and flash cannot always
 * take the same data twice): if it reads back equal, it counts as written and verified. A
 * NACK of ERASE/WRITE that persists is reported as "NACK (write protection or invalid
 * address/alignment)" (AN3155 answers both with the same NACK;
 * STM32_ISP_E_WRITE_PROTECTED) unless STM32_ISP_UNPROTECT_WRITE is set and the device
 * table says the units exist and the address is aligned, in which case WRITE UNPROTECT
 * (3.10; the chip resets) is sent once, the chip re-synced and the command retried; a
 * request the table calls invalid fails with STM32_ISP_E_NACK and no unprotect.
 * Timeouts: command ACK STM32_ISP_ACK_MS; WRITE MEMORY STM32_ISP_WRITE_MS; erase: the sum
 * of the device table's worst-case unit erase times + STM32_ISP_ACK_MS; mass erase and
 * READOUT UNPROTECT: the table's mass-erase time (F4: 32 s) + STM32_ISP_ACK_MS; every wait
 * starts when the UART has sent the request (wire time included).
 */
int stm32_isp_begin(struct stm32_isp *isp, const struct stm32_isp_opts *opts);

/*
 * Next image bytes (in order). Returns how many were taken (0..n): at most
 * stm32_isp_room(). 0 while the buffer is full (call again after stm32_isp_poll()) and
 * after the run ended (DONE/FAILED: check stm32_isp_state()). Bytes beyond opts.total fail
 * the run (STM32_ISP_E_RANGE). May run the state machine (poll) before returning.
 */
size_t stm32_isp_write(struct stm32_isp *isp, const uint8_t *p, size_t n);

/*
 * The next image bytes go to flash address addr (the image continues there; only with
 * opts.total 0, e.g. Intel HEX records with gaps). The bytes between the last byte written
 * and addr are not written: erase units the image's data does not touch are neither
 * erased nor written (they keep their contents), bytes in units it does touch read 0xFF
 * (erased). Internally: a gap of at most STM32_ISP_BLOCK bytes whose every byte lies in the
 * unit of the last byte or of addr is filled with 0xFF; otherwise the current segment ends
 * (its last block padded to the programming unit) and the next starts at addr rounded down
 * to the programming unit (0xFF before addr). A seek before any byte moves the image start
 * (status address, GO target) to addr rounded down to the programming unit. The seek is
 * carried out once the device is known: until then, and while the segment's last block
 * is written, stm32_isp_write() takes nothing (stm32_isp_room() is 0). Returns 0; -EINVAL
 * when no run is in progress, after stm32_isp_end(), with opts.total set, or when addr is
 * below the next byte's address; -ERANGE when the device is known and addr is outside its
 * flash: the run has failed (STM32_ISP_E_RANGE, the message names addr) before anything
 * more was erased or written. Outside the flash before the device is known: the run fails
 * the same way once it is (before any erase or write for addr).
 */
int stm32_isp_seek(struct stm32_isp *isp, uint32_t addr);

/* Bytes stm32_isp_write() would take now (0 when full or not running). */
size_t stm32_isp_room(const struct stm32_isp *isp);

/*
 * No more image bytes: the buffered rest is written (last block padded), then verify and
 * finish. Returns 0 (also when called again, or after the run ended), or -EINVAL if no
 * run was ever begun. Fewer bytes than a non-zero opts.total fail the run
 * (STM32_ISP_E_SHORT); an empty image fails with STM32_ISP_E_ARG.
 */
int stm32_isp_end(struct stm32_isp *isp);

/* Abort a run: nothing more is sent, state FAILED with STM32_ISP_E_ABORTED (no effect on
 * an ended run). The chip may be left mid-command; the next run re-syncs. */
void stm32_isp_abort(struct stm32_isp *isp);

/* Bytes received from the UART while a run is in progress. All are consumed; bytes that
 * arrive when no answer is expected are dropped (counted in the log). */
void stm32_isp_input(struct stm32_isp *isp, const uint8_t *p, size_t n);

/* Run the state machine: send what the UART takes, check timeouts, advance. */
void stm32_isp_poll(struct stm32_isp *isp);

/* Milliseconds until stm32_isp_poll() must run again (0 = now; 1 while bytes wait for the
 * UART or the UART drains); -1 when nothing timed is pending (no run in progress, or the
 * run waits for image data: stm32_isp_write() moves it on). */
int32_t stm32_isp_next_ms(const struct stm32_isp *isp);

/* 1 while a run is in progress (state CONNECTING .. STARTING), else 0. */
int stm32_isp_busy(const struct stm32_isp *isp);

/* The current state (STM32_ISP_IDLE after init). */
enum stm32_isp_state stm32_isp_state(const struct stm32_isp *isp);

/* Fill st with the current status (st->message points into isp). */
void stm32_isp_status(const struct stm32_isp *isp, struct stm32_isp_status *st);

/* Lower-case names for logs and JSON: "idle", "connecting", ..., "failed"; "none",
 * "timeout", "nack", "read_protected", ... Never NULL. */
const char *stm32_isp_state_name(enum stm32_isp_state s);
const char *stm32_isp_error_name(enum stm32_isp_error e);

#endif
