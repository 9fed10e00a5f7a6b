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
 * Changing calls (PUT/POST) also need the header "X-Espstm-Request: 1" (403 otherwise): a
 * cross-site form cannot send it, so a browser's cached credentials cannot be abused (CSRF).
 *
 * Lock-out: after HTTP_API_FREE_FAILS wrong passwords in a row, every authenticated request
 * is answered 429 (Retry-After) without checking, for 1 s, doubling per further failure up
 * to HTTP_API_MAX_LOCK_MS. The handler never sleeps: the server loop is not blocked.
 * Requests without an Authorization header get 401 and do not count as failures.
 */
#ifndef ESPSTM_HTTP_API_H
#define ESPSTM_HTTP_API_H

#include "hal.h"
#include "settings.h"

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
	const char *client_addr; /* NULL: unknown */
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
	int www_authenticate; /* 1: send WWW-Authenticate: HTTP_API_CHALLENGE */
	uint32_t retry_after_s; /* >0: send Retry-After */
};
#define HTTP_API_CHALLENGE "Basic realm=\"espstm\", charset=\"UTF-8\""

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
};

/* pass: the web password (1..64 characters). Returns 0 or -EINVAL. */
int http_api_init(struct http_api *api, const struct api_ops *ops, void *ctx,
                  struct settings_mgr *settings, const char *pass);
void http_api_handle(struct http_api *api, const struct api_request *rq,
                     struct api_response *rs);

/* Constant-time equality of a (alen bytes) and b (blen bytes): time depends only on blen
 * (the secret's length), never on where they differ. 1 equal, 0 not. */
int http_api_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Counts http_api_ct_equal calls (tests check the password goes through it). */
extern uint32_t http_api_ct_calls;

/* The web page (web_page.c). */
extern const char http_api_page[];
extern const size_t http_api_page_len;

#endif
