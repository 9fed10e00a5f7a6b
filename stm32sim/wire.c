/* SPDX-License-Identifier: MIT */
/*
 * stm32sim wire: the UART line between the bridge and the chip, both ways. Every byte takes
 * its frame's wire time; a receiver whose framing differs from the sender's sees what a
 * real UART would (garbled or dropped bytes). Also the chip's transmitter and the API calls
 * that put bytes on the wire or take them off (stm32sim.h).
 */
#include "stm32sim_int.h"

#include <math.h>
#include <string.h>

static unsigned frame_bits(const struct stm32sim_line *l)
{
	return 1u + l->data_bits + (l->parity != 'N') + (l->stop_bits >= 2 ? 2u : 1u);
}

uint64_t sim_frame_ns(const struct stm32sim_line *l)
{
	return ((uint64_t)frame_bits(l) * 1000000000ull + l->baud - 1) / l->baud;
}

static int parity_bit(char parity, uint8_t v)
{
	int ones = __builtin_popcount(v);
	switch (parity) {
	case 'E':
		return ones & 1;
	case 'O':
		return !(ones & 1);
	case 'M':
		return 1;
	default: /* 'S' */
		return 0;
	}
}

static int line_same(const struct stm32sim_line *a, const struct stm32sim_line *b)
{
	return a->baud == b->baud && a->data_bits == b->data_bits && a->parity == b->parity &&
	       (a->stop_bits >= 2) == (b->stop_bits >= 2);
}

/*
 * What a receiver framed as rx sees when a sender framed as tx sends byte b once.
 * Both sides are modelled as real UARTs: the receiver starts on a falling edge and samples
 * every bit at 35 % and 65 % of its own bit time (the late sample wins if they differ,
 * which garbles the byte); a bad parity or a low stop bit drops the byte (the bootloader
 * and the app discard errored bytes). After a frame it waits for the next falling edge
 * inside the sender's frame, so a slow sender yields several garbage bytes. Tolerance is
 * about +-3.3 % for 11-bit frames. Writes up to DEC_MAX bytes to out; returns the count.
 */
static unsigned wire_decode(const struct stm32sim_line *tx, uint8_t b,
                            const struct stm32sim_line *rx, uint8_t *out)
{
	uint8_t bits[13];
	unsigned n = 0, nb = 0;

	if (line_same(tx, rx)) {
		out[0] = (uint8_t)(b & ((1u << rx->data_bits) - 1));
		return 1;
	}
	bits[nb++] = 0;
	for (unsigned i = 0; i < tx->data_bits; i++)
		bits[nb++] = (b >> i) & 1;
	if (tx->parity != 'N')
		bits[nb++] =
		    (uint8_t)parity_bit(tx->parity, (uint8_t)(b & ((1u << tx->data_bits) - 1)));
	bits[nb++] = 1;
	if (tx->stop_bits >= 2)
		bits[nb++] = 1;

	const double ts = 1.0 / tx->baud, tr = 1.0 / rx->baud;
	const unsigned nr = 1u + rx->data_bits + (rx->parity != 'N') + 1u;
	double edge = 0.0;
	for (int guard = 0; guard < DEC_MAX && n < DEC_MAX; guard++) {
		unsigned v = 0;
		int ok = 1, false_start = 0;
		for (unsigned k = 0; k < nr && ok; k++) {
			double t = edge + (k + 0.65) * tr;
			double j = floor(t / ts);
			int bit = (j >= 0 && j < nb) ? bits[(unsigned)j] : 1;
			if (k == 0) {
				if (bit != 0) {
					false_start = 1;
					ok = 0;
				}
			} else if (k <= rx->data_bits) {
				v |= (unsigned)bit << (k - 1);
			} else if (k == rx->data_bits + 1u && rx->parity != 'N') {
				if (bit != parity_bit(rx->parity, (uint8_t)v))
					ok = 0;
			} else if (!bit) {
				ok = 0; /* framing error */
			}
		}
		if (ok)
			out[n++] = (uint8_t)v;
		double cursor = edge + (false_start ? 0.5 : nr - 0.5) * tr;
		/* next falling edge strictly after cursor inside the sender's frame */
		unsigned j = (unsigned)floor(cursor / ts) + 1u;
		while (j < nb && !(bits[j - 1] == 1 && bits[j] == 0))
			j++;
		if (j >= nb)
			break;
		edge = j * ts;
	}
	return n;
}

unsigned sim_rx_decode(const struct stm32sim *s, const struct wbyte *w,
                       const struct stm32sim_line *rx, uint8_t *out)
{
	if (s->opt.ideal_wire) {
		out[0] = w->b;
		return 1;
	}
	return wire_decode(&w->line, w->b, rx, out);
}

/* ---- the chip's transmitter ---- */

void sim_tx(struct stm32sim *s, uint64_t t, uint8_t b)
{
	if (s->state == STM32SIM_RESET || s->out_len >= OUT_CAP)
		return; /* in reset nothing drives the line; full: the app's buffer overflowed */
	uint64_t start = t > s->out_busy ? t : s->out_busy;
	uint64_t end = s->opt.instant ? start : start + sim_frame_ns(&s->chip);
	struct wbyte *w = &s->out[(s->out_head + s->out_len++) % OUT_CAP];
	w->t_start = start;
	w->t_end = end;
	w->line = s->chip;
	w->b = b;
	s->out_busy = end;
	s->out_last_start = start;
}

void sim_tx_buf(struct stm32sim *s, uint64_t t, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sim_tx(s, t, p[i]);
}

/* ---- API: bytes onto and off the wire ---- */

void stm32sim_set_line(struct stm32sim *s, uint64_t now_us, const struct stm32sim_line *line)
{
	sim_advance(s, now_us * 1000ull);
	struct stm32sim_line l = *line;
	if (!l.baud)
		l.baud = 1;
	if (l.data_bits < 5 || l.data_bits > 8)
		l.data_bits = 8;
	if (!l.parity || !strchr("NEOMS", l.parity))
		l.parity = 'N';
	l.stop_bits = l.stop_bits >= 2 ? 2 : 1;
	s->bridge = l;
	/* Bytes the bridge's UART has accepted but not started to send go out with the new
	 * framing, as on a real UART (the byte being shifted out keeps the old one). */
	uint64_t now = now_us * 1000ull, prev_end = now;
	for (unsigned i = 0; i < s->in_len; i++) {
		struct wbyte *w = &s->in[(s->in_head + i) % IN_CAP];
		if (w->t_start < now) {
			prev_end = w->t_end;
			continue;
		}
		uint64_t start = w->t_start > prev_end ? w->t_start : prev_end;
		w->line = l;
		w->t_start = start;
		w->t_end = s->opt.instant ? start : start + sim_frame_ns(&l);
		prev_end = w->t_end;
	}
	if (s->in_len)
		s->in_busy = s->in[(s->in_head + s->in_len - 1) % IN_CAP].t_end;
}

size_t stm32sim_tx_pending(const struct stm32sim *s, uint64_t now_us)
{
	uint64_t now = now_us * 1000ull;
	size_t n = 0;
	for (unsigned i = 0; i < s->in_len; i++)
		if (s->in[(s->in_head + i) % IN_CAP].t_end > now)
			n++;
	return n;
}

size_t stm32sim_write(struct stm32sim *s, uint64_t now_us, const uint8_t *p, size_t n)
{
	uint64_t now = now_us * 1000ull;
	size_t i;
	sim_advance(s, now);
	if (s->link_down)
		return n; /* accepted and lost on the broken wire */
	for (i = 0; i < n; i++) {
		if (s->in_len >= IN_CAP) {
			sim_advance(s, now);
			if (s->in_len >= IN_CAP)
				break;
		}
		uint64_t start = now > s->in_busy ? now : s->in_busy;
		uint64_t end = s->opt.instant ? start : start + sim_frame_ns(&s->bridge);
		struct wbyte *w = &s->in[(s->in_head + s->in_len++) % IN_CAP];
		w->t_start = start;
		w->t_end = end;
		w->line = s->bridge;
		w->b = p[i];
		s->in_busy = end;
	}
	sim_advance(s, now);
	return i;
}

size_t stm32sim_read(struct stm32sim *s, uint64_t now_us, uint8_t *out, size_t cap)
{
	uint64_t now = now_us * 1000ull;
	size_t n = 0;
	sim_advance(s, now);
	while (n < cap) {
		if (s->dec_len) {
			out[n++] = s->dec[s->dec_head];
			s->dec_head = (s->dec_head + 1) % DEC_MAX;
			s->dec_len--;
			continue;
		}
		if (!s->out_len || s->out[s->out_head].t_end > now)
			break;
		struct wbyte w = s->out[s->out_head];
		s->out_head = (s->out_head + 1) % OUT_CAP;
		s->out_len--;
		if (s->link_down)
			continue; /* lost on the broken wire */
		uint8_t dec[DEC_MAX];
		unsigned k = sim_rx_decode(s, &w, &s->bridge, dec);
		for (unsigned i = 0; i < k; i++) {
			s->dec[(s->dec_head + s->dec_len) % DEC_MAX] = dec[i];
			s->dec_len++;
		}
	}
	return n;
}

void stm32sim_set_link(struct stm32sim *s, uint64_t now_us, int up)
{
	sim_advance(s, now_us * 1000ull);
	s->link_down = !up;
	if (!up) {
		/* bytes already on the wire towards the chip are lost too */
		s->in_len = 0;
		s->in_busy = now_us * 1000ull;
		s->dec_len = 0;
	}
}
