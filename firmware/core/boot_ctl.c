/* SPDX-License-Identifier: MIT */
/*
 * boot_ctl: BOOT0/NRST control of the bridge session (boot_ctl.h): line maps, reset pulses,
 * automatic bootloader entry, settle and esptool holds, actions; the settings' defaults
 * and names. Split from bridge.c, which runs the Telnet/RFC 2217 side and the queue.
 */
#include "boot_ctl.h"

#include <errno.h>
#include <string.h>

void bridge_settings_default(struct bridge_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->line_map = BRIDGE_MAP_DIRECT;
	s->auto_boot = BRIDGE_AUTO_SYNC;
	s->settle_ms = 50;
	s->reset_ms = 10;
	s->esptool_hold_ms = 100;
	s->signature = NULL;
	s->modem_state = RFC2217_MODEM_CD | RFC2217_MODEM_DSR | RFC2217_MODEM_CTS;
	s->uart.baud = 115200;
	s->uart.data_bits = 8;
	s->uart.parity = RFC2217_PARITY_NONE;
	s->uart.stop = RFC2217_STOPSIZE_1;
	s->uart.flow = RFC2217_CONTROL_FLOW_NONE;
}

/* Setting names, indexed by enum bridge_line_map and enum bridge_auto_boot. */
static const char *const line_map_names[] = {"direct", "esptool", "none"};
static const char *const auto_boot_names[] = {"sync", "parity", "off"};
#define NAMES_N 3

/* Index of name in names[NAMES_N], or -1. */
static int name_index(const char *const *names, const char *name)
{
	for (int i = 0; i < NAMES_N; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

int bridge_parse_line_map(const char *name, enum bridge_line_map *out)
{
	int i = name_index(line_map_names, name);
	if (i < 0)
		return -EINVAL;
	*out = (enum bridge_line_map)i;
	return 0;
}

int bridge_parse_auto_boot(const char *name, enum bridge_auto_boot *out)
{
	int i = name_index(auto_boot_names, name);
	if (i < 0)
		return -EINVAL;
	*out = (enum bridge_auto_boot)i;
	return 0;
}

const char *bridge_line_map_name(unsigned v)
{
	return v < NAMES_N ? line_map_names[v] : "?";
}

const char *bridge_auto_boot_name(unsigned v)
{
	return v < NAMES_N ? auto_boot_names[v] : "?";
}

/* ---- pins and sequences ---- */

/* Drive NRST and BOOT0 to the given levels (1 high, 0 low), BOOT0 first; a release of NRST
 * records the BOOT0 level the chip latched and starts the settle hold (settle_ms). */
static void set_pins(struct bridge *s, int nrst, int boot0)
{
	if (nrst == s->nrst && boot0 == s->boot0)
		return;
	int rising = nrst && !s->nrst;
	/* BOOT0 first, so it is settled when NRST is released. */
	/* Suspended (bridge_suspend): the pins belong to the flasher; the level is recorded
	 * and driven at resume. */
	if (boot0 != s->boot0 && !s->held)
		s->hal->gpio_set(s->ctx, HAL_PIN_BOOT0, boot0);
	if (nrst != s->nrst && !s->held)
		s->hal->gpio_set(s->ctx, HAL_PIN_NRST, nrst);
	s->nrst = nrst;
	s->boot0 = boot0;
	bridge_logf(s, HAL_LOG_INFO, "pins: NRST=%s BOOT0=%s", nrst ? "high" : "low",
	            boot0 ? "high" : "low");
	if (rising)
		s->boot0_at_release = boot0; /* what the chip latched: bootloader if high */
	if (rising && s->set.settle_ms) {
		s->hold_until = bridge_now(s) + s->set.settle_ms;
		s->holding = 1;
	}
}

static void apply_lines_map(struct bridge *s, int immediate);

/* A client that really moves a pin drives the boot sequence itself: automatic entry is
 * disarmed. immediate: the expiry of the esptool hold, the restore after a disconnect. */
void boot_ctl_lines(struct bridge *s, int immediate)
{
	int nrst = s->nrst, boot0 = s->boot0, pending = s->rel_pending;
	apply_lines_map(s, immediate);
	if (nrst != s->nrst || boot0 != s->boot0 || s->rel_pending != pending)
		s->ab_armed = 0;
}

static void apply_lines_map(struct bridge *s, int immediate)
{
	/* locked mode: the client's lines never raise BOOT0 (a reset still works) */
	int may_boot = !s->set.locked;
	switch (s->set.line_map) {
	case BRIDGE_MAP_DIRECT:
		set_pins(s, !s->dtr, s->rts && may_boot);
		break;
	case BRIDGE_MAP_ESPTOOL: {
		int nrst = !(s->rts && !s->dtr), boot0 = s->dtr && !s->rts && may_boot;
		/* The RC on a real board's EN/NRST delays a release: a BOOT0 change that follows
		 * within esptool_hold_ms is in place before the chip leaves reset (bridge.h). */
		if (nrst && !boot0 && s->nrst == 0 && s->set.esptool_hold_ms && !immediate) {
			if (!s->rel_pending) {
				s->rel_pending = 1;
				s->rel_at = bridge_now(s) + s->set.esptool_hold_ms;
				bridge_logf(s, HAL_LOG_DEBUG,
				            "pins: NRST release held %u ms (esptool map)",
				            (unsigned)s->set.esptool_hold_ms);
			}
			set_pins(s, 0, boot0);
			break;
		}
		s->rel_pending = 0;
		set_pins(s, nrst, boot0);
		break;
	}
	case BRIDGE_MAP_NONE:
		break;
	}
}

/* Start "set BOOT0, NRST low for reset_ms, release" (finished in run_seq). */
static void start_reset(struct bridge *s, int boot0)
{
	s->rel_pending = 0;
	set_pins(s, 0, boot0);
	s->seq = 1;
	s->seq_boot0 = boot0;
	s->hold_until = bridge_now(s) + (s->set.reset_ms ? s->set.reset_ms : 1);
	s->holding = 0;
}

/* Advance a running sequence. Returns 1 when none is running any more. */
static int run_seq(struct bridge *s)
{
	if (!s->seq)
		return 1;
	if (!hal_time_reached(bridge_now(s), s->hold_until))
		return 0;
	s->seq = 0;
	set_pins(s, 1, s->seq_boot0); /* starts the settle hold */
	return 1;
}

int boot_ctl_is_8e1(const struct hal_uart_cfg *c)
{
	return c->data_bits == 8 && c->parity == RFC2217_PARITY_EVEN &&
	       c->stop == RFC2217_STOPSIZE_1;
}

void boot_ctl_enter(struct bridge *s, const char *why)
{
	if (s->set.locked) {
		bridge_logf(s, HAL_LOG_INFO, "auto-boot: %s: refused, locked mode", why);
		return;
	}
	bridge_logf(s, HAL_LOG_INFO, "auto-boot: %s: BOOT0 high, NRST pulse %u ms, settle %u ms",
	            why, (unsigned)s->set.reset_ms, (unsigned)s->set.settle_ms);
	s->in_boot = 1;
	start_reset(s, 1);
}

static void leave_boot(struct bridge *s, const char *why)
{
	bridge_logf(s, HAL_LOG_INFO, "auto-boot: %s: BOOT0 low, NRST pulse %u ms (application)",
	            why, (unsigned)s->set.reset_ms);
	s->in_boot = 0;
	start_reset(s, 0);
}

/* ---- UART configuration and automatic bootloader entry ---- */

void boot_ctl_apply_cfg(struct bridge *s, struct hal_uart_cfg *c, const char *what)
{
	int was = boot_ctl_is_8e1(&s->uart);
	struct hal_uart_cfg t = *c;
	/* Suspended: recorded, applied to the UART at resume (bridge_suspend). */
	int r = s->held ? 0 : s->hal->uart_config(s->ctx, &t);
	if (r < 0) {
		bridge_logf(s, HAL_LOG_ERROR,
		            "rfc2217: %s rejected by the UART (%d), keeping current", what, r);
		return;
	}
	s->uart = t;
	int is = boot_ctl_is_8e1(&s->uart);
	if (!was && is && s->set.locked) {
		bridge_logf(s, HAL_LOG_DEBUG, "auto-boot: off in locked mode (signed images only)");
	} else if (!was && is) {
		if (s->set.auto_boot == BRIDGE_AUTO_SYNC)
			s->ab_armed = 1;
		else if (s->set.auto_boot == BRIDGE_AUTO_PARITY)
			boot_ctl_enter(s, "port set to 8E1");
	} else if (was && !is) {
		s->ab_armed = 0;
		if (s->in_boot)
			leave_boot(s, "port left 8E1");
	}
}

/* ---- timed steps ---- */

int boot_ctl_step(struct bridge *s)
{
	if (s->rel_pending && hal_time_reached(bridge_now(s), s->rel_at)) {
		s->rel_pending = 0;
		apply_lines_map(s, 1); /* the map as it is now */
	}
	if (!run_seq(s))
		return 0;
	if (s->holding) {
		if (!hal_time_reached(bridge_now(s), s->hold_until))
			return 0;
		s->holding = 0;
	}
	return 1;
}

/* ---- the queued parts of bridge_disconnect() and bridge_action() ---- */

void boot_ctl_restore(struct bridge *s)
{
	if (s->pinned) {
		bridge_logf(s, HAL_LOG_INFO,
		            "legacy: bootloader mode kept after the disconnect (until run)");
		return;
	}
	/* Back to the settings' framing; leaving 8E1 here may run leave_boot(). */
	struct hal_uart_cfg c = s->set.uart;
	boot_ctl_apply_cfg(s, &c, "default configuration");
	if (s->seq)
		return; /* leaving 8E1 already started the BOOT0 low + NRST pulse */
	if (s->in_boot)
		leave_boot(s, "client disconnected");
	else if (s->nrst == 1 && s->boot0_at_release)
		/* The client's own DTR/RTS started the bootloader (BOOT0 was high at the last
		 * NRST release): lowering BOOT0 alone would leave it there. */
		leave_boot(s, "client disconnected, chip in the bootloader");
	else
		boot_ctl_lines(s, 1); /* lines deasserted: the map's pins, no hold */
}

/* The same pin order and timing as auto-boot (start_reset): BOOT0 first, NRST low
 * reset_ms, release, settle hold. */
void boot_ctl_action(struct bridge *s, uint8_t a)
{
	struct hal_uart_cfg c = s->uart;
	switch (a) {
	case BRIDGE_ACT_RESET:
		bridge_logf(s, HAL_LOG_INFO, "action: reset: NRST pulse %u ms, BOOT0 %s",
		            (unsigned)s->set.reset_ms, s->boot0 == 1 ? "high" : "low");
		start_reset(s, s->boot0 == 1);
		break;
	case BRIDGE_ACT_BOOTLOADER:
		if (s->set.locked) /* queued before the lock: refused all the same */
			break;
		c.baud = 115200;
		c.data_bits = 8;
		c.parity = RFC2217_PARITY_EVEN;
		c.stop = RFC2217_STOPSIZE_1;
		c.flow = RFC2217_CONTROL_FLOW_NONE;
		boot_ctl_apply_cfg(s, &c, "bootloader framing 115200 8E1");
		s->ab_armed = 0;
		s->in_boot = 1;
		s->pinned = 1;
		bridge_logf(s, HAL_LOG_INFO,
		            "action: bootloader: BOOT0 high, NRST pulse %u ms, settle %u ms",
		            (unsigned)s->set.reset_ms, (unsigned)s->set.settle_ms);
		start_reset(s, 1);
		break;
	case BRIDGE_ACT_RUN:
		c = s->set.uart;
		c.data_bits = 8;
		c.parity = RFC2217_PARITY_NONE;
		c.stop = RFC2217_STOPSIZE_1;
		s->in_boot =
		    0; /* the pulse below leaves the bootloader (not boot_ctl_apply_cfg's) */
		boot_ctl_apply_cfg(s, &c, "user framing 8N1");
		s->ab_armed = 0;
		s->pinned = 0;
		bridge_logf(s, HAL_LOG_INFO,
		            "action: run: BOOT0 low, NRST pulse %u ms (application)",
		            (unsigned)s->set.reset_ms);
		start_reset(s, 0);
		break;
	default:
		break;
	}
}

void bridge_pins(const struct bridge *s, int *nrst, int *boot0)
{
	*nrst = s->nrst;
	*boot0 = s->boot0;
}
