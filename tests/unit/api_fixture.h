/* SPDX-License-Identifier: MIT */
/* The HTTP API under test, shared by http_api_test.c and flash_job_test.c: one http_api with
 * its settings, api_ops callbacks that count what they were asked, a request helper and a
 * JSON parse of the answer. */
#ifndef ESPSTM_TEST_API_FIXTURE_H
#define ESPSTM_TEST_API_FIXTURE_H
#include "http_api.h"
#include "json.h"

/* "admin:pw-123" and "admin:wrong" */
#define GOOD "Basic YWRtaW46cHctMTIz"
#define BAD  "Basic YWRtaW46d3Jvbmc="

struct api_fixture {
	struct settings_mgr sm;
	struct http_api api;
	int applied, acted, act_kind; /* calls of fx_apply / fx_action, the last action */
	unsigned act_target;          /* target of the last action */
	struct jtok tok[256];         /* fx_parse's tokens */
};
extern struct api_fixture fx;

/* api_ops callbacks: one target at 115200 8N1, NRST high, BOOT0 low, 7 bytes to the UART;
 * apply and action count their calls (action returns 0). */
void fx_status(void *ctx, struct api_status *s);
void fx_apply(void *ctx, const struct settings *s);
int fx_action(void *ctx, unsigned t, enum api_action a);

/* One request through http_api_handle (body may be NULL); returns the response. */
struct api_response fx_call(const char *m, const char *p, const char *auth, const char *x,
                            const char *body, uint32_t now);
/* Parse the response's JSON body into fx.tok; asserts it is valid, returns the token count. */
int fx_parse(const struct api_response *rs);
#endif
