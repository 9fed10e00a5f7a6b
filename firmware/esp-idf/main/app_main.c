/* SPDX-License-Identifier: MIT */
/*
 * espstm firmware entry: settings (NVS), targets (UART + BOOT0/NRST, pins first so the STM32
 * runs its application from power-up), WiFi, RFC 2217 servers (+ legacy ports), mDNS, web
 * server.
 */
#include "espstm.h"
#include "security.h"

#include "esp_log.h"

#include <stdio.h>

static const char *TAG = "espstm";

void app_main(void)
{
	settings_init();
	const struct settings *s = &settings_core()->cur;
	ESP_LOGI(TAG, "%s on %s, %u target(s)", BRIDGE_SIGNATURE, CONFIG_IDF_TARGET,
	         (unsigned)s->target_count);

	int ok[ESPSTM_MAX_TARGETS] = {0};
	for (unsigned i = 0; i < s->target_count; i++)
		ok[i] = target_init(i, &s->target[i]) == 0;

	wifi_start(settings_get());
	/* after wifi_start: esp_fill_random() is a true RNG once the radio runs (unit key and
	 * HTTPS certificate made at first boot) */
	sec_init();
	target_set_locked(sec_locked()); /* before any client can connect */

#if CONFIG_IDF_TARGET_ESP8266
	{
		static char banner[256];
		snprintf(
		    banner, sizeof(banner),
		    "\r\nespstm: %s; log console on GPIO2 (UART1 TX, D4); RFC 2217 on %s.local:%u; "
		    "set-up AP %s, passphrase %s\r\nespstm: UART0 now moves to GPIO15 (TX) / "
		    "GPIO13 (RX)\r\n",
		    BRIDGE_SIGNATURE, espstm_hostname(), (unsigned)s->target[0].port,
		    espstm_default_name(), settings_ap_pass());
		target_uart0_swap(banner);
	}
#endif

	/* the legacy ports are plaintext: with a unit key only when plaintext is allowed */
	if (s->legacy_ports && (s->plaintext || sec_key_gen() == 0))
		rfc2217_enable_legacy();
	else if (s->legacy_ports)
		ESP_LOGW(TAG, "legacy ports 1234/1235 stay closed: the unit has a key and the "
		              "setting plaintext is 0");
	for (unsigned i = 0; i < s->target_count; i++)
		if (ok[i])
			rfc2217_start(i);
	espstm_mdns_start(s);
	http_server_start(); /* radio running: a generated password comes from a true RNG */
	                     /* Tasks run on; app_main may return (its task is deleted). */
}
