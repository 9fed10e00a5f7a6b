/* SPDX-License-Identifier: MIT */
/*
 * cli_status: how the `espstm` tool shows espstmd's answers to people (plain C, no libuv).
 * The per-device keys are those of daemon/ctl.h.
 */
#ifndef ESPSTM_CLI_STATUS_H
#define ESPSTM_CLI_STATUS_H

#include "cli_json.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Longest device name accepted (CUSE DEVNAME is a file name under /dev). */
#define CLI_DEVNAME_MAX 64

/*
 * A device argument as users type it: "ttySTM0" or "/dev/ttySTM0". Returns the name
 * without the "/dev/" prefix (a pointer into arg), or NULL when what is left is empty,
 * longer than CLI_DEVNAME_MAX, or holds '/', whitespace or control characters.
 */
const char *cli_devname(const char *arg);

/*
 * Line settings in the usual short form: "115200 8N1", "9600 7E2", "57600 8N1.5"
 * (stop_bits 3 is RFC 2217's code for 1.5). Missing or null values print as "?".
 * Writes at most cap bytes (NUL included) to out; returns out.
 */
char *cli_fmt_line(char *out, size_t cap, const struct cj *dev);

/* A duration in milliseconds as "850ms", "42s", "5m07s", "3h02m", "2d04h". Returns out. */
char *cli_fmt_duration(char *out, size_t cap, uint64_t ms);

/*
 * Print a status answer ({"ok":true,"devices":[...]}, ctl.h) for people: one block per
 * device (name, then aligned rows: state, peer, rtt, line, flow, modem, bytes, dropped,
 * opens, connects/reconnects/errors, line errors, last error), blocks separated by a blank
 * line; "no devices" when the list is empty. Values the answer lacks print as "-".
 * Returns 0, or -EPROTO when the answer has no "devices" array (nothing printed).
 */
int cli_print_status(FILE *out, const struct cj *answer);

#endif
