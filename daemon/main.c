/* SPDX-License-Identifier: MIT */
/*
 * espstmd: serves one CUSE serial device (/dev/NAME) per configured bridge, each backed by
 * a link (link.h: RFC 2217, or the seed firmware's espstm-legacy ports), all on one libuv
 * loop, plus a control socket (ctl.h) for the espstm tool. Here: the command line, the
 * configuration and its reload on SIGHUP, the devices' life cycle.
 */
#include "conf.h"
#include "ctl.h"
#include "link.h"
#include "log.h"
#include "tty.h"

#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <uv.h>

#include "version.h"

#define EXIT_USAGE  2
#define EXIT_CONFIG 78 /* sysexits.h EX_CONFIG */

/* A recreated device's old node must be gone before the new one registers; its CUSE
 * session closes on the loop's next turn. Retry a name still taken this long. */
#define CREATE_RETRY_MS    100
#define CREATE_DEADLINE_MS 5000

struct device {
	struct device *next; /* in configuration order */
	struct daemon *dm;
	struct conf_device cfg; /* own copy: the configuration it was built from */
	struct link *link;
	struct tty_dev *tty;
	int pending;   /* to be created by the create timer (after a reload) */
	int ready;     /* the node exists (CUSE INIT done) */
	int announced; /* "ready: /dev/NAME" logged */
};

struct daemon {
	uv_loop_t loop;
	uv_signal_t sigint, sigterm, sighup;
	uv_timer_t create_timer;
	struct device *devs;
	const char *config;                   /* NULL in --device mode */
	const char *control_arg;              /* --control, NULL if not given */
	char control_path[CONF_PATH_MAX + 1]; /* in use, "" when disabled */
	char control_file[CONF_PATH_MAX + 1]; /* [global] control_socket at start */
	struct ctl *ctl;
	uint64_t create_deadline; /* uv_now, ms */
	int waiting_ready;        /* READY=1 is due once every device node exists */
	int reload_failed;        /* the last reload was rejected (STATUS says so) */
	int stopping;
	int status; /* exit status */
	int debug;
};

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: espstmd [-c FILE | --device NAME --connect HOST:PORT [--key FILE]]\n"
	        "               [--control PATH] [--foreground] [--debug]\n"
	        "       espstmd --check [-c FILE]\n"
	        "       espstmd --help | --version\n"
	        "\n"
	        "Creates a serial device /dev/NAME (CUSE) for each configured espstm bridge and\n"
	        "carries data, termios settings and DTR/RTS to it over RFC 2217 (or the seed\n"
	        "firmware's espstm-legacy ports). SIGHUP reloads the configuration file.\n"
	        "\n"
	        "  -c, --config FILE     configuration file (default %s)\n"
	        "      --check           only check the configuration file: exit 0 if it is\n"
	        "                        valid, 78 with every problem listed if not\n"
	        "      --device NAME     one device on the command line (with --connect)\n"
	        "      --connect H:P     its bridge: host:port, [ipv6]:port (port default 2217)\n"
	        "      --key FILE        its unit key (espstm pair): TLS-PSK link to the bridge\n"
	        "      --control PATH    control socket for the espstm tool (default: the\n"
	        "                        file's [global] control_socket, else %s);\n"
	        "                        'none' disables it\n"
	        "  -f, --foreground      accepted for compatibility: espstmd never forks\n"
	        "  -d, --debug           verbose logging (every request and message)\n"
	        "  -h, --help            this help\n"
	        "  -V, --version         print the version\n"
	        "\n"
	        "Exit status: 0 ok, 1 runtime error (a device or the control socket could not be\n"
	        "created, or a device's CUSE connection died), 2 usage, 78 configuration error.\n"
	        "See espstmd(8) and espstm.conf(5).\n",
	        CONF_DEFAULT_PATH, CTL_DEFAULT_PATH);
}

static size_t count_devices(const struct daemon *dm)
{
	size_t n = 0;

	for (const struct device *d = dm->devs; d; d = d->next)
		n++;
	return n;
}

/* READY=1 once every device node exists (after the start and after each reload). */
static void check_ready(struct daemon *dm)
{
	size_t n = 0;

	if (dm->stopping)
		return;
	for (struct device *d = dm->devs; d; d = d->next, n++)
		if (!d->ready)
			return;
	for (struct device *d = dm->devs; d; d = d->next) {
		if (!d->announced)
			log_info("ready: /dev/%s", d->cfg.name);
		d->announced = 1;
	}
	if (!dm->waiting_ready)
		return;
	dm->waiting_ready = 0;
	sd_notifyf(0, "READY=1\nSTATUS=serving %zu device(s)%s", n,
	           dm->reload_failed ? "; the last reload was rejected (configuration error, see "
	                               "the log)"
	                             : "");
}

static void on_ready(void *ctx, struct tty_dev *t)
{
	struct device *d = ctx;

	(void)t;
	if (d->ready)
		return;
	d->ready = 1;
	log_debug("%s: device node created", d->cfg.name);
	check_ready(d->dm);
}

/* Remove the device's node and link (not the struct). */
static void device_stop(struct device *d)
{
	if (d->link)
		link_set_callbacks(d->link, NULL, NULL);
	if (d->tty)
		tty_dev_free(d->tty);
	d->tty = NULL;
	if (d->link)
		link_close(d->link);
	d->link = NULL;
	d->ready = 0;
}

static void close_devices(struct daemon *dm)
{
	while (dm->devs) {
		struct device *d = dm->devs;
		dm->devs = d->next;
		device_stop(d);
		free(d);
	}
}

static void stop(struct daemon *dm)
{
	dm->stopping = 1;
	sd_notify(0, "STOPPING=1");
	close_devices(dm);
	if (dm->ctl)
		ctl_close(dm->ctl);
	dm->ctl = NULL;
	uv_close((uv_handle_t *)&dm->sigint, NULL);
	uv_close((uv_handle_t *)&dm->sigterm, NULL);
	uv_close((uv_handle_t *)&dm->sighup, NULL);
	uv_close((uv_handle_t *)&dm->create_timer, NULL);
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
	          d->cfg.name, d->cfg.name);
	dm->status = 1;
	stop(dm);
}

/* Create the device's link and node. quiet_exists: -EEXIST is returned without a log line
 * of ours (the caller retries). Returns 0 or a negative errno (logged). */
static int start_device(struct daemon *dm, struct device *d, int quiet_exists)
{
	const struct conf_device *c = &d->cfg;
	struct link_config lc = {
	    .host = c->host,
	    .port = c->port,
	    .reconnect_min_ms = c->reconnect_min_ms,
	    .reconnect_max_ms = c->reconnect_max_ms,
	    .connect_timeout_ms = c->connect_timeout_ms,
	    .protocol = c->protocol == CONF_PROTO_LEGACY ? LINK_PROTO_LEGACY : LINK_PROTO_RFC2217,
	    .control_port = c->control_port,
	    .keepalive_s = c->keepalive_s,
	    .key_path = c->key[0] ? c->key : NULL,
	};
	struct tty_config tc = {
	    .name = c->name,
	    .initial_baud = c->baud,
	    .on_ready = on_ready,
	    .on_dead = on_dead,
	    .ctx = d,
	    .debug = dm->debug,
	};
	int r;

	d->dm = dm;
	r = link_new(&dm->loop, c->name, &lc, &d->link);
	if (r < 0) {
		d->link = NULL;
		log_error("%s: cannot create the link to %s: %s", c->name, c->host, strerror(-r));
		return r;
	}
	r = tty_dev_new(&dm->loop, &tc, d->link, &d->tty);
	if (r < 0) {
		d->tty = NULL;
		link_close(d->link);
		d->link = NULL;
		if (r == -EEXIST && quiet_exists)
			return r;
		if (r == -ENOENT || r == -ENODEV)
			log_error("%s: no CUSE in this kernel: modprobe cuse (%s)", c->name,
			          strerror(-r));
		else if (r == -EACCES || r == -EPERM)
			log_error("%s: must run as root to open /dev/cuse (%s)", c->name,
			          strerror(-r));
		else if (r == -EEXIST)
			log_error("%s: /dev/%s already exists (another espstmd?)", c->name,
			          c->name);
		else
			log_error("%s: cannot create /dev/%s: %s", c->name, c->name, strerror(-r));
		return r;
	}
	return 0;
}

static struct device *device_alloc(struct daemon *dm, const struct conf_device *cfg)
{
	struct device *d = calloc(1, sizeof *d);

	if (!d)
		return NULL;
	d->dm = dm;
	d->cfg = *cfg;
	return d;
}

/* Create the devices a reload added or changed (pending). A name still taken (the old
 * node of a recreated device not gone yet) is retried until CREATE_DEADLINE_MS; any other
 * failure drops the device (logged; the next reload tries it again as an added one). */
static void on_create_timer(uv_timer_t *t)
{
	struct daemon *dm = t->data;
	struct device **pp = &dm->devs;
	int again = 0;

	if (dm->stopping)
		return;
	while (*pp) {
		struct device *d = *pp;
		int r;

		if (!d->pending) {
			pp = &d->next;
			continue;
		}
		r = start_device(dm, d, uv_now(&dm->loop) < dm->create_deadline);
		if (r == 0) {
			d->pending = 0;
			log_info("reload: /dev/%s registering (%s:%u, %s)", d->cfg.name,
			         d->cfg.host, (unsigned)d->cfg.port,
			         conf_protocol_name(d->cfg.protocol));
		} else if (r == -EEXIST && uv_now(&dm->loop) < dm->create_deadline) {
			again = 1;
		} else {
			log_error("reload: /dev/%s could not be created; it stays absent until the "
			          "next reload",
			          d->cfg.name);
			*pp = d->next;
			free(d);
			continue;
		}
		pp = &d->next;
	}
	if (again)
		uv_timer_start(&dm->create_timer, on_create_timer, CREATE_RETRY_MS, 0);
	check_ready(dm);
}

static void log_lines(enum log_level lvl, const char *text)
{
	while (text && *text) {
		const char *eol = strchr(text, '\n');
		int n = eol ? (int)(eol - text) : (int)strlen(text);
		log_msg(lvl, "%.*s", n, text);
		text += n + (eol ? 1 : 0);
	}
}

/* conf_load with its problems logged (one log line each). */
static int load_config(const char *path, struct conf *out)
{
	char *text = NULL;
	size_t len = 0;
	FILE *e = open_memstream(&text, &len);
	int r = conf_load(path, out, e);

	if (e) {
		fclose(e);
		log_lines(LOG_LEVEL_ERROR, text);
		free(text);
	}
	return r;
}

static uint64_t monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Take the device named name out of *list; NULL when it is not there. */
static struct device *take_device(struct device **list, const char *name)
{
	struct device **pp = list, *d;

	while (*pp && strcmp((*pp)->cfg.name, name) != 0)
		pp = &(*pp)->next;
	d = *pp;
	if (d)
		*pp = d->next;
	return d;
}

/* Apply one conf_diff entry: take its running device (if any) out of *oldlist and return
 * the device the new list gets in its place (kept, updated, or a new one pending creation),
 * or NULL when the device goes away (removed, or out of memory: logged). */
static struct device *reload_entry(struct daemon *dm, struct device **oldlist,
                                   const struct conf_diff_entry *e)
{
	const char *name = e->old_dev ? e->old_dev->name : e->new_dev->name;
	struct device *d = e->old_dev ? take_device(oldlist, name) : NULL;

	switch (e->change) {
	case CONF_REMOVED:
		log_info("reload: removing /dev/%s", name);
		if (d) {
			device_stop(d);
			free(d);
		}
		return NULL;
	case CONF_CHANGED:
		log_info("reload: /dev/%s: settings changed; recreating it (open users lose it)",
		         name);
		if (d) {
			device_stop(d);
			free(d);
		}
		d = NULL;
		break;
	case CONF_UPDATED:
		if (e->old_dev->http_port != e->new_dev->http_port)
			log_info("reload: /dev/%s: http_port now %u", name,
			         (unsigned)e->new_dev->http_port);
		if (e->old_dev->key_stamp != e->new_dev->key_stamp)
			log_info("reload: /dev/%s: key file %s changed; the link uses it from its "
			         "next connection",
			         name, e->new_dev->key);
		if (d) {
			d->cfg = *e->new_dev;
			if (d->link && e->old_dev->key_stamp != e->new_dev->key_stamp)
				link_key_changed(d->link);
		}
		break;
	case CONF_UNCHANGED:
		break;
	case CONF_ADDED:
		log_info("reload: adding /dev/%s (%s:%u, %s)", name, e->new_dev->host,
		         (unsigned)e->new_dev->port, conf_protocol_name(e->new_dev->protocol));
		break;
	}
	if (!d) {
		d = device_alloc(dm, e->new_dev);
		if (!d) {
			log_error("reload: /dev/%s: out of memory; it stays absent", name);
			return NULL;
		}
		d->pending = 1;
	}
	return d;
}

/* Take every running device out of the list, keep or stop it per the ndiff entries of
 * diff, and build the new list in the new file's order; then log the counts and have the
 * create timer make the added and recreated devices. */
static void reload_apply(struct daemon *dm, const struct conf_diff_entry *diff, size_t ndiff)
{
	size_t counts[CONF_REMOVED + 1] = {0};
	struct device *oldlist = dm->devs, *newlist = NULL, **tail = &newlist;

	dm->devs = NULL;
	for (size_t i = 0; i < ndiff; i++) {
		struct device *d = reload_entry(dm, &oldlist, &diff[i]);

		counts[diff[i].change]++;
		if (!d)
			continue;
		d->next = NULL;
		*tail = d;
		tail = &d->next;
	}
	/* every old device has an entry in diff */
	assert(oldlist == NULL);
	while (oldlist) {
		struct device *d = oldlist;
		oldlist = d->next;
		device_stop(d);
		free(d);
	}
	dm->devs = newlist;
	dm->reload_failed = 0;
	log_info("reload: %zu added, %zu removed, %zu recreated, %zu updated, %zu unchanged",
	         counts[CONF_ADDED], counts[CONF_REMOVED], counts[CONF_CHANGED],
	         counts[CONF_UPDATED], counts[CONF_UNCHANGED]);
	if (counts[CONF_ADDED] + counts[CONF_CHANGED] > 0) {
		/* after this turn's close callbacks: the old sessions are closed by then */
		dm->create_deadline = uv_now(&dm->loop) + CREATE_DEADLINE_MS;
		uv_timer_start(&dm->create_timer, on_create_timer, 0, 0);
	}
}

/* Match the running devices against nc (conf_diff) and apply the difference. Returns 0, or
 * -ENOMEM (logged; nothing changed). */
static int reload_devices(struct daemon *dm, const struct conf *nc)
{
	size_t nold = count_devices(dm), ndiff = 0, i = 0;
	struct conf_device *olds = calloc(nold ? nold : 1, sizeof *olds);
	struct conf_diff_entry *diff = NULL;

	if (!olds)
		goto nomem;
	for (struct device *d = dm->devs; d; d = d->next)
		olds[i++] = d->cfg;
	if (conf_diff(olds, nold, nc->devs, nc->ndevs, &diff, &ndiff) < 0)
		goto nomem;
	reload_apply(dm, diff, ndiff);
	free(diff);
	free(olds);
	return 0;
nomem:
	log_error("reload: out of memory; keeping the running configuration");
	free(diff);
	free(olds);
	return -ENOMEM;
}

/* SIGHUP: re-read the configuration file (sd_notify RELOADING=1 ... READY=1). A file with
 * problems is rejected as a whole (every problem logged) and the running configuration
 * stays; otherwise devices are matched by name (conf_diff): added ones are created, removed
 * ones go away, unchanged ones keep their open users, a device whose connection settings or
 * initial baud changed is recreated (its users lose it, as if a USB adapter were unplugged
 * and plugged back), a change of http_port or of the key in the same file is taken in
 * place. [global] control_socket changes take effect at the next start. */
static void reload(struct daemon *dm)
{
	struct conf nc;
	int r;

	if (!dm->config) {
		log_warn("SIGHUP: no configuration file (--device mode): nothing to reload");
		return;
	}
	log_info("SIGHUP: reloading %s", dm->config);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading %s",
	           (unsigned long long)monotonic_usec(), dm->config);
	dm->waiting_ready = 1;
	r = load_config(dm->config, &nc);
	if (r < 0) {
		log_error("reload: %s rejected (%s); keeping the running configuration "
		          "(%zu device(s))",
		          dm->config, r == -EINVAL ? "configuration error" : strerror(-r),
		          count_devices(dm));
		dm->reload_failed = 1;
		check_ready(dm);
		return;
	}
	if (!dm->control_arg && strcmp(nc.control_socket, dm->control_file) != 0)
		log_warn("reload: [global] control_socket changed; it takes effect at the next "
		         "start (still %s)",
		         dm->control_path[0] ? dm->control_path : "none");
	if (reload_devices(dm, &nc) < 0)
		dm->reload_failed = 1;
	conf_free(&nc);
	check_ready(dm);
}

static void on_sighup(uv_signal_t *s, int signum)
{
	struct daemon *dm = s->data;

	(void)signum;
	if (!dm->stopping)
		reload(dm);
}

/* ctl_ops: the devices as the control socket shows them. */
static size_t ctl_count(void *ctx)
{
	return count_devices(ctx);
}

static int ctl_get(void *ctx, size_t i, struct ctl_device *out)
{
	struct daemon *dm = ctx;
	struct device *d = dm->devs;

	while (d && i > 0) {
		d = d->next;
		i--;
	}
	if (!d)
		return -ENOENT;
	memset(out, 0, sizeof *out);
	out->name = d->cfg.name;
	out->host = d->cfg.host;
	out->port = d->cfg.port;
	out->protocol =
	    d->cfg.protocol == CONF_PROTO_LEGACY ? LINK_PROTO_LEGACY : LINK_PROTO_RFC2217;
	out->http_port = d->cfg.http_port;
	out->link = d->link;
	out->tty = d->tty;
	return 0;
}

static const struct ctl_ops ctl_ops = {.count = ctl_count, .get = ctl_get};

/* mkdir -p the directory part of path (mode 0755). Returns 0 or a negative errno. */
static int make_parent(const char *path)
{
	char dir[CONF_PATH_MAX + 1];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			struct stat st;
			*p = '\0';
			/* existing directories are not touched (under ProtectSystem=strict
			 * only /run/espstm itself is writable) */
			if (stat(dir, &st) != 0) {
				if (mkdir(dir, 0755) == 0)
					chmod(dir, 0755); /* whatever the umask */
				else if (errno != EEXIST)
					return -errno;
			}
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int start_control(struct daemon *dm)
{
	int r;

	if (!dm->control_path[0])
		return 0;
	r = make_parent(dm->control_path);
	if (r < 0) {
		log_error("control socket %s: cannot create its directory: %s", dm->control_path,
		          strerror(-r));
		return r;
	}
	r = ctl_new(&dm->loop, dm->control_path, &ctl_ops, dm, &dm->ctl);
	if (r < 0) {
		dm->ctl = NULL;
		if (r == -EADDRINUSE)
			log_error(
			    "control socket %s: another espstmd is running (it answers there); "
			    "stop it first, or give this one --control PATH or --control none",
			    dm->control_path);
		else
			log_error("control socket %s: cannot listen: %s", dm->control_path,
			          strerror(-r));
		return r;
	}
	log_debug("control socket: %s", dm->control_path);
	return 0;
}

/* What the command line asked for, besides what goes into struct daemon. */
struct options {
	const char *config, *device, *connect, *key;
	int check;
};

/* Parse the command line into *o and dm (--control, --debug). Returns -1 to go on, or the
 * exit status (0 after --help / --version, EXIT_USAGE with the problem on stderr). */
static int parse_options(int argc, char **argv, struct daemon *dm, struct options *o)
{
	enum { OPT_DEVICE = 256, OPT_CONNECT, OPT_CONTROL, OPT_CHECK, OPT_KEY };
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"device", required_argument, NULL, OPT_DEVICE},
	    {"connect", required_argument, NULL, OPT_CONNECT},
	    {"key", required_argument, NULL, OPT_KEY},
	    {"control", required_argument, NULL, OPT_CONTROL},
	    {"check", no_argument, NULL, OPT_CHECK},
	    {"foreground", no_argument, NULL, 'f'},
	    {"debug", no_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:fdhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			o->config = optarg;
			break;
		case OPT_DEVICE:
			o->device = optarg;
			break;
		case OPT_CONNECT:
			o->connect = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_CONTROL:
			dm->control_arg = optarg;
			break;
		case OPT_CHECK:
			o->check = 1;
			break;
		case 'f':
			break; /* espstmd never forks */
		case 'd':
			dm->debug = 1;
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
	if (dm->control_arg && (!*dm->control_arg || strlen(dm->control_arg) > CONF_PATH_MAX)) {
		fprintf(stderr,
		        "espstmd: --control: want a socket path of 1..%d characters or "
		        "'none'\n",
		        CONF_PATH_MAX);
		return EXIT_USAGE;
	}
	return -1;
}

/* --device NAME --connect HOST:PORT: the one device into *one. Returns -1 to go on, or
 * EXIT_USAGE (the problem on stderr). */
static int device_option(const struct options *o, struct conf_device *one)
{
	if (!o->device || !o->connect) {
		fprintf(stderr, "espstmd: --device and --connect go together%s\n",
		        o->key ? " (--key goes with them)" : "");
		return EXIT_USAGE;
	}
	if (o->config || o->check) {
		fprintf(stderr, "espstmd: use either -c FILE [--check] or "
		                "--device/--connect\n");
		return EXIT_USAGE;
	}
	if (!conf_valid_name(o->device)) {
		fprintf(stderr,
		        "espstmd: --device %s: want a plain name like ttySTM0 "
		        "([A-Za-z0-9_-], at most %d characters, not '%s')\n",
		        o->device, CONF_NAME_MAX, CONF_GLOBAL_SECTION);
		return EXIT_USAGE;
	}
	conf_device_defaults(one, o->device);
	if (conf_parse_hostport(o->connect, one->host, sizeof one->host, &one->port) < 0) {
		fprintf(stderr,
		        "espstmd: --connect %s: want HOST:PORT or [IPV6]:PORT (port "
		        "1..65535)\n",
		        o->connect);
		return EXIT_USAGE;
	}
	if (o->key && (o->key[0] != '/' || strlen(o->key) > CONF_KEY_PATH_MAX)) {
		fprintf(stderr,
		        "espstmd: --key %s: want an absolute path of at most %d characters\n",
		        o->key, CONF_KEY_PATH_MAX);
		return EXIT_USAGE;
	}
	if (o->key)
		snprintf(one->key, sizeof one->key, "%s", o->key);
	return -1;
}

/* The devices to serve into *conf: the one of --device/--connect (in *one), or the
 * configuration file's (--check stops there); then the control socket path. Returns -1 to
 * go on, or the exit status (0 after a good --check, EXIT_USAGE, EXIT_CONFIG). */
static int configure(struct daemon *dm, const struct options *o, struct conf *conf,
                     struct conf_device *one)
{
	if (o->device || o->connect || o->key) {
		int r = device_option(o, one);
		if (r >= 0)
			return r;
		conf->devs = one;
		conf->ndevs = 1;
	} else {
		const char *config = o->config ? o->config : CONF_DEFAULT_PATH;
		if (load_config(config, conf) < 0) {
			if (o->check)
				log_error("configuration error in %s", config);
			else
				log_error("configuration error in %s, not starting", config);
			return EXIT_CONFIG;
		}
		if (o->check) {
			printf("%s: ok, %zu device(s)\n", config, conf->ndevs);
			for (size_t i = 0; i < conf->ndevs; i++)
				if (conf->devs[i].key[0] && conf->devs[i].key_stamp == 0)
					printf("%s: [%s] key: %s does not exist yet (the link "
					       "retries until it does)\n",
					       config, conf->devs[i].name, conf->devs[i].key);
			conf_free(conf);
			return 0;
		}
		dm->config = config;
		snprintf(dm->control_file, sizeof dm->control_file, "%s", conf->control_socket);
	}
	const char *cp = dm->control_arg       ? dm->control_arg
	                 : dm->control_file[0] ? dm->control_file
	                                       : CTL_DEFAULT_PATH;
	if (strcmp(cp, "none") != 0)
		snprintf(dm->control_path, sizeof dm->control_path, "%s", cp);
	return -1;
}

/* The loop's handles: SIGINT/SIGTERM stop, SIGHUP reloads, the create timer. */
static void start_handles(struct daemon *dm)
{
	uv_signal_init(&dm->loop, &dm->sigint);
	uv_signal_init(&dm->loop, &dm->sigterm);
	uv_signal_init(&dm->loop, &dm->sighup);
	uv_timer_init(&dm->loop, &dm->create_timer);
	dm->sigint.data = dm->sigterm.data = dm->sighup.data = dm->create_timer.data = dm;
	uv_signal_start(&dm->sigint, on_signal, SIGINT);
	uv_signal_start(&dm->sigterm, on_signal, SIGTERM);
	uv_signal_start(&dm->sighup, on_sighup, SIGHUP);
}

/* Create the control socket and every device of conf, in order. Returns 0, or 1 after the
 * first failure (logged). */
static int start_devices(struct daemon *dm, const struct conf *conf)
{
	struct device **tail = &dm->devs;

	if (start_control(dm) < 0)
		return 1;
	for (size_t i = 0; i < conf->ndevs; i++) {
		struct device *d = device_alloc(dm, &conf->devs[i]);
		if (!d) {
			log_error("out of memory");
			return 1;
		}
		*tail = d;
		tail = &d->next;
		if (start_device(dm, d, 0) < 0)
			return 1;
	}
	return 0;
}

/* Serve conf's devices until a signal or a dead device stops the loop. Returns the exit
 * status: 0, or 1 (a runtime error). */
static int serve(struct daemon *dm, const struct conf *conf)
{
	int r, status;

	signal(SIGPIPE, SIG_IGN);
	r = uv_loop_init(&dm->loop);
	if (r < 0) {
		log_error("uv_loop_init: %s", uv_strerror(r));
		return 1;
	}
	start_handles(dm);
	dm->waiting_ready = 1;
	status = start_devices(dm, conf);
	if (status != 0)
		stop(dm);
	else
		log_info("version %s started, %zu device(s)%s%s", ESPSTM_VERSION, conf->ndevs,
		         dm->control_path[0] ? ", control socket " : "", dm->control_path);

	uv_run(&dm->loop, UV_RUN_DEFAULT);
	if (dm->status != 0)
		status = dm->status;
	r = uv_loop_close(&dm->loop);
	if (r < 0)
		log_debug("uv_loop_close: %s", uv_strerror(r));
	return status;
}

/*
 * espstmd never forks: it runs in the foreground, as a systemd Type=notify service (READY=1
 * once every device node exists) or from a shell / test script (which can wait for the
 * "espstmd: ready: /dev/NAME" lines on stderr); --foreground changes nothing. --check only
 * validates the configuration file. Exit status: 0 normal (SIGINT/SIGTERM, --help,
 * --version, --check of a valid file), 1 runtime error (a device or the control socket
 * cannot be created at start, or a device's CUSE connection died: systemd's Restart= then
 * brings espstmd back), 2 usage, 78 (EX_CONFIG) configuration error.
 */
int main(int argc, char **argv)
{
	struct options o = {0};
	struct conf conf = {0};
	struct conf_device one;
	struct daemon dm;
	int status;

	memset(&dm, 0, sizeof dm);
	status = parse_options(argc, argv, &dm, &o);
	if (status >= 0)
		return status;
	if (dm.debug)
		log_set_level(LOG_LEVEL_DEBUG);
	status = configure(&dm, &o, &conf, &one);
	if (status >= 0)
		return status;
	status = serve(&dm, &conf);
	if (conf.devs != &one)
		conf_free(&conf);
	return status;
}
