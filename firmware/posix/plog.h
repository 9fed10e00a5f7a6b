/* SPDX-License-Identifier: MIT */
/* espstm-bridge's log: one line per call on stderr, prefixed "espstm-bridge: ". */
#ifndef ESPSTM_PLOG_H
#define ESPSTM_PLOG_H

/*
 * Log one line. level: HAL_LOG_ERROR..HAL_LOG_DEBUG (hal.h); HAL_LOG_DEBUG lines appear only
 * with --verbose. fmt: printf(3) format, no trailing newline. Never fails.
 */
void plog(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Show HAL_LOG_DEBUG lines too (--verbose). */
void plog_set_verbose(int on);

#endif
