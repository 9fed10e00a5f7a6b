/* SPDX-License-Identifier: MIT */
/* log: leveled stderr logger (see log.h). */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static enum log_level cur_level = LOG_LEVEL_INFO;
static const char *cur_ident = "espstmd";
static int journal = -1; /* -1 unknown, 0 plain stderr, 1 journal stream */

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_set_ident(const char *ident)
{
	cur_ident = ident ? ident : "espstmd";
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const char *const tag[] = {"error: ", "warning: ", "", "debug: "};
	static const int prio[] = {3, 4, 6, 7}; /* sd-daemon(3) LOG_ERR .. LOG_DEBUG */
	char line[1024];
	va_list ap;
	int n;

	if (lvl > cur_level)
		return;
	if (journal < 0)
		journal = getenv("JOURNAL_STREAM") != NULL;
	if ((unsigned)lvl > LOG_LEVEL_DEBUG)
		lvl = LOG_LEVEL_DEBUG;
	if (journal)
		n = snprintf(line, sizeof line, "<%d>%s: %s", prio[lvl], cur_ident, tag[lvl]);
	else
		n = snprintf(line, sizeof line, "%s: %s", cur_ident, tag[lvl]);
	if (n < 0 || (size_t)n >= sizeof line)
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so concurrent processes do not interleave mid-line. */
	size_t len = strlen(line);
	if (len < sizeof line - 1) {
		line[len++] = '\n';
		line[len] = '\0';
	} else {
		line[sizeof line - 2] = '\n';
	}
	fputs(line, stderr);
	fflush(stderr);
}
