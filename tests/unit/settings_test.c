/* SPDX-License-Identifier: MIT */
/* firmware/core/settings.c: validation per field, JSON round trip, saved only when changed. */
#include "allowlist.h"
#include "settings.h"
#include "unit.h"

#include <errno.h>
#include <string.h>

static struct settings_caps caps;
static char stored[1024];
static int stored_len = -1, saves, fail_save;

static int t_load(void *ctx, char *buf, size_t cap)
{
	(void)ctx;
	if (stored_len < 0)
		return -ENOENT;
	memcpy(buf, stored, (size_t)stored_len + 1 <= cap ? (size_t)stored_len + 1 : cap);
	return stored_len;
}

static int t_save(void *ctx, const char *t, size_t n)
{
	(void)ctx;
	if (fail_save)
		return -EIO;
	memcpy(stored, t, n);
	stored[n] = '\0';
	stored_len = (int)n;
	saves++;
	return 0;
}

static const struct settings_store store = {.load = t_load, .save = t_save};

static void setup(void)
{
	settings_caps_nominal(&caps, 2);
	stored_len = -1;
	saves = 0;
	fail_save = 0;
}

static int has_err(const struct settings_error *e, const char *field)
{
	for (unsigned i = 0; i < e->count; i++)
		if (strcmp(e->e[i].field, field) == 0)
			return 1;
	return 0;
}

static const char *err_msg(const struct settings_error *e, const char *field)
{
	for (unsigned i = 0; i < e->count; i++)
		if (strcmp(e->e[i].field, field) == 0)
			return e->e[i].msg;
	return NULL;
}

START_TEST(defaults_valid)
{
	struct settings s;
	struct settings_error e;
	settings_default(&s, &caps);
	ck_assert_int_eq(settings_validate(&s, &caps, &e), 0);
	ck_assert_uint_eq(e.count, 0);
	ck_assert_uint_eq(s.target[0].baud, 115200);
	ck_assert_uint_eq(s.target[1].port, 2218);
}
END_TEST

START_TEST(each_field_reported)
{
	struct settings s;
	struct settings_error e;
	settings_default(&s, &caps);
	s.target[0].baud = 10;
	s.target[0].line_map = 7;
	s.target[0].auto_boot = 9;
	s.target[0].settle_ms = 20000;
	s.target[1].port = s.target[0].port;
	s.target[1].pins.nrst = 99;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].baud"));
	ck_assert(has_err(&e, "targets[0].line_map"));
	ck_assert(has_err(&e, "targets[0].auto_boot"));
	ck_assert(has_err(&e, "targets[0].settle_ms"));
	ck_assert(has_err(&e, "targets[1].port"));
	ck_assert(has_err(&e, "targets[1].pins.nrst"));
	ck_assert(!has_err(&e, "targets[0].port"));
}
END_TEST

START_TEST(pin_conflicts)
{
	struct settings s;
	struct settings_error e;
	settings_default(&s, &caps);
	s.target[0].pins.boot0 = s.target[0].pins.nrst; /* same target */
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].pins.boot0"));
	settings_default(&s, &caps);
	s.target[1].pins.tx = s.target[0].pins.rx; /* across targets */
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[1].pins.tx"));
	settings_default(&s, &caps);
	caps.pin_reserved = 1ull << 4; /* flash pin on an ESP */
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].pins.nrst"));
	caps.pin_reserved = 0;
	caps.pin_input_only = 1ull << 5;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].pins.boot0"));
}
END_TEST

START_TEST(json_round_trip_and_partial)
{
	struct settings s, t;
	struct settings_error e;
	char buf[SETTINGS_JSON_MAX];
	settings_default(&s, &caps);
	s.target[1].baud = 9600;
	s.target[0].line_map = 1;
	int n = settings_to_json(&s, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	settings_default(&t, &caps);
	ck_assert_int_eq(settings_from_json(&t, &caps, buf, (size_t)n, &e), 0);
	ck_assert_mem_eq(&s, &t, sizeof(s));
	const char *p = "{\"targets\":[{\"auto_boot\":\"off\"}]}";
	ck_assert_int_eq(settings_from_json(&t, &caps, p, strlen(p), &e), 0);
	ck_assert_uint_eq(t.target[0].auto_boot, 2);
	ck_assert_uint_eq(t.target[1].baud, 9600); /* untouched */
	const char *bad = "{\"targets\":[{\"baud\":\"fast\",\"line_map\":\"x\"}],\"foo\":1}";
	struct settings u = t;
	ck_assert_int_eq(settings_from_json(&t, &caps, bad, strlen(bad), &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].baud"));
	ck_assert(has_err(&e, "targets[0].line_map"));
	ck_assert(has_err(&e, "foo"));
	ck_assert_mem_eq(&u, &t, sizeof(t)); /* unchanged on error */
	ck_assert_int_eq(settings_from_json(&t, &caps, "{", 1, &e), -EINVAL);
	ck_assert(has_err(&e, "body"));
}
END_TEST

START_TEST(saved_only_when_changed)
{
	struct settings_mgr m;
	struct settings_error e;
	ck_assert_int_eq(settings_mgr_init(&m, &caps, &store, &e), 1); /* nothing stored */
	struct settings s = m.cur;
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), 1);
	ck_assert_int_eq(saves, 1);
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), 0); /* same: no write */
	ck_assert_int_eq(saves, 1);
	s.target[0].baud = 57600;
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), 1);
	ck_assert_int_eq(saves, 2);
	s.target[0].baud = 1;
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), -EINVAL);
	ck_assert_int_eq(saves, 2);
	ck_assert_uint_eq(m.cur.target[0].baud, 57600);
	/* survives a restart */
	struct settings_mgr m2;
	ck_assert_int_eq(settings_mgr_init(&m2, &caps, &store, &e), 0);
	ck_assert_uint_eq(m2.cur.target[0].baud, 57600);
	s = m2.cur;
	ck_assert_int_eq(settings_mgr_set(&m2, &s, &e), 0); /* loaded text = stored: no write */
	ck_assert_int_eq(saves, 2);
	fail_save = 1;
	s.target[0].baud = 9600;
	ck_assert_int_eq(settings_mgr_set(&m2, &s, &e), -EIO);
}
END_TEST

START_TEST(corrupt_store_gives_defaults)
{
	struct settings_mgr m;
	struct settings_error e;
	strcpy(stored, "{\"targets\":[{\"baud\":3}]}");
	stored_len = (int)strlen(stored);
	ck_assert_int_eq(settings_mgr_init(&m, &caps, &store, &e), 1);
	ck_assert_uint_eq(m.cur.target[0].baud, 115200);
	ck_assert_uint_gt(e.count, 0);
}
END_TEST

/* settings_from_json on a struct whose target_count is out of range (not validated yet): a
 * "targets" array longer than SETTINGS_MAX_TARGETS is refused, never written past target[]. */
START_TEST(from_json_targets_bounded)
{
	struct settings s;
	struct settings_error e;
	settings_default(&s, &caps);
	s.target_count = 5;
	const char *j = "{\"targets\":[{\"baud\":9600},{\"baud\":9600},{\"baud\":9600},"
	                "{\"baud\":9600},{\"baud\":9600}]}";
	ck_assert_int_eq(settings_from_json(&s, &caps, j, strlen(j), &e), -EINVAL);
	ck_assert(has_err(&e, "targets"));
	ck_assert_uint_eq(s.target[0].baud, 115200);
}
END_TEST

/* SETTINGS_PIN_NONE (-1, "pin not used") is valid for TX and RX (also twice, also over
 * JSON), never for NRST/BOOT0; settle_ms is bounded by SETTINGS_SETTLE_MS_MAX. */
START_TEST(pin_none_tx_rx_and_settle_max)
{
	struct settings s;
	struct settings_error e;
	settings_default(&s, &caps);
	s.target[0].pins.tx = SETTINGS_PIN_NONE;
	s.target[0].pins.rx = SETTINGS_PIN_NONE;
	s.target[1].pins.rx = SETTINGS_PIN_NONE;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), 0);
	ck_assert_uint_eq(e.count, 0);
	s.target[0].pins.nrst = SETTINGS_PIN_NONE;
	s.target[1].pins.boot0 = SETTINGS_PIN_NONE;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].pins.nrst"));
	ck_assert(has_err(&e, "targets[1].pins.boot0"));
	ck_assert(!has_err(&e, "targets[0].pins.tx"));
	ck_assert(!has_err(&e, "targets[0].pins.rx"));
	ck_assert(!has_err(&e, "targets[1].pins.rx"));
	s.target[0].pins.tx = -2; /* only -1 means "not used" */
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].pins.tx"));
	settings_default(&s, &caps);
	const char *j = "{\"targets\":[{\"pins\":{\"tx\":-1,\"rx\":-1}}]}";
	ck_assert_int_eq(settings_from_json(&s, &caps, j, strlen(j), &e), 0);
	ck_assert_int_eq(s.target[0].pins.tx, SETTINGS_PIN_NONE);
	ck_assert_int_eq(s.target[0].pins.rx, SETTINGS_PIN_NONE);
	settings_default(&s, &caps);
	s.target[0].settle_ms = SETTINGS_SETTLE_MS_MAX;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), 0);
	s.target[0].settle_ms = SETTINGS_SETTLE_MS_MAX + 1;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "targets[0].settle_ms"));
}
END_TEST

/* allow: "" (everyone) by default; valid lists pass, invalid ones are reported on the field
 * "allow" with the parser's reason; settings_allowlist() gives the parsed list. */
START_TEST(allow_valid_and_invalid)
{
	struct settings s;
	struct settings_error e;
	struct allowlist al;
	char why[128];
	settings_default(&s, &caps);
	ck_assert_str_eq(s.allow, "");
	ck_assert_int_eq(settings_allowlist(&s, &al, why, sizeof(why)), 0);
	ck_assert_uint_eq(al.count, 0);
	ck_assert(allowlist_allows(&al, 0x08080808u));
	static const char *const good[] = {
	    "192.168.1.0/24,10.0.0.5", "127.0.0.1", "0.0.0.0/0",
	    "255.255.255.255/32,255.255.255.255/32,255.255.255.255/32,255.255.255.255/32,"
	    "255.255.255.255/32,255.255.255.255/32,255.255.255.255/32,255.255.255.255/32"};
	for (unsigned i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		ck_assert_uint_lt(strlen(good[i]), sizeof(s.allow));
		strcpy(s.allow, good[i]);
		ck_assert_msg(settings_validate(&s, &caps, &e) == 0, "%s: %s", good[i],
		              e.count ? e.e[0].msg : "");
	}
	strcpy(s.allow, "192.168.1.0/24,10.0.0.5");
	ck_assert_int_eq(settings_allowlist(&s, &al, why, sizeof(why)), 0);
	ck_assert_uint_eq(al.count, 2);
	ck_assert(allowlist_allows(&al, 0xC0A801FEu));  /* 192.168.1.254 */
	ck_assert(allowlist_allows(&al, 0x0A000005u));  /* 10.0.0.5 */
	ck_assert(!allowlist_allows(&al, 0x0A000006u)); /* 10.0.0.6 */
	ck_assert(!allowlist_allows(&al, 0xC0A80201u)); /* 192.168.2.1 */
	static const struct {
		const char *list, *want;
	} bad[] = {
	    {"10.0.0.256", "octet out of range"},
	    {"10.0.0.1,10.0.0.0/33", "entry 2 '10.0.0.0/33': prefix"},
	    {"10.0.0.1, 10.0.0.2", "entry 2 ' 10.0.0.2': not an IPv4 address"},
	    {"10.0.0.1,", "entry 2 '': empty entry"},
	    {"host.example", "not an IPv4 address"},
	    {"1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,1.1.1.8,1.1.1.9",
	     "more than 8 entries"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		settings_default(&s, &caps);
		strcpy(s.allow, bad[i].list);
		ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
		const char *m = err_msg(&e, "allow");
		ck_assert_msg(m && strstr(m, bad[i].want), "%s: got '%s'", bad[i].list,
		              m ? m : "(no allow error)");
		ck_assert_uint_eq(e.count, 1); /* nothing else reported */
	}
	/* the longest message fits the error's msg field whole */
	strcpy(s.allow, "1.1.1.1,1.1.1.2,1.1.1.3,1.1.1.4,1.1.1.5,1.1.1.6,1.1.1.7,"
	                "123456789012345678901234567890123456789x");
	ck_assert_int_eq(settings_validate(&s, &caps, &e), -EINVAL);
	ck_assert_str_eq(err_msg(&e, "allow"),
	                 "entry 8 '123456789012345678901234567890123456789x': not an IPv4 "
	                 "address (want A.B.C.D or A.B.C.D/PREFIX)");
}
END_TEST

/* allow over JSON: written by settings_to_json, read back, a partial object with only allow,
 * wrong type / too long / bad list refused with *s unchanged. */
START_TEST(allow_json)
{
	struct settings s, t;
	struct settings_error e;
	char buf[SETTINGS_JSON_MAX];
	settings_default(&s, &caps);
	int n = settings_to_json(&s, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"allow\":\"\""));
	strcpy(s.allow, "192.168.1.0/24,10.0.0.5");
	n = settings_to_json(&s, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"allow\":\"192.168.1.0/24,10.0.0.5\""));
	settings_default(&t, &caps);
	ck_assert_int_eq(settings_from_json(&t, &caps, buf, (size_t)n, &e), 0);
	ck_assert_mem_eq(&s, &t, sizeof(s));
	/* the longest valid settings (two targets, 8 entries of 18 characters) fit */
	strcpy(s.allow, "255.255.255.255/32,255.255.255.255/32,255.255.255.255/32,"
	                "255.255.255.255/32,255.255.255.255/32,255.255.255.255/32,"
	                "255.255.255.255/32,255.255.255.255/32");
	for (unsigned i = 0; i < 2; i++) {
		s.target[i].port = (uint16_t)(65534 + i);
		s.target[i].baud = 4000000;
		s.target[i].line_map = 1;
		s.target[i].auto_boot = 1;
		s.target[i].settle_ms = SETTINGS_SETTLE_MS_MAX;
	}
	s.legacy_ports = 0;
	s.plaintext = 1;
	s.idle_timeout_s = SETTINGS_IDLE_MAX_S;
	ck_assert_int_eq(settings_validate(&s, &caps, &e), 0);
	n = settings_to_json(&s, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	settings_default(&t, &caps);
	ck_assert_int_eq(settings_from_json(&t, &caps, buf, (size_t)n, &e), 0);
	ck_assert_mem_eq(&s, &t, sizeof(s));
	/* partial: only allow; back to "" */
	const char *p = "{\"allow\":\"127.0.0.1\"}";
	ck_assert_int_eq(settings_from_json(&t, &caps, p, strlen(p), &e), 0);
	ck_assert_str_eq(t.allow, "127.0.0.1");
	ck_assert_uint_eq(t.target[0].baud, 4000000); /* untouched */
	p = "{\"allow\":\"\"}";
	ck_assert_int_eq(settings_from_json(&t, &caps, p, strlen(p), &e), 0);
	ck_assert_str_eq(t.allow, "");
	strcpy(t.allow, "10.0.0.1");
	struct settings u = t;
	static const char *const bad[] = {
	    "{\"allow\":5}",
	    "{\"allow\":[\"10.0.0.1\"]}",
	    "{\"allow\":\"10.0.0.300\"}",
	    "{\"allow\":\"10.0.0.1\\n\"}",
	    "{\"allow\":\"1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,"
	    "1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1.1,1.1.1."
	    "1,"
	    "1.1.1.1\"}",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_int_eq(settings_from_json(&t, &caps, bad[i], strlen(bad[i]), &e),
		                 -EINVAL);
		ck_assert_msg(err_msg(&e, "allow") != NULL, "%s", bad[i]);
		ck_assert_mem_eq(&u, &t, sizeof(t)); /* unchanged on error */
	}
	ck_assert_ptr_nonnull(strstr(bad[4], "1.1.1.1\"}"));
	ck_assert_uint_ge(strlen(bad[4]) - 12, sizeof(t.allow)); /* really longer than the field */
}
END_TEST

/* The observer sees the current settings after init and after each valid set (not after an
 * invalid one); saved only when allow changes. */
static unsigned obs_calls;
static char obs_allow[SETTINGS_ALLOW_MAX];
static void obs(void *ctx, const struct settings *cur)
{
	ck_assert_ptr_eq(ctx, &obs_calls);
	obs_calls++;
	strcpy(obs_allow, cur->allow);
}

START_TEST(allow_observer_and_saves)
{
	struct settings_mgr m;
	struct settings_error e;
	obs_calls = 0;
	strcpy(stored, "{\"allow\":\"10.0.0.0/8\"}");
	stored_len = (int)strlen(stored);
	settings_set_observer(obs, &obs_calls);
	ck_assert_int_eq(settings_mgr_init(&m, &caps, &store, &e), 0);
	ck_assert_uint_eq(obs_calls, 1);
	ck_assert_str_eq(obs_allow, "10.0.0.0/8");
	struct settings s = m.cur;
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), 1); /* canonical text differs: saved */
	ck_assert_int_eq(saves, 1);
	ck_assert_uint_eq(obs_calls, 2);
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), 0); /* same: no write, still notified */
	ck_assert_int_eq(saves, 1);
	ck_assert_uint_eq(obs_calls, 3);
	strcpy(s.allow, "10.0.0.0/8,127.0.0.1");
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), 1);
	ck_assert_int_eq(saves, 2);
	ck_assert_str_eq(obs_allow, "10.0.0.0/8,127.0.0.1");
	strcpy(s.allow, "10.0.0.0/8,127.0.0.1/40");
	ck_assert_int_eq(settings_mgr_set(&m, &s, &e), -EINVAL);
	ck_assert(has_err(&e, "allow"));
	ck_assert_uint_eq(obs_calls, 4);
	ck_assert_str_eq(obs_allow, "10.0.0.0/8,127.0.0.1");
	ck_assert_str_eq(m.cur.allow, "10.0.0.0/8,127.0.0.1");
	/* survives a restart; an invalid stored list gives the defaults (everyone) */
	struct settings_mgr m2;
	ck_assert_int_eq(settings_mgr_init(&m2, &caps, &store, &e), 0);
	ck_assert_str_eq(m2.cur.allow, "10.0.0.0/8,127.0.0.1");
	ck_assert_uint_eq(obs_calls, 5);
	strcpy(stored, "{\"allow\":\"10.0.0.0/99\"}");
	stored_len = (int)strlen(stored);
	ck_assert_int_eq(settings_mgr_init(&m2, &caps, &store, &e), 1);
	ck_assert(has_err(&e, "allow"));
	ck_assert_str_eq(m2.cur.allow, "");
	ck_assert_str_eq(obs_allow, "");
	settings_set_observer(NULL, NULL);
	ck_assert_int_eq(settings_mgr_set(&m2, &m2.cur, &e), 1);
	ck_assert_uint_eq(obs_calls, 6); /* removed: not called */
}
END_TEST

/* plaintext and idle_timeout_s: defaults (off, 600 s), JSON both ways, partial objects,
 * wrong types and ranges refused per field with *s unchanged, old stored text (without the
 * keys) keeps the defaults. */
START_TEST(plaintext_and_idle)
{
	struct settings s, t;
	struct settings_error e;
	char buf[SETTINGS_JSON_MAX];
	settings_default(&s, &caps);
	ck_assert_uint_eq(s.plaintext, 0);
	ck_assert_uint_eq(s.idle_timeout_s, 600);
	int n = settings_to_json(&s, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	ck_assert_ptr_nonnull(strstr(buf, "\"plaintext\":false,\"idle_timeout_s\":600"));
	const char *p = "{\"plaintext\":true,\"idle_timeout_s\":0}";
	t = s;
	ck_assert_int_eq(settings_from_json(&t, &caps, p, strlen(p), &e), 0);
	ck_assert_uint_eq(t.plaintext, 1);
	ck_assert_uint_eq(t.idle_timeout_s, 0);
	ck_assert_uint_eq(t.target[0].baud, 115200);
	n = settings_to_json(&t, buf, sizeof(buf));
	struct settings u;
	settings_default(&u, &caps);
	ck_assert_int_eq(settings_from_json(&u, &caps, buf, (size_t)n, &e), 0);
	ck_assert_mem_eq(&u, &t, sizeof(t));
	static const char *const bad[][2] = {
	    {"{\"plaintext\":1}", "plaintext"},
	    {"{\"plaintext\":\"yes\"}", "plaintext"},
	    {"{\"idle_timeout_s\":-1}", "idle_timeout_s"},
	    {"{\"idle_timeout_s\":86401}", "idle_timeout_s"},
	    {"{\"idle_timeout_s\":1.5}", "idle_timeout_s"},
	    {"{\"idle_timeout_s\":true}", "idle_timeout_s"},
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		u = t;
		ck_assert_int_eq(settings_from_json(&u, &caps, bad[i][0], strlen(bad[i][0]), &e),
		                 -EINVAL);
		ck_assert_msg(has_err(&e, bad[i][1]), "%s", bad[i][0]);
		ck_assert_mem_eq(&u, &t, sizeof(t));
	}
	t.idle_timeout_s = SETTINGS_IDLE_MAX_S + 1;
	ck_assert_int_eq(settings_validate(&t, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "idle_timeout_s"));
	t.idle_timeout_s = 5;
	t.plaintext = 2;
	ck_assert_int_eq(settings_validate(&t, &caps, &e), -EINVAL);
	ck_assert(has_err(&e, "plaintext"));
	/* text stored before these fields existed: defaults for them */
	struct settings_mgr m;
	strcpy(stored, "{\"version\":1,\"legacy_ports\":true,\"allow\":\"\"}");
	stored_len = (int)strlen(stored);
	ck_assert_int_eq(settings_mgr_init(&m, &caps, &store, &e), 0);
	ck_assert_uint_eq(m.cur.plaintext, 0);
	ck_assert_uint_eq(m.cur.idle_timeout_s, 600);
	ck_assert_uint_eq(m.cur.legacy_ports, 1);
}
END_TEST

static Suite *settings_suite(void)
{
	Suite *s = suite_create("settings");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, defaults_valid);
	tcase_add_test(tc, each_field_reported);
	tcase_add_test(tc, pin_conflicts);
	tcase_add_test(tc, json_round_trip_and_partial);
	tcase_add_test(tc, saved_only_when_changed);
	tcase_add_test(tc, corrupt_store_gives_defaults);
	tcase_add_test(tc, from_json_targets_bounded);
	tcase_add_test(tc, pin_none_tx_rx_and_settle_max);
	tcase_add_test(tc, allow_valid_and_invalid);
	tcase_add_test(tc, allow_json);
	tcase_add_test(tc, allow_observer_and_saves);
	tcase_add_test(tc, plaintext_and_idle);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(settings_suite)
