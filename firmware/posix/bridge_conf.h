/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge --config FILE: the INI file that describes one bridge and its target for a
 * service (systemd/espstm-bridge.service). Each key stands for one command-line option;
 * bridge_conf_load() checks the file's shape (sections, known keys, one [target], boolean
 * values) and hands every key to the caller as the option it stands for, so that the values
 * go through exactly the checks the command line gets.
 */
#ifndef ESPSTM_BRIDGE_CONF_H
#define ESPSTM_BRIDGE_CONF_H

#include <stdio.h>

/* Longest line bridge_conf_load() reads (bytes, with the newline). */
#define BRIDGE_CONF_LINE_MAX 1024
/* Most keys one file may hold. */
#define BRIDGE_CONF_KEYS_MAX 64

/* Called once per key, in file order. option: the long option's name without "--"
 * ("settle-ms"); value: its argument (valid only during the call), or NULL for a flag set
 * to yes (a flag set to no is not passed on). Returns 0 when accepted, non-zero when the
 * value is bad (the callback has printed why). */
typedef int (*bridge_conf_apply_fn)(void *ctx, const char *option, const char *value);

/* Reads the INI file path: a [bridge] section (listen, http, password_file, key_file,
 * settings, verify_key, plaintext, idle_timeout, allow) and at most one [target] section
 * (target, nrst, boot0, invert_nrst, invert_boot0, auto_boot, line_map, settle_ms); keys
 * and section names are case-insensitive, ';' and '#' start comments (iniparser 4.1 syntax).
 * Every problem is printed to err (may be NULL) as "PATH:LINE: [section] key: what"; all
 * problems of the file are reported, and apply is called only when the file's shape is
 * good. Returns 0; -EINVAL (bad file or a value apply refused); -ENOMEM; or the negative
 * errno of opening or reading the file. */
int bridge_conf_load(const char *path, bridge_conf_apply_fn apply, void *ctx, FILE *err);

#endif
