/* SPDX-License-Identifier: MIT */
/*
 * ctl: espstmd's control socket (protocol in ctl.h). One uv_pipe_t listener on a unix
 * stream socket (unix(7)); each client sends one line, gets one JSON line, is closed.
 */
#include "ctl.h"

#include "json.h"
#include "log.h"
#include "rfc2217.h"
#include "version.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_MAX_CLIENTS 16  /* served at once (ctl.h) */
#define CTL_MAX_BUSY    64  /* "busy" answers in flight; beyond, closed unanswered */
#define CTL_LINE_MAX    256 /* request bytes without the '\n' (and an optional '\r') */
#define CTL_DEADLINE_MS                                                                            \
	5000 /* a connection lasts at most this long from accept (request                          \
	      * and answer); not extended by the bytes it sends */
#define CTL_BACKLOG   32
#define CTL_NAME_SHOW 64 /* a name echoed in an error message is cut here */

enum cl_state { CL_READING, CL_WRITING, CL_CLOSING };

struct ctl_client {
	struct ctl *c;
	struct ctl_client *prev, *next;
	uv_pipe_t pipe;
	uv_timer_t timer;
	int open_handles;
	bool busy; /* accepted beyond CTL_MAX_CLIENTS: answered "busy" */
	enum cl_state st;
	size_t n;
	char buf[CTL_LINE_MAX + 2]; /* line + '\r' + '\n' */
	uv_write_t wr;
	char *reply;
};

struct ctl {
	uv_loop_t *loop;
	uv_pipe_t server;
	bool server_open;
	bool listening;
	bool closing;
	const struct ctl_ops *ops;
	void *ctx;
	char *path;
	dev_t sock_dev; /* the socket file we created, to unlink only that one */
	ino_t sock_ino;
	bool created;
	uv_pipe_t reject; /* accepts and drops a connection when a client cannot be allocated */
	bool reject_open;
	bool reject_pending; /* a connection waits (in libuv) for the reject handle to be free */
	struct ctl_client *clients;
	unsigned nactive, nbusy;
};

/* ------------------------------------------------------------------ lifetime */

static void maybe_free(struct ctl *c)
{
	if (c->closing && !c->server_open && !c->reject_open && !c->clients) {
		free(c->path);
		free(c);
	}
}

static void on_client_closed(uv_handle_t *h)
{
	struct ctl_client *cl = h->data;
	if (--cl->open_handles > 0)
		return;
	struct ctl *c = cl->c;
	if (cl->prev)
		cl->prev->next = cl->next;
	else
		c->clients = cl->next;
	if (cl->next)
		cl->next->prev = cl->prev;
	if (cl->busy)
		c->nbusy--;
	else
		c->nactive--;
	free(cl->reply);
	free(cl);
	maybe_free(c);
}

static void client_close(struct ctl_client *cl)
{
	if (cl->st == CL_CLOSING)
		return;
	cl->st = CL_CLOSING;
	uv_timer_stop(&cl->timer);
	uv_close((uv_handle_t *)&cl->timer, on_client_closed);
	uv_close((uv_handle_t *)&cl->pipe, on_client_closed);
}

/* ------------------------------------------------------------------ answers */

static void on_written(uv_write_t *req, int status)
{
	struct ctl_client *cl = req->data;
	if (status < 0 && status != UV_ECANCELED)
		log_debug("control: answer not delivered: %s", uv_strerror(status));
	client_close(cl); /* one answer per connection */
}

static void on_timeout(uv_timer_t *t)
{
	struct ctl_client *cl = t->data;
	log_debug("control: client %s within %d s: dropped",
	          cl->st == CL_READING ? "sent no complete request" : "did not read its answer",
	          CTL_DEADLINE_MS / 1000);
	client_close(cl);
}

/* Send text + '\n' (text is copied), then close. */
static void send_reply(struct ctl_client *cl, const char *text)
{
	size_t len = strlen(text);
	if (cl->st == CL_READING)
		uv_read_stop((uv_stream_t *)&cl->pipe);
	cl->st = CL_WRITING;
	cl->reply = malloc(len + 1);
	if (!cl->reply) {
		log_error("control: out of memory for an answer");
		client_close(cl);
		return;
	}
	memcpy(cl->reply, text, len);
	cl->reply[len] = '\n';
	uv_buf_t b = uv_buf_init(cl->reply, (unsigned)(len + 1));
	cl->wr.data = cl;
	/* the answer must be taken before the connection's deadline (set at accept) too */
	int rc = uv_write(&cl->wr, (uv_stream_t *)&cl->pipe, &b, 1, on_written);
	if (rc < 0) {
		log_debug("control: cannot answer: %s", uv_strerror(rc));
		client_close(cl);
	}
}

/* A name from the request as it may appear in a message: printable ASCII, cut short. */
static void show_name(char *out, size_t cap, const char *s)
{
	size_t o = 0;
	for (; *s && o + 1 < cap && o < CTL_NAME_SHOW; s++)
		out[o++] = (*s >= 0x20 && *s < 0x7F) ? *s : '?';
	if (*s && o + 4 < cap) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 section 4: no overlong forms,
 * no surrogates, at most U+10FFFF), or 0 if p does not start one. p is NUL-terminated. */
static size_t utf8_seq(const unsigned char *p)
{
	unsigned char b = p[0];
	unsigned char lo = 0x80, hi = 0xBF;
	size_t n;
	if (b < 0x80)
		return 1;
	if (b >= 0xC2 && b <= 0xDF)
		n = 2;
	else if (b >= 0xE0 && b <= 0xEF)
		n = 3;
	else if (b >= 0xF0 && b <= 0xF4)
		n = 4;
	else
		return 0; /* a continuation byte, C0/C1 (overlong) or F5..FF */
	if (b == 0xE0)
		lo = 0xA0; /* overlong */
	else if (b == 0xED)
		hi = 0x9F; /* surrogates */
	else if (b == 0xF0)
		lo = 0x90; /* overlong */
	else if (b == 0xF4)
		hi = 0x8F; /* past U+10FFFF */
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xBF) /* also stops at the NUL of a cut sequence */
			return 0;
	return n;
}

/* jw_str for text ctl did not write itself (device names and hosts from the daemon, the
 * link's peer and last_error, messages quoting them): the JSON answer must be UTF-8
 * (RFC 8259 section 8.1), so each byte that does not belong to a well-formed UTF-8
 * sequence (bytes >= 0x80 of another encoding, a character cut by a length limit) is
 * written as '?'. */
static void jw_text(struct jw *w, const char *s)
{
	char tmp[512];
	size_t len = strlen(s);
	char *out = len < sizeof tmp ? tmp : malloc(len + 1);
	if (!out) {
		jw_str(w, "?");
		return;
	}
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	while (*p) {
		size_t n = utf8_seq(p);
		if (n == 0) {
			out[o++] = '?';
			p++;
		} else {
			memcpy(out + o, p, n);
			o += n;
			p += n;
		}
	}
	out[o] = '\0';
	jw_str(w, out);
	if (out != tmp)
		free(out);
}

static void send_error(struct ctl_client *cl, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void send_error(struct ctl_client *cl, const char *fmt, ...)
{
	char msg[256], out[6 * 256 + 64]; /* jw_str escapes a byte to at most 6 */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct jw w;
	jw_init(&w, out, sizeof out);
	jw_obj(&w);
	jw_key(&w, "ok");
	jw_bool(&w, 0);
	jw_key(&w, "error");
	jw_text(&w, msg); /* it may quote a host, a name */
	jw_obj_end(&w);
	int r = jw_finish(&w);
	assert(r >= 0); /* out is sized for the longest escaped msg */
	if (r < 0)      /* never send cut JSON */
		send_reply(cl, "{\"ok\":false,\"error\":\"internal error\"}");
	else
		send_reply(cl, out);
}

/* ------------------------------------------------------------------ status */

static const char *proto_name(enum link_protocol p)
{
	return p == LINK_PROTO_LEGACY ? "espstm-legacy" : "rfc2217";
}

static const char *state_name(enum link_state s)
{
	switch (s) {
	case LINK_UP:
		return "up";
	case LINK_CONNECTING:
		return "connecting";
	default:
		return "down";
	}
}

static const char *flow_name(enum link_flow f)
{
	switch (f) {
	case LINK_FLOW_XONXOFF:
		return "xonxoff";
	case LINK_FLOW_HARDWARE:
		return "hardware";
	default:
		return "none";
	}
}

static long long clamp64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? INT64_MAX : (long long)v;
}

static void kv_int(struct jw *w, const char *k, long long v)
{
	jw_key(w, k);
	jw_int(w, v);
}

/* A string value: any text, made valid UTF-8 (jw_text). */
static void kv_str(struct jw *w, const char *k, const char *v)
{
	jw_key(w, k);
	jw_text(w, v);
}

/* One device object (keys of ctl.h). Without a tty, the line settings are null and the
 * modem inputs come from the link's last NOTIFY-MODEMSTATE. */
static void write_device(struct jw *w, uv_loop_t *loop, const struct ctl_device *d)
{
	struct link_stats ls;
	struct tty_stats ts;
	memset(&ls, 0, sizeof ls);
	memset(&ts, 0, sizeof ts);
	ls.state = LINK_DOWN;
	ls.rtt_us = -1;
	if (d->link)
		link_get_stats(d->link, &ls);
	if (d->tty)
		tty_get_stats(d->tty, &ts);
	ls.peer[sizeof ls.peer - 1] = '\0';
	ls.last_error[sizeof ls.last_error - 1] = '\0';

	jw_obj(w);
	kv_str(w, "name", d->name ? d->name : "");
	kv_str(w, "host", d->host ? d->host : "");
	kv_int(w, "port", d->port);
	kv_int(w, "http_port", d->http_port);
	kv_str(w, "protocol", proto_name(d->protocol));
	kv_str(w, "state", state_name(ls.state));
	kv_str(w, "peer", ls.peer);
	kv_int(w, "rtt_us", ls.rtt_us < 0 ? -1 : ls.rtt_us);
	uint64_t now = uv_now(loop);
	kv_int(w, "up_ms",
	       ls.state == LINK_UP && ls.up_since_ms && now >= ls.up_since_ms
	           ? clamp64(now - ls.up_since_ms)
	           : 0);
	if (d->tty) {
		char par[2] = {ts.parity ? ts.parity : '?', '\0'};
		kv_int(w, "baud", ts.baud);
		kv_int(w, "data_bits", ts.data_bits);
		kv_str(w, "parity", par);
		kv_int(w, "stop_bits", ts.stop_bits);
		kv_str(w, "flow", flow_name(ts.flow));
	} else {
		static const char *const nul[] = {"baud", "data_bits", "parity", "stop_bits",
		                                  "flow"};
		for (size_t i = 0; i < sizeof nul / sizeof nul[0]; i++) {
			jw_key(w, nul[i]);
			jw_null(w);
		}
	}
	int m = ts.modem;
	if (!d->tty && d->link) {
		uint8_t ms = link_modemstate(d->link);
		m = (ms & RFC2217_MODEM_CTS ? TIOCM_CTS : 0) |
		    (ms & RFC2217_MODEM_DSR ? TIOCM_DSR : 0) |
		    (ms & RFC2217_MODEM_CD ? TIOCM_CD : 0) | (ms & RFC2217_MODEM_RI ? TIOCM_RI : 0);
	}
	kv_int(w, "dtr", !!(m & TIOCM_DTR));
	kv_int(w, "rts", !!(m & TIOCM_RTS));
	kv_int(w, "cts", !!(m & TIOCM_CTS));
	kv_int(w, "dsr", !!(m & TIOCM_DSR));
	kv_int(w, "cd", !!(m & TIOCM_CD));
	kv_int(w, "ri", !!(m & TIOCM_RI));
	kv_int(w, "opens", ts.opens);
	jw_key(w, "exclusive");
	jw_bool(w, ts.exclusive);
	kv_int(w, "tx_bytes", clamp64(ls.tx_bytes));
	kv_int(w, "rx_bytes", clamp64(ls.rx_bytes));
	kv_int(w, "tx_dropped", clamp64(ls.tx_dropped));
	kv_int(w, "rx_dropped", clamp64(ts.rx_dropped));
	kv_int(w, "connects", ls.connects);
	kv_int(w, "reconnects", ls.reconnects);
	kv_int(w, "errors", ls.errors);
	kv_str(w, "last_error", ls.last_error);
	jw_key(w, "icount");
	jw_obj(w);
	kv_int(w, "cts", ts.cts);
	kv_int(w, "dsr", ts.dsr);
	kv_int(w, "rng", ts.rng);
	kv_int(w, "dcd", ts.dcd);
	kv_int(w, "rx", ts.rx);
	kv_int(w, "tx", ts.tx);
	kv_int(w, "frame", ts.frame);
	kv_int(w, "overrun", ts.overrun);
	kv_int(w, "parity", ts.parity_err);
	kv_int(w, "brk", ts.brk);
	kv_int(w, "buf_overrun", ts.buf_overrun);
	jw_obj_end(w);
	jw_obj_end(w);
}

/* Build {"ok":true,"devices":[...]} for every device (only = NULL) or one. Returns a
 * malloc'd string, or NULL (out of memory). */
static char *status_json(struct ctl *c, const struct ctl_device *devs, size_t ndev)
{
	size_t cap = 1024 + ndev * 1024;
	for (int tries = 0; tries < 8; tries++, cap *= 2) {
		char *buf = malloc(cap);
		if (!buf)
			return NULL;
		struct jw w;
		jw_init(&w, buf, cap);
		jw_obj(&w);
		jw_key(&w, "ok");
		jw_bool(&w, 1);
		jw_key(&w, "devices");
		jw_arr(&w);
		for (size_t i = 0; i < ndev; i++)
			write_device(&w, c->loop, &devs[i]);
		jw_arr_end(&w);
		jw_obj_end(&w);
		if (jw_finish(&w) >= 0)
			return buf;
		free(buf);
	}
	return NULL;
}

/* Find a device by name ("ttySTM0" or "/dev/ttySTM0"). 0 and *out, or -ENOENT. */
static int find_device(struct ctl *c, const char *name, struct ctl_device *out)
{
	if (strncmp(name, "/dev/", 5) == 0)
		name += 5;
	size_t n = c->ops->count(c->ctx);
	for (size_t i = 0; i < n; i++) {
		struct ctl_device d;
		memset(&d, 0, sizeof d);
		if (c->ops->get(c->ctx, i, &d) == 0 && d.name && strcmp(d.name, name) == 0) {
			*out = d;
			return 0;
		}
	}
	return -ENOENT;
}

static void do_status(struct ctl_client *cl, const char *name)
{
	struct ctl *c = cl->c;
	struct ctl_device one, *devs = NULL;
	size_t ndev = 0;
	char show[CTL_NAME_SHOW + 8];

	if (name) {
		if (find_device(c, name, &one) < 0) {
			show_name(show, sizeof show, name);
			send_error(cl, "unknown device '%s'", show);
			return;
		}
		devs = &one;
		ndev = 1;
	} else {
		size_t n = c->ops->count(c->ctx);
		devs = n ? calloc(n, sizeof *devs) : NULL;
		if (n && !devs) {
			send_error(cl, "out of memory");
			return;
		}
		for (size_t i = 0; i < n; i++)
			if (c->ops->get(c->ctx, i, &devs[ndev]) == 0 && devs[ndev].name)
				ndev++;
	}
	char *js = status_json(c, devs, ndev);
	if (devs != &one)
		free(devs);
	if (!js) {
		send_error(cl, "out of memory");
		return;
	}
	send_reply(cl, js);
	free(js);
}

static void do_action(struct ctl_client *cl, const char *cmd, enum link_action a, const char *name)
{
	struct ctl_device d;
	char show[CTL_NAME_SHOW + 8];
	if (find_device(cl->c, name, &d) < 0) {
		show_name(show, sizeof show, name);
		send_error(cl, "unknown device '%s'", show);
		return;
	}
	int rc = d.link ? link_action(d.link, a) : -ENOTCONN;
	switch (rc) {
	case 0:
		log_info("%s: %s (control socket)", d.name, cmd);
		send_reply(cl, "{\"ok\":true}");
		break;
	case -ENOTCONN:
		send_error(cl, "%s: link down (not connected to %s:%u)", d.name,
		           d.host ? d.host : "?", (unsigned)d.port);
		break;
	case -ENOTSUP:
		send_error(cl, "%s: the bridge refused RFC 2217 COM-PORT-OPTION: no control lines",
		           d.name);
		break;
	case -EBUSY:
		send_error(cl, "%s: another reset/boot/run is still running", d.name);
		break;
	default:
		send_error(cl, "%s: %s failed: %s", d.name, cmd, strerror(rc < 0 ? -rc : rc));
		break;
	}
}

static void do_version(struct ctl_client *cl)
{
	char out[128];
	struct jw w;
	jw_init(&w, out, sizeof out);
	jw_obj(&w);
	jw_key(&w, "ok");
	jw_bool(&w, 1);
	kv_str(&w, "version", ESPSTM_VERSION);
	jw_obj_end(&w);
	jw_finish(&w);
	send_reply(cl, out);
}

/* Handle one request line (len bytes at line, no '\n'; line[len] is writable). */
static void handle_line(struct ctl_client *cl, char *line, size_t len)
{
	char show[CTL_NAME_SHOW + 8];
	if (len && line[len - 1] == '\r')
		len--;
	if (len > CTL_LINE_MAX) {
		send_error(cl, "line too long (at most %d bytes)", CTL_LINE_MAX);
		return;
	}
	if (memchr(line, '\0', len)) {
		send_error(cl, "bad request: NUL byte");
		return;
	}
	line[len] = '\0';
	char *tok[4], *save = NULL;
	int nt = 0;
	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (nt < 4)
			tok[nt] = t;
		nt++;
	}
	if (nt == 0) {
		send_error(cl, "empty request (commands: status, reset, boot, run, version)");
		return;
	}
	log_debug("control: request '%s'%s", tok[0], nt > 1 ? " ..." : "");
	if (strcmp(tok[0], "status") == 0) {
		if (nt > 2)
			send_error(cl, "usage: status [NAME]");
		else
			do_status(cl, nt == 2 ? tok[1] : NULL);
		return;
	}
	static const struct {
		const char *name;
		enum link_action a;
	} actions[] = {
	    {"reset", LINK_ACTION_RESET},
	    {"boot", LINK_ACTION_BOOT},
	    {"run", LINK_ACTION_RUN},
	};
	for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++) {
		if (strcmp(tok[0], actions[i].name) == 0) {
			if (nt != 2)
				send_error(cl, "usage: %s NAME", actions[i].name);
			else
				do_action(cl, actions[i].name, actions[i].a, tok[1]);
			return;
		}
	}
	if (strcmp(tok[0], "version") == 0) {
		if (nt != 1)
			send_error(cl, "usage: version");
		else
			do_version(cl);
		return;
	}
	show_name(show, sizeof show, tok[0]);
	send_error(cl, "unknown command '%s' (commands: status, reset, boot, run, version)", show);
}

/* ------------------------------------------------------------------ reading */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
	(void)suggested;
	struct ctl_client *cl = h->data;
	*b = uv_buf_init(cl->buf + cl->n, (unsigned)(sizeof cl->buf - cl->n));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	(void)b;
	struct ctl_client *cl = s->data;
	if (cl->st != CL_READING)
		return;
	if (nread == UV_EOF) {
		/* half-closed without a newline: what came is the request */
		if (cl->n)
			handle_line(cl, cl->buf, cl->n);
		else
			client_close(cl);
		return;
	}
	if (nread < 0) {
		client_close(cl);
		return;
	}
	if (nread == 0)
		return;
	size_t old = cl->n;
	cl->n += (size_t)nread;
	char *nl = memchr(cl->buf + old, '\n', (size_t)nread);
	if (nl) {
		handle_line(cl, cl->buf, (size_t)(nl - cl->buf));
		return;
	}
	if (cl->n >= sizeof cl->buf) {
		send_error(cl, "line too long (at most %d bytes)", CTL_LINE_MAX);
		return;
	}
	/* the deadline is not re-armed here: a client trickling a byte at a time would
	 * otherwise hold its slot for minutes (CTL_LINE_MAX bytes times the timeout) */
}

#ifdef ESPSTM_UNIT_TEST
/* Tests: the next this many client allocations fail, as calloc returning NULL would. */
extern unsigned ctl_test_alloc_failures;
unsigned ctl_test_alloc_failures;
#endif

static struct ctl_client *client_alloc(void)
{
#ifdef ESPSTM_UNIT_TEST
	if (ctl_test_alloc_failures) {
		ctl_test_alloc_failures--;
		return NULL;
	}
#endif
	return calloc(1, sizeof(struct ctl_client));
}

static void reject_one(struct ctl *c);

static void on_reject_closed(uv_handle_t *h)
{
	struct ctl *c = h->data;
	c->reject_open = false;
	if (c->reject_pending && !c->closing) {
		c->reject_pending = false;
		reject_one(c); /* the connection left waiting: libuv listens again once taken */
		return;
	}
	c->reject_pending = false; /* closing: libuv closes it with the listener */
	maybe_free(c);
}

/* Take the connection libuv holds for us into the (free) reject handle, answer "busy" if
 * the socket takes the line at once (no allocation), close it. */
static void reject_one(struct ctl *c)
{
	static const char busy[] = "{\"ok\":false,\"error\":\"busy\"}\n";
	int r = uv_pipe_init(c->loop, &c->reject, 0);
	assert(r == 0); /* uv_pipe_init without IPC only initialises the handle */
	(void)r;
	c->reject_open = true;
	c->reject.data = c;
	if (uv_accept((uv_stream_t *)&c->server, (uv_stream_t *)&c->reject) == 0) {
		uv_buf_t b = uv_buf_init((char *)busy, sizeof busy - 1);
		(void)uv_try_write((uv_stream_t *)&c->reject, &b, 1);
	}
	uv_close((uv_handle_t *)&c->reject, on_reject_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct ctl *c = server->data;
	if (status < 0) {
		log_warn("control: accept: %s", uv_strerror(status));
		return;
	}
	struct ctl_client *cl = client_alloc();
	if (!cl) {
		/* Every connection must be accepted: until one is, libuv stops watching the
		 * listener. The reject handle takes it now, or, while it is still closing from
		 * the previous one, as soon as it is closed (the listener waits that long). */
		log_error("control: out of memory for a client");
		if (!c->reject_open)
			reject_one(c);
		else
			c->reject_pending = true;
		return;
	}
	cl->c = c;
	cl->pipe.data = cl;
	cl->timer.data = cl;
	uv_pipe_init(c->loop, &cl->pipe, 0);
	uv_timer_init(c->loop, &cl->timer);
	cl->open_handles = 2;
	cl->st = CL_READING;
	cl->busy = c->nactive >= CTL_MAX_CLIENTS;
	if (cl->busy)
		c->nbusy++;
	else
		c->nactive++;
	cl->next = c->clients;
	if (c->clients)
		c->clients->prev = cl;
	c->clients = cl;

	int rc = uv_accept(server, (uv_stream_t *)&cl->pipe);
	if (rc < 0) {
		log_warn("control: accept: %s", uv_strerror(rc));
		client_close(cl);
		return;
	}
	/* one absolute deadline for the whole exchange, never extended */
	uv_timer_start(&cl->timer, on_timeout, CTL_DEADLINE_MS, 0);
	if (cl->busy) {
		if (c->nbusy > CTL_MAX_BUSY)
			client_close(cl);
		else
			send_reply(cl, "{\"ok\":false,\"error\":\"busy\"}");
		return;
	}
	rc = uv_read_start((uv_stream_t *)&cl->pipe, on_alloc, on_read);
	if (rc < 0) {
		log_warn("control: read: %s", uv_strerror(rc));
		client_close(cl);
	}
}

/* ------------------------------------------------------------------ setup */

/* Is something answering on path? 1 yes, 0 no (stale), negative errno if unknown. */
static int socket_alive(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) /* EAGAIN: listening, backlog full */
		return 1;
	if (e == ECONNREFUSED)
		return 0;
	return -e;
}

/* Create the socket's parent directory when it is missing (one level, 0755), as a
 * RuntimeDirectory= would. */
static int make_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	snprintf(dir, sizeof dir, "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	struct stat st;
	if (stat(dir, &st) == 0)
		return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (errno != ENOENT)
		return -errno;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static void on_server_closed(uv_handle_t *h)
{
	struct ctl *c = h->data;
	c->server_open = false;
	maybe_free(c);
}

int ctl_new(uv_loop_t *loop, const char *path, const struct ctl_ops *ops, void *ctx,
            struct ctl **out)
{
	struct sockaddr_un sa;
	struct stat st;
	int rc;

	*out = NULL;
	if (!loop || !path || !*path || !ops || !ops->count || !ops->get)
		return -EINVAL;
	if (strlen(path) >= sizeof sa.sun_path)
		return -ENAMETOOLONG;
	rc = make_parent(path);
	if (rc < 0)
		return rc;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EADDRINUSE; /* not ours to remove */
		rc = socket_alive(path);
		if (rc > 0)
			return -EADDRINUSE;
		if (rc < 0)
			return rc;
		if (unlink(path) < 0 && errno != ENOENT)
			return -errno;
	}

	struct ctl *c = calloc(1, sizeof *c);
	if (!c)
		return -ENOMEM;
	c->path = strdup(path);
	if (!c->path) {
		free(c);
		return -ENOMEM;
	}
	c->loop = loop;
	c->ops = ops;
	c->ctx = ctx;
	c->server.data = c;
	rc = uv_pipe_init(loop, &c->server, 0);
	if (rc < 0) {
		free(c->path);
		free(c);
		return rc;
	}
	c->server_open = true;
	/* bind(2) creates the socket file with 0777 & ~umask (unix(7)): 0660 from the start.
	 * No chmod(2) by path afterwards: in a directory others can write (--control) the
	 * path could meanwhile be a symlink, and root would chmod its target. The umask is
	 * the process's; espstmd sets up the control socket before other threads create files. */
	mode_t old_mask = umask(0117);
	rc = uv_pipe_bind(&c->server, path);
	umask(old_mask);
	if (rc < 0)
		goto fail;
	c->created = true;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		c->sock_dev = st.st_dev;
		c->sock_ino = st.st_ino;
	}
	rc = uv_listen((uv_stream_t *)&c->server, CTL_BACKLOG, on_connection);
	if (rc < 0)
		goto fail;
	c->listening = true;
	*out = c;
	return 0;
fail:
	if (c->created)
		unlink(path);
	c->closing = true;
	uv_close((uv_handle_t *)&c->server, on_server_closed);
	return rc;
}

void ctl_close(struct ctl *c)
{
	struct stat st;
	if (!c || c->closing)
		return;
	c->closing = true;
	if (c->created && lstat(c->path, &st) == 0 && st.st_dev == c->sock_dev &&
	    st.st_ino == c->sock_ino)
		unlink(c->path);
	for (struct ctl_client *cl = c->clients; cl; cl = cl->next)
		client_close(cl);
	uv_close((uv_handle_t *)&c->server, on_server_closed);
}
