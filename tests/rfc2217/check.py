#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""RFC 2217 checks of espstm-bridge: Debian's python3-serial rfc2217:// client, and a
raw-socket client that compares the firmware's answers byte for byte.

Usage: check.py BRIDGE_BINARY [ARTIFACT_DIR]

Starts espstm-bridge (simulated STM32F103 holding a small application: banner after
reset, then echo) on 127.0.0.1 with an ephemeral port, and checks:

  pyserial   serial.serial_for_url("rfc2217://127.0.0.1:PORT?logging=debug&poll_modem"):
             open with DTR/RTS deasserted, banner after a DTR pulse, echo, in_waiting,
             0xFF bytes through the echo (IAC doubling both ways), baud/parity/stop bits/
             byte size changes applied by the bridge, a wrong baud garbles the echo and the
             right one (bridge --app-baud 57600) fixes it, dtr/rts setters reach the pins
             (RTS = BOOT0: bootloader is silent, application after RTS off), cts/dsr/ri/cd
             getters equal the bridge's NOTIFY-MODEMSTATE, send_break, reset_input_buffer
             and reset_output_buffer (PURGE-DATA: the unsent rest of a long write is
             dropped), and pyserial logged no warning/"failed"/"timeout"/"unexpected".
  raw socket the server's Telnet offers, NOTIFY-MODEMSTATE after COM-PORT negotiation, and
             every SET-xxx / mask / poll / PURGE-DATA answered with code + 100 and the value
             applied (docs/ARCHITECTURE.md "Wire protocol"; RFC 2217 "Com Port Configuration
             Commands"), compared byte for byte, 0xFF in values and data doubled,
             FLOWCONTROL-SUSPEND/RESUME, and a client that speaks raw bytes first gets a
             raw bridge (0xFF not doubled).

Prints PASS/FAIL per check and "N passed, N failed"; exit status 0 only if all passed.
Logs (bridge -v, pyserial debug) go to ARTIFACT_DIR (default: a temp dir, printed).
"""
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib

import serial

results = []

IAC, SB, SE, WILL, WONT, DO, DONT = 255, 250, 240, 251, 252, 253, 254
COMPORT = 44


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)),
          flush=True)
    return cond


# ------------------------------------------------------------------ the bridge

class Bridge:
    """espstm-bridge on 127.0.0.1:0 with -v; stderr collected line by line."""

    def __init__(self, binary, flash, logpath, extra=()):
        self.log = []
        self.lock = threading.Lock()
        self.port = None
        self.ready = threading.Event()
        self.logf = open(logpath, "w")
        self.p = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--target",
                                   "sim:stm32f103", "--flash", flash, "-v", "--no-key"] + list(extra),
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._reader, daemon=True).start()
        if self.ready.wait(15):
            return
        raise RuntimeError("bridge did not print 'listening on' within 15 s")

    def _reader(self):
        for line in self.p.stderr:
            line = line.rstrip("\n")
            self.logf.write(line + "\n")
            self.logf.flush()
            with self.lock:
                self.log.append(line)
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if m:
                self.port = int(m.group(1))
                self.ready.set()

    def mark(self):
        """Index of the next log line (to look only at what follows)."""
        with self.lock:
            return len(self.log)

    def lines(self, since=0):
        with self.lock:
            return self.log[since:]

    def wait(self, regex, since=0, timeout=5.0):
        """Wait for a log line matching regex after index since; returns it or None."""
        rx = re.compile(regex)
        end = time.monotonic() + timeout
        while True:
            for line in self.lines(since):
                if rx.search(line):
                    return line
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)

    def tail(self, n=25):
        return "\n    ".join([""] + self.lines()[-n:])

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.logf.close()
        return self.p.returncode


def app_image(path):
    """A flash file holding a plausible application (vector table + random bytes).
    Returns the banner the simulated application prints for it."""
    img = struct.pack("<II", 0x20004000, 0x08000131) + os.urandom(4096 - 8)
    with open(path, "wb") as f:
        f.write(img + b"\xff" * (128 * 1024 - len(img)))
    t = img.rstrip(b"\xff")
    return "stm32sim app crc32=%08x len=%d" % (zlib.crc32(t), len(t))


# ------------------------------------------------------------------ pyserial

class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


def read_quiet(s, quiet=0.5, limit=10.0):
    """Read from a pyserial port until nothing arrives for `quiet` seconds."""
    data = bytearray()
    end = time.monotonic() + limit
    old = s.timeout
    s.timeout = quiet
    while time.monotonic() < end:
        b = s.read(4096)
        if not b:
            break
        data += b
    s.timeout = old
    return bytes(data)


def echo_ok(s, data, what):
    s.reset_input_buffer()
    s.write(data)
    got = s.read(len(data))
    return check(what, got == data, "sent %r, got %r" % (data[:40], got[:40]))


def pulse_dtr(s):
    s.dtr = True
    time.sleep(0.05)
    s.dtr = False


def pyserial_checks(br, banner, url_opts):
    url = "rfc2217://127.0.0.1:%d?%s" % (br.port, url_opts)
    m0 = br.mark()
    s = serial.serial_for_url(url, baudrate=115200, timeout=2, do_not_open=True)
    s.dtr = False
    s.rts = False
    s.open()
    check("pyserial: open rfc2217:// (dtr/rts False before open)", s.is_open)
    check("open: bridge answered SET-CONTROL DTR off (9) and RTS off (12)",
          br.wait(r"SET-CONTROL 9 -> 9", m0) and br.wait(r"SET-CONTROL 12 -> 12", m0),
          br.tail())
    check("open: DTR never asserted, so NRST never went low",
          not any("NRST=low" in l for l in br.lines(m0)), br.tail())
    check("open: settings negotiated (uart: 115200 8N1)",
          br.wait(r"uart: 115200 8N1", m0), br.tail())

    # banner after a DTR pulse (direct line map: DTR asserted = NRST low)
    s.reset_input_buffer()
    m = br.mark()
    pulse_dtr(s)
    line = s.readline().decode("ascii", "replace").rstrip("\r\n")
    check("DTR pulse: banner '%s'" % banner, line == banner, repr(line))
    check("DTR pulse: pins NRST=low then NRST=high",
          br.wait(r"pins: NRST=low", m) and br.wait(r"pins: NRST=high", m), br.tail())

    # echo and in_waiting
    s.reset_input_buffer()
    s.write(b"abc")
    end = time.monotonic() + 3
    while s.in_waiting < 3 and time.monotonic() < end:
        time.sleep(0.02)
    check("in_waiting counts the 3 echoed bytes", s.in_waiting == 3, s.in_waiting)
    got = s.read(3)
    check("echo 'abc'", got == b"abc", repr(got))
    echo_ok(s, b"hello espstm over RFC 2217\r\n", "echo of a text line")

    # 0xFF through the echo: pyserial doubles IAC on write and undoubles on read
    data = bytes(range(256)) * 3 + b"\xff" * 100 + b"\xff\x00\xff"
    echo_ok(s, data, "echo of %d bytes with every value, 0xFF runs (IAC doubling)" % len(data))

    # line settings: each applied by the bridge (pyserial sends all four on each change)
    for baud, bits, par, stop, want in ((9600, 8, "N", 1, "9600 8N1"),
                                        (57600, 7, "E", 1, "57600 7E1"),
                                        (19200, 8, "O", 2, "19200 8O2"),
                                        (230400, 6, "M", 1, "230400 6M1"),
                                        (38400, 5, "S", 1.5, "38400 5S1.5"),
                                        (921600, 8, "N", 2, "921600 8N2")):
        m = br.mark()
        try:
            s.baudrate = baud
            s.bytesize = bits
            s.parity = par
            s.stopbits = stop
            err = ""
        except (serial.SerialException, ValueError) as e:
            err = str(e)
        check("settings %d %d%s%s: accepted by the server" % (baud, bits, par, stop),
              not err, err)
        check("settings %s: applied by the bridge (uart: %s)" % (want, want),
              br.wait(r"uart: %s$" % re.escape(want), m), br.tail(8))
    # a wrong baud garbles the echo (the baud really reaches the simulated wire)
    s.baudrate = 57600
    s.bytesize, s.parity, s.stopbits = 8, "N", 1
    sent = b"The quick brown fox 0123456789"
    s.reset_input_buffer()
    s.write(sent)
    got = read_quiet(s, 0.5)
    check("57600 against the 115200 application: echo garbled (baud applied on the wire)",
          got != sent, repr(got))
    s.baudrate = 115200
    time.sleep(0.3)
    read_quiet(s, 0.3)
    echo_ok(s, sent, "back at 115200 8N1: clean echo")

    # RTS = BOOT0: a reset with RTS asserted starts the (silent) bootloader
    m = br.mark()
    s.rts = True
    check("rts=True: pins BOOT0=high", br.wait(r"pins: .*BOOT0=high", m), br.tail())
    s.reset_input_buffer()
    pulse_dtr(s)
    got = read_quiet(s, 1.0, 3.0)
    check("DTR pulse with RTS asserted: no banner (bootloader)",
          b"stm32sim app" not in got, repr(got))
    m = br.mark()
    s.rts = False
    check("rts=False: pins BOOT0=low", br.wait(r"pins: .*BOOT0=low", m), br.tail())
    s.reset_input_buffer()
    pulse_dtr(s)
    line = s.readline().decode("ascii", "replace").rstrip("\r\n")
    check("DTR pulse with RTS deasserted: banner again", line == banner, repr(line))

    # modem lines: the getters poll (poll_modem) and must equal the bridge's state
    mline = br.wait(r"NOTIFY-MODEMSTATE 0x[0-9a-f]{2}$", m0)
    state = int(mline.split()[-1], 16) if mline else None
    check("bridge sent NOTIFY-MODEMSTATE after negotiation", state is not None, br.tail())
    if state is not None:
        got = (s.cts, s.dsr, s.ri, s.cd)
        want = (bool(state & 0x10), bool(state & 0x20), bool(state & 0x40), bool(state & 0x80))
        check("cts/dsr/ri/cd = %s (NOTIFY-MODEMSTATE 0x%02x)" % (want, state), got == want,
              got)

    # break
    m = br.mark()
    s.send_break(0.2)
    check("send_break: SET-CONTROL 5 then 6 answered",
          br.wait(r"SET-CONTROL 5 -> 5", m) and br.wait(r"SET-CONTROL 6 -> 6", m), br.tail())
    check("send_break: the UART got break on, then off",
          br.wait(r"break on", m) and br.wait(r"break off", m), br.tail())
    echo_ok(s, b"after break", "echo after the break")

    # reset_output_buffer: the unsent rest of a long write is dropped
    big = os.urandom(16384)
    s.reset_input_buffer()
    m = br.mark()
    s.write(big)
    s.reset_output_buffer()
    got = read_quiet(s, 2.0, 30.0)
    check("reset_output_buffer: PURGE-DATA 2 answered", br.wait(r"PURGE-DATA 2", m),
          br.tail())
    check("reset_output_buffer: the echo is a strict prefix of the %d bytes written "
          "(the rest purged; got %d)" % (len(big), len(got)),
          len(got) < len(big) and big.startswith(got), "got %d bytes" % len(got))

    # reset_input_buffer: with the whole echo of a write waiting unread, it is all dropped
    read_quiet(s, 1.0)
    s.write(b"x" * 300)
    end = time.monotonic() + 10
    while s.in_waiting < 300 and time.monotonic() < end:
        time.sleep(0.05)
    waiting = s.in_waiting
    m = br.mark()
    s.reset_input_buffer()
    check("reset_input_buffer: PURGE-DATA 1 answered", br.wait(r"PURGE-DATA 1", m),
          br.tail())
    left = read_quiet(s, 0.5)
    check("reset_input_buffer: the %d echoed bytes waiting are gone" % waiting,
          waiting == 300 and s.in_waiting == 0 and left == b"",
          "in_waiting before %d, read after %r" % (waiting, left[:40]))
    echo_ok(s, b"fresh", "after the purges: only new bytes echo")

    m = br.mark()
    s.close()
    check("close: the bridge sees the client disconnect",
          br.wait(r"client disconnected", m), br.tail())


def app_baud_checks(br, banner):
    """Bridge with --app-baud 57600: pyserial at 115200 gets garbage, at 57600 the echo
    and the banner."""
    s = serial.serial_for_url("rfc2217://127.0.0.1:%d" % br.port, baudrate=115200,
                              timeout=2, do_not_open=True)
    s.dtr = False
    s.rts = False
    s.open()
    sent = b"baud check 0123456789 abcdefghij"
    s.reset_input_buffer()
    s.write(sent)
    got = read_quiet(s, 0.5)
    check("app at 57600, port at 115200: echo garbled", got != sent, repr(got))
    m = br.mark()
    s.baudrate = 57600
    check("baudrate=57600 applied (uart: 57600 8N1)", br.wait(r"uart: 57600 8N1$", m),
          br.tail())
    time.sleep(0.3)
    read_quiet(s, 0.3)
    echo_ok(s, sent, "port at 57600 = app baud: clean echo")
    s.reset_input_buffer()
    pulse_dtr(s)
    line = s.readline().decode("ascii", "replace").rstrip("\r\n")
    check("port at 57600: banner after a DTR pulse", line == banner, repr(line))
    s.close()


# ------------------------------------------------------------------ raw socket

def esc(b):
    return bytes(b).replace(b"\xff", b"\xff\xff")


def sb(payload):
    """IAC SB COM-PORT payload (0xFF doubled) IAC SE."""
    return bytes([IAC, SB, COMPORT]) + esc(payload) + bytes([IAC, SE])


class Raw:
    """A Telnet client on a raw socket. Splits what arrives into data bytes, option
    commands and whole SB frames (kept as the exact bytes received)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()   # undecoded
        self.wire = bytearray()  # everything received, as received
        self.data = bytearray()  # data bytes (IAC IAC undoubled)
        self.events = []         # ("opt", verb, opt) or ("sb", raw_frame_bytes)

    def send(self, b):
        self.s.sendall(bytes(b))

    def _recv(self, timeout):
        self.s.settimeout(max(timeout, 0.001))
        try:
            b = self.s.recv(65536)
        except socket.timeout:
            return True
        if not b:
            return False
        self.wire += b
        self.buf += b
        self._parse()
        return True

    def _parse(self):
        b = self.buf
        i = 0
        while i < len(b):
            if b[i] != IAC:
                self.data.append(b[i])
                i += 1
                continue
            if i + 1 >= len(b):
                break
            c = b[i + 1]
            if c == IAC:
                self.data.append(IAC)
                i += 2
            elif c in (WILL, WONT, DO, DONT):
                if i + 2 >= len(b):
                    break
                self.events.append(("opt", c, b[i + 2]))
                i += 3
            elif c == SB:
                j = i + 2
                end = None
                while j + 1 < len(b):
                    if b[j] == IAC and b[j + 1] == SE:
                        end = j + 2
                        break
                    j += 2 if b[j] == IAC else 1
                if end is None:
                    break
                self.events.append(("sb", bytes(b[i:end])))
                i = end
            else:
                self.events.append(("cmd", c))
                i += 2
        del b[:i]

    def wait(self, pred, timeout=3.0):
        end = time.monotonic() + timeout
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                return False
            if not self._recv(left):
                return pred()
        return True

    def next_sb(self, timeout=3.0):
        """The next SB frame (exact bytes) or None."""
        if not self.wait(lambda: any(e[0] == "sb" for e in self.events), timeout):
            return None
        for k, e in enumerate(self.events):
            if e[0] == "sb":
                del self.events[k]
                return e[1]

    def close(self):
        self.s.close()


def raw_checks(br, banner, signature):
    r = Raw(br.port)
    m0 = br.mark()
    # We will send COM-PORT commands: WILL COM-PORT-OPTION. The server (which waits for the
    # client's first IAC) then makes its offers and answers DO COM-PORT-OPTION.
    r.send([IAC, WILL, COMPORT])
    offers = bytes([IAC, WILL, 0, IAC, DO, 0, IAC, WILL, 3, IAC, WILL, COMPORT])
    r.wait(lambda: len(r.wire) >= len(offers) + 3)
    check("raw: server offers WILL BINARY, DO BINARY, WILL SGA, WILL COM-PORT first",
          bytes(r.wire[:len(offers)]) == offers, r.wire[:24].hex(" "))
    check("raw: server answers our WILL COM-PORT with DO COM-PORT",
          r.wait(lambda: ("opt", DO, COMPORT) in r.events), r.events)
    for verb, opt in ((DO, 0), (WILL, 0), (DO, 3), (DO, COMPORT)):
        r.send([IAC, verb, opt])
    f = r.next_sb()
    modem = f[4] if f and len(f) == 7 else None
    check("raw: NOTIFY-MODEMSTATE (107) sent once COM-PORT is on",
          f is not None and f[:4] == bytes([IAC, SB, COMPORT, 107]) and len(f) == 7
          and f[5:] == bytes([IAC, SE]), f.hex(" ") if f else "nothing")
    time.sleep(0.3)
    r.wait(lambda: False, 0.3)
    check("raw: no duplicate NOTIFY-MODEMSTATE", not any(e[0] == "sb" for e in r.events),
          r.events)
    r.events = [e for e in r.events if e[0] != "opt"]
    if modem is None:
        modem = 0

    def u32(v):
        return struct.pack(">I", v)

    # (name, request payload, expected answer payload): the answer is code + 100 and the
    # value actually applied (0 = query; invalid values keep the current one).
    table = [
        ("SIGNATURE query", [0], bytes([100]) + signature.encode()),
        ("SET-BAUDRATE 9600", b"\x01" + u32(9600), b"\x65" + u32(9600)),
        ("SET-BAUDRATE query", b"\x01" + u32(0), b"\x65" + u32(9600)),
        ("SET-BAUDRATE 131071 (0xFF in the value, doubled)", b"\x01" + u32(131071),
         b"\x65" + u32(131071)),
        ("SET-BAUDRATE 0xFFFFFFFF (out of range: kept)", b"\x01" + u32(0xFFFFFFFF),
         b"\x65" + u32(131071)),
        ("SET-BAUDRATE 115200", b"\x01" + u32(115200), b"\x65" + u32(115200)),
        ("SET-DATASIZE 7", [2, 7], [102, 7]),
        ("SET-DATASIZE query", [2, 0], [102, 7]),
        ("SET-DATASIZE 9 (invalid: kept)", [2, 9], [102, 7]),
        ("SET-DATASIZE 5", [2, 5], [102, 5]),
        ("SET-DATASIZE 6", [2, 6], [102, 6]),
        ("SET-DATASIZE 8", [2, 8], [102, 8]),
        ("SET-PARITY odd", [3, 2], [103, 2]),
        ("SET-PARITY query", [3, 0], [103, 2]),
        ("SET-PARITY mark", [3, 4], [103, 4]),
        ("SET-PARITY space", [3, 5], [103, 5]),
        ("SET-PARITY 6 (invalid: kept)", [3, 6], [103, 5]),
        ("SET-PARITY none", [3, 1], [103, 1]),
        ("SET-STOPSIZE 2", [4, 2], [104, 2]),
        ("SET-STOPSIZE query", [4, 0], [104, 2]),
        ("SET-STOPSIZE 1.5", [4, 3], [104, 3]),
        ("SET-STOPSIZE 4 (invalid: kept)", [4, 4], [104, 3]),
        ("SET-STOPSIZE 1", [4, 1], [104, 1]),
        ("SET-CONTROL flow none", [5, 1], [105, 1]),
        ("SET-CONTROL flow query", [5, 0], [105, 1]),
        # the simulated wire has no RTS/CTS or XON/XOFF: the applied value stays none
        ("SET-CONTROL flow XON/XOFF (not on the simulated wire: none applied)", [5, 2],
         [105, 1]),
        ("SET-CONTROL flow hardware (not on the simulated wire: none applied)", [5, 3],
         [105, 1]),
        ("SET-CONTROL BREAK on", [5, 5], [105, 5]),
        ("SET-CONTROL BREAK query (on)", [5, 4], [105, 5]),
        ("SET-CONTROL BREAK off", [5, 6], [105, 6]),
        ("SET-CONTROL BREAK query (off)", [5, 4], [105, 6]),
        ("SET-CONTROL DTR on", [5, 8], [105, 8]),
        ("SET-CONTROL DTR query (on)", [5, 7], [105, 8]),
        ("SET-CONTROL DTR off", [5, 9], [105, 9]),
        ("SET-CONTROL DTR query (off)", [5, 7], [105, 9]),
        ("SET-CONTROL RTS on", [5, 11], [105, 11]),
        ("SET-CONTROL RTS query (on)", [5, 10], [105, 11]),
        ("SET-CONTROL RTS off", [5, 12], [105, 12]),
        ("SET-CONTROL RTS query (off)", [5, 10], [105, 12]),
        ("SET-CONTROL inbound flow query (none = 14)", [5, 13], [105, 14]),
        ("SET-CONTROL inbound flow none", [5, 14], [105, 14]),
        ("SET-CONTROL inbound flow XON/XOFF (none applied)", [5, 15], [105, 14]),
        ("SET-CONTROL inbound flow hardware (none applied)", [5, 16], [105, 14]),
        ("SET-LINESTATE-MASK 0x00", [10, 0], [110, 0]),
        ("SET-LINESTATE-MASK 0xFF (doubled)", [10, 0xFF], [110, 0xFF]),
        ("SET-MODEMSTATE-MASK 0x10", [11, 0x10], [111, 0x10]),
        ("NOTIFY-MODEMSTATE poll with mask 0x10", [7], [107, modem & 0x10]),
        ("SET-MODEMSTATE-MASK 0xFF (doubled)", [11, 0xFF], [111, 0xFF]),
        ("NOTIFY-MODEMSTATE poll with mask 0xFF", [7], [107, modem]),
        ("NOTIFY-LINESTATE poll (no errors)", [6], [106, 0]),
        ("PURGE-DATA receive", [12, 1], [112, 1]),
        ("PURGE-DATA transmit", [12, 2], [112, 2]),
        ("PURGE-DATA both", [12, 3], [112, 3]),
    ]
    for name, req, ans in table:
        r.send(sb(req))
        got = r.next_sb()
        want = sb(ans)
        check("raw: %s -> %s" % (name, want.hex(" ")), got == want,
              got.hex(" ") if got else "no answer within 3 s")
    # the answers come at once, the pins move in the bridge's pin sequence (an NRST pulse
    # holds for ms): under load the last "pins:" line can follow the last answer, so wait
    # for each (up to 3 s) before reading the log
    for x in ("pins: NRST=low", "pins: NRST=high", "BOOT0=high", "BOOT0=low"):
        br.wait(re.escape(x), m0, 3.0)
    lines = br.lines(m0)
    check("raw: bridge applied 9600, 131071, 115200 baud and 7/5/6 data bits, parity O/M/S, "
          "stop 2/1.5 (uart: lines)",
          all(any(re.search(x, l) for l in lines) for x in (
              r"uart: 9600 8N1$", r"uart: 131071 8N1$", r"uart: 115200 8N1$",
              r"uart: 115200 7N1$", r"uart: 115200 5N1$", r"uart: 115200 6N1$",
              r"uart: 115200 8O1$", r"uart: 115200 8M1$", r"uart: 115200 8S1$",
              r"uart: 115200 8N2$", r"uart: 115200 8N1.5$")),
          "\n    ".join([""] + lines[-60:]))
    check("raw: DTR on/off and RTS on/off moved the pins",
          all(any(x in l for l in lines) for x in ("pins: NRST=low", "pins: NRST=high",
                                                   "BOOT0=high", "BOOT0=low")),
          "\n    ".join([""] + [l for l in lines if "pins:" in l]))

    # invalid PURGE-DATA and a client SIGNATURE text: no answer; the next command's answer
    # comes next
    r.send(sb([12, 4]))
    r.send(sb([0]) [:4] + b"raw-check client" + bytes([IAC, SE]))
    r.send(sb([2, 0]))
    got = r.next_sb()
    check("raw: PURGE-DATA 4 (invalid) and a client SIGNATURE text get no answer "
          "(next answer is the DATASIZE query)", got == sb([102, 8]),
          got.hex(" ") if got else None)
    check("raw: the client's signature text is logged",
          br.wait(r'client signature "raw-check client"', m0), br.tail())

    # DTR pulse -> banner in the data stream; then 0xFF in data: IAC IAC on the wire
    r.data.clear()
    r.send(sb([5, 8]))
    r.send(sb([5, 9]))
    r.wait(lambda: b"\r\n" in r.data, 5)
    line = bytes(r.data).split(b"\r\n")[0].decode("ascii", "replace")
    check("raw: DTR on/off via SET-CONTROL: banner", line == banner, repr(bytes(r.data)))
    for _ in (1, 2):
        r.next_sb(1)
    r.data.clear()
    r.wire.clear()
    r.send(b"A\xff\xff\x00B\xff\xff")
    r.wait(lambda: len(r.data) >= 5)
    check("raw: data 'A' 0xFF 00 'B' 0xFF echoed", bytes(r.data) == b"A\xff\x00B\xff",
          bytes(r.data).hex(" "))
    check("raw: 0xFF doubled on the wire by the server", bytes(r.wire) ==
          b"A\xff\xff\x00B\xff\xff", bytes(r.wire).hex(" "))

    # FLOWCONTROL-SUSPEND: the server holds its output until RESUME
    r.data.clear()
    r.send(sb([8]))
    r.send(b"held")
    r.wait(lambda: False, 1.0)
    check("raw: FLOWCONTROL-SUSPEND: no data while suspended", bytes(r.data) == b"",
          bytes(r.data))
    r.send(sb([9]))
    r.wait(lambda: len(r.data) >= 4)
    check("raw: FLOWCONTROL-RESUME: the held echo arrives", bytes(r.data) == b"held",
          bytes(r.data))
    r.close()
    check("raw: disconnect seen", br.wait(r"client disconnected", m0), br.tail())

    # a client that sends plain bytes first gets a raw bridge (no Telnet)
    time.sleep(0.3)
    p = Raw(br.port)
    p.send(b"hi\xff!")
    p.wait(lambda: len(p.wire) >= 4)
    p.wait(lambda: False, 0.3)
    check("raw bridge: plain client's 'hi' 0xFF '!' echoed without Telnet or doubling",
          bytes(p.wire) == b"hi\xff!", bytes(p.wire).hex(" "))
    p.close()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/espstm-bridge"
    art = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="espstm-rfc2217-")
    os.makedirs(art, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="espstm-rfc2217-")
    print("rfc2217: logs in %s" % art, flush=True)

    # pyserial's logger to a file; collected for the warning check
    logging.basicConfig(filename=os.path.join(art, "pyserial.log"), level=logging.DEBUG,
                        format="%(relativeCreated)8.0f %(levelname)s %(name)s: %(message)s")
    coll = Collect()
    logging.getLogger("pySerial.rfc2217").addHandler(coll)

    signature = subprocess.run([binary, "--version"], capture_output=True, text=True,
                               check=True).stdout.strip()
    flash = os.path.join(tmp, "f103.bin")
    banner = app_image(flash)
    t0 = time.monotonic()
    br = Bridge(binary, flash, os.path.join(art, "bridge.log"))
    try:
        try:
            pyserial_checks(br, banner, "logging=debug&poll_modem")
        except Exception as e:  # a pyserial exception is a failure, not a crash
            check("pyserial checks ran to the end", False, "%s: %s" % (type(e).__name__, e))
        bad = [r for r in coll.records
               if r.levelno >= logging.WARNING
               or re.search(r"failed|timeout|unexpected|ignoring|rejected", r.getMessage(),
                            re.I)]
        check("pyserial logged no warnings (failed/timeout/unexpected/ignoring/rejected); "
              "%d records" % len(coll.records),
              coll.records and not bad, [r.getMessage() for r in bad[:5]] or "no records")
        try:
            raw_checks(br, banner, signature)
        except Exception as e:
            check("raw checks ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        rc = br.stop()
        check("bridge exits 0 on SIGTERM", rc == 0, rc)

    flash2 = os.path.join(tmp, "f103-57600.bin")
    banner2 = app_image(flash2)
    br2 = Bridge(binary, flash2, os.path.join(art, "bridge-57600.log"),
                 ["--app-baud", "57600"])
    try:
        try:
            app_baud_checks(br2, banner2)
        except Exception as e:
            check("app-baud checks ran to the end", False, "%s: %s" % (type(e).__name__, e))
    finally:
        br2.stop()
    for f in (flash, flash2):
        os.unlink(f)
    os.rmdir(tmp)
    passed = sum(results)
    print("%d passed, %d failed (%.1f s)" % (passed, len(results) - passed,
                                             time.monotonic() - t0))
    return 0 if results and all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
