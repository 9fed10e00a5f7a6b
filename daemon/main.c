/* SPDX-License-Identifier: MIT */
/*
 * espstmd: serves one CUSE serial device (/dev/NAME) per configured bridge, each backed by
 * an RFC 2217 client link, all on one libuv loop.
 *
 * espstmd never forks: it is meant to run in the foreground, as a systemd Type=notify
 * service (READY=1 is sent once every device node exists) or from a shell / test script
 * (which can wait for the "espstmd: ready: /dev/NAME" lines on stderr). --foreground is
 * accepted for compatibility and changes nothing.
 *
 * Exit status: 0 normal (SIGINT/SIGTERM), 1 runtime error (including a device whose CUSE
 * connection died: espstmd then exits so that systemd's Restart= brings it back), 2 usage,
 * 78 (EX_CONFIG) configuration error.
 */
#include "conf.h"
#include "link.h"
#include "log.h"
#include "tty.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <uv.h>

#ifndef ESPSTM_VERSION
#define ESPSTM_VERSION "0.1.0"
#endif

#define EXIT_USAGE  2
#define EXIT_CONFIG 78 /* sysexits.h EX_CONFIG */

struct device {
	struct daemon *dm;
	const struct conf_device *cfg;
	struct link *link;
	struct tty_dev *tty;
	int ready;
};

struct daemon {
	uv_loop_t loop;
	uv_signal_t sigint, sigterm;
	struct device *devs;
	size_t ndevs;
	size_t nready;
	int stopping;
	int status; /* exit status */
	int debug;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: espstmd [-c FILE] [--device NAME --connect HOST:PORT] [--foreground]\n"
	        "               [--debug] [--help] [--version]\n"
	        "\n"
	        "Creates a serial device /dev/NAME (CUSE) for each configured espstm bridge and\n"
	        "carries data, termios settings and DTR/RTS to it over RFC 2217.\n"
	        "\n"
	        "  -c, --config FILE     configuration file (default %s)\n"
	        "      --device NAME     one device on the command line (with --connect)\n"
	        "      --connect H:P     its bridge: host:port, [ipv6]:port (port default 2217)\n"
	        "  -f, --foreground      accepted for compatibility: espstmd never forks\n"
	        "  -d, --debug           verbose logging (every request and message)\n"
	        "  -h, --help            this help\n"
	        "  -V, --version         print the version\n"
	        "\n"
	        "Exit status: 0 ok, 1 runtime error, 2 usage, 78 configuration error.\n",
	        CONF_DEFAULT_PATH);
}

static void on_ready(void *ctx, struct tty_dev *t)
{
	struct device *d = ctx;
	struct daemon *dm = d->dm;

	(void)t;
	if (d->ready)
		return;
	d->ready = 1;
	dm->nready++;
	log_debug("%s: device node created", d->cfg->name);
	if (dm->nready < dm->ndevs)
		return;
	for (size_t i = 0; i < dm->ndevs; i++)
		log_info("ready: /dev/%s", dm->devs[i].cfg->name);
	sd_notifyf(0, "READY=1\nSTATUS=serving %zu device(s)", dm->ndevs);
}

static void close_devices(struct daemon *dm)
{
	for (size_t i = 0; i < dm->ndevs; i++) {
		struct device *d = &dm->devs[i];
		if (d->link)
			link_set_callbacks(d->link, NULL, NULL);
		if (d->tty)
			tty_dev_free(d->tty);
		d->tty = NULL;
		if (d->link)
			link_close(d->link);
		d->link = NULL;
	}
}

static void stop(struct daemon *dm)
{
	dm->stopping = 1;
	sd_notify(0, "STOPPING=1");
	close_devices(dm);
	uv_close((uv_handle_t *)&dm->sigint, NULL);
	uv_close((uv_handle_t *)&dm->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct daemon *dm = s->data;

	if (dm->stopping)
		return;
	log_info("%s: shutting down", strsignal(signum));
	stop(dm);
}

/* A device's CUSE connection died (tty.h on_dead): its node is gone and cannot come back
 * inside this process, so stop everything and exit 1; systemd (Restart=) starts a fresh
 * espstmd that registers the devices again. */
static void on_dead(void *ctx, struct tty_dev *t)
{
	struct device *d = ctx;
	struct daemon *dm = d->dm;

	(void)t;
	if (dm->stopping)
		return;
	log_error("%s: /dev/%s lost its CUSE connection; exiting with status 1 so the service "
	          "manager restarts espstmd",
	          d->cfg->name, d->cfg->name);
	dm->status = 1;
	stop(dm);
}

static int start_device(struct daemon *dm, struct device *d)
{
	struct link_config lc = {
	    .host = d->cfg->host,
	    .port = d->cfg->port,
	    .reconnect_min_ms = d->cfg->reconnect_min_ms,
	    .reconnect_max_ms = d->cfg->reconnect_max_ms,
	    .connect_timeout_ms = d->cfg->connect_timeout_ms,
	};
	struct tty_config tc = {
	    .name = d->cfg->name,
	    .initial_baud = d->cfg->baud,
	    .on_ready = on_ready,
	    .on_dead = on_dead,
	    .ctx = d,
	    .debug = dm->debug,
	};
	int r;

	d->dm = dm;
	r = link_new(&dm->loop, d->cfg->name, &lc, &d->link);
	if (r < 0) {
		log_error("%s: cannot create the link to %s: %s", d->cfg->name, d->cfg->host,
		          strerror(-r));
		return r;
	}
	r = tty_dev_new(&dm->loop, &tc, d->link, &d->tty);
	if (r < 0) {
		d->tty = NULL;
		if (r == -ENOENT || r == -ENODEV)
			log_error("%s: no CUSE in this kernel: modprobe cuse (%s)", d->cfg->name,
			          strerror(-r));
		else if (r == -EACCES || r == -EPERM)
			log_error("%s: must run as root to open /dev/cuse (%s)", d->cfg->name,
			          strerror(-r));
		else if (r == -EEXIST)
			log_error("%s: /dev/%s already exists (another espstmd?)", d->cfg->name,
			          d->cfg->name);
		else
			log_error("%s: cannot create /dev/%s: %s", d->cfg->name, d->cfg->name,
			          strerror(-r));
		return r;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},  {"device", required_argument, NULL, 'D'},
	    {"connect", required_argument, NULL, 'C'}, {"foreground", no_argument, NULL, 'f'},
	    {"debug", no_argument, NULL, 'd'},         {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
	};
	const char *config = NULL, *device = NULL, *connect = NULL;
	struct conf conf = {0};
	struct conf_device one;
	struct daemon dm;
	int opt, r, status = 0;

	memset(&dm, 0, sizeof dm);
	while ((opt = getopt_long(argc, argv, "c:fdhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			config = optarg;
			break;
		case 'D':
			device = optarg;
			break;
		case 'C':
			connect = optarg;
			break;
		case 'f':
			break; /* espstmd never forks */
		case 'd':
			dm.debug = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("espstmd %s\n", ESPSTM_VERSION);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "espstmd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	if (dm.debug)
		log_set_level(LOG_LEVEL_DEBUG);

	if (device || connect) {
		if (!device || !connect) {
			fprintf(stderr, "espstmd: --device and --connect go together\n");
			return EXIT_USAGE;
		}
		if (config) {
			fprintf(stderr, "espstmd: use either -c FILE or --device/--connect\n");
			return EXIT_USAGE;
		}
		if (!conf_valid_name(device)) {
			fprintf(stderr,
			        "espstmd: --device %s: want a plain name like ttySTM0 "
			        "([A-Za-z0-9_-], at most %d characters)\n",
			        device, CONF_NAME_MAX);
			return EXIT_USAGE;
		}
		conf_device_defaults(&one, device);
		if (conf_parse_hostport(connect, one.host, sizeof one.host, &one.port) < 0) {
			fprintf(stderr,
			        "espstmd: --connect %s: want HOST:PORT or [IPV6]:PORT (port "
			        "1..65535)\n",
			        connect);
			return EXIT_USAGE;
		}
		conf.devs = &one;
		conf.ndevs = 1;
	} else {
		if (!config)
			config = CONF_DEFAULT_PATH;
		r = conf_load(config, &conf, stderr);
		if (r < 0) {
			fprintf(stderr, "espstmd: configuration error, not starting\n");
			return EXIT_CONFIG;
		}
	}

	signal(SIGPIPE, SIG_IGN);
	r = uv_loop_init(&dm.loop);
	if (r < 0) {
		log_error("uv_loop_init: %s", uv_strerror(r));
		status = 1;
		goto out_conf;
	}
	uv_signal_init(&dm.loop, &dm.sigint);
	uv_signal_init(&dm.loop, &dm.sigterm);
	dm.sigint.data = dm.sigterm.data = &dm;
	uv_signal_start(&dm.sigint, on_signal, SIGINT);
	uv_signal_start(&dm.sigterm, on_signal, SIGTERM);

	dm.ndevs = conf.ndevs;
	dm.devs = calloc(conf.ndevs, sizeof *dm.devs);
	if (!dm.devs) {
		log_error("out of memory");
		status = 1;
		dm.ndevs = 0;
	}
	for (size_t i = 0; i < dm.ndevs && status == 0; i++) {
		dm.devs[i].cfg = &conf.devs[i];
		if (start_device(&dm, &dm.devs[i]) < 0)
			status = 1;
	}
	if (status != 0) {
		dm.stopping = 1;
		close_devices(&dm);
		uv_close((uv_handle_t *)&dm.sigint, NULL);
		uv_close((uv_handle_t *)&dm.sigterm, NULL);
	} else {
		log_info("version %s started, %zu device(s)", ESPSTM_VERSION, dm.ndevs);
	}

	uv_run(&dm.loop, UV_RUN_DEFAULT);
	if (dm.status != 0)
		status = dm.status;
	r = uv_loop_close(&dm.loop);
	if (r < 0)
		log_debug("uv_loop_close: %s", uv_strerror(r));
	free(dm.devs);
out_conf:
	if (conf.devs != &one)
		conf_free(&conf);
	return status;
}
