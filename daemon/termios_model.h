/* SPDX-License-Identifier: MIT */
/*
 * termios_model: the termios state of one virtual serial port, in the kernel's own layout
 * (what TCGETS/TCSETS and TCGETS2/TCSETS2 carry, tty_ioctl(4)), and its mapping to the line
 * settings and flow control that RFC 2217 can carry. Pure logic: no libfuse, no libuv, no
 * glibc <termios.h> (whose struct termios is 60 bytes and is NOT the ioctl payload).
 */
#ifndef ESPSTM_TERMIOS_MODEL_H
#define ESPSTM_TERMIOS_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define TM_NCCS          19 /* kernel NCCS for struct termios on x86/arm/generic */
#define TM_TERMIOS_SIZE  36 /* sizeof(kernel struct termios) */
#define TM_TERMIOS2_SIZE 44 /* sizeof(kernel struct termios2) */
#define TM_VSTART        8  /* c_cc index of the START (XON) character (asm-generic/termbits.h) */
#define TM_VSTOP         9  /* c_cc index of the STOP (XOFF) character */

/* Kernel struct termios2 layout (<asm/termbits.h>; termios_model.c checks sizes and offsets
 * with static_assert); its first TM_TERMIOS_SIZE bytes are struct termios. */
struct tm_termios2 {
	uint32_t c_iflag;
	uint32_t c_oflag;
	uint32_t c_cflag;
	uint32_t c_lflag;
	uint8_t c_line;
	uint8_t c_cc[TM_NCCS];
	uint32_t c_ispeed; /* bits/s */
	uint32_t c_ospeed; /* bits/s */
};

/* Line settings derived from c_cflag (same meaning as struct link_line in link.h). */
struct termios_line {
	uint32_t baud;     /* output speed, bits/s; 0 = B0 (hang up) */
	uint8_t data_bits; /* 5..8 (CS5..CS8) */
	char parity;       /* 'N' 'O' 'E' 'M' 'S' */
	uint8_t stop_bits; /* 1 or 2 (CSTOPB) */
};

/* Flow control derived from c_cflag/c_iflag (same values as enum link_flow in link.h). */
enum termios_flow { TERMIOS_FLOW_NONE, TERMIOS_FLOW_XONXOFF, TERMIOS_FLOW_HARDWARE };

/* Read parameters (termios(3) "Canonical and noncanonical mode"). */
struct termios_read_cfg {
	uint8_t vmin;  /* c_cc[VMIN], bytes */
	uint8_t vtime; /* c_cc[VTIME], tenths of a second */
	int icanon;    /* ICANON set in c_lflag */
};

/*
 * Fill *t with the defaults of a fresh serial port, as the kernel's serial core sets them
 * (tty_std_termios with CLOCAL added): c_iflag ICRNL|IXON, c_oflag OPOST|ONLCR, c_cflag
 * CS8|CREAD|HUPCL|CLOCAL + speed, c_lflag ISIG|ICANON|ECHO|ECHOE|ECHOK|ECHOCTL|ECHOKE|IEXTEN,
 * c_cc = INIT_C_CC (VMIN 1, VTIME 0). baud (bits/s) is encoded as Bxxx when it has a code,
 * else as BOTHER with c_ispeed = c_ospeed = baud; 0 selects 115200.
 */
void termios_model_init(struct tm_termios2 *t, uint32_t baud);

/*
 * Store a TCSETS* payload. form2 = 0: buf holds a kernel struct termios (len must be >= 36);
 * the 36 bytes replace the stored ones and the speeds are recomputed from c_cflag (kept
 * when the code is BOTHER), as set_termios() does. form2 = 1: buf holds a struct termios2
 * (len >= 44); all 44 bytes are stored, then c_ispeed/c_ospeed are recomputed from c_cflag
 * unless the (input/output) code is BOTHER. Returns 0, or -EINVAL for a short buffer
 * (the state is then unchanged). Source: tty_ioctl(4), drivers/tty/tty_ioctl.c.
 */
int termios_model_set(struct tm_termios2 *t, const void *buf, size_t len, int form2);

/*
 * Write the TCGETS* payload into buf: 36 bytes (form2 = 0) or 44 bytes (form2 = 1).
 * Returns the number of bytes written, or -EINVAL when len is too small. Readback rule:
 * whatever a program stored with TCSETS* comes back byte for byte (stty and stm32flash
 * compare); only c_ispeed/c_ospeed of the termios2 form are computed, as the kernel
 * recomputes them from c_cflag unless the speed code is BOTHER (tty_ioctl.c set_termios()).
 */
int termios_model_get(const struct tm_termios2 *t, void *buf, size_t len, int form2);

/* Speed in bits/s of a CBAUD code (B0..B38400, B57600..B4000000). Returns 0 for B0 and for
 * BOTHER or an unknown code (the caller uses c_ospeed for BOTHER). Source: termios(3). */
uint32_t termios_speed_from_code(uint32_t code);
/* CBAUD code for a speed in bits/s, or 0 (B0) when the speed has no Bxxx code. */
uint32_t termios_code_from_speed(uint32_t baud);

/* Output / input speed in bits/s as the kernel computes them (tty_termios_baud_rate(),
 * tty_termios_input_baud_rate(): input code B0 means "same as output"). */
uint32_t termios_model_ospeed(const struct tm_termios2 *t);
uint32_t termios_model_ispeed(const struct tm_termios2 *t);

/* Line settings of c_cflag: CSIZE -> data bits, PARENB/PARODD/CMSPAR -> parity (CMSPAR:
 * PARODD = mark 'M', else space 'S'), CSTOPB -> 2 stop bits, speed from
 * termios_model_ospeed(). */
void termios_model_line(const struct tm_termios2 *t, struct termios_line *out);
/* Flow control: CRTSCTS -> hardware; else IXON or IXOFF -> XON/XOFF; else none. */
enum termios_flow termios_model_flow(const struct tm_termios2 *t);
/* VMIN, VTIME and ICANON. */
void termios_model_read_cfg(const struct tm_termios2 *t, struct termios_read_cfg *out);
/* 1 when HUPCL is set in c_cflag (lower DTR/RTS on last close), else 0. */
int termios_model_hupcl(const struct tm_termios2 *t);
/* 1 when the two line settings are equal, else 0. */
int termios_line_equal(const struct termios_line *a, const struct termios_line *b);

#endif
