#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Attacks on espstm-bridge's serial ports (the RFC 2217 port and the legacy raw and control
ports), on 127.0.0.1 only, against the simulated STM32F103.

Usage: test_ports.py BUILD_DIR
Checks:
  - a browser-style HTTP request (text/plain form POST, GET) on the plaintext RFC 2217 port,
    the legacy raw port and the legacy control port is refused: an HTTP 400 line and end of
    stream, not one byte on the UART (/api/status bytes.to_uart), no control action (BOOT0
    stays low, no "legacy: control" log line), the flash file byte-identical; plain serial
    clients are still served (application echo, 'u' raises BOOT0: the checks can fail);
  - with a unit key (the default) a plaintext client gets the one "plaintext RFC 2217 is off"
    line and nothing reaches the UART; the legacy ports refuse too; --plaintext serves it;
  - the key file FLASH.key is made at first start (mode 0600, identity + key) and a key file
    readable by group/other is refused;
  - TLS-PSK with openssl s_client: the right key gets a session (application echo inside
    TLS), a wrong key or identity is refused with the log line "TLS handshake failed: wrong
    key or unknown identity" and the target untouched;
  - the idle timeout closes a silent client and frees the target for the next one;
  - /api/status "clients" names the holder; POST /api/targets/0/disconnect drops it.
Prints PASS/FAIL per check and "N passed, N failed"; exit status 0 only if all passed.
Python stdlib (and the openssl command for the TLS checks)."""
import base64
import json
import os
import random
import re
import shutil
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

results = []
PASSWORD = "attack-test-password"
PLAIN_OFF_LINE = (b"espstm-bridge: plaintext RFC 2217 is off on this unit: pair with "
                  b"'espstm pair HOST' or enable plaintext in the settings\r\n")
FORM_POST = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0\r\n"
             b"Content-Type: text/plain\r\nOrigin: http://evil.example\r\n"
             b"Content-Length: 139\r\n\r\n" + b"ureureureu\r\n" * 11 + b"reureure")
GET = b"GET /?r=u&e=r HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n"


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + detail), flush=True)
    return cond


def read_until(sock, pred, timeout=3.0):
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
        except ConnectionResetError:
            return data + b"<EOF>"
        if not b:
            return data + b"<EOF>"
        data += b
    return data


def eof(d):
    return d.endswith(b"<EOF>")


class Bridge:
    def __init__(self, build, tmp, extra=(), legacy=True, http=True, flash="f103.bin"):
        self.log = []
        self.ports = {}
        self.flash = os.path.join(tmp, flash)
        want = 1 + int(legacy) + int(http)
        ready = threading.Event()
        args = [os.path.join(build, "espstm-bridge"), "--listen", "127.0.0.1:0", "--target",
                "sim:stm32f103", "--flash", self.flash, "--instant"]
        if legacy:
            args += ["--legacy-ports", "0,0"]
        if http:
            args += ["--http", "127.0.0.1:0", "--password-file", os.path.join(tmp, "pw"),
                     "--http-plain"] if self.http_plain_supported(build) else \
                    ["--http", "127.0.0.1:0", "--password-file", os.path.join(tmp, "pw")]
        self.p = subprocess.Popen(args + list(extra), stderr=subprocess.PIPE, text=True)

        def reader():
            for line in self.p.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on [\d.]+:(\d+)", line)
                if m:
                    self.ports["rfc"] = int(m.group(1))
                m = re.search(r"legacy raw port on [\d.]+:(\d+), control port on [\d.]+:(\d+)",
                              line)
                if m:
                    self.ports["raw"], self.ports["ctl"] = int(m.group(1)), int(m.group(2))
                m = re.search(r"http on [\d.]+:(\d+)", line)
                if m:
                    self.ports["http"] = int(m.group(1))
                if len(self.ports) == want + int(legacy):
                    ready.set()
        threading.Thread(target=reader, daemon=True).start()
        self.ok = ready.wait(10)
        self.url = "http://127.0.0.1:%d" % self.ports.get("http", 0)

    @staticmethod
    def http_plain_supported(build):
        try:
            out = subprocess.run([os.path.join(build, "espstm-bridge"), "--help"],
                                 capture_output=True, text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return False
        return "--http-plain" in out

    def api(self, method, path, body=None, auth=True):
        data = json.dumps(body).encode() if body is not None else None
        rq = urllib.request.Request(self.url + path, data=data, method=method)
        if auth:
            tok = base64.b64encode(("admin:" + PASSWORD).encode()).decode()
            rq.add_header("Authorization", "Basic " + tok)
        rq.add_header("X-Espstm-Request", "1")
        if data is not None:
            rq.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(rq, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read() or b"{}")
            except ValueError:
                return e.code, {}

    def status(self):
        st, js = self.api("GET", "/api/status")
        return js if st == 200 else {}

    def to_uart(self):
        js = self.status()
        try:
            return js["targets"][0]["bytes"]["to_uart"]
        except (KeyError, IndexError):
            return -1

    def boot0(self):
        try:
            return self.status()["targets"][0]["pins"]["boot0"]
        except (KeyError, IndexError):
            return -1

    def logtext(self):
        return "\n".join(self.log)

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return self.p.returncode


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def send_recv(port, data, split=None):
    """Connect, send data (in two parts with a pause when split is given), read until the
    end of stream (3 s at most)."""
    s = connect(port)
    try:
        if split:
            s.sendall(data[:split])
            time.sleep(0.3)
            s.sendall(data[split:])
        else:
            s.sendall(data)
        got = read_until(s, eof)
    except (BrokenPipeError, ConnectionResetError):
        got = b"<EOF>"
    s.close()
    return got


def echo_served(port, tag=b"ping-attack;"):
    """A raw client is served: the simulated application echoes what it sends."""
    s = connect(port)
    got = b""
    for i in range(5):
        t = tag + b"%d;" % i
        s.sendall(t)
        got += read_until(s, lambda d: t in d or eof(d), 1.0)
        if t in got or eof(got):
            break
    s.close()
    time.sleep(0.3)
    return tag in got and not eof(got), got


def image():
    img = bytearray(b"\xff" * (128 * 1024))
    img[0:8] = struct.pack("<II", 0x20005000, 0x08000101)  # SP, reset vector (Thumb)
    img[8:64] = bytes(range(56))
    return bytes(img)


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def http_lookalike_checks(build, tmp, img):
    """The findings: a text/plain POST to the RFC 2217 port put 139 bytes on the UART; a
    browser-style request to the legacy control port ran 11 reset/boot/run actions."""
    b = Bridge(build, tmp, ["--no-key"])
    try:
        if not check("plaintext bridge (--no-key) starts with legacy and HTTP ports", b.ok,
                     b.logtext()):
            return
        for port in ("rfc", "raw", "ctl"):
            for name, req, split in (("form POST", FORM_POST, None), ("GET", GET, None),
                                     ("POST split after 2 bytes", FORM_POST, 2)):
                before = b.to_uart()
                got = send_recv(b.ports[port], req, split)
                time.sleep(0.2)
                after = b.to_uart()
                check("HTTP %s on the %s port refused (400, closed)" % (name, port),
                      got.startswith(b"HTTP/1.0 400") and eof(got), repr(got[:120]))
                check("HTTP %s on the %s port: no byte on the UART" % (name, port),
                      before == 0 and after == 0, "to_uart %d -> %d" % (before, after))
        check("no control action ran (BOOT0 low, no 'legacy: control' log line)",
              b.boot0() == 0 and "legacy: control '" not in b.logtext(),
              "boot0 %r\n%s" % (b.boot0(), b.logtext()))
        check("no reset or bootloader entry logged",
              not re.search(r"reset|bootloader", b.logtext(), re.I), b.logtext())
        with open(b.flash, "rb") as f:
            check("flash byte-identical after the HTTP requests", f.read() == img)
        # the same ports still serve their own clients (the checks above can fail)
        ok, got = echo_served(b.ports["rfc"])
        check("plaintext RFC 2217 client still served (application echo)", ok, repr(got))
        check("... and its bytes reached the UART", b.to_uart() > 0, str(b.to_uart()))
        ok, got = echo_served(b.ports["raw"])
        check("legacy raw client still served (application echo)", ok, repr(got))
        s = connect(b.ports["rfc"])
        t0 = time.monotonic()
        s.sendall(b"P")
        early = read_until(s, lambda d: b"P" in d, 1.0)
        got = early + read_until(s, lambda d: b"P" in d or eof(d), 4.0)
        dt = time.monotonic() - t0
        s.close()
        time.sleep(0.3)
        check("a lone 'P' (could be POST) is held, then passed on after 2 s (echo)",
              early == b"" and b"P" in got and 1.8 <= dt <= 4.0,
              "%r then %r after %.1f s" % (early, got, dt))
        s = connect(b.ports["ctl"])
        s.sendall(b"u\n")
        got = read_until(s, lambda d: b"\r\n" in d)
        s.close()
        check("legacy control 'u' still runs (OK boot, BOOT0 high)",
              got == b"OK boot 115200 8E1\r\n" and wait_for(lambda: b.boot0() == 1),
              "%r boot0 %r" % (got, b.boot0()))
    finally:
        b.stop()


def key_file_checks(build, tmp):
    flash = os.path.join(tmp, "k.bin")
    b = Bridge(build, tmp, [], legacy=False, http=False, flash="k.bin")
    try:
        check("bridge with a key starts", b.ok, b.logtext())
    finally:
        b.stop()
    kf = flash + ".key"
    ok = os.path.exists(kf)
    check("key file FLASH.key made at first start", ok, kf)
    if not ok:
        return None
    mode = stat.S_IMODE(os.stat(kf).st_mode)
    check("key file mode 0600", mode == 0o600, oct(mode))
    text = open(kf).read()
    ident = re.search(r"^identity (espstm-[0-9a-f]{16})$", text, re.M)
    key = re.search(r"^key ([0-9a-f]{64})$", text, re.M)
    check("key file has an identity and a 64-hex-digit key", ident and key, text)
    # a second start keeps the key
    b = Bridge(build, tmp, [], legacy=False, http=False, flash="k.bin")
    b.stop()
    check("the key file is kept over a restart", open(kf).read() == text)
    os.chmod(kf, 0o644)
    p = subprocess.run([os.path.join(build, "espstm-bridge"), "--listen", "127.0.0.1:0",
                        "--flash", flash], capture_output=True, text=True, timeout=10)
    check("a key file readable by group/other is refused (exit 1, says why)",
          p.returncode == 1 and kf in p.stderr and "0644" in p.stderr, p.stderr)
    os.chmod(kf, 0o600)
    if not (ident and key):
        return None
    return ident.group(1), key.group(1), kf


def s_client(port, ident, key, data, wait=2.0, during=None):
    """openssl s_client with a PSK (TLS 1.2): sends data in pieces of 500 bytes 0.1 s apart
    (the simulated application's echo keeps up at 115200 baud) plus 4 numbered copies of
    data when it is short, calls during() half-way, returns (exit status, stdout, stderr)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                          "-tls1_2", "-psk_identity", ident, "-psk", key, "-cipher",
                          "ECDHE-PSK-CHACHA20-POLY1305:PSK-AES128-GCM-SHA256", "-quiet",
                          "-no_ign_eof"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    pieces = [data[i:i + 500] for i in range(0, len(data), 500)] if len(data) > 500 else \
        [data + b"%d;" % i for i in range(4)]
    gap = 0.1 if len(data) > 500 else wait / 4
    try:
        time.sleep(0.5)
        for i, piece in enumerate(pieces):
            p.stdin.write(piece)
            p.stdin.flush()
            time.sleep(gap)
            if during and i == len(pieces) // 2:
                during()
        time.sleep(1.0)
    except (BrokenPipeError, OSError):
        pass
    try:
        p.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    p.stdin = None  # closed: communicate() only reads
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


def keyed_checks(build, tmp, img, creds):
    b = Bridge(build, tmp, ["--key-file", creds[2]])
    try:
        if not check("bridge with --key-file and legacy, HTTP ports starts", b.ok, b.logtext()):
            return
        got = send_recv(b.ports["rfc"], b"ping-plain;" * 4)
        check("plaintext client refused with the one line (key, plaintext off)",
              got == PLAIN_OFF_LINE + b"<EOF>", repr(got))
        got = send_recv(b.ports["rfc"], FORM_POST)
        check("HTTP request refused too", got == PLAIN_OFF_LINE + b"<EOF>", repr(got))
        for port in ("raw", "ctl"):
            got = send_recv(b.ports[port], b"u" if port == "ctl" else b"ping")
            check("legacy %s port refused (plaintext off)" % port,
                  b"plaintext" in got and eof(got), repr(got))
        time.sleep(0.2)
        check("nothing reached the UART, BOOT0 low", b.to_uart() == 0 and b.boot0() == 0,
              "to_uart %d boot0 %r" % (b.to_uart(), b.boot0()))
        st, js = b.api("PUT", "/api/settings", {"plaintext": True})
        ok, got = echo_served(b.ports["rfc"])
        check("setting plaintext on (PUT /api/settings) serves plaintext at once",
              st == 200 and ok, "%d %r %r" % (st, js, got))
        got = send_recv(b.ports["ctl"], b"\n")
        check("... and opens the legacy ports", b"plaintext" not in got, repr(got))
        st, js = b.api("PUT", "/api/settings", {"plaintext": False})
        got = send_recv(b.ports["rfc"], b"ping")
        check("setting plaintext off again refuses plaintext clients",
              st == 200 and got == PLAIN_OFF_LINE + b"<EOF>", "%d %r" % (st, got))
        if not shutil.which("openssl"):
            check("openssl found for the TLS checks", False)
            return
        rc, out, err = s_client(b.ports["rfc"], creds[0], creds[1], b"ping-tls;")
        check("TLS-PSK client with the right key served (application echo inside TLS)",
              b"ping-tls;" in out, "rc %d out %r err %r" % (rc, out[:200], err[-300:]))
        bulk = bytes(random.Random(1).choice(b"abcdefghijklmnopqrstuvwxyz0123456789")
                     for _ in range(20000))
        seen = []
        rc, out, err = s_client(b.ports["rfc"], creds[0], creds[1], bulk,
                                during=lambda: seen.append(b.status().get("clients")))
        check("TLS carries 20000 bytes both ways intact (application echo)", out == bulk,
              "%d bytes back, rc %d" % (len(out), rc))
        cl = seen[0] if seen else None
        check("/api/status clients shows the TLS holder", isinstance(cl, list) and
              len(cl) == 1 and cl[0].get("tls") is True and cl[0].get("bytes_in", 0) > 0,
              repr(cl))
        time.sleep(0.3)
        n = b.to_uart()
        wrong = "%064x" % (int(creds[1], 16) ^ 1)
        rc, out, err = s_client(b.ports["rfc"], creds[0], wrong, b"ping-wrong;")
        time.sleep(0.3)
        line = re.search(r"client 127\.0\.0\.1:\d+: TLS handshake failed: wrong key or "
                         r"unknown identity", b.logtext())
        check("wrong key refused: handshake fails, logged", rc != 0 and line and
              b"ping-wrong" not in out, "rc %d %r\n%s" % (rc, out, b.logtext()))
        rc, out, err = s_client(b.ports["rfc"], "espstm-0000000000000000", creds[1],
                                b"ping-who;")
        time.sleep(0.3)
        check("unknown identity refused", rc != 0 and b"ping-who" not in out,
              "rc %d %r" % (rc, out))
        check("refused TLS clients put nothing on the UART", b.to_uart() == n,
              "%d -> %d" % (n, b.to_uart()))
        a = connect(b.ports["rfc"])
        t0 = time.monotonic()
        got = read_until(a, eof, 15.0)
        dt = time.monotonic() - t0
        a.close()
        check("a client that sends nothing is closed after 10 s (the slot is free again)",
              eof(got) and 9.5 <= dt <= 12.5 and
              wait_for(lambda: "no first byte within 10 s" in b.logtext(), 2.0),
              "%r after %.1f s" % (got, dt))
        rc, out, err = s_client(b.ports["rfc"], creds[0], creds[1], b"ping-after;")
        check("the next TLS client is served", b"ping-after;" in out, repr(out[:100]))
    finally:
        b.stop()
    b = Bridge(build, tmp, ["--key-file", creds[2], "--plaintext"])
    try:
        ok, got = echo_served(b.ports["rfc"]) if b.ok else (False, b"")
        check("--plaintext: a plaintext client is served with a key", ok, repr(got))
        got = send_recv(b.ports["rfc"], GET)
        check("--plaintext: an HTTP request is still refused",
              got.startswith(b"HTTP/1.0 400") and eof(got), repr(got))
    finally:
        b.stop()


def holder_checks(build, tmp):
    b = Bridge(build, tmp, ["--no-key", "--idle-timeout", "2"], legacy=False)
    try:
        if not check("bridge with --idle-timeout 2 starts", b.ok, b.logtext()):
            return
        a = connect(b.ports["rfc"])
        a.sendall(b"hello;")
        time.sleep(0.3)
        cl = b.status().get("clients")
        me = "127.0.0.1:%d" % a.getsockname()[1]
        check("/api/status clients names the holder",
              isinstance(cl, list) and len(cl) == 1 and cl[0].get("peer") == me and
              cl[0].get("tls") is False and cl[0].get("target") == 0, repr(cl))
        t0 = time.monotonic()
        got = read_until(a, eof, 6.0)
        dt = time.monotonic() - t0
        a.close()
        check("a silent client is closed after the idle timeout (2 s)",
              eof(got) and 1.5 <= dt <= 4.0, "%r after %.1f s" % (got[-40:], dt))
        check("idle timeout logged", "idle" in b.logtext(), b.logtext())
        ok, got = echo_served(b.ports["rfc"])
        check("the next client is served after the idle timeout", ok, repr(got))
        st, js = b.api("POST", "/api/targets/0/disconnect")
        check("disconnect with no client: dropped false", st == 200 and
              js.get("dropped") is False, "%d %r" % (st, js))
        a = connect(b.ports["rfc"])
        a.sendall(b"x")
        time.sleep(0.3)
        st, js = b.api("POST", "/api/targets/0/disconnect", auth=False)
        check("disconnect needs the password (401)", st == 401, str(st))
        st, js = b.api("POST", "/api/targets/0/disconnect")
        got = read_until(a, eof, 3.0)
        a.close()
        check("POST /api/targets/0/disconnect drops the holder",
              st == 200 and js.get("dropped") is True and eof(got), "%d %r %r" % (st, js, got))
        ok, got = echo_served(b.ports["rfc"])
        check("the next client takes over", ok, repr(got))
        check("clients empty afterwards", b.status().get("clients") == [],
              repr(b.status().get("clients")))
    finally:
        b.stop()


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    tmp = tempfile.mkdtemp(prefix="espstm-attack-")
    img = image()
    with open(os.path.join(tmp, "f103.bin"), "wb") as f:
        f.write(img)
    with open(os.path.join(tmp, "k.bin"), "wb") as f:
        f.write(img)
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write(PASSWORD + "\n")
    os.chmod(os.path.join(tmp, "pw"), 0o600)
    try:
        http_lookalike_checks(build, tmp, img)
        creds = key_file_checks(build, tmp)
        if creds:
            keyed_checks(build, tmp, img, creds)
        holder_checks(build, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p = sum(results)
    print("%d passed, %d failed" % (p, len(results) - p))
    return 0 if results and p == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
