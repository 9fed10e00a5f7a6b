#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Client allow-list as a setting on espstm-bridge.

Usage: check.py BRIDGE_BINARY
Starts espstm-bridge on 127.0.0.1 (ephemeral RFC 2217, legacy and HTTP ports, simulated
STM32, --settings FILE) and checks:
  - with no list every client is served (raw bytes on the RFC 2217 port: the application
    echoes them);
  - PUT /api/settings {"allow": ...} applies at once: a client not in the list gets the line
    "espstm-bridge: client A.B.C.D not allowed" and is closed, on the RFC 2217 port and on
    both legacy ports; a client in the list is served;
  - an invalid list is refused with a per-field error and the list in force is kept;
  - the list is stored in the settings file and used again after a restart;
  - --allow on the command line overrides the setting.
Clients connect to 127.0.0.1, from the source address 127.0.0.1 or 127.0.0.2 (both
loopback). Prints PASS/FAIL per check and "N passed, N failed"; exit status 0 only if all
passed. Python stdlib only."""
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

results = []
PASSWORD = "allow-test-pw"


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
            break
        if not b:
            return data + b"<EOF>"
        data += b
    return data


class Bridge:
    def __init__(self, binary, tmp, extra=()):
        self.log = []
        self.ports = {}
        ready = threading.Event()
        self.p = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--target", "sim:stm32f103",
             "--flash", os.path.join(tmp, "f103.bin"), "--legacy-ports", "0,0",
             "--http", "127.0.0.1:0", "--password-file", os.path.join(tmp, "pw"),
             "--settings", os.path.join(tmp, "settings.json"), "--no-key"] + list(extra),
            stderr=subprocess.PIPE, text=True)

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
                if len(self.ports) == 4:
                    ready.set()
        threading.Thread(target=reader, daemon=True).start()
        self.ok = ready.wait(10)
        self.url = "http://127.0.0.1:%d" % self.ports.get("http", 0)

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        rq = urllib.request.Request(self.url + path, data=data, method=method)
        tok = base64.b64encode(("admin:" + PASSWORD).encode()).decode()
        rq.add_header("Authorization", "Basic " + tok)
        rq.add_header("X-Espstm-Request", "1")
        if data is not None:
            rq.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(rq, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        return self.p.returncode


def connect(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def refused(b, port, src, name):
    """The client from src on port gets the 'not allowed' line, then end of stream."""
    s = connect(b.ports[port], src)
    got = read_until(s, lambda d: d.endswith(b"<EOF>"))
    s.close()
    want = ("espstm-bridge: client %s not allowed\r\n<EOF>" % src).encode()
    return check("%s: client %s refused on the %s port" % (name, src, port), got == want,
                 repr(got))


def served(b, src, name):
    """The client from src on the RFC 2217 port is served: raw bytes sent first give a raw
    bridge, the simulated application echoes them."""
    s = connect(b.ports["rfc"], src)
    got = b""
    # bytes sent while the simulated application is still starting (power-on banner, right
    # after the bridge starts) are lost: send again until one comes back
    for i in range(5):
        tag = b"ping-allow-%d;" % i
        s.sendall(tag)
        got += read_until(s, lambda d: tag in d or d.endswith(b"<EOF>"), 1.0)
        if tag in got or got.endswith(b"<EOF>"):
            break
    s.close()
    time.sleep(0.3)  # the bridge sees the end of stream before the next client comes
    return check("%s: client %s served on the RFC 2217 port (application echo)" % (name, src),
                 b"ping-allow-" in got and b"not allowed" not in got and
                 not got.endswith(b"<EOF>"), repr(got))


def main():
    bridge = sys.argv[1] if len(sys.argv) > 1 else "build/espstm-bridge"
    tmp = tempfile.mkdtemp(prefix="espstm-allow-")
    img = bytearray(b"\xff" * (128 * 1024))
    img[0:8] = struct.pack("<II", 0x20005000, 0x08000101)  # SP, reset vector (Thumb)
    with open(os.path.join(tmp, "f103.bin"), "wb") as f:
        f.write(img)
    with open(os.path.join(tmp, "pw"), "w") as f:
        f.write(PASSWORD + "\n")
    settings = os.path.join(tmp, "settings.json")
    b = Bridge(bridge, tmp)
    logs = []
    try:
        if not check("bridge starts and prints its ports", b.ok, "\n".join(b.log)):
            return
        st, js = b.api("GET", "/api/settings")
        check("GET /api/settings has allow \"\" by default",
              st == 200 and js.get("allow") == "", "%d %r" % (st, js))
        served(b, "127.0.0.2", "no list")

        st, js = b.api("PUT", "/api/settings", {"allow": "10.0.0.0/8"})
        check("PUT allow 10.0.0.0/8: 200, saved",
              st == 200 and js.get("saved") is True and
              js.get("settings", {}).get("allow") == "10.0.0.0/8", "%d %r" % (st, js))
        for port in ("rfc", "raw", "ctl"):
            refused(b, port, "127.0.0.1", "10.0.0.0/8")
        check("refusal logged with the port",
              any("client 127.0.0.1 not allowed on the RFC 2217 port" in l for l in b.log) and
              any("not allowed on the legacy control port" in l for l in b.log),
              "\n".join(b.log[-8:]))
        check("new list logged",
              any("clients allowed: 10.0.0.0/8 (settings)" in l for l in b.log),
              "\n".join(b.log[-8:]))

        st, js = b.api("PUT", "/api/settings", {"allow": "10.0.0.300"})
        msg = js.get("fields", {}).get("allow", "")
        check("PUT allow 10.0.0.300: 400 with fields.allow naming the entry",
              st == 400 and "entry 1 '10.0.0.300'" in msg and "out of range" in msg,
              "%d %r" % (st, js))
        st, js = b.api("PUT", "/api/settings", {"allow": 5})
        check("PUT allow 5 (not a string): 400 with fields.allow",
              st == 400 and "allow" in js.get("fields", {}), "%d %r" % (st, js))
        st, js = b.api("GET", "/api/settings")
        check("invalid lists left the list in force",
              st == 200 and js.get("allow") == "10.0.0.0/8", "%d %r" % (st, js))
        refused(b, "rfc", "127.0.0.1", "after invalid PUTs")

        st, js = b.api("PUT", "/api/settings", {"allow": "127.0.0.1,10.0.0.0/8"})
        check("PUT allow 127.0.0.1,10.0.0.0/8: 200", st == 200, "%d %r" % (st, js))
        served(b, "127.0.0.1", "127.0.0.1,10.0.0.0/8")
        refused(b, "rfc", "127.0.0.2", "127.0.0.1,10.0.0.0/8")
        refused(b, "raw", "127.0.0.2", "127.0.0.1,10.0.0.0/8")
        with open(settings) as f:
            stored = json.load(f)
        check("list stored in the settings file", stored.get("allow") == "127.0.0.1,10.0.0.0/8",
              repr(stored))
        logs += b.log
        check("bridge exits 0 on SIGTERM", b.stop() == 0)

        # restart: the stored list is in force at once
        b = Bridge(bridge, tmp)
        if not check("bridge restarts with the stored settings", b.ok, "\n".join(b.log)):
            return
        check("start-up log names the stored list",
              any("clients allowed: 127.0.0.1/32,10.0.0.0/8 (settings)" in l for l in b.log),
              "\n".join(b.log))
        refused(b, "rfc", "127.0.0.2", "after restart")
        served(b, "127.0.0.1", "after restart")
        st, js = b.api("PUT", "/api/settings", {"allow": ""})
        check("PUT allow \"\": 200", st == 200 and js.get("settings", {}).get("allow") == "",
              "%d %r" % (st, js))
        served(b, "127.0.0.2", "empty list")
        st, js = b.api("PUT", "/api/settings", {"allow": "127.0.0.1"})
        check("PUT allow 127.0.0.1: 200", st == 200, "%d %r" % (st, js))
        logs += b.log
        check("bridge exits 0 on SIGTERM", b.stop() == 0)

        # --allow overrides the stored list and later PUTs
        b = Bridge(bridge, tmp, ["--allow", "127.0.0.2"])
        if not check("bridge starts with --allow", b.ok, "\n".join(b.log)):
            return
        check("start-up log: --allow in force, setting not used",
              any("clients allowed: 127.0.0.2/32 (--allow)" in l for l in b.log) and
              any("allow '127.0.0.1' not used: --allow 127.0.0.2 overrides it" in l
                  for l in b.log), "\n".join(b.log))
        served(b, "127.0.0.2", "--allow 127.0.0.2")
        refused(b, "rfc", "127.0.0.1", "--allow 127.0.0.2")
        st, js = b.api("PUT", "/api/settings", {"allow": "10.0.0.1"})
        check("PUT with --allow given: stored (200)",
              st == 200 and js.get("settings", {}).get("allow") == "10.0.0.1",
              "%d %r" % (st, js))
        refused(b, "rfc", "127.0.0.1", "--allow 127.0.0.2 after PUT")
        served(b, "127.0.0.2", "--allow 127.0.0.2 after PUT")
        logs += b.log
    finally:
        rc = b.stop()
        check("bridge exits 0 on SIGTERM", rc == 0, str(rc))
        passed = sum(results)
        print("%d passed, %d failed" % (passed, len(results) - passed))
        if len(results) != passed:
            print("--- bridge log ---\n" + "\n".join((logs + b.log)[-60:]))


main()
sys.exit(0 if results and all(results) else 1)
