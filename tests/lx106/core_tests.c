/* SPDX-License-Identifier: MIT */
/*
 * Tests of firmware/core (codec and bridge session) that run on the ESP8266's CPU (lx106,
 * emulated by qemu-system-xtensa): 32-bit size_t/long, no unaligned loads or stores, no
 * hardware divide. Every buffer handed to the core starts at an odd address, so a core
 * that casts byte pointers to wider types traps here (EXCCAUSE 9) instead of passing.
 * The expectations are the same as tests/unit (which run on the build machine).
 */
#include "bridge.h"
#include "lxtest.h"
#include "rfc2217.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define IAC     0xFF
#define SB(...) IAC, TN_SB, TELOPT_COMPORT, __VA_ARGS__, IAC, TN_SE

/* Copy n bytes to an odd address inside a word-aligned scratch buffer. */
static uint32_t scratch_words[1024];
static const uint8_t *odd_copy(const uint8_t *p, size_t n, size_t off)
{
	uint8_t *q = (uint8_t *)scratch_words + off;
	if (n + off > sizeof(scratch_words))
		return NULL;
	memmove(q, p, n);
	return q;
}

/* ---------------------------------------------------------------- Telnet decoder */

/* Event log that does not depend on how the input was split: every data byte is logged
 * as 'd' b, other events as a tag and their fields. */
static uint8_t elog[512];
static size_t elog_len;
static int elog_over;

static void log_put(uint8_t b)
{
	if (elog_len < sizeof(elog))
		elog[elog_len++] = b;
	else
		elog_over = 1;
}

static void log_cb(void *ctx, const struct tn_event *ev)
{
	(void)ctx;
	switch (ev->type) {
	case TN_EV_DATA:
		for (size_t i = 0; i < ev->len; i++) {
			log_put('d');
			log_put(ev->data[i]);
		}
		break;
	case TN_EV_SB:
		log_put('S');
		log_put(ev->opt);
		log_put((uint8_t)ev->len);
		for (size_t i = 0; i < ev->len; i++)
			log_put(ev->data[i]);
		log_put((uint8_t)ev->truncated);
		break;
	default:
		log_put((uint8_t)('0' + ev->type));
		log_put(ev->opt);
		break;
	}
}

/* 'a' 'b' IAC IAC 'c' | WILL COM-PORT | SET-BAUDRATE 0x0001FFFF (two 0xFF doubled) |
 * NOP | 'd' 0xFF | DO SGA | SIGNATURE "x" | 'e' */
static const uint8_t stream[] = {
    'a', 'b', IAC, IAC, 'c', IAC, TN_WILL, 44, SB(1, 0x00, 0x01, IAC, IAC, IAC, IAC), IAC,
    TN_NOP, 'd', IAC, IAC, IAC, TN_DO, 3, SB(0, 'x'), 'e'};
static const uint8_t stream_events[] = {
    'd', 'a', 'd', 'b', 'd', 0xFF, 'd', 'c', '0' + TN_EV_WILL, 44,
    'S', 44, 5, 1, 0x00, 0x01, 0xFF, 0xFF, 0,
    '0' + TN_EV_COMMAND, TN_NOP, 'd', 'd', 'd', 0xFF, '0' + TN_EV_DO, 3,
    'S', 44, 2, 0, 'x', 0, 'd', 'e'};

static void decode_chunks(const size_t *cuts, size_t ncuts, size_t off)
{
	struct tn_decoder d;
	tn_decoder_init(&d);
	elog_len = 0;
	elog_over = 0;
	size_t pos = 0;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t end = k < ncuts ? cuts[k] : sizeof(stream);
		const uint8_t *p = odd_copy(stream + pos, end - pos, off);
		CHECK_EQ(tn_decode(&d, p, end - pos, log_cb, NULL), end - pos);
		pos = end;
	}
}

static void t_decode_whole(void)
{
	decode_chunks(NULL, 0, 1);
	CHECK_OK();
	CHECK_EQ(elog_over, 0);
	CHECK_EQ(elog_len, sizeof(stream_events));
	CHECK_MEM(elog, stream_events, sizeof(stream_events));
}

/* Split in two at every position, and in three around every position. */
static void t_decode_split(void)
{
	for (size_t i = 0; i <= sizeof(stream); i++) {
		decode_chunks(&i, 1, 1 + (i & 2));
		CHECK_OK();
		CHECK_EQ(elog_len, sizeof(stream_events));
		CHECK_MEM(elog, stream_events, sizeof(stream_events));
		for (size_t j = i; j <= sizeof(stream); j += 3) {
			size_t cuts[2] = {i, j};
			decode_chunks(cuts, 2, 3);
			CHECK_OK();
			CHECK_EQ(elog_len, sizeof(stream_events));
			CHECK_MEM(elog, stream_events, sizeof(stream_events));
		}
	}
}

/* One byte per call: every sequence is split everywhere. */
static void t_decode_bytewise(void)
{
	size_t cuts[sizeof(stream)];
	for (size_t i = 0; i < sizeof(stream); i++)
		cuts[i] = i + 1;
	decode_chunks(cuts, sizeof(stream) - 1, 1);
	CHECK_OK();
	CHECK_EQ(elog_len, sizeof(stream_events));
	CHECK_MEM(elog, stream_events, sizeof(stream_events));
}

/* A subnegotiation longer than TN_SB_MAX is cut and flagged, never overflows. */
static void t_decode_long_sb(void)
{
	static uint8_t in[3 + 100 + 2 + 1];
	size_t n = 0;
	in[n++] = IAC;
	in[n++] = TN_SB;
	in[n++] = 44;
	for (int i = 0; i < 100; i++)
		in[n++] = (uint8_t)i;
	in[n++] = IAC;
	in[n++] = TN_SE;
	in[n++] = 'z';
	struct tn_decoder d;
	tn_decoder_init(&d);
	elog_len = 0;
	CHECK_EQ(tn_decode(&d, odd_copy(in, n, 1), n, log_cb, NULL), n);
	CHECK_EQ(elog_len, 3 + TN_SB_MAX + 1 + 2);
	CHECK_EQ(elog[0], 'S');
	CHECK_EQ(elog[2], TN_SB_MAX);
	CHECK_EQ(elog[3 + TN_SB_MAX - 1], TN_SB_MAX - 1);
	CHECK_EQ(elog[3 + TN_SB_MAX], 1); /* truncated */
	CHECK_EQ(elog[3 + TN_SB_MAX + 2], 'z');
}

/* ---------------------------------------------------------------- escaping, builders */

static void t_escape_iac(void)
{
	static const uint8_t in[] = {1, IAC, 2, IAC, IAC, 3};
	static const uint8_t want[] = {1, IAC, IAC, 2, IAC, IAC, IAC, IAC, 3};
	uint8_t outbuf[32];
	size_t used = 99;
	CHECK_EQ(tn_escape(odd_copy(in, sizeof(in), 1), sizeof(in), outbuf + 1, 20, &used),
	         sizeof(want));
	CHECK_EQ(used, sizeof(in));
	CHECK_MEM(outbuf + 1, want, sizeof(want));
	/* never split a pair: room for 1 + one half of IAC IAC */
	CHECK_EQ(tn_escape(in, sizeof(in), outbuf, 2, &used), 1);
	CHECK_EQ(used, 1);
	CHECK_EQ(tn_escape(in, sizeof(in), outbuf, 3, &used), 3);
	CHECK_EQ(used, 2);
	CHECK_EQ(tn_escape(in, sizeof(in), outbuf, 0, NULL), 0);
	/* escape then decode gives the data back */
	struct tn_decoder d;
	tn_decoder_init(&d);
	elog_len = 0;
	size_t n = tn_escape(in, sizeof(in), outbuf + 3, 24, &used);
	CHECK_EQ(tn_decode(&d, outbuf + 3, n, log_cb, NULL), n);
	CHECK_EQ(elog_len, 2 * sizeof(in));
	for (size_t i = 0; i < sizeof(in); i++)
		CHECK_EQ(elog[2 * i + 1], in[i]);
}

static void t_build_option(void)
{
	uint8_t b[8];
	CHECK_EQ(tn_build_option(b + 1, 3, TN_DO, 44), 3);
	CHECK_MEM(b + 1, ((const uint8_t[]){IAC, TN_DO, 44}), 3);
	CHECK_EQ(tn_build_option(b, 2, TN_WILL, 0), -ENOBUFS);
	CHECK_EQ(tn_build_option(b, 3, TN_SB, 0), -EINVAL);
}

/* Build, decode and parse back one message; m receives the result. */
static struct rfc2217_msg msg;
static void round_trip(uint8_t code, const uint8_t *val, size_t vlen, size_t off)
{
	static uint32_t wbuf[32];
	uint8_t *out = (uint8_t *)wbuf + off;
	int n = rfc2217_build(out, sizeof(wbuf) - off, code, val, vlen);
	CHECK(n > 0);
	/* cap one byte short: -ENOBUFS, never a partial message */
	CHECK_EQ(rfc2217_build(out, (size_t)n - 1, code, val, vlen), -ENOBUFS);
	struct tn_decoder d;
	tn_decoder_init(&d);
	elog_len = 0;
	CHECK_EQ(tn_decode(&d, out, (size_t)n, log_cb, NULL), (size_t)n);
	CHECK_EQ(elog[0], 'S');
	CHECK_EQ(elog[1], TELOPT_COMPORT);
	CHECK_EQ(elog[2], 1 + vlen);
	CHECK_EQ(elog_len, 3 + 1 + vlen + 1);
	CHECK_MEM(elog + 4, val, vlen);
	/* parse from an odd address */
	const uint8_t *pl = odd_copy(elog + 3, 1 + vlen, 1);
	CHECK_EQ(rfc2217_parse(pl, 1 + vlen, &msg), 0);
	CHECK_EQ(msg.code, code);
}

static void t_rfc2217_round_trip(void)
{
	static const uint32_t bauds[] = {0,          1,          300,        9600,
	                                 115200,     0xFF,       0xFF00FF00, 0x00FFFF00,
	                                 0xFFFFFFFF, 0x7F7FFFFF, 0x80000000, 4000000};
	for (size_t i = 0; i < sizeof(bauds) / sizeof(bauds[0]); i++) {
		for (uint8_t server = 0; server < 2; server++) {
			uint8_t code = (uint8_t)(RFC2217_SET_BAUDRATE + server * RFC2217_SERVER_OFFSET);
			uint8_t be[4] = {(uint8_t)(bauds[i] >> 24), (uint8_t)(bauds[i] >> 16),
			                 (uint8_t)(bauds[i] >> 8), (uint8_t)bauds[i]};
			round_trip(code, be, 4, 1 + i % 3);
			CHECK_OK();
			CHECK_EQ(msg.value, bauds[i]);
			CHECK_EQ(msg.cmd, RFC2217_SET_BAUDRATE);
			CHECK_EQ(msg.from_server, server);
			/* the u32 builder writes the same bytes */
			uint8_t a[24], b[24];
			int na = rfc2217_build_u32(a + 1, 23, code, bauds[i]);
			int nb = rfc2217_build(b + 3, 21, code, be, 4);
			CHECK_EQ(na, nb);
			CHECK_MEM(a + 1, b + 3, (size_t)na);
		}
	}
	/* every one-byte command, both directions, every value class */
	static const uint8_t vals[] = {0, 1, 3, 8, 0x7F, 0x80, 0xFE, 0xFF};
	for (uint8_t c = RFC2217_SET_DATASIZE; c <= RFC2217_PURGE_DATA; c++) {
		if (c == RFC2217_FLOWCONTROL_SUSPEND || c == RFC2217_FLOWCONTROL_RESUME)
			continue;
		for (size_t v = 0; v < sizeof(vals); v++) {
			for (uint8_t server = 0; server < 2; server++) {
				uint8_t code = (uint8_t)(c + server * RFC2217_SERVER_OFFSET);
				uint8_t one[24];
				round_trip(code, &vals[v], 1, 2 + v % 2);
				CHECK_OK();
				CHECK_EQ(msg.cmd, c);
				CHECK_EQ(msg.value, vals[v]);
				int n = rfc2217_build_u8(one, sizeof(one), code, vals[v]);
				CHECK_EQ(n, vals[v] == 0xFF ? 8 : 7);
			}
		}
	}
	/* SIGNATURE text with a 0xFF in it */
	static const uint8_t sig[] = {'e', 's', 'p', 0xFF, '8', '2', '6', '6'};
	round_trip(RFC2217_SIGNATURE + RFC2217_SERVER_OFFSET, sig, sizeof(sig), 1);
	CHECK_OK();
	CHECK_EQ(msg.text_len, sizeof(sig));
	CHECK_MEM(msg.text, sig, sizeof(sig));
	round_trip(RFC2217_FLOWCONTROL_SUSPEND, NULL, 0, 1);
	CHECK_OK();
	CHECK_EQ(msg.cmd, RFC2217_FLOWCONTROL_SUSPEND);
}

static void t_rfc2217_parse_errors(void)
{
	struct rfc2217_msg m;
	static const uint8_t baud3[] = {1, 0, 0, 0x25};
	static const uint8_t size2[] = {2, 8, 8};
	static const uint8_t susp1[] = {8, 0};
	static const uint8_t code13[] = {13, 0};
	static const uint8_t code113[] = {113, 0};
	static const uint8_t notify_poll[] = {7};
	static const uint8_t notify_srv_empty[] = {107};
	CHECK_EQ(rfc2217_parse(baud3, 0, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(NULL, 1, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(odd_copy(baud3, 4, 1), 4, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(odd_copy(size2, 3, 3), 3, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(susp1, 2, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(code13, 2, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(code113, 2, &m), -EINVAL);
	CHECK_EQ(rfc2217_parse(notify_poll, 1, &m), 0);
	CHECK_EQ(rfc2217_parse(notify_srv_empty, 1, &m), -EINVAL);
	CHECK(strcmp(rfc2217_cmd_name(101), "SET-BAUDRATE") == 0);
	CHECK(strcmp(rfc2217_cmd_name(12), "PURGE-DATA") == 0);
	CHECK(strcmp(rfc2217_cmd_name(13), "UNKNOWN") == 0);
	CHECK(strcmp(rfc2217_cmd_name(255), "UNKNOWN") == 0);
}

/* ---------------------------------------------------------------- bridge, fake HAL */

struct fake {
	uint32_t now, t0; /* clock, and the time events are logged relative to */
	struct hal_uart_cfg cfg;
	size_t uart_space;
	uint8_t uart[4096];
	size_t uart_len;
	uint8_t net[4096];
	size_t net_len;
	char ev[512]; /* pin and first UART bytes, with times relative to t0 */
	int nrst, boot0, brk, purges, cfg_calls;
	size_t tx_pending;
	int pend_auto;
	int misaligned_ctx; /* ctx pointer passed through unchanged */
};

static struct fake F;
static struct bridge B;
static size_t net_pos;

static void ev_add(const char *fmt, ...)
{
	size_t n = strlen(F.ev);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(F.ev + n, sizeof(F.ev) - n, fmt, ap);
	va_end(ap);
}

static int f_cfg(void *ctx, struct hal_uart_cfg *c)
{
	if (ctx != &F)
		F.misaligned_ctx = 1;
	F.cfg = *c;
	F.cfg_calls++;
	return 0;
}

static size_t f_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	if (n > F.uart_space)
		n = F.uart_space;
	for (size_t i = 0; i < n && F.uart_len < sizeof(F.uart); i++) {
		F.uart[F.uart_len++] = p[i];
		if (F.uart_len <= 4)
			ev_add("TX%02x@%lu ", p[i], (unsigned long)(F.now - F.t0));
	}
	if (F.pend_auto)
		F.tx_pending += n;
	return n;
}

static void f_purge(void *ctx, int rx, int tx)
{
	(void)ctx;
	F.purges = rx + 2 * tx;
}

static void f_break(void *ctx, int on)
{
	(void)ctx;
	F.brk = on;
}

static void f_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	if (pin == HAL_PIN_NRST)
		F.nrst = level;
	else
		F.boot0 = level;
	ev_add("%c%d@%lu ", pin == HAL_PIN_NRST ? 'N' : 'B', level, (unsigned long)(F.now - F.t0));
}

static uint32_t f_now(void *ctx)
{
	(void)ctx;
	return F.now;
}

static size_t f_send(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	if (F.net_len + n > sizeof(F.net))
		n = sizeof(F.net) - F.net_len;
	memcpy(F.net + F.net_len, p, n);
	F.net_len += n;
	return n;
}

static size_t f_pending(void *ctx)
{
	(void)ctx;
	return F.tx_pending;
}

static char logbuf[256];
static void f_log(void *ctx, enum hal_log_level lvl, const char *line)
{
	(void)ctx;
	(void)lvl;
	strncpy(logbuf, line, sizeof(logbuf) - 1);
}

static const struct hal_ops fake_hal = {
    .uart_config = f_cfg,
    .uart_write = f_write,
    .uart_purge = f_purge,
    .uart_break = f_break,
    .gpio_set = f_gpio,
    .now_ms = f_now,
    .net_send = f_send,
    .log = f_log,
    .uart_tx_pending = f_pending,
};

static void setup_at(enum bridge_auto_boot ab, enum bridge_line_map map, uint32_t t0)
{
	memset(&F, 0, sizeof(F));
	F.now = F.t0 = t0;
	F.uart_space = SIZE_MAX;
	net_pos = 0;
	struct bridge_settings s;
	bridge_settings_default(&s);
	s.auto_boot = ab;
	s.line_map = map;
	CHECK_EQ(bridge_init(&B, &fake_hal, &F, &s), 0);
	CHECK_EQ(F.nrst, 1);
	CHECK_EQ(F.boot0, 0);
	CHECK_EQ(F.cfg.baud, 115200);
	F.ev[0] = '\0';
	bridge_connect(&B);
}

static void setup(enum bridge_auto_boot ab, enum bridge_line_map map)
{
	setup_at(ab, map, 1000);
}

/* Feed network bytes from an odd address; all must be taken. */
static void feed(const uint8_t *p, size_t n)
{
	CHECK_EQ(bridge_from_net(&B, odd_copy(p, n, 1), n), n);
}
#define FEED(...)                                                                                  \
	do {                                                                                       \
		static const uint8_t b_[] = {__VA_ARGS__};                                         \
		feed(b_, sizeof(b_));                                                              \
		CHECK_OK();                                                                        \
	} while (0)

static void expect_net(const uint8_t *p, size_t n)
{
	CHECK(F.net_len - net_pos >= n);
	CHECK_MEM(F.net + net_pos, p, n);
	net_pos += n;
}
#define EXPECT(...)                                                                                \
	do {                                                                                       \
		static const uint8_t b_[] = {__VA_ARGS__};                                         \
		expect_net(b_, sizeof(b_));                                                        \
		CHECK_OK();                                                                        \
	} while (0)
#define EXPECT_NOTHING() CHECK_EQ(F.net_len, net_pos)
#define EXPECT_EV(s)     CHECK(strcmp(F.ev, s) == 0 || (lx_printf("    events: %s\n", F.ev), 0))

/* pyserial's opening, answered byte for byte. */
static void negotiate(void)
{
	FEED(IAC, TN_DO, 1, IAC, TN_WILL, 3, IAC, TN_DO, 3, IAC, TN_DO, 44, IAC, TN_WILL, 44);
	EXPECT(IAC, TN_WILL, 0, IAC, TN_DO, 0, IAC, TN_WILL, 3, IAC, TN_WILL, 44);
	EXPECT(IAC, TN_WONT, 1, IAC, TN_DO, 3);
	EXPECT(SB(107, 0xB0));
	EXPECT(IAC, TN_DO, 44);
	FEED(IAC, TN_DO, 0, IAC, TN_WILL, 0);
	EXPECT_NOTHING();
	CHECK_EQ(bridge_mode(&B), BRIDGE_TELNET);
}

static void t_bridge_negotiation_baud(void)
{
	setup(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	negotiate();
	CHECK_OK();
	/* SET-BAUDRATE 115200 = 0x0001C200, answered with code 101 and the same 4 bytes */
	FEED(SB(1, 0x00, 0x01, 0xC2, 0x00));
	EXPECT(SB(101, 0x00, 0x01, 0xC2, 0x00));
	CHECK_EQ(F.cfg.baud, 115200);
	FEED(SB(1, 0x00, 0x00, 0x25, 0x80));
	EXPECT(SB(101, 0x00, 0x00, 0x25, 0x80));
	CHECK_EQ(F.cfg.baud, 9600);
	/* query (0) returns the current rate */
	FEED(SB(1, 0, 0, 0, 0));
	EXPECT(SB(101, 0x00, 0x00, 0x25, 0x80));
	/* 0x0001FFFF: 0xFF doubled on the way in and out */
	FEED(SB(1, 0x00, 0x01, IAC, IAC, IAC, IAC));
	EXPECT(SB(101, 0x00, 0x01, IAC, IAC, IAC, IAC));
	CHECK_EQ(F.cfg.baud, 0x0001FFFFu);
	/* 4000000 (0x003D0900), the top byte order matters */
	FEED(SB(1, 0x00, 0x3D, 0x09, 0x00));
	EXPECT(SB(101, 0x00, 0x3D, 0x09, 0x00));
	CHECK_EQ(F.cfg.baud, 4000000);
	CHECK_EQ(bridge_uart(&B)->baud, 4000000);
	/* the command split across two reads */
	static const uint8_t cmd[] = {SB(1, 0x00, 0x01, 0xC2, 0x00)};
	for (size_t cut = 1; cut < sizeof(cmd); cut++) {
		CHECK_EQ(bridge_from_net(&B, odd_copy(cmd, cut, 3), cut), cut);
		CHECK_EQ(bridge_from_net(&B, odd_copy(cmd + cut, sizeof(cmd) - cut, 1),
		                         sizeof(cmd) - cut),
		         sizeof(cmd) - cut);
		EXPECT(SB(101, 0x00, 0x01, 0xC2, 0x00));
	}
	EXPECT_NOTHING();
	CHECK(F.misaligned_ctx == 0);
}

static void t_bridge_framing_control(void)
{
	setup(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	negotiate();
	CHECK_OK();
	FEED(SB(2, 7), SB(3, 3), SB(4, 2));
	EXPECT(SB(102, 7), SB(103, 3), SB(104, 2));
	CHECK_EQ(F.cfg.data_bits, 7);
	CHECK_EQ(F.cfg.parity, RFC2217_PARITY_EVEN);
	CHECK_EQ(F.cfg.stop, RFC2217_STOPSIZE_2);
	FEED(SB(2, 0), SB(3, 0), SB(4, 0), SB(2, 9), SB(3, 6), SB(4, 4));
	EXPECT(SB(102, 7), SB(103, 3), SB(104, 2), SB(102, 7), SB(103, 3), SB(104, 2));
	FEED(SB(5, 8));
	EXPECT(SB(105, 8));
	CHECK_EQ(F.nrst, 0);
	FEED(SB(5, 11), SB(5, 7), SB(5, 10));
	EXPECT(SB(105, 11), SB(105, 8), SB(105, 11));
	CHECK_EQ(F.boot0, 1);
	FEED(SB(12, 1), SB(12, 2), SB(12, 3));
	EXPECT(SB(112, 1), SB(112, 2), SB(112, 3));
	CHECK_EQ(F.purges, 3);
	FEED(IAC, TN_SB, 44, 0, IAC, TN_SE);
	EXPECT(SB(100, 'e', 's', 'p', 's', 't', 'm', '-', 'b', 'r', 'i', 'd', 'g', 'e', ' ', '0',
	          '.', '2', '.', '0'));
	FEED(SB(1, 1, 2), SB(50, 1));
	EXPECT_NOTHING();
}

static void t_bridge_iac_data(void)
{
	setup(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	negotiate();
	CHECK_OK();
	FEED('a', IAC, IAC, 'b', IAC, IAC, IAC, IAC);
	CHECK_EQ(F.uart_len, 5);
	CHECK_MEM(F.uart, ((const uint8_t[]){'a', 0xFF, 'b', 0xFF, 0xFF}), 5);
	/* erased flash read back: 300 x 0xFF from the UART, every one doubled */
	static uint8_t ff[300];
	memset(ff, 0xFF, sizeof(ff));
	CHECK_EQ(bridge_from_uart(&B, odd_copy(ff, sizeof(ff), 1), sizeof(ff)), sizeof(ff));
	CHECK_EQ(F.net_len - net_pos, 2 * sizeof(ff));
	for (size_t i = 0; i < 2 * sizeof(ff); i++)
		CHECK_EQ(F.net[net_pos + i], 0xFF);
}

static void t_bridge_raw(void)
{
	setup(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	static const uint8_t u[] = {'h', 'i', 0xFF, 'z'};
	CHECK_EQ(bridge_from_uart(&B, odd_copy(u, 4, 1), 4), 2);
	EXPECT('h', 'i');
	FEED('A', 0xFF, 0xFF, 'B');
	CHECK_EQ(bridge_mode(&B), BRIDGE_RAW);
	CHECK_EQ(F.uart_len, 4);
	CHECK_MEM(F.uart, ((const uint8_t[]){'A', 0xFF, 0xFF, 'B'}), 4);
	CHECK_EQ(bridge_from_uart(&B, odd_copy(u + 2, 2, 3), 2), 2);
	EXPECT(0xFF, 'z');
	EXPECT_NOTHING();
}

static void set_8e1(void)
{
	FEED(SB(1, 0, 1, 0xC2, 0), SB(2, 8), SB(3, 3), SB(4, 1));
	EXPECT(SB(101, 0, 1, 0xC2, 0), SB(102, 8), SB(103, 3), SB(104, 1));
}

/* stm32flash's sequence: 8E1, then 0x7F -> BOOT0 high, NRST low 10 ms, settle 50 ms, 0x7F.
 * t0 is where the clock starts (one run crosses the 2^32 ms wrap). */
static void auto_boot_sync(uint32_t t0)
{
	setup_at(BRIDGE_AUTO_SYNC, BRIDGE_MAP_DIRECT, t0);
	CHECK_OK();
	negotiate();
	CHECK_OK();
	set_8e1();
	CHECK_OK();
	EXPECT_EV("");
	FEED(SB(5, 9), SB(5, 12)); /* pyserial re-sends DTR/RTS off: no pin moves */
	EXPECT(SB(105, 9), SB(105, 12));
	FEED(0x7F);
	CHECK_EQ(F.uart_len, 0);
	EXPECT_EV("B1@0 N0@0 ");
	F.now += 9;
	bridge_poll(&B);
	CHECK_EQ(F.nrst, 0);
	F.now += 1;
	bridge_poll(&B);
	CHECK_EQ(F.nrst, 1);
	CHECK_EQ(bridge_next_ms(&B), 50);
	F.now += 49;
	bridge_poll(&B);
	CHECK_EQ(F.uart_len, 0);
	F.now += 1;
	bridge_poll(&B);
	EXPECT_EV("B1@0 N0@0 N1@10 TX7f@60 ");
	/* leaving 8E1: BOOT0 low first, then an NRST pulse -> application */
	F.ev[0] = '\0';
	FEED(SB(3, 1));
	EXPECT(SB(103, 1));
	F.now += 10;
	bridge_poll(&B);
	EXPECT_EV("B0@60 N0@60 N1@70 ");
	CHECK_EQ(F.boot0, 0);
	CHECK_EQ(F.nrst, 1);
}

static void t_auto_boot_pin_order(void)
{
	auto_boot_sync(1000);
}

/* The same with the millisecond clock wrapping 2^32 between the steps. */
static void t_auto_boot_clock_wrap(void)
{
	auto_boot_sync(0xFFFFFFFFu - 20);
}

static void t_auto_boot_disconnect(void)
{
	setup(BRIDGE_AUTO_PARITY, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	negotiate();
	CHECK_OK();
	FEED(SB(3, 3), SB(4, 1));
	EXPECT(SB(103, 3));
	EXPECT_NOTHING();
	EXPECT_EV("B1@0 N0@0 ");
	F.now += 10;
	bridge_poll(&B);
	EXPECT_NOTHING();
	F.now += 50;
	bridge_poll(&B);
	EXPECT(SB(104, 1));
	F.now += 40;
	bridge_poll(&B);
	bridge_disconnect(&B);
	CHECK_EQ(F.cfg.parity, RFC2217_PARITY_NONE);
	F.now += 10;
	bridge_poll(&B);
	EXPECT_EV("B1@0 N0@0 N1@10 B0@100 N0@100 N1@110 ");
	CHECK_EQ(bridge_connected(&B), 0);
}

/* Drain estimate (uart_tx_pending): bits per char x pending bytes / baud, rounded up,
 * capped at 1 s. 429497 x 10 x 1000 does not fit in 32 bits (it wraps to 2704): a
 * 32-bit product would give 1 ms. */
static void drain_case(size_t pending, int32_t want)
{
	F.tx_pending = pending;
	FEED(SB(3, 3));
	EXPECT_NOTHING();
	CHECK_EQ(bridge_next_ms(&B), (uint32_t)want);
	F.tx_pending = 0;
	bridge_poll(&B);
	EXPECT(SB(103, 3));
	FEED(SB(3, 1));
	EXPECT(SB(103, 1));
}

static void t_drain_estimate(void)
{
	setup(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	negotiate();
	CHECK_OK();
	drain_case(3, 1);
	CHECK_OK();
	drain_case(100, 9); /* 1000000 / 115200 = 8.7 */
	CHECK_OK();
	drain_case(429497, 1000);
	CHECK_OK();
	FEED(SB(1, 0, 0, 0x25, 0x80)); /* 9600 */
	EXPECT(SB(101, 0, 0, 0x25, 0x80));
	drain_case(300, 313); /* 300 x 10 x 1000 / 9600 = 312.5 */
}

static void t_backpressure(void)
{
	setup(BRIDGE_AUTO_OFF, BRIDGE_MAP_DIRECT);
	CHECK_OK();
	FEED('!');
	static uint8_t big[3000];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	F.uart_space = 0;
	size_t k = bridge_from_net(&B, odd_copy(big, sizeof(big), 1), sizeof(big));
	CHECK_EQ(k, BRIDGE_TX_DATA);
	CHECK_EQ(bridge_net_room(&B), 0);
	size_t done = k;
	for (int guard = 0; done < sizeof(big) && guard < 10000; guard++) {
		F.uart_space = 7;
		bridge_poll(&B);
		done += bridge_from_net(&B, odd_copy(big + done, sizeof(big) - done, 3),
		                        sizeof(big) - done);
	}
	CHECK_EQ(done, sizeof(big));
	F.uart_space = SIZE_MAX;
	bridge_poll(&B);
	CHECK_EQ(F.uart_len, 1 + sizeof(big));
	CHECK_MEM(F.uart + 1, big, sizeof(big));
}

static void t_settings_names(void)
{
	enum bridge_line_map m;
	enum bridge_auto_boot a;
	CHECK_EQ(bridge_parse_line_map("esptool", &m), 0);
	CHECK_EQ(m, BRIDGE_MAP_ESPTOOL);
	CHECK_EQ(bridge_parse_line_map("bogus", &m), (unsigned long)-EINVAL);
	CHECK_EQ(bridge_parse_auto_boot("parity", &a), 0);
	CHECK_EQ(a, BRIDGE_AUTO_PARITY);
	CHECK_EQ(bridge_parse_auto_boot("", &a), (unsigned long)-EINVAL);
}

/* The runtime helpers the core needs from libgcc on lx106 (no divide instruction). */
static void t_arith_helpers(void)
{
	volatile uint32_t a = 4000000000u, b = 7, z = 3;
	CHECK_EQ(a / b, 571428571u);
	CHECK_EQ(a % b, 3);
	volatile int32_t s = -1000000007, t = 10;
	CHECK_EQ((uint32_t)(s / t), (uint32_t)-100000000);
	CHECK_EQ((uint32_t)(s % t), (uint32_t)-7);
	volatile uint64_t x = 0xFFFFFFFFFFFFFFFFull, y = 0x100000001ull;
	CHECK(x / y == 0xFFFFFFFFull);
	CHECK(x % y == 0);
	CHECK(x / z == 0x5555555555555555ull);
	CHECK((uint64_t)429497 * 10 * 1000 == 4294970000ull);
	volatile uint64_t m1 = 0x123456789ull, m2 = 0xABCDEF01ull;
	CHECK(m1 * m2 == 0xC379AAAB5AA34E89ull);
	volatile int64_t n1 = -5000000000ll, n2 = 3;
	CHECK(n1 / n2 == -1666666666ll);
	CHECK(n1 % n2 == -2);
}

/* RAM the session takes on the ESP8266 (about 80 KiB of DRAM for everything). */
static void t_struct_sizes(void)
{
	lx_printf("    sizeof(struct bridge) %u, sizeof(struct tn_decoder) %u, "
	          "sizeof(struct bridge_op) %u\n",
	          (unsigned)sizeof(struct bridge), (unsigned)sizeof(struct tn_decoder),
	          (unsigned)sizeof(struct bridge_op));
	CHECK_EQ(sizeof(struct bridge_op), 8);
	CHECK(sizeof(struct bridge) < 8192);
}

const struct lx_test lx_tests[] = {
    {"struct_sizes", t_struct_sizes},
    {"decode_whole", t_decode_whole},
    {"decode_split", t_decode_split},
    {"decode_bytewise", t_decode_bytewise},
    {"decode_long_sb", t_decode_long_sb},
    {"escape_iac", t_escape_iac},
    {"build_option", t_build_option},
    {"rfc2217_round_trip", t_rfc2217_round_trip},
    {"rfc2217_parse_errors", t_rfc2217_parse_errors},
    {"bridge_negotiation_baud", t_bridge_negotiation_baud},
    {"bridge_framing_control", t_bridge_framing_control},
    {"bridge_iac_data", t_bridge_iac_data},
    {"bridge_raw", t_bridge_raw},
    {"auto_boot_pin_order", t_auto_boot_pin_order},
    {"auto_boot_clock_wrap", t_auto_boot_clock_wrap},
    {"auto_boot_disconnect", t_auto_boot_disconnect},
    {"drain_estimate", t_drain_estimate},
    {"backpressure", t_backpressure},
    {"settings_names", t_settings_names},
    {"arith_helpers", t_arith_helpers},
};
const size_t lx_ntests = sizeof(lx_tests) / sizeof(lx_tests[0]);
