/* SPDX-License-Identifier: MIT */
/*
 * Persistent settings in NVS (namespace "espstm"):
 *  - blob "core": the JSON text of the core settings model (firmware/core/settings.h: targets,
 *    legacy ports, allowed clients), loaded and saved through the model's storage callbacks;
 *    the model writes it only when the text changes (rfc2217_task.c follows the allowed
 *    clients through settings_set_observer);
 *  - blob "cfg": the ESP-only WiFi settings (struct espstm_settings), written only when its
 *    bytes change;
 *  - string "webpass": the web password (first boot: Kconfig or generated).
 * Defaults come from Kconfig (menuconfig "espstm"). Runtime changes from RFC 2217 clients
 * never come here.
 */
#include "espstm.h"
#include "http_api.h"

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
static const char NVS_KEY_CORE[] = "core";
static const char NVS_KEY_WEBPASS[] = "webpass";

static struct espstm_settings cur;
static struct settings_mgr core;
static char web_pass[HTTP_API_PASS_MAX + 1];
static char default_name[16];

const struct espstm_settings *settings_get(void)
{
	return &cur;
}

struct settings_mgr *settings_core(void)
{
	return &core;
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
}

/* ---- core settings: capabilities of this chip, Kconfig defaults, NVS storage ---- */

static void core_caps(struct settings_caps *c)
{
	memset(c, 0, sizeof(*c));
	c->target_count = CONFIG_ESPSTM_TARGET_COUNT;
	if (c->target_count < 1 || c->target_count > ESPSTM_MAX_TARGETS)
		c->target_count = 1;
	c->baud_min = 300;
#if CONFIG_IDF_TARGET_ESP8266
	c->pin_max = 16;
	c->pin_reserved = 0x0FC0ull; /* GPIO6..11: SPI flash */
	c->baud_max = 4000000;
#elif CONFIG_IDF_TARGET_ESP32C3
	c->pin_max = 21;
	c->pin_reserved = 0x3F000ull; /* GPIO12..17: SPI flash */
	c->baud_max = 5000000;
#elif CONFIG_IDF_TARGET_ESP32S3
	c->pin_max = 48;
	c->pin_reserved = 0x1FC000000ull; /* GPIO26..32: SPI flash / PSRAM */
	c->baud_max = 5000000;
#else /* ESP32 */
	c->pin_max = 39;
	c->pin_reserved = 0x0FC0ull | (1ull << 20) | (0xFull << 28); /* flash; no GPIO20, 28..31 */
	c->pin_input_only = 0xF000000000ull;                         /* GPIO34..39: inputs only */
	c->baud_max = 5000000;
#endif
}

/* The model's defaults replaced by Kconfig's (what the ESP had before the migration). */
static void core_kconfig_defaults(struct settings *s)
{
	enum bridge_line_map map = BRIDGE_MAP_DIRECT;
	enum bridge_auto_boot ab = BRIDGE_AUTO_SYNC;
	if (bridge_parse_line_map(CONFIG_ESPSTM_LINE_MAP, &map) < 0)
		ESP_LOGE(TAG, "settings: line map '%s' unknown, using direct",
		         CONFIG_ESPSTM_LINE_MAP);
	if (bridge_parse_auto_boot(CONFIG_ESPSTM_AUTO_BOOT, &ab) < 0)
		ESP_LOGE(TAG, "settings: auto_boot '%s' unknown, using sync",
		         CONFIG_ESPSTM_AUTO_BOOT);
	static const uint16_t ports[2] = {CONFIG_ESPSTM_T0_PORT, CONFIG_ESPSTM_T1_PORT};
	static const struct settings_pins pins[2] = {
#if CONFIG_IDF_TARGET_ESP8266
		{15, 13, CONFIG_ESPSTM_T0_NRST_GPIO,
		 CONFIG_ESPSTM_T0_BOOT0_GPIO}, /* UART0 swapped */
#else
		{CONFIG_ESPSTM_T0_TX_GPIO, CONFIG_ESPSTM_T0_RX_GPIO, CONFIG_ESPSTM_T0_NRST_GPIO,
		 CONFIG_ESPSTM_T0_BOOT0_GPIO},
#endif
#if ESPSTM_MAX_TARGETS > 1
		{CONFIG_ESPSTM_T1_TX_GPIO, CONFIG_ESPSTM_T1_RX_GPIO, CONFIG_ESPSTM_T1_NRST_GPIO,
		 CONFIG_ESPSTM_T1_BOOT0_GPIO},
#else
		{SETTINGS_PIN_NONE, SETTINGS_PIN_NONE, SETTINGS_PIN_NONE, SETTINGS_PIN_NONE},
#endif
	};
	for (unsigned i = 0; i < SETTINGS_MAX_TARGETS && i < 2; i++) {
		struct settings_target *t = &s->target[i];
		t->port = ports[i];
		t->baud = CONFIG_ESPSTM_BAUD;
		t->line_map = (uint8_t)map;
		t->auto_boot = (uint8_t)ab;
		t->settle_ms = CONFIG_ESPSTM_SETTLE_MS;
		t->pins = pins[i];
	}
	s->legacy_ports = 0;
#if CONFIG_ESPSTM_LEGACY_PORTS
	s->legacy_ports = 1;
#endif
	s->plaintext = 0;
#if CONFIG_ESPSTM_PLAINTEXT
	s->plaintext = 1;
#endif
	s->idle_timeout_s = CONFIG_ESPSTM_IDLE_TIMEOUT_S;
}

static int core_load(void *ctx, char *buf, size_t cap)
{
	(void)ctx;
	espstm_nvs_t h;
	esp_err_t e = nvs_open(NVS_NS, NVS_READONLY, &h);
	if (e == ESP_ERR_NVS_NOT_FOUND)
		return -ENOENT;
	if (e != ESP_OK)
		return -EIO;
	size_t len = cap - 1;
	e = nvs_get_blob(h, NVS_KEY_CORE, buf, &len);
	nvs_close(h);
	if (e == ESP_ERR_NVS_NOT_FOUND)
		return -ENOENT;
	if (e != ESP_OK || len >= cap) /* ESP_ERR_NVS_INVALID_LENGTH: bigger than cap - 1 */
		return -EIO;
	buf[len] = '\0';
	return (int)len;
}

static int core_save(void *ctx, const char *text, size_t len)
{
	(void)ctx;
	espstm_nvs_t h;
	esp_err_t e = nvs_open(NVS_NS, NVS_READWRITE, &h);
	if (e == ESP_OK) {
		e = nvs_set_blob(h, NVS_KEY_CORE, text, len);
		if (e == ESP_OK)
			e = nvs_commit(h);
		nvs_close(h);
	}
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "settings: saving the target settings: %s", esp_err_to_name(e));
		return -EIO;
	}
	ESP_LOGI(TAG, "target settings saved (%u bytes of JSON)", (unsigned)len);
	return 0;
}

static void core_init(int nvs_ok)
{
	struct settings_caps caps;
	core_caps(&caps);
	struct settings_store st = {.load = core_load, .save = core_save, .ctx = NULL};
	static struct settings_error err; /* static: keeps app_main's stack small */
	memset(&err, 0, sizeof(err));
	if (!nvs_ok) {
		/* no NVS: defaults, nothing stored (a set still tries to save and fails) */
		settings_default(&core.cur, &caps);
		core.caps = caps;
		core.store = st;
		core_kconfig_defaults(&core.cur);
		return;
	}
	int r = settings_mgr_init(&core, &caps, &st, &err);
	if (r == 0)
		return;
	for (unsigned i = 0; i < err.count; i++)
		ESP_LOGE(TAG, "settings %s: %s (defaults used)", err.e[i].field, err.e[i].msg);
	if (r < 0 && r != -ENOENT)
		ESP_LOGE(TAG, "settings: reading the target settings failed (defaults used)");
	/* Kconfig defaults in place of the model's generic ones; stored once valid */
	static struct settings d;
	d = core.cur;
	core_kconfig_defaults(&d);
	memset(&err, 0, sizeof(err));
	r = settings_mgr_set(&core, &d, &err);
	if (r == -EINVAL) {
		for (unsigned i = 0; i < err.count; i++)
			ESP_LOGE(TAG, "Kconfig defaults: %s: %s (model defaults used)",
			         err.e[i].field, err.e[i].msg);
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
	core_init(e == ESP_OK);
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
	if (e == ESP_OK || e == ESP_ERR_NVS_INVALID_LENGTH)
		ESP_LOGE(TAG, "settings: stored WiFi settings of another version or invalid: "
		              "defaults");
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

/* Called by http_server.c once the radio runs (esp_random is then a true RNG). */
const char *settings_web_pass(void)
{
	if (web_pass[0])
		return web_pass;
	espstm_nvs_t h;
	esp_err_t e = nvs_open(NVS_NS, NVS_READWRITE, &h);
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "settings: nvs_open: %s: no web password, web server off",
		         esp_err_to_name(e));
		return NULL;
	}
	size_t len = sizeof(web_pass);
	e = nvs_get_str(h, NVS_KEY_WEBPASS, web_pass, &len);
	if (e == ESP_OK && web_pass[0]) {
		nvs_close(h);
		return web_pass; /* stored: never printed again */
	}
	int generated = 0;
	if (sizeof(CONFIG_ESPSTM_WEB_PASSWORD) > 1) {
		copy_str(web_pass, sizeof(web_pass), CONFIG_ESPSTM_WEB_PASSWORD);
	} else {
		static const char abc[] = "23456789abcdefghijkmnpqrstuvwxyz"; /* 32: no bias */
		for (size_t i = 0; i < 16; i++)
			web_pass[i] = abc[esp_random() & 31];
		web_pass[16] = '\0';
		generated = 1;
	}
	e = nvs_set_str(h, NVS_KEY_WEBPASS, web_pass);
	if (e == ESP_OK)
		e = nvs_commit(h);
	nvs_close(h);
	if (e != ESP_OK)
		ESP_LOGE(TAG, "settings: web password not saved (%s): it changes at each boot",
		         esp_err_to_name(e));
	if (generated)
		ESP_LOGW(TAG, "web password (user %s, generated, shown once): %s", HTTP_API_USER,
		         web_pass);
	else
		ESP_LOGI(TAG, "web password (user %s) taken from Kconfig", HTTP_API_USER);
	return web_pass;
}
