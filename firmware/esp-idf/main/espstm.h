/* SPDX-License-Identifier: MIT */
/*
 * espstm firmware for ESP32 (ESP-IDF v5.x) and ESP8266 (ESP8266_RTOS_SDK v3.4): shared
 * declarations of the application (settings, targets, WiFi, mDNS).
 */
#ifndef ESPSTM_ESP_H
#define ESPSTM_ESP_H

#include "bridge.h"
#include "sdkconfig.h"

#include <stddef.h>
#include <stdint.h>

#if CONFIG_IDF_TARGET_ESP8266 || CONFIG_IDF_TARGET_ESP32C3
#define ESPSTM_MAX_TARGETS 1 /* one UART free for a target */
#else
#define ESPSTM_MAX_TARGETS 2
#endif

#define ESPSTM_NAME_LEN 32   /* hostname, SSID: up to 32 characters */
#define ESPSTM_PASS_LEN 64   /* WPA2 passphrase: 8..63 characters (64 = hex PSK) */

/* Per-target settings (saved in NVS). */
struct espstm_target_settings {
	uint16_t port;       /* RFC 2217 TCP port */
	uint8_t line_map;    /* enum bridge_line_map */
	uint8_t auto_boot;   /* enum bridge_auto_boot */
	uint32_t settle_ms;  /* UART TX hold after NRST release */
	uint32_t reset_ms;   /* NRST pulse of an automatic reset */
	uint32_t esptool_hold_ms;
	struct hal_uart_cfg uart; /* framing at start and after each client (RFC 2217 codes) */
};

/*
 * Every persistent setting. Other code (the HTTP API, later) reads settings_get() and changes
 * settings with settings_set(); a change takes effect at the next restart. Runtime changes
 * made by an RFC 2217 client (baud, framing, lines) live only in the bridge session and are
 * never written here.
 */
struct espstm_settings {
	uint32_t version; /* ESPSTM_SETTINGS_VERSION */
	char hostname[ESPSTM_NAME_LEN + 1]; /* "" = espstm-XXXXXX (last three MAC bytes) */
	char ap_pass[ESPSTM_PASS_LEN + 1];  /* first-boot AP passphrase (Kconfig or generated) */
	char sta_ssid[ESPSTM_NAME_LEN + 1]; /* "" = no station: AP only */
	char sta_pass[ESPSTM_PASS_LEN + 1];
	uint8_t sta_static; /* 0 DHCP, 1 static address below */
	uint32_t sta_ip, sta_netmask, sta_gw, sta_dns; /* IPv4, network byte order (lwIP order) */
	uint32_t sta_timeout_s; /* station must get an address within this time, else AP too */
	uint32_t target_count;  /* 1..ESPSTM_MAX_TARGETS */
	struct espstm_target_settings target[ESPSTM_MAX_TARGETS];
};
#define ESPSTM_SETTINGS_VERSION 1u

/* settings.c */
/* Load the settings from NVS (after nvs_flash_init), filling missing ones from Kconfig and
 * generating the AP passphrase on first boot (then saved). Returns 0 or -1 (defaults used). */
int settings_init(void);
/* The settings in force (valid after settings_init; the same object for the whole run). */
const struct espstm_settings *settings_get(void);
/* Validate and store new settings: written to NVS only when they differ from the stored
 * copy. Returns 0, -EINVAL (invalid: nothing changed) or -EIO (NVS write failed). The
 * running bridges keep their configuration until the next restart. */
int settings_set(const struct espstm_settings *s);
/* The AP passphrase; generated (esp_random, radio running) and saved on first boot. */
const char *settings_ap_pass(void);
/* Parse / print dotted IPv4 in network byte order. */
int settings_parse_ip(const char *text, uint32_t *out);
void settings_format_ip(uint32_t ip, char *buf, size_t len);
/* The device name espstm-XXXXXX (last three bytes of the station MAC, lower case hex). */
const char *espstm_default_name(void);

/* hal_esp.c: one target = one UART + BOOT0 + NRST + one bridge session. */
struct espstm_target;
/* Configure the target's UART and pins and initialise its bridge. 0 or -1. */
int target_init(unsigned index, const struct espstm_target_settings *ts);
#if CONFIG_IDF_TARGET_ESP8266
/* ESP8266: write banner on UART0's usual pins (USB), then swap UART0 to GPIO13/GPIO15. */
int target_uart0_swap(const char *banner);
#endif
/* rfc2217_task.c: start the RFC 2217 server task of an initialised target. 0 or -1. */
int rfc2217_start(unsigned index);

/* wifi.c: start WiFi (station if configured, AP otherwise or as a fallback). */
void wifi_start(const struct espstm_settings *s);
/* mdns.c: announce <hostname>.local and one _rfc2217._tcp service per target. */
void espstm_mdns_start(const struct espstm_settings *s);
/* The hostname in use (settings or default name). */
const char *espstm_hostname(void);

#endif
