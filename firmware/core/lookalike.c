/* SPDX-License-Identifier: MIT */
/* HTTP request lines on the plaintext serial ports (lookalike.h). */
#include "lookalike.h"

#include <string.h>

static const char *const methods[] = {"GET ",     "POST ",   "PUT ",     "HEAD ",
                                      "OPTIONS ", "DELETE ", "CONNECT ", "PATCH "};

const char http_lookalike_answer[] =
    "HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
    "espstm: this port is a serial port bridge (RFC 2217 / raw), not a web server\r\n";

int http_lookalike(const uint8_t *p, size_t n)
{
	int undecided = 0;
	if (n > HTTP_LOOKALIKE_MAX)
		n = HTTP_LOOKALIKE_MAX;
	for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		size_t ml = strlen(methods[i]);
		size_t k = n < ml ? n : ml;
		if (k && memcmp(p, methods[i], k) != 0)
			continue;
		if (n >= ml)
			return 1;
		undecided = 1; /* n < ml: a prefix of this method (all of them when n is 0) */
	}
	return undecided ? -1 : 0;
}
