/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge's --target tty:DEVICE: a real tty (a board's UART, a USB serial adapter)
 * as the bridge's UART, NRST and BOOT0 on GPIO lines or the tty's DTR/RTS (pins_posix.h).
 */
#ifndef ESPSTM_TTY_TARGET_H
#define ESPSTM_TTY_TARGET_H

#include "pins_posix.h"
#include "target.h"

/* --target tty:DEVICE with --nrst / --boot0 (kind PIN_NONE when not given) */
struct tty_target_opts {
	const char *device;
	struct pin_spec nrst, boot0;
};

/*
 * Open o->device (O_NONBLOCK, O_NOCTTY, exclusive: flock and TIOCEXCL), check that it is a
 * tty taking termios2, request NRST (level 1) and BOOT0 (level 0) and watch the tty for
 * input on a->loop (set before). Returns 0, or 1 (a runtime error: no such device, not a
 * tty, in use, GPIO line unavailable), message naming the device printed on stderr.
 */
int tty_target_open(struct app *a, const struct tty_target_opts *o);
extern const struct target_ops tty_target_ops;

#endif
