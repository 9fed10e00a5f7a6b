/* SPDX-License-Identifier: MIT */
/*
 * espstm: the command-line tool (espstm.c is its main; the commands that talk to espstmd's
 * control socket live in cli_cmd.c). This header is what its other subcommands implement.
 */
#ifndef ESPSTM_ESPSTM_H
#define ESPSTM_ESPSTM_H

#include "cli_cmd.h" /* exit statuses CLI_EXIT_*, struct cli_globals cli_globals */

/*
 * `espstm flash ...` (espstm_flash.c). argv[0] is "flash", argv[1..] the
 * command's arguments exactly as given after it (`espstm [--socket P] [--json] flash ...`:
 * the global options before "flash" are in cli_globals, getopt(3) state is untouched, so
 * getopt_long may be used from optind = 1). Output goes to stdout/stderr.
 * Returns the process exit status: 0 only when the image was written (and verified when
 * asked), CLI_EXIT_USAGE (2) for a bad command line, others as espstm(1) documents.
 */
int espstm_flash_main(int argc, char **argv);

/* `espstm sign --key KEY [--addr ADDR|--hex] IMAGE [-o OUT]` (cli_sign.c): the signature of
 * IMAGE for a locked bridge (firmware/core/http_api.h "Signed images"). argv[0] is "sign".
 * Returns the exit status (0 written, 1, 2 usage, 65 bad key, 66 unreadable input). */
int espstm_sign_main(int argc, char **argv);

#endif
