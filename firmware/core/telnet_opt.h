/* SPDX-License-Identifier: MIT */
/*
 * telnet_opt: Telnet option negotiation (RFC 855) by RFC 1143's Q method, without the
 * queue bits. One engine for both ends of an RFC 2217 connection: the bridge's server
 * session (bridge.c) and espstmd's client. Sans-I/O: it says which verb to send; the
 * caller builds and sends it (tn_build_option) and logs.
 */
#ifndef ESPSTM_TELNET_OPT_H
#define ESPSTM_TELNET_OPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 1143 section 7: the state of one option on one side. */
enum telnet_q { TELNET_Q_NO, TELNET_Q_YES, TELNET_Q_WANTNO, TELNET_Q_WANTYES };

/* TELNET_US: the option on our side (we send WILL/WONT, the peer DO/DONT).
 * TELNET_HIM: on the peer's side (it sends WILL/WONT, we DO/DONT). */
enum telnet_side { TELNET_US = 0, TELNET_HIM = 1 };

#define TELNET_OPT_MAX 4 /* options one connection accepts (BINARY, SGA, COM-PORT) */

struct telnet_opt {
	uint8_t n;                    /* accepted options */
	uint8_t code[TELNET_OPT_MAX]; /* their codes (RFC 856 BINARY = 0, ...) */
	uint8_t q[2][TELNET_OPT_MAX]; /* enum telnet_q, per side, per accepted option */
	uint8_t refused[2][32];       /* bitmap: options already refused once, per side */
};

/*
 * Start a connection: accept the n options in codes (on either side, n <= TELNET_OPT_MAX),
 * everything TELNET_Q_NO. Any other option the peer asks for is refused, once per option
 * and side (a second request gets no answer, so two refusing peers cannot loop).
 */
void telnet_opt_init(struct telnet_opt *t, const uint8_t *codes, size_t n);

/*
 * We want opt enabled on side (RFC 1143 section 7, "we decide to ask to enable").
 * Returns the verb to send (TN_WILL for TELNET_US, TN_DO for TELNET_HIM), or 0 when nothing
 * is to be sent: already enabled or asked for, or opt is not an accepted option.
 */
uint8_t telnet_opt_enable(struct telnet_opt *t, enum telnet_side side, uint8_t opt);

/*
 * A received IAC verb opt (verb TN_WILL, TN_WONT, TN_DO or TN_DONT; anything else is
 * ignored). Updates the state as RFC 1143 section 7 says and returns the verb to answer
 * with, or 0 for no answer.
 */
uint8_t telnet_opt_recv(struct telnet_opt *t, uint8_t verb, uint8_t opt);

/* The state of opt on side; TELNET_Q_NO for an option that is not accepted. */
enum telnet_q telnet_opt_state(const struct telnet_opt *t, enum telnet_side side, uint8_t opt);

/* True when opt is one of the accepted options. */
bool telnet_opt_accepts(const struct telnet_opt *t, uint8_t opt);

/* The verb's name for logs: "WILL", "WONT", "DO", "DONT", or "?". */
const char *telnet_verb_name(uint8_t verb);

#endif
