/* SPDX-License-Identifier: MIT */
/*
 * cli_flash: the unit-tested parts of `espstm flash` in plain C11 (espstm_flash.c does the
 * HTTP transfer with libcurl): command line, image format and Intel HEX pre-scan, the
 * bridge's address from espstmd's `status NAME` answer, the upload's URL, the answers of
 * /api/targets/N/flash (firmware/core/http_api.h "Flashing") with the exit status and
 * message they mean, and the progress display.
 */
#ifndef ESPSTM_CLI_FLASH_H
#define ESPSTM_CLI_FLASH_H

#include "cli_json.h"
#include "ihex.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of `espstm flash` (espstm(1) FLASH; values from sysexits.h). 0, 1
 * (CLI_EXIT_ERROR: the flash failed or was refused), 2 (CLI_EXIT_USAGE) and 69
 * (CLI_EXIT_UNAVAILABLE: espstmd or the bridge not reachable) are those of cli_cmd.h. */
#define CLI_FLASH_EXIT_OK     0
#define CLI_FLASH_EXIT_FAILED 1
#define CLI_FLASH_EXIT_USAGE  2
#define CLI_FLASH_EXIT_DATAERR                                                                     \
	65                             /* EX_DATAERR: IMAGE unusable (empty, ELF, bad HEX),        \
	                                  or --stage: it reached the bridge damaged (CRC-32) */
#define CLI_FLASH_EXIT_NOINPUT     66  /* EX_NOINPUT: IMAGE or password file unreadable */
#define CLI_FLASH_EXIT_UNAVAILABLE 69  /* EX_UNAVAILABLE: espstmd or the bridge unreachable */
#define CLI_FLASH_EXIT_NOPERM      77  /* EX_NOPERM: password refused (401/403/429) */
#define CLI_FLASH_EXIT_INTERRUPTED 130 /* SIGINT/SIGTERM: the upload was cut off */

/* Environment variable holding the bridge's web password (if no --password-file). */
#define CLI_FLASH_PASSWORD_ENV "ESPSTM_PASSWORD"
#define CLI_FLASH_PASS_MAX     64 /* HTTP_API_PASS_MAX of firmware/core/http_api.h */
#define CLI_FLASH_HOST_MAX     255
#define CLI_FLASH_DEFAULT_PORT 80 /* espstm.conf(5) http_port default */

enum cli_flash_format { CLI_FMT_AUTO = 0, CLI_FMT_BIN, CLI_FMT_HEX };
enum cli_flash_progress_mode {
	CLI_PROGRESS_AUTO = 0, /* a bar if stderr is a terminal, else plain lines */
	CLI_PROGRESS_BAR,
	CLI_PROGRESS_LINES,
	CLI_PROGRESS_NONE,
};

struct cli_flash_opts {
	const char *device;                /* DEVICE without "/dev/" (NULL with --host) */
	char host[CLI_FLASH_HOST_MAX + 1]; /* --host: name or address, no brackets */
	unsigned port;                     /* --host port (CLI_FLASH_DEFAULT_PORT if none) */
	const char *image;                 /* IMAGE path */
	int has_address;                   /* --address given */
	uint32_t address;                  /* --address (a multiple of 4) */
	int verify;                        /* 1 (default, --verify) or 0 (--no-verify) */
	int go, unprotect;                 /* --go, --unprotect */
	enum cli_flash_format format;      /* --format, CLI_FMT_AUTO if not given */
	unsigned target;                   /* --target N (default 0) */
	uint32_t baud;                     /* --baud (0: the bridge's default, 115200) */
	const char *password_file;         /* --password-file or NULL */
	const char *socket;                /* --socket or NULL (cli_globals.socket) */
	int json;                          /* --json: print the bridge's final answer */
	int stage;                         /* --stage: verify before commit (stage=1) */
	uint32_t crc32; /* with stage: zlib CRC-32 of IMAGE (set by the caller before
	                   cli_flash_query; sent as crc32=) */
	enum cli_flash_progress_mode progress; /* --progress, -q (= none) */
	int http_plain; /* --http-plain: plain HTTP even when known_bridges pins the bridge */
	const char *sig; /* --sig FILE: the image's signature (espstm sign), or NULL */
};

/*
 * Parse `espstm flash ARGS` (argv[0] = "flash"). Uses getopt_long(3) (resets it; argv may be
 * permuted). Messages ("espstm flash: ...") go to err, --help to out. Verify is on unless
 * --no-verify is given (--verify/-v is accepted and changes nothing; of the two, the last
 * one given wins).
 * Returns 0 with *o filled, 1 after --help was printed (exit 0), or -CLI_FLASH_EXIT_USAGE
 * (-2) after a usage message: unknown option, missing/extra argument, both or neither of
 * DEVICE and --host, a bad number or host, --address not a multiple of 4 or given with
 * Intel HEX, and any --password option (a password on the command line is visible to every
 * user in ps(1) and /proc; it is refused with a message naming --password-file and
 * ESPSTM_PASSWORD).
 */
int cli_flash_parse_args(int argc, char **argv, struct cli_flash_opts *o, FILE *out, FILE *err);

/* The help text of `espstm flash --help`. */
void cli_flash_print_help(FILE *out);

/*
 * HOST or HOST:PORT or [IPV6]:PORT or [IPV6] or a bare IPv6 address (two or more ':'),
 * an optional "http://" in front and "/" behind (a URL pasted from the web page). Port
 * 1..65535, default CLI_FLASH_DEFAULT_PORT. Returns 0 with host (without brackets; cap
 * bytes incl. NUL) and *port, or -EINVAL (empty host, bad port, blanks or control
 * characters, unbalanced brackets, https://) or -ENAMETOOLONG.
 */
int cli_flash_parse_host(const char *arg, char *host, size_t cap, unsigned *port);

/* Format from the file name: .hex, .ihex, .ihx (any case) -> CLI_FMT_HEX, else BIN. */
enum cli_flash_format cli_flash_detect_format(const char *path);

/*
 * Check the first bytes of an image the user gave (n bytes at head, n may be short): an ELF
 * file (0x7F 'E' 'L' 'F') cannot be flashed as it is. Returns NULL if fine, else a message
 * ("IMAGE is an ELF file: ...") for the user.
 */
const char *cli_flash_check_head(const uint8_t *head, size_t n, enum cli_flash_format fmt);

/*
 * Intel HEX pre-scan: the text rules of the bridge's decoder (ihex.h; records in ascending
 * address order without overlap, an end-of-file record with only blanks after it), run on
 * the file before anything is sent, so a bad file fails at once, and the image's address
 * and data size (the progress estimate until the bridge's bytes_total is known) come out.
 * The bridge itself writes gaps between records only inside erase units the records touch
 * and pads to the device's programming unit (http_api.h "format hex"), so its byte counts
 * may differ a little from the data size. Feed the text in pieces, then finish.
 */
struct cli_hex_scan {
	struct ihex ih;
	int started;    /* a data record was seen */
	uint32_t first; /* the first data record's address */
	uint64_t next;  /* address after the last data byte */
	uint64_t data;  /* data bytes of all records */
	int failed;
	char err[160];
};
void cli_hex_scan_init(struct cli_hex_scan *s);
/* Returns 0, or -EINVAL once the text is bad (s->err says where; later feeds do nothing). */
int cli_hex_scan_feed(struct cli_hex_scan *s, const void *p, size_t n);
/* End of text: 0 with *address (the first data record's) and *data (data bytes of all
 * records, gaps not counted), or -EINVAL (s->err: bad or truncated text, no end-of-file
 * record, no data). The span (first data byte to after the last, gaps included) is then
 * s->next - s->first. */
int cli_hex_scan_finish(struct cli_hex_scan *s, uint32_t *address, uint32_t *data);

/*
 * Read the password: the first line of path (without CR/LF), or if path is NULL the value
 * of ESPSTM_PASSWORD. 1..CLI_FLASH_PASS_MAX bytes, no control characters.
 * Returns 0 with pw (cap >= CLI_FLASH_PASS_MAX + 1), -ENOENT when path is NULL and the
 * variable is unset or empty, -EINVAL (empty first line, too long, control characters),
 * or open/read errors (-errno). msg gets a one-line reason on failure. A regular password
 * file that its group or others may access (st_mode & 077, as ssh(1) checks its keys) is
 * still read, with a warning line ("espstm flash: warning: ...") on warn (NULL: none).
 */
int cli_flash_read_password(const char *path, char *pw, size_t cap, char *msg, size_t msgcap,
                            FILE *warn);

/*
 * The bridge of device name from espstmd's `status NAME` answer ({"ok":true,"devices":
 * [{"name":..,"host":..,"http_port":..}]}, daemon/ctl.h). Returns 0 with host/port, or
 * -EPROTO (no such device object, no host, http_port missing or 0) with msg.
 */
int cli_flash_bridge_from_status(const struct cj *answer, const char *name, char *host, size_t cap,
                                 unsigned *port, char *msg, size_t msgcap);

/* Query string of the POST (no '?'): format=bin|hex[&address=0x%08X]&verify=0|1&go=0|1
 * &unprotect=0|1[&baud=B][&stage=1&crc32=0x%08X (o->stage)], fmt not CLI_FMT_AUTO.
 * Returns out (cap >= 160 is enough). */
char *cli_flash_query(char *out, size_t cap, const struct cli_flash_opts *o,
                      enum cli_flash_format fmt);
/* "http://HOST:PORT/api/targets/N/flash[?query]" (IPv6 hosts in brackets). Returns 0, or
 * -ENAMETOOLONG if it does not fit in cap. */
int cli_flash_url(char *out, size_t cap, const char *host, unsigned port, unsigned target,
                  const char *query);

/* A flash state as the bridge names it. */
enum cli_flash_state {
	CFS_UNKNOWN = 0, /* absent or not a known name */
	CFS_IDLE,
	CFS_CONNECTING,
	CFS_IDENTIFYING,
	CFS_UNPROTECTING,
	CFS_ERASING,
	CFS_WRITING,
	CFS_VERIFYING,
	CFS_STARTING,
	CFS_DONE,
	CFS_FAILED,
	CFS_STAGING, /* stage=1: the body is arriving into the bridge's staging area */
};
/* "writing" -> CFS_WRITING ...; NULL or another text -> CFS_UNKNOWN. */
enum cli_flash_state cli_flash_state_of(const char *name);
/* The bridge's name of a state ("unknown" for CFS_UNKNOWN). */
const char *cli_flash_state_name(enum cli_flash_state s);

/* One answer of POST or GET /api/targets/N/flash, or an error answer {"error":".."}. */
struct cli_flash_status {
	int json; /* 1: the body was a JSON object */
	int ok;   /* "ok": 1 true, 0 false, -1 absent */
	enum cli_flash_state state;
	int verify, go;                               /* 1/0, -1 absent */
	int64_t total;                                /* bytes_total, -1 null or absent */
	uint64_t received, erased, written, verified; /* 0 when absent */
	uint64_t elapsed_ms;
	char address[16];                                       /* "0x08000000", "" absent */
	char format[8];                                         /* "bin" | "hex" | "" */
	char dev_name[64], pid[12], family[16], bootloader[12]; /* "" when device is null */
	uint64_t flash_size;
	char error[256]; /* "" none; control characters replaced by '?' */
	char step[24];   /* state at failure, "" none */
	int stage;       /* "stage": 1 true, 0 false, -1 absent */
	uint64_t staged; /* "bytes_staged" (0 when absent) */
	char crc32[16];  /* "crc32": "0x1234ABCD", "" null or absent */
};
/* Read body (len bytes). Returns 0 (st filled; st->json 1), or -EPROTO for anything that
 * is not a JSON object (st zeroed with json 0, total -1). */
int cli_flash_parse_status(const char *body, size_t len, struct cli_flash_status *st);

/* Largest programming unit of a supported STM32 (bytes; most H7: 32). The bridge starts an
 * Intel HEX image at its first record rounded down to the unit (stm32_isp_seek()). */
#define CLI_FLASH_UNIT_MAX 32

/* What this side knows of the image it sent, to check the bridge's final counts against. */
struct cli_flash_expect {
	enum cli_flash_format fmt; /* CLI_FMT_BIN or CLI_FMT_HEX */
	uint64_t bytes;            /* bin: the file's size; hex: data bytes of all records */
	uint64_t span;             /* hex: first data byte to after the last (0 for bin) */
	int has_crc;               /* --stage: crc is the CRC-32 of the file sent */
	uint32_t crc;
};

/*
 * Do the final counts of a "done" run (http_api.h "Flashing") match the image that was
 * sent? bin: bytes_received == bytes_total == bytes_written == the file's size (the 0xFF
 * padding to the programming unit goes on the wire only). hex: bytes_received == the data
 * bytes (decoded), bytes_written == bytes_total, and bytes_total between the data bytes
 * and span + CLI_FLASH_UNIT_MAX - 1 (the bridge adds 0xFF only for short gaps inside the
 * span and before the first record, down to the programming unit; larger gaps it skips).
 * Returns 0, or CLI_FLASH_EXIT_FAILED with a one-line reason in msg.
 */
int cli_flash_check_counts(const struct cli_flash_status *st, const struct cli_flash_expect *e,
                           char *msg, size_t cap);

/*
 * What the POST's final answer means. http_status: the HTTP status (0: none). st: its body
 * (cli_flash_parse_status). verify_wanted: verify asked (the default; 0 with --no-verify).
 * expect: the image sent (cli_flash_check_counts; NULL: counts not checked).
 * retry_after_s: Retry-After of a 429 (-1 none). target: N. Returns the exit status; msg
 * (cap bytes) gets a one-line reason for anything but success (401: wrong password, 403,
 * 429 with the wait, 409 busy or aborted (DELETE), 413 too large, 423 protection
 * (--unprotect), 400, 404, 501, 502 chip, other 5xx; 200 that is not "done", done without
 * every byte verified when verify was asked, or done with counts that do not match the
 * image: failed). A 400 whose "crc32" differs from expect->crc (--stage: the image reached
 * the bridge damaged, nothing was flashed) is CLI_FLASH_EXIT_DATAERR.
 */
int cli_flash_outcome(long http_status, const struct cli_flash_status *st, int verify_wanted,
                      const struct cli_flash_expect *expect, long retry_after_s, unsigned target,
                      char *msg, size_t cap);

/* Sizes and speeds for people: "512 B", "64.0 KiB", "1.50 MiB"; "5.1 KiB/s"; durations
 * "0:08", "12:03", "1:02:03" ("--:--" for a negative or non-finite value). Return out. */
char *cli_flash_fmt_bytes(char *out, size_t cap, uint64_t n);
char *cli_flash_fmt_rate(char *out, size_t cap, double bytes_per_s);
char *cli_flash_fmt_eta(char *out, size_t cap, double seconds);

/* Progress display state. Times are seconds on any monotonic clock. */
struct cli_flash_progress {
	uint64_t total;  /* image bytes (0 = unknown: from the answers) */
	int verify;      /* verify asked: work = written + verified */
	double t0;       /* start of the upload */
	double t_write;  /* when the first bytes were written (< 0: not yet) */
	int last_group;  /* phase group of the last plain line (-1 none) */
	int last_decile; /* 10% steps printed in the write phase */
};
void cli_flash_progress_init(struct cli_flash_progress *p, uint64_t total, int verify, double now);
/* Work done, 0..1 (written, plus verified when verify was asked, of the total). */
double cli_flash_fraction(const struct cli_flash_progress *p, const struct cli_flash_status *st);
/*
 * One progress-bar line for a terminal of width columns (no CR, no newline; at most
 * width - 1 characters): phase, bar, percent, bytes done of total, rate, ETA, e.g.
 * "write+verify [########......]  45%  28.8/64.0 KiB  4.9 KiB/s  ETA 0:08".
 * Returns out.
 */
char *cli_flash_bar_line(struct cli_flash_progress *p, const struct cli_flash_status *st,
                         double now, int width, char *out, size_t cap);
/*
 * Plain progress (not a terminal): 1 and a line in out (no newline) when one is due: the
 * phase group changed (connecting, identifying, unprotecting, erasing, writing - writing and
 * verifying blocks alternate, that is one group -, starting, done, failed), or the write
 * phase passed another 10%; else 0.
 */
int cli_flash_plain_line(struct cli_flash_progress *p, const struct cli_flash_status *st,
                         double now, char *out, size_t cap);
/* The line printed after success: what was written where, "verified" or "NOT verified",
 * started, device, time and speed. secs: the run's duration. Returns out. */
char *cli_flash_summary(char *out, size_t cap, const char *who, const struct cli_flash_status *st,
                        double secs);

#endif
