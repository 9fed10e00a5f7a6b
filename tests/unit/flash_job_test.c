/* SPDX-License-Identifier: MIT */
/* firmware/core/flash_job.c through the http_api_flash_* calls and the flash routes of
 * http_api.c: streamed bin and Intel HEX uploads, staged uploads (stage=1, crc32), refusals,
 * interruptions and DELETE, on the real AN3155 master and the simulated STM32. */
#include "api_fixture.h"
#include "stm32sim.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

/* ------------------------------------------------------------------------------------ */
/* Flashing (http_api.h "Flashing"): the real AN3155 master (stm32_isp) on the simulated   */
/* STM32 with its real wire and flash timing, driven by a fake clock.                     */
/* ------------------------------------------------------------------------------------ */

static struct {
	struct stm32sim *sim;
	uint64_t now_us;
	struct stm32_isp isp;
	struct hal_ops hal;
	int nrst, boot0;
	int claims, unclaims, claimed;
	int no_isp;
	unsigned uart_tx, uart_cfgs, pin_sets; /* everything the ISP did to the chip */
} R;

static int r_cfg(void *ctx, struct hal_uart_cfg *c)
{
	(void)ctx;
	static const char par[] = "?NOEMS";
	struct stm32sim_line l = {c->baud, c->data_bits, c->parity <= 5 ? par[c->parity] : 'N',
	                          (uint8_t)(c->stop == 2 ? 2 : 1)};
	R.uart_cfgs++;
	stm32sim_set_line(R.sim, R.now_us, &l);
	return 0;
}
static size_t r_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	size_t k = stm32sim_write(R.sim, R.now_us, p, n);
	R.uart_tx += (unsigned)k;
	return k;
}
static void r_purge(void *ctx, int rx, int tx)
{
	(void)ctx;
	(void)tx;
	uint8_t b[64];
	while (rx && stm32sim_read(R.sim, R.now_us, b, sizeof(b)) > 0)
		;
}
static void r_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	R.pin_sets++;
	if (pin == HAL_PIN_NRST)
		R.nrst = level;
	else
		R.boot0 = level;
	stm32sim_set_pins(R.sim, R.now_us, R.nrst, R.boot0);
}
static uint32_t r_now(void *ctx)
{
	(void)ctx;
	return (uint32_t)(R.now_us / 1000);
}
static size_t r_pending(void *ctx)
{
	(void)ctx;
	return stm32sim_tx_pending(R.sim, R.now_us);
}

static struct stm32_isp *f_isp(void *ctx, unsigned t)
{
	(void)ctx;
	return R.no_isp || t != 0 ? NULL : &R.isp;
}
static void f_claim(void *ctx, unsigned t, int on)
{
	(void)ctx;
	ck_assert_uint_eq(t, 0);
	ck_assert_int_ne(on, R.claimed); /* called in pairs */
	R.claimed = on;
	if (on)
		R.claims++;
	else
		R.unclaims++;
}
static const struct api_ops fops = {.status = fx_status,
                                    .apply = fx_apply,
                                    .action = fx_action,
                                    .isp = f_isp,
                                    .flash_claim = f_claim};

static void rig_setup(const char *model)
{
	memset(&R, 0, sizeof(R));
	char err[160];
	struct stm32sim_options so = {.model = model};
	R.now_us = 1000;
	R.sim = stm32sim_new(&so, R.now_us, err, sizeof(err));
	ck_assert_msg(R.sim != NULL, "%s", err);
	R.nrst = 1;
	R.hal = (struct hal_ops){.uart_config = r_cfg,
	                         .uart_write = r_write,
	                         .uart_purge = r_purge,
	                         .gpio_set = r_gpio,
	                         .now_ms = r_now,
	                         .uart_tx_pending = r_pending};
	stm32_isp_init(&R.isp, &R.hal, NULL);
	struct settings_caps caps;
	settings_caps_nominal(&caps, 1);
	settings_mgr_init(&fx.sm, &caps, NULL, NULL);
	ck_assert_int_eq(http_api_init(&fx.api, &fops, NULL, &fx.sm, "pw-123"), 0);
	fx.acted = 0;
}

static void flash_setup(void)
{
	rig_setup("stm32f103");
}

static void flash_teardown(void)
{
	stm32sim_free(R.sim);
	R.sim = NULL;
}

/* One platform round: UART bytes to the ISP, ISP poll, clock to the next event. */
static int step(void)
{
	uint8_t b[256];
	size_t n;
	stm32sim_poll(R.sim, R.now_us);
	while ((n = stm32sim_read(R.sim, R.now_us, b, sizeof(b))) > 0)
		if (R.claimed && stm32_isp_busy(&R.isp))
			stm32_isp_input(&R.isp, b, n);
	stm32_isp_poll(&R.isp);
	int r = http_api_flash_poll(&fx.api, 0);
	uint64_t next = stm32sim_next_event_us(R.sim);
	int32_t in = stm32_isp_next_ms(&R.isp);
	uint64_t t = R.now_us + 1000;
	if (in > 0)
		t = R.now_us + (uint64_t)in * 1000;
	if (next != UINT64_MAX && next > R.now_us && next < t)
		t = next;
	R.now_us = t;
	return r;
}

static int start(const char *query, int64_t cl, struct api_response *rs)
{
	struct api_request rq = {.method = "POST",
	                         .path = "/api/targets/0/flash",
	                         .authorization = GOOD,
	                         .x_request = "1",
	                         .now_ms = r_now(NULL)};
	return http_api_flash_start(&fx.api, &rq, query, cl, rs);
}

/* Stream p/n in pieces of `piece`, counting refusals (backpressure). Returns the count. */
static unsigned stream(const uint8_t *p, size_t n, size_t piece)
{
	size_t off = 0;
	unsigned refused = 0;
	for (int guard = 0; off < n; guard++) {
		ck_assert_int_lt(guard, 10000000);
		size_t len = n - off < piece ? n - off : piece;
		size_t k = http_api_flash_body(&fx.api, 0, p + off, len);
		off += k;
		if (k < len) {
			refused++;
			/* wait for room, as a server does */
			while (!(step() & HTTP_API_FLASH_ROOM))
				;
		}
	}
	return refused;
}

/* Body done: run to the result. */
static struct api_response finish(void)
{
	http_api_flash_body_end(&fx.api, 0);
	struct api_response rs;
	for (int guard = 0; !(step() & HTTP_API_FLASH_RESULT); guard++)
		ck_assert_int_lt(guard, 10000000);
	ck_assert_int_eq(http_api_flash_result(&fx.api, 0, &rs), 1);
	return rs;
}

static const char *jstr(const struct api_response *rs, const char *key, char *buf, size_t cap)
{
	fx_parse(rs);
	int v = json_find(rs->body, fx.tok, 0, key);
	ck_assert_msg(v > 0, "no %s in %.*s", key, (int)rs->len, rs->body);
	if (fx.tok[v].type == J_NULL)
		return NULL;
	ck_assert_int_eq(json_copy(rs->body, &fx.tok[v], buf, cap), 0);
	return buf;
}

static long long jint(const struct api_response *rs, const char *key)
{
	fx_parse(rs);
	long long v = -1;
	int i = json_find(rs->body, fx.tok, 0, key);
	ck_assert_msg(i > 0 && json_int(rs->body, &fx.tok[i], &v) == 0, "%s in %.*s", key,
	              (int)rs->len, rs->body);
	return v;
}

static struct api_response get_flash(void)
{
	struct api_response r = fx_call("GET", "/api/targets/0/flash", GOOD, NULL, NULL, 0);
	ck_assert_int_eq(r.status, 200);
	return r;
}

static uint8_t image[32 * 1024];

static void make_image(size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		image[i] = (uint8_t)(seed >> 16);
	}
}

START_TEST(flash_refusals)
{
	struct api_response rs;
	char b[160];
	/* GET before anything: idle */
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "idle");
	ck_assert_ptr_null(jstr(&rs, "error", b, sizeof(b)));
	ck_assert_int_eq(fx_call("GET", "/api/targets/0/flash", NULL, NULL, NULL, 0).status, 401);
	ck_assert_int_eq(fx_call("GET", "/api/targets/1/flash", GOOD, NULL, NULL, 0).status, 404);
	/* the non-streaming entry point refuses uploads */
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/flash", GOOD, "1", "x", 0).status, 501);
	/* auth, CSRF header, target */
	struct api_request rq = {
	    .method = "POST", .path = "/api/targets/0/flash", .x_request = "1"};
	ck_assert_int_eq(http_api_flash_start(&fx.api, &rq, NULL, 100, &rs), 0);
	ck_assert_int_eq(rs.status, 401);
	rq.authorization = GOOD;
	rq.x_request = NULL;
	ck_assert_int_eq(http_api_flash_start(&fx.api, &rq, NULL, 100, &rs), 0);
	ck_assert_int_eq(rs.status, 403);
	rq.x_request = "1";
	rq.path = "/api/targets/1/flash";
	ck_assert_int_eq(http_api_flash_start(&fx.api, &rq, NULL, 100, &rs), 0);
	ck_assert_int_eq(rs.status, 404);
	/* parameters */
	static const char *const bad[] = {"format=elf",
	                                  "address=0x08000002",
	                                  "address=12x",
	                                  "address=0x100000000",
	                                  "verify=yes",
	                                  "go=2",
	                                  "unprotect=",
	                                  "baud=100",
	                                  "colour=red",
	                                  "verify=1&verify=0",
	                                  "format=hex&address=0x08000000",
	                                  "address=0x08%30"};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(start(bad[i], 1024, &rs) == 0, "%s accepted", bad[i]);
		ck_assert_msg(rs.status == 400, "%s: %d", bad[i], rs.status);
		fx_parse(&rs);
	}
	ck_assert(strstr(fx_call("GET", "/x", GOOD, NULL, NULL, 0).body, "not found") != NULL);
	ck_assert_int_eq(start("verify=1", 0, &rs), 0); /* empty .bin */
	ck_assert_int_eq(rs.status, 400);
	/* larger than the largest supported flash: 413 before anything starts */
	ck_assert_int_eq(start(NULL, 64ll * 1024 * 1024, &rs), 0);
	ck_assert_int_eq(rs.status, 413);
	ck_assert_int_eq(R.claims, 0);
	ck_assert_int_eq(stm32_isp_state(&R.isp), STM32_ISP_IDLE);
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "idle");
	/* no ISP on this platform: 501 */
	R.no_isp = 1;
	ck_assert_int_eq(start(NULL, 1024, &rs), 0);
	ck_assert_int_eq(rs.status, 501);
	ck_assert_int_eq(fx_call("GET", "/api/targets/0/flash", GOOD, NULL, NULL, 0).status, 501);
	/* routes */
	unsigned t = 9;
	ck_assert_int_eq(http_api_flash_route("POST", "/api/targets/0/flash", &t), 1);
	ck_assert_uint_eq(t, 0);
	ck_assert_int_eq(http_api_flash_route("GET", "/api/targets/0/flash", &t), 0);
	ck_assert_int_eq(http_api_flash_route("POST", "/api/targets/0/flashx", &t), 0);
	ck_assert_int_eq(http_api_flash_route("POST", "/api/targets//flash", &t), 0);
}
END_TEST

START_TEST(flash_bin_streamed)
{
	struct api_response rs;
	char b[200];
	size_t n = 20 * 1024;
	make_image(n, 1);
	ck_assert_int_eq(start("address=0x08001000&verify=1&go=1", (int64_t)n, &rs), 1);
	ck_assert_int_eq(R.claimed, 1);
	/* while it runs: 409 for a second upload and for actions; GET shows progress */
	ck_assert_int_eq(start(NULL, 100, &rs), 0);
	ck_assert_int_eq(rs.status, 409);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/reset", GOOD, "1", NULL, 0).status, 409);
	ck_assert_int_eq(fx.acted, 0);
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 1);
	unsigned refused = stream(image, n / 2, 700);
	rs = get_flash();
	const char *state = jstr(&rs, "state", b, sizeof(b));
	ck_assert_msg(!strcmp(state, "writing") || !strcmp(state, "verifying") ||
	                  !strcmp(state, "erasing"),
	              "%s", state);
	ck_assert_int_eq(jint(&rs, "bytes_total"), (long long)n);
	ck_assert_int_gt(jint(&rs, "bytes_written"), 0);
	/* backpressure: what the ISP took is never far ahead of what it wrote */
	ck_assert_int_le(jint(&rs, "bytes_received") - jint(&rs, "bytes_written"),
	                 STM32_ISP_BUF + STM32_ISP_BLOCK);
	refused += stream(image + n / 2, n - n / 2, 4096);
	ck_assert_uint_gt(refused, 10); /* the upload was throttled many times */
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	fx_parse(&rs);
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "ok")].type, J_TRUE);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "done");
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08001000");
	ck_assert_int_eq(jint(&rs, "bytes_written"), (long long)n);
	ck_assert_int_eq(jint(&rs, "bytes_verified"), (long long)n);
	ck_assert_ptr_null(jstr(&rs, "error", b, sizeof(b)));
	ck_assert_ptr_null(jstr(&rs, "step", b, sizeof(b)));
	int d = json_find(rs.body, fx.tok, 0, "device");
	ck_assert_int_eq(fx.tok[d].type, J_OBJ);
	ck_assert_int_eq(
	    json_copy(rs.body, &fx.tok[json_find(rs.body, fx.tok, d, "pid")], b, sizeof(b)), 0);
	ck_assert_str_eq(b, "0x410");
	ck_assert_int_eq(R.claims, 1);
	ck_assert_int_eq(R.unclaims, 1);
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x1000, image, n);
	ck_assert_uint_eq(fl[0xFFF], 0xFF);
	/* the result stays readable; actions work again */
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "done");
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/reset", GOOD, "1", NULL, 0).status, 200);
}
END_TEST

/* Intel HEX text of n bytes of image at addr, 16-byte records (+ a second part at addr2). */
static size_t hexfile(char *out, size_t cap, uint32_t addr, size_t n, uint32_t addr2, size_t n2)
{
	size_t len = 0;
	uint32_t base = 0xFFFFFFFFu;
	for (int part = 0; part < 2; part++) {
		uint32_t a0 = part ? addr2 : addr;
		size_t cnt = part ? n2 : n;
		const uint8_t *src = part ? image + n : image;
		for (size_t off = 0; off < cnt; off += 16) {
			uint32_t a = a0 + (uint32_t)off;
			if (a >> 16 != base) {
				base = a >> 16;
				uint8_t s = (uint8_t)(2 + 4 + (base >> 8) + (base & 0xFF));
				len +=
				    (size_t)snprintf(out + len, cap - len, ":02000004%04X%02X\r\n",
				                     (unsigned)base, (uint8_t)(0x100 - s));
			}
			size_t k = cnt - off < 16 ? cnt - off : 16;
			uint8_t s = (uint8_t)(k + (a >> 8 & 0xFF) + (a & 0xFF));
			len += (size_t)snprintf(out + len, cap - len, ":%02X%04X00", (unsigned)k,
			                        (unsigned)(a & 0xFFFF));
			for (size_t i = 0; i < k; i++) {
				len += (size_t)snprintf(out + len, cap - len, "%02X", src[off + i]);
				s = (uint8_t)(s + src[off + i]);
			}
			len += (size_t)snprintf(out + len, cap - len, "%02X\r\n",
			                        (uint8_t)(0x100 - s));
		}
	}
	len += (size_t)snprintf(out + len, cap - len, ":00000001FF\r\n");
	ck_assert_uint_lt(len, cap);
	return len;
}

static char hexbuf[96 * 1024];

START_TEST(flash_hex_with_gap)
{
	struct api_response rs;
	char b[200];
	make_image(6000, 2);
	/* 2000 bytes at 0x08002002 (not word aligned), 4000 more after a 1 KiB gap */
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08002002, 2000, 0x08002002 + 3024, 4000);
	ck_assert_int_eq(start("format=hex&verify=1", (int64_t)len, &rs), 1);
	rs = get_flash();
	ck_assert_ptr_null(jstr(&rs, "bytes_total", b, sizeof(b))); /* unknown until the end */
	stream((const uint8_t *)hexbuf, len, 333);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "format", b, sizeof(b)), "hex");
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08002000");
	/* two segments, each from a word boundary (2 bytes of 0xFF before the data); the gap
	 * is not written */
	ck_assert_int_eq(jint(&rs, "bytes_written"), 2 + 2000 + 2 + 4000);
	ck_assert_int_eq(jint(&rs, "bytes_received"), 2000 + 4000);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_uint_eq(fl[0x2000], 0xFF); /* alignment fill */
	ck_assert_uint_eq(fl[0x2001], 0xFF);
	ck_assert_mem_eq(fl + 0x2002, image, 2000);
	for (size_t i = 0x2002 + 2000; i < 0x2002 + 3024; i++)
		ck_assert_uint_eq(fl[i], 0xFF); /* the gap: in the two pages the data touches */
	ck_assert_mem_eq(fl + 0x2002 + 3024, image + 2000, 4000);
	ck_assert_int_eq(R.unclaims, 1);
}
END_TEST

/* Gaps are not written: pages between records keep their contents; a record outside the
 * flash fails before anything is erased for it (reviewer's case: 16 bytes at the base,
 * then 16 at 0x90000000, used to wipe the flash up to its end). */
START_TEST(flash_hex_gap_keeps_pages)
{
	struct api_response rs;
	char b[200];
	/* old contents: 8 KiB of 0x5A at 0x08004000 (pages 16..23) */
	static uint8_t old[8192];
	memset(old, 0x5A, sizeof(old));
	ck_assert_int_eq(start("address=0x08004000&verify=0", (int64_t)sizeof(old), &rs), 1);
	stream(old, sizeof(old), 4096);
	rs = finish();
	ck_assert_int_eq(rs.status, 200);
	struct stm32sim_stats s0, s1;
	stm32sim_get_stats(R.sim, &s0);
	/* 16 bytes in page 16, 16 in page 22 */
	make_image(32, 11);
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08004000, 16, 0x08005800, 16);
	ck_assert_int_eq(start("format=hex&verify=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 40);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	stm32sim_get_stats(R.sim, &s1);
	ck_assert_uint_eq(s1.units_erased - s0.units_erased, 2);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x4000, image, 16);
	ck_assert_mem_eq(fl + 0x5800, image + 16, 16);
	for (size_t i = 0x4010; i < 0x4400; i++)
		ck_assert_uint_eq(fl[i], 0xFF); /* rest of page 16: erased */
	for (size_t i = 0x4400; i < 0x5800; i++)
		ck_assert_uint_eq(fl[i], 0x5A); /* pages 17..21: untouched */
	for (size_t i = 0x5810; i < 0x5C00; i++)
		ck_assert_uint_eq(fl[i], 0xFF);
	for (size_t i = 0x5C00; i < 0x6000; i++)
		ck_assert_uint_eq(fl[i], 0x5A); /* page 23 */

	/* outside the flash: 413 naming the address, nothing erased or written */
	stm32sim_get_stats(R.sim, &s0);
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 16, 0x90000000, 16);
	ck_assert_int_eq(start("format=hex&verify=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 413, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "0x90000000") != NULL, "%s", b);
	stm32sim_get_stats(R.sim, &s1);
	ck_assert_uint_eq(s1.units_erased + s1.mass_erases + s1.writes,
	                  s0.units_erased + s0.mass_erases + s0.writes);
	for (size_t i = 0x4400; i < 0x5800; i++)
		ck_assert_uint_eq(fl[i], 0x5A);
	/* first record below the flash: 400 */
	len = hexfile(hexbuf, sizeof(hexbuf), 0x00000100, 16, 0x00000200, 0);
	ck_assert_int_eq(start("format=hex", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 400, "%.*s", (int)rs.len, rs.body);
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "0x00000100") != NULL, "%s", b);
	/* two files concatenated: 400, the second is not dropped silently */
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 16, 0x08000010, 0);
	len += hexfile(hexbuf + len, sizeof(hexbuf) - len, 0x08000100, 16, 0x08000110, 0);
	ck_assert_int_eq(start("format=hex", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 400, "%.*s", (int)rs.len, rs.body);
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "after the end-of-file") != NULL,
	              "%s", b);
}
END_TEST

/* G431 (8-byte programming unit): a HEX whose first record is at +4 starts at the base. */
START_TEST(flash_hex_g431_unaligned_start)
{
	flash_teardown();
	rig_setup("stm32g431");
	struct api_response rs;
	char b[200];
	make_image(100, 12);
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08000004, 100, 0x08000068, 0);
	ck_assert_int_eq(start("format=hex&verify=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08000000");
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 4, image, 100);
}
END_TEST

START_TEST(flash_hex_errors)
{
	struct api_response rs;
	char b[200];
	/* checksum error on line 3 after data was accepted: the run is aborted, 400 */
	make_image(64, 3);
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 64, 0x08000040, 0);
	char *l3 = hexbuf;
	for (int i = 0; i < 2; i++)
		l3 = strchr(l3, '\n') + 1;
	l3[strcspn(l3, "\r")] = '\0'; /* cut line 3 short: bad length/checksum */
	len = strlen(hexbuf);
	ck_assert_int_eq(start("format=hex", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 50);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "Intel HEX line") != NULL, "%s", b);
	ck_assert_int_eq(R.unclaims, 1);
	/* records out of order */
	make_image(64, 4);
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000100, 32, 0x08000000, 32);
	ck_assert_int_eq(start("format=hex", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "ascending") != NULL);
	/* no end-of-file record (truncated upload) */
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 32, 0x08000020, 0);
	len -= strlen(":00000001FF\r\n");
	ck_assert_int_eq(start("format=hex", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "end-of-file") != NULL);
	/* no data at all: the ISP never started */
	ck_assert_int_eq(start("format=hex", 13, &rs), 1);
	stream((const uint8_t *)":00000001FF\r\n", 13, 13);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert_str_eq(jstr(&rs, "step", b, sizeof(b)), "upload");
	ck_assert_int_eq(R.claims, 4);
	ck_assert_int_eq(R.unclaims, 4);
}
END_TEST

START_TEST(flash_interrupted)
{
	struct api_response rs;
	char b[200];
	make_image(16 * 1024, 5);
	ck_assert_int_eq(start("verify=1", 16 * 1024, &rs), 1);
	stream(image, 6000, 512);
	ck_assert_int_eq(R.claimed, 1);
	http_api_flash_cancel(&fx.api, 0, "connection closed");
	ck_assert_int_eq(R.claimed, 0);
	for (int i = 0; i < 100; i++)
		step();
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)),
	                     "upload interrupted: connection closed after 6000 of 16384") != NULL,
	              "%s", b);
	ck_assert_ptr_nonnull(jstr(&rs, "step", b, sizeof(b)));
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
	ck_assert_int_eq(http_api_flash_result(&fx.api, 0, &rs), 0); /* nobody to answer */
	/* the target is free: a body shorter than Content-Length fails too */
	ck_assert_int_eq(start("verify=0", 4096, &rs), 1);
	stream(image, 1000, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "not whole") != NULL);
	ck_assert_int_eq(R.claims, 2);
	ck_assert_int_eq(R.unclaims, 2);
}
END_TEST

START_TEST(flash_too_large_for_chip)
{
	struct api_response rs;
	char b[200];
	/* 130 KiB on a 128 KiB F103: found after GET ID, before anything is erased */
	static uint8_t big[130 * 1024];
	memset(big, 0x5A, sizeof(big));
	ck_assert_int_eq(start(NULL, (int64_t)sizeof(big), &rs), 1);
	stream(big, sizeof(big), 8192);
	rs = finish();
	ck_assert_msg(rs.status == 413, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "ok")].type, J_FALSE);
	struct stm32sim_stats ss;
	stm32sim_get_stats(R.sim, &ss);
	ck_assert_uint_eq(ss.erase_cmds + ss.ext_erase_cmds + ss.mass_erases, 0);
	ck_assert_uint_eq(ss.writes, 0);
}
END_TEST

/* An address that is a multiple of 4 but not of the G431's 8-byte programming unit: 400
 * naming the unit, found after GET ID, nothing erased or written. */
START_TEST(flash_misaligned_for_device)
{
	flash_teardown();
	rig_setup("stm32g431");
	struct api_response rs;
	char b[200];
	make_image(1024, 9);
	ck_assert_int_eq(start("address=0x08000804", 1024, &rs), 1);
	stream(image, 1024, 512);
	rs = finish();
	ck_assert_msg(rs.status == 400, "%.*s", (int)rs.len, rs.body);
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "not a multiple of 8") != NULL, "%s",
	              b);
	struct stm32sim_stats ss;
	stm32sim_get_stats(R.sim, &ss);
	ck_assert_uint_eq(ss.erase_cmds + ss.ext_erase_cmds + ss.mass_erases + ss.writes, 0);
	/* a multiple of 8 is fine */
	ck_assert_int_eq(start("address=0x08000808", 1024, &rs), 1);
	stream(image, 1024, 512);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x808, image, 1024);
}
END_TEST

/* ---- staged uploads (stage=1) and DELETE: a fake in-memory staging store ---- */

static struct {
	uint8_t mem[160 * 1024];
	uint32_t cap;  /* capacity reported */
	uint32_t size; /* stage_begin's size */
	uint32_t written;
	int open, begins, ends, reads;
	int fail_write_at; /* >0: stage_write at this offset fails */
} S;

static uint32_t s_cap(void *ctx, unsigned t)
{
	(void)ctx;
	(void)t;
	return S.cap;
}
static int s_begin(void *ctx, unsigned t, uint32_t size)
{
	(void)ctx;
	ck_assert_uint_eq(t, 0);
	ck_assert_int_eq(S.open, 0); /* one upload at a time, ended before the next */
	if (size > S.cap)
		return -ENOSPC;
	S.open = 1;
	S.begins++;
	S.size = size;
	S.written = 0;
	memset(S.mem, 0xEE, sizeof(S.mem));
	return 0;
}
static int s_write(void *ctx, unsigned t, uint32_t off, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)t;
	ck_assert_int_eq(S.open, 1);
	ck_assert_uint_eq(off, S.written); /* in order */
	ck_assert_uint_le(off + n, S.size);
	if (S.fail_write_at && off + n > (uint32_t)S.fail_write_at)
		return -EIO;
	memcpy(S.mem + off, p, n);
	S.written += (uint32_t)n;
	return 0;
}
static int s_read(void *ctx, unsigned t, uint32_t off, uint8_t *p, size_t n)
{
	(void)ctx;
	(void)t;
	ck_assert_int_eq(S.open, 1);
	ck_assert_uint_le(off + n, S.written);
	ck_assert_uint_le(n, FLASH_JOB_REPLAY_BUF); /* small pieces, no whole image */
	S.reads++;
	memcpy(p, S.mem + off, n);
	return 0;
}
static void s_end(void *ctx, unsigned t)
{
	(void)ctx;
	(void)t;
	ck_assert_int_eq(S.open, 1);
	S.open = 0;
	S.ends++;
}
static uint32_t s_crc(uint32_t crc, const uint8_t *p, size_t n)
{
	return (uint32_t)crc32(crc, p, (uInt)n);
}
static const struct api_ops sops = {.status = fx_status,
                                    .apply = fx_apply,
                                    .action = fx_action,
                                    .isp = f_isp,
                                    .flash_claim = f_claim,
                                    .stage_capacity = s_cap,
                                    .stage_begin = s_begin,
                                    .stage_write = s_write,
                                    .stage_read = s_read,
                                    .stage_end = s_end,
                                    .crc32 = s_crc};

static void stage_setup(void)
{
	rig_setup("stm32f103");
	memset(&S, 0, sizeof(S));
	S.cap = sizeof(S.mem);
	ck_assert_int_eq(http_api_init(&fx.api, &sops, NULL, &fx.sm, "pw-123"), 0);
}

/* Nothing reached the chip: no UART configuration, byte or pin change. */
static void assert_chip_untouched(void)
{
	ck_assert_uint_eq(R.uart_tx, 0);
	ck_assert_uint_eq(R.uart_cfgs, 0);
	ck_assert_uint_eq(R.pin_sets, 0);
	ck_assert_int_eq(R.claims, 0);
	ck_assert_int_eq(stm32_isp_state(&R.isp), STM32_ISP_IDLE);
}

static uint32_t zcrc(const void *p, size_t n)
{
	return (uint32_t)crc32(crc32(0, NULL, 0), p, (uInt)n);
}

START_TEST(flash_staged_bin)
{
	struct api_response rs;
	char b[200], q[160];
	size_t n = 20 * 1024;
	make_image(n, 21);
	uint32_t c = zcrc(image, n);
	snprintf(q, sizeof(q), "address=0x08001000&verify=1&stage=1&crc32=0x%08X", (unsigned)c);
	ck_assert_int_eq(start(q, (int64_t)n, &rs), 1);
	ck_assert_int_eq(S.begins, 1);
	ck_assert_uint_eq(S.size, n);
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "staging");
	fx_parse(&rs);
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "stage")].type, J_TRUE);
	/* the body is taken as fast as it comes: no backpressure from the UART */
	ck_assert_uint_eq(stream(image, n - 100, 1000), 0);
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "staging");
	ck_assert_int_eq(jint(&rs, "bytes_staged"), (long long)(n - 100));
	ck_assert_ptr_null(jstr(&rs, "crc32", b, sizeof(b))); /* not before the end */
	ck_assert_int_eq(jint(&rs, "bytes_written"), 0);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/reset", GOOD, "1", NULL, 0).status, 409);
	for (int i = 0; i < 50; i++)
		step();
	assert_chip_untouched(); /* the STM32 is not touched while the body arrives */
	ck_assert_uint_eq(stream(image + n - 100, 100, 1000), 0);
	assert_chip_untouched();
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "done");
	ck_assert_int_eq(jint(&rs, "bytes_written"), (long long)n);
	ck_assert_int_eq(jint(&rs, "bytes_verified"), (long long)n);
	ck_assert_int_eq(jint(&rs, "bytes_staged"), (long long)n);
	snprintf(q, sizeof(q), "0x%08X", (unsigned)c);
	ck_assert_str_eq(jstr(&rs, "crc32", b, sizeof(b)), q);
	ck_assert_int_eq(R.claims, 1);
	ck_assert_int_eq(R.unclaims, 1);
	ck_assert_int_eq(S.ends, 1);
	ck_assert_int_ge(S.reads, (int)(n / FLASH_JOB_REPLAY_BUF));
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x1000, image, n);
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
	/* without crc32: staged and flashed too (the CRC is reported) */
	make_image(3000, 22);
	ck_assert_int_eq(start("address=0x08008000&stage=1", 3000, &rs), 1);
	stream(image, 3000, 3000);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	snprintf(q, sizeof(q), "0x%08X", (unsigned)zcrc(image, 3000));
	ck_assert_str_eq(jstr(&rs, "crc32", b, sizeof(b)), q);
	ck_assert_mem_eq(fl + 0x8000, image, 3000);
	ck_assert_int_eq(S.ends, 2);
}
END_TEST

START_TEST(flash_staged_hex)
{
	struct api_response rs;
	char b[200], q[96];
	make_image(6000, 23);
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08002002, 2000, 0x08002002 + 3024, 4000);
	snprintf(q, sizeof(q), "format=hex&verify=1&stage=1&crc32=%u",
	         (unsigned)zcrc(hexbuf, len)); /* decimal is accepted too */
	ck_assert_int_eq(start(q, (int64_t)len, &rs), 1);
	ck_assert_uint_eq(stream((const uint8_t *)hexbuf, len, 333), 0);
	assert_chip_untouched();
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "format", b, sizeof(b)), "hex");
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08002000");
	ck_assert_int_eq(jint(&rs, "bytes_written"), 2 + 2000 + 2 + 4000);
	ck_assert_int_eq(jint(&rs, "bytes_received"), 2000 + 4000);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x2002, image, 2000);
	ck_assert_mem_eq(fl + 0x2002 + 3024, image + 2000, 4000);
	ck_assert_int_eq(R.unclaims, 1);
	ck_assert_int_eq(S.ends, 1);
	/* records out of order are found while staging (dry run), before the commit */
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000100, 32, 0x08000000, 32);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "ascending") != NULL);
	ck_assert(strstr(b, "; the STM32 was not touched") != NULL);
	ck_assert_str_eq(jstr(&rs, "step", b, sizeof(b)), "upload");
	ck_assert_int_eq(S.ends, 2);
	ck_assert_int_eq(R.claims, 1); /* only the good file's run claimed the target */
	ck_assert_int_eq(R.unclaims, 1);
}
END_TEST

/* Set the checksum of the record on line `line` (1-based) of hexbuf wrong. */
static void corrupt_line(int line)
{
	char *l = hexbuf;
	for (int i = 1; i < line; i++)
		l = strchr(l, '\n') + 1;
	char *end = l + strcspn(l, "\r\n");
	end[-1] = end[-1] == '0' ? '1' : '0'; /* last checksum digit */
}

/* A staged Intel HEX is checked completely while it is staged (checksums, record types,
 * ascending addresses, end-of-file record, data records): a bad file fails before the
 * commit and the STM32 is never touched (reviewer: a bad record used to be found in the
 * replay, after the chip was claimed, erased and partly written). */
START_TEST(flash_staged_hex_checked_before_commit)
{
	struct api_response rs;
	char b[200], q[96];
	struct stm32sim_stats ss;
	make_image(8192, 29);
	/* a checksum error on line 400 of 8 KiB of records */
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 8192, 0, 0);
	corrupt_line(400);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	ck_assert_uint_eq(stream((const uint8_t *)hexbuf, len, 700), 0);
	rs = finish();
	ck_assert_msg(rs.status == 400, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_str_eq(jstr(&rs, "step", b, sizeof(b)), "upload");
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)),
	                 "Intel HEX line 400: checksum mismatch; the STM32 was not touched");
	ck_assert_int_eq(jint(&rs, "bytes_written"), 0);
	ck_assert_int_eq(jint(&rs, "bytes_staged"), (long long)len);
	assert_chip_untouched();
	stm32sim_get_stats(R.sim, &ss);
	ck_assert_uint_eq(ss.commands, 0);
	ck_assert_int_eq(S.ends, 1);
	ck_assert_int_eq(S.reads, 0); /* never replayed */
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
	/* a CRC-32 mismatch is reported first (the body was damaged on its way) */
	snprintf(q, sizeof(q), "format=hex&stage=1&crc32=0x%08X",
	         (unsigned)(zcrc(hexbuf, len) ^ 1u));
	ck_assert_int_eq(start(q, (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 4096);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "does not match crc32=") != NULL);
	/* no end-of-file record (a truncated file) */
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 256, 0, 0);
	len -= strlen(":00000001FF\r\n");
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 100);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "no end-of-file record") != NULL);
	ck_assert(strstr(b, "; the STM32 was not touched") != NULL);
	/* something after the end-of-file record (two files concatenated) */
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 64, 0, 0);
	len += (size_t)snprintf(hexbuf + len, sizeof(hexbuf) - len, ":00000001FF\r\n");
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 100);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "after the end-of-file") != NULL);
	/* an unknown record type */
	len = (size_t)snprintf(hexbuf, sizeof(hexbuf), ":0000000AF6\r\n:00000001FF\r\n");
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 100);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "unknown record type 0A") != NULL);
	/* no data record at all */
	len = (size_t)snprintf(hexbuf, sizeof(hexbuf), ":020000040800F2\r\n:00000001FF\r\n");
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 100);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)),
	                 "Intel HEX file without data records; the STM32 was not touched");
	assert_chip_untouched();
	ck_assert_int_eq(S.reads, 0);
	ck_assert_int_eq(S.ends, 6);
	/* a good file after them: the parser starts afresh for the replay */
	make_image(600, 30);
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08001000, 600, 0, 0);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	rs = get_flash();
	ck_assert_ptr_null(jstr(&rs, "address", b, sizeof(b)));
	stream((const uint8_t *)hexbuf, len, 100);
	rs = get_flash(); /* the dry run found the first record */
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08001000");
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x1000, image, 600);
}
END_TEST

/* The replay of a staged image stops after FLASH_JOB_REPLAY_BUF x 64 bytes per poll; with more
 * to do right away (records without data: nothing waits for the ISP) the poll says
 * HTTP_API_FLASH_AGAIN, so the platform polls again at once instead of at its next wake-up
 * (reviewer: 128 KiB of such records took 6.3 s staged, 0.3 s streamed). */
START_TEST(flash_staged_replay_polls_again)
{
	struct api_response rs;
	char b[200];
	size_t len = 0;
	for (int i = 0; i < 4000; i++) /* 64 000 bytes of extended address records */
		len += (size_t)snprintf(hexbuf + len, sizeof(hexbuf) - len, ":020000040800F2\n");
	make_image(512, 31);
	size_t pre = len;
	len += hexfile(hexbuf + pre, sizeof(hexbuf) - pre, 0x08002000, 512, 0, 0);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 4096);
	http_api_flash_body_end(&fx.api, 0); /* the commit; its first replay step */
	ck_assert_int_eq(R.claimed, 1);
	ck_assert_int_eq(stm32_isp_busy(&R.isp), 0); /* no data record replayed yet */
	/* polled again at once, without the ISP or the clock moving, the replay reaches the
	 * first data record (the ISP starts) */
	int polls = 0, r;
	uint64_t t0 = R.now_us;
	while ((r = http_api_flash_poll(&fx.api, 0)) & HTTP_API_FLASH_AGAIN) {
		polls++;
		ck_assert_int_lt(polls, 100);
	}
	ck_assert_int_ge(polls, 2);
	ck_assert_uint_eq(R.now_us, t0);
	ck_assert_int_eq(stm32_isp_busy(&R.isp), 1);
	ck_assert_uint_ge((uint64_t)S.reads * FLASH_JOB_REPLAY_BUF, pre);
	/* waiting for the ISP (data in flight) is not "again" */
	ck_assert_int_eq(r & HTTP_API_FLASH_AGAIN, 0);
	struct api_response res;
	for (int guard = 0; !(step() & HTTP_API_FLASH_RESULT); guard++)
		ck_assert_int_lt(guard, 10000000);
	ck_assert_int_eq(http_api_flash_result(&fx.api, 0, &res), 1);
	ck_assert_msg(res.status == 200, "%.*s", (int)res.len, res.body);
	ck_assert_str_eq(jstr(&res, "state", b, sizeof(b)), "done");
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x2000, image, 512);
}
END_TEST

/* "address" is null until known (bin without address=: the flash base, once GET ID named the
 * device), not 0x00000000 (reviewer). */
START_TEST(flash_address_null_until_known)
{
	struct api_response rs;
	char b[200];
	make_image(4096, 32);
	ck_assert_int_eq(start("stage=1", 4096, &rs), 1);
	rs = get_flash();
	ck_assert_ptr_null(jstr(&rs, "address", b, sizeof(b)));
	stream(image, 4096, 1024);
	rs = get_flash();
	ck_assert_ptr_null(jstr(&rs, "address", b, sizeof(b)));
	rs = finish();
	ck_assert_int_eq(rs.status, 200);
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08000000");
	/* streamed, before GET ID */
	ck_assert_int_eq(start(NULL, 4096, &rs), 1);
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "connecting");
	ck_assert_ptr_null(jstr(&rs, "address", b, sizeof(b)));
	stream(image, 4096, 1024);
	rs = finish();
	ck_assert_int_eq(rs.status, 200);
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08000000");
	/* given: shown at once */
	ck_assert_int_eq(start("stage=1&address=0x08002000", 4096, &rs), 1);
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08002000");
	stream(image, 4096, 4096);
	rs = finish();
	ck_assert_int_eq(rs.status, 200);
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08002000");
}
END_TEST

START_TEST(flash_staged_crc_mismatch)
{
	struct api_response rs;
	char b[200], q[96];
	size_t n = 8192;
	make_image(n, 24);
	uint32_t c = zcrc(image, n);
	snprintf(q, sizeof(q), "stage=1&crc32=0x%08X", (unsigned)(c ^ 0x100));
	ck_assert_int_eq(start(q, (int64_t)n, &rs), 1);
	stream(image, n, 1024);
	rs = finish();
	ck_assert_msg(rs.status == 400, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_str_eq(jstr(&rs, "step", b, sizeof(b)), "upload");
	snprintf(q, sizeof(q), "image CRC-32 0x%08X does not match crc32=0x%08X", (unsigned)c,
	         (unsigned)(c ^ 0x100));
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), q) != NULL, "%s", b);
	ck_assert(strstr(b, "not touched") != NULL);
	snprintf(q, sizeof(q), "0x%08X", (unsigned)c);
	ck_assert_str_eq(jstr(&rs, "crc32", b, sizeof(b)), q); /* the computed one */
	assert_chip_untouched();
	struct stm32sim_stats ss;
	stm32sim_get_stats(R.sim, &ss);
	ck_assert_uint_eq(ss.commands, 0);
	ck_assert_int_eq(S.ends, 1);
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
}
END_TEST

START_TEST(flash_staged_interrupted)
{
	struct api_response rs;
	char b[200];
	make_image(16 * 1024, 25);
	ck_assert_int_eq(start("stage=1", 16 * 1024, &rs), 1);
	stream(image, 6000, 512);
	http_api_flash_cancel(&fx.api, 0, "connection closed");
	for (int i = 0; i < 20; i++)
		step();
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_str_eq(jstr(&rs, "step", b, sizeof(b)), "upload");
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)),
	                     "upload interrupted: connection closed after 6000 of 16384") != NULL,
	              "%s", b);
	ck_assert(strstr(b, "the STM32 was not touched") != NULL);
	ck_assert_ptr_null(jstr(&rs, "crc32", b, sizeof(b)));
	assert_chip_untouched();
	ck_assert_int_eq(S.ends, 1);
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
	/* a body shorter than Content-Length (ended early): "upload interrupted" too */
	ck_assert_int_eq(start("stage=1", 4096, &rs), 1);
	stream(image, 1000, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 400);
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)),
	                     "upload interrupted: 1000 of 4096 bytes received; the STM32 was "
	                     "not touched") != NULL,
	              "%s", b);
	assert_chip_untouched();
	ck_assert_int_eq(S.ends, 2);
	/* the staging store fails: 500, nothing flashed */
	S.fail_write_at = 2000;
	ck_assert_int_eq(start("stage=1", 4096, &rs), 1);
	stream(image, 4096, 1024);
	rs = finish();
	ck_assert_int_eq(rs.status, 500);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "staging area failed") != NULL);
	assert_chip_untouched();
	ck_assert_int_eq(S.ends, 3);
}
END_TEST

/* The commit has started: the client leaving does not stop the flash. */
START_TEST(flash_staged_client_leaves_after_commit)
{
	struct api_response rs;
	char b[200];
	size_t n = 8 * 1024;
	make_image(n, 26);
	ck_assert_int_eq(start("address=0x08004000&stage=1", (int64_t)n, &rs), 1);
	stream(image, n, 4096);
	http_api_flash_body_end(&fx.api, 0);
	ck_assert_int_eq(R.claimed, 1);
	for (int i = 0; i < 20; i++)
		step();
	http_api_flash_cancel(&fx.api, 0, "connection closed");
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 1);
	for (int guard = 0; http_api_flash_busy(&fx.api, 0); guard++) {
		ck_assert_int_lt(guard, 10000000);
		ck_assert_int_eq(step() & HTTP_API_FLASH_RESULT, 0); /* nobody to answer */
	}
	ck_assert_int_eq(http_api_flash_result(&fx.api, 0, &rs), 0);
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "done");
	ck_assert_int_eq(jint(&rs, "bytes_verified"), (long long)n);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x4000, image, n);
	ck_assert_int_eq(R.unclaims, 1);
	ck_assert_int_eq(S.ends, 1);
}
END_TEST

START_TEST(flash_staged_refusals)
{
	struct api_response rs;
	char b[200];
	/* crc32 without stage=1, or with stage=0 */
	ck_assert_int_eq(start("crc32=0x12345678", 100, &rs), 0);
	ck_assert_int_eq(rs.status, 400);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "stage=1") != NULL);
	ck_assert_int_eq(start("stage=0&crc32=0x12345678", 100, &rs), 0);
	ck_assert_int_eq(rs.status, 400);
	ck_assert_int_eq(start("stage=1&crc32=0xZZ", 100, &rs), 0);
	ck_assert_int_eq(rs.status, 400);
	ck_assert_int_eq(start("stage=2", 100, &rs), 0);
	ck_assert_int_eq(rs.status, 400);
	ck_assert_int_eq(start("stage=1", 0, &rs), 0);
	ck_assert_int_eq(rs.status, 400);
	/* larger than the staging area */
	S.cap = 8192;
	ck_assert_int_eq(start("stage=1", 8193, &rs), 0);
	ck_assert_int_eq(rs.status, 413);
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)),
	                 "image (8193 bytes) larger than the staging area (8192 bytes)");
	ck_assert_int_eq(S.begins, 0);
	/* no staging area */
	S.cap = 0;
	ck_assert_int_eq(start("stage=1", 100, &rs), 0);
	ck_assert_int_eq(rs.status, 501);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "cannot stage") != NULL);
	assert_chip_untouched();
	rs = get_flash();
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "idle");
	/* NULL hooks: 501 (the flash ops without the stage ones) */
	ck_assert_int_eq(http_api_init(&fx.api, &fops, NULL, &fx.sm, "pw-123"), 0);
	ck_assert_int_eq(start("stage=1", 100, &rs), 0);
	ck_assert_int_eq(rs.status, 501);
	rs = get_flash();
	fx_parse(&rs);
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "stage")].type, J_FALSE);
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "crc32")].type, J_NULL);
	/* no Content-Length (chunked): staged into the whole store (it used to be 411) */
	ck_assert_int_eq(http_api_init(&fx.api, &sops, NULL, &fx.sm, "pw-123"), 0);
	S.cap = 4096;
	ck_assert_int_eq(start("stage=1", -1, &rs), 1);
	ck_assert_uint_eq(S.size, S.cap);
	http_api_flash_cancel(&fx.api, 0, "test");
	ck_assert_int_eq(S.open, 0);
	assert_chip_untouched();
}
END_TEST

static struct api_response del_flash(const char *x)
{
	return fx_call("DELETE", "/api/targets/0/flash", GOOD, x, NULL, 0);
}

START_TEST(flash_delete)
{
	struct api_response rs;
	char b[200];
	/* idle: 409, nothing to abort; the CSRF header is needed */
	rs = del_flash("1");
	ck_assert_int_eq(rs.status, 409);
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)), "no flash is running on target 0");
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "idle");
	ck_assert_int_eq(del_flash(NULL).status, 403);
	ck_assert_int_eq(fx_call("DELETE", "/api/targets/0/flash", NULL, "1", NULL, 0).status, 401);
	ck_assert_int_eq(fx_call("DELETE", "/api/targets/1/flash", GOOD, "1", NULL, 0).status, 404);
	/* a streamed run in the middle of writing */
	size_t n = 16 * 1024;
	make_image(n, 27);
	ck_assert_int_eq(start("verify=1", (int64_t)n, &rs), 1);
	stream(image, 6000, 512);
	ck_assert_int_eq(del_flash(NULL).status, 403); /* refused: still running */
	ck_assert_int_eq(R.claimed, 1);
	struct stm32sim_stats s0, s1;
	stm32sim_get_stats(R.sim, &s0);
	unsigned tx0 = R.uart_tx;
	rs = del_flash("1");
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)), "aborted by the client");
	/* at once: the claim is released, the ISP stopped, nothing more goes to the chip */
	ck_assert_int_eq(R.claimed, 0);
	ck_assert_int_eq(stm32_isp_state(&R.isp), STM32_ISP_FAILED);
	ck_assert_int_eq(stm32_isp_busy(&R.isp), 0);
	for (int i = 0; i < 200; i++)
		step();
	ck_assert_uint_eq(R.uart_tx, tx0);
	stm32sim_get_stats(R.sim, &s1);
	ck_assert_uint_eq(s1.writes, s0.writes);
	/* the POST still connected: its rest is dropped, then its failed answer */
	ck_assert_uint_eq(http_api_flash_body(&fx.api, 0, image + 6000, n - 6000), n - 6000);
	rs = finish();
	ck_assert_int_eq(rs.status, 409);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)), "aborted by the client");
	ck_assert_int_eq(http_api_flash_busy(&fx.api, 0), 0);
	rs = del_flash("1");
	ck_assert_int_eq(rs.status, 409);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	/* the target is free again */
	ck_assert_int_eq(start("address=0x08008000", 2048, &rs), 1);
	stream(image, 2048, 2048);
	rs = finish();
	ck_assert_int_eq(rs.status, 200);
	ck_assert_int_eq(R.claims, 2);
	ck_assert_int_eq(R.unclaims, 2);
}
END_TEST

START_TEST(flash_delete_staging)
{
	struct api_response rs;
	char b[200];
	make_image(8192, 28);
	ck_assert_int_eq(start("stage=1", 8192, &rs), 1);
	stream(image, 3000, 1000);
	rs = del_flash("1");
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)),
	                 "aborted by the client; the STM32 was not touched");
	ck_assert_int_eq(S.ends, 1); /* the store is free at once */
	stream(image + 3000, 8192 - 3000, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 409);
	assert_chip_untouched();
	/* DELETE during the replay of a committed staged image */
	ck_assert_int_eq(start("stage=1&address=0x08004000", 8192, &rs), 1);
	stream(image, 8192, 8192);
	http_api_flash_body_end(&fx.api, 0);
	for (int i = 0; i < 300; i++)
		step();
	ck_assert_int_eq(R.claimed, 1);
	rs = del_flash("1");
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)), "aborted by the client");
	ck_assert_int_eq(R.claimed, 0);
	ck_assert_int_eq(S.ends, 2);
	struct api_response r2;
	for (int guard = 0; !(step() & HTTP_API_FLASH_RESULT); guard++)
		ck_assert_int_lt(guard, 1000);
	ck_assert_int_eq(http_api_flash_result(&fx.api, 0, &r2), 1);
	ck_assert_int_eq(r2.status, 409);
}
END_TEST

/* ---- the staged image against the chip's flash, before the commit (regressions) ---- */

/* Nothing was erased or written, and the flash holds what it held before (old). */
static void assert_flash_unchanged(const uint8_t *old, size_t n)
{
	struct stm32sim_stats ss;
	stm32sim_get_stats(R.sim, &ss);
	ck_assert_uint_eq(ss.erase_cmds + ss.ext_erase_cmds + ss.mass_erases, 0);
	ck_assert_uint_eq(ss.writes, 0);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_uint_ge(fs, n);
	ck_assert_mem_eq(fl, old, n);
}

static uint8_t flash_before[128 * 1024];

static void save_flash(void)
{
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_uint_ge(fs, sizeof(flash_before));
	memcpy(flash_before, fl, sizeof(flash_before));
}

/* A staged Intel HEX whose last record lies beyond the F103's 128 KiB: 413 naming the
 * range, and NOTHING erased or written (the finding: 413 after 4 KiB of the old application
 * had been erased and written by the records before it). */
START_TEST(flash_staged_hex_outside_flash)
{
	struct api_response rs;
	char b[200];
	save_flash();
	make_image(4096 + 32, 31);
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 4096, 0x08020000, 32);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 413, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "0x0802001F") != NULL, "%s", b);
	ck_assert_msg(strstr(b, "nothing was erased") != NULL, "%s", b);
	assert_flash_unchanged(flash_before, sizeof(flash_before));
	ck_assert_int_eq(R.claims, R.unclaims);
	ck_assert_int_eq(S.ends, 1);
	/* a HEX below the flash base: 400, nothing erased either */
	make_image(64, 32);
	len = hexfile(hexbuf, sizeof(hexbuf), 0x07FFFF00, 32, 0x08000000, 32);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 400 || rs.status == 413, "%.*s", (int)rs.len, rs.body);
	assert_flash_unchanged(flash_before, sizeof(flash_before));
	/* within the flash: flashed */
	make_image(4096 + 32, 33);
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 4096, 0x0801FFE0, 32);
	ck_assert_int_eq(start("format=hex&stage=1", (int64_t)len, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl, image, 4096);
	ck_assert_mem_eq(fl + 0x1FFE0, image + 4096, 32);
}
END_TEST

static uint8_t big_image[130 * 1024];

/* A chunked .bin (no Content-Length) larger than the flash: staged (its size is known only
 * at its end), then 413 before anything is erased (the finding: it erased and wrote the
 * whole chip before its 413). */
START_TEST(flash_chunked_bin_too_large)
{
	struct api_response rs;
	char b[200];
	save_flash();
	memset(big_image, 0x5A, sizeof(big_image));
	ck_assert_int_eq(start("address=0x08000000", -1, &rs), 1);
	stream(big_image, sizeof(big_image), 8192);
	assert_chip_untouched();
	rs = finish();
	ck_assert_msg(rs.status == 413, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "state", b, sizeof(b)), "failed");
	assert_flash_unchanged(flash_before, sizeof(flash_before));
	/* larger than the staging area: 413 while it arrives, the chip untouched */
	S.cap = 64 * 1024;
	ck_assert_int_eq(start(NULL, -1, &rs), 1);
	stream(big_image, sizeof(big_image), 8192);
	rs = finish();
	ck_assert_msg(rs.status == 413, "%.*s", (int)rs.len, rs.body);
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "staging area") != NULL, "%s", b);
	assert_flash_unchanged(flash_before, sizeof(flash_before));
	/* a chunked .bin that fits: flashed from the staged copy */
	make_image(5000, 34);
	ck_assert_int_eq(start("address=0x08001000", -1, &rs), 1);
	stream(image, 5000, 999);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl + 0x1000, image, 5000);
}
END_TEST

/* Without a staging area a chunked .bin cannot be checked before erasing: refused (411),
 * the chip untouched. */
START_TEST(flash_chunked_bin_needs_store)
{
	struct api_response rs;
	char b[200];
	ck_assert_int_eq(start("address=0x08000000", -1, &rs), 0);
	ck_assert_int_eq(rs.status, 411);
	ck_assert_msg(strstr(jstr(&rs, "error", b, sizeof(b)), "Content-Length") != NULL, "%s", b);
	assert_chip_untouched();
}
END_TEST

/* ---- locked mode (http_api.h "Signed images") with a fake signature check: the
 * "signature" is the 4-byte CRC-32 of "espstm-image-v1 ADDR\n" + body ---- */

static struct {
	int locked, begins, checks;
	char addr[16];
	uint32_t crc, want;
} L;

static int l_locked(void *ctx)
{
	(void)ctx;
	return L.locked;
}
static int l_begin(void *ctx, unsigned t, const char *addr, const uint8_t *sig, size_t n)
{
	(void)ctx;
	(void)t;
	if (n != 4 || sig[0] == 'X')
		return -EINVAL;
	L.begins++;
	snprintf(L.addr, sizeof(L.addr), "%s", addr);
	L.want = (uint32_t)sig[0] << 24 | (uint32_t)sig[1] << 16 | (uint32_t)sig[2] << 8 | sig[3];
	char line[40];
	snprintf(line, sizeof(line), "espstm-image-v1 %s\n", addr);
	L.crc = (uint32_t)crc32(0, (const uint8_t *)line, (uInt)strlen(line));
	return 0;
}
static void l_update(void *ctx, unsigned t, const uint8_t *p, size_t n)
{
	(void)ctx;
	(void)t;
	L.crc = (uint32_t)crc32(L.crc, p, (uInt)n);
}
static int l_check(void *ctx, unsigned t)
{
	(void)ctx;
	(void)t;
	L.checks++;
	return L.crc == L.want ? 0 : -EBADMSG;
}
static const struct api_ops lops = {.status = fx_status,
                                    .apply = fx_apply,
                                    .action = fx_action,
                                    .isp = f_isp,
                                    .flash_claim = f_claim,
                                    .stage_capacity = s_cap,
                                    .stage_begin = s_begin,
                                    .stage_write = s_write,
                                    .stage_read = s_read,
                                    .stage_end = s_end,
                                    .crc32 = s_crc,
                                    .locked = l_locked,
                                    .sig_begin = l_begin,
                                    .sig_update = l_update,
                                    .sig_check = l_check};

static void locked_setup(void)
{
	stage_setup();
	memset(&L, 0, sizeof(L));
	L.locked = 1;
	ck_assert_int_eq(http_api_init(&fx.api, &lops, NULL, &fx.sm, "pw-123"), 0);
}

/* The fake signature of body p/n for addr, base64 into out. */
static void fake_sig(const char *addr, const uint8_t *p, size_t n, char *out)
{
	char line[40];
	snprintf(line, sizeof(line), "espstm-image-v1 %s\n", addr);
	uint32_t c = (uint32_t)crc32(0, (const uint8_t *)line, (uInt)strlen(line));
	c = (uint32_t)crc32(c, p, (uInt)n);
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint8_t b[4] = {(uint8_t)(c >> 24), (uint8_t)(c >> 16), (uint8_t)(c >> 8), (uint8_t)c};
	uint32_t v = (uint32_t)b[0] << 16 | (uint32_t)b[1] << 8 | b[2];
	for (int k = 0; k < 4; k++)
		out[k] = b64[(v >> (18 - 6 * k)) & 63];
	v = (uint32_t)b[3] << 16;
	out[4] = b64[(v >> 18) & 63];
	out[5] = b64[(v >> 12) & 63];
	out[6] = out[7] = '=';
	out[8] = '\0';
}

static int start_signed(const char *query, int64_t cl, const char *sig, struct api_response *rs)
{
	struct api_request rq = {.method = "POST",
	                         .path = "/api/targets/0/flash",
	                         .authorization = GOOD,
	                         .x_request = "1",
	                         .signature = sig,
	                         .now_ms = r_now(NULL)};
	return http_api_flash_start(&fx.api, &rq, query, cl, rs);
}

START_TEST(flash_locked_refusals)
{
	struct api_response rs;
	char b[200], sig[16];
	make_image(8192, 41);
	/* unsigned: 403 at once, nothing staged, the chip untouched */
	ck_assert_int_eq(start("address=0x08000000", 8192, &rs), 0);
	ck_assert_int_eq(rs.status, 403);
	ck_assert_str_eq(jstr(&rs, "error", b, sizeof(b)),
	                 "this unit only accepts signed images (header X-Espstm-Signature: see "
	                 "espstm sign)");
	/* not base64, too long, malformed for the platform */
	ck_assert_int_eq(start_signed(NULL, 8192, "!!", &rs), 0);
	ck_assert_int_eq(rs.status, 403);
	ck_assert(strncmp(jstr(&rs, "error", b, sizeof(b)), "signature", 9) == 0);
	static char longsig[200];
	memset(longsig, 'A', 150);
	ck_assert_int_eq(start_signed(NULL, 8192, longsig, &rs), 0);
	ck_assert_int_eq(rs.status, 403);
	ck_assert_int_eq(start_signed(NULL, 8192, "WA==", &rs), 0); /* 'X': -EINVAL */
	ck_assert_int_eq(rs.status, 403);
	ck_assert(strstr(jstr(&rs, "error", b, sizeof(b)), "not a DER") != NULL);
	ck_assert_int_eq(S.begins, 0);
	/* signed for another address: staged, 403 at the end, never flashed */
	fake_sig("0x08000000", image, 8192, sig);
	ck_assert_int_eq(start_signed("address=0x08001000", 8192, sig, &rs), 1);
	ck_assert_str_eq(L.addr, "0x08001000");
	stream(image, 8192, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 403, "%.*s", (int)rs.len, rs.body);
	ck_assert(strncmp(jstr(&rs, "error", b, sizeof(b)), "signature does not match", 24) == 0);
	ck_assert(strstr(b, "not touched") != NULL);
	/* another image (one byte changed) */
	image[100] ^= 1;
	ck_assert_int_eq(start_signed(NULL, 8192, sig, &rs), 1);
	stream(image, 8192, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 403);
	image[100] ^= 1;
	/* Intel HEX signed as a .bin: ADDR is "hex" */
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 256, 0, 0);
	fake_sig("0x08000000", (const uint8_t *)hexbuf, len, sig);
	ck_assert_int_eq(start_signed("format=hex", (int64_t)len, sig, &rs), 1);
	ck_assert_str_eq(L.addr, "hex");
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_int_eq(rs.status, 403);
	assert_chip_untouched();
	ck_assert_int_eq(L.checks, 3);
	ck_assert_int_eq(S.ends, 3);
	/* bootloader refused, reset fine; status says locked */
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/bootloader", GOOD, "1", NULL, 0).status,
	                 403);
	ck_assert_int_eq(fx.acted, 0);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/reset", GOOD, "1", NULL, 0).status, 200);
	rs = fx_call("GET", "/api/status", GOOD, NULL, NULL, 0);
	fx_parse(&rs);
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "locked")].type, J_TRUE);
}
END_TEST

START_TEST(flash_locked_signed)
{
	struct api_response rs;
	char b[200], sig[16];
	size_t n = 6000;
	make_image(n, 43);
	/* no address=: signed for (and written at) 0x08000000; stage implied */
	fake_sig("0x08000000", image, n, sig);
	ck_assert_int_eq(start_signed("verify=1", (int64_t)n, sig, &rs), 1);
	ck_assert_int_eq(S.begins, 1);
	stream(image, n, 777);
	assert_chip_untouched(); /* staged first */
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_str_eq(jstr(&rs, "address", b, sizeof(b)), "0x08000000");
	fx_parse(&rs);
	ck_assert_int_eq(fx.tok[json_find(rs.body, fx.tok, 0, "stage")].type, J_TRUE);
	size_t fs;
	const uint8_t *fl = stm32sim_flash(R.sim, &fs);
	ck_assert_mem_eq(fl, image, n);
	/* a signed Intel HEX */
	size_t len = hexfile(hexbuf, sizeof(hexbuf), 0x08004000, 512, 0, 0);
	fake_sig("hex", (const uint8_t *)hexbuf, len, sig);
	ck_assert_int_eq(start_signed("format=hex", (int64_t)len, sig, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 200, "%.*s", (int)rs.len, rs.body);
	ck_assert_mem_eq(fl + 0x4000, image, 512);
	/* go=0 in locked mode: the run ends with a reset into the application, not in the
	 * bootloader (where a client could write the flash with AN3155 commands) */
	ck_assert_int_eq(R.boot0, 0);
	ck_assert_int_eq(fx.acted, 0);
	/* a signed run that fails after the commit (a record beyond the flash): reset too */
	make_image(64, 44);
	len = hexfile(hexbuf, sizeof(hexbuf), 0x08000000, 32, 0x08020000, 32);
	fake_sig("hex", (const uint8_t *)hexbuf, len, sig);
	ck_assert_int_eq(start_signed("format=hex", (int64_t)len, sig, &rs), 1);
	stream((const uint8_t *)hexbuf, len, 1000);
	rs = finish();
	ck_assert_msg(rs.status == 413, "%.*s", (int)rs.len, rs.body);
	ck_assert_int_eq(fx.acted, 1);
	ck_assert_int_eq(fx.act_kind, API_ACT_RUN);
	/* unlocked: the header is ignored, uploads work without it */
	L.locked = 0;
	ck_assert_int_eq(start("address=0x08008000", 1024, &rs), 1);
	stream(image, 1024, 512);
	rs = finish();
	ck_assert_int_eq(rs.status, 200);
	ck_assert_int_eq(fx_call("POST", "/api/targets/0/bootloader", GOOD, "1", NULL, 0).status,
	                 200);
}
END_TEST

static Suite *flash_job_suite(void)
{
	Suite *s = suite_create("flash_job");
	TCase *fl = tcase_create("flash");
	tcase_add_checked_fixture(fl, flash_setup, flash_teardown);
	tcase_set_timeout(fl, 60);
	tcase_add_test(fl, flash_refusals);
	tcase_add_test(fl, flash_bin_streamed);
	tcase_add_test(fl, flash_hex_with_gap);
	tcase_add_test(fl, flash_hex_errors);
	tcase_add_test(fl, flash_hex_gap_keeps_pages);
	tcase_add_test(fl, flash_hex_g431_unaligned_start);
	tcase_add_test(fl, flash_interrupted);
	tcase_add_test(fl, flash_too_large_for_chip);
	tcase_add_test(fl, flash_misaligned_for_device);
	tcase_add_test(fl, flash_delete);
	tcase_add_test(fl, flash_chunked_bin_needs_store);
	suite_add_tcase(s, fl);
	TCase *sg = tcase_create("stage");
	tcase_add_checked_fixture(sg, stage_setup, flash_teardown);
	tcase_set_timeout(sg, 60);
	tcase_add_test(sg, flash_staged_bin);
	tcase_add_test(sg, flash_staged_hex);
	tcase_add_test(sg, flash_staged_hex_checked_before_commit);
	tcase_add_test(sg, flash_staged_replay_polls_again);
	tcase_add_test(sg, flash_address_null_until_known);
	tcase_add_test(sg, flash_staged_crc_mismatch);
	tcase_add_test(sg, flash_staged_interrupted);
	tcase_add_test(sg, flash_staged_client_leaves_after_commit);
	tcase_add_test(sg, flash_staged_refusals);
	tcase_add_test(sg, flash_delete_staging);
	tcase_add_test(sg, flash_staged_hex_outside_flash);
	tcase_add_test(sg, flash_chunked_bin_too_large);
	suite_add_tcase(s, sg);
	TCase *lk = tcase_create("locked");
	tcase_add_checked_fixture(lk, locked_setup, flash_teardown);
	tcase_set_timeout(lk, 60);
	tcase_add_test(lk, flash_locked_refusals);
	tcase_add_test(lk, flash_locked_signed);
	suite_add_tcase(s, lk);
	return s;
}
UNIT_SUITE(flash_job_suite)
