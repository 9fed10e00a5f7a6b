#!/usr/bin/python3
"""e2e scenario "gpio": espstm-bridge --target tty:/dev/pts/N driving NRST and BOOT0 through
libgpiod on a real kernel's GPIO character device. The chip is espstm_gpiosim.ko
(tests/e2e/gpiosim: label "espstm-sim", 32 lines, 17 = STM_NRST, 27 = STM_BOOT0, pull-ups);
its /sys/kernel/espstm_gpiosim/levels shows each pin's electrical level and .../log every
level change with a CLOCK_MONOTONIC timestamp, so a 10 ms reset pulse is seen exactly, not
sampled. The target tty is a pty whose master runs a fake AN3155 bootloader (0x7F -> 0x79)
that stamps each 0x7F it receives with the same clock.

Usage: gpio_checks.py BRIDGE CHIP ARTDIR   (CHIP: gpiochipN of espstm-sim)
Prints "ok NAME" / "FAIL NAME: detail" per check and "N checks, N failures"; exit 1 on any
failure.
"""
import base64
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import serial

SYS = "/sys/kernel/espstm_gpiosim"
NRST, BOOT0 = 17, 27
FAILS = []
COUNT = [0]


def check(name, cond, detail=""):
    COUNT[0] += 1
    if cond:
        print("ok " + name, flush=True)
    else:
        FAILS.append(name)
        print("FAIL %s: %s" % (name, str(detail)[:600]), flush=True)
    return cond


def levels():
    with open(SYS + "/levels") as f:
        s = f.read().strip()
    return int(s[NRST]), int(s[BOOT0])


def driven():
    """('o'|'i', 'o'|'i') for NRST, BOOT0: output (driven) or input (released)"""
    with open(SYS + "/driven") as f:
        s = f.read().strip()
    return s[NRST], s[BOOT0]


def events():
    """[(ns, line, level)] since the module was loaded"""
    with open(SYS + "/log") as f:
        return [tuple(int(x) for x in ln.split()) for ln in f if ln.strip()]


def pins_of(ev, line):
    return [v for _, ln, v in ev if ln == line]


def fmt(ev):
    name = {NRST: "NRST", BOOT0: "BOOT0"}
    t0 = ev[0][0] if ev else 0
    return " ".join("+%.1fms:%s=%d" % ((ns - t0) / 1e6, name.get(ln, ln), v) for ns, ln, v in ev)


class FakeBoot(threading.Thread):
    """pty master: answers 0x7F with 0x79 and stamps it (time.monotonic_ns)"""

    def __init__(self, m):
        super().__init__(daemon=True)
        self.m = m
        self.sync_ns = []
        self.stop = False

    def run(self):
        while not self.stop:
            r, _, _ = select.select([self.m], [], [], 0.05)
            if not r:
                continue
            try:
                b = os.read(self.m, 4096)
            except OSError:
                return
            t = time.monotonic_ns()
            for c in b:
                if c == 0x7F:
                    self.sync_ns.append(t)
                    os.write(self.m, b"\x79")


class Bridge:
    def __init__(self, binary, art, tag, args, http):
        self.http = http
        self.http_port = None
        self.log = []
        self.ready = threading.Event()
        self.logf = open(os.path.join(art, "bridge-%s.log" % tag), "w")
        self.p = subprocess.Popen([binary] + args, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.p.stderr:
            self.logf.write(line)
            self.logf.flush()
            self.log.append(line)
            if "listening on" in line and (not self.http or self.http_port):
                self.ready.set()
            m = re.search(r"http on [\d.]+:(\d+)", line)
            if m:
                self.http_port = int(m.group(1))
                if any("listening on" in x for x in self.log):
                    self.ready.set()
        self.ready.set()

    def port(self):
        m = re.search(r"listening on [0-9.]+:(\d+)", "".join(self.log))
        return int(m.group(1)) if m else None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        time.sleep(0.1)
        self.logf.close()
        return self.p.returncode


def start(binary, art, tag, args, http=False):
    b = Bridge(binary, art, tag, args, http)
    ok = b.ready.wait(20) and b.p.poll() is None
    return b, ok


def post(port, pw, action):
    rq = urllib.request.Request("http://127.0.0.1:%d/api/targets/0/%s" % (port, action),
                                method="POST", data=b"")
    rq.add_header("Authorization", "Basic " + base64.b64encode(("admin:" + pw).encode()).decode())
    rq.add_header("X-Espstm-Request", "1")
    try:
        with urllib.request.urlopen(rq, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def settle(n0, quiet=0.4, timeout=10.0):
    """wait until the event log has been quiet for `quiet` s; the events after index n0"""
    end = time.time() + timeout
    last, t = len(events()), time.time()
    while time.time() < end:
        time.sleep(0.05)
        n = len(events())
        if n != last:
            last, t = n, time.time()
        elif n > n0 and time.time() - t >= quiet:
            break
    time.sleep(0.1)
    return events()[n0:]


def pulse(ev, rest):
    """NRST went away from its rest level and back exactly once"""
    return pins_of(ev, NRST) == [1 - rest, rest]


def release_ns(ev, rest):
    """time of the last NRST return to `rest`"""
    t = [ns for ns, ln, v in ev if ln == NRST and v == rest]
    return t[-1] if t else None


def api_checks(binary, chip, art, pw, pwf, slave_path, fake):
    args = ["--no-key", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--password-file",
            pwf, "--target", "tty:" + slave_path, "--nrst", chip + ":17", "--boot0", "STM_BOOT0",
            "--settle-ms", "20", "-v"]
    b, ok = start(binary, art, "main", args, http=True)
    try:
        if not check("bridge with --nrst %s:17 --boot0 STM_BOOT0 started" % chip,
                     ok and b.http_port, "".join(b.log[-10:])):
            return
        check("log names both GPIO lines",
              "%s:17 open-drain" % chip in "".join(b.log) and "STM_BOOT0" in "".join(b.log),
              "".join(b.log[-10:]))
        # (a) at rest
        check("(a) at rest: NRST high (released, pull-up), BOOT0 low", levels() == (1, 0),
              "NRST=%d BOOT0=%d" % levels())
        check("(a) NRST open-drain: released = not driven (input), BOOT0 push-pull: driven",
              driven() == ("i", "o"), driven())
        # a line already taken, by offset (NRST) and by name (BOOT0); another pty, as the
        # first bridge holds its tty exclusively
        m2, s2 = os.openpty()
        for tag, extra, want in (("busy-nrst", ["--nrst", chip + ":17"], [chip, "17"]),
                                 ("busy-boot0", ["--boot0", chip + ":27"], [chip, "27"]),
                                 ("busy-name", ["--boot0", "STM_BOOT0"], ["STM_BOOT0"])):
            r = subprocess.run([binary, "--no-key", "--listen", "127.0.0.1:0", "--target",
                                "tty:" + os.ttyname(s2)] + extra,
                               stdin=subprocess.DEVNULL, capture_output=True, text=True,
                               timeout=20)
            with open(os.path.join(art, "bridge-%s.log" % tag), "w") as f:
                f.write(r.stderr)
            check("(f) %s already requested: exit 1 naming %s" % (" ".join(extra), ":".join(want)),
                  r.returncode == 1 and all(w in r.stderr for w in want),
                  "exit %d: %s" % (r.returncode, r.stderr.strip()))
        os.close(m2)
        os.close(s2)
        check("(f) the first bridge kept its lines", levels() == (1, 0) and b.p.poll() is None,
              "NRST=%d BOOT0=%d" % levels())
        # (b) reset
        n0 = len(events())
        st, j = post(b.http_port, pw, "reset")
        ev = settle(n0)
        check("(b) POST reset: 200", st == 200, (st, j))
        check("(b) reset: NRST low then high, BOOT0 untouched",
              pulse(ev, 1) and not pins_of(ev, BOOT0) and levels() == (1, 0), fmt(ev))
        # (c) bootloader
        n0 = len(events())
        st, j = post(b.http_port, pw, "bootloader")
        ev = settle(n0)
        check("(c) POST bootloader: 200", st == 200, (st, j))
        rb = [ns for ns, ln, v in ev if ln == BOOT0 and v == 1]
        rel = release_ns(ev, 1)
        check("(c) bootloader: NRST pulse, BOOT0 high before the NRST release and after",
              pulse(ev, 1) and rb and rel and rb[0] < rel and levels() == (1, 1), fmt(ev))
        # (d) run
        n0 = len(events())
        st, j = post(b.http_port, pw, "run")
        ev = settle(n0)
        check("(d) POST run: 200", st == 200, (st, j))
        fb = [ns for ns, ln, v in ev if ln == BOOT0 and v == 0]
        rel = release_ns(ev, 1)
        check("(d) run: BOOT0 low before the NRST release, NRST pulse",
              pulse(ev, 1) and fb and rel and fb[0] < rel and levels() == (1, 0), fmt(ev))
        # (e) auto-boot: RFC 2217 client, 8E1, 0x7F
        n0 = len(events())
        nsync = len(fake.sync_ns)
        s = serial.serial_for_url("rfc2217://127.0.0.1:%d" % b.port(), do_not_open=True,
                                  timeout=0.5, baudrate=115200, parity=serial.PARITY_EVEN)
        s.dtr = False
        s.rts = False
        s.open()
        time.sleep(0.3)
        s.reset_input_buffer()
        s.write(b"\x7f")
        a = b""
        end = time.time() + 5
        while not a and time.time() < end:
            a = s.read(1)
        check("(e) 8E1 + 0x7F through RFC 2217: 0x79 back", a == b"\x79", a.hex())
        ev = events()[n0:]
        sync = fake.sync_ns[nsync:]
        rb = [ns for ns, ln, v in ev if ln == BOOT0 and v == 1]
        rel = release_ns(ev, 1)
        check("(e) auto-boot: BOOT0 high, NRST pulse, both before the 0x7F reached the pty",
              pulse(ev, 1) and rb and rel and sync and rb[0] < rel < sync[0] and
              levels() == (1, 1),
              "%s; 0x7F at %s" % (fmt(ev), ["+%.1fms" % ((t - ev[0][0]) / 1e6) for t in sync]
                                  if ev else sync))
        if rel and sync:
            print("   (e) NRST release -> 0x7F at the pty: %.1f ms (--settle-ms 20)" %
                  ((sync[0] - rel) / 1e6), flush=True)
        n0 = len(events())
        s.close()
        ev = settle(n0)
        check("(e) client gone: BOOT0 low, NRST pulse (application runs)",
              pulse(ev, 1) and levels() == (1, 0), fmt(ev))
    finally:
        rc = b.stop()
    check("bridge SIGTERM: exit 0", rc == 0, rc)
    time.sleep(0.2)
    # a released line keeps its last state (gpiolib does not switch it to input): the
    # chip is left running; the next bridge requesting both lines shows they were freed
    check("after exit: NRST released (high), BOOT0 low", levels() == (1, 0),
          "NRST=%d BOOT0=%d" % levels())


def bad_offset_checks(binary, chip, art, slave_path):
    for tag, extra, want in (("nrst99", ["--nrst", chip + ":99"], [chip, "99"]),
                             ("boot0-99", ["--boot0", chip + ":99"], [chip, "99"]),
                             ("nochip", ["--nrst", "gpiochip77:1"], ["gpiochip77"]),
                             ("noname", ["--boot0", "NO_SUCH_LINE"], ["NO_SUCH_LINE"])):
        r = subprocess.run([binary, "--no-key", "--listen", "127.0.0.1:0", "--target",
                            "tty:" + slave_path] + extra, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=20)
        with open(os.path.join(art, "bridge-%s.log" % tag), "w") as f:
            f.write(r.stderr)
        check("(f) %s: exit 1 naming %s" % (" ".join(extra), ":".join(want)),
              r.returncode == 1 and all(w in r.stderr for w in want),
              "exit %d: %s" % (r.returncode, r.stderr.strip()))


def invert_checks(binary, chip, art, pw, pwf, slave_path):
    args = ["--no-key", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--password-file",
            pwf, "--target", "tty:" + slave_path, "--nrst", "STM_NRST", "--boot0",
            chip + ":27", "--invert-nrst", "--invert-boot0", "--settle-ms", "20", "-v"]
    b, ok = start(binary, art, "invert", args, http=True)
    try:
        if not check("bridge with --invert-nrst --invert-boot0 started", ok and b.http_port,
                     "".join(b.log[-10:])):
            return
        check("(g) inverted at rest: NRST line low, BOOT0 line high", levels() == (0, 1),
              "NRST=%d BOOT0=%d" % levels())
        check("(g) inverted at rest: NRST line driven low (open-drain, active-low)",
              driven() == ("o", "o"), driven())
        n0 = len(events())
        st, j = post(b.http_port, pw, "reset")
        ev = settle(n0)
        check("(g) inverted reset: 200, NRST line high then low, BOOT0 untouched",
              st == 200 and pulse(ev, 0) and not pins_of(ev, BOOT0) and levels() == (0, 1),
              "%s %s" % (st, fmt(ev)))
        n0 = len(events())
        st, j = post(b.http_port, pw, "bootloader")
        ev = settle(n0)
        fb = [ns for ns, ln, v in ev if ln == BOOT0 and v == 0]
        rel = release_ns(ev, 0)
        check("(g) inverted bootloader: BOOT0 line low before the NRST line returns low",
              st == 200 and pulse(ev, 0) and fb and rel and fb[0] < rel and
              levels() == (0, 0), "%s %s" % (st, fmt(ev)))
    finally:
        rc = b.stop()
    check("inverted bridge SIGTERM: exit 0", rc == 0, rc)


def main():
    binary, chip, art = sys.argv[1:4]
    os.makedirs(art, exist_ok=True)
    check("espstm-sim idle: all lines pulled up", levels() == (1, 1), "NRST=%d BOOT0=%d" % levels())
    pw = "pw-" + os.urandom(5).hex()
    pwf = os.path.join(art, "pw")
    with open(pwf, "w") as f:
        f.write(pw + "\n")
    os.chmod(pwf, 0o600)
    master, slave = os.openpty()
    path = os.ttyname(slave)
    fake = FakeBoot(master)
    fake.start()
    try:
        bad_offset_checks(binary, chip, art, path)
        api_checks(binary, chip, art, pw, pwf, path, fake)
        invert_checks(binary, chip, art, pw, pwf, path)
    finally:
        fake.stop = True
    with open(os.path.join(art, "gpiosim-events.log"), "w") as f:
        f.write(fmt(events()).replace(" ", "\n") + "\n")
    print("%d checks, %d failures" % (COUNT[0], len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
