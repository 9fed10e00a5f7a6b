/* SPDX-License-Identifier: MIT */
/*
 * Client address allow-list of the RFC 2217 (and legacy) ports (portable C11, no OS calls,
 * no heap): those ports can be limited to a list of client addresses.
 *
 * A list is up to ALLOWLIST_MAX comma-separated IPv4 entries, each an address
 * ("127.0.0.1", same as /32) or a CIDR prefix ("10.0.0.0/8", prefix 0..32). Host bits
 * after the prefix are ignored (10.1.2.3/8 == 10.0.0.0/8). Octets are decimal 0..255
 * without leading zeros (no octal ambiguity). IPv6 is not supported (the servers listen
 * on IPv4 only). An empty allow-list (count 0, the default) allows every client.
 */
#ifndef ESPSTM_ALLOWLIST_H
#define ESPSTM_ALLOWLIST_H

#include <stddef.h>
#include <stdint.h>

#define ALLOWLIST_MAX 8

struct allowlist_entry {
	uint32_t addr;  /* host byte order, already masked */
	uint32_t mask;  /* host byte order: prefix bits set */
	uint8_t prefix; /* 0..32 */
};

struct allowlist {
	unsigned count; /* 0: allow all */
	struct allowlist_entry e[ALLOWLIST_MAX];
};

/* Empty list: allow all. */
void allowlist_init(struct allowlist *al);

/*
 * Parse "ENTRY[,ENTRY...]" (no blanks) into *al. On error *al is unchanged, a message such
 * as "entry 2 '10.0.0.256': octet out of range 0..255" is written to err (errcap bytes, may
 * be 0) and -EINVAL is returned. Returns 0 on success.
 */
int allowlist_parse(struct allowlist *al, const char *list, char *err, size_t errcap);

/* 1 if the IPv4 address (host byte order: 127.0.0.1 = 0x7f000001) is allowed, else 0.
 * An empty list allows everything. */
int allowlist_allows(const struct allowlist *al, uint32_t addr);

/* Format the list as "10.0.0.0/8,127.0.0.1/32" (or "all") into buf; returns buf. */
const char *allowlist_format(const struct allowlist *al, char *buf, size_t cap);

#endif
