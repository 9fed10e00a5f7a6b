/* SPDX-License-Identifier: MIT */
/* libuv helpers for unit tests that run a real loop (link, tty against a fake server). */
#ifndef ESPSTM_UVTEST_H
#define ESPSTM_UVTEST_H
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Run loop until cond() is true or ms milliseconds pass. Returns cond() at the end. */
bool uvtest_run_until(uv_loop_t *loop, bool (*cond)(void), uint64_t ms);
/* Run loop for ms milliseconds. */
void uvtest_run_for(uv_loop_t *loop, uint64_t ms);
/* Close every handle still open on loop, run it until they are closed, then uv_loop_close.
 * Returns uv_loop_close's result (0, or UV_EBUSY if something is still active). */
int uvtest_close_loop(uv_loop_t *loop);
#endif
