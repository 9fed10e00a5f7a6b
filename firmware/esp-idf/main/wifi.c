/* SPDX-License-Identifier: MIT */
/*
 * WiFi: station with the configured SSID (DHCP or static IPv4, hostname); if no station is
 * configured, or it has no address within sta_timeout_s (it keeps retrying), the access point
 * espstm-XXXXXX (WPA2, passphrase from Kconfig or generated on first boot and printed here)
 * is switched on next to it. The AP goes off again once the station has an address.
 * ESP-IDF v5 uses esp_netif; ESP8266_RTOS_SDK v3.4 uses tcpip_adapter.
 * Power saving: modem sleep (WIFI_PS_MIN_MODEM) while idle, none (WIFI_PS_NONE) while a
 * client is connected or a flash runs (wifi_active_hold; Kconfig ESPSTM_WIFI_PS_WHILE_ACTIVE):
 * in modem sleep the station wakes for DTIM beacons only, and every packet to it waits for
 * the next one (README "WiFi power saving").
 */
#include "espstm.h"

#include "esp_event.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#if CONFIG_IDF_TARGET_ESP8266
#include "tcpip_adapter.h"
#else
#include "esp_netif.h"
#endif

#include <stdio.h>
#include <string.h>

static const char *TAG = "espstm.wifi";

#define GOT_IP_BIT (1u << 0)

static EventGroupHandle_t ev;
static int sta_enabled;
static int ap_on;
static int64_t no_ip_since; /* esp_timer time the station lost (or never had) an address */
#if !CONFIG_IDF_TARGET_ESP8266
static esp_netif_t *sta_if;
#endif
static SemaphoreHandle_t ps_mu; /* guards ps_holds and the mode set with it */
static int ps_holds;            /* clients connected + flash runs (wifi_active_hold) */

#if CONFIG_ESPSTM_WIFI_PS_WHILE_ACTIVE_MIN_MODEM
#define PS_ACTIVE WIFI_PS_MIN_MODEM
#else
#define PS_ACTIVE WIFI_PS_NONE
#endif
#define PS_IDLE WIFI_PS_MIN_MODEM

static void set_ps(wifi_ps_type_t mode)
{
	esp_err_t e = esp_wifi_set_ps(mode);
	if (e != ESP_OK)
		ESP_LOGW(TAG, "power saving %s not set: %s",
		         mode == WIFI_PS_NONE ? "none" : "min_modem", esp_err_to_name(e));
}

void wifi_active_hold(int delta)
{
	if (!ps_mu)
		return; /* before wifi_start: nothing can connect or flash yet */
	xSemaphoreTake(ps_mu, portMAX_DELAY);
	int was = ps_holds;
	ps_holds += delta;
	if (ps_holds < 0) {
		ESP_LOGW(TAG, "power saving: more releases than holds");
		ps_holds = 0;
	}
	if (PS_ACTIVE != PS_IDLE && sta_enabled && (was == 0) != (ps_holds == 0)) {
		set_ps(ps_holds ? PS_ACTIVE : PS_IDLE);
		ESP_LOGI(TAG, "power saving %s",
		         ps_holds ? "off (client or flash active)" : "back on (modem sleep, idle)");
	}
	xSemaphoreGive(ps_mu);
}

static void on_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
	(void)arg;
	if (base == WIFI_EVENT && id == WIFI_EVENT_STA_START) {
		if (sta_enabled)
			esp_wifi_connect();
#if CONFIG_IDF_TARGET_ESP8266
	} else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_CONNECTED) {
		/* ESP8266_RTOS_SDK v3.4: the station's lwIP netif only exists once the SDK's own
		 * STA_START handler ran tcpip_adapter_start(); before that
		 * tcpip_adapter_set_hostname() fails (IF_NOT_READY). Set it here, as the SDK's
		 * STA_CONNECTED handler starts the DHCP client (handlers of one event run in the
		 * same task, so the DHCP messages carry the name). */
		esp_err_t e = tcpip_adapter_set_hostname(TCPIP_ADAPTER_IF_STA, espstm_hostname());
		if (e != ESP_OK)
			ESP_LOGW(TAG, "hostname not set: %s", esp_err_to_name(e));
#endif
	} else if (base == WIFI_EVENT && id == WIFI_EVENT_STA_DISCONNECTED) {
		const wifi_event_sta_disconnected_t *d = data;
		if (xEventGroupGetBits(ev) & GOT_IP_BIT) {
			no_ip_since = esp_timer_get_time();
			ESP_LOGI(TAG, "station disconnected (reason %u); retrying",
			         d ? d->reason : 0);
		}
		xEventGroupClearBits(ev, GOT_IP_BIT);
		if (sta_enabled)
			esp_wifi_connect(); /* keep retrying, also while the AP is on */
	} else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP) {
		const ip_event_got_ip_t *g = data;
		ESP_LOGI(TAG, "station address " IPSTR ", hostname %s", IP2STR(&g->ip_info.ip),
		         espstm_hostname());
		xEventGroupSetBits(ev, GOT_IP_BIT);
	}
}

static void set_ap(int on)
{
	if (on == ap_on)
		return;
	ap_on = on;
	if (!on) {
		ESP_LOGI(TAG, "access point off (station connected)");
		esp_wifi_set_mode(WIFI_MODE_STA);
		return;
	}
	const char *name = espstm_default_name();
	const char *pass = settings_ap_pass();
	wifi_config_t wc;
	memset(&wc, 0, sizeof(wc));
	size_t n = strlen(name);
	memcpy(wc.ap.ssid, name, n);
	wc.ap.ssid_len = (uint8_t)n;
	strncpy((char *)wc.ap.password, pass, sizeof(wc.ap.password) - 1);
	wc.ap.channel = 1;
	wc.ap.authmode = WIFI_AUTH_WPA2_PSK;
	wc.ap.max_connection = 4;
	esp_wifi_set_mode(sta_enabled ? WIFI_MODE_APSTA : WIFI_MODE_AP);
	esp_err_t e = esp_wifi_set_config(WIFI_IF_AP, &wc);
	if (e != ESP_OK)
		ESP_LOGE(TAG, "AP config: %s", esp_err_to_name(e));
	/* The one place the passphrase is shown: the log console (first boot set-up). */
	ESP_LOGI(TAG, "access point '%s' on, WPA2 passphrase '%s', address 192.168.4.1", name,
	         pass);
}

static void apply_static_ip(const struct espstm_settings *s)
{
#if CONFIG_IDF_TARGET_ESP8266
	tcpip_adapter_dhcpc_stop(TCPIP_ADAPTER_IF_STA);
	tcpip_adapter_ip_info_t ip;
	memset(&ip, 0, sizeof(ip));
	ip.ip.addr = s->sta_ip;
	ip.netmask.addr = s->sta_netmask;
	ip.gw.addr = s->sta_gw;
	tcpip_adapter_set_ip_info(TCPIP_ADAPTER_IF_STA, &ip);
	tcpip_adapter_dns_info_t dns;
	memset(&dns, 0, sizeof(dns));
	ip_addr_set_ip4_u32(&dns.ip, s->sta_dns);
	tcpip_adapter_set_dns_info(TCPIP_ADAPTER_IF_STA, TCPIP_ADAPTER_DNS_MAIN, &dns);
#else
	esp_netif_dhcpc_stop(sta_if);
	esp_netif_ip_info_t ip;
	memset(&ip, 0, sizeof(ip));
	ip.ip.addr = s->sta_ip;
	ip.netmask.addr = s->sta_netmask;
	ip.gw.addr = s->sta_gw;
	esp_netif_set_ip_info(sta_if, &ip);
	esp_netif_dns_info_t dns;
	memset(&dns, 0, sizeof(dns));
	dns.ip.type = ESP_IPADDR_TYPE_V4;
	dns.ip.u_addr.ip4.addr = s->sta_dns;
	esp_netif_set_dns_info(sta_if, ESP_NETIF_DNS_MAIN, &dns);
#endif
	char a[16], m[16], g[16];
	settings_format_ip(s->sta_ip, a, sizeof(a));
	settings_format_ip(s->sta_netmask, m, sizeof(m));
	settings_format_ip(s->sta_gw, g, sizeof(g));
	ESP_LOGI(TAG, "static address %s netmask %s gateway %s", a, m, g);
}

static void supervise(void *arg)
{
	const struct espstm_settings *s = arg;
	int64_t timeout_us = (int64_t)(s->sta_timeout_s ? s->sta_timeout_s : 30) * 1000000;
	for (;;) {
		EventBits_t b =
		    xEventGroupWaitBits(ev, GOT_IP_BIT, pdFALSE, pdFALSE, pdMS_TO_TICKS(1000));
		if (b & GOT_IP_BIT)
			set_ap(0);
		else if (esp_timer_get_time() - no_ip_since >= timeout_us) {
			if (!ap_on)
				ESP_LOGI(TAG,
				         "station '%s' has no address after %u s: AP on, still "
				         "retrying",
				         s->sta_ssid, (unsigned)s->sta_timeout_s);
			set_ap(1);
		}
	}
}

void wifi_start(const struct espstm_settings *s)
{
	ev = xEventGroupCreate();
#if CONFIG_IDF_TARGET_ESP8266
	tcpip_adapter_init();
	ESP_ERROR_CHECK(esp_event_loop_create_default());
#else
	ESP_ERROR_CHECK(esp_netif_init());
	ESP_ERROR_CHECK(esp_event_loop_create_default());
	sta_if = esp_netif_create_default_wifi_sta();
	esp_netif_create_default_wifi_ap();
#endif
	wifi_init_config_t cfg = WIFI_INIT_CONFIG_DEFAULT();
	ESP_ERROR_CHECK(esp_wifi_init(&cfg));
	ps_mu = xSemaphoreCreateMutex();
	/* our settings live in NVS namespace "espstm"; the driver keeps no copy of its own */
	esp_wifi_set_storage(WIFI_STORAGE_RAM);
	esp_event_handler_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_event, NULL);
	esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_event, NULL);

	sta_enabled = s->sta_ssid[0] != '\0';
	ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
	if (sta_enabled) {
		wifi_config_t wc;
		memset(&wc, 0, sizeof(wc));
		strncpy((char *)wc.sta.ssid, s->sta_ssid, sizeof(wc.sta.ssid));
		strncpy((char *)wc.sta.password, s->sta_pass, sizeof(wc.sta.password));
		esp_wifi_set_config(WIFI_IF_STA, &wc);
#if !CONFIG_IDF_TARGET_ESP8266
		/* ESP-IDF v5: the netif exists from esp_netif_create_default_wifi_sta(); the name
		 * must be set before the DHCP client starts (at connect). ESP8266: on_event(). */
		esp_err_t he = esp_netif_set_hostname(sta_if, espstm_hostname());
		if (he != ESP_OK)
			ESP_LOGW(TAG, "hostname not set: %s", esp_err_to_name(he));
#endif
		if (s->sta_static)
			apply_static_ip(s);
	}
	no_ip_since = esp_timer_get_time();
	/* The radio runs from here on: esp_random() is a true RNG for the AP passphrase. */
	ESP_ERROR_CHECK(esp_wifi_start());
	/* idle: modem sleep, also on the ESP8266 (whose esp_wifi.h names WIFI_PS_NONE as its
	 * default); wifi_active_hold() switches it off while clients or flashes are active. Set
	 * after esp_wifi_start(), as both SDKs' power_save examples do; a station feature only. */
	if (sta_enabled)
		set_ps(PS_IDLE);
	if (!sta_enabled) {
		ESP_LOGI(TAG, "no station configured");
		set_ap(1);
	} else {
		ESP_LOGI(TAG, "station: connecting to '%s' (%s)", s->sta_ssid,
		         s->sta_static ? "static address" : "DHCP");
	}
	if (sta_enabled && xTaskCreate(supervise, "wifi-sup", 3072, (void *)s, 3, NULL) != pdPASS)
		ESP_LOGE(TAG, "cannot create the WiFi supervisor task");
}
