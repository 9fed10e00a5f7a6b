/* SPDX-License-Identifier: MIT */
/* Unit tests for firmware/core/telnet_opt.c: RFC 1143 section 7 (the Q method without the
 * queue bits), one transition at a time, and the once-only refusal of other options. */
#include "rfc2217.h"
#include "telnet_opt.h"
#include "unit.h"

static const uint8_t opts[] = {TELOPT_BINARY, TELOPT_SGA, TELOPT_COMPORT};
static struct telnet_opt T;

static void setup(void)
{
	telnet_opt_init(&T, opts, sizeof(opts));
}

#define STATE(side, opt) telnet_opt_state(&T, side, opt)

/* Put an accepted option on one side into state q (as a sequence of verbs would). */
static void force(enum telnet_side side, uint8_t opt, enum telnet_q q)
{
	for (int i = 0; i < T.n; i++)
		if (T.code[i] == opt)
			T.q[side][i] = (uint8_t)q;
	ck_assert_int_eq(STATE(side, opt), q);
}

START_TEST(init_accepts_only_the_given_options)
{
	for (size_t i = 0; i < sizeof(opts); i++) {
		ck_assert(telnet_opt_accepts(&T, opts[i]));
		ck_assert_int_eq(STATE(TELNET_US, opts[i]), TELNET_Q_NO);
		ck_assert_int_eq(STATE(TELNET_HIM, opts[i]), TELNET_Q_NO);
	}
	ck_assert(!telnet_opt_accepts(&T, TELOPT_ECHO));
	ck_assert(!telnet_opt_accepts(&T, 255));
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_ECHO), TELNET_Q_NO);
	/* nothing accepted: every request is refused */
	telnet_opt_init(&T, opts, 0);
	ck_assert(!telnet_opt_accepts(&T, TELOPT_BINARY));
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_BINARY), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_BINARY), TN_WONT);
}
END_TEST

/* "We decide to ask to enable": NO -> WANTYES with WILL (us) or DO (him), once. */
START_TEST(enable_asks_once)
{
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_BINARY), TN_WILL);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_BINARY), TELNET_Q_WANTYES);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_NO);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_BINARY), 0);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_HIM, TELOPT_BINARY), TN_DO);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_WANTYES);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_HIM, TELOPT_BINARY), 0);
	/* already enabled: nothing to send */
	force(TELNET_US, TELOPT_SGA, TELNET_Q_YES);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_SGA), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_SGA), TELNET_Q_YES);
	/* an option that is not accepted is never asked for */
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_ECHO), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_ECHO), TELNET_Q_NO);
}
END_TEST

/* WANTYES: the peer's agreement enables it, its refusal disables it; neither is answered
 * (answering would loop). */
START_TEST(wantyes_agreed_or_refused_without_answer)
{
	telnet_opt_enable(&T, TELNET_US, TELOPT_COMPORT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_COMPORT), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_COMPORT), TELNET_Q_YES);

	telnet_opt_enable(&T, TELNET_HIM, TELOPT_COMPORT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_COMPORT), 0);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_COMPORT), TELNET_Q_YES);

	/* our WILL answered by DONT, our DO answered by WONT: NO, silently */
	telnet_opt_enable(&T, TELNET_US, TELOPT_SGA);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DONT, TELOPT_SGA), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_SGA), TELNET_Q_NO);
	telnet_opt_enable(&T, TELNET_HIM, TELOPT_SGA);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WONT, TELOPT_SGA), 0);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_SGA), TELNET_Q_NO);
	/* and it may be asked for again */
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_SGA), TN_WILL);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_HIM, TELOPT_SGA), TN_DO);
}
END_TEST

/* NO: the peer asks, we agree (accepted option) and answer; a "no" needs no answer. */
START_TEST(no_agrees_to_a_request)
{
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_BINARY), TN_WILL);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_BINARY), TELNET_Q_YES);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_NO);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_BINARY), TN_DO);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_YES);

	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DONT, TELOPT_SGA), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WONT, TELOPT_SGA), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_SGA), TELNET_Q_NO);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_SGA), TELNET_Q_NO);
}
END_TEST

/* YES: a repeated "yes" is not answered (no loop); a "no" disables and is acknowledged
 * once. */
START_TEST(yes_acknowledges_disable_once)
{
	force(TELNET_US, TELOPT_BINARY, TELNET_Q_YES);
	force(TELNET_HIM, TELOPT_BINARY, TELNET_Q_YES);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_BINARY), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_BINARY), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_BINARY), TELNET_Q_YES);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_YES);

	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DONT, TELOPT_BINARY), TN_WONT);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_BINARY), TELNET_Q_NO);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_YES);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DONT, TELOPT_BINARY), 0);

	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WONT, TELOPT_BINARY), TN_DONT);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_NO);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WONT, TELOPT_BINARY), 0);
}
END_TEST

/* WANTNO (we asked to disable): a "no" completes it; a "yes" is the error case of RFC 1143
 * (the peer answered DONT with WILL): the option ends disabled, nothing is sent. */
START_TEST(wantno_ends_no_also_on_error)
{
	static const uint8_t verbs[2][2] = {{TN_DONT, TN_DO}, {TN_WONT, TN_WILL}};
	for (int side = TELNET_US; side <= TELNET_HIM; side++) {
		for (int yes = 0; yes < 2; yes++) {
			setup();
			force((enum telnet_side)side, TELOPT_SGA, TELNET_Q_WANTNO);
			ck_assert_uint_eq(telnet_opt_recv(&T, verbs[side][yes], TELOPT_SGA), 0);
			ck_assert_int_eq(STATE((enum telnet_side)side, TELOPT_SGA), TELNET_Q_NO);
			ck_assert_int_eq(STATE((enum telnet_side) !side, TELOPT_SGA), TELNET_Q_NO);
		}
	}
}
END_TEST

/* Other options are refused once per option and side; a second request, and any "no",
 * gets no answer, so two refusing peers cannot loop. */
START_TEST(refusal_once_per_option_and_side)
{
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_ECHO), TN_WONT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_ECHO), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_ECHO), TN_DONT); /* other side */
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_ECHO), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DONT, 24), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WONT, 24), 0);
	/* each option has its own bit, up to 255 */
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, 24), TN_DONT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, 25), TN_DONT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, 255), TN_WONT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, 255), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, 254), TN_WONT);
	ck_assert_int_eq(STATE(TELNET_US, 255), TELNET_Q_NO);
	/* accepted options are not affected */
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_BINARY), TN_WILL);
	/* a new connection (init) refuses again */
	setup();
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_ECHO), TN_WONT);
}
END_TEST

START_TEST(other_verbs_and_names)
{
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_SB, TELOPT_BINARY), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, 0, TELOPT_ECHO), 0);
	ck_assert_int_eq(STATE(TELNET_US, TELOPT_BINARY), TELNET_Q_NO);
	ck_assert_int_eq(STATE(TELNET_HIM, TELOPT_BINARY), TELNET_Q_NO);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_ECHO), TN_WONT); /* not used up */
	ck_assert_str_eq(telnet_verb_name(TN_WILL), "WILL");
	ck_assert_str_eq(telnet_verb_name(TN_WONT), "WONT");
	ck_assert_str_eq(telnet_verb_name(TN_DO), "DO");
	ck_assert_str_eq(telnet_verb_name(TN_DONT), "DONT");
	ck_assert_str_eq(telnet_verb_name(TN_SB), "?");
}
END_TEST

/* The bridge's opening against pyserial's (bridge_test.c negotiate_pyserial) verb by verb. */
START_TEST(server_opening)
{
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_BINARY), TN_WILL);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_HIM, TELOPT_BINARY), TN_DO);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_SGA), TN_WILL);
	ck_assert_uint_eq(telnet_opt_enable(&T, TELNET_US, TELOPT_COMPORT), TN_WILL);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_ECHO), TN_WONT);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_SGA), TN_DO);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_SGA), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_COMPORT), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_COMPORT), TN_DO);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_DO, TELOPT_BINARY), 0);
	ck_assert_uint_eq(telnet_opt_recv(&T, TN_WILL, TELOPT_BINARY), 0);
	for (size_t i = 0; i < sizeof(opts); i++) {
		ck_assert_int_eq(STATE(TELNET_US, opts[i]), TELNET_Q_YES);
		ck_assert_int_eq(STATE(TELNET_HIM, opts[i]), TELNET_Q_YES);
	}
}
END_TEST

static Suite *telnet_opt_suite(void)
{
	Suite *s = suite_create("telnet_opt");
	TCase *tc = tcase_create("rfc1143");
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, init_accepts_only_the_given_options);
	tcase_add_test(tc, enable_asks_once);
	tcase_add_test(tc, wantyes_agreed_or_refused_without_answer);
	tcase_add_test(tc, no_agrees_to_a_request);
	tcase_add_test(tc, yes_acknowledges_disable_once);
	tcase_add_test(tc, wantno_ends_no_also_on_error);
	tcase_add_test(tc, refusal_once_per_option_and_side);
	tcase_add_test(tc, other_verbs_and_names);
	tcase_add_test(tc, server_opening);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(telnet_opt_suite)
