/* SPDX-License-Identifier: MIT */
/*
 * A minimal test harness for the freestanding lx106 test image (Check is not available for
 * xtensa). A failed check prints file:line and the values, marks the running test failed
 * and returns from the calling function; the runner goes on with the next test.
 */
#ifndef ESPSTM_LXTEST_H
#define ESPSTM_LXTEST_H

#include <stddef.h>
#include <stdint.h>

struct lx_test {
	const char *name;
	void (*fn)(void);
};

/* Defined by the test file: the table and its length. */
extern const struct lx_test lx_tests[];
extern const size_t lx_ntests;

/* Runner services (runner.c). */
void lx_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void lx_fail(const char *file, int line, const char *what);
void lx_fail_u(const char *file, int line, const char *expr, unsigned long a, unsigned long b);
void lx_fail_mem(const char *file, int line, const char *expr, const uint8_t *a,
                 const uint8_t *b, size_t n);
int lx_failed(void); /* 1 once a check of the running test has failed */

#define CHECK(c)                                                                                   \
	do {                                                                                       \
		if (!(c)) {                                                                        \
			lx_fail(__FILE__, __LINE__, #c);                                           \
			return;                                                                    \
		}                                                                                  \
	} while (0)

/* Integer equality (compared and printed as unsigned long: 32 bits on lx106). */
#define CHECK_EQ(a, b)                                                                             \
	do {                                                                                       \
		unsigned long a_ = (unsigned long)(a), b_ = (unsigned long)(b);                    \
		if (a_ != b_) {                                                                    \
			lx_fail_u(__FILE__, __LINE__, #a " == " #b, a_, b_);                       \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define CHECK_MEM(a, b, n)                                                                         \
	do {                                                                                       \
		const uint8_t *a_ = (const uint8_t *)(a), *b_ = (const uint8_t *)(b);              \
		size_t n_ = (n);                                                                   \
		for (size_t i_ = 0; i_ < n_; i_++)                                                 \
			if (a_[i_] != b_[i_]) {                                                    \
				lx_fail_mem(__FILE__, __LINE__, #a " == " #b, a_, b_, n_);         \
				return;                                                            \
			}                                                                          \
	} while (0)

/* Stop the calling test if a helper it called has already failed. */
#define CHECK_OK()                                                                                 \
	do {                                                                                       \
		if (lx_failed())                                                                   \
			return;                                                                    \
	} while (0)

#endif
