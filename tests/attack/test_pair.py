#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Pairing and HTTPS: espstm-bridge --http with a unit key, `espstm pair` / `espstm unpair`.

Usage: test_pair.py [BUILD_DIR]   (default: $ESPSTM_BUILD, else build)
Everything on 127.0.0.1. The bridge (simulated STM32, --http 127.0.0.1:0, a password file,
a unit key file) must serve HTTPS on a self-signed certificate whose pin it logs; then:
 - espstm pair pins the certificate (known_bridges line = the logged pin = openssl's pin of
   the certificate file) and writes a 0600 key file that parses and holds the unit's key;
 - plain HTTP on the HTTPS port gets no API answer;
 - a wrong password: a clear error (exit 1), no key file, no pin stored;
 - a restarted bridge keeps its certificate (same pin) and pairing again works;
 - unpair --rotate: the unit's key file changes, the local key and pin are removed, and a
   new pair gets a key different from the old one;
 - another bridge with another certificate on the same address:port: espstm pair and
   espstm flash refuse it with exit 3 and the "certificate changed" message, no key file.
Prints PASS/FAIL per check and "N passed, N failed"; exit 0 only if all passed."""
import base64
import os
import re
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time

results = []


def check(name, cond, detail=""):
    results.append(bool(cond))
    print(("PASS " if cond else "FAIL ") + name + ("" if cond else ": " + str(detail)[:800]),
          flush=True)
    return cond


class Bridge:
    """espstm-bridge with --http and a unit key; .port (HTTPS), .pin (logged)."""

    def __init__(self, build, tmp, name, key_file, http_port=0, plain=False):
        self.log = []
        self.port = self.pin = self.rfc = None
        self.plain = plain
        self.flash = os.path.join(tmp, name + ".flash")
        self.pwf = os.path.join(tmp, "pw")
        exe = os.path.join(build, "espstm-bridge")
        helptext = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
        # the unit key option: --http-key (HTTPS helper's branch) or --key-file (joined)
        key_opt = "--http-key" if "--http-key" in helptext else "--key-file"
        args = [exe, "--listen", "127.0.0.1:0", "--target", "sim:stm32f103", "--instant",
                "--flash", self.flash, "--http", "127.0.0.1:%d" % http_port,
                "--password-file", self.pwf, key_opt, key_file]
        if plain:
            args.append("--http-plain")
        ready = threading.Event()
        self.p = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)

        def reader():
            for line in self.p.stderr:
                self.log.append(line.rstrip("\n"))
                m = re.search(r"https on 127\.0\.0\.1:(\d+), certificate (sha256//\S+)", line)
                if m:
                    self.port, self.pin = int(m.group(1)), m.group(2)
                    ready.set()
                m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.rfc = int(m.group(1))
                m = re.search(r"espstm-bridge: http on 127\.0\.0\.1:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    ready.set()
            ready.set()
        threading.Thread(target=reader, daemon=True).start()
        self.ok = ready.wait(20) and self.port is not None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def openssl_pin(cert_file):
    pub = subprocess.run(["openssl", "x509", "-in", cert_file, "-pubkey", "-noout"],
                         capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub,
                         capture_output=True, check=True).stdout
    dig = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                         capture_output=True, check=True).stdout
    return "sha256//" + base64.b64encode(dig).decode()


def read_key(path):
    """(identity, key hex) of a unit key file, or None if it does not parse."""
    ident = key = None
    with open(path) as f:
        for line in f:
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            if w[0] == "identity" and len(w) == 2:
                ident = w[1]
            elif w[0] == "key" and len(w) == 2:
                key = w[1]
            else:
                return None
    if not ident or not re.fullmatch(r"espstm-[0-9a-f]{16}", ident):
        return None
    if not key or not re.fullmatch(r"[0-9a-fA-F]{64}", key):
        return None
    return ident, key.lower()


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ESPSTM_BUILD", "build")
    espstm = os.path.join(build, "espstm")
    tmp = tempfile.mkdtemp(prefix="espstm-pair-")
    known = os.path.join(tmp, "known_bridges")
    env = dict(os.environ, ESPSTM_KNOWN_BRIDGES=known, HOME=tmp)
    env.pop("ESPSTM_PASSWORD", None)
    pw = "pair-test-" + os.urandom(6).hex()
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write(pw + "\n")
    os.chmod(os.path.join(tmp, "pw"), 0o600)
    badpw = os.path.join(tmp, "badpw")
    with open(badpw, "w") as f:
        f.write("not-the-password\n")
    os.chmod(badpw, 0o600)

    def run(*args, pwfile=None):
        cmd = [espstm] + list(args)
        if pwfile:
            cmd += ["--password-file", pwfile]
        return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)

    unit_key = os.path.join(tmp, "unitA.key")
    a = Bridge(build, tmp, "A", unit_key)
    bridges = [a]
    try:
        if not check("bridge A serves HTTPS and logs its pin", a.ok and a.pin, a.log):
            return
        host = "127.0.0.1:%d" % a.port
        cert = os.path.join(tmp, "unitA.cert.pem")
        certkey = os.path.join(tmp, "unitA.certkey.pem")
        check("certificate and key next to the unit key",
              os.path.exists(cert) and os.path.exists(certkey), os.listdir(tmp))
        check("unit key and certificate key are 0600, certificate 0644",
              stat.S_IMODE(os.stat(unit_key).st_mode) == 0o600 and
              stat.S_IMODE(os.stat(certkey).st_mode) == 0o600 and
              stat.S_IMODE(os.stat(cert).st_mode) == 0o644)
        check("the logged pin is openssl's pin of the certificate", openssl_pin(cert) == a.pin,
              (openssl_pin(cert), a.pin))

        # plain HTTP on the HTTPS port: no API answer
        s = socket.create_connection(("127.0.0.1", a.port), 5)
        s.sendall(b"POST /api/pair HTTP/1.0\r\nAuthorization: Basic " +
                  base64.b64encode(b"admin:" + pw.encode()) + b"\r\nX-Espstm-Request: 1\r\n\r\n")
        s.settimeout(5)
        try:
            got = s.recv(4096)
        except (socket.timeout, ConnectionResetError):
            got = b""
        s.close()
        check("plain HTTP to the HTTPS port gets no key", b"identity" not in got, got)

        # wrong password: clear error, no key file, no pin stored
        kd = os.path.join(tmp, "keys")
        r = run("pair", host, "--key-dir", kd, pwfile=badpw)
        check("wrong password: exit 1 with a clear message",
              r.returncode == 1 and "refused the password" in r.stderr, (r.returncode, r.stderr))
        check("wrong password: no key file written",
              not os.path.exists(os.path.join(kd, "127.0.0.1.key")))
        check("wrong password: no pin stored", not os.path.exists(known))

        # pairing
        r = run("pair", host, "--key-dir", kd, "--name", "ttySTM3", pwfile=os.path.join(tmp, "pw"))
        kf = os.path.join(kd, "127.0.0.1.key")
        check("espstm pair: exit 0, prints the pin and the conf lines",
              r.returncode == 0 and a.pin in r.stdout and "[ttySTM3]" in r.stdout and
              ("port = %d\n" % a.rfc) in r.stdout and
              ("key = " + kf) in r.stdout, (r.returncode, r.stdout, r.stderr))
        check("key file is mode 0600",
              os.path.exists(kf) and stat.S_IMODE(os.stat(kf).st_mode) == 0o600)
        mine = read_key(kf) if os.path.exists(kf) else None
        unit = read_key(unit_key)
        check("key file parses and holds the unit's identity and key", mine and mine == unit,
              (mine, unit))
        with open(known) as f:
            lines = f.read().split("\n")
        check("known_bridges pins HOST:PORT to the bridge's pin", (host + " " + a.pin) in lines,
              lines)

        # a restart keeps the certificate; pairing again meets the pin
        a.stop()
        a = Bridge(build, tmp, "A", unit_key, http_port=a.port)
        bridges.append(a)
        check("restarted bridge has the same pin", a.ok and openssl_pin(cert) == a.pin,
              (a.pin, a.log))
        r = run("pair", host, "--key-dir", kd, pwfile=os.path.join(tmp, "pw"))
        check("pair again after a restart: exit 0 (as pinned)",
              r.returncode == 0 and "as pinned" in r.stdout, (r.returncode, r.stdout, r.stderr))

        # rotate
        old = read_key(unit_key)
        r = run("unpair", host, "--rotate", "--key-dir", kd, pwfile=os.path.join(tmp, "pw"))
        new = read_key(unit_key)
        check("unpair --rotate: exit 0, the unit's key file changed",
              r.returncode == 0 and new and new != old and new[1] != old[1],
              (r.returncode, r.stdout, r.stderr))
        with open(known) as f:
            txt = f.read()
        check("unpair removed the local key and the pin",
              not os.path.exists(kf) and host not in txt, txt)
        r = run("pair", host, "--key-dir", kd, pwfile=os.path.join(tmp, "pw"))
        again = read_key(kf) if os.path.exists(kf) else None
        check("pair after rotation gets the new key (old key differs)",
              r.returncode == 0 and again == new and again[1] != old[1],
              (r.returncode, r.stderr, again, old))
        r = run("unpair", "127.0.0.1", "--key-dir", os.path.join(tmp, "nokeys"))
        check("unpair HOST without port removes every pin of HOST",
              r.returncode == 0 and host not in open(known).read(), (r.returncode, r.stderr))
        r = run("pair", host, "--key-dir", kd, pwfile=os.path.join(tmp, "pw"))
        check("pair once more (pinned again)", r.returncode == 0, r.stderr)

        # another bridge, another certificate, the same address:port
        port = a.port
        a.stop()
        b = Bridge(build, tmp, "B", os.path.join(tmp, "unitB.key"), http_port=port)
        bridges.append(b)
        if not check("bridge B on the same port with another pin", b.ok and b.pin != a.pin,
                     (b.pin, a.pin, b.log)):
            return
        kd3 = os.path.join(tmp, "keys3")
        r = run("pair", host, "--key-dir", kd3, pwfile=os.path.join(tmp, "pw"))
        want = ("espstm: %s: the bridge's certificate changed (pinned %s, got %s); if the "
                "unit was reset, remove its line from %s" % (host, a.pin, b.pin, known))
        check("pair with a changed certificate: exit 3 and the message",
              r.returncode == 3 and want in r.stderr, (r.returncode, r.stderr, want))
        check("changed certificate: no key file", not os.path.exists(kd3))
        check("changed certificate: the password never reached B",
              not any("pair: key handed out" in l or "wrong credentials" in l for l in b.log),
              b.log)
        img = os.path.join(tmp, "img.bin")
        with open(img, "wb") as f:
            f.write(os.urandom(1024))
        before = len(b.log)
        r = run("flash", "--host", host, img, "-q", pwfile=os.path.join(tmp, "pw"))
        check("espstm flash to a changed certificate: exit 3 and the message",
              r.returncode == 3 and want in r.stderr, (r.returncode, r.stderr))
        time.sleep(0.3)
        check("the flash never reached B", len(b.log) == before, b.log[before:])
        r = run("unpair", host, "--rotate", "--key-dir", kd3, pwfile=os.path.join(tmp, "pw"))
        check("unpair --rotate to a changed certificate: exit 3", r.returncode == 3,
              (r.returncode, r.stderr))
        r = run("pair", "-x", host)
        check("usage error: exit 2", r.returncode == 2 and "--help" in r.stderr, r.stderr)

        # --http-plain given explicitly: plain HTTP, pairing allowed with a warning;
        # espstm pair itself insists on HTTPS
        b.stop()
        c = Bridge(build, tmp, "C", os.path.join(tmp, "unitC.key"), plain=True)
        bridges.append(c)
        check("--http-plain: plain HTTP with a warning at start",
              c.ok and c.pin is None and any("--http-plain" in l and "unencrypted" in l
                                             for l in c.log), c.log)
        s = socket.create_connection(("127.0.0.1", c.port), 5)
        s.sendall(b"POST /api/pair HTTP/1.0\r\nAuthorization: Basic " +
                  base64.b64encode(b"admin:" + pw.encode()) +
                  b"\r\nX-Espstm-Request: 1\r\nContent-Length: 0\r\n\r\n")
        s.settimeout(5)
        got = b""
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except socket.timeout:
            pass
        s.close()
        time.sleep(0.2)
        check("--http-plain: POST /api/pair answers, and the warning is logged",
              b" 200 " in got.split(b"\r\n")[0] and b'"identity"' in got and
              any("plain HTTP" in l and "pair" in l for l in c.log), (got[:300], c.log))
        r = run("pair", "127.0.0.1:%d" % c.port, "--key-dir", os.path.join(tmp, "keys4"),
                pwfile=os.path.join(tmp, "pw"))
        check("espstm pair to a plain-HTTP bridge: exit 1, no HTTPS, no key file",
              r.returncode == 1 and "no HTTPS connection" in r.stderr and
              not os.path.exists(os.path.join(tmp, "keys4")), (r.returncode, r.stderr))
    finally:
        for br in bridges:
            br.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        passed = sum(results)
        print("%d passed, %d failed" % (passed, len(results) - passed))
    sys.exit(0 if results and all(results) else 1)
