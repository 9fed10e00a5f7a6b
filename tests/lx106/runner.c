/* SPDX-License-Identifier: MIT */
/*
 * Test runner for the lx106 image: runs every entry of lx_tests[], prints one line per test
 * and "N passed, N failed" through the simulator's simcall console (fd 1), and exits
 * through simcall exit with 0 (all passed) or 1. A failed assert() in the core ends the run
 * with status 2, an exception (unaligned access, illegal instruction, ...) with status 3.
 * No OS, no heap, no stdio FILE.
 *
 * Self-check: run with the semihosting argument "fault-selftest" and the runner makes an
 * unaligned 32-bit load on purpose; the run must then end in lx_fault() with EXCCAUSE 9
 * (LoadStoreAlignmentCause), which proves that the emulated CPU traps unaligned access.
 */
#include "lxtest.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum { SYS_EXIT = 1, SYS_WRITE = 4, SYS_ARGC = 1000, SYS_ARGV_SZ = 1001, SYS_ARGV = 1002 };

static int32_t simcall(int32_t nr, int32_t a, int32_t b, int32_t c)
{
	register int32_t r2 __asm__("a2") = nr;
	register int32_t r3 __asm__("a3") = a;
	register int32_t r4 __asm__("a4") = b;
	register int32_t r5 __asm__("a5") = c;
	__asm__ volatile("simcall" : "+r"(r2), "+r"(r3) : "r"(r4), "r"(r5) : "memory");
	return r2;
}

static void out(const char *p, size_t n)
{
	while (n > 0) {
		int32_t k = simcall(SYS_WRITE, 1, (int32_t)(uintptr_t)p, (int32_t)n);
		if (k <= 0)
			return;
		p += k;
		n -= (size_t)k;
	}
}

static __attribute__((noreturn)) void lx_exit(int code)
{
	simcall(SYS_EXIT, code, 0, 0);
	for (;;)
		;
}

void lx_printf(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	out(buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* assert() of the core (picolibc calls __assert_func): print the failed expression and end
 * the run with status 2; picolibc's own version needs stderr and signals, which this image
 * does not have. */
void __assert_func(const char *file, int line, const char *func, const char *expr);
void __assert_func(const char *file, int line, const char *func, const char *expr)
{
	lx_printf("assertion failed: %s:%d: %s: %s\n", file, line, func ? func : "?", expr);
	lx_exit(2);
}

static const char *current;
static int cur_failed;

int lx_failed(void)
{
	return cur_failed;
}

void lx_fail(const char *file, int line, const char *what)
{
	cur_failed = 1;
	lx_printf("  %s:%d: %s: check failed: %s\n", file, line, current, what);
}

void lx_fail_u(const char *file, int line, const char *expr, unsigned long a, unsigned long b)
{
	cur_failed = 1;
	lx_printf("  %s:%d: %s: %s: 0x%lx (%lu) != 0x%lx (%lu)\n", file, line, current, expr, a, a,
	          b, b);
}

static void hex(const char *tag, const uint8_t *p, size_t n)
{
	lx_printf("    %s:", tag);
	for (size_t i = 0; i < n && i < 48; i++)
		lx_printf(" %02x", p[i]);
	lx_printf("%s\n", n > 48 ? " ..." : "");
}

void lx_fail_mem(const char *file, int line, const char *expr, const uint8_t *a, const uint8_t *b,
                 size_t n)
{
	cur_failed = 1;
	lx_printf("  %s:%d: %s: %s: bytes differ\n", file, line, current, expr);
	hex("got     ", a, n);
	hex("expected", b, n);
}

/* Called from the exception vectors in start.S (kind: 0 user, 1 kernel, 2 debug/level 2,
 * 3 NMI, 4 double exception). */
void __attribute__((noreturn)) lx_fault(uint32_t kind, uint32_t cause, uint32_t pc, uint32_t vaddr);
void lx_fault(uint32_t kind, uint32_t cause, uint32_t pc, uint32_t vaddr)
{
	static const char *const kinds[] = {"user", "kernel", "debug", "nmi", "double"};
	lx_printf("\nFAULT in %s: %s exception, EXCCAUSE %lu%s, PC 0x%08lx, EXCVADDR 0x%08lx\n",
	          current ? current : "(runner)", kind < 5 ? kinds[kind] : "?",
	          (unsigned long)cause, cause == 9 ? " (unaligned load/store)" : "",
	          (unsigned long)pc, (unsigned long)vaddr);
	lx_exit(3);
}

/* 1 if the first semihosting argument after the image name equals s. */
static int have_arg(const char *s)
{
	int32_t argc = simcall(SYS_ARGC, 0, 0, 0);
	int32_t sz = simcall(SYS_ARGV_SZ, 0, 0, 0);
	static uint32_t argv[256]; /* 1 KiB, word aligned */
	if (argc < 1 || sz <= 0 || (size_t)sz > sizeof(argv))
		return 0;
	simcall(SYS_ARGV, (int32_t)(uintptr_t)argv, 0, 0);
	for (int32_t i = 0; i < argc; i++) {
		const char *a = (const char *)(uintptr_t)argv[i];
		if (a && strcmp(a, s) == 0)
			return 1;
	}
	return 0;
}

static void fault_selftest(void)
{
	static uint32_t words[2] = {0x11223344, 0x55667788};
	/* The address goes through a volatile so that GCC cannot see the misalignment (it
	 * would split a known-misaligned access into byte loads), and the load is an explicit
	 * L32I. */
	volatile uintptr_t addr = (uintptr_t)words + 1;
	uintptr_t a = addr;
	uint32_t v;
	current = "fault-selftest";
	lx_printf("fault-selftest: unaligned L32I from 0x%08lx\n", (unsigned long)a);
	__asm__ volatile("l32i %0, %1, 0" : "=r"(v) : "r"(a) : "memory");
	lx_printf("fault-selftest: NOT trapped (read 0x%08lx)\n", (unsigned long)v);
	lx_exit(1);
}

int main(void)
{
	if (have_arg("fault-selftest"))
		fault_selftest();
	unsigned passed = 0, failed = 0;
	lx_printf("lx106 core tests (sizeof(void *) %u, sizeof(size_t) %u, sizeof(long) %u)\n",
	          (unsigned)sizeof(void *), (unsigned)sizeof(size_t), (unsigned)sizeof(long));
	for (size_t i = 0; i < lx_ntests; i++) {
		current = lx_tests[i].name;
		cur_failed = 0;
		lx_tests[i].fn();
		if (cur_failed) {
			failed++;
			lx_printf("FAIL %s\n", current);
		} else {
			passed++;
			lx_printf("ok   %s\n", current);
		}
	}
	current = NULL;
	lx_printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
