/* SPDX-License-Identifier: MIT */
/*
 * The client of a target's RFC 2217 port (or legacy raw port): the first-byte gate, TLS-PSK
 * (firmware/crypto/tls_session.h, server role, over the lwIP socket without blocking),
 * plaintext, the idle timeout, the holder's information for /api/status and the API's
 * disconnect. Called by rfc2217_task.c (the target's task, holding the target's lock) and by
 * hal_esp.c (net_send, from the bridge, same task).
 *
 * Gate (DESIGN "The RFC 2217 port with a key"): nothing reaches the bridge until the client's
 * first bytes are seen. 0x16 (a TLS handshake record) on the RFC 2217 port: TLS with the
 * unit key, RFC 2217 unchanged inside; the bridge session starts once the handshake is done.
 * Anything else is a plaintext client: refused with one line unless the setting "plaintext"
 * is 1 (or the unit has no key); then its first line must not look like HTTP
 * (http_lookalike, a browser tricked into posting to the port), else it is refused before a
 * byte reaches the UART. A plaintext client that sends nothing for GATE_MS gets its session
 * anyway (nc waiting for the STM32's output); with plaintext off it is refused after
 * HANDSHAKE_MS. A TLS handshake must end within HANDSHAKE_MS.
 *
 * Buffers: cbuf (TARGET_TLS_IN ciphertext bytes not yet taken by the TLS session) and rbuf
 * (plaintext not yet taken by the bridge) are static per target; the socket is read only
 * while cbuf / the bridge have room (TCP backpressure, as before). Memory of the TLS session
 * itself: tls_session.h and README "RAM per TLS session".
 */
#include "target.h"
#include "lookalike.h"
#include "security.h"

#include "esp_log.h"
#include "esp_timer.h"
#include "lwip/sockets.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define GATE_MS      1000  /* plaintext: first bytes awaited this long */
#define HANDSHAKE_MS 10000 /* TLS handshake, or a silent client with plaintext off */

static const char PLAINTEXT_OFF[] =
    "espstm-bridge: plaintext RFC 2217 is off on this unit: pair with 'espstm pair HOST' or "
    "enable plaintext in the settings\r\n";

/* Send a short line without blocking (the socket is closed right after). */
static void send_line(int fd, const char *line, size_t n)
{
	lwip_send(fd, line, n, MSG_DONTWAIT);
}

void client_begin(struct espstm_target *t, int fd, const struct sockaddr_in *peer, int raw)
{
	uint8_t a[4];
	memcpy(a, &peer->sin_addr.s_addr, 4);
	snprintf(t->peer, sizeof(t->peer), "%u.%u.%u.%u:%u", a[0], a[1], a[2], a[3],
	         (unsigned)ntohs(peer->sin_port));
	t->cfd = fd;
	wifi_active_hold(1); /* no modem sleep while a client is connected (wifi.c) */
	t->rlen = 0;
	t->clen = 0;
	t->net_blocked = 0;
	t->net_error = 0;
	t->kick = 0;
	t->craw = raw;
	t->cstate = CL_GATE;
	t->since_us = t->active_us = esp_timer_get_time();
	t->bytes_in = t->bytes_out = 0;
	ESP_LOGI(t->tag, "client %s connected%s", t->peer, raw ? " (legacy raw port)" : "");
}

void client_drop(struct espstm_target *t, const char *why, int err)
{
	if (t->cfd < 0)
		return;
	if (err)
		ESP_LOGI(t->tag, "client %s disconnected (%s, errno %d)", t->peer, why, err);
	else
		ESP_LOGI(t->tag, "client %s disconnected (%s)", t->peer, why);
	int was = t->cstate;
	if (was == CL_TLS || was == CL_TLS_HS) {
		tls_session_close(&t->tls); /* close_notify, sent if the socket takes it now */
		const uint8_t *p;
		size_t n = tls_session_out(&t->tls, &p);
		if (n)
			lwip_send(t->cfd, p, n, MSG_DONTWAIT);
		tls_session_free(&t->tls);
	}
	lwip_close(t->cfd);
	t->cfd = -1;
	wifi_active_hold(-1);
	t->cstate = CL_NONE;
	t->rlen = 0;
	t->clen = 0;
	t->net_blocked = 0;
	t->net_error = 0;
	t->kick = 0;
	if (was == CL_TLS || was == CL_PLAIN)
		bridge_disconnect(&t->br); /* restores framing and pins, timed via bridge_poll */
}

/* Refuse the client with one line (logged). */
static void gate_refuse(struct espstm_target *t, const char *line, size_t n, const char *why)
{
	ESP_LOGW(t->tag, "client %s refused: %s", t->peer, why);
	send_line(t->cfd, line, n);
	client_drop(t, why, 0);
}

static void start_plain(struct espstm_target *t)
{
	t->cstate = CL_PLAIN;
	bridge_connect(&t->br);
	if (t->craw)
		bridge_force_raw(&t->br);
	ESP_LOGI(t->tag, "client %s: plaintext session", t->peer);
}

static void start_tls(struct espstm_target *t)
{
	struct tls_psk psk;
	if (sec_key_copy(&psk, &t->tls_gen) < 0) {
		ESP_LOGE(t->tag, "client %s: TLS refused: the unit has no key (NVS)", t->peer);
		client_drop(t, "no unit key", 0);
		return;
	}
	int r = tls_session_init(&t->tls, TLS_SERVER, &psk, sec_entropy, NULL);
	memset(&psk, 0, sizeof(psk));
	if (r < 0) {
		tls_session_free(&t->tls); /* safe after a failed init */
		ESP_LOGE(t->tag, "client %s: TLS session: error %d", t->peer, r);
		client_drop(t, "no TLS session", 0);
		return;
	}
	t->cstate = CL_TLS_HS;
	/* the gate's bytes are the start of the ClientHello */
	memcpy(t->cbuf, t->rbuf, t->rlen);
	t->clen = t->rlen;
	t->rlen = 0;
}

/* Decide on the gate's bytes (rbuf). Plaintext allowed: rfc2217_plaintext_allowed(). */
static void gate_decide(struct espstm_target *t, int timed_out)
{
	if (t->rlen && t->rbuf[0] == 0x16 && !t->craw) {
		start_tls(t);
		return;
	}
	if (!rfc2217_plaintext_allowed()) {
		if (t->rlen || timed_out)
			gate_refuse(t, PLAINTEXT_OFF, sizeof(PLAINTEXT_OFF) - 1,
			            "plaintext is off");
		return;
	}
	int h = t->rlen ? http_lookalike(t->rbuf, t->rlen) : -1;
	if (h == 1) {
		gate_refuse(t, http_lookalike_answer, strlen(http_lookalike_answer),
		            "HTTP request on the port");
		return;
	}
	if (h == 0 || timed_out)
		start_plain(t); /* rbuf goes to the bridge next (client_to_bridge) */
}

/* Plaintext in rbuf -> the bridge, as far as it takes it. Returns bytes moved. */
static size_t to_bridge(struct espstm_target *t)
{
	if (!t->rlen || (t->cstate != CL_PLAIN && t->cstate != CL_TLS))
		return 0;
	size_t k = bridge_from_net(&t->br, t->rbuf, t->rlen);
	memmove(t->rbuf, t->rbuf + k, t->rlen - k);
	t->rlen -= k;
	return k;
}

/* Send what the TLS session has queued, without blocking. */
static void tls_flush(struct espstm_target *t)
{
	for (int guard = 0; guard < 8 && t->cfd >= 0 && !t->net_error; guard++) {
		const uint8_t *p;
		size_t n = tls_session_out(&t->tls, &p);
		if (n == 0)
			return;
		ssize_t k = lwip_send(t->cfd, p, n, MSG_DONTWAIT);
		if (k > 0) {
			tls_session_out_done(&t->tls, (size_t)k);
			if ((size_t)k < n) {
				t->net_blocked = 1;
				return;
			}
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOMEM)) {
			t->net_blocked = 1; /* lwIP send buffer full: wait until writable */
			return;
		}
		t->net_error = errno ? errno : EIO;
		return;
	}
}

/* Ciphertext in cbuf -> the TLS session (feed; a short count keeps the rest for the next
 * round); its plaintext -> rbuf (read: also moves buffered ciphertext into mbedTLS and drives
 * the handshake) -> the bridge; what the session queued -> the socket. Returns bytes moved,
 * or -1 when the client was dropped (after the session's alert was sent). */
static int tls_step(struct espstm_target *t)
{
	int moved = 0;
	if (t->clen) {
		size_t k = tls_session_feed(&t->tls, t->cbuf, t->clen);
		memmove(t->cbuf, t->cbuf + k, t->clen - k);
		t->clen -= k;
		moved += (int)k;
	}
	size_t room = sizeof(t->rbuf) - t->rlen;
	if (t->cstate == CL_TLS && room > bridge_net_room(&t->br))
		room = bridge_net_room(&t->br); /* TCP backpressure as in plaintext */
	int k = room ? tls_session_read(&t->tls, t->rbuf + t->rlen, room) : 0;
	tls_flush(t);
	int st = tls_session_state(&t->tls);
	if (k < 0 || st == TLS_FAILED || st == TLS_CLOSED) {
		const char *e = tls_session_error(&t->tls);
		ESP_LOGW(t->tag, "client %s: TLS: %s", t->peer, e && e[0] ? e : "closed");
		client_drop(t, st == TLS_FAILED ? "TLS failed" : "TLS closed", 0);
		return -1;
	}
	t->rlen += (size_t)k;
	if (t->cstate == CL_TLS_HS && st == TLS_OPEN) {
		t->cstate = CL_TLS;
		bridge_connect(&t->br);
		ESP_LOGI(t->tag, "client %s: TLS-PSK session open", t->peer);
	}
	moved += (int)to_bridge(t);
	return moved;
}

int client_read(struct espstm_target *t)
{
	if (t->cfd < 0)
		return 0;
	uint8_t *dst;
	size_t room;
	if (t->cstate == CL_TLS_HS || t->cstate == CL_TLS) {
		dst = t->cbuf + t->clen;
		room = sizeof(t->cbuf) - t->clen;
	} else if (t->cstate == CL_GATE) {
		dst = t->rbuf + t->rlen; /* a few bytes: enough for http_lookalike */
		room = t->rlen < HTTP_LOOKALIKE_MAX ? HTTP_LOOKALIKE_MAX - t->rlen : 0;
	} else {
		dst = t->rbuf + t->rlen;
		room = bridge_net_room(&t->br);
		if (room > sizeof(t->rbuf) - t->rlen)
			room = sizeof(t->rbuf) - t->rlen;
	}
	if (room == 0)
		return 0;
	ssize_t k = lwip_recv(t->cfd, dst, room, MSG_DONTWAIT);
	if (k == 0) {
		client_drop(t, "end of stream", 0);
		return -1;
	}
	if (k < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return 0;
		client_drop(t, "receive error", errno);
		return -1;
	}
	t->active_us = esp_timer_get_time();
	t->bytes_in += (uint32_t)k;
	switch (t->cstate) {
	case CL_GATE:
		t->rlen += (size_t)k;
		gate_decide(t, 0);
		if (t->cstate == CL_TLS_HS)
			return tls_step(t) < 0 ? -1 : (int)k;
		break;
	case CL_TLS_HS:
	case CL_TLS:
		t->clen += (size_t)k;
		return tls_step(t) < 0 ? -1 : (int)k;
	default:
		t->rlen += (size_t)k;
		break;
	}
	if (t->cfd >= 0)
		to_bridge(t);
	return t->cfd >= 0 ? (int)k : -1;
}

size_t client_poll(struct espstm_target *t, int64_t now, uint32_t idle_timeout_s)
{
	if (t->cfd < 0)
		return 0;
	if (t->kick) {
		client_drop(t, "disconnected through the API (take-over)", 0);
		return 0;
	}
	if (t->net_error) {
		client_drop(t, "send error", t->net_error);
		return 0;
	}
	int64_t age_ms = (now - t->since_us) / 1000;
	if (t->cstate == CL_GATE) {
		if (age_ms >= GATE_MS && (rfc2217_plaintext_allowed() || age_ms >= HANDSHAKE_MS))
			gate_decide(t, 1);
		return 0;
	}
	if (t->cstate == CL_TLS_HS && age_ms >= HANDSHAKE_MS) {
		client_drop(t, "TLS handshake timeout", 0);
		return 0;
	}
	if ((t->cstate == CL_TLS_HS || t->cstate == CL_TLS) && t->tls_gen != sec_key_gen()) {
		client_drop(t, "unit key rotated", 0);
		return 0;
	}
	if (idle_timeout_s && now - t->active_us >= (int64_t)idle_timeout_s * 1000000) {
		client_drop(t, "idle timeout", 0);
		return 0;
	}
	if (t->cstate == CL_TLS || t->cstate == CL_TLS_HS) {
		int k = tls_step(t);
		return k > 0 ? (size_t)k : 0;
	}
	return to_bridge(t);
}

int client_want_read(const struct espstm_target *t)
{
	switch (t->cstate) {
	case CL_GATE:
		return t->rlen < HTTP_LOOKALIKE_MAX;
	case CL_TLS_HS:
	case CL_TLS:
		return t->clen < sizeof(t->cbuf);
	case CL_PLAIN:
		return t->rlen == 0 && bridge_net_room(&t->br) > 0;
	default:
		return 0;
	}
}

size_t client_send(struct espstm_target *t, const uint8_t *p, size_t n)
{
	if (t->cfd < 0)
		return n; /* no client: output is dropped */
	if (t->net_error)
		return 0;
	if (t->cstate == CL_GATE || t->cstate == CL_TLS_HS)
		return 0; /* no session yet (not reached: the bridge is not connected) */
	size_t sent;
	if (t->cstate == CL_TLS) {
		int k = tls_session_write(&t->tls, p, n);
		if (k == 0) { /* its output buffer is full: send, then try once more */
			tls_flush(t);
			k = tls_session_write(&t->tls, p, n);
		}
		if (k < 0) {
			t->net_error = -k;
			return 0;
		}
		sent = (size_t)k;
		tls_flush(t);
	} else {
		ssize_t k = lwip_send(t->cfd, p, n, MSG_DONTWAIT);
		if (k < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOMEM)
				t->net_blocked = 1; /* lwIP send buffer full: wait until writable */
			else
				t->net_error = errno ? errno : EIO;
			return 0;
		}
		if ((size_t)k < n)
			t->net_blocked = 1;
		sent = (size_t)k;
	}
	if (sent) {
		t->bytes_out += (uint32_t)sent;
		t->active_us = esp_timer_get_time();
	}
	return sent;
}

int client_info(const struct espstm_target *t, struct client_info *ci, int64_t now)
{
	memset(ci, 0, sizeof(*ci));
	if (t->cfd < 0)
		return 0;
	snprintf(ci->peer, sizeof(ci->peer), "%s", t->peer);
	ci->tls = t->cstate == CL_TLS || t->cstate == CL_TLS_HS;
	ci->since_s = (uint32_t)((now - t->since_us) / 1000000);
	ci->idle_s = (uint32_t)((now - t->active_us) / 1000000);
	ci->bytes_in = t->bytes_in;
	ci->bytes_out = t->bytes_out;
	return 1;
}
