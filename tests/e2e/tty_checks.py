#!/usr/bin/python3
"""tty ioctl/read/poll/signal checks on an espstmd device (tests/e2e scenario tty-ioctls).

usage: tty_checks.py DEVICE BRIDGE_LOG

DEVICE is served by espstmd through an espstm-bridge (-v, line map direct: DTR asserted =
NRST low, RTS asserted = BOOT0 high) whose simulated chip holds a plausible application
(it prints "stm32sim app crc32=... len=N" on reset, at 115200 8N1, and echoes every byte).
Prints one "ok NAME" or "FAIL NAME: why" line per sub-check; exit 1 on any failure.
Uses only Debian's /usr/bin/python3 stdlib + python3-serial.
"""
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time
import traceback

DEV = sys.argv[1]
BLOG = sys.argv[2]

# kernel ABI (asm-generic/ioctls.h, asm-generic/termbits.h)
TCGETS = 0x5401
TCSETS = 0x5402
TCGETS2 = 0x802C542A
TCSETS2 = 0x402C542B
TCSBRKP = 0x5425
TIOCOUTQ = 0x5411
TIOCGWINSZ = 0x5413
TIOCEXCL = 0x540C
TIOCNXCL = 0x540D
FIONREAD = 0x541B
CBAUD = 0o010017
BOTHER = 0o010000
TERMIOS = "<IIIIB19s"      # kernel struct termios: 36 bytes
TERMIOS2 = "<IIIIB19sII"   # struct termios2: 44 bytes
assert struct.calcsize(TERMIOS) == 36 and struct.calcsize(TERMIOS2) == 44
DTR, RTS = termios.TIOCM_DTR, termios.TIOCM_RTS

results = []   # (name, ok, msg)


class CheckFail(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckFail(msg)


def check(name):
    def deco(fn):
        def run():
            t0 = time.monotonic()
            try:
                fn()
            except CheckFail as e:
                results.append((name, False, str(e)))
            except Exception as e:   # noqa: BLE001 - any error fails the sub-check
                results.append((name, False, "%s: %s" % (type(e).__name__, e)))
                traceback.print_exc(file=sys.stderr)
            else:
                results.append((name, True, ""))
            n, ok, msg = results[-1]
            print("%s %s (%.2f s)%s" % ("ok  " if ok else "FAIL", n, time.monotonic() - t0,
                                        (": " + msg) if msg else ""), flush=True)
        run.__name__ = name
        return run
    return deco


# ---------------------------------------------------------------- helpers
def blog_lines():
    try:
        with open(BLOG, "r", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def wait_blog(start, pred, timeout=4.0):
    """Wait for a bridge log line (index >= start) with pred(line); return it or None."""
    end = time.monotonic() + timeout
    while True:
        lines = blog_lines()[start:]
        for ln in lines:
            if pred(ln):
                return ln
        if time.monotonic() > end:
            return None
        time.sleep(0.05)


def mget(fd):
    return struct.unpack("i", fcntl.ioctl(fd, termios.TIOCMGET, struct.pack("i", 0)))[0]


def mop(fd, req, bits):
    fcntl.ioctl(fd, req, struct.pack("i", bits))


def inq(fd):
    return struct.unpack("i", fcntl.ioctl(fd, FIONREAD, struct.pack("i", 0)))[0]


def tcgets(fd):
    return fcntl.ioctl(fd, TCGETS, b"\0" * 36)


def tcgets2(fd):
    return fcntl.ioctl(fd, TCGETS2, b"\0" * 44)


def set_blocking(fd, blocking):
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, (fl & ~os.O_NONBLOCK) if blocking else (fl | os.O_NONBLOCK))


def raw(fd, vmin=1, vtime=0, speed=termios.B115200):
    a = termios.tcgetattr(fd)
    a[0] = 0
    a[1] = 0
    a[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
    a[3] = 0
    a[4] = a[5] = speed
    a[6][termios.VMIN] = vmin
    a[6][termios.VTIME] = vtime
    termios.tcsetattr(fd, termios.TCSANOW, a)


def drain(fd, quiet=0.3, limit=3.0):
    """Read (non-blocking) until nothing arrives for `quiet` s; return the bytes."""
    fl = fcntl.fcntl(fd, fcntl.F_GETFL)
    set_blocking(fd, False)
    got = b""
    end = time.monotonic() + limit
    try:
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], quiet)
            if not r:
                break
            try:
                d = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not d:
                break
            got += d
    finally:
        fcntl.fcntl(fd, fcntl.F_SETFL, fl)
    return got


def read_until(fd, needle, timeout):
    """select+read (fd non-blocking) until needle is in the data or timeout."""
    got = b""
    end = time.monotonic() + timeout
    while needle not in got:
        left = end - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        try:
            got += os.read(fd, 4096)
        except BlockingIOError:
            pass
    return got


def in_child(fn, timeout):
    """Run fn() in a forked child (it may block in the device); return its message
    ('' = ok) or a failure text. A child still running after timeout is SIGKILLed."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            msg = fn() or ""
        except CheckFail as e:
            msg = str(e) or "failed"
        except BaseException as e:   # noqa: BLE001
            msg = "%s: %s" % (type(e).__name__, e)
        os.write(w, msg.encode()[:4000] or b"\0")
        os._exit(0)
    os.close(w)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return "still blocked in the device after %.1f s (child killed)" % timeout
    out = os.read(r, 4096)
    os.close(r)
    return "" if out == b"\0" else out.decode(errors="replace")


def pin_line(nrst_low, boot0_high):
    return "pins: NRST=%s BOOT0=%s" % ("low" if nrst_low else "high", "high" if boot0_high else "low")


# ---------------------------------------------------------------- the checks
S = {"fd": None}


@check("open-lines-deasserted")
def c_open():
    n0 = len(blog_lines())
    fd = os.open(DEV, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    S["fd"] = fd
    m = mget(fd)
    need(m & (DTR | RTS) == 0, "TIOCMGET after a fresh open = 0x%x: DTR/RTS asserted" % m)
    time.sleep(0.5)
    low = [ln for ln in blog_lines()[n0:] if "pins: NRST=low" in ln]
    need(not low, "the open drove NRST low: bridge log %r" % low)


@check("termios-readback")
def c_termios():
    fd = S["fd"]
    cc = bytearray(19)
    for i, v in enumerate(b"\x03\x1c\x7f\x15\x04"):
        cc[i] = v
    cc[termios.VMIN] = 7
    cc[termios.VTIME] = 3
    cc[termios.VSTART] = 0x11
    cc[termios.VSTOP] = 0x13
    cc[termios.VEOL] = 0x0b       # odd
    cc[16] = 0xa5                 # VEOL2 odd
    iflag = termios.IGNBRK | termios.IGNPAR | termios.IXOFF | termios.INPCK
    oflag = termios.OPOST | termios.ONLCR
    cflag = termios.B38400 | termios.CS7 | termios.PARENB | termios.PARODD | \
        termios.CSTOPB | termios.CREAD | termios.CLOCAL
    lflag = termios.IEXTEN | termios.ECHOKE
    want = struct.pack(TERMIOS, iflag, oflag, cflag, lflag, 0, bytes(cc))
    fcntl.ioctl(fd, TCSETS, want)
    got = tcgets(fd)
    need(got == want, "TCGETS %s != TCSETS %s" % (got.hex(), want.hex()))


@check("tcgets2-agrees")
def c_tcgets2():
    fd = S["fd"]
    t1 = struct.unpack(TERMIOS, tcgets(fd))
    t2 = struct.unpack(TERMIOS2, tcgets2(fd))
    need(t2[:6] == t1, "TCGETS2 flags/cc %r != TCGETS %r" % (t2[:6], t1))
    need(t2[7] == 38400, "TCGETS2 c_ospeed %d, expected 38400 (B38400 set with TCSETS)" % t2[7])


@check("tcsets2-bother-250000")
def c_bother():
    fd = S["fd"]
    n0 = len(blog_lines())
    t = list(struct.unpack(TERMIOS2, tcgets2(fd)))
    t[2] = (t[2] & ~CBAUD) | BOTHER
    t[6] = t[7] = 250000
    fcntl.ioctl(fd, TCSETS2, struct.pack(TERMIOS2, *t))
    g = struct.unpack(TERMIOS2, tcgets2(fd))
    need(g[7] == 250000, "TCGETS2 c_ospeed %d after TCSETS2 BOTHER 250000" % g[7])
    need(g[2] & CBAUD == BOTHER, "c_cflag & CBAUD = 0%o, expected BOTHER" % (g[2] & CBAUD))
    ln = wait_blog(n0, lambda s: "uart: 250000 " in s)
    need(ln, "the bridge did not apply 250000 (last uart line: %s)" %
         ([s for s in blog_lines() if "uart: " in s][-1:] or "none"))


@check("raw-115200-8N1")
def c_raw():
    fd = S["fd"]
    n0 = len(blog_lines())
    raw(fd)
    a = termios.tcgetattr(fd)
    need(a[4] == termios.B115200 and a[5] == termios.B115200, "speed %r/%r" % (a[4], a[5]))
    need(a[2] & termios.CSIZE == termios.CS8 and not a[2] & (termios.PARENB | termios.CSTOPB),
         "cflag 0%o" % a[2])
    t2 = struct.unpack(TERMIOS2, tcgets2(fd))
    need(t2[7] == 115200, "TCGETS2 c_ospeed %d" % t2[7])
    ln = wait_blog(n0, lambda s: s.rstrip().endswith("uart: 115200 8N1"))
    need(ln, "bridge did not log 'uart: 115200 8N1'")
    drain(fd)   # e.g. the power-on banner of the app, forwarded before we connected
    termios.tcflush(fd, termios.TCIFLUSH)


@check("nonblock-read-eagain")
def c_eagain():
    fd = S["fd"]
    set_blocking(fd, False)
    try:
        d = os.read(fd, 64)
    except BlockingIOError:
        return
    raise CheckFail("O_NONBLOCK read with no data returned %r instead of EAGAIN" % d)


@check("vtime-read-timeout")
def c_vtime():
    fd = S["fd"]
    raw(fd, vmin=0, vtime=5)

    def body():
        set_blocking(fd, True)
        t0 = time.monotonic()
        d = os.read(fd, 64)
        el = time.monotonic() - t0
        need(d == b"", "read returned %r" % d)
        need(0.3 <= el <= 2.0, "VMIN=0 VTIME=5 read returned after %.2f s (want 0.3..2.0)" % el)
        return ""
    msg = in_child(body, 6)
    set_blocking(fd, False)
    need(not msg, msg)


@check("modem-lines-set-bis-bic")
def c_modem():
    fd = S["fd"]
    steps = [
        ("TIOCMSET DTR|RTS", termios.TIOCMSET, DTR | RTS, DTR | RTS),
        ("TIOCMBIC RTS", termios.TIOCMBIC, RTS, DTR),
        ("TIOCMBIC DTR", termios.TIOCMBIC, DTR, 0),
        ("TIOCMBIS RTS", termios.TIOCMBIS, RTS, RTS),
        ("TIOCMSET 0", termios.TIOCMSET, 0, 0),
        ("TIOCMBIS DTR", termios.TIOCMBIS, DTR, DTR),
        ("TIOCMBIC DTR", termios.TIOCMBIC, DTR, 0),
    ]
    for what, req, arg, want in steps:
        n0 = len(blog_lines())
        mop(fd, req, arg)
        m = mget(fd)
        need(m & (DTR | RTS) == want, "%s: TIOCMGET 0x%x, expected DTR/RTS 0x%x" % (what, m, want))
        pl = pin_line(want & DTR, want & RTS)
        ln = wait_blog(n0, lambda s: s.rstrip().endswith(pl))
        need(ln, "%s: bridge log lacks '%s' (new lines: %r)" % (what, pl, blog_lines()[n0:][-4:]))
    time.sleep(0.3)
    drain(fd)


@check("select-poll-banner-echo")
def c_select():
    fd = S["fd"]
    raw(fd)
    set_blocking(fd, False)
    drain(fd)
    termios.tcflush(fd, termios.TCIFLUSH)
    r, _, _ = select.select([fd], [], [], 0.3)
    need(not r, "select says readable on an idle port (FIONREAD %d)" % inq(fd))
    p = select.poll()
    p.register(fd, select.POLLIN)
    ev = p.poll(300)
    need(not ev, "poll says %r on an idle port" % ev)
    mop(fd, termios.TIOCMBIS, DTR)
    time.sleep(0.05)
    mop(fd, termios.TIOCMBIC, DTR)
    r, _, _ = select.select([fd], [], [], 4.0)
    need(r, "select: not readable within 4 s of a DTR pulse (no banner)")
    time.sleep(0.2)
    n = inq(fd)
    need(n > 0, "select said readable but FIONREAD is %d" % n)
    got = read_until(fd, b"\n", 3.0)
    need(b"stm32sim app crc32=" in got, "no banner after DTR pulse, got %r" % got)
    print("  banner: %r" % got.strip(), flush=True)
    drain(fd)
    os.write(fd, b"hello")
    ev = p.poll(3000)
    need(ev and ev[0][1] & select.POLLIN, "poll: no POLLIN within 3 s of writing b'hello' (%r)" % ev)
    got = read_until(fd, b"hello", 3.0)
    need(got == b"hello", "echo of b'hello' is %r" % got)


@check("tcflush-input")
def c_flush():
    fd = S["fd"]
    os.write(fd, b"flush-me")
    end = time.monotonic() + 3
    while inq(fd) < 8 and time.monotonic() < end:
        time.sleep(0.05)
    n = inq(fd)
    need(n >= 8, "echo of 8 bytes not queued (FIONREAD %d) before the flush" % n)
    termios.tcflush(fd, termios.TCIFLUSH)
    n = inq(fd)
    need(n == 0, "FIONREAD %d after TCIFLUSH" % n)
    try:
        d = os.read(fd, 64)
        raise CheckFail("read after TCIFLUSH returned %r" % d)
    except BlockingIOError:
        pass


@check("tcdrain-tcsendbreak")
def c_break():
    fd = S["fd"]
    os.write(fd, b"x")
    t0 = time.monotonic()
    termios.tcdrain(fd)     # TCSBRK 1
    el = time.monotonic() - t0
    need(el < 2.0, "tcdrain took %.2f s" % el)
    # durations as Linux serial: TCSBRK 0 (glibc tcsendbreak(fd, 0)) 250 ms, TCSBRKP n
    # n x 100 ms (0: 250 ms); each a BREAK on, then off, on the bridge
    for what, call, ms in (("tcsendbreak(fd, 0)", lambda: termios.tcsendbreak(fd, 0), 250),
                           ("TCSBRKP 0", lambda: fcntl.ioctl(fd, TCSBRKP, 0), 250),
                           ("TCSBRKP 3", lambda: fcntl.ioctl(fd, TCSBRKP, 3), 300)):
        n0 = len(blog_lines())
        t0 = time.monotonic()
        call()
        el = time.monotonic() - t0
        need(ms / 1000.0 - 0.01 <= el < ms / 1000.0 + 1.5,
             "%s took %.2f s, want %d ms" % (what, el, ms))
        on = wait_blog(n0, lambda x: "uart: break on" in x)
        need(on, "%s: bridge log has no 'uart: break on'" % what)
        i = blog_lines().index(on, n0)
        need(wait_blog(i + 1, lambda x: "uart: break off" in x),
             "%s: bridge log has no 'uart: break off' after 'break on'" % what)
    tcgets(fd)
    drain(fd)


TCXONC = 0x540A
TIOCMIWAIT = 0x545C
TIOCGICOUNT = 0x545D


@check("tcflow-tcooff-tcoon")
def c_tcflow():
    fd = S["fd"]
    set_blocking(fd, False)
    drain(fd)
    termios.tcflow(fd, termios.TCOOFF)     # our output suspended: writers wait
    try:
        try:
            n = os.write(fd, b"held")
            raise CheckFail("O_NONBLOCK write after TCOOFF returned %r, want EAGAIN" % n)
        except BlockingIOError:
            pass
        _, w, _ = select.select([], [fd], [], 0.3)
        need(not w, "select: writable while output is suspended (TCOOFF)")
    finally:
        termios.tcflow(fd, termios.TCOON)
    _, w, _ = select.select([], [fd], [], 2.0)
    need(w, "select: not writable after TCOON")
    os.write(fd, b"resumed")
    got = read_until(fd, b"resumed", 3.0)
    need(got.endswith(b"resumed"), "echo after TCOON: %r" % got)


@check("tiocmiwait-eintr-icount")
def c_miwait():
    fd = S["fd"]
    ic = struct.unpack("<11i", fcntl.ioctl(fd, TIOCGICOUNT, b"\0" * 80)[:44])
    # the bridge's NOTIFY-MODEMSTATE raised CTS, DSR and CD once: counted; rx/tx traffic
    need(ic[0] >= 1 and ic[1] >= 1 and ic[3] >= 1 and ic[4] > 0 and ic[5] > 0,
         "TIOCGICOUNT cts dsr rng dcd rx tx = %r" % (ic[:6],))

    def body():
        def h(sig, frm):
            raise Alarm()
        signal.signal(signal.SIGALRM, h)
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            fcntl.ioctl(fd, TIOCMIWAIT, termios.TIOCM_CTS | termios.TIOCM_CD)
            return "TIOCMIWAIT returned with no modem change"
        except Alarm:
            return ""
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    msg = in_child(body, 5)
    need(not msg, "SIGALRM during TIOCMIWAIT: " + msg)
    tcgets(fd)


@check("outq-winsz-excl")
def c_misc():
    fd = S["fd"]
    q = struct.unpack("i", fcntl.ioctl(fd, TIOCOUTQ, struct.pack("i", -1)))[0]
    need(q >= 0, "TIOCOUTQ %d" % q)
    ws = struct.unpack("HHHH", fcntl.ioctl(fd, TIOCGWINSZ, b"\xff" * 8))
    need(ws == (0, 0, 0, 0), "TIOCGWINSZ %r, expected zeros" % (ws,))
    fcntl.ioctl(fd, TIOCEXCL)
    fcntl.ioctl(fd, TIOCNXCL)


@check("unknown-ioctl-enotty")
def c_unknown():
    fd = S["fd"]
    ior = (2 << 30) | (8 << 16) | (ord("x") << 8) | 0x42   # _IOR('x', 0x42, 8 bytes)
    for req, arg in ((0x5499, b"\0" * 4), (ior, b"\0" * 8)):
        try:
            fcntl.ioctl(fd, req, arg)
        except OSError as e:
            need(e.errno == errno.ENOTTY, "ioctl 0x%x: errno %d (%s), expected ENOTTY" %
                 (req, e.errno, os.strerror(e.errno)))
        else:
            raise CheckFail("ioctl 0x%x succeeded" % req)
    tcgets(fd)   # the daemon still answers


class Alarm(Exception):
    pass


@check("read-interrupted-eintr")
def c_eintr():
    fd = S["fd"]
    raw(fd, vmin=1, vtime=0)
    drain(fd)
    termios.tcflush(fd, termios.TCIFLUSH)

    def body():
        def h(sig, frm):
            raise Alarm()
        signal.signal(signal.SIGALRM, h)
        set_blocking(fd, True)
        t0 = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        try:
            d = os.read(fd, 64)
            return "blocking read returned %r with no data" % d
        except Alarm:
            el = time.monotonic() - t0
            need(el <= 2.0, "read interrupted only after %.2f s" % el)
            return ""
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    msg = in_child(body, 5)
    need(not msg, "SIGALRM during a blocking read: " + msg)
    # the device still works: echo round trip
    set_blocking(fd, False)
    tcgets(fd)
    os.write(fd, b"after")
    got = read_until(fd, b"after", 3.0)
    need(got.endswith(b"after"), "after the interrupted read the echo is %r" % got)


@check("pyserial")
def c_pyserial():
    import serial
    if S["fd"] is not None:
        os.close(S["fd"])
        S["fd"] = None
    n0 = len(blog_lines())
    s = serial.Serial()
    s.port = DEV
    s.baudrate = 115200
    s.timeout = 0.5
    s.dtr = False
    s.rts = False
    s.open()
    try:
        time.sleep(0.3)
        low = [ln for ln in blog_lines()[n0:] if "pins: NRST=low" in ln]
        need(not low, "pyserial open (dtr/rts False) drove NRST low: %r" % low)
        s.reset_input_buffer()
        t0 = time.monotonic()
        d = s.read(10)
        el = time.monotonic() - t0
        need(d == b"" and 0.3 <= el <= 2.0, "read(10) -> %r after %.2f s (want b'' in ~0.5 s)" % (d, el))
        s.write(b"abcd")
        end = time.monotonic() + 3
        while s.in_waiting < 4 and time.monotonic() < end:
            time.sleep(0.05)
        need(s.in_waiting >= 4, "in_waiting %d after an echoed write of 4 bytes" % s.in_waiting)
        s.reset_input_buffer()
        need(s.in_waiting == 0, "in_waiting %d after reset_input_buffer" % s.in_waiting)
        for b in (57600, 115200):
            n1 = len(blog_lines())
            s.baudrate = b
            ln = wait_blog(n1, lambda x, b=b: x.rstrip().endswith("uart: %d 8N1" % b))
            need(ln, "baudrate=%d: bridge log has no 'uart: %d 8N1'" % (b, b))
        s.write(b"py")
        d = s.read(2)
        need(d == b"py", "echo at 115200 after the baud round trip: %r" % d)
    finally:
        s.close()


def main():
    for c in (c_open, c_termios, c_tcgets2, c_bother, c_raw, c_eagain, c_vtime, c_modem,
              c_select, c_flush, c_break, c_tcflow, c_misc, c_unknown, c_eintr, c_miwait,
              c_pyserial):
        if c.__name__ != "open-lines-deasserted" and S["fd"] is None and c.__name__ != "pyserial":
            results.append((c.__name__, False, "skipped: the device did not open"))
            print("FAIL %s: skipped: the device did not open" % c.__name__, flush=True)
            continue
        c()
    bad = [n for n, ok, _ in results if not ok]
    print("tty_checks: %d ok, %d failed%s" % (len(results) - len(bad), len(bad),
                                             (": " + " ".join(bad)) if bad else ""), flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
