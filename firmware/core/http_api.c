/* SPDX-License-Identifier: MIT */
/* The HTTP API (http_api.h): routing, authentication (password, lock-out) and the JSON
 * answers; the flash upload job behind POST .../flash is flash_job.c. */
#include "http_api.h"

#include "bridge.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

uint32_t http_api_ct_calls;

int http_api_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const volatile uint8_t *x = a, *y = b;
	http_api_ct_calls++;
	size_t diff = alen ^ blen;
	for (size_t i = 0; i < blen; i++) {
		uint8_t ca = alen ? x[i < alen ? i : i % alen] : 0;
		diff |= (size_t)(ca ^ y[i]);
	}
	return diff == 0;
}

int http_api_init(struct http_api *api, const struct api_ops *ops, void *ctx,
                  struct settings_mgr *settings, const char *pass)
{
	memset(api, 0, sizeof(*api));
	size_t l = pass ? strlen(pass) : 0;
	if (l == 0 || l > HTTP_API_PASS_MAX)
		return -EINVAL;
	memcpy(api->pass, pass, l + 1);
	for (unsigned i = 0; i < HTTP_API_PEERS; i++)
		api->peer[i].len = 0xFF;
	api->ops = ops;
	api->ctx = ctx;
	api->settings = settings;
	for (unsigned t = 0; t < SETTINGS_MAX_TARGETS; t++)
		flash_job_init(&api->flash[t], t, ops, ctx, &settings->cur);
	return 0;
}

/* ---- helpers ---- */

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode base64 s into out (cap). Returns length or -1. */
static int b64dec(const char *s, char *out, size_t cap)
{
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (; *s && *s != '='; s++) {
		int v = b64val(*s);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= cap)
				return -1;
			out[o++] = (char)((acc >> bits) & 0xFF);
		}
	}
	out[o] = '\0';
	return (int)o;
}

static int ci_prefix(const char *s, const char *p)
{
	for (; *p; s++, p++) {
		char a = *s, b = *p;
		if (a >= 'A' && a <= 'Z')
			a = (char)(a - 'A' + 'a');
		if (a != b)
			return 0;
	}
	return 1;
}

static void reply(struct api_response *rs, int status, const char *ctype, const char *body,
                  size_t len)
{
	rs->status = status;
	rs->content_type = ctype;
	rs->body = body;
	rs->len = len;
}

static void reply_json(struct http_api *api, struct api_response *rs, int status, struct jw *w)
{
	int n = jw_finish(w);
	if (n < 0) {
		static const char e[] = "{\"error\":\"response too large\"}";
		reply(rs, 500, "application/json", e, sizeof(e) - 1);
		return;
	}
	reply(rs, status, "application/json", api->out, (size_t)n);
}

static void reply_error(struct http_api *api, struct api_response *rs, int status, const char *msg)
{
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	jw_obj(&w);
	jw_key(&w, "error");
	jw_str(&w, msg);
	jw_obj_end(&w);
	reply_json(api, rs, status, &w);
}

static void api_log(struct http_api *api, const char *a, const char *b)
{
	if (!api->ops || !api->ops->log)
		return;
	char line[96];
	size_t la = strlen(a), lb = strlen(b);
	if (la > 60)
		la = 60;
	if (lb > sizeof(line) - 1 - la)
		lb = sizeof(line) - 1 - la;
	memcpy(line, a, la);
	memcpy(line + la, b, lb);
	line[la + lb] = '\0';
	/* b may be the (unauthenticated) request path: no control characters in the log */
	for (size_t i = la; i < la + lb; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	api->ops->log(api->ctx, line);
}

/* ---- lock-out per client address (http_api.h "Lock-out") ---- */

static int peer_running(const struct http_api_peer *p, uint32_t now)
{
	return p->len != 0xFF && p->locked && !hal_time_reached(now, p->locked_until);
}

/* The request's address as a key: length 4 or 16, else 0 (unknown). */
static size_t peer_key(const struct api_request *rq)
{
	size_t n = rq->client_addr ? rq->client_addr_len : 0;
	return n == 4 || n == 16 ? n : 0;
}

/* The entry of rq's address, or the overflow entry when the address is not in the table and
 * every entry holds a running lock, or NULL (not in the table: nothing held against it). */
static struct http_api_peer *peer_find(struct http_api *api, const struct api_request *rq)
{
	size_t n = peer_key(rq);
	int all_locked = 1;
	for (unsigned i = 0; i < HTTP_API_PEERS; i++) {
		struct http_api_peer *p = &api->peer[i];
		if (p->len == n && (n == 0 || memcmp(p->addr, rq->client_addr, n) == 0))
			return p;
		if (!peer_running(p, rq->now_ms))
			all_locked = 0;
	}
	return all_locked ? &api->overflow : NULL;
}

/* A new entry for rq's address (it had none): a free one, else the least recently used
 * one without a running lock (the caller has checked that one exists). */
static struct http_api_peer *peer_take(struct http_api *api, const struct api_request *rq)
{
	struct http_api_peer *best = NULL;
	for (unsigned i = 0; i < HTTP_API_PEERS; i++) {
		struct http_api_peer *p = &api->peer[i];
		if (p->len == 0xFF) {
			best = p;
			break;
		}
		if (!peer_running(p, rq->now_ms) && (!best || p->used - best->used > 0x80000000u))
			best = p; /* p->used older than best->used (wrapping stamps) */
	}
	memset(best, 0, sizeof(*best));
	best->len = (uint8_t)peer_key(rq);
	if (best->len)
		memcpy(best->addr, rq->client_addr, best->len);
	return best;
}

/* A wrong password from p's address: count it, lock when due. */
static void peer_failed(struct http_api_peer *p, uint32_t now)
{
	if (p->fails < 255)
		p->fails++;
	if (p->fails >= HTTP_API_FREE_FAILS) {
		uint32_t shift = (uint32_t)p->fails - HTTP_API_FREE_FAILS;
		uint32_t ms = shift >= 15 ? HTTP_API_MAX_LOCK_MS : 1000u << shift;
		if (ms > HTTP_API_MAX_LOCK_MS)
			ms = HTTP_API_MAX_LOCK_MS;
		p->locked = 1;
		p->locked_until = now + ms;
	}
}

/* 1 when the Authorization header holds user "admin" and the unit's password (constant
 * time), else 0. */
static int credentials_ok(const struct http_api *api, const char *h)
{
	if (!ci_prefix(h, "basic "))
		return 0;
	h += 6;
	while (*h == ' ')
		h++;
	char dec[HTTP_API_PASS_MAX + 40];
	int n = b64dec(h, dec, sizeof(dec));
	char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
	if (!colon)
		return 0;
	size_t ul = (size_t)(colon - dec);
	const char *p = colon + 1;
	size_t pl = (size_t)n - ul - 1;
	/* both comparisons always run: no early exit on the user name */
	int u = http_api_ct_equal(dec, ul, HTTP_API_USER, sizeof(HTTP_API_USER) - 1);
	/* the password is compared as the whole zero-padded buffer (api->pass is zeroed by
	 * init), so the time does not depend on its length either; a NUL in the candidate
	 * would match the padding: refused */
	char cand[sizeof(api->pass)];
	memset(cand, 0, sizeof(cand));
	int fits = pl < sizeof(cand) && !memchr(p, '\0', pl);
	if (fits)
		memcpy(cand, p, pl);
	int q = http_api_ct_equal(cand, sizeof(cand), api->pass, sizeof(api->pass));
	return u & q & fits;
}

/* 1 authorised; else the response is filled. */
static int check_auth(struct http_api *api, const struct api_request *rq, struct api_response *rs)
{
	struct http_api_peer *pe = peer_find(api, rq);
	if (pe && peer_running(pe, rq->now_ms)) {
		uint32_t left = pe->locked_until - rq->now_ms;
		rs->retry_after_s = (left + 999) / 1000;
		reply_error(api, rs, 429, "too many wrong passwords: try again later");
		return 0;
	}
	const char *h = rq->authorization;
	if (!h || !*h) {
		rs->www_authenticate = 1;
		reply_error(api, rs, 401, "authentication required");
		return 0;
	}
	if (credentials_ok(api, h)) {
		if (pe && pe != &api->overflow)
			pe->len = 0xFF; /* the address's record is cleared */
		return 1;
	}
	api->fails_total++;
	if (!pe)
		pe = peer_take(api, rq);
	pe->used = ++api->use_clock;
	peer_failed(pe, rq->now_ms);
	api_log(api, "http: wrong credentials for ", rq->path);
	rs->www_authenticate = 1;
	reply_error(api, rs, 401, "wrong user name or password");
	return 0;
}

/* Locked mode (http_api.h "Signed images"): a verification key is installed. */
static int is_locked(const struct http_api *api)
{
	return api->ops && api->ops->locked && api->ops->locked(api->ctx);
}

static const char *parity_name(uint8_t p)
{
	static const char *const n[] = {"?", "N", "O", "E", "M", "S"};
	return p <= 5 ? n[p] : "?";
}

static const char *stop_name(uint8_t s)
{
	return s == 1 ? "1" : s == 2 ? "2" : s == 3 ? "1.5" : "?";
}

static void put_pin_level(struct jw *w, int v)
{
	if (v < 0)
		jw_null(w);
	else
		jw_int(w, v);
}

/* "clients": the RFC 2217 port holders (api_ops.clients). */
static void put_clients(struct http_api *api, struct jw *w)
{
	struct api_client c[API_CLIENTS_MAX];
	unsigned n = 0;
	if (api->ops && api->ops->clients)
		n = api->ops->clients(api->ctx, c, API_CLIENTS_MAX);
	if (n > API_CLIENTS_MAX)
		n = API_CLIENTS_MAX;
	jw_key(w, "clients");
	jw_arr(w);
	for (unsigned i = 0; i < n; i++) {
		c[i].peer[sizeof(c[i].peer) - 1] = '\0';
		jw_obj(w);
		jw_key(w, "target");
		jw_int(w, c[i].target);
		jw_key(w, "peer");
		jw_str(w, c[i].peer);
		jw_key(w, "tls");
		jw_bool(w, c[i].tls);
		jw_key(w, "since_s");
		jw_int(w, c[i].since_s);
		jw_key(w, "idle_s");
		jw_int(w, c[i].idle_s);
		jw_key(w, "bytes_in");
		jw_int(w, c[i].bytes_in);
		jw_key(w, "bytes_out");
		jw_int(w, c[i].bytes_out);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

/* POST /api/targets/N/disconnect: drop the holder of target t's RFC 2217 port. */
static void do_disconnect(struct http_api *api, unsigned t, struct api_response *rs)
{
	if (t >= api->settings->cur.target_count) {
		reply_error(api, rs, 404, "no such target");
		return;
	}
	if (!api->ops || !api->ops->disconnect) {
		reply_error(api, rs, 501, "this platform cannot drop clients");
		return;
	}
	int r = api->ops->disconnect(api->ctx, t);
	api_log(api, "http: disconnect ", r > 0 ? "(client dropped)" : "(no client)");
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	jw_obj(&w);
	jw_key(&w, "target");
	jw_int(&w, t);
	jw_key(&w, "dropped");
	jw_bool(&w, r > 0);
	jw_obj_end(&w);
	reply_json(api, rs, 200, &w);
}

static void do_status(struct http_api *api, struct api_response *rs)
{
	struct api_status st;
	memset(&st, 0, sizeof(st));
	for (unsigned i = 0; i < SETTINGS_MAX_TARGETS; i++)
		st.t[i].nrst = st.t[i].boot0 = -1;
	if (api->ops && api->ops->status)
		api->ops->status(api->ctx, &st);
	const struct settings *s = &api->settings->cur;
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	jw_obj(&w);
	jw_key(&w, "version");
	jw_str(&w, st.version ? st.version : BRIDGE_SIGNATURE);
	jw_key(&w, "uptime_s");
	jw_int(&w, st.uptime_s);
	jw_key(&w, "wifi");
	jw_obj(&w);
	jw_key(&w, "mode");
	jw_str(&w, st.wifi_mode);
	jw_key(&w, "ssid");
	jw_str(&w, st.ssid);
	jw_key(&w, "ip");
	jw_str(&w, st.ip);
	jw_key(&w, "rssi");
	if (st.has_rssi)
		jw_int(&w, st.rssi);
	else
		jw_null(&w);
	jw_key(&w, "hostname");
	jw_str(&w, st.hostname);
	jw_obj_end(&w);
	jw_key(&w, "auth_failures");
	jw_int(&w, api->fails_total);
	jw_key(&w, "locked");
	jw_bool(&w, is_locked(api));
	jw_key(&w, "targets");
	jw_arr(&w);
	unsigned n = st.target_count ? st.target_count : s->target_count;
	if (n > SETTINGS_MAX_TARGETS)
		n = SETTINGS_MAX_TARGETS;
	for (unsigned i = 0; i < n; i++) {
		const struct api_target_status *t = &st.t[i];
		const struct settings_target *c = &s->target[i];
		jw_obj(&w);
		jw_key(&w, "index");
		jw_int(&w, i);
		jw_key(&w, "port");
		jw_int(&w, c->port);
		jw_key(&w, "client");
		jw_obj(&w);
		jw_key(&w, "connected");
		jw_bool(&w, t->client_connected);
		jw_key(&w, "address");
		jw_str(&w, t->client_addr);
		jw_key(&w, "mode");
		jw_str(&w, t->mode);
		jw_obj_end(&w);
		jw_key(&w, "uart");
		jw_obj(&w);
		jw_key(&w, "baud");
		jw_int(&w, t->uart.baud);
		jw_key(&w, "data_bits");
		jw_int(&w, t->uart.data_bits);
		jw_key(&w, "parity");
		jw_str(&w, parity_name(t->uart.parity));
		jw_key(&w, "stop_bits");
		jw_str(&w, stop_name(t->uart.stop));
		jw_obj_end(&w);
		jw_key(&w, "user_baud");
		jw_int(&w, c->baud);
		jw_key(&w, "line_map");
		jw_str(&w, settings_line_map_name(c->line_map));
		jw_key(&w, "auto_boot");
		jw_str(&w, settings_auto_boot_name(c->auto_boot));
		jw_key(&w, "settle_ms");
		jw_int(&w, c->settle_ms);
		jw_key(&w, "pins");
		jw_obj(&w);
		jw_key(&w, "nrst");
		put_pin_level(&w, t->nrst);
		jw_key(&w, "boot0");
		put_pin_level(&w, t->boot0);
		jw_key(&w, "gpio");
		jw_obj(&w);
		jw_key(&w, "tx");
		jw_int(&w, c->pins.tx);
		jw_key(&w, "rx");
		jw_int(&w, c->pins.rx);
		jw_key(&w, "nrst");
		jw_int(&w, c->pins.nrst);
		jw_key(&w, "boot0");
		jw_int(&w, c->pins.boot0);
		jw_obj_end(&w);
		jw_obj_end(&w);
		jw_key(&w, "bytes");
		jw_obj(&w);
		jw_key(&w, "to_uart");
		jw_int(&w, t->bytes_to_uart);
		jw_key(&w, "from_uart");
		jw_int(&w, t->bytes_from_uart);
		jw_obj_end(&w);
		jw_key(&w, "errors");
		jw_int(&w, t->errors);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	put_clients(api, &w);
	jw_obj_end(&w);
	reply_json(api, rs, 200, &w);
}

static void do_get_settings(struct http_api *api, struct api_response *rs)
{
	int n = settings_to_json(&api->settings->cur, api->out, sizeof(api->out));
	if (n < 0) {
		reply_error(api, rs, 500, "settings too large");
		return;
	}
	reply(rs, 200, "application/json", api->out, (size_t)n);
}

static void settings_errors(struct http_api *api, struct api_response *rs,
                            const struct settings_error *err)
{
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	jw_obj(&w);
	jw_key(&w, "error");
	jw_str(&w, "invalid settings");
	jw_key(&w, "fields");
	jw_obj(&w);
	for (unsigned i = 0; i < err->count; i++) {
		jw_key(&w, err->e[i].field);
		jw_str(&w, err->e[i].msg);
	}
	jw_obj_end(&w);
	jw_obj_end(&w);
	reply_json(api, rs, 400, &w);
}

static void do_put_settings(struct http_api *api, const struct api_request *rq,
                            struct api_response *rs)
{
	static struct settings_error err; /* static: small stacks on the ESP */
	struct settings s = api->settings->cur;
	/* no body: empty, whatever body_len says */
	if (settings_from_json(&s, &api->settings->caps, rq->body ? rq->body : "",
	                       rq->body ? rq->body_len : 0, &err) < 0) {
		settings_errors(api, rs, &err);
		return;
	}
	int r = settings_mgr_set(api->settings, &s, &err);
	if (r == -EINVAL) {
		settings_errors(api, rs, &err);
		return;
	}
	if (r < 0) {
		reply_error(api, rs, 500, "settings could not be stored");
		return;
	}
	if (api->ops && api->ops->apply)
		api->ops->apply(api->ctx, &api->settings->cur);
	api_log(api, "http: settings ", r ? "saved" : "unchanged (not written)");
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	jw_obj(&w);
	jw_key(&w, "saved");
	jw_bool(&w, r == 1);
	jw_key(&w, "settings");
	char tmp[SETTINGS_JSON_MAX];
	if (settings_to_json(&api->settings->cur, tmp, sizeof(tmp)) >= 0) {
		w.need_comma = 0;
		jw_raw(&w, tmp);
		w.need_comma = 1;
	} else {
		jw_null(&w);
	}
	jw_obj_end(&w);
	reply_json(api, rs, 200, &w);
}

static void do_action(struct http_api *api, const char *rest, struct api_response *rs)
{
	/* rest: "N/verb" */
	unsigned idx = 0;
	const char *p = rest;
	if (*p < '0' || *p > '9')
		goto notfound;
	while (*p >= '0' && *p <= '9' && idx < 100)
		idx = idx * 10 + (unsigned)(*p++ - '0');
	if (*p++ != '/')
		goto notfound;
	enum api_action a;
	if (strcmp(p, "reset") == 0)
		a = API_ACT_RESET;
	else if (strcmp(p, "bootloader") == 0)
		a = API_ACT_BOOTLOADER;
	else if (strcmp(p, "run") == 0)
		a = API_ACT_RUN;
	else
		goto notfound;
	if (idx >= api->settings->cur.target_count) {
		reply_error(api, rs, 404, "no such target");
		return;
	}
	if (http_api_flash_busy(api, idx)) {
		reply_error(api, rs, 409, "a flash is running on this target");
		return;
	}
	if (a == API_ACT_BOOTLOADER && is_locked(api)) {
		reply_error(api, rs, 403,
		            "this unit is locked (signed images only): no bootloader entry; "
		            "reset and run work");
		return;
	}
	int r = api->ops && api->ops->action ? api->ops->action(api->ctx, idx, a) : -ENOSYS;
	if (r == -EPERM) {
		reply_error(api, rs, 403, "refused: locked mode (signed images only)");
		return;
	}
	if (r < 0) {
		reply_error(api, rs, r == -EBUSY ? 409 : 500,
		            r == -EBUSY ? "a reset sequence is running" : "action failed");
		return;
	}
	api_log(api, "http: action ", p);
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	jw_obj(&w);
	jw_key(&w, "target");
	jw_int(&w, idx);
	jw_key(&w, "action");
	jw_str(&w, p);
	jw_key(&w, "ok");
	jw_bool(&w, 1);
	jw_obj_end(&w);
	reply_json(api, rs, 200, &w);
	return;
notfound:
	reply_error(api, rs, 404, "not found");
}

/* ---- flashing (http_api.h "Flashing"; the job itself is flash_job.c) ---- */

/* "N/verb": the verb (pointer into rest) with N in *t, or NULL. */
static const char *target_verb(const char *rest, unsigned *t)
{
	unsigned idx = 0;
	const char *p = rest;
	if (*p < '0' || *p > '9')
		return NULL;
	while (*p >= '0' && *p <= '9') {
		if (idx >= 100)
			return NULL;
		idx = idx * 10 + (unsigned)(*p++ - '0');
	}
	if (*p++ != '/')
		return NULL;
	*t = idx;
	return p;
}

int http_api_flash_route(const char *method, const char *path, unsigned *target)
{
	if (!method || !path || strcmp(method, "POST") != 0 ||
	    strncmp(path, "/api/targets/", 13) != 0)
		return 0;
	unsigned t;
	const char *verb = target_verb(path + 13, &t);
	if (!verb || strcmp(verb, "flash") != 0)
		return 0;
	*target = t;
	return 1;
}

static struct flash_job *job_of(struct http_api *api, unsigned target)
{
	return target < SETTINGS_MAX_TARGETS ? &api->flash[target] : NULL;
}

int http_api_flash_busy(const struct http_api *api, unsigned target)
{
	return target < SETTINGS_MAX_TARGETS && flash_job_busy(&api->flash[target]);
}

int http_api_flash_start(struct http_api *api, const struct api_request *rq, const char *query,
                         int64_t content_length, struct api_response *rs)
{
	memset(rs, 0, sizeof(*rs));
	unsigned t;
	if (!http_api_flash_route(rq->method, rq->path, &t)) {
		reply_error(api, rs, 404, "not found");
		return 0;
	}
	if (!check_auth(api, rq, rs))
		return 0;
	if (!rq->x_request || strcmp(rq->x_request, "1") != 0) {
		reply_error(api, rs, 403, "changing requests need the header X-Espstm-Request: 1");
		return 0;
	}
	struct flash_job *j = job_of(api, t);
	if (!j || t >= api->settings->cur.target_count) {
		reply_error(api, rs, 404, "no such target");
		return 0;
	}
	struct stm32_isp *isp = api->ops && api->ops->isp ? api->ops->isp(api->ctx, t) : NULL;
	if (!isp || !api->ops->flash_claim) {
		reply_error(api, rs, 501, "this target cannot be flashed by the firmware");
		return 0;
	}
	if (flash_job_busy(j) || stm32_isp_busy(isp)) {
		reply_error(api, rs, 409, "a flash is already running on this target");
		return 0;
	}
	char sigb[FLASH_JOB_SIG_MAX + 1];
	int siglen = 0;
	if (rq->signature && (siglen = b64dec(rq->signature, sigb, sizeof(sigb))) <= 0) {
		reply_error(api, rs, 403,
		            "signature: X-Espstm-Signature is not the base64 of a signature of at "
		            "most 80 bytes");
		return 0;
	}
	char msg[112];
	int status = flash_job_start(j, isp, query, content_length,
	                             rq->signature ? (const uint8_t *)sigb : NULL, (size_t)siglen,
	                             msg, sizeof(msg));
	if (status) {
		reply_error(api, rs, status, msg);
		return 0;
	}
	/* a bin run that could not begin has its answer at once */
	return !http_api_flash_result(api, t, rs);
}

size_t http_api_flash_body(struct http_api *api, unsigned target, const uint8_t *p, size_t n)
{
	struct flash_job *j = job_of(api, target);
	return j ? flash_job_body(j, p, n) : n;
}

void http_api_flash_body_end(struct http_api *api, unsigned target)
{
	struct flash_job *j = job_of(api, target);
	if (j)
		flash_job_body_end(j);
}

void http_api_flash_cancel(struct http_api *api, unsigned target, const char *why)
{
	struct flash_job *j = job_of(api, target);
	if (j)
		flash_job_cancel(j, why);
}

int http_api_flash_abort(struct http_api *api, unsigned target, const char *why)
{
	struct flash_job *j = job_of(api, target);
	return j ? flash_job_abort(j, why) : 0;
}

int http_api_flash_poll(struct http_api *api, unsigned target)
{
	struct flash_job *j = job_of(api, target);
	return j ? flash_job_poll(j) : 0;
}

static void put_hex32(struct jw *w, uint32_t v, int digits)
{
	char b[16];
	snprintf(b, sizeof(b), "0x%0*lX", digits, (unsigned long)v);
	jw_str(w, b);
}

static void put_device(struct jw *w, const struct stm32_isp_status *st)
{
	if (!st->dev) {
		jw_null(w);
		return;
	}
	char pid[8], bl[8];
	snprintf(pid, sizeof(pid), "0x%03X", (unsigned)st->pid);
	snprintf(bl, sizeof(bl), "%u.%u", (unsigned)(st->bl_version >> 4),
	         (unsigned)(st->bl_version & 15));
	jw_obj(w);
	jw_key(w, "pid");
	jw_str(w, pid);
	jw_key(w, "name");
	jw_str(w, st->dev->name);
	jw_key(w, "family");
	jw_str(w, st->dev->family);
	jw_key(w, "flash_size");
	jw_int(w, st->flash_size);
	jw_key(w, "bootloader");
	jw_str(w, bl);
	jw_obj_end(w);
}

/* The GET fields of target t's flash (and the POST answer, with "ok" first). */
static void flash_json(struct http_api *api, unsigned t, struct jw *w, int with_ok)
{
	struct flash_job *j = &api->flash[t];
	int used = j->state != FLASH_JOB_IDLE;
	struct stm32_isp_status st;
	flash_job_isp_status(j, &st);
	const char *state = flash_job_state_name(j, &st);
	const char *error = flash_job_error(j, &st);
	int failed = strcmp(state, "failed") == 0;
	jw_obj(w);
	if (with_ok) {
		jw_key(w, "ok");
		jw_bool(w, strcmp(state, "done") == 0);
	}
	jw_key(w, "target");
	jw_int(w, t);
	jw_key(w, "state");
	jw_str(w, state);
	jw_key(w, "format");
	jw_str(w, used ? (j->p.hex ? "hex" : "bin") : NULL);
	jw_key(w, "address");
	if (j->run && st.address) /* the ISP's (HEX: rounded to its unit) */
		put_hex32(w, st.address, 8);
	else if (used && j->addr_known)
		put_hex32(w, j->address, 8);
	else
		jw_null(w); /* default (flash base) before GET ID, HEX before its first record */
	jw_key(w, "verify");
	jw_bool(w, used && j->p.verify);
	jw_key(w, "go");
	jw_bool(w, used && j->p.go);
	jw_key(w, "bytes_total");
	if (st.total)
		jw_int(w, st.total);
	else if (used && !j->p.hex && j->content_length > 0)
		jw_int(w, j->content_length);
	else
		jw_null(w);
	jw_key(w, "bytes_received");
	jw_int(w, st.bytes_received);
	jw_key(w, "bytes_erased");
	jw_int(w, st.bytes_erased);
	jw_key(w, "bytes_written");
	jw_int(w, st.bytes_written);
	jw_key(w, "bytes_verified");
	jw_int(w, st.bytes_verified);
	jw_key(w, "device");
	put_device(w, &st);
	jw_key(w, "error");
	jw_str(w, failed ? (error ? error : "failed") : NULL);
	jw_key(w, "step");
	jw_str(w, !failed ? NULL : j->run ? stm32_isp_state_name(j->step) : "upload");
	jw_key(w, "elapsed_ms");
	jw_int(w, st.elapsed_ms);
	jw_key(w, "stage");
	jw_bool(w, used && j->p.stage);
	jw_key(w, "bytes_staged");
	jw_int(w, used && j->p.stage ? j->staged : 0);
	jw_key(w, "crc32");
	if (used && j->p.stage && j->crc_done)
		put_hex32(w, j->crc, 8);
	else
		jw_null(w);
	jw_obj_end(w);
}

/* 1 if target t has an AN3155 master (else rs holds the 501). */
static int flashable(struct http_api *api, unsigned t, struct api_response *rs)
{
	if (api->ops && api->ops->isp && api->ops->isp(api->ctx, t))
		return 1;
	reply_error(api, rs, 501, "this target cannot be flashed by the firmware");
	return 0;
}

/* DELETE /api/targets/N/flash (http_api.h "Abort"). */
static void do_flash_abort(struct http_api *api, unsigned t, struct api_response *rs)
{
	if (!flashable(api, t, rs))
		return;
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	if (!http_api_flash_abort(api, t, NULL)) {
		char e[48];
		snprintf(e, sizeof(e), "no flash is running on target %u", t);
		struct stm32_isp_status st;
		flash_job_isp_status(&api->flash[t], &st);
		jw_obj(&w);
		jw_key(&w, "error");
		jw_str(&w, e);
		jw_key(&w, "state");
		jw_str(&w, flash_job_state_name(&api->flash[t], &st));
		jw_obj_end(&w);
		reply_json(api, rs, 409, &w);
		return;
	}
	http_api_flash_poll(api, t); /* releases the claim, marks the result ready */
	flash_json(api, t, &w, 0);
	reply_json(api, rs, 200, &w);
}

static void do_flash_get(struct http_api *api, unsigned t, struct api_response *rs)
{
	if (!flashable(api, t, rs))
		return;
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	flash_json(api, t, &w, 0);
	reply_json(api, rs, 200, &w);
}

int http_api_flash_result(struct http_api *api, unsigned target, struct api_response *rs)
{
	struct flash_job *j = job_of(api, target);
	if (!j || j->state != FLASH_JOB_ANSWER)
		return 0;
	memset(rs, 0, sizeof(*rs));
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	flash_json(api, target, &w, 1);
	reply_json(api, rs, flash_job_result(j), &w);
	return 1;
}

/* ---- pairing (http_api.h "Pairing") ---- */

static void pair_error(struct http_api *api, struct api_response *rs, int r)
{
	if (r == -EPERM)
		reply_error(api, rs, 403, "pairing needs HTTPS");
	else if (r == -ENOENT)
		reply_error(api, rs, 404, "this unit has no key");
	else
		reply_error(api, rs, 500, "the unit key is not available");
}

static void do_pair_key(struct http_api *api, struct api_response *rs)
{
	struct api_pair k;
	memset(&k, 0, sizeof(k));
	int r = api->ops->pair_key(api->ctx, &k);
	k.identity[API_PAIR_ID_MAX] = '\0';
	k.pin[API_PAIR_PIN_MAX] = '\0';
	if (r < 0) {
		pair_error(api, rs, r);
	} else {
		static const char hexd[] = "0123456789abcdef";
		char hex[2 * API_PAIR_KEY_LEN + 1];
		for (unsigned i = 0; i < API_PAIR_KEY_LEN; i++) {
			hex[2 * i] = hexd[k.key[i] >> 4];
			hex[2 * i + 1] = hexd[k.key[i] & 15];
		}
		hex[sizeof(hex) - 1] = '\0';
		struct jw w;
		jw_init(&w, api->out, sizeof(api->out));
		jw_obj(&w);
		jw_key(&w, "identity");
		jw_str(&w, k.identity);
		jw_key(&w, "key");
		jw_str(&w, hex);
		jw_key(&w, "port");
		jw_int(&w, k.port ? k.port : api->settings->cur.target[0].port);
		jw_key(&w, "targets");
		jw_int(&w, api->settings->cur.target_count);
		if (k.pin[0]) {
			jw_key(&w, "pin");
			jw_str(&w, k.pin);
		}
		jw_obj_end(&w);
		reply_json(api, rs, 200, &w);
		api->out_secret = 1;
		/* the copies on the stack: wiped (volatile: not optimised away) */
		volatile char *v = hex;
		for (size_t i = 0; i < sizeof(hex); i++)
			v[i] = 0;
		api_log(api, "pair: key handed out", "");
	}
	volatile uint8_t *v = (volatile uint8_t *)&k;
	for (size_t i = 0; i < sizeof(k); i++)
		v[i] = 0;
}

static void do_pair_rotate(struct http_api *api, struct api_response *rs)
{
	int r = api->ops->pair_rotate(api->ctx);
	struct api_pair k;
	memset(&k, 0, sizeof(k));
	if (r == 0)
		r = api->ops->pair_key(api->ctx, &k);
	k.identity[API_PAIR_ID_MAX] = '\0';
	if (r < 0) {
		pair_error(api, rs, r);
	} else {
		struct jw w;
		jw_init(&w, api->out, sizeof(api->out));
		jw_obj(&w);
		jw_key(&w, "rotated");
		jw_bool(&w, 1);
		jw_key(&w, "identity");
		jw_str(&w, k.identity);
		jw_obj_end(&w);
		reply_json(api, rs, 200, &w);
		api_log(api, "pair: unit key rotated", "");
	}
	volatile uint8_t *v = (volatile uint8_t *)&k;
	for (size_t i = 0; i < sizeof(k); i++)
		v[i] = 0;
}

/* POST /api/pair and /api/pair/rotate (r: the path after "/api/"). */
static void do_pair(struct http_api *api, const char *m, const char *r, struct api_response *rs)
{
	int rotate = strcmp(r, "pair/rotate") == 0;
	if ((!rotate && strcmp(r, "pair") != 0) || !api->ops || !api->ops->pair_key ||
	    (rotate && !api->ops->pair_rotate))
		reply_error(api, rs, 404, "not found");
	else if (strcmp(m, "POST") != 0)
		reply_error(api, rs, 405, "method not allowed");
	else if (rotate)
		do_pair_rotate(api, rs);
	else
		do_pair_key(api, rs);
}

/* A key handed out by the previous answer is not left in api->out. */
static void pair_wipe(struct http_api *api)
{
	if (!api->out_secret)
		return;
	volatile char *v = api->out;
	for (size_t i = 0; i < sizeof(api->out); i++)
		v[i] = 0;
	api->out_secret = 0;
}

void http_api_handle(struct http_api *api, const struct api_request *rq, struct api_response *rs)
{
	memset(rs, 0, sizeof(*rs));
	pair_wipe(api);
	if (!rq->method || !rq->path) {
		reply_error(api, rs, 400, "bad request");
		return;
	}
	const char *m = rq->method;
	const char *path = rq->path;
	int get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
	int is_page = strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0;
	int is_api = strncmp(path, "/api/", 5) == 0;
	if (!is_page && !is_api) {
		reply_error(api, rs, 404, "not found");
		return;
	}
	if (!check_auth(api, rq, rs))
		return;
	if (is_page) {
		if (!get) {
			reply_error(api, rs, 405, "method not allowed");
			return;
		}
		reply(rs, 200, "text/html; charset=utf-8", http_api_page, http_api_page_len);
		return;
	}
	const char *r = path + 5;
	int changing = !get;
	if (changing && (!rq->x_request || strcmp(rq->x_request, "1") != 0)) {
		reply_error(api, rs, 403, "changing requests need the header X-Espstm-Request: 1");
		return;
	}
	if (strcmp(r, "status") == 0) {
		if (!get)
			reply_error(api, rs, 405, "method not allowed");
		else
			do_status(api, rs);
	} else if (strcmp(r, "settings") == 0) {
		if (get)
			do_get_settings(api, rs);
		else if (strcmp(m, "PUT") == 0 || strcmp(m, "POST") == 0)
			do_put_settings(api, rq, rs);
		else
			reply_error(api, rs, 405, "method not allowed");
	} else if (strncmp(r, "pair", 4) == 0) {
		do_pair(api, m, r, rs);
	} else if (strncmp(r, "targets/", 8) == 0) {
		unsigned t;
		const char *verb = target_verb(r + 8, &t);
		if (verb && strcmp(verb, "flash") == 0) {
			if (t >= api->settings->cur.target_count)
				reply_error(api, rs, 404, "no such target");
			else if (get)
				do_flash_get(api, t, rs);
			else if (strcmp(m, "DELETE") == 0)
				do_flash_abort(api, t, rs);
			else if (strcmp(m, "POST") == 0)
				/* uploads are streamed: http_api_flash_start() and the calls after
				 * it */
				reply_error(api, rs, 501,
				            "this server does not stream flash uploads");
			else
				reply_error(api, rs, 405, "method not allowed");
		} else if (strcmp(m, "POST") != 0) {
			reply_error(api, rs, 405, "method not allowed");
		} else if (verb && strcmp(verb, "disconnect") == 0) {
			do_disconnect(api, t, rs);
		} else {
			do_action(api, r + 8, rs);
		}
	} else {
		reply_error(api, rs, 404, "not found");
	}
}
