/* SPDX-License-Identifier: MIT */
/* cli_flash: the plain-C parts of `espstm flash`. See cli_flash.h. */
#include "cli_flash.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static const char help_text[] =
    "Usage: espstm flash DEVICE IMAGE [OPTIONS]\n"
    "       espstm flash --host HOST[:PORT] IMAGE [OPTIONS]\n"
    "\n"
    "Write IMAGE (.bin, or Intel HEX) to the STM32 behind an espstm bridge. The image goes\n"
    "to the bridge once over HTTP (POST /api/targets/N/flash) and the bridge's own AN3155\n"
    "master writes it at UART speed. DEVICE (ttySTM0 or /dev/ttySTM0) names the bridge\n"
    "through espstmd (its host and http_port); --host names it directly.\n"
    "\n"
    "Options:\n"
    "  -a, --address A        where the first byte goes (.bin only; 0x-hex or decimal,\n"
    "                         a multiple of 4; default: the chip's flash base)\n"
    "  -v, --verify           read every block back and compare (the default: exit 0\n"
    "                         only after every byte was verified)\n"
    "      --no-verify        do not read back; success then says \"written, NOT\n"
    "                         verified\" on standard error (still exit 0)\n"
    "  -g, --go               start the application afterwards (else the chip stays in\n"
    "                         its bootloader)\n"
    "  -f, --format bin|hex   image format (default: from the name: .hex, .ihex, .ihx\n"
    "                         are Intel HEX, anything else is binary)\n"
    "      --unprotect        remove read/write protection if found (READOUT UNPROTECT\n"
    "                         erases the whole flash)\n"
    "      --stage            verify before commit: the bridge stores the whole image\n"
    "                         first and checks its CRC-32 (computed here) before it\n"
    "                         touches the STM32; nothing is flashed if it differs\n"
    "      --sig FILE         signature for a locked bridge (espstm sign; default\n"
    "                         IMAGE.sig if it exists): sent as X-Espstm-Signature\n"
    "  -t, --target N         target N of the bridge (default 0)\n"
    "  -b, --baud B           bootloader baud rate (default: the bridge's, 115200)\n"
    "  -H, --host HOST[:PORT] the bridge's web/API address instead of DEVICE (port 80)\n"
    "      --http-plain       plain HTTP even if the bridge is paired (by default a bridge\n"
    "                         whose certificate is pinned in known_bridges by 'espstm\n"
    "                         pair' is reached over HTTPS, any other over plain HTTP)\n"
    "  -P, --password-file F  the bridge's web password: first line of F (default:\n"
    "                         $" CLI_FLASH_PASSWORD_ENV "); never given on the command line;\n"
    "                         a warning if its group or others may read it\n"
    "      --progress MODE    bar, lines, none (default: a bar on a terminal, else lines)\n"
    "  -q, --quiet            no progress (--progress none)\n"
    "  -j, --json             print the bridge's final JSON answer on standard output\n"
    "  -s, --socket PATH      espstmd's control socket (with DEVICE)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 written and verified (with --no-verify: written), 1 flash failed or\n"
    "refused, or the bridge's byte counts do not match IMAGE, 2 usage, 65 IMAGE unusable (empty, "
    "ELF, bad Intel HEX; --stage: it reached the bridge damaged), 66 IMAGE or password file\n"
    "unreadable, 69 espstmd or the bridge not reachable, 77 password refused (HTTP 401,\n"
    "403, 429), 3 the bridge's certificate is not the pinned one, 130 interrupted (the\n"
    "bridge is asked to abort the run: DELETE). See\n"
    "espstm(1), FLASH.\n";

void cli_flash_print_help(FILE *out)
{
	fputs(help_text, out);
}

/* ------------------------------------------------------------------ numbers, hosts */

/* 0x-hex or decimal, whole string, <= max. 0 or -1. */
static int parse_num(const char *s, uint64_t max, uint64_t *out)
{
	if (!s || !*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);
	/* strtoull base 0 takes a leading 0 as octal: refuse that (010 is not 8 here) */
	if (s[0] == '0' && s[1] && s[1] != 'x' && s[1] != 'X')
		return -1;
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int bad_host_char(unsigned char c)
{
	return c <= ' ' || c == 0x7F || c == '/' || c == '?' || c == '#' || c == '@' || c == '[' ||
	       c == ']';
}

int cli_flash_parse_host(const char *arg, char *host, size_t cap, unsigned *port)
{
	if (!arg)
		return -EINVAL;
	if (strncasecmp(arg, "https://", 8) == 0)
		return -EINVAL; /* the bridges serve plain HTTP */
	if (strncasecmp(arg, "http://", 7) == 0)
		arg += 7;
	size_t n = strlen(arg);
	while (n && arg[n - 1] == '/')
		n--;
	const char *h = arg, *p = NULL;
	size_t hl;
	if (n && arg[0] == '[') {
		const char *rb = memchr(arg, ']', n);
		if (!rb)
			return -EINVAL;
		h = arg + 1;
		hl = (size_t)(rb - h);
		size_t rest = n - (size_t)(rb + 1 - arg);
		if (rest) {
			if (rb[1] != ':' || rest < 2)
				return -EINVAL;
			p = rb + 2;
		}
	} else {
		const char *c1 = memchr(arg, ':', n);
		const char *c2 = c1 ? memchr(c1 + 1, ':', n - (size_t)(c1 + 1 - arg)) : NULL;
		if (c1 && !c2) { /* host:port */
			hl = (size_t)(c1 - arg);
			p = c1 + 1;
		} else { /* a name, an IPv4 address, or a bare IPv6 address (no port) */
			hl = n;
		}
	}
	if (hl == 0)
		return -EINVAL;
	if (hl >= cap)
		return -ENAMETOOLONG;
	int v6 = memchr(h, ':', hl) != NULL, zone = 0;
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)h[i];
		if (bad_host_char(c) || (c == ':' && !v6))
			return -EINVAL;
		if (v6 && c == '%' && !zone) {
			zone = 1; /* fe80::1%eth0: an interface name follows */
			continue;
		}
		if (v6 && !zone && !isxdigit(c) && c != ':' && c != '.')
			return -EINVAL;
		if (zone && !isalnum(c) && c != '-' && c != '_' && c != '.')
			return -EINVAL;
	}
	unsigned pv = CLI_FLASH_DEFAULT_PORT;
	if (p) {
		size_t pl = n - (size_t)(p - arg);
		char pb[8];
		uint64_t v;
		if (pl == 0 || pl >= sizeof pb)
			return -EINVAL;
		memcpy(pb, p, pl);
		pb[pl] = '\0';
		for (size_t i = 0; i < pl; i++)
			if (!isdigit((unsigned char)pb[i]))
				return -EINVAL;
		if (parse_num(pb, 65535, &v) < 0 || v == 0)
			return -EINVAL;
		pv = (unsigned)v;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = pv;
	return 0;
}

enum cli_flash_format cli_flash_detect_format(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	const char *dot = strrchr(base, '.');
	if (dot && dot != base &&
	    (strcasecmp(dot, ".hex") == 0 || strcasecmp(dot, ".ihex") == 0 ||
	     strcasecmp(dot, ".ihx") == 0))
		return CLI_FMT_HEX;
	return CLI_FMT_BIN;
}

const char *cli_flash_check_head(const uint8_t *head, size_t n, enum cli_flash_format fmt)
{
	if (n >= 4 && head[0] == 0x7F && head[1] == 'E' && head[2] == 'L' && head[3] == 'F')
		return "is an ELF file, not a flash image: convert it first, e.g. "
		       "'arm-none-eabi-objcopy -O binary app.elf app.bin' (or -O ihex app.hex)";
	if (fmt == CLI_FMT_HEX) {
		size_t i = 0;
		while (i < n &&
		       (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n'))
			i++;
		if (i < n && head[i] != ':')
			return "is not Intel HEX (it does not start with ':'); use --format bin "
			       "for a binary image";
	}
	return NULL;
}

/* ------------------------------------------------------------------ command line */

enum {
	OPT_UNPROTECT = 256,
	OPT_PROGRESS,
	OPT_PASSWORD,
	OPT_NO_VERIFY,
	OPT_STAGE,
	OPT_HTTP_PLAIN,
	OPT_SIG
};

static const struct option long_opts[] = {
    {"address", required_argument, NULL, 'a'},
    {"verify", no_argument, NULL, 'v'},
    {"no-verify", no_argument, NULL, OPT_NO_VERIFY},
    {"go", no_argument, NULL, 'g'},
    {"format", required_argument, NULL, 'f'},
    {"unprotect", no_argument, NULL, OPT_UNPROTECT},
    {"stage", no_argument, NULL, OPT_STAGE},
    {"http-plain", no_argument, NULL, OPT_HTTP_PLAIN},
    {"sig", required_argument, NULL, OPT_SIG},
    {"target", required_argument, NULL, 't'},
    {"baud", required_argument, NULL, 'b'},
    {"host", required_argument, NULL, 'H'},
    {"password-file", required_argument, NULL, 'P'},
    {"password", optional_argument, NULL, OPT_PASSWORD},
    {"progress", required_argument, NULL, OPT_PROGRESS},
    {"quiet", no_argument, NULL, 'q'},
    {"json", no_argument, NULL, 'j'},
    {"socket", required_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int usage(FILE *err, const char *fmt, const char *a)
{
	fputs("espstm flash: ", err);
	fprintf(err, fmt, a);
	fputs("\nTry 'espstm flash --help'.\n", err);
	return -CLI_FLASH_EXIT_USAGE;
}

static const char password_refused[] =
    "%s is not accepted: a password on the command line is visible to every user "
    "(ps, /proc); give it in a file with --password-file FILE (first line) or in the "
    "environment variable " CLI_FLASH_PASSWORD_ENV;

/* Options that take their value as the next argument (so "-P -pw" names a file). */
static int takes_value(const char *a)
{
	static const char *const opts[] = {"-a",
	                                   "-f",
	                                   "-t",
	                                   "-b",
	                                   "-H",
	                                   "-P",
	                                   "-s",
	                                   "--address",
	                                   "--format",
	                                   "--target",
	                                   "--baud",
	                                   "--host",
	                                   "--password-file",
	                                   "--progress",
	                                   "--socket",
	                                   "--sig"};
	for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
		if (strcmp(a, opts[i]) == 0)
			return 1;
	return 0;
}

/* -p and -pSECRET are refused by name before getopt sees them (it would say "invalid
 * option" and could print the rest of the argument). 0 or -CLI_FLASH_EXIT_USAGE. */
static int refuse_password_args(int argc, char **argv, FILE *err)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (takes_value(argv[i])) {
			i++;
			continue;
		}
		if (strncmp(argv[i], "-p", 2) == 0)
			return usage(err, password_refused, "-p");
	}
	return 0;
}

/* What getopt refused: a short option by its letter, a long one by its name only, never a
 * value after '='. Returns -CLI_FLASH_EXIT_USAGE. */
static int unknown_option(int argc, char **argv, FILE *err)
{
	const char *a = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
	if (optopt && optopt != '?' && !(a[0] == '-' && a[1] == '-')) {
		char s[3] = {'-', (char)optopt, 0};
		return usage(err, "unknown option '%s'", s);
	}
	char name[40];
	size_t k = strcspn(a, "=");
	snprintf(name, sizeof name, "%.*s", (int)(k < 32 ? k : 32), a);
	return usage(err, "unknown or ambiguous option '%s'", name);
}

/* --address, --format, --target, --baud, --progress with their value arg. 0 or
 * -CLI_FLASH_EXIT_USAGE. */
static int parse_value_option(int c, const char *arg, struct cli_flash_opts *o, FILE *err)
{
	uint64_t v;
	switch (c) {
	case 'a':
		if (parse_num(arg, 0xFFFFFFFFu, &v) < 0)
			return usage(err, "--address '%s': want 0x-hex or decimal up to 0xFFFFFFFF",
			             arg);
		if (v & 3u)
			return usage(err, "--address '%s': must be a multiple of 4", arg);
		o->has_address = 1;
		o->address = (uint32_t)v;
		return 0;
	case 'f':
		if (strcmp(arg, "bin") == 0)
			o->format = CLI_FMT_BIN;
		else if (strcmp(arg, "hex") == 0 || strcmp(arg, "ihex") == 0)
			o->format = CLI_FMT_HEX;
		else
			return usage(err, "--format '%s': want bin or hex", arg);
		return 0;
	case 't':
		if (parse_num(arg, 255, &v) < 0)
			return usage(err, "--target '%s': want a target number 0..255", arg);
		o->target = (unsigned)v;
		return 0;
	case 'b':
		if (parse_num(arg, 4000000, &v) < 0 || v < 1200)
			return usage(err, "--baud '%s': want a baud rate 1200..4000000", arg);
		o->baud = (uint32_t)v;
		return 0;
	case OPT_PROGRESS:
		if (strcmp(arg, "bar") == 0)
			o->progress = CLI_PROGRESS_BAR;
		else if (strcmp(arg, "lines") == 0)
			o->progress = CLI_PROGRESS_LINES;
		else if (strcmp(arg, "none") == 0)
			o->progress = CLI_PROGRESS_NONE;
		else if (strcmp(arg, "auto") == 0)
			o->progress = CLI_PROGRESS_AUTO;
		else
			return usage(err, "--progress '%s': want bar, lines, none or auto", arg);
		return 0;
	}
	assert(0 && "not an option with a value");
	return 0;
}

/* Option c as getopt_long returned it (its value in optarg). Returns 0 to go on, 1 after
 * --help (printed on out), or -CLI_FLASH_EXIT_USAGE. *has_host is set by --host. */
static int parse_option(int c, int argc, char **argv, struct cli_flash_opts *o, int *has_host,
                        FILE *out, FILE *err)
{
	switch (c) {
	case 'a':
	case 'f':
	case 't':
	case 'b':
	case OPT_PROGRESS:
		return parse_value_option(c, optarg, o, err);
	case 'v':
		o->verify = 1;
		return 0;
	case OPT_NO_VERIFY:
		o->verify = 0;
		return 0;
	case 'g':
		o->go = 1;
		return 0;
	case OPT_UNPROTECT:
		o->unprotect = 1;
		return 0;
	case OPT_STAGE:
		o->stage = 1;
		return 0;
	case OPT_HTTP_PLAIN:
		o->http_plain = 1;
		return 0;
	case OPT_SIG:
		o->sig = optarg;
		return 0;
	case 'H':
		if (cli_flash_parse_host(optarg, o->host, sizeof o->host, &o->port) < 0)
			return usage(err,
			             "--host '%s': want HOST, HOST:PORT or [IPV6]:PORT "
			             "(port 1..65535; plain http)",
			             optarg);
		*has_host = 1;
		return 0;
	case 'P':
		if (!*optarg)
			return usage(err, "%s--password-file needs a FILE", "");
		o->password_file = optarg;
		return 0;
	case OPT_PASSWORD:
		return usage(err, password_refused, "--password");
	case 'q':
		o->progress = CLI_PROGRESS_NONE;
		return 0;
	case 'j':
		o->json = 1;
		return 0;
	case 's':
		if (!*optarg)
			return usage(err, "%sempty socket path", "");
		o->socket = optarg;
		return 0;
	case 'h':
		cli_flash_print_help(out);
		return 1;
	case ':':
		return usage(err, "option '%s' needs a value", argv[optind - 1]);
	default:
		return unknown_option(argc, argv, err);
	}
}

/* DEVICE as given (ttySTM0 or /dev/ttySTM0) without "/dev/", or NULL if it is not a device
 * name (empty, over 64 bytes, "." or "..", a '/', a blank or a control character). */
static const char *device_name(const char *arg)
{
	const char *d = arg;
	if (strncmp(d, "/dev/", 5) == 0)
		d += 5;
	size_t dl = strlen(d);
	if (dl == 0 || dl > 64 || strcmp(d, ".") == 0 || strcmp(d, "..") == 0)
		return NULL;
	for (size_t i = 0; i < dl; i++)
		if (d[i] == '/' || (unsigned char)d[i] <= ' ' || d[i] == 0x7F)
			return NULL;
	return d;
}

/* The npos operands pos[]: IMAGE with --host, else DEVICE IMAGE. 0 or
 * -CLI_FLASH_EXIT_USAGE. */
static int parse_operands(int npos, char **pos, int has_host, struct cli_flash_opts *o, FILE *err)
{
	if (has_host) {
		if (npos < 1)
			return usage(err, "%smissing IMAGE", "");
		if (npos > 1)
			return usage(err,
			             "unexpected argument '%s' (with --host give only IMAGE, "
			             "not a DEVICE)",
			             pos[1]);
		o->image = pos[0];
		return 0;
	}
	if (npos < 2)
		return usage(err, "%s",
		             npos == 0 ? "missing DEVICE and IMAGE (or --host HOST IMAGE)"
		                       : "missing IMAGE (or DEVICE: espstm flash DEVICE "
		                         "IMAGE, or --host HOST IMAGE)");
	if (npos > 2)
		return usage(err, "unexpected argument '%s'", pos[2]);
	o->device = device_name(pos[0]);
	if (!o->device)
		return usage(err, "'%s' is not a device name (ttySTM0 or /dev/ttySTM0)", pos[0]);
	o->image = pos[1];
	return 0;
}

int cli_flash_parse_args(int argc, char **argv, struct cli_flash_opts *o, FILE *out, FILE *err)
{
	memset(o, 0, sizeof *o);
	o->port = CLI_FLASH_DEFAULT_PORT;
	o->verify = 1; /* exit 0 only after every byte was verified; --no-verify turns it off */
	int has_host = 0;
	int r = refuse_password_args(argc, argv, err);
	if (r)
		return r;
	optind = 0; /* GNU: full re-initialisation (the tests parse many command lines) */
	opterr = 0;
	for (;;) {
		int li = -1;
		int c = getopt_long(argc, argv, ":a:vgf:t:b:H:P:qjs:h", long_opts, &li);
		if (c == -1)
			break;
		r = parse_option(c, argc, argv, o, &has_host, out, err);
		if (r)
			return r;
	}
	r = parse_operands(argc - optind, argv + optind, has_host, o, err);
	if (r)
		return r;
	if (!*o->image)
		return usage(err, "%sempty IMAGE name", "");
	enum cli_flash_format f =
	    o->format != CLI_FMT_AUTO ? o->format : cli_flash_detect_format(o->image);
	if (o->has_address && f == CLI_FMT_HEX)
		return usage(err,
		             "--address is for binary images; '%s' is Intel HEX, which carries "
		             "its own addresses (--format bin to send it as binary)",
		             o->image);
	return 0;
}

/* ------------------------------------------------------------------ Intel HEX scan */

void cli_hex_scan_init(struct cli_hex_scan *s)
{
	memset(s, 0, sizeof *s);
	ihex_init(&s->ih);
}

static int scan_records(struct cli_hex_scan *s)
{
	uint32_t addr;
	const uint8_t *d;
	size_t n;
	while ((n = ihex_data(&s->ih, &addr, &d)) != 0) {
		if (!s->started) {
			s->started = 1;
			s->first = addr;
			s->next = addr;
		}
		if (addr < s->next) {
			snprintf(s->err, sizeof s->err,
			         "Intel HEX: data at 0x%08" PRIX32 " after data up to 0x%08" PRIX64
			         ": records must be in ascending address order without overlap",
			         addr, s->next);
			s->failed = 1;
			return -EINVAL;
		}
		s->next = (uint64_t)addr + n;
		s->data += n;
		ihex_take(&s->ih, n);
	}
	return 0;
}

int cli_hex_scan_feed(struct cli_hex_scan *s, const void *p, size_t n)
{
	const uint8_t *b = p;
	if (s->failed)
		return -EINVAL;
	while (n) {
		size_t k = ihex_feed(&s->ih, b, n);
		b += k;
		n -= k;
		if (ihex_failed(&s->ih)) {
			snprintf(s->err, sizeof s->err, "%s", ihex_error(&s->ih));
			s->failed = 1;
			return -EINVAL;
		}
		if (scan_records(s) < 0)
			return -EINVAL;
		uint32_t a;
		const uint8_t *d;
		if (k == 0 && ihex_data(&s->ih, &a, &d) == 0)
			break; /* cannot happen (ihex_feed stops only for pending data) */
	}
	return 0;
}

int cli_hex_scan_finish(struct cli_hex_scan *s, uint32_t *address, uint32_t *data)
{
	if (s->failed)
		return -EINVAL;
	if (scan_records(s) < 0)
		return -EINVAL;
	if (ihex_finish(&s->ih) < 0) {
		snprintf(s->err, sizeof s->err, "%s", ihex_error(&s->ih));
		s->failed = 1;
		return -EINVAL;
	}
	if (!s->started || s->data == 0) {
		snprintf(s->err, sizeof s->err, "Intel HEX: no data records");
		s->failed = 1;
		return -EINVAL;
	}
	*address = s->first;
	*data = s->data > UINT32_MAX ? UINT32_MAX : (uint32_t)s->data;
	return 0;
}

/* ------------------------------------------------------------------ password */

int cli_flash_read_password(const char *path, char *pw, size_t cap, char *msg, size_t msgcap,
                            FILE *warn)
{
	char buf[CLI_FLASH_PASS_MAX + 3];
	size_t n = 0;
	const char *what;
	msg[0] = '\0';
	if (!path) {
		const char *e = getenv(CLI_FLASH_PASSWORD_ENV);
		what = "$" CLI_FLASH_PASSWORD_ENV;
		if (!e || !*e) {
			snprintf(msg, msgcap,
			         "no password: give the bridge's web password with --password-file "
			         "FILE or in $%s",
			         CLI_FLASH_PASSWORD_ENV);
			return -ENOENT;
		}
		n = strcspn(e, "\r\n");
		if (n > CLI_FLASH_PASS_MAX)
			n = CLI_FLASH_PASS_MAX + 1;
		memcpy(buf, e, n);
	} else {
		what = path;
		FILE *f = fopen(path, "re");
		if (!f) {
			int e = errno;
			snprintf(msg, msgcap, "cannot open the password file %s: %s", path,
			         strerror(e));
			return -e;
		}
		struct stat sb;
		if (warn && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && (sb.st_mode & 077))
			fprintf(warn,
			        "espstm: warning: the password file %s is accessible to %s "
			        "(mode %04o); run 'chmod 600 %s'\n",
			        path, (sb.st_mode & 07) ? "other users" : "its group",
			        (unsigned)(sb.st_mode & 07777), path);
		int c;
		while ((c = getc(f)) != EOF && c != '\n') {
			if (n < sizeof buf)
				buf[n] = (char)c;
			n++;
		}
		int e = ferror(f) ? (errno ? errno : EIO) : 0;
		fclose(f);
		if (e) {
			snprintf(msg, msgcap, "cannot read the password file %s: %s", path,
			         strerror(e));
			return -e;
		}
		if (n && n <= sizeof buf && buf[n - 1] == '\r')
			n--;
	}
	if (n == 0) {
		snprintf(msg, msgcap, "%s: the password (first line) is empty", what);
		return -EINVAL;
	}
	if (n > CLI_FLASH_PASS_MAX || cap < n + 1) {
		snprintf(msg, msgcap, "%s: the password is longer than %d characters", what,
		         CLI_FLASH_PASS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7F) {
			snprintf(msg, msgcap, "%s: the password holds a control character", what);
			return -EINVAL;
		}
	memcpy(pw, buf, n);
	pw[n] = '\0';
	memset(buf, 0, sizeof buf);
	return 0;
}

/* ------------------------------------------------------------------ espstmd, URL */

int cli_flash_bridge_from_status(const struct cj *answer, const char *name, char *host, size_t cap,
                                 unsigned *port, char *msg, size_t msgcap)
{
	const struct cj *devs = cj_get(answer, "devices");
	const struct cj *d = NULL;
	for (size_t i = 0; i < cj_len(devs); i++) {
		const char *nm = cj_str(cj_get(cj_at(devs, i), "name"));
		if (nm && strcmp(nm, name) == 0) {
			d = cj_at(devs, i);
			break;
		}
	}
	if (!d) {
		snprintf(msg, msgcap, "espstmd's answer has no device '%s'", name);
		return -EPROTO;
	}
	const char *h = cj_str(cj_get(d, "host"));
	uint64_t p;
	if (!h || !*h || strlen(h) >= cap) {
		snprintf(msg, msgcap, "espstmd knows no bridge host for %s", name);
		return -EPROTO;
	}
	if (cj_uint(cj_get(d, "http_port"), &p) < 0 || p == 0 || p > 65535) {
		snprintf(msg, msgcap,
		         "espstmd knows no HTTP port for %s (key http_port in espstm.conf(5)); "
		         "use --host HOST:PORT",
		         name);
		return -EPROTO;
	}
	memcpy(host, h, strlen(h) + 1);
	*port = (unsigned)p;
	return 0;
}

char *cli_flash_query(char *out, size_t cap, const struct cli_flash_opts *o,
                      enum cli_flash_format fmt)
{
	char addr[32] = "", baud[24] = "", stage[40] = "";
	if (o->has_address && fmt != CLI_FMT_HEX)
		snprintf(addr, sizeof addr, "&address=0x%08" PRIX32, o->address);
	if (o->baud)
		snprintf(baud, sizeof baud, "&baud=%" PRIu32, o->baud);
	if (o->stage)
		snprintf(stage, sizeof stage, "&stage=1&crc32=0x%08" PRIX32, o->crc32);
	snprintf(out, cap, "format=%s%s&verify=%d&go=%d&unprotect=%d%s%s",
	         fmt == CLI_FMT_HEX ? "hex" : "bin", addr, o->verify ? 1 : 0, o->go ? 1 : 0,
	         o->unprotect ? 1 : 0, baud, stage);
	return out;
}

int cli_flash_url(char *out, size_t cap, const char *host, unsigned port, unsigned target,
                  const char *query)
{
	int v6 = strchr(host, ':') != NULL;
	int n =
	    snprintf(out, cap, "http://%s%s%s:%u/api/targets/%u/flash%s%s", v6 ? "[" : "", host,
	             v6 ? "]" : "", port, target, query && *query ? "?" : "", query ? query : "");
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* ------------------------------------------------------------------ answers */

static const char *const state_names[] = {
    "unknown", "idle",      "connecting", "identifying", "unprotecting", "erasing",
    "writing", "verifying", "starting",   "done",        "failed",       "staging",
};

enum cli_flash_state cli_flash_state_of(const char *name)
{
	if (!name)
		return CFS_UNKNOWN;
	for (size_t i = 1; i < sizeof state_names / sizeof state_names[0]; i++)
		if (strcmp(name, state_names[i]) == 0)
			return (enum cli_flash_state)i;
	return CFS_UNKNOWN;
}

const char *cli_flash_state_name(enum cli_flash_state s)
{
	if ((size_t)s >= sizeof state_names / sizeof state_names[0])
		return "unknown";
	return state_names[s];
}

/* Copy a string member (control characters -> '?'); "" when absent or not a string. */
static void copy_str(char *dst, size_t cap, const struct cj *v)
{
	const char *s = cj_str(v);
	if (!s)
		s = "";
	snprintf(dst, cap, "%s", s);
	for (char *c = dst; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7F)
			*c = '?';
}

static uint64_t get_u64(const struct cj *o, const char *key)
{
	uint64_t v;
	return cj_uint(cj_get(o, key), &v) == 0 ? v : 0;
}

int cli_flash_parse_status(const char *body, size_t len, struct cli_flash_status *st)
{
	memset(st, 0, sizeof *st);
	st->ok = st->verify = st->go = -1;
	st->total = -1;
	struct cj *a = body && len ? cj_parse(body, len, NULL, 0) : NULL;
	if (!a || a->type != CJ_OBJ) {
		cj_free(a);
		return -EPROTO;
	}
	st->json = 1;
	st->ok = cj_bool(cj_get(a, "ok"));
	st->state = cli_flash_state_of(cj_str(cj_get(a, "state")));
	st->verify = cj_bool(cj_get(a, "verify"));
	st->go = cj_bool(cj_get(a, "go"));
	uint64_t t;
	if (cj_uint(cj_get(a, "bytes_total"), &t) == 0 && t <= INT64_MAX)
		st->total = (int64_t)t;
	st->received = get_u64(a, "bytes_received");
	st->erased = get_u64(a, "bytes_erased");
	st->written = get_u64(a, "bytes_written");
	st->verified = get_u64(a, "bytes_verified");
	st->elapsed_ms = get_u64(a, "elapsed_ms");
	copy_str(st->address, sizeof st->address, cj_get(a, "address"));
	copy_str(st->format, sizeof st->format, cj_get(a, "format"));
	const struct cj *d = cj_get(a, "device");
	if (d && d->type == CJ_OBJ) {
		copy_str(st->dev_name, sizeof st->dev_name, cj_get(d, "name"));
		copy_str(st->pid, sizeof st->pid, cj_get(d, "pid"));
		copy_str(st->family, sizeof st->family, cj_get(d, "family"));
		copy_str(st->bootloader, sizeof st->bootloader, cj_get(d, "bootloader"));
		st->flash_size = get_u64(d, "flash_size");
	}
	copy_str(st->error, sizeof st->error, cj_get(a, "error"));
	copy_str(st->step, sizeof st->step, cj_get(a, "step"));
	st->stage = cj_bool(cj_get(a, "stage"));
	st->staged = get_u64(a, "bytes_staged");
	copy_str(st->crc32, sizeof st->crc32, cj_get(a, "crc32"));
	cj_free(a);
	return 0;
}

int cli_flash_check_counts(const struct cli_flash_status *st, const struct cli_flash_expect *e,
                           char *msg, size_t cap)
{
	const char *what = e->fmt == CLI_FMT_HEX ? "the Intel HEX records hold" : "the image has";
	const char *unit = e->fmt == CLI_FMT_HEX ? "data bytes" : "bytes";
	if (st->total < 0) {
		snprintf(msg, cap, "the bridge reported no bytes_total for a finished flash");
		return CLI_FLASH_EXIT_FAILED;
	}
	uint64_t total = (uint64_t)st->total;
	if (st->received != e->bytes) {
		snprintf(msg, cap,
		         "the bridge took %" PRIu64 " image bytes, but %s %" PRIu64
		         " %s: the flash does not hold this image",
		         st->received, what, e->bytes, unit);
		return CLI_FLASH_EXIT_FAILED;
	}
	if (e->fmt == CLI_FMT_HEX) {
		uint64_t most = e->span + CLI_FLASH_UNIT_MAX - 1;
		if (total < e->bytes || total > most) {
			snprintf(msg, cap,
			         "the bridge reports %" PRIu64 " bytes programmed for Intel HEX "
			         "data of %" PRIu64 " bytes spanning %" PRIu64
			         " bytes (want %" PRIu64 "..%" PRIu64 ")",
			         total, e->bytes, e->span, e->bytes, most);
			return CLI_FLASH_EXIT_FAILED;
		}
	} else if (total != e->bytes) {
		snprintf(msg, cap,
		         "the bridge reports %" PRIu64 " bytes in total, but the image has %" PRIu64
		         " bytes",
		         total, e->bytes);
		return CLI_FLASH_EXIT_FAILED;
	}
	if (st->written != total) {
		snprintf(msg, cap,
		         "the bridge reports %" PRIu64 " of %" PRIu64
		         " bytes written: the flash does not hold the whole image",
		         st->written, total);
		return CLI_FLASH_EXIT_FAILED;
	}
	return 0;
}

int cli_flash_outcome(long http_status, const struct cli_flash_status *st, int verify_wanted,
                      const struct cli_flash_expect *expect, long retry_after_s, unsigned target,
                      char *msg, size_t cap)
{
	const char *e = st->error[0] ? st->error : NULL;
	char step[48] = "";
	if (st->step[0])
		snprintf(step, sizeof step, " (while %s)", st->step);
	msg[0] = '\0';
	switch (http_status) {
	case 200:
		if (st->state != CFS_DONE || st->ok == 0) {
			snprintf(msg, cap, "the bridge answered 200 but the flash ended '%s'%s%s",
			         cli_flash_state_name(st->state), e ? ": " : "", e ? e : "");
			return CLI_FLASH_EXIT_FAILED;
		}
		if (verify_wanted &&
		    (st->verify != 1 || st->total < 0 || st->verified != (uint64_t)st->total)) {
			snprintf(msg, cap,
			         "the flash ended 'done' but the verify was not confirmed (%" PRIu64
			         " of %" PRId64 " bytes verified)",
			         st->verified, st->total);
			return CLI_FLASH_EXIT_FAILED;
		}
		if (expect)
			return cli_flash_check_counts(st, expect, msg, cap);
		return CLI_FLASH_EXIT_OK;
	case 401:
		snprintf(msg, cap,
		         "the bridge refused the password (HTTP 401%s%s): check --password-file "
		         "or $%s (user admin; after 3 wrong passwords the bridge locks out for a "
		         "while)",
		         e ? ": " : "", e ? e : "", CLI_FLASH_PASSWORD_ENV);
		return CLI_FLASH_EXIT_NOPERM;
	case 403:
		snprintf(msg, cap, "the bridge refused the request (HTTP 403%s%s)", e ? ": " : "",
		         e ? e : "");
		return CLI_FLASH_EXIT_NOPERM;
	case 429:
		if (retry_after_s >= 0)
			snprintf(msg, cap,
			         "the bridge locks out after wrong passwords (HTTP 429): try again "
			         "in %ld s with the right password",
			         retry_after_s);
		else
			snprintf(msg, cap,
			         "the bridge locks out after wrong passwords (HTTP 429): try again "
			         "later with the right password");
		return CLI_FLASH_EXIT_NOPERM;
	case 409:
		if (st->state == CFS_FAILED && e) {
			/* the run itself ended: aborted (DELETE) */
			snprintf(msg, cap, "the flash was stopped (HTTP 409): %s%s", e, step);
			return CLI_FLASH_EXIT_FAILED;
		}
		snprintf(msg, cap,
		         "target %u of the bridge is busy: a flash is already running there "
		         "(HTTP 409); nothing was written",
		         target);
		return CLI_FLASH_EXIT_FAILED;
	case 413:
		snprintf(msg, cap, "the image does not fit the chip's flash (HTTP 413)%s%s",
		         e ? ": " : "", e ? e : "");
		return CLI_FLASH_EXIT_FAILED;
	case 423:
		snprintf(msg, cap, "the chip is protected (HTTP 423)%s%s; --unprotect removes it",
		         e ? ": " : "", e ? e : "");
		return CLI_FLASH_EXIT_FAILED;
	case 400:
		if (expect && expect->has_crc && st->crc32[0]) {
			char *end;
			unsigned long got = strtoul(st->crc32, &end, 16);
			if (*end == '\0' && (uint32_t)got != expect->crc) {
				snprintf(
				    msg, cap,
				    "the image reached the bridge damaged: its CRC-32 there is "
				    "%s, the file's is 0x%08" PRIX32 " (HTTP 400); nothing was "
				    "flashed",
				    st->crc32, expect->crc);
				return CLI_FLASH_EXIT_DATAERR;
			}
		}
		snprintf(msg, cap, "the bridge refused the upload (HTTP 400)%s%s%s", e ? ": " : "",
		         e ? e : "", step);
		return CLI_FLASH_EXIT_FAILED;
	case 404:
		snprintf(msg, cap,
		         "the bridge has no target %u or no flash API (HTTP 404): is it an "
		         "espstm bridge with HTTP flashing?",
		         target);
		return CLI_FLASH_EXIT_FAILED;
	case 501:
		snprintf(msg, cap, "this bridge cannot flash target %u (HTTP 501)%s%s", target,
		         e ? ": " : "", e ? e : "");
		return CLI_FLASH_EXIT_FAILED;
	case 502:
		snprintf(msg, cap, "the STM32 did not answer as AN3155 says (HTTP 502)%s%s%s",
		         e ? ": " : "", e ? e : "", step);
		return CLI_FLASH_EXIT_FAILED;
	default:
		if (http_status <= 0) {
			snprintf(msg, cap, "no answer from the bridge");
			return CLI_FLASH_EXIT_UNAVAILABLE;
		}
		snprintf(msg, cap, "the flash failed (HTTP %ld)%s%s%s", http_status, e ? ": " : "",
		         e ? e : "", step);
		return CLI_FLASH_EXIT_FAILED;
	}
}
