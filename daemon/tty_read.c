/* SPDX-License-Identifier: MIT */
/* tty_read: rx ring and VMIN/VTIME read rules (termios(3)). See tty_read.h. */
#include "tty_read.h"

#include <string.h>

void tty_ring_clear(struct tty_ring *r)
{
	r->head = 0;
	r->len = 0;
}

size_t tty_ring_space(const struct tty_ring *r)
{
	return TTY_RING_SIZE - r->len;
}

size_t tty_ring_push(struct tty_ring *r, const uint8_t *p, size_t n)
{
	size_t room = tty_ring_space(r);
	if (n > room)
		n = room;
	size_t tail = (r->head + r->len) % TTY_RING_SIZE;
	size_t first = TTY_RING_SIZE - tail;
	if (first > n)
		first = n;
	memcpy(r->buf + tail, p, first);
	memcpy(r->buf, p + first, n - first);
	r->len += n;
	return n;
}

size_t tty_ring_pop(struct tty_ring *r, uint8_t *out, size_t n)
{
	if (n > r->len)
		n = r->len;
	size_t first = TTY_RING_SIZE - r->head;
	if (first > n)
		first = n;
	if (out) {
		memcpy(out, r->buf + r->head, first);
		memcpy(out + first, r->buf, n - first);
	}
	r->head = (r->head + n) % TTY_RING_SIZE;
	r->len -= n;
	if (r->len == 0)
		r->head = 0;
	return n;
}

void tty_read_begin(struct tty_read_req *r, uint8_t vmin, uint8_t vtime, int icanon, int nonblock,
                    size_t count, uint64_t now_ms)
{
	r->vmin = vmin;
	r->vtime = vtime;
	r->icanon = icanon;
	r->nonblock = nonblock;
	r->count = count;
	r->start_ms = now_ms;
	r->last_rx_ms = now_ms;
}

void tty_read_on_rx(struct tty_read_req *r, uint64_t now_ms)
{
	if (now_ms > r->last_rx_ms)
		r->last_rx_ms = now_ms;
}

enum tty_read_verdict tty_read_decide(const struct tty_read_req *r, size_t avail, uint64_t now_ms,
                                      size_t *take, uint64_t *deadline_ms)
{
	uint8_t vmin = r->icanon ? 1 : r->vmin;
	uint8_t vtime = r->icanon ? 0 : r->vtime;
	size_t n = avail < r->count ? avail : r->count;

	*take = 0;
	*deadline_ms = TTY_READ_NO_DEADLINE;
	if (r->count == 0)
		return TTY_READ_NOW;
	if (vmin == 0 && vtime == 0) { /* polling read: n_tty returns before the O_NONBLOCK test */
		*take = n;
		return TTY_READ_NOW;
	}
	size_t target = vmin ? vmin : 1;
	if (target > r->count)
		target = r->count;
	if (n >= target) {
		*take = n;
		return TTY_READ_NOW;
	}
	if (r->nonblock) {
		if (n > 0) {
			*take = n;
			return TTY_READ_NOW;
		}
		return TTY_READ_EAGAIN;
	}
	uint64_t tmo = (uint64_t)vtime * 100u;
	if (vmin == 0) { /* overall timeout from the start of the read */
		if (now_ms - r->start_ms >= tmo)
			return TTY_READ_NOW; /* take 0: n < target = 1 */
		*deadline_ms = r->start_ms + tmo;
		return TTY_READ_WAIT;
	}
	if (vtime == 0 || n == 0)
		return TTY_READ_WAIT; /* blocking; the inter-byte timer starts with the first byte
		                       */
	if (now_ms - r->last_rx_ms >= tmo) {
		*take = n;
		return TTY_READ_NOW;
	}
	*deadline_ms = r->last_rx_ms + tmo;
	return TTY_READ_WAIT;
}

size_t tty_read_poll_threshold(uint8_t vmin, uint8_t vtime, int icanon)
{
	if (!icanon && vtime == 0 && vmin > 0)
		return vmin;
	return 1;
}
