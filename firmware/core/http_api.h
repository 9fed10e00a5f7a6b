/* SPDX-License-Identifier: MIT */
/*
 * HTTP API and web page of the firmware, independent of the HTTP server (ESP: esp_http_server;
 * espstm-bridge: libmicrohttpd): the server hands over method, path, the Authorization and
 * X-Espstm-Request headers and the body; the handler returns status, content type and body.
 * Portable C11, no OS calls, no heap. The flash job behind POST .../flash is flash_job.h.
 */
#ifndef ESPSTM_HTTP_API_H
#define ESPSTM_HTTP_API_H

#include "flash_job.h"
#include "hal.h"
#include "settings.h"
#include "stm32_isp.h"

#include <stddef.h>
#include <stdint.h>

#define HTTP_API_USER        "admin"
#define HTTP_API_PASS_MAX    64
#define HTTP_API_FREE_FAILS  3
#define HTTP_API_MAX_LOCK_MS 30000u
#define HTTP_API_PEERS       16 /* lock-out table: client addresses */
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

/* The unit's TLS-PSK key as POST /api/pair hands it out (identity "espstm-" + 16 hex). */
#define API_PAIR_ID_MAX  40
#define API_PAIR_KEY_LEN 32
#define API_PAIR_PIN_MAX 63
struct api_pair {
	char identity[API_PAIR_ID_MAX + 1];
	uint8_t key[API_PAIR_KEY_LEN];
	char pin[API_PAIR_PIN_MAX + 1]; /* "sha256//BASE64" of the HTTPS certificate, or "" */
	uint16_t port; /* target 0's RFC 2217 port if the platform knows better; 0: settings' */
};

/* The holder of a target's RFC 2217 port (api_ops.clients), for "clients" in /api/status. */
#define API_CLIENTS_MAX 4
struct api_client {
	unsigned target;
	char peer[48];     /* "127.0.0.1:5555" */
	int tls;           /* 1: TLS-PSK session, 0: plaintext */
	uint32_t since_s;  /* connected for this long (s) */
	uint32_t idle_s;   /* no byte either way for this long (s) */
	uint64_t bytes_in; /* bytes received from / sent to the client on the socket */
	uint64_t bytes_out;
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
	 * Staging store for stage=1 uploads ("Staged upload" below). All of stage_* and crc32
	 * may be NULL: stage=1 then answers 501. One store may serve every target (one staged
	 * upload at a time); all are called from the http_api_flash_* calls.
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
	 * Staging and the UART: on the ESP the store is a flash partition, and writing or
	 * erasing flash stops the caches and every interrupt not in IRAM (ESP-IDF), or all
	 * interrupts (ESP8266 SDK v3.4, ~45 ms per sector erase): UART input beyond the 128-byte
	 * FIFO can be lost meanwhile. The ESP firmware therefore puts the UART interrupt in IRAM
	 * and holds the staged target's own session from stage_begin to stage_end as during a
	 * flash. Remaining risk: on ESP-IDF, input beyond the driver's ring during one erase (a
	 * high baud rate); settings saved to NVS during a session. espstm-bridge stages into a
	 * file: no such effect, the session keeps running.
	 */
	uint32_t (*stage_capacity)(void *ctx, unsigned target);
	int (*stage_begin)(void *ctx, unsigned target, uint32_t size);
	int (*stage_write)(void *ctx, unsigned target, uint32_t off, const uint8_t *p, size_t n);
	int (*stage_read)(void *ctx, unsigned target, uint32_t off, uint8_t *p, size_t n);
	void (*stage_end)(void *ctx, unsigned target);
	uint32_t (*crc32)(uint32_t crc, const uint8_t *p, size_t n);
	/*
	 * Pairing (POST /api/pair, /api/pair/rotate; both may be NULL: 404). The unit's key of
	 * its RFC 2217 port (TLS-PSK, RFC 4279) as plain fields: the core has no crypto.
	 * pair_key: fill out->identity and out->key (out->pin: the HTTPS certificate's pin
	 *   "sha256//..." or "" when unknown). Returns 0, -EPERM (this request did not come
	 *   over HTTPS: 403 "pairing needs HTTPS"), -ENOENT (the unit has no key: 404), or
	 *   another negative errno (500).
	 * pair_rotate: replace the unit's key with a new random one (stored before it
	 *   returns), drop the RFC 2217 client connected with the old key. Returns 0 or as
	 *   pair_key.
	 */
	int (*pair_key)(void *ctx, struct api_pair *out);
	int (*pair_rotate)(void *ctx);
	/*
	 * Signed images ("Signed images" below; all may be NULL: the unit is never locked).
	 * The core has no cryptography: the platform checks the signature (espstm-bridge:
	 * firmware/crypto/image_sig.h).
	 * locked: 1 when a verification key is installed (locked mode), else 0.
	 * sig_begin: a signed upload of target starts: the signed message is the line
	 *   "espstm-image-v1 " + addr_text + "\n" (addr_text "0x%08x" of a .bin's address or
	 *   "hex") and then the staged bytes; sig/siglen is the DER signature (<=
	 *   FLASH_JOB_SIG_MAX bytes). Returns 0, or -EINVAL (not a DER ECDSA signature). A begun
	 *   check may be abandoned (the upload failed) and begun again.
	 * sig_update: the next n staged bytes (in order).
	 * sig_check: the body is complete: 0 the signature matches, -EBADMSG it does not (other
	 *   key, image or address), -EINVAL it cannot be checked.
	 */
	int (*locked)(void *ctx);
	int (*sig_begin)(void *ctx, unsigned target, const char *addr_text, const uint8_t *sig,
	                 size_t siglen);
	void (*sig_update)(void *ctx, unsigned target, const uint8_t *p, size_t n);
	int (*sig_check)(void *ctx, unsigned target);
	/* Client holders (may be NULL: "clients" is []): fill c[0..max) with the connected
	 * clients of the RFC 2217 ports, return how many. */
	unsigned (*clients)(void *ctx, struct api_client *c, unsigned max);
	/* Drop target's RFC 2217 client (take-over; may be NULL: 501). Returns 1 dropped, 0 no
	 * client was connected. */
	int (*disconnect)(void *ctx, unsigned target);
};

struct api_request {
	const char *method;        /* "GET", "PUT", "POST", ... */
	const char *path;          /* without query string */
	const char *authorization; /* header value or NULL */
	const char *x_request;     /* X-Espstm-Request header value or NULL */
	const char *signature;     /* X-Espstm-Signature header value (base64) or NULL */
	const char *body;
	size_t body_len;
	uint32_t now_ms; /* monotonic ms (lock-out timing) */
	/* The client's address, network byte order: 4 bytes (IPv4) or 16 (IPv6); NULL or
	 * length 0: unknown (every unknown client shares one lock-out entry). */
	const uint8_t *client_addr;
	size_t client_addr_len;
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

struct http_api {
	const struct api_ops *ops;
	void *ctx;
	struct settings_mgr *settings;
	char pass[HTTP_API_PASS_MAX + 1];
	uint32_t fails_total; /* wrong passwords since start, every address */
	/* lock-out per client address (http_api_handle "Lock-out"); free: len 0xFF */
	struct http_api_peer {
		uint8_t addr[16];
		uint8_t len;   /* 4, 16, 0 (unknown) or 0xFF (free) */
		uint8_t fails; /* wrong passwords in a row (saturates at 255) */
		uint8_t locked;
		uint32_t locked_until; /* now_ms */
		uint32_t used;         /* LRU stamp */
	} peer[HTTP_API_PEERS], overflow;
	uint32_t use_clock;
	char out[HTTP_API_OUT];
	int out_secret; /* 1: out holds a unit key (POST /api/pair): wiped at the next call */
	struct flash_job flash[SETTINGS_MAX_TARGETS]; /* use the http_api_flash_* calls */
};

/* pass: the web password (1..64 characters). Returns 0 or -EINVAL. */
int http_api_init(struct http_api *api, const struct api_ops *ops, void *ctx,
                  struct settings_mgr *settings, const char *pass);
/*
 * One request (every route requires HTTP Basic authentication, user "admin" and the unit's
 * web password, compared in constant time; rs points into api->out or static data):
 *   GET  /                              the web page (one HTML file, inline CSS/JS)
 *   GET  /api/status                    status JSON (WiFi fields null where not applicable)
 *   GET  /api/settings                  settings JSON (settings_to_json)
 *   PUT  /api/settings                  partial settings JSON -> 200 {"saved":bool,...} or
 *                                       400 {"error":..,"fields":{"targets[0].baud":"..."}}
 *   POST /api/targets/N/reset           NRST pulse (BOOT0 unchanged)
 *   POST /api/targets/N/bootloader      BOOT0 high + NRST pulse
 *   POST /api/targets/N/run             BOOT0 low + NRST pulse (application)
 *   POST /api/targets/N/flash?...       flash an image: streamed, see "Flashing" below
 *   GET  /api/targets/N/flash           progress / result of the last flash of target N
 *   DELETE /api/targets/N/flash         abort the running upload / flash of target N
 *   POST /api/pair                      the unit's RFC 2217 key, HTTPS only ("Pairing")
 *   POST /api/pair/rotate               a new unit key; every paired host must pair again
 *   POST /api/targets/N/disconnect      drop the client of target N's RFC 2217 port:
 *                                       200 {"target":N,"dropped":true|false}
 * /api/status has "clients": [{"target":0,"peer":"127.0.0.1:5555","tls":true,"since_s":12,
 * "idle_s":3,"bytes_in":..,"bytes_out":..}] (api_ops.clients; [] without it).
 * Changing calls (PUT/POST/DELETE) also need the header "X-Espstm-Request: 1" (403 otherwise):
 * a cross-site form cannot send it, so a browser's cached credentials cannot be abused (CSRF).
 * reset/bootloader/run answer 409 while a flash runs on the target.
 * Lock-out, per client address (api_request.client_addr): after HTTP_API_FREE_FAILS wrong
 * passwords in a row from one address, its requests are answered 429 (Retry-After) without
 * checking, for 1 s, doubling per further failure up to HTTP_API_MAX_LOCK_MS; the right
 * password from another address is checked as usual (a guesser cannot keep the admin out).
 * The handler never sleeps: the server loop is not blocked. Requests without an
 * Authorization header get 401 and do not count as failures. The table holds HTTP_API_PEERS
 * addresses (IPv4 and IPv6 as bytes; every unknown address shares one entry); a new address
 * with a wrong password takes a free entry, else the least recently used one without a
 * running lock: a locked address is never replaced while such an entry exists, so many
 * addresses cannot unlock it quickly. When every entry holds a running lock, addresses not
 * in the table share one overflow entry (checked and locked like one address): guessing
 * from many addresses stays bounded, at the price that a new address (the admin's, if it
 * has not used the unit since) may get 429 until those locks run out (at most
 * HTTP_API_MAX_LOCK_MS after the last wrong password). fails_total counts every failure.
 */
void http_api_handle(struct http_api *api, const struct api_request *rq, struct api_response *rs);

/*
 * Flashing: POST /api/targets/N/flash?address=0x08000000&verify=1&go=1&unprotect=0&format=bin
 * with the image as body, written by the AN3155 master (stm32_isp.h) while it arrives: the
 * upload is throttled to the UART, no whole image is buffered. Parameters (all optional,
 * each at most once; an unknown or malformed one is 400):
 *   format    bin (default) | hex. hex: Intel HEX (ihex.h), decoded as it arrives; the image
 *             starts at its first data record (rounded down to the device's programming
 *             unit, 0xFF before it), records must come in ascending address order, an
 *             end-of-file record is required and nothing but blanks and line breaks may
 *             follow it. Gaps between records are not written (stm32_isp_seek): erase units
 *             no record touches keep their contents; gap bytes in units a record touches
 *             read 0xFF. A record outside the device's flash fails the run with an error
 *             naming its address (413, 400 below the flash base) before anything is erased
 *             or written for it; the records before it have been written.
 *   address   bin only (400 with hex): where the first byte goes, 0x-hex or decimal, a
 *             multiple of 4 and of the device's programming unit (8 on G0/G4/L4/WB/WL, 16 on
 *             U5, 32 on most H7: 400 once GET ID has named the device, before anything is
 *             erased); default: the device's flash base (0x08000000 on every family).
 *   verify    0|1 (default 1): read every block back (READ MEMORY) and compare.
 *   go        0|1 (default 0): 1 starts the application at the image base (GO), then BOOT0
 *             low; 0 leaves the chip in its bootloader (as stm32flash without -g).
 *   unprotect 0|1 (default 0): 1 allows READOUT UNPROTECT (mass erase!) when read protection
 *             is found and WRITE UNPROTECT when erase/write is refused.
 *   baud      bootloader baud, default 115200.
 *   stage     0|1 (default 0): 1 = verify before commit ("Staged upload").
 *   crc32     0x-hex (or decimal): the CRC-32 of the whole body as zlib's crc32() computes it
 *             (ISO-HDLC); only with stage=1 (else 400): a different body is not flashed.
 * Content-Length (bin) is the image size: the range is checked before anything is erased.
 * A .bin without Content-Length (chunked) is staged (stage=1 implied; 411 without a
 * staging store) so that its size is checked the same way.
 * The answer comes when the run has ended: 200 {"ok":true,"state":"done",...the GET
 * fields...} or 4xx/5xx {"ok":false,"state":"failed","error":"...","step":"writing",...}.
 * Status codes: 400 bad parameter, bad Intel HEX, image not whole, empty image; 409 a flash
 * is already running on the target; 413 image larger than the flash; 423 read or write
 * protection found and unprotect=0; 502 the chip did not answer as AN3155 says (no sync,
 * timeout, NACK after retries, unknown device, verify mismatch); 500 UART refused 8E1,
 * other; 501 this platform cannot flash the target; 401/403/429 as for every changing call.
 * A client that disconnects mid-body aborts the run ("upload interrupted: ...").
 * While a flash runs the target's bridge session is suspended (bridge_suspend): the RFC 2217
 * client stays connected, its data waits, nothing from the UART reaches it, its framing
 * queries and NOTIFY polls are still answered; afterwards framing and pins are re-applied.
 *
 * Staged upload (stage=1): the STM32 is NOT touched while the body arrives: it goes to the
 * platform's staging store (api_ops.stage_*) at network speed, its CRC-32 computed as it
 * arrives; Content-Length must fit the store (413 "image (N bytes) larger than the staging
 * area (M bytes)"; without one, chunked, the body may fill the store and 413 beyond it);
 * no store: 501; a store in use by another target: 409. At the body's end, in this order:
 * fewer bytes than Content-Length, a CRC-32 other than crc32=, (format=hex) the Intel HEX
 * dry run's first error (400, "...; the STM32 was not touched") and in locked mode the
 * signature (403, "Signed images"). Otherwise the commit starts: the target is claimed
 * and the staged bytes are read back in small pieces into the same pipeline, driven by
 * http_api_flash_poll(). The image's whole range is checked against the device's flash
 * once GET ID has named it, before anything is erased: a .bin through opts.total, a HEX
 * by the dry run's first and last record address (413, 400 below the flash base; nothing
 * erased or written). Once committed, the flash goes on even if the client goes away.
 *
 * Signed images (locked mode: api_ops.locked() is 1, a verification key is installed):
 * every upload needs the header "X-Espstm-Signature: <base64 of the DER ECDSA P-256
 * signature>" over "espstm-image-v1 ADDR\n" + the body exactly (ADDR: "0x%08x" of address=,
 * default 0x08000000, for a .bin; "hex" for Intel HEX), as `openssl dgst -sha256 -sign` or
 * `espstm sign` make it. stage=1 is implied; the signature is checked over the staged
 * bytes at the body's end, before the commit: no header -> 403 "this unit only accepts
 * signed images", not base64 or not DER -> 403 "signature: ..." at once, no match -> 403
 * "signature does not match ...; the STM32 was not touched". A locked run never leaves
 * the chip in its bootloader: go=0 ends with a reset into the application, a failed run is
 * followed by api_ops.action(API_ACT_RUN). Locked mode also refuses
 * POST /api/targets/N/bootloader (403); reset and run work; /api/status has "locked":true.
 *
 * Abort: DELETE /api/targets/N/flash stops the target's upload or run at once: the run fails
 * with "aborted by the client" (its POST's answer: 409) and DELETE answers 200 with the
 * flash fields; nothing running: 409 {"error":"no flash is running on target N","state":..}.
 * On servers that serve one request at a time (ESP8266, ESP-IDF before v5.2) the DELETE is
 * served only after the upload.
 *
 * GET /api/targets/N/flash (no X-Espstm-Request needed) ->
 *   {"target":0,"state":"idle|staging|connecting|identifying|unprotecting|erasing|writing|
 *    verifying|starting|done|failed","format":"bin","address":"0x08000000","verify":true,
 *    "go":false,"bytes_total":65536,"bytes_received":..,"bytes_erased":..,"bytes_written":..,
 *    "bytes_verified":..,"device":null|{"pid":"0x410","name":"...","family":"F1",
 *    "flash_size":131072,"bootloader":"2.2"},"error":null|"...","step":null|"writing",
 *    "elapsed_ms":..,"stage":false,"bytes_staged":0,"crc32":null|"0x1234ABCD"}
 * "address": the image's start, null while unknown (bin without address=: until GET ID;
 * hex: until its first data record). "bytes_total": null while unknown (hex before its
 * end). "bytes_received": image bytes the flasher accepted (HEX: data bytes);
 * "bytes_written"/"bytes_total" include the 0xFF padding to the programming unit. "step":
 * the state the run failed in ("upload" before the flasher started). "crc32": of the whole
 * staged body, null before it is complete. The last result stays until the next run.
 *
 * The server side, all taking the target index N of the path:
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
 * http_api_flash_poll: call after every stm32_isp_poll()/input() of the target (and after
 * the calls above). Writes pending HEX data, replays a staged image, ends the run when the
 * body is complete, releases the claim (api_ops.flash_claim) when the ISP is done. Returns a
 * mask: HTTP_API_FLASH_ROOM (body bytes are taken now), HTTP_API_FLASH_RESULT (the answer
 * is ready: http_api_flash_result()), HTTP_API_FLASH_AGAIN (the replay of a staged image
 * stopped after FLASH_JOB_REPLAY_STEPS pieces with more to do that does not wait for the
 * ISP: call again at once, e.g. from a zero timer, not at the next wake-up). 0: wait. With
 * stage=1 the platform keeps calling it after the body: the staged copy is replayed there.
 *
 * http_api_flash_result: fills rs with the final answer (status and JSON in api->out,
 * valid until the next call into api) and forgets the upload (GET still shows the
 * result). Returns 1, or 0 if the run has not ended yet (rs untouched).
 */
#define HTTP_API_FLASH_ROOM   FLASH_JOB_ROOM
#define HTTP_API_FLASH_RESULT FLASH_JOB_RESULT
#define HTTP_API_FLASH_AGAIN  FLASH_JOB_AGAIN
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

/*
 * Pairing (espstm pair HOST): POST /api/pair (Basic auth, X-Espstm-Request: 1) ->
 *   200 {"identity":"espstm-0123456789abcdef","key":"<64 lowercase hex>","port":2217,
 *        "targets":1,"pin":"sha256//..."}   ("pin" only when api_ops.pair_key gave one;
 *        "port": target 0's RFC 2217 port (api_pair.port, else the settings'); the answer is in
 * api->out and is wiped (zeroed) at the next call into http_api_handle) POST /api/pair/rotate ->
 * 200 {"rotated":true,"identity":"espstm-<new>"} (no key: the caller pairs again if it wants one).
 * Errors: 403 {"error":"pairing needs HTTPS"} (api_ops said -EPERM), 404 "this unit has no key"
 * (-ENOENT) or when the platform has no pairing (ops NULL), 405 for another method, 500 otherwise.
 * Nothing is logged with the key; "pair: key handed out" / "pair: unit key rotated" are logged.
 */

/* Constant-time equality of a (alen bytes) and b (blen bytes): time depends only on blen
 * (the secret's length), never on where they differ. 1 equal, 0 not. */
int http_api_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Counts http_api_ct_equal calls (tests check the password goes through it). */
extern uint32_t http_api_ct_calls;

/* The web page (web_page.c). */
extern const char http_api_page[];
extern const size_t http_api_page_len;

#endif
