/* SPDX-License-Identifier: MIT */
/*
 * Persistent settings in NVS (namespace "espstm", one blob "cfg"). Defaults come from
 * Kconfig (menuconfig "espstm"). The blob is written only when its content changes, so flash
 * is not worn by repeated saves; runtime changes from RFC 2217 clients never come here.
 */
#include "espstm.h"

#include "esp_log.h"
#include "esp_system.h"
#include "nvs.h"
#include "nvs_flash.h"
#if !CONFIG_IDF_TARGET_ESP8266
#include "esp_mac.h"
#include "esp_random.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

#if CONFIG_IDF_TARGET_ESP8266
typedef nvs_handle espstm_nvs_t; /* ESP8266_RTOS_SDK v3.4 name */
#else
typedef nvs_handle_t espstm_nvs_t;
#endif

static const char *TAG = "espstm";
static const char NVS_NS[] = "espstm";
static const char NVS_KEY[] = "cfg";

static struct espstm_settings cur;
static char default_name[16];

const struct espstm_settings *settings_get(void)
{
	return &cur;
}

const char *espstm_default_name(void)
{
	if (!default_name[0]) {
		uint8_t mac[6] = {0};
		esp_read_mac(mac, ESP_MAC_WIFI_STA);
		snprintf(default_name, sizeof(default_name), "espstm-%02x%02x%02x", mac[3], mac[4],
		         mac[5]);
	}
	return default_name;
}

const char *espstm_hostname(void)
{
	return cur.hostname[0] ? cur.hostname : espstm_default_name();
}

int settings_parse_ip(const char *t, uint32_t *out)
{
	uint8_t b[4];
	for (int i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;
		while (*t >= '0' && *t <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*t++ - '0');
			digits++;
		}
		if (digits == 0 || digits > 3 || v > 255)
			return -EINVAL;
		b[i] = (uint8_t)v;
		if (i < 3 && *t++ != '.')
			return -EINVAL;
	}
	if (*t)
		return -EINVAL;
	/* network byte order in memory: first octet at the lowest address */
	memcpy(out, b, 4);
	return 0;
}

void settings_format_ip(uint32_t ip, char *buf, size_t len)
{
	uint8_t b[4];
	memcpy(b, &ip, 4);
	snprintf(buf, len, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]);
}

static void copy_str(char *dst, size_t size, const char *src)
{
	strncpy(dst, src, size - 1);
	dst[size - 1] = '\0';
}

static void defaults(struct espstm_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->version = ESPSTM_SETTINGS_VERSION;
	copy_str(s->hostname, sizeof(s->hostname), CONFIG_ESPSTM_HOSTNAME);
	copy_str(s->ap_pass, sizeof(s->ap_pass), CONFIG_ESPSTM_AP_PASSWORD);
	copy_str(s->sta_ssid, sizeof(s->sta_ssid), CONFIG_ESPSTM_STA_SSID);
	copy_str(s->sta_pass, sizeof(s->sta_pass), CONFIG_ESPSTM_STA_PASSWORD);
#if CONFIG_ESPSTM_STA_STATIC
	s->sta_static = 1;
	if (settings_parse_ip(CONFIG_ESPSTM_STA_IP, &s->sta_ip) < 0 ||
	    settings_parse_ip(CONFIG_ESPSTM_STA_NETMASK, &s->sta_netmask) < 0 ||
	    settings_parse_ip(CONFIG_ESPSTM_STA_GATEWAY, &s->sta_gw) < 0 ||
	    settings_parse_ip(CONFIG_ESPSTM_STA_DNS, &s->sta_dns) < 0) {
		ESP_LOGE(TAG, "settings: bad static IPv4 in Kconfig, using DHCP");
		s->sta_static = 0;
	}
#endif
	s->sta_timeout_s = CONFIG_ESPSTM_STA_TIMEOUT_S;
	s->target_count = CONFIG_ESPSTM_TARGET_COUNT;
	if (s->target_count < 1 || s->target_count > ESPSTM_MAX_TARGETS)
		s->target_count = 1;

	struct bridge_settings b;
	bridge_settings_default(&b);
	enum bridge_line_map map = b.line_map;
	enum bridge_auto_boot ab = b.auto_boot;
	if (bridge_parse_line_map(CONFIG_ESPSTM_LINE_MAP, &map) < 0)
		ESP_LOGE(TAG, "settings: line map '%s' unknown, using direct", CONFIG_ESPSTM_LINE_MAP);
	if (bridge_parse_auto_boot(CONFIG_ESPSTM_AUTO_BOOT, &ab) < 0)
		ESP_LOGE(TAG, "settings: auto_boot '%s' unknown, using sync", CONFIG_ESPSTM_AUTO_BOOT);
	static const uint16_t ports[2] = {CONFIG_ESPSTM_T0_PORT, CONFIG_ESPSTM_T1_PORT};
	for (unsigned i = 0; i < ESPSTM_MAX_TARGETS; i++) {
		struct espstm_target_settings *t = &s->target[i];
		t->port = ports[i];
		t->line_map = (uint8_t)map;
		t->auto_boot = (uint8_t)ab;
		t->settle_ms = CONFIG_ESPSTM_SETTLE_MS;
		t->reset_ms = b.reset_ms;
		t->esptool_hold_ms = b.esptool_hold_ms;
		t->uart = b.uart;
		t->uart.baud = CONFIG_ESPSTM_BAUD;
	}
}

static int valid(const struct espstm_settings *s)
{
	if (s->version != ESPSTM_SETTINGS_VERSION)
		return 0;
	if (memchr(s->hostname, 0, sizeof(s->hostname)) == NULL ||
	    memchr(s->ap_pass, 0, sizeof(s->ap_pass)) == NULL ||
	    memchr(s->sta_ssid, 0, sizeof(s->sta_ssid)) == NULL ||
	    memchr(s->sta_pass, 0, sizeof(s->sta_pass)) == NULL)
		return 0;
	size_t ap = strlen(s->ap_pass);
	if (ap != 0 && (ap < 8 || ap > 63))
		return 0;
	if (s->target_count < 1 || s->target_count > ESPSTM_MAX_TARGETS)
		return 0;
	for (unsigned i = 0; i < s->target_count; i++) {
		const struct espstm_target_settings *t = &s->target[i];
		if (t->port == 0 || t->line_map > BRIDGE_MAP_NONE || t->auto_boot > BRIDGE_AUTO_OFF ||
		    t->uart.baud == 0 || t->uart.data_bits < 5 || t->uart.data_bits > 8 ||
		    t->uart.parity < 1 || t->uart.parity > 5 || t->uart.stop < 1 || t->uart.stop > 3)
			return 0;
		for (unsigned j = 0; j < i; j++)
			if (s->target[j].port == t->port)
				return 0;
	}
	return 1;
}

/* Write s unless NVS already holds exactly these bytes. */
static int store(const struct espstm_settings *s)
{
	espstm_nvs_t h;
	esp_err_t e = nvs_open(NVS_NS, NVS_READWRITE, &h);
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "settings: nvs_open: %s", esp_err_to_name(e));
		return -EIO;
	}
	static struct espstm_settings old; /* static: keeps the task stack small */
	size_t len = sizeof(old);
	e = nvs_get_blob(h, NVS_KEY, &old, &len);
	if (e == ESP_OK && len == sizeof(old) && memcmp(&old, s, sizeof(old)) == 0) {
		nvs_close(h);
		return 0; /* unchanged: no flash write */
	}
	e = nvs_set_blob(h, NVS_KEY, s, sizeof(*s));
	if (e == ESP_OK)
		e = nvs_commit(h);
	nvs_close(h);
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "settings: saving: %s", esp_err_to_name(e));
		return -EIO;
	}
	ESP_LOGI(TAG, "settings saved");
	return 0;
}

int settings_init(void)
{
	esp_err_t e = nvs_flash_init();
	if (e == ESP_ERR_NVS_NO_FREE_PAGES
#ifdef ESP_ERR_NVS_NEW_VERSION_FOUND
	    || e == ESP_ERR_NVS_NEW_VERSION_FOUND
#endif
	) {
		ESP_LOGI(TAG, "settings: NVS partition reformatted (%s)", esp_err_to_name(e));
		nvs_flash_erase();
		e = nvs_flash_init();
	}
	defaults(&cur);
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "settings: nvs_flash_init: %s (defaults in use)", esp_err_to_name(e));
		return -1;
	}
	espstm_nvs_t h;
	static struct espstm_settings tmp;
	size_t len = sizeof(tmp);
	e = nvs_open(NVS_NS, NVS_READONLY, &h);
	if (e == ESP_OK) {
		e = nvs_get_blob(h, NVS_KEY, &tmp, &len);
		nvs_close(h);
	}
	if (e == ESP_OK && len == sizeof(tmp) && valid(&tmp)) {
		cur = tmp;
		return 0;
	}
	if (e == ESP_OK)
		ESP_LOGE(TAG, "settings: stored settings of another version or invalid: defaults");
	return 0; /* first boot: nothing stored yet; saved once the AP passphrase exists */
}

int settings_set(const struct espstm_settings *s)
{
	if (!valid(s))
		return -EINVAL;
	int r = store(s);
	if (r == 0)
		cur = *s;
	return r;
}

/* Called by wifi.c once the radio runs (esp_random is then a true RNG): make the first-boot
 * AP passphrase if neither Kconfig nor NVS gave one, and save it. */
const char *settings_ap_pass(void)
{
	if (cur.ap_pass[0] == '\0') {
		/* no 0/O/1/l/I: read off a serial console by a person */
		static const char abc[] = "23456789abcdefghijkmnpqrstuvwxyz";
		char p[13];
		for (size_t i = 0; i < sizeof(p) - 1; i++)
			p[i] = abc[esp_random() % (sizeof(abc) - 1)];
		p[sizeof(p) - 1] = '\0';
		struct espstm_settings n = cur;
		copy_str(n.ap_pass, sizeof(n.ap_pass), p);
		if (settings_set(&n) < 0) {
			ESP_LOGE(TAG, "settings: AP passphrase not saved: it changes at each boot");
			cur = n;
		}
	} else {
		store(&cur); /* first boot with a Kconfig passphrase: save the settings once */
	}
	return cur.ap_pass;
}
