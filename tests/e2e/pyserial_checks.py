#!/usr/bin/python3
"""python3-serial (Debian's pyserial) on an espstmd device (tests/e2e scenario pyserial).

usage: pyserial_checks.py DEVICE BRIDGE_LOG

Same setup as tty_checks.py (whose helpers this imports): DEVICE is served by espstmd
through an espstm-bridge -v (line map direct: DTR asserted = NRST low, RTS asserted = BOOT0
high) whose simulated STM32 holds an application: it prints "stm32sim app crc32=... len=N"
after every reset, at 115200 8N1, and echoes every byte. tty_checks.py's "pyserial" check
already covers read timeouts, in_waiting, reset_input_buffer and a 57600/115200 round trip;
these checks cover the rest of what pyserial users do: exclusive=True (flock) and TIOCEXCL,
two Serial objects on one port, non-blocking reads with select, parity/bytesize/stopbits,
the dtr/rts setters (a DTR pulse resets the application: its banner again), the
cts/dsr/cd/ri getters (and TIOCGICOUNT), send_break and break_condition, flush (tcdrain)
and out_waiting with 20000 bytes echoed back whole.
Prints one "ok NAME" or "FAIL NAME: why" line per check; exit 1 on any failure.
"""
import errno
import fcntl
import os
import select
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tty_checks as tc  # noqa: E402  (reads DEVICE and BRIDGE_LOG from sys.argv too)
import serial  # noqa: E402

DEV = tc.DEV
check, need, wait_blog, blog_lines = tc.check, tc.need, tc.wait_blog, tc.blog_lines

TIOCGICOUNT = 0x545D
TIOCEXCL = 0x540C
TIOCNXCL = 0x540D
ICOUNT = "<11i"   # struct serial_icounter_struct: cts dsr rng dcd rx tx frame overrun
#                   parity brk buf_overrun (then reserved[9])


def port(**kw):
    """A Serial on DEV at 115200 8N1, DTR and RTS deasserted before open() (docs/ARCHITECTURE.md:
    with the direct line map an asserted DTR holds the chip in reset)."""
    s = serial.Serial()
    s.port = DEV
    s.baudrate = 115200
    s.timeout = kw.pop("timeout", 1.0)
    s.dtr = False
    s.rts = False
    for k, v in kw.items():
        setattr(s, k, v)
    s.open()
    return s


def last_uart():
    u = [ln for ln in blog_lines() if "uart: " in ln and "break" not in ln]
    return u[-1] if u else "none"


def wait_uart(n0, want):
    ln = wait_blog(n0, lambda x: x.rstrip().endswith("uart: " + want))
    need(ln, "bridge did not apply '%s' (last: %s)" % (want, last_uart()))


def echo_ok(s, msg=b"ping"):
    s.reset_input_buffer()
    s.write(msg)
    got = s.read(len(msg))
    need(got == msg, "echo of %r is %r" % (msg, got))


def banner_after_dtr_pulse(s, timeout=4.0):
    s.reset_input_buffer()
    n0 = len(blog_lines())
    s.dtr = True
    need(wait_blog(n0, lambda x: x.rstrip().endswith(tc.pin_line(True, False))),
         "dtr=True: bridge log lacks '%s'" % tc.pin_line(True, False))
    s.dtr = False
    need(wait_blog(n0, lambda x: x.rstrip().endswith(tc.pin_line(False, False))),
         "dtr=False: bridge log lacks '%s'" % tc.pin_line(False, False))
    old = s.timeout
    s.timeout = timeout
    try:
        line = s.readline()
        while line and not line.startswith(b"stm32sim app"):
            line = s.readline()
    finally:
        s.timeout = old
    need(line.startswith(b"stm32sim app crc32="), "no banner after the DTR pulse (got %r)" % line)
    return line


S = {}


@check("py-open-banner")
def c_open():
    s = port()
    S["s"] = s
    need(not s.dtr and not s.rts, "dtr/rts %r/%r after open" % (s.dtr, s.rts))
    line = banner_after_dtr_pulse(s)
    print("  banner: %r" % line.strip(), flush=True)
    echo_ok(s)


@check("py-exclusive")
def c_exclusive():
    S["s"].close()
    try:
        excl_body()
    finally:
        if not S["s"].is_open:
            S["s"] = port()


def excl_body():
    a = port(exclusive=True)
    try:
        try:
            b = port(exclusive=True)
        except serial.SerialException as e:
            need(e.errno in (errno.EWOULDBLOCK, errno.EAGAIN),
                 "second exclusive open: errno %r (%s)" % (e.errno, e))
        else:
            b.close()
            raise tc.CheckFail("a second exclusive=True open succeeded")
        # without exclusive: opens (flock is advisory), and the port is shared
        c = port()
        c.close()
        echo_ok(a, b"excl")
    finally:
        a.close()
    b = port(exclusive=True)   # the lock went with the first port
    b.close()


@check("tiocexcl-ebusy-non-root")
def c_tiocexcl():
    # The kernel's tty_open() lets CAP_SYS_ADMIN through TIOCEXCL; espstmd lets uid 0
    # through. So the later open is made by a child that dropped to nobody.
    if os.getuid() != 0:
        print("  (not root: only checking that TIOCEXCL/TIOCNXCL are accepted)", flush=True)
        fd = S["s"].fileno()
        fcntl.ioctl(fd, TIOCEXCL)
        fcntl.ioctl(fd, TIOCNXCL)
        return
    fd = S["s"].fileno()
    mode = os.stat(DEV).st_mode & 0o7777
    os.chmod(DEV, 0o666)

    def open_as_nobody():
        os.setgid(65534)
        os.setuid(65534)
        try:
            os.close(os.open(DEV, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
            return "opened"
        except OSError as e:
            return "errno %d" % e.errno
    try:
        fcntl.ioctl(fd, TIOCEXCL)
        r = tc.in_child(open_as_nobody, 10)
        need(r == "errno %d" % errno.EBUSY, "open by uid 65534 under TIOCEXCL: %s" % r)
        # root still opens
        os.close(os.open(DEV, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK))
        fcntl.ioctl(fd, TIOCNXCL)
        r = tc.in_child(open_as_nobody, 10)
        need(r == "opened", "open by uid 65534 after TIOCNXCL: %s" % r)
    finally:
        fcntl.ioctl(fd, TIOCNXCL)
        os.chmod(DEV, mode)


@check("py-two-ports-share")
def c_two():
    a = S["s"]
    b = port(timeout=0.5)
    try:
        n0 = len(blog_lines())
        b.baudrate = 57600      # one termios for both
        wait_uart(n0, "57600 8N1")
        t = struct.unpack("<IIIIB19s", fcntl.ioctl(a.fileno(), 0x5401, b"\0" * 36))
        need(t[2] & 0o10017 == 0o10001, "port a sees cflag speed 0%o after b set 57600"
             % (t[2] & 0o10017))
        n0 = len(blog_lines())
        a.baudrate = 115200
        wait_uart(n0, "115200 8N1")
        a.reset_input_buffer()
        a.write(b"shared")
        time.sleep(0.5)
        x = a.read(3)           # each read consumes: a takes 3, b the rest
        y = b.read(10)
        need(x + y == b"shared" and len(x) == 3, "a read %r, b read %r (want 'sha'+'red')"
             % (x, y))
        need(a.in_waiting == 0 and b.in_waiting == 0, "in_waiting a=%d b=%d after both read"
             % (a.in_waiting, b.in_waiting))
    finally:
        b.close()
    echo_ok(a, b"still")   # closing b left a working


@check("py-nonblocking-select")
def c_nonblock():
    S["s"].close()
    s = port(timeout=0)
    S["s"] = s
    try:
        s.reset_input_buffer()
        t0 = time.monotonic()
        d = s.read(100)
        el = time.monotonic() - t0
        need(d == b"" and el < 0.3, "timeout=0 read on an idle port: %r after %.2f s" % (d, el))
        r, _, _ = select.select([s], [], [], 0.3)
        need(not r, "select: readable on an idle port (in_waiting %d)" % s.in_waiting)
        _, w, _ = select.select([], [s], [], 1.0)
        need(w, "select: not writable on an idle port")
        s.write(b"select-me")
        got = b""
        end = time.monotonic() + 4
        while len(got) < 9 and time.monotonic() < end:
            r, _, _ = select.select([s], [], [], end - time.monotonic())
            if r:
                chunk = s.read(100)
                need(chunk, "select said readable, read(100) returned nothing")
                got += chunk
        need(got == b"select-me", "select/read collected %r" % got)
        s.nonblocking()   # pyserial's own O_NONBLOCK helper: reads still do not block
        t0 = time.monotonic()
        d = s.read(10)
        need(d == b"" and time.monotonic() - t0 < 0.3, "read after nonblocking(): %r" % d)
    finally:
        s.close()
        S["s"] = port()


@check("py-read-timeouts")
def c_timeouts():
    s = S["s"]
    s.timeout = 1.0
    s.reset_input_buffer()
    s.write(b"abc")
    t0 = time.monotonic()
    d = s.read(10)            # 3 bytes come, then the timeout ends the read
    el = time.monotonic() - t0
    need(d == b"abc", "read(10) with 3 echoed bytes: %r" % d)
    need(0.8 <= el <= 3.0, "read(10) returned after %.2f s, want ~1.0 (timeout)" % el)
    # read_until returns at the terminator without waiting for the timeout
    s.timeout = 3.0
    s.write(b"line\n")
    t0 = time.monotonic()
    d = s.read_until(b"\n")
    el = time.monotonic() - t0
    need(d == b"line\n" and el < 2.5, "read_until: %r after %.2f s" % (d, el))
    # inter_byte_timeout: pyserial puts VMIN=1 VTIME=2 into the termios when it opens
    # (changing it on an open port does not reach tcsetattr in pyserial 3.5: only c_cc
    # changes and its comparison sees the same list), reads stay select-driven
    b = port(timeout=1.0, inter_byte_timeout=0.2)
    try:
        t = struct.unpack("<IIIIB19s", fcntl.ioctl(b.fileno(), 0x5401, b"\0" * 36))
        need(t[5][6] == 1 and t[5][5] == 2, "VMIN/VTIME %d/%d, pyserial set 1/2"
             % (t[5][6], t[5][5]))
        b.reset_input_buffer()
        b.write(b"burst")
        d = b.read(100)
        need(d == b"burst", "read with inter_byte_timeout 0.2: %r" % d)
    finally:
        b.close()
    s.close()
    s = S["s"] = port()   # a fresh open puts VMIN/VTIME back to 0/0
    s.timeout = 1.0


@check("py-line-settings")
def c_settings():
    s = S["s"]
    steps = [
        (dict(baudrate=9600), "9600 8N1"),
        (dict(parity=serial.PARITY_EVEN), "9600 8E1"),
        (dict(parity=serial.PARITY_ODD, stopbits=serial.STOPBITS_TWO), "9600 8O2"),
        (dict(bytesize=serial.SEVENBITS, parity=serial.PARITY_EVEN,
              stopbits=serial.STOPBITS_ONE), "9600 7E1"),
        (dict(bytesize=serial.EIGHTBITS, parity=serial.PARITY_MARK), "9600 8M1"),
        (dict(parity=serial.PARITY_SPACE), "9600 8S1"),
        (dict(baudrate=230400, parity=serial.PARITY_NONE), "230400 8N1"),
        (dict(baudrate=250000), "250000 8N1"),    # non-standard: pyserial uses BOTHER
        (dict(baudrate=115200), "115200 8N1"),
    ]
    for attrs, want in steps:
        n0 = len(blog_lines())
        for k, v in attrs.items():
            setattr(s, k, v)
        wait_uart(n0, want)
        print("  ok: %s -> bridge uart: %s" % (attrs, want), flush=True)
    echo_ok(s, b"8N1 again")


@check("py-dtr-rts-reset")
def c_lines():
    s = S["s"]
    n0 = len(blog_lines())
    s.rts = True
    need(wait_blog(n0, lambda x: x.rstrip().endswith(tc.pin_line(False, True))),
         "rts=True: bridge log lacks '%s'" % tc.pin_line(False, True))
    m = struct.unpack("i", fcntl.ioctl(s.fileno(), 0x5415, b"\0" * 4))[0]   # TIOCMGET
    need(m & 0x004 and not m & 0x002, "TIOCMGET 0x%x after rts=True (want RTS, not DTR)" % m)
    n0 = len(blog_lines())
    s.rts = False
    need(wait_blog(n0, lambda x: x.rstrip().endswith(tc.pin_line(False, False))),
         "rts=False: bridge log lacks '%s'" % tc.pin_line(False, False))
    line = banner_after_dtr_pulse(s)
    print("  banner again: %r" % line.strip(), flush=True)
    echo_ok(s)


@check("py-modem-getters")
def c_getters():
    s = S["s"]
    # espstm-bridge reports CD|DSR|CTS in its NOTIFY-MODEMSTATE (bridge log: 0xb0)
    need(wait_blog(0, lambda x: "NOTIFY-MODEMSTATE 0xb0" in x, 1.0),
         "bridge log has no 'NOTIFY-MODEMSTATE 0xb0'")
    got = (s.cts, s.dsr, s.cd, s.ri)
    need(got == (True, True, True, False), "cts/dsr/cd/ri = %r, want (True, True, True, False)"
         % (got,))
    ic = struct.unpack(ICOUNT, fcntl.ioctl(s.fileno(), TIOCGICOUNT, b"\0" * 80)[:44])
    print("  TIOCGICOUNT cts dsr rng dcd rx tx frame overrun parity brk buf_overrun: %r"
          % (ic,), flush=True)
    need(ic[0] >= 1 and ic[1] >= 1 and ic[3] >= 1 and ic[2] == 0,
         "TIOCGICOUNT cts/dsr/rng/dcd %r: the bridge's CTS/DSR/CD rise is not counted"
         % (ic[:4],))
    need(ic[4] > 0 and ic[5] > 0, "TIOCGICOUNT rx %d tx %d after echo traffic" % (ic[4], ic[5]))


@check("py-send-break")
def c_break():
    s = S["s"]

    def brk(start):
        on = wait_blog(start, lambda x: "uart: break on" in x)
        need(on, "bridge log has no 'uart: break on'")
        lines = blog_lines()
        i = lines.index(on, start)
        off = wait_blog(i + 1, lambda x: "uart: break off" in x)
        need(off, "bridge log has 'break on' but no 'uart: break off' after it")
        return blog_lines().index(off, i + 1) + 1
    n0 = len(blog_lines())
    t0 = time.monotonic()
    s.send_break(0.25)          # tcsendbreak(fd, 1): TCSBRKP 1 = 100 ms
    el = time.monotonic() - t0
    need(0.09 <= el <= 2.0, "send_break(0.25) returned after %.2f s (want >= 0.1)" % el)
    n1 = brk(n0)
    t0 = time.monotonic()
    s.send_break(0)             # tcsendbreak(fd, 0): TCSBRK 0 = 250 ms
    el = time.monotonic() - t0
    need(0.24 <= el <= 2.0, "send_break(0) returned after %.2f s (want >= 0.25)" % el)
    n2 = brk(n1)
    s.break_condition = True    # TIOCSBRK
    on = wait_blog(n2, lambda x: "uart: break on" in x)
    need(on, "break_condition=True: no 'uart: break on'")
    time.sleep(0.3)
    need(not wait_blog(n2, lambda x: "uart: break off" in x, 0.1),
         "break_condition=True: break went off by itself")
    s.break_condition = False   # TIOCCBRK
    brk(n2)
    echo_ok(s, b"after break")


@check("py-flush-out-waiting")
def c_flush():
    s = S["s"]
    s.timeout = 10
    s.reset_input_buffer()
    data = bytes((i * 7 + (i >> 8)) & 0xff for i in range(20000)).replace(b"\x7f", b"\x7e")
    s.write(data)               # pyserial waits with select for POLLOUT on EAGAIN
    q0 = s.out_waiting
    t0 = time.monotonic()
    s.flush()                   # tcdrain: TCSBRK 1
    el = time.monotonic() - t0
    q = s.out_waiting
    print("  out_waiting %d after write, %d after flush (%.2f s)" % (q0, q, el), flush=True)
    need(q == 0, "out_waiting %d after flush()" % q)
    got = s.read(len(data))
    need(len(got) == len(data), "echo: %d of %d bytes back" % (len(got), len(data)))
    if got != data:
        raise tc.CheckFail("echo differs from the 20000 bytes sent (first at byte %d)"
                           % next(i for i in range(len(data)) if got[i] != data[i]))
    s.timeout = 1.0


@check("py-close")
def c_close():
    S["s"].close()
    # a fresh open sees the port idle and working
    s = port()
    try:
        echo_ok(s, b"bye")
    finally:
        s.close()


def main():
    checks = (c_open, c_exclusive, c_tiocexcl, c_two, c_nonblock, c_timeouts, c_settings,
              c_lines, c_getters, c_break, c_flush, c_close)
    for c in checks:
        if c is not c_open and "s" not in S:
            tc.results.append((c.__name__, False, "skipped: the port did not open"))
            print("FAIL %s: skipped: the port did not open" % c.__name__, flush=True)
            continue
        c()
    bad = [n for n, ok, _ in tc.results if not ok]
    print("pyserial_checks: %d ok, %d failed%s" % (len(tc.results) - len(bad), len(bad),
                                                  (": " + " ".join(bad)) if bad else ""),
          flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
