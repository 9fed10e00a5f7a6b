/* SPDX-License-Identifier: MIT */
/*
 * Test helper for tests/ttytarget: the simulated STM32 (stm32sim/, an STM32F103) on the
 * master side of a pseudo-terminal, so espstm-bridge --target tty:/dev/pts/N drives a real
 * tty with the simulator behind it. A pty carries no parity and no modem lines: the chip's
 * side is fixed at 115200 8E1 and held in its bootloader (BOOT0 high at the reset), which
 * is what the bridge's AN3155 master (HTTP flash) speaks. No wire time (instant).
 * Usage: ptysim FLASH_FILE   prints the slave's path on stdout; SIGTERM: flash written back
 * to FLASH_FILE, exit 0.
 */
#include "stm32sim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: ptysim FLASH_FILE\n");
		return 2;
	}
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		perror("ptysim: posix_openpt");
		return 1;
	}
	/* held open so the master never sees a hang-up between the bridge's opens */
	int keep = open(ptsname(m), O_RDWR | O_NOCTTY);
	if (keep < 0) {
		perror("ptysim: slave");
		return 1;
	}
	char err[200];
	struct stm32sim_options so = {.model = "stm32f103", .flash_path = argv[1], .instant = 1};
	struct stm32sim *sim = stm32sim_new(&so, now_us(), err, sizeof(err));
	if (!sim) {
		fprintf(stderr, "ptysim: %s\n", err);
		return 1;
	}
	struct stm32sim_line l = {.baud = 115200, .data_bits = 8, .parity = 'E', .stop_bits = 1};
	stm32sim_set_line(sim, now_us(), &l);
	stm32sim_set_pins(sim, now_us(), 0, 1);
	stm32sim_set_pins(sim, now_us(), 1, 1);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	printf("%s\n", ptsname(m));
	fflush(stdout);
	uint8_t buf[4096];
	while (!stop) {
		struct pollfd p = {.fd = m, .events = POLLIN};
		if (poll(&p, 1, 1) > 0 && (p.revents & POLLIN)) {
			ssize_t k = read(m, buf, sizeof(buf));
			for (ssize_t off = 0; k > 0 && off < k && !stop;) {
				size_t w =
				    stm32sim_write(sim, now_us(), buf + off, (size_t)(k - off));
				if (w == 0)
					break; /* the chip takes nothing (in reset): dropped */
				off += (ssize_t)w;
				stm32sim_poll(sim, now_us());
			}
		}
		stm32sim_poll(sim, now_us());
		size_t n = stm32sim_read(sim, now_us(), buf, sizeof(buf));
		for (size_t off = 0; off < n;) {
			ssize_t w = write(m, buf + off, n - off);
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				break;
			off += w > 0 ? (size_t)w : 0;
		}
	}
	int r = stm32sim_sync(sim);
	stm32sim_free(sim);
	close(keep);
	close(m);
	return r < 0 ? 1 : 0;
}
