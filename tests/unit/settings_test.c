/* SPDX-License-Identifier: MIT */
/* firmware/core/settings.c: validation per field, JSON round trip, saved only when changed. */
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
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(settings_suite)
