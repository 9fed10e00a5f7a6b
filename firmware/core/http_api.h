/* SPDX-License-Identifier: MIT */
/*
 * HTTP API and web page of the firmware, independent of the HTTP server (ESP: esp_http_server;
 * espstm-bridge: libmicrohttpd). Portable C11, no OS calls, no heap: the server hands over
 * method, path, the Authorization and X-Espstm-Request headers and the body; the handler
 * returns a status, content type and body (pointing into struct http_api or static data).
 *
 * Routes (every one requires HTTP Basic authentication, user "admin" and the unit's web
 * password, compared in constant time):
 *   GET  /                              the web page (one HTML file, inline CSS/JS)
 *   GET  /api/status                    status JSON (WiFi fields null where not applicable)
 *   GET  /api/settings                  settings JSON (settings_to_json)
 *   PUT  /api/settings                  partial settings JSON -> 200 {"saved":bool,...} or
 *                                       400 {"error":..,"fields":{"targets[0].baud":"..."}}
 *   POST /api/targets/N/reset           NRST pulse (BOOT0 unchanged)
 *   POST /api/targets/N/bootloader      BOOT0 high + NRST pulse
 *   POST /api/targets/N/run             BOOT0 low + NRST pulse (application)
 *   POST /api/targets/N/flash?...       flash an image (streamed; see "Flashing" below)
 *   GET  /api/targets/N/flash           progress / result of the last flash of target N
 *   DELETE /api/targets/N/flash         abort the running upload / flash of target N
 * Changing calls (PUT/POST/DELETE) also need the header "X-Espstm-Request: 1" (403 otherwise): a
 * cross-site form cannot send it, so a browser's cached credentials cannot be abused (CSRF).
 * reset/bootloader/run answer 409 while a flash runs on the target.
 *
 * Lock-out: after HTTP_API_FREE_FAILS wrong passwords in a row, every authenticated request
 * is answered 429 (Retry-After) without checking, for 1 s, doubling per further failure up
 * to HTTP_API_MAX_LOCK_MS. The handler never sleeps: the server loop is not blocked.
 * Requests without an Authorization header get 401 and do not count as failures.
 *
 * Flashing (issue 5 item 2), with the AN3155 master of stm32_isp.h:
 *   POST /api/targets/N/flash?address=0x08000000&verify=1&go=1&unprotect=0&format=bin
 *   body: the image, streamed. Parameters (all optional, each at most once; an unknown or
 *   malformed one is 400):
 *     format    bin (default) | hex. hex: Intel HEX (ihex.h), decoded as it arrives; the
 *               image starts at its first data record (rounded down to the device's
 *               programming unit, 0xFF before it), records must come in ascending address
 *               order, an end-of-file record is required and nothing but blanks and line
 *               breaks may follow it. Gaps between records are not written
 *               (stm32_isp_seek): erase units no record touches are neither erased nor
 *               written and keep their contents; gap bytes in units a record touches read
 *               0xFF (erased). A record outside the device's flash fails the run with an
 *               error naming its address (413, 400 below the flash base) before anything
 *               is erased or written for it; the records before it have been written.
 *     address   bin only (400 with hex): where the first byte goes, 0x-hex or decimal, a
 *               multiple of 4 and of the device's programming unit (8 on G0/G4/L4/WB/WL,
 *               16 on U5, 32 on most H7: 400 once GET ID has named the device, before
 *               anything is erased); default: the device's flash base (0x08000000 on
 *               every supported family).
 *     verify    0|1 (default 1): read every block back (READ MEMORY) and compare.
 *     go        0|1 (default 0): 1 starts the application at the image base (GO), then
 *               BOOT0 low; 0 leaves the chip in its bootloader (as stm32flash without -g).
 *     unprotect 0|1 (default 0): 1 allows READOUT UNPROTECT (mass erase!) when read
 *               protection is found and WRITE UNPROTECT when erase/write is refused.
 *     baud      bootloader baud, default 115200.
 *     stage     0|1 (default 0): 1 = verify before commit (see "Staged upload" below).
 *     crc32     0x-hex (or decimal): the CRC-32 of the whole body as zlib's crc32()
 *               computes it (ISO-HDLC: reflected, init and xorout 0xFFFFFFFF); only with
 *               stage=1 (else 400). The staged body must match it, else nothing is flashed.
 *   The bytes are written to the STM32 while they arrive: the upload is throttled to the
 *   UART (the server takes body bytes only as fast as stm32_isp_write() accepts them), no
 *   whole image is buffered. Content-Length (bin) is the image size: the range is checked
 *   against the device before anything is erased. The answer comes when the run has ended:
 *     200 {"ok":true,"state":"done",...the GET fields...}
 *     4xx/5xx {"ok":false,"state":"failed","error":"...","step":"writing",...}
 *   Status codes: 400 bad parameter, bad Intel HEX, image not whole (fewer bytes than
 *   Content-Length), empty image; 409 a flash is already running on the target; 413 image
 *   (Content-Length or address range) larger than the flash; 423 read or write protection
 *   found and unprotect=0; 502 the chip did not answer as AN3155 says (no sync, timeout,
 *   NACK after retries, unknown device, verify mismatch); 500 UART refused 8E1, other;
 *   501 this platform cannot flash the target. 401/403/429 as for every changing call.
 *   A client that disconnects mid-body aborts the run: state "failed", error "upload
 *   interrupted: ...", never "done".
 *   Staged upload (stage=1, verify before commit): the STM32 is NOT touched while the body
 *   arrives (no flash_claim, no stm32_isp_begin; the bridge session keeps running, except
 *   where the platform holds it, see "Staging and the UART" below): the
 *   body goes to the platform's staging store (api_ops.stage_*) at network speed and its
 *   CRC-32 is computed as it arrives (api_ops.crc32). Content-Length is required (411
 *   without it) and must fit the staging area (413 "image (N bytes) larger than the staging
 *   area (M bytes)"); a platform without a store answers 501 "this platform cannot stage";
 *   a store in use by another target's upload: 409. When the body is complete: fewer bytes
 *   than Content-Length -> failed "upload interrupted ...; the STM32 was not touched";
 *   crc32 given and different -> 400 "image CRC-32 0x.. does not match crc32=0x..: the
 *   STM32 was not touched". format=hex: the staged bytes also go through the Intel HEX
 *   parser (ihex.h) as they arrive, as a dry run (nothing goes to the ISP): checksums,
 *   record types, record lengths, ascending addresses without overlap, the end-of-file
 *   record with nothing but blanks after it and at least one data record; the first error
 *   fails the upload when the body is complete (after the CRC-32 check, which is reported
 *   first), 400 "<the parser's message>; the STM32 was not touched", before the commit.
 *   Only the records' range against the device's flash (413 / 400 below its base) cannot
 *   be checked before GET ID has named the device: that one is found in the replay, as
 *   for a streamed body (the records before the bad one have been written).
 *   Otherwise the commit starts: the target is claimed, the ISP begins, and the staged
 *   bytes are read back in small pieces (HTTP_API_REPLAY_BUF, no whole image in RAM) into
 *   the same bin / Intel HEX pipeline a streamed body goes through, driven by
 *   http_api_flash_poll() (HTTP_API_REPLAY_STEPS pieces per call at most;
 *   HTTP_API_FLASH_AGAIN asks for the next call at once when the replay is not waiting for
 *   the ISP, e.g. HEX records without data). The answer comes when the run has ended, as
 *   for a streamed body. A connection that breaks while staging fails the run (step
 *   "upload", "upload interrupted: ...; the STM32 was not touched"); once the commit has
 *   started, the flash goes on from the staged copy even if the client goes away (the
 *   result is then read with GET).
 *   Staging and the UART: on the ESP the store is a flash partition, and writing or erasing
 *   flash stops the caches and every interrupt not in IRAM (ESP-IDF), or all interrupts
 *   (ESP8266 SDK v3.4, ~45 ms per sector erase): UART input beyond the 128-byte FIFO can be
 *   lost meanwhile. The ESP firmware therefore puts the UART interrupt in IRAM (ESP-IDF:
 *   other targets' sessions and flashes keep their input in the driver's ring) and holds
 *   the staged target's own session from stage_begin to stage_end as during a flash (its
 *   client's data waits, its UART output is dropped; pins and framing keep their levels).
 *   Remaining risk: on ESP-IDF, input beyond the driver's ring during one erase (a high
 *   baud rate); settings saved to NVS during a session (both SDKs). espstm-bridge stages
 *   into a file: no such effect, the session keeps running.
 *   Abort: DELETE /api/targets/N/flash (authentication and X-Espstm-Request: 1) stops the
 *   target's upload or run at once (stm32_isp_abort; a staged upload stops staging): the
 *   run fails with error "aborted by the client" (HTTP status of its answer: 409), and
 *   DELETE answers 200 with the flash fields (state "failed"). Nothing running: 409
 *   {"error":"no flash is running on target N","state":"<the last run's state>"}. The POST, if
 * still connected, gets its failed answer once its body is in (the rest is read and dropped, no
 * longer throttled to the UART). On servers that run one request at a time (ESP8266, ESP-IDF before
 * v5.2) the DELETE is served only after the upload. While a flash runs the target's bridge session
 * is suspended (bridge_suspend): the RFC 2217 client stays connected, its data waits (TCP
 * backpressure, nothing dropped), nothing from the UART reaches it, its framing queries/changes and
 * NOTIFY polls are still answered; afterwards its framing and pin levels are re-applied. GET
 * /api/targets/N/flash (authentication, no X-Espstm-Request needed) ->
 *     {"target":0,"state":"idle|staging|connecting|identifying|unprotecting|erasing|
 *      writing|verifying|starting|done|failed","format":"bin","address":"0x08000000",
 *      "verify":true,"go":false,"bytes_total":65536 (null while unknown: hex before its
 *      end),"bytes_received":..,"bytes_erased":..,"bytes_written":..,"bytes_verified":..,
 *      "device":null|{"pid":"0x410","name":"...","family":"F1","flash_size":131072,
 *      "bootloader":"2.2"},"error":null|"...","step":null|"writing","elapsed_ms":..,
 *      "stage":false,"bytes_staged":0,"crc32":null|"0x1234ABCD"}
 *   "address": the image's start, null while unknown (bin without address=: the flash
 *   base, known once GET ID has named the device; hex: its first data record, known
 *   once it is decoded, for stage=1 while staging; rounded down to the programming unit
 *   once the run has begun).
 *   "staging": a stage=1 body is arriving (nothing sent to the STM32 yet); "bytes_staged"
 *   counts body bytes in the staging store; "crc32" is the CRC-32 of the whole staged body
 *   (null before the body is complete, and for streamed uploads).
 *   "step" is the state the run was in when it failed ("upload" if it failed before the
 *   flasher started, e.g. an Intel HEX error in the first records). "bytes_received"
 *   counts image bytes the flasher accepted (HEX: decoded data bytes); "bytes_written" and
 *   "bytes_total" count the bytes programmed, with the 0xFF that pads a segment to the
 *   programming unit and fills short gaps inside erase units the image touches.
 *   The last run's result stays until the next one starts ("idle" before the first).
 *
 * The server side of flashing: http_api_flash_route() recognises the POST before its body
 * is read; http_api_flash_start() checks it (auth, parameters, busy) and starts the run or
 * fills the error response; the body goes to http_api_flash_body() (which may take fewer
 * bytes than offered: stop reading until http_api_flash_poll() reports room),
 * http_api_flash_body_end() marks its end, http_api_flash_cancel() a broken connection;
 * http_api_flash_poll() is called after every stm32_isp_poll()/input() of the target and
 * says when the body may continue and when the result is ready
 * (http_api_flash_result()). The platform claims the target's UART and pins for the ISP
 * through api_ops.flash_claim (bridge_suspend + routing the UART's bytes to
 * stm32_isp_input) and drives the ISP (stm32_isp.h "The platform"). With stage=1 it
 * keeps calling http_api_flash_poll() after the body as it does for a streamed one: the
 * staged copy is replayed from there.
 */
#ifndef ESPSTM_HTTP_API_H
#define ESPSTM_HTTP_API_H

#include "hal.h"
#include "ihex.h"
#include "settings.h"
#include "stm32_isp.h"

#include <stddef.h>
#include <stdint.h>

#define HTTP_API_USER        "admin"
#define HTTP_API_PASS_MAX    64
#define HTTP_API_FREE_FAILS  3
#define HTTP_API_MAX_LOCK_MS 30000u
#define HTTP_API_OUT         3072

enum api_action { API_ACT_RESET = 0, API_ACT_BOOTLOADER = 1, API_ACT_RUN = 2 };

struct api_target_status {
	int client_connected;
	const char *client_addr;  /* NULL: unknown */
	struct hal_uart_cfg uart; /* framing in force now (RFC 2217 codes) */
	int nrst, boot0;          /* pin levels, -1 unknown */
	uint32_t bytes_to_uart, bytes_from_uart;
	uint32_t errors;
	const char *mode; /* "idle", "telnet", "raw", ... or NULL */
};

struct api_status {
	const char *version;
	uint32_t uptime_s;
	/* WiFi: NULL / has_rssi 0 on espstm-bridge */
	const char *wifi_mode, *ssid, *ip, *hostname;
	int has_rssi, rssi;
	unsigned target_count;
	struct api_target_status t[SETTINGS_MAX_TARGETS];
};

struct api_ops {
	void (*status)(void *ctx, struct api_status *st);
	/* New settings are current (already stored): apply what can be applied at run time. */
	void (*apply)(void *ctx, const struct settings *s);
	/* 0, or negative errno (-EBUSY: a sequence is running). */
	int (*action)(void *ctx, unsigned target, enum api_action a);
	void (*log)(void *ctx, const char *line); /* may be NULL */
	/* Added for flashing (may be NULL: flashing answers 501). The target's AN3155 master
	 * (initialised with the target's HAL), or NULL if it cannot be flashed. */
	struct stm32_isp *(*isp)(void *ctx, unsigned target);
	/* on = 1: a flash starts on target: suspend its bridge session (bridge_suspend) and
	 * hand every byte from its UART to stm32_isp_input() (drop them while the ISP is not
	 * busy), poll the ISP as stm32_isp.h says. on = 0: the run is over: resume the session
	 * (its framing and pins are re-applied). Called in pairs. */
	void (*flash_claim)(void *ctx, unsigned target, int on);
	/*
	 * Staging store for stage=1 uploads (http_api.h "Staged upload"). All of stage_*,
	 * and crc32 may be NULL: stage=1 then answers 501. One store may serve every target
	 * (one staged upload at a time); all are called from the http_api_flash_* calls.
	 * stage_capacity: bytes the store holds for target (0: none -> 501).
	 * stage_begin: a staged upload of size bytes (<= capacity) starts on target: prepare
	 *   (e.g. erase flash sectors); it may hold the target's bridge session until
	 *   stage_end (bridge_suspend, e.g. through the platform's flash claim) but must not
	 *   touch the STM32 (no pin change, no UART output, no ISP call). Returns 0,
	 *   -ENOSPC (larger than the store: 413), -EBUSY (in use by another target: 409) or
	 *   -EIO (500).
	 * stage_write: n body bytes at offset off (in order, off + n <= size). 0 or -EIO.
	 * stage_read: n bytes at off (off + n <= the bytes written) into p. 0 or -EIO.
	 * stage_end: the staged upload is over (done, failed or aborted); the store is free.
	 *   Called once after every successful stage_begin.
	 * crc32: zlib's crc32(): crc = crc32(crc, p, n) continues a CRC-32 (ISO-HDLC; start
	 *   with 0), e.g. zlib crc32(), ESP-IDF esp_rom_crc32_le(), ESP8266 SDK crc32_le().
	 */
	uint32_t (*stage_capacity)(void *ctx, unsigned target);
	int (*stage_begin)(void *ctx, unsigned target, uint32_t size);
	int (*stage_write)(void *ctx, unsigned target, uint32_t off, const uint8_t *p, size_t n);
	int (*stage_read)(void *ctx, unsigned target, uint32_t off, uint8_t *p, size_t n);
	void (*stage_end)(void *ctx, unsigned target);
	uint32_t (*crc32)(uint32_t crc, const uint8_t *p, size_t n);
};

struct api_request {
	const char *method;        /* "GET", "PUT", "POST", ... */
	const char *path;          /* without query string */
	const char *authorization; /* header value or NULL */
	const char *x_request;     /* X-Espstm-Request header value or NULL */
	const char *body;
	size_t body_len;
	uint32_t now_ms; /* monotonic ms (lock-out timing) */
};

struct api_response {
	int status;
	const char *content_type;
	const char *body;
	size_t len;
	int www_authenticate;   /* 1: send WWW-Authenticate: HTTP_API_CHALLENGE */
	uint32_t retry_after_s; /* >0: send Retry-After */
};
#define HTTP_API_CHALLENGE "Basic realm=\"espstm\", charset=\"UTF-8\""

/* One flash upload of a target (private: use the http_api_flash_* functions). */
enum api_flash_phase {
	API_FLASH_NONE = 0, /* no upload (the last result, if any, stays readable) */
	API_FLASH_UPLOAD,   /* body arriving (streamed to the ISP, or staged) */
	API_FLASH_REPLAY,   /* stage=1: body checked, the staged copy goes to the ISP */
	API_FLASH_FINISH,   /* body complete, the run is finishing */
	API_FLASH_RESULT,   /* run ended: result ready for http_api_flash_result() */
};

/* Staged bytes read back per step of the replay (bytes of RAM per target), and steps per
 * http_api_flash_poll() at most (then HTTP_API_FLASH_AGAIN if there is more to do). */
#define HTTP_API_REPLAY_BUF   256
#define HTTP_API_REPLAY_STEPS 64

struct api_flash {
	enum api_flash_phase phase;
	int used;    /* a flash was started since boot */
	int claimed; /* flash_claim(1) without its flash_claim(0) yet */
	int begun;   /* stm32_isp_begin() succeeded */
	int ended;   /* stm32_isp_end() called */
	int hex;     /* format=hex */
	int verify, go, unprotect;
	int body_done;    /* http_api_flash_body_end() */
	int failed;       /* failure found here (HEX, upload, parameters), see error */
	int status;       /* HTTP status of the result */
	uint32_t address; /* requested (bin; 0 = flash base) or first HEX address */
	uint32_t baud;
	int64_t content_length; /* -1 unknown */
	uint32_t body_bytes;    /* body bytes taken */
	uint32_t next_addr;     /* hex: address of the next image byte */
	int seek;               /* hex: stm32_isp_seek(seek_addr) still to do */
	uint32_t seek_addr;
	enum stm32_isp_state step; /* last state before the end */
	struct stm32_isp *isp;
	struct ihex ihex;
	/* stage=1 */
	int stage;            /* a staged upload */
	int stage_open;       /* stage_begin() without its stage_end() yet */
	int committed;        /* body checked: claimed, replaying or finishing */
	int detached;         /* the client left after the commit: no answer, GET only */
	int has_crc;          /* crc32= given */
	int crc_done;         /* the whole body was staged: crc is final */
	uint32_t crc_want;    /* crc32= */
	uint32_t crc;         /* CRC-32 of the body so far */
	uint32_t staged;      /* body bytes in the store */
	uint32_t replayed;    /* staged bytes read back (into rbuf) */
	int again;            /* the replay stopped at its guard with more to do now */
	int addr_known;       /* address (bin: address=; hex: first data record) is known */
	int hex_bad;          /* stage=1 hex: the dry run found an error (in error) */
	uint32_t dry_records; /* stage=1 hex: data records seen by the dry run */
	uint64_t dry_next;    /* stage=1 hex: address after the last data record so far */
	uint16_t rlen, roff;  /* rbuf[roff..rlen) not yet taken by the pipeline */
	uint8_t rbuf[HTTP_API_REPLAY_BUF];
	char error[STM32_ISP_MSG + 48];
};

struct http_api {
	const struct api_ops *ops;
	void *ctx;
	struct settings_mgr *settings;
	char pass[HTTP_API_PASS_MAX + 1];
	uint32_t fails;       /* wrong passwords in a row */
	uint32_t fails_total; /* since start */
	uint32_t locked_until;
	int locked;
	char out[HTTP_API_OUT];
	struct api_flash flash[SETTINGS_MAX_TARGETS];
};

/* pass: the web password (1..64 characters). Returns 0 or -EINVAL. */
int http_api_init(struct http_api *api, const struct api_ops *ops, void *ctx,
                  struct settings_mgr *settings, const char *pass);
void http_api_handle(struct http_api *api, const struct api_request *rq, struct api_response *rs);

/*
 * Flashing, server side (see "Flashing" above). All take the target index N of the path.
 *
 * http_api_flash_route: 1 if method/path is "POST /api/targets/N/flash" (N in *target,
 * any N; path without the query string), else 0. The server then streams the body through
 * the calls below instead of http_api_handle().
 *
 * http_api_flash_start: headers complete, no body read yet. query: the raw query string
 * (after '?', without it; NULL = none; no %-escapes: '%' is refused). content_length:
 * body length from Content-Length, -1 if unknown (chunked). Returns 1: the run started,
 * stream the body (rs untouched); 0: rs holds the answer (auth, parameters, 409 busy,
 * 413, 501), send it and do not read the body.
 *
 * http_api_flash_body: body bytes p/n. Returns how many were taken (0..n). Fewer than n:
 * keep the rest, offer it again when http_api_flash_poll() reports HTTP_API_FLASH_ROOM.
 * Once the run has failed, every byte is taken and dropped (the answer is sent when the
 * body is complete).
 *
 * http_api_flash_body_end: the whole body was taken.
 *
 * http_api_flash_cancel: the connection broke (or timed out) before the answer: the run
 * is aborted (stm32_isp_abort) and fails with "upload interrupted: <why> after N of M
 * bytes" unless it had already ended. why: short text ("connection closed"). A staged
 * upload whose commit has started is not aborted: it goes on without anyone to answer
 * (http_api_flash_poll() keeps driving it; GET shows the result).
 *
 * http_api_flash_abort: stop target's upload or run now (DELETE .../flash does this):
 * stm32_isp_abort, the run fails with error why (NULL: "aborted by the client") and HTTP
 * status 409 for its POST. Returns 1 if something was running, 0 if not (nothing changed).
 * Call http_api_flash_poll() afterwards (http_api_handle does for DELETE) to wake a
 * waiting POST.
 *
 * http_api_flash_poll: run after the ISP of target moved (and after the calls above).
 * Writes pending HEX data, replays a staged image, ends the run when the body is complete,
 * releases the claim when the ISP is done. Returns a mask: HTTP_API_FLASH_ROOM (body bytes
 * are taken now), HTTP_API_FLASH_RESULT (the answer is ready: http_api_flash_result()),
 * HTTP_API_FLASH_AGAIN (the replay of a staged image stopped after HTTP_API_REPLAY_STEPS
 * pieces with more to do that does not wait for the ISP: call again at once, e.g. from a
 * zero timer or without sleeping, not at the next wake-up). 0: wait.
 *
 * http_api_flash_result: fills rs with the final answer (status and JSON in api->out,
 * valid until the next call into api) and forgets the upload (phase NONE; GET still shows
 * the result). Returns 1, or 0 if the run has not ended yet (rs untouched).
 */
#define HTTP_API_FLASH_ROOM   1
#define HTTP_API_FLASH_RESULT 2
#define HTTP_API_FLASH_AGAIN  4
int http_api_flash_route(const char *method, const char *path, unsigned *target);
int http_api_flash_start(struct http_api *api, const struct api_request *rq, const char *query,
                         int64_t content_length, struct api_response *rs);
size_t http_api_flash_body(struct http_api *api, unsigned target, const uint8_t *p, size_t n);
void http_api_flash_body_end(struct http_api *api, unsigned target);
void http_api_flash_cancel(struct http_api *api, unsigned target, const char *why);
int http_api_flash_abort(struct http_api *api, unsigned target, const char *why);
int http_api_flash_poll(struct http_api *api, unsigned target);
int http_api_flash_result(struct http_api *api, unsigned target, struct api_response *rs);
/* 1 while target has an upload or a run in progress (actions answer 409). */
int http_api_flash_busy(const struct http_api *api, unsigned target);

/* Constant-time equality of a (alen bytes) and b (blen bytes): time depends only on blen
 * (the secret's length), never on where they differ. 1 equal, 0 not. */
int http_api_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Counts http_api_ct_equal calls (tests check the password goes through it). */
extern uint32_t http_api_ct_calls;

/* The web page (web_page.c). */
extern const char http_api_page[];
extern const size_t http_api_page_len;

#endif
