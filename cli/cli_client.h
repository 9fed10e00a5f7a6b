/* SPDX-License-Identifier: MIT */
/*
 * cli_client: the `espstm` tool's side of espstmd's control socket (daemon/ctl.h): connect
 * to the unix stream socket, send one request line, read the one-line JSON answer.
 * Plain POSIX sockets (unix(7)), blocking with timeouts; no libuv.
 */
#ifndef ESPSTM_CLI_CLIENT_H
#define ESPSTM_CLI_CLIENT_H

#include <stddef.h>

/* Largest answer accepted, bytes (a status of many devices stays far below). */
#define CLI_REPLY_MAX (1024 * 1024)

/* Where cli_request failed: lets the tool word its message. */
enum cli_stage {
	CLI_STAGE_NONE = 0, /* no failure */
	CLI_STAGE_CONNECT,  /* socket path unusable or nobody listening: daemon not running */
	CLI_STAGE_SEND,     /* connected, the request could not be sent */
	CLI_STAGE_RECEIVE,  /* sent, no complete answer (timeout, closed early, too big) */
};

/*
 * Send `line` (no newline; one is added) to the socket at path and wait for the answer.
 * timeout_ms bounds the whole exchange (connect, send, receive), milliseconds, > 0.
 * Returns 0 and *reply: the answer without its trailing newline, NUL-terminated, malloc'd
 * (the caller frees it). On failure returns a negative errno and sets *stage (if not NULL):
 * -ENAMETOOLONG (path longer than sun_path), connect(2)'s errors such as -ENOENT,
 * -ECONNREFUSED, -EACCES (CLI_STAGE_CONNECT); send(2)'s (CLI_STAGE_SEND); -ETIMEDOUT,
 * -ECONNRESET (closed before a complete line), -EMSGSIZE (answer over CLI_REPLY_MAX),
 * recv(2)'s (CLI_STAGE_RECEIVE). SIGPIPE is not raised (MSG_NOSIGNAL).
 */
int cli_request(const char *path, const char *line, int timeout_ms, char **reply,
                enum cli_stage *stage);

#endif
