/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge's NRST and BOOT0 outputs on Linux for --target tty:DEVICE: a GPIO line
 * (libgpiod 1.6 character device API; NRST open-drain, BOOT0 push-pull) or a modem control
 * line of the target tty itself (DTR/RTS through TIOCMBIS/TIOCMBIC, as stm32flash: DTR =
 * NRST, RTS = BOOT0). Levels are the electrical level at the STM32 pin (hal.h gpio_set).
 */
#ifndef ESPSTM_PINS_POSIX_H
#define ESPSTM_PINS_POSIX_H

#include <stddef.h>

enum pin_kind { PIN_NONE = 0, PIN_DTR, PIN_RTS, PIN_GPIO };

/* One --nrst / --boot0 argument. */
struct pin_spec {
	enum pin_kind kind;
	char chip[64]; /* PIN_GPIO with an offset: gpiochipN, N, /dev/gpiochipN or a label */
	int offset;    /* its line offset; -1: find the line by name */
	char name[64]; /* PIN_GPIO by name (gpiod_line_find) */
	int invert;    /* --invert-nrst / --invert-boot0: an inverting stage in between */
};

/*
 * Parse s: "none", "dtr", "rts", "CHIP:OFFSET" (OFFSET decimal, 0..65535) or a GPIO line
 * name (anything else, 1..63 characters) into *out (invert = 0). Returns 0, or -EINVAL
 * (empty, too long, a CHIP:OFFSET with an empty chip).
 */
int pins_posix_parse(const char *s, struct pin_spec *out);

/* A requested output. */
struct pin_out {
	struct pin_spec spec;
	int is_nrst;   /* NRST (open-drain) or BOOT0 (push-pull) */
	int tty_fd;    /* PIN_DTR/PIN_RTS: the target tty */
	int modem_ok;  /* the tty has modem lines (TIOCMGET worked; a pty has none) */
	void *chip;    /* PIN_GPIO: struct gpiod_chip * */
	void *line;    /* PIN_GPIO: struct gpiod_line * */
	int level;     /* last level set, -1: none yet */
	char desc[96]; /* for the log: "DTR (asserted = low)", "gpiochip0:17 open-drain", ... */
};

/*
 * Request the output *s for NRST (is_nrst) or BOOT0 on p, at the electrical level
 * initial (0/1). tty_fd: the target tty for PIN_DTR/PIN_RTS. A tty without modem lines
 * (TIOCMGET fails: a pty) is not an error: p->modem_ok = 0, a warning goes to err, and
 * setting the pin does nothing. Returns 0, or a negative errno with a message in err
 * (-ENOENT: no such chip/line, -EBUSY: line used by another program, ...).
 */
int pins_posix_open(struct pin_out *p, const struct pin_spec *s, int is_nrst, int tty_fd,
                    int initial, char *err, size_t errlen);

/*
 * Drive p to the electrical level (0 low, 1 high). Modem lines: low = line asserted
 * (TIOCMBIS; the adapter's DTR#/RTS# output is active-low), high = deasserted (TIOCMBIC);
 * invert swaps. GPIO: the line's value, with invert through the active-low flag.
 * Returns 0 or a negative errno (the pin keeps its level).
 */
int pins_posix_set(struct pin_out *p, int level);

/* Release p (GPIO line and chip); the level stays as it was on modem lines. */
void pins_posix_close(struct pin_out *p);

#endif
