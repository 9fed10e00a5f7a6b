#!/usr/bin/python3
"""Read the simulated application's banner from a serial port.

usage: banner.py DEVICE [TIMEOUT_S]

Opens DEVICE at 115200 8N1 with DTR and RTS deasserted (DTR asserted = NRST low with
the default line map), pulses DTR to reset the chip into the application and prints the
first line that starts with "stm32sim app". Up to 3 tries. Exit 0 found, 1 not found.
"""
import sys
import time

import serial


def main():
    dev = sys.argv[1]
    timeout = float(sys.argv[2]) if len(sys.argv) > 2 else 4.0
    s = serial.Serial()
    s.port = dev
    s.baudrate = 115200
    s.bytesize = serial.EIGHTBITS
    s.parity = serial.PARITY_NONE
    s.stopbits = serial.STOPBITS_ONE
    s.timeout = timeout
    s.dtr = False
    s.rts = False
    s.open()
    seen = []
    for _ in range(3):
        s.reset_input_buffer()
        s.dtr = True
        time.sleep(0.05)
        s.dtr = False
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = s.readline()
            if not line:
                break
            if line.startswith(b"stm32sim app"):
                print(line.decode("ascii", "replace").rstrip("\r\n"))
                s.close()
                return 0
            seen.append(line)
    s.close()
    print("banner.py: no banner on %s; got %r" % (dev, seen[-5:]), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
