/* SPDX-License-Identifier: MIT */
/* cli_progress: the progress display of `espstm flash` (bar or plain lines, rate, ETA,
 * the summary line), pure formatting from the bridge's status answers. See cli_flash.h. */
#include "cli_flash.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ progress */

char *cli_flash_fmt_bytes(char *out, size_t cap, uint64_t n)
{
	if (n < 1024)
		snprintf(out, cap, "%" PRIu64 " B", n);
	else if (n < 1024 * 1024)
		snprintf(out, cap, "%.1f KiB", (double)n / 1024.0);
	else
		snprintf(out, cap, "%.2f MiB", (double)n / (1024.0 * 1024.0));
	return out;
}

char *cli_flash_fmt_rate(char *out, size_t cap, double r)
{
	if (!isfinite(r) || r < 0)
		snprintf(out, cap, "- B/s");
	else if (r < 1024)
		snprintf(out, cap, "%.0f B/s", r);
	else if (r < 1024 * 1024)
		snprintf(out, cap, "%.1f KiB/s", r / 1024.0);
	else
		snprintf(out, cap, "%.2f MiB/s", r / (1024.0 * 1024.0));
	return out;
}

char *cli_flash_fmt_eta(char *out, size_t cap, double s)
{
	if (!isfinite(s) || s < 0 || s > 359999) {
		snprintf(out, cap, "--:--");
		return out;
	}
	unsigned long t = (unsigned long)(s + 0.5);
	if (t < 3600)
		snprintf(out, cap, "%lu:%02lu", t / 60, t % 60);
	else
		snprintf(out, cap, "%lu:%02lu:%02lu", t / 3600, t / 60 % 60, t % 60);
	return out;
}

void cli_flash_progress_init(struct cli_flash_progress *p, uint64_t total, int verify, double now)
{
	memset(p, 0, sizeof *p);
	p->total = total;
	p->verify = verify;
	p->t0 = now;
	p->t_write = -1;
	p->last_group = -1;
	p->last_decile = 0;
}

static uint64_t total_of(const struct cli_flash_progress *p, const struct cli_flash_status *st)
{
	if (st->total > 0)
		return (uint64_t)st->total;
	return p->total;
}

double cli_flash_fraction(const struct cli_flash_progress *p, const struct cli_flash_status *st)
{
	uint64_t total = total_of(p, st);
	if (st->state == CFS_DONE)
		return 1.0;
	if (!total)
		return 0.0;
	double w = (double)(st->written < total ? st->written : total);
	double v = (double)(st->verified < total ? st->verified : total);
	double f = p->verify ? (w + v) / (2.0 * (double)total) : w / (double)total;
	return f < 0 ? 0 : f > 1 ? 1 : f;
}

/* Phase groups of the plain lines (writing and verifying blocks alternate: one group). */
static int group_of(enum cli_flash_state s)
{
	switch (s) {
	case CFS_VERIFYING:
		return CFS_WRITING;
	default:
		return (int)s;
	}
}

static const char *phase_label(const struct cli_flash_progress *p,
                               const struct cli_flash_status *st)
{
	uint64_t total = total_of(p, st);
	if (st->state == CFS_WRITING || st->state == CFS_VERIFYING) {
		if (!p->verify)
			return "writing";
		if (total && st->written >= total)
			return "verifying";
		return st->verified || st->state == CFS_VERIFYING ? "write+verify" : "writing";
	}
	return cli_flash_state_name(st->state);
}

/* Rate (image bytes of work per second since the first write) and ETA, or -1. */
static void rate_eta(struct cli_flash_progress *p, const struct cli_flash_status *st, double now,
                     double *rate, double *eta)
{
	uint64_t total = total_of(p, st);
	*rate = -1;
	*eta = -1;
	if (p->t_write < 0 && (st->written > 0 || st->state == CFS_WRITING))
		p->t_write = now;
	if (p->t_write < 0 || !total)
		return;
	double dt = now - p->t_write;
	double done = cli_flash_fraction(p, st) * (double)total;
	if (dt < 0.2 || done <= 0)
		return;
	*rate = done / dt;
	*eta = ((double)total - done) / *rate;
}

char *cli_flash_bar_line(struct cli_flash_progress *p, const struct cli_flash_status *st,
                         double now, int width, char *out, size_t cap)
{
	char right[112], b1[24], b2[24], r[24], t[24];
	uint64_t total = total_of(p, st);
	double rate, eta;
	rate_eta(p, st, now, &rate, &eta);
	double f = cli_flash_fraction(p, st);
	const char *label = phase_label(p, st);
	uint64_t done = (uint64_t)(f * (double)total + 0.5);
	if (total)
		cli_flash_fmt_bytes(b2, sizeof b2, total);
	else
		snprintf(b2, sizeof b2, "?");
	if (st->state == CFS_DONE || st->state == CFS_FAILED)
		snprintf(right, sizeof right, "%3d%% %9s/%-9s %10s  in %-5s", (int)(f * 100),
		         cli_flash_fmt_bytes(b1, sizeof b1, done), b2,
		         cli_flash_fmt_rate(r, sizeof r, rate),
		         cli_flash_fmt_eta(t, sizeof t, now - p->t0));
	else if (p->t_write < 0)
		snprintf(right, sizeof right, "%3d%% %9s/%-9s %10s  at %-5s", (int)(f * 100), "",
		         b2, "", cli_flash_fmt_eta(t, sizeof t, now - p->t0));
	else
		snprintf(right, sizeof right, "%3d%% %9s/%-9s %10s ETA %-5s", (int)(f * 100),
		         cli_flash_fmt_bytes(b1, sizeof b1, done), b2,
		         cli_flash_fmt_rate(r, sizeof r, rate),
		         cli_flash_fmt_eta(t, sizeof t, eta));
	if (width < 20)
		width = 20;
	/* "label" 12, " [", bar, "]  ", right: the bar takes what is left of width - 1 */
	int barw = width - 1 - 12 - 2 - 2 - (int)strlen(right);
	if (barw > 50)
		barw = 50;
	if (barw < 5) {
		/* no room for a bar: phase and figures only, cut to the width */
		snprintf(out, cap, "%-12s %s", label, right);
		if ((size_t)width - 1 < cap)
			out[width - 1] = '\0';
		return out;
	}
	char bar[64];
	int fill = (int)(f * barw + 1e-9);
	for (int i = 0; i < barw; i++)
		bar[i] = i < fill ? '#' : '.';
	bar[barw] = '\0';
	snprintf(out, cap, "%-12s [%s] %s", label, bar, right);
	return out;
}

int cli_flash_plain_line(struct cli_flash_progress *p, const struct cli_flash_status *st,
                         double now, char *out, size_t cap)
{
	double rate, eta;
	rate_eta(p, st, now, &rate, &eta);
	int g = group_of(st->state);
	uint64_t total = total_of(p, st);
	char b1[24], b2[24], b3[24], r[24], t[24];
	/* "writing" before anything was erased or written: the run waits for image data
	 * (Intel HEX before its first record); the erase comes first, announce that */
	if (g == CFS_WRITING && st->written == 0 && st->erased == 0)
		return 0;
	if (g != p->last_group) {
		p->last_group = g;
		switch (st->state) {
		case CFS_STAGING:
			snprintf(out, cap,
			         "staging the image on the bridge (the STM32 is flashed once it is "
			         "all there and its CRC-32 matches)");
			break;
		case CFS_IDENTIFYING:
			snprintf(out, cap, "identifying the chip");
			break;
		case CFS_ERASING:
			if (st->dev_name[0])
				snprintf(out, cap, "erasing (%s, PID %s)", st->dev_name,
				         st->pid[0] ? st->pid : "?");
			else
				snprintf(out, cap, "erasing");
			break;
		case CFS_WRITING:
		case CFS_VERIFYING:
			snprintf(out, cap, "%s %s", p->verify ? "writing and verifying" : "writing",
			         total ? cli_flash_fmt_bytes(b1, sizeof b1, total) : "");
			break;
		case CFS_STARTING:
			snprintf(out, cap, "starting the application");
			break;
		case CFS_DONE:
			snprintf(out, cap, "done");
			break;
		default:
			snprintf(out, cap, "%s", cli_flash_state_name(st->state));
			break;
		}
		return 1;
	}
	if (g == CFS_WRITING && total) {
		int dec = (int)(cli_flash_fraction(p, st) * 10 + 1e-9);
		if (dec > p->last_decile && dec < 10) {
			p->last_decile = dec;
			if (p->verify)
				snprintf(out, cap,
				         "%3d%%  written %s, verified %s of %s  %s  ETA %s",
				         dec * 10, cli_flash_fmt_bytes(b1, sizeof b1, st->written),
				         cli_flash_fmt_bytes(b2, sizeof b2, st->verified),
				         cli_flash_fmt_bytes(b3, sizeof b3, total),
				         cli_flash_fmt_rate(r, sizeof r, rate),
				         cli_flash_fmt_eta(t, sizeof t, eta));
			else
				snprintf(out, cap, "%3d%%  written %s of %s  %s  ETA %s", dec * 10,
				         cli_flash_fmt_bytes(b1, sizeof b1, st->written),
				         cli_flash_fmt_bytes(b3, sizeof b3, total),
				         cli_flash_fmt_rate(r, sizeof r, rate),
				         cli_flash_fmt_eta(t, sizeof t, eta));
			return 1;
		}
	}
	return 0;
}

char *cli_flash_summary(char *out, size_t cap, const char *who, const struct cli_flash_status *st,
                        double secs)
{
	char b[24], r[24], dev[128] = "";
	uint64_t n = st->total > 0 ? (uint64_t)st->total : st->written;
	if (st->dev_name[0])
		snprintf(dev, sizeof dev, " of %s (PID %s, bootloader %s)", st->dev_name,
		         st->pid[0] ? st->pid : "?", st->bootloader[0] ? st->bootloader : "?");
	snprintf(out, cap, "%s: wrote %s (%" PRIu64 " bytes) at %s%s%s, %s; %.1f s, %s", who,
	         cli_flash_fmt_bytes(b, sizeof b, n), n, st->address[0] ? st->address : "?", dev,
	         st->verify == 1 ? ", verified" : ", NOT verified",
	         st->go == 1 ? "application started" : "chip left in its bootloader", secs,
	         cli_flash_fmt_rate(r, sizeof r, secs > 0 ? (double)n / secs : -1));
	return out;
}
