# shellcheck shell=bash
# cli: the espstm tool against espstmd's control socket (espstm(1), daemon/ctl.h).
# espstmd runs with --control in the scenario dir; the bridge runs with --auto-boot off, so
# only `espstm boot` can have started the bootloader that ACKs the 0x7F.
SCENARIOS+="
cli:90:espstm status (up, peer; 9600 8E1 and one open while a program holds the port), reset/boot/run (banner, 0x7F ACK 0x79 only after boot, banner), unknown device exit 1, no socket exit 69
"

# cli_port.py DEV ESPSTM: with DEV held open at 9600 8E1, `espstm status` shows that line
# and one open; then at 115200: reset -> banner; boot -> 0x7F at 8E1 gets ACK 0x79 (and not
# before the boot); run -> banner. One python process for all of it (startups are slow
# under TCG).
cli_port_py() {
    cat >cli_port.py <<'EOF'
import subprocess, sys, time
import serial

dev, espstm = sys.argv[1], sys.argv[2]
name = dev[len("/dev/"):]


def tool(*args):
    r = subprocess.run([espstm] + list(args), capture_output=True, text=True, timeout=20)
    print("espstm %s: exit %d" % (" ".join(args), r.returncode), flush=True)
    print(r.stdout + r.stderr, end="", flush=True)
    if r.returncode != 0:
        sys.exit("FAIL: espstm %s exited %d" % (" ".join(args), r.returncode))
    return r.stdout


def banner(s, what):
    deadline = time.monotonic() + 8
    seen = []
    while time.monotonic() < deadline:
        line = s.readline()
        if line.startswith(b"stm32sim app"):
            print("%s: %s" % (what, line.decode("ascii", "replace").strip()), flush=True)
            return
        if line:
            seen.append(line)
    sys.exit("FAIL: no banner after %s; got %r" % (what, seen[-5:]))


def sync(s, what):
    """Send 0x7F (8E1); the bootloader answers ACK 0x79. Returns the byte read (or b"")."""
    s.reset_input_buffer()
    s.write(b"\x7f")
    got = s.read(1)
    print("%s: 0x7F -> %r" % (what, got), flush=True)
    return got


s = serial.Serial()
s.port, s.baudrate, s.parity, s.timeout = dev, 9600, serial.PARITY_EVEN, 1.0
s.dtr = False  # no reset of our own: DTR asserted = NRST low (direct line map)
s.rts = False
s.open()
out = tool("status", name)
for want in ("  line        9600 8E1\n", "  opens       1\n"):
    if want not in out:
        sys.exit("FAIL: espstm status while held at 9600 8E1 lacks %r" % want)

s.baudrate, s.parity = 115200, serial.PARITY_NONE
time.sleep(0.2)
s.reset_input_buffer()
tool("reset", name)
banner(s, "reset")

# the application runs: 0x7F at 8E1 is not the bootloader's ACK
s.parity = serial.PARITY_EVEN
if sync(s, "application") == b"\x79":
    sys.exit("FAIL: ACK 0x79 without espstm boot (is auto-boot off?)")

tool("boot", name)
if sync(s, "boot") != b"\x79":
    sys.exit("FAIL: no ACK 0x79 from the bootloader after espstm boot")

s.parity = serial.PARITY_NONE
s.reset_input_buffer()
tool("run", name)
banner(s, "run")
s.close()
print("OK", flush=True)
EOF
}

sc_cli() {
    local espstm="$E2E_BUILD/espstm" sock="$PWD/ctl.sock" out
    [ -x "$espstm" ] || { fail "$espstm is missing (make $E2E_BUILD/espstm)"; return 1; }
    # the chip holds an application from the start: a banner after every reset into it
    # (vector table: SP 0x20004000, reset 0x08000131; 8 KiB in all, the rest erased)
    { printf '\000\100\000\040\061\001\000\010'; head -c 8184 /dev/urandom
      head -c $((131072 - 8192)) /dev/zero | tr '\000' '\377'; } >flash.bin ||
        { fail "could not write flash.bin"; return 1; }
    step "start bridge (stm32f103, --auto-boot off)"
    start_bridge bridge.log stm32f103 flash.bin 0 -v --auto-boot off 2>>steps.log ||
        { fail "bridge did not start"; return 1; }
    step "start espstmd --control $sock (bridge port $BRIDGE_PORT)"
    : >daemon.log
    "$E2E_BUILD/espstmd" --device "$DEV" --connect "127.0.0.1:$BRIDGE_PORT" --key "$BRIDGE_KEY" \
        --foreground --control "$sock" >>daemon.log 2>&1 </dev/null &
    DAEMON_PID=$!
    wait_line daemon.log "espstmd: ready: /dev/$DEV" 15 || { fail "no 'espstmd: ready: /dev/$DEV' within 15 s"; return 1; }
    [ -S "$sock" ] || { fail "no control socket at $sock after ready"; return 1; }
    export ESPSTM_SOCKET=$sock

    # 1. status: up, with the bridge as peer (the link may come up just after ready)
    for _ in $(seq 50); do
        "$espstm" status "$DEV" >status.log 2>&1 && grep -q '^  state       up' status.log && break
        sleep 0.2
    done
    cat status.log >>steps.log
    grep -q '^  state       up' status.log || { fail "espstm status: not up within 10 s: $(tr '\n' '|' <status.log)"; return 1; }
    grep -qx "  peer        127.0.0.1:$BRIDGE_PORT (rfc2217)" status.log ||
        { fail "espstm status: no peer 127.0.0.1:$BRIDGE_PORT: $(tr '\n' '|' <status.log)"; return 1; }
    grep -qx "$DEV" status.log || { fail "espstm status: no '$DEV' line"; return 1; }
    run_logged json "$espstm" --json status "/dev/$DEV" || { fail "espstm --json status exit $?"; return 1; }
    cat json.log >>steps.log
    grep -q "^{\"ok\":true,\"devices\":\[{\"name\":\"$DEV\",.*\"state\":\"up\",\"peer\":\"127.0.0.1:$BRIDGE_PORT\"" json.log ||
        { fail "espstm --json status: unexpected answer: $(head -c 300 json.log)"; return 1; }

    # 2. 9600 8E1 while a program holds the port; 3. reset/boot/run
    cli_port_py
    run_logged port timeout 60 "$PY" cli_port.py "/dev/$DEV" "$espstm" ||
        { fail "$(grep FAIL port.log | head -1) (see port.log)"; return 1; }
    grep -q 'pins: NRST=low BOOT0=high' bridge.log || { fail "bridge log shows no NRST pulse with BOOT0 high after espstm boot"; return 1; }

    # 4. errors: an unknown device (1), usage (2), no daemon on the socket (69)
    "$espstm" reset ttySTM9 >unknown.log 2>&1; out=$?
    step "espstm reset ttySTM9: exit $out: $(cat unknown.log)"
    [ $out -eq 1 ] || { fail "espstm reset ttySTM9: exit $out, want 1"; return 1; }
    grep -q "unknown device 'ttySTM9'" unknown.log || { fail "espstm reset ttySTM9: $(cat unknown.log)"; return 1; }
    "$espstm" boot >usage.log 2>&1; out=$?
    [ $out -eq 2 ] || { fail "espstm boot (no DEVICE): exit $out, want 2"; return 1; }
    "$espstm" --socket "$PWD/none.sock" status >missing.log 2>&1; out=$?
    step "espstm --socket none.sock status: exit $out: $(cat missing.log)"
    [ $out -eq 69 ] || { fail "espstm with no socket: exit $out, want 69"; return 1; }
    grep -q "$PWD/none.sock" missing.log || { fail "espstm with no socket: message lacks the path: $(cat missing.log)"; return 1; }

    # the counters moved: the banners came through
    "$espstm" --json status "$DEV" >json2.log 2>&1 || { fail "espstm --json status exit $?"; return 1; }
    grep -q '"rx_bytes":[1-9]' json2.log || { fail "rx_bytes still 0 after the banners: $(head -c 400 json2.log)"; return 1; }
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}
