/* SPDX-License-Identifier: MIT */
/* Check test registration: each file in tests/unit/ registers its suites with
 * UNIT_SUITE(make_fn), where make_fn returns a Check Suite *. main.c runs them all. */
#ifndef ESPSTM_UNIT_H
#define ESPSTM_UNIT_H
#include <check.h>

typedef Suite *(*unit_suite_fn)(void);
/* Register a suite constructor; called from a constructor function before main(). */
void unit_register(unit_suite_fn fn);

#define UNIT_SUITE(fn)                                                                             \
	__attribute__((constructor)) static void unit_register_##fn(void)                          \
	{                                                                                          \
		unit_register(fn);                                                                 \
	}
#endif
