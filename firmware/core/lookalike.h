/* SPDX-License-Identifier: MIT */
/*
 * Cross-protocol guard of the plaintext ports (RFC 2217 without TLS, the legacy raw port
 * 1234 and control port 1235): a web page can make a browser send an HTTP request to any
 * host:port it names (a form POST with enctype text/plain, fetch() in no-cors mode). Such a
 * request reaching a byte bridge puts its text on the STM32's UART, and on the legacy control
 * port every 'r', 'u' and 'e' in it is a reset / bootloader / run command. The platform
 * holds the first bytes of every plaintext connection until http_lookalike() has decided,
 * and closes the connection without passing a byte on when they look like HTTP.
 * Portable C11, no OS calls, no heap.
 */
#ifndef ESPSTM_LOOKALIKE_H
#define ESPSTM_LOOKALIKE_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes http_lookalike() needs to decide ("OPTIONS ", "CONNECT "). */
#define HTTP_LOOKALIKE_MAX 8

/*
 * Does the start of a connection look like an HTTP request line (RFC 9110 section 9 method,
 * then a space: "GET ", "POST ", "PUT ", "HEAD ", "OPTIONS ", "DELETE ", "CONNECT ",
 * "PATCH ", exact case as browsers send them)? p: the first n bytes the client sent (n may
 * be 0; p may be NULL when n is 0). Returns 1 yes (refuse the connection), 0 no (pass every
 * byte on), -1 not decided yet: p is a proper prefix of one of them (n <
 * HTTP_LOOKALIKE_MAX): wait for more bytes. Never reads beyond HTTP_LOOKALIKE_MAX bytes.
 */
int http_lookalike(const uint8_t *p, size_t n);

/* The one-line answer to such a request (an HTTP/1.0 400 response with a text body saying
 * what the port is), NUL-terminated, for the platform to send before it closes. */
extern const char http_lookalike_answer[];

#endif
