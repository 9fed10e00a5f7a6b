/* SPDX-License-Identifier: MIT */
#include "uvtest.h"

static void expired(uv_timer_t *t)
{
	*(bool *)t->data = true;
}

bool uvtest_run_until(uv_loop_t *loop, bool (*cond)(void), uint64_t ms)
{
	bool timed_out = false;
	uv_timer_t t;
	uv_timer_init(loop, &t);
	t.data = &timed_out;
	uv_timer_start(&t, expired, ms, 0);
	while ((!cond || !cond()) && !timed_out)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT); /* let the close finish before t goes out of scope */
	return cond ? cond() : true;
}

void uvtest_run_for(uv_loop_t *loop, uint64_t ms)
{
	uvtest_run_until(loop, NULL, ms);
}

static void close_one(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

int uvtest_close_loop(uv_loop_t *loop)
{
	uv_walk(loop, close_one, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	return uv_loop_close(loop);
}
