/* SPDX-License-Identifier: MIT */
/* telnet_opt: RFC 1143 Q-method option negotiation, shared by the bridge and the client. */
#include "telnet_opt.h"
#include "rfc2217.h"
#include <assert.h>
#include <string.h>

static int slot(const struct telnet_opt *t, uint8_t opt)
{
	for (int i = 0; i < t->n; i++)
		if (t->code[i] == opt)
			return i;
	return -1;
}

void telnet_opt_init(struct telnet_opt *t, const uint8_t *codes, size_t n)
{
	assert(n <= TELNET_OPT_MAX);
	memset(t, 0, sizeof(*t));
	t->n = (uint8_t)n;
	memcpy(t->code, codes, n);
}

uint8_t telnet_opt_enable(struct telnet_opt *t, enum telnet_side side, uint8_t opt)
{
	int i = slot(t, opt);
	if (i < 0 || t->q[side][i] != TELNET_Q_NO)
		return 0;
	t->q[side][i] = TELNET_Q_WANTYES;
	return side == TELNET_US ? TN_WILL : TN_DO;
}

/* The refusal of an option we do not accept: once per option and side. */
static uint8_t refuse(struct telnet_opt *t, enum telnet_side side, uint8_t opt, uint8_t no)
{
	uint8_t bit = (uint8_t)(1u << (opt & 7));
	if (t->refused[side][opt >> 3] & bit)
		return 0;
	t->refused[side][opt >> 3] |= bit;
	return no;
}

uint8_t telnet_opt_recv(struct telnet_opt *t, uint8_t verb, uint8_t opt)
{
	enum telnet_side side;
	uint8_t yes, no;
	bool positive;

	switch (verb) {
	case TN_WILL:
	case TN_WONT:
		side = TELNET_HIM, yes = TN_DO, no = TN_DONT;
		positive = verb == TN_WILL;
		break;
	case TN_DO:
	case TN_DONT:
		side = TELNET_US, yes = TN_WILL, no = TN_WONT;
		positive = verb == TN_DO;
		break;
	default:
		return 0;
	}
	int i = slot(t, opt);
	if (i < 0) /* never enabled: a "no" needs no answer (RFC 1143: state NO) */
		return positive ? refuse(t, side, opt, no) : 0;
	uint8_t *q = &t->q[side][i];
	switch (*q) {
	case TELNET_Q_NO:
		if (!positive)
			return 0;
		*q = TELNET_Q_YES;
		return yes;
	case TELNET_Q_YES:
		if (positive)
			return 0;
		*q = TELNET_Q_NO;
		return no;
	case TELNET_Q_WANTNO: /* a "yes" to our "no" is an RFC 1143 error: stay no */
		*q = TELNET_Q_NO;
		return 0;
	case TELNET_Q_WANTYES:
		*q = positive ? TELNET_Q_YES : TELNET_Q_NO;
		return 0;
	}
	assert(0 && "telnet_opt: state out of range");
	return 0;
}

enum telnet_q telnet_opt_state(const struct telnet_opt *t, enum telnet_side side, uint8_t opt)
{
	int i = slot(t, opt);
	return i < 0 ? TELNET_Q_NO : (enum telnet_q)t->q[side][i];
}

bool telnet_opt_accepts(const struct telnet_opt *t, uint8_t opt)
{
	return slot(t, opt) >= 0;
}

const char *telnet_verb_name(uint8_t verb)
{
	switch (verb) {
	case TN_WILL:
		return "WILL";
	case TN_WONT:
		return "WONT";
	case TN_DO:
		return "DO";
	case TN_DONT:
		return "DONT";
	default:
		return "?";
	}
}
