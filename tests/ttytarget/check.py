#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""espstm-bridge --target tty:DEVICE on a real tty: a pseudo-terminal (os.openpty; no root,
no kernel module). The bridge opens the slave side /dev/pts/N as its target; this script
plays a tiny STM32 bootloader (AN3155: 0x7F -> ACK 0x79, GET, GET ID) on the master side.

Usage: check.py BRIDGE_BINARY ARTIFACT_DIR [PTYSIM_BINARY]

Checks:
  bad input   tty:/dev/nosuch-*, tty:/dev/null (not a tty), a directory: exit status 1 and
              one message naming the device; tty: without a device, --nrst/--boot0 on the
              same modem line, --nrst with a sim target, --nrst '': exit status 2. Never a
              crash (no signal exit status).
  pty target  --nrst dtr --boot0 rts on a pty: started, and the log says the pty has no
              modem lines (a pty ignores DTR/RTS: TIOCMGET fails with ENOTTY).
  exit        SIGTERM with a raw TCP client connected: exit status 0.
  data        pyserial rfc2217:// client -> bridge -> pty master, and back; 4 KiB of all
              byte values (0xFF doubled by Telnet) each way.
  termios     SET-BAUDRATE 57600 reaches the pty (termios.tcgetattr ospeed B57600), 250000
              (no Bnnn code: BOTHER, read back with TCGETS2 c_ospeed), 2 stop bits CSTOPB,
              RTS/CTS CRTSCTS; after the client leaves the default 115200 8N1 is back. A
              pty forces CS8 and no parity (the kernel's pty_set_termios), so even parity
              and 7 data bits are checked in the bridge's log (the tty took them) and their
              c_cflag bits in the unit test tty_termios2.
  bootloader  8E1 + 0x7F through RFC 2217: auto-boot (sync) logs its BOOT0/NRST sequence,
              the fake bootloader's ACK comes back; GET (0x00 0xFF) answered with its
              command list.
  unplugged   the pty's master closed under a running bridge (a USB adapter pulled out):
              the bridge logs the device and exits with status 1 within 5 s, no busy loop.
  HTTP flash  with PTYSIM_BINARY (ptysim.c: the simulated STM32F103 on a pty's master, held
              in its bootloader): --http, POST /api/targets/0/flash?verify=1 of 6 KiB: 200,
              state done, device pid 0x410 identified; the simulator's flash file holds the
              image afterwards (the bridge's AN3155 master over a real tty).

Prints PASS/FAIL per check and "N passed, N failed"; exit status 0 only if all passed.
"""
import base64
import fcntl
import json
import os
import re
import select
import socket
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
import urllib.error
import urllib.request

import serial

results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)),
          flush=True)
    return cond


def run_bad(binary, args, want_rc, want_text, name):
    p = subprocess.run([binary, "--no-key", "--listen", "127.0.0.1:0"] + args,
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    err = p.stderr.strip()
    check(name + ": exit status %d" % want_rc, p.returncode == want_rc,
          "status %d, stderr %r" % (p.returncode, err))
    check(name + ": message names it", want_text in err and "listening" not in err,
          repr(err))


def bad_input_checks(binary):
    gone = "/dev/nosuch-espstm-%d" % os.getpid()
    run_bad(binary, ["--target", "tty:" + gone], 1, "tty:%s: cannot open" % gone,
            "missing tty")
    run_bad(binary, ["--target", "tty:/dev/null"], 1, "tty:/dev/null: not a tty",
            "/dev/null")
    d = tempfile.mkdtemp()
    run_bad(binary, ["--target", "tty:" + d], 1, "tty:%s: cannot open" % d, "a directory")
    os.rmdir(d)
    run_bad(binary, ["--target", "tty:"], 2, "wants a device", "tty: without device")
    run_bad(binary, ["--target", "tty:/dev/null", "--nrst", "dtr", "--boot0", "dtr"], 2,
            "same modem line", "same modem line twice")
    run_bad(binary, ["--nrst", "dtr"], 2, "only with --target tty", "--nrst with sim")
    run_bad(binary, ["--target", "tty:/dev/null", "--nrst", ""], 2, "--nrst", "--nrst ''")
    run_bad(binary, ["--target", "tty:/dev/null", "--boot0", ":5"], 2, "--boot0",
            "--boot0 :5")


# ------------------------------------------------------------------ the fake STM32

class FakeStm32(threading.Thread):
    """The pty master: records what the bridge sent; in bootloader mode answers AN3155
    0x7F with ACK and GET with its list; else just collects."""
    GET_REPLY = bytes([0x79, 11, 0x31, 0x00, 0x01, 0x02, 0x11, 0x21, 0x31, 0x43, 0x63,
                       0x73, 0x82, 0x92, 0x79])

    def __init__(self, master):
        super().__init__(daemon=True)
        self.m = master
        self.got = bytearray()
        self.lock = threading.Lock()
        self.boot = False
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
            with self.lock:
                self.got += b
                if self.boot:
                    self._answer()

    def _answer(self):
        while self.got:
            if self.got[0] == 0x7F:
                del self.got[0]
                os.write(self.m, b"\x79")
            elif len(self.got) >= 2 and self.got[0] == 0x00 and self.got[1] == 0xFF:
                del self.got[:2]
                os.write(self.m, self.GET_REPLY)
            elif len(self.got) >= 2:
                del self.got[:2]
                os.write(self.m, b"\x1f")  # NACK
            else:
                return

    def take(self, n, timeout=5.0):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                if len(self.got) >= n:
                    b = bytes(self.got[:n])
                    del self.got[:n]
                    return b
            time.sleep(0.01)
        with self.lock:
            b = bytes(self.got)
            self.got.clear()
        return b


def read_n(s, n, timeout=5.0):
    out = bytearray()
    end = time.time() + timeout
    while len(out) < n and time.time() < end:
        out += s.read(n - len(out))
    return bytes(out)


TCGETS2 = 0x802C542A  # _IOR('T', 0x2A, struct termios2), 44 bytes on Linux


def termios2(fd):
    """(c_cflag, c_ispeed, c_ospeed) through TCGETS2 (asm-generic struct termios2)."""
    b = fcntl.ioctl(fd, TCGETS2, bytes(44))
    iflag, oflag, cflag, lflag = struct.unpack_from("<4I", b, 0)
    ispeed, ospeed = struct.unpack_from("<2I", b, 36)
    return cflag, ispeed, ospeed


def wait_for(pred, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def line_checks(s, slave, log):
    s.baudrate = 57600
    ok = wait_for(lambda: termios.tcgetattr(slave)[5] == termios.B57600)
    check("SET-BAUDRATE 57600: pty ospeed B57600", ok, termios.tcgetattr(slave)[4:6])
    s.baudrate = 250000
    ok = wait_for(lambda: termios2(slave)[2] == 250000)
    check("SET-BAUDRATE 250000: BOTHER, TCGETS2 c_ospeed 250000",
          ok and termios2(slave)[0] & 0o10017 == 0o10000, termios2(slave))
    s.baudrate = 115200
    # a pty keeps CS8 and clears PARENB whatever is asked (the kernel's pty_set_termios):
    # parity and data size are checked in the bridge's log (the HAL call, accepted) and in
    # the unit test tty_termios2 (the c_cflag bits); CSTOPB reaches the pty
    mark = len(log)
    s.parity = serial.PARITY_EVEN
    ok = wait_for(lambda: "uart: 115200 8/3/1" in "".join(log[mark:]))
    check("SET-PARITY even: applied to the tty (log), not refused",
          ok and "refused" not in "".join(log[mark:]), "".join(log[mark:]))
    s.parity = serial.PARITY_NONE
    mark = len(log)
    s.bytesize = 7
    s.stopbits = 2
    ok = wait_for(lambda: termios.tcgetattr(slave)[2] & termios.CSTOPB)
    check("SET-STOPSIZE 2: CSTOPB on the pty", ok, oct(termios.tcgetattr(slave)[2]))
    check("SET-DATASIZE 7: applied to the tty (log)",
          "uart: 115200 7/1/2" in "".join(log[mark:]), "".join(log[mark:]))
    s.bytesize = 8
    s.stopbits = 1
    s.rtscts = True
    ok = wait_for(lambda: termios.tcgetattr(slave)[2] & termios.CRTSCTS)
    check("SET-CONTROL hardware flow: CRTSCTS", ok, oct(termios.tcgetattr(slave)[2]))
    s.rtscts = False
    ok = wait_for(lambda: not termios.tcgetattr(slave)[2] & termios.CRTSCTS)
    check("SET-CONTROL no flow: CRTSCTS off", ok, oct(termios.tcgetattr(slave)[2]))


def data_checks(s, fake):
    blob = bytes(range(256)) * 16
    s.write(blob)
    got = fake.take(len(blob))
    check("client -> pty: 4 KiB, all byte values", got == blob,
          "%d bytes, first diff at %s" % (len(got), next((i for i in range(min(len(got),
                                          len(blob))) if got[i] != blob[i]), None)))
    os.write(fake.m, blob)
    back = read_n(s, len(blob))
    check("pty -> client: 4 KiB, all byte values", back == blob, "%d bytes" % len(back))


def boot_checks(s, fake, log):
    mark = len(log)
    fake.boot = True
    s.parity = serial.PARITY_EVEN
    time.sleep(0.2)
    s.reset_input_buffer()
    s.write(b"\x7f")
    a = read_n(s, 1)
    check("8E1 + 0x7F: the bootloader's ACK back", a == b"\x79", a.hex())
    s.write(b"\x00\xff")
    g = read_n(s, len(FakeStm32.GET_REPLY))
    check("GET: ACK, 11, version 0x31, command list, ACK", g == FakeStm32.GET_REPLY, g.hex())
    seen = "".join(log[mark:])
    check("auto-boot on the tty target: BOOT0 high, NRST pulse before the 0x7F",
          "auto-boot: 8E1 and 0x7F" in seen and "pins: NRST=low BOOT0=high" in seen, seen)
    fake.boot = False


def pty_checks(binary, art):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    logf = open(os.path.join(art, "bridge.log"), "w")
    p = subprocess.Popen([binary, "--no-key", "--listen", "127.0.0.1:0", "-v", "--target",
                          "tty:" + path, "--nrst", "dtr", "--boot0", "rts"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    log = []
    ready = threading.Event()

    def reader():
        for line in p.stderr:
            logf.write(line)
            logf.flush()
            log.append(line)
            if "listening on" in line:
                ready.set()

    threading.Thread(target=reader, daemon=True).start()
    fake = FakeStm32(master)
    fake.start()
    try:
        if not check("bridge on the pty started", ready.wait(10), "".join(log[-10:])):
            return
        port = int(re.search(r"listening on [0-9.]+:(\d+)", "".join(log)).group(1))
        check("log: the pty has no modem lines (dtr/rts do nothing)",
              wait_for(lambda: "no modem lines" in "".join(log)), "".join(log[-10:]))
        c = termios.tcgetattr(slave)
        check("at start: 115200 8N1 raw", c[5] == termios.B115200 and
              c[2] & termios.CSIZE == termios.CS8 and not c[2] & termios.PARENB and
              not c[3] & termios.ICANON, c)
        s = serial.serial_for_url("rfc2217://127.0.0.1:%d" % port, do_not_open=True,
                                  timeout=0.5)
        s.dtr = False
        s.rts = False
        s.open()
        data_checks(s, fake)
        line_checks(s, slave, log)
        boot_checks(s, fake, log)
        s.baudrate = 9600
        wait_for(lambda: termios.tcgetattr(slave)[5] == termios.B9600)
        s.close()
        ok = wait_for(lambda: termios.tcgetattr(slave)[5] == termios.B115200 and
                      not termios.tcgetattr(slave)[2] & termios.PARENB)
        check("client gone: 115200 8N1 restored on the pty", ok, termios.tcgetattr(slave))
        check("bridge still running", p.poll() is None, p.returncode)
        # SIGTERM below with a client connected: the restore at its disconnect runs on
        # the tty while the bridge shuts down
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.sendall(b"x")
        check("a raw client's byte reaches the pty", fake.take(1) == b"x")
    finally:
        p.terminate()
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        check("SIGTERM: exit status 0", rc == 0, rc)
        fake.stop = True
        os.close(master)
        os.close(slave)
        logf.close()


def http(url, method, path, pw, data=None):
    rq = urllib.request.Request(url + path, method=method, data=data)
    rq.add_header("Authorization", "Basic " +
                  base64.b64encode(("admin:" + pw).encode()).decode())
    rq.add_header("X-Espstm-Request", "1")
    if data is not None:
        rq.add_header("Content-Type", "application/octet-stream")
    try:
        with urllib.request.urlopen(rq, timeout=60) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def flash_checks(binary, ptysim, art):
    flash = os.path.join(art, "f103.bin")
    sim = subprocess.Popen([ptysim, flash], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=open(os.path.join(art, "ptysim.log"), "w"), text=True)
    path = sim.stdout.readline().strip()
    if not check("ptysim: a pty with the simulated STM32", path.startswith("/dev/"), path):
        sim.kill()
        return
    pw = "pw-" + os.urandom(5).hex()
    pwf = os.path.join(art, "pw")
    with open(pwf, "w") as f:
        f.write(pw + "\n")
    os.chmod(pwf, 0o600)
    logf = open(os.path.join(art, "bridge-flash.log"), "w")
    p = subprocess.Popen([binary, "--no-key", "--listen", "127.0.0.1:0", "--http",
                          "127.0.0.1:0", "--password-file", pwf, "--target", "tty:" + path],
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    ports = {}
    ready = threading.Event()

    def reader():
        for line in p.stderr:
            logf.write(line)
            logf.flush()
            m = re.search(r"http on [\d.]+:(\d+)", line)
            if m:
                ports["http"] = int(m.group(1))
                ready.set()

    threading.Thread(target=reader, daemon=True).start()
    img = os.urandom(6 * 1024)
    try:
        if not check("bridge --http on the pty started", ready.wait(10)):
            return
        url = "http://127.0.0.1:%d" % ports["http"]
        t0 = time.time()
        st, j = http(url, "POST", "/api/targets/0/flash?verify=1", pw, img)
        dt = time.time() - t0
        check("POST flash?verify=1, 6 KiB over the tty: 200, state done (%.1f s)" % dt,
              st == 200 and isinstance(j, dict) and j.get("state") == "done", (st, j))
        st, j = http(url, "GET", "/api/targets/0/flash", pw)
        check("GET flash: device pid 0x410 (STM32F103) identified",
              st == 200 and (j.get("device") or {}).get("pid") == "0x410", (st, j))
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        sim.terminate()
        sim.wait(10)
        logf.close()
    with open(flash, "rb") as f:
        data = f.read()
    check("the simulator's flash holds the image", data[:len(img)] == img,
          "%d bytes, first 16: %s" % (len(data), data[:16].hex()))


def unplug_checks(binary, art):
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    logf = open(os.path.join(art, "bridge-unplug.log"), "w+")
    p = subprocess.Popen([binary, "--no-key", "--listen", "127.0.0.1:0", "--target",
                          "tty:" + path], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=logf)
    ok = wait_for(lambda: "listening on" in open(logf.name).read(), 10)
    if not check("bridge on a pty for the unplug check started", ok):
        p.kill()
        return
    time.sleep(0.3)
    os.close(master)
    try:
        rc = p.wait(5)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = "still running after 5 s"
    log = open(logf.name).read()
    check("master closed: exit status 1", rc == 1, rc)
    check("master closed: the log names the device", "tty: %s:" % path in log, log[-400:])


def main():
    binary = sys.argv[1]
    art = sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="ttytarget-")
    os.makedirs(art, exist_ok=True)
    print("logs in " + art, flush=True)
    bad_input_checks(binary)
    pty_checks(binary, art)
    unplug_checks(binary, art)
    if len(sys.argv) > 3:
        flash_checks(binary, sys.argv[3], art)
    npass = sum(results)
    print("%d passed, %d failed" % (npass, len(results) - npass))
    sys.exit(0 if results and all(results) else 1)


if __name__ == "__main__":
    main()
