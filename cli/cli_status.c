/* SPDX-License-Identifier: MIT */
/* cli_status: human-readable status of espstmd's devices. See cli_status.h. */
#include "cli_status.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

const char *cli_devname(const char *arg)
{
	if (!arg)
		return NULL;
	if (strncmp(arg, "/dev/", 5) == 0)
		arg += 5;
	size_t n = strlen(arg);
	if (n == 0 || n > CLI_DEVNAME_MAX)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
		if (*p == '/' || *p <= ' ' || *p == 0x7F)
			return NULL;
	if (strcmp(arg, ".") == 0 || strcmp(arg, "..") == 0)
		return NULL;
	return arg;
}

/* Integer member or -1 (the counters are never negative; rtt_us uses -1 for unknown). */
static int get_u(const struct cj *d, const char *key, uint64_t *out)
{
	return cj_uint(cj_get(d, key), out);
}

char *cli_fmt_line(char *out, size_t cap, const struct cj *dev)
{
	uint64_t baud, bits, stop;
	char b[24] = "?", db[8] = "?", sb[8] = "?";
	const char *par = cj_str(cj_get(dev, "parity"));

	if (get_u(dev, "baud", &baud) == 0)
		snprintf(b, sizeof b, "%" PRIu64, baud);
	if (get_u(dev, "data_bits", &bits) == 0 && bits < 100)
		snprintf(db, sizeof db, "%" PRIu64, bits);
	if (get_u(dev, "stop_bits", &stop) == 0)
		snprintf(sb, sizeof sb, "%s",
		         stop == 3   ? "1.5"
		         : stop == 1 ? "1"
		         : stop == 2 ? "2"
		                     : "?");
	if (!par || strlen(par) != 1)
		par = "?";
	snprintf(out, cap, "%s %s%s%s", b, db, par, sb);
	return out;
}

char *cli_fmt_duration(char *out, size_t cap, uint64_t ms)
{
	uint64_t s = ms / 1000;
	if (ms < 1000)
		snprintf(out, cap, "%" PRIu64 "ms", ms);
	else if (s < 60)
		snprintf(out, cap, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(out, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(out, cap, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(out, cap, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s % 86400 / 3600);
	return out;
}

/* Counter as text, "-" when absent. */
static const char *num(char *buf, size_t cap, const struct cj *d, const char *key)
{
	uint64_t v;
	if (get_u(d, key, &v) < 0)
		return "-";
	snprintf(buf, cap, "%" PRIu64, v);
	return buf;
}

/* Text without control characters (a last_error could carry any byte the bridge sent). */
static void put_text(FILE *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		fputc(c < 0x20 || c == 0x7F ? '?' : c, out);
	}
}

/* "HOST:PORT", with brackets around an IPv6 address. */
static void fmt_hostport(char *out, size_t cap, const char *host, const struct cj *port)
{
	uint64_t p = 0;
	int have_port = cj_uint(port, &p) == 0;
	if (!host || !*host)
		host = "?";
	if (strchr(host, ':'))
		snprintf(out, cap, "[%s]:", host);
	else
		snprintf(out, cap, "%s:", host);
	size_t n = strlen(out);
	if (have_port)
		snprintf(out + n, cap - n, "%" PRIu64, p);
	else
		snprintf(out + n, cap - n, "?");
}

static void print_device(FILE *out, const struct cj *d)
{
	char b1[32], b2[32], b3[32], tmp[160];
	const char *name = cj_str(cj_get(d, "name"));
	const char *state = cj_str(cj_get(d, "state"));
	const char *peer = cj_str(cj_get(d, "peer"));
	const char *proto = cj_str(cj_get(d, "protocol"));
	const char *flow = cj_str(cj_get(d, "flow"));
	const char *lerr = cj_str(cj_get(d, "last_error"));
	uint64_t v;
	int64_t rtt;

	put_text(out, name ? name : "?");
	fputc('\n', out);

	fprintf(out, "  %-12s", "state");
	put_text(out, state ? state : "-");
	if (state && strcmp(state, "up") == 0 && get_u(d, "up_ms", &v) == 0)
		fprintf(out, " for %s", cli_fmt_duration(b1, sizeof b1, v));
	fputc('\n', out);

	fmt_hostport(tmp, sizeof tmp, cj_str(cj_get(d, "host")), cj_get(d, "port"));
	fprintf(out, "  %-12s", "peer");
	if (peer && *peer) {
		put_text(out, peer);
		fputs(" (", out);
	} else {
		fputs("- (configured ", out);
		put_text(out, tmp);
		fputs(", ", out);
	}
	put_text(out, proto ? proto : "?");
	fputs(")\n", out);

	fprintf(out, "  %-12s", "rtt");
	if (cj_int(cj_get(d, "rtt_us"), &rtt) == 0 && rtt >= 0)
		fprintf(out, "%" PRId64 ".%02" PRId64 " ms\n", rtt / 1000, rtt % 1000 / 10);
	else
		fputs("-\n", out);

	fprintf(out, "  %-12s%s\n", "line", cli_fmt_line(tmp, sizeof tmp, d));
	fprintf(out, "  %-12s", "flow");
	put_text(out, flow ? flow : "-");
	fputc('\n', out);

	static const char *const lines[] = {"dtr", "rts", "cts", "dsr", "cd", "ri"};
	fprintf(out, "  %-12s", "modem");
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		char up[4];
		size_t k;
		for (k = 0; lines[i][k] && k < 3; k++)
			up[k] = (char)(lines[i][k] - 'a' + 'A');
		up[k] = '\0';
		const char *val = get_u(d, lines[i], &v) < 0 ? "-" : v ? "on" : "off";
		fprintf(out, "%s%s %s", i ? "  " : "", up, val);
	}
	fputc('\n', out);

	fprintf(out, "  %-12stx %s  rx %s\n", "bytes", num(b1, sizeof b1, d, "tx_bytes"),
	        num(b2, sizeof b2, d, "rx_bytes"));
	fprintf(out, "  %-12stx %s  rx %s\n", "dropped", num(b1, sizeof b1, d, "tx_dropped"),
	        num(b2, sizeof b2, d, "rx_dropped"));
	fprintf(out, "  %-12s%s%s\n", "opens", num(b1, sizeof b1, d, "opens"),
	        cj_bool(cj_get(d, "exclusive")) == 1 || (get_u(d, "exclusive", &v) == 0 && v)
	            ? " (exclusive)"
	            : "");
	fprintf(out, "  %-12s%s, reconnects %s, errors %s\n", "connects",
	        num(b1, sizeof b1, d, "connects"), num(b2, sizeof b2, d, "reconnects"),
	        num(b3, sizeof b3, d, "errors"));

	const struct cj *ic = cj_get(d, "icount");
	if (ic) {
		char f[4][32];
		fprintf(out, "  %-12sframe %s  overrun %s  parity %s  break %s\n", "line errors",
		        num(f[0], sizeof f[0], ic, "frame"), num(f[1], sizeof f[1], ic, "overrun"),
		        num(f[2], sizeof f[2], ic, "parity"), num(f[3], sizeof f[3], ic, "brk"));
	}

	fprintf(out, "  %-12s", "last error");
	put_text(out, lerr && *lerr ? lerr : "-");
	fputc('\n', out);
}

int cli_print_status(FILE *out, const struct cj *answer)
{
	const struct cj *devs = cj_get(answer, "devices");
	if (!devs || devs->type != CJ_ARR)
		return -EPROTO;
	if (cj_len(devs) == 0) {
		fputs("no devices\n", out);
		return 0;
	}
	for (size_t i = 0; i < cj_len(devs); i++) {
		if (i)
			fputc('\n', out);
		print_device(out, cj_at(devs, i));
	}
	return 0;
}
