/* SPDX-License-Identifier: MIT */
/*
 * Bridge session: one RFC 2217 server connection (or a raw byte stream) on one target UART
 * with BOOT0/NRST control. Portable C11, no OS calls, no heap: struct bridge holds every
 * buffer; the platform drives it through the functions below and a struct hal_ops (hal.h).
 * Wire protocol: docs/ARCHITECTURE.md "Wire protocol". Split in bridge.c (network side,
 * queue) and boot_ctl.c (pins, auto-boot, actions).
 */
#ifndef ESPSTM_BRIDGE_H
#define ESPSTM_BRIDGE_H

#include "hal.h"
#include "rfc2217.h"
#include "telnet_opt.h"

#include <stddef.h>
#include <stdint.h>

/* The project's version: equal to ESPSTM_VERSION (daemon/version.h; a unit test checks). */
#define BRIDGE_VERSION   "0.2.0"
#define BRIDGE_SIGNATURE "espstm-bridge " BRIDGE_VERSION

/* How DTR/RTS (as set by the client) drive NRST/BOOT0. */
enum bridge_line_map {
	/* DTR asserted = NRST held low; RTS asserted = BOOT0 high (stm32flash convention). */
	BRIDGE_MAP_DIRECT = 0,
	/* ESP auto-reset circuit (two cross-coupled transistors): NRST low iff RTS asserted and
	 * DTR not; BOOT0 high iff DTR asserted and RTS not; both asserted or both deasserted =
	 * NRST released, BOOT0 low (application runs).
	 * Release hold (models the RC delay on a real board's EN/NRST, which esptool's reset
	 * sequences rely on): when NRST is low and the lines change so that the map asks for
	 * NRST released with BOOT0 low, NRST stays low for up to esptool_hold_ms. During that
	 * hold: if the map asks for BOOT0 high (DTR only), BOOT0 is raised and NRST released
	 * at once (bootloader); if it asks for NRST low again (RTS only), the release is
	 * cancelled; otherwise NRST is released when the hold expires, with the pins the map
	 * gives then (BOOT0 low: application). The SET-CONTROL answers are not delayed; queued
	 * UART data waits for the release (and the settle time after it). esptool's classic
	 * reset (DTR off + RTS on, then DTR on, then RTS off, then 50 ms later DTR off) passes
	 * through "both asserted" and so ends in the bootloader, as on an ESP board; RTS on then
	 * off with DTR off runs the application esptool_hold_ms after the RTS off. The restore
	 * after a disconnect is not held. esptool_hold_ms = 0 applies the map at once (the
	 * behaviour before this setting existed). */
	BRIDGE_MAP_ESPTOOL = 1,
	/* DTR/RTS are remembered and answered but do not move any pin. */
	BRIDGE_MAP_NONE = 2,
};

/* Automatic bootloader entry. */
enum bridge_auto_boot {
	BRIDGE_AUTO_SYNC = 0,   /* 8E1 and first byte 0x7F -> bootloader */
	BRIDGE_AUTO_PARITY = 1, /* switching to 8E1 alone -> bootloader */
	BRIDGE_AUTO_OFF = 2,    /* nothing automatic */
};

struct bridge_settings {
	enum bridge_line_map line_map;
	enum bridge_auto_boot auto_boot;
	uint32_t settle_ms;    /* UART TX hold after NRST release (ms), default 50 */
	uint32_t reset_ms;     /* NRST low time of an automatic reset pulse (ms), default 10 */
	const char *signature; /* SIGNATURE answer, NULL = BRIDGE_SIGNATURE */
	uint8_t modem_state; /* NOTIFY-MODEMSTATE value sent (RFC 2217 bits), default CD|DSR|CTS */
	struct hal_uart_cfg uart; /* configuration at start and after each disconnect */
	/* Added after the first contract (0 = no hold). esptool map: longest delay of an NRST
	 * release that lets a following BOOT0 change apply first (ms), default 100. See
	 * BRIDGE_MAP_ESPTOOL. */
	uint32_t esptool_hold_ms;
	/* Added for signed images: 1 = locked mode (the platform has a verification key; the
	 * STM32 takes only signed images, through the flash job): the client's DTR/RTS never
	 * raise BOOT0 (they still pulse NRST: reset, with BOOT0 low), auto-boot is off and
	 * bridge_action(BRIDGE_ACT_BOOTLOADER) is refused (-EPERM). Default 0. */
	int locked;
};

/* Sizes of the session's bounded buffers (bytes / entries). */
#define BRIDGE_TX_DATA 1024 /* network -> UART data waiting for the UART */
#define BRIDGE_OPS     32   /* in-band operations (data runs, commands) waiting */
#define BRIDGE_NET_OUT 2048 /* bytes waiting for the socket */
#define BRIDGE_NET_RSV 160  /* part of BRIDGE_NET_OUT kept for protocol answers */

enum bridge_mode { BRIDGE_IDLE = 0, BRIDGE_PENDING, BRIDGE_TELNET, BRIDGE_RAW };

struct bridge_op {
	uint8_t kind; /* private */
	uint8_t code; /* RFC 2217 client code */
	uint16_t len; /* data run length (bytes) */
	uint32_t value;
};

struct bridge {
	/* All fields are private; read them only through the functions below. */
	const struct hal_ops *hal;
	void *ctx;
	struct bridge_settings set;
	enum bridge_mode mode;
	struct tn_decoder dec;
	struct telnet_opt tn; /* option states (BINARY, SGA, COM-PORT), RFC 1143 */
	int modem_sent;
	int suspended; /* FLOWCONTROL-SUSPEND received */
	/* in-band queue */
	uint8_t data[BRIDGE_TX_DATA];
	size_t data_head, data_len;
	struct bridge_op ops[BRIDGE_OPS];
	size_t ops_head, ops_len;
	/* network output */
	uint8_t out[BRIDGE_NET_OUT];
	size_t out_head, out_len;
	/* line state */
	struct hal_uart_cfg uart;
	int dtr, rts, brk;
	int nrst, boot0; /* current pin levels */
	uint8_t linestate_mask, modemstate_mask;
	/* boot control (boot_ctl.c): auto-boot, reset pulse, settle hold */
	int ab_armed;        /* 8E1 entered, waiting for the first byte */
	int in_boot;         /* bootloader entered automatically */
	int seq;             /* running sequence step (0 none) */
	int seq_boot0;       /* BOOT0 level the running sequence leaves */
	uint32_t hold_until; /* end of the reset pulse (seq) or of the settle hold (holding) */
	int holding;
	int in_poll; /* bridge_poll() running (no re-entry) */
	/* waiting for the UART to finish sending before a line/pin change */
	int draining;
	uint32_t drain_until;
	/* esptool map: NRST release held until rel_at */
	int rel_pending;
	uint32_t rel_at;
	int boot0_at_release; /* BOOT0 level at the last NRST release (chip's latched value) */
	/* bridge_action(BRIDGE_ACT_BOOTLOADER) pinned 8E1 + bootloader until BRIDGE_ACT_RUN:
	 * a disconnect keeps framing and pins */
	int pinned;
	/* bridge_suspend(): the UART and pins are lent to the flasher (stm32_isp) */
	int held;
};

/* Fill s with defaults: direct map, auto_boot sync, settle 50 ms, reset 10 ms,
 * esptool hold 100 ms, 115200 8N1 no flow. */
void bridge_settings_default(struct bridge_settings *s);

/* Parse setting strings ("direct"|"esptool"|"none", "sync"|"parity"|"off") into *out.
 * Return 0, or -EINVAL on an unknown name (*out unchanged). */
int bridge_parse_line_map(const char *name, enum bridge_line_map *out);
int bridge_parse_auto_boot(const char *name, enum bridge_auto_boot *out);

/* The setting string of a line map / auto-boot value (the names above); "?" for a value out
 * of range. Never NULL; static storage. */
const char *bridge_line_map_name(unsigned v);
const char *bridge_auto_boot_name(unsigned v);

/*
 * Initialise a session (no client yet). Applies set->uart through hal->uart_config and
 * drives NRST high, BOOT0 low (application runs). hal and set are copied/referenced:
 * hal must outlive the session. Returns 0 or the negative errno from uart_config.
 */
int bridge_init(struct bridge *s, const struct hal_ops *hal, void *ctx,
                const struct bridge_settings *set);

/* A client connected: the session waits for its first byte (IAC = Telnet/RFC 2217, other =
 * raw bridge). */
void bridge_connect(struct bridge *s);

/* The client left: pending network->UART data and output are dropped, DTR/RTS return to
 * deasserted, the UART configuration to the settings' one. If the chip is in its
 * bootloader, it is left (BOOT0 low, NRST pulse of reset_ms: the application runs), for
 * every auto_boot value and line map: whether the bootloader was entered automatically or
 * by the client's DTR/RTS (BOOT0 high at the last NRST release, even if BOOT0 was lowered
 * since). Otherwise the pins take the line map's state for both lines deasserted (direct:
 * NRST released after BOOT0 low; esptool: run, without the release hold; none: unchanged);
 * a BOOT0 raised while the application runs is just lowered, without a reset.
 * Timed steps continue in bridge_poll().
 * The framing and pin changes, like every queued SET command, pin change and auto-boot
 * step, wait until the UART has sent the bytes it already holds (hal uart_tx_pending). */
void bridge_disconnect(struct bridge *s);

/* Returns 1 while a client is connected (between connect and disconnect). */
int bridge_connected(const struct bridge *s);

/*
 * Received network bytes. Takes p/n (bytes). Returns how many were consumed (0..n); the
 * rest must be offered again later (after bridge_poll()). Never drops consumed bytes.
 */
size_t bridge_from_net(struct bridge *s, const uint8_t *p, size_t n);

/* Bytes bridge_from_net() would consume right now (upper bound; 0 = stop reading). */
size_t bridge_net_room(const struct bridge *s);

/*
 * Bytes received from the UART. Returns how many were consumed (0..n); keep the rest.
 * Before the client's first byte, data containing 0xFF is held (its encoding depends on
 * the mode). Without a client, bytes are consumed and discarded.
 */
size_t bridge_from_uart(struct bridge *s, const uint8_t *p, size_t n);

/* UART bytes bridge_from_uart() is guaranteed to accept now (worst case escaped). */
size_t bridge_uart_room(const struct bridge *s);

/* Run queued work: timed pin sequences, UART writes, network output. */
void bridge_poll(struct bridge *s);

/* Milliseconds until bridge_poll() must run again for a timed step; -1 if none is
 * pending (the platform still calls it when the UART or socket frees space). */
int32_t bridge_next_ms(const struct bridge *s);

/* 1 if network->UART data or operations are queued (the platform should poll again when
 * the UART has room). */
int bridge_tx_pending(const struct bridge *s);

/*
 * Boot-control actions requested out of band (legacy control port, firmware/core/legacy.h),
 * with or without a connected client. Queued like an in-band command: executed after the
 * commands queued before it, once the UART has sent what it holds.
 *  BRIDGE_ACT_RESET: NRST pulse of reset_ms with BOOT0 unchanged, then the settle hold.
 *  BRIDGE_ACT_BOOTLOADER: UART 115200 8E1 (no flow control), BOOT0 high, NRST pulse, settle.
 *    Automatic entry is disarmed (a following 0x7F causes no second reset) and the state is
 *    pinned: a client disconnect keeps this framing and the bootloader (the legacy workflow
 *    runs one stm32flash connection after another) until BRIDGE_ACT_RUN.
 *  BRIDGE_ACT_RUN: UART back to the settings' baud with 8N1 (settings' flow control),
 *    BOOT0 low, NRST pulse (application runs), settle; unpins.
 * Returns 0, -EBUSY if the operation queue is full (nothing done), or -EPERM for
 * BRIDGE_ACT_BOOTLOADER in locked mode (bridge_settings.locked; nothing done).
 */
enum bridge_action { BRIDGE_ACT_RESET = 1, BRIDGE_ACT_BOOTLOADER = 2, BRIDGE_ACT_RUN = 3 };
int bridge_action(struct bridge *s, enum bridge_action a);

/* Right after bridge_connect(): the client is a plain byte stream (no Telnet detection,
 * 0xFF passed as is), e.g. the legacy raw port. No effect in another mode. */
void bridge_force_raw(struct bridge *s);

/* One line through the session's HAL log (no trailing newline). */
void bridge_log(struct bridge *s, enum hal_log_level level, const char *line);

/* Current UART configuration and line states (for logs/tests). */
const struct hal_uart_cfg *bridge_uart(const struct bridge *s);
enum bridge_mode bridge_mode(const struct bridge *s);

/* Added for the HTTP API. New settings (line map, auto_boot, settle, the default framing
 * set->uart...) replace the session's; the framing is applied at once when no client is
 * connected and nothing is queued, else at the next disconnect (a client's RFC 2217 framing
 * is never overridden). */
void bridge_update_settings(struct bridge *s, const struct bridge_settings *set);

/* Current NRST/BOOT0 levels (-1 unknown). */
void bridge_pins(const struct bridge *s, int *nrst, int *boot0);

/*
 * Added for flashing over HTTP: lend the target's UART and BOOT0/NRST to another user (the
 * AN3155 master, stm32_isp.h) and take them back. on != 0 suspends, 0 resumes; repeating the
 * current state does nothing. No return value, no error. While suspended the session makes no HAL
 * UART or pin call (uart_config, uart_write, uart_purge, uart_break, gpio_set, uart_tx_pending)
 * and:
 *  - the client stays connected and is served: Telnet negotiation, NOTIFY-MODEMSTATE /
 *    LINESTATE polls, masks, PURGE-DATA (only the session's queued data is dropped) and
 *    SIGNATURE are answered at once; queued SET-BAUDRATE/DATASIZE/PARITY/STOPSIZE and all
 *    queries are executed on the session's state and answered, unless they would move the
 *    port into or out of 8E1 (auto-boot);
 *  - data to the UART, DTR/RTS, break and flow-control changes, bridge_action() and the
 *    restore after a disconnect are queued in stream order and wait (nothing is dropped):
 *    when the queue is full bridge_net_room() is 0 and the platform stops reading the socket
 *    (TCP backpressure);
 *  - bridge_uart_room() is 0 and bridge_from_uart() takes nothing: the platform hands the
 *    UART's bytes to the flasher, none reaches the client;
 *  - new settings (bridge_update_settings) are stored; their framing follows at resume.
 * On resume the session's framing (the client's, or the default one) is applied through
 * uart_config (if the UART refuses it, the settings' default framing), an active break is
 * re-applied, BOOT0 and NRST are driven to the session's recorded levels (BOOT0 first, no
 * reset pulse), then the queued operations run. The chip itself is left as the flasher
 * left it (after GO: the application runs); a client that had the chip in its bootloader
 * before the flash has to enter it again.
 */
void bridge_suspend(struct bridge *s, int on);

/* 1 while suspended by bridge_suspend(), else 0. */
int bridge_suspended(const struct bridge *s);

#endif
