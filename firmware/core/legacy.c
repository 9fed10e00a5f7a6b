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
			snprintf(line, sizeof(line), "legacy: control byte '%c' ignored (r, u, e)", c);
		else
			snprintf(line, sizeof(line), "legacy: control byte 0x%02x ignored (r, u, e)",
			         (unsigned)c);
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
		snprintf(line, sizeof(line), "OK run %u 8N1", (unsigned)br->set.uart.baud); /* the settings' baud */
		return answer(ans, ansz, line);
	}
}
