/* SPDX-License-Identifier: MIT */
/*
 * RFC 2217 server: one FreeRTOS task per target, one listening lwIP socket per target, one
 * client at a time (a second one is told "busy" and closed). Sockets are used without
 * blocking (select + MSG_DONTWAIT). Data paths are bounded and use only the static buffers of
 * struct espstm_target: the socket is read only as far as bridge_net_room() allows and not
 * at all while earlier bytes wait, so a slow UART pushes back on TCP (window closes).
 * The task holds the target's lock (target.h) except while it waits in select, so the HTTP
 * API can call into the bridge between two rounds. What the client is (TLS-PSK, plaintext or
 * refused), its idle timeout and the API's disconnect: client.c. TCP keep-alive on every
 * client (60 s idle, 3 probes 5 s apart).
 *
 * Legacy ports (settings legacy_ports, target 0 only): raw port 1234 shares the single client
 * slot (bridge_force_raw: plain bytes, no Telnet), control port 1235 takes one client whose
 * bytes go to legacy_control_byte() (firmware/core/legacy.h); its answers are sent back.
 * Both are plaintext ports: with a unit key they listen only when the setting "plaintext" is
 * 1 (app_main.c); a first line that looks like HTTP (http_lookalike) is refused before any
 * byte reaches the UART or any command runs.
 *
 * Client allow-list (settings "allow", firmware/core/allowlist.h): every
 * client accepted on an RFC 2217 port or a legacy port whose IPv4 address is not in the list
 * gets the line "espstm: client A.B.C.D not allowed", is closed and logged. An empty list
 * allows everyone. The list is a parsed copy of the current settings, replaced at run time
 * by the settings observer (settings_set_observer: the HTTP server's task, right after
 * PUT /api/settings) under allow_mu; it is checked at accept, so a client already connected
 * when the list changes stays until it disconnects. The same observer keeps copies of the
 * settings "plaintext" (checked at each new client) and "idle_timeout_s".
 */
#include "target.h"
#include "allowlist.h"
#include "legacy.h"
#include "security.h"

#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"
#include "lwip/sockets.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* task stack (bytes on both SDKs): the TLS-PSK handshake (ECDHE, key derivation) runs in
 * tls_session_feed / _read on this task */
#if CONFIG_IDF_TARGET_ESP8266
#define TASK_STACK 6144
#else
#define TASK_STACK 8192
#endif
#define TASK_PRIO         5
#define ACTIVE_MS         200  /* after moving data, poll every tick for this long */
#define IDLE_POLL_MS      10   /* UART RX poll period while a client is idle */
#define NOCLIENT_MS       100  /* without a client (UART bytes are only drained) */
#define CTL_GATE_MS       1000 /* legacy control: first bytes held this long at most */
#define KEEPALIVE_IDLE_S  60
#define KEEPALIVE_INTVL_S 5
#define KEEPALIVE_CNT     3

static int legacy_on; /* rfc2217_enable_legacy() */

void rfc2217_enable_legacy(void)
{
	legacy_on = 1;
}

/* ---- client allow-list ---- */

static const char *ALLOW_TAG = "espstm.allow";
static struct allowlist allow_al;  /* empty: everyone (until allow_init) */
static SemaphoreHandle_t allow_mu; /* allow_al, the two below: observer vs target tasks */
static int allow_started;
static uint8_t set_plaintext;   /* settings "plaintext" */
static uint32_t set_idle_s = 0; /* settings "idle_timeout_s" (0 = none) */

static void allow_lock(void)
{
	if (allow_mu)
		xSemaphoreTake(allow_mu, portMAX_DELAY);
}

static void allow_unlock(void)
{
	if (allow_mu)
		xSemaphoreGive(allow_mu);
}

/* Settings observer: make the settings' allow-list current (logged when it changes). */
static void allow_update(void *ctx, const struct settings *s)
{
	(void)ctx;
	struct allowlist al;
	char err[112];
	if (settings_allowlist(s, &al, err, sizeof(err)) < 0) {
		/* settings_validate() refuses such a list: not reached */
		ESP_LOGE(ALLOW_TAG, "settings allow: %s (list unchanged)", err);
		return;
	}
	allow_lock();
	int changed = memcmp(&allow_al, &al, sizeof(al)) != 0;
	allow_al = al;
	set_plaintext = s->plaintext;
	set_idle_s = s->idle_timeout_s;
	allow_unlock();
	if (changed || !allow_started) {
		static char txt[ALLOWLIST_MAX * 20]; /* only the settings' task formats */
		ESP_LOGI(ALLOW_TAG, "clients allowed on the RFC 2217 and legacy ports: %s",
		         allowlist_format(&al, txt, sizeof(txt)));
	}
}

int rfc2217_plaintext_allowed(void)
{
	allow_lock();
	int on = set_plaintext != 0;
	allow_unlock();
	return on || sec_key_gen() == 0;
}

static uint32_t idle_timeout_s(void)
{
	allow_lock();
	uint32_t v = set_idle_s;
	allow_unlock();
	return v;
}

/* Once, before the first server task and the HTTP server start: the list of the loaded
 * settings, then follow every settings change. */
static void allow_init(void)
{
	if (allow_started)
		return;
	allow_mu = xSemaphoreCreateMutex();
	if (!allow_mu)
		ESP_LOGE(ALLOW_TAG, "no memory for the allow-list lock: updates are not atomic");
	allow_update(NULL, &settings_core()->cur);
	allow_started = 1;
	settings_set_observer(allow_update, NULL);
}

/* Check the client just accepted on fd (peer address from accept). Allowed: 1. Not
 * allowed: sends one line, closes fd, logs "client A.B.C.D not allowed", returns 0. */
static int allow_admit(struct espstm_target *t, int fd, const struct sockaddr_in *peer,
                       socklen_t plen, const char *port_name)
{
	int ipv4 = plen >= (socklen_t)sizeof(*peer) && peer->sin_family == AF_INET;
	uint8_t a[4] = {0, 0, 0, 0};
	if (ipv4)
		memcpy(a, &peer->sin_addr.s_addr, 4); /* network order: a[0] first octet */
	uint32_t host = (uint32_t)a[0] << 24 | (uint32_t)a[1] << 16 | (uint32_t)a[2] << 8 | a[3];
	allow_lock();
	int ok = allow_al.count == 0 || (ipv4 && allowlist_allows(&allow_al, host));
	allow_unlock();
	if (ok)
		return 1;
	ESP_LOGW(t->tag, "client %u.%u.%u.%u not allowed on the %s port; closed", a[0], a[1], a[2],
	         a[3], port_name);
	char line[64];
	int n = snprintf(line, sizeof(line), "espstm: client %u.%u.%u.%u not allowed\r\n", a[0],
	                 a[1], a[2], a[3]);
	if (n > 0 && (size_t)n < sizeof(line))
		lwip_send(fd, line, (size_t)n, MSG_DONTWAIT);
	lwip_close(fd);
	return 0;
}

static int listen_port(struct espstm_target *t, uint16_t port)
{
	int fd = lwip_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	if (fd < 0) {
		ESP_LOGE(t->tag, "socket: errno %d", errno);
		return -1;
	}
	int one = 1;
	lwip_setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	if (lwip_bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || lwip_listen(fd, 1) < 0) {
		ESP_LOGE(t->tag, "listen on port %u: errno %d", port, errno);
		lwip_close(fd);
		return -1;
	}
	return fd;
}

static int listen_on(struct espstm_target *t)
{
	int fd = listen_port(t, t->port);
	if (fd < 0)
		return -1;
	t->lfd = fd;
	ESP_LOGI(t->tag, "RFC 2217 server on TCP port %u", t->port);
	if (legacy_on && t->index == 0 && t->lfd_raw < 0) {
		t->lfd_raw = listen_port(t, LEGACY_RAW_PORT);
		t->lfd_ctl = listen_port(t, LEGACY_CONTROL_PORT);
		ESP_LOGI(t->tag, "legacy ports: raw %d, control %d (-1: not listening)",
		         t->lfd_raw >= 0 ? LEGACY_RAW_PORT : -1,
		         t->lfd_ctl >= 0 ? LEGACY_CONTROL_PORT : -1);
	}
	return 0;
}

/* A host that vanishes (WiFi gone, laptop asleep) must not hold the target forever: TCP
 * keep-alive after KEEPALIVE_IDLE_S without traffic, KEEPALIVE_CNT probes KEEPALIVE_INTVL_S
 * apart (lwIP takes seconds: sockets.c multiplies by 1000). */
static void keepalive(int fd)
{
	int one = 1;
	lwip_setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
#if defined(TCP_KEEPIDLE) && defined(TCP_KEEPINTVL) && defined(TCP_KEEPCNT)
	int idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTVL_S, cnt = KEEPALIVE_CNT;
	lwip_setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	lwip_setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	lwip_setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
#endif
}

static void accept_client(struct espstm_target *t, int lfd, int raw)
{
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int fd = lwip_accept(lfd, (struct sockaddr *)&peer, &plen);
	if (fd < 0)
		return;
	if (!allow_admit(t, fd, &peer, plen, raw ? "legacy raw" : "RFC 2217"))
		return;
	if (t->cfd >= 0) {
		static const char busy[] = "espstm: busy: another client is connected; closing\r\n";
		ESP_LOGI(t->tag, "second client refused (target busy)");
		lwip_send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT);
		lwip_close(fd);
		return;
	}
	int one = 1;
	lwip_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	keepalive(fd);
	client_begin(t, fd, &peer, raw); /* the gate decides: TLS, plaintext or refused */
}

/* Legacy control port: one client; a second one is told "busy" and closed. */
static void accept_ctl(struct espstm_target *t)
{
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	int fd = lwip_accept(t->lfd_ctl, (struct sockaddr *)&peer, &plen);
	if (fd < 0)
		return;
	if (!allow_admit(t, fd, &peer, plen, "legacy control"))
		return;
	if (t->ctl_fd >= 0) {
		static const char busy[] = "ERR busy: another control client is connected\r\n";
		lwip_send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT);
		lwip_close(fd);
		return;
	}
	int one = 1;
	lwip_setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	keepalive(fd);
	t->ctl_fd = fd;
	wifi_active_hold(1); /* no modem sleep while a client is connected (wifi.c) */
	legacy_ctl_init(&t->ctl);
	ESP_LOGI(t->tag, "legacy control client connected");
}

static void ctl_close(struct espstm_target *t, const char *why)
{
	ESP_LOGI(t->tag, "legacy control client disconnected (%s)", why);
	lwip_close(t->ctl_fd);
	t->ctl_fd = -1;
	wifi_active_hold(-1);
}

/* An answer line of a control command: sent without blocking (a client that does not read
 * its answers loses some of them). */
static void ctl_emit(void *ctx, const char *line, size_t len)
{
	struct espstm_target *t = ctx;
	lwip_send(t->ctl_fd, line, len, MSG_DONTWAIT);
}

/* Control bytes: commands (legacy.h), after the core's HTTP guard (legacy_control_input holds
 * the first bytes until http_lookalike() decides; a browser made to post to the port runs
 * nothing: "POST /" and its body would hold 'r', 'u', 'e' commands). */
static void ctl_read(struct espstm_target *t)
{
	uint8_t buf[64];
	ssize_t k = lwip_recv(t->ctl_fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (k <= 0) {
		ctl_close(t, "end of stream");
		return;
	}
	if (legacy_control_input(&t->ctl, &t->br, buf, (size_t)k, ctl_emit, t) == 1) {
		lwip_send(t->ctl_fd, http_lookalike_answer, strlen(http_lookalike_answer),
		          MSG_DONTWAIT);
		ESP_LOGW(t->tag, "legacy control: HTTP request refused");
		ctl_close(t, "HTTP request refused");
	}
}

/* UART -> bridge: read at most what the leftover buffer holds; keep what the bridge refuses. */
static size_t uart_in(struct espstm_target *t)
{
	size_t moved = 0;
	for (int guard = 0; guard < 8; guard++) {
		if (t->ulen < sizeof(t->ubuf)) {
			int k = uart_read_bytes(t->uart, t->ubuf + t->ulen,
			                        (uint32_t)(sizeof(t->ubuf) - t->ulen), 0);
			if (k > 0)
				t->ulen += (size_t)k;
		}
		if (t->ulen == 0)
			break;
		size_t k = bridge_from_uart(&t->br, t->ubuf, t->ulen);
		memmove(t->ubuf, t->ubuf + k, t->ulen - k);
		t->ulen -= k;
		moved += k;
		if (k == 0)
			break;
	}
	return moved;
}

/* While a flash claims the target: every UART byte goes to the ISP (dropped when it is not
 * running), then the ISP runs and the HTTP upload is woken (target_flash_wait). */
static size_t isp_in(struct espstm_target *t)
{
	size_t moved = 0;
	for (int guard = 0; guard < 8; guard++) {
		int k = uart_read_bytes(t->uart, t->ubuf, (uint32_t)sizeof(t->ubuf), 0);
		if (k <= 0)
			break;
		if (stm32_isp_busy(&t->isp))
			stm32_isp_input(&t->isp, t->ubuf, (size_t)k);
		moved += (size_t)k;
	}
	t->ulen = 0;
	stm32_isp_poll(&t->isp);
	xSemaphoreGive(t->flash_evt);
	return moved;
}

/* The descriptors select() watches this round; returns the highest. */
static int fill_fds(struct espstm_target *t, fd_set *rd, fd_set *wr)
{
	FD_ZERO(rd);
	FD_ZERO(wr);
	int maxfd = t->lfd;
	FD_SET(t->lfd, rd);
	const int more[3] = {t->lfd_raw, t->lfd_ctl, t->ctl_fd};
	for (int i = 0; i < 3; i++) {
		if (more[i] < 0)
			continue;
		FD_SET(more[i], rd);
		if (more[i] > maxfd)
			maxfd = more[i];
	}
	if (t->cfd >= 0) {
		if (client_want_read(t))
			FD_SET(t->cfd, rd);
		if (t->net_blocked)
			FD_SET(t->cfd, wr);
		if (t->cfd > maxfd)
			maxfd = t->cfd;
	}
	return maxfd;
}

/* How long select may sleep (ms, >= 1). */
static int32_t wait_time(struct espstm_target *t, int64_t now, int64_t active_until)
{
	int32_t wait_ms = t->cfd >= 0 || t->ctl_fd >= 0 ? IDLE_POLL_MS : NOCLIENT_MS;
	if (now < active_until || t->ulen || t->rlen || t->clen || bridge_tx_pending(&t->br) ||
	    t->isp_claimed)
		wait_ms = 1; /* UART FIFO / pending bytes / flashing: look again next tick */
	int32_t bn = bridge_next_ms(&t->br);
	if (bn >= 0 && bn < wait_ms)
		wait_ms = bn;
	return wait_ms < 1 ? 1 : wait_ms; /* block at least a tick: the idle task (watchdog) runs */
}

/* Events select() reported. Returns 1 when network bytes were read. */
static int handle_fds(struct espstm_target *t, fd_set *rd, fd_set *wr)
{
	int got = 0;
	if (t->cfd >= 0 && FD_ISSET(t->cfd, wr))
		t->net_blocked = 0; /* bridge_poll / client_poll offer the queued output again */
	if (t->cfd >= 0 && FD_ISSET(t->cfd, rd))
		got = client_read(t) > 0;
	if (FD_ISSET(t->lfd, rd))
		accept_client(t, t->lfd, 0);
	if (t->lfd_raw >= 0 && FD_ISSET(t->lfd_raw, rd))
		accept_client(t, t->lfd_raw, 1);
	if (t->lfd_ctl >= 0 && FD_ISSET(t->lfd_ctl, rd))
		accept_ctl(t);
	if (t->ctl_fd >= 0 && FD_ISSET(t->ctl_fd, rd))
		ctl_read(t);
	return got;
}

static void target_task(void *arg)
{
	struct espstm_target *t = arg;
	int64_t active_until = 0;
	xSemaphoreTake(t->lock, portMAX_DELAY);
	for (;;) {
		if (t->lfd < 0 && listen_on(t) < 0) {
			xSemaphoreGive(t->lock);
			vTaskDelay(pdMS_TO_TICKS(1000));
			xSemaphoreTake(t->lock, portMAX_DELAY);
			continue;
		}
		/* move everything that can move now */
		int64_t now = esp_timer_get_time();
		size_t moved = client_poll(t, now, idle_timeout_s());
		bridge_poll(&t->br);
		moved += t->isp_claimed ? isp_in(t) : uart_in(t);
		bridge_poll(&t->br);
		if (moved)
			active_until = now + ACTIVE_MS * 1000;

		fd_set rd, wr;
		int maxfd = fill_fds(t, &rd, &wr);
		int32_t wait_ms = wait_time(t, now, active_until);
		struct timeval tv = {.tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000};
		xSemaphoreGive(t->lock); /* the HTTP API may use the bridge while we wait */
		int n = lwip_select(maxfd + 1, &rd, &wr, NULL, &tv);
		xSemaphoreTake(t->lock, portMAX_DELAY);
		if (n < 0) {
			if (errno != EINTR) {
				ESP_LOGE(t->tag, "select: errno %d", errno);
				vTaskDelay(1);
			}
			continue;
		}
		if (n > 0 && handle_fds(t, &rd, &wr))
			active_until = esp_timer_get_time() + ACTIVE_MS * 1000;
	}
}

int rfc2217_client_info(unsigned index, struct client_info *ci)
{
	memset(ci, 0, sizeof(*ci));
	if (index >= ESPSTM_MAX_TARGETS || target_lock(index) < 0)
		return -1;
	int r = client_info(&espstm_targets[index], ci, esp_timer_get_time());
	target_unlock(index);
	return r;
}

int rfc2217_disconnect(unsigned index)
{
	if (index >= ESPSTM_MAX_TARGETS || target_lock(index) < 0)
		return -ENODEV;
	struct espstm_target *t = &espstm_targets[index];
	int r = t->cfd >= 0 ? 0 : -ENOTCONN;
	if (r == 0)
		t->kick = 1; /* the task drops it at its next round (client_poll) */
	target_unlock(index);
	return r;
}

int rfc2217_start(unsigned index)
{
	if (index >= ESPSTM_MAX_TARGETS || !espstm_targets[index].ready)
		return -1;
	struct espstm_target *t = &espstm_targets[index];
	allow_init();
	static char names[ESPSTM_MAX_TARGETS][12];
	snprintf(names[index], sizeof(names[index]), "rfc2217-%u", index);
	if (xTaskCreate(target_task, names[index], TASK_STACK, t, TASK_PRIO, NULL) != pdPASS) {
		ESP_LOGE(t->tag, "cannot create the server task");
		return -1;
	}
	return 0;
}
