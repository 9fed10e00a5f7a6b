/* SPDX-License-Identifier: MIT */
/*
 * cli_cmd: the `espstm` tool's command line and commands (status, reset, boot, run,
 * version, help), as a function of its arguments and two output streams, so the unit
 * tests run it whole against a real control socket. cli/espstm.c is only main().
 */
#ifndef ESPSTM_CLI_CMD_H
#define ESPSTM_CLI_CMD_H

#include "version.h"

#include <stdio.h>

/* Exit statuses (espstm(1) EXIT STATUS). */
#define CLI_EXIT_OK          0
#define CLI_EXIT_ERROR       1  /* the daemon answered an error */
#define CLI_EXIT_USAGE       2  /* bad command line */
#define CLI_EXIT_UNAVAILABLE 69 /* EX_UNAVAILABLE (sysexits.h): espstmd not reachable */

/* Environment variable naming the control socket (overridden by --socket). */
#define CLI_SOCKET_ENV "ESPSTM_SOCKET"
/* How long one exchange with espstmd may take, milliseconds. */
#define CLI_TIMEOUT_MS 10000

/* Options given before (or after) the command, as parsed by the last cli_main call. */
struct cli_globals {
	const char *socket; /* --socket PATH, else $ESPSTM_SOCKET, else CTL_DEFAULT_PATH */
	int json;           /* --json: print the daemon's JSON answer as it came */
};
extern struct cli_globals cli_globals;

/*
 * A subcommand implemented elsewhere (espstm flash): argv[0] is the command name, argv[1..]
 * its arguments (global options before the command already removed; getopt(3) state
 * untouched, so it may use getopt_long from optind = 1). Returns the exit status.
 */
typedef int (*cli_subcommand_fn)(int argc, char **argv);

/* `espstm pair` / `espstm unpair` (cli_pair.c) and `espstm sign` (cli_sign.c): set before
 * cli_main by the program that links them (NULL: "not available in this build", as flash). */
extern cli_subcommand_fn cli_pair_fn, cli_unpair_fn, cli_sign_fn;

/*
 * Run `espstm ARGS...`: argv[0] is the program name. Normal output goes to out, messages
 * about errors to err. flash runs `espstm flash ...` (NULL: "not available").
 * Returns the exit status: CLI_EXIT_OK, CLI_EXIT_ERROR (espstmd answered an error; its
 * message is on err), CLI_EXIT_USAGE, CLI_EXIT_UNAVAILABLE (no answer from the socket;
 * the message names the socket path), or whatever flash returned.
 */
int cli_main(int argc, char **argv, FILE *out, FILE *err, cli_subcommand_fn flash);

#endif
