/* SPDX-License-Identifier: MIT */
/*
 * `espstm pair` / `espstm unpair` (cli_pair.c) and the pinning every HTTPS call of espstm
 * uses. A unit with a key serves HTTPS on a self-signed certificate
 * (firmware/crypto/self_cert.h); espstm trusts it on first use, like ssh: the pin
 * "sha256//BASE64" (curl's CURLOPT_PINNEDPUBLICKEY form) is stored in known_bridges as the
 * line "HOST:PORT sha256//BASE64" and every later connection to HOST:PORT must present the
 * same public key (libcurl checks it; the chain itself is not verified: self-signed).
 * known_bridges: --known-bridges FILE, else $ESPSTM_KNOWN_BRIDGES, else
 * /etc/espstm/known_bridges (root) or ~/.config/espstm/known_bridges ($XDG_CONFIG_HOME).
 */
#ifndef ESPSTM_CLI_PAIR_H
#define ESPSTM_CLI_PAIR_H

#include <curl/curl.h>
#include <stddef.h>

#define CLI_PAIR_EXIT_CHANGED 3 /* the bridge's certificate is not the pinned one */
#define CLI_PAIR_PIN_MAX      64
#define CLI_PAIR_KNOWN_ENV    "ESPSTM_KNOWN_BRIDGES"
#define CLI_PAIR_PORT         80 /* default web port (HTTPS when the unit has a key) */

/* The known_bridges path: explicit (if not NULL), else as above. Returns 0 or -ENAMETOOLONG,
 * -ENOENT (no $HOME for a user). */
int cli_known_path(const char *explicit_path, char *out, size_t cap);

/* "HOST:PORT" as known_bridges names it ("[v6]:PORT" for IPv6). */
void cli_known_name(const char *host, unsigned port, char *out, size_t cap);

/*
 * The pin of name ("HOST:PORT") in file. Returns 1 with pin (cap bytes), 0 not listed (or no
 * file), or -errno (unreadable). Lines: "NAME PIN", '#' comments and blank lines ignored;
 * malformed lines are skipped.
 */
int cli_known_lookup(const char *file, const char *name, char *pin, size_t cap);

/*
 * Set name's pin (pin NULL: remove name; with name "HOST:*" every port of HOST) in file,
 * rewritten atomically (temporary file + rename, mode 0644, parent directories made 0755).
 * Returns the number of lines removed or replaced (0..), or -errno.
 */
int cli_known_set(const char *file, const char *name, const char *pin);

/*
 * The pin of HOST:PORT from the default known_bridges for espstm flash: 1 with pin, 0 none
 * known (then plain HTTP), -errno unreadable. Never fails for a missing file.
 */
int cli_pair_pin_for(const char *host, unsigned port, char *pin, size_t cap);

/*
 * Make handle h use HTTPS pinned to pin: CURLOPT_PINNEDPUBLICKEY = pin,
 * CURLOPT_SSL_VERIFYPEER = 0 and CURLOPT_SSL_VERIFYHOST = 0 (self-signed: the pin is the
 * trust). pin must stay valid while h is used.
 */
void cli_pair_pin_curl(CURL *h, const char *pin);

/*
 * The pin of the certificate HOST:PORT presents now: one TLS handshake (CURLOPT_CONNECT_ONLY,
 * CURLOPT_CERTINFO; nothing is sent), the certificate not verified. Returns 0 with got (cap
 * bytes), or -1 with a one-line reason in msg (no connection, no certificate).
 */
int cli_pair_probe(const char *host, unsigned port, char *got, size_t cap, char *msg, size_t mcap);

/*
 * The message for a certificate that changed (exit CLI_PAIR_EXIT_CHANGED):
 * "espstm: NAME: the bridge's certificate changed (pinned PIN, got GOT); if the unit was
 * reset, remove its line from FILE"
 */
void cli_pair_changed_msg(char *out, size_t cap, const char *name, const char *pinned,
                          const char *got, const char *file);

/* `espstm pair ...` / `espstm unpair ...` (argv[0] the command's name). Exit statuses: 0 ok,
 * 1 error, 2 usage, 3 certificate changed. */
int espstm_pair_main(int argc, char **argv);
int espstm_unpair_main(int argc, char **argv);

#endif
