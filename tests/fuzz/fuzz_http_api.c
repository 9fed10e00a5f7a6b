/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: firmware/core/http_api.c (and through it flash_job.c, settings.c, json.c).
 * Input: a sequence of requests separated by the byte 0xFF; each request is split at 0x00
 * into method, path, Authorization, X-Espstm-Request and body (missing parts: NULL / empty).
 * The first byte of a request is a control byte: bit 0 Authorization replaced by the right
 * credentials, bit 1 X-Espstm-Request forced to "1", bit 2 path replaced by a route picked
 * by bits 4-6 (+ the fuzzed path as suffix for the target actions), bit 3 method picked from
 * bits 4-5; bit 7 advances the clock by 40 s (the lock-out expires). Every part is copied to
 * an exact-size heap buffer so ASan sees over-reads. The response is checked for shape.
 * Route 7 is the flash upload (POST /api/targets/0/flash, http_api.h "Flashing"): the fuzzed
 * path is its query string and the body is streamed in pieces (sizes from the body's bytes)
 * into the real AN3155 master on an instant simulated STM32F103; bit 6 of the X-Espstm-Request
 * part's first byte cuts the upload in the middle (http_api_flash_cancel). The run must end
 * (bounded rounds), the claim must be released, and the answer must be valid JSON whose
 * "state" is "done" exactly when the status is 200.
 */
#include "http_api.h"
#include "json.h"
#include "stm32sim.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct settings_mgr sm;
static struct http_api api;
static char stored[1024];
static size_t stored_len;
static int busy;

static void st_cb(void *ctx, struct api_status *s)
{
	(void)ctx;
	s->target_count = 2;
	s->version = "espstm \"fuzz\"\n";
	s->ssid = "ssid\x01\\";
	s->t[0].client_addr = "127.0.0.1:1";
	s->t[1].mode = "raw";
	s->t[0].uart = (struct hal_uart_cfg){115200, 8, 7, 9, 1};
}
static void ap_cb(void *ctx, const struct settings *s)
{
	(void)ctx;
	if (settings_validate(s, &sm.caps, NULL) != 0)
		abort(); /* applied settings must be valid */
}
static int ac_cb(void *ctx, unsigned t, enum api_action a)
{
	(void)ctx;
	if (t >= sm.cur.target_count || (unsigned)a > API_ACT_RUN)
		abort();
	return (busy++ % 3) == 2 ? -EBUSY : (busy % 5) == 4 ? -EIO : 0;
}
static void log_cb(void *ctx, const char *line)
{
	(void)ctx;
	if (strlen(line) >= 200) /* api_log: 96 (http_api.c), job_log: 200 (flash_job.c) */
		abort();
}
static int load_cb(void *ctx, char *buf, size_t cap)
{
	(void)ctx;
	if (!stored_len)
		return -ENOENT;
	size_t n = stored_len < cap ? stored_len : cap - 1;
	memcpy(buf, stored, n);
	buf[n] = '\0';
	return (int)n;
}
static int save_cb(void *ctx, const char *text, size_t len)
{
	(void)ctx;
	if (len >= sizeof(stored) || strlen(text) != len)
		abort();
	memcpy(stored, text, len);
	stored_len = len;
	return 0;
}
/* ---- flash rig: the ISP on an instant simulated F103, one fake clock ---- */
static struct stm32sim *sim;
static uint64_t now_us;
static struct stm32_isp isp;
static int claimed, nrst = 1, boot0;

static int r_cfg(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	static const char par[] = "?NOEMS";
	struct stm32sim_line l = {c->baud, c->data_bits, c->parity <= 5 ? par[c->parity] : 'N',
	                          (uint8_t)(c->stop == 2 ? 2 : 1)};
	stm32sim_set_line(sim, now_us, &l);
	return 0;
}
static size_t r_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	return stm32sim_write(sim, now_us, p, n);
}
static void r_purge(void *ctx, int rx, int tx)
{
	(void)ctx;
	(void)tx;
	uint8_t b[64];
	while (rx && stm32sim_read(sim, now_us, b, sizeof(b)) > 0)
		;
}
static void r_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	if (pin == HAL_PIN_NRST)
		nrst = level;
	else
		boot0 = level;
	stm32sim_set_pins(sim, now_us, nrst, boot0);
}
static uint32_t r_now(void *ctx)
{
	(void)ctx;
	return (uint32_t)(now_us / 1000);
}
static const struct hal_ops rig_hal = {.uart_config = r_cfg,
                                       .uart_write = r_write,
                                       .uart_purge = r_purge,
                                       .gpio_set = r_gpio,
                                       .now_ms = r_now};

static struct stm32_isp *isp_cb(void *ctx, unsigned t)
{
	(void)ctx;
	return t == 0 ? &isp : NULL;
}
static void claim_cb(void *ctx, unsigned t, int on)
{
	(void)ctx;
	if (t != 0 || on == claimed)
		abort(); /* claims come in pairs */
	claimed = on;
}

/* One platform round: UART bytes to the ISP, poll, clock forward. */
static int rig_step(void)
{
	uint8_t b[256];
	size_t n;
	stm32sim_poll(sim, now_us);
	while ((n = stm32sim_read(sim, now_us, b, sizeof(b))) > 0)
		if (claimed && stm32_isp_busy(&isp))
			stm32_isp_input(&isp, b, n);
	stm32_isp_poll(&isp);
	int r = http_api_flash_poll(&api, 0);
	now_us += 1000;
	return r;
}

static void check_answer(const struct api_response *rs)
{
	static struct jtok tk[128];
	if (!rs->body || strlen(rs->body) != rs->len || json_parse(rs->body, rs->len, tk, 128) < 1)
		abort();
	int st = json_find(rs->body, tk, 0, "state");
	int done = st > 0 && json_str_eq(rs->body, &tk[st], "done");
	if (rs->status == 200 ? !done : (st > 0 && done))
		abort(); /* "done" exactly with 200 */
}

/* A flash upload: query from the fuzzed path, body streamed in fuzzed pieces. */
static void flash_upload(const struct api_request *rq, const char *query, int cut)
{
	struct api_response rs;
	int64_t cl = (int64_t)rq->body_len;
	if (!http_api_flash_start(&api, rq, query, cl, &rs)) {
		check_answer(&rs);
		if (claimed)
			abort();
		return;
	}
	size_t off = 0, n = rq->body_len;
	const uint8_t *p = (const uint8_t *)rq->body;
	unsigned rounds = 0;
	while (off < n) {
		if (cut && off >= n / 2) {
			http_api_flash_cancel(&api, 0, "connection closed");
			if (claimed || http_api_flash_busy(&api, 0))
				abort();
			return;
		}
		size_t piece = 1 + (size_t)(p[off] & 0x3F) * 7;
		if (piece > n - off)
			piece = n - off;
		size_t k = http_api_flash_body(&api, 0, p + off, piece);
		off += k;
		if (k < piece)
			while (!(rig_step() & HTTP_API_FLASH_ROOM))
				if (++rounds > 2000000)
					abort(); /* the upload never gets room again */
	}
	http_api_flash_body_end(&api, 0);
	while (!(rig_step() & HTTP_API_FLASH_RESULT))
		if (++rounds > 2000000)
			abort(); /* the run never ends */
	if (!http_api_flash_result(&api, 0, &rs))
		abort();
	check_answer(&rs);
	if (claimed || http_api_flash_busy(&api, 0))
		abort();
}

static const struct api_ops ops = {.status = st_cb,
                                   .apply = ap_cb,
                                   .action = ac_cb,
                                   .log = log_cb,
                                   .isp = isp_cb,
                                   .flash_claim = claim_cb};

#define GOOD "Basic YWRtaW46cHctMTIz" /* admin:pw-123 */

static char *dup_part(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);
	if (!s)
		abort();
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct settings_caps caps;
	settings_caps_nominal(&caps, size && (data[0] & 0x80) ? 2 : 1);
	stored_len = 0;
	busy = 0;
	struct settings_store store = {.load = load_cb, .save = save_cb};
	settings_mgr_init(&sm, &caps, &store, NULL);
	if (http_api_init(&api, &ops, NULL, &sm, "pw-123") != 0)
		abort();
	if (!sim) {
		char err[128];
		struct stm32sim_options so = {.model = "stm32f103", .instant = 1};
		sim = stm32sim_new(&so, 0, err, sizeof(err));
		if (!sim)
			abort();
	}
	stm32_isp_init(&isp, &rig_hal, NULL);
	claimed = 0;
	uint32_t now = 0xFFFF0000u; /* wraps during the run */
	static const char *const routes[8] = {"/",
	                                      "/index.html",
	                                      "/api/status",
	                                      "/api/settings",
	                                      "/api/targets/",
	                                      "/api/targets/0/",
	                                      "/api/targets/1/",
	                                      "/api/targets/0/flash"};
	static const char *const methods[4] = {"GET", "PUT", "POST", "HEAD"};
	size_t pos = 0;
	for (int nrq = 0; pos < size && nrq < 64; nrq++) {
		const uint8_t *rq_start = data + pos;
		const uint8_t *end = memchr(rq_start, 0xFF, size - pos);
		size_t rlen = end ? (size_t)(end - rq_start) : size - pos;
		pos += rlen + 1;
		if (rlen == 0)
			continue;
		uint8_t ctl = rq_start[0];
		const uint8_t *p = rq_start + 1;
		size_t left = rlen - 1;
		char *part[5] = {NULL, NULL, NULL, NULL, NULL};
		size_t plen[5] = {0, 0, 0, 0, 0};
		for (int k = 0; k < 5 && (left || k == 0); k++) {
			const uint8_t *z = k < 4 ? memchr(p, 0, left) : NULL;
			size_t l = z ? (size_t)(z - p) : left;
			if (k == 4) /* body: binary, not NUL-terminated */
				l = left;
			part[k] = dup_part(p, l);
			plen[k] = l;
			p += l;
			left -= l;
			if (z) {
				p++;
				left--;
			}
		}
		char *path = part[1];
		char *query = NULL; /* flash route: the fuzzed path part */
		if (ctl & 4) {
			const char *r = routes[(ctl >> 4) & 7];
			size_t rl = strlen(r), sl = path ? strlen(path) : 0;
			char *np = malloc(rl + sl + 1);
			if (!np)
				abort();
			memcpy(np, r, rl);
			if (((ctl >> 4) & 7) >= 4 && ((ctl >> 4) & 7) != 7 && path)
				memcpy(np + rl, path, sl);
			else
				sl = 0;
			np[rl + sl] = '\0';
			if (((ctl >> 4) & 7) == 7)
				query = part[1];
			else
				free(part[1]);
			path = part[1] = np;
		}
		char *body = NULL;
		size_t blen = 0;
		if (part[4]) {
			body = malloc(plen[4] ? plen[4] : 1);
			if (!body)
				abort();
			memcpy(body, part[4], plen[4]);
			blen = plen[4];
		}
		struct api_request rq = {
		    .method = (ctl & 8) ? methods[(ctl >> 4) & 3] : part[0],
		    .path = path,
		    .authorization = (ctl & 1) ? GOOD : part[2],
		    .x_request = (ctl & 2) ? "1" : part[3],
		    .body = body,
		    .body_len = blen,
		    .now_ms = now,
		};
		unsigned ft;
		if (http_api_flash_route(rq.method, rq.path, &ft)) {
			/* the streamed upload; the fuzzed path part is the query */
			flash_upload(&rq, query, part[3] && (part[3][0] & 0x40));
			now += 7u;
			free(query);
			free(body);
			for (int k = 0; k < 5; k++)
				free(part[k]);
			continue;
		}
		struct api_response rs;
		http_api_handle(&api, &rq, &rs);
		if (rs.status < 200 || rs.status > 599 || !rs.content_type || !rs.body)
			abort();
		if (rs.status == 429 && (rs.retry_after_s == 0 || rs.retry_after_s > 30))
			abort();
		/* JSON responses are NUL-terminated inside api->out or static */
		if (rs.body != http_api_page && strlen(rs.body) != rs.len)
			abort();
		if (settings_validate(&sm.cur, &sm.caps, NULL) != 0)
			abort();
		now += (ctl & 0x80) ? 40000u : 7u;
		free(query);
		free(body);
		for (int k = 0; k < 5; k++)
			free(part[k]);
	}
	return 0;
}
