/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge: the portable firmware core (firmware/core) on Linux with libuv.
 * One RFC 2217 server port for one target: the simulated STM32 (stm32sim/, target_sim.c) or
 * a real tty (tty_target.c). See README.md.
 */
#include "plog.h"
#include "bridge_app.h"
#include "bridge_conf.h"
#include "legacy_posix.h"
#include "http_posix.h"
#include "allow_posix.h"
#include "settings.h"
#include "stm32_isp.h"
#include "target.h"
#include "tty_target.h"

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

static struct app A;

static uint64_t now_us(void)
{
	return uv_hrtime() / 1000;
}

/* ---- the callbacks every target's HAL shares (target.h) ---- */

uint64_t app_now_us(void)
{
	return now_us();
}

uint32_t app_hal_now_ms(void *ctx)
{
	(void)ctx;
	return (uint32_t)(uv_hrtime() / 1000000u);
}

static void pump(struct app *a);

size_t app_hal_net_send(void *ctx, const uint8_t *p, size_t n)
{
	return port_send(ctx, p, n);
}

void app_hal_log(void *ctx, enum hal_log_level level, const char *line)
{
	(void)ctx;
	plog((int)level, "%s", line);
}

/* ---- event pump ---- */

static void on_timer(uv_timer_t *t);
static void arm_wakeup(struct app *a, uint64_t wake, uint64_t now);

/* Move bytes between the socket buffers, the bridge and the simulated chip; re-arm the
 * timer for the next thing that will happen. */
void app_pump(struct app *a)
{
	pump(a);
}

uint64_t app_now_ms(void)
{
	return uv_hrtime() / 1000000u;
}

static void pump(struct app *a)
{
	if (a->stopping)
		return;
	uint64_t t = now_us();
	if (a->tgt->poll)
		a->tgt->poll(a, t);
	if (a->isp_claimed)
		stm32_isp_poll(&a->isp);
	if (port_poll(a) && a->rlen) {
		size_t k = bridge_from_net(&a->br, a->rbuf, a->rlen);
		memmove(a->rbuf, a->rbuf + k, a->rlen - k);
		a->rlen -= k;
	}
	bridge_poll(&a->br);
	port_resume(a); /* read the socket again when there is room */
	a->rx_got = 0;
	for (int guard = 0; guard < 64; guard++) {
		if (a->ulen < sizeof(a->ubuf)) {
			size_t got =
			    a->tgt->read(a, t, a->ubuf + a->ulen, sizeof(a->ubuf) - a->ulen);
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
	uint64_t next = a->tgt->next_event_us(a);
	size_t txp = a->tgt->tx_pending(a, t2);
	if (txp) {
		uint64_t done = a->tgt->tx_drained_at(a, t2, txp, a->uart_short ? txp / 2 : 0);
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
	if (a->tgt->rx_room)
		a->tgt->rx_room(a);
	arm_wakeup(a, wake, t2);
}

static void on_timer(uv_timer_t *t)
{
	pump(t->data);
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

/*
 * Settings observer (settings.h settings_set_observer): called when --http loads the
 * settings and after every PUT /api/settings. The settings' "allow" becomes the client
 * allow-list of the RFC 2217 and legacy ports (checked on each accept: a client already
 * connected stays), unless --allow was given, which overrides it. Logged when it changes.
 */
static void on_settings(void *app, const struct settings *s)
{
	struct app *a = app;
	tls_port_settings(s);
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
	int r = a->tgt->sync ? a->tgt->sync(a) : 0;
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
	    "  --config FILE          options from an INI file ([bridge]: listen, http,\n"
	    "                         password_file, key_file, settings, verify_key, plaintext,\n"
	    "                         idle_timeout, allow; [target]: target, nrst, boot0,\n"
	    "                         invert_nrst, invert_boot0, auto_boot, line_map, settle_ms),\n"
	    "                         applied where --config stands: later options override it\n"
	    "  --listen HOST:PORT     RFC 2217 server address (default 127.0.0.1:2217; port 0 =\n"
	    "                         ephemeral, the actual port is printed)\n"
	    "  --target sim:MODEL     simulated STM32: sim:stm32f103, sim:stm32f407, "
	    "sim:stm32g431\n"
	    "  --target tty:DEVICE    a real UART, e.g. tty:/dev/ttyUSB0, tty:/dev/ttyAMA0\n"
	    "  --nrst PIN, --boot0 PIN  tty target: how NRST and BOOT0 are driven (default none):\n"
	    "                         dtr, rts: the tty's own modem line (stm32flash wiring:\n"
	    "                           --nrst dtr --boot0 rts); the adapter's DTR#/RTS# pins\n"
	    "                           are active-low: line asserted = pin LOW, so NRST low =\n"
	    "                           DTR asserted, BOOT0 high = RTS deasserted. The kernel\n"
	    "                           asserts both when the tty opens: a short reset at start\n"
	    "                         CHIP:OFFSET (gpiochip0:17) or a GPIO line NAME (libgpiod):\n"
	    "                           pin level = line value; NRST open-drain, BOOT0 push-pull\n"
	    "                         none: not driven (a pty has no modem lines: dtr/rts there\n"
	    "                           log a warning and do nothing)\n"
	    "  --invert-nrst, --invert-boot0  an inverting stage (transistor) between: dtr/rts\n"
	    "                         asserted = pin HIGH; GPIO lines active-low\n"
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
	    "  --key-file FILE        the unit key (identity and TLS pre-shared key; default\n"
	    "                         FLASH.key next to --flash, made at the first start, mode\n"
	    "                         0600; refused if group/others may read it). With a key the\n"
	    "                         RFC 2217 port speaks TLS-PSK (RFC 4279; espstm pair HOST)\n"
	    "  --no-key               no key, no TLS: plaintext RFC 2217 as ser2net; anyone who\n"
	    "                         can reach the port can read and write the UART and reset\n"
	    "                         or reflash the STM32\n"
	    "  --plaintext            with a key, also serve plaintext RFC 2217 clients and the\n"
	    "                         legacy ports (default: the settings' \"plaintext\", off)\n"
	    "  --idle-timeout S       close an RFC 2217 client with no byte either way for S\n"
	    "                         seconds (default: the settings' idle_timeout_s, 600; 0 =\n"
	    "                         never); TCP keepalive (60 s) detects a vanished peer\n"
	    "  --http HOST:PORT       serve the web page and HTTP API (port 0 = ephemeral); with "
	    "a\n"
	    "                         unit key over HTTPS only, on a self-signed certificate\n"
	    "                         (KEY.cert.pem/KEY.certkey.pem next to the key file, made at\n"
	    "                         the first start; its pin is logged) and POST /api/pair\n"
	    "                         hands the key to 'espstm pair'\n"
	    "  --password-file FILE   web password (first line); default: generated, logged once\n"
	    "  --settings FILE        settings store (default FLASH.settings.json; values there\n"
	    "                         override the options above)\n"
	    "  --stage-max BYTES      largest image a stage=1 (verify before commit) upload may\n"
	    "                         stage, in an unlinked temporary file in $TMPDIR or /tmp\n"
	    "                         (default 4194304 = 4 MiB; 0 = no staging: stage=1 -> 501)\n"
	    "  --http-plain           serve plain HTTP even with a key: the web password, every\n"
	    "                         API call and (POST /api/pair) the unit key cross the\n"
	    "                         network unencrypted; only on a trusted network\n"
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
	struct tls_port_opts tp;    /* --key-file, --no-key, --plaintext, --idle-timeout */
	struct tty_target_opts tty; /* --target tty:, --nrst, --boot0, --invert-* */
	int pins_given;             /* one of --nrst, --boot0, --invert-* */
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
    {"key-file", required_argument, 0, 0x400},
    {"no-key", no_argument, 0, 0x401},
    {"plaintext", no_argument, 0, 0x402},
    {"idle-timeout", required_argument, 0, 0x403},
    {"nrst", required_argument, 0, 0x500},
    {"boot0", required_argument, 0, 0x501},
    {"invert-nrst", no_argument, 0, 0x502},
    {"invert-boot0", no_argument, 0, 0x503},
    {"http-plain", no_argument, 0, 0x205},
    {"config", required_argument, 0, 0x600},
    {0, 0, 0, 0},
};

/* --nrst, --boot0 (c 0x500, 0x501; argument arg), --invert-nrst, --invert-boot0 (0x502,
 * 0x503) into o->tty. Returns -1 to go on, or 2 (usage error, message printed). */
static int parse_pin_option(int c, const char *arg, struct opts *o)
{
	o->pins_given = 1;
	if (c == 0x502 || c == 0x503) {
		(c == 0x502 ? &o->tty.nrst : &o->tty.boot0)->invert = 1;
		return -1;
	}
	struct pin_spec *ps = c == 0x500 ? &o->tty.nrst : &o->tty.boot0;
	int inv = ps->invert;
	if (pins_posix_parse(arg, ps) == 0) {
		ps->invert = inv;
		return -1;
	}
	fprintf(stderr,
	        "espstm-bridge: --%s: '%s' is not none, dtr, rts, CHIP:OFFSET or a GPIO line "
	        "name (1..63 characters)\n",
	        c == 0x500 ? "nrst" : "boot0", arg);
	return 2;
}

static int load_config(const char *path, struct opts *o);

/* One option c (getopt_long) with its argument arg: into o or A. Returns -1 to go on, or the
 * exit status: 0 (--help, --version), 2 (usage error, message printed). */
static int parse_option(int c, const char *arg, struct opts *o)
{
	switch (c) {
	case 0x600:
		return load_config(arg, o);
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
	case 0x205:
		o->http.http_plain = 1;
		return -1;
	case 0x400:
		o->tp.key_file = arg;
		return -1;
	case 0x401:
		o->tp.no_key = 1;
		return -1;
	case 0x402:
		o->tp.plaintext = 1;
		return -1;
	case 0x403:
		if (parse_u32(arg, SETTINGS_IDLE_MAX_S, &o->tp.idle_s) < 0) {
			fprintf(stderr, "espstm-bridge: --idle-timeout: want 0..%u s (0 = none)\n",
			        (unsigned)SETTINGS_IDLE_MAX_S);
			return 2;
		}
		o->tp.idle_set = 1;
		return -1;
	case 0x500:
	case 0x501:
	case 0x502:
	case 0x503:
		return parse_pin_option(c, arg, o);
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

/* bridge_conf_apply_fn: one key of --config's file as the option it stands for (a copy of
 * the value, kept for the process's life as getopt's arguments are). Returns 0, or 1 (bad
 * value, message printed). */
static int apply_config_key(void *ctx, const char *option, const char *value)
{
	for (const struct option *lo = long_opts; lo->name; lo++) {
		if (strcmp(lo->name, option) != 0)
			continue;
		char *v = value ? strdup(value) : NULL;
		if (value && !v)
			return 1;
		return parse_option(lo->val, v, ctx) == -1 ? 0 : 1;
	}
	return 1;
}

/* --config FILE: its keys applied as options in place of --config (options after it
 * override them). Returns -1 to go on, or 2 (messages printed). */
static int load_config(const char *path, struct opts *o)
{
	return bridge_conf_load(path, apply_config_key, o, stderr) == 0 ? -1 : 2;
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

/* --target and the pin options. Returns 0, or 2 (message printed). */
static int check_target(struct opts *o)
{
	if (strncmp(A.target, "tty:", 4) == 0) {
		o->tty.device = A.target + 4;
		if (!o->tty.device[0]) {
			fprintf(stderr, "espstm-bridge: --target tty: wants a device, e.g. "
			                "tty:/dev/ttyUSB0\n");
			return 2;
		}
		enum pin_kind n = o->tty.nrst.kind, b = o->tty.boot0.kind;
		if (n == b && (n == PIN_DTR || n == PIN_RTS)) {
			fprintf(stderr,
			        "espstm-bridge: --nrst and --boot0 on the same modem line\n");
			return 2;
		}
		A.tgt = &tty_target_ops;
		return 0;
	}
	if (strncmp(A.target, "sim:", 4) != 0) {
		fprintf(stderr,
		        "espstm-bridge: --target: '%s' not supported (sim:MODEL or tty:DEVICE)\n",
		        A.target);
		return 2;
	}
	if (o->pins_given) {
		fprintf(stderr, "espstm-bridge: --nrst, --boot0, --invert-*: only with --target "
		                "tty:DEVICE\n");
		return 2;
	}
	A.tgt = &target_sim_ops;
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
	if (check_target(o) != 0)
		return 2;
	if (parse_listen(o) != 0)
		return 2;
	if (o->stage_set && o->http.stage_max == 0)
		o->http.stage_max = HTTP_POSIX_STAGE_NONE;
	if (o->tp.no_key && o->tp.key_file) {
		fprintf(stderr, "espstm-bridge: --no-key and --key-file exclude each other\n");
		return 2;
	}
	o->tp.flash = o->flash;
	return -1;
}

/* The settings (--http), the target (simulated STM32 or tty), the bridge session and the
 * AN3155 master on its HAL. Returns 0, or the exit status (1 runtime, 2 usage error; message
 * printed). */
static int setup_target(struct opts *o)
{
	const struct hal_ops *hal = A.tgt->hal;
	if (o->http.addr) {
		o->http.flash = o->flash;
		/* HTTPS and pairing with tls_port's unit key: its file ("" = a key for this run
		 * only) and the key itself; --no-key: neither (plain HTTP) */
		static struct tls_psk uk;
		const char *kp = tls_port_key_path();
		if (kp && tls_port_key(&uk) == 0) {
			o->http.unit_key = &uk;
			o->http.key_path = kp[0] ? kp : NULL;
		}
		settings_set_observer(on_settings, &A); /* the settings' allow-list */
		int hr = http_posix_prepare(&o->http, &A.set, &hal);
		if (hr < 0)
			return hr == -2 ? 2 : 1;
	}
	A.loop = uv_default_loop();
	int r = A.tgt == &tty_target_ops
	            ? tty_target_open(&A, &o->tty)
	            : target_sim_open(&A, A.target + 4, o->flash, o->instant, o->app_baud);
	if (r != 0)
		return r;
	if (bridge_init(&A.br, hal, &A, &A.set) < 0) {
		fprintf(stderr, "espstm-bridge: %s: cannot configure the UART\n", A.target);
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
		r = uv_listen((uv_stream_t *)&A.server, 4, port_on_connection);
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
	plog(HAL_LOG_INFO, "%s", tls_port_describe());
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
		                              .flash_claim = flash_claim,
		                              .rfc2217_port = actual,
		                              .key_rotated = tls_port_set_key,
		                              .clients = port_clients,
		                              .disconnect = port_disconnect};
		if (http_posix_start(A.loop, &hh) < 0)
			return 1;
	}
	if (o->legacy) {
		struct legacy_posix_hooks lh = {.br = &A.br,
		                                .app = &A,
		                                .on_conn = port_on_connection,
		                                .pump = legacy_pump,
		                                .plain_ok = tls_port_plaintext_ok};
		if (legacy_posix_start(A.loop, o->host, o->legacy_raw, o->legacy_ctl, &lh) < 0)
			return 1;
	}
	return 0;
}

/* After uv_stop (a signal): close every handle, let the loop run their close callbacks. */
static void shut_down(void)
{
	http_posix_stop();
	port_shutdown(&A);
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
	if (A.tgt->stop)
		A.tgt->stop(&A);
	uv_run(A.loop, UV_RUN_DEFAULT); /* close callbacks may still use the target's HAL */
	if (A.tgt->close)
		A.tgt->close(&A);
	uv_loop_close(A.loop);
}

int main(int argc, char **argv)
{
	struct opts o;
	int r = parse_options(argc, argv, &o);
	if (r >= 0)
		return r;
	r = tls_port_setup(&o.tp) ? 1 : 0;
	if (r == 0)
		r = setup_target(&o);
	if (r == 0)
		r = start_servers(&o);
	if (r != 0) {
		if (A.tgt && A.tgt->stop)
			A.tgt->stop(&A);
		if (A.tgt && A.tgt->close)
			A.tgt->close(&A);
		return r;
	}
	pump(&A);
	uv_run(A.loop, UV_RUN_DEFAULT);
	shut_down();
	return A.exit_code;
}
