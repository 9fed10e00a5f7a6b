/* SPDX-License-Identifier: MIT */
/*
 * The unit's secrets in NVS (security.h). NVS namespace "espstm", next to the settings:
 *  - string "unitkey": the unit key in the text format of firmware/crypto/unit_key.h
 *    (unit_key_format / unit_key_parse), made at first boot with unit_key_generate();
 *  - strings "certpem", "certkey" (ESP-IDF): the HTTPS certificate and its ECDSA P-256 key
 *    (self_cert_make, CN = the unit's hostname, 10 years from 2025-01-01: the ESP has no
 *    clock at first boot);
 *  - string "verifykey": the image verification key (locked mode), written once.
 * NVS is not encrypted unless the board uses flash encryption + NVS encryption: whoever
 * reads the flash over USB gets the unit key (README "Security").
 */
#include "security.h"
#include "espstm.h"

#include "self_cert.h"
#include "unit_key.h"

#include "esp_log.h"
#include "esp_system.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "nvs.h"
#if !CONFIG_IDF_TARGET_ESP8266
#include "esp_random.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

#if CONFIG_IDF_TARGET_ESP8266
typedef nvs_handle espstm_sec_nvs_t; /* ESP8266_RTOS_SDK v3.4 name */
#else
typedef nvs_handle_t espstm_sec_nvs_t;
#endif

#define KEY_TEXT_MAX 256 /* unit_key_format(): comment + identity + 64 hex digits */

static const char *TAG = "espstm.sec";
static const char NVS_NS[] = "espstm";
static const char NVS_UNITKEY[] = "unitkey";
static const char NVS_VERIFYKEY[] = "verifykey";

static SemaphoreHandle_t sec_mu; /* unit_key, key_gen: HTTP task vs RFC 2217 tasks */
static struct tls_psk unit_key;
static uint32_t key_gen; /* 0: no key */
static char verify_pem[SEC_VERIFY_KEY_MAX];
static int verify_len; /* 0: none; -1: stored but unreadable (locked, every upload refused) */

static void sec_lock(void)
{
	if (sec_mu)
		xSemaphoreTake(sec_mu, portMAX_DELAY);
}

static void sec_unlock(void)
{
	if (sec_mu)
		xSemaphoreGive(sec_mu);
}

int sec_entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	esp_fill_random(buf, n);
	return 0;
}

/* Read the NVS string name into buf (cap bytes). Returns its length without the NUL,
 * -ENOENT (absent) or -EIO. */
static int nvs_read_str(const char *name, char *buf, size_t cap)
{
	espstm_sec_nvs_t h;
	esp_err_t e = nvs_open(NVS_NS, NVS_READONLY, &h);
	if (e == ESP_ERR_NVS_NOT_FOUND)
		return -ENOENT;
	if (e != ESP_OK)
		return -EIO;
	size_t len = cap;
	e = nvs_get_str(h, name, buf, &len);
	nvs_close(h);
	if (e == ESP_ERR_NVS_NOT_FOUND)
		return -ENOENT;
	if (e != ESP_OK || len == 0 || len > cap)
		return -EIO;
	buf[len - 1] = '\0';
	return (int)strlen(buf);
}

/* Store the NUL-terminated text under name and commit. 0 or -EIO. */
static int nvs_write_str(const char *name, const char *text)
{
	espstm_sec_nvs_t h;
	esp_err_t e = nvs_open(NVS_NS, NVS_READWRITE, &h);
	if (e == ESP_OK) {
		e = nvs_set_str(h, name, text);
		if (e == ESP_OK)
			e = nvs_commit(h);
		nvs_close(h);
	}
	if (e != ESP_OK) {
		ESP_LOGE(TAG, "NVS %s: %s", name, esp_err_to_name(e));
		return -EIO;
	}
	return 0;
}

/* Make a new unit key into *k and store it. 0, -EIO or the error of unit_key_*. */
static int key_make_store(struct tls_psk *k)
{
	static char text[KEY_TEXT_MAX]; /* callers hold sec_mu or run before the tasks */
	int r = unit_key_generate(k, sec_entropy, NULL);
	if (r < 0)
		return r;
	char comment[48];
	snprintf(comment, sizeof(comment), "%s", espstm_hostname());
	r = unit_key_format(k, comment, text, sizeof(text));
	if (r >= 0)
		r = nvs_write_str(NVS_UNITKEY, text);
	memset(text, 0, sizeof(text));
	return r < 0 ? r : 0;
}

static int key_init(void)
{
	static char text[KEY_TEXT_MAX];
	char err[96];
	int n = nvs_read_str(NVS_UNITKEY, text, sizeof(text));
	if (n >= 0 && unit_key_parse(text, (size_t)n, &unit_key, err, sizeof(err)) == 0) {
		memset(text, 0, sizeof(text));
		key_gen = 1;
		ESP_LOGI(TAG, "unit key %s (RFC 2217 over TLS-PSK)", unit_key.identity);
		return 0;
	}
	memset(text, 0, sizeof(text));
	if (n >= 0)
		ESP_LOGE(TAG,
		         "stored unit key unreadable (%s): a new one is made; every paired "
		         "host must pair again",
		         err);
	int r = key_make_store(&unit_key);
	if (r < 0) {
		memset(&unit_key, 0, sizeof(unit_key));
		ESP_LOGE(TAG, "no unit key (%d): TLS clients are refused", r);
		return -EIO;
	}
	key_gen = 1;
	ESP_LOGI(TAG, "new unit key %s made; pair hosts with 'espstm pair %s.local'",
	         unit_key.identity, espstm_hostname());
	return 0;
}

int sec_key_copy(struct tls_psk *out, uint32_t *gen)
{
	sec_lock();
	uint32_t g = key_gen;
	if (g)
		*out = unit_key;
	sec_unlock();
	if (gen)
		*gen = g;
	return g ? 0 : -ENOENT;
}

uint32_t sec_key_gen(void)
{
	sec_lock();
	uint32_t g = key_gen;
	sec_unlock();
	return g;
}

int sec_key_rotate(void)
{
	static struct tls_psk k; /* static: off the HTTP task's stack; under sec_mu */
	sec_lock();
	int r = key_make_store(&k);
	if (r == 0) {
		unit_key = k;
		key_gen = key_gen + 1 ? key_gen + 1 : 1;
	}
	memset(&k, 0, sizeof(k));
	sec_unlock();
	if (r < 0) {
		ESP_LOGE(TAG, "unit key rotation failed (%d): the old key stays in force", r);
		return r == -ENOMEM ? -ENOMEM : -EIO;
	}
	ESP_LOGW(TAG, "unit key rotated: every paired host must pair again");
	return 0;
}

/* ---- HTTPS certificate (ESP-IDF) ---- */

#if !CONFIG_IDF_TARGET_ESP8266
static const char NVS_CERT[] = "certpem";
static const char NVS_CERTKEY[] = "certkey";
static char cert_pem[SELF_CERT_CERT_PEM_MAX];
static char cert_key[SELF_CERT_KEY_PEM_MAX];
static int cert_ok;

static void cert_init(void)
{
	int a = nvs_read_str(NVS_CERT, cert_pem, sizeof(cert_pem));
	int b = nvs_read_str(NVS_CERTKEY, cert_key, sizeof(cert_key));
	if (a > 0 && b > 0 && self_cert_check_pair(cert_key, cert_pem) == 0) {
		cert_ok = 1;
		return;
	}
	if (a >= 0 || b >= 0)
		ESP_LOGE(TAG, "stored HTTPS certificate unusable: a new one is made (hosts that "
		              "pinned the old one refuse it until its known_bridges line goes)");
	ESP_LOGI(TAG, "making the HTTPS certificate (ECDSA P-256)...");
	int r = self_cert_make(espstm_hostname(), 0, sec_entropy, NULL, cert_key, sizeof(cert_key),
	                       cert_pem, sizeof(cert_pem));
	if (r == 0 && nvs_write_str(NVS_CERT, cert_pem) == 0 &&
	    nvs_write_str(NVS_CERTKEY, cert_key) == 0) {
		cert_ok = 1;
	} else {
		ESP_LOGE(TAG, "no HTTPS certificate (%d)", r);
		memset(cert_key, 0, sizeof(cert_key));
		return;
	}
	char pin[SELF_CERT_PIN_LEN + 1];
	if (self_cert_pin((const uint8_t *)cert_pem, strlen(cert_pem), pin, sizeof(pin)) == 0)
		ESP_LOGI(TAG, "HTTPS certificate pin %s", pin);
}

int sec_cert(const char **cert, size_t *cert_len, const char **key, size_t *key_len)
{
	if (!cert_ok)
		return -ENOENT;
	*cert = cert_pem;
	*cert_len = strlen(cert_pem) + 1;
	*key = cert_key;
	*key_len = strlen(cert_key) + 1;
	return 0;
}
#endif

/* ---- verification key (locked mode) ---- */

static int pem_public_key(const char *pem, size_t len)
{
	static const char begin[] = "-----BEGIN PUBLIC KEY-----";
	static const char end[] = "-----END PUBLIC KEY-----";
	if (len == 0 || len >= SEC_VERIFY_KEY_MAX || memchr(pem, '\0', len))
		return 0;
	if (len < sizeof(begin) - 1 || memcmp(pem, begin, sizeof(begin) - 1) != 0)
		return 0;
	for (size_t i = 0; i + sizeof(end) - 1 <= len; i++)
		if (memcmp(pem + i, end, sizeof(end) - 1) == 0)
			return 1;
	return 0;
}

int sec_verify_key(char *pem, size_t cap)
{
	sec_lock();
	int n = verify_len;
	if (n > 0 && (size_t)n < cap)
		memcpy(pem, verify_pem, (size_t)n + 1);
	sec_unlock();
	if (n == 0)
		return -ENOENT;
	if (n < 0)
		return -EIO;
	return (size_t)n < cap ? n : -ENOSPC;
}

int sec_verify_key_install(const char *pem, size_t len)
{
	if (!pem_public_key(pem, len))
		return -EINVAL;
	static char text[SEC_VERIFY_KEY_MAX]; /* under sec_mu */
	sec_lock();
	int r = 0;
	if (verify_len != 0) {
		r = -EEXIST;
	} else {
		memcpy(text, pem, len);
		text[len] = '\0';
		r = nvs_write_str(NVS_VERIFYKEY, text);
		if (r == 0) {
			memcpy(verify_pem, text, len + 1);
			verify_len = (int)len;
		}
	}
	sec_unlock();
	if (r == 0)
		ESP_LOGW(TAG, "verification key installed: locked mode (signed images only; "
		              "removal only by erasing NVS over USB)");
	return r;
}

int sec_locked(void)
{
	sec_lock();
	int on = verify_len != 0;
	sec_unlock();
	return on;
}

int sec_init(void)
{
	if (!sec_mu)
		sec_mu = xSemaphoreCreateMutex();
	if (!sec_mu)
		ESP_LOGE(TAG, "no memory for the key lock");
	int r = key_init();
#if !CONFIG_IDF_TARGET_ESP8266
	cert_init();
#endif
	int n = nvs_read_str(NVS_VERIFYKEY, verify_pem, sizeof(verify_pem));
	if (n > 0 && pem_public_key(verify_pem, (size_t)n)) {
		verify_len = n;
		ESP_LOGI(TAG, "locked mode: flash uploads must carry a valid signature");
	} else {
		verify_pem[0] = '\0';
		if (n != -ENOENT) {
			verify_len = -1; /* fail closed */
			ESP_LOGE(TAG, "stored verification key unreadable: locked, every upload is "
			              "refused; erase NVS over USB and install the key again");
		}
	}
	return r;
}
