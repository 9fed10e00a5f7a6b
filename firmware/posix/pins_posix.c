/* SPDX-License-Identifier: MIT */
/*
 * NRST/BOOT0 outputs of espstm-bridge --target tty:DEVICE (pins_posix.h): libgpiod 1.6
 * lines or the tty's own DTR/RTS.
 */
#include "pins_posix.h"

#include <errno.h>
#include <gpiod.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

int pins_posix_parse(const char *s, struct pin_spec *out)
{
	memset(out, 0, sizeof(*out));
	out->offset = -1;
	size_t n = strlen(s);
	if (n == 0 || n >= sizeof(out->name))
		return -EINVAL;
	if (strcmp(s, "none") == 0) {
		out->kind = PIN_NONE;
		return 0;
	}
	if (strcmp(s, "dtr") == 0 || strcmp(s, "rts") == 0) {
		out->kind = s[0] == 'd' ? PIN_DTR : PIN_RTS;
		return 0;
	}
	out->kind = PIN_GPIO;
	const char *colon = strrchr(s, ':');
	if (colon && colon[1] && strspn(colon + 1, "0123456789") == strlen(colon + 1)) {
		if (colon == s || strlen(colon + 1) > 5 || atol(colon + 1) > 65535)
			return -EINVAL;
		memcpy(out->chip, s, (size_t)(colon - s));
		out->chip[colon - s] = '\0';
		out->offset = atoi(colon + 1);
		return 0;
	}
	memcpy(out->name, s, n + 1);
	return 0;
}

static int modem_set(struct pin_out *p, int level)
{
	int bit = p->spec.kind == PIN_DTR ? TIOCM_DTR : TIOCM_RTS;
	int assert = (level == 0) != (p->spec.invert != 0);
	if (ioctl(p->tty_fd, assert ? TIOCMBIS : TIOCMBIC, &bit) < 0)
		return -errno;
	return 0;
}

/* the line of p->spec: by chip and offset, or by name; into p->chip/p->line */
static int gpio_find(struct pin_out *p, char *err, size_t errlen)
{
	struct gpiod_line *line;
	if (p->spec.offset >= 0) {
		struct gpiod_chip *chip = gpiod_chip_open_lookup(p->spec.chip);
		if (!chip) {
			int e = errno ? errno : ENOENT;
			snprintf(err, errlen, "GPIO chip '%s': %s", p->spec.chip, strerror(e));
			return -e;
		}
		line = gpiod_chip_get_line(chip, (unsigned)p->spec.offset);
		if (!line) {
			int e = errno ? errno : EINVAL;
			snprintf(err, errlen, "GPIO chip '%s' has no line %d (%s)", p->spec.chip,
			         p->spec.offset, strerror(e));
			gpiod_chip_close(chip);
			return -e;
		}
		p->chip = chip;
	} else {
		errno = 0;
		line = gpiod_line_find(p->spec.name);
		if (!line) {
			int e = errno ? errno : ENOENT;
			snprintf(err, errlen, "GPIO line '%s': %s", p->spec.name,
			         e == ENOENT ? "no line of that name" : strerror(e));
			return -e;
		}
		p->chip = gpiod_line_get_chip(line);
	}
	p->line = line;
	return 0;
}

static int gpio_open(struct pin_out *p, int initial, char *err, size_t errlen)
{
	int r = gpio_find(p, err, errlen);
	if (r < 0)
		return r;
	int flags = p->is_nrst ? GPIOD_LINE_REQUEST_FLAG_OPEN_DRAIN : 0;
	if (p->spec.invert)
		flags |= GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW;
	if (gpiod_line_request_output_flags(p->line, "espstm-bridge", flags, initial) < 0) {
		int e = errno ? errno : EIO;
		char where[80]; /* chip:offset or the line's name */
		if (p->spec.offset >= 0)
			snprintf(where, sizeof(where), "%.63s:%d", p->spec.chip, p->spec.offset);
		else
			snprintf(where, sizeof(where), "%.63s", p->spec.name);
		snprintf(err, errlen, "GPIO line %s for %s: %s", where,
		         p->is_nrst ? "NRST" : "BOOT0",
		         e == EBUSY ? "used by another program" : strerror(e));
		gpiod_chip_close(p->chip);
		p->chip = p->line = NULL;
		return -e;
	}
	if (p->spec.offset >= 0)
		snprintf(p->desc, sizeof(p->desc), "%s:%d %s%s", p->spec.chip, p->spec.offset,
		         p->is_nrst ? "open-drain" : "push-pull",
		         p->spec.invert ? " inverted" : "");
	else
		snprintf(p->desc, sizeof(p->desc), "line '%s' %s%s", p->spec.name,
		         p->is_nrst ? "open-drain" : "push-pull",
		         p->spec.invert ? " inverted" : "");
	return 0;
}

int pins_posix_open(struct pin_out *p, const struct pin_spec *s, int is_nrst, int tty_fd,
                    int initial, char *err, size_t errlen)
{
	memset(p, 0, sizeof(*p));
	p->spec = *s;
	p->is_nrst = is_nrst;
	p->tty_fd = tty_fd;
	p->level = -1;
	if (errlen)
		err[0] = '\0';
	switch (s->kind) {
	case PIN_NONE:
		snprintf(p->desc, sizeof(p->desc), "none");
		return 0;
	case PIN_DTR:
	case PIN_RTS: {
		const char *n = s->kind == PIN_DTR ? "DTR" : "RTS";
		int bits;
		if (ioctl(tty_fd, TIOCMGET, &bits) < 0) {
			snprintf(err, errlen,
			         "%s: the tty has no modem lines (%s; a pty?): %s not driven", n,
			         strerror(errno), is_nrst ? "NRST" : "BOOT0");
			snprintf(p->desc, sizeof(p->desc), "%s (not available)", n);
			return 0;
		}
		p->modem_ok = 1;
		snprintf(p->desc, sizeof(p->desc), "%s (asserted = %s)", n,
		         s->invert ? "high" : "low");
		int r = modem_set(p, initial);
		if (r < 0)
			snprintf(err, errlen, "%s: %s", n, strerror(-r));
		else
			p->level = initial;
		return r;
	}
	case PIN_GPIO:
	default: {
		int r = gpio_open(p, initial, err, errlen);
		if (r == 0)
			p->level = initial;
		return r;
	}
	}
}

int pins_posix_set(struct pin_out *p, int level)
{
	int r = 0;
	if (p->spec.kind == PIN_GPIO && p->line) {
		if (gpiod_line_set_value(p->line, level ? 1 : 0) < 0)
			r = errno ? -errno : -EIO;
	} else if ((p->spec.kind == PIN_DTR || p->spec.kind == PIN_RTS) && p->modem_ok) {
		r = modem_set(p, level);
	}
	if (r == 0)
		p->level = level ? 1 : 0;
	return r;
}

void pins_posix_close(struct pin_out *p)
{
	if (p->line)
		gpiod_line_release(p->line);
	if (p->chip)
		gpiod_chip_close(p->chip);
	p->line = p->chip = NULL;
}
