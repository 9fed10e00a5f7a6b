/* SPDX-License-Identifier: MIT */
/*
 * The HAL of firmware/core/hal.h on the ESP drivers (ESP-IDF v5 driver/uart.h + driver/gpio.h,
 * ESP8266_RTOS_SDK v3.4 driver/uart.h + driver/gpio.h).
 *
 * UART transmit: the driver is installed without a TX ring buffer and bytes go straight into
 * the 128-byte hardware FIFO with uart_tx_chars(), which never waits for room: the return
 * value is what the HAL contract asks for (bytes accepted = free FIFO space). The bridge
 * keeps the rest in its own bounded queue; rfc2217_task.c polls every tick while it has any.
 * UART receive: the driver's RX ring buffer (interrupt-filled), read with a zero timeout.
 * ESP-IDF: the driver's interrupt is allocated with ESP_INTR_FLAG_IRAM and its ISR placed in
 * IRAM (CONFIG_UART_ISR_IN_IRAM=y, sdkconfig.defaults): while the SPI flash is written or
 * erased (the "stm32img" staging partition, NVS) the caches are off and only IRAM interrupts
 * run (ESP-IDF spi_flash_concurrency); otherwise the 128-byte RX FIFO overflows during a
 * sector erase (some 45 ms, ~520 characters at 115200 baud) and every session loses input.
 * The ring (TARGET_UART_RX_RING) then holds what arrives meanwhile. The ESP8266 SDK v3.4
 * erases and writes inside a critical section (all interrupts off): no such remedy there.
 * NRST is open drain (the STM32 has its own pull-up and the reset button stays usable),
 * BOOT0 push-pull.
 */
#include "target.h"
#include "flash_job.h" /* FLASH_JOB_SIG_MAX: the core has signed images */

#include "driver/gpio.h"
#include "driver/uart.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "lwip/sockets.h"
#if CONFIG_IDF_TARGET_ESP8266
#include "esp8266/uart_struct.h" /* uart0/uart1 .status.txfifo_cnt */
#endif

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct espstm_target espstm_targets[ESPSTM_MAX_TARGETS];

/* ---- UART ---- */

static uint32_t char_time_us(const struct hal_uart_cfg *c)
{
	/* start + data + parity + stop (1.5 counted as 2) */
	uint32_t bits = 1u + c->data_bits + (c->parity != RFC2217_PARITY_NONE ? 1u : 0u) +
	                (c->stop == RFC2217_STOPSIZE_1 ? 1u : 2u);
	return (uint32_t)(((uint64_t)bits * 1000000u + c->baud - 1) / c->baud) + 1u;
}

static int hal_uart_config(void *ctx, struct hal_uart_cfg *c)
{
	struct espstm_target *t = ctx;
	uart_word_length_t wl;
	uart_parity_t par;
	uart_stop_bits_t sb;
	switch (c->data_bits) {
	case 5:
		wl = UART_DATA_5_BITS;
		break;
	case 6:
		wl = UART_DATA_6_BITS;
		break;
	case 7:
		wl = UART_DATA_7_BITS;
		break;
	case 8:
		wl = UART_DATA_8_BITS;
		break;
	default:
		return -EINVAL;
	}
	switch (c->parity) {
	case RFC2217_PARITY_NONE:
		par = UART_PARITY_DISABLE;
		break;
	case RFC2217_PARITY_ODD:
		par = UART_PARITY_ODD;
		break;
	case RFC2217_PARITY_EVEN:
		par = UART_PARITY_EVEN;
		break;
	default:
		return -EINVAL; /* mark/space: not in the ESP UARTs */
	}
	switch (c->stop) {
	case RFC2217_STOPSIZE_1:
		sb = UART_STOP_BITS_1;
		break;
	case RFC2217_STOPSIZE_2:
		sb = UART_STOP_BITS_2;
		break;
	case RFC2217_STOPSIZE_1_5:
		sb = UART_STOP_BITS_1_5;
		break;
	default:
		return -EINVAL;
	}
	if (c->flow != RFC2217_CONTROL_FLOW_NONE)
		return -EINVAL; /* no RTS/CTS wired, no XON/XOFF in the driver */
	/* 300 baud .. 5 Mbaud (ESP32 APB 80 MHz / 16; ESP8266 80 MHz / 16 = 5 M as well) */
	if (c->baud < 300 || c->baud > 5000000)
		return -EINVAL;

	uint32_t old_baud = 0;
	uart_get_baudrate(t->uart, &old_baud);
	if (uart_set_baudrate(t->uart, c->baud) != ESP_OK)
		return -EINVAL;
	if (uart_set_word_length(t->uart, wl) != ESP_OK ||
	    uart_set_parity(t->uart, par) != ESP_OK || uart_set_stop_bits(t->uart, sb) != ESP_OK) {
		/* cannot happen with the values checked above; keep the baud consistent anyway */
		if (old_baud)
			uart_set_baudrate(t->uart, old_baud);
		return -EINVAL;
	}
	/* The baud is not written back: an RFC 2217 client compares the answer byte for byte
	 * with what it asked (the divider error is at most ~1.5 % at 5 Mbaud, far less below). */
	t->char_us = char_time_us(c);
	ESP_LOGD(t->tag, "uart%d: %u %u%c%s", (int)t->uart, (unsigned)c->baud, c->data_bits,
	         "?NOEMS"[c->parity],
	         c -> stop == 1      ? "1"
	              : c->stop == 2 ? "2"
	                             : "1.5");
	return 0;
}

static size_t hal_uart_write(void *ctx, const uint8_t *p, size_t n)
{
	struct espstm_target *t = ctx;
	if (n == 0)
		return 0;
	/* Fills the hardware FIFO only; returns at once (0 when the FIFO is full). */
	int k = uart_tx_chars(t->uart, (const char *)p, (uint32_t)n);
	if (k <= 0)
		return 0;
	t->tx_empty_since = -1;
	return (size_t)k;
}

static size_t hal_uart_tx_pending(void *ctx)
{
	struct espstm_target *t = ctx;
#if CONFIG_IDF_TARGET_ESP8266
	/* The v3.4 driver's uart_wait_tx_done() only knows about uart_write_bytes(); read the
	 * FIFO level instead and allow one character time for the shift register after the
	 * FIFO was first seen empty. */
	uint32_t cnt = t->uart == UART_NUM_0 ? uart0.status.txfifo_cnt : uart1.status.txfifo_cnt;
	int64_t now = esp_timer_get_time();
	if (cnt) {
		t->tx_empty_since = -1;
		return cnt;
	}
	if (t->tx_empty_since < 0)
		t->tx_empty_since = now;
	return now - t->tx_empty_since < (int64_t)t->char_us ? 1 : 0;
#else
	/* ESP-IDF v5: ESP_OK with a zero timeout = FIFO empty and transmitter idle. */
	return uart_wait_tx_done(t->uart, 0) == ESP_OK ? 0 : 1;
#endif
}

static void hal_uart_purge(void *ctx, int rx, int tx)
{
	struct espstm_target *t = ctx;
	if (rx) {
		uart_flush_input(t->uart);
		t->ulen = 0;
	}
	/* tx: at most one FIFO (128 bytes) is below the bridge; the drivers have no public call
	 * to drop it, so those bytes still go out (the bridge drops its own queue). */
	(void)tx;
}

static void hal_uart_break(void *ctx, int on)
{
	struct espstm_target *t = ctx;
	/* The core calls this with the transmitter idle: inverting TXD turns the idle (mark)
	 * level into a continuous space = break, until it is inverted back. */
#if CONFIG_IDF_TARGET_ESP8266
	uart_set_line_inverse(t->uart, on ? UART_INVERSE_TXD : UART_INVERSE_DISABLE);
#else
	uart_set_line_inverse(t->uart, on ? UART_SIGNAL_TXD_INV : UART_SIGNAL_INV_DISABLE);
#endif
}

/* ---- pins, clock, network, log ---- */

static void hal_gpio_set(void *ctx, enum hal_pin pin, int level)
{
	struct espstm_target *t = ctx;
	gpio_set_level((gpio_num_t)(pin == HAL_PIN_NRST ? t->nrst_gpio : t->boot0_gpio),
	               level ? 1u : 0u);
}

static uint32_t hal_now_ms(void *ctx)
{
	(void)ctx;
	return (uint32_t)(esp_timer_get_time() / 1000);
}

/* The bridge's output to its client: plaintext or TLS (client.c). */
static size_t hal_net_send(void *ctx, const uint8_t *p, size_t n)
{
	return client_send(ctx, p, n);
}

static void hal_log(void *ctx, enum hal_log_level level, const char *line)
{
	struct espstm_target *t = ctx;
	switch (level) {
	case HAL_LOG_ERROR:
		ESP_LOGE(t->tag, "%s", line);
		break;
	case HAL_LOG_INFO:
		ESP_LOGI(t->tag, "%s", line);
		break;
	default:
		ESP_LOGD(t->tag, "%s", line);
		break;
	}
}

const struct hal_ops espstm_hal = {
    .uart_config = hal_uart_config,
    .uart_write = hal_uart_write,
    .uart_purge = hal_uart_purge,
    .uart_break = hal_uart_break,
    .gpio_set = hal_gpio_set,
    .now_ms = hal_now_ms,
    .net_send = hal_net_send,
    .log = hal_log,
    .uart_tx_pending = hal_uart_tx_pending,
};

/* ---- set-up ---- */

struct target_pins {
	int uart, tx, rx, nrst, boot0;
};

static const struct target_pins pins[ESPSTM_MAX_TARGETS] = {
#if CONFIG_IDF_TARGET_ESP8266
    {0, 15, 13, CONFIG_ESPSTM_T0_NRST_GPIO, CONFIG_ESPSTM_T0_BOOT0_GPIO},
#else
    {CONFIG_ESPSTM_T0_UART, CONFIG_ESPSTM_T0_TX_GPIO, CONFIG_ESPSTM_T0_RX_GPIO,
     CONFIG_ESPSTM_T0_NRST_GPIO, CONFIG_ESPSTM_T0_BOOT0_GPIO},
#if ESPSTM_MAX_TARGETS > 1
    {CONFIG_ESPSTM_T1_UART, CONFIG_ESPSTM_T1_TX_GPIO, CONFIG_ESPSTM_T1_RX_GPIO,
     CONFIG_ESPSTM_T1_NRST_GPIO, CONFIG_ESPSTM_T1_BOOT0_GPIO},
#endif
#endif
};

static int pin_out(struct espstm_target *t, int gpio, int open_drain, int level)
{
	/* level first, so the pin does not glitch when its driver is enabled */
	gpio_set_level((gpio_num_t)gpio, (uint32_t)level);
	gpio_config_t io = {
		.pin_bit_mask = (1ULL << gpio),
#if CONFIG_IDF_TARGET_ESP8266
		.mode = open_drain ? GPIO_MODE_OUTPUT_OD : GPIO_MODE_OUTPUT,
#else
		/* input enabled too, so the level can be read back for diagnostics */
		.mode = open_drain ? GPIO_MODE_INPUT_OUTPUT_OD : GPIO_MODE_OUTPUT,
#endif
		.pull_up_en = GPIO_PULLUP_DISABLE,
		.pull_down_en = GPIO_PULLDOWN_DISABLE,
		.intr_type = GPIO_INTR_DISABLE,
	};
	esp_err_t e = gpio_config(&io);
	if (e != ESP_OK) {
		ESP_LOGE(t->tag, "gpio%d: %s", gpio, esp_err_to_name(e));
		return -1;
	}
	gpio_set_level((gpio_num_t)gpio, (uint32_t)level);
	return 0;
}

int target_init(unsigned index, const struct settings_target *ts)
{
	if (index >= ESPSTM_MAX_TARGETS)
		return -1;
	struct espstm_target *t = &espstm_targets[index];
	const struct target_pins *pp = &pins[index];
	memset(t, 0, sizeof(*t));
	t->index = index;
	t->uart = (uart_port_t)pp->uart;
	/* pins from the settings (validated against this chip's caps); UART number: Kconfig */
	t->nrst_gpio = ts->pins.nrst;
	t->boot0_gpio = ts->pins.boot0;
	t->lock = xSemaphoreCreateMutex();
	t->flash_evt = xSemaphoreCreateBinary();
	if (!t->lock || !t->flash_evt)
		return -1;
	t->port = ts->port;
	t->lfd = t->cfd = -1;
	t->lfd_raw = t->lfd_ctl = t->ctl_fd = -1;
	t->tx_empty_since = -1;
	snprintf(t->tag, sizeof(t->tag), "espstm.t%u", index);

	/* pins: application runs (NRST released, BOOT0 low) before anything else */
	if (pin_out(t, t->boot0_gpio, 0, 0) < 0 || pin_out(t, t->nrst_gpio, 1, 1) < 0)
		return -1;

	uart_config_t uc = {
		.baud_rate = (int)ts->baud,
		.data_bits = UART_DATA_8_BITS,
		.parity = UART_PARITY_DISABLE,
		.stop_bits = UART_STOP_BITS_1,
		.flow_ctrl = UART_HW_FLOWCTRL_DISABLE,
		.rx_flow_ctrl_thresh = 0,
#if !CONFIG_IDF_TARGET_ESP8266
		.source_clk = UART_SCLK_DEFAULT,
#endif
	};
	esp_err_t e;
#if CONFIG_IDF_TARGET_ESP8266
	/* tx_buffer_size 0: uart_tx_chars() writes the FIFO directly; no event queue */
	e = uart_driver_install(t->uart, TARGET_UART_RX_RING, 0, 0, NULL, 0);
	if (e == ESP_OK)
		e = uart_param_config(t->uart, &uc);
		/* UART0 stays on GPIO1/GPIO3 (USB) until target_uart0_swap() */
#else
	/* the ISR runs while the caches are off for a flash write (see the top of the file);
	 * without CONFIG_UART_ISR_IN_IRAM the ISR is in flash and the driver drops the flag */
#if CONFIG_UART_ISR_IN_IRAM
	const int intr_flags = ESP_INTR_FLAG_IRAM;
#else
	const int intr_flags = 0;
	ESP_LOGW(t->tag, "CONFIG_UART_ISR_IN_IRAM is off: UART input is lost while the flash is "
	                 "written (staged uploads, settings)");
#endif
	e = uart_driver_install(t->uart, TARGET_UART_RX_RING, 0, 0, NULL, intr_flags);
	if (e == ESP_OK)
		e = uart_param_config(t->uart, &uc);
	if (e == ESP_OK)
		e = uart_set_pin(t->uart, ts->pins.tx, ts->pins.rx, UART_PIN_NO_CHANGE,
		                 UART_PIN_NO_CHANGE);
#endif
	if (e != ESP_OK) {
		ESP_LOGE(t->tag, "uart%d: %s", pp->uart, esp_err_to_name(e));
		return -1;
	}

	bridge_settings_default(&t->bset);
	t->bset.line_map = (enum bridge_line_map)ts->line_map;
	t->bset.auto_boot = (enum bridge_auto_boot)ts->auto_boot;
	t->bset.settle_ms = ts->settle_ms;
	t->bset.uart.baud = ts->baud; /* 8N1 from bridge_settings_default */
	if (bridge_init(&t->br, &espstm_hal, t, &t->bset) < 0) {
		ESP_LOGE(t->tag, "uart%d: %u baud not supported", pp->uart, (unsigned)ts->baud);
		return -1;
	}
	stm32_isp_init(&t->isp, &espstm_hal, t); /* same HAL: UART, pins, clock, log */
	t->ready = 1;
#if CONFIG_IDF_TARGET_ESP8266
	ESP_LOGI(t->tag,
	         "uart0 (TX GPIO15, RX GPIO13 once swapped); NRST GPIO%d (open drain), "
	         "BOOT0 GPIO%d; %u baud",
	         t->nrst_gpio, t->boot0_gpio, (unsigned)ts->baud);
	if (ts->pins.tx != 15 || ts->pins.rx != 13)
		ESP_LOGW(t->tag,
		         "ESP8266: TX/RX are fixed (GPIO15/GPIO13); settings tx %d rx %d ignored",
		         ts->pins.tx, ts->pins.rx);
#else
	ESP_LOGI(
	    t->tag, "uart%d: TX GPIO%d, RX GPIO%d; NRST GPIO%d (open drain), BOOT0 GPIO%d; %u baud",
	    pp->uart, ts->pins.tx, ts->pins.rx, t->nrst_gpio, t->boot0_gpio, (unsigned)ts->baud);
#endif
	return 0;
}

#if CONFIG_IDF_TARGET_ESP8266
int target_uart0_swap(const char *banner)
{
	struct espstm_target *t = &espstm_targets[0];
	if (!t->ready || t->uart != UART_NUM_0)
		return 0;
#if CONFIG_ESPSTM_UART0_SWAP
	/* Still on GPIO1 (the USB-serial chip of a NodeMCU / D1 mini): tell whoever watches it
	 * where the log went and how to reach the device, then hand the pins over. */
	if (banner && banner[0]) {
		uart_write_bytes(t->uart, banner, strlen(banner));
		uart_wait_tx_done(t->uart, pdMS_TO_TICKS(500));
	}
	/* UART0 on GPIO13 (RX, MTCK) / GPIO15 (TX, MTDO): the ROM's boot text (74880 baud on
	 * GPIO1) never reaches the STM32. */
	esp_err_t e = uart_enable_swap();
	if (e != ESP_OK) {
		ESP_LOGE(t->tag, "uart_enable_swap: %s", esp_err_to_name(e));
		return -1;
	}
	uart_flush_input(t->uart); /* whatever came in on GPIO3 */
	ESP_LOGI(t->tag, "uart0 swapped to GPIO15 (TX) / GPIO13 (RX)");
#else
	(void)banner;
	ESP_LOGE(t->tag,
	         "uart0 NOT swapped: the STM32 shares GPIO1/GPIO3 with the ROM's boot text");
#endif
	return 0;
}
#endif

void target_set_locked(int on)
{
	for (unsigned i = 0; i < ESPSTM_MAX_TARGETS; i++) {
		if (target_lock(i) < 0)
			continue;
		struct espstm_target *t = &espstm_targets[i];
#ifdef FLASH_JOB_SIG_MAX /* the core's bridge has locked mode (bridge_settings.locked) */
		t->bset.locked = on;
		bridge_update_settings(&t->br, &t->bset);
#else
		(void)t;
		(void)on;
#endif
		target_unlock(i);
	}
}

int target_lock(unsigned index)
{
	if (index >= ESPSTM_MAX_TARGETS || !espstm_targets[index].ready)
		return -1;
	xSemaphoreTake(espstm_targets[index].lock, portMAX_DELAY);
	return 0;
}

void target_unlock(unsigned index)
{
	xSemaphoreGive(espstm_targets[index].lock);
}

struct bridge *target_bridge(unsigned index)
{
	return index < ESPSTM_MAX_TARGETS && espstm_targets[index].ready ? &espstm_targets[index].br
	                                                                 : NULL;
}

struct stm32_isp *target_isp(unsigned index)
{
	return index < ESPSTM_MAX_TARGETS && espstm_targets[index].ready
	           ? &espstm_targets[index].isp
	           : NULL;
}

void target_flash_claim(unsigned index, int on)
{
	if (index >= ESPSTM_MAX_TARGETS || !espstm_targets[index].ready)
		return;
	struct espstm_target *t = &espstm_targets[index];
	on = on != 0;
	if (t->isp_claimed == on)
		return;
	t->isp_claimed = on;
	wifi_active_hold(on ? 1 : -1); /* no modem sleep while a flash or its staging runs */
	if (on)
		t->ulen = 0; /* application output read before the flash: nobody's */
	bridge_suspend(&t->br, on);
	ESP_LOGI(t->tag, "%s",
	         on ? "flash: UART and pins lent to the STM32 flasher"
	            : "flash: UART and pins back to the RFC 2217 session");
}

void target_flash_wait(unsigned index, uint32_t ms)
{
	if (index >= ESPSTM_MAX_TARGETS || !espstm_targets[index].ready)
		return;
	TickType_t ticks = pdMS_TO_TICKS(ms);
	xSemaphoreTake(espstm_targets[index].flash_evt, ticks ? ticks : 1);
}
