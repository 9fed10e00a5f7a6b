#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Flashing benchmark, run by tests/bench/run where CUSE and netem work.

Usage: bench.py BUILD_DIR [RESULTS_DIR]
Environment: BENCH_NET (netem, the default: delay on lo, needs root and sch_netem; or proxy:
a user-space TCP proxy in this script delays each direction by RTT/2, no privileges, no
CUSE, so only `espstm flash --host` is measured), BENCH_SIZES (bytes, default
"65536 262144"), BENCH_RTTS (added round trip in ms, default "0 5 20"), BENCH_MODEL (default
stm32f407), BENCH_TOOLS (default "stm32flash stm32flash-plain espstm"; also espstm-stage),
BENCH_BRIDGE (another espstm-bridge binary, for experiments), ESPSTM_E2E_DEV (default
ttySTM0; the plaintext link's device is the next number, ttySTM1).

The TLS link: one espstm-bridge with a unit key (--key-file, made at its first start; TLS-PSK
on its RFC 2217 port, plaintext off; simulated STM32 with real wire time, --http with a
password file) and one espstmd (config with key = the bridge's key file, http_port, control
socket). The plaintext link (only with stm32flash-plain): a second espstm-bridge with its
own key and --plaintext, its own flash file, and a second espstmd without a key
(--device ttySTM1 --connect). For each added round trip (netem on lo: each direction passes
lo once, so delay = RTT / 2; the RTT is then measured as the time of a TCP connect on
127.0.0.1) and each size, a fresh random image is written and verified by
  (a) Debian's stm32flash through the CUSE tty over TLS:
        stm32flash -b 115200 -w IMG -v /dev/ttySTM0
  (a') the same through the plaintext link: ... /dev/ttySTM1 (tool stm32flash-plain)
  (b) espstm flash through the bridge's HTTP API: espstm flash ttySTM0 IMG --verify
and the simulator's flash file is compared with the image after each run. The time is the
command's wall clock; the CPU time (user + system, /proc/PID/stat utime + stime over the
clock tick) of the run's espstmd and espstm-bridge is read before and after each run (the
bridge's includes its simulated STM32). Prints a table with the wire-time limit of the same
AN3155 traffic (see limit()) and the TLS/plaintext ratios; writes it to
RESULTS_DIR/table.txt too."""
import json
import os
import re
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

BASE = 0x08000000
BAUD = 115200
BITS = 11  # 8E1: start + 8 data + parity + stop
# Simulated models (stm32sim/stm32sim.c models[], stm32sim/README.md "Timing table"):
# erase units (size, erase time s) from the flash base, programming (bytes per operation,
# seconds per operation), GET answer length (commands listed).
MODELS = {
    "stm32f407": {
        "units": [(16384, 0.4)] * 4 + [(65536, 1.1)] + [(131072, 2.0)] * 7,
        "prog": (4, 16e-6), "erase_cmd": 0x44, "ncmds": 11, "pid": "0x413"},
    "stm32g431": {
        "units": [(2048, 0.022)] * 64, "prog": (8, 81.7e-6), "erase_cmd": 0x44,
        "ncmds": 11, "pid": "0x468"},
    "stm32f103": {
        "units": [(1024, 0.020)] * 128, "prog": (2, 52.5e-6), "erase_cmd": 0x43,
        "ncmds": 11, "pid": "0x410"},
}
TAGS = {}  # log name -> runs so far (one_run)
RESET_S = 0.010 + 0.050  # NRST low 10 ms + settle 50 ms (bridge defaults, both tools)


def limit(model, size):
    """Wire-time limit of writing + verifying `size` bytes at BASE (AN3155, 256-byte blocks).

    Both tools must at least: reset into the bootloader (NRST 10 ms, settle 50 ms), then
    exchange over the UART, strictly in turn (each command waits for its ACK):
      sync        0x7F -> ACK                                    tx 1      rx 1
      GET         0x00 0xFF -> ACK N ver cmds.. ACK              tx 2      rx 4 + ncmds
      GET VERSION 0x01 0xFE -> ACK ver opt1 opt2 ACK             tx 2      rx 5
      GET ID      0x02 0xFD -> ACK N PIDhi PIDlo ACK             tx 2      rx 5
      ERASE of the k units the image covers:
        0x44: 0x44 0xBB -> ACK, (k-1):2 pages:2k cksum -> ACK    tx 5 + 2k rx 2
        0x43: 0x43 0xBC -> ACK, (k-1) pages:k cksum -> ACK       tx 4 + k  rx 2
        + the units' erase time (simulator: typical datasheet values)
      per 256-byte block (n = size / 256):
        WRITE MEMORY 0x31 0xCE ACK, addr4+x ACK, N data256 x ACK tx 265    rx 3
          + programming 256 bytes (simulator: bytes / unit x unit time)
        READ MEMORY  0x11 0xEE ACK, addr4+x ACK, N ~N ACK data256 tx 9     rx 259
    Every byte is 11 bits (8E1) at 115200 baud: 95.49 us. The limit is
      t = 0.060 s + (tx + rx) * 11 / 115200 + erase time + n * programming time.
    Not counted: any processing time of the chip or the bridge, the network."""
    m = MODELS[model]
    covered, k, erase_s = 0, 0, 0.0
    for usize, us in m["units"]:
        if covered >= size:
            break
        covered += usize
        k += 1
        erase_s += us
    n = (size + 255) // 256
    tx = 1 + 2 + 2 + 2 + (5 + 2 * k if m["erase_cmd"] == 0x44 else 4 + k) + n * (265 + 9)
    rx = 1 + (4 + m["ncmds"]) + 5 + 5 + 2 + n * (3 + 259)
    wire_s = (tx + rx) * BITS / BAUD
    unit, unit_s = m["prog"]
    prog_s = n * (256 // unit) * unit_s
    total = RESET_S + wire_s + erase_s + prog_s
    return {"total": total, "wire": wire_s, "erase": erase_s, "prog": prog_s, "tx": tx,
            "rx": rx, "units": k, "blocks": n}


def log(msg):
    print(msg, flush=True)


def image(path, size):
    """A plausible application (vector table: SP in RAM, odd reset vector in flash) and
    random bytes."""
    data = struct.pack("<II", 0x20004000, BASE + 0x131) + os.urandom(size - 8)
    with open(path, "wb") as f:
        f.write(data)
    return data


class Proc:
    """A background program whose stderr+stdout lines are collected."""

    def __init__(self, argv, logpath):
        self.lines = []
        self.logf = open(logpath, "w")
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))
            self.logf.write(line)
            self.logf.flush()

    def wait_for(self, regex, timeout):
        end = time.monotonic() + timeout
        r = re.compile(regex)
        while time.monotonic() < end:
            for ln in list(self.lines):
                m = r.search(ln)
                if m:
                    return m
            if self.p.poll() is not None:
                break
            time.sleep(0.05)
        return None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class DelayProxy:
    """TCP proxy on 127.0.0.1 that delays every chunk by `delay_s` in each direction (so the
    round trip grows by 2 * delay_s), for machines without sch_netem. Per direction a
    reader thread stamps what it reads and a writer thread sends it when due; a direction
    holds at most WINDOW bytes in flight (the reader waits), like a TCP window. A close
    or reset travels with the same delay (a shutdown after the last data)."""

    WINDOW = 65536

    def __init__(self, target_port):
        self.target = ("127.0.0.1", target_port)
        self.delay_s = 0.0
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            try:
                u = socket.create_connection(self.target)
            except OSError:
                c.close()
                continue
            for s in (c, u):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            delay = self.delay_s
            self._pipe(c, u, delay)
            self._pipe(u, c, delay)

    def _pipe(self, src, dst, delay):
        cv = threading.Condition()
        q = []  # (due, bytes or None at the end, reset?)
        state = {"held": 0}

        def reader():
            while True:
                try:
                    b = src.recv(16384)
                    rst = False
                except OSError:
                    b, rst = b"", True
                with cv:
                    while b and state["held"] >= self.WINDOW:
                        cv.wait()
                    q.append((time.monotonic() + delay, b or None, rst))
                    state["held"] += len(b)
                    cv.notify_all()
                if not b:
                    return

        def writer():
            while True:
                with cv:
                    while not q:
                        cv.wait()
                    due, b, rst = q[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                with cv:
                    q.pop(0)
                    state["held"] -= len(b) if b else 0
                    cv.notify_all()
                if b is None:
                    try:
                        if rst:  # pass a reset on as a reset (espstm's abort uses one)
                            dst.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                            dst.close()
                        else:
                            dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                try:
                    dst.sendall(b)
                except OSError:
                    return

        threading.Thread(target=reader, daemon=True).start()
        threading.Thread(target=writer, daemon=True).start()

    def close(self):
        self.ls.close()


def measure_proxy_rtt_ms(delay_s, n=7):
    """Median time for one byte to go to an echo server on 127.0.0.1 through a DelayProxy
    with delay_s each way and back, in ms (the proxy's own cost included)."""
    es = socket.socket()
    es.bind(("127.0.0.1", 0))
    es.listen(1)

    def echo():
        c, _ = es.accept()
        while True:
            b = c.recv(64)
            if not b:
                break
            c.sendall(b)
        c.close()

    threading.Thread(target=echo, daemon=True).start()
    px = DelayProxy(es.getsockname()[1])
    px.delay_s = delay_s
    s = socket.create_connection(("127.0.0.1", px.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(b"x")
        s.recv(1)
        times.append((time.perf_counter() - t0) * 1000)
    s.close()
    px.close()
    es.close()
    return statistics.median(times)


def tc(*args):
    r = subprocess.run(["tc"] + list(args), capture_output=True, text=True)
    return r.returncode, (r.stdout + r.stderr).strip()


def set_rtt(rtt_ms):
    """netem on lo: each packet passes lo once per direction, so delay = RTT / 2."""
    tc("qdisc", "del", "dev", "lo", "root")
    if rtt_ms <= 0:
        return None
    us = int(round(rtt_ms * 1000 / 2))
    rc, out = tc("qdisc", "add", "dev", "lo", "root", "netem", "delay", "%dus" % us,
                 "limit", "100000")
    return None if rc == 0 else "tc qdisc add dev lo root netem delay %dus: %s" % (us, out)


def measure_rtt_ms(n=7):
    """Median time of a TCP connect to a listener on 127.0.0.1 (SYN -> SYN-ACK: one round
    trip), in ms."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(16)
    port = ls.getsockname()[1]
    times = []
    for _ in range(n):
        s = socket.socket()
        t0 = time.perf_counter()
        s.connect(("127.0.0.1", port))
        times.append((time.perf_counter() - t0) * 1000)
        c, _ = ls.accept()
        c.close()
        s.close()
    ls.close()
    return statistics.median(times)


def run_timed(argv, logpath, env=None, timeout=1200):
    """Run argv; its output goes to logpath with each line (CR or LF ended) stamped with
    the seconds since the start. Returns (exit status, seconds, [(t, line), ...])."""
    t0 = time.monotonic()
    stamped = []
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL, env=env)
    killer = threading.Timer(timeout, p.kill)
    killer.start()
    part = b""
    with open(logpath, "w") as f:
        while True:
            b = p.stdout.read1(4096) if hasattr(p.stdout, "read1") else p.stdout.read(1)
            if not b:
                break
            t = time.monotonic() - t0
            part += b
            while True:
                cut = min([i for i in (part.find(b"\r"), part.find(b"\n")) if i >= 0],
                          default=-1)
                if cut < 0:
                    break
                line = part[:cut].decode("utf-8", "replace")
                part = part[cut + 1:]
                if line:
                    stamped.append((t, line))
                    f.write("[%7.3f] %s\n" % (t, line))
        if part:
            stamped.append((time.monotonic() - t0, part.decode("utf-8", "replace")))
            f.write("[%7.3f] %s\n" % (stamped[-1][0], stamped[-1][1]))
    rc = p.wait()
    killer.cancel()
    secs = time.monotonic() - t0
    return (124 if rc < 0 else rc), secs, stamped


def cpu_s(pid):
    """User + system CPU seconds the process `pid` has used so far (/proc/PID/stat fields 14
    utime and 15 stime, in clock ticks, over sysconf(SC_CLK_TCK)); None if it is gone or
    pid is None."""
    if pid is None:
        return None
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return None
    rest = st[st.rindex(")") + 2:].split()  # after "PID (comm) ": field 3 (state) on
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def stm32flash_phases(stamped):
    """From stm32flash's progress lines: (seconds to the first block: start-up, sync, GET,
    GET ID, erase; ms per block: first to last block's line), None where unknown.
    stm32flash's "Erasing memory" is not flushed on a pipe before the first block's line,
    so the erase cannot be told apart from the start."""
    blocks = [t for t, ln in stamped if ln.startswith("Wrote and verified")]
    per = (blocks[-1] - blocks[0]) / (len(blocks) - 1) * 1000 if len(blocks) > 2 else None
    first = blocks[0] - (per / 1000 if per is not None else 0) if blocks else None
    return first, per


def detail(r, lim):
    """The last column: where the time went, as far as the outputs tell."""
    per_block = (BITS * (265 + 3 + 9 + 259) / BAUD + lim["prog"] / lim["blocks"]) * 1000
    if r.get("bridge_ms") is not None:
        return "bridge's run %.1f s (%.2f)" % (r["bridge_ms"] / 1000,
                                               r["bridge_ms"] / 1000 / lim["total"])
    ph = r.get("phases")
    if ph and ph[1] is not None:
        return "to 1st block %.1f s (erase %.1f), then %.0f ms/block (wire %.1f)" % (
            ph[0], lim["erase"], ph[1], per_block)
    return ""


def one_run(build, tmp, logdir, model, size, rtt, measured, tool, link, env, notes):
    """Write + verify a fresh random image of `size` bytes with `tool` ("stm32flash TLS" or
    "stm32flash plain": the device link["args"][0]; "espstm flash": link["args"] are the
    device or --host HOST:PORT), compare the simulator's flash file link["flash"], log a
    line. The CPU seconds of link["daemon"] and link["bridge"] (pids, or None) are taken
    before and after. Returns the table row."""
    img = "img%d.bin" % size
    data = image(img, size)
    tag = "%dk-%gms-%s" % (size // 1024, rtt, "-".join(tool.replace("--", "").split()))
    TAGS[tag] = TAGS.get(tag, 0) + 1  # a tool named twice in BENCH_TOOLS: one log per run
    tag += "" if TAGS[tag] == 1 else "-%d" % TAGS[tag]
    where_args = link["args"]
    cpu0 = [cpu_s(link["daemon"]), cpu_s(link["bridge"])]
    if tool.startswith("stm32flash"):
        argv = ["/usr/bin/stm32flash", "-b", "115200", "-w", img, "-v", "/dev/" + where_args[0]]
    else:
        argv = [build + "/espstm", "--json", "flash"] + where_args + [
            img, "--verify", "--password-file", tmp + "/pw"] + link.get("espstm_opts", [])
        if tool == "espstm --stage":  # the whole image to the bridge first, CRC-32 checked
            argv.append("--stage")
    rc, secs, stamped = run_timed(argv, os.path.join(logdir, tag + ".log"), env)
    cpu1 = [cpu_s(link["daemon"]), cpu_s(link["bridge"])]
    cpu = [b - a if a is not None and b is not None else None for a, b in zip(cpu0, cpu1)]
    with open(link["flash"], "rb") as f:
        same = f.read(size) == data
    bridge_ms, phases = None, None
    if tool.startswith("stm32flash"):
        phases = stm32flash_phases(stamped)
    else:
        for _, ln in stamped:
            if ln.startswith("{"):
                try:
                    bridge_ms = json.loads(ln).get("elapsed_ms")
                except ValueError:
                    pass
    ok = rc == 0 and same
    if not ok:
        notes.append("%s: exit %d, flash %s (log %s.log)"
                     % (tag, rc, "matches" if same else "DIFFERS", tag))
    elif tool == "stm32flash TLS" and not link["bridge_proc"].wait_for("TLS session open", 1):
        ok = False  # the row would not measure what it says
        notes.append("%s: the bridge logged no TLS session (bridge.log)" % tag)
    row = {"size": size, "rtt": rtt, "measured": measured, "tool": tool, "secs": secs,
           "ok": ok, "bridge_ms": bridge_ms, "phases": phases, "cpu": cpu}
    log("bench: %-7s RTT %4g ms  %-16s %7.1f s  %s  CPU daemon %s bridge %s s  %s"
        % ("%d KiB" % (size // 1024), rtt, tool, secs, "ok" if ok else "FAILED",
           fmt_cpu(cpu[0]).strip(), fmt_cpu(cpu[1]).strip(), detail(row, limit(model, size))))
    return row


def help_text(argv):
    """The --help output (stdout + stderr) of argv, "" if it cannot run."""
    try:
        r = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return r.stdout + r.stderr


def fmt_cpu(v):
    return "%6s" % "-" if v is None else "%6.2f" % v


def tls_ratio(row, rows):
    """For a "stm32flash TLS" row: its time over the median time of the same size and RTT's
    "stm32flash plain" rows, and its CPU seconds minus their medians, as text; "" if there
    is none or the run failed."""
    plain = [p for p in rows if p["tool"] == "stm32flash plain" and p["ok"]
             and p["size"] == row["size"] and p["rtt"] == row["rtt"]]
    if row["tool"] != "stm32flash TLS" or not row["ok"] or not plain:
        return ""
    parts = ["TLS/plain: time %.3f" % (row["secs"] / statistics.median(p["secs"] for p in plain))]
    for i, who in ((0, "daemon CPU"), (1, "bridge CPU")):
        b = [p["cpu"][i] for p in plain if p["cpu"][i] is not None]
        if row["cpu"][i] is not None and b:
            parts.append("%s %+.2f s" % (who, row["cpu"][i] - statistics.median(b)))
    return ", ".join(parts) + "; "


def tls_summary(rows, size):
    """Lines comparing the medians of the "stm32flash TLS" and "stm32flash plain" runs of
    `size` bytes at each RTT (time ratio, CPU differences), for repeated tools
    (BENCH_TOOLS="stm32flash stm32flash-plain stm32flash-plain stm32flash ...")."""
    out = []
    for rtt in sorted({r["rtt"] for r in rows if r["size"] == size}):
        sel = {t: [r for r in rows if r["tool"] == t and r["ok"] and r["size"] == size
                   and r["rtt"] == rtt] for t in ("stm32flash TLS", "stm32flash plain")}
        t, p = sel["stm32flash TLS"], sel["stm32flash plain"]
        if not t or not p or len(t) + len(p) < 3:
            continue
        med = [[statistics.median(x) for x in
                ([r["secs"] for r in g], [r["cpu"][0] or 0 for r in g], [r["cpu"][1] or 0
                                                                         for r in g])]
               for g in (t, p)]
        out.append("  RTT %g ms, medians of %d TLS and %d plaintext runs: time %.1f / %.1f s "
                   "= %.3f; daemon CPU %.2f / %.2f s (%+.2f); bridge CPU %.2f / %.2f s (%+.2f)"
                   % (rtt, len(t), len(p), med[0][0], med[1][0], med[0][0] / med[1][0],
                      med[0][1], med[1][1], med[0][1] - med[1][1], med[0][2], med[1][2],
                      med[0][2] - med[1][2]))
    return out


def plain_device(dev):
    """The plaintext link's device name: ttySTM<n+1> after ttySTM<n>, else dev + "p"."""
    m = re.match(r"^(.*?)(\d+)$", dev)
    return "%s%d" % (m.group(1), int(m.group(2)) + 1) if m else dev + "p"


def start_daemon(build, args, dev, logpath, procs):
    """Start espstmd with args (+ --foreground) and wait until /dev/dev exists; the Proc,
    or None (logged) if it did not get ready."""
    dm = Proc([build + "/espstmd"] + args + ["--foreground"], logpath)
    procs.append(dm)
    if not dm.wait_for(r"espstmd: ready: /dev/%s" % re.escape(dev), 30):
        log("bench: espstmd for %s did not start: %s" % (dev, " | ".join(dm.lines[-5:])))
        return None
    end = time.monotonic() + 10
    while not os.path.exists("/dev/" + dev) and time.monotonic() < end:
        time.sleep(0.1)
    return dm


def main():
    build = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
    results = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
    sizes = [int(x, 0) for x in os.environ.get("BENCH_SIZES", "65536 262144").split()]
    rtts = [float(x) for x in os.environ.get("BENCH_RTTS", "0 5 20").split()]
    model = os.environ.get("BENCH_MODEL", "stm32f407")
    names = {"stm32flash": "stm32flash TLS", "stm32flash-plain": "stm32flash plain",
             "espstm": "espstm flash", "espstm-stage": "espstm --stage"}
    tools = [names.get(t, "?") for t in
             os.environ.get("BENCH_TOOLS", "stm32flash stm32flash-plain espstm").split()]
    if "?" in tools:
        log("bench: BENCH_TOOLS: stm32flash, stm32flash-plain, espstm and/or espstm-stage")
        return 2
    dev = os.environ.get("ESPSTM_E2E_DEV", "ttySTM0")
    net = os.environ.get("BENCH_NET", "netem")
    if net not in ("netem", "proxy"):
        log("bench: BENCH_NET: netem or proxy")
        return 2
    if net == "proxy" and any(t.startswith("stm32flash") for t in tools):
        # no /dev/ttySTM0 without CUSE: the proxy mode measures the HTTP path only
        tools = [t for t in tools if not t.startswith("stm32flash")]
        if not tools:
            log("bench: BENCH_NET=proxy measures espstm flash (--stage) only: no CUSE tty")
            return 2
    where = os.environ.get("BENCH_WHERE", "here")
    if model not in MODELS:
        log("bench: BENCH_MODEL %s unknown (%s)" % (model, ", ".join(MODELS)))
        return 2
    for s in sizes:
        if s <= 0 or s % 256:
            log("bench: BENCH_SIZES: %d is not a positive multiple of 256" % s)
            return 2
    tmp = tempfile.mkdtemp(prefix="espstm-bench-")
    os.chdir(tmp)
    if results:
        os.makedirs(results, exist_ok=True)
    logdir = results or tmp
    procs = []
    rows = []
    notes = []
    try:
        with open(os.open("pw", os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write("bench-" + os.urandom(6).hex() + "\n")
        bridge = os.environ.get("BENCH_BRIDGE") or build + "/espstm-bridge"
        # HTTPS on --http when the bridge has a key, unless --http-plain (if this bridge and
        # espstm know it): espstm flash keeps plain HTTP here, as before the TLS link
        http_plain = ["--http-plain"] if "--http-plain" in help_text([bridge]) else []
        cli_plain = ["--http-plain"] if "--http-plain" in help_text([build + "/espstm",
                                                                     "flash"]) else []
        br = Proc([bridge, "--listen", "127.0.0.1:0", "--target", "sim:" + model,
                   "--flash", tmp + "/flash.bin", "--key-file", tmp + "/unit.key",
                   "--http", "127.0.0.1:0", "--password-file", tmp + "/pw"] + http_plain,
                  os.path.join(logdir, "bridge.log"))
        procs.append(br)
        m1 = br.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 20)
        m2 = br.wait_for(r"http on 127\.0\.0\.1:(\d+)", 20)
        mk = br.wait_for(r"RFC 2217: TLS-PSK .*plaintext off", 20)
        if not m1 or not m2 or not mk:
            log("bench: espstm-bridge did not start with a key: %s" % " | ".join(br.lines[-5:]))
            return 1
        env = dict(os.environ, ESPSTM_SOCKET=tmp + "/ctl.sock")
        env.pop("ESPSTM_PASSWORD", None)
        tls = {"args": [dev], "flash": tmp + "/flash.bin", "daemon": None, "bridge": br.p.pid,
               "bridge_proc": br, "espstm_opts": cli_plain}
        for rtt in rtts if net == "proxy" else []:
            proxy = DelayProxy(int(m2.group(1)))
            proxy.delay_s = rtt / 2000.0
            measured = measure_proxy_rtt_ms(proxy.delay_s)
            log("bench: added RTT %g ms (user-space proxy, %g ms each way): measured echo "
                "RTT %.2f ms" % (rtt, rtt / 2, measured))
            for size in sizes:
                for tool in tools:
                    rows.append(one_run(build, tmp, logdir, model, size, rtt, measured, tool,
                                        dict(tls, args=["--host", "127.0.0.1:%d" % proxy.port]),
                                        env, notes))
            proxy.close()
        if net == "proxy":
            rtts = []
        else:
            with open("espstm.conf", "w") as f:
                f.write("[%s]\nhost = 127.0.0.1\nport = %s\nhttp_port = %s\nkey = %s\n"
                        % (dev, m1.group(1), m2.group(1), tmp + "/unit.key"))
            dm = start_daemon(build, ["-c", tmp + "/espstm.conf", "--control", tmp + "/ctl.sock"],
                              dev, os.path.join(logdir, "daemon.log"), procs)
            if not dm:
                return 1
            tls["daemon"] = dm.p.pid
            log("bench: %s, 115200 8E1 with real wire time; TLS link: espstm-bridge %s (key), "
                "espstmd on /dev/%s (key)" % (model, m1.group(1), dev))
        plain = None
        if rtts and "stm32flash plain" in tools:
            # the plaintext link: a second bridge (own key, --plaintext, own flash file) and a
            # second espstmd without a key on the next device
            pdev = plain_device(dev)
            bp = Proc([bridge, "--listen", "127.0.0.1:0", "--target", "sim:" + model, "--flash",
                       tmp + "/flash-plain.bin", "--key-file", tmp + "/unit-plain.key",
                       "--plaintext"], os.path.join(logdir, "bridge-plain.log"))
            procs.append(bp)
            m3 = bp.wait_for(r"listening on 127\.0\.0\.1:(\d+)", 20)
            if not m3 or not bp.wait_for(r"RFC 2217: TLS-PSK .*plaintext on", 20):
                log("bench: espstm-bridge --plaintext did not start: %s"
                    % " | ".join(bp.lines[-5:]))
                return 1
            dp = start_daemon(build, ["--device", pdev, "--connect", "127.0.0.1:" + m3.group(1),
                                      "--control", tmp + "/ctl-plain.sock"],
                              pdev, os.path.join(logdir, "daemon-plain.log"), procs)
            if not dp:
                return 1
            plain = {"args": [pdev], "flash": tmp + "/flash-plain.bin", "daemon": dp.p.pid,
                     "bridge": bp.p.pid, "bridge_proc": bp}
            log("bench: plaintext link: espstm-bridge %s (--plaintext), espstmd on /dev/%s "
                "(no key)" % (m3.group(1), pdev))
        for rtt in rtts:
            err = set_rtt(rtt)
            if err:
                log("bench: " + err)
                return 1
            measured = measure_rtt_ms()
            log("bench: added RTT %g ms (netem delay %g ms each way on lo): measured TCP "
                "connect RTT %.2f ms" % (rtt, rtt / 2, measured))
            for size in sizes:
                for tool in tools:
                    rows.append(one_run(build, tmp, logdir, model, size, rtt, measured, tool,
                                        plain if tool == "stm32flash plain" else tls, env,
                                        notes))
        set_rtt(0)
    finally:
        set_rtt(0)
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    out = []
    out.append("")
    out.append("Write + verify at 115200 8E1, simulated %s (real wire time), %s, %s"
               % (model, where, time.strftime("%Y-%m-%d %H:%M")))
    out.append("")
    hdr = "%-8s %-12s %-16s %8s %8s %7s %7s %7s  %s" % (
        "size", "RTT ms", "tool", "seconds", "KiB/s", "ratio", "daemon", "bridge", "")
    out.append(hdr)
    out.append("%-8s %-12s %-16s %8s %8s %7s %7s %7s"
               % ("", "", "", "", "", "", "CPU s", "CPU s"))
    out.append("-" * len(hdr))
    for size in sizes:
        lim = limit(model, size)
        out.append("%-8s %-12s %-16s %8.1f %8.2f %7.2f %7s %7s  %s"
                   % ("%d KiB" % (size // 1024), "-", "wire limit", lim["total"],
                      size / 1024 / lim["total"], 1.0, "-", "-",
                      "wire %.1f + erase %.1f + program %.2f + reset 0.06 s"
                      % (lim["wire"], lim["erase"], lim["prog"])))
        for r in rows:
            if r["size"] != size:
                continue
            extra = tls_ratio(r, rows) + detail(r, lim) + ("" if r["ok"] else " FAILED")
            if r["ok"]:
                speed = "%8.2f %7.2f" % (size / 1024 / r["secs"], r["secs"] / lim["total"])
            else:  # a failed run's time is not a speed
                speed = "%8s %7s" % ("-", "-")
            out.append("%-8s %-12s %-16s %8.1f %s %7s %7s  %s"
                       % ("%d KiB" % (size // 1024),
                          "%g (%.1f)" % (r["rtt"], r["measured"]), r["tool"], r["secs"],
                          speed, fmt_cpu(r["cpu"][0]).strip(), fmt_cpu(r["cpu"][1]).strip(),
                          extra))
        out.extend(tls_summary(rows, size))
        out.append("")
    lim = {s: limit(model, s) for s in sizes}
    if net == "proxy":
        out.append("RTT ms: added round trip (a user-space TCP proxy in bench.py delays each")
        out.append("direction by RTT/2; espstm flash --host goes through it), in brackets the")
        out.append("measured echo round trip through such a proxy. ratio = seconds / wire limit.")
    else:
        out.append("RTT ms: added round trip (netem delay RTT/2 on lo), in brackets the measured")
        out.append("TCP connect time on 127.0.0.1. ratio = seconds / wire limit.")
    out.append("Wire limit of the same AN3155 traffic: reset 10 ms + settle 50 ms, then sync, GET,")
    out.append("GET VERSION, GET ID, one erase of the units the image covers (+ their erase time),")
    out.append("and per 256-byte block WRITE MEMORY (tx 265, rx 3 bytes, + programming) and READ")
    out.append("MEMORY (tx 9, rx 259); every byte 11 bits (8E1) at 115200 baud = 95.49 us,")
    out.append("strictly in turn:")
    out.append("  t = 0.060 + (tx + rx) * 11 / 115200 + erase + blocks * program")
    for s in sizes:
        v = lim[s]
        out.append("  %3d KiB: %d blocks, tx %d + rx %d bytes = %.2f s wire, %d erase units %.2f s,"
                   " program %.3f s" % (s // 1024, v["blocks"], v["tx"], v["rx"], v["wire"],
                                       v["units"], v["erase"], v["prog"]))
    out.append("Times are wall clock of each command (%s), so they include process start-up;"
               % where)
    out.append("\"bridge's run\" is the bridge's own elapsed_ms of the espstm flash run.")
    out.append("daemon / bridge CPU s: user + system seconds of the run's espstmd and")
    out.append("espstm-bridge during the command (/proc/PID/stat; the bridge's includes its")
    out.append("simulated STM32). stm32flash TLS: espstmd with key = the bridge's unit key,")
    out.append("TLS-PSK (RFC 4279) on the RFC 2217 link; stm32flash plain: a second bridge with")
    out.append("--plaintext and an espstmd without a key. TLS/plain: the TLS run's time over the")
    out.append("plaintext run's, and the difference of their CPU seconds.")
    for n in notes:
        out.append("FAILED " + n)
    text = "\n".join(out)
    print(text, flush=True)
    if results:
        with open(os.path.join(results, "table.txt"), "w") as f:
            f.write(text + "\n")
    return 0 if not notes else 1


if __name__ == "__main__":
    sys.exit(main())
