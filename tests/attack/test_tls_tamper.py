#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A man in the middle on the TLS-PSK RFC 2217 port of espstm-bridge, on 127.0.0.1 only.

Usage: test_tls_tamper.py BUILD_DIR
A proxy between `openssl s_client` (right identity and key) and the bridge parses the TLS
records going to the bridge and flips one bit in the middle of the first application-data
record (content type 23). Checks:
  - without the flip (the same proxy passing bytes through) the client is served: the
    simulated application's echo comes back inside TLS (so the check below can fail);
  - with the flip the bridge drops the connection and logs "record authentication failed:
    the stream was altered", and not one byte reaches the UART (/api/status
    bytes.to_uart unchanged): the altered record is refused, not delivered;
  - the next, honest client is served again.
Prints PASS/FAIL per check and "N passed, N failed"; exit status 0 only if all passed."""
import importlib.util
import os
import socket
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("test_ports", os.path.join(HERE, "test_ports.py"))
tp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tp)


class FlipProxy:
    """127.0.0.1:ephemeral -> 127.0.0.1:target; flip=True alters the first application-data
    record from the client (one bit in the middle of its body)."""

    def __init__(self, target, flip):
        self.target, self.flip, self.flipped = target, flip, 0
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(4)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            c, _ = self.ls.accept()
        except OSError:
            return
        s = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._up, args=(c, s), daemon=True).start()
        threading.Thread(target=self._pipe, args=(s, c), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _up(self, c, s):
        """client -> bridge, record by record (5-byte header: type, version, length)."""
        buf = b""
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                buf += d
                while len(buf) >= 5:
                    n = int.from_bytes(buf[3:5], "big")
                    if len(buf) < 5 + n:
                        break
                    rec, buf = bytearray(buf[:5 + n]), buf[5 + n:]
                    if self.flip and not self.flipped and rec[0] == 23 and n > 0:
                        rec[5 + n // 2] ^= 0x01
                        self.flipped += 1
                    s.sendall(bytes(rec))
        except OSError:
            pass
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.ls.close()


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("ESPSTM_BUILD", "build")
    build = os.path.abspath(build)
    with tempfile.TemporaryDirectory(prefix="espstm-tamper.") as tmp:
        with open(os.path.join(tmp, "pw"), "w") as f:
            f.write(tp.PASSWORD + "\n")
        os.chmod(os.path.join(tmp, "pw"), 0o600)
        with open(os.path.join(tmp, "f103.bin"), "wb") as f:
            f.write(tp.image())  # an application that echoes
        key = os.path.join(tmp, "unit.key")
        b = tp.Bridge(build, tmp, ["--key-file", key], legacy=False)
        try:
            if not tp.check("bridge with a unit key starts", b.ok, b.logtext()):
                return
            ident = secret = None
            for line in open(key):
                w = line.split()
                if len(w) == 2 and w[0] == "identity":
                    ident = w[1]
                elif len(w) == 2 and w[0] == "key":
                    secret = w[1]
            if not tp.check("key file has identity and key", ident and secret):
                return
            honest = FlipProxy(b.ports["rfc"], flip=False)
            rc, out, err = tp.s_client(honest.port, ident, secret, b"ping-proxy;")
            honest.close()
            tp.check("through the proxy without a flip: served (echo inside TLS)",
                     b"ping-proxy;" in out, "rc %d out %r err %r" % (rc, out[:200], err[-300:]))
            time.sleep(0.3)
            n = b.to_uart()
            evil = FlipProxy(b.ports["rfc"], flip=True)
            rc, out, err = tp.s_client(evil.port, ident, secret, b"ping-altered;")
            evil.close()
            time.sleep(0.5)
            tp.check("the proxy flipped one bit of an application-data record",
                     evil.flipped == 1, "flipped %d" % evil.flipped)
            tp.check("bridge refuses the altered record and says so",
                     "record authentication failed: the stream was altered" in b.logtext(),
                     b.logtext()[-600:])
            tp.check("the client gets no echo of the altered bytes",
                     b"ping-altered" not in out, repr(out[:200]))
            tp.check("not one byte of the altered stream reached the UART",
                     b.to_uart() == n, "to_uart %d -> %d" % (n, b.to_uart()))
            rc, out, err = tp.s_client(b.ports["rfc"], ident, secret, b"ping-next;")
            tp.check("the next honest client is served", b"ping-next;" in out,
                     "rc %d out %r" % (rc, out[:200]))
        finally:
            b.stop()


if __name__ == "__main__":
    try:
        main()
    finally:
        failed = sum(1 for ok in tp.results if not ok)
        print("%d passed, %d failed" % (len(tp.results) - failed, failed))
    sys.exit(1 if not tp.results or any(not ok for ok in tp.results) else 0)
