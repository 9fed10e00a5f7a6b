/* SPDX-License-Identifier: MIT */
/* firmware/core/http_api.c: auth (success, failure, lock-out, constant-time compare),
 * routes, JSON shapes, settings errors, actions. */
#include "api_fixture.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct api_ops ops = {.status = fx_status, .apply = fx_apply, .action = fx_action};

static void setup(void)
{
	struct settings_caps caps;
	settings_caps_nominal(&caps, 1);
	settings_mgr_init(&fx.sm, &caps, NULL, NULL);
	ck_assert_int_eq(http_api_init(&fx.api, &ops, NULL, &fx.sm, "pw-123"), 0);
	fx.applied = fx.acted = 0;
}

START_TEST(ct_equal)
{
	ck_assert(http_api_ct_equal("abc", 3, "abc", 3));
	ck_assert(!http_api_ct_equal("abd", 3, "abc", 3));
	ck_assert(!http_api_ct_equal("ab", 2, "abc", 3));
	ck_assert(!http_api_ct_equal("abcd", 4, "abc", 3));
	ck_assert(!http_api_ct_equal("", 0, "abc", 3));
}
END_TEST

START_TEST(auth_required_everywhere)
{
	const char *paths[] = {"/", "/api/status", "/api/settings"};
	for (unsigned i = 0; i < 3; i++) {
		struct api_response r = fx_call("GET", paths[i], NULL, NULL, NULL, 0);
		ck_assert_int_eq(r.status, 401);
		ck_assert(r.www_authenticate);
	}
	struct api_response r = fx_call("POST", "/api/targets/0/reset", NULL, "1", NULL, 0);
	ck_assert_int_eq(r.status, 401);
	ck_assert_int_eq(fx.acted, 0);
	ck_assert_uint_eq(fx.api.fails_total, 0); /* no header: not a failure */
}
END_TEST

START_TEST(auth_success_uses_ct_compare)
{
	uint32_t before = http_api_ct_calls;
	struct api_response r = fx_call("GET", "/", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.content_type, "text/html; charset=utf-8");
	ck_assert(strstr(r.body, "<script>") != NULL);
	ck_assert(strstr(r.body, "http://") == NULL && strstr(r.body, "https://") == NULL);
	ck_assert_uint_ge(http_api_ct_calls - before, 2); /* user and password */
	ck_assert_int_eq(fx_call("GET", "/", "basic YWRtaW46cHctMTIz", NULL, NULL, 0).status, 200);
	ck_assert_int_eq(fx_call("GET", "/", "Bearer x", NULL, NULL, 0).status, 401);
	/* other user name, right password */
	ck_assert_int_eq(fx_call("GET", "/", "Basic cm9vdDpwdy0xMjM=", NULL, NULL, 0).status, 401);
}
END_TEST

START_TEST(lockout_after_failures)
{
	uint32_t t = 1000;
	for (int i = 0; i < HTTP_API_FREE_FAILS; i++)
		ck_assert_int_eq(fx_call("GET", "/api/status", BAD, NULL, NULL, t).status, 401);
	/* locked: even the right password is refused, without comparing */
	uint32_t before = http_api_ct_calls;
	struct api_response r = fx_call("GET", "/api/status", GOOD, NULL, NULL, t + 10);
	ck_assert_int_eq(r.status, 429);
	ck_assert_uint_eq(r.retry_after_s, 1);
	ck_assert_uint_eq(http_api_ct_calls, before);
	/* after 1 s it answers again; another failure doubles the delay */
	ck_assert_int_eq(fx_call("GET", "/api/status", BAD, NULL, NULL, t + 1000).status, 401);
	r = fx_call("GET", "/api/status", GOOD, NULL, NULL, t + 1500);
	ck_assert_int_eq(r.status, 429);
	ck_assert_uint_eq(r.retry_after_s, 2);
	ck_assert_int_eq(fx_call("GET", "/api/status", GOOD, NULL, NULL, t + 3000).status, 200);
	ck_assert_uint_eq(fx.api.peer[0].len, 0xFF); /* success clears the record */
	/* delay is capped */
	for (int i = 0; i < 40; i++) {
		t += HTTP_API_MAX_LOCK_MS + 1;
		fx_call("GET", "/api/status", BAD, NULL, NULL, t);
	}
	r = fx_call("GET", "/api/status", GOOD, NULL, NULL, t + 1);
	ck_assert_int_eq(r.status, 429);
	ck_assert_uint_le(r.retry_after_s, HTTP_API_MAX_LOCK_MS / 1000);
}
END_TEST

/* One GET /api/status from IPv4 address 10.0.0.last (last 0: address unknown). */
static int from4(uint8_t last, const char *auth, uint32_t now)
{
	uint8_t a[4] = {10, 0, 0, last};
	struct api_request rq = {.method = "GET",
	                         .path = "/api/status",
	                         .authorization = auth,
	                         .now_ms = now,
	                         .client_addr = last ? a : NULL,
	                         .client_addr_len = last ? 4 : 0};
	struct api_response rs;
	http_api_handle(&fx.api, &rq, &rs);
	return rs.status;
}

/* Wrong passwords from one address lock that address only: the right password from another
 * address is answered 200 on every request (the admin is not kept out). */
START_TEST(lockout_per_address)
{
	uint32_t t = 5000;
	for (int i = 0; i < 40; i++) {
		from4(2, BAD, t);
		ck_assert_int_eq(from4(1, GOOD, t + 1), 200);
		t += 100;
	}
	ck_assert_int_eq(from4(2, GOOD, t), 429); /* the attacker's address is locked */
	/* counted: 3 free ones, then one after each lock ran out (1 s, 2 s) */
	ck_assert_uint_eq(fx.api.fails_total, HTTP_API_FREE_FAILS + 2);
	/* IPv6: the whole 16 bytes are the key; the IPv4 admin is unaffected */
	uint8_t v6[16] = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7};
	struct api_request rq = {.method = "GET",
	                         .path = "/api/status",
	                         .authorization = BAD,
	                         .client_addr = v6,
	                         .client_addr_len = 16};
	struct api_response rs;
	for (int i = 0; i < HTTP_API_FREE_FAILS; i++) {
		rq.now_ms = t;
		http_api_handle(&fx.api, &rq, &rs);
		ck_assert_int_eq(rs.status, 401);
	}
	rq.authorization = GOOD;
	http_api_handle(&fx.api, &rq, &rs);
	ck_assert_int_eq(rs.status, 429);
	v6[15] = 8; /* a neighbour address is not locked */
	http_api_handle(&fx.api, &rq, &rs);
	ck_assert_int_eq(rs.status, 200);
	ck_assert_int_eq(from4(1, GOOD, t), 200);
}
END_TEST

/* An attacker with many addresses: filling the table with new addresses does not unlock a
 * locked one (locked entries are not replaced while unlocked ones exist), and once every
 * entry holds a running lock, further addresses share one overflow entry that locks as one
 * address: guessing stays bounded. The right password from an address of its own (not
 * locked) still works while the table is not full of locks. */
START_TEST(lockout_table_churn)
{
	uint32_t t = 1000;
	for (int i = 0; i < HTTP_API_FREE_FAILS; i++)
		from4(200, BAD, t);
	ck_assert_int_eq(from4(200, GOOD, t), 429);
	/* 100 other addresses with one wrong password each (never locked themselves) */
	for (int a = 1; a <= 100; a++)
		ck_assert_int_eq(from4((uint8_t)a, BAD, t + 1), 401);
	ck_assert_int_eq(from4(200, GOOD, t + 2), 429); /* still locked */
	ck_assert_int_eq(from4(101, GOOD, t + 2), 200);
	/* now lock HTTP_API_PEERS - 1 more addresses: the table is full of running locks */
	for (int a = 1; a < HTTP_API_PEERS; a++)
		for (int i = 0; i < HTTP_API_FREE_FAILS; i++)
			from4((uint8_t)(100 + a), BAD, t + 3);
	ck_assert_int_eq(from4(200, GOOD, t + 4), 429);
	/* addresses beyond the table: their wrong passwords count together */
	ck_assert_int_eq(from4(150, BAD, t + 5), 401);
	ck_assert_int_eq(from4(151, BAD, t + 5), 401);
	ck_assert_int_eq(from4(152, BAD, t + 5), 401);
	uint32_t before = http_api_ct_calls;
	ck_assert_int_eq(from4(153, BAD, t + 6), 429); /* not checked: no guess */
	ck_assert_uint_eq(http_api_ct_calls, before);
	/* the locks run out: everyone is answered again, the right password works */
	t += HTTP_API_MAX_LOCK_MS + 1;
	ck_assert_int_eq(from4(200, GOOD, t), 200);
	ck_assert_int_eq(from4(153, GOOD, t), 200);
}
END_TEST

/* Unknown addresses (a server that cannot tell) share one entry, as before. */
START_TEST(lockout_unknown_address)
{
	for (int i = 0; i < HTTP_API_FREE_FAILS; i++)
		ck_assert_int_eq(from4(0, BAD, 100), 401);
	ck_assert_int_eq(from4(0, GOOD, 200), 429);
	ck_assert_int_eq(from4(9, GOOD, 200), 200);
	ck_assert_uint_eq(fx.api.fails_total, HTTP_API_FREE_FAILS);
}
END_TEST

START_TEST(status_shape)
{
	struct api_response r = fx_call("GET", "/api/status", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.content_type, "application/json");
	fx_parse(&r);
	int w = json_find(r.body, fx.tok, 0, "wifi");
	ck_assert_int_gt(w, 0);
	ck_assert_int_eq(fx.tok[json_find(r.body, fx.tok, w, "rssi")].type, J_NULL);
	int ts = json_find(r.body, fx.tok, 0, "targets");
	ck_assert_int_eq(fx.tok[ts].type, J_ARR);
	ck_assert_uint_eq(fx.tok[ts].size, 1);
	int t0 = ts + 1;
	long long v;
	int u = json_find(r.body, fx.tok, t0, "uart");
	ck_assert_int_eq(json_int(r.body, &fx.tok[json_find(r.body, fx.tok, u, "baud")], &v), 0);
	ck_assert_int_eq(v, 115200);
	int p = json_find(r.body, fx.tok, t0, "pins");
	ck_assert_int_eq(json_int(r.body, &fx.tok[json_find(r.body, fx.tok, p, "nrst")], &v), 0);
	ck_assert_int_eq(v, 1);
	ck_assert_int_gt(json_find(r.body, fx.tok, p, "gpio"), 0);
	int b = json_find(r.body, fx.tok, t0, "bytes");
	ck_assert_int_eq(json_int(r.body, &fx.tok[json_find(r.body, fx.tok, b, "to_uart")], &v), 0);
	ck_assert_int_eq(v, 7);
	ck_assert_int_gt(json_find(r.body, fx.tok, t0, "errors"), 0);
	ck_assert_int_gt(json_find(r.body, fx.tok, t0, "client"), 0);
	ck_assert_int_gt(json_find(r.body, fx.tok, t0, "line_map"), 0);
}
END_TEST

START_TEST(settings_put)
{
	const char *body = "{\"targets\":[{\"baud\":57600}]}";
	/* CSRF header required */
	ck_assert_int_eq(fx_call("PUT", "/api/settings", GOOD, NULL, body, 0).status, 403);
	struct api_response r = fx_call("PUT", "/api/settings", GOOD, "1", body, 0);
	ck_assert_int_eq(r.status, 200);
	fx_parse(&r);
	ck_assert_int_eq(fx.tok[json_find(r.body, fx.tok, 0, "saved")].type, J_TRUE);
	ck_assert_int_eq(fx.applied, 1);
	ck_assert_uint_eq(fx.sm.cur.target[0].baud, 57600);
	r = fx_call("PUT", "/api/settings", GOOD, "1", body, 0);
	fx_parse(&r);
	ck_assert_int_eq(fx.tok[json_find(r.body, fx.tok, 0, "saved")].type, J_FALSE);
	r = fx_call("PUT", "/api/settings", GOOD, "1",
	            "{\"targets\":[{\"baud\":1,\"settle_ms\":-4}]}", 0);
	ck_assert_int_eq(r.status, 400);
	fx_parse(&r);
	int f = json_find(r.body, fx.tok, 0, "fields");
	ck_assert_int_gt(f, 0);
	ck_assert_int_gt(json_find(r.body, fx.tok, f, "targets[0].settle_ms"), 0);
	r = fx_call("GET", "/api/settings", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert(strstr(r.body, "\"baud\":57600") != NULL);
}
END_TEST

START_TEST(actions)
{
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/reset", GOOD, "1", NULL, 0).status, 200);
	ck_assert_int_eq(fx.act_kind, API_ACT_RESET);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/bootloader", GOOD, "1", NULL, 0).status,
	                 200);
	ck_assert_int_eq(fx.act_kind, API_ACT_BOOTLOADER);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/run", GOOD, "1", NULL, 0).status, 200);
	ck_assert_int_eq(fx.act_kind, API_ACT_RUN);
	ck_assert_int_eq(fx.acted, 3);
	ck_assert_int_eq(fx_call("POST", "/api/targets/1/run", GOOD, "1", NULL, 0).status, 404);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/explode", GOOD, "1", NULL, 0).status, 404);
	ck_assert_int_eq(fx_call("GET", "/api/targets/0/reset", GOOD, NULL, NULL, 0).status, 405);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/reset", GOOD, NULL, NULL, 0).status, 403);
	ck_assert_int_eq(fx.acted, 3);
	ck_assert_int_eq(fx_call("GET", "/nope", GOOD, NULL, NULL, 0).status, 404);
}
END_TEST

/* The password is compared as the whole zero-padded buffer (time independent of its length):
 * a candidate with a NUL (which would match the padding) or longer than the maximum is
 * refused; the shortest and longest passwords work. */
START_TEST(auth_password_padding)
{
	ck_assert_int_eq(fx_call("GET", "/", "Basic YWRtaW46cHctMTIzAA==", NULL, NULL, 0).status,
	                 401);
	char p64[HTTP_API_PASS_MAX + 1];
	memset(p64, 'p', HTTP_API_PASS_MAX);
	p64[HTTP_API_PASS_MAX] = '\0';
	ck_assert_int_eq(http_api_init(&fx.api, &ops, NULL, &fx.sm, p64), 0);
	/* admin: + 64 x p (200), then 65 x p (401) */
	ck_assert_int_eq(fx_call("GET", "/",
	                         "Basic YWRtaW46cHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw"
	                         "cHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcA==",
	                         NULL, NULL, 0)
	                     .status,
	                 200);
	ck_assert_int_eq(fx_call("GET", "/",
	                         "Basic YWRtaW46cHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBw"
	                         "cHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHA=",
	                         NULL, NULL, 0)
	                     .status,
	                 401);
	ck_assert_int_eq(http_api_init(&fx.api, &ops, NULL, &fx.sm, "x"), 0);
	ck_assert_int_eq(fx_call("GET", "/", "Basic YWRtaW46eA==", NULL, NULL, 0).status, 200);
	ck_assert_int_eq(fx_call("GET", "/", "Basic YWRtaW46eHg=", NULL, NULL, 0).status, 401);
}
END_TEST

/* PUT with body NULL but a body_len: read as empty (was: body_len bytes read from ""). */
START_TEST(put_null_body_with_len)
{
	struct api_request rq = {.method = "PUT",
	                         .path = "/api/settings",
	                         .authorization = GOOD,
	                         .x_request = "1",
	                         .body = NULL,
	                         .body_len = 64};
	struct api_response rs;
	http_api_handle(&fx.api, &rq, &rs);
	ck_assert_int_eq(rs.status, 400);
	ck_assert_int_eq(fx.applied, 0);
}
END_TEST

static char logged[128];
static void lg(void *ctx, const char *line)
{
	(void)ctx;
	snprintf(logged, sizeof(logged), "%s", line);
}

/* The unauthenticated path goes to the log: control characters (forged log lines) replaced. */
START_TEST(log_path_sanitized)
{
	static const struct api_ops lops = {
	    .status = fx_status, .apply = fx_apply, .action = fx_action, .log = lg};
	ck_assert_int_eq(http_api_init(&fx.api, &lops, NULL, &fx.sm, "pw-123"), 0);
	logged[0] = '\0';
	fx_call("GET", "/api/x\n2024 http: settings saved\r\x1b[2J", BAD, NULL, NULL, 0);
	ck_assert_str_eq(logged,
	                 "http: wrong credentials for /api/x?2024 http: settings saved??[2J");
}
END_TEST

static Suite *http_api_suite(void)
{
	Suite *s = suite_create("http_api");
	TCase *tc = tcase_create("core");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, ct_equal);
	tcase_add_test(tc, auth_required_everywhere);
	tcase_add_test(tc, auth_success_uses_ct_compare);
	tcase_add_test(tc, lockout_after_failures);
	tcase_add_test(tc, lockout_per_address);
	tcase_add_test(tc, lockout_table_churn);
	tcase_add_test(tc, lockout_unknown_address);
	tcase_add_test(tc, status_shape);
	tcase_add_test(tc, settings_put);
	tcase_add_test(tc, actions);
	tcase_add_test(tc, auth_password_padding);
	tcase_add_test(tc, put_null_body_with_len);
	tcase_add_test(tc, log_path_sanitized);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(http_api_suite)
