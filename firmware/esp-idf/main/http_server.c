/* SPDX-License-Identifier: MIT */
/*
 * Web page and HTTP API on port 80: esp_http_server (ESP-IDF v5.x and ESP8266_RTOS_SDK v3.4)
 * in front of the portable handlers of firmware/core/http_api.h. One catch-all URI handler
 * per method ("/*", wildcard matching) hands method, path, the Authorization and
 * X-Espstm-Request headers and the body to http_api_handle(), then sends its status, content
 * type and body. Every buffer is static: the server runs one request at a time in its task.
 *
 * Password: settings_web_pass() (NVS; first boot: Kconfig or generated and printed once).
 * Settings changes: stored by the core model (only when changed); baud, line map, auto-boot
 * and settle time apply to the running bridge (framing once no client is connected), the
 * ports, pins and legacy switch at the next restart.
 */
#include "espstm.h"
#include "target.h"

#include "http_api.h"

#include "esp_http_server.h"
#include "esp_log.h"
#include "esp_timer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define BODY_MAX 1024 /* settings JSON is at most SETTINGS_JSON_MAX (768) */

static const char *TAG = "espstm.http";

static struct http_api api;
static char body[BODY_MAX + 1];
static char auth[160];  /* "Basic " + base64 of admin:<64 characters> fits */
static char xreq[8];
static char path[HTTPD_MAX_URI_LEN + 1];

/* ---- API callbacks ---- */

static void api_status(void *ctx, struct api_status *st)
{
	(void)ctx;
	static const char *const modes[] = {"idle", "pending", "telnet", "raw"};
	st->version = BRIDGE_SIGNATURE;
	st->uptime_s = (uint32_t)(esp_timer_get_time() / 1000000);
	st->hostname = espstm_hostname();
	st->target_count = settings_core()->cur.target_count;
	for (unsigned i = 0; i < st->target_count && i < ESPSTM_MAX_TARGETS; i++) {
		struct api_target_status *ts = &st->t[i];
		ts->nrst = ts->boot0 = -1;
		if (target_lock(i) < 0)
			continue;
		struct bridge *br = target_bridge(i);
		ts->client_connected = bridge_connected(br);
		enum bridge_mode m = bridge_mode(br);
		ts->mode = (unsigned)m < 4 ? modes[m] : NULL;
		ts->uart = *bridge_uart(br);
		bridge_pins(br, &ts->nrst, &ts->boot0);
		target_unlock(i);
		ts->client_addr = NULL;
	}
}

static void api_apply(void *ctx, const struct settings *s)
{
	(void)ctx;
	for (unsigned i = 0; i < s->target_count && i < ESPSTM_MAX_TARGETS; i++) {
		if (target_lock(i) < 0)
			continue;
		struct espstm_target *t = &espstm_targets[i];
		const struct settings_target *st = &s->target[i];
		t->bset.uart.baud = st->baud;
		t->bset.line_map = (enum bridge_line_map)st->line_map;
		t->bset.auto_boot = (enum bridge_auto_boot)st->auto_boot;
		t->bset.settle_ms = st->settle_ms;
		bridge_update_settings(&t->br, &t->bset);
		target_unlock(i);
	}
	ESP_LOGI(TAG, "settings saved; baud, line map, auto-boot and settle time applied, ports, "
	              "pins and legacy ports take effect at the next restart");
}

static int api_action(void *ctx, unsigned target, enum api_action a)
{
	(void)ctx;
	static const enum bridge_action map[] = {BRIDGE_ACT_RESET, BRIDGE_ACT_BOOTLOADER,
	                                         BRIDGE_ACT_RUN};
	if ((unsigned)a > 2 || target_lock(target) < 0)
		return -ENODEV;
	int r = bridge_action(target_bridge(target), map[a]);
	target_unlock(target);
	return r;
}

static void api_log(void *ctx, const char *line)
{
	(void)ctx;
	ESP_LOGI(TAG, "%s", line);
}

static const struct api_ops ops = {
    .status = api_status, .apply = api_apply, .action = api_action, .log = api_log};

/* ---- esp_http_server ---- */

static const char *status_line(int code)
{
	switch (code) {
	case 200: return "200 OK";
	case 400: return "400 Bad Request";
	case 401: return "401 Unauthorized";
	case 403: return "403 Forbidden";
	case 404: return "404 Not Found";
	case 405: return "405 Method Not Allowed";
	case 409: return "409 Conflict";
	case 413: return "413 Payload Too Large";
	case 429: return "429 Too Many Requests";
	case 503: return "503 Service Unavailable";
	default: return "500 Internal Server Error";
	}
}

/* A header's value into buf, or NULL if absent or too long for buf. */
static const char *header(httpd_req_t *req, const char *name, char *buf, size_t cap)
{
	size_t n = httpd_req_get_hdr_value_len(req, name);
	if (n == 0 || n >= cap)
		return NULL;
	return httpd_req_get_hdr_value_str(req, name, buf, cap) == ESP_OK ? buf : NULL;
}

static esp_err_t handle(httpd_req_t *req)
{
	static const char big[] = "{\"error\":\"request body too large\"}";
	struct api_response rs;
	memset(&rs, 0, sizeof(rs));
	const char *method = req->method == HTTP_GET    ? "GET"
	                     : req->method == HTTP_PUT  ? "PUT"
	                     : req->method == HTTP_POST ? "POST"
	                                                : "?";
	if (req->content_len > BODY_MAX) {
		/* not read: the connection is closed after the answer (ESP_FAIL) */
		rs.status = 413;
		rs.content_type = "application/json";
		rs.body = big;
		rs.len = sizeof(big) - 1;
	} else {
		size_t got = 0;
		while (got < req->content_len) {
			int k = httpd_req_recv(req, body + got, req->content_len - got);
			if (k == HTTPD_SOCK_ERR_TIMEOUT)
				continue;
			if (k <= 0)
				return ESP_FAIL; /* closes the socket */
			got += (size_t)k;
		}
		body[got] = '\0';
		size_t pl = strcspn(req->uri, "?");
		memcpy(path, req->uri, pl);
		path[pl] = '\0';
		struct api_request rq = {
		    .method = method,
		    .path = path,
		    .authorization = header(req, "Authorization", auth, sizeof(auth)),
		    .x_request = header(req, "X-Espstm-Request", xreq, sizeof(xreq)),
		    .body = body,
		    .body_len = got,
		    .now_ms = (uint32_t)(esp_timer_get_time() / 1000),
		};
		http_api_handle(&api, &rq, &rs);
	}
	static char retry[12];
	httpd_resp_set_status(req, status_line(rs.status));
	httpd_resp_set_type(req, rs.content_type);
	httpd_resp_set_hdr(req, "Cache-Control", "no-store");
	httpd_resp_set_hdr(req, "X-Content-Type-Options", "nosniff");
	httpd_resp_set_hdr(req, "X-Frame-Options", "DENY");
	httpd_resp_set_hdr(req, "Content-Security-Policy",
	                   "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "
	                   "style-src 'unsafe-inline'; frame-ancestors 'none'");
	if (rs.www_authenticate)
		httpd_resp_set_hdr(req, "WWW-Authenticate", HTTP_API_CHALLENGE);
	if (rs.retry_after_s) {
		snprintf(retry, sizeof(retry), "%u", (unsigned)rs.retry_after_s);
		httpd_resp_set_hdr(req, "Retry-After", retry);
	}
	esp_err_t e = httpd_resp_send(req, rs.body, (ssize_t)rs.len);
	if (rs.status == 413)
		return ESP_FAIL;
	return e;
}

int http_server_start(void)
{
	const char *pass = settings_web_pass();
	if (!pass || http_api_init(&api, &ops, NULL, settings_core(), pass) < 0) {
		ESP_LOGE(TAG, "no usable web password: web server not started");
		return -1;
	}
	httpd_config_t cfg = HTTPD_DEFAULT_CONFIG();
	cfg.stack_size = 6144;
	cfg.max_resp_headers = 10;
	cfg.uri_match_fn = httpd_uri_match_wildcard;
	cfg.lru_purge_enable = true;
	httpd_handle_t h = NULL;
	esp_err_t e = httpd_start(&h, &cfg);
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "httpd_start: %s", esp_err_to_name(e));
		return -1;
	}
	static const httpd_uri_t uris[] = {
	    {.uri = "/*", .method = HTTP_GET, .handler = handle, .user_ctx = NULL},
	    {.uri = "/*", .method = HTTP_PUT, .handler = handle, .user_ctx = NULL},
	    {.uri = "/*", .method = HTTP_POST, .handler = handle, .user_ctx = NULL},
	};
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		e = httpd_register_uri_handler(h, &uris[i]);
		if (e != ESP_OK)
			ESP_LOGE(TAG, "register handler: %s", esp_err_to_name(e));
	}
	ESP_LOGI(TAG, "web page and API on http://%s.local/ (user %s)", espstm_hostname(),
	         HTTP_API_USER);
	return 0;
}
