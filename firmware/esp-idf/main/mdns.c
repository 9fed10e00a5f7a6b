/* SPDX-License-Identifier: MIT */
/*
 * mDNS: the device answers as <hostname>.local (default espstm-XXXXXX.local) and announces
 * one DNS-SD service per target:
 *   type _rfc2217._tcp, instance "<hostname> target N", port 2217 + N,
 *   TXT: target=N, board=<IDF target>, fw=<bridge signature>.
 * "_rfc2217" names the protocol spoken on the port (RFC 2217 COM-PORT-OPTION over Telnet).
 * It is not an IANA-registered DNS-SD type; `avahi-browse -r _rfc2217._tcp` or
 * `dns-sd -B _rfc2217._tcp` list the bridges, and espstmd only needs the host name.
 * ESP-IDF v5: managed component espressif/mdns (main/idf_component.yml); ESP8266_RTOS_SDK
 * v3.4: its built-in mdns component (same calls), compiled only with CONFIG_ENABLE_MDNS=y
 * (sdkconfig.defaults.esp8266; it selects LWIP_IPV6, which its mdns.h needs).
 */
#include "espstm.h"

#include "esp_log.h"
#include "mdns.h"

#include <stdio.h>

static const char *TAG = "espstm.mdns";

void espstm_mdns_start(const struct settings *s)
{
	esp_err_t e = mdns_init();
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "mdns_init: %s", esp_err_to_name(e));
		return;
	}
	const char *host = espstm_hostname();
	mdns_hostname_set(host);
	mdns_instance_name_set("espstm STM32 bridge");
	/* room for a 32-character host name and any unsigned index (gcc -Wformat-truncation) */
	static char inst[ESPSTM_MAX_TARGETS][ESPSTM_NAME_LEN + 24];
	static char tnum[ESPSTM_MAX_TARGETS][12];
	for (unsigned i = 0; i < s->target_count; i++) {
		snprintf(inst[i], sizeof(inst[i]), "%s target %u", host, i);
		snprintf(tnum[i], sizeof(tnum[i]), "%u", i);
		mdns_txt_item_t txt[3] = {
		    {"target", tnum[i]},
		    {"board", CONFIG_IDF_TARGET},
		    {"fw", BRIDGE_SIGNATURE},
		};
		/* Two instances of one type need CONFIG_MDNS_MULTIPLE_INSTANCE
		 * (sdkconfig.defaults). */
		e = mdns_service_add(inst[i], "_rfc2217", "_tcp", s->target[i].port, txt, 3);
		if (e != ESP_OK)
			ESP_LOGE(TAG, "service for target %u: %s", i, esp_err_to_name(e));
	}
	ESP_LOGI(TAG, "%s.local, _rfc2217._tcp on %u target(s)", host, (unsigned)s->target_count);
}
