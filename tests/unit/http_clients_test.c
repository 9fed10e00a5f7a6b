/* SPDX-License-Identifier: MIT */
/* firmware/core/http_api.c: "clients" in /api/status (api_ops.clients) and
 * POST /api/targets/N/disconnect (api_ops.disconnect). */
#include "api_fixture.h"
#include "unit.h"

#include <stdio.h>
#include <string.h>

static unsigned held;  /* clients the fake platform has (0 or 1) */
static int dropped;    /* disconnect calls that dropped one */
static unsigned asked; /* the target of the last disconnect call */

static unsigned cl_clients(void *ctx, struct api_client *c, unsigned max)
{
	(void)ctx;
	if (!held || !max)
		return 0;
	memset(c, 0, sizeof(*c));
	snprintf(c->peer, sizeof(c->peer), "127.0.0.1:5555");
	c->tls = 1;
	c->since_s = 12;
	c->idle_s = 3;
	c->bytes_in = 120;
	c->bytes_out = 5000000000ull;
	return 1;
}

static int cl_disconnect(void *ctx, unsigned t)
{
	(void)ctx;
	asked = t;
	if (!held)
		return 0;
	held = 0;
	dropped++;
	return 1;
}

static const struct api_ops ops = {.status = fx_status,
                                   .apply = fx_apply,
                                   .action = fx_action,
                                   .clients = cl_clients,
                                   .disconnect = cl_disconnect};
static const struct api_ops bare = {.status = fx_status};

static void init(const struct api_ops *o)
{
	struct settings_caps caps;
	settings_caps_nominal(&caps, 1);
	settings_mgr_init(&fx.sm, &caps, NULL, NULL);
	ck_assert_int_eq(http_api_init(&fx.api, o, NULL, &fx.sm, "pw-123"), 0);
	held = 1;
	dropped = 0;
	asked = 99;
}

static const char *body(const struct api_response *rs)
{
	static char b[HTTP_API_OUT + 1];
	size_t n = rs->len < HTTP_API_OUT ? rs->len : HTTP_API_OUT;
	memcpy(b, rs->body, n);
	b[n] = '\0';
	return b;
}

START_TEST(status_lists_the_holder)
{
	init(&ops);
	struct api_response rs = fx_call("GET", "/api/status", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(rs.status, 200);
	fx_parse(&rs);
	ck_assert_ptr_nonnull(strstr(body(&rs),
	                             "\"clients\":[{\"target\":0,\"peer\":\"127.0.0.1:5555\","
	                             "\"tls\":true,\"since_s\":12,\"idle_s\":3,\"bytes_in\":120,"
	                             "\"bytes_out\":5000000000}]"));
	held = 0;
	rs = fx_call("GET", "/api/status", GOOD, NULL, NULL, 0);
	fx_parse(&rs);
	ck_assert_ptr_nonnull(strstr(body(&rs), "\"clients\":[]"));
	init(&bare); /* a platform without the hook: [] */
	rs = fx_call("GET", "/api/status", GOOD, NULL, NULL, 0);
	fx_parse(&rs);
	ck_assert_ptr_nonnull(strstr(body(&rs), "\"clients\":[]"));
}
END_TEST

START_TEST(disconnect_route)
{
	init(&ops);
	/* authenticated and with X-Espstm-Request only */
	struct api_response rs = fx_call("POST", "/api/targets/0/disconnect", NULL, "1", NULL, 0);
	ck_assert_int_eq(rs.status, 401);
	rs = fx_call("POST", "/api/targets/0/disconnect", BAD, "1", NULL, 0);
	ck_assert_int_eq(rs.status, 401);
	rs = fx_call("POST", "/api/targets/0/disconnect", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(rs.status, 403);
	rs = fx_call("GET", "/api/targets/0/disconnect", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(rs.status, 405);
	ck_assert_int_eq(dropped, 0);
	ck_assert_uint_eq(held, 1);
	rs = fx_call("POST", "/api/targets/1/disconnect", GOOD, "1", NULL, 0);
	ck_assert_int_eq(rs.status, 404);
	ck_assert_int_eq(dropped, 0);
	rs = fx_call("POST", "/api/targets/0/disconnect", GOOD, "1", NULL, 0);
	ck_assert_int_eq(rs.status, 200);
	ck_assert_str_eq(body(&rs), "{\"target\":0,\"dropped\":true}");
	ck_assert_int_eq(dropped, 1);
	ck_assert_uint_eq(asked, 0);
	rs = fx_call("POST", "/api/targets/0/disconnect", GOOD, "1", NULL, 0);
	ck_assert_int_eq(rs.status, 200);
	ck_assert_str_eq(body(&rs), "{\"target\":0,\"dropped\":false}");
	init(&bare);
	rs = fx_call("POST", "/api/targets/0/disconnect", GOOD, "1", NULL, 0);
	ck_assert_int_eq(rs.status, 501);
}
END_TEST

static Suite *http_clients_suite(void)
{
	Suite *s = suite_create("http_clients");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, status_lists_the_holder);
	tcase_add_test(tc, disconnect_route);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(http_clients_suite)
