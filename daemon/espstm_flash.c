/* SPDX-License-Identifier: MIT */
/*
 * `espstm flash`: placeholder. Helper H7 replaces this file with the real command
 * (issue 5: upload over the bridge's HTTP API, progress, verify), keeping the
 * espstm_flash_main() contract of daemon/espstm.h.
 */
#include "espstm.h"

#include <stdio.h>
#include <string.h>

int espstm_flash_main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("Usage: espstm flash DEVICE FILE [OPTIONS]\n"
			       "espstm flash: not available in this build\n");
			return CLI_EXIT_USAGE;
		}
	}
	fprintf(stderr, "espstm flash: not available in this build\n");
	return CLI_EXIT_USAGE;
}
