/* SPDX-License-Identifier: MIT */
/* The HTTP API fixture of api_fixture.h. */
#include "api_fixture.h"
#include "unit.h"

#include <string.h>

struct api_fixture fx;

void fx_status(void *ctx, struct api_status *s)
{
	(void)ctx;
	s->target_count = 1;
	s->t[0].uart = (struct hal_uart_cfg){115200, 8, 1, 1, 1};
	s->t[0].nrst = 1;
	s->t[0].boot0 = 0;
	s->t[0].bytes_to_uart = 7;
}

void fx_apply(void *ctx, const struct settings *s)
{
	(void)ctx;
	(void)s;
	fx.applied++;
}

int fx_action(void *ctx, unsigned t, enum api_action a)
{
	(void)ctx;
	fx.acted++;
	fx.act_target = t;
	fx.act_kind = (int)a;
	return 0;
}

struct api_response fx_call(const char *m, const char *p, const char *auth, const char *x,
                            const char *body, uint32_t now)
{
	struct api_request rq = {.method = m,
	                         .path = p,
	                         .authorization = auth,
	                         .x_request = x,
	                         .body = body,
	                         .body_len = body ? strlen(body) : 0,
	                         .now_ms = now};
	struct api_response rs;
	http_api_handle(&fx.api, &rq, &rs);
	return rs;
}

int fx_parse(const struct api_response *rs)
{
	int n = json_parse(rs->body, rs->len, fx.tok, 256);
	ck_assert_msg(n > 0, "invalid JSON: %.*s", (int)rs->len, rs->body);
	return n;
}
