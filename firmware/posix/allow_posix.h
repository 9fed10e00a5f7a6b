/* SPDX-License-Identifier: MIT */
/* espstm-bridge: client allow-list of the RFC 2217 and legacy ports, from --allow LIST or
 * the settings' "allow" (firmware/core/allowlist.h does the parsing and matching). */
#ifndef ESPSTM_ALLOW_POSIX_H
#define ESPSTM_ALLOW_POSIX_H

#include <stddef.h>
#include <uv.h>

/* Set the list (allowlist_parse() syntax; NULL or "": allow all, the default). Returns 0, or
 * -EINVAL with the list unchanged and a message in err (cap bytes). */
int allow_posix_set(const char *list, char *err, size_t cap);

/* The current list as text ("all" or "10.0.0.0/8,..."). */
const char *allow_posix_describe(void);

/*
 * Check an accepted client (c was malloc'd by the caller). Allowed: returns 1. Not
 * allowed: logs "client X not allowed on PORT_NAME", writes the line
 * "espstm-bridge: client X not allowed\r\n", closes and frees c, returns 0.
 */
int allow_posix_admit(uv_tcp_t *c, const char *port_name);

#endif
