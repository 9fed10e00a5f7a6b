/* SPDX-License-Identifier: MIT */
/*
 * Web page and HTTP API on port 80: esp_http_server (ESP-IDF v5.x and ESP8266_RTOS_SDK v3.4)
 * in front of the portable handlers of firmware/core/http_api.h. One catch-all URI handler
 * per method (URI "/" + "*", wildcard matching; on the ESP8266 SDK, which matches URIs
 * exactly, one handler per route instead) hands method, path, the Authorization and
 * X-Espstm-Request headers and the body to http_api_handle(), then sends its status, content
 * type and body. Every buffer is static: the server runs one request at a time in its task.
 *
 * Flashing (http_api.h "Flashing"): POST /api/targets/N/flash streams the body with
 * httpd_req_recv() in FLASH_CHUNK pieces into http_api_flash_body(), which hands the image
 * to the target's AN3155 master only as fast as it takes it (the target's task drives the
 * ISP on the UART and wakes the upload, target_flash_wait); no more than one chunk of the
 * image is held here, TCP holds back the rest. The answer is sent when the run has ended.
 * On ESP-IDF >= 5.2 the upload runs in its own task (httpd_req_async_handler_begin, new in
 * v5.2), so the server keeps answering (the web page polls GET .../flash for its progress
 * bar); on ESP-IDF v5.0/v5.1 and the ESP8266 SDK (no async requests) the upload occupies the
 * server task until it ends: progress requests wait and the page shows the result at the end.
 * Every call into the core's struct http_api is made under api_mu (the server task and the
 * upload task share it); flash calls also hold the target's lock (the target's task uses
 * the ISP). Lock order: api_mu, then a target lock.
 *
 * Staging (stage=1, http_api.h "Staged upload"): the data partition labelled "stm32img"
 * (partitions.csv; ESP8266: partitions_esp8266.csv), found with esp_partition_find_first();
 * the body is written as it arrives (esp_partition_write), each 4 KiB sector erased
 * (esp_partition_erase_range) just before the first byte goes into it (so the erase time,
 * some 30-50 ms a sector, is spread over the upload instead of blocking its start), and
 * read back in FLASH_JOB_REPLAY_BUF pieces
 * (esp_partition_read). One staged upload at a time (-EBUSY for a second target). No
 * partition: stage=1 answers 501. CRC-32: the ROM's (ESP-IDF esp_rom_crc32_le, ESP8266 SDK
 * crc32_le; both continue zlib's CRC-32 from 0).
 * Writing and erasing the partition stops the caches and every interrupt not in IRAM
 * (ESP-IDF spi_flash_concurrency; the ESP8266 SDK v3.4 erases and writes in a critical
 * section, all interrupts off, some 45 ms per 4 KiB sector), so UART input can be lost
 * meanwhile. Therefore the staged target's own bridge session is held from stage_begin to
 * stage_end through the flash claim (target_flash_claim: bridge_suspend, UART bytes dropped,
 * the client's data waits with TCP backpressure; the chip is not touched: pins and framing
 * keep their levels); the commit's claim then simply continues it, a failed staging resumes
 * it. It is about to be flashed anyway. Other targets' sessions (ESP-IDF, two targets) keep
 * running: their UART interrupt is in IRAM (hal_esp.c) and the driver's ring takes what
 * arrives during an erase (TARGET_UART_RX_RING: 2048 bytes, ~178 ms at 115200 baud, ~22 ms
 * at 921600: a session at a high baud rate can still lose input during an erase). The
 * ESP8266 has one target only, so no other session exists there.
 * Replay: http_api_flash_poll() says HTTP_API_FLASH_AGAIN while the replay has more to do
 * that does not wait for the ISP (HEX records without data): polled again without the
 * wait, one tick's wait every FLASH_AGAIN_BURST polls so lower-priority tasks run.
 * Abort: DELETE /api/targets/N/flash goes to http_api_handle() under api_mu and the
 * target's lock. With the async upload task (ESP-IDF >= 5.2) it is served while the upload
 * runs; otherwise the server task is busy with the upload and serves it afterwards.
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
#include "esp_partition.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "lwip/sockets.h" /* lwip_getpeername, lwip_recv */
#if !CONFIG_IDF_TARGET_ESP8266
#include "esp_idf_version.h"
#include "esp_rom_crc.h" /* esp_rom_crc32_le */
#else
#include "esp_crc.h" /* crc32_le (ESP8266_RTOS_SDK v3.4) */
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h> /* strcasecmp */

#define BODY_MAX            1024 /* settings JSON is at most SETTINGS_JSON_MAX (768) */
#define FLASH_CHUNK         1024 /* image bytes received at a time */
#define FLASH_IDLE_S        30   /* an upload with no data for this long is cancelled */
#define HTTP_RECV_TIMEOUT_S 5    /* httpd_req_recv() wait (the server's recv_wait_timeout) */
/* Connection limits (slowloris, bursts): at most HTTP_MAX_SOCKETS sessions (the least recently
 * used one is closed for a new client: lru_purge_enable), HTTP_BACKLOG pending connections
 * (each holds an lwIP netconn, which the RFC 2217 ports need too), and a request's headers
 * must arrive within HTTP_HEADER_DEADLINE_MS of its first read however slowly they trickle
 * (limited_recv): the server task parses one session at a time, blocking in its reads. */
#define HTTP_MAX_SOCKETS        4
#define HTTP_BACKLOG            2
#define HTTP_HEADER_DEADLINE_MS 4000
/* Longest URI (req->uri holds this + 1). ESP-IDF v5.5 dropped the HTTPD_MAX_URI_LEN alias
 * (esp_http_server.h); the Kconfig value exists in every SDK we build with (v3.4, v5.x). */
#define URI_MAX           CONFIG_HTTPD_MAX_URI_LEN
#define FLASH_AGAIN_BURST 16 /* replay polls in a row without a wait (16 KiB each at most) */
#define CONTINUE_100      "HTTP/1.1 100 Continue\r\n\r\n" /* interim answer (RFC 9110 15.2.1) */

#if !CONFIG_IDF_TARGET_ESP8266 && defined(ESP_IDF_VERSION_VAL)
#if ESP_IDF_VERSION >= ESP_IDF_VERSION_VAL(5, 2, 0)
#define FLASH_ASYNC 1 /* httpd_req_async_handler_begin/complete: ESP-IDF v5.2 and later */
#endif
#endif
#ifndef FLASH_ASYNC
#define FLASH_ASYNC 0
#endif

static const char *TAG = "espstm.http";

static struct http_api api;
static char body[BODY_MAX + 1];
static char auth[160]; /* "Basic " + base64 of admin:<64 characters> fits */
static char xreq[8];
static char path[URI_MAX + 1];
static uint8_t caddr[16];        /* the server task's client address */
static SemaphoreHandle_t api_mu; /* every call into api */
static char sout[HTTP_API_OUT];  /* the server task's answer, copied out of api.out */

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

static struct stm32_isp *api_isp(void *ctx, unsigned target)
{
	(void)ctx;
	return target < ESPSTM_MAX_TARGETS ? target_isp(target) : NULL;
}

/* Called from inside the http_api_flash_* calls, which hold the target's lock. */
static void api_flash_claim(void *ctx, unsigned target, int on)
{
	(void)ctx;
	target_flash_claim(target, on);
}

/* ---- staging store: the "stm32img" data partition ---- */

#define STAGE_LABEL  "stm32img"
#define STAGE_SECTOR 4096u /* flash erase sector (bytes) */

static const esp_partition_t *stage_part; /* NULL: no staging (stage=1 -> 501) */
static int stage_owner = -1;              /* target with a staged upload, -1 none */
static uint32_t stage_erased;             /* bytes from 0 erased for the current upload */

static uint32_t api_stage_capacity(void *ctx, unsigned target)
{
	(void)ctx;
	(void)target;
	return stage_part ? (uint32_t)stage_part->size : 0;
}

static int api_stage_begin(void *ctx, unsigned target, uint32_t size)
{
	(void)ctx;
	if (!stage_part)
		return -EIO;
	if (stage_owner >= 0)
		return -EBUSY;
	if (size > stage_part->size)
		return -ENOSPC;
	stage_owner = (int)target;
	stage_erased = 0; /* sectors are erased as the writes reach them */
	/* hold the target's session while its image goes to flash (see the top of the file);
	 * called from http_api_flash_start() with the target's lock held */
	target_flash_claim(target, 1);
	ESP_LOGI(TAG,
	         "staging: target %u's session held while the image is written to %s (flash "
	         "writes stop UART interrupts)",
	         target, STAGE_LABEL);
	return 0;
}

static int api_stage_write(void *ctx, unsigned target, uint32_t off, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)target;
	uint32_t need = (uint32_t)((off + n + STAGE_SECTOR - 1) / STAGE_SECTOR * STAGE_SECTOR);
	if (need > stage_erased) {
		esp_err_t e =
		    esp_partition_erase_range(stage_part, stage_erased, need - stage_erased);
		if (e != ESP_OK) {
			ESP_LOGE(TAG, "staging: erasing %s at %u: %s", STAGE_LABEL,
			         (unsigned)stage_erased, esp_err_to_name(e));
			return -EIO;
		}
		stage_erased = need;
	}
	esp_err_t e = esp_partition_write(stage_part, off, p, n);
	if (e != ESP_OK)
		ESP_LOGE(TAG, "staging: write at %u: %s", (unsigned)off, esp_err_to_name(e));
	return e == ESP_OK ? 0 : -EIO;
}

static int api_stage_read(void *ctx, unsigned target, uint32_t off, uint8_t *p, size_t n)
{
	(void)ctx;
	(void)target;
	esp_err_t e = esp_partition_read(stage_part, off, p, n);
	if (e != ESP_OK)
		ESP_LOGE(TAG, "staging: read at %u: %s", (unsigned)off, esp_err_to_name(e));
	return e == ESP_OK ? 0 : -EIO;
}

static void api_stage_end(void *ctx, unsigned target)
{
	(void)ctx;
	stage_owner = -1;
	/* the run's own claim was released just before (http_api_flash_poll); staging failed:
	 * never claimed by the core. Either way the session resumes (a no-op if it did). */
	target_flash_claim(target, 0);
}

static uint32_t api_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
#if CONFIG_IDF_TARGET_ESP8266
	return crc32_le(crc, p, (uint32_t)n);
#else
	return esp_rom_crc32_le(crc, p, (uint32_t)n);
#endif
}

static const struct api_ops ops = {.status = api_status,
                                   .apply = api_apply,
                                   .action = api_action,
                                   .log = api_log,
                                   .isp = api_isp,
                                   .flash_claim = api_flash_claim,
                                   .stage_capacity = api_stage_capacity,
                                   .stage_begin = api_stage_begin,
                                   .stage_write = api_stage_write,
                                   .stage_read = api_stage_read,
                                   .stage_end = api_stage_end,
                                   .crc32 = api_crc32};

/* ---- esp_http_server ---- */

static const char *status_line(int code)
{
	switch (code) {
	case 200:
		return "200 OK";
	case 400:
		return "400 Bad Request";
	case 401:
		return "401 Unauthorized";
	case 403:
		return "403 Forbidden";
	case 404:
		return "404 Not Found";
	case 405:
		return "405 Method Not Allowed";
	case 409:
		return "409 Conflict";
	case 411:
		return "411 Length Required";
	case 413:
		return "413 Payload Too Large";
	case 423:
		return "423 Locked";
	case 429:
		return "429 Too Many Requests";
	case 501:
		return "501 Not Implemented";
	case 502:
		return "502 Bad Gateway";
	case 503:
		return "503 Service Unavailable";
	default:
		return "500 Internal Server Error";
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

static void send_answer(httpd_req_t *req, const struct api_response *rs)
{
	char retry[12]; /* used before this function returns (httpd_resp_send) */
	httpd_resp_set_status(req, status_line(rs->status));
	httpd_resp_set_type(req, rs->content_type);
	httpd_resp_set_hdr(req, "Cache-Control", "no-store");
	httpd_resp_set_hdr(req, "X-Content-Type-Options", "nosniff");
	httpd_resp_set_hdr(req, "X-Frame-Options", "DENY");
	httpd_resp_set_hdr(req, "Content-Security-Policy",
	                   "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; "
	                   "style-src 'unsafe-inline'; frame-ancestors 'none'");
	if (rs->www_authenticate)
		httpd_resp_set_hdr(req, "WWW-Authenticate", HTTP_API_CHALLENGE);
	if (rs->retry_after_s) {
		snprintf(retry, sizeof(retry), "%u", (unsigned)rs->retry_after_s);
		httpd_resp_set_hdr(req, "Retry-After", retry);
	}
	httpd_resp_send(req, rs->body, (ssize_t)rs->len);
}

/* ---- client address (lock-out per address) and the header deadline ---- */

/* The peer of req's socket as bytes into out: 4 (IPv4, also IPv4-mapped IPv6: the server
 * listens on IPv6 when lwIP has it) or 16 (IPv6); 0 when unknown. */
static size_t peer_addr(httpd_req_t *req, uint8_t out[16])
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = httpd_req_to_sockfd(req);
	if (fd < 0 || lwip_getpeername(fd, (struct sockaddr *)&ss, &sl) != 0)
		return 0;
	if (ss.ss_family == AF_INET) {
		memcpy(out, &((struct sockaddr_in *)&ss)->sin_addr.s_addr, 4);
		return 4;
	}
#if LWIP_IPV6
	if (ss.ss_family == AF_INET6) {
		static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		const uint8_t *a = (const uint8_t *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (memcmp(a, mapped, sizeof(mapped)) == 0) {
			memcpy(out, a + 12, 4);
			return 4;
		}
		memcpy(out, a, 16);
		return 16;
	}
#endif
	return 0;
}

/* Per session (indexed by fd & 31: lwIP numbers its sockets contiguously, fewer than 32):
 * when the current request's first read happened (0: not yet) and whether its handler runs
 * (its body reads have no deadline). Written by the server task only. */
static struct {
	int fd;
	uint8_t busy;
	int64_t since_us;
} sess_lim[32];
static TaskHandle_t server_task;

/* esp_http_server's recv with a deadline for the headers (httpd_recv_func_t): reads made by
 * the server task outside a handler belong to a request's headers; past the deadline the
 * session fails (the server closes it). Errors as esp_http_server's own recv. */
static int limited_recv(httpd_handle_t hd, int sockfd, char *buf, size_t buf_len, int flags)
{
	(void)hd;
	if (xTaskGetCurrentTaskHandle() == server_task && sess_lim[sockfd & 31].fd == sockfd &&
	    !sess_lim[sockfd & 31].busy) {
		int64_t now = esp_timer_get_time();
		if (!sess_lim[sockfd & 31].since_us)
			sess_lim[sockfd & 31].since_us = now;
		else if (now - sess_lim[sockfd & 31].since_us > HTTP_HEADER_DEADLINE_MS * 1000LL) {
			ESP_LOGW(TAG, "closing a connection: request headers not complete in %d ms",
			         HTTP_HEADER_DEADLINE_MS);
			return HTTPD_SOCK_ERR_FAIL;
		}
	}
	int r = lwip_recv(sockfd, buf, buf_len, flags);
	if (r < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? HTTPD_SOCK_ERR_TIMEOUT
		                                               : HTTPD_SOCK_ERR_FAIL;
	return r;
}

/* httpd_config.open_fn: a new session (server task): its deadline starts at its first read. */
static esp_err_t sess_open(httpd_handle_t hd, int sockfd)
{
	server_task = xTaskGetCurrentTaskHandle();
	sess_lim[sockfd & 31].fd = sockfd;
	sess_lim[sockfd & 31].busy = 0;
	sess_lim[sockfd & 31].since_us = 0;
	httpd_sess_set_recv_override(hd, sockfd, limited_recv);
	return ESP_OK;
}

/* ---- flash upload (one at a time) ---- */

static char fbuf[FLASH_CHUNK];
static char fquery[160];
static char fauth[160];
static char fxreq[8];
static char fpath[URI_MAX + 1];
static uint8_t faddr[16];       /* the upload's client address */
static char fout[HTTP_API_OUT]; /* the final answer, copied out of api.out under api_mu */
static struct api_response frs;

static void flash_lock(unsigned t)
{
	xSemaphoreTake(api_mu, portMAX_DELAY);
	target_lock(t);
}

static void flash_unlock(unsigned t)
{
	target_unlock(t);
	xSemaphoreGive(api_mu);
}

/* Copy rs (pointing into api.out or static text) to frs/fout; call under api_mu. */
static void keep_answer(const struct api_response *rs)
{
	frs = *rs;
	size_t n = rs->len < sizeof(fout) ? rs->len : sizeof(fout);
	memcpy(fout, rs->body, n);
	frs.body = fout;
	frs.len = n;
}

/* Runs the whole upload of req to target t. Returns ESP_OK, or ESP_FAIL when the
 * connection must be closed (body not read, or broken). */
static esp_err_t flash_upload(httpd_req_t *req, unsigned t)
{
	size_t pl = strcspn(req->uri, "?");
	if (pl >= sizeof(fpath))
		pl = sizeof(fpath) - 1;
	memcpy(fpath, req->uri, pl);
	fpath[pl] = '\0';
	const char *query = NULL;
	if (httpd_req_get_url_query_len(req) < sizeof(fquery) &&
	    httpd_req_get_url_query_str(req, fquery, sizeof(fquery)) == ESP_OK)
		query = fquery;
	else if (httpd_req_get_url_query_len(req) >= sizeof(fquery))
		query = "%"; /* refused by the core: 400 */
	struct api_request rq = {
	    .method = "POST",
	    .path = fpath,
	    .authorization = header(req, "Authorization", fauth, sizeof(fauth)),
	    .x_request = header(req, "X-Espstm-Request", fxreq, sizeof(fxreq)),
	    .now_ms = (uint32_t)(esp_timer_get_time() / 1000),
	    .client_addr = faddr,
	    .client_addr_len = peer_addr(req, faddr),
	};
	struct api_response rs;
	/* esp_http_server reads bodies by Content-Length only (no chunked requests) */
	int64_t cl = (int64_t)req->content_len;
	flash_lock(t);
	int started = http_api_flash_start(&api, &rq, query, cl, &rs);
	if (!started)
		keep_answer(&rs);
	flash_unlock(t);
	if (!started) {
		send_answer(req, &frs);
		return req->content_len ? ESP_FAIL : ESP_OK; /* unread body: close */
	}
	/* esp_http_server never answers "Expect: 100-continue" (curl and espstm flash send it,
	 * then wait up to 1-2 s before the body): the run has started, ask for the body now. */
	char expect[16];
	if (header(req, "Expect", expect, sizeof(expect)) &&
	    strcasecmp(expect, "100-continue") == 0)
		httpd_send(req, CONTINUE_100, sizeof(CONTINUE_100) - 1);
	size_t left = req->content_len;
	int idle_ms = 0;
	while (left) {
		int k = httpd_req_recv(req, fbuf, left < sizeof(fbuf) ? left : sizeof(fbuf));
		if (k == HTTPD_SOCK_ERR_TIMEOUT) {
			idle_ms += 1000 * HTTP_RECV_TIMEOUT_S;
			if (idle_ms < 1000 * FLASH_IDLE_S)
				continue;
		}
		if (k <= 0) {
			flash_lock(t);
			http_api_flash_cancel(&api, t,
			                      k == HTTPD_SOCK_ERR_TIMEOUT
			                          ? "no data for 30 s (timeout)"
			                          : "connection closed");
			flash_unlock(t);
			return ESP_FAIL;
		}
		idle_ms = 0;
		left -= (size_t)k;
		size_t off = 0;
		while (off < (size_t)k) {
			flash_lock(t);
			off += http_api_flash_body(&api, t, (const uint8_t *)fbuf + off,
			                           (size_t)k - off);
			http_api_flash_poll(&api, t);
			flash_unlock(t);
			if (off < (size_t)k)
				target_flash_wait(t, 100); /* the target's task ran the ISP */
		}
	}
	flash_lock(t);
	http_api_flash_body_end(&api, t);
	flash_unlock(t);
	for (int burst = 0;;) {
		flash_lock(t);
		int r = http_api_flash_poll(&api, t);
		int done = http_api_flash_result(&api, t, &rs);
		if (done)
			keep_answer(&rs);
		flash_unlock(t);
		if (done)
			break;
		if (r & HTTP_API_FLASH_AGAIN) {
			/* the staged replay has more to do now: no wait, but one tick now and
			 * then so that lower-priority tasks (idle: watchdog) run */
			if (++burst >= FLASH_AGAIN_BURST) {
				burst = 0;
				vTaskDelay(1);
			}
			continue;
		}
		burst = 0;
		target_flash_wait(t, 100);
	}
	send_answer(req, &frs);
	return ESP_OK;
}

#if FLASH_ASYNC
struct flash_job {
	httpd_req_t *req;
	unsigned target;
};
static QueueHandle_t flash_q;
static httpd_handle_t server;

static void flash_task(void *arg)
{
	(void)arg;
	struct flash_job j;
	for (;;) {
		if (xQueueReceive(flash_q, &j, portMAX_DELAY) != pdTRUE)
			continue;
		if (flash_upload(j.req, j.target) != ESP_OK)
			httpd_sess_trigger_close(server, httpd_req_to_sockfd(j.req));
		httpd_req_async_handler_complete(j.req);
	}
}
#endif

/* POST /api/targets/N/flash: in the upload task if there is one, else here. */
static esp_err_t flash_request(httpd_req_t *req, unsigned t)
{
#if FLASH_ASYNC
	httpd_req_t *copy = NULL;
	if (flash_q) {
		if (httpd_req_async_handler_begin(req, &copy) != ESP_OK) {
			static const char e[] =
			    "{\"error\":\"cannot hand the upload to its task\"}";
			struct api_response rs = {.status = 503,
			                          .content_type = "application/json",
			                          .body = e,
			                          .len = sizeof(e) - 1};
			send_answer(req, &rs);
			return req->content_len ? ESP_FAIL : ESP_OK;
		}
		struct flash_job j = {.req = copy, .target = t};
		if (xQueueSend(flash_q, &j, 0) == pdTRUE)
			return ESP_OK;
		static const char busy[] =
		    "{\"error\":\"another flash upload is in progress (one at a time)\"}";
		struct api_response rs = {.status = 409,
		                          .content_type = "application/json",
		                          .body = busy,
		                          .len = sizeof(busy) - 1};
		send_answer(copy, &rs);
		if (copy->content_len)
			httpd_sess_trigger_close(server, httpd_req_to_sockfd(copy));
		httpd_req_async_handler_complete(copy);
		return ESP_OK;
	}
#endif
	return flash_upload(req, t);
}

static esp_err_t handle_req(httpd_req_t *req)
{
	static const char big[] = "{\"error\":\"request body too large\"}";
	struct api_response rs;
	memset(&rs, 0, sizeof(rs));
	const char *method = req->method == HTTP_GET      ? "GET"
	                     : req->method == HTTP_PUT    ? "PUT"
	                     : req->method == HTTP_POST   ? "POST"
	                     : req->method == HTTP_DELETE ? "DELETE"
	                                                  : "?";
	{
		size_t ul = strcspn(req->uri, "?");
		if (ul < sizeof(path)) {
			memcpy(path, req->uri, ul);
			path[ul] = '\0';
			unsigned t;
			if (http_api_flash_route(method, path, &t))
				return flash_request(req, t);
		}
	}
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
		    .client_addr = caddr,
		    .client_addr_len = peer_addr(req, caddr),
		};
		/* GET/DELETE .../flash read or abort the target's ISP: hold its lock too
		 * (api_status, the other route that touches targets, takes their locks itself) */
		unsigned ft = 0;
		int flash_get = (req->method == HTTP_GET || req->method == HTTP_DELETE) &&
		                strncmp(path, "/api/targets/", 13) == 0 &&
		                strstr(path, "/flash") != NULL;
		xSemaphoreTake(api_mu, portMAX_DELAY); /* lock order: api_mu, then the target */
		if (flash_get) {
			const char *d = path + 13;
			while (*d >= '0' && *d <= '9' && ft < 100)
				ft = ft * 10 + (unsigned)(*d++ - '0');
			flash_get = ft < ESPSTM_MAX_TARGETS && target_lock(ft) == 0;
		}
		http_api_handle(&api, &rq, &rs);
		/* rs points into api.out (or the static page): copy it before the locks go, so
		 * neither the upload task nor the target's task waits for the network */
		if (rs.body != http_api_page) {
			size_t n = rs.len < sizeof(sout) ? rs.len : sizeof(sout);
			memcpy(sout, rs.body, n);
			rs.body = sout;
			rs.len = n;
		}
		if (flash_get)
			target_unlock(ft);
		xSemaphoreGive(api_mu);
		send_answer(req, &rs);
		return ESP_OK;
	}
	send_answer(req, &rs);
	return ESP_FAIL; /* 413: the body was not read, close the connection */
}

/* Every route: the header deadline is off while the handler runs (its body reads) and starts
 * again at the next request's first read. */
static esp_err_t handle(httpd_req_t *req)
{
	int fd = httpd_req_to_sockfd(req);
	if (fd >= 0 && sess_lim[fd & 31].fd == fd)
		sess_lim[fd & 31].busy = 1;
	esp_err_t r = handle_req(req);
	if (fd >= 0 && sess_lim[fd & 31].fd == fd) {
		sess_lim[fd & 31].busy = 0;
		sess_lim[fd & 31].since_us = 0;
	}
	return r;
}

#if CONFIG_IDF_TARGET_ESP8266
/* ESP8266_RTOS_SDK v3.4's esp_http_server matches URIs exactly (no uri_match_fn, no
 * wildcards): one handler per route of http_api.h, all going to handle(). Any other path gets
 * the SDK's own 404 / 405 answer. */
static const struct {
	const char *uri;
	httpd_method_t method;
} fixed_routes[] = {
    {"/", HTTP_GET},
    {"/index.html", HTTP_GET},
    {"/api/status", HTTP_GET},
    {"/api/settings", HTTP_GET},
    {"/api/settings", HTTP_PUT},
    {"/api/settings", HTTP_POST},
};
static const struct {
	const char *verb;
	httpd_method_t method;
} target_routes[] = {
    {"reset", HTTP_POST}, {"bootloader", HTTP_POST}, {"run", HTTP_POST},
    {"flash", HTTP_POST}, {"flash", HTTP_GET},       {"flash", HTTP_DELETE},
};
#define N_FIXED_ROUTES  (sizeof(fixed_routes) / sizeof(fixed_routes[0]))
#define N_TARGET_ROUTES (sizeof(target_routes) / sizeof(target_routes[0]))

/* Number of exact routes: the fixed ones and N_TARGET_ROUTES per possible target. */
static size_t route_count(void)
{
	return N_FIXED_ROUTES + ESPSTM_MAX_TARGETS * N_TARGET_ROUTES;
}

/* Route i (< route_count()): its URI into uri (cap bytes) and its method into *m. */
static void route_get(size_t i, char *uri, size_t cap, httpd_method_t *m)
{
	if (i < N_FIXED_ROUTES) {
		snprintf(uri, cap, "%s", fixed_routes[i].uri);
		*m = fixed_routes[i].method;
		return;
	}
	i -= N_FIXED_ROUTES;
	snprintf(uri, cap, "/api/targets/%u/%s", (unsigned)(i / N_TARGET_ROUTES),
	         target_routes[i % N_TARGET_ROUTES].verb);
	*m = target_routes[i % N_TARGET_ROUTES].method;
}
#endif

int http_server_start(void)
{
	const char *pass = settings_web_pass();
	api_mu = xSemaphoreCreateMutex();
	if (!api_mu) {
		ESP_LOGE(TAG, "no memory for the API lock: web server not started");
		return -1;
	}
	stage_part = esp_partition_find_first(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY,
	                                      STAGE_LABEL);
	if (stage_part)
		ESP_LOGI(TAG, "staging area for stage=1 uploads: partition %s, %u bytes",
		         STAGE_LABEL, (unsigned)stage_part->size);
	else
		ESP_LOGW(TAG, "no data partition %s: stage=1 uploads answer 501", STAGE_LABEL);
	if (!pass || http_api_init(&api, &ops, NULL, settings_core(), pass) < 0) {
		ESP_LOGE(TAG, "no usable web password: web server not started");
		return -1;
	}
	httpd_config_t cfg = HTTPD_DEFAULT_CONFIG();
	cfg.stack_size = 6144;
	cfg.max_resp_headers = 10;
#if CONFIG_IDF_TARGET_ESP8266
	cfg.max_uri_handlers = (uint16_t)route_count();
#else
	cfg.uri_match_fn = httpd_uri_match_wildcard;
#endif
	cfg.lru_purge_enable = true;
	cfg.recv_wait_timeout = HTTP_RECV_TIMEOUT_S;
	cfg.max_open_sockets = HTTP_MAX_SOCKETS;
	cfg.backlog_conn = HTTP_BACKLOG;
	cfg.open_fn = sess_open;
	httpd_handle_t h = NULL;
	esp_err_t e = httpd_start(&h, &cfg);
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "httpd_start: %s", esp_err_to_name(e));
		return -1;
	}
#if FLASH_ASYNC
	server = h;
	flash_q = xQueueCreate(1, sizeof(struct flash_job));
	if (!flash_q || xTaskCreate(flash_task, "espstm-flash", 4096, NULL, 5, NULL) != pdPASS)
		ESP_LOGE(TAG, "no upload task: flash uploads run in the server task");
#endif
#if CONFIG_IDF_TARGET_ESP8266
	for (size_t i = 0; i < route_count(); i++) {
		char uri[40];
		httpd_uri_t u = {.uri = uri, .handler = handle, .user_ctx = NULL};
		route_get(i, uri, sizeof(uri), &u.method);
		e = httpd_register_uri_handler(h, &u); /* copies the URI text (strdup) */
		if (e != ESP_OK)
			ESP_LOGE(TAG, "register handler %s: %s", uri, esp_err_to_name(e));
	}
#else
	static const httpd_uri_t uris[] = {
	    {.uri = "/*", .method = HTTP_GET, .handler = handle, .user_ctx = NULL},
	    {.uri = "/*", .method = HTTP_PUT, .handler = handle, .user_ctx = NULL},
	    {.uri = "/*", .method = HTTP_POST, .handler = handle, .user_ctx = NULL},
	    {.uri = "/*", .method = HTTP_DELETE, .handler = handle, .user_ctx = NULL},
	};
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		e = httpd_register_uri_handler(h, &uris[i]);
		if (e != ESP_OK)
			ESP_LOGE(TAG, "register handler: %s", esp_err_to_name(e));
	}
#endif
	ESP_LOGI(TAG, "web page and API on http://%s.local/ (user %s)", espstm_hostname(),
	         HTTP_API_USER);
	return 0;
}
