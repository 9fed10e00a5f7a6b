/* SPDX-License-Identifier: MIT */
/*
 * stm32sim: run the simulated STM32 on a real serial device or a pty, or print the model
 * table. Exit status: 0 ok, 1 runtime error, 2 usage. See README.md ("Command").
 */
#include "stm32sim.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: stm32sim [--model M] [--flash FILE] [--instant] [--app-baud N]\n"
	           "                (--info | --tty PATH [--line 115200,8E1] [--boot0 0|1])\n"
	           "  --model M        stm32f103 (default), stm32f407, stm32g431 (or f103 ...)\n"
	           "  --flash FILE     flash contents; created full of 0xFF if missing\n"
	           "  --instant        no wire, erase or write time\n"
	           "  --app-baud N     the user application's baud (8N1), default 115200\n"
	           "  --frame-timeout-ms N  drop a partial bootloader frame after N ms of silence\n"
	           "                   (default 0: never, as on real parts)\n"
	           "  --rdp            start with readout protection (RDP level 1) active\n"
	           "  --wp FIRST[:COUNT]  erase units FIRST.. (COUNT, default 1) write-protected\n"
	           "  --fsize-kib N    flash-size register value (KiB; default the model's)\n"
	           "  --info           print the model table (and, with --flash, the app banner)\n"
	           "  --tty PATH       run the chip on a serial device or pty, set raw at --line;\n"
	           "                   the tty's own driver does the framing (no mismatch model)\n"
	           "  --line B,DPS     baud, data bits, parity N/E/O/M/S, stop bits (default "
	           "115200,8E1)\n"
	           "  --boot0 0|1      BOOT0 level for the whole run (default 1: bootloader)\n"
	           "  --help           this text\n");
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int parse_line(const char *spec, struct stm32sim_line *l)
{
	char par, extra;
	unsigned baud, data, stop_bits;
	if (sscanf(spec, "%u,%1u%c%1u%c", &baud, &data, &par, &stop_bits, &extra) != 4)
		return -1;
	par = (char)(par >= 'a' ? par - 32 : par);
	if (!baud || data < 5 || data > 8 || !strchr("NEOMS", par) || stop_bits < 1 ||
	    stop_bits > 2)
		return -1;
	*l = (struct stm32sim_line){baud, (uint8_t)data, par, (uint8_t)stop_bits};
	return 0;
}

static speed_t baud_const(uint32_t b)
{
	static const struct {
		uint32_t b;
		speed_t c;
	} t[] = {{1200, B1200},       {2400, B2400},       {4800, B4800},      {9600, B9600},
	         {19200, B19200},     {38400, B38400},     {57600, B57600},    {115200, B115200},
	         {230400, B230400},   {460800, B460800},   {500000, B500000},  {921600, B921600},
	         {1000000, B1000000}, {2000000, B2000000}, {3000000, B3000000}};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (t[i].b == b)
			return t[i].c;
	return 0;
}

static int setup_tty(int fd, const struct stm32sim_line *l)
{
	struct termios tio;
	speed_t sp = baud_const(l->baud);
	if (!sp) {
		fprintf(stderr, "stm32sim: baud %u is not a standard termios speed\n", l->baud);
		return -1;
	}
	if (tcgetattr(fd, &tio) < 0)
		return -1;
	cfmakeraw(&tio);
	tio.c_cflag &= ~(tcflag_t)(CSIZE | PARENB | PARODD | CMSPAR | CSTOPB | CRTSCTS);
	tio.c_cflag |= CLOCAL | CREAD;
	tio.c_cflag |= l->data_bits == 5   ? CS5
	               : l->data_bits == 6 ? CS6
	               : l->data_bits == 7 ? CS7
	                                   : CS8;
	if (l->parity != 'N') {
		tio.c_cflag |= PARENB;
		tio.c_iflag |= INPCK;
		if (l->parity == 'O' || l->parity == 'M')
			tio.c_cflag |= PARODD;
		if (l->parity == 'M' || l->parity == 'S')
			tio.c_cflag |= CMSPAR;
	}
	if (l->stop_bits == 2)
		tio.c_cflag |= CSTOPB;
	tio.c_cc[VMIN] = 0;
	tio.c_cc[VTIME] = 0;
	cfsetispeed(&tio, sp);
	cfsetospeed(&tio, sp);
	return tcsetattr(fd, TCSANOW, &tio);
}

static void print_info(const char *flash, const struct stm32sim_options *o)
{
	printf("%-10s %-28s %-5s %-4s %-5s %-10s %-9s %-10s %-8s %s\n", "model", "part", "pid",
	       "bl", "erase", "flash", "size", "ram", "ram size", "erase units (size:time)");
	for (int i = 0; i < stm32sim_model_count(); i++) {
		const struct stm32sim_model_info *m = stm32sim_model(i);
		printf("%-10s %-28s 0x%03x v%u.%u 0x%02x  0x%08x %4u KiB  0x%08x %4u KiB ", m->name,
		       m->part, m->pid, m->bl_version >> 4, m->bl_version & 15, m->erase_cmd,
		       m->flash_base, m->flash_size / 1024, m->ram_base, m->ram_size / 1024);
		uint32_t last_sz = 0, last_us = 0, run = 0;
		for (uint32_t p = 0; p <= m->npages; p++) {
			uint32_t sz = 0, us = 0;
			if (p < m->npages)
				stm32sim_model_page(m, p, &sz, &us);
			if (p > 0 && (sz != last_sz || us != last_us || p == m->npages)) {
				printf("%ux%uK:%ums ", run, last_sz / 1024, last_us / 1000);
				run = 0;
			}
			last_sz = sz;
			last_us = us;
			run++;
		}
		printf("mass:%ums prog:%uB/%uns\n", m->mass_erase_us / 1000, m->prog_unit,
		       m->prog_unit_ns);
	}
	if (!flash)
		return;
	if (access(flash, F_OK) < 0) {
		printf("flash %s: missing (a run would create it blank: the application stays "
		       "silent)\n",
		       flash);
		return;
	}
	char err[256];
	struct stm32sim *s = stm32sim_new(o, now_us(), err, sizeof(err));
	if (!s) {
		fprintf(stderr, "stm32sim: %s\n", err);
		exit(1);
	}
	uint32_t crc, len;
	int ok = stm32sim_flash_summary(s, &crc, &len);
	printf("flash %s (%s): crc32=%08x len=%u\n", flash, stm32sim_get_model(s)->name, crc, len);
	if (ok)
		printf("app banner: stm32sim app crc32=%08x len=%u\n", crc, len);
	else
		printf("app banner: none (no plausible vector table: the application stays "
		       "silent)\n");
	stm32sim_free(s);
}

static int run_tty(const char *path, const struct stm32sim_line *line, int boot0,
                   const struct stm32sim_options *o)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "stm32sim: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (setup_tty(fd, line) < 0) {
		fprintf(stderr, "stm32sim: %s: cannot set %u baud: %s\n", path, line->baud,
		        strerror(errno));
		close(fd);
		return 1;
	}
	char err[256];
	struct stm32sim_options opt = *o;
	opt.ideal_wire = 1;
	uint64_t t = now_us();
	struct stm32sim *s = stm32sim_new(&opt, t, err, sizeof(err));
	if (!s) {
		fprintf(stderr, "stm32sim: %s\n", err);
		close(fd);
		return 1;
	}
	stm32sim_set_line(s, t, line);
	stm32sim_set_pins(s, t, 0, boot0);
	stm32sim_set_pins(s, t, 1, boot0);
	fprintf(stderr, "stm32sim: %s on %s at %u %u%c%u, BOOT0 %d\n", stm32sim_get_model(s)->name,
	        path, line->baud, line->data_bits, line->parity, line->stop_bits, boot0);

	uint8_t in[256], out[256];
	size_t in_len = 0, in_off = 0, out_len = 0, out_off = 0;
	int rc = 0;
	while (!stop) {
		t = now_us();
		if (in_off < in_len)
			in_off += stm32sim_write(s, t, in + in_off, in_len - in_off);
		if (out_off == out_len) {
			out_off = 0;
			out_len = stm32sim_read(s, t, out, sizeof(out));
		}
		if (out_off < out_len) {
			ssize_t w = write(fd, out + out_off, out_len - out_off);
			if (w > 0)
				out_off += (size_t)w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR && errno != EIO) {
				fprintf(stderr, "stm32sim: write %s: %s\n", path, strerror(errno));
				rc = 1;
				break;
			}
		}
		struct pollfd pfd = {fd, 0, 0};
		if (in_off == in_len)
			pfd.events |= POLLIN;
		if (out_off < out_len)
			pfd.events |= POLLOUT;
		uint64_t next = stm32sim_next_event_us(s);
		t = now_us();
		int timeout = 100;
		if (in_off < in_len)
			timeout = 1;
		else if (next != UINT64_MAX)
			timeout = next <= t ? 0
			                    : (int)((next - t + 999) / 1000 < 100
			                                ? (next - t + 999) / 1000
			                                : 100);
		int r = poll(&pfd, 1, timeout);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "stm32sim: poll: %s\n", strerror(errno));
			rc = 1;
			break;
		}
		if (r > 0 && (pfd.revents & POLLHUP) && !(pfd.revents & POLLIN)) {
			usleep(50000); /* pty with no peer: wait for one */
			continue;
		}
		if (r > 0 && (pfd.revents & POLLIN) && in_off == in_len) {
			ssize_t n = read(fd, in, sizeof(in));
			if (n > 0) {
				in_len = (size_t)n;
				in_off = 0;
			} else if (n < 0 && errno == EIO) {
				usleep(50000); /* pty whose other side is closed: wait */
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				fprintf(stderr, "stm32sim: read %s: %s\n", path, strerror(errno));
				rc = 1;
				break;
			}
		}
	}
	int e = stm32sim_sync(s);
	if (e < 0) {
		fprintf(stderr, "stm32sim: saving flash: %s\n", strerror(-e));
		rc = 1;
	}
	stm32sim_free(s);
	close(fd);
	return rc;
}

/* What the command line asks for. */
struct cmdline {
	struct stm32sim_options o;
	struct stm32sim_line line;
	const char *tty; /* --tty PATH, or NULL */
	int info;        /* --info */
	int boot0;       /* --boot0 */
};

/* Option c (getopt_long's value) with its argument arg into cl. Returns -1 to go on, or
 * the exit status to stop with: 0 after --help, 2 on a bad value (said on stderr). */
static int parse_option(int c, char *arg, struct cmdline *cl)
{
	struct stm32sim_options *o = &cl->o;
	char *end;
	switch (c) {
	case 'h':
		usage(stdout);
		return 0;
	case 'm':
		o->model = arg;
		return -1;
	case 'f':
		o->flash_path = arg;
		return -1;
	case 'i':
		o->instant = 1;
		return -1;
	case 'a':
		o->app_baud = (uint32_t)strtoul(arg, &end, 10);
		if (*end || !o->app_baud) {
			fprintf(stderr, "stm32sim: bad --app-baud '%s'\n", arg);
			return 2;
		}
		return -1;
	case 'T':
		o->frame_timeout_ms = (uint32_t)strtoul(arg, &end, 10);
		if (*end) {
			fprintf(stderr, "stm32sim: bad --frame-timeout-ms '%s'\n", arg);
			return 2;
		}
		return -1;
	case 'I':
		cl->info = 1;
		return -1;
	case 'R':
		o->rdp = 1;
		return -1;
	case 'W':
		o->wp_first = (uint32_t)strtoul(arg, &end, 10);
		o->wp_count = 1;
		if (*end == ':')
			o->wp_count = (uint32_t)strtoul(end + 1, &end, 10);
		if (*end || end == arg || !o->wp_count) {
			fprintf(stderr, "stm32sim: bad --wp '%s' (example: 2:4)\n", arg);
			return 2;
		}
		return -1;
	case 'F': {
		unsigned long v = strtoul(arg, &end, 10);
		if (*end || !v || v > 0xFFFF) {
			fprintf(stderr, "stm32sim: bad --fsize-kib '%s'\n", arg);
			return 2;
		}
		o->fsize_kib = (uint16_t)v;
		return -1;
	}
	case 't':
		cl->tty = arg;
		return -1;
	case 'l':
		if (parse_line(arg, &cl->line) < 0) {
			fprintf(stderr, "stm32sim: bad --line '%s' (example: 115200,8E1)\n", arg);
			return 2;
		}
		return -1;
	case 'b':
		if (strcmp(arg, "0") && strcmp(arg, "1")) {
			fprintf(stderr, "stm32sim: --boot0 takes 0 or 1\n");
			return 2;
		}
		cl->boot0 = arg[0] == '1';
		return -1;
	default:
		usage(stderr);
		return 2;
	}
}

/* 1 if name is a model of the table (stm32f103 or f103 ...). */
static int model_known(const char *name)
{
	int known = 0;
	for (int i = 0; i < stm32sim_model_count(); i++) {
		const char *n = stm32sim_model(i)->name;
		known |= !strcasecmp(name, n) || !strcasecmp(name, n + 5);
	}
	return known;
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {{"help", no_argument, 0, 'h'},
	                                   {"model", required_argument, 0, 'm'},
	                                   {"flash", required_argument, 0, 'f'},
	                                   {"instant", no_argument, 0, 'i'},
	                                   {"app-baud", required_argument, 0, 'a'},
	                                   {"frame-timeout-ms", required_argument, 0, 'T'},
	                                   {"info", no_argument, 0, 'I'},
	                                   {"tty", required_argument, 0, 't'},
	                                   {"line", required_argument, 0, 'l'},
	                                   {"boot0", required_argument, 0, 'b'},
	                                   {"rdp", no_argument, 0, 'R'},
	                                   {"wp", required_argument, 0, 'W'},
	                                   {"fsize-kib", required_argument, 0, 'F'},
	                                   {0, 0, 0, 0}};
	struct cmdline cl = {
	    .o = {.model = "stm32f103"}, .line = {115200, 8, 'E', 1}, .tty = NULL, .boot0 = 1};
	int c;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		int rc = parse_option(c, optarg, &cl);
		if (rc >= 0)
			return rc;
	}
	if (optind < argc || (!cl.info && !cl.tty)) {
		usage(stderr);
		return 2;
	}
	if (!model_known(cl.o.model)) {
		fprintf(stderr,
		        "stm32sim: unknown model '%s' (known: stm32f103, stm32f407, "
		        "stm32g431)\n",
		        cl.o.model);
		return 2;
	}
	if (cl.info) {
		print_info(cl.o.flash_path, &cl.o);
		return 0;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	return run_tty(cl.tty, &cl.line, cl.boot0, &cl.o);
}
