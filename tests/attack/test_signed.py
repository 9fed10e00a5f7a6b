#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Signed images (locked mode): espstm-bridge --verify-key against an attacker on 127.0.0.1.

Usage: ESPSTM_BUILD=build python3 tests/attack/test_signed.py
A P-256 key pair is made with openssl; the bridge runs with the simulated STM32F103,
--http and --legacy and --verify-key. Refused, with the simulator's flash file byte-identical
afterwards: an unsigned image, a signature that is not DER, a signature of another image, of
the same image for another address, by another key, an Intel HEX signed as a .bin. Then a
correctly signed .bin (openssl's signature, and espstm sign's when the binary has it) and a
signed Intel HEX flash and verify. Locked mode refuses bootloader entry by the RFC 2217
client's DTR/RTS (SET-CONTROL, then AN3155 sync 0x7F: no ACK, BOOT0 stays low), by auto-boot
(8E1 + 0x7F), by legacy 'u' and by POST /api/targets/0/bootloader (403); reset and run work.
The same DTR/RTS and auto-boot sequences against an unlocked bridge do get the ACK (so the
checks can fail). Also: a staged Intel HEX with a record beyond the flash and a chunked .bin
larger than the flash: 413 and nothing erased (unlocked bridge). Prints PASS/FAIL per
check and "N passed, N failed"; exit status 0 only if all passed. Python stdlib, curl,
openssl."""
import base64
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

results = []
BASE = 0x08000000
IAC, SB, SE, WILL, WONT, DO, DONT = 255, 250, 240, 251, 252, 253, 254
COMPORT = 44
ACK = 0x79


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)[:600]),
          flush=True)
    return cond


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, **kw)


class Bridge:
    def __init__(self, binary, tmp, flash, extra=()):
        self.flash = flash
        self.pw = "pw-" + os.urandom(6).hex()
        pwf = os.path.join(tmp, "pw")
        with open(pwf, "w") as f:
            f.write(self.pw + "\n")
        os.chmod(pwf, 0o600)
        helptext = run([binary, "--help"], text=True).stdout
        # the key/TLS options of the secured bridge, where this binary has them: this test
        # speaks plaintext RFC 2217 and plain HTTP
        for opt in ("--no-key", "--http-plain"):
            if opt in helptext:
                extra = list(extra) + [opt]
        self.log = []
        self.ports = {}
        ready = threading.Event()
        self.p = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--target", "sim:stm32f103", "--flash", flash,
             "--http", "127.0.0.1:0", "--password-file", pwf, "--legacy", "--legacy-ports",
             "0,0", "--stage-max", "1048576"] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)

        def reader():
            for line in self.p.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"listening on [\d.]+:(\d+)", line)
                if m:
                    self.ports["rfc"] = int(m.group(1))
                m = re.search(r"http on [\d.]+:(\d+)", line)
                if m:
                    self.ports["http"] = int(m.group(1))
                m = re.search(r"control port on [\d.]+:(\d+)", line)
                if m:
                    self.ports["ctl"] = int(m.group(1))
                if len(self.ports) == 3:
                    ready.set()
        threading.Thread(target=reader, daemon=True).start()
        self.ok = ready.wait(15)
        self.url = "http://127.0.0.1:%d" % self.ports.get("http", 0)

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        with open(self.flash, "rb") as f:
            return f.read()

    def request(self, method, path, xreq=False, data=None):
        rq = urllib.request.Request(self.url + path, method=method, data=data)
        tok = base64.b64encode(("admin:" + self.pw).encode()).decode()
        rq.add_header("Authorization", "Basic " + tok)
        if xreq:
            rq.add_header("X-Espstm-Request", "1")
        try:
            with urllib.request.urlopen(rq, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            body = e.read()
            try:
                return e.code, json.loads(body)
            except ValueError:
                return e.code, body

    def status(self):
        return self.request("GET", "/api/status")[1]

    def upload(self, query, path, sig=None, chunked=False):
        """POST an image with curl (sig: bytes of the DER signature, or a str header value)."""
        out = path + ".out"
        cmd = ["curl", "-s", "-o", out, "-w", "%{http_code}", "--max-time", "120",
               "-u", "admin:" + self.pw, "--data-binary", "@" + path,
               "-H", "Content-Type: application/octet-stream", "-H", "X-Espstm-Request: 1"]
        if sig is not None:
            v = sig if isinstance(sig, str) else base64.b64encode(sig).decode()
            cmd += ["-H", "X-Espstm-Signature: " + v]
        if chunked:
            cmd += ["-H", "Transfer-Encoding: chunked"]
        cmd.append(self.url + "/api/targets/0/flash" + ("?" + query if query else ""))
        r = run(cmd, text=True)
        try:
            with open(out, "rb") as f:
                body = json.loads(f.read())
        except (OSError, ValueError):
            body = None
        try:
            return int(r.stdout.strip() or 0), body
        except ValueError:
            return 0, body


class Rfc2217:
    """A minimal RFC 2217 client: COM-PORT-OPTION commands and data, Telnet stripped."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.s.sendall(bytes([IAC, WILL, COMPORT, IAC, DO, COMPORT, IAC, WILL, 0, IAC, DO, 0]))
        self.data = bytearray()
        self.st = 0  # parser state
        time.sleep(0.2)
        self.read(0.2)

    def cmd(self, code, value):
        v = bytes(value)
        self.s.sendall(bytes([IAC, SB, COMPORT, code]) + v.replace(b"\xff", b"\xff\xff") +
                       bytes([IAC, SE]))

    def set_8e1(self, baud=115200):
        self.cmd(1, baud.to_bytes(4, "big"))
        self.cmd(2, [8])
        self.cmd(3, [3])  # EVEN
        self.cmd(4, [1])

    def control(self, v):
        self.cmd(5, [v])  # 8/9 DTR on/off, 11/12 RTS on/off

    def send(self, data):
        self.s.sendall(bytes(data).replace(b"\xff", b"\xff\xff"))

    def read(self, secs):
        """Data bytes (Telnet commands removed) received within secs."""
        end = time.monotonic() + secs
        got = bytearray()
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                chunk = self.s.recv(4096)
            except socket.timeout:
                break
            if not chunk:
                break
            for b in chunk:
                if self.st == 0:
                    if b == IAC:
                        self.st = 1
                    else:
                        got.append(b)
                elif self.st == 1:
                    if b == IAC:
                        got.append(b)
                        self.st = 0
                    elif b == SB:
                        self.st = 3
                    elif b in (WILL, WONT, DO, DONT):
                        self.st = 2
                    else:
                        self.st = 0
                elif self.st == 2:
                    self.st = 0
                elif self.st == 3:
                    self.st = 4 if b == IAC else 3
                elif self.st == 4:
                    self.st = 0 if b == SE else 3
        return bytes(got)

    def close(self):
        self.s.close()


def dtr_rts_boot(br):
    """stm32flash-style entry on the direct map: 8E1, RTS on (BOOT0 high), DTR on (NRST low),
    DTR off (release), then sync 0x7F. Returns (bytes after the 0x7F, BOOT0 while RTS on)."""
    c = Rfc2217(br.ports["rfc"])
    try:
        c.set_8e1()
        c.read(0.2)
        c.control(11)  # RTS on
        c.control(8)   # DTR on
        time.sleep(0.1)
        boot0 = br.status()["targets"][0]["pins"]["boot0"]
        c.control(9)   # DTR off: NRST released
        c.read(0.4)    # settle; whatever the application printed
        c.send([0x7F])
        ans = c.read(0.6)
        c.control(12)
        return ans, boot0
    finally:
        c.close()
        time.sleep(0.5)  # the bridge's restore after the disconnect


def auto_boot(br):
    """auto-boot sync: the port to 8E1, first byte 0x7F. Returns the bytes after it."""
    c = Rfc2217(br.ports["rfc"])
    try:
        c.set_8e1()
        c.read(0.3)
        c.send([0x7F])
        return c.read(0.8)
    finally:
        c.close()
        time.sleep(0.5)


def bootloader_probe(br):
    """8E1, then 0x7F and GET (0x00 0xFF): what a bootloader would answer (ACK/NACK)."""
    c = Rfc2217(br.ports["rfc"])
    try:
        c.set_8e1()
        c.read(0.3)
        c.send([0x7F])
        ans = c.read(0.4)
        c.send([0x00, 0xFF])
        return ans + c.read(0.4)
    finally:
        c.close()
        time.sleep(0.5)


def legacy_u(br):
    s = socket.create_connection(("127.0.0.1", br.ports["ctl"]), timeout=5)
    try:
        s.sendall(b"u")
        s.settimeout(3)
        ans = b""
        while not ans.endswith(b"\r\n"):
            chunk = s.recv(100)
            if not chunk:
                break
            ans += chunk
        return ans
    finally:
        s.close()


def openssl_sign(tmp, key, addr_text, path):
    msg = os.path.join(tmp, "msg")
    with open(msg, "wb") as f, open(path, "rb") as g:
        f.write(b"espstm-image-v1 " + addr_text.encode() + b"\n" + g.read())
    sig = os.path.join(tmp, "sig")
    r = run(["openssl", "dgst", "-sha256", "-sign", key, "-out", sig, msg])
    assert r.returncode == 0, r.stderr
    with open(sig, "rb") as f:
        return f.read()


def openssl_verify(tmp, pub, addr_text, path, sig):
    msg = os.path.join(tmp, "msgv")
    with open(msg, "wb") as f, open(path, "rb") as g:
        f.write(b"espstm-image-v1 " + addr_text.encode() + b"\n" + g.read())
    sf = os.path.join(tmp, "sigv")
    with open(sf, "wb") as f:
        f.write(sig)
    return run(["openssl", "dgst", "-sha256", "-verify", pub, "-signature", sf, msg]).returncode == 0


def app_image(n, seed):
    rnd = random.Random(seed)
    img = bytearray(rnd.getrandbits(8) for _ in range(n))
    img[0:8] = (0x20004000).to_bytes(4, "little") + (BASE + 0x131).to_bytes(4, "little")
    return bytes(img)


def ihex(segments):
    out = []
    for addr, data in segments:
        base = None
        for off in range(0, len(data), 16):
            a = addr + off
            if a >> 16 != base:
                base = a >> 16
                rec = bytes([2, 0, 0, 4, base >> 8, base & 0xFF])
                out.append(":" + rec.hex().upper() + "%02X" % (-sum(rec) & 0xFF))
            chunk = data[off:off + 16]
            rec = bytes([len(chunk), (a >> 8) & 0xFF, a & 0xFF, 0]) + chunk
            out.append(":" + rec.hex().upper() + "%02X" % (-sum(rec) & 0xFF))
    out.append(":00000001FF")
    return ("\r\n".join(out) + "\r\n").encode()


def diff_at(a, b):
    return next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), min(len(a), len(b)))


def locked_refusals(binary, tmp, espstm):
    key = os.path.join(tmp, "signer.pem")
    pub = os.path.join(tmp, "signer.pub")
    other = os.path.join(tmp, "other.pem")
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key])
    run(["openssl", "ec", "-in", key, "-pubout", "-out", pub])
    run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", other])
    flash = os.path.join(tmp, "locked.bin")
    old = bytes(random.Random(5).getrandbits(8) for _ in range(128 * 1024))
    with open(flash, "wb") as f:
        f.write(old)
    img = app_image(12 * 1024, 1)
    imgf = os.path.join(tmp, "app.bin")
    with open(imgf, "wb") as f:
        f.write(img)
    img2f = os.path.join(tmp, "app2.bin")
    with open(img2f, "wb") as f:
        f.write(app_image(12 * 1024, 2))
    hexf = os.path.join(tmp, "app.hex")
    with open(hexf, "wb") as f:
        f.write(ihex([(BASE + 0x4000, app_image(3000, 3))]))
    good = openssl_sign(tmp, key, "0x08000000", imgf)

    br = Bridge(binary, tmp, flash, ["--verify-key", pub])
    if not check("locked: bridge starts (--verify-key)", br.ok, "\n".join(br.log[-10:])):
        br.stop()
        return
    try:
        check("locked: /api/status \"locked\": true", br.status().get("locked") is True,
              br.status())
        st, j = br.upload("address=0x08000000", imgf)
        check("unsigned image: 403 'this unit only accepts signed images'",
              st == 403 and "only accepts signed images" in (j or {}).get("error", ""), (st, j))
        st, j = br.upload("address=0x08000000", imgf, sig=os.urandom(70))
        check("a signature that is not DER: 403 'signature: ...'",
              st == 403 and (j or {}).get("error", "").startswith("signature"), (st, j))
        st, j = br.upload("address=0x08000000", imgf, sig="!!not base64!!")
        check("a signature header that is not base64: 403",
              st == 403 and (j or {}).get("error", "").startswith("signature"), (st, j))
        st, j = br.upload("address=0x08000000", img2f, sig=good)
        check("signature of another image: 403 'signature does not match', nothing erased",
              st == 403 and "signature does not match" in (j or {}).get("error", "") and
              j.get("bytes_erased") == 0 and j.get("bytes_written") == 0, (st, j))
        st, j = br.upload("address=0x08001000", imgf, sig=good)
        check("the same image signed for another address: 403", st == 403 and
              "signature does not match" in (j or {}).get("error", ""), (st, j))
        st, j = br.upload(None, imgf, sig=openssl_sign(tmp, other, "0x08000000", imgf))
        check("signed by another key: 403", st == 403, (st, j))
        st, j = br.upload("format=hex", hexf, sig=openssl_sign(tmp, key, "0x08004000", hexf))
        check("Intel HEX signed as a .bin (not 'hex'): 403", st == 403, (st, j))
        bad = bytearray(img)
        bad[-1] ^= 1
        badf = os.path.join(tmp, "bad.bin")
        with open(badf, "wb") as f:
            f.write(bad)
        st, j = br.upload("address=0x08000000", badf, sig=good, chunked=True)
        check("chunked, last byte changed: 403", st == 403, (st, j))
        # bootloader entry
        ans, boot0 = dtr_rts_boot(br)
        check("locked: DTR/RTS entry: BOOT0 stays low while RTS is asserted", boot0 == 0, boot0)
        check("locked: DTR/RTS entry then sync 0x7F: no ACK", ACK not in ans, ans.hex())
        ans = auto_boot(br)
        check("locked: auto-boot (8E1, 0x7F): no ACK", ACK not in ans, ans.hex())
        st, j = br.request("POST", "/api/targets/0/bootloader", xreq=True, data=b"")
        check("locked: POST /api/targets/0/bootloader: 403", st == 403, (st, j))
        check("locked: legacy 'u': ERR locked", legacy_u(br).startswith(b"ERR locked"))
        pins = br.status()["targets"][0]["pins"]
        check("locked: BOOT0 low after all of these", pins["boot0"] == 0, pins)
        st, j = br.request("POST", "/api/targets/0/reset", xreq=True, data=b"")
        check("locked: reset still works: 200", st == 200, (st, j))
        st, j = br.request("POST", "/api/targets/0/run", xreq=True, data=b"")
        check("locked: run still works: 200", st == 200, (st, j))
    finally:
        after = br.stop()
    check("locked: every refusal left the flash file byte-identical", after == old,
          "first difference at %d" % diff_at(after, old))

    br = Bridge(binary, tmp, flash, ["--verify-key", pub])
    if not check("locked: bridge starts again", br.ok, "\n".join(br.log[-10:])):
        br.stop()
        return
    hexd = app_image(3000, 3)
    espstm_sig = None
    try:
        st, j = br.upload("address=0x08000000&verify=1", imgf, sig=good)
        check("correctly signed .bin (openssl): 200 done, verified, staged",
              st == 200 and j.get("state") == "done" and j.get("stage") is True and
              j.get("bytes_verified") == len(img), (st, j))
        ans = bootloader_probe(br)
        check("after a signed flash (go=0) the chip is not left in its bootloader: 0x7F and "
              "GET at 8E1 get no ACK/NACK", ACK not in ans and 0x1F not in ans, ans.hex())
        st, j = br.upload("address=0x08000000", imgf, sig=good, chunked=True)
        check("correctly signed .bin, chunked: 200 done", st == 200, (st, j))
        st, j = br.upload("format=hex&verify=1", hexf,
                          sig=openssl_sign(tmp, key, "hex", hexf))
        check("correctly signed Intel HEX: 200 done", st == 200 and j.get("state") == "done",
              (st, j))
        if espstm and run([espstm, "sign", "--help"]).returncode == 0:
            out = os.path.join(tmp, "app2.bin.sig")
            r = run([espstm, "sign", "--key", key, "--addr", "0x08008000", img2f, "-o", out],
                    text=True)
            if check("espstm sign: exit 0", r.returncode == 0, r.stderr):
                with open(out, "rb") as f:
                    espstm_sig = f.read()
                check("openssl verifies espstm sign's signature",
                      openssl_verify(tmp, pub, "0x08008000", img2f, espstm_sig))
                check("openssl rejects it for another address",
                      not openssl_verify(tmp, pub, "0x08000000", img2f, espstm_sig))
                env = dict(os.environ, ESPSTM_PASSWORD=br.pw)
                host = "127.0.0.1:%d" % br.ports["http"]
                r = run([espstm, "flash", "--host", host, "--address", "0x08008000",
                         "--progress", "none", img2f], text=True, env=env)
                check("espstm flash sends IMAGE.sig: exit 0", r.returncode == 0, r.stderr)
                r = run([espstm, "flash", "--host", host, "--address", "0x08008000",
                         "--progress", "none", imgf], text=True, env=env)
                check("espstm flash of an image without .sig: refused, says why",
                      r.returncode != 0 and "only accepts signed images" in r.stderr,
                      (r.returncode, r.stderr))
    finally:
        after = br.stop()
    check("flash holds the signed .bin", after[:len(img)] == img)
    check("flash holds the signed HEX", after[0x4000:0x4000 + len(hexd)] == hexd)
    if espstm_sig:
        check("flash holds the espstm-signed .bin",
              after[0x8000:0x8000 + 12 * 1024] == app_image(12 * 1024, 2))


def unlocked(binary, tmp):
    """Control: the same entries work without a key; the range findings (413, nothing
    erased) on an unlocked bridge."""
    flash = os.path.join(tmp, "open.bin")
    old = bytes(random.Random(9).getrandbits(8) for _ in range(128 * 1024))
    with open(flash, "wb") as f:
        f.write(old)
    br = Bridge(binary, tmp, flash)
    if not check("unlocked: bridge starts", br.ok, "\n".join(br.log[-10:])):
        br.stop()
        return
    try:
        check("unlocked: /api/status \"locked\": false", br.status().get("locked") is False)
        ans, boot0 = dtr_rts_boot(br)
        check("unlocked (control): DTR/RTS raise BOOT0 and the bootloader ACKs 0x7F",
              boot0 == 1 and ACK in ans, (boot0, ans.hex()))
        ans = auto_boot(br)
        check("unlocked (control): auto-boot ACKs 0x7F", ACK in ans, ans.hex())
        # a staged HEX whose last record lies beyond the 128 KiB flash
        hexf = os.path.join(tmp, "far.hex")
        with open(hexf, "wb") as f:
            f.write(ihex([(BASE, app_image(4096, 4)), (BASE + 0x20000, b"\x11" * 32)]))
        st, j = br.upload("format=hex&stage=1", hexf)
        check("staged HEX with a record beyond the flash: 413, nothing erased or written",
              st == 413 and j.get("bytes_erased") == 0 and j.get("bytes_written") == 0,
              (st, j))
        bigf = os.path.join(tmp, "big.bin")
        with open(bigf, "wb") as f:
            f.write(app_image(130 * 1024, 5))
        st, j = br.upload("address=0x08000000", bigf, chunked=True)
        check("chunked .bin of 130 KiB on a 128 KiB chip: 413, nothing erased or written",
              st == 413 and j.get("bytes_erased") == 0 and j.get("bytes_written") == 0,
              (st, j))
    finally:
        after = br.stop()
    check("unlocked: the refused uploads left the flash file byte-identical", after == old,
          "first difference at %d" % diff_at(after, old))


def main():
    build = os.environ.get("ESPSTM_BUILD", "build")
    binary = os.path.join(build, "espstm-bridge")
    espstm = os.path.join(build, "espstm")
    if not os.path.exists(espstm):
        espstm = None
    for tool in ("curl", "openssl"):
        if not shutil.which(tool):
            print("FAIL %s not installed" % tool)
            return 1
    tmp = tempfile.mkdtemp(prefix="espstm-signed-")
    try:
        locked_refusals(binary, tmp, espstm)
        unlocked(binary, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    failed = results.count(False)
    print("%d passed, %d failed" % (len(results) - failed, failed))
    return 0 if failed == 0 and results else 1


if __name__ == "__main__":
    sys.exit(main())
