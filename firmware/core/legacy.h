/* SPDX-License-Identifier: MIT */
/*
 * Legacy control port of the seed firmware (EspStmRemote), transport independent.
 *
 * The seed firmware served a raw TCP<->UART bridge on port 1234 and a control port on 1235
 * taking single-byte commands. Its documentation lists the commands and no answers (the
 * seed sent nothing back). We answer each command with one short ASCII line so a script
 * (or a person with nc) can tell it was taken; clients that ignore the control port's
 * output, as the seed's users did, are not affected.
 *
 *   byte  action (struct bridge of the same target, bridge_action())    answer line
 *   'r'   NRST pulse, BOOT0 unchanged                                    "OK reset\r\n"
 *   'u'   UART 115200 8E1, BOOT0 high, NRST pulse, settle: bootloader    "OK boot 115200 8E1\r\n"
 *   'e'   UART user baud 8N1, BOOT0 low, NRST pulse, settle: application "OK run BAUD 8N1\r\n"
 *   CR, LF (and NUL): ignored, no answer, no log (so "u\n" from nc/echo works)
 *   anything else: ignored, one log line, no answer
 * If the session cannot queue the action (queue full), the answer is "ERR busy\r\n"; 'u' in
 * locked mode (signed images only, bridge_settings.locked) is "ERR locked: signed images
 * only\r\n" and changes nothing.
 *
 * Differences from the seed (documented in firmware/posix/README.md): the seed released
 * BOOT0 right after the reset of 'u' and its 'e' changed only the framing (a later 'r' ran
 * the application); here 'u' keeps BOOT0 high until 'e', and 'e' resets into the
 * application itself. Commands are case-sensitive, as in the seed.
 */
#ifndef ESPSTM_LEGACY_H
#define ESPSTM_LEGACY_H

#include "bridge.h"
#include "lookalike.h"

#include <stddef.h>
#include <stdint.h>

#define LEGACY_RAW_PORT     1234
#define LEGACY_CONTROL_PORT 1235
#define LEGACY_ANSWER_MAX   40 /* longest answer line, bytes, including CR LF */

/*
 * One byte received on the control port of the target whose session is br. Runs the
 * command (queued on br, see bridge_action()) and writes its answer line to ans (size
 * ansz >= LEGACY_ANSWER_MAX, NUL-terminated). Returns the answer length (0 = no answer).
 */
size_t legacy_control_byte(struct bridge *br, uint8_t c, char *ans, size_t ansz);

/*
 * One control-port connection's input, with the HTTP guard (lookalike.h): the first bytes
 * are held until http_lookalike() decides; a connection whose first bytes look like an HTTP
 * request runs nothing at all (a browser's request to this port would otherwise run every
 * 'r', 'u' and 'e' of its text). Zero it with legacy_ctl_init() per connection.
 */
struct legacy_ctl {
	uint8_t head[HTTP_LOOKALIKE_MAX];
	size_t n;    /* bytes held in head */
	int verdict; /* -1 undecided, 0 commands, 1 HTTP (refused) */
};
void legacy_ctl_init(struct legacy_ctl *c);
/*
 * n bytes p received on the control connection c of the target whose session is br: each
 * command byte runs legacy_control_byte() and its answer line goes to emit(ctx, line, len).
 * Returns 0 (bytes run or held), or 1: the connection looks like HTTP: nothing ran or will
 * run; the caller sends http_lookalike_answer and closes it (later calls return 1 too).
 */
int legacy_control_input(struct legacy_ctl *c, struct bridge *br, const uint8_t *p, size_t n,
                         void (*emit)(void *ctx, const char *line, size_t len), void *ctx);

#endif
