/* SPDX-License-Identifier: MIT */
#include "settings.h"

#include "allowlist.h"
#include "bridge.h"
#include "json.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static settings_observer_fn observer;
static void *observer_ctx;

void settings_set_observer(settings_observer_fn fn, void *ctx)
{
	observer = fn;
	observer_ctx = ctx;
}

static void notify(const struct settings *cur)
{
	if (observer)
		observer(observer_ctx, cur);
}

int settings_allowlist(const struct settings *s, struct allowlist *al, char *err, size_t errcap)
{
	if (errcap)
		err[0] = '\0';
	if (!memchr(s->allow, '\0', sizeof(s->allow))) {
		if (errcap)
			snprintf(err, errcap, "not terminated");
		return -EINVAL;
	}
	if (s->allow[0] == '\0') {
		allowlist_init(al);
		return 0;
	}
	return allowlist_parse(al, s->allow, err, errcap);
}

const char *settings_line_map_name(unsigned v)
{
	return bridge_line_map_name(v);
}

const char *settings_auto_boot_name(unsigned v)
{
	return bridge_auto_boot_name(v);
}

void settings_caps_nominal(struct settings_caps *c, uint32_t targets)
{
	memset(c, 0, sizeof(*c));
	c->target_count = targets < 1                      ? 1
	                  : targets > SETTINGS_MAX_TARGETS ? SETTINGS_MAX_TARGETS
	                                                   : targets;
	c->pin_max = 39;
	c->baud_min = 300;
	c->baud_max = 4000000;
}

void settings_default(struct settings *s, const struct settings_caps *caps)
{
	static const struct settings_pins pins[SETTINGS_MAX_TARGETS] = {{1, 3, 4, 5},
	                                                                {9, 10, 11, 12}};
	memset(s, 0, sizeof(*s));
	s->version = SETTINGS_VERSION;
	s->target_count = caps->target_count;
	s->plaintext = 0;
	s->idle_timeout_s = SETTINGS_IDLE_DEFAULT_S;
	for (unsigned i = 0; i < SETTINGS_MAX_TARGETS; i++) {
		struct settings_target *t = &s->target[i];
		t->port = (uint16_t)(2217 + i);
		t->baud = 115200;
		t->line_map = BRIDGE_MAP_DIRECT;
		t->auto_boot = BRIDGE_AUTO_SYNC;
		t->settle_ms = 50;
		t->pins = pins[i];
	}
}

static void add_err(struct settings_error *err, const char *field, unsigned idx, const char *msg)
{
	if (!err || err->count >= SETTINGS_MAX_ERRORS)
		return;
	char *f = err->e[err->count].field;
	size_t cap = sizeof(err->e[0].field);
	size_t o = 0;
	if (idx != ~0u) {
		const char pre[] = "targets[";
		memcpy(f, pre, sizeof(pre) - 1);
		o = sizeof(pre) - 1;
		f[o++] = (char)('0' + idx % 10u);
		f[o++] = ']';
		f[o++] = '.';
	}
	size_t l = strlen(field);
	if (o + l >= cap)
		l = cap - o - 1;
	memcpy(f + o, field, l);
	f[o + l] = '\0';
	char *m = err->e[err->count].msg;
	l = strlen(msg);
	if (l >= sizeof(err->e[0].msg))
		l = sizeof(err->e[0].msg) - 1;
	memcpy(m, msg, l);
	m[l] = '\0';
	err->count++;
}

static int pin_ok(const struct settings_caps *c, int p, int output)
{
	if (p < 0 || p > c->pin_max || p > 63)
		return 0;
	if (c->pin_reserved & (1ull << p))
		return 0;
	if (output && (c->pin_input_only & (1ull << p)))
		return 0;
	return 1;
}

int settings_validate(const struct settings *s, const struct settings_caps *caps,
                      struct settings_error *err)
{
	struct settings_error local;
	if (!err)
		err = &local;
	err->count = 0;
	if (s->version != SETTINGS_VERSION)
		add_err(err, "version", ~0u, "unknown settings version");
	if (s->target_count != caps->target_count)
		add_err(err, "target_count", ~0u, "fixed by the hardware");
	struct allowlist al;
	char why[sizeof(err->e[0].msg)];
	if (settings_allowlist(s, &al, why, sizeof(why)) < 0)
		add_err(err, "allow", ~0u, why);
	if (s->plaintext > 1)
		add_err(err, "plaintext", ~0u, "must be true or false");
	if (s->idle_timeout_s > SETTINGS_IDLE_MAX_S)
		add_err(err, "idle_timeout_s", ~0u, "must be 0..86400 s (0 = no timeout)");
	unsigned n = s->target_count <= SETTINGS_MAX_TARGETS ? s->target_count : 0;
	for (unsigned i = 0; i < n; i++) {
		const struct settings_target *t = &s->target[i];
		if (t->baud < caps->baud_min || t->baud > caps->baud_max)
			add_err(err, "baud", i, "must be 300..4000000 bits/s");
		if (t->port == 0)
			add_err(err, "port", i, "must be 1..65535");
		if (t->line_map > BRIDGE_MAP_NONE)
			add_err(err, "line_map", i, "must be direct, esptool or none");
		if (t->auto_boot > BRIDGE_AUTO_OFF)
			add_err(err, "auto_boot", i, "must be sync, parity or off");
		if (t->settle_ms > SETTINGS_SETTLE_MS_MAX)
			add_err(err, "settle_ms", i, "must be 0..10000 ms");
		const int16_t *pv = &t->pins.tx;
		static const char *const pn[4] = {"pins.tx", "pins.rx", "pins.nrst", "pins.boot0"};
		int pins[4] = {t->pins.tx, t->pins.rx, t->pins.nrst, t->pins.boot0};
		(void)pv;
		for (unsigned k = 0; k < 4; k++) {
			if (k < 2 && pins[k] == SETTINGS_PIN_NONE)
				continue; /* TX/RX not used */
			if (!pin_ok(caps, pins[k], k != 1))
				add_err(err, pn[k], i,
				        k == 1 ? "not a usable GPIO" : "not a usable output GPIO");
		}
		/* conflicts: within the target and with every other target */
		for (unsigned k = 0; k < 4; k++) {
			if (pins[k] == SETTINGS_PIN_NONE)
				continue; /* an unused pin conflicts with nothing */
			for (unsigned j = 0; j <= i; j++) {
				int pj[4] = {s->target[j].pins.tx, s->target[j].pins.rx,
				             s->target[j].pins.nrst, s->target[j].pins.boot0};
				unsigned lim = j == i ? k : 4;
				for (unsigned m = 0; m < lim; m++) {
					if (pj[m] == pins[k]) {
						add_err(err, pn[k], i,
						        "conflicts with another pin of the same "
						        "number");
						goto next_pin;
					}
				}
			}
		next_pin:;
		}
		for (unsigned j = 0; j < i; j++)
			if (s->target[j].port == t->port)
				add_err(err, "port", i, "used by another target");
		if (t->port == 1234 || t->port == 1235)
			if (s->legacy_ports)
				add_err(err, "port", i, "used by the legacy ports 1234/1235");
	}
	return err->count ? -EINVAL : 0;
}

int settings_to_json(const struct settings *s, char *buf, size_t cap)
{
	struct jw w;
	jw_init(&w, buf, cap);
	jw_obj(&w);
	jw_key(&w, "version");
	jw_int(&w, s->version);
	jw_key(&w, "legacy_ports");
	jw_bool(&w, s->legacy_ports);
	jw_key(&w, "allow");
	jw_str(&w, memchr(s->allow, '\0', sizeof(s->allow)) ? s->allow : "");
	jw_key(&w, "plaintext");
	jw_bool(&w, s->plaintext);
	jw_key(&w, "idle_timeout_s");
	jw_int(&w, s->idle_timeout_s);
	jw_key(&w, "targets");
	jw_arr(&w);
	for (unsigned i = 0; i < s->target_count && i < SETTINGS_MAX_TARGETS; i++) {
		const struct settings_target *t = &s->target[i];
		jw_obj(&w);
		jw_key(&w, "port");
		jw_int(&w, t->port);
		jw_key(&w, "baud");
		jw_int(&w, t->baud);
		jw_key(&w, "line_map");
		jw_str(&w, settings_line_map_name(t->line_map));
		jw_key(&w, "auto_boot");
		jw_str(&w, settings_auto_boot_name(t->auto_boot));
		jw_key(&w, "settle_ms");
		jw_int(&w, t->settle_ms);
		jw_key(&w, "pins");
		jw_obj(&w);
		jw_key(&w, "tx");
		jw_int(&w, t->pins.tx);
		jw_key(&w, "rx");
		jw_int(&w, t->pins.rx);
		jw_key(&w, "nrst");
		jw_int(&w, t->pins.nrst);
		jw_key(&w, "boot0");
		jw_int(&w, t->pins.boot0);
		jw_obj_end(&w);
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_obj_end(&w);
	int r = jw_finish(&w);
	return r < 0 ? -ENOSPC : r;
}

static int get_int(const char *js, const struct jtok *t, int v, long long lo, long long hi,
                   long long *out)
{
	return json_int(js, &t[v], out) == 0 && *out >= lo && *out <= hi ? 0 : -1;
}

static void target_from_json(struct settings_target *t, unsigned i, const char *js,
                             const struct jtok *tok, int obj, struct settings_error *err)
{
	if (tok[obj].type != J_OBJ) {
		add_err(err, "", i, "must be an object");
		return;
	}
	int k = obj + 1;
	for (unsigned n = 0; n < tok[obj].size; n++, k = tok[k + 1].next) {
		int v = k + 1;
		long long x;
		char name[16];
		if (json_str_eq(js, &tok[k], "port")) {
			if (get_int(js, tok, v, 1, 65535, &x) < 0)
				add_err(err, "port", i, "must be an integer 1..65535");
			else
				t->port = (uint16_t)x;
		} else if (json_str_eq(js, &tok[k], "baud")) {
			if (get_int(js, tok, v, 0, 0xFFFFFFFFLL, &x) < 0)
				add_err(err, "baud", i, "must be an integer (bits/s)");
			else
				t->baud = (uint32_t)x;
		} else if (json_str_eq(js, &tok[k], "settle_ms")) {
			if (get_int(js, tok, v, 0, 0xFFFFFFFFLL, &x) < 0)
				add_err(err, "settle_ms", i, "must be an integer (ms)");
			else
				t->settle_ms = (uint32_t)x;
		} else if (json_str_eq(js, &tok[k], "line_map")) {
			enum bridge_line_map m;
			if (json_copy(js, &tok[v], name, sizeof(name)) < 0 ||
			    bridge_parse_line_map(name, &m) < 0)
				add_err(err, "line_map", i, "must be direct, esptool or none");
			else
				t->line_map = (uint8_t)m;
		} else if (json_str_eq(js, &tok[k], "auto_boot")) {
			enum bridge_auto_boot a;
			if (json_copy(js, &tok[v], name, sizeof(name)) < 0 ||
			    bridge_parse_auto_boot(name, &a) < 0)
				add_err(err, "auto_boot", i, "must be sync, parity or off");
			else
				t->auto_boot = (uint8_t)a;
		} else if (json_str_eq(js, &tok[k], "pins")) {
			if (tok[v].type != J_OBJ) {
				add_err(err, "pins", i, "must be an object");
				continue;
			}
			static const char *const pn[4] = {"tx", "rx", "nrst", "boot0"};
			static const char *const fn[4] = {"pins.tx", "pins.rx", "pins.nrst",
			                                  "pins.boot0"};
			int16_t *dst[4] = {&t->pins.tx, &t->pins.rx, &t->pins.nrst, &t->pins.boot0};
			int pk = v + 1;
			for (unsigned pi = 0; pi < tok[v].size; pi++, pk = tok[pk + 1].next) {
				unsigned m;
				for (m = 0; m < 4; m++)
					if (json_str_eq(js, &tok[pk], pn[m]))
						break;
				if (m == 4) {
					add_err(err, "pins", i, "unknown pin name");
					continue;
				}
				if (get_int(js, tok, pk + 1, -1, 255, &x) < 0)
					add_err(err, fn[m], i, "must be a GPIO number");
				else
					*dst[m] = (int16_t)x;
			}
		} else {
			add_err(err, "", i, "unknown key");
		}
	}
}

int settings_from_json(struct settings *s, const struct settings_caps *caps, const char *json,
                       size_t len, struct settings_error *err)
{
	struct settings_error local;
	if (!err)
		err = &local;
	err->count = 0;
	struct jtok tok[96];
	int n = json_parse(json, len, tok, (int)(sizeof(tok) / sizeof(tok[0])));
	if (n < 0 || tok[0].type != J_OBJ) {
		add_err(err, "body", ~0u, n == -2 ? "too long" : "not a JSON object");
		return -EINVAL;
	}
	struct settings t = *s;
	int k = 1;
	for (unsigned i = 0; i < tok[0].size; i++, k = tok[k + 1].next) {
		int v = k + 1;
		long long x;
		if (json_str_eq(json, &tok[k], "version")) {
			if (get_int(json, tok, v, 0, 0xFFFFFFFFLL, &x) < 0 || x != SETTINGS_VERSION)
				add_err(err, "version", ~0u, "unknown settings version");
		} else if (json_str_eq(json, &tok[k], "legacy_ports")) {
			if (tok[v].type != J_TRUE && tok[v].type != J_FALSE)
				add_err(err, "legacy_ports", ~0u, "must be true or false");
			else
				t.legacy_ports = tok[v].type == J_TRUE;
		} else if (json_str_eq(json, &tok[k], "plaintext")) {
			if (tok[v].type != J_TRUE && tok[v].type != J_FALSE)
				add_err(err, "plaintext", ~0u, "must be true or false");
			else
				t.plaintext = tok[v].type == J_TRUE;
		} else if (json_str_eq(json, &tok[k], "idle_timeout_s")) {
			if (get_int(json, tok, v, 0, SETTINGS_IDLE_MAX_S, &x) < 0)
				add_err(err, "idle_timeout_s", ~0u,
				        "must be an integer 0..86400 (s; 0 = no timeout)");
			else
				t.idle_timeout_s = (uint32_t)x;
		} else if (json_str_eq(json, &tok[k], "allow")) {
			if (tok[v].type != J_STR)
				add_err(err, "allow", ~0u,
				        "must be a string: ADDR[/PREFIX][,...] or \"\" (everyone)");
			else if (tok[v].end - tok[v].start >= sizeof(t.allow))
				add_err(err, "allow", ~0u,
				        "too long (at most 8 entries, 159 characters)");
			else if (json_copy(json, &tok[v], t.allow, sizeof(t.allow)) < 0)
				add_err(err, "allow", ~0u, "not an allow-list (unexpected escape)");
		} else if (json_str_eq(json, &tok[k], "targets")) {
			/* bounded by the array too: *s may come in with an invalid target_count */
			if (tok[v].type != J_ARR || tok[v].size > t.target_count ||
			    tok[v].size > SETTINGS_MAX_TARGETS) {
				add_err(err, "targets", ~0u,
				        "must be an array of at most one object per target");
				continue;
			}
			int e = v + 1;
			for (unsigned ti = 0; ti < tok[v].size; ti++, e = tok[e].next)
				target_from_json(&t.target[ti], ti, json, tok, e, err);
		} else {
			char f[24];
			if (json_copy(json, &tok[k], f, sizeof(f)) < 0)
				f[0] = '\0';
			add_err(err, f, ~0u, "unknown setting");
		}
	}
	if (err->count)
		return -EINVAL;
	if (settings_validate(&t, caps, err) < 0)
		return -EINVAL;
	*s = t;
	return 0;
}

int settings_mgr_init(struct settings_mgr *m, const struct settings_caps *caps,
                      const struct settings_store *store, struct settings_error *err)
{
	memset(m, 0, sizeof(*m));
	m->caps = *caps;
	if (store)
		m->store = *store;
	settings_default(&m->cur, caps);
	if (err)
		err->count = 0;
	if (!m->store.load) {
		notify(&m->cur);
		return 1;
	}
	int r = m->store.load(m->store.ctx, m->text, sizeof(m->text));
	if (r < 0) {
		m->text_len = 0;
		m->text[0] = '\0';
		notify(&m->cur);
		return r == -ENOENT ? 1 : r;
	}
	m->text_len = (size_t)r < sizeof(m->text) ? (size_t)r : sizeof(m->text) - 1;
	m->text[m->text_len] = '\0';
	struct settings s = m->cur;
	if (settings_from_json(&s, caps, m->text, m->text_len, err) < 0) {
		notify(&m->cur);
		return 1;
	}
	m->cur = s;
	notify(&m->cur);
	return 0;
}

int settings_mgr_set(struct settings_mgr *m, const struct settings *s, struct settings_error *err)
{
	if (settings_validate(s, &m->caps, err) < 0)
		return -EINVAL;
	char buf[SETTINGS_JSON_MAX];
	int n = settings_to_json(s, buf, sizeof(buf));
	if (n < 0)
		return -EIO;
	m->cur = *s;
	notify(&m->cur);
	if ((size_t)n == m->text_len && memcmp(buf, m->text, (size_t)n) == 0)
		return 0;
	if (m->store.save && m->store.save(m->store.ctx, buf, (size_t)n) < 0)
		return -EIO;
	memcpy(m->text, buf, (size_t)n + 1);
	m->text_len = (size_t)n;
	m->saves++;
	return 1;
}
