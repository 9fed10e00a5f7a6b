/* SPDX-License-Identifier: MIT */
/*
 * espstm firmware for ESP32 (ESP-IDF v5.x) and ESP8266 (ESP8266_RTOS_SDK v3.4): shared
 * declarations of the application (settings, targets, WiFi, mDNS, HTTP, legacy ports).
 */
#ifndef ESPSTM_ESP_H
#define ESPSTM_ESP_H

#include "bridge.h"
#include "settings.h"
#include "sdkconfig.h"

#include <stddef.h>
#include <stdint.h>

#if CONFIG_IDF_TARGET_ESP8266 || CONFIG_IDF_TARGET_ESP32C3
#define ESPSTM_MAX_TARGETS 1 /* one UART free for a target */
#else
#define ESPSTM_MAX_TARGETS 2
#endif

#define ESPSTM_NAME_LEN 32 /* hostname, SSID: up to 32 characters */
#define ESPSTM_PASS_LEN 64 /* WPA2 passphrase: 8..63 characters (64 = hex PSK) */

/*
 * Settings. The target settings (port, user baud, pins, auto_boot, line_map, settle time) and
 * the legacy ports switch are the portable core's model (firmware/core/settings.h): one NVS
 * blob "core" holds its JSON text, written only when the text changes (settings_mgr_set).
 * The WiFi settings below stay ESP-specific (NVS blob "cfg"). Kconfig gives the first-boot
 * defaults of both. Runtime changes made by an RFC 2217 client (baud, framing, lines) live
 * only in the bridge session and are never written to NVS.
 */
struct espstm_settings {
	uint32_t version;                   /* ESPSTM_SETTINGS_VERSION */
	char hostname[ESPSTM_NAME_LEN + 1]; /* "" = espstm-XXXXXX (last three MAC bytes) */
	char ap_pass[ESPSTM_PASS_LEN + 1];  /* first-boot AP passphrase (Kconfig or generated) */
	char sta_ssid[ESPSTM_NAME_LEN + 1]; /* "" = no station: AP only */
	char sta_pass[ESPSTM_PASS_LEN + 1];
	uint8_t sta_static;                            /* 0 DHCP, 1 static address below */
	uint32_t sta_ip, sta_netmask, sta_gw, sta_dns; /* IPv4, network byte order (lwIP order) */
	uint32_t sta_timeout_s; /* station must get an address within this time, else AP too */
};
#define ESPSTM_SETTINGS_VERSION 2u /* 2: target settings moved to the core model */

/* settings.c */
/* Load the settings from NVS (after nvs_flash_init), filling missing ones from Kconfig.
 * Returns 0 or -1 (defaults used). */
int settings_init(void);
/* The WiFi settings in force (valid after settings_init; the same object for the run). */
const struct espstm_settings *settings_get(void);
/* The core settings manager (targets, legacy ports): http_server.c changes settings through
 * settings_mgr_set(), which stores them only when their JSON text changes. Its cur member
 * is what the running firmware was started with until the HTTP API changes it. */
struct settings_mgr *settings_core(void);
/* Validate and store new WiFi settings: written to NVS only when they differ from the
 * stored copy. Returns 0, -EINVAL or -EIO. Takes effect at the next restart. */
int settings_set(const struct espstm_settings *s);
/* The AP passphrase; generated (esp_random, radio running) and saved on first boot. */
const char *settings_ap_pass(void);
/* The web password (HTTP Basic, user "admin"): NVS key "webpass"; on first boot taken from
 * Kconfig ESPSTM_WEB_PASSWORD or generated (esp_random, radio running), saved, and printed
 * once on the log. NULL if none could be made (the web server is then not started). */
const char *settings_web_pass(void);
/* Parse / print dotted IPv4 in network byte order. */
int settings_parse_ip(const char *text, uint32_t *out);
void settings_format_ip(uint32_t ip, char *buf, size_t len);
/* The device name espstm-XXXXXX (last three bytes of the station MAC, lower case hex). */
const char *espstm_default_name(void);

/* hal_esp.c: one target = one UART + BOOT0 + NRST + one bridge session. */
struct espstm_target;
/* Configure the target's UART and pins and initialise its bridge. 0 or -1. */
int target_init(unsigned index, const struct settings_target *ts);
#if CONFIG_IDF_TARGET_ESP8266
/* ESP8266: write banner on UART0's usual pins (USB), then swap UART0 to GPIO13/GPIO15. */
int target_uart0_swap(const char *banner);
#endif
/* rfc2217_task.c: start the RFC 2217 server task of an initialised target. 0 or -1. */
int rfc2217_start(unsigned index);
/* rfc2217_task.c: with legacy ports enabled, target 0's task also listens on the seed
 * firmware's raw port 1234 (plain bytes, shares the single client slot) and control port
 * 1235 (legacy_control_byte). Call before rfc2217_start(0). */
void rfc2217_enable_legacy(void);
/* rfc2217_task.c: 1 when plaintext clients are allowed on the RFC 2217 and legacy ports:
 * the setting "plaintext" is 1, or the unit has no key (NVS failed). Follows the settings. */
int rfc2217_plaintext_allowed(void);
/* The holder of target index's port, for /api/status. */
struct client_info {
	char peer[24]; /* "A.B.C.D:PORT" */
	int tls;       /* 1: TLS-PSK (handshake included) */
	uint32_t since_s, idle_s, bytes_in, bytes_out;
};
/* 1 and *ci filled when target index has a client, 0 when not, -1 no such target. Takes
 * the target's lock. */
int rfc2217_client_info(unsigned index, struct client_info *ci);
/* POST /api/targets/N/disconnect: drop target index's client (take-over). 0, -ENOTCONN (no
 * client) or -ENODEV. Takes the target's lock; the task closes it within a round. */
int rfc2217_disconnect(unsigned index);
/* Lock of a target's bridge session: taken by its task while it runs the bridge, and by
 * other tasks (HTTP API) around bridge calls. 0 or -1 (no such target). */
int target_lock(unsigned index);
void target_unlock(unsigned index);
struct bridge *target_bridge(unsigned index);
/* Locked mode (a verification key is installed, security.h) on every target's bridge
 * session: BOOT0 never raised by the client's lines, auto-boot off, bootloader entry
 * refused. Takes each target's lock. */
void target_set_locked(int on);
/* Flashing over HTTP (hal_esp.c). The target's AN3155 master (stm32_isp.h), NULL if none.
 * target_flash_claim: on = 1 suspends the bridge session and gives the UART and pins to the
 * ISP (the target's task then drives it), 0 gives them back (bridge_suspend re-applies the
 * session's framing and pins); also held while a staged upload is written to the stm32img
 * partition, before the ISP begins (http_server.c). Both with the target's lock held.
 * target_flash_wait: block the calling task until the target's task has polled the ISP
 * again, or ms elapsed. */
struct stm32_isp *target_isp(unsigned index);
void target_flash_claim(unsigned index, int on);
void target_flash_wait(unsigned index, uint32_t ms);

/* http_server.c: esp_http_server on port 80 serving the core's HTTP API and web page. */
int http_server_start(void);

/* wifi.c: start WiFi (station if configured, AP otherwise or as a fallback). */
void wifi_start(const struct espstm_settings *s);
/* wifi.c: hold (delta +1) or release (-1) the radio for low latency: called when an RFC 2217
 * or legacy client connects / leaves (client.c, rfc2217_task.c) and when a flash or its
 * staging claims / frees a target (hal_esp.c target_flash_claim). While any hold is taken
 * the station runs without power saving (WIFI_PS_NONE; Kconfig ESPSTM_WIFI_PS_WHILE_ACTIVE
 * "min_modem" keeps modem sleep), with none WIFI_PS_MIN_MODEM (esp_wifi_set_ps, ESP-IDF v5
 * and ESP8266_RTOS_SDK v3.4); the mode changes only when a station is configured. Any task,
 * after wifi_start(); before it, a no-op. */
void wifi_active_hold(int delta);
/* mdns.c: announce <hostname>.local and one _rfc2217._tcp service per target. */
void espstm_mdns_start(const struct settings *s);
/* The hostname in use (settings or default name). */
const char *espstm_hostname(void);

#endif
