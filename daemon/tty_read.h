/* SPDX-License-Identifier: MIT */
/*
 * tty_read: the receive side of the virtual serial port as pure logic, so unit tests can
 * drive it with fake time: a bounded byte ring and the read(2) decision rules of termios(3)
 * for noncanonical mode (VMIN/VTIME), as the kernel's n_tty_read() applies them. Times are
 * milliseconds on any monotonic clock.
 */
#ifndef ESPSTM_TTY_READ_H
#define ESPSTM_TTY_READ_H

#include <stddef.h>
#include <stdint.h>

#define TTY_RING_SIZE        65536u /* bytes buffered from the link before backpressure */
#define TTY_READ_NO_DEADLINE UINT64_MAX

/* Bounded FIFO of received bytes. */
struct tty_ring {
	uint8_t buf[TTY_RING_SIZE];
	size_t head; /* index of the oldest byte */
	size_t len;  /* bytes stored */
};

/* Empty the ring. */
void tty_ring_clear(struct tty_ring *r);
/* Free room in bytes. */
size_t tty_ring_space(const struct tty_ring *r);
/* Append up to n bytes; returns how many were stored (less than n when full). */
size_t tty_ring_push(struct tty_ring *r, const uint8_t *p, size_t n);
/* Remove up to n bytes into out (may be NULL to discard); returns the count removed. */
size_t tty_ring_pop(struct tty_ring *r, uint8_t *out, size_t n);

/* One read(2) request. */
struct tty_read_req {
	uint8_t vmin;        /* c_cc[VMIN] */
	uint8_t vtime;       /* c_cc[VTIME], tenths of a second */
	int icanon;          /* ICANON: treated as vmin 1, vtime 0 */
	int nonblock;        /* O_NONBLOCK in the file flags of this call */
	size_t count;        /* bytes asked for */
	uint64_t start_ms;   /* when the read arrived */
	uint64_t last_rx_ms; /* when bytes last arrived since start (start_ms if none) */
};

enum tty_read_verdict {
	TTY_READ_NOW,    /* answer now with *take bytes (may be 0) */
	TTY_READ_EAGAIN, /* answer -EAGAIN */
	TTY_READ_WAIT,   /* park; decide again on data or at *deadline_ms */
};

/* Initialise a request that arrived at now_ms. */
void tty_read_begin(struct tty_read_req *r, uint8_t vmin, uint8_t vtime, int icanon, int nonblock,
                    size_t count, uint64_t now_ms);
/* Record that bytes arrived at now_ms (restarts the MIN > 0, TIME > 0 inter-byte timer). */
void tty_read_on_rx(struct tty_read_req *r, uint64_t now_ms);
/*
 * Decide what to do with request r when avail bytes are buffered at now_ms. On
 * TTY_READ_NOW, *take = bytes to return (<= count, <= avail). On TTY_READ_WAIT,
 * *deadline_ms = when to decide again without new data (TTY_READ_NO_DEADLINE: only on data).
 * O_NONBLOCK is honoured as given in r->nonblock; a parked request should have nonblock 0.
 * The rules (termios(3) "Canonical and noncanonical mode"):
 *  - MIN = 0, TIME = 0: return what is there now, possibly 0 bytes (even with O_NONBLOCK).
 *  - MIN > 0, TIME = 0: wait until min(MIN, count) bytes are there.
 *  - MIN = 0, TIME > 0: wait up to TIME tenths of a second for the first byte, then return
 *    what is there; 0 bytes on timeout.
 *  - MIN > 0, TIME > 0: wait without limit for the first byte; then an inter-byte timer of
 *    TIME tenths restarts on every arrival; return at min(MIN, count) bytes or when the timer
 *    expires.
 *  - O_NONBLOCK (except MIN = 0, TIME = 0): return what is there, or -EAGAIN when empty.
 *  - ICANON is not emulated (no line editing, no echo): it is treated as MIN = 1, TIME = 0,
 *    i.e. a read returns as soon as any byte is there.
 * Data stays in the ring while a read waits; the caller takes it (tty_ring_pop) when the
 * verdict is TTY_READ_NOW.
 */
enum tty_read_verdict tty_read_decide(const struct tty_read_req *r, size_t avail, uint64_t now_ms,
                                      size_t *take, uint64_t *deadline_ms);
/* Bytes that must be buffered for poll(2) to report POLLIN: VMIN when TIME = 0 and
 * MIN > 0 in noncanonical mode (n_tty's input_available_p()), else 1. */
size_t tty_read_poll_threshold(uint8_t vmin, uint8_t vtime, int icanon);

#endif
