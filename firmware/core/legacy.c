/* SPDX-License-Identifier: MIT */
/* Legacy control port (seed firmware EspStmRemote): see legacy.h. */
#include "legacy.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static size_t answer(char *ans, size_t ansz, const char *text)
{
	int n = snprintf(ans, ansz, "%s\r\n", text);
	if (n < 0)
		return 0;
	return (size_t)n < ansz ? (size_t)n : ansz - 1;
}

size_t legacy_control_byte(struct bridge *br, uint8_t c, char *ans, size_t ansz)
{
	enum bridge_action a;
	char line[64];
	if (ansz)
		ans[0] = '\0';
	switch (c) {
	case 'r':
		a = BRIDGE_ACT_RESET;
		break;
	case 'u':
		a = BRIDGE_ACT_BOOTLOADER;
		break;
	case 'e':
		a = BRIDGE_ACT_RUN;
		break;
	case '\r':
	case '\n':
	case '\0':
		return 0;
	default:
		if (c >= 0x20 && c < 0x7F)
			snprintf(line, sizeof(line), "legacy: control byte '%c' ignored (r, u, e)",
			         c);
		else
			snprintf(line, sizeof(line),
			         "legacy: control byte 0x%02x ignored (r, u, e)", (unsigned)c);
		bridge_log(br, HAL_LOG_INFO, line);
		return 0;
	}
	snprintf(line, sizeof(line), "legacy: control '%c'", c);
	bridge_log(br, HAL_LOG_INFO, line);
	int r = bridge_action(br, a);
	if (r == -EPERM) /* 'u' in locked mode (bridge_settings.locked) */
		return answer(ans, ansz, "ERR locked: signed images only");
	if (r < 0)
		return answer(ans, ansz, "ERR busy");
	switch (a) {
	case BRIDGE_ACT_RESET:
		return answer(ans, ansz, "OK reset");
	case BRIDGE_ACT_BOOTLOADER:
		return answer(ans, ansz, "OK boot 115200 8E1");
	default:
		snprintf(line, sizeof(line), "OK run %u 8N1",
		         (unsigned)br->set.uart.baud); /* the settings' baud */
		return answer(ans, ansz, line);
	}
}

void legacy_ctl_init(struct legacy_ctl *c)
{
	memset(c, 0, sizeof(*c));
	c->verdict = -1;
}

static void run_bytes(struct bridge *br, const uint8_t *p, size_t n,
                      void (*emit)(void *ctx, const char *line, size_t len), void *ctx)
{
	for (size_t i = 0; i < n; i++) {
		char ans[LEGACY_ANSWER_MAX];
		size_t k = legacy_control_byte(br, p[i], ans, sizeof(ans));
		if (k && emit)
			emit(ctx, ans, k);
	}
}

int legacy_control_input(struct legacy_ctl *c, struct bridge *br, const uint8_t *p, size_t n,
                         void (*emit)(void *ctx, const char *line, size_t len), void *ctx)
{
	if (c->verdict == 1)
		return 1;
	if (c->verdict < 0) {
		size_t take = sizeof(c->head) - c->n;
		if (take > n)
			take = n;
		memcpy(c->head + c->n, p, take);
		c->n += take;
		p += take;
		n -= take;
		c->verdict = http_lookalike(c->head, c->n);
		if (c->verdict < 0)
			return 0; /* held: not decided yet (n was 0 here) */
		if (c->verdict == 1) {
			bridge_log(
			    br, HAL_LOG_INFO,
			    "legacy: control client sent an HTTP request: refused, nothing run");
			return 1;
		}
		run_bytes(br, c->head, c->n, emit, ctx);
	}
	run_bytes(br, p, n, emit, ctx);
	return 0;
}
