/* SPDX-License-Identifier: MIT */
/*
 * Persistent settings model of the firmware (portable C11, no OS calls, no heap).
 *
 * One struct settings holds what a user may change from the web page / HTTP API and what
 * survives a restart: per target the user baud (the framing at start and after each RFC 2217
 * client), the pins (TX, RX, NRST, BOOT0: GPIO numbers; on espstm-bridge they are nominal),
 * auto_boot, line_map, settle time and the RFC 2217 TCP port, plus the legacy ports switch and
 * the client allow-list of the RFC 2217 and legacy ports ("allow", firmware/core/allowlist.h).
 * Runtime changes made by an RFC 2217 client (SET-BAUDRATE...) never come here.
 *
 * Storage: the settings are serialised as JSON (the same text GET /api/settings returns) and
 * written through a storage callback ONLY when the text differs from the stored one, so
 * repeated saves do not wear flash. ESP: NVS blob; espstm-bridge: a file.
 *
 * Validation reports a clear message per field ("targets[0].baud": "must be 300..4000000").
 * The ESP-local struct espstm_settings (firmware/esp-idf/main/espstm.h) is meant to migrate to
 * this model (WiFi fields stay ESP-specific).
 */
#ifndef ESPSTM_SETTINGS_H
#define ESPSTM_SETTINGS_H

#include <stddef.h>
#include <stdint.h>

#define SETTINGS_MAX_TARGETS   2
#define SETTINGS_VERSION       1u
#define SETTINGS_MAX_ERRORS    8
#define SETTINGS_PIN_NONE      (-1)   /* pin not used (RX/TX only: never NRST/BOOT0) */
#define SETTINGS_SETTLE_MS_MAX 10000u /* settle_ms 0..this (also espstm-bridge --settle-ms) */
/* allow: ALLOWLIST_MAX (8) entries of "255.255.255.255/32" (18) and 7 commas = 151 chars */
#define SETTINGS_ALLOW_MAX 160 /* bytes of struct settings.allow, with the NUL */
/* idle_timeout_s: 0 (none) .. this many seconds (a day); default 600 */
#define SETTINGS_IDLE_MAX_S     86400u
#define SETTINGS_IDLE_DEFAULT_S 600u

struct settings_pins {
	int16_t tx, rx, nrst, boot0;
};

struct settings_target {
	uint16_t port;      /* RFC 2217 TCP port, 1..65535, distinct per target */
	uint32_t baud;      /* user baud (8N1 framing at start and after each client) */
	uint8_t line_map;   /* enum bridge_line_map */
	uint8_t auto_boot;  /* enum bridge_auto_boot */
	uint32_t settle_ms; /* 0..SETTINGS_SETTLE_MS_MAX */
	struct settings_pins pins;
};

struct settings {
	uint32_t version;      /* SETTINGS_VERSION */
	uint32_t target_count; /* 1..SETTINGS_MAX_TARGETS, fixed by the platform */
	uint8_t legacy_ports;  /* 1: legacy raw/control ports 1234/1235 enabled */
	struct settings_target target[SETTINGS_MAX_TARGETS];
	/* Clients allowed on the RFC 2217 and legacy ports (every target): the text of an
	 * allow-list as allowlist_parse() takes it, "192.168.1.0/24,10.0.0.5" (IPv4 addresses
	 * or CIDR prefixes, comma-separated, no blanks, at most ALLOWLIST_MAX entries), kept as
	 * given; "" (the default) allows every client. NUL-terminated. */
	char allow[SETTINGS_ALLOW_MAX];
	/* A unit with a key (TLS-PSK on the RFC 2217 ports): 1 also serves plaintext RFC 2217
	 * clients and opens the legacy ports; 0 (the default) refuses them with one line. A
	 * unit without a key (espstm-bridge --no-key) is plaintext whatever this says. */
	uint8_t plaintext;
	/* An RFC 2217 client with no byte either way for this long (s) is closed; 0 = never.
	 * 0..SETTINGS_IDLE_MAX_S, default SETTINGS_IDLE_DEFAULT_S. */
	uint32_t idle_timeout_s;
};

/* What the platform allows (pin checks). */
struct settings_caps {
	uint32_t target_count;   /* targets this platform has */
	int16_t pin_max;         /* GPIO numbers 0..pin_max are valid */
	uint64_t pin_reserved;   /* bit n set: GPIO n may not be used (flash, strapping...) */
	uint64_t pin_input_only; /* bit n set: GPIO n cannot drive (not for TX/NRST/BOOT0) */
	uint32_t baud_min, baud_max;
};

struct settings_error {
	unsigned count;
	struct {
		char field[32];
		char msg[112]; /* fits allowlist_parse()'s longest message */
	} e[SETTINGS_MAX_ERRORS];
};

/* Storage HAL: load returns the stored text length (0..cap-1, NUL-terminated) or negative if
 * nothing is stored; save returns 0 or a negative errno. */
struct settings_store {
	int (*load)(void *ctx, char *buf, size_t cap);
	int (*save)(void *ctx, const char *text, size_t len);
	void *ctx;
};

/* Defaults: target i on port 2217+i, 115200 baud, direct, sync, settle 50 ms, pins from caps
 * (posix: nominal 1,3,4,5 and 9,10,11,12), legacy ports off, allow "" (every client),
 * plaintext off, idle_timeout_s 600. */
void settings_default(struct settings *s, const struct settings_caps *caps);
/* Posix/tests: a permissive caps (GPIO 0..39, nothing reserved, 1 target). */
void settings_caps_nominal(struct settings_caps *caps, uint32_t targets);

/* Validate every field; fill err (may be NULL). Returns 0 if valid, -EINVAL otherwise. */
int settings_validate(const struct settings *s, const struct settings_caps *caps,
                      struct settings_error *err);

/* Serialise as JSON into buf (cap bytes). Returns the length, or -ENOSPC. */
int settings_to_json(const struct settings *s, char *buf, size_t cap);
/*
 * Apply a (possibly partial) JSON object onto *s: keys absent keep their value; unknown keys
 * and wrong types are errors (reported per field in err). The result is validated. Returns 0,
 * or -EINVAL with *s unchanged.
 */
int settings_from_json(struct settings *s, const struct settings_caps *caps, const char *json,
                       size_t len, struct settings_error *err);

/* The settings manager: current settings + storage. */
struct settings_mgr {
	struct settings cur;
	struct settings_caps caps;
	struct settings_store store;
	uint32_t saves; /* storage writes done (tests: "saved only when changed") */
	char text[768]; /* last stored text */
	size_t text_len;
};

/* Load stored settings (invalid/missing: defaults, reported in err). Returns 0 if stored
 * settings were used, 1 if defaults, negative on a storage read error. */
int settings_mgr_init(struct settings_mgr *m, const struct settings_caps *caps,
                      const struct settings_store *store, struct settings_error *err);
/* Validate and make s current; stored only if its text differs from the stored text.
 * Returns 1 saved, 0 unchanged (no write), -EINVAL invalid (err filled), -EIO store failed. */
int settings_mgr_set(struct settings_mgr *m, const struct settings *s, struct settings_error *err);

/*
 * Parse the allow text of s (struct settings.allow) into *al: "" gives the empty list (every
 * client allowed). Returns 0, or -EINVAL with *al unchanged and the reason in err (errcap
 * bytes), as allowlist_parse() (firmware/core/allowlist.h).
 */
struct allowlist;
int settings_allowlist(const struct settings *s, struct allowlist *al, char *err, size_t errcap);

/*
 * Observer of the current settings, for platform state that no HTTP apply hook reaches
 * (the client allow-list of the RFC 2217 and legacy ports). One per process: fn(ctx, cur) is
 * called, in the caller's thread/task, at the end of settings_mgr_init() (stored or default
 * settings) and after each settings_mgr_set() that made new settings current (saved,
 * unchanged or store failed; not when invalid). NULL fn removes it. Not thread-safe itself:
 * set it before the tasks that change settings run.
 */
typedef void (*settings_observer_fn)(void *ctx, const struct settings *cur);
void settings_set_observer(settings_observer_fn fn, void *ctx);

/* Names of the enum values used in JSON ("direct"... / "sync"...): bridge_line_map_name()
 * and bridge_auto_boot_name() (bridge.h); "?" out of range. */
const char *settings_line_map_name(unsigned v);
const char *settings_auto_boot_name(unsigned v);

#define SETTINGS_JSON_MAX 768
#endif
