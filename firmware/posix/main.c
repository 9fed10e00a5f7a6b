/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge: the portable firmware core (firmware/core) on Linux with libuv.
 * One RFC 2217 server port for one target: the simulated STM32 (stm32sim/). See README.md.
 */
#include "plog.h"
#include "bridge.h"
#include "stm32sim.h"
#include "legacy_posix.h"
#include "http_posix.h"
#include "allow_posix.h"
#include "settings.h"
#include "stm32_isp.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
/* pump()'s wake-ups from a timerfd (Linux); -DESPSTM_NO_TIMERFD builds the libuv-timer
 * fallback alone (whole ms), as on other systems */
#if defined(__linux__) && !defined(ESPSTM_NO_TIMERFD)
#define USE_TIMERFD 1
#else
#define USE_TIMERFD 0
#endif
#if USE_TIMERFD
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#endif

#define NET_INFLIGHT_MAX (64 * 1024) /* bytes handed to libuv and not yet written */
/* A run of bytes from the chip (an answer of many bytes) is collected for this long before
 * pump() runs for it, instead of once per byte; a byte after a pause wakes pump() at once. */
#define RX_BATCH_US 500u

struct app {
	uv_loop_t *loop;
	uv_tcp_t server;
	uv_tcp_t *client;
	/* the next wake-up of pump(): a timerfd (Linux, CLOCK_MONOTONIC, ns resolution) watched
	 * by tfd_poll, else (timerfd unavailable) the libuv timer, which counts whole ms */
	uv_timer_t timer;
	int tfd; /* -1: timer is used */
	uv_poll_t tfd_poll;
	uint64_t byte_ns; /* wire time of one character on the bridge's UART (line settings) */
	int uart_short;   /* the last UART write was not taken whole: a writer waits for room */
	size_t rx_got;    /* bytes read from the UART in this pump() */
	uv_signal_t sigint, sigterm;
	const char *target;
	struct stm32sim *sim;
	struct bridge br;
	struct bridge_settings set;
	int nrst, boot0;
	/* network -> bridge leftovers (not yet consumed) */
	uint8_t rbuf[4096];
	size_t rlen;
	int reading;
	/* UART -> bridge leftovers */
	uint8_t ubuf[1024];
	size_t ulen;
	size_t inflight;
	int exit_code;
	int stopping;
	/* flashing over HTTP (http_api.h): the AN3155 master on the same HAL; while claimed
	 * the bridge session is suspended and the UART's bytes go to the ISP */
	struct stm32_isp isp;
	int isp_claimed;
	/* client allow-list: --allow LIST (allow_cli, wins) or the settings' "allow" */
	const char *allow_cli;
	char allow_set[SETTINGS_ALLOW_MAX]; /* the settings' list last seen */
	int allow_seen;
};

static struct app A;

static uint64_t now_us(void)
{
	return uv_hrtime() / 1000;
}

/* ---- HAL on the simulated STM32 ---- */

static int hal_uart_config(void *ctx, struct hal_uart_cfg *c)
{
	struct app *a = ctx;
	static const char par[] = "?NOEMS";
	if (c->baud < 50 || c->baud > 4000000 || c->data_bits < 5 || c->data_bits > 8 ||
	    c->parity < 1 || c->parity > 5 || c->stop < 1 || c->stop > 3)
		return -EINVAL;
	if (c->flow != RFC2217_CONTROL_FLOW_NONE)
		return -ENOTSUP; /* the simulated wire has no RTS/CTS or XON/XOFF */
	struct stm32sim_line l = {.baud = c->baud,
	                          .data_bits = c->data_bits,
	                          .parity = par[c->parity],
	                          .stop_bits = (uint8_t)(c->stop == RFC2217_STOPSIZE_1 ? 1 : 2)};
	stm32sim_set_line(a->sim, now_us(), &l);
	unsigned bits = 1u + c->data_bits + (c->parity != RFC2217_PARITY_NONE) +
	                (c->stop == RFC2217_STOPSIZE_1 ? 1u : 2u);
	a->byte_ns = (uint64_t)bits * 1000000000u / c->baud;
	plog(HAL_LOG_DEBUG, "uart: %u %u%c%s", (unsigned)c->baud, c->data_bits, par[c->parity],
	     c->stop == 1   ? "1"
	     : c->stop == 2 ? "2"
	                    : "1.5");
	return 0;
}

static size_t hal_uart_write(void *ctx, const uint8_t *p, size_t n)
{
	struct app *a = ctx;
	size_t k = stm32sim_write(a->sim, now_us(), p, n);
	a->uart_short = k < n;
	return k;
}

static size_t hal_uart_tx_pending(void *ctx)
{
	struct app *a = ctx;
	return stm32sim_tx_pending(a->sim, now_us());
}

static void hal_uart_purge(void *ctx, int rx, int tx)
{
	struct app *a = ctx;
	(void)tx; /* bytes already on the simulated wire cannot be taken back */
	if (rx) {
		uint8_t junk[256];
		while (stm32sim_read(a->sim, now_us(), junk, sizeof(junk)) > 0)
			;
		a->ulen = 0;
	}
}

static void hal_uart_break(void *ctx, int on)
{
	(void)ctx;
	plog(HAL_LOG_DEBUG, "uart: break %s (not simulated)", on ? "on" : "off");
}

static void hal_gpio_set(void *ctx, enum hal_pin pin, int level)
{
	struct app *a = ctx;
	if (pin == HAL_PIN_NRST)
		a->nrst = level;
	else
		a->boot0 = level;
	stm32sim_set_pins(a->sim, now_us(), a->nrst, a->boot0);
}

static uint32_t hal_now_ms(void *ctx)
{
	(void)ctx;
	return (uint32_t)(uv_hrtime() / 1000000u);
}

static void pump(struct app *a);

static void on_write(uv_write_t *req, int status)
{
	struct app *a = req->data;
	(void)status; /* errors show up as a read error / EOF and drop the client */
	a->inflight -= *(size_t *)(req + 1);
	free(req);
	pump(a); /* the socket took bytes: the bridge may send more */
}

static size_t hal_net_send(void *ctx, const uint8_t *p, size_t n)
{
	struct app *a = ctx;
	if (!a->client)
		return n;
	if (a->inflight >= NET_INFLIGHT_MAX)
		return 0;
	if (n > NET_INFLIGHT_MAX - a->inflight)
		n = NET_INFLIGHT_MAX - a->inflight;
	uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
	int r = uv_try_write((uv_stream_t *)a->client, &b, 1);
	if (r == (int)n)
		return n;
	size_t done = r > 0 ? (size_t)r : 0;
	size_t rest = n - done;
	uv_write_t *req = malloc(sizeof(*req) + sizeof(size_t) + rest);
	if (!req)
		return done;
	*(size_t *)(req + 1) = rest;
	uint8_t *copy = (uint8_t *)(req + 1) + sizeof(size_t);
	memcpy(copy, p + done, rest);
	req->data = a;
	b = uv_buf_init((char *)copy, (unsigned)rest);
	if (uv_write(req, (uv_stream_t *)a->client, &b, 1, on_write) < 0) {
		free(req);
		return done;
	}
	a->inflight += rest;
	return n;
}

static void hal_log(void *ctx, enum hal_log_level level, const char *line)
{
	(void)ctx;
	plog((int)level, "%s", line);
}

static const struct hal_ops sim_hal = {
    .uart_config = hal_uart_config,
    .uart_write = hal_uart_write,
    .uart_purge = hal_uart_purge,
    .uart_break = hal_uart_break,
    .gpio_set = hal_gpio_set,
    .now_ms = hal_now_ms,
    .net_send = hal_net_send,
    .log = hal_log,
    .uart_tx_pending = hal_uart_tx_pending,
};

/* ---- event pump ---- */

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_timer(uv_timer_t *t);
static void arm_wakeup(struct app *a, uint64_t wake, uint64_t now);
static uint64_t tx_drained_at(const struct app *a, uint64_t now, size_t txp, size_t left);

static void start_reading(struct app *a)
{
	if (a->client && !a->reading && a->rlen == 0) {
		if (uv_read_start((uv_stream_t *)a->client, on_alloc, on_read) == 0)
			a->reading = 1;
	}
}

static void stop_reading(struct app *a)
{
	if (a->client && a->reading) {
		uv_read_stop((uv_stream_t *)a->client);
		a->reading = 0;
	}
}

/* Move bytes between the socket buffers, the bridge and the simulated chip; re-arm the
 * timer for the next thing that will happen. */
static void pump(struct app *a)
{
	if (a->stopping)
		return;
	uint64_t t = now_us();
	stm32sim_poll(a->sim, t);
	if (a->isp_claimed)
		stm32_isp_poll(&a->isp);
	if (a->rlen) {
		size_t k = bridge_from_net(&a->br, a->rbuf, a->rlen);
		memmove(a->rbuf, a->rbuf + k, a->rlen - k);
		a->rlen -= k;
	}
	bridge_poll(&a->br);
	if (a->rlen == 0)
		start_reading(a);
	a->rx_got = 0;
	for (int guard = 0; guard < 64; guard++) {
		if (a->ulen < sizeof(a->ubuf)) {
			size_t got =
			    stm32sim_read(a->sim, t, a->ubuf + a->ulen, sizeof(a->ubuf) - a->ulen);
			a->ulen += got;
			a->rx_got += got;
		}
		if (a->ulen == 0)
			break;
		if (a->isp_claimed) {
			/* the flasher owns the UART: its answers, never the client's */
			if (stm32_isp_busy(&a->isp))
				stm32_isp_input(&a->isp, a->ubuf, a->ulen);
			a->ulen = 0;
			continue;
		}
		size_t k = bridge_from_uart(&a->br, a->ubuf, a->ulen);
		memmove(a->ubuf, a->ubuf + k, a->ulen - k);
		a->ulen -= k;
		if (k == 0)
			break;
	}
	if (a->isp_claimed) {
		stm32_isp_poll(&a->isp);
		http_posix_flash_pump(); /* upload room, result; may release the claim */
	}
	/*
	 * Next wake-up, to the microsecond (arm_wakeup): what matters is the moment an answer
	 * from the chip arrives after the bridge's transmission (AN3155: an ACK after every
	 * frame, six per 256-byte block with verify), so pump() runs exactly then, not at the
	 * next whole millisecond. The simulator's next event (stm32sim_next_event_us) is
	 * also every single character leaving or arriving on the wire, ~10,000 a second at
	 * 115200 baud: waking for each would cost CPU for nothing, so
	 *  - while the bridge's UART transmits, wake when it has finished (a writer waiting
	 *    for room: when half of the queue has gone), read off stm32sim_tx_pending();
	 *    with the ISP owning the UART (half duplex: the chip answers a frame after it)
	 *    that is the next wake-up; else at most 1 ms later, for the chip's output;
	 *  - a character arriving right after one just read (a run of output) waits for
	 *    RX_BATCH_US of them;
	 * and the deadlines of the core (bridge, ISP; hal now_ms() counts whole ms of the
	 * same clock) wake it on the first millisecond tick at which they have passed.
	 * At most 1 s ahead.
	 */
	uint64_t t2 = now_us();
	uint64_t tick = t2 / 1000u * 1000u; /* start of the current hal_now_ms() ms */
	uint64_t wake = t2 + 1000000u;
	uint64_t next = stm32sim_next_event_us(a->sim);
	size_t txp = stm32sim_tx_pending(a->sim, t2);
	if (txp) {
		uint64_t done = tx_drained_at(a, t2, txp, a->uart_short ? txp / 2 : 0);
		if (!a->isp_claimed && done > t2 + 1000u)
			done = t2 + 1000u;
		next = done;
	} else if (a->rx_got && next != UINT64_MAX && next <= t2 + 2 * a->byte_ns / 1000u + 1u &&
	           next < t2 + RX_BATCH_US) {
		next = t2 + RX_BATCH_US; /* the rest of a run of output */
	}
	if (next < wake)
		wake = next;
	int32_t bn = bridge_next_ms(&a->br);
	if (bn >= 0 && tick + (uint64_t)bn * 1000u < wake)
		wake = tick + (uint64_t)bn * 1000u;
	if ((bridge_tx_pending(&a->br) || a->rlen) && tick + 2000u < wake)
		wake = tick + 2000u;
	if (a->isp_claimed) {
		/* 0 or 1 also while the ISP has bytes the UART did not take yet or waits for it
		 * to drain: with the UART busy that is the moment computed above */
		int32_t in = stm32_isp_next_ms(&a->isp);
		if (in >= 0 && !(txp && in <= 1)) {
			uint64_t d = tick + (uint64_t)(in > 0 ? in : 1) * 1000u;
			if (d < wake)
				wake = d;
		}
	}
	arm_wakeup(a, wake, t2);
}

static void on_timer(uv_timer_t *t)
{
	pump(t->data);
}

/*
 * When (us) at most `left` of the txp characters on the bridge's UART at now are still
 * being sent: the simulator fixes each character's end on the wire when it takes it, and
 * stm32sim_tx_pending() counts those not ended by a given time, so search for it around
 * the estimate from the character time.
 */
static uint64_t tx_drained_at(const struct app *a, uint64_t now, size_t txp, size_t left)
{
	uint64_t lo = now; /* more than left pending at lo */
	uint64_t hi = now + ((uint64_t)(txp - left) + 1u) * a->byte_ns / 1000u + 2u;
	for (int i = 0; stm32sim_tx_pending(a->sim, hi) > left; i++) {
		if (i >= 40)
			return hi; /* cannot happen: every character has an end */
		lo = hi;
		hi = now + (hi - now) * 2u;
	}
	while (hi - lo > 1u) {
		uint64_t mid = lo + (hi - lo) / 2u;
		if (stm32sim_tx_pending(a->sim, mid) > left)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

#if USE_TIMERFD
static void on_timerfd(uv_poll_t *h, int status, int events)
{
	struct app *a = h->data;
	uint64_t expirations;
	(void)status;
	(void)events;
	/* non-blocking: EAGAIN when a re-arm since the expiry cleared it (nothing to do) */
	if (read(a->tfd, &expirations, sizeof(expirations)) < 0)
		return;
	pump(a);
}

/* Use a timerfd for pump()'s wake-ups (timerfd_create(2)). Returns 0, or -1 (then the libuv
 * timer is used). */
static int timerfd_setup(struct app *a)
{
	a->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (a->tfd < 0) {
		plog(HAL_LOG_INFO, "timerfd: %s: wake-ups in whole ms (libuv timer)",
		     strerror(errno));
		return -1;
	}
	int r = uv_poll_init(a->loop, &a->tfd_poll, a->tfd);
	if (r == 0) {
		a->tfd_poll.data = a;
		r = uv_poll_start(&a->tfd_poll, UV_READABLE, on_timerfd);
		if (r < 0)
			uv_close((uv_handle_t *)&a->tfd_poll, NULL);
	}
	if (r < 0) {
		plog(HAL_LOG_INFO, "timerfd: %s: wake-ups in whole ms (libuv timer)",
		     uv_strerror(r));
		close(a->tfd);
		a->tfd = -1;
		return -1;
	}
	return 0;
}
#endif

/*
 * Wake pump() at wake (us, the now_us() clock; now: now_us() a moment ago). timerfd: a
 * relative timer of the exact remaining time (timerfd_settime(2); CLOCK_MONOTONIC, which
 * uv_hrtime() reads too; a time already passed fires at once). libuv timer: whole ms,
 * rounded up (never early). Replaces the previous wake-up.
 */
static void arm_wakeup(struct app *a, uint64_t wake, uint64_t now)
{
	uint64_t left = wake > now ? wake - now : 0;
#if USE_TIMERFD
	if (a->tfd >= 0) {
		struct itimerspec its;
		memset(&its, 0, sizeof(its));
		if (left == 0)
			its.it_value.tv_nsec = 1; /* 0 would disarm it: fire now */
		else {
			its.it_value.tv_sec = (time_t)(left / 1000000u);
			its.it_value.tv_nsec = (long)(left % 1000000u * 1000u);
		}
		if (timerfd_settime(a->tfd, 0, &its, NULL) == 0)
			return;
		plog(HAL_LOG_ERROR, "timerfd_settime: %s: falling back to the libuv timer",
		     strerror(errno));
		uv_poll_stop(&a->tfd_poll);
		uv_close((uv_handle_t *)&a->tfd_poll, NULL);
		close(a->tfd);
		a->tfd = -1;
	}
#endif
	uv_timer_start(&a->timer, on_timer, (left + 999u) / 1000u, 0);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct app *a = h->data;
	(void)hint;
	*buf = uv_buf_init((char *)a->rbuf + a->rlen, (unsigned)(sizeof(a->rbuf) - a->rlen));
}

static void on_client_closed(uv_handle_t *h)
{
	free(h);
}

static void drop_client(struct app *a, const char *why)
{
	if (!a->client)
		return;
	plog(HAL_LOG_INFO, "client disconnected (%s)", why);
	uv_close((uv_handle_t *)a->client, on_client_closed);
	a->client = NULL;
	a->reading = 0;
	a->rlen = 0;
	bridge_disconnect(&a->br);
	pump(a);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct app *a = st->data;
	(void)buf;
	if (nread < 0) {
		drop_client(a, nread == UV_EOF ? "end of stream" : uv_strerror((int)nread));
		return;
	}
	a->rlen += (size_t)nread;
	size_t k = bridge_from_net(&a->br, a->rbuf, a->rlen);
	memmove(a->rbuf, a->rbuf + k, a->rlen - k);
	a->rlen -= k;
	if (a->rlen)
		stop_reading(a); /* backpressure: the UART side is full */
	pump(a);
}

static void on_busy_written(uv_write_t *req, int status)
{
	(void)status;
	uv_close((uv_handle_t *)req->handle, on_client_closed);
	free(req);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct app *a = server->data;
	if (status < 0) {
		plog(HAL_LOG_ERROR, "accept: %s", uv_strerror(status));
		return;
	}
	uv_tcp_t *c = malloc(sizeof(*c));
	if (!c)
		return;
	uv_tcp_init(a->loop, c);
	c->data = a;
	if (uv_accept(server, (uv_stream_t *)c) < 0) {
		uv_close((uv_handle_t *)c, on_client_closed);
		return;
	}
	if (!allow_posix_admit(c, server == (uv_stream_t *)&a->server ? "RFC 2217" : "legacy raw"))
		return; /* refused: line written, closed */
	if (a->client) {
		static char msg[160];
		snprintf(msg, sizeof(msg),
		         "espstm-bridge: busy: another client is connected to %s; closing\r\n",
		         a->target);
		plog(HAL_LOG_INFO, "second client refused (target busy)");
		uv_write_t *req = malloc(sizeof(*req));
		uv_buf_t b = uv_buf_init(msg, (unsigned)strlen(msg));
		if (!req || uv_write(req, (uv_stream_t *)c, &b, 1, on_busy_written) < 0) {
			free(req);
			uv_close((uv_handle_t *)c, on_client_closed);
		}
		return;
	}
	uv_tcp_nodelay(c, 1);
	a->client = c;
	a->rlen = 0;
	plog(HAL_LOG_INFO, "client connected");
	bridge_connect(&a->br);
	start_reading(a);
	pump(a);
}

/*
 * Settings observer (settings.h settings_set_observer): called when --http loads the
 * settings and after every PUT /api/settings. The settings' "allow" becomes the client
 * allow-list of the RFC 2217 and legacy ports (checked on each accept: a client already
 * connected stays), unless --allow was given, which overrides it. Logged when it changes.
 */
static void on_settings(void *app, const struct settings *s)
{
	struct app *a = app;
	if (a->allow_seen && strcmp(a->allow_set, s->allow) == 0)
		return;
	int first = !a->allow_seen;
	a->allow_seen = 1;
	snprintf(a->allow_set, sizeof(a->allow_set), "%s", s->allow);
	if (a->allow_cli) {
		if (s->allow[0] || !first)
			plog(HAL_LOG_INFO, "settings: allow '%s' not used: --allow %s overrides it",
			     s->allow, a->allow_cli);
		return;
	}
	char err[128];
	if (allow_posix_set(s->allow, err, sizeof(err)) < 0) {
		/* settings_validate() refuses such a list: not reached */
		plog(HAL_LOG_ERROR, "settings: allow '%s': %s (list unchanged)", s->allow, err);
		return;
	}
	if (!first)
		plog(HAL_LOG_INFO, "clients allowed: %s (settings)", allow_posix_describe());
}

/* --legacy hook: main's pump for legacy.c */
static void legacy_pump(void *a)
{
	pump(a);
}

/* --http hook (api_ops.flash_claim): lend the UART and pins to the ISP, or take them back. */
static void flash_claim(void *app, int on)
{
	struct app *a = app;
	if (on == a->isp_claimed)
		return;
	a->isp_claimed = on;
	if (on) {
		a->ulen = 0; /* the application's output before the flash: nobody's */
		bridge_suspend(&a->br, 1);
	} else {
		bridge_suspend(&a->br, 0);
	}
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct app *a = h->data;
	plog(HAL_LOG_INFO, "signal %d: exiting", signum);
	a->stopping = 1;
	int r = stm32sim_sync(a->sim);
	if (r < 0) {
		plog(HAL_LOG_ERROR, "flash sync failed: %s", strerror(-r));
		a->exit_code = 1;
	}
	uv_stop(a->loop);
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: espstm-bridge [options]\n"
	    "  --listen HOST:PORT     RFC 2217 server address (default 127.0.0.1:2217; port 0 =\n"
	    "                         ephemeral, the actual port is printed)\n"
	    "  --target sim:MODEL     simulated STM32: sim:stm32f103, sim:stm32f407, "
	    "sim:stm32g431\n"
	    "  --flash FILE           flash contents of the simulated chip (created if missing)\n"
	    "  --app-baud B           baud of the simulated application (default 115200)\n"
	    "  --instant              simulate without wire time\n"
	    "  --auto-boot MODE       sync (default), parity or off\n"
	    "  --line-map MAP         direct (default: DTR=NRST low, RTS=BOOT0 high), esptool, "
	    "none\n"
	    "  --settle-ms N          UART TX hold after NRST release (default 50, max 10000)\n"
	    "  --esptool-hold-ms N    esptool map: NRST release delay that lets a following\n"
	    "                         BOOT0 change apply first (default 100, 0 = none)\n"
	    "  --legacy               also serve the seed firmware's raw port and control port\n"
	    "                         (r, u, e) on the --listen host\n"
	    "  --legacy-ports R,C     their ports (default 1234,1235; 0 = ephemeral, printed)\n"
	    "  --allow LIST           clients allowed on the RFC 2217 and legacy ports: comma-\n"
	    "                         separated IPv4 addresses or CIDR prefixes, at most 8\n"
	    "                         (e.g. 127.0.0.1,10.0.0.0/8); others get one line and are\n"
	    "                         closed. Default: the settings' \"allow\" (web page, PUT\n"
	    "                         /api/settings; applied at once), empty = all. --allow\n"
	    "                         overrides the settings\n"
	    "  --http HOST:PORT       serve the web page and HTTP API (port 0 = ephemeral)\n"
	    "  --password-file FILE   web password (first line); default: generated, logged once\n"
	    "  --settings FILE        settings store (default FLASH.settings.json; values there\n"
	    "                         override the options above)\n"
	    "  --stage-max BYTES      largest image a stage=1 (verify before commit) upload may\n"
	    "                         stage, in an unlinked temporary file in $TMPDIR or /tmp\n"
	    "                         (default 4194304 = 4 MiB; 0 = no staging: stage=1 -> 501)\n"
	    "  --verify-key FILE      locked mode: flash only images signed for this PEM ECDSA\n"
	    "                         P-256 public key (espstm sign); no bootloader entry by\n"
	    "                         DTR/RTS, auto-boot, legacy 'u' or POST .../bootloader\n"
	    "  -v, --verbose          log every RFC 2217 command and pin change\n"
	    "  -h, --help             this text\n"
	    "  -V, --version          print the version\n"
	    "Exit status: 0 ok, 1 runtime error, 2 usage error.\n");
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || *s == '-' || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* The command line, beyond what goes straight into A (target, settings, allow-list). */
struct opts {
	const char *listen_addr;
	const char *flash;
	uint32_t app_baud, settle;
	int instant, legacy;
	uint32_t legacy_raw, legacy_ctl;
	struct http_posix_opts http;
	int stage_set; /* --stage-max given (0 then means: no staging) */
	char host[64]; /* --listen's host */
	uint32_t port; /* --listen's port */
	struct sockaddr_in sa;
};

static const struct option long_opts[] = {
    {"listen", required_argument, 0, 'l'},
    {"target", required_argument, 0, 't'},
    {"flash", required_argument, 0, 'f'},
    {"auto-boot", required_argument, 0, 'a'},
    {"line-map", required_argument, 0, 'm'},
    {"settle-ms", required_argument, 0, 's'},
    {"app-baud", required_argument, 0, 'b'},
    {"instant", no_argument, 0, 'i'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},
    {"esptool-hold-ms", required_argument, 0, 'H'},
    {"legacy", no_argument, 0, 0x100},
    {"legacy-ports", required_argument, 0, 0x101},
    {"http", required_argument, 0, 0x200},
    {"password-file", required_argument, 0, 0x201},
    {"settings", required_argument, 0, 0x202},
    {"allow", required_argument, 0, 0x300},
    {"stage-max", required_argument, 0, 0x203},
    {"verify-key", required_argument, 0, 0x204},
    {0, 0, 0, 0},
};

/* One option c (getopt_long) with its argument arg: into o or A. Returns -1 to go on, or the
 * exit status: 0 (--help, --version), 2 (usage error, message printed). */
static int parse_option(int c, const char *arg, struct opts *o)
{
	switch (c) {
	case 0x204: /* --verify-key: locked mode (http_posix.h) */
		return http_posix_verify_key(arg, &A.set) < 0 ? 2 : -1;
	case 'l':
		o->listen_addr = arg;
		return -1;
	case 't':
		A.target = arg;
		return -1;
	case 'f':
		o->flash = arg;
		return -1;
	case 'a':
		if (bridge_parse_auto_boot(arg, &A.set.auto_boot) == 0)
			return -1;
		fprintf(stderr, "espstm-bridge: --auto-boot: '%s' is not sync, parity or off\n",
		        arg);
		return 2;
	case 'm':
		if (bridge_parse_line_map(arg, &A.set.line_map) == 0)
			return -1;
		fprintf(stderr, "espstm-bridge: --line-map: '%s' is not direct, esptool or none\n",
		        arg);
		return 2;
	case 's':
		if (parse_u32(arg, SETTINGS_SETTLE_MS_MAX, &o->settle) == 0)
			return -1;
		fprintf(stderr, "espstm-bridge: --settle-ms: want 0..%u ms\n",
		        (unsigned)SETTINGS_SETTLE_MS_MAX);
		return 2;
	case 'H':
		if (parse_u32(arg, 60000, &A.set.esptool_hold_ms) == 0)
			return -1;
		fprintf(stderr, "espstm-bridge: --esptool-hold-ms: want 0..60000 ms\n");
		return 2;
	case 'b':
		if (parse_u32(arg, 4000000, &o->app_baud) == 0 && o->app_baud != 0)
			return -1;
		fprintf(stderr, "espstm-bridge: --app-baud: want a baud rate\n");
		return 2;
	case 0x100:
		o->legacy = 1;
		return -1;
	case 0x101:
		o->legacy = 1;
		if (legacy_posix_parse_ports(arg, &o->legacy_raw, &o->legacy_ctl) == 0)
			return -1;
		fprintf(stderr, "espstm-bridge: --legacy-ports: want RAW,CONTROL "
		                "(0..65535 each, different)\n");
		return 2;
	case 0x300: {
		char aerr[128];
		if (allow_posix_set(arg, aerr, sizeof(aerr)) < 0) {
			fprintf(stderr, "espstm-bridge: --allow: %s\n", aerr);
			return 2;
		}
		A.allow_cli = arg;
		return -1;
	}
	case 0x200:
		o->http.addr = arg;
		return -1;
	case 0x201:
		o->http.password_file = arg;
		return -1;
	case 0x202:
		o->http.settings_file = arg;
		return -1;
	case 0x203:
		if (parse_u32(arg, 0xFFFFFFFEu, &o->http.stage_max) < 0) {
			fprintf(stderr, "espstm-bridge: --stage-max: want a size in bytes\n");
			return 2;
		}
		o->stage_set = 1;
		return -1;
	case 'i':
		o->instant = 1;
		return -1;
	case 'v':
		plog_set_verbose(1);
		return -1;
	case 'h':
		usage(stdout);
		return 0;
	case 'V':
		printf("%s\n", BRIDGE_SIGNATURE);
		return 0;
	default:
		usage(stderr);
		return 2;
	}
}

/* --listen HOST:PORT into o->host, o->port and o->sa. Returns 0, or 2 (message printed). */
static int parse_listen(struct opts *o)
{
	const char *colon = strrchr(o->listen_addr, ':');
	if (!colon || (size_t)(colon - o->listen_addr) >= sizeof(o->host) ||
	    parse_u32(colon + 1, 65535, &o->port) < 0) {
		fprintf(stderr, "espstm-bridge: --listen: want HOST:PORT, got '%s'\n",
		        o->listen_addr);
		return 2;
	}
	memcpy(o->host, o->listen_addr, (size_t)(colon - o->listen_addr));
	o->host[colon - o->listen_addr] = '\0';
	if (uv_ip4_addr(o->host, (int)o->port, &o->sa) < 0) {
		fprintf(stderr, "espstm-bridge: --listen: '%s' is not an IPv4 address\n", o->host);
		return 2;
	}
	return 0;
}

/* The command line into o, A.target, A.set and A.allow_cli. Returns -1 to go on, or the
 * exit status: 0 (--help, --version), 2 (usage error, message printed). */
static int parse_options(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){
	    .listen_addr = "127.0.0.1:2217", .settle = 50, .legacy_raw = 1234, .legacy_ctl = 1235};
	A.target = "sim:stm32f103";
	bridge_settings_default(&A.set);
	int c;
	while ((c = getopt_long(argc, argv, "vhV", long_opts, NULL)) != -1) {
		int r = parse_option(c, optarg, o);
		if (r >= 0)
			return r;
	}
	if (optind < argc) {
		fprintf(stderr, "espstm-bridge: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}
	A.set.settle_ms = o->settle;
	if (strncmp(A.target, "sim:", 4) != 0) {
		fprintf(stderr, "espstm-bridge: --target: '%s' not supported (sim:MODEL)\n",
		        A.target);
		return 2;
	}
	if (parse_listen(o) != 0)
		return 2;
	if (o->stage_set && o->http.stage_max == 0)
		o->http.stage_max = HTTP_POSIX_STAGE_NONE;
	return -1;
}

/* The settings (--http), the simulated STM32, the bridge session and the AN3155 master on
 * its HAL. Returns 0, or the exit status (1 runtime, 2 usage error; message printed). */
static int setup_target(struct opts *o)
{
	const struct hal_ops *hal = &sim_hal;
	char err[256] = "";
	struct stm32sim_options so = {.model = A.target + 4,
	                              .flash_path = o->flash,
	                              .instant = o->instant,
	                              .app_baud = o->app_baud};
	if (o->http.addr) {
		o->http.flash = o->flash;
		settings_set_observer(on_settings, &A); /* the settings' allow-list */
		int hr = http_posix_prepare(&o->http, &A.set, &hal);
		if (hr < 0)
			return hr == -2 ? 2 : 1;
	}
	A.sim = stm32sim_new(&so, now_us(), err, sizeof(err));
	if (!A.sim) {
		fprintf(stderr, "espstm-bridge: %s: %s\n", A.target, err);
		return strstr(err, "model") ? 2 : 1;
	}
	A.nrst = 1;
	A.boot0 = 0;
	A.byte_ns = 10u * 1000000000u / 115200u; /* until the UART is configured */
	A.loop = uv_default_loop();
	if (bridge_init(&A.br, hal, &A, &A.set) < 0) {
		fprintf(stderr, "espstm-bridge: cannot configure the UART\n");
		return 1;
	}
	stm32_isp_init(&A.isp, hal, &A);
	return 0;
}

/* The RFC 2217 port, the wake-up timer and the signals; then the HTTP and legacy servers
 * (when asked for). Prints "listening on HOST:PORT" (the actual port). Returns 0 or 1. */
static int start_servers(struct opts *o)
{
	uv_tcp_init(A.loop, &A.server);
	A.server.data = &A;
	int r = uv_tcp_bind(&A.server, (const struct sockaddr *)&o->sa, 0);
	if (r == 0)
		r = uv_listen((uv_stream_t *)&A.server, 4, on_connection);
	if (r < 0) {
		fprintf(stderr, "espstm-bridge: listen on %s: %s\n", o->listen_addr,
		        uv_strerror(r));
		return 1;
	}
	struct sockaddr_storage ss;
	int sl = sizeof(ss);
	uv_tcp_getsockname(&A.server, (struct sockaddr *)&ss, &sl);
	unsigned actual = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_timer_init(A.loop, &A.timer);
	A.timer.data = &A;
	A.tfd = -1;
#if USE_TIMERFD
	timerfd_setup(&A);
#endif
	uv_signal_init(A.loop, &A.sigint);
	uv_signal_init(A.loop, &A.sigterm);
	A.sigint.data = A.sigterm.data = &A;
	uv_signal_start(&A.sigint, on_signal, SIGINT);
	uv_signal_start(&A.sigterm, on_signal, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	plog(HAL_LOG_INFO, "%s on %s (line map %s, auto-boot %s, settle %u ms)", BRIDGE_SIGNATURE,
	     A.target, bridge_line_map_name(A.set.line_map), bridge_auto_boot_name(A.set.auto_boot),
	     (unsigned)A.set.settle_ms);
	fprintf(stderr, "espstm-bridge: listening on %s:%u\n", o->host, actual);
	plog(HAL_LOG_INFO, "clients allowed: %s%s", allow_posix_describe(),
	     A.allow_cli      ? " (--allow)"
	     : A.allow_set[0] ? " (settings)"
	                      : "");
	if (o->http.addr) {
		struct http_posix_hooks hh = {.br = &A.br,
		                              .set = &A.set,
		                              .client = &A.client,
		                              .app = &A,
		                              .pump = legacy_pump,
		                              .isp = &A.isp,
		                              .flash_claim = flash_claim};
		if (http_posix_start(A.loop, &hh) < 0)
			return 1;
	}
	if (o->legacy) {
		struct legacy_posix_hooks lh = {
		    .br = &A.br, .app = &A, .on_conn = on_connection, .pump = legacy_pump};
		if (legacy_posix_start(A.loop, o->host, o->legacy_raw, o->legacy_ctl, &lh) < 0)
			return 1;
	}
	return 0;
}

/* After uv_stop (a signal): close every handle, let the loop run their close callbacks. */
static void shut_down(void)
{
	http_posix_stop();
	if (A.client)
		uv_close((uv_handle_t *)A.client, on_client_closed);
	uv_close((uv_handle_t *)&A.server, NULL);
	uv_close((uv_handle_t *)&A.timer, NULL);
#if USE_TIMERFD
	if (A.tfd >= 0) {
		uv_close((uv_handle_t *)&A.tfd_poll, NULL);
		close(A.tfd);
	}
#endif
	uv_close((uv_handle_t *)&A.sigint, NULL);
	uv_close((uv_handle_t *)&A.sigterm, NULL);
	uv_run(A.loop, UV_RUN_DEFAULT);
	uv_loop_close(A.loop);
}

int main(int argc, char **argv)
{
	struct opts o;
	int r = parse_options(argc, argv, &o);
	if (r >= 0)
		return r;
	r = setup_target(&o);
	if (r == 0)
		r = start_servers(&o);
	if (r != 0) {
		if (A.sim)
			stm32sim_free(A.sim);
		return r;
	}
	pump(&A);
	uv_run(A.loop, UV_RUN_DEFAULT);
	shut_down();
	stm32sim_free(A.sim);
	return A.exit_code;
}
