/* SPDX-License-Identifier: MIT */
/* termios_model: kernel-layout termios state and its mapping to RFC 2217 line settings.
 * See termios_model.h. This file includes the kernel's <asm/termbits.h> and must not
 * include glibc <termios.h> (nor uv.h / link.h, which pull it in). */
#include "termios_model.h"

#include <asm/termbits.h>
#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <string.h>

static_assert(sizeof(struct termios) == TM_TERMIOS_SIZE, "kernel struct termios size");
static_assert(sizeof(struct termios2) == TM_TERMIOS2_SIZE, "kernel struct termios2 size");
static_assert(sizeof(struct tm_termios2) == sizeof(struct termios2), "termios2 layout");
static_assert(NCCS == TM_NCCS, "NCCS");
static_assert(VSTART == TM_VSTART && VSTOP == TM_VSTOP, "VSTART/VSTOP indices");
static_assert(offsetof(struct tm_termios2, c_cflag) == offsetof(struct termios2, c_cflag), "");
static_assert(offsetof(struct tm_termios2, c_lflag) == offsetof(struct termios2, c_lflag), "");
static_assert(offsetof(struct tm_termios2, c_line) == offsetof(struct termios2, c_line), "");
static_assert(offsetof(struct tm_termios2, c_cc) == offsetof(struct termios2, c_cc), "");
static_assert(offsetof(struct tm_termios2, c_ispeed) == offsetof(struct termios2, c_ispeed), "");
static_assert(offsetof(struct tm_termios2, c_ospeed) == offsetof(struct termios2, c_ospeed), "");
static_assert(offsetof(struct tm_termios2, c_ispeed) == TM_TERMIOS_SIZE, "termios prefix");

/* Speeds of the codes 0..15 and CBAUDEX|1..CBAUDEX|15 (termios(3), asm/termbits.h). */
static const uint32_t speed_low[16] = {0,   50,   75,   110,  134,  150,  200,   300,
                                       600, 1200, 1800, 2400, 4800, 9600, 19200, 38400};
static const uint32_t speed_ex[16] = {0,       57600,   115200,  230400,  460800,  500000,
                                      576000,  921600,  1000000, 1152000, 1500000, 2000000,
                                      2500000, 3000000, 3500000, 4000000};

uint32_t termios_speed_from_code(uint32_t code)
{
	code &= CBAUD;
	if (code & CBAUDEX)
		return speed_ex[code & ~(uint32_t)CBAUDEX & 0xf]; /* BOTHER -> speed_ex[0] = 0 */
	return speed_low[code & 0xf];
}

uint32_t termios_code_from_speed(uint32_t baud)
{
	if (baud == 0)
		return B0;
	for (uint32_t i = 1; i < 16; i++) {
		if (speed_low[i] == baud)
			return i;
		if (speed_ex[i] == baud)
			return CBAUDEX | i;
	}
	return B0;
}

uint32_t termios_model_ospeed(const struct tm_termios2 *t)
{
	uint32_t code = t->c_cflag & CBAUD;
	if (code == BOTHER)
		return t->c_ospeed;
	return termios_speed_from_code(code);
}

uint32_t termios_model_ispeed(const struct tm_termios2 *t)
{
	uint32_t code = (t->c_cflag >> IBSHIFT) & CBAUD;
	if (code == B0)
		return termios_model_ospeed(t);
	if (code == BOTHER)
		return t->c_ispeed;
	return termios_speed_from_code(code);
}

void termios_model_init(struct tm_termios2 *t, uint32_t baud)
{
	static const uint8_t init_cc[TM_NCCS] = {
	    [VINTR] = 003,    [VQUIT] = 034,    [VERASE] = 0177, [VKILL] = 025,  [VEOF] = 004,
	    [VTIME] = 0,      [VMIN] = 1,       [VSTART] = 021,  [VSTOP] = 023,  [VSUSP] = 032,
	    [VREPRINT] = 022, [VDISCARD] = 017, [VWERASE] = 027, [VLNEXT] = 026,
	};
	if (baud == 0)
		baud = 115200;
	memset(t, 0, sizeof(*t));
	t->c_iflag = ICRNL | IXON;
	t->c_oflag = OPOST | ONLCR;
	uint32_t code = termios_code_from_speed(baud);
	t->c_cflag = (code != B0 ? code : BOTHER) | CS8 | CREAD | HUPCL | CLOCAL;
	t->c_lflag = ISIG | ICANON | ECHO | ECHOE | ECHOK | ECHOCTL | ECHOKE | IEXTEN;
	memcpy(t->c_cc, init_cc, sizeof(init_cc));
	t->c_ispeed = baud;
	t->c_ospeed = baud;
}

int termios_model_set(struct tm_termios2 *t, const void *buf, size_t len, int form2)
{
	size_t need = form2 ? TM_TERMIOS2_SIZE : TM_TERMIOS_SIZE;
	if (!buf || len < need)
		return -EINVAL;
	memcpy(t, buf, need);
	/* set_termios(): speeds follow c_cflag; BOTHER keeps the explicit value. */
	uint32_t ispeed = termios_model_ispeed(t);
	uint32_t ospeed = termios_model_ospeed(t);
	t->c_ispeed = ispeed;
	t->c_ospeed = ospeed;
	return 0;
}

int termios_model_get(const struct tm_termios2 *t, void *buf, size_t len, int form2)
{
	size_t n = form2 ? TM_TERMIOS2_SIZE : TM_TERMIOS_SIZE;
	if (!buf || len < n)
		return -EINVAL;
	memcpy(buf, t, n);
	return (int)n;
}

void termios_model_line(const struct tm_termios2 *t, struct termios_line *out)
{
	uint32_t c = t->c_cflag;
	out->baud = termios_model_ospeed(t);
	switch (c & CSIZE) {
	case CS5:
		out->data_bits = 5;
		break;
	case CS6:
		out->data_bits = 6;
		break;
	case CS7:
		out->data_bits = 7;
		break;
	default:
		out->data_bits = 8;
		break;
	}
	if (!(c & PARENB))
		out->parity = 'N';
	else if (c & CMSPAR)
		out->parity = (c & PARODD) ? 'M' : 'S';
	else
		out->parity = (c & PARODD) ? 'O' : 'E';
	out->stop_bits = (c & CSTOPB) ? 2 : 1;
}

enum termios_flow termios_model_flow(const struct tm_termios2 *t)
{
	if (t->c_cflag & CRTSCTS)
		return TERMIOS_FLOW_HARDWARE;
	if (t->c_iflag & (IXON | IXOFF))
		return TERMIOS_FLOW_XONXOFF;
	return TERMIOS_FLOW_NONE;
}

void termios_model_read_cfg(const struct tm_termios2 *t, struct termios_read_cfg *out)
{
	out->vmin = t->c_cc[VMIN];
	out->vtime = t->c_cc[VTIME];
	out->icanon = (t->c_lflag & ICANON) != 0;
}

int termios_model_hupcl(const struct tm_termios2 *t)
{
	return (t->c_cflag & HUPCL) != 0;
}

int termios_line_equal(const struct termios_line *a, const struct termios_line *b)
{
	return a->baud == b->baud && a->data_bits == b->data_bits && a->parity == b->parity &&
	       a->stop_bits == b->stop_bits;
}
