/* SPDX-License-Identifier: MIT */
#include "http_api.h"

#include "bridge.h"
#include "json.h"

#include <errno.h>
#include <stdarg.h>
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
	api->ops = ops;
	api->ctx = ctx;
	api->settings = settings;
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

static int time_after(uint32_t now, uint32_t t)
{
	return (int32_t)(now - t) >= 0;
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

/* 1 authorised; else the response is filled. */
static int check_auth(struct http_api *api, const struct api_request *rq, struct api_response *rs)
{
	if (api->locked && !time_after(rq->now_ms, api->locked_until)) {
		uint32_t left = api->locked_until - rq->now_ms;
		rs->retry_after_s = (left + 999) / 1000;
		reply_error(api, rs, 429, "too many wrong passwords: try again later");
		return 0;
	}
	api->locked = 0;
	const char *h = rq->authorization;
	if (!h || !*h) {
		rs->www_authenticate = 1;
		reply_error(api, rs, 401, "authentication required");
		return 0;
	}
	int ok = 0;
	if (ci_prefix(h, "basic ")) {
		h += 6;
		while (*h == ' ')
			h++;
		char dec[HTTP_API_PASS_MAX + 40];
		int n = b64dec(h, dec, sizeof(dec));
		char *colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
		if (colon) {
			size_t ul = (size_t)(colon - dec);
			const char *p = colon + 1;
			size_t pl = (size_t)n - ul - 1;
			/* both comparisons always run: no early exit on the user name */
			int u =
			    http_api_ct_equal(dec, ul, HTTP_API_USER, sizeof(HTTP_API_USER) - 1);
			/* the password is compared as the whole zero-padded buffer (api->pass is
			 * zeroed by init), so the time does not depend on its length either; a
			 * NUL in the candidate would match the padding: refused */
			char cand[sizeof(api->pass)];
			memset(cand, 0, sizeof(cand));
			int fits = pl < sizeof(cand) && !memchr(p, '\0', pl);
			if (fits)
				memcpy(cand, p, pl);
			int q = http_api_ct_equal(cand, sizeof(cand), api->pass, sizeof(api->pass));
			ok = u & q & fits;
		}
	}
	if (ok) {
		api->fails = 0;
		return 1;
	}
	api->fails++;
	api->fails_total++;
	api_log(api, "http: wrong credentials for ", rq->path);
	if (api->fails >= HTTP_API_FREE_FAILS) {
		uint32_t shift = api->fails - HTTP_API_FREE_FAILS;
		uint32_t ms = shift >= 15 ? HTTP_API_MAX_LOCK_MS : 1000u << shift;
		if (ms > HTTP_API_MAX_LOCK_MS)
			ms = HTTP_API_MAX_LOCK_MS;
		api->locked = 1;
		api->locked_until = rq->now_ms + ms;
	}
	rs->www_authenticate = 1;
	reply_error(api, rs, 401, "wrong user name or password");
	return 0;
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
	int r = api->ops && api->ops->action ? api->ops->action(api->ctx, idx, a) : -ENOSYS;
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

/* ---- flashing (http_api.h "Flashing") ---- */

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

static struct api_flash *flash_of(struct http_api *api, unsigned target)
{
	return target < SETTINGS_MAX_TARGETS ? &api->flash[target] : NULL;
}

int http_api_flash_busy(const struct http_api *api, unsigned target)
{
	if (target >= SETTINGS_MAX_TARGETS)
		return 0;
	const struct api_flash *f = &api->flash[target];
	return f->phase != API_FLASH_NONE || f->claimed || (f->isp && stm32_isp_busy(f->isp));
}

static void flash_log(struct http_api *api, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void flash_log(struct http_api *api, const char *fmt, ...)
{
	if (!api->ops || !api->ops->log)
		return;
	char line[200];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	api->ops->log(api->ctx, line);
}

/* The run ended in the ISP or never started: no more UART/pin use. */
static int run_over(const struct api_flash *f)
{
	if (!f->begun)
		return f->failed;
	return !stm32_isp_busy(f->isp);
}

/* 1 if body bytes can only be dropped (the run failed or ended). */
static int dead(const struct api_flash *f)
{
	return f->failed || (f->begun && !stm32_isp_busy(f->isp));
}

static void flash_fail(struct api_flash *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A failure found here (not by the ISP): first one wins; a running ISP is aborted. */
static void flash_fail(struct api_flash *f, int status, const char *fmt, ...)
{
	if (f->failed)
		return;
	if (f->begun && stm32_isp_state(f->isp) == STM32_ISP_DONE)
		return; /* already written completely */
	if (f->begun && stm32_isp_state(f->isp) == STM32_ISP_FAILED)
		return; /* the ISP's own error is the cause */
	f->failed = 1;
	f->status = status;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->error, sizeof(f->error), fmt, ap);
	va_end(ap);
	if (f->begun && stm32_isp_busy(f->isp))
		stm32_isp_abort(f->isp);
}

static void on_progress(void *arg, const struct stm32_isp_status *st)
{
	struct api_flash *f = arg;
	if (st->state != STM32_ISP_IDLE && st->state != STM32_ISP_DONE &&
	    st->state != STM32_ISP_FAILED)
		f->step = st->state;
}

/* stm32_isp_begin for the job. Returns 0, or -1 with the job failed. */
static int flash_begin(struct http_api *api, unsigned target, struct api_flash *f, uint32_t address,
                       uint32_t total)
{
	struct stm32_isp_opts o;
	memset(&o, 0, sizeof(o));
	o.address = address;
	o.total = total;
	o.baud = f->baud;
	o.entry = STM32_ISP_ENTRY_PINS;
	o.settle_ms = api->settings->cur.target[target].settle_ms;
	o.verify = f->verify;
	o.finish = f->go ? STM32_ISP_FINISH_GO : STM32_ISP_FINISH_STAY;
	o.flags = f->unprotect ? STM32_ISP_UNPROTECT_READ | STM32_ISP_UNPROTECT_WRITE : 0;
	f->step = STM32_ISP_CONNECTING;
	stm32_isp_set_progress(f->isp, on_progress, f);
	int r = stm32_isp_begin(f->isp, &o);
	if (r < 0) {
		struct stm32_isp_status st;
		stm32_isp_status(f->isp, &st);
		flash_fail(f, r == -EINVAL ? 400 : 500, "cannot start: %s",
		           st.message && *st.message ? st.message : "bad options");
		return -1;
	}
	f->begun = 1;
	return 0;
}

static uint32_t largest_flash(void)
{
	uint32_t m = 0;
	for (size_t i = 0; i < stm32_dev_count(); i++) {
		const struct stm32_dev *d = stm32_dev_at(i);
		if (d && d->flash_size > m)
			m = d->flash_size;
	}
	return m;
}

/* Parameters of the POST. Returns 0, or -1 with msg filled. */
struct flash_params {
	int hex, verify, go, unprotect, has_address, stage, has_crc;
	uint32_t address, baud, crc;
};

static int parse_u32(const char *v, size_t n, uint32_t *out)
{
	uint64_t x = 0;
	int base = 10;
	size_t i = 0;
	if (n > 2 && v[0] == '0' && (v[1] == 'x' || v[1] == 'X')) {
		base = 16;
		i = 2;
	}
	if (i == n)
		return -1;
	for (; i < n; i++) {
		char c = v[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (base == 16 && c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		x = x * (uint64_t)base + (uint64_t)d;
		if (x > 0xFFFFFFFFu)
			return -1;
	}
	*out = (uint32_t)x;
	return 0;
}

static int parse_bool(const char *v, size_t n, int *out)
{
	if ((n == 1 && v[0] == '1') || (n == 4 && !memcmp(v, "true", 4)))
		*out = 1;
	else if ((n == 1 && v[0] == '0') || (n == 5 && !memcmp(v, "false", 5)))
		*out = 0;
	else
		return -1;
	return 0;
}

static int parse_params(const char *q, struct flash_params *fp, char *msg, size_t cap)
{
	memset(fp, 0, sizeof(*fp));
	fp->verify = 1;
	fp->baud = 115200;
	unsigned seen = 0;
	static const char *const keys[] = {"format",    "address", "verify", "go",
	                                   "unprotect", "baud",    "stage",  "crc32"};
	enum { NKEYS = sizeof(keys) / sizeof(keys[0]) };
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t len = amp ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', len);
		size_t kl = eq ? (size_t)(eq - q) : len;
		const char *v = eq ? eq + 1 : q + len;
		size_t vl = eq ? len - kl - 1 : 0;
		if (len == 0) {
			q = amp ? amp + 1 : q + len;
			continue;
		}
		int k = -1;
		for (int i = 0; i < NKEYS; i++)
			if (strlen(keys[i]) == kl && !memcmp(q, keys[i], kl))
				k = i;
		if (k < 0) {
			snprintf(msg, cap,
			         "unknown parameter '%.*s' (format, address, verify, go, "
			         "unprotect, baud, stage, crc32)",
			         (int)(kl > 24 ? 24 : kl), q);
			for (char *c = msg; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';
			return -1;
		}
		if (seen & (1u << k)) {
			snprintf(msg, cap, "parameter '%s' given twice", keys[k]);
			return -1;
		}
		seen |= 1u << k;
		int bad = 0;
		switch (k) {
		case 0:
			if (vl == 3 && !memcmp(v, "bin", 3))
				fp->hex = 0;
			else if (vl == 3 && !memcmp(v, "hex", 3))
				fp->hex = 1;
			else
				bad = 1;
			break;
		case 1:
			bad = parse_u32(v, vl, &fp->address) < 0 || (fp->address & 3u) != 0;
			fp->has_address = 1;
			break;
		case 2:
			bad = parse_bool(v, vl, &fp->verify) < 0;
			break;
		case 3:
			bad = parse_bool(v, vl, &fp->go) < 0;
			break;
		case 4:
			bad = parse_bool(v, vl, &fp->unprotect) < 0;
			break;
		case 5:
			bad = parse_u32(v, vl, &fp->baud) < 0 || fp->baud < 1200 ||
			      fp->baud > 4000000;
			break;
		case 6:
			bad = parse_bool(v, vl, &fp->stage) < 0;
			break;
		case 7:
			bad = parse_u32(v, vl, &fp->crc) < 0;
			fp->has_crc = 1;
			break;
		}
		if (bad) {
			static const char *const want[] = {
			    "bin or hex", "an address (0x-hex or decimal, a multiple of 4)",
			    "0 or 1",     "0 or 1",
			    "0 or 1",     "a baud rate 1200..4000000",
			    "0 or 1",     "a CRC-32 (0x-hex, e.g. 0x1A2B3C4D)"};
			snprintf(msg, cap, "parameter '%s': want %s", keys[k], want[k]);
			return -1;
		}
		q = amp ? amp + 1 : q + len;
	}
	if (fp->hex && fp->has_address) {
		snprintf(msg, cap, "parameter 'address' is for format=bin (Intel HEX has its own)");
		return -1;
	}
	if (fp->has_crc && !fp->stage) {
		snprintf(msg, cap, "parameter 'crc32' needs stage=1 (verify before commit)");
		return -1;
	}
	return 0;
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
	struct api_flash *f = flash_of(api, t);
	if (!f || t >= api->settings->cur.target_count) {
		reply_error(api, rs, 404, "no such target");
		return 0;
	}
	struct stm32_isp *isp = api->ops && api->ops->isp ? api->ops->isp(api->ctx, t) : NULL;
	if (!isp || !api->ops->flash_claim) {
		reply_error(api, rs, 501, "this target cannot be flashed by the firmware");
		return 0;
	}
	if (f->phase != API_FLASH_NONE || f->claimed || stm32_isp_busy(isp)) {
		reply_error(api, rs, 409, "a flash is already running on this target");
		return 0;
	}
	struct flash_params fp;
	char msg[112];
	if (query && strchr(query, '%')) {
		reply_error(api, rs, 400, "parameters must not be %-encoded");
		return 0;
	}
	if (parse_params(query, &fp, msg, sizeof(msg)) < 0) {
		reply_error(api, rs, 400, msg);
		return 0;
	}
	if (!fp.hex && content_length == 0) {
		reply_error(api, rs, 400, "empty image");
		return 0;
	}
	if (fp.stage) {
		const struct api_ops *o = api->ops;
		uint32_t cap = o->stage_capacity ? o->stage_capacity(api->ctx, t) : 0;
		if (!o->stage_begin || !o->stage_write || !o->stage_read || !o->stage_end ||
		    !o->crc32 || cap == 0) {
			reply_error(api, rs, 501,
			            "this platform cannot stage an image (stage=1: no staging "
			            "area); upload without stage=1");
			return 0;
		}
		if (content_length < 0) {
			reply_error(api, rs, 411,
			            "stage=1 needs a Content-Length (the staging area is prepared "
			            "for the image's size)");
			return 0;
		}
		if (content_length == 0) {
			reply_error(api, rs, 400, "empty image");
			return 0;
		}
		if ((uint64_t)content_length > cap) {
			snprintf(msg, sizeof(msg),
			         "image (%lld bytes) larger than the staging area (%lu bytes)",
			         (long long)content_length, (unsigned long)cap);
			reply_error(api, rs, 413, msg);
			return 0;
		}
	}
	uint32_t maxf = largest_flash();
	if (!fp.hex && content_length > 0 &&
	    ((uint64_t)content_length > maxf ||
	     (uint64_t)fp.address + (uint64_t)content_length > 0x100000000ull)) {
		snprintf(msg, sizeof(msg),
		         "image of %lld bytes is larger than the flash of any supported STM32 (%lu "
		         "bytes)",
		         (long long)content_length, (unsigned long)maxf);
		reply_error(api, rs, 413, msg);
		return 0;
	}
	if (fp.stage) {
		/* before the last result is forgotten: a refusal leaves it readable */
		int r = api->ops->stage_begin(api->ctx, t, (uint32_t)content_length);
		if (r < 0) {
			if (r == -ENOSPC)
				snprintf(msg, sizeof(msg),
				         "image (%lld bytes) larger than the staging area",
				         (long long)content_length);
			else
				snprintf(msg, sizeof(msg), "%s",
				         r == -EBUSY ? "the staging area is in use by another "
				                       "target's upload"
				                     : "the staging area cannot be prepared (I/O "
				                       "error)");
			reply_error(api, rs, r == -ENOSPC ? 413 : r == -EBUSY ? 409 : 500, msg);
			return 0;
		}
	}
	memset(f, 0, sizeof(*f));
	f->used = 1;
	f->isp = isp;
	f->hex = fp.hex;
	f->verify = fp.verify;
	f->go = fp.go;
	f->unprotect = fp.unprotect;
	f->baud = fp.baud;
	f->address = fp.address;
	f->addr_known = fp.has_address;
	f->content_length = content_length < 0 ? -1 : content_length;
	f->status = 500;
	ihex_init(&f->ihex);
	if (fp.stage) {
		f->stage = 1;
		f->stage_open = 1;
		f->has_crc = fp.has_crc;
		f->crc_want = fp.crc;
		f->phase = API_FLASH_UPLOAD;
		flash_log(api,
		          "http: staged upload for target %u started (%lld bytes%s%s): the STM32 "
		          "is flashed once the whole image is in%s",
		          t, (long long)content_length, f->hex ? ", Intel HEX" : "",
		          f->verify ? ", verify" : "", fp.has_crc ? " and its CRC-32 matches" : "");
		return 1;
	}
	f->phase = API_FLASH_UPLOAD;
	f->claimed = 1;
	api->ops->flash_claim(api->ctx, t, 1);
	if (f->hex) {
		flash_log(api, "http: flash of target %u started (Intel HEX%s%s)", t,
		          f->verify ? ", verify" : "", f->go ? ", go" : "");
	} else {
		flash_log(api, "http: flash of target %u started (%lld bytes at %s0x%08lX%s%s)", t,
		          (long long)content_length, fp.has_address ? "" : "flash base, ",
		          (unsigned long)fp.address, f->verify ? ", verify" : "",
		          f->go ? ", go" : "");
		uint32_t total = content_length > 0 ? (uint32_t)content_length : 0;
		if (flash_begin(api, t, f, fp.address, total) < 0) {
			f->phase = API_FLASH_FINISH;
			http_api_flash_poll(api, t); /* releases the claim, result ready */
			http_api_flash_result(api, t, rs);
			return 0;
		}
	}
	return 1;
}

/* HEX: hand the pending jump (stm32_isp_seek: the ISP decides, once it knows the device,
 * whether a gap is filled or skipped, and fails on an address outside the flash) and the
 * record's data to the ISP. 1 when nothing is pending. */
static int push_pending(struct api_flash *f)
{
	if (!f->begun)
		return 1;
	if (f->seek) {
		int r = stm32_isp_seek(f->isp, f->seek_addr);
		if (r == -EINVAL)
			flash_fail(f, 400,
			           "Intel HEX: data at 0x%08lX cannot be placed after 0x%08lX",
			           (unsigned long)f->seek_addr, (unsigned long)f->next_addr);
		f->seek = 0;
		f->next_addr = f->seek_addr;
		if (r < 0)
			return 1; /* the run failed: nothing more to write */
	}
	uint32_t addr;
	const uint8_t *d;
	size_t n;
	while ((n = ihex_data(&f->ihex, &addr, &d)) != 0) {
		size_t k = stm32_isp_write(f->isp, d, n);
		ihex_take(&f->ihex, k);
		f->next_addr += (uint32_t)k;
		if (k < n)
			return 0;
	}
	return 1;
}

/* HEX: a data record was decoded: start the run (the image starts at the first record:
 * a seek before any byte), or plan the jump to a record after a gap. */
static void hex_record(struct http_api *api, unsigned t, struct api_flash *f)
{
	uint32_t addr;
	const uint8_t *d;
	if (!ihex_data(&f->ihex, &addr, &d))
		return;
	if (!f->begun) {
		f->address = addr;
		f->addr_known = 1;
		if (flash_begin(api, t, f, 0, 0) < 0)
			return;
		f->seek = 1;
		f->seek_addr = addr;
		return;
	}
	if (addr < f->next_addr) {
		flash_fail(
		    f, 400,
		    "Intel HEX: data at 0x%08lX after data up to 0x%08lX: records must be in "
		    "ascending address order without overlap",
		    (unsigned long)addr, (unsigned long)f->next_addr);
		return;
	}
	if (addr > f->next_addr) {
		f->seek = 1;
		f->seek_addr = addr;
	}
}

/* The image pipeline (bin or Intel HEX) into the ISP, for a streamed body and for the
 * staged copy alike. Returns the bytes taken (0..n); fewer: no room now. */
static size_t pipeline_feed(struct http_api *api, unsigned target, struct api_flash *f,
                            const uint8_t *p, size_t n)
{
	size_t used = 0;
	if (!f->hex) {
		if (!dead(f))
			used = stm32_isp_write(f->isp, p, n);
		if (dead(f))
			used = n; /* dropped: the answer is sent at the body's end */
	} else {
		for (;;) {
			if (dead(f)) {
				used = n;
				break;
			}
			if (!push_pending(f))
				break;
			if (used == n)
				break;
			used += ihex_feed(&f->ihex, p + used, n - used);
			if (ihex_failed(&f->ihex)) {
				flash_fail(f, 400, "%s", ihex_error(&f->ihex));
				continue;
			}
			hex_record(api, target, f);
		}
	}
	return used;
}

/* The image is complete (streamed body ended, or the staged copy replayed): the checks of
 * its end. The ISP is ended by http_api_flash_poll(). */
static void pipeline_end(struct api_flash *f, uint32_t bytes)
{
	if (f->hex) {
		if (ihex_finish(&f->ihex) < 0)
			flash_fail(f, 400, "%s", ihex_error(&f->ihex));
		else if (!f->begun)
			flash_fail(f, 400, "Intel HEX file without data records");
	} else if (f->content_length >= 0 && (int64_t)bytes != f->content_length) {
		flash_fail(f, 400, "image not whole: %lu of %lld bytes received",
		           (unsigned long)bytes, (long long)f->content_length);
	}
}

/* stage=1, Intel HEX: the staged bytes p/n through the parser as a dry run (nothing goes to
 * the ISP): checksums, record types, the end-of-file record and nothing after it (the parser),
 * ascending addresses without overlap and the data records (here). The first error is kept
 * in f->error (hex_bad) and fails the upload at its end, before the commit; the device's
 * range is checked in the replay, once GET ID has named the device. */
static void hex_dry_run(struct api_flash *f, const uint8_t *p, size_t n)
{
	size_t used = 0;
	while (!f->hex_bad) {
		uint32_t addr;
		const uint8_t *d;
		size_t k = ihex_data(&f->ihex, &addr, &d);
		if (k) {
			if (f->dry_records && addr < f->dry_next) {
				f->hex_bad = 1;
				snprintf(
				    f->error, sizeof(f->error),
				    "Intel HEX: data at 0x%08lX after data up to 0x%08lX: records "
				    "must be in ascending address order without overlap; the "
				    "STM32 was not touched",
				    (unsigned long)addr, (unsigned long)f->dry_next);
				break;
			}
			if (!f->dry_records) {
				f->address = addr; /* the image starts at its first data record */
				f->addr_known = 1;
			}
			f->dry_records++;
			f->dry_next = (uint64_t)addr + k;
			ihex_take(&f->ihex, k);
			continue;
		}
		if (used == n)
			break;
		used += ihex_feed(&f->ihex, p + used, n - used);
		if (ihex_failed(&f->ihex)) {
			f->hex_bad = 1;
			snprintf(f->error, sizeof(f->error), "%s; the STM32 was not touched",
			         ihex_error(&f->ihex));
		}
	}
}

/* stage=1, the whole body staged: the end of the HEX dry run. 0 or -1 (hex_bad set). */
static int hex_dry_end(struct api_flash *f)
{
	if (!f->hex_bad && ihex_finish(&f->ihex) < 0) {
		f->hex_bad = 1;
		snprintf(f->error, sizeof(f->error), "%s; the STM32 was not touched",
		         ihex_error(&f->ihex));
	} else if (!f->hex_bad && !f->dry_records) {
		f->hex_bad = 1;
		snprintf(f->error, sizeof(f->error),
		         "Intel HEX file without data records; the STM32 was not touched");
	}
	return f->hex_bad ? -1 : 0;
}

/* stage=1: the body goes to the staging store, never to the STM32. Takes everything. */
static void stage_body(struct http_api *api, unsigned target, struct api_flash *f, const uint8_t *p,
                       size_t n)
{
	if (f->failed || !f->stage_open)
		return; /* dropped: the answer is sent at the body's end */
	if (f->content_length >= 0 && (uint64_t)f->staged + n > (uint64_t)f->content_length) {
		flash_fail(f, 400,
		           "more than Content-Length (%lld bytes) received; the STM32 was not "
		           "touched",
		           (long long)f->content_length);
		return;
	}
	if (api->ops->stage_write(api->ctx, target, f->staged, p, n) < 0) {
		flash_fail(f, 500,
		           "writing the staging area failed at byte %lu; the STM32 was not "
		           "touched",
		           (unsigned long)f->staged);
		return;
	}
	f->crc = api->ops->crc32(f->crc, p, n);
	f->staged += (uint32_t)n;
	if (f->hex)
		hex_dry_run(f, p, n);
}

size_t http_api_flash_body(struct http_api *api, unsigned target, const uint8_t *p, size_t n)
{
	struct api_flash *f = flash_of(api, target);
	if (!f || f->phase != API_FLASH_UPLOAD)
		return n;
	size_t used = n;
	if (f->stage)
		stage_body(api, target, f, p, n);
	else
		used = pipeline_feed(api, target, f, p, n);
	f->body_bytes += (uint32_t)used;
	return used;
}

static void stage_close(struct http_api *api, unsigned target, struct api_flash *f)
{
	if (f->stage_open) {
		f->stage_open = 0;
		api->ops->stage_end(api->ctx, target);
	}
}

/* stage=1, body complete and checked: claim the target and start the ISP; the staged
 * copy is replayed by http_api_flash_poll() (phase REPLAY). */
static void commit(struct http_api *api, unsigned target, struct api_flash *f)
{
	f->committed = 1;
	f->claimed = 1;
	api->ops->flash_claim(api->ctx, target, 1);
	flash_log(api,
	          "http: staged image of target %u complete (%lu bytes, CRC-32 0x%08lX%s): "
	          "flashing it",
	          target, (unsigned long)f->staged, (unsigned long)f->crc,
	          f->has_crc ? ", as given" : "");
	if (!f->hex)
		flash_begin(api, target, f, f->address, f->staged);
	else
		ihex_init(&f->ihex); /* the dry run's parser: afresh for the replay */
	f->phase = API_FLASH_REPLAY;
}

/* Phase REPLAY: staged bytes into the pipeline while it takes them (HTTP_API_REPLAY_BUF
 * at a time, at most HTTP_API_REPLAY_STEPS per call, so one poll never holds the loop for
 * long); at the end, the image's end checks and phase FINISH. Sets f->again when it stopped
 * at that bound with more to do at once (http_api_flash_poll: HTTP_API_FLASH_AGAIN). */
static void replay(struct http_api *api, unsigned target, struct api_flash *f)
{
	f->again = 0;
	for (int guard = 0; !dead(f); guard++) {
		if (guard == HTTP_API_REPLAY_STEPS) {
			f->again = 1; /* not waiting for the ISP: poll again now */
			return;
		}
		if (f->roff == f->rlen) {
			if (f->replayed == f->staged) {
				pipeline_end(f, f->replayed);
				f->phase = API_FLASH_FINISH;
				return;
			}
			uint32_t k = f->staged - f->replayed;
			if (k > sizeof(f->rbuf))
				k = sizeof(f->rbuf);
			if (api->ops->stage_read(api->ctx, target, f->replayed, f->rbuf, k) < 0) {
				flash_fail(f, 500,
				           "reading the staged image back failed at byte %lu",
				           (unsigned long)f->replayed);
				break;
			}
			f->replayed += k;
			f->roff = 0;
			f->rlen = (uint16_t)k;
		}
		size_t used = pipeline_feed(api, target, f, f->rbuf + f->roff, f->rlen - f->roff);
		f->roff = (uint16_t)(f->roff + used);
		if (used == 0)
			return; /* no room in the ISP: the next poll goes on */
	}
	if (dead(f))
		f->phase = API_FLASH_FINISH;
}

void http_api_flash_body_end(struct http_api *api, unsigned target)
{
	struct api_flash *f = flash_of(api, target);
	if (!f || f->phase != API_FLASH_UPLOAD)
		return;
	f->body_done = 1;
	f->phase = API_FLASH_FINISH;
	if (!f->stage) {
		pipeline_end(f, f->body_bytes);
	} else if (!f->failed) {
		if (f->content_length >= 0 && (int64_t)f->staged != f->content_length) {
			flash_fail(f, 400,
			           "upload interrupted: %lu of %lld bytes received; the STM32 was "
			           "not touched",
			           (unsigned long)f->staged, (long long)f->content_length);
		} else {
			f->crc_done = 1;
			/* the CRC first: a damaged body explains a HEX error too */
			if (f->has_crc && f->crc != f->crc_want) {
				flash_fail(f, 400,
				           "image CRC-32 0x%08lX does not match crc32=0x%08lX: the "
				           "STM32 was not touched",
				           (unsigned long)f->crc, (unsigned long)f->crc_want);
			} else if (f->hex && hex_dry_end(f) < 0) {
				f->failed = 1; /* error: the dry run's message */
				f->status = 400;
			} else {
				commit(api, target, f);
			}
		}
	}
	http_api_flash_poll(api, target);
}

void http_api_flash_cancel(struct http_api *api, unsigned target, const char *why)
{
	struct api_flash *f = flash_of(api, target);
	if (!f || f->phase == API_FLASH_NONE)
		return;
	if (f->committed && f->phase != API_FLASH_RESULT) {
		/* staged and checked: the flash goes on from the staged copy */
		if (!f->detached)
			flash_log(api,
			          "http: the client of target %u's staged flash left (%s): the "
			          "flash goes on (GET shows the result)",
			          target, why ? why : "connection closed");
		f->detached = 1;
		http_api_flash_poll(api, target);
		return;
	}
	if (f->phase != API_FLASH_RESULT) {
		char total[24] = "?";
		if (f->content_length >= 0)
			snprintf(total, sizeof(total), "%lld", (long long)f->content_length);
		flash_fail(f, 400, "upload interrupted: %s after %lu of %s bytes%s",
		           why ? why : "connection closed", (unsigned long)f->body_bytes, total,
		           f->stage ? "; the STM32 was not touched" : "");
		f->phase = API_FLASH_FINISH;
		http_api_flash_poll(api, target);
	}
	f->phase = API_FLASH_NONE; /* nobody to answer */
}

/* HTTP status of an ISP failure (http_api.h "Status codes"). */
static int isp_status_code(const struct stm32_isp_status *st)
{
	switch (st->error) {
	case STM32_ISP_E_NONE:
		return 500;
	case STM32_ISP_E_ARG:
	case STM32_ISP_E_SHORT:
		return 400;
	case STM32_ISP_E_RANGE:
		if (st->dev && st->address < st->dev->flash_base)
			return 400;
		return 413;
	case STM32_ISP_E_READ_PROTECTED:
	case STM32_ISP_E_WRITE_PROTECTED:
		return 423;
	case STM32_ISP_E_UART:
	case STM32_ISP_E_ABORTED:
		return 500;
	default:
		return 502;
	}
}

int http_api_flash_poll(struct http_api *api, unsigned target)
{
	struct api_flash *f = flash_of(api, target);
	if (!f || f->phase == API_FLASH_NONE)
		return 0;
	f->again = 0;
	if (f->phase == API_FLASH_REPLAY)
		replay(api, target, f);
	if (f->phase == API_FLASH_FINISH && !dead(f) && f->begun && !f->ended) {
		if (f->hex && !push_pending(f))
			return 0;
		if (!dead(f)) {
			f->ended = 1;
			stm32_isp_end(f->isp);
		}
	}
	if (f->claimed && run_over(f)) {
		f->claimed = 0;
		api->ops->flash_claim(api->ctx, target, 0);
		struct stm32_isp_status st;
		stm32_isp_status(f->isp, &st);
		if (f->failed)
			flash_log(api, "http: flash of target %u failed: %s", target, f->error);
		else if (st.state == STM32_ISP_DONE)
			flash_log(api, "http: flash of target %u done: %lu bytes in %lu ms", target,
			          (unsigned long)st.bytes_written, (unsigned long)st.elapsed_ms);
		else
			flash_log(api, "http: flash of target %u failed (%s): %s", target,
			          stm32_isp_error_name(st.error), st.message ? st.message : "");
	}
	/* the store is no longer needed once staging failed or the run is over */
	if (f->stage_open && run_over(f) && (f->failed || f->phase == API_FLASH_FINISH)) {
		stage_close(api, target, f);
		if (f->failed && !f->committed)
			flash_log(api, "http: staged upload of target %u failed: %s", target,
			          f->error);
	}
	if (f->phase == API_FLASH_UPLOAD) {
		if (f->stage || dead(f) || (f->hex && !f->begun) || stm32_isp_room(f->isp) > 0)
			return HTTP_API_FLASH_ROOM;
		return 0;
	}
	if (f->phase == API_FLASH_FINISH && run_over(f)) {
		if (!f->failed) {
			struct stm32_isp_status st;
			stm32_isp_status(f->isp, &st);
			f->status = st.state == STM32_ISP_DONE ? 200 : isp_status_code(&st);
		}
		/* a staged flash whose client left: nobody to answer, GET shows the result */
		f->phase = f->detached ? API_FLASH_NONE : API_FLASH_RESULT;
	}
	if (f->phase == API_FLASH_RESULT)
		return HTTP_API_FLASH_RESULT;
	return f->phase == API_FLASH_REPLAY && f->again ? HTTP_API_FLASH_AGAIN : 0;
}

static void put_hex32(struct jw *w, uint32_t v, int digits)
{
	char b[16];
	snprintf(b, sizeof(b), "0x%0*lX", digits, (unsigned long)v);
	jw_str(w, b);
}

/* The state name of the GET fields; st: the ISP's status (zeroed before begin). */
static const char *flash_state(const struct api_flash *f, const struct stm32_isp_status *st)
{
	if (!f->used)
		return "idle";
	if (f->failed && run_over(f))
		return "failed";
	if (f->stage && !f->committed)
		return "staging";
	if (!f->begun)
		return "connecting";
	return stm32_isp_state_name(st->state);
}

/* The GET fields (and the POST answer with ok first). */
static void flash_json(struct http_api *api, unsigned t, struct jw *w, int with_ok)
{
	struct api_flash *f = &api->flash[t];
	struct stm32_isp *isp = f->isp;
	if (!isp && api->ops && api->ops->isp)
		isp = api->ops->isp(api->ctx, t);
	struct stm32_isp_status st;
	memset(&st, 0, sizeof(st));
	if (isp && f->used && f->begun) /* before begin the ISP still holds an older run */
		stm32_isp_status(isp, &st);
	const char *state = flash_state(f, &st);
	const char *error = NULL;
	if (strcmp(state, "failed") == 0 && f->failed)
		error = f->error;
	if (!error && f->used && f->begun && st.state == STM32_ISP_FAILED) {
		error = st.message && *st.message ? st.message : stm32_isp_error_name(st.error);
		if ((st.error == STM32_ISP_E_READ_PROTECTED ||
		     st.error == STM32_ISP_E_WRITE_PROTECTED) &&
		    !f->unprotect) {
			snprintf(f->error, sizeof(f->error), "%s (unprotect=1 removes %s)", error,
			         st.error == STM32_ISP_E_READ_PROTECTED
			             ? "it: READOUT UNPROTECT erases the whole flash"
			             : "a write protection");
			error = f->error;
		}
	}
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
	jw_str(w, f->used ? (f->hex ? "hex" : "bin") : NULL);
	jw_key(w, "address");
	if (f->used && f->begun && st.address) /* the ISP's (HEX: rounded to its unit) */
		put_hex32(w, st.address, 8);
	else if (f->used && f->addr_known)
		put_hex32(w, f->address, 8);
	else
		jw_null(w); /* default (flash base) before GET ID, HEX before its first record */
	jw_key(w, "verify");
	jw_bool(w, f->used && f->verify);
	jw_key(w, "go");
	jw_bool(w, f->used && f->go);
	jw_key(w, "bytes_total");
	if (st.total)
		jw_int(w, st.total);
	else if (f->used && !f->hex && f->content_length > 0)
		jw_int(w, f->content_length);
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
	if (st.dev) {
		char pid[8], bl[8];
		snprintf(pid, sizeof(pid), "0x%03X", (unsigned)st.pid);
		snprintf(bl, sizeof(bl), "%u.%u", (unsigned)(st.bl_version >> 4),
		         (unsigned)(st.bl_version & 15));
		jw_obj(w);
		jw_key(w, "pid");
		jw_str(w, pid);
		jw_key(w, "name");
		jw_str(w, st.dev->name);
		jw_key(w, "family");
		jw_str(w, st.dev->family);
		jw_key(w, "flash_size");
		jw_int(w, st.flash_size);
		jw_key(w, "bootloader");
		jw_str(w, bl);
		jw_obj_end(w);
	} else {
		jw_null(w);
	}
	jw_key(w, "error");
	jw_str(w, failed ? (error ? error : "failed") : NULL);
	jw_key(w, "step");
	jw_str(w, !failed ? NULL : f->begun ? stm32_isp_state_name(f->step) : "upload");
	jw_key(w, "elapsed_ms");
	jw_int(w, st.elapsed_ms);
	jw_key(w, "stage");
	jw_bool(w, f->used && f->stage);
	jw_key(w, "bytes_staged");
	jw_int(w, f->used && f->stage ? f->staged : 0);
	jw_key(w, "crc32");
	if (f->used && f->stage && f->crc_done)
		put_hex32(w, f->crc, 8);
	else
		jw_null(w);
	jw_obj_end(w);
}

int http_api_flash_abort(struct http_api *api, unsigned target, const char *why)
{
	struct api_flash *f = flash_of(api, target);
	/* running: an upload or run that has not ended (an answer not yet sent is not) */
	if (!f || !http_api_flash_busy(api, target) || run_over(f))
		return 0;
	if (!why)
		why = "aborted by the client";
	if (f->stage && !f->committed)
		flash_fail(f, 409, "%s; the STM32 was not touched", why);
	else
		flash_fail(f, 409, "%s", why); /* stm32_isp_abort() */
	if (f->phase == API_FLASH_REPLAY)
		f->phase = API_FLASH_FINISH;
	flash_log(api, "http: flash of target %u: %s", target, why);
	return 1;
}

/* DELETE /api/targets/N/flash (http_api.h "Abort"). */
static void do_flash_abort(struct http_api *api, unsigned t, struct api_response *rs)
{
	if (!api->ops || !api->ops->isp || !api->ops->isp(api->ctx, t)) {
		reply_error(api, rs, 501, "this target cannot be flashed by the firmware");
		return;
	}
	struct jw w;
	if (!http_api_flash_abort(api, t, NULL)) {
		char e[48];
		snprintf(e, sizeof(e), "no flash is running on target %u", t);
		const struct api_flash *f = &api->flash[t];
		struct stm32_isp_status st;
		memset(&st, 0, sizeof(st));
		if (f->isp && f->used && f->begun)
			stm32_isp_status(f->isp, &st);
		const char *state = flash_state(f, &st);
		jw_init(&w, api->out, sizeof(api->out));
		jw_obj(&w);
		jw_key(&w, "error");
		jw_str(&w, e);
		jw_key(&w, "state");
		jw_str(&w, state);
		jw_obj_end(&w);
		reply_json(api, rs, 409, &w);
		return;
	}
	http_api_flash_poll(api, t); /* releases the claim, marks the result ready */
	jw_init(&w, api->out, sizeof(api->out));
	flash_json(api, t, &w, 0);
	reply_json(api, rs, 200, &w);
}

static void do_flash_get(struct http_api *api, unsigned t, struct api_response *rs)
{
	if (!api->ops || !api->ops->isp || !api->ops->isp(api->ctx, t)) {
		reply_error(api, rs, 501, "this target cannot be flashed by the firmware");
		return;
	}
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	flash_json(api, t, &w, 0);
	reply_json(api, rs, 200, &w);
}

int http_api_flash_result(struct http_api *api, unsigned target, struct api_response *rs)
{
	struct api_flash *f = flash_of(api, target);
	if (!f || f->phase != API_FLASH_RESULT)
		return 0;
	memset(rs, 0, sizeof(*rs));
	struct jw w;
	jw_init(&w, api->out, sizeof(api->out));
	flash_json(api, target, &w, 1);
	reply_json(api, rs, f->status, &w);
	f->phase = API_FLASH_NONE;
	return 1;
}

void http_api_handle(struct http_api *api, const struct api_request *rq, struct api_response *rs)
{
	memset(rs, 0, sizeof(*rs));
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
		} else {
			do_action(api, r + 8, rs);
		}
	} else {
		reply_error(api, rs, 404, "not found");
	}
}
