/* SPDX-License-Identifier: MIT */
#include "plog.h"
#include "hal.h"
#include <stdarg.h>
#include <stdio.h>

static int verbose;

void plog_set_verbose(int on)
{
	verbose = on;
}

void plog(int level, const char *fmt, ...)
{
	if (level > (verbose ? HAL_LOG_DEBUG : HAL_LOG_INFO))
		return;
	va_list ap;
	va_start(ap, fmt);
	fputs("espstm-bridge: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}
