/* SPDX-License-Identifier: MIT */
/* firmware/crypto/tls_session.c against another TLS implementation: OpenSSL's s_server and
 * s_client (the openssl package) on 127.0.0.1, TLS 1.2 PSK (RFC 4279). Our client with both
 * suites, our server, and a wrong key in each direction (OpenSSL sends or receives
 * bad_record_mac; tls_session reports -EACCES with the same text as between two units). */
#include "tls_session.h"
#include "unit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ID      "espstm-0123456789abcdef"
#define KEY_HEX "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define BAD_HEX "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static int entropy(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	return getrandom(buf, n, 0) == (ssize_t)n ? 0 : -EIO;
}

static void unit_psk(struct tls_psk *k)
{
	strcpy(k->identity, ID);
	for (int i = 0; i < TLS_PSK_KEY_LEN; i++)
		k->key[i] = (uint8_t)i;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A free TCP port on 127.0.0.1 (bound and released). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Runs openssl with its stdin from *in_fd (a pipe we write) and its stdout into *out_fd. */
static pid_t spawn_openssl(char **argv, int *in_fd, int *out_fd)
{
	int in[2], out[2];
	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe(out), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, out[1], 2);
	posix_spawn_file_actions_addclose(&fa, in[1]);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	pid_t pid;
	int r = posix_spawnp(&pid, "openssl", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	ck_assert_msg(r == 0, "cannot run openssl (scripts/install-deps installs it): %s",
	              strerror(r));
	close(in[0]);
	close(out[1]);
	*in_fd = in[1];
	*out_fd = out[0];
	return pid;
}

static void reap(pid_t pid, int in_fd, int out_fd)
{
	close(in_fd);
	close(out_fd);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static int connect_retry(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	for (long end = now_ms() + 10000; now_ms() < end; usleep(50000)) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			return fd;
		close(fd);
	}
	ck_abort_msg("openssl s_server did not listen on 127.0.0.1:%d", port);
	return -1;
}

/* Moves ciphertext between t and the socket, writes `say` once the session is open, and
 * collects plaintext into got until it holds `want` bytes, the session fails or 10 s pass.
 * Returns the plaintext count or tls_session_read's error. */
static int converse(struct tls_session *t, int fd, const char *say, char *got, size_t want)
{
	size_t n = 0, said = 0;
	for (long end = now_ms() + 10000; now_ms() < end;) {
		const uint8_t *p;
		size_t m;
		while ((m = tls_session_out(t, &p)) > 0) {
			ssize_t w = send(fd, p, m, MSG_NOSIGNAL);
			if (w <= 0)
				break;
			tls_session_out_done(t, (size_t)w);
		}
		if (say && said < strlen(say)) {
			int w =
			    tls_session_write(t, (const uint8_t *)say + said, strlen(say) - said);
			if (w > 0) {
				said += (size_t)w;
				continue;
			}
		}
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		uint8_t buf[4096];
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		if (r <= 0)
			return tls_session_errno(t) ? tls_session_errno(t) : -EPIPE;
		for (size_t off = 0; off < (size_t)r;) {
			off += tls_session_feed(t, buf + off, (size_t)r - off);
			int k;
			while ((k = tls_session_read(t, (uint8_t *)got + n, want - n)) > 0)
				n += (size_t)k;
			if (k < 0) {
				while ((m = tls_session_out(t, &p)) > 0 &&
				       send(fd, p, m, MSG_NOSIGNAL) > 0)
					tls_session_out_done(t, m); /* the alert */
				return k;
			}
			if (n == want)
				return (int)n;
		}
	}
	return (int)n;
}

/* Our client against `openssl s_server -rev` (it answers each line reversed). */
static int client_vs_s_server(const char *key_hex, const char *cipher, char *got, size_t want,
                              struct tls_session *t)
{
	char port[16];
	snprintf(port, sizeof(port), "127.0.0.1:%d", free_port());
	char *argv[] = {"openssl",  "s_server", "-accept",       port,
	                "-nocert",  "-psk",     (char *)key_hex, "-psk_identity",
	                ID,         "-tls1_2",  "-cipher",       (char *)cipher,
	                "-naccept", "1",        "-rev",          "-quiet",
	                NULL};
	int in_fd, out_fd;
	pid_t pid = spawn_openssl(argv, &in_fd, &out_fd);
	int fd = connect_retry(atoi(strchr(port, ':') + 1));
	struct tls_psk k;
	unit_psk(&k);
	ck_assert_int_eq(tls_session_init(t, TLS_CLIENT, &k, entropy, NULL), 0);
	int r = converse(t, fd, "hello tls_session\n", got, want);
	close(fd);
	reap(pid, in_fd, out_fd);
	return r;
}

START_TEST(our_client_openssl_server)
{
	static const char *ciphers[] = {"ECDHE-PSK-CHACHA20-POLY1305", "PSK-AES128-GCM-SHA256"};
	static const char *suites[] = {"TLS-ECDHE-PSK-WITH-CHACHA20-POLY1305-SHA256",
	                               "TLS-PSK-WITH-AES-128-GCM-SHA256"};
	for (int i = 0; i < 2; i++) {
		static struct tls_session t;
		char got[64] = "";
		ck_assert_int_eq(client_vs_s_server(KEY_HEX, ciphers[i], got, 18, &t), 18);
		ck_assert_str_eq(got, "noisses_slt olleh\n");
		ck_assert_str_eq(mbedtls_ssl_get_ciphersuite(&t.ssl), suites[i]);
		tls_session_free(&t);
	}
}
END_TEST

START_TEST(our_client_openssl_server_wrong_key)
{
	static struct tls_session t;
	char got[64];
	ck_assert_int_eq(client_vs_s_server(BAD_HEX, "PSK-AES128-GCM-SHA256", got, 18, &t),
	                 -EACCES);
	ck_assert_str_eq(tls_session_error(&t),
	                 "wrong key or unknown identity (handshake failed: bad_record_mac)");
	tls_session_free(&t);
}
END_TEST

/* Our server against `openssl s_client`: a line each way; the client's output is collected
 * from its stdout. Returns what the server read (or its error); *client_saw gets s_client's
 * output. */
static int server_vs_s_client(const char *key_hex, char *got, size_t want, char *client_saw,
                              size_t cap, struct tls_session *t)
{
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(lfd, 1), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
	char port[32];
	snprintf(port, sizeof(port), "127.0.0.1:%d", ntohs(a.sin_port));
	char *argv[] = {"openssl",       "s_client", "-connect", port,     "-psk", (char *)key_hex,
	                "-psk_identity", ID,         "-tls1_2",  "-quiet", NULL};
	int in_fd, out_fd;
	pid_t pid = spawn_openssl(argv, &in_fd, &out_fd);
	ck_assert_int_eq(write(in_fd, "from openssl\n", 13), 13);
	int fd = accept(lfd, NULL, NULL);
	close(lfd);
	struct tls_psk k;
	unit_psk(&k);
	ck_assert_int_eq(tls_session_init(t, TLS_SERVER, &k, entropy, NULL), 0);
	int r = converse(t, fd, "from tls_session\n", got, want);
	if (r > 0) { /* our line and close_notify out, so that s_client prints and ends */
		tls_session_close(t);
		const uint8_t *p;
		size_t m;
		while ((m = tls_session_out(t, &p)) > 0 && send(fd, p, m, MSG_NOSIGNAL) > 0)
			tls_session_out_done(t, m);
	}
	close(fd);
	close(in_fd);
	size_t n = 0;
	for (long end = now_ms() + 5000; n + 1 < cap && now_ms() < end;) {
		struct pollfd pf = {.fd = out_fd, .events = POLLIN};
		if (poll(&pf, 1, 100) <= 0)
			continue;
		ssize_t m = read(out_fd, client_saw + n, cap - 1 - n);
		if (m <= 0)
			break;
		n += (size_t)m;
	}
	client_saw[n] = '\0';
	reap(pid, -1, out_fd);
	return r;
}

START_TEST(openssl_client_our_server)
{
	static struct tls_session t;
	char got[64] = "", saw[4096];
	ck_assert_int_eq(server_vs_s_client(KEY_HEX, got, 13, saw, sizeof(saw), &t), 13);
	ck_assert_str_eq(got, "from openssl\n");
	ck_assert_msg(strstr(saw, "from tls_session\n") != NULL, "s_client printed: %s", saw);
	tls_session_free(&t);
}
END_TEST

START_TEST(openssl_client_our_server_wrong_key)
{
	static struct tls_session t;
	char got[64], saw[4096];
	ck_assert_int_eq(server_vs_s_client(BAD_HEX, got, 13, saw, sizeof(saw), &t), -EACCES);
	ck_assert_str_eq(tls_session_error(&t),
	                 "wrong key or unknown identity (handshake failed: bad_record_mac)");
	ck_assert_msg(strstr(saw, "bad record mac") != NULL, "s_client printed: %s", saw);
	tls_session_free(&t);
}
END_TEST

static Suite *tls_interop_suite(void)
{
	Suite *s = suite_create("tls_interop");
	TCase *tc = tcase_create("openssl");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, our_client_openssl_server);
	tcase_add_test(tc, our_client_openssl_server_wrong_key);
	tcase_add_test(tc, openssl_client_our_server);
	tcase_add_test(tc, openssl_client_our_server_wrong_key);
	suite_add_tcase(s, tc);
	return s;
}
UNIT_SUITE(tls_interop_suite)
