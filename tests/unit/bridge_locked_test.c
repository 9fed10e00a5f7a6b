/* SPDX-License-Identifier: MIT */
/* Locked mode of the bridge session (bridge_settings.locked, bridge.h): the client's DTR/RTS
 * never raise BOOT0 (NRST still pulses), auto-boot is off, BRIDGE_ACT_BOOTLOADER and legacy
 * 'u' are refused; the same steps unlocked do enter the bootloader (so the checks can
 * fail). A small fake HAL: clock, pins, UART bytes. */
#include "bridge.h"
#include "legacy.h"
#include "unit.h"

#include <errno.h>
#include <string.h>

static struct {
	uint32_t now;
	int nrst, boot0, boot0_raised;
	uint8_t uart[256];
	size_t uart_len;
} K;
static struct bridge KB;

static int k_cfg(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	(void)c;
	return 0;
}
static size_t k_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n && K.uart_len < sizeof(K.uart); i++)
		K.uart[K.uart_len++] = p[i];
	return n;
}
static void k_purge(void *ctx, int rx, int tx)
{
	(void)ctx;
	(void)rx;
	(void)tx;
}
static void k_break(void *ctx, int on)
{
	(void)ctx;
	(void)on;
}
static void k_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	if (pin == HAL_PIN_NRST) {
		K.nrst = level;
	} else {
		K.boot0 = level;
		K.boot0_raised |= level;
	}
}
static uint32_t k_now(void *ctx)
{
	(void)ctx;
	return K.now;
}
static size_t k_send(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)p;
	return n;
}
static size_t k_pending(void *ctx)
{
	(void)ctx;
	return 0;
}
static const struct hal_ops k_hal = {.uart_tx_pending = k_pending,
                                     .uart_config = k_cfg,
                                     .uart_write = k_write,
                                     .uart_purge = k_purge,
                                     .uart_break = k_break,
                                     .gpio_set = k_gpio,
                                     .now_ms = k_now,
                                     .net_send = k_send};

static void k_setup(int locked, enum bridge_line_map map)
{
	memset(&K, 0, sizeof(K));
	K.now = 1000;
	struct bridge_settings s;
	bridge_settings_default(&s);
	s.line_map = map;
	s.locked = locked;
	ck_assert_int_eq(bridge_init(&KB, &k_hal, NULL, &s), 0);
	bridge_connect(&KB);
	/* the client offers COM-PORT-OPTION (RFC 2217) */
	static const uint8_t hello[] = {0xFF, TN_WILL, 44, 0xFF, TN_DO, 44};
	ck_assert_uint_eq(bridge_from_net(&KB, hello, sizeof(hello)), sizeof(hello));
}

static void k_run(uint32_t ms)
{
	for (uint32_t i = 0; i < ms; i++) {
		K.now++;
		bridge_poll(&KB);
	}
}

/* IAC SB COM-PORT-OPTION code value IAC SE */
static void k_sb(uint8_t code, uint8_t value)
{
	const uint8_t b[] = {0xFF, TN_SB, 44, code, value, 0xFF, TN_SE};
	ck_assert_uint_eq(bridge_from_net(&KB, b, sizeof(b)), sizeof(b));
	k_run(5);
}

/* stm32flash's entry on the direct map: RTS on (BOOT0), DTR on (NRST low), DTR off. */
static int dtr_rts_entry(int locked)
{
	k_setup(locked, BRIDGE_MAP_DIRECT);
	k_sb(5, 11); /* SET-CONTROL RTS on */
	k_sb(5, 8);  /* DTR on: NRST low */
	ck_assert_int_eq(K.nrst, 0);
	k_sb(5, 9); /* DTR off: released */
	k_run(100);
	ck_assert_int_eq(K.nrst, 1); /* the reset itself works either way */
	return K.boot0_raised;
}

START_TEST(locked_dtr_rts)
{
	ck_assert_int_eq(dtr_rts_entry(0), 1);
	ck_assert_int_eq(dtr_rts_entry(1), 0);
	/* the esptool map: DTR alone would raise BOOT0 */
	k_setup(1, BRIDGE_MAP_ESPTOOL);
	k_sb(5, 11);
	k_sb(5, 8);
	k_sb(5, 12);
	k_run(300);
	ck_assert_int_eq(K.boot0_raised, 0);
}
END_TEST

static int auto_boot_entry(int locked)
{
	k_setup(locked, BRIDGE_MAP_NONE);
	k_sb(3, 3); /* SET-PARITY EVEN: 8E1 arms auto-boot (sync) */
	const uint8_t sync = 0x7F;
	ck_assert_uint_eq(bridge_from_net(&KB, &sync, 1), 1);
	k_run(200);
	return K.boot0_raised;
}

START_TEST(locked_auto_boot)
{
	ck_assert_int_eq(auto_boot_entry(0), 1);
	ck_assert_int_eq(auto_boot_entry(1), 0);
	/* the 0x7F went to the application instead */
	ck_assert_uint_eq(K.uart_len, 1);
	ck_assert_uint_eq(K.uart[0], 0x7F);
	/* parity mode: 8E1 alone */
	k_setup(1, BRIDGE_MAP_NONE);
	KB.set.auto_boot = BRIDGE_AUTO_PARITY;
	k_sb(3, 3);
	k_run(200);
	ck_assert_int_eq(K.boot0_raised, 0);
}
END_TEST

START_TEST(locked_actions)
{
	char ans[LEGACY_ANSWER_MAX];
	k_setup(1, BRIDGE_MAP_DIRECT);
	ck_assert_int_eq(bridge_action(&KB, BRIDGE_ACT_BOOTLOADER), -EPERM);
	ck_assert_uint_gt(legacy_control_byte(&KB, 'u', ans, sizeof(ans)), 0);
	ck_assert_str_eq(ans, "ERR locked: signed images only\r\n");
	ck_assert_int_eq(bridge_action(&KB, BRIDGE_ACT_RESET), 0);
	ck_assert_int_eq(bridge_action(&KB, BRIDGE_ACT_RUN), 0);
	k_run(200);
	ck_assert_int_eq(K.boot0_raised, 0);
	ck_assert_int_eq(K.nrst, 1);
	/* unlocked: the same 'u' enters the bootloader */
	k_setup(0, BRIDGE_MAP_DIRECT);
	ck_assert_uint_gt(legacy_control_byte(&KB, 'u', ans, sizeof(ans)), 0);
	ck_assert_str_eq(ans, "OK boot 115200 8E1\r\n");
	k_run(200);
	ck_assert_int_eq(K.boot0_raised, 1);
}
END_TEST

static Suite *bridge_locked_suite(void)
{
	Suite *s = suite_create("bridge_locked");
	TCase *tc = tcase_create("locked");
	tcase_add_test(tc, locked_dtr_rts);
	tcase_add_test(tc, locked_auto_boot);
	tcase_add_test(tc, locked_actions);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(bridge_locked_suite)
