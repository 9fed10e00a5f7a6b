/* SPDX-License-Identifier: MIT */
/*
 * Integer division and 64-bit multiply helpers for the lx106 test image.
 *
 * The lx106 has no divide instruction (and no MULUH), so GCC calls libgcc for every
 * division by a variable and for 64-bit multiplies. Debian's gcc-xtensa-lx106 12.2 ships a
 * libgcc.a without __udivsi3, __divsi3, __umodsi3, __udivdi3, __umoddi3, __divdi3 and
 * __muldi3, and its __moddi3 / __udivmoddi4 call a __umulsidi3 that it lacks too (it has a
 * usable __modsi3 and __mulsi3). On an ESP8266 these come
 * from the ROM / the vendor toolchain's libgcc; here plain shift-and-subtract versions fill
 * the gap so the image links. They use only shifts, adds, compares and 32-bit MULL, so they
 * never call themselves. Checked by the arith_helpers test.
 */
#include <stdint.h>

uint32_t __udivsi3(uint32_t n, uint32_t d);
int32_t __divsi3(int32_t a, int32_t b);
uint32_t __umodsi3(uint32_t n, uint32_t d);
uint64_t __udivdi3(uint64_t n, uint64_t d);
uint64_t __umoddi3(uint64_t n, uint64_t d);
int64_t __divdi3(int64_t a, int64_t b);
int64_t __moddi3(int64_t a, int64_t b);
uint64_t __umulsidi3(uint32_t a, uint32_t b);
uint64_t __muldi3(uint64_t a, uint64_t b);

static uint32_t udivmod32(uint32_t n, uint32_t d, uint32_t *rem)
{
	uint32_t q = 0, r = 0;
	if (d == 0) {
		*rem = n;
		return UINT32_MAX;
	}
	for (int i = 31; i >= 0; i--) {
		uint32_t top = r >> 31;
		r = (r << 1) | ((n >> i) & 1u);
		if (top || r >= d) {
			r -= d;
			q |= 1u << i;
		}
	}
	*rem = r;
	return q;
}

static uint64_t udivmod64(uint64_t n, uint64_t d, uint64_t *rem)
{
	uint64_t q = 0, r = 0;
	if (d == 0) {
		*rem = n;
		return UINT64_MAX;
	}
	for (int i = 63; i >= 0; i--) {
		uint64_t top = r >> 63;
		r = (r << 1) | ((n >> i) & 1u);
		if (top || r >= d) {
			r -= d;
			q |= (uint64_t)1 << i;
		}
	}
	*rem = r;
	return q;
}

uint32_t __udivsi3(uint32_t n, uint32_t d)
{
	uint32_t r;
	return udivmod32(n, d, &r);
}

uint32_t __umodsi3(uint32_t n, uint32_t d)
{
	uint32_t r;
	udivmod32(n, d, &r);
	return r;
}

int32_t __divsi3(int32_t a, int32_t b)
{
	uint32_t ua = a < 0 ? 0u - (uint32_t)a : (uint32_t)a;
	uint32_t ub = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
	uint32_t r, q = udivmod32(ua, ub, &r);
	return (int32_t)((a < 0) != (b < 0) ? 0u - q : q);
}

uint64_t __udivdi3(uint64_t n, uint64_t d)
{
	uint64_t r;
	return udivmod64(n, d, &r);
}

uint64_t __umoddi3(uint64_t n, uint64_t d)
{
	uint64_t r;
	udivmod64(n, d, &r);
	return r;
}

int64_t __divdi3(int64_t a, int64_t b)
{
	uint64_t ua = a < 0 ? 0u - (uint64_t)a : (uint64_t)a;
	uint64_t ub = b < 0 ? 0u - (uint64_t)b : (uint64_t)b;
	uint64_t r, q = udivmod64(ua, ub, &r);
	return (int64_t)((a < 0) != (b < 0) ? 0u - q : q);
}

int64_t __moddi3(int64_t a, int64_t b)
{
	uint64_t ua = a < 0 ? 0u - (uint64_t)a : (uint64_t)a;
	uint64_t ub = b < 0 ? 0u - (uint64_t)b : (uint64_t)b;
	uint64_t r;
	udivmod64(ua, ub, &r);
	return (int64_t)(a < 0 ? 0u - r : r);
}

/* 32 x 32 -> 64 from 16-bit halves (MULL gives the low 32 bits only). */
static uint64_t mul32x32(uint32_t a, uint32_t b)
{
	uint32_t al = a & 0xFFFFu, ah = a >> 16, bl = b & 0xFFFFu, bh = b >> 16;
	uint32_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
	uint32_t mid = (ll >> 16) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
	uint32_t lo = (ll & 0xFFFFu) | (mid << 16);
	uint32_t hi = hh + (lh >> 16) + (hl >> 16) + (mid >> 16);
	return (uint64_t)hi << 32 | lo;
}

uint64_t __umulsidi3(uint32_t a, uint32_t b)
{
	return mul32x32(a, b);
}

uint64_t __muldi3(uint64_t a, uint64_t b)
{
	uint32_t al = (uint32_t)a, ah = (uint32_t)(a >> 32);
	uint32_t bl = (uint32_t)b, bh = (uint32_t)(b >> 32);
	uint64_t p = mul32x32(al, bl);
	return p + ((uint64_t)(ah * bl + al * bh) << 32);
}
