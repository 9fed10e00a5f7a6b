/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge --http: the HTTP API and web page of firmware/core/http_api.h served with
 * libmicrohttpd, driven from the libuv loop (MHD_USE_EPOLL without a thread: one uv_poll_t on
 * MHD's epoll fd + a timer), so handlers run on the loop thread next to the bridge session.
 * Settings (firmware/core/settings.h) are stored as JSON in --settings FILE, by default
 * FLASH.settings.json next to --flash (no --flash and no --settings: kept in memory).
 * With a unit key it serves HTTPS (libmicrohttpd's MHD_USE_TLS on a self-signed ECDSA
 * certificate, pair_posix.h) and POST /api/pair hands the key to `espstm pair`.
 */
#ifndef ESPSTM_HTTP_POSIX_H
#define ESPSTM_HTTP_POSIX_H

#include "bridge.h"
#include "http_api.h"
#include "stm32_isp.h"
#include "tls_session.h" /* struct tls_psk */

#include <uv.h>

struct http_posix_opts {
	const char *addr;          /* HOST:PORT (IPv4; port 0 = ephemeral, printed) */
	const char *password_file; /* NULL: generate a password and log it once */
	const char *settings_file; /* NULL: FLASH.settings.json or memory */
	const char *flash;         /* --flash (may be NULL) */
	uint32_t stage_max;        /* --stage-max: staging area for stage=1 uploads (bytes;
	                              0 = HTTP_POSIX_STAGE_DEFAULT, HTTP_POSIX_STAGE_NONE =
	                              no staging: stage=1 answers 501) */
	/* HTTPS and pairing (pair_posix.h). key_path: the unit key file (--key-file; main
	 * passes the same path its RFC 2217 port uses), NULL = the unit has no key (--no-key):
	 * plain HTTP, POST /api/pair answers 404. With a key: HTTPS with the certificate next
	 * to the key file (made at first start), POST /api/pair hands out the key. */
	const char *key_path;
	/* The unit key main has already read (or made for this run only, then key_path is
	 * NULL), e.g. by tls_port; NULL: read or made here from key_path (pair_posix_load). */
	const struct tls_psk *unit_key;
	/* --http-plain: plain HTTP even with a key (password, API and, through /api/pair, the
	 * unit key travel unencrypted: a warning is logged; pairing is allowed because the
	 * option was given explicitly). */
	int http_plain;
	const char *cert_name; /* the certificate's CN; NULL: the host name */
};

/* A --password-file password shorter than this is used, with a warning at start (the
 * generated one has 16 characters of 32 kinds: 80 bits). */
#define HTTP_POSIX_PASS_MIN 12

/* Default --stage-max: 4 MiB, the largest STM32 flash of the device table. Staged images
 * go to an unlinked temporary file in $TMPDIR (or /tmp), never into memory. */
#define HTTP_POSIX_STAGE_DEFAULT (4u * 1024u * 1024u)
#define HTTP_POSIX_STAGE_NONE    0xFFFFFFFFu

/* Before bridge_init(): load the stored settings over *set (the command line's values are
 * the defaults), read or make the password, and wrap *hal to count bytes and errors (the
 * wrapper calls the original with the same ctx). Returns 0, -1 runtime error (logged),
 * -2 usage error (logged). */
int http_posix_prepare(const struct http_posix_opts *o, struct bridge_settings *set,
                       const struct hal_ops **hal);

/* --verify-key FILE: load the PEM ECDSA P-256 public key (image_sig.h) and set set->locked
 * (locked mode: only signed images are flashed, http_api.h "Signed images"; the bridge
 * refuses bootloader entry, bridge.h). Works with or without --http. Returns 0, or -1
 * (unreadable file or not such a key; logged). */
int http_posix_verify_key(const char *path, struct bridge_settings *set);

struct http_posix_hooks {
	struct bridge *br;
	struct bridge_settings *set; /* main's settings: updated when the web page saves */
	uv_tcp_t **client;           /* main's RFC 2217 client handle (peer address) */
	void *app;
	void (*pump)(void *app); /* main's pump: run after an action / settings change */
	/* Flashing over HTTP (NULL: POST .../flash answers 501). The target's AN3155 master,
	 * initialised on the same HAL as br. */
	struct stm32_isp *isp;
	/* on = 1: suspend br (bridge_suspend) and give every UART byte to isp; 0: resume. */
	void (*flash_claim)(void *app, int on);
	/* POST /api/pair/rotate has replaced the unit key (already stored in key_path):
	 * main's RFC 2217 port takes k from now on and drops its TLS client (it holds the old
	 * key). May be NULL (then main reads the key file again itself). */
	void (*key_rotated)(void *app, const struct tls_psk *k);
	unsigned rfc2217_port; /* main's actual RFC 2217 port (POST /api/pair "port"); 0:
	                          the settings' */
	/* /api/status "clients" and POST /api/targets/N/disconnect (api_ops.clients and
	 * .disconnect, called with app; NULL: [] and 501) */
	unsigned (*clients)(void *app, struct api_client *c, unsigned max);
	int (*disconnect)(void *app, unsigned target);
};

/* The unit key loaded by http_posix_prepare (NULL without key_path): main's RFC 2217 port
 * may use it instead of reading the file itself. */
const struct tls_psk *http_posix_unit_key(void);

/* After bridge_init(): listen and serve. Logs "http on HOST:PORT" or, with a key, "https on
 * HOST:PORT, certificate sha256//BASE64". Returns 0 or -1 (logged). */
int http_posix_start(uv_loop_t *loop, const struct http_posix_hooks *h);
void http_posix_stop(void);

/* main's pump calls this after driving the ISP while a flash claim is held: resumes the
 * upload when the ISP has room and sends the answer when the run has ended (through the
 * libuv loop: never runs libmicrohttpd from inside the call); when a staged replay stopped
 * at its bound with more to do (HTTP_API_FLASH_AGAIN) it schedules the pump again at once
 * (zero timer). No-op without --http. */
void http_posix_flash_pump(void);

#endif
