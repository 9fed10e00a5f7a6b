/* SPDX-License-Identifier: MIT */
/*
 * conf: espstmd's configuration file (INI, read with iniparser; espstm.conf(5) documents
 * every key), one section per device plus an optional [global] section, parsed into plain
 * structs (no iniparser types leak out), and the diff a reload applies.
 */
#ifndef ESPSTM_CONF_H
#define ESPSTM_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_NAME_MAX            32  /* device name length, bytes */
#define CONF_HOST_MAX            255 /* host length, bytes */
#define CONF_PATH_MAX            107 /* control socket path, bytes (sockaddr_un sun_path - 1) */
#define CONF_KEY_PATH_MAX        255 /* key file path, bytes */
#define CONF_DEFAULT_PORT        2217
#define CONF_DEFAULT_LEGACY_PORT 1234 /* espstm-legacy data port (the seed firmware's) */
#define CONF_DEFAULT_BAUD        115200
#define CONF_DEFAULT_RMIN_MS     200
#define CONF_DEFAULT_RMAX_MS     5000
#define CONF_DEFAULT_CTO_MS      3000
#define CONF_DEFAULT_KEEPALIVE_S 10
#define CONF_KEEPALIVE_MAX_S     32767 /* Linux TCP_KEEPIDLE limit (MAX_TCP_KEEPIDLE) */
#define CONF_DEFAULT_HTTP_PORT   80
#define CONF_DEFAULT_PATH        "/etc/espstm/espstm.conf"
#define CONF_GLOBAL_SECTION      "global" /* reserved: not a device name */

enum conf_protocol {
	CONF_PROTO_RFC2217 = 0, /* RFC 2217 (Telnet COM-PORT-OPTION) on one port */
	CONF_PROTO_LEGACY = 1,  /* the seed firmware's raw port + command port ("espstm-legacy") */
};

struct conf_device {
	char name[CONF_NAME_MAX + 1]; /* /dev/<name>, [A-Za-z0-9_-]+ */
	char host[CONF_HOST_MAX + 1];
	uint16_t port; /* TCP port (data port for espstm-legacy) */
	enum conf_protocol protocol;
	uint16_t control_port;       /* espstm-legacy: command port (resolved: port + 1 when not
	                              * set); 0 for rfc2217 */
	uint32_t baud;               /* bit/s */
	uint32_t reconnect_min_ms;   /* ms */
	uint32_t reconnect_max_ms;   /* ms */
	uint32_t connect_timeout_ms; /* ms */
	uint32_t keepalive_s;        /* TCP keepalive idle time, s; 0 = off */
	uint16_t http_port;          /* the bridge's HTTP port (web page, API: espstm flash) */
	/* key = PATH: the unit key file (firmware/crypto/unit_key.h format); "" = none, the
	 * link is plaintext RFC 2217. With a key the link is TLS-PSK (RFC 4279), RFC 2217
	 * inside. */
	char key[CONF_KEY_PATH_MAX + 1];
	/* A digest (FNV-1a, 64 bits) of the key the file held at load, 0 when it could not be
	 * read (missing): only to tell a reload that the key changed. */
	uint64_t key_stamp;
};

struct conf {
	struct conf_device *devs; /* array of ndevs, owned (conf_free) */
	size_t ndevs;
	/* [global] control_socket: "" when the file does not set it, "none", or an absolute
	 * path of at most CONF_PATH_MAX bytes. */
	char control_socket[CONF_PATH_MAX + 1];
};

/* Fill d with the defaults above (rfc2217), name copied (truncated to CONF_NAME_MAX), host
 * empty. */
void conf_device_defaults(struct conf_device *d, const char *name);

/* 1 if name is a valid device name ([A-Za-z0-9_-]+, 1..CONF_NAME_MAX bytes, not the
 * reserved "global" in any case), else 0. */
int conf_valid_name(const char *name);

/* "rfc2217" or "espstm-legacy" (the configuration file's spelling; "?" if out of range). */
const char *conf_protocol_name(enum conf_protocol p);

/*
 * The file conf_load reads:
 *
 *   [global]
 *   control_socket = /run/espstm/espstmd.sock ; or "none"; --control overrides it
 *
 *   [ttySTM0]                 ; the device name: creates /dev/ttySTM0
 *   host = 192.168.4.1        ; required: bridge name or address (printable ASCII)
 *   protocol = rfc2217        ; rfc2217 (default) or espstm-legacy
 *   port = 2217               ; TCP port, default 2217 (espstm-legacy: 1234)
 *   control_port = 1235       ; espstm-legacy only: command port, default port + 1
 *   baud = 115200             ; initial termios speed of the device
 *   reconnect_min_ms = 200    ; first reconnect delay
 *   reconnect_max_ms = 5000   ; backoff cap (>= reconnect_min_ms)
 *   connect_timeout_ms = 3000 ; per connection attempt
 *   keepalive = 10            ; TCP keepalive idle time, s; 0 = off
 *   http_port = 80            ; the bridge's web page / HTTP API (espstm flash)
 *   key = /etc/espstm/keys/HOST.key ; unit key (espstm pair): TLS-PSK link; rfc2217 only
 *
 * A key file must be a regular file of mode 0600 or 0400 owned by root or the daemon's
 * user, and parse (unit_key_parse); else it is a problem "[dev] key: key file PATH: why".
 * A key file that does not exist yet is not a problem at load: the link reports it
 * ("key file PATH: No such file or directory") and retries, so pairing may come later.
 *
 * Load and validate path. Unknown keys are errors (with a "did you mean" hint when a known
 * key is close). Every problem is written to err (if not NULL) as one line
 * "PATH: [section] key: problem" (or "PATH: problem" / "PATH: line N: ..." for file-level
 * ones); all problems are listed before failing. Takes: path, out (filled on success;
 * conf_free it), err. Returns 0, -EINVAL if the file has problems (listed), or the negative
 * errno of opening or reading the file (also reported on err). out is left empty (zeroed)
 * on failure.
 */
int conf_load(const char *path, struct conf *out, FILE *err);

/* Free what conf_load allocated (safe on a zeroed struct). */
void conf_free(struct conf *c);

/*
 * Parse "HOST:PORT", "[IPV6]:PORT", "HOST" or "[IPV6]" (port defaults to 2217) as given to
 * --connect. Takes: s, host/cap (output buffer, bytes), port out. Returns 0, or -EINVAL
 * (empty host, bad or out-of-range port, unbracketed IPv6, host too long for cap, a host
 * with a control character, a space or a byte that is not ASCII).
 */
int conf_parse_hostport(const char *s, char *host, size_t cap, uint16_t *port);

/* Parse a whole unsigned decimal number in [min, max]. Returns 0 or -EINVAL (empty, sign,
 * trailing characters) or -ERANGE. */
int conf_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

/*
 * Reload diff (SIGHUP). Devices are matched by name (exact, case-sensitive: the name is
 * the device node's). For each device:
 *   CONF_ADDED      only in the new set: create it.
 *   CONF_REMOVED    only in the old set: remove it (its node goes away).
 *   CONF_CHANGED    in both, and a setting the running device was built with differs
 *                   (host, port, protocol, control_port, baud, reconnect_min_ms,
 *                   reconnect_max_ms, connect_timeout_ms, keepalive, the key file's
 *                   path): recreate it (its open users lose it, like a USB adapter
 *                   unplugged and plugged back).
 *   CONF_UPDATED    in both, only http_port or the key in the same file (key_stamp)
 *                   differ: take the new values in place (a new key is used from the next
 *                   connection on; the link retries at once if it is not up).
 *   CONF_UNCHANGED  identical: left alone, open users untouched.
 */
enum conf_change {
	CONF_UNCHANGED = 0,
	CONF_UPDATED,
	CONF_CHANGED,
	CONF_ADDED,
	CONF_REMOVED,
};

struct conf_diff_entry {
	enum conf_change change;
	const struct conf_device *old_dev; /* NULL for CONF_ADDED */
	const struct conf_device *new_dev; /* NULL for CONF_REMOVED */
};

/* Classify one device present in both sets (same name): CONF_UNCHANGED, CONF_UPDATED or
 * CONF_CHANGED as described above. */
enum conf_change conf_device_compare(const struct conf_device *old_dev,
                                     const struct conf_device *new_dev);

/*
 * Diff old (nold devices) against new (nnew devices), names unique within each set.
 * Takes: the two arrays (either may be NULL when its count is 0), out/nout. On success
 * *out is a malloc'd array (free() it) of *nout entries: first every CONF_REMOVED device in
 * old order, then one entry per new device in new order. The entries point into the two
 * arrays. Returns 0 or -ENOMEM.
 */
int conf_diff(const struct conf_device *olds, size_t nold, const struct conf_device *news,
              size_t nnew, struct conf_diff_entry **out, size_t *nout);

/* "unchanged", "updated", "changed", "added", "removed". */
const char *conf_change_name(enum conf_change c);

#endif
