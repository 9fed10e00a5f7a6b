/* SPDX-License-Identifier: MIT */
/* Unit tests for the simulated STM32 (stm32sim/): AN3155 answers byte for byte per model,
 * memory commands, erase, wire/electrical model, application banner/echo, persistence. */
#include "unit.h"
#include "stm32sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define ACK  0x79
#define NACK 0x1F

static const struct stm32sim_line L8E1 = {115200, 8, 'E', 1};

/* Instant chip in the bootloader, synced. */
static struct stm32sim *boot_chip(const char *model, const char *path)
{
	struct stm32sim_options o = {.model = model, .flash_path = path, .instant = 1};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	stm32sim_set_line(s, 0, &L8E1);
	stm32sim_set_pins(s, 0, 0, 1);
	stm32sim_set_pins(s, 1, 1, 1);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_BOOTLOADER);
	uint8_t b = 0x7F, r[4];
	ck_assert_uint_eq(stm32sim_write(s, 2, &b, 1), 1);
	ck_assert_uint_eq(stm32sim_read(s, 2, r, sizeof(r)), 1);
	ck_assert_uint_eq(r[0], ACK);
	return s;
}

/* Send p, return the reply (instant mode). */
static size_t xfer(struct stm32sim *s, const uint8_t *p, size_t n, uint8_t *r, size_t cap)
{
	ck_assert_uint_eq(stm32sim_write(s, 10, p, n), n);
	return stm32sim_read(s, 10, r, cap);
}

static void expect(struct stm32sim *s, const uint8_t *p, size_t n, const uint8_t *want, size_t wn)
{
	uint8_t r[512];
	size_t got = xfer(s, p, n, r, sizeof(r));
	ck_assert_uint_eq(got, wn);
	ck_assert_mem_eq(r, want, wn);
}

static void expect1(struct stm32sim *s, const uint8_t *p, size_t n, uint8_t want)
{
	expect(s, p, n, &want, 1);
}

static void send_addr(struct stm32sim *s, uint32_t a, uint8_t want)
{
	uint8_t f[5] = {a >> 24, a >> 16, a >> 8, a, 0};
	f[4] = f[0] ^ f[1] ^ f[2] ^ f[3];
	expect1(s, f, 5, want);
}

static void cmd(struct stm32sim *s, uint8_t c, uint8_t want)
{
	uint8_t f[2] = {c, (uint8_t)(c ^ 0xFF)};
	expect1(s, f, 2, want);
}

static void write_mem(struct stm32sim *s, uint32_t a, const uint8_t *d, size_t n)
{
	cmd(s, 0x31, ACK);
	send_addr(s, a, ACK);
	uint8_t f[258];
	f[0] = (uint8_t)(n - 1);
	uint8_t x = f[0];
	for (size_t i = 0; i < n; i++) {
		f[1 + i] = d[i];
		x ^= d[i];
	}
	f[1 + n] = x;
	expect1(s, f, n + 2, ACK);
}

static void read_mem(struct stm32sim *s, uint32_t a, uint8_t *d, size_t n)
{
	cmd(s, 0x11, ACK);
	send_addr(s, a, ACK);
	uint8_t f[2] = {(uint8_t)(n - 1), (uint8_t)((n - 1) ^ 0xFF)};
	uint8_t r[300];
	ck_assert_uint_eq(xfer(s, f, 2, r, sizeof(r)), n + 1);
	ck_assert_uint_eq(r[0], ACK);
	memcpy(d, r + 1, n);
}

static const struct {
	const char *model;
	uint8_t ver, erase;
	uint16_t pid;
} answers[] = {{"stm32f103", 0x22, 0x43, 0x410},
               {"stm32f407", 0x31, 0x44, 0x413},
               {"stm32g431", 0x31, 0x44, 0x468}};

START_TEST(test_get_gvr_gid)
{
	struct stm32sim *s = boot_chip(answers[_i].model, NULL);
	uint8_t get[] = {0x00, 0xFF};
	uint8_t want_get[] = {ACK,  0x0B, answers[_i].ver,   0x00, 0x01, 0x02, 0x11,
	                      0x21, 0x31, answers[_i].erase, 0x63, 0x73, 0x82, 0x92,
	                      ACK};
	expect(s, get, 2, want_get, sizeof(want_get));
	uint8_t gvr[] = {0x01, 0xFE}, want_gvr[] = {ACK, answers[_i].ver, 0, 0, ACK};
	expect(s, gvr, 2, want_gvr, sizeof(want_gvr));
	uint8_t gid[] = {0x02, 0xFD};
	uint8_t want_gid[] = {ACK, 0x01, answers[_i].pid >> 8, answers[_i].pid & 0xFF, ACK};
	expect(s, gid, 2, want_gid, sizeof(want_gid));
	/* the other erase command is not offered and is refused */
	cmd(s, answers[_i].erase == 0x43 ? 0x44 : 0x43, NACK);
	/* bad complement */
	uint8_t bad[] = {0x00, 0x00};
	expect1(s, bad, 2, NACK);
	/* a second 0x7F after sync is a command byte: the next 0x7F completes a bad pair */
	uint8_t s7[] = {0x7F, 0x7F};
	expect1(s, s7, 2, NACK);
	stm32sim_free(s);
}
END_TEST

START_TEST(test_write_read)
{
	struct stm32sim *s = boot_chip(answers[_i].model, NULL);
	uint8_t d[256], r[256];
	for (int i = 0; i < 256; i++)
		d[i] = (uint8_t)(i * 7 + 3);
	write_mem(s, 0x08000100, d, 256);
	read_mem(s, 0x08000100, r, 256);
	ck_assert_mem_eq(d, r, 256);
	/* padding: a 5-byte write leaves the next 3 bytes erased */
	write_mem(s, 0x08001000, d, 5);
	read_mem(s, 0x08001000, r, 8);
	ck_assert_mem_eq(r, d, 5);
	ck_assert_uint_eq(r[5], 0xFF);
	ck_assert_uint_eq(r[7], 0xFF);
	/* RAM */
	write_mem(s, 0x20000200, d, 24);
	read_mem(s, 0x20000200, r, 24);
	ck_assert_mem_eq(d, r, 24);
	stm32sim_free(s);
}
END_TEST

START_TEST(test_nacks)
{
	struct stm32sim *s = boot_chip("stm32f103", NULL);
	/* bad address checksum */
	cmd(s, 0x11, ACK);
	uint8_t f[5] = {0x08, 0, 0, 0, 0x00};
	expect1(s, f, 5, NACK);
	/* unaligned write address */
	cmd(s, 0x31, ACK);
	send_addr(s, 0x08000002, NACK);
	/* out of range: past the end of flash, and nowhere */
	cmd(s, 0x11, ACK);
	send_addr(s, 0x08020000, NACK);
	cmd(s, 0x31, ACK);
	send_addr(s, 0x40000000, NACK);
	/* read crossing the end of flash */
	cmd(s, 0x11, ACK);
	send_addr(s, 0x0801FF80, ACK);
	uint8_t n[2] = {0xFF, 0x00};
	expect1(s, n, 2, NACK);
	/* read with bad N complement */
	cmd(s, 0x11, ACK);
	send_addr(s, 0x08000000, ACK);
	uint8_t n2[2] = {0x03, 0x03};
	expect1(s, n2, 2, NACK);
	/* write with bad data checksum */
	cmd(s, 0x31, ACK);
	send_addr(s, 0x08000000, ACK);
	uint8_t w[] = {3, 1, 2, 3, 4, 0x55};
	expect1(s, w, sizeof(w), NACK);
	uint8_t r[4];
	read_mem(s, 0x08000000, r, 4);
	ck_assert_uint_eq(r[0], 0xFF);
	/* GO to a non-executable address */
	cmd(s, 0x21, ACK);
	send_addr(s, 0x1FFFF800, NACK);
	/* erase: bad page number and bad checksum */
	cmd(s, 0x43, ACK);
	uint8_t e[] = {0x00, 200, 200};
	expect1(s, e, sizeof(e), NACK);
	cmd(s, 0x43, ACK);
	uint8_t e2[] = {0x01, 1, 2, 0x77};
	expect1(s, e2, sizeof(e2), NACK);
	stm32sim_free(s);
}
END_TEST

static void fill_pages(struct stm32sim *s, uint32_t off)
{
	uint8_t d[16];
	memset(d, 0x00, sizeof(d));
	write_mem(s, 0x08000000 + off, d, sizeof(d));
}

static int is_erased(struct stm32sim *s, uint32_t off)
{
	size_t sz;
	const uint8_t *f = stm32sim_flash(s, &sz);
	for (int i = 0; i < 16; i++)
		if (f[off + i] != 0xFF)
			return 0;
	return 1;
}

START_TEST(test_erase_f103)
{
	struct stm32sim *s = boot_chip("stm32f103", NULL);
	fill_pages(s, 0);
	fill_pages(s, 1024);
	fill_pages(s, 2048);
	cmd(s, 0x43, ACK);
	uint8_t e[] = {0x01, 0, 2, 0x01 ^ 0 ^ 2};
	expect1(s, e, sizeof(e), ACK);
	ck_assert(is_erased(s, 0));
	ck_assert(!is_erased(s, 1024));
	ck_assert(is_erased(s, 2048));
	cmd(s, 0x43, ACK);
	uint8_t g[] = {0xFF, 0x00};
	expect1(s, g, 2, ACK);
	ck_assert(is_erased(s, 1024));
	stm32sim_free(s);
}
END_TEST

START_TEST(test_erase_ext)
{
	const char *model = _i ? "stm32g431" : "stm32f407";
	uint32_t p1 = _i ? 2048 : 16384; /* offset of page/sector 1 */
	struct stm32sim *s = boot_chip(model, NULL);
	fill_pages(s, 0);
	fill_pages(s, p1);
	fill_pages(s, 2 * p1);
	cmd(s, 0x44, ACK);
	uint8_t e[] = {0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x01 ^ 0x02};
	expect1(s, e, sizeof(e), ACK);
	ck_assert(is_erased(s, 0));
	ck_assert(!is_erased(s, p1));
	ck_assert(is_erased(s, 2 * p1));
	/* bad page number */
	cmd(s, 0x44, ACK);
	uint8_t bad[] = {0x00, 0x00, 0x01, 0x00, 0x01};
	expect1(s, bad, sizeof(bad), NACK);
	/* bank erase codes refused on these single-bank parts */
	cmd(s, 0x44, ACK);
	uint8_t bank[] = {0xFF, 0xFE, 0x01};
	expect1(s, bank, sizeof(bank), NACK);
	/* mass erase */
	cmd(s, 0x44, ACK);
	uint8_t m[] = {0xFF, 0xFF, 0x00};
	expect1(s, m, sizeof(m), ACK);
	ck_assert(is_erased(s, p1));
	stm32sim_free(s);
}
END_TEST

/* F407 with wire time: the ACK of a sector erase arrives after the erase time. */
START_TEST(test_f407_erase_timing)
{
	struct stm32sim_options o = {.model = "stm32f407"};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	stm32sim_set_line(s, 0, &L8E1);
	stm32sim_set_pins(s, 0, 0, 1);
	stm32sim_set_pins(s, 100, 1, 1);
	uint64_t t = 100000; /* 100 ms: booted */
	uint8_t r[16];
	uint8_t b = 0x7F;
	ck_assert_uint_eq(stm32sim_write(s, t, &b, 1), 1);
	t += 1000;
	ck_assert_uint_eq(stm32sim_read(s, t, r, sizeof(r)), 1);
	uint8_t c[] = {0x44, 0xBB};
	stm32sim_write(s, t, c, 2);
	t += 1000;
	ck_assert_uint_eq(stm32sim_read(s, t, r, sizeof(r)), 1);
	/* erase sector 5 (128 KiB, 2 s) */
	uint8_t e[] = {0x00, 0x00, 0x00, 0x05, 0x05};
	ck_assert_uint_eq(stm32sim_write(s, t, e, sizeof(e)), sizeof(e));
	uint64_t sent = t + 5 * 96;
	ck_assert_uint_eq(stm32sim_read(s, sent + 1900000, r, sizeof(r)), 0);
	uint64_t ev = stm32sim_next_event_us(s);
	ck_assert_uint_ge(ev, sent + 2000000 - 100);
	ck_assert_uint_le(ev, sent + 2000000 + 300);
	ck_assert_uint_eq(stm32sim_read(s, sent + 2000300, r, sizeof(r)), 1);
	ck_assert_uint_eq(r[0], ACK);
	/* mass erase: 8 s */
	stm32sim_write(s, sent + 2000300, c, 2);
	t = sent + 2010000;
	ck_assert_uint_eq(stm32sim_read(s, t, r, sizeof(r)), 1);
	uint8_t m[] = {0xFF, 0xFF, 0x00};
	stm32sim_write(s, t, m, 3);
	ck_assert_uint_eq(stm32sim_read(s, t + 7900000, r, sizeof(r)), 0);
	ck_assert_uint_eq(stm32sim_read(s, t + 8001000, r, sizeof(r)), 1);
	ck_assert_uint_eq(r[0], ACK);
	stm32sim_free(s);
}
END_TEST

/* Wire time: one byte at 115200 8E1 takes 11 bits = 95.5 us each way. */
START_TEST(test_wire_time)
{
	struct stm32sim_options o = {.model = "stm32f103"};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	stm32sim_set_line(s, 0, &L8E1);
	stm32sim_set_pins(s, 0, 0, 1);
	stm32sim_set_pins(s, 10, 1, 1);
	uint64_t t = 10000;
	stm32sim_poll(s, t);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_BOOTLOADER);
	uint8_t b = 0x7F, r[4];
	ck_assert_uint_eq(stm32sim_write(s, t, &b, 1), 1);
	ck_assert_uint_eq(stm32sim_read(s, t + 190, r, 4), 0);
	uint64_t ev = stm32sim_next_event_us(s);
	ck_assert_uint_eq(ev, t + 191); /* 2 x 95.49 us, rounded up */
	ck_assert_uint_eq(stm32sim_read(s, t + 191, r, 4), 1);
	ck_assert_uint_eq(r[0], ACK);
	/* backpressure: a long write is accepted only partly */
	uint8_t big[1000]; /* more than IN_CAP */
	memset(big, 0x00, sizeof(big));
	size_t n = stm32sim_write(s, t + 1000, big, sizeof(big));
	ck_assert_uint_gt(n, 0);
	ck_assert_uint_lt(n, sizeof(big));
	stm32sim_free(s);
}
END_TEST

START_TEST(test_parity_mismatch)
{
	struct stm32sim_options o = {.model = "stm32f103", .instant = 1};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	struct stm32sim_line odd = {115200, 8, 'O', 1};
	stm32sim_set_line(s, 0, &odd);
	stm32sim_set_pins(s, 0, 0, 1);
	stm32sim_set_pins(s, 1, 1, 1);
	uint8_t b = 0x7F, r[8];
	stm32sim_write(s, 2, &b, 1);
	ck_assert_uint_eq(stm32sim_read(s, 2, r, sizeof(r)), 0);
	stm32sim_free(s);

	/* synced at 8E1, then the bridge switches to 8N1: GET (0x00 0xFF) is dropped */
	s = boot_chip("stm32f103", NULL);
	struct stm32sim_line n81 = {115200, 8, 'N', 1};
	stm32sim_set_line(s, 10, &n81);
	uint8_t get[] = {0x00, 0xFF};
	ck_assert_uint_eq(xfer(s, get, 2, r, sizeof(r)), 0);
	stm32sim_free(s);

	/* baud off by 5 %: garbled, no ACK */
	s = boot_chip("stm32f103", NULL);
	struct stm32sim_line fast = {121000, 8, 'E', 1};
	stm32sim_set_line(s, 10, &fast);
	uint8_t gvr[] = {0x01, 0xFE};
	size_t k = xfer(s, gvr, 2, r, sizeof(r));
	ck_assert(k == 0 || r[0] != ACK || k < 5);
	/* 1 % off still works */
	struct stm32sim_line near = {116300, 8, 'E', 1};
	stm32sim_set_line(s, 10, &near);
	/* resync as stm32flash does: single bytes until a NACK ends the odd frame */
	int synced = 0;
	for (int i = 0; i < 4 && !synced; i++) {
		uint8_t z = 0x00;
		synced = xfer(s, &z, 1, r, sizeof(r)) == 1 && r[0] == NACK;
	}
	ck_assert(synced);
	uint8_t want[] = {ACK, 0x22, 0, 0, ACK};
	expect(s, gvr, 2, want, sizeof(want));
	stm32sim_free(s);
}
END_TEST

static void make_image(uint8_t *img, size_t n)
{
	memset(img, 0, n);
	for (size_t i = 8; i < n; i++)
		img[i] = (uint8_t)(i * 13);
	/* SP = 0x20005000 (end of F103 RAM), reset = 0x08000101 */
	uint8_t v[8] = {0x00, 0x50, 0x00, 0x20, 0x01, 0x01, 0x00, 0x08};
	memcpy(img, v, 8);
}

static size_t read_all(struct stm32sim *s, uint64_t t, char *buf, size_t cap)
{
	size_t n = stm32sim_read(s, t, (uint8_t *)buf, cap - 1);
	buf[n] = 0;
	return n;
}

START_TEST(test_app_banner_echo)
{
	struct stm32sim *s = boot_chip("stm32f103", NULL);
	uint8_t img[1000];
	make_image(img, sizeof(img));
	for (size_t off = 0; off < sizeof(img); off += 200)
		write_mem(s, 0x08000000 + (uint32_t)off, img + off, 200);
	char want[80], got[128];
	snprintf(want, sizeof(want), "stm32sim app crc32=%08lx len=%zu\r\n",
	         crc32(crc32(0, Z_NULL, 0), img, sizeof(img)), sizeof(img));
	/* GO to the flash base starts it: ACK then the banner at app baud 8N1 */
	cmd(s, 0x21, ACK);
	uint8_t go[5] = {0x08, 0, 0, 0, 0x08}, ack;
	ck_assert_uint_eq(stm32sim_write(s, 20, go, 5), 5);
	ck_assert_uint_eq(stm32sim_read(s, 20, &ack, 1), 1);
	ck_assert_uint_eq(ack, ACK);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_APP);
	struct stm32sim_line n81 = {115200, 8, 'N', 1};
	stm32sim_set_line(s, 20, &n81);
	read_all(s, 20, got, sizeof(got));
	ck_assert_str_eq(got, want);
	/* reset with BOOT0 low: banner again */
	stm32sim_set_pins(s, 30, 0, 0);
	stm32sim_set_pins(s, 31, 1, 0);
	read_all(s, 31, got, sizeof(got));
	ck_assert_str_eq(got, want);
	uint32_t crc, len;
	ck_assert_int_eq(stm32sim_flash_summary(s, &crc, &len), 1);
	ck_assert_uint_eq(len, sizeof(img));
	/* echo */
	const char *msg = "hello\r\n";
	ck_assert_uint_eq(stm32sim_write(s, 40, (const uint8_t *)msg, 7), 7);
	read_all(s, 40, got, sizeof(got));
	ck_assert_str_eq(got, msg);
	/* app baud 8N1 only: at 8E1 the echo is damaged */
	stm32sim_set_line(s, 50, &L8E1);
	stm32sim_write(s, 50, (const uint8_t *)"\x00\x03", 2);
	size_t k = read_all(s, 50, got, sizeof(got));
	ck_assert(k != 2 || memcmp(got, "\x00\x03", 2) != 0);
	stm32sim_free(s);
}
END_TEST

START_TEST(test_blank_silent)
{
	struct stm32sim_options o = {.model = "stm32g431", .instant = 1};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	uint8_t r[64];
	ck_assert_uint_eq(stm32sim_read(s, 5, r, sizeof(r)), 0);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_HALTED);
	stm32sim_write(s, 6, (const uint8_t *)"abc", 3);
	ck_assert_uint_eq(stm32sim_read(s, 7, r, sizeof(r)), 0);
	ck_assert_uint_eq(stm32sim_next_event_us(s), UINT64_MAX);
	/* NRST low: output stops and nothing is accepted */
	stm32sim_set_pins(s, 8, 0, 0);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_RESET);
	stm32sim_free(s);
}
END_TEST

START_TEST(test_persistence)
{
	char path[] = "/tmp/stm32sim-test-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	close(fd); /* empty file: created full of 0xFF */
	struct stm32sim *s = boot_chip("stm32f103", path);
	uint8_t img[256];
	make_image(img, sizeof(img));
	write_mem(s, 0x08000000, img, sizeof(img));
	/* another process sees it at once (written back after each command) */
	FILE *f = fopen(path, "rb");
	ck_assert(f);
	uint8_t back[256];
	ck_assert_uint_eq(fread(back, 1, sizeof(back), f), sizeof(back));
	fseek(f, 0, SEEK_END);
	ck_assert_int_eq(ftell(f), 128 * 1024);
	fclose(f);
	ck_assert_mem_eq(back, img, sizeof(img));
	stm32sim_free(s);

	struct stm32sim_options o = {.model = "stm32f103", .flash_path = path, .instant = 1};
	char err[200];
	s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert_msg(s != NULL, "%s", err);
	char got[100], want[100];
	snprintf(want, sizeof(want), "stm32sim app crc32=%08lx len=256\r\n",
	         crc32(crc32(0, Z_NULL, 0), img, sizeof(img)));
	read_all(s, 1, got, sizeof(got));
	ck_assert_str_eq(got, want);
	stm32sim_free(s);

	/* a file of the wrong size is an error */
	o.model = "stm32f407";
	s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s == NULL);
	ck_assert(strstr(err, "bytes") != NULL);
	unlink(path);
	o.model = "stm32f999";
	ck_assert(stm32sim_new(&o, 0, err, sizeof(err)) == NULL);
}
END_TEST

START_TEST(test_protect_reset)
{
	struct stm32sim *s = boot_chip("stm32f103", NULL);
	uint8_t r[8];
	/* READOUT PROTECT: ACK ACK, then reset: needs a new sync */
	uint8_t rp[] = {0x82, 0x7D};
	uint8_t two[] = {ACK, ACK};
	expect(s, rp, 2, two, 2);
	uint8_t b = 0x7F;
	expect1(s, &b, 1, ACK);
	cmd(s, 0x11, NACK); /* protected */
	/* READOUT UNPROTECT: mass erase, ACK ACK, reset */
	uint8_t ur[] = {0x92, 0x6D};
	expect(s, ur, 2, two, 2);
	expect1(s, &b, 1, ACK);
	cmd(s, 0x11, ACK);
	send_addr(s, 0x08000000, ACK);
	uint8_t n[2] = {0, 0xFF};
	ck_assert_uint_eq(xfer(s, n, 2, r, sizeof(r)), 2);
	/* WRITE PROTECT page 0 then writing there is refused; WRITE UNPROTECT lifts it */
	cmd(s, 0x63, ACK);
	uint8_t wp[] = {0x00, 0x00, 0x00};
	expect1(s, wp, 3, ACK);
	expect1(s, &b, 1, ACK);
	cmd(s, 0x31, ACK);
	send_addr(s, 0x08000000, ACK);
	uint8_t w[] = {3, 1, 2, 3, 4, 3 ^ 1 ^ 2 ^ 3 ^ 4};
	expect1(s, w, sizeof(w), NACK);
	uint8_t uw[] = {0x73, 0x8C};
	expect(s, uw, 2, two, 2);
	expect1(s, &b, 1, ACK);
	write_mem(s, 0x08000000, w + 1, 4);
	/* GO to RAM (stm32flash -R's stub) resets into the bootloader again */
	cmd(s, 0x21, ACK);
	send_addr(s, 0x20000200, ACK);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_BOOTLOADER);
	expect1(s, &b, 1, ACK);
	stm32sim_free(s);
}
END_TEST

START_TEST(test_frame_timeout)
{
	struct stm32sim_options o = {.model = "stm32f103", .instant = 1, .frame_timeout_ms = 100};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	stm32sim_set_line(s, 0, &L8E1);
	stm32sim_set_pins(s, 0, 0, 1);
	stm32sim_set_pins(s, 1, 1, 1);
	uint8_t b = 0x7F, r[8];
	stm32sim_write(s, 2, &b, 1);
	ck_assert_uint_eq(stm32sim_read(s, 2, r, 8), 1);
	b = 0x01;
	stm32sim_write(s, 10, &b, 1);
	ck_assert_uint_eq(stm32sim_next_event_us(s), 100010);
	stm32sim_poll(s, 200000);
	uint8_t gvr[] = {0x01, 0xFE};
	stm32sim_write(s, 200000, gvr, 2);
	ck_assert_uint_eq(stm32sim_read(s, 200000, r, 8), 5);
	stm32sim_free(s);
}
END_TEST

/* BOOT0 is latched at the NRST rising edge: a change 0.5 ms later (before the 2 ms boot
 * completes) must not change what runs. */
START_TEST(test_boot0_latched_at_release)
{
	struct stm32sim_options o = {.model = "stm32f103"};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	stm32sim_set_line(s, 0, &L8E1);
	/* released with BOOT0 low, raised 0.5 ms later: application (blank: halted) */
	stm32sim_set_pins(s, 1000, 0, 0);
	stm32sim_set_pins(s, 2000, 1, 0);
	stm32sim_set_pins(s, 2500, 1, 1);
	stm32sim_poll(s, 10000);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_HALTED);
	uint8_t b = 0x7F, r[4];
	stm32sim_write(s, 10000, &b, 1);
	ck_assert_uint_eq(stm32sim_read(s, 11000, r, sizeof(r)), 0); /* no bootloader ACK */
	/* released with BOOT0 high, lowered 0.5 ms later: bootloader */
	stm32sim_set_pins(s, 20000, 0, 1);
	stm32sim_set_pins(s, 21000, 1, 1);
	stm32sim_set_pins(s, 21500, 1, 0);
	stm32sim_poll(s, 30000);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_BOOTLOADER);
	stm32sim_write(s, 30000, &b, 1);
	ck_assert_uint_eq(stm32sim_read(s, 31000, r, sizeof(r)), 1);
	ck_assert_uint_eq(r[0], ACK);
	/* a software reset (READOUT PROTECT) samples BOOT0 (low now): application */
	uint8_t rp[] = {0x82, 0x7D};
	stm32sim_write(s, 31000, rp, 2);
	stm32sim_poll(s, 100000);
	ck_assert_int_eq(stm32sim_state(s), STM32SIM_HALTED);
	stm32sim_free(s);
}
END_TEST

/* A framing change applies to bytes the bridge's UART holds but has not started to send,
 * as on a real UART; stm32sim_tx_pending() tells when the transmitter is idle. */
START_TEST(test_line_change_reframes_queue)
{
	struct stm32sim_options o = {.model = "stm32f103"};
	char err[200];
	struct stm32sim *s = stm32sim_new(&o, 0, err, sizeof(err));
	ck_assert(s);
	stm32sim_set_line(s, 0, &L8E1);
	stm32sim_set_pins(s, 0, 0, 1);
	stm32sim_set_pins(s, 10, 1, 1);
	uint64_t t = 10000;
	uint8_t b = 0x7F, r[8];
	ck_assert_uint_eq(stm32sim_write(s, t, &b, 1), 1);
	ck_assert_uint_eq(stm32sim_tx_pending(s, t), 1);
	ck_assert_uint_eq(stm32sim_tx_pending(s, t + 96), 0);
	ck_assert_uint_eq(stm32sim_read(s, t + 1000, r, sizeof(r)), 1);
	/* GET at 8E1, then the line switches to 8N1 before those bytes are sent: dropped */
	t += 2000;
	uint8_t get[] = {0x00, 0xFF}, r2[32];
	ck_assert_uint_eq(stm32sim_write(s, t, get, 2), 2);
	ck_assert_uint_eq(stm32sim_tx_pending(s, t), 2);
	struct stm32sim_line n81 = {115200, 8, 'N', 1};
	stm32sim_set_line(s, t, &n81);
	ck_assert_uint_eq(stm32sim_read(s, t + 5000, r, sizeof(r)), 0);
	/* waiting for the transmitter to be idle first keeps them intact */
	stm32sim_set_line(s, t + 5000, &L8E1);
	t += 10000;
	ck_assert_uint_eq(stm32sim_write(s, t, get, 2), 2);
	uint64_t idle = t;
	while (stm32sim_tx_pending(s, idle))
		idle += 10;
	ck_assert_uint_ge(idle, t + 190);
	stm32sim_set_line(s, idle, &n81);
	stm32sim_set_line(s, idle, &L8E1);
	ck_assert_uint_eq(stm32sim_read(s, t + 5000, r2, sizeof(r2)), 15);
	ck_assert_uint_eq(r2[0], ACK);
	stm32sim_free(s);
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *su = suite_create("stm32sim");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, test_get_gvr_gid, 0, 3);
	tcase_add_loop_test(tc, test_write_read, 0, 3);
	tcase_add_test(tc, test_nacks);
	tcase_add_test(tc, test_erase_f103);
	tcase_add_loop_test(tc, test_erase_ext, 0, 2);
	tcase_add_test(tc, test_f407_erase_timing);
	tcase_add_test(tc, test_wire_time);
	tcase_add_test(tc, test_parity_mismatch);
	tcase_add_test(tc, test_app_banner_echo);
	tcase_add_test(tc, test_blank_silent);
	tcase_add_test(tc, test_persistence);
	tcase_add_test(tc, test_protect_reset);
	tcase_add_test(tc, test_frame_timeout);
	tcase_add_test(tc, test_boot0_latched_at_release);
	tcase_add_test(tc, test_line_change_reframes_queue);
	suite_add_tcase(su, tc);
	return su;
}
UNIT_SUITE(sim_suite)
