/* SPDX-License-Identifier: MIT */
/*
 * Persistent settings model of the firmware (portable C11, no OS calls, no heap).
 *
 * One struct settings holds what a user may change from the web page / HTTP API and what
 * survives a restart: per target the user baud (the framing at start and after each RFC 2217
 * client), the pins (TX, RX, NRST, BOOT0: GPIO numbers; on espstm-bridge they are nominal),
 * auto_boot, line_map, settle time and the RFC 2217 TCP port, plus the legacy ports switch.
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
		char msg[64];
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
 * (posix: nominal 1,3,4,5 and 9,10,11,12), legacy ports off. */
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

/* Names of the enum values used in JSON ("direct"... / "sync"...). */
const char *settings_line_map_name(unsigned v);
const char *settings_auto_boot_name(unsigned v);

#define SETTINGS_JSON_MAX 768
#endif
