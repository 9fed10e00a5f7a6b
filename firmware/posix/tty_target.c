/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge's --target tty:DEVICE (tty_target.h): the HAL (hal.h) on a Linux tty. The
 * framing through termios2 (tty_termios2.c), break with TIOCSBRK/TIOCCBRK, purge with
 * tcflush, the transmit queue with TIOCOUTQ; input read without blocking when a uv_poll_t
 * on the fd says so (then pump() runs). The device vanishing (EIO, hang-up: a USB adapter
 * unplugged) ends the program with status 1.
 */
#include "tty_target.h"
#include "plog.h"
#include "tty_termios2.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

static struct tty_state {
	int fd;
	const char *device;
	uv_poll_t poll; /* named for libuv; poll(2) below is the function */
	int polling, poll_init, gone;
	int readable; /* the uv_poll_t said so; tty_read() has not read since */
	struct pin_out nrst, boot0;
} T = {.fd = -1};

/* the tty is unusable (unplugged): log once, stop the loop with exit status 1 */
static void tty_gone(struct app *a, const char *what, int e)
{
	if (T.gone)
		return;
	T.gone = 1;
	plog(HAL_LOG_ERROR, "tty: %s: %s: %s: exiting", T.device, what, strerror(e));
	if (T.polling) /* libuv stopped it already after an error: stopping twice is harmless */
		uv_poll_stop(&T.poll);
	T.polling = 0;
	a->exit_code = 1;
	a->stopping = 1;
	uv_stop(a->loop);
}

static int tty_uart_config(void *ctx, struct hal_uart_cfg *c)
{
	struct app *a = ctx;
	struct tty_line l = {.baud = c->baud,
	                     .data_bits = c->data_bits,
	                     .parity = c->parity,
	                     .stop = c->stop,
	                     .flow = c->flow};
	uint32_t actual = c->baud;
	int r = tty_termios2_apply(T.fd, &l, &actual);
	if (r < 0) {
		plog(HAL_LOG_INFO, "tty: %s: %u baud %u/%u/%u flow %u refused: %s", T.device,
		     (unsigned)c->baud, c->data_bits, c->parity, c->stop, c->flow, strerror(-r));
		return r == -EINVAL ? -EINVAL : r;
	}
	if (actual != c->baud)
		plog(HAL_LOG_INFO, "tty: %s: %u baud asked, the driver gives %u", T.device,
		     (unsigned)c->baud, (unsigned)actual);
	c->baud = actual;
	unsigned bits = 1u + c->data_bits + (c->parity != 1) + (c->stop == 1 ? 1u : 2u);
	a->byte_ns = (uint64_t)bits * 1000000000u / (actual ? actual : 1u);
	plog(HAL_LOG_DEBUG, "uart: %u %u/%u/%u flow %u", (unsigned)actual, c->data_bits, c->parity,
	     c->stop, c->flow);
	return 0;
}

static size_t tty_uart_write(void *ctx, const uint8_t *p, size_t n)
{
	struct app *a = ctx;
	if (T.gone)
		return n; /* exiting: nowhere to go */
	ssize_t k = write(T.fd, p, n);
	if (k < 0) {
		if (errno != EAGAIN && errno != EINTR)
			tty_gone(a, "write", errno);
		k = 0;
	}
	a->uart_short = (size_t)k < n;
	return (size_t)k;
}

static size_t tty_hal_tx_pending(void *ctx)
{
	(void)ctx;
	int q = 0;
	if (T.gone || ioctl(T.fd, TIOCOUTQ, &q) < 0 || q < 0)
		return 0;
	return (size_t)q;
}

static void tty_uart_purge(void *ctx, int rx, int tx)
{
	struct app *a = ctx;
	if (rx || tx)
		tcflush(T.fd, rx && tx ? TCIOFLUSH : rx ? TCIFLUSH : TCOFLUSH);
	if (rx)
		a->ulen = 0;
}

static void tty_uart_break(void *ctx, int on)
{
	(void)ctx;
	if (ioctl(T.fd, on ? TIOCSBRK : TIOCCBRK) < 0)
		plog(HAL_LOG_INFO, "tty: %s: break %s: %s", T.device, on ? "on" : "off",
		     strerror(errno));
}

static void tty_gpio_set(void *ctx, enum hal_pin pin, int level)
{
	struct app *a = ctx;
	struct pin_out *p = pin == HAL_PIN_NRST ? &T.nrst : &T.boot0;
	if (pin == HAL_PIN_NRST)
		a->nrst = level;
	else
		a->boot0 = level;
	int r = pins_posix_set(p, level);
	if (r < 0)
		plog(HAL_LOG_ERROR, "tty: %s %s: %s", pin == HAL_PIN_NRST ? "NRST" : "BOOT0",
		     p->desc, strerror(-r));
}

static const struct hal_ops tty_hal = {
    .uart_config = tty_uart_config,
    .uart_write = tty_uart_write,
    .uart_purge = tty_uart_purge,
    .uart_break = tty_uart_break,
    .gpio_set = tty_gpio_set,
    .now_ms = app_hal_now_ms,
    .net_send = app_hal_net_send,
    .log = app_hal_log,
    .uart_tx_pending = tty_hal_tx_pending,
};

static size_t tty_read(struct app *a, uint64_t now, uint8_t *p, size_t n)
{
	(void)now;
	if (T.gone || n == 0)
		return 0;
	int woke = T.readable;
	T.readable = 0;
	ssize_t k = read(T.fd, p, n);
	if (k < 0) {
		if (errno != EAGAIN && errno != EINTR)
			tty_gone(a, "read", errno);
		return 0;
	}
	if (k == 0 && woke) {
		/* readable but nothing to read: a hang-up (end of file) or nothing at all? */
		struct pollfd pf = {.fd = T.fd, .events = POLLIN};
		if (poll(&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLERR | POLLNVAL)))
			tty_gone(a, "read", EIO);
	}
	return (size_t)k;
}

static size_t tty_tx_pending(struct app *a, uint64_t t)
{
	(void)t;
	return tty_hal_tx_pending(a);
}

/* TIOCOUTQ counts what the driver still holds: estimate its end from the character time */
static uint64_t tty_tx_drained_at(struct app *a, uint64_t now, size_t txp, size_t left)
{
	return now + ((uint64_t)(txp - left) + 1u) * a->byte_ns / 1000u + 1u;
}

static uint64_t tty_next_event_us(struct app *a)
{
	(void)a;
	return UINT64_MAX; /* input wakes pump() through the uv_poll_t */
}

static void on_tty(uv_poll_t *h, int status, int events)
{
	struct app *a = h->data;
	if (status < 0) {
		/* libuv reports POLLERR as UV_EBADF: the fd is fine, the device is not */
		tty_gone(a, "error or hang-up on the device (unplugged?)", EIO);
		return;
	}
	T.readable = (events & UV_READABLE) != 0;
	app_pump(a);
}

/* stop watching the tty while the input buffer is full (the client is slow), resume */
static void tty_rx_room(struct app *a)
{
	int want = !T.gone && a->ulen < sizeof(a->ubuf);
	if (want && !T.polling)
		T.polling = uv_poll_start(&T.poll, UV_READABLE, on_tty) == 0;
	else if (!want && T.polling) {
		uv_poll_stop(&T.poll);
		T.polling = 0;
	}
}

static void tty_stop(struct app *a)
{
	(void)a;
	if (T.poll_init) {
		uv_poll_stop(&T.poll);
		uv_close((uv_handle_t *)&T.poll, NULL);
		T.poll_init = 0;
		T.polling = 0;
	}
	T.gone = 1; /* no more reads or a poll restart (tty_rx_room) */
}

static void tty_close(struct app *a)
{
	tty_stop(a);
	pins_posix_close(&T.nrst);
	pins_posix_close(&T.boot0);
	if (T.fd >= 0)
		close(T.fd); /* HUPCL is off: DTR/RTS keep their levels */
	T.fd = -1;
}

const struct target_ops tty_target_ops = {
    .hal = &tty_hal,
    .read = tty_read,
    .tx_pending = tty_tx_pending,
    .tx_drained_at = tty_tx_drained_at,
    .next_event_us = tty_next_event_us,
    .rx_room = tty_rx_room,
    .stop = tty_stop,
    .close = tty_close,
};

/* open, lock and check the device; T.fd. Returns 0 or 1 (message printed). */
static int tty_open_device(const char *dev)
{
	int fd = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "espstm-bridge: tty:%s: cannot open: %s\n", dev, strerror(errno));
		return 1;
	}
	if (!isatty(fd)) {
		fprintf(stderr, "espstm-bridge: tty:%s: not a tty\n", dev);
		close(fd);
		return 1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "espstm-bridge: tty:%s: in use by another program (%s)\n", dev,
		        strerror(errno));
		close(fd);
		return 1;
	}
	int r = tty_termios2_probe(fd);
	if (r < 0) {
		fprintf(stderr, "espstm-bridge: tty:%s: no termios2 (TCGETS2): %s\n", dev,
		        strerror(-r));
		close(fd);
		return 1;
	}
	ioctl(fd, TIOCEXCL); /* no second open (but root's) while the bridge has it */
	T.fd = fd;
	return 0;
}

/* NRST (released, high) and BOOT0 (low); Returns 0 or 1 (message printed). */
static int tty_open_pins(const struct tty_target_opts *o)
{
	char err[256];
	if (pins_posix_open(&T.nrst, &o->nrst, 1, T.fd, 1, err, sizeof(err)) < 0) {
		fprintf(stderr, "espstm-bridge: tty:%s: --nrst: %s\n", o->device, err);
		return 1;
	}
	if (err[0])
		plog(HAL_LOG_INFO, "tty: %s: --nrst: %s", o->device, err);
	if (pins_posix_open(&T.boot0, &o->boot0, 0, T.fd, 0, err, sizeof(err)) < 0) {
		fprintf(stderr, "espstm-bridge: tty:%s: --boot0: %s\n", o->device, err);
		pins_posix_close(&T.nrst);
		return 1;
	}
	if (err[0])
		plog(HAL_LOG_INFO, "tty: %s: --boot0: %s", o->device, err);
	plog(HAL_LOG_INFO, "tty: %s: NRST %s, BOOT0 %s", o->device, T.nrst.desc, T.boot0.desc);
	return 0;
}

int tty_target_open(struct app *a, const struct tty_target_opts *o)
{
	T.device = o->device;
	if (tty_open_device(o->device) != 0)
		return 1;
	if (tty_open_pins(o) != 0) {
		close(T.fd);
		T.fd = -1;
		return 1;
	}
	int r = uv_poll_init(a->loop, &T.poll, T.fd);
	if (r < 0) {
		fprintf(stderr, "espstm-bridge: tty:%s: %s\n", o->device, uv_strerror(r));
		tty_close(a);
		return 1;
	}
	T.poll_init = 1;
	T.poll.data = a;
	a->nrst = 1;
	a->boot0 = 0;
	a->byte_ns = 10u * 1000000000u / 115200u; /* until the UART is configured */
	return 0;
}
