/* SPDX-License-Identifier: MIT */
/*
 * The flash job of one target: POST /api/targets/N/flash (http_api.h "Flashing") from its
 * query string to its result. The body is streamed through the image pipeline (bin, or
 * Intel HEX through ihex.h) into the AN3155 master (stm32_isp.h), or staged first (stage=1:
 * staging store, CRC-32, Intel HEX dry run) and replayed from the store. http_api.c does
 * routing, authentication and JSON and calls these functions; no OS calls, no heap.
 */
#ifndef ESPSTM_FLASH_JOB_H
#define ESPSTM_FLASH_JOB_H

#include "ihex.h"
#include "settings.h"
#include "stm32_isp.h"

#include <stddef.h>
#include <stdint.h>

struct api_ops; /* http_api.h: the platform's callbacks (isp, flash_claim, stage_*, crc32, log) */

/*
 * The one state of a job. Transitions (event: from -> to):
 *   flash_job_start:      IDLE|OVER -> STREAMING (target claimed; bin: stm32_isp_begin, and
 *                         -> ANSWER at once if that fails), or -> STAGING (stage=1, the store
 *                         is open, the STM32 is not touched). A refusal changes nothing.
 *   the run stops early   STAGING|STREAMING -> DRAINING (seen by flash_job_poll: a failure
 *   (failure, abort, the  found here, flash_job_abort, or the ISP stopped by itself): the claim
 *   ISP stopped):         or the store is released, the rest of the body is dropped.
 *   flash_job_body_end:   STREAMING -> FLUSHING; STAGING -> REPLAYING (length, CRC-32 and HEX
 *                         dry run pass: the target is claimed, the staged copy is replayed) or
 *                         -> ANSWER (the store is released); DRAINING -> ANSWER.
 *   replay complete:      REPLAYING -> FLUSHING (REPLAYING -> FINISHING if the run stopped).
 *   flush:                FLUSHING -> FINISHING (pending HEX data written, stm32_isp_end()).
 *   the ISP stopped:      REPLAYING|FLUSHING|FINISHING -> ANSWER (OVER when detached): claim
 *                         and store released.
 *   flash_job_abort:      STAGING|STREAMING stay (the poll sees the failure), REPLAYING|
 *                         FLUSHING -> FINISHING.
 *   flash_job_cancel:     STAGING|STREAMING|DRAINING|FLUSHING|FINISHING (streamed) -> OVER
 *                         (the run fails "upload interrupted"); REPLAYING|FLUSHING|FINISHING
 *                         (staged, committed) stay, detached (no answer, the run goes on);
 *                         ANSWER -> OVER.
 *   flash_job_result:     ANSWER -> OVER.
 */
enum flash_job_state {
	FLASH_JOB_IDLE = 0,  /* no job since start */
	FLASH_JOB_STAGING,   /* stage=1: body -> staging store, CRC-32, HEX dry run */
	FLASH_JOB_STREAMING, /* body -> image pipeline -> ISP; target claimed */
	FLASH_JOB_REPLAYING, /* stage=1, body checked: staged copy -> pipeline; claimed */
	FLASH_JOB_FLUSHING,  /* image complete: pending HEX data, then stm32_isp_end(); claimed */
	FLASH_JOB_FINISHING, /* stm32_isp_end() called (or the run failed): until the ISP stops */
	FLASH_JOB_DRAINING,  /* the run stopped before the body's end: the rest is dropped */
	FLASH_JOB_ANSWER,    /* run over: the POST's answer is ready (flash_job_result) */
	FLASH_JOB_OVER,      /* run over, answered or nobody to answer: GET shows the result */
};

/* Largest DER signature taken (bytes; ECDSA P-256 needs at most 72), and the flash address
 * a signed .bin without address= is signed for (the flash base of every STM32 family). */
#define FLASH_JOB_SIG_MAX     80
#define FLASH_JOB_SIGNED_BASE 0x08000000u

/* Staged bytes read back per step of the replay (bytes of RAM per target), and steps per
 * flash_job_poll() at most (then FLASH_JOB_AGAIN if there is more to do). */
#define FLASH_JOB_REPLAY_BUF   256
#define FLASH_JOB_REPLAY_STEPS 64

/* flash_job_poll() result bits (http_api.h HTTP_API_FLASH_*). */
#define FLASH_JOB_ROOM   1
#define FLASH_JOB_RESULT 2
#define FLASH_JOB_AGAIN  4

/* The POST's query parameters (http_api.h "Flashing"). */
struct flash_job_params {
	int hex, verify, go, unprotect, has_address, stage, has_crc;
	uint32_t address, baud, crc;
};

/*
 * One target's job. http_api.c reads these fields for the JSON; only flash_job.c changes
 * them. Besides the state, the few flags left are data that varies independently of it:
 * the parameters, whether the address is known yet (address 0 is a valid value), whether
 * the CRC-32 covers the whole body, the HEX pipeline's pending jump, the dry run's verdict
 * (the body keeps arriving and is staged after a HEX error: the CRC-32 is reported first)
 * and whether the client left a committed staged run (the run goes on either way).
 */
struct flash_job {
	enum flash_job_state state;
	unsigned target;
	const struct api_ops *ops;
	void *ctx;
	const struct settings *cur; /* settle_ms of the target when the ISP begins */
	struct flash_job_params p;
	struct stm32_isp *isp;     /* the target's AN3155 master (set by flash_job_start) */
	struct stm32_isp *run;     /* isp once stm32_isp_begin() succeeded, else NULL */
	int fail_status;           /* HTTP status of a failure found here (error), 0: none */
	uint32_t address;          /* requested (bin; 0 = flash base) or first HEX address */
	int addr_known;            /* address (bin: address=; hex: first data record) known */
	int64_t content_length;    /* -1 unknown */
	uint32_t body_bytes;       /* body bytes taken */
	enum stm32_isp_state step; /* last ISP state before the end */
	struct ihex ihex;
	uint32_t next_addr; /* hex: address of the next image byte */
	int seek;           /* hex: stm32_isp_seek(seek_addr) still to do */
	uint32_t seek_addr;
	/* stage=1 */
	int detached;         /* the client left after the commit: no answer, GET only */
	int crc_done;         /* the whole body was staged: crc is final */
	uint32_t crc;         /* CRC-32 of the body so far */
	uint32_t staged;      /* body bytes in the store */
	uint32_t stage_cap;   /* the store's capacity (bounds a body of unknown length) */
	int range_ok;         /* hex: the staged records lie in the device's flash */
	int sig;              /* locked mode: the staged bytes go to ops->sig_update */
	char sig_addr[16];    /* locked mode: the ADDR of the signed line ("0x08000000", "hex") */
	uint32_t replayed;    /* staged bytes read back (into rbuf) */
	int dry_bad;          /* hex: the dry run found an error (in error) */
	uint32_t dry_records; /* hex: data records seen by the dry run */
	uint64_t dry_next;    /* hex: address after the last data record so far */
	uint16_t rlen, roff;  /* rbuf[roff..rlen) not yet taken by the pipeline */
	uint8_t rbuf[FLASH_JOB_REPLAY_BUF];
	char error[STM32_ISP_MSG + 48];
};

/* Binds job j to target (index), the platform's ops/ctx and the current settings (cur:
 * read for settle_ms when the ISP begins). State IDLE. */
void flash_job_init(struct flash_job *j, unsigned target, const struct api_ops *ops, void *ctx,
                    const struct settings *cur);

/* 1 while the job has an upload, a run or an unsent answer, or its ISP is busy. */
int flash_job_busy(const struct flash_job *j);

/*
 * Start a job on isp (the target's AN3155 master; the caller checked authentication, that
 * ops->flash_claim exists and that neither j nor isp is busy). query: the raw query string
 * (NULL = none; '%' refused), content_length: -1 unknown; sig/siglen: the decoded
 * X-Espstm-Signature (NULL: none; used in locked mode only, http_api.h "Signed images").
 * Returns 0: the job started (STAGING or STREAMING: stream the body), or it ended at once
 * (ANSWER: the bin run could not begin; flash_job_result gives the answer). Else the HTTP
 * status of a refusal (400, 403, 409, 411, 413, 500, 501) with its message in msg (cap
 * bytes); the job and its last result are unchanged.
 */
int flash_job_start(struct flash_job *j, struct stm32_isp *isp, const char *query,
                    int64_t content_length, const uint8_t *sig, size_t siglen, char *msg,
                    size_t cap);

/* The contracts of http_api_flash_body, _body_end, _cancel, _abort and _poll (http_api.h),
 * for this job; flash_job_poll returns FLASH_JOB_* bits. */
size_t flash_job_body(struct flash_job *j, const uint8_t *p, size_t n);
void flash_job_body_end(struct flash_job *j);
void flash_job_cancel(struct flash_job *j, const char *why);
int flash_job_abort(struct flash_job *j, const char *why);
int flash_job_poll(struct flash_job *j);

/* ANSWER: the HTTP status of the answer (200, or the failure's 4xx/5xx); the job moves to
 * OVER. Returns 0 in any other state (nothing changed). */
int flash_job_result(struct flash_job *j);

/* The ISP's status of this job's run into st (zeroed before the run began: the ISP still
 * holds an older run). */
void flash_job_isp_status(const struct flash_job *j, struct stm32_isp_status *st);

/* The "state" of the GET fields: idle, staging, connecting, the ISP's state name
 * (stm32_isp_state_name), done or failed. st: flash_job_isp_status(). */
const char *flash_job_state_name(const struct flash_job *j, const struct stm32_isp_status *st);

/* The "error" of a failed job (NULL: none known; the ISP's message, with a hint about
 * unprotect=1 for a protection found). Points into j or the ISP, valid until the next call. */
const char *flash_job_error(struct flash_job *j, const struct stm32_isp_status *st);

#endif
