/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the AN3155 master (firmware/core/stm32_isp) against the simulated STM32
 * (stm32sim/) in-process, with the simulator's real timing (wire time, erase and program
 * times) driven by one fake clock shared by both: F103 (ERASE, 1 KiB pages), F407
 * (EXTENDED ERASE, sectors, 8 s mass erase), G431 (EXTENDED ERASE, 2 KiB pages); write,
 * verify, go; injected NACKs; a broken link; read and write protection with and without
 * the opt-in; images not at the flash base, larger than the flash; BUSY bytes; a
 * bootloader that is already synced (also in the middle of a frame); abort. A small
 * scripted bootloader covers answers the simulator never gives (unknown PID, GET lists).
 */
#include "an3155.h"
#include "stm32_isp.h"
#include "stm32sim.h"
#include "unit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FLASH 0x08000000u
#define KIB   1024u

/* ------------------------------------------------------------------------------------ */
/* Rig: stm32_isp + stm32sim on one fake clock                                          */
/* ------------------------------------------------------------------------------------ */

struct seg {
	uint32_t addr;
	const uint8_t *data;
	size_t len;
};

struct rig {
	struct stm32sim *sim;
	uint64_t now_us;
	struct stm32_isp isp;
	struct hal_ops hal;
	int nrst, boot0;
	int pin_changes;
	unsigned tx_purges;      /* uart_purge(tx = 1) calls */
	int purged_before_reset; /* a TX purge came before the first NRST low */
	size_t pending_at_reset; /* UART TX bytes still on the wire at that NRST low */
	int reset_seen;
	/* image feeding: img, or segments (stm32_isp_seek before each) */
	const struct seg *segs;
	size_t nsegs, seg_i, seg_off;
	int seg_sought;
	const uint8_t *img;
	size_t img_len, img_off, chunk;
	int no_end; /* do not call stm32_isp_end() */
	int ended;
	/* hooks */
	uint32_t cut_at; /* cut the link once bytes_written >= cut_at (0 = never) */
	int cut;
	uint32_t abort_at;
	uint32_t lose_ack_at; /* lose the ACK of the first WRITE after this many bytes */
	int ack_lost;
	uint64_t restore_at; /* link back up at (us), 0 = not pending */
	uint64_t hold_us;    /* hold the chip's answers to the first ERASE this long */
	uint64_t hold_until; /* holding until (us), 0 = not holding */
	int held_once;
	uint8_t held[512];
	size_t nheld;
	/* WRITE MEMORY data frames seen on the wire (address, N) */
	unsigned nwf;
	uint32_t wf_addr[1024];
	uint16_t wf_len[1024];
	/* progress */
	unsigned states_seen; /* bit per state */
	unsigned progress_calls;
	int done_seen, failed_seen;
	uint32_t last_written;
	int written_decreased;
};

static int verbose(void)
{
	return getenv("STM32_ISP_TEST_VERBOSE") != NULL;
}

static int h_uart_config(void *ctx, struct hal_uart_cfg *cfg)
{
	struct rig *r = ctx;
	static const char par[] = "?NOEMS";
	struct stm32sim_line l = {cfg->baud, cfg->data_bits,
	                          cfg->parity <= 5 ? par[cfg->parity] : 'N',
	                          (uint8_t)(cfg->stop == 2 ? 2 : 1)};
	stm32sim_set_line(r->sim, r->now_us, &l);
	return 0;
}

static size_t h_uart_write(void *ctx, const uint8_t *p, size_t n)
{
	struct rig *r = ctx;
	const struct stm32_isp_io *io = &r->isp.io;
	/* a WRITE MEMORY data frame (3.6): N-1, N bytes, checksum; sent whole from out[] */
	if (r->isp.st.state == STM32_ISP_WRITING && io->stage == 2 && p == io->out &&
	    n == io->out_len && n >= 3 && n == (size_t)io->out[0] + 3u && r->nwf < 1024) {
		r->wf_addr[r->nwf] = io->addr;
		r->wf_len[r->nwf++] = (uint16_t)(io->out[0] + 1u);
	}
	return stm32sim_write(r->sim, r->now_us, p, n);
}

static void h_uart_purge(void *ctx, int rx, int tx)
{
	struct rig *r = ctx;
	if (tx)
		r->tx_purges++;
	if (rx) {
		uint8_t b[64];
		while (stm32sim_read(r->sim, r->now_us, b, sizeof(b)) > 0)
			;
	}
}

static void h_gpio(void *ctx, enum hal_pin pin, int level)
{
	struct rig *r = ctx;
	if (pin == HAL_PIN_NRST && level == 0 && !r->reset_seen) {
		r->reset_seen = 1;
		r->purged_before_reset = r->tx_purges > 0;
		r->pending_at_reset = stm32sim_tx_pending(r->sim, r->now_us);
	}
	if (pin == HAL_PIN_NRST)
		r->nrst = level;
	else
		r->boot0 = level;
	r->pin_changes++;
	stm32sim_set_pins(r->sim, r->now_us, r->nrst, r->boot0);
}

static uint32_t h_now(void *ctx)
{
	struct rig *r = ctx;
	return (uint32_t)(r->now_us / 1000);
}

static size_t h_tx_pending(void *ctx)
{
	struct rig *r = ctx;
	return stm32sim_tx_pending(r->sim, r->now_us);
}

static void h_log(void *ctx, enum hal_log_level lvl, const char *line)
{
	struct rig *r = ctx;
	if (verbose())
		fprintf(stderr, "[%8.3f] %d %s\n", (double)r->now_us / 1e6, (int)lvl, line);
}

static void on_progress(void *arg, const struct stm32_isp_status *st)
{
	struct rig *r = arg;
	r->progress_calls++;
	r->states_seen |= 1u << st->state;
	if (st->state == STM32_ISP_DONE)
		r->done_seen++;
	if (st->state == STM32_ISP_FAILED)
		r->failed_seen++;
	if (st->bytes_written < r->last_written)
		r->written_decreased = 1;
	r->last_written = st->bytes_written;
}

static void rig_init(struct rig *r, const struct stm32sim_options *so)
{
	memset(r, 0, sizeof(*r));
	char err[200];
	r->now_us = 1000;
	r->sim = stm32sim_new(so, r->now_us, err, sizeof(err));
	ck_assert_msg(r->sim != NULL, "%s", err);
	r->nrst = 1;
	r->hal.uart_config = h_uart_config;
	r->hal.uart_write = h_uart_write;
	r->hal.uart_purge = h_uart_purge;
	r->hal.gpio_set = h_gpio;
	r->hal.now_ms = h_now;
	r->hal.uart_tx_pending = h_tx_pending;
	r->hal.log = h_log;
	r->chunk = 100;
	stm32_isp_init(&r->isp, &r->hal, r);
	stm32_isp_set_progress(&r->isp, on_progress, r);
}

static void rig_free(struct rig *r)
{
	stm32sim_free(r->sim);
}

static void feed(struct rig *r)
{
	while (r->segs && r->seg_i < r->nsegs && stm32_isp_busy(&r->isp)) {
		const struct seg *g = &r->segs[r->seg_i];
		if (!r->seg_sought) {
			int e = stm32_isp_seek(&r->isp, g->addr);
			r->seg_sought = 1;
			if (e < 0)
				return;
		}
		size_t n = g->len - r->seg_off;
		if (n > r->chunk)
			n = r->chunk;
		size_t k = stm32_isp_write(&r->isp, g->data + r->seg_off, n);
		r->seg_off += k;
		if (r->seg_off == g->len) {
			r->seg_i++;
			r->seg_off = 0;
			r->seg_sought = 0;
		} else if (k == 0) {
			return;
		}
	}
	if (r->segs && r->seg_i == r->nsegs && !r->ended && stm32_isp_busy(&r->isp)) {
		r->ended = 1;
		ck_assert_int_eq(stm32_isp_end(&r->isp), 0);
	}
	while (r->img && r->img_off < r->img_len) {
		size_t n = r->img_len - r->img_off;
		if (n > r->chunk)
			n = r->chunk;
		size_t k = stm32_isp_write(&r->isp, r->img + r->img_off, n);
		ck_assert_uint_le(k, n);
		if (k == 0)
			break;
		r->img_off += k;
	}
	if (r->img && r->img_off == r->img_len && !r->ended && !r->no_end &&
	    stm32_isp_busy(&r->isp)) {
		r->ended = 1;
		ck_assert_int_eq(stm32_isp_end(&r->isp), 0);
	}
}

/* Run until the master is no longer busy or max_s of simulated time passed. */
static void run(struct rig *r, double max_s)
{
	uint64_t limit = r->now_us + (uint64_t)(max_s * 1e6);
	for (long guard = 0; guard < 50000000; guard++) {
		uint8_t buf[300];
		size_t n;
		if (r->hold_us && !r->held_once && r->isp.st.state == STM32_ISP_ERASING &&
		    r->isp.io.waiting) {
			r->held_once = 1; /* a slow link: the erase's ACK comes late */
			r->hold_until = r->now_us + r->hold_us;
		}
		if (r->hold_until && r->now_us >= r->hold_until) {
			r->hold_until = 0;
			stm32_isp_input(&r->isp, r->held, r->nheld);
		}
		while ((n = stm32sim_read(r->sim, r->now_us, buf, sizeof(buf))) > 0) {
			if (!r->hold_until) {
				stm32_isp_input(&r->isp, buf, n);
				continue;
			}
			ck_assert_uint_le(r->nheld + n, sizeof(r->held));
			memcpy(r->held + r->nheld, buf, n);
			r->nheld += n;
		}
		stm32_isp_poll(&r->isp);
		feed(r);
		if (r->cut_at && !r->cut && r->isp.st.bytes_written >= r->cut_at) {
			stm32sim_set_link(r->sim, r->now_us, 0);
			r->cut = 1;
		}
		if (r->abort_at && r->isp.st.bytes_written >= r->abort_at)
			stm32_isp_abort(&r->isp);
		if (r->lose_ack_at && !r->ack_lost && r->isp.st.bytes_written >= r->lose_ack_at &&
		    r->isp.st.state == STM32_ISP_WRITING && r->isp.io.stage == 2 &&
		    r->isp.io.waiting) {
			/* the WRITE data has reached the chip: its ACK will be lost */
			stm32sim_set_link(r->sim, r->now_us, 0);
			r->ack_lost = 1;
			r->restore_at = r->now_us + 50000;
		}
		if (r->restore_at && r->now_us >= r->restore_at) {
			stm32sim_set_link(r->sim, r->now_us, 1);
			r->restore_at = 0;
		}
		if (!stm32_isp_busy(&r->isp))
			return;
		int32_t ms = stm32_isp_next_ms(&r->isp);
		uint64_t t = UINT64_MAX;
		if (ms >= 0)
			t = (r->now_us / 1000 + (uint64_t)ms) * 1000;
		uint64_t ts = stm32sim_next_event_us(r->sim);
		if (ts < t)
			t = ts;
		if (r->restore_at && r->restore_at < t)
			t = r->restore_at;
		if (r->hold_until && r->hold_until < t)
			t = r->hold_until;
		ck_assert_msg(t != UINT64_MAX, "stuck: nothing pending in state %s",
		              stm32_isp_state_name(stm32_isp_state(&r->isp)));
		if (t <= r->now_us)
			t = r->now_us + 1;
		r->now_us = t;
		ck_assert_msg(r->now_us <= limit, "still %s after %.1f s",
		              stm32_isp_state_name(stm32_isp_state(&r->isp)), max_s);
	}
	ck_abort_msg("too many iterations");
}

static struct stm32_isp_status status(const struct rig *r)
{
	struct stm32_isp_status st;
	stm32_isp_status(&r->isp, &st);
	return st;
}

/* Image with a plausible vector table (the simulated application starts from it). */
static uint8_t *make_image(size_t len, uint32_t seed, uint32_t ram_top, uint32_t entry)
{
	uint8_t *p = malloc(len);
	ck_assert_ptr_nonnull(p);
	uint32_t x = seed * 2654435761u + 12345u;
	for (size_t i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		p[i] = (uint8_t)(x >> 16);
	}
	if (len >= 8 && ram_top) {
		uint32_t v[2] = {ram_top, entry | 1u};
		for (int k = 0; k < 8; k++)
			p[k] = (uint8_t)(v[k / 4] >> (8 * (k % 4)));
	}
	return p;
}

static void expect_flash(struct rig *r, uint32_t addr, const uint8_t *img, size_t len)
{
	size_t fsz;
	const uint8_t *f = stm32sim_flash(r->sim, &fsz);
	ck_assert_uint_le(addr - FLASH + len, fsz);
	ck_assert_mem_eq(f + (addr - FLASH), img, len);
}

static int flash_all(struct rig *r, uint32_t from, uint32_t to, uint8_t v)
{
	size_t fsz;
	const uint8_t *f = stm32sim_flash(r->sim, &fsz);
	for (uint32_t i = from - FLASH; i < to - FLASH && i < fsz; i++)
		if (f[i] != v)
			return 0;
	return 1;
}

static void begin(struct rig *r, const struct stm32_isp_opts *o, const uint8_t *img, size_t len)
{
	r->img = img;
	r->img_len = len;
	r->img_off = 0;
	r->ended = 0;
	ck_assert_int_eq(stm32_isp_begin(&r->isp, o), 0);
}

/* ------------------------------------------------------------------------------------ */
/* Device table                                                                         */
/* ------------------------------------------------------------------------------------ */

START_TEST(test_devices_table)
{
	static const char *const fams[] = {"F0", "F1", "F3", "F4", "F7", "G0", "G4",
	                                   "H7", "L0", "L1", "L4", "WB", "WL", "U5"};
	for (size_t f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		int found = 0;
		for (size_t i = 0; i < stm32_dev_count(); i++)
			found += !strcmp(stm32_dev_at(i)->family, fams[f]);
		ck_assert_msg(found > 0, "family %s missing", fams[f]);
	}
	ck_assert_ptr_null(stm32_dev_at(stm32_dev_count()));
	for (size_t i = 0; i < stm32_dev_count(); i++) {
		const struct stm32_dev *d = stm32_dev_at(i);
		/* PIDs unique, layout covers exactly the flash size */
		ck_assert_ptr_eq(stm32_dev_find(d->pid), d);
		ck_assert_uint_eq(d->flash_base, FLASH);
		uint32_t units = stm32_dev_units(d, d->flash_size), u, s, z, off = 0;
		for (uint32_t k = 0; k < units; k++) {
			ck_assert_int_eq(stm32_dev_unit(d, d->flash_size, off, &u, &s, &z), 0);
			ck_assert_uint_eq(u, k);
			ck_assert_uint_eq(s, off);
			off += z;
		}
		ck_assert_msg(off == d->flash_size, "PID 0x%03x: layout %u != size %u", d->pid, off,
		              d->flash_size);
		ck_assert_int_eq(stm32_dev_unit(d, d->flash_size, d->flash_size, &u, &s, &z),
		                 -ERANGE);
		ck_assert_uint_gt(stm32_dev_erase_ms(d, d->page_size ? d->page_size : 16 * KIB), 0);
	}
	ck_assert_ptr_null(stm32_dev_find(0x999));
	/* programming units per family (reference manuals, see stm32_devices.h) */
	for (size_t i = 0; i < stm32_dev_count(); i++) {
		const struct stm32_dev *d = stm32_dev_at(i);
		const char *f = d->family;
		uint32_t want = 4;
		if (!strcmp(f, "G0") || !strcmp(f, "G4") || !strcmp(f, "L4") || !strcmp(f, "WB") ||
		    !strcmp(f, "WL"))
			want = 8;
		else if (!strcmp(f, "U5") || d->pid == 0x480)
			want = 16;
		else if (!strcmp(f, "H7"))
			want = 32;
		ck_assert_msg(d->write_align == want, "PID 0x%03x (%s): write_align %u, want %u",
		              d->pid, f, d->write_align, want);
		ck_assert_uint_eq(stm32_dev_write_align(d), want);
	}
	/* the simulator's models agree with the table */
	for (int i = 0; i < stm32sim_model_count(); i++) {
		const struct stm32sim_model_info *m = stm32sim_model(i);
		const struct stm32_dev *d = stm32_dev_find(m->pid);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(d->flash_size, m->flash_size);
		ck_assert_uint_eq(stm32_dev_units(d, d->flash_size), m->npages);
		for (uint32_t p = 0, off = 0; p < m->npages; p++) {
			uint32_t size, us, u, s, z;
			ck_assert_int_eq(stm32sim_model_page(m, p, &size, &us), 0);
			ck_assert_int_eq(stm32_dev_unit(d, d->flash_size, off, &u, &s, &z), 0);
			ck_assert_uint_eq(z, size);
			/* the table's worst case is never shorter than the simulated time */
			ck_assert_uint_ge(stm32_dev_erase_ms(d, z) * 1000u, us);
			off += size;
		}
		ck_assert_uint_ge((uint64_t)d->mass_erase_ms * 1000u, m->mass_erase_us);
	}
	/* F4 sector lookup: 0x0800C000 is sector 3 (16 KiB), 0x08010000 sector 4 (64 KiB) */
	const struct stm32_dev *f4 = stm32_dev_find(0x413);
	uint32_t u, s, z;
	ck_assert_int_eq(stm32_dev_unit(f4, 1024 * KIB, 0xC000, &u, &s, &z), 0);
	ck_assert_uint_eq(u, 3);
	ck_assert_uint_eq(z, 16 * KIB);
	ck_assert_int_eq(stm32_dev_unit(f4, 1024 * KIB, 0x10000, &u, &s, &z), 0);
	ck_assert_uint_eq(u, 4);
	ck_assert_uint_eq(z, 64 * KIB);
	ck_assert_int_eq(stm32_dev_unit(f4, 1024 * KIB, 0x20000, &u, &s, &z), 0);
	ck_assert_uint_eq(u, 5);
	ck_assert_uint_eq(s, 0x20000);
	ck_assert_uint_eq(stm32_dev_units(f4, 512 * KIB), 8);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Whole runs per model                                                                 */
/* ------------------------------------------------------------------------------------ */

START_TEST(test_f103_write_verify_go)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 20 * KIB + 37;
	uint8_t *img = make_image(len, 1, 0x20005000, 0x08000101);
	struct stm32_isp_opts o = {.verify = 1, .finish = STM32_ISP_FINISH_GO};
	/* bytes the bridge session left in the UART (200 at 115200: 19 ms of wire time) */
	uint8_t junk[200];
	memset(junk, 0x7F, sizeof(junk));
	ck_assert_uint_eq(h_uart_write(&r, junk, sizeof(junk)), sizeof(junk));
	ck_assert_uint_gt(h_tx_pending(&r), 0);
	begin(&r, &o, img, len);
	ck_assert_int_eq(r.reset_seen, 0); /* waits for them */
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &o), -EBUSY);
	run(&r, 60);
	/* the TX queue was purged, and what the UART still held went out, before the reset */
	ck_assert(r.reset_seen && r.purged_before_reset);
	ck_assert_uint_eq(r.pending_at_reset, 0);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s: %s", stm32_isp_error_name(st.error),
	              st.message);
	ck_assert_int_eq(st.error, STM32_ISP_E_NONE);
	ck_assert_uint_eq(st.pid, 0x410);
	ck_assert_uint_eq(st.bl_version, 0x22);
	ck_assert_uint_eq(st.erase_cmd, AN3155_ERASE);
	ck_assert_str_eq(st.dev->family, "F1");
	ck_assert_uint_eq(st.flash_size, 128 * KIB);
	ck_assert_uint_eq(st.address, FLASH);
	ck_assert_uint_eq(st.bytes_received, len);
	ck_assert_uint_eq(st.bytes_written, len);
	ck_assert_uint_eq(st.bytes_verified, len);
	ck_assert_uint_eq(st.bytes_erased, 21 * KIB);
	ck_assert_uint_eq(st.total, len);
	ck_assert_ptr_nonnull(strstr(st.message, "verified"));
	expect_flash(&r, FLASH, img, len);
	ck_assert(flash_all(&r, FLASH + len, FLASH + 128 * KIB, 0xFF));
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.ext_erase_cmds, 0); /* ERASE only, never both */
	ck_assert_uint_ge(ss.erase_cmds, 1);
	ck_assert_uint_eq(ss.units_erased, 21); /* only the pages the image covers */
	ck_assert_uint_eq(ss.mass_erases, 0);
	ck_assert_uint_eq(ss.writes, (len + 255) / 256);
	ck_assert_uint_eq(ss.gos, 1);
	ck_assert_uint_eq(ss.nacks, 0);
	/* GO started the application; BOOT0 back low */
	ck_assert_int_eq(stm32sim_state(r.sim), STM32SIM_APP);
	ck_assert_int_eq(r.boot0, 0);
	ck_assert_int_eq(r.nrst, 1);
	unsigned want = 1u << STM32_ISP_CONNECTING | 1u << STM32_ISP_IDENTIFYING |
	                1u << STM32_ISP_ERASING | 1u << STM32_ISP_WRITING |
	                1u << STM32_ISP_VERIFYING | 1u << STM32_ISP_STARTING | 1u << STM32_ISP_DONE;
	ck_assert_uint_eq(r.states_seen & want, want);
	ck_assert_int_eq(r.failed_seen, 0);
	ck_assert_int_eq(r.written_decreased, 0);
	ck_assert_uint_gt(r.progress_calls, len / 256);
	ck_assert_uint_gt(st.elapsed_ms, 0);
	/* after the end: nothing accepted, end() harmless, input dropped */
	ck_assert_uint_eq(stm32_isp_write(&r.isp, img, 10), 0);
	ck_assert_int_eq(stm32_isp_end(&r.isp), 0);
	ck_assert_int_eq(stm32_isp_next_ms(&r.isp), -1);
	ck_assert_int_eq(stm32_isp_state(&r.isp), STM32_ISP_DONE);
	free(img);
	rig_free(&r);
}
END_TEST

/* Wire-time sanity: write+verify of 16 KiB at 115200 8E1 needs at least the AN3155
 * traffic's wire time (the fake clock does not make the simulated UART faster). */
START_TEST(test_f103_wire_time)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 16 * KIB;
	uint8_t *img = make_image(len, 2, 0, 0);
	struct stm32_isp_opts o = {.total = (uint32_t)len, .verify = 1};
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_int_eq(st.state, STM32_ISP_DONE);
	/* per block: WRITE 2+5+258 bytes out, READ 2+5+2 out + 256 in: >= 530 bytes */
	double wire_s = (double)(len / 256) * 530 * 11 / 115200.0;
	ck_assert_msg(st.elapsed_ms >= wire_s * 1000, "%u ms < wire time %.0f ms", st.elapsed_ms,
	              wire_s * 1000);
	ck_assert_uint_eq(stm32sim_state(r.sim), STM32SIM_BOOTLOADER); /* FINISH_STAY */
	ck_assert_int_eq(r.boot0, 1);
	expect_flash(&r, FLASH, img, len);
	free(img);
	rig_free(&r);
}
END_TEST

START_TEST(test_f407_sectors)
{
	struct stm32sim_options so = {.model = "stm32f407"};
	struct rig r;
	rig_init(&r, &so);
	/* 0x0800C000 + 20 KiB: sector 3 (16 KiB) and sector 4 (64 KiB) */
	size_t len = 20 * KIB + 3;
	uint8_t *img = make_image(len, 3, 0, 0);
	struct stm32_isp_opts o = {.address = 0x0800C000, .total = (uint32_t)len, .verify = 1};
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert_uint_eq(st.pid, 0x413);
	ck_assert_uint_eq(st.erase_cmd, AN3155_EXTENDED_ERASE);
	ck_assert_uint_eq(st.flash_size, 1024 * KIB); /* F_SIZE not readable: table size */
	ck_assert_uint_eq(st.bytes_erased, 80 * KIB);
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.erase_cmds, 0);
	ck_assert_uint_eq(ss.ext_erase_cmds, 1); /* total known: one command for both */
	ck_assert_uint_eq(ss.units_erased, 2);
	ck_assert_uint_eq(ss.mass_erases, 0);
	expect_flash(&r, 0x0800C000, img, len);
	/* 0.4 s + 1.1 s of erase happened in simulated time */
	ck_assert_uint_ge(st.elapsed_ms, 1500);
	free(img);
	rig_free(&r);
}
END_TEST

/* Streaming (total unknown): each sector erased just before its first block. */
START_TEST(test_f407_streaming)
{
	struct stm32sim_options so = {.model = "stm32f407"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 40 * KIB;
	uint8_t *img = make_image(len, 4, 0x20020000, 0x08000201);
	struct stm32_isp_opts o = {.verify = 1, .finish = STM32_ISP_FINISH_RESET};
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.ext_erase_cmds, 3); /* sectors 0, 1, 2 one by one */
	ck_assert_uint_eq(ss.units_erased, 3);
	expect_flash(&r, FLASH, img, len);
	ck_assert(flash_all(&r, FLASH + len, FLASH + 48 * KIB, 0xFF));
	/* FINISH_RESET: BOOT0 low, NRST pulsed: the application runs (2 ms boot) */
	r.now_us += 5000;
	stm32sim_poll(r.sim, r.now_us);
	ck_assert_int_eq(r.boot0, 0);
	ck_assert_int_eq(stm32sim_state(r.sim), STM32SIM_APP);
	ck_assert_ptr_nonnull(strstr(st.message, "reset"));
	free(img);
	rig_free(&r);
}
END_TEST

/* F407 mass erase takes 8 s (simulated); the master waits the table's 32 s. */
START_TEST(test_f407_mass_erase)
{
	struct stm32sim_options so = {.model = "stm32f407"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 4 * KIB;
	uint8_t *img = make_image(len, 5, 0, 0);
	struct stm32_isp_opts o = {.verify = 1, .flags = STM32_ISP_MASS_ERASE};
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.mass_erases, 1);
	ck_assert_uint_eq(ss.ext_erase_cmds, 1);
	ck_assert_uint_eq(ss.erase_cmds, 0);
	ck_assert_uint_eq(ss.units_erased, 0);
	ck_assert_uint_eq(st.bytes_erased, 1024 * KIB);
	ck_assert_uint_ge(st.elapsed_ms, 8000);
	expect_flash(&r, FLASH, img, len);
	free(img);
	rig_free(&r);
}
END_TEST

START_TEST(test_g431_pages)
{
	struct stm32sim_options so = {.model = "stm32g431"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 10 * KIB + 5;
	uint8_t *img = make_image(len, 6, 0x20008000, 0x08000401);
	struct stm32_isp_opts o = {
	    .total = (uint32_t)len, .verify = 1, .finish = STM32_ISP_FINISH_GO};
	r.chunk = 7;  /* small writes: backpressure and ring wrap */
	r.no_end = 1; /* total known: the run finishes without stm32_isp_end() */
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert_uint_eq(st.pid, 0x468);
	ck_assert_uint_eq(st.erase_cmd, AN3155_EXTENDED_ERASE);
	ck_assert_uint_eq(st.flash_size, 128 * KIB);
	ck_assert_uint_eq(st.bytes_verified, len);
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.erase_cmds, 0);
	ck_assert_uint_eq(ss.ext_erase_cmds, 1);
	ck_assert_uint_eq(ss.units_erased, 6);
	expect_flash(&r, FLASH, img, len);
	ck_assert(flash_all(&r, FLASH + len, FLASH + 128 * KIB, 0xFF));
	ck_assert_int_eq(stm32sim_state(r.sim), STM32SIM_APP);
	free(img);
	rig_free(&r);
}
END_TEST

/* Not at the flash base, not page or block aligned: other pages keep their contents. */
START_TEST(test_not_at_base)
{
	struct stm32sim_options so = {.model = "stm32g431"};
	struct rig r;
	rig_init(&r, &so);
	size_t la = 3 * KIB, lb = 5 * KIB + 11;
	uint8_t *a = make_image(la, 7, 0, 0), *b = make_image(lb, 8, 0, 0);
	struct stm32_isp_opts o = {.verify = 1};
	begin(&r, &o, a, la);
	run(&r, 60);
	ck_assert_int_eq(stm32_isp_state(&r.isp), STM32_ISP_DONE);
	/* second image at 0x08004108 (a multiple of the G4's 8-byte programming unit): pages
	 * 8..10 of 2 KiB, first block 248 bytes */
	struct stm32_isp_opts o2 = {
	    .address = 0x08004108, .verify = 1, .entry = STM32_ISP_ENTRY_NONE};
	begin(&r, &o2, b, lb);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert_uint_eq(st.address, 0x08004108);
	ck_assert_uint_eq(st.bytes_erased, 6 * KIB);
	expect_flash(&r, FLASH, a, la); /* untouched */
	expect_flash(&r, 0x08004108, b, lb);
	ck_assert(flash_all(&r, 0x08004000, 0x08004108, 0xFF));
	ck_assert(flash_all(&r, FLASH + la, 0x08004000, 0xFF));
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.units_erased, 2 + 3);
	free(a);
	free(b);
	rig_free(&r);
}
END_TEST

/* Programming unit (stm32_dev_write_align): every WRITE starts on one and is a whole number
 * of them; the last block is padded with 0xFF to it (G431: 8 bytes, F103: 4); an address
 * that is not a multiple of it is refused before anything is erased. */
START_TEST(test_write_align)
{
	static const struct {
		const char *model;
		uint32_t w;
	} m[] = {{"stm32g431", 8}, {"stm32f103", 4}, {"stm32f407", 4}};
	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		struct stm32sim_options so = {.model = m[i].model};
		struct rig r;
		rig_init(&r, &so);
		/* from 2 units past the base to 3 bytes past a 256-byte boundary: the last
		 * block holds 3 bytes */
		size_t len = 2 * KIB + 256 + 3 - 2 * m[i].w;
		uint8_t *img = make_image(len, 40 + (uint32_t)i, 0, 0);
		struct stm32_isp_opts o = {.address = 0x08000000 + 2 * m[i].w, .verify = 1};
		begin(&r, &o, img, len);
		run(&r, 60);
		struct stm32_isp_status st = status(&r);
		ck_assert_msg(st.state == STM32_ISP_DONE, "%s: %s", m[i].model, st.message);
		ck_assert_uint_eq(stm32_dev_write_align(st.dev), m[i].w);
		ck_assert_uint_ge(r.nwf, 10);
		for (unsigned k = 0; k < r.nwf; k++) {
			ck_assert_msg(r.wf_addr[k] % m[i].w == 0 && r.wf_len[k] % m[i].w == 0,
			              "%s: WRITE of %u at 0x%08x", m[i].model, r.wf_len[k],
			              r.wf_addr[k]);
			ck_assert_uint_le(r.wf_len[k], 256);
		}
		/* the last block: 3 image bytes + 0xFF up to one unit */
		ck_assert_uint_eq(r.wf_len[r.nwf - 1], m[i].w);
		ck_assert_uint_eq(r.wf_addr[r.nwf - 1] + 3, o.address + len);
		expect_flash(&r, o.address, img, len);
		ck_assert(flash_all(&r, o.address + len, o.address + len + 64, 0xFF));
		ck_assert_uint_eq(st.bytes_written, len);
		free(img);

		/* half a unit off: refused after GET ID, nothing erased or written */
		if (m[i].w > 4) {
			struct stm32sim_stats s0, s1;
			stm32sim_get_stats(r.sim, &s0);
			uint8_t small[64] = {1, 2, 3};
			struct stm32_isp_opts bad = {.address = 0x08000000 + m[i].w / 2,
			                             .total = sizeof(small),
			                             .entry = STM32_ISP_ENTRY_NONE};
			begin(&r, &bad, small, sizeof(small));
			run(&r, 60);
			st = status(&r);
			ck_assert_int_eq(st.state, STM32_ISP_FAILED);
			ck_assert_int_eq(st.error, STM32_ISP_E_ARG);
			ck_assert_msg(strstr(st.message, "not a multiple of 8") != NULL, "%s",
			              st.message);
			stm32sim_get_stats(r.sim, &s1);
			ck_assert_uint_eq(s1.ext_erase_cmds + s1.erase_cmds + s1.writes,
			                  s0.ext_erase_cmds + s0.erase_cmds + s0.writes);
		}
		rig_free(&r);
	}
}
END_TEST

static char *flash_file(size_t size, uint8_t fill);

/* Segments with gaps (stm32_isp_seek, the Intel HEX path): units no segment touches keep
 * their old contents (neither erased nor written), gap bytes inside touched units read
 * 0xFF, a short gap inside touched units is filled, a far one starts a new segment. */
START_TEST(test_seek_segments)
{
	char *path = flash_file(128 * KIB, 0x5A); /* old contents */
	struct stm32sim_options so = {.model = "stm32f103", .flash_path = path};
	struct rig r;
	rig_init(&r, &so);
	uint8_t *d = make_image(4 * KIB, 50, 0, 0);
	/* F103: 1 KiB pages */
	const struct seg segs[] = {
	    {0x08000012, d, 100},          /* page 0, starts 2 bytes into a word */
	    {0x08000100, d + 100, 200},    /* 138-byte gap, same page: filled */
	    {0x08000300, d + 300, 200},    /* 312-byte gap, same page: new segment */
	    {0x080003F0, d + 500, 30},     /* 40-byte gap: filled; ends in page 1 */
	    {0x08002402, d + 530, 1500},   /* far: pages 2..8 skipped, 9 and 10 erased */
	    {0x08002A00, d + 2030, 16},    /* 34-byte gap: filled */
	    {0x08007FFE, d + 2046, 2},     /* last bytes of page 31 */
	    {0x08008000, d + 2048, 1000}}; /* the next byte: contiguous */
	r.segs = segs;
	r.nsegs = sizeof(segs) / sizeof(segs[0]);
	r.chunk = 64;
	struct stm32_isp_opts o = {.verify = 1};
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &o), 0);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert_uint_eq(st.address, 0x08000010); /* the first record, rounded down to 4 */
	for (size_t i = 0; i < r.nsegs; i++)
		expect_flash(&r, segs[i].addr, segs[i].data, segs[i].len);
	/* erased (0xFF) inside touched pages, old contents elsewhere */
	ck_assert(flash_all(&r, 0x08000000, 0x08000012, 0xFF));
	ck_assert(flash_all(&r, 0x08000012 + 100, 0x08000100, 0xFF));
	ck_assert(flash_all(&r, 0x080001C8, 0x08000300, 0xFF));
	ck_assert(flash_all(&r, 0x080003C8, 0x080003F0, 0xFF));
	ck_assert(flash_all(&r, 0x0800040E, 0x08000800, 0xFF));
	ck_assert(flash_all(&r, 0x08000800, 0x08002400, 0x5A)); /* pages 2..8 untouched */
	ck_assert(flash_all(&r, 0x08002400, 0x08002402, 0xFF));
	ck_assert(flash_all(&r, 0x08002402 + 1500, 0x08002A00, 0xFF));
	ck_assert(flash_all(&r, 0x08002A10, 0x08002C00, 0xFF));
	ck_assert(flash_all(&r, 0x08002C00, 0x08007C00, 0x5A)); /* pages 11..30 untouched */
	ck_assert(flash_all(&r, 0x08007C00, 0x08007FFE, 0xFF));
	ck_assert(flash_all(&r, 0x08008000 + 1000, 0x08008400, 0xFF));
	ck_assert(flash_all(&r, 0x08008400, 0x08020000, 0x5A));
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.units_erased, 2 + 2 + 1 + 1); /* 0, 1, 9, 10, 31, 32 */
	ck_assert_uint_eq(st.bytes_erased, 6 * KIB);
	ck_assert_uint_eq(st.bytes_received, 100 + 200 + 200 + 30 + 1500 + 16 + 2 + 1000);
	ck_assert_uint_eq(st.bytes_verified, st.bytes_written);
	for (unsigned k = 0; k < r.nwf; k++) /* never a WRITE into an untouched page */
		ck_assert_msg((r.wf_addr[k] < 0x08000800 || r.wf_addr[k] >= 0x08002400) &&
		                  (r.wf_addr[k] < 0x08002C00 || r.wf_addr[k] >= 0x08007C00),
		              "WRITE at 0x%08x", r.wf_addr[k]);
	rig_free(&r);
	unlink(path);
	free(path);

	/* G431 (8-byte unit): the first record at +4 starts the image at the base with 4 bytes
	 * of 0xFF; a far record at +0x1006 starts a segment at +0x1000 */
	struct stm32sim_options so2 = {.model = "stm32g431"};
	rig_init(&r, &so2);
	const struct seg g[] = {{0x08000004, d, 13}, {0x08001006, d + 13, 300}};
	r.segs = g;
	r.nsegs = 2;
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &o), 0);
	run(&r, 60);
	st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert_uint_eq(st.address, 0x08000000);
	expect_flash(&r, g[0].addr, g[0].data, g[0].len);
	expect_flash(&r, g[1].addr, g[1].data, g[1].len);
	ck_assert_uint_ge(r.nwf, 3);
	for (unsigned k = 0; k < r.nwf; k++)
		ck_assert_msg(r.wf_addr[k] % 8 == 0 && r.wf_len[k] % 8 == 0, "WRITE %u at 0x%08x",
		              r.wf_len[k], r.wf_addr[k]);
	ck_assert_uint_eq(r.wf_addr[0], 0x08000000);
	ck_assert_uint_eq(r.wf_len[0], 24); /* 4 + 13 bytes, padded */
	ck_assert_uint_eq(r.wf_addr[1], 0x08001000);
	rig_free(&r);
	free(d);
}
END_TEST

/* A record outside the flash (the reviewer's case: 16 bytes at the base, then 16 at
 * 0x90000000): the run fails naming the address, nothing beyond the image is erased or
 * written; bad calls are refused. */
START_TEST(test_seek_outside_flash)
{
	char *path = flash_file(128 * KIB, 0x5A);
	struct stm32sim_options so = {.model = "stm32f103", .flash_path = path};
	struct rig r;
	rig_init(&r, &so);
	uint8_t d[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
	/* the far record is sought before the device is known, and once it is */
	for (int known = 0; known <= 1; known++) {
		const struct seg segs[] = {{0x08000000, d, 16}, {0x90000000, d, 16}};
		r.segs = segs;
		r.nsegs = 2;
		r.seg_i = r.seg_off = 0;
		r.seg_sought = 0;
		r.ended = 0;
		struct stm32_isp_opts o = {.entry = known ? STM32_ISP_ENTRY_NONE : 0};
		ck_assert_int_eq(stm32_isp_begin(&r.isp, &o), 0);
		if (known) {
			/* write the first record, then wait until the device is known */
			ck_assert_int_eq(stm32_isp_seek(&r.isp, 0x08000000), 0);
			r.seg_sought = 1;
			r.segs = NULL;
			for (int i = 0; i < 100000 && !r.isp.flash_end; i++) {
				uint8_t b[64];
				size_t n;
				while ((n = stm32sim_read(r.sim, r.now_us, b, sizeof(b))) > 0)
					stm32_isp_input(&r.isp, b, n);
				stm32_isp_poll(&r.isp);
				r.now_us += 100;
			}
			ck_assert_uint_eq(stm32_isp_write(&r.isp, d, 16), 16);
			ck_assert_int_eq(stm32_isp_seek(&r.isp, 0x90000000), -ERANGE);
		} else {
			run(&r, 60);
		}
		struct stm32_isp_status st = status(&r);
		ck_assert_int_eq(st.state, STM32_ISP_FAILED);
		ck_assert_int_eq(st.error, STM32_ISP_E_RANGE);
		ck_assert_msg(strstr(st.message, "0x90000000") != NULL, "%s", st.message);
		struct stm32sim_stats ss;
		stm32sim_get_stats(r.sim, &ss);
		ck_assert_uint_eq(ss.erase_cmds + ss.ext_erase_cmds + ss.mass_erases + ss.writes,
		                  0);
		ck_assert(flash_all(&r, FLASH, FLASH + 128 * KIB, 0x5A));
	}
	/* bad calls */
	struct stm32_isp_opts o = {.entry = STM32_ISP_ENTRY_NONE};
	ck_assert_int_eq(stm32_isp_seek(&r.isp, 0x08000000), -EINVAL); /* no run */
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &o), 0);
	ck_assert_int_eq(stm32_isp_seek(&r.isp, 0x08000100), 0);
	ck_assert_int_eq(stm32_isp_seek(&r.isp, 0x08000080), -EINVAL); /* backwards */
	stm32_isp_abort(&r.isp);
	struct stm32_isp_opts ot = {.entry = STM32_ISP_ENTRY_NONE, .total = 100};
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &ot), 0);
	ck_assert_int_eq(stm32_isp_seek(&r.isp, 0x08000100), -EINVAL); /* total known */
	stm32_isp_abort(&r.isp);
	rig_free(&r);
	unlink(path);
	free(path);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Faults                                                                               */
/* ------------------------------------------------------------------------------------ */

/* A NACK in the middle: injected at different commands and stages; the run recovers. */
START_TEST(test_nack_injected)
{
	/* Command numbers of a streamed run (no total): 1 GET, 2 GVR, 3 GID, 4 READ (protection
	 * probe), 5 READ (flash size), 6 ERASE, then WRITE/READ per 256-byte block (odd/even)
	 * and an ERASE at each new page: the G431 (even cases) erases 2 KiB = 8 blocks at 6
	 * and 23, the F103 (odd cases) 1 KiB = 4 blocks at 6, 15, 24. */
	static const unsigned cases[][3] = {
	    /* nth, stage, extra READs (the read-back after a failed WRITE data frame) */
	    {1, 0, 0},  /* G431 GET command */
	    {3, 0, 0},  /* F103 GET ID command */
	    {4, 0, 0},  /* G431 protection probe: one NACK is not read protection */
	    {6, 1, 0},  /* F103 ERASE page list */
	    {7, 2, 1},  /* G431 first WRITE data: read back (not written), written again */
	    {9, 1, 0},  /* F103 WRITE address */
	    {8, 2, 0},  /* G431 READ count */
	    {15, 1, 0}, /* F103 second ERASE */
	    {23, 0, 0}, /* G431 second EXTENDED ERASE command */
	    {16, 2, 1}, /* F103 WRITE data after the second erase */
	    {20, 0, 0}, /* G431 READ command */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct stm32sim_options so = {.model = c % 2 ? "stm32f103" : "stm32g431"};
		struct rig r;
		rig_init(&r, &so);
		size_t len = 6 * KIB + 100;
		uint8_t *img = make_image(len, 9 + (uint32_t)c, 0, 0);
		struct stm32_isp_opts o = {.verify = 1};
		begin(&r, &o, img, len);
		stm32sim_inject_nack(r.sim, cases[c][0], cases[c][1]);
		run(&r, 60);
		struct stm32_isp_status st = status(&r);
		ck_assert_msg(st.state == STM32_ISP_DONE, "case %zu: %s", c, st.message);
		struct stm32sim_stats ss;
		stm32sim_get_stats(r.sim, &ss);
		ck_assert_msg(ss.injected == 1, "case %zu: NACK not delivered", c);
		/* the injected one, then the re-sync before the retry: 0xFF (taken as a
		 * command byte, no answer), 0xFF (no complement: NACK), silence */
		ck_assert_uint_eq(ss.nacks, 2);
		size_t blocks = (len + 255) / 256;
		ck_assert_uint_eq(ss.writes, blocks); /* the NACKed frame wrote nothing */
		/* verify + protection probe + flash size (+ the read-back) */
		ck_assert_msg(ss.reads == blocks + 2 + cases[c][2], "case %zu: %u reads", c,
		              ss.reads);
		expect_flash(&r, FLASH, img, len);
		ck_assert_uint_eq(st.bytes_written, len);
		ck_assert_uint_eq(st.bytes_verified, len);
		free(img);
		rig_free(&r);
	}
}
END_TEST

/* The ACK of a WRITE is lost (the data was programmed): after the timeout and a re-sync
 * the master reads the block back, finds it written and goes on without writing it
 * again (NOR flash cannot always take the same data twice). */
START_TEST(test_lost_ack)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 4 * KIB;
	uint8_t *img = make_image(len, 18, 0, 0);
	struct stm32_isp_opts o = {.verify = 1};
	r.lose_ack_at = 2 * KIB;
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert(r.ack_lost);
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.writes, len / 256);    /* not written twice */
	ck_assert_uint_eq(ss.reads, len / 256 + 2); /* its read-back replaced its verify */
	ck_assert_uint_eq(st.bytes_written, len);
	ck_assert_uint_eq(st.bytes_verified, len);
	expect_flash(&r, FLASH, img, len);
	free(img);
	rig_free(&r);
}
END_TEST

/* The link breaks in the middle: bytes stop flowing; the run fails with a message, and
 * never reports done. */
START_TEST(test_broken_link)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 24 * KIB;
	uint8_t *img = make_image(len, 10, 0, 0);
	struct stm32_isp_opts o = {.total = (uint32_t)len, .verify = 1};
	r.cut_at = 8 * KIB;
	begin(&r, &o, img, len);
	uint64_t t0 = r.now_us;
	run(&r, 120);
	struct stm32_isp_status st = status(&r);
	ck_assert_int_eq(st.state, STM32_ISP_FAILED);
	ck_assert_int_eq(st.error, STM32_ISP_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(st.message, "link broken"));
	ck_assert_uint_ge(st.bytes_written, 8 * KIB);
	ck_assert_uint_lt(st.bytes_written, len);
	ck_assert_int_eq(r.done_seen, 0);
	ck_assert_int_eq(r.failed_seen, 1);
	/* reported within a bounded time (timeouts + re-sync attempts) */
	ck_assert_uint_lt(r.now_us - t0, 30000000u);
	/* feeding more data or polling does not revive it */
	ck_assert_uint_eq(stm32_isp_room(&r.isp), 0);
	stm32_isp_poll(&r.isp);
	ck_assert_int_eq(stm32_isp_state(&r.isp), STM32_ISP_FAILED);
	/* link back: a new run (bootloader possibly mid-frame: entry by pins) succeeds */
	stm32sim_set_link(r.sim, r.now_us, 1);
	r.cut_at = 0;
	begin(&r, &o, img, len);
	run(&r, 60);
	st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	expect_flash(&r, FLASH, img, len);
	free(img);
	rig_free(&r);
}
END_TEST

/* The first ERASE's ACK comes late (a slow link holds the chip's answers 1.2 s, longer
 * than the 40 + 1000 ms wait): the master times out and re-syncs with 0xFF probes, then
 * gets the late ACK and the answers to its probes in one burst. The late ACK must not
 * count as synced (the master would be one byte out of step with the bootloader); the
 * re-sync ends on a NACK followed by silence, the retried erase and the run complete. */
START_TEST(test_late_ack)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	r.hold_us = 1200000;
	size_t len = 2 * KIB;
	uint8_t *img = make_image(len, 21, 0, 0);
	struct stm32_isp_opts o = {.verify = 1}; /* 2 retries */
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	expect_flash(&r, FLASH, img, len);
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.writes, len / 256);
	ck_assert(r.held_once && r.nheld >= 2); /* the late ACK and probe answers */
	/* the held ACK was the ERASE command byte's: its page list was never sent (the
	 * first probe was taken as the list's N), so pages 0 and 1 are erased once each */
	ck_assert_uint_eq(ss.erase_cmds, 2);
	ck_assert_uint_gt(ss.nacks, 1); /* probes were answered */
	free(img);
	rig_free(&r);
}
END_TEST

/* BUSY (0x76) bytes while a slow erase runs extend the wait; without them the same erase
 * times out. */
START_TEST(test_busy)
{
	for (int with_busy = 1; with_busy >= 0; with_busy--) {
		struct stm32sim_options so = {
		    .model = "stm32f103", .erase_slowdown = 40, .busy_ms = with_busy ? 200 : 0};
		struct rig r;
		rig_init(&r, &so);
		size_t len = 8 * KIB;
		uint8_t *img = make_image(len, 11, 0, 0);
		/* 8 pages x 20 ms x 40 = 6.4 s > the 8 x 40 ms + 1 s wait */
		struct stm32_isp_opts o = {.total = (uint32_t)len, .verify = 1, .retries = 1};
		begin(&r, &o, img, len);
		run(&r, 120);
		struct stm32_isp_status st = status(&r);
		if (with_busy) {
			ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
			expect_flash(&r, FLASH, img, len);
		} else {
			ck_assert_int_eq(st.state, STM32_ISP_FAILED);
			ck_assert_msg(strstr(st.message, "ERASE") || strstr(st.message, "link"),
			              "%s", st.message);
		}
		free(img);
		rig_free(&r);
	}
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Protection                                                                           */
/* ------------------------------------------------------------------------------------ */

static char *flash_file(size_t size, uint8_t fill)
{
	char *path = strdup("/tmp/stm32isp-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	uint8_t *buf = malloc(size);
	memset(buf, fill, size);
	ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
	return path;
}

START_TEST(test_read_protection)
{
	for (int allow = 0; allow <= 1; allow++) {
		char *path = flash_file(128 * KIB, 0x5A); /* the protected "secret" */
		struct stm32sim_options so = {.model = "stm32f103", .flash_path = path, .rdp = 1};
		struct rig r;
		rig_init(&r, &so);
		size_t len = 3 * KIB;
		uint8_t *img = make_image(len, 12, 0, 0);
		struct stm32_isp_opts o = {.total = (uint32_t)len,
		                           .verify = 1,
		                           .flags = allow ? STM32_ISP_UNPROTECT_READ : 0};
		begin(&r, &o, img, len);
		run(&r, 60);
		struct stm32_isp_status st = status(&r);
		struct stm32sim_stats ss;
		stm32sim_get_stats(r.sim, &ss);
		if (!allow) {
			ck_assert_int_eq(st.state, STM32_ISP_FAILED);
			ck_assert_int_eq(st.error, STM32_ISP_E_READ_PROTECTED);
			ck_assert_uint_eq(st.rdp, 1);
			ck_assert_ptr_nonnull(strstr(st.message, "read protection"));
			ck_assert_ptr_nonnull(strstr(st.message, "MASS-ERASE"));
			ck_assert(stm32sim_rdp_active(r.sim));
			ck_assert(flash_all(&r, FLASH, FLASH + 128 * KIB, 0x5A)); /* untouched */
			ck_assert_uint_eq(ss.unprotects, 0);
			ck_assert_uint_eq(ss.mass_erases, 0);
			ck_assert_int_eq(r.done_seen, 0);
		} else {
			ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
			ck_assert(!stm32sim_rdp_active(r.sim));
			ck_assert_uint_eq(ss.unprotects, 1);
			ck_assert_uint_eq(ss.mass_erases, 1);
			ck_assert_uint_eq(ss.units_erased, 0); /* already blank after unprotect */
			ck_assert(r.states_seen & 1u << STM32_ISP_UNPROTECTING);
			expect_flash(&r, FLASH, img, len);
			ck_assert(flash_all(&r, FLASH + len, FLASH + 128 * KIB, 0xFF));
		}
		free(img);
		rig_free(&r);
		unlink(path);
		free(path);
	}
}
END_TEST

/* F407: READOUT UNPROTECT mass-erases (8 s simulated) before its second ACK. */
START_TEST(test_read_protection_f407)
{
	struct stm32sim_options so = {.model = "stm32f407", .rdp = 1};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 2 * KIB;
	uint8_t *img = make_image(len, 13, 0, 0);
	struct stm32_isp_opts o = {.verify = 1, .flags = STM32_ISP_UNPROTECT_READ};
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
	ck_assert_uint_ge(st.elapsed_ms, 8000);
	expect_flash(&r, FLASH, img, len);
	free(img);
	rig_free(&r);
}
END_TEST

START_TEST(test_write_protection)
{
	for (int allow = 0; allow <= 1; allow++) {
		/* page 2 of the F103 protected; the image covers pages 0..3 */
		struct stm32sim_options so = {.model = "stm32f103", .wp_first = 2, .wp_count = 1};
		struct rig r;
		rig_init(&r, &so);
		size_t len = 4 * KIB;
		uint8_t *img = make_image(len, 14, 0, 0);
		struct stm32_isp_opts o = {.verify = 1,
		                           .flags = allow ? STM32_ISP_UNPROTECT_WRITE : 0};
		begin(&r, &o, img, len);
		run(&r, 60);
		struct stm32_isp_status st = status(&r);
		struct stm32sim_stats ss;
		stm32sim_get_stats(r.sim, &ss);
		if (!allow) {
			ck_assert_int_eq(st.state, STM32_ISP_FAILED);
			ck_assert_int_eq(st.error, STM32_ISP_E_WRITE_PROTECTED);
			ck_assert_ptr_nonnull(strstr(
			    st.message, "NACK (write protection or invalid address/alignment)"));
			ck_assert_ptr_nonnull(strstr(st.message, "ERASE"));
			ck_assert_uint_eq(ss.unprotects, 0);
			ck_assert_int_eq(r.done_seen, 0);
		} else {
			ck_assert_msg(st.state == STM32_ISP_DONE, "%s", st.message);
			ck_assert_uint_eq(ss.unprotects, 1);
			expect_flash(&r, FLASH, img, len);
		}
		free(img);
		rig_free(&r);
	}
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Range                                                                                */
/* ------------------------------------------------------------------------------------ */

START_TEST(test_too_large)
{
	/* total known: refused before anything is erased */
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	size_t len = 129 * KIB;
	uint8_t *img = make_image(len, 15, 0, 0);
	struct stm32_isp_opts o = {.total = (uint32_t)len, .verify = 1};
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_int_eq(st.state, STM32_ISP_FAILED);
	ck_assert_int_eq(st.error, STM32_ISP_E_RANGE);
	ck_assert_ptr_nonnull(strstr(st.message, "do not fit"));
	struct stm32sim_stats ss;
	stm32sim_get_stats(r.sim, &ss);
	ck_assert_uint_eq(ss.erase_cmds + ss.ext_erase_cmds + ss.writes, 0);
	rig_free(&r);

	/* F_SIZE says 64 KiB (a smaller part of the same PID): 70 KiB refused */
	struct stm32sim_options so2 = {.model = "stm32f103", .fsize_kib = 64};
	rig_init(&r, &so2);
	struct stm32_isp_opts o2 = {.total = 70 * KIB};
	begin(&r, &o2, img, 70 * KIB);
	run(&r, 60);
	st = status(&r);
	ck_assert_int_eq(st.error, STM32_ISP_E_RANGE);
	ck_assert_uint_eq(st.flash_size, 64 * KIB);
	rig_free(&r);

	/* streaming (total unknown): fails when the data passes the end */
	rig_init(&r, &so);
	struct stm32_isp_opts o3 = {.address = 0x08000000 + 126 * KIB};
	begin(&r, &o3, img, 3 * KIB);
	run(&r, 60);
	st = status(&r);
	ck_assert_int_eq(st.state, STM32_ISP_FAILED);
	ck_assert_int_eq(st.error, STM32_ISP_E_RANGE);
	ck_assert_uint_eq(st.bytes_written, 2 * KIB);
	ck_assert_ptr_nonnull(strstr(st.message, "larger than the flash"));
	rig_free(&r);

	/* not in flash at all */
	rig_init(&r, &so);
	struct stm32_isp_opts o4 = {.address = 0x20000000};
	begin(&r, &o4, img, 1 * KIB);
	run(&r, 60);
	ck_assert_int_eq(status(&r).error, STM32_ISP_E_RANGE);
	rig_free(&r);

	/* more data than announced */
	rig_init(&r, &so);
	struct stm32_isp_opts o5 = {.total = 100};
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &o5), 0);
	ck_assert_uint_eq(stm32_isp_room(&r.isp), 100);
	ck_assert_uint_eq(stm32_isp_write(&r.isp, img, 60), 60);
	ck_assert_uint_eq(stm32_isp_write(&r.isp, img, 60), 0);
	ck_assert_int_eq(status(&r).error, STM32_ISP_E_RANGE);
	rig_free(&r);

	/* fewer bytes than announced */
	rig_init(&r, &so);
	struct stm32_isp_opts o6 = {.total = 5000};
	begin(&r, &o6, img, 4000);
	run(&r, 60);
	ck_assert_int_eq(status(&r).error, STM32_ISP_E_SHORT);
	ck_assert_int_eq(r.done_seen, 0);
	rig_free(&r);
	free(img);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Entry, sync, API                                                                     */
/* ------------------------------------------------------------------------------------ */

static void raw_send(struct rig *r, const uint8_t *p, size_t n, size_t want_reply)
{
	ck_assert_uint_eq(stm32sim_write(r->sim, r->now_us, p, n), n);
	r->now_us += 20000;
	uint8_t b[16];
	ck_assert_uint_eq(stm32sim_read(r->sim, r->now_us, b, sizeof(b)), want_reply);
}

/* Entry NONE with a bootloader that is already synced (answers 0x7F 0x7F with NACK), and
 * one left in the middle of a WRITE frame (0xFF fillers complete it). */
START_TEST(test_already_synced)
{
	for (int midframe = 0; midframe <= 1; midframe++) {
		struct stm32sim_options so = {.model = "stm32f103"};
		struct rig r;
		rig_init(&r, &so);
		struct hal_uart_cfg cfg = {115200, 8, 3, 1, 1};
		h_uart_config(&r, &cfg);
		h_gpio(&r, HAL_PIN_BOOT0, 1);
		h_gpio(&r, HAL_PIN_NRST, 0);
		r.now_us += 1000;
		h_gpio(&r, HAL_PIN_NRST, 1);
		r.now_us += 10000;
		uint8_t sync = AN3155_SYNC;
		raw_send(&r, &sync, 1, 1);
		if (midframe) {
			uint8_t w[2] = {AN3155_WRITE_MEMORY, AN3155_WRITE_MEMORY ^ 0xFF};
			uint8_t a[5] = {0x20, 0x00, 0x10, 0x00, 0x30};
			raw_send(&r, w, 2, 1);
			raw_send(&r, a, 5, 1);
		}
		int pins = r.pin_changes;
		size_t len = 2 * KIB;
		uint8_t *img = make_image(len, 16, 0, 0);
		struct stm32_isp_opts o = {.verify = 1, .entry = STM32_ISP_ENTRY_NONE};
		begin(&r, &o, img, len);
		run(&r, 60);
		struct stm32_isp_status st = status(&r);
		ck_assert_msg(st.state == STM32_ISP_DONE, "midframe %d: %s", midframe, st.message);
		ck_assert_int_eq(r.pin_changes, pins); /* entry NONE: pins untouched */
		expect_flash(&r, FLASH, img, len);
		free(img);
		rig_free(&r);
	}
}
END_TEST

/* No bootloader (BOOT0 not wired: the chip runs its blank application). */
START_TEST(test_no_sync)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	uint8_t img[16] = {0};
	struct stm32_isp_opts o = {.entry = STM32_ISP_ENTRY_NONE};
	begin(&r, &o, img, sizeof(img));
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_int_eq(st.state, STM32_ISP_FAILED);
	ck_assert_int_eq(st.error, STM32_ISP_E_NO_SYNC);
	ck_assert_ptr_nonnull(strstr(st.message, "0x7F"));
	rig_free(&r);
}
END_TEST

START_TEST(test_abort_and_args)
{
	struct stm32sim_options so = {.model = "stm32f103"};
	struct rig r;
	rig_init(&r, &so);
	ck_assert_int_eq(stm32_isp_end(&r.isp), -EINVAL); /* never begun */
	ck_assert_int_eq(stm32_isp_state(&r.isp), STM32_ISP_IDLE);
	ck_assert_int_eq(stm32_isp_next_ms(&r.isp), -1);
	struct stm32_isp_opts bad = {.address = 0x08000002};
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &bad), -EINVAL);
	struct stm32_isp_opts bad2 = {.finish = (enum stm32_isp_finish)7};
	ck_assert_int_eq(stm32_isp_begin(&r.isp, &bad2), -EINVAL);
	ck_assert_int_eq(stm32_isp_begin(&r.isp, NULL), -EINVAL);

	size_t len = 16 * KIB;
	uint8_t *img = make_image(len, 17, 0, 0);
	struct stm32_isp_opts o = {.verify = 1};
	r.abort_at = 4 * KIB;
	begin(&r, &o, img, len);
	run(&r, 60);
	struct stm32_isp_status st = status(&r);
	ck_assert_int_eq(st.state, STM32_ISP_FAILED);
	ck_assert_int_eq(st.error, STM32_ISP_E_ABORTED);
	ck_assert_int_eq(r.done_seen, 0);
	stm32_isp_abort(&r.isp); /* no effect on an ended run */
	ck_assert_int_eq(status(&r).error, STM32_ISP_E_ABORTED);

	/* empty image */
	r.abort_at = 0;
	begin(&r, &o, img, 0);
	run(&r, 60);
	ck_assert_int_eq(status(&r).error, STM32_ISP_E_ARG);
	free(img);
	rig_free(&r);
}
END_TEST

/* Names are defined for every value. */
START_TEST(test_names)
{
	for (int s = STM32_ISP_IDLE; s <= STM32_ISP_FAILED; s++)
		ck_assert_str_ne(stm32_isp_state_name((enum stm32_isp_state)s), "unknown");
	for (int e = STM32_ISP_E_NONE; e <= STM32_ISP_E_ABORTED; e++)
		ck_assert_str_ne(stm32_isp_error_name((enum stm32_isp_error)e), "unknown");
	ck_assert_str_eq(stm32_isp_state_name(STM32_ISP_DONE), "done");
	ck_assert_str_eq(stm32_isp_error_name(STM32_ISP_E_READ_PROTECTED), "read_protected");
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Scripted bootloader: answers the simulator never gives                               */
/* ------------------------------------------------------------------------------------ */

struct script {
	uint32_t now;
	uint8_t out[64];
	size_t out_len;
	uint8_t last;
	int have_cmd;
	const uint8_t *get;
	size_t get_len;
	uint16_t pid;
	int busy_get; /* BUSY bytes before GET's ACK */
};

static struct script sc;

static int s_config(void *ctx, struct hal_uart_cfg *cfg)
{
	(void)ctx;
	(void)cfg;
	return 0;
}

static void s_put(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && sc.out_len < sizeof(sc.out); i++)
		sc.out[sc.out_len++] = p[i];
}

static size_t s_write(void *ctx, const uint8_t *p, size_t n)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		uint8_t b = p[i];
		if (b == AN3155_SYNC && !sc.have_cmd) {
			s_put((const uint8_t[]){AN3155_ACK}, 1);
			continue;
		}
		if (!sc.have_cmd) {
			sc.last = b;
			sc.have_cmd = 1;
			continue;
		}
		sc.have_cmd = 0;
		if ((uint8_t)(b ^ sc.last) != 0xFF) {
			s_put((const uint8_t[]){AN3155_NACK}, 1);
			continue;
		}
		switch (sc.last) {
		case AN3155_GET:
			for (int k = 0; k < sc.busy_get; k++)
				s_put((const uint8_t[]){AN3155_BUSY}, 1);
			s_put((const uint8_t[]){AN3155_ACK}, 1);
			s_put(sc.get, sc.get_len);
			s_put((const uint8_t[]){AN3155_ACK}, 1);
			break;
		case AN3155_GVR:
			s_put((const uint8_t[]){AN3155_ACK, 0x31, 0, 0, AN3155_ACK}, 5);
			break;
		case AN3155_GID:
			s_put((const uint8_t[]){AN3155_ACK, 1, (uint8_t)(sc.pid >> 8),
			                        (uint8_t)sc.pid, AN3155_ACK},
			      5);
			break;
		default: /* READ etc.: refused as under read protection */
			s_put((const uint8_t[]){AN3155_NACK}, 1);
			break;
		}
	}
	return n;
}

static void s_gpio(void *ctx, enum hal_pin pin, int level)
{
	(void)ctx;
	(void)pin;
	(void)level;
}

static uint32_t s_now(void *ctx)
{
	(void)ctx;
	return sc.now;
}

static struct stm32_isp_status script_run(const uint8_t *get, size_t get_len, uint16_t pid,
                                          int busy)
{
	memset(&sc, 0, sizeof(sc));
	sc.get = get;
	sc.get_len = get_len;
	sc.pid = pid;
	sc.busy_get = busy;
	struct hal_ops hal = {
	    .uart_config = s_config, .uart_write = s_write, .gpio_set = s_gpio, .now_ms = s_now};
	struct stm32_isp isp;
	stm32_isp_init(&isp, &hal, NULL);
	struct stm32_isp_opts o = {.entry = STM32_ISP_ENTRY_NONE};
	ck_assert_int_eq(stm32_isp_begin(&isp, &o), 0);
	for (int i = 0; i < 100000 && stm32_isp_busy(&isp); i++) {
		stm32_isp_poll(&isp);
		if (sc.out_len) {
			/* deliver one byte per step; BUSY bytes 400 ms apart */
			uint8_t b = sc.out[0];
			stm32_isp_input(&isp, sc.out, 1);
			memmove(sc.out, sc.out + 1, --sc.out_len);
			sc.now += b == AN3155_BUSY ? 400 : 1;
		} else {
			sc.now += 5;
		}
	}
	struct stm32_isp_status st;
	stm32_isp_status(&isp, &st);
	static char msg[STM32_ISP_MSG]; /* st.message points into isp, which goes away */
	snprintf(msg, sizeof(msg), "%s", st.message);
	st.message = msg;
	return st;
}

START_TEST(test_scripted_answers)
{
	/* GET lists both ERASE and EXTENDED ERASE: EXTENDED ERASE is chosen, never both */
	static const uint8_t both[] = {12,
	                               0x31, /* version */
	                               AN3155_GET,
	                               AN3155_GVR,
	                               AN3155_GID,
	                               AN3155_READ_MEMORY,
	                               AN3155_GO,
	                               AN3155_WRITE_MEMORY,
	                               AN3155_ERASE,
	                               AN3155_EXTENDED_ERASE,
	                               AN3155_WRITE_PROTECT,
	                               AN3155_WRITE_UNPROTECT,
	                               AN3155_READOUT_PROTECT,
	                               AN3155_READOUT_UNPROTECT};
	struct stm32_isp_status st = script_run(both, sizeof(both), 0x413, 0);
	ck_assert_uint_eq(st.erase_cmd, AN3155_EXTENDED_ERASE);
	ck_assert_int_eq(st.error, STM32_ISP_E_READ_PROTECTED); /* the script NACKs READ */
	ck_assert_uint_eq(st.pid, 0x413);
	ck_assert_uint_eq(st.bl_version, 0x31);

	/* unknown PID */
	st = script_run(both, sizeof(both), 0x999, 0);
	ck_assert_int_eq(st.error, STM32_ISP_E_UNKNOWN_DEVICE);
	ck_assert_msg(strstr(st.message, "0x999") != NULL, "%s", st.message);

	/* neither erase command */
	static const uint8_t none[] = {6,          0x22,
	                               AN3155_GET, AN3155_GVR,
	                               AN3155_GID, AN3155_READ_MEMORY,
	                               AN3155_GO,  AN3155_WRITE_MEMORY};
	st = script_run(none, sizeof(none), 0x410, 0);
	ck_assert_int_eq(st.error, STM32_ISP_E_NO_ERASE_CMD);

	/* no WRITE MEMORY */
	static const uint8_t nowrite[] = {
	    5, 0x22, AN3155_GET, AN3155_GVR, AN3155_GID, AN3155_READ_MEMORY, AN3155_ERASE};
	st = script_run(nowrite, sizeof(nowrite), 0x410, 0);
	ck_assert_int_eq(st.error, STM32_ISP_E_PROTOCOL);

	/* BUSY bytes 400 ms apart for 2.4 s before GET's ACK: the 1 s wait is extended */
	st = script_run(both, sizeof(both), 0x413, 6);
	ck_assert_int_eq(st.error, STM32_ISP_E_READ_PROTECTED);
	ck_assert_uint_eq(st.erase_cmd, AN3155_EXTENDED_ERASE);
}
END_TEST

static Suite *stm32_isp_suite(void)
{
	Suite *s = suite_create("stm32_isp");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_devices_table);
	tcase_add_test(tc, test_f103_write_verify_go);
	tcase_add_test(tc, test_f103_wire_time);
	tcase_add_test(tc, test_f407_sectors);
	tcase_add_test(tc, test_f407_streaming);
	tcase_add_test(tc, test_f407_mass_erase);
	tcase_add_test(tc, test_g431_pages);
	tcase_add_test(tc, test_not_at_base);
	tcase_add_test(tc, test_write_align);
	tcase_add_test(tc, test_seek_segments);
	tcase_add_test(tc, test_seek_outside_flash);
	tcase_add_test(tc, test_nack_injected);
	tcase_add_test(tc, test_lost_ack);
	tcase_add_test(tc, test_broken_link);
	tcase_add_test(tc, test_busy);
	tcase_add_test(tc, test_late_ack);
	tcase_add_test(tc, test_read_protection);
	tcase_add_test(tc, test_read_protection_f407);
	tcase_add_test(tc, test_write_protection);
	tcase_add_test(tc, test_too_large);
	tcase_add_test(tc, test_already_synced);
	tcase_add_test(tc, test_no_sync);
	tcase_add_test(tc, test_abort_and_args);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_scripted_answers);
	suite_add_tcase(s, tc);
	return s;
}

UNIT_SUITE(stm32_isp_suite)
