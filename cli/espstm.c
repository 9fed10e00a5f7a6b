/* SPDX-License-Identifier: MIT */
/*
 * espstm: command-line tool for espstmd (status, reset, boot, run, version, flash), the
 * bridges' pairing (pair, unpair) and image signatures (sign).
 * Usage: espstm [--socket PATH] [--json] COMMAND [ARGS]; see espstm(1) and cli_cmd.h.
 */
#include "espstm.h"

#include "cli_pair.h"

#include <stdio.h>

int main(int argc, char **argv)
{
	cli_pair_fn = espstm_pair_main;
	cli_unpair_fn = espstm_unpair_main;
	cli_sign_fn = espstm_sign_main;
	int rc = cli_main(argc, argv, stdout, stderr, espstm_flash_main);
	if (fflush(stdout) != 0 && rc == CLI_EXIT_OK) {
		perror("espstm: stdout");
		rc = CLI_EXIT_ERROR;
	}
	return rc;
}
