/* SPDX-License-Identifier: MIT */
/*
 * log: a small leveled logger for espstmd, writing one line per message to stderr. Not
 * thread-safe beyond what stdio gives (espstmd runs one loop thread).
 */
#ifndef ESPSTM_LOG_H
#define ESPSTM_LOG_H

enum log_level {
	LOG_LEVEL_ERROR = 0,
	LOG_LEVEL_WARN = 1,
	LOG_LEVEL_INFO = 2,
	LOG_LEVEL_DEBUG = 3,
};

/* Set the most verbose level printed (default LOG_LEVEL_INFO). */
void log_set_level(enum log_level lvl);
/* Current level. */
enum log_level log_get_level(void);
/* Set the program name printed first on each line (default "espstmd"); the string must
 * stay valid. */
void log_set_ident(const char *ident);
/* Print one line at level lvl (printf format; a trailing newline is added), like
 * "espstmd: warning: ttySTM0: connection lost". Under systemd (stderr is the journal,
 * $JOURNAL_STREAM set) the line is prefixed with the sd-daemon(3) priority ("<4>") so
 * journalctl shows the right level. Lines above the current level are dropped. Never fails
 * (stderr errors are ignored). */
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
