/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: the AN3155 master (firmware/core/stm32_isp) talking to a fuzzed
 * bootloader. The input is a script; byte 0 sets the run options (entry, verify, finish,
 * flags, total known or not, address), then each control byte does one thing:
 *   0x00-0x7F  feed the next (c & 0x3F) + 1 input bytes to stm32_isp_input() as raw UART
 *              bytes (random answers, noise)
 *   0x80-0x8F  ACK, then a counted list (GET/GID shape): N = next byte, N + 1 bytes, ACK
 *   0x90-0x9F  a well-formed answer to the last command the master sent (GET with a
 *              fuzzed command list, GVR, GID with a PID from the device table or the next
 *              two bytes, READ with the next byte deciding between the image data and
 *              fuzzed bytes, ACKs for the rest)
 *   0xA0-0xAF  ACK        0xB0-0xBF  NACK       0xC0-0xC7  BUSY
 *   0xC8-0xCF  advance the clock by (c & 7) * 300 ms
 *   0xD0       stm32_isp_write() of (next byte) image bytes   0xD1  stm32_isp_end()
 *   0xD2       stm32_isp_abort()    0xD3  advance the clock by 40 s
 *   0xD5       stm32_isp_seek() (next byte) * 8 bytes past the last image byte fed, or
 *              below it when that byte is 0xFF
 *   others     stm32_isp_poll() only
 * Every step ends with stm32_isp_poll(). Checked: no crash or undefined behaviour, and the
 * invariants of the API: byte counters ordered (verified <= written <= received), DONE
 * only without error and after end(), FAILED always with an error and a message,
 * next_ms() -1 exactly when idle/ended/waiting for data, and every WRITE MEMORY the
 * master sends is well formed (valid address checksum, word-aligned address in flash,
 * whole words of data, valid data checksum).
 */
#include "an3155.h"
#include "stm32_devices.h"
#include "stm32_isp.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t now;
static uint8_t last_frame[STM32_ISP_BLOCK + 4];
static size_t last_len;
static uint8_t last_cmd;   /* command of the frame sequence in progress */
static int frames_in_cmd;  /* frames sent since that command */
static uint32_t read_addr; /* address of the last READ */
static uint8_t img[4096];
static uint8_t shadow[64 * 1024]; /* flash from 0x08000000 as written (READ answers) */
static uint32_t write_addr;       /* address of the last WRITE */
static int answered;              /* the last frame sent has been answered (autopilot) */

static const uint8_t ack = AN3155_ACK, nack = AN3155_NACK, busy = AN3155_BUSY;

static void check_at(int cond, int line)
{
	if (!cond) {
		fprintf(stderr, "fuzz_stm32_isp: check at line %d failed\n", line);
		abort();
	}
}
#define check(c) check_at((c), __LINE__)

static int f_config(void *ctx, struct hal_uart_cfg *cfg)
{
	(void)ctx;
	check(cfg->baud > 0 && cfg->data_bits == 8 && cfg->parity == 3 && cfg->stop == 1);
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static size_t f_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	check(n > 0 && n <= sizeof(last_frame));
	if (getenv("FUZZ_STM32_ISP_DEBUG"))
		fprintf(stderr, "frame %zu: %02x %02x %02x\n", n, p[0], n > 1 ? p[1] : 0,
		        n > 2 ? p[2] : 0);
	memcpy(last_frame, p, n);
	last_len = n;
	answered = 0;
	/* a complement pair is a command, except READ's count and ERASE's global code */
	int count = last_cmd == AN3155_READ_MEMORY && frames_in_cmd == 1;
	int global = last_cmd == AN3155_ERASE && frames_in_cmd == 0 && p[0] == AN3155_ERASE_GLOBAL;
	if (n == 2 && (uint8_t)(p[0] ^ p[1]) == 0xFF && !count && !global) {
		last_cmd = p[0];
		frames_in_cmd = 0;
		return n;
	}
	frames_in_cmd++;
	if (n == 1)
		return n; /* 0x7F sync or 0xFF re-sync filler */
	if (last_cmd == AN3155_WRITE_MEMORY && frames_in_cmd == 1) {
		/* WRITE MEMORY address: XOR checksum, word aligned, inside some flash */
		check(n == 5);
		check((p[0] ^ p[1] ^ p[2] ^ p[3]) == p[4]);
		uint32_t a = be32(p);
		check((a & 3) == 0);
		check(a >= 0x08000000u && a < 0x08000000u + 4u * 1024u * 1024u);
		write_addr = a;
	} else if (last_cmd == AN3155_WRITE_MEMORY && frames_in_cmd == 2) {
		/* data: N, N + 1 bytes (a whole number of words), XOR checksum */
		check(n >= 3 && n == (size_t)p[0] + 3);
		check(((size_t)p[0] + 1) % 4 == 0);
		uint8_t x = 0;
		for (size_t i = 0; i + 1 < n; i++)
			x ^= p[i];
		check(x == p[n - 1]);
		for (size_t i = 0; i + 2 < n; i++)
			if (write_addr - 0x08000000u + i < sizeof(shadow))
				shadow[write_addr - 0x08000000u + i] = p[1 + i];
	} else if (last_cmd == AN3155_READ_MEMORY && frames_in_cmd == 1) {
		check(n == 5 && (p[0] ^ p[1] ^ p[2] ^ p[3]) == p[4]);
		read_addr = be32(p);
	} else if (last_cmd == AN3155_READ_MEMORY && frames_in_cmd == 2) {
		check(n == 2 && (uint8_t)(p[0] ^ p[1]) == 0xFF);
	} else if ((last_cmd == AN3155_ERASE || last_cmd == AN3155_EXTENDED_ERASE) &&
	           frames_in_cmd == 1) {
		uint8_t x = 0;
		for (size_t i = 0; i + 1 < n; i++)
			x ^= p[i];
		if (last_cmd == AN3155_ERASE && n == 2 && p[0] == AN3155_ERASE_GLOBAL)
			check(p[1] == 0x00); /* global erase: 0xFF 0x00, no checksum (3.7) */
		else
			check(x == p[n - 1]);
		if (last_cmd == AN3155_ERASE && !(n == 2 && p[0] == AN3155_ERASE_GLOBAL))
			check(n == (size_t)p[0] + 3);
		if (last_cmd == AN3155_EXTENDED_ERASE &&
		    !(n == 3 && (unsigned)(p[0] << 8 | p[1]) == AN3155_EXTENDED_ERASE_MASS))
			check(n == 2 * ((size_t)(p[0] << 8 | p[1]) + 1) + 3);
	}
	return n;
}

static void f_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	(void)pin;
	(void)level;
}

static uint32_t f_now(void *ctx)
{
	(void)ctx;
	return now;
}

/* sought: stm32_isp_seek() was used (its 0xFF padding counts as written, not received) */
static void invariants(const struct stm32_isp *isp, int ended, int sought)
{
	struct stm32_isp_status st;
	stm32_isp_status(isp, &st);
	check(st.message != NULL && strlen(st.message) < STM32_ISP_MSG);
	check(st.bytes_verified <= st.bytes_written);
	check(sought || st.bytes_written <= st.bytes_received);
	if (st.state == STM32_ISP_DONE) {
		check(st.error == STM32_ISP_E_NONE);
		check(ended || (st.total && st.bytes_received == st.total));
		check(st.bytes_written == (sought ? st.total : st.bytes_received));
		check(st.bytes_written >= st.bytes_received);
	}
	if (st.state == STM32_ISP_FAILED)
		check(st.error != STM32_ISP_E_NONE && st.message[0] != 0);
	int32_t ms = stm32_isp_next_ms(isp);
	check(ms >= -1);
	if (!stm32_isp_busy(isp))
		check(ms == -1 && stm32_isp_room(isp) == 0);
}

static void feed(struct stm32_isp *isp, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		stm32_isp_input(isp, p + i, 1);
		stm32_isp_poll(isp);
	}
}

/* A well-formed answer (AN3155 chapter 3) to the last frame the master sent; sel varies
 * the contents: GET's version and erase commands (bit 0: 0x43, bit 1: 0x44), GVR's
 * version, GID's PID (a table entry or none), READ data (bit 0: what was written there,
 * else fuzzed), NACK instead of ACK for other frames (bit 7). Returns the length. */
static size_t answer(uint8_t sel, uint8_t *r)
{
	size_t k = 0;
	if (last_len == 1) { /* 0x7F sync: ACK; 0xFF re-sync filler: NACK */
		r[k++] = last_frame[0] == AN3155_SYNC ? ack : nack;
		return k;
	}
	if (frames_in_cmd > 0 && !(last_cmd == AN3155_READ_MEMORY && frames_in_cmd == 2)) {
		r[k++] = (sel & 0x80) ? nack : ack; /* address, erase list, write data */
		return k;
	}
	switch (last_cmd) {
	case AN3155_GET: { /* GET: version, then commands (always WRITE/READ/GO) */
		static const uint8_t base[] = {AN3155_GET,
		                               AN3155_GVR,
		                               AN3155_GID,
		                               AN3155_READ_MEMORY,
		                               AN3155_GO,
		                               AN3155_WRITE_MEMORY,
		                               AN3155_WRITE_PROTECT,
		                               AN3155_WRITE_UNPROTECT,
		                               AN3155_READOUT_PROTECT,
		                               AN3155_READOUT_UNPROTECT};
		r[k++] = ack;
		r[k++] = (uint8_t)(sizeof(base) + (sel & 1) + ((sel >> 1) & 1));
		r[k++] = (uint8_t)(0x20 | (sel >> 4));
		memcpy(r + k, base, sizeof(base));
		k += sizeof(base);
		if (sel & 1)
			r[k++] = AN3155_ERASE;
		if (sel & 2)
			r[k++] = AN3155_EXTENDED_ERASE;
		r[k++] = ack;
		return k;
	}
	case AN3155_GVR:
		r[k++] = ack;
		r[k++] = sel;
		r[k++] = 0;
		r[k++] = 0;
		r[k++] = ack;
		return k;
	case AN3155_GID: {
		const struct stm32_dev *d = stm32_dev_at(sel % (stm32_dev_count() + 1));
		uint16_t pid = d ? d->pid : (uint16_t)(sel * 31);
		r[k++] = ack;
		r[k++] = 1;
		r[k++] = (uint8_t)(pid >> 8);
		r[k++] = (uint8_t)pid;
		r[k++] = ack;
		return k;
	}
	case AN3155_READ_MEMORY:
		r[k++] = ack;
		if (frames_in_cmd == 2) {
			size_t n = (size_t)last_frame[0] + 1;
			for (size_t j = 0; j < n; j++) {
				uint32_t off = read_addr - 0x08000000u + (uint32_t)j;
				r[k++] = (sel & 1) && off < sizeof(shadow) ? shadow[off]
				                                           : (uint8_t)(sel + j);
			}
		}
		return k;
	case AN3155_WRITE_UNPROTECT:
	case AN3155_READOUT_UNPROTECT: /* unprotect: ACK, (operation), ACK */
		r[k++] = ack;
		r[k++] = ack;
		return k;
	default:
		r[k++] = (sel & 0x80) ? nack : ack;
		return k;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	for (size_t i = 0; i < sizeof(img); i++)
		img[i] = (uint8_t)(i * 7 + 3);
	now = 1000;
	last_len = 0;
	answered = 1;
	last_cmd = 0;
	frames_in_cmd = 0;
	struct hal_ops hal = {
	    .uart_config = f_config, .uart_write = f_write, .gpio_set = f_gpio, .now_ms = f_now};
	struct stm32_isp isp;
	stm32_isp_init(&isp, &hal, NULL);
	uint8_t o0 = data[0];
	struct stm32_isp_opts o = {
	    .entry = (o0 & 1) ? STM32_ISP_ENTRY_NONE : STM32_ISP_ENTRY_PINS,
	    .verify = (o0 >> 1) & 1,
	    .finish = (enum stm32_isp_finish)(((o0 >> 2) & 3) % 3),
	    .flags = (uint32_t)((o0 >> 4) & 7),
	    .total = (o0 & 0x80) ? 1000 : 0,
	    .address = (o0 & 0x40) ? 0x08000104u : 0,
	};
	if (stm32_isp_begin(&isp, &o) != 0)
		abort();
	int ended = 0, sought = 0;
	size_t fed = 0;
	uint32_t next_addr = 0x08000000u + (o.address ? 0x104u : 0); /* of the next byte fed */
	memset(shadow, 0xFF, sizeof(shadow));
	for (size_t i = 1; i < size; i++) {
		uint8_t c = data[i];
		if (c < 0x80) {
			size_t n = (size_t)(c & 0x3F) + 1;
			if (i + n >= size)
				n = size - i - 1;
			feed(&isp, data + i + 1, n);
			i += n;
		} else if (c < 0x90) {
			if (i + 1 >= size)
				break;
			uint8_t n = data[++i];
			feed(&isp, &ack, 1);
			feed(&isp, &n, 1);
			for (unsigned k = 0; k <= n; k++) {
				uint8_t b = i + 1 < size ? data[++i] : 0;
				feed(&isp, &b, 1);
			}
			feed(&isp, &ack, 1);
		} else if (c < 0xA0) {
			uint8_t r[STM32_ISP_BLOCK + 8];
			uint8_t sel = i + 1 < size ? data[++i] : 0;
			feed(&isp, r, answer(sel, r));
		} else if (c < 0xB0) {
			feed(&isp, &ack, 1);
		} else if (c < 0xC0) {
			feed(&isp, &nack, 1);
		} else if (c < 0xC8) {
			feed(&isp, &busy, 1);
		} else if (c < 0xD0) {
			now += (uint32_t)(c & 7) * 300;
		} else if (c == 0xD0) {
			size_t n = i + 1 < size ? data[++i] : 0;
			if (fed + n > sizeof(img))
				n = sizeof(img) - fed;
			size_t room = stm32_isp_room(&isp);
			size_t k = stm32_isp_write(&isp, img + fed, n);
			check(k <= n);
			if (o.total == 0 || fed + n <= o.total)
				check(k == (n < room ? n : room) || !stm32_isp_busy(&isp));
			fed += k;
			next_addr += (uint32_t)k;
		} else if (c == 0xD5) {
			uint8_t g = i + 1 < size ? data[++i] : 0;
			uint32_t a = g == 0xFF ? next_addr - 1 : next_addr + g * 8u;
			int busy_before = stm32_isp_busy(&isp) && !ended;
			int e = stm32_isp_seek(&isp, a);
			check(e == 0 || e == -EINVAL || e == -ERANGE);
			if (!busy_before || o.total)
				check(e == -EINVAL);
			if (e == -ERANGE)
				check(!stm32_isp_busy(&isp));
			if (e == 0) {
				sought = 1;
				next_addr = a;
			}
		} else if (c == 0xD1) {
			check(stm32_isp_end(&isp) == 0);
			ended = 1;
		} else if (c == 0xD2) {
			stm32_isp_abort(&isp);
			check(!stm32_isp_busy(&isp));
			check(stm32_isp_state(&isp) == STM32_ISP_FAILED ||
			      stm32_isp_state(&isp) == STM32_ISP_DONE);
		} else if (c == 0xD3) {
			now += 40000;
		} else if (c == 0xD4) {
			/* autopilot: answer every frame well (F103, image data read back) until
			 * the master waits for image data or ends */
			for (int k = 0; k < 400 && stm32_isp_busy(&isp); k++) {
				if (answered) {
					int32_t ms = stm32_isp_next_ms(&isp);
					if (ms < 0)
						break;
					now += (uint32_t)ms;
					stm32_isp_poll(&isp);
					continue;
				}
				uint8_t r[STM32_ISP_BLOCK + 8];
				answered = 1;
				feed(&isp, r, answer(0x07, r));
			}
		}
		stm32_isp_poll(&isp);
		invariants(&isp, ended, sought);
		if (getenv("FUZZ_STM32_ISP_DEBUG"))
			fprintf(stderr, "op %02x: %s last_cmd %02x frames %d\n", c,
			        stm32_isp_state_name(stm32_isp_state(&isp)), last_cmd,
			        frames_in_cmd);
	}
	if (getenv("FUZZ_STM32_ISP_DEBUG")) {
		struct stm32_isp_status st;
		stm32_isp_status(&isp, &st);
		fprintf(stderr, "state %s error %s written %u verified %u: %s\n",
		        stm32_isp_state_name(st.state), stm32_isp_error_name(st.error),
		        st.bytes_written, st.bytes_verified, st.message);
	}
	/* whatever happened, a run can always be aborted and ends not-busy */
	stm32_isp_abort(&isp);
	check(!stm32_isp_busy(&isp));
	invariants(&isp, ended, sought);
	return 0;
}
