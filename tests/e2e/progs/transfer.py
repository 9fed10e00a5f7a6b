#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Lossless-transfer check through the simulated application's echo.

usage: transfer.py DEVICE BYTES BAUD [--banner TEXT] [--pid NAME=PID]... [--idle S]

Opens DEVICE raw at BAUD 8N1 (termios(3): cfmakeraw, CLOCAL, CREAD, no flow control),
pulses DTR (direct line map: DTR asserted = NRST low) and waits for the application's
banner (must equal TEXT if given), then a writer thread writes BYTES random bytes with
blocking write(2) calls while a reader thread on the same descriptor reads the echo.
Passes when exactly BYTES bytes come back in the same order (length + CRC32 compared,
and byte by byte: the first differing offset is reported). Fails when nothing arrives
for --idle seconds (default 20) before all bytes are back.

Prints "transfer: ..." lines: bytes, seconds, bytes/s, the fraction of the line rate
(BAUD / 10 bytes/s at 8N1), and for each --pid NAME=PID the CPU time that process used
during the transfer (utime+stime from /proc/PID/stat) as a share of the elapsed time.
Exit status 0 pass, 1 fail, 2 usage/setup error.
"""
import fcntl
import os
import struct
import sys
import termios
import threading
import time
import zlib


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def set_raw(fd, baud):
    speed = getattr(termios, "B%d" % baud, None)
    if speed is None:
        raise SystemExit("transfer.py: no termios constant B%d" % baud)
    a = termios.tcgetattr(fd)
    iflag, oflag, cflag, lflag = 0, 0, a[2], 0
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB | termios.CRTSCTS)
    cflag |= termios.CS8 | termios.CLOCAL | termios.CREAD
    cc = a[6]
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, [iflag, oflag, cflag, lflag, speed, speed, cc])
    b = termios.tcgetattr(fd)
    if b[4] != speed or b[5] != speed:
        raise SystemExit("transfer.py: speed readback %r, expected B%d" % (b[4:6], baud))


def read_line(fd, deadline):
    buf = b""
    while time.monotonic() < deadline and b"\n" not in buf:
        a = termios.tcgetattr(fd)
        a[6][termios.VMIN] = 0
        a[6][termios.VTIME] = 5
        termios.tcsetattr(fd, termios.TCSANOW, a)
        buf += os.read(fd, 256)
    return buf


def main():
    args = sys.argv[1:]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    dev, total, baud = args[0], int(args[1]), int(args[2])
    banner, pids, idle = None, [], 20.0
    i = 3
    while i < len(args):
        if args[i] == "--banner":
            banner = args[i + 1]
        elif args[i] == "--pid":
            name, pid = args[i + 1].split("=")
            pids.append((name, int(pid)))
        elif args[i] == "--idle":
            idle = float(args[i + 1])
        else:
            print("transfer.py: unknown argument %s" % args[i], file=sys.stderr)
            return 2
        i += 2

    fd = os.open(dev, os.O_RDWR | os.O_NOCTTY)
    set_raw(fd, baud)
    # reset into the application: DTR asserted = NRST low (direct map), then released
    dtr = struct.pack("I", termios.TIOCM_DTR)
    rts = struct.pack("I", termios.TIOCM_RTS)
    fcntl.ioctl(fd, termios.TIOCMBIC, rts)
    termios.tcflush(fd, termios.TCIFLUSH)
    fcntl.ioctl(fd, termios.TIOCMBIS, dtr)
    time.sleep(0.05)
    fcntl.ioctl(fd, termios.TIOCMBIC, dtr)
    line = read_line(fd, time.monotonic() + 15).decode("ascii", "replace").strip()
    print("transfer: banner %r" % line, flush=True)
    if banner is not None and line != banner:
        print("FAIL transfer: banner %r, expected %r" % (line, banner), flush=True)
        return 1
    time.sleep(0.2)
    termios.tcflush(fd, termios.TCIFLUSH)
    set_raw(fd, baud)  # VMIN=1 VTIME=0 again: blocking reads

    data = os.urandom(total)
    got = bytearray()
    state = {"first_diff": None, "wdone": None, "werr": None, "last_rx": time.monotonic()}
    stop = threading.Event()

    def writer():
        off = 0
        try:
            while off < total and not stop.is_set():
                off += os.write(fd, data[off:off + 4096])
        except OSError as e:
            state["werr"] = "write at offset %d: %s" % (off, e)
        state["wdone"] = time.monotonic()

    def reader():
        import select
        p = select.poll()
        p.register(fd, select.POLLIN)
        while len(got) < total and not stop.is_set():
            if not p.poll(500):
                continue
            b = os.read(fd, 65536)
            if b:
                if state["first_diff"] is None and data[len(got):len(got) + len(b)] != b:
                    for k in range(len(b)):
                        if len(got) + k >= total or data[len(got) + k] != b[k]:
                            state["first_diff"] = len(got) + k
                            break
                got.extend(b)
                state["last_rx"] = time.monotonic()

    cpu0 = {name: cpu_seconds(pid) for name, pid in pids}
    t0 = time.monotonic()
    tw = threading.Thread(target=writer, daemon=True)
    tr = threading.Thread(target=reader, daemon=True)
    tw.start()
    tr.start()
    last_report = t0
    while tr.is_alive():
        tr.join(1.0)
        now = time.monotonic()
        if now - state["last_rx"] > idle:
            stop.set()
            break
        if now - last_report >= 15:
            last_report = now
            print("transfer: %.0f s: %d of %d bytes back (%.0f B/s)" %
                  (now - t0, len(got), total, len(got) / (now - t0)), flush=True)
    t1 = time.monotonic()
    cpu1 = {name: cpu_seconds(pid) for name, pid in pids}
    stop.set()
    secs = t1 - t0
    rate = len(got) / secs if secs > 0 else 0.0
    line_rate = baud / 10.0
    print("transfer: %d bytes written, %d read in %.1f s: %.0f bytes/s = %.3f of the %d-baud "
          "8N1 line rate (%.0f bytes/s)" % (total, len(got), secs, rate, rate / line_rate, baud,
                                          line_rate), flush=True)
    if state["wdone"] is not None:
        print("transfer: writer done after %.1f s" % (state["wdone"] - t0), flush=True)
    for name, _ in pids:
        c = cpu1[name] - cpu0[name]
        print("transfer: cpu %s %.1f s = %.0f%% of one core" % (name, c, 100.0 * c / secs),
              flush=True)
    ok = True
    if state["werr"]:
        print("FAIL transfer: %s" % state["werr"], flush=True)
        ok = False
    crc_in, crc_out = zlib.crc32(data), zlib.crc32(bytes(got))
    print("transfer: sent len %d crc32 %08x, received len %d crc32 %08x" %
          (total, crc_in, len(got), crc_out), flush=True)
    if state["first_diff"] is not None:
        o = state["first_diff"]
        print("FAIL transfer: first difference at offset %d: sent %s, received %s" %
              (o, data[o:o + 8].hex(), bytes(got[o:o + 8]).hex()), flush=True)
        ok = False
    if len(got) != total:
        print("FAIL transfer: %d bytes missing (nothing for %.0f s)" % (total - len(got), idle)
              if len(got) < total else "FAIL transfer: %d extra bytes" % (len(got) - total),
              flush=True)
        ok = False
    if ok and crc_in == crc_out:
        print("PASS transfer: bytes in = bytes out, same order", flush=True)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
