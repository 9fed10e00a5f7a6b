/* SPDX-License-Identifier: MIT */
/* Unit tests for firmware/core/legacy.c (seed control port r/u/e) and the bridge actions
 * it runs, with a fake HAL (clock, UART, pins, socket) in the style of bridge_test.c. */
#include "legacy.h"
#include "unit.h"

#include <stdio.h>
#include <string.h>

struct lfake {
	uint32_t now;
	struct hal_uart_cfg cfg;
	uint8_t uart[1024];
	size_t uart_len;
	uint8_t net[1024];
	size_t net_len;
	char ev[2048]; /* pin events with times: "B1@1000 N0@1000 N1@1010 " */
	char log[2048];
	int nrst, boot0, cfgs;
	size_t tx_pending;
};

static struct lfake LF;
static struct bridge LB;

static void lev(const char *fmt, unsigned a, unsigned b)
{
	size_t n = strlen(LF.ev);
	snprintf(LF.ev + n, sizeof(LF.ev) - n, fmt, a, b);
}

static int l_cfg(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	LF.cfg = *c;
	LF.cfgs++;
	return 0;
}

static size_t l_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_lt(LF.uart_len, sizeof(LF.uart));
		if (LF.uart_len < 4)
			lev("TX%02x@%u ", p[i], LF.now);
		LF.uart[LF.uart_len++] = p[i];
	}
	return n;
}

static void l_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	ck_assert_uint_eq(LF.tx_pending, 0); /* pins never move under a sending UART */
	if (pin == HAL_PIN_NRST)
		LF.nrst = level;
	else
		LF.boot0 = level;
	lev(pin == HAL_PIN_NRST ? "N%u@%u " : "B%u@%u ", (unsigned)level, LF.now);
}

static uint32_t l_now(void *ctx)
{
	(void)ctx;
	return LF.now;
}

static size_t l_send(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	ck_assert_uint_le(LF.net_len + n, sizeof(LF.net));
	memcpy(LF.net + LF.net_len, p, n);
	LF.net_len += n;
	return n;
}

static void l_log(void *ctx, enum hal_log_level level, const char *line)
{
	(void)ctx;
	(void)level;
	size_t n = strlen(LF.log);
	snprintf(LF.log + n, sizeof(LF.log) - n, "%s\n", line);
}

static size_t l_pending(void *ctx)
{
	(void)ctx;
	return LF.tx_pending;
}

static const struct hal_ops lfake_hal = {
    .uart_config = l_cfg,
    .uart_write = l_write,
    .gpio_set = l_gpio,
    .now_ms = l_now,
    .net_send = l_send,
    .log = l_log,
    .uart_tx_pending = l_pending,
};

/* User framing 57600 8N1 so 'e' visibly returns to the user baud. */
static void lsetup(enum bridge_auto_boot ab)
{
	memset(&LF, 0, sizeof(LF));
	LF.now = 1000;
	struct bridge_settings s;
	bridge_settings_default(&s);
	s.auto_boot = ab;
	s.uart.baud = 57600;
	ck_assert_int_eq(bridge_init(&LB, &lfake_hal, NULL, &s), 0);
	LF.ev[0] = '\0';
	LF.log[0] = '\0';
}

/* Send one control byte; returns the answer (static buffer). */
static const char *ctl(uint8_t c)
{
	static char ans[LEGACY_ANSWER_MAX];
	size_t n = legacy_control_byte(&LB, c, ans, sizeof(ans));
	ck_assert_uint_eq(n, strlen(ans));
	return ans;
}

static void advance(uint32_t ms)
{
	for (uint32_t i = 0; i < ms; i++) {
		LF.now++;
		bridge_poll(&LB);
	}
}

static void raw_client(void)
{
	bridge_connect(&LB);
	bridge_force_raw(&LB);
	ck_assert_int_eq(bridge_mode(&LB), BRIDGE_RAW);
}

static void assert_cfg(uint32_t baud, uint8_t parity)
{
	ck_assert_uint_eq(LF.cfg.baud, baud);
	ck_assert_uint_eq(LF.cfg.data_bits, 8);
	ck_assert_uint_eq(LF.cfg.parity, parity);
	ck_assert_uint_eq(LF.cfg.stop, RFC2217_STOPSIZE_1);
}

START_TEST(u_enters_bootloader)
{
	lsetup(BRIDGE_AUTO_OFF);
	raw_client();
	ck_assert_str_eq(ctl('u'), "OK boot 115200 8E1\r\n");
	assert_cfg(115200, RFC2217_PARITY_EVEN);
	ck_assert_str_eq(LF.ev, "B1@1000 N0@1000 ");
	/* data from the raw client waits for the release and the settle time */
	const uint8_t sync = 0x7F;
	ck_assert_uint_eq(bridge_from_net(&LB, &sync, 1), 1);
	advance(100);
	ck_assert_str_eq(LF.ev, "B1@1000 N0@1000 N1@1010 TX7f@1060 ");
	ck_assert_int_eq(LF.boot0, 1);
	ck_assert_int_eq(LF.nrst, 1);
}
END_TEST

START_TEST(e_runs_application)
{
	lsetup(BRIDGE_AUTO_OFF);
	ctl('u');
	advance(100);
	LF.ev[0] = '\0';
	ck_assert_str_eq(ctl('e'), "OK run 57600 8N1\r\n");
	assert_cfg(57600, RFC2217_PARITY_NONE);
	advance(100);
	ck_assert_str_eq(LF.ev, "B0@1100 N0@1100 N1@1110 ");
	ck_assert_int_eq(LF.boot0, 0);
	ck_assert_int_eq(LF.nrst, 1);
}
END_TEST

START_TEST(r_pulses_reset_only)
{
	lsetup(BRIDGE_AUTO_OFF);
	int cfgs = LF.cfgs;
	ck_assert_str_eq(ctl('r'), "OK reset\r\n");
	advance(50);
	ck_assert_str_eq(LF.ev, "N0@1000 N1@1010 ");
	ck_assert_int_eq(LF.cfgs, cfgs); /* framing untouched */
	/* in the bootloader, r keeps BOOT0 high: the chip restarts in the bootloader */
	ctl('u');
	advance(100);
	LF.ev[0] = '\0';
	ck_assert_str_eq(ctl('r'), "OK reset\r\n");
	advance(50);
	ck_assert_str_eq(LF.ev, "N0@1150 N1@1160 ");
	ck_assert_int_eq(LF.boot0, 1);
	assert_cfg(115200, RFC2217_PARITY_EVEN);
}
END_TEST

START_TEST(ignored_bytes)
{
	lsetup(BRIDGE_AUTO_OFF);
	ck_assert_str_eq(ctl('\r'), "");
	ck_assert_str_eq(ctl('\n'), "");
	ck_assert_str_eq(ctl(0), "");
	ck_assert_str_eq(LF.log, ""); /* line ends are not even logged */
	ck_assert_str_eq(ctl('x'), "");
	ck_assert_str_eq(ctl('U'), ""); /* case-sensitive, as the seed */
	ck_assert_str_eq(ctl(0xFF), "");
	ck_assert_ptr_nonnull(strstr(LF.log, "'x' ignored"));
	ck_assert_ptr_nonnull(strstr(LF.log, "'U' ignored"));
	ck_assert_ptr_nonnull(strstr(LF.log, "0xff ignored"));
	advance(50);
	ck_assert_str_eq(LF.ev, "");
}
END_TEST

/* The seed's workflow: u, then stm32flash connections one after another on the raw port,
 * then e. A raw client's disconnect keeps the bootloader and 8E1. */
START_TEST(bootloader_pinned_across_disconnect)
{
	lsetup(BRIDGE_AUTO_SYNC);
	ctl('u');
	advance(100);
	raw_client();
	LF.ev[0] = '\0';
	const uint8_t sync = 0x7F; /* auto-boot sync is disarmed: no second reset */
	ck_assert_uint_eq(bridge_from_net(&LB, &sync, 1), 1);
	advance(10);
	ck_assert_str_eq(LF.ev, "TX7f@1100 ");
	bridge_disconnect(&LB);
	advance(100);
	ck_assert_str_eq(LF.ev, "TX7f@1100 ");
	assert_cfg(115200, RFC2217_PARITY_EVEN);
	ck_assert_ptr_nonnull(strstr(LF.log, "kept after the disconnect"));
	raw_client();
	bridge_disconnect(&LB);
	advance(10);
	assert_cfg(115200, RFC2217_PARITY_EVEN);
	ctl('e');
	advance(100);
	assert_cfg(57600, RFC2217_PARITY_NONE);
	ck_assert_int_eq(LF.boot0, 0);
	/* unpinned: after e, a client disconnect restores as before (nothing to do here) */
	LF.ev[0] = '\0';
	raw_client();
	bridge_disconnect(&LB);
	advance(100);
	ck_assert_str_eq(LF.ev, "");
}
END_TEST

/* An action waits until the UART has sent what it holds. */
START_TEST(action_waits_for_uart)
{
	lsetup(BRIDGE_AUTO_OFF);
	LF.tx_pending = 8;
	int cfgs = LF.cfgs;
	ck_assert_str_eq(ctl('u'), "OK boot 115200 8E1\r\n");
	advance(5);
	ck_assert_str_eq(LF.ev, "");
	ck_assert_int_eq(LF.cfgs, cfgs);
	ck_assert_int_ge(bridge_next_ms(&LB), 0);
	LF.tx_pending = 0;
	advance(1);
	ck_assert_str_eq(LF.ev, "B1@1006 N0@1006 ");
	assert_cfg(115200, RFC2217_PARITY_EVEN);
}
END_TEST

/* The raw port: 0xFF (IAC) is data both ways, even as the first byte. */
START_TEST(force_raw_passes_iac)
{
	lsetup(BRIDGE_AUTO_OFF);
	raw_client();
	const uint8_t in[] = {0xFF, 0xFB, 0x2C};
	ck_assert_uint_eq(bridge_from_net(&LB, in, sizeof(in)), sizeof(in));
	advance(1);
	ck_assert_uint_eq(LF.uart_len, 3);
	ck_assert_mem_eq(LF.uart, in, 3);
	ck_assert_uint_eq(LF.net_len, 0); /* no Telnet offer */
	const uint8_t out[] = {0x79, 0xFF, 0x00};
	ck_assert_uint_eq(bridge_from_uart(&LB, out, sizeof(out)), sizeof(out));
	ck_assert_uint_eq(LF.net_len, 3);
	ck_assert_mem_eq(LF.net, out, 3);
	/* force_raw has no effect on a session that already chose its mode */
	bridge_disconnect(&LB);
	bridge_force_raw(&LB);
	ck_assert_int_eq(bridge_mode(&LB), BRIDGE_IDLE);
}
END_TEST

/* Actions work without any client, and a full queue is answered "ERR busy". */
START_TEST(no_client_and_busy)
{
	lsetup(BRIDGE_AUTO_OFF);
	ck_assert_int_eq(bridge_connected(&LB), 0);
	ck_assert_str_eq(ctl('u'), "OK boot 115200 8E1\r\n");
	advance(100);
	ck_assert_int_eq(LF.boot0, 1);
	LF.tx_pending = 1; /* nothing runs: the queue fills */
	int ok = 0, busy = 0;
	for (int i = 0; i < BRIDGE_OPS + 4; i++) {
		const char *a = ctl('r');
		if (!strcmp(a, "OK reset\r\n"))
			ok++;
		else if (!strcmp(a, "ERR busy\r\n"))
			busy++;
	}
	ck_assert_int_eq(ok, BRIDGE_OPS - 1);
	ck_assert_int_eq(busy, 5);
	/* a client can still connect and leave (its disconnect needs one queue entry) */
	raw_client();
	bridge_disconnect(&LB);
	LF.tx_pending = 0;
	advance(2000);
	ck_assert_int_eq(LF.nrst, 1);
	ck_assert_int_eq(bridge_tx_pending(&LB), 0);
}
END_TEST

static char emitted[512];

static void emit(void *ctx, const char *line, size_t len)
{
	(void)ctx;
	size_t n = strlen(emitted);
	ck_assert_uint_lt(n + len, sizeof(emitted));
	memcpy(emitted + n, line, len);
	emitted[n + len] = '\0';
}

static int ctl_in(struct legacy_ctl *c, const char *s)
{
	return legacy_control_input(c, &LB, (const uint8_t *)s, strlen(s), emit, NULL);
}

/* The finding: a browser's form POST to the control port ran 11 reset/boot/run actions
 * (every r, u and e of its text). Now an HTTP-looking connection runs nothing. */
START_TEST(http_request_runs_nothing)
{
	static const char req[] = "POST / HTTP/1.1\r\nHost: 127.0.0.1:1235\r\n"
	                          "User-Agent: Mozilla/5.0\r\nContent-Type: text/plain\r\n"
	                          "Content-Length: 7\r\n\r\nuererer";
	lsetup(BRIDGE_AUTO_OFF);
	emitted[0] = '\0';
	struct legacy_ctl c;
	legacy_ctl_init(&c);
	ck_assert_int_eq(ctl_in(&c, req), 1);
	ck_assert_int_eq(ctl_in(&c, "rue"), 1); /* and nothing later either */
	advance(500);
	ck_assert_str_eq(LF.ev, "");
	ck_assert_str_eq(emitted, "");
	ck_assert_ptr_null(strstr(LF.log, "control 'r'"));
	ck_assert_ptr_nonnull(strstr(LF.log, "HTTP request"));
	/* split over reads, one byte at a time */
	legacy_ctl_init(&c);
	ck_assert_int_eq(ctl_in(&c, "G"), 0);
	ck_assert_int_eq(ctl_in(&c, "E"), 0);
	ck_assert_int_eq(ctl_in(&c, "T"), 0);
	ck_assert_int_eq(ctl_in(&c, " /ru"), 1);
	advance(500);
	ck_assert_str_eq(LF.ev, "");
	ck_assert_str_eq(emitted, "");
}
END_TEST

/* Commands still work, also right after a held prefix that turned out not to be HTTP. */
START_TEST(commands_pass_the_guard)
{
	lsetup(BRIDGE_AUTO_OFF);
	emitted[0] = '\0';
	struct legacy_ctl c;
	legacy_ctl_init(&c);
	ck_assert_int_eq(ctl_in(&c, "r\n"), 0);
	ck_assert_str_eq(emitted, "OK reset\r\n");
	advance(50);
	ck_assert_str_eq(LF.ev, "N0@1000 N1@1010 ");
	emitted[0] = '\0';
	legacy_ctl_init(&c);
	ck_assert_int_eq(ctl_in(&c, "P"), 0); /* could be POST: held */
	ck_assert_str_eq(emitted, "");
	ck_assert_int_eq(ctl_in(&c, "u"), 0); /* "Pu": not HTTP: both run ('P' ignored) */
	ck_assert_str_eq(emitted, "OK boot 115200 8E1\r\n");
	ck_assert_int_eq(ctl_in(&c, "e"), 0);
	ck_assert_str_eq(emitted, "OK boot 115200 8E1\r\nOK run 57600 8N1\r\n");
}
END_TEST

static Suite *legacy_suite(void)
{
	Suite *s = suite_create("legacy");
	TCase *tc = tcase_create("control");
	tcase_add_test(tc, u_enters_bootloader);
	tcase_add_test(tc, e_runs_application);
	tcase_add_test(tc, r_pulses_reset_only);
	tcase_add_test(tc, ignored_bytes);
	tcase_add_test(tc, bootloader_pinned_across_disconnect);
	tcase_add_test(tc, action_waits_for_uart);
	tcase_add_test(tc, force_raw_passes_iac);
	tcase_add_test(tc, no_client_and_busy);
	tcase_add_test(tc, http_request_runs_nothing);
	tcase_add_test(tc, commands_pass_the_guard);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(legacy_suite)
