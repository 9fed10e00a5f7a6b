/* SPDX-License-Identifier: MIT */
/*
 * ctl_proto: espstmd's control-socket protocol, shared by the daemon (daemon/ctl.c) and
 * the espstm tool (cli/).
 *
 * Protocol: the client sends one request line (text, '\n'-terminated, at most 256 bytes),
 * the daemon answers with one JSON object on one line and closes the connection.
 *   status               {"ok":true,"devices":[{...per device...}]}
 *   status NAME          {"ok":true,"devices":[{...}]}
 *   reset|boot|run NAME  {"ok":true} or {"ok":false,"error":"..."}
 *   version              {"ok":true,"version":"..."}
 * Errors: {"ok":false,"error":"<message>"} (unknown command, unknown device, link down,
 * line too long). A connection is closed 5 s after it was accepted (request and answer
 * together), whatever it sends meanwhile. At most 16 clients at
 * once; more are accepted and immediately answered {"ok":false,"error":"busy"}.
 * Per-device object keys (stable; the espstm tool and tests rely on them):
 *   name, host, port, http_port, protocol ("rfc2217"|"espstm-legacy"), state ("up"|"connecting"|
 *   "down"), peer, rtt_us, up_ms, baud, data_bits, parity ("N".."S"), stop_bits, flow
 *   ("none"|"xonxoff"|"hardware"), dtr, rts, cts, dsr, cd, ri (0/1), opens, exclusive,
 *   tx_bytes, rx_bytes, tx_dropped, rx_dropped, connects, reconnects, errors, last_error,
 *   icount {cts,dsr,rng,dcd,rx,tx,frame,overrun,parity,brk,buf_overrun}.
 */
#ifndef ESPSTM_CTL_PROTO_H
#define ESPSTM_CTL_PROTO_H

/* Where espstmd listens unless told otherwise (espstmd --control or [global] control_socket; espstm --socket). */
#define CTL_DEFAULT_PATH "/run/espstm/espstmd.sock"

#endif
