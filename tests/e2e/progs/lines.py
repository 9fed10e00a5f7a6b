#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Drive the modem lines of a serial port from a second descriptor.

usage: lines.py DEVICE OP...
  dtr=1 / dtr=0   TIOCMBIS / TIOCMBIC TIOCM_DTR (tty_ioctl(4))
  rts=1 / rts=0   the same for TIOCM_RTS
  sleep=S         wait S seconds
  get             print TIOCMGET's bits

Opens DEVICE with O_RDWR|O_NOCTTY|O_NONBLOCK and touches nothing else (no termios),
so a terminal program holding the port keeps its settings. With espstm-bridge's direct
line map, DTR asserted = NRST low and RTS asserted = BOOT0 high: "rts=0 dtr=1 sleep=0.05
dtr=0" resets the chip into its application. Exit status 0, 1 on an ioctl error.
"""
import fcntl
import os
import struct
import sys
import termios
import time

NAMES = ((termios.TIOCM_DTR, "DTR"), (termios.TIOCM_RTS, "RTS"), (termios.TIOCM_CTS, "CTS"),
         (termios.TIOCM_DSR, "DSR"), (termios.TIOCM_CAR, "CD"), (termios.TIOCM_RNG, "RI"))


def get(fd):
    v = struct.unpack("I", fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("I", 0)))[0]
    return "0x%03x %s" % (v, " ".join(n for b, n in NAMES if v & b) or "-")


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        for op in sys.argv[2:]:
            if op == "get":
                print("lines: %s" % get(fd), flush=True)
                continue
            name, _, val = op.partition("=")
            if name == "sleep":
                time.sleep(float(val))
                continue
            bit = {"dtr": termios.TIOCM_DTR, "rts": termios.TIOCM_RTS}.get(name)
            if bit is None or val not in ("0", "1"):
                print("lines.py: bad op %r" % op, file=sys.stderr)
                return 2
            fcntl.ioctl(fd, termios.TIOCMBIS if val == "1" else termios.TIOCMBIC,
                        struct.pack("I", bit))
            print("lines: %s -> %s" % (op, get(fd)), flush=True)
    except OSError as e:
        print("lines.py: %s" % e, file=sys.stderr)
        return 1
    finally:
        os.close(fd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
