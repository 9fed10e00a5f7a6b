#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Integration check of espstm-bridge --legacy (seed firmware ports) on the simulated STM32.

Usage: check.py BRIDGE_BINARY
Starts the bridge on 127.0.0.1 with ephemeral ports (--listen 127.0.0.1:0
--legacy-ports 0,0), then drives the control port (r/u/e) and the raw port (AN3155 sync +
GET, application banner, 0xFF passthrough). Prints PASS/FAIL per check and
"N passed, N failed"; exit status 0 only if all passed. Python stdlib only."""
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    return cond


def read_until(sock, pred, timeout=3.0):
    """Read until pred(data) is true or timeout; returns the data."""
    data = b""
    end = time.monotonic() + timeout
    while not pred(data):
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            b = sock.recv(4096)
        except socket.timeout:
            break
        if not b:
            break
        data += b
    return data


def read_n(sock, n, timeout=3.0):
    return read_until(sock, lambda d: len(d) >= n, timeout)


def quiet(sock, t=0.3):
    """Bytes arriving within t seconds (expected: none)."""
    return read_until(sock, lambda d: False, t)


def control(ctl, cmd):
    ctl.sendall(cmd)
    return read_until(ctl, lambda d: d.endswith(b"\r\n"), 3.0)


def main():
    bridge = sys.argv[1] if len(sys.argv) > 1 else "build/espstm-bridge"
    tmp = tempfile.mkdtemp(prefix="espstm-legacy-")
    flash = os.path.join(tmp, "f103.bin")
    img = bytearray(b"\xff" * (128 * 1024))
    img[0:8] = struct.pack("<II", 0x20005000, 0x08000101)  # SP, reset vector (Thumb)
    img[8:16] = b"legacy!\x00"
    with open(flash, "wb") as f:
        f.write(img)
    p = subprocess.Popen([bridge, "--listen", "127.0.0.1:0", "--target", "sim:stm32f103",
                          "--flash", flash, "--legacy-ports", "0,0", "--no-key"],
                         stderr=subprocess.PIPE, text=True)
    log = []
    ports = {}
    ready = threading.Event()

    def reader():
        for line in p.stderr:
            log.append(line.rstrip("\n"))
            m = re.search(r"listening on [\d.]+:(\d+)", line)
            if m:
                ports["rfc"] = int(m.group(1))
            m = re.search(r"legacy raw port on [\d.]+:(\d+), control port on [\d.]+:(\d+)", line)
            if m:
                ports["raw"], ports["ctl"] = int(m.group(1)), int(m.group(2))
            if "rfc" in ports and "raw" in ports:
                ready.set()
    threading.Thread(target=reader, daemon=True).start()
    try:
        if not check("bridge starts and prints its ports", ready.wait(10), "\n".join(log)):
            return
        addr = "127.0.0.1"
        ctl = socket.create_connection((addr, ports["ctl"]))
        raw = socket.create_connection((addr, ports["raw"]))
        quiet(raw, 0.5)  # the power-on banner, if the app printed it after the connect

        # r: reset pulse, the application prints its banner at the user baud (8N1)
        ans = control(ctl, b"r")
        check("'r' answered 'OK reset'", ans == b"OK reset\r\n", repr(ans))
        banner = read_until(raw, lambda d: b"\r\n" in d)
        check("'r' restarts the application (banner on the raw port)",
              banner.startswith(b"stm32sim app crc32="), repr(banner))

        # raw port is a plain byte bridge: 0xFF passes undoubled (the app echoes)
        raw.sendall(b"\xff\x01\xfe")
        echo = read_n(raw, 3)
        check("raw port passes 0xFF as is (app echo)", echo == b"\xff\x01\xfe", repr(echo))

        # CR/LF and unknown bytes: no answer
        ctl.sendall(b"\r\nx")
        extra = quiet(ctl)
        check("CR, LF, unknown byte: no answer", extra == b"", repr(extra))
        check("unknown byte logged", any("'x' ignored" in l for l in log), "\n".join(log[-5:]))

        # u: 115200 8E1 + BOOT0 + reset -> bootloader: AN3155 sync and GET
        ans = control(ctl, b"u")
        check("'u' answered 'OK boot 115200 8E1'", ans == b"OK boot 115200 8E1\r\n", repr(ans))
        time.sleep(0.1)
        raw.sendall(b"\x7f")
        r = read_n(raw, 1)
        check("AN3155 sync 0x7F -> ACK 0x79", r == b"\x79", repr(r))
        raw.sendall(b"\x00\xff")
        r = read_until(raw, lambda d: len(d) >= 2 and len(d) >= d[1] + 4)
        ok = len(r) >= 2 and r[0] == 0x79 and len(r) == r[1] + 4 and r[-1] == 0x79
        check("GET: ACK, N, version, N commands, ACK", ok, r.hex())
        if ok:
            check("GET lists GET/GV/GID/READ/GO/WRITE", all(c in r[3:-1] for c in
                  (0x00, 0x01, 0x02, 0x11, 0x21, 0x31)), r.hex())

        # a second data client (raw or RFC 2217) is refused while the raw client is connected
        for name, port in (("raw", ports["raw"]), ("RFC 2217", ports["rfc"])):
            s2 = socket.create_connection((addr, port))
            busy = read_until(s2, lambda d: d.endswith(b"\r\n"))
            check("second data client (%s port) gets the busy line" % name,
                  b"busy" in busy, repr(busy))
            s2.close()
        c2 = socket.create_connection((addr, ports["ctl"]))
        busy = read_until(c2, lambda d: d.endswith(b"\r\n"))
        check("second control client refused", busy.startswith(b"ERR busy"), repr(busy))
        c2.close()

        # the bootloader state survives the raw client's disconnect (one stm32flash run
        # after another); GET again on a new connection
        raw.close()
        time.sleep(0.2)
        raw = socket.create_connection((addr, ports["raw"]))
        time.sleep(0.1)
        raw.sendall(b"\x00\xff")
        r = read_until(raw, lambda d: len(d) >= 2 and len(d) >= d[1] + 4)
        check("bootloader (8E1) kept across a raw reconnect: GET answers",
              len(r) >= 2 and r[0] == 0x79 and r[-1] == 0x79, r.hex())

        # e: back to user baud 8N1 + reset -> application banner
        ans = control(ctl, b"e\n")
        check("'e' answered 'OK run 115200 8N1'", ans == b"OK run 115200 8N1\r\n", repr(ans))
        banner = read_until(raw, lambda d: b"\r\n" in d)
        check("'e' runs the application (banner at 8N1)",
              banner.startswith(b"stm32sim app crc32="), repr(banner))
        raw.sendall(b"hello")
        echo = read_n(raw, 5)
        check("application echo after 'e'", echo == b"hello", repr(echo))
        raw.close()
        ctl.close()
    finally:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        check("bridge exits 0 on SIGTERM", p.returncode == 0, str(p.returncode))
        passed = sum(results)
        print("%d passed, %d failed" % (passed, len(results) - passed))
        if len(results) != passed:
            print("--- bridge log ---\n" + "\n".join(log[-40:]))


main()
sys.exit(0 if results and all(results) else 1)
