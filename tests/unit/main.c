/* SPDX-License-Identifier: MIT */
/* Runs every registered Check suite, or only the one named. Usage: unit-tests [SUITE]
 * (CK_RUN_SUITE / CK_RUN_CASE from Check also work). Exit status 0 only if all pass. */
#include "unit.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNIT_MAX_SUITES 64
static unit_suite_fn suites[UNIT_MAX_SUITES];
static int nsuites;

void unit_register(unit_suite_fn fn)
{
	if (nsuites >= UNIT_MAX_SUITES) {
		fprintf(stderr, "unit: too many suites (max %d)\n", UNIT_MAX_SUITES);
		abort();
	}
	suites[nsuites++] = fn;
}

int main(int argc, char **argv)
{
	if (nsuites == 0) {
		fprintf(stderr, "unit: no suites registered\n");
		return 1;
	}
	SRunner *sr = srunner_create(suites[0]());
	for (int i = 1; i < nsuites; i++)
		srunner_add_suite(sr, suites[i]());
	srunner_run(sr, argc > 1 ? argv[1] : NULL, NULL, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	if (argc > 1 && srunner_ntests_run(sr) == 0) {
		fprintf(stderr, "unit: no suite named '%s'\n", argv[1]);
		failed = 1;
	}
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
