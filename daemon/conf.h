/* SPDX-License-Identifier: MIT */
/*
 * conf: espstmd's configuration file (INI, read with iniparser), one section per device:
 *
 *   [ttySTM0]
 *   host = 192.168.4.1        ; required: bridge name or address
 *   port = 2217               ; TCP port, default 2217
 *   protocol = rfc2217        ; only rfc2217 for now
 *   baud = 115200             ; initial termios speed of the device
 *   reconnect_min_ms = 200    ; first reconnect delay
 *   reconnect_max_ms = 5000   ; backoff cap
 *   connect_timeout_ms = 3000 ; per connection attempt
 *
 * Parsed into plain structs (no iniparser types leak out).
 */
#ifndef ESPSTM_CONF_H
#define ESPSTM_CONF_H

#include <stdint.h>
#include <stdio.h>

#define CONF_NAME_MAX        32  /* device name length, bytes */
#define CONF_HOST_MAX        255 /* host length, bytes */
#define CONF_DEFAULT_PORT    2217
#define CONF_DEFAULT_BAUD    115200
#define CONF_DEFAULT_RMIN_MS 200
#define CONF_DEFAULT_RMAX_MS 5000
#define CONF_DEFAULT_CTO_MS  3000
#define CONF_DEFAULT_PATH    "/etc/espstm/espstm.conf"

enum conf_protocol {
	CONF_PROTO_RFC2217 = 0, /* RFC 2217 (Telnet COM-PORT-OPTION) */
};

struct conf_device {
	char name[CONF_NAME_MAX + 1]; /* /dev/<name>, [A-Za-z0-9_-]+ */
	char host[CONF_HOST_MAX + 1];
	uint16_t port;
	enum conf_protocol protocol;
	uint32_t baud;               /* bit/s */
	uint32_t reconnect_min_ms;   /* ms */
	uint32_t reconnect_max_ms;   /* ms */
	uint32_t connect_timeout_ms; /* ms */
};

struct conf {
	struct conf_device *devs; /* array of ndevs, owned (conf_free) */
	size_t ndevs;
};

/* Fill d with the defaults above, name copied (truncated to CONF_NAME_MAX), host empty. */
void conf_device_defaults(struct conf_device *d, const char *name);

/* 1 if name is a valid device name ([A-Za-z0-9_-]+, 1..CONF_NAME_MAX bytes), else 0. */
int conf_valid_name(const char *name);

/*
 * Load and validate path. Every problem is written to err (if not NULL) as one line
 * "PATH: [section] key: problem" (or "PATH: problem" for file-level ones); all problems are
 * listed before failing. Takes: path, out (filled on success; conf_free it), err.
 * Returns 0, -EINVAL if the file has problems (listed), or the negative errno of opening
 * or reading the file (also reported on err).
 */
int conf_load(const char *path, struct conf *out, FILE *err);

/* Free what conf_load allocated (safe on a zeroed struct). */
void conf_free(struct conf *c);

/*
 * Parse "HOST:PORT", "[IPV6]:PORT", "HOST" or "[IPV6]" (port defaults to 2217) as given to
 * --connect. Takes: s, host/cap (output buffer, bytes), port out. Returns 0, or -EINVAL
 * (empty host, bad or out-of-range port, unbracketed IPv6, host too long for cap).
 */
int conf_parse_hostport(const char *s, char *host, size_t cap, uint16_t *port);

/* Parse a whole unsigned decimal number in [min, max]. Returns 0 or -EINVAL (empty, sign,
 * trailing characters) or -ERANGE. */
int conf_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

#endif
