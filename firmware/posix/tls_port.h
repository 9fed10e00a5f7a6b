/* SPDX-License-Identifier: MIT */
/*
 * espstm-bridge: the client of the RFC 2217 port (and of the legacy raw port, which shares
 * its single slot) and the unit key (tls_port.c). The unit key (firmware/crypto unit_key.h)
 * is read from --key-file FILE, by default FLASH.key, made at the first start (mode 0600).
 * With a key, the RFC 2217 port looks at the client's first byte: 0x16 (a TLS handshake
 * record) starts a TLS-PSK server session (tls_session.h, RFC 4279) that carries RFC 2217
 * unchanged; anything else is a plaintext client, served only if plaintext is on
 * (--plaintext or the setting "plaintext"). Every plaintext connection's first bytes are
 * held until http_lookalike() (firmware/core/lookalike.h) has decided: an HTTP request is
 * refused before a byte reaches the UART. An idle timeout (setting idle_timeout_s,
 * --idle-timeout) and TCP keepalive free the target of a silent or vanished client.
 */
#ifndef ESPSTM_TLS_PORT_H
#define ESPSTM_TLS_PORT_H

#include "http_api.h"
#include "settings.h"

#include <stdint.h>
#include <uv.h>

struct app;
struct tls_session;

#define PORT_CBUF        4096   /* TLS ciphertext received and not yet taken by the session */
#define PORT_FIRST_MS    10000u /* first bytes / TLS handshake must be done within this (ms) */
#define PORT_KEEPALIVE_S 60u    /* TCP keepalive idle time (s) */
/* Plaintext first bytes that could still start an HTTP request ("P", "GE") are passed on
 * after this long without the rest (ms): a browser sends its request line at once, a
 * person typing into a raw connection may pause. */
#define PORT_GATE_HOLD_MS 2000u

enum port_kind { PORT_RFC2217, PORT_RAW };

/* The one client of the target (struct app.pc); zero when none. */
struct port_client {
	int kind;               /* enum port_kind */
	int detect;             /* 1: waiting for the first byte (TLS or plaintext?) */
	int gate;               /* 1: plaintext bytes held until http_lookalike() decides */
	int session;            /* 1: bridge_connect() was called */
	struct tls_session *ts; /* TLS session (malloc'd) or NULL: plaintext */
	uint8_t cbuf[PORT_CBUF];
	size_t clen;
	char peer[48]; /* "127.0.0.1:5555" */
	uint64_t since_ms, last_ms;
	uint64_t gate_ms; /* when the first held plaintext byte came */
	uint64_t bytes_in, bytes_out;
};

/* Command-line choices (main.c's options). */
struct tls_port_opts {
	const char *key_file; /* --key-file, NULL: FLASH.key (--flash) or a key for this run */
	const char *flash;    /* --flash or NULL */
	int no_key;           /* --no-key: no TLS, plaintext as without a key */
	int plaintext;        /* --plaintext: serve plaintext clients too */
	int idle_set;         /* --idle-timeout given (wins over the setting) */
	uint32_t idle_s;      /* --idle-timeout S (0 = none) */
};

/* Read or make the unit key (unless no_key). Returns 0, or 1 (message printed: unreadable,
 * bad or group/other-accessible key file, no entropy). */
int tls_port_setup(const struct tls_port_opts *o);
/* For pairing (POST /api/pair, /api/pair/rotate): the unit's identity and key into *out
 * (struct tls_psk of tls_session.h). Returns 0, or -ENOENT without a key (--no-key). */
struct tls_psk;
int tls_port_key(struct tls_psk *out);
/* A new unit key (made and stored by pair_posix_rotate, POST /api/pair/rotate) becomes the
 * one in force: the next handshake uses it, a TLS client connected now is dropped. No file
 * is written. Ignored without a key (--no-key). */
void tls_port_set_key(void *app, const struct tls_psk *k);
/* The key file in use ("" for a key of this run only, NULL with --no-key): for the HTTPS
 * certificate files next to it. */
const char *tls_port_key_path(void);
/* The settings' plaintext and idle_timeout_s (settings observer). */
void tls_port_settings(const struct settings *s);
/* 1 if plaintext clients are served: no key, --plaintext or the setting. */
int tls_port_plaintext_ok(void);
/* One line for the start-up log: "TLS-PSK identity espstm-..., plaintext off, idle 600 s". */
const char *tls_port_describe(void);

/* uv_connection_cb of the RFC 2217 port and the legacy raw port (server->data: the app). */
void port_on_connection(uv_stream_t *server, int status);
/* Drop the client (if any), logging why. */
void port_drop(struct app *a, const char *why);
/* From pump(): TLS progress, idle and first-bytes timeouts, reading resumed when there is
 * room. Returns 1 if the bridge may take bytes from app.rbuf (a session is open). */
int port_poll(struct app *a);
/* After the bridge took bytes from app.rbuf: read the socket again if there is room. */
void port_resume(struct app *a);
/* hal_net_send: bytes from the bridge to the client; returns how many were taken. */
size_t port_send(struct app *a, const uint8_t *p, size_t n);
/* The client for /api/status "clients"; POST /api/targets/N/disconnect. */
unsigned port_clients(void *app, struct api_client *c, unsigned max);
int port_disconnect(void *app, unsigned target);
/* At exit: close the client's handle and free its session. */
void port_shutdown(struct app *a);

#endif
