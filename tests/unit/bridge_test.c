/* SPDX-License-Identifier: MIT */
/* Unit tests for firmware/core/bridge.c with a fake HAL (clock, UART, pins, socket). */
#include "bridge.h"
#include "unit.h"
#include "version.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct fake {
	uint32_t now;
	struct hal_uart_cfg cfg;
	size_t uart_space; /* bytes the UART accepts per call */
	uint8_t uart[16384];
	size_t uart_len;
	uint8_t net[16384];
	size_t net_len;
	size_t net_space; /* bytes the socket accepts per call */
	char ev[4096];    /* pin and UART events with times */
	int nrst, boot0, brk, purges;
	int reject_flow;
	size_t tx_pending; /* bytes "still leaving" the UART (uart_tx_pending) */
	int pend_auto;     /* 1: bytes written add to tx_pending */
	int busy_changes;  /* framing or pin changes made while tx_pending != 0 */
	int hw_calls;      /* uart_config/write/purge/break and gpio_set calls */
};

static struct fake F;
static struct bridge B;

static void ev_add(const char *fmt, unsigned a, unsigned b)
{
	size_t n = strlen(F.ev);
	snprintf(F.ev + n, sizeof(F.ev) - n, fmt, a, b);
}

static int f_cfg(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	if (F.reject_flow && c->flow != RFC2217_CONTROL_FLOW_NONE)
		return -ENOTSUP;
	if (F.tx_pending)
		F.busy_changes++;
	F.hw_calls++;
	F.cfg = *c;
	return 0;
}

static size_t f_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	if (n > F.uart_space)
		n = F.uart_space;
	F.hw_calls++;
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_lt(F.uart_len, sizeof(F.uart));
		F.uart[F.uart_len++] = p[i];
		if (F.uart_len <= 4)
			ev_add("TX%02x@%u ", p[i], F.now);
	}
	if (F.pend_auto)
		F.tx_pending += n;
	return n;
}

static void f_purge(void *ctx, int rx, int tx)
{
	(void)ctx;
	F.hw_calls++;
	F.purges = rx * 1 + tx * 2;
}

static void f_break(void *ctx, int on)
{
	(void)ctx;
	F.hw_calls++;
	F.brk = on;
}

static void f_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	if (F.tx_pending)
		F.busy_changes++;
	F.hw_calls++;
	if (pin == HAL_PIN_NRST)
		F.nrst = level;
	else
		F.boot0 = level;
	ev_add(pin == HAL_PIN_NRST ? "N%u@%u " : "B%u@%u ", (unsigned)level, F.now);
}

static uint32_t f_now(void *ctx)
{
	(void)ctx;
	return F.now;
}

static size_t f_send(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	if (n > F.net_space)
		n = F.net_space;
	ck_assert_uint_le(F.net_len + n, sizeof(F.net));
	memcpy(F.net + F.net_len, p, n);
	F.net_len += n;
	return n;
}

static size_t f_pending(void *ctx)
{
	(void)ctx;
	return F.tx_pending;
}

static const struct hal_ops fake_hal = {
    .uart_tx_pending = f_pending,
    .uart_config = f_cfg,
    .uart_write = f_write,
    .uart_purge = f_purge,
    .uart_break = f_break,
    .gpio_set = f_gpio,
    .now_ms = f_now,
    .net_send = f_send,
    .log = NULL,
};

static void setup_with(enum bridge_auto_boot ab, enum bridge_line_map map)
{
	memset(&F, 0, sizeof(F));
	F.now = 1000;
	F.uart_space = SIZE_MAX;
	F.net_space = SIZE_MAX;
	struct bridge_settings s;
	bridge_settings_default(&s);
	s.auto_boot = ab;
	s.line_map = map;
	ck_assert_int_eq(bridge_init(&B, &fake_hal, NULL, &s), 0);
	F.ev[0] = '\0';
	bridge_connect(&B);
}

static void feed(const uint8_t *p, size_t n)
{
	ck_assert_uint_eq(bridge_from_net(&B, p, n), n);
}
#define FEED(...)                                                                                  \
	do {                                                                                       \
		const uint8_t b_[] = {__VA_ARGS__};                                                \
		feed(b_, sizeof(b_));                                                              \
	} while (0)

/* Expect exactly these bytes as the next network output, and consume them. */
static size_t net_pos;
static void expect_net(const uint8_t *p, size_t n)
{
	ck_assert_uint_ge(F.net_len - net_pos, n);
	ck_assert_mem_eq(F.net + net_pos, p, n);
	net_pos += n;
}
#define EXPECT(...)                                                                                \
	do {                                                                                       \
		const uint8_t b_[] = {__VA_ARGS__};                                                \
		expect_net(b_, sizeof(b_));                                                        \
	} while (0)
#define EXPECT_NOTHING() ck_assert_uint_eq(F.net_len, net_pos)

#define IAC     0xFF
#define SB(...) IAC, TN_SB, 44, __VA_ARGS__, IAC, TN_SE

/* pyserial's opening: DO ECHO, WILL SGA, DO SGA, DO COM-PORT, WILL COM-PORT. */
static void negotiate_pyserial(void)
{
	net_pos = 0;
	FEED(IAC, TN_DO, 1, IAC, TN_WILL, 3, IAC, TN_DO, 3, IAC, TN_DO, 44, IAC, TN_WILL, 44);
	/* our offer */
	EXPECT(IAC, TN_WILL, 0, IAC, TN_DO, 0, IAC, TN_WILL, 3, IAC, TN_WILL, 44);
	/* answers: WONT ECHO, DO SGA, (DO SGA acks our WILL), (DO COM-PORT acks ours) */
	EXPECT(IAC, TN_WONT, 1, IAC, TN_DO, 3);
	EXPECT(SB(107, 0xB0)); /* NOTIFY-MODEMSTATE once COM-PORT is agreed */
	EXPECT(IAC, TN_DO, 44);
	/* pyserial accepts our BINARY offers: no further answers (no loop) */
	FEED(IAC, TN_DO, 0, IAC, TN_WILL, 0);
	EXPECT_NOTHING();
	ck_assert_int_eq(bridge_mode(&B), BRIDGE_TELNET);
}

/* The bridge (RFC 2217 SIGNATURE, /api/status, mDNS TXT) and the host tools give one
 * version. */
START_TEST(one_version)
{
	ck_assert_str_eq(BRIDGE_VERSION, ESPSTM_VERSION);
	ck_assert_str_eq(BRIDGE_SIGNATURE, "espstm-bridge " ESPSTM_VERSION);
}
END_TEST

START_TEST(negotiation)
{
	setup_with(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	/* unknown options refused once, repeated refusals never answered */
	FEED(IAC, TN_WILL, 24, IAC, TN_DO, 31, IAC, TN_WONT, 24, IAC, TN_DONT, 31);
	EXPECT(IAC, TN_DONT, 24, IAC, TN_WONT, 31);
	EXPECT_NOTHING();
	/* DONT BINARY: we stop and say WONT once; a repeat is not answered */
	FEED(IAC, TN_DONT, 0, IAC, TN_DONT, 0);
	EXPECT(IAC, TN_WONT, 0);
	EXPECT_NOTHING();
	/* the modem state is not repeated */
	FEED(IAC, TN_DO, 44);
	EXPECT_NOTHING();
}
END_TEST

START_TEST(set_answers)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	FEED(SB(1, 0, 0, 0x25, 0x80));
	EXPECT(SB(101, 0, 0, 0x25, 0x80));
	ck_assert_uint_eq(F.cfg.baud, 9600);
	FEED(SB(1, 0, 0, 0, 0)); /* query */
	EXPECT(SB(101, 0, 0, 0x25, 0x80));
	FEED(SB(1, 0, 0x01, 0xFF, 0xFF, 0xFF, 0xFF)); /* 0x0001FFFF, 0xFF doubled */
	EXPECT(SB(101, 0, 0x01, 0xFF, 0xFF, 0xFF, 0xFF));
	FEED(SB(2, 7), SB(3, 3), SB(4, 2));
	EXPECT(SB(102, 7), SB(103, 3), SB(104, 2));
	ck_assert_uint_eq(F.cfg.data_bits, 7);
	ck_assert_uint_eq(F.cfg.parity, 3);
	ck_assert_uint_eq(F.cfg.stop, 2);
	FEED(SB(2, 0), SB(3, 0), SB(4, 0));
	EXPECT(SB(102, 7), SB(103, 3), SB(104, 2));
	/* invalid values: current value back */
	FEED(SB(2, 9), SB(3, 6), SB(4, 4));
	EXPECT(SB(102, 7), SB(103, 3), SB(104, 2));
	FEED(SB(3, 5), SB(3, 4), SB(3, 2), SB(3, 1), SB(4, 3), SB(4, 1));
	EXPECT(SB(103, 5), SB(103, 4), SB(103, 2), SB(103, 1), SB(104, 3), SB(104, 1));
	/* SET-CONTROL */
	FEED(SB(5, 8));
	EXPECT(SB(105, 8));
	ck_assert_int_eq(F.nrst, 0);
	FEED(SB(5, 7), SB(5, 11), SB(5, 10));
	EXPECT(SB(105, 8), SB(105, 11), SB(105, 11));
	ck_assert_int_eq(F.boot0, 1);
	FEED(SB(5, 9), SB(5, 12), SB(5, 7), SB(5, 10));
	/* NRST release starts the settle hold: the following commands wait 50 ms */
	EXPECT(SB(105, 9));
	EXPECT_NOTHING();
	F.now += 50;
	bridge_poll(&B);
	EXPECT(SB(105, 12), SB(105, 9), SB(105, 12));
	ck_assert_int_eq(F.nrst, 1);
	ck_assert_int_eq(F.boot0, 0);
	FEED(SB(5, 5), SB(5, 4), SB(5, 6), SB(5, 4));
	EXPECT(SB(105, 5), SB(105, 5), SB(105, 6), SB(105, 6));
	ck_assert_int_eq(F.brk, 0);
	FEED(SB(5, 3), SB(5, 0), SB(5, 1), SB(5, 0), SB(5, 2), SB(5, 13), SB(5, 14));
	EXPECT(SB(105, 3), SB(105, 3), SB(105, 1), SB(105, 1), SB(105, 2), SB(105, 15),
	       SB(105, 14));
	F.reject_flow = 1;
	FEED(SB(5, 3), SB(5, 17));
	EXPECT(SB(105, 1), SB(105, 1));
	/* PURGE-DATA, masks, SIGNATURE, modem state poll */
	FEED(SB(12, 1), SB(12, 2), SB(12, 3), SB(12, 4));
	EXPECT(SB(112, 1), SB(112, 2), SB(112, 3));
	ck_assert_int_eq(F.purges, 3);
	FEED(SB(10, 0x0F), SB(11, 0xF0), SB(7));
	EXPECT(SB(110, 0x0F), SB(111, 0xF0), SB(107, 0xB0));
	FEED(IAC, TN_SB, 44, 0, IAC, TN_SE);
	EXPECT(SB(100, 'e', 's', 'p', 's', 't', 'm', '-', 'b', 'r', 'i', 'd', 'g', 'e', ' ', '0',
	          '.', '2', '.', '0'));
	/* malformed and server codes: ignored, no crash */
	FEED(SB(1, 1, 2), SB(101, 0, 0, 0, 1), SB(50, 1), IAC, TN_SB, 44, IAC, TN_SE);
	EXPECT_NOTHING();
}
END_TEST

START_TEST(data_iac_doubling)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	FEED('a', IAC, IAC, 'b', IAC, IAC, IAC, IAC);
	ck_assert_uint_eq(F.uart_len, 5);
	ck_assert_mem_eq(F.uart, ((uint8_t[]){'a', 0xFF, 'b', 0xFF, 0xFF}), 5);
	const uint8_t in[] = {0xFF, 'x', 0xFF};
	ck_assert_uint_eq(bridge_from_uart(&B, in, 3), 3);
	EXPECT(IAC, IAC, 'x', IAC, IAC);
	EXPECT_NOTHING();
}
END_TEST

START_TEST(raw_mode)
{
	setup_with(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	net_pos = 0;
	/* before the client speaks, UART data without 0xFF flows; 0xFF waits */
	const uint8_t u[] = {'h', 'i', 0xFF, 'z'};
	ck_assert_uint_eq(bridge_from_uart(&B, u, 4), 2);
	EXPECT('h', 'i');
	FEED('A', 0xFF, 0xFF, 'B');
	ck_assert_int_eq(bridge_mode(&B), BRIDGE_RAW);
	ck_assert_uint_eq(F.uart_len, 4);
	ck_assert_mem_eq(F.uart, ((uint8_t[]){'A', 0xFF, 0xFF, 'B'}), 4);
	ck_assert_uint_eq(bridge_from_uart(&B, u + 2, 2), 2);
	EXPECT(0xFF, 'z');
	EXPECT_NOTHING();
}
END_TEST

static void set_8e1(void)
{
	FEED(SB(1, 0, 1, 0xC2, 0), SB(2, 8), SB(3, 3), SB(4, 1));
	EXPECT(SB(101, 0, 1, 0xC2, 0), SB(102, 8), SB(103, 3), SB(104, 1));
}

START_TEST(auto_boot_sync)
{
	setup_with(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	set_8e1();
	ck_assert_str_eq(F.ev, ""); /* 8E1 alone does nothing in sync mode */
	/* pyserial re-sends DTR/RTS off after the framing: no pin moves, still armed */
	FEED(SB(5, 9), SB(5, 12));
	EXPECT(SB(105, 9), SB(105, 12));
	FEED(0x7F);
	ck_assert_uint_eq(F.uart_len, 0);
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 ");
	F.now += 9;
	bridge_poll(&B);
	ck_assert_int_eq(F.nrst, 0);
	F.now += 1;
	bridge_poll(&B);
	ck_assert_int_eq(F.nrst, 1);
	ck_assert_int_eq(bridge_next_ms(&B), 50);
	F.now += 49;
	bridge_poll(&B);
	ck_assert_uint_eq(F.uart_len, 0); /* still settling */
	F.now += 1;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 N1@1010 TX7f@1060 ");
	/* a second 0x7F and 8E1 re-set does not reset again */
	set_8e1();
	FEED(0x7F);
	ck_assert_uint_eq(F.uart_len, 2);
	/* leaving 8E1: BOOT0 low, NRST pulse -> application */
	F.ev[0] = '\0';
	FEED(SB(3, 1));
	EXPECT(SB(103, 1));
	ck_assert_str_eq(F.ev, "B0@1060 N0@1060 ");
	F.now += 10;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "B0@1060 N0@1060 N1@1070 ");
	ck_assert_int_eq(F.boot0, 0);
}
END_TEST

START_TEST(auto_boot_sync_not_7f)
{
	setup_with(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	set_8e1();
	FEED('a', 0x7F);
	ck_assert_str_eq(F.ev, "TX61@1000 TX7f@1000 ");
}
END_TEST

START_TEST(auto_boot_disconnect)
{
	setup_with(BRIDGE_AUTO_PARITY, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	FEED(SB(3, 3), SB(4, 1));
	/* 8E1 reached: reset into the bootloader; the next command waits for it in-band */
	EXPECT(SB(103, 3));
	EXPECT_NOTHING();
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 ");
	F.now += 10;
	bridge_poll(&B);
	EXPECT_NOTHING();
	F.now += 50;
	bridge_poll(&B);
	EXPECT(SB(104, 1));
	F.now += 40;
	bridge_poll(&B);
	bridge_disconnect(&B);
	ck_assert_int_eq(F.cfg.parity, RFC2217_PARITY_NONE);
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 N1@1010 B0@1100 N0@1100 ");
	F.now += 10;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 N1@1010 B0@1100 N0@1100 N1@1110 ");
	ck_assert_int_eq(bridge_connected(&B), 0);
}
END_TEST

START_TEST(disconnect_releases_lines)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	FEED(SB(5, 11), SB(5, 8));
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 ");
	bridge_disconnect(&B);
	ck_assert_str_eq(F.ev, "B1@1000 N0@1000 B0@1000 N1@1000 ");
}
END_TEST

/* The client's own DTR/RTS put the chip in the bootloader: a disconnect lowers BOOT0 and
 * pulses NRST (auto_boot off and sync alike), so the application runs. */
START_TEST(disconnect_leaves_client_bootloader)
{
	for (int ab = 0; ab < 2; ab++) {
		setup_with(ab ? BRIDGE_AUTO_SYNC : BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
		negotiate_pyserial();
		FEED(SB(5, 11), SB(5, 8), SB(5, 9)); /* BOOT0 high, reset, release */
		ck_assert_str_eq(F.ev, "B1@1000 N0@1000 N1@1000 ");
		F.now += 50;
		bridge_poll(&B);
		if (ab) {
			FEED(SB(5, 12)); /* BOOT0 lowered: the bootloader keeps running */
			ck_assert_str_eq(F.ev, "B1@1000 N0@1000 N1@1000 B0@1050 ");
			F.ev[0] = '\0';
		}
		F.now += 10;
		bridge_disconnect(&B);
		ck_assert_str_eq(F.ev,
		                 ab ? "N0@1060 " : "B1@1000 N0@1000 N1@1000 B0@1060 N0@1060 ");
		F.now += 10;
		bridge_poll(&B);
		ck_assert_int_eq(F.nrst, 1);
		ck_assert_int_eq(F.boot0, 0);
		ck_assert(strstr(F.ev, "N1@1070 ") != NULL);
	}
	/* application running, BOOT0 raised afterwards: only lowered, no reset */
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	FEED(SB(5, 11));
	bridge_disconnect(&B);
	ck_assert_str_eq(F.ev, "B1@1000 B0@1000 ");
	/* esptool map, chip held in reset: released at once (no hold), application */
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_ESPTOOL);
	negotiate_pyserial();
	FEED(SB(5, 11));
	bridge_disconnect(&B);
	ck_assert_str_eq(F.ev, "N0@1000 N1@1000 ");
}
END_TEST

START_TEST(esptool_map)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_ESPTOOL);
	negotiate_pyserial();
	FEED(SB(5, 11)); /* RTS only: reset */
	ck_assert_str_eq(F.ev, "N0@1000 ");
	FEED(SB(5, 8)); /* both: run, after the release hold (answered at once) */
	EXPECT(SB(105, 11), SB(105, 8));
	ck_assert_str_eq(F.ev, "N0@1000 ");
	ck_assert_int_eq(bridge_next_ms(&B), 100);
	F.now += 100;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "N0@1000 N1@1100 ");
	F.now += 50;
	FEED(SB(5, 12)); /* DTR only: BOOT0 high */
	ck_assert_str_eq(F.ev, "N0@1000 N1@1100 B1@1150 ");
	FEED(SB(5, 9)); /* none: run, BOOT0 low */
	ck_assert_str_eq(F.ev, "N0@1000 N1@1100 B1@1150 B0@1150 ");
}
END_TEST

/* esptool's classic reset passes through "both asserted": the release hold lets the BOOT0
 * change that follows apply first, so the chip starts its bootloader. */
START_TEST(esptool_classic_reset)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_ESPTOOL);
	negotiate_pyserial();
	FEED(SB(5, 9), SB(5, 11)); /* DTR off, RTS on: reset */
	EXPECT(SB(105, 9), SB(105, 11));
	ck_assert_str_eq(F.ev, "N0@1000 ");
	F.now += 100;
	FEED(SB(5, 8)); /* DTR on: both asserted */
	EXPECT(SB(105, 8));
	ck_assert_int_eq(F.nrst, 0);
	F.now += 5; /* one network round trip later */
	bridge_poll(&B);
	FEED(SB(5, 12)); /* RTS off: DTR only, BOOT0 high, then NRST released */
	EXPECT(SB(105, 12));
	ck_assert_str_eq(F.ev, "N0@1000 B1@1105 N1@1105 ");
	F.now += 50;
	FEED(SB(5, 9)); /* DTR off: BOOT0 low, the bootloader keeps running */
	EXPECT(SB(105, 9));
	ck_assert_str_eq(F.ev, "N0@1000 B1@1105 N1@1105 B0@1155 ");

	/* plain reset (RTS on, then both deasserted): application after the hold */
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_ESPTOOL);
	negotiate_pyserial();
	FEED(SB(5, 11));
	F.now += 100;
	FEED(SB(5, 12), 'x');
	ck_assert_str_eq(F.ev, "N0@1000 ");
	F.now += 99;
	bridge_poll(&B);
	ck_assert_int_eq(F.nrst, 0);
	ck_assert_uint_eq(F.uart_len, 0); /* data waits for the release */
	F.now += 1;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "N0@1000 N1@1200 ");
	ck_assert_int_eq(F.boot0, 0);
	F.now += 50;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "N0@1000 N1@1200 TX78@1250 ");

	/* RTS on again within the hold cancels the release */
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_ESPTOOL);
	negotiate_pyserial();
	FEED(SB(5, 11), SB(5, 12), SB(5, 11));
	F.now += 500;
	bridge_poll(&B);
	ck_assert_str_eq(F.ev, "N0@1000 ");
	ck_assert_int_eq(bridge_next_ms(&B), -1);
}
END_TEST

START_TEST(none_map)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_NONE);
	negotiate_pyserial();
	FEED(SB(5, 11), SB(5, 8), SB(5, 7));
	EXPECT(SB(105, 11), SB(105, 8), SB(105, 8));
	ck_assert_str_eq(F.ev, "");
}
END_TEST

START_TEST(backpressure_net_to_uart)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	net_pos = 0;
	FEED('!'); /* raw mode */
	static uint8_t big[5000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	F.uart_space = 0;
	size_t k = bridge_from_net(&B, big, sizeof(big));
	ck_assert_uint_lt(k, sizeof(big));
	ck_assert_uint_eq(k, BRIDGE_TX_DATA);
	ck_assert_uint_eq(bridge_net_room(&B), 0);
	ck_assert_uint_eq(bridge_from_net(&B, big + k, sizeof(big) - k), 0);
	size_t done = k;
	while (done < sizeof(big)) {
		F.uart_space = 7;
		bridge_poll(&B);
		done += bridge_from_net(&B, big + done, sizeof(big) - done);
	}
	F.uart_space = SIZE_MAX;
	bridge_poll(&B);
	ck_assert_uint_eq(F.uart_len, 1 + sizeof(big));
	ck_assert_mem_eq(F.uart + 1, big, sizeof(big));
}
END_TEST

START_TEST(backpressure_telnet_iac)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	/* 3000 escaped 0xFF bytes through a UART taking 5 bytes per poll */
	static uint8_t esc[6000];
	for (size_t i = 0; i < sizeof(esc); i++)
		esc[i] = 0xFF;
	F.uart_space = 5;
	size_t done = 0;
	for (int i = 0; i < 100000 && done < sizeof(esc); i++) {
		done += bridge_from_net(&B, esc + done, sizeof(esc) - done);
		bridge_poll(&B);
	}
	ck_assert_uint_eq(done, sizeof(esc));
	F.uart_space = SIZE_MAX;
	bridge_poll(&B);
	ck_assert_uint_eq(F.uart_len, 3000);
	for (size_t i = 0; i < 3000; i++)
		ck_assert_uint_eq(F.uart[i], 0xFF);
}
END_TEST

START_TEST(backpressure_uart_to_net)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	size_t base = F.net_len;
	F.net_space = 0; /* socket full */
	static uint8_t in[10000];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i % 3 == 0 ? 0xFF : i);
	size_t done = bridge_from_uart(&B, in, sizeof(in));
	ck_assert_uint_lt(done, sizeof(in));
	ck_assert_uint_eq(bridge_from_uart(&B, in + done, sizeof(in) - done), 0);
	ck_assert_uint_eq(bridge_uart_room(&B), 0);
	/* a command answer still fits in the reserve */
	FEED(SB(2, 0));
	while (done < sizeof(in)) {
		F.net_space = 100;
		bridge_poll(&B);
		done += bridge_from_uart(&B, in + done, sizeof(in) - done);
	}
	F.net_space = SIZE_MAX;
	bridge_poll(&B);
	/* decode what was sent: data (undoubled) + one answer */
	struct tn_decoder d;
	tn_decoder_init(&d);
	size_t total = 0;
	int answers = 0;
	uint8_t *out = F.net + base;
	size_t n = F.net_len - base, j = 0;
	for (size_t i = 0; i < n; i++) {
		if (out[i] == 0xFF && i + 1 < n && out[i + 1] == 0xFF) {
			ck_assert_uint_eq(in[j++], 0xFF);
			i++;
		} else if (out[i] == 0xFF) {
			ck_assert_uint_ge(n - i, 7);
			ck_assert_mem_eq(out + i, ((uint8_t[]){SB(102, 8)}), 7);
			answers++;
			i += 6;
		} else {
			ck_assert_uint_eq(in[j++], out[i]);
		}
	}
	total = j;
	ck_assert_uint_eq(total, sizeof(in));
	ck_assert_int_eq(answers, 1);
}
END_TEST

START_TEST(no_client)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	bridge_disconnect(&B);
	const uint8_t u[] = {1, 2, 0xFF};
	ck_assert_uint_eq(bridge_from_uart(&B, u, 3), 3);
	ck_assert_uint_eq(F.net_len, 0);
}
END_TEST

/* Framing and pin changes wait until the UART has sent the earlier bytes. */
START_TEST(line_change_waits_for_uart_idle)
{
	setup_with(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	F.pend_auto = 1;
	FEED('a', 'b', 'c', SB(3, 3));
	ck_assert_uint_eq(F.uart_len, 3);
	ck_assert_uint_eq(F.cfg.parity, RFC2217_PARITY_NONE);
	EXPECT_NOTHING();
	ck_assert_int_eq(bridge_next_ms(&B), 1); /* 3 x 10 bits at 115200: < 1 ms */
	F.now += 1;
	bridge_poll(&B);
	ck_assert_uint_eq(F.cfg.parity, RFC2217_PARITY_NONE); /* still sending */
	F.tx_pending = 0;
	bridge_poll(&B);
	ck_assert_uint_eq(F.cfg.parity, RFC2217_PARITY_EVEN);
	EXPECT(SB(103, 3));
	/* a pin change waits the same way */
	FEED('d', SB(5, 8));
	ck_assert_int_eq(F.nrst, 1);
	EXPECT_NOTHING();
	F.tx_pending = 0;
	bridge_poll(&B);
	ck_assert_int_eq(F.nrst, 0);
	EXPECT(SB(105, 8));
	/* queries are answered at once */
	FEED('e', SB(3, 0), SB(5, 7));
	EXPECT(SB(103, 3), SB(105, 8));
	/* so is the restore after a disconnect */
	bridge_disconnect(&B);
	ck_assert_uint_eq(F.cfg.parity, RFC2217_PARITY_EVEN);
	ck_assert_int_eq(F.nrst, 0);
	ck_assert_int_ge(bridge_next_ms(&B), 0);
	F.tx_pending = 0;
	bridge_poll(&B);
	ck_assert_uint_eq(F.cfg.parity, RFC2217_PARITY_NONE);
	ck_assert_int_eq(F.nrst, 1);
	ck_assert_int_eq(F.busy_changes, 0);
}
END_TEST

/* A SIGNATURE answer (up to 86 bytes for a 40-byte signature of 0xFF) is far more than 5x
 * its 6-byte request: with little output room it waits for the socket, never dropped. */
START_TEST(signature_never_dropped)
{
	static char sig[41];
	memset(sig, 0xFF, 40);
	memset(&F, 0, sizeof(F));
	F.now = 1000;
	F.uart_space = SIZE_MAX;
	F.net_space = SIZE_MAX;
	struct bridge_settings st;
	bridge_settings_default(&st);
	st.auto_boot = BRIDGE_AUTO_OFF;
	st.signature = sig;
	ck_assert_int_eq(bridge_init(&B, &fake_hal, NULL, &st), 0);
	bridge_connect(&B);
	negotiate_pyserial();
	size_t base = F.net_len;
	F.net_space = 0;
	static uint8_t u[4000];
	memset(u, 'u', sizeof(u));
	size_t nu = bridge_from_uart(&B, u, sizeof(u)); /* fills output to its reserve */
	ck_assert_uint_eq(bridge_uart_room(&B), 0);
	const uint8_t req[] = {SB(0)};
	int sent = 0;
	for (int i = 0; i < 8; i++) {
		if (bridge_from_net(&B, req, sizeof(req)) != sizeof(req))
			break;
		sent++;
	}
	ck_assert_int_ge(sent, 2); /* more than one answer's worth of room was offered */
	F.net_space = SIZE_MAX;
	bridge_poll(&B);
	bridge_poll(&B);
	uint8_t want[6 + 80];
	want[0] = IAC, want[1] = TN_SB, want[2] = 44, want[3] = 100;
	for (int i = 0; i < 40; i++)
		want[4 + 2 * i] = want[5 + 2 * i] = 0xFF;
	want[84] = IAC, want[85] = TN_SE;
	size_t n = F.net_len - base;
	ck_assert_uint_eq(n, nu + (size_t)sent * sizeof(want));
	int found = 0;
	for (size_t i = 0; i + sizeof(want) <= n; i++)
		if (!memcmp(F.net + base + i, want, sizeof(want))) {
			found++;
			i += sizeof(want) - 1;
		}
	ck_assert_int_eq(found, sent);
}
END_TEST

START_TEST(settings_names)
{
	enum bridge_line_map m;
	enum bridge_auto_boot a;
	ck_assert_int_eq(bridge_parse_line_map("esptool", &m), 0);
	ck_assert_int_eq(m, BRIDGE_MAP_ESPTOOL);
	ck_assert_int_eq(bridge_parse_line_map("bogus", &m), -EINVAL);
	ck_assert_int_eq(bridge_parse_auto_boot("parity", &a), 0);
	ck_assert_int_eq(a, BRIDGE_AUTO_PARITY);
	ck_assert_int_eq(bridge_parse_auto_boot("", &a), -EINVAL);
	/* one table: each name parses back to its value; out of range is "?" */
	static const char *const maps[] = {"direct", "esptool", "none"};
	static const char *const abs[] = {"sync", "parity", "off"};
	for (unsigned v = 0; v < 3; v++) {
		ck_assert_str_eq(bridge_line_map_name(v), maps[v]);
		ck_assert_int_eq(bridge_parse_line_map(maps[v], &m), 0);
		ck_assert_uint_eq(m, v);
		ck_assert_str_eq(bridge_auto_boot_name(v), abs[v]);
		ck_assert_int_eq(bridge_parse_auto_boot(abs[v], &a), 0);
		ck_assert_uint_eq(a, v);
	}
	ck_assert_str_eq(bridge_line_map_name(3), "?");
	ck_assert_str_eq(bridge_auto_boot_name(99), "?");
}
END_TEST

/* bridge_suspend(): while the flasher owns the UART and pins the session makes no HAL UART or
 * pin call, answers what it can, holds data and pin changes in order (backpressure, nothing
 * dropped), and re-applies its framing and pins at resume. */
START_TEST(suspend_for_flasher)
{
	setup_with(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	bridge_suspend(&B, 1);
	ck_assert_int_eq(bridge_suspended(&B), 1);
	int hw = F.hw_calls;
	/* framing (staying 8N1) answered at once, not applied */
	FEED(SB(1, 0, 0, 0x25, 0x80));
	EXPECT(SB(101, 0, 0, 0x25, 0x80));
	ck_assert_uint_eq(F.cfg.baud, 115200);
	/* data and a pin change wait; queries and polls are answered */
	FEED('h', 'i', SB(5, 8), SB(7));
	EXPECT(SB(107, 0xB0));
	EXPECT_NOTHING();
	/* a switch to 8E1 (auto-boot) also waits behind them */
	FEED(SB(3, 3));
	EXPECT_NOTHING();
	/* the UART's bytes belong to the flasher */
	ck_assert_uint_eq(bridge_uart_room(&B), 0);
	const uint8_t rx[] = {0x79, 0x1F};
	ck_assert_uint_eq(bridge_from_uart(&B, rx, 2), 0);
	/* backpressure: the queue fills, bytes are refused, never dropped */
	uint8_t big[4096];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)('a' + i % 26);
	size_t took = 0;
	for (int i = 0; i < 8; i++)
		took += bridge_from_net(&B, big + took, sizeof(big) - took);
	ck_assert_uint_gt(took, 0);
	ck_assert_uint_lt(took, sizeof(big));
	ck_assert_uint_eq(bridge_net_room(&B), 0);
	F.now += 500;
	bridge_poll(&B);
	ck_assert_int_eq(F.hw_calls, hw);
	ck_assert_uint_eq(F.uart_len, 0);
	ck_assert_int_eq(bridge_tx_pending(&B), 0);
	/* the flasher leaves the pins and framing its own way */
	F.cfg.baud = 57600;
	F.nrst = 1;
	F.boot0 = 1;
	bridge_suspend(&B, 0);
	ck_assert_int_eq(bridge_suspended(&B), 0);
	ck_assert_uint_eq(F.cfg.baud, 9600); /* the client's framing */
	ck_assert_int_eq(F.boot0, 0);
	ck_assert_uint_ge(F.uart_len, 2);
	ck_assert_mem_eq(F.uart, "hi", 2);
	EXPECT(SB(105, 8));
	ck_assert_int_eq(F.nrst, 0); /* DTR on executed after the data */
	EXPECT(SB(103, 3));
	/* the rest of the held data follows, in order and complete */
	for (int i = 0; i < 64 && took < sizeof(big); i++) {
		took += bridge_from_net(&B, big + took, sizeof(big) - took);
		bridge_poll(&B);
	}
	ck_assert_uint_eq(took, sizeof(big));
	ck_assert_uint_eq(F.uart_len, 2 + sizeof(big));
	ck_assert_mem_eq(F.uart + 2, big, sizeof(big));
}
END_TEST

/* A client that leaves while suspended: the restore (framing, pins) waits for the resume. */
START_TEST(suspend_disconnect)
{
	setup_with(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	negotiate_pyserial();
	FEED(SB(1, 0, 0, 0x25, 0x80), SB(5, 11));
	ck_assert_uint_eq(F.cfg.baud, 9600);
	ck_assert_int_eq(F.boot0, 1);
	bridge_suspend(&B, 1);
	bridge_disconnect(&B);
	int hw = F.hw_calls;
	F.now += 100;
	bridge_poll(&B);
	ck_assert_int_eq(F.hw_calls, hw);
	ck_assert_uint_eq(F.cfg.baud, 9600);
	bridge_suspend(&B, 0);
	for (int i = 0; i < 10; i++) {
		F.now += 20;
		bridge_poll(&B);
	}
	ck_assert_uint_eq(F.cfg.baud, 115200);
	ck_assert_int_eq(F.boot0, 0);
	ck_assert_int_eq(F.nrst, 1);
	/* suspend twice / resume twice: no effect */
	bridge_suspend(&B, 1);
	bridge_suspend(&B, 1);
	hw = F.hw_calls;
	bridge_suspend(&B, 0);
	ck_assert_int_gt(F.hw_calls, hw);
	hw = F.hw_calls;
	bridge_suspend(&B, 0);
	ck_assert_int_eq(F.hw_calls, hw);
}
END_TEST

static Suite *bridge_suite(void)
{
	Suite *s = suite_create("bridge");
	TCase *tc = tcase_create("session");
	tcase_add_test(tc, one_version);
	tcase_add_test(tc, negotiation);
	tcase_add_test(tc, set_answers);
	tcase_add_test(tc, data_iac_doubling);
	tcase_add_test(tc, raw_mode);
	tcase_add_test(tc, auto_boot_sync);
	tcase_add_test(tc, auto_boot_sync_not_7f);
	tcase_add_test(tc, auto_boot_disconnect);
	tcase_add_test(tc, disconnect_releases_lines);
	tcase_add_test(tc, esptool_map);
	tcase_add_test(tc, esptool_classic_reset);
	tcase_add_test(tc, disconnect_leaves_client_bootloader);
	tcase_add_test(tc, signature_never_dropped);
	tcase_add_test(tc, none_map);
	tcase_add_test(tc, backpressure_net_to_uart);
	tcase_add_test(tc, backpressure_telnet_iac);
	tcase_add_test(tc, backpressure_uart_to_net);
	tcase_add_test(tc, no_client);
	tcase_add_test(tc, settings_names);
	tcase_add_test(tc, line_change_waits_for_uart_idle);
	tcase_add_test(tc, suspend_for_flasher);
	tcase_add_test(tc, suspend_disconnect);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(bridge_suite)
