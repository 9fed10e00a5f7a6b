/* SPDX-License-Identifier: MIT */
/* cli_cmd: the espstm tool's commands over espstmd's control socket. See cli_cmd.h. */
#include "cli_cmd.h"

#include "cli_client.h"
#include "cli_json.h"
#include "cli_status.h"
#include "ctl_proto.h" /* CTL_DEFAULT_PATH, the protocol */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct cli_globals cli_globals;

struct command {
	const char *name;
	const char *args;    /* synopsis after the name */
	const char *summary; /* one line for the command list */
	const char *help;    /* the rest of `espstm CMD --help` */
	int (*run)(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err);
};

static const struct command *find_command(const char *name);

static const char general_help[] =
    "Usage: espstm [--socket PATH] [--json] COMMAND [ARGS]\n"
    "\n"
    "Query and control espstmd, the daemon behind /dev/ttySTM* (an STM32 behind an ESP\n"
    "WiFi bridge, reached over RFC 2217).\n"
    "\n"
    "Commands:\n";

static const char general_options[] =
    "\n"
    "Options (before or after the command):\n"
    "  -s, --socket PATH  espstmd's control socket (default: $" CLI_SOCKET_ENV ", else\n"
    "                     " CTL_DEFAULT_PATH ")\n"
    "  -j, --json         print espstmd's JSON answer as it came\n"
    "  -h, --help         show help (of a command: espstm COMMAND --help)\n"
    "  -V, --version      show the version of this tool\n"
    "\n"
    "DEVICE is a device name as espstmd knows it: ttySTM0 or /dev/ttySTM0.\n"
    "Exit status: 0 ok, 1 espstmd answered an error, 2 usage, 69 espstmd not reachable.\n"
    "espstm pair/unpair: 0 ok, 1 error, 2 usage, 3 the bridge's certificate changed.\n"
    "espstm flash: 0 only after the image was written and verified (--no-verify: written),\n"
    "1 flash failed or refused, 65 IMAGE unusable, 66 IMAGE or password file unreadable,\n"
    "69 espstmd or the bridge not reachable, 77 password refused, 130 interrupted.\n"
    "See espstm(1).\n";

static void print_general_help(FILE *out);

static void usage_hint(FILE *err, const char *cmd)
{
	if (cmd)
		fprintf(err, "Try 'espstm %s --help'.\n", cmd);
	else
		fprintf(err, "Try 'espstm --help'.\n");
}

/* Transport failure: message naming the socket, exit 69. */
static int unavailable(FILE *err, int rc, enum cli_stage st)
{
	const char *path = cli_globals.socket;
	switch (st) {
	case CLI_STAGE_CONNECT:
		fprintf(err, "espstm: cannot connect to espstmd at %s: %s\n", path, strerror(-rc));
		if (rc == -ENOENT || rc == -ECONNREFUSED)
			fprintf(err,
			        "espstm: is espstmd running with --control %s? (--socket or $%s "
			        "select another socket)\n",
			        path, CLI_SOCKET_ENV);
		else if (rc == -EACCES || rc == -EPERM)
			fprintf(err,
			        "espstm: no permission on %s (run as root or as a member of "
			        "the socket's group)\n",
			        path);
		break;
	case CLI_STAGE_SEND:
		fprintf(err, "espstm: cannot send the request to espstmd at %s: %s\n", path,
		        strerror(-rc));
		break;
	default:
		if (rc == -ETIMEDOUT)
			fprintf(err, "espstm: no answer from espstmd at %s within %d s\n", path,
			        CLI_TIMEOUT_MS / 1000);
		else if (rc == -ECONNRESET)
			fprintf(err,
			        "espstm: espstmd at %s closed the connection without an answer\n",
			        path);
		else
			fprintf(err, "espstm: no answer from espstmd at %s: %s\n", path,
			        strerror(-rc));
		break;
	}
	return CLI_EXIT_UNAVAILABLE;
}

/*
 * Send request, parse the answer. Returns CLI_EXIT_OK with *answer (ok:true), or an exit
 * status after printing the reason (with --json the daemon's answer is printed too).
 */
static int exchange(const char *request, FILE *out, FILE *err, struct cj **answer)
{
	char *raw = NULL;
	enum cli_stage st;
	char perr[96];

	*answer = NULL;
	int rc = cli_request(cli_globals.socket, request, CLI_TIMEOUT_MS, &raw, &st);
	if (rc < 0)
		return unavailable(err, rc, st);
	struct cj *a = cj_parse(raw, strlen(raw), perr, sizeof perr);
	int ok = a ? cj_bool(cj_get(a, "ok")) : -1;
	if (!a || ok < 0) {
		fprintf(err, "espstm: unreadable answer from espstmd at %s (%s): %.200s\n",
		        cli_globals.socket, a ? "no \"ok\" member" : perr, raw);
		cj_free(a);
		free(raw);
		return CLI_EXIT_ERROR;
	}
	if (cli_globals.json)
		fprintf(out, "%s\n", raw);
	if (!ok) {
		const char *msg = cj_str(cj_get(a, "error"));
		fprintf(err, "espstm: %s\n", msg ? msg : "espstmd answered an error");
		cj_free(a);
		free(raw);
		return CLI_EXIT_ERROR;
	}
	*answer = a;
	free(raw);
	return CLI_EXIT_OK;
}

/* Parse a command's own arguments: --help, --json, --socket anywhere; positional ones
 * collected into pos (at most maxpos). Returns -1 after printing help (exit 0), -2 after a
 * usage message (exit 2), else the number of positional arguments. */
static int parse_args(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err,
                      char **pos, int maxpos);

static void print_command_help(const struct command *cmd, FILE *out)
{
	fprintf(out, "Usage: espstm [--socket PATH] [--json] %s%s%s\n\n%s", cmd->name,
	        cmd->args[0] ? " " : "", cmd->args, cmd->help);
}

static int run_status(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err)
{
	char *pos[1];
	char req[32 + CLI_DEVNAME_MAX];
	int n = parse_args(cmd, argc, argv, out, err, pos, 1);
	if (n < 0)
		return n == -1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if (n == 1) {
		const char *name = cli_devname(pos[0]);
		if (!name) {
			fprintf(err, "espstm: status: '%s' is not a device name\n", pos[0]);
			usage_hint(err, cmd->name);
			return CLI_EXIT_USAGE;
		}
		snprintf(req, sizeof req, "status %s", name);
	} else {
		snprintf(req, sizeof req, "status");
	}
	struct cj *a;
	int rc = exchange(req, out, err, &a);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (!cli_globals.json && cli_print_status(out, a) < 0) {
		fprintf(err, "espstm: espstmd's status answer has no device list\n");
		rc = CLI_EXIT_ERROR;
	}
	cj_free(a);
	return rc;
}

static int run_action(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err)
{
	char *pos[1];
	char req[32 + CLI_DEVNAME_MAX];
	int n = parse_args(cmd, argc, argv, out, err, pos, 1);
	if (n < 0)
		return n == -1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if (n == 0) {
		fprintf(err, "espstm: %s: missing DEVICE\n", cmd->name);
		usage_hint(err, cmd->name);
		return CLI_EXIT_USAGE;
	}
	const char *name = cli_devname(pos[0]);
	if (!name) {
		fprintf(err, "espstm: %s: '%s' is not a device name\n", cmd->name, pos[0]);
		usage_hint(err, cmd->name);
		return CLI_EXIT_USAGE;
	}
	snprintf(req, sizeof req, "%s %s", cmd->name, name);
	struct cj *a;
	int rc = exchange(req, out, err, &a);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (!cli_globals.json) {
		const char *what = strcmp(cmd->name, "boot") == 0  ? "reset into the bootloader"
		                   : strcmp(cmd->name, "run") == 0 ? "reset into the application"
		                                                   : "reset";
		fprintf(out, "%s: %s\n", name, what);
	}
	cj_free(a);
	return rc;
}

static int run_version(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err)
{
	char *pos[1];
	int n = parse_args(cmd, argc, argv, out, err, pos, 0);
	if (n < 0)
		return n == -1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if (!cli_globals.json)
		fprintf(out, "espstm %s\n", ESPSTM_VERSION);
	struct cj *a;
	int rc = exchange("version", out, err, &a);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (!cli_globals.json) {
		const char *v = cj_str(cj_get(a, "version"));
		fprintf(out, "espstmd %s\n", v ? v : "(unknown)");
	}
	cj_free(a);
	return rc;
}

static cli_subcommand_fn flash_fn;
cli_subcommand_fn cli_pair_fn, cli_unpair_fn, cli_sign_fn;

/* pair / unpair (cli_pair.c), sign (cli_sign.c), set by espstm.c: NULL when not linked. */
static cli_subcommand_fn external_fn(const char *name)
{
	if (strcmp(name, "sign") == 0)
		return cli_sign_fn;
	return strcmp(name, "pair") == 0 ? cli_pair_fn : cli_unpair_fn;
}

static int run_external(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err)
{
	cli_subcommand_fn fn = external_fn(cmd->name);
	if (!fn) {
		fprintf(err, "espstm %s: not available in this build\n", cmd->name);
		return CLI_EXIT_USAGE;
	}
	fflush(out);
	fflush(err);
	return fn(argc, argv);
}

static int run_flash(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err)
{
	(void)cmd;
	(void)out;
	if (!flash_fn) {
		fprintf(err, "espstm flash: not available in this build\n");
		return CLI_EXIT_USAGE;
	}
	fflush(out);
	fflush(err);
	return flash_fn(argc, argv);
}

static int run_help(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err)
{
	char *pos[1];
	int n = parse_args(cmd, argc, argv, out, err, pos, 1);
	if (n < 0)
		return n == -1 ? CLI_EXIT_OK : CLI_EXIT_USAGE;
	if (n == 0) {
		print_general_help(out);
		return CLI_EXIT_OK;
	}
	const struct command *c = find_command(pos[0]);
	if (!c) {
		fprintf(err, "espstm: help: unknown command '%s'\n", pos[0]);
		usage_hint(err, NULL);
		return CLI_EXIT_USAGE;
	}
	if (strcmp(c->name, "flash") == 0 && flash_fn) {
		char *fargv[] = {(char *)"flash", (char *)"--help", NULL};
		fflush(out);
		return flash_fn(2, fargv);
	}
	if (c->run == run_external && external_fn(c->name)) {
		char *fargv[] = {(char *)c->name, (char *)"--help", NULL};
		fflush(out);
		return external_fn(c->name)(2, fargv);
	}
	print_command_help(c, out);
	return CLI_EXIT_OK;
}

static const struct command commands[] = {
    {"status", "[DEVICE]", "link state, peer, line settings, modem lines, counters",
     "Show each device espstmd serves (or only DEVICE): link state and for how long, the\n"
     "bridge's address, TCP round-trip time, line settings (\"115200 8N1\"), flow control,\n"
     "modem lines DTR/RTS/CTS/DSR/CD/RI, bytes each way, dropped bytes, open file\n"
     "descriptors, connects/reconnects/errors, line errors and the last error.\n"
     "With --json, print espstmd's JSON answer instead (keys in espstm(1)).\n",
     run_status},
    {"reset", "DEVICE", "reset the STM32 (pulse NRST, BOOT0 unchanged)",
     "Pulse the STM32's NRST through the bridge; BOOT0 stays as it is.\n", run_action},
    {"boot", "DEVICE", "reset the STM32 into its system bootloader (BOOT0 high)",
     "Raise BOOT0 and pulse NRST, so the STM32 starts its ROM bootloader (AN3155),\n"
     "ready for 0x7F at 8E1.\n",
     run_action},
    {"run", "DEVICE", "reset the STM32 into its application (BOOT0 low)",
     "Lower BOOT0 and pulse NRST, so the STM32 starts the application in flash.\n", run_action},
    {"version", "", "versions of this tool and of espstmd",
     "Print this tool's version and the version of the espstmd answering on the socket.\n",
     run_version},
    {"flash", "DEVICE FILE [OPTIONS]", "write an image to the STM32 through the bridge",
     "Write FILE to the STM32's flash through the ESP bridge (see espstm(1), FLASH).\n", run_flash},
    {"pair", "HOST[:PORT] [OPTIONS]", "fetch a bridge's unit key over HTTPS (pinned)",
     "Pin the bridge's certificate, fetch its unit key for espstmd (see espstm(1), PAIRING).\n",
     run_external},
    {"unpair", "HOST [--rotate]", "forget a bridge's key and pin",
     "Remove the key file and the pin of HOST; --rotate replaces the unit's key.\n", run_external},
    {"sign", "--key KEY IMAGE", "sign an image for a bridge in locked mode",
     "Write IMAGE.sig, the ECDSA P-256 signature a locked bridge checks (espstm(1), SIGNED\n"
     "IMAGES). Needs neither espstmd nor a bridge.\n",
     run_external},
    {"help", "[COMMAND]", "this help, or a command's", "Show the help of espstm or of COMMAND.\n",
     run_help},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void print_general_help(FILE *out)
{
	fputs(general_help, out);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char syn[48];
		snprintf(syn, sizeof syn, "%s%s%s", commands[i].name,
		         commands[i].args[0] ? " " : "", commands[i].args);
		fprintf(out, "  %-28s %s\n", syn, commands[i].summary);
	}
	fputs(general_options, out);
}

/* A global option at argv[*i]: 1 consumed (maybe with its value), 0 not one, -2 usage. */
static int global_option(int argc, char **argv, int *i, FILE *err, const char *cmd)
{
	const char *a = argv[*i];
	if (strcmp(a, "--json") == 0 || strcmp(a, "-j") == 0) {
		cli_globals.json = 1;
		return 1;
	}
	if (strncmp(a, "--socket=", 9) == 0) {
		cli_globals.socket = a + 9;
	} else if (strcmp(a, "--socket") == 0 || strcmp(a, "-s") == 0) {
		if (*i + 1 >= argc) {
			fprintf(err, "espstm: option '%s' needs a PATH\n", a);
			usage_hint(err, cmd);
			return -2;
		}
		cli_globals.socket = argv[++*i];
	} else {
		return 0;
	}
	if (!cli_globals.socket[0]) {
		fprintf(err, "espstm: empty socket path\n");
		usage_hint(err, cmd);
		return -2;
	}
	return 1;
}

static int parse_args(const struct command *cmd, int argc, char **argv, FILE *out, FILE *err,
                      char **pos, int maxpos)
{
	int npos = 0, opts_done = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!opts_done && a[0] == '-' && a[1]) {
			if (strcmp(a, "--") == 0) {
				opts_done = 1;
				continue;
			}
			if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
				print_command_help(cmd, out);
				return -1;
			}
			int g = global_option(argc, argv, &i, err, cmd->name);
			if (g < 0)
				return -2;
			if (g > 0)
				continue;
			fprintf(err, "espstm: %s: unknown option '%s'\n", cmd->name, a);
			usage_hint(err, cmd->name);
			return -2;
		}
		if (npos >= maxpos) {
			fprintf(err, "espstm: %s: unexpected argument '%s'\n", cmd->name, a);
			usage_hint(err, cmd->name);
			return -2;
		}
		pos[npos++] = argv[i];
	}
	return npos;
}

int cli_main(int argc, char **argv, FILE *out, FILE *err, cli_subcommand_fn flash)
{
	const char *env = getenv(CLI_SOCKET_ENV);
	cli_globals.socket = env && *env ? env : CTL_DEFAULT_PATH;
	cli_globals.json = 0;
	flash_fn = flash;

	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1])
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			print_general_help(out);
			return CLI_EXIT_OK;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			fprintf(out, "espstm %s\n", ESPSTM_VERSION);
			return CLI_EXIT_OK;
		}
		int g = global_option(argc, argv, &i, err, NULL);
		if (g < 0)
			return CLI_EXIT_USAGE;
		if (g == 0) {
			fprintf(err, "espstm: unknown option '%s'\n", a);
			usage_hint(err, NULL);
			return CLI_EXIT_USAGE;
		}
	}
	if (i >= argc) {
		fprintf(err, "espstm: missing COMMAND\n");
		print_general_help(err);
		return CLI_EXIT_USAGE;
	}
	const struct command *cmd = find_command(argv[i]);
	if (!cmd) {
		fprintf(err, "espstm: unknown command '%s'\n", argv[i]);
		usage_hint(err, NULL);
		return CLI_EXIT_USAGE;
	}
	return cmd->run(cmd, argc - i, argv + i, out, err);
}
