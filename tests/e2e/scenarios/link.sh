# shellcheck shell=bash
# link: the daemon's bridge connection (daemon/link.c) end to end.
#  - link-loss: a program holds /dev/ttySTM0 open (57600 8N1, RTS asserted, DTR not) and
#    floods it; the bridge is killed and restarted on the same port. espstmd reports the
#    bytes it could not deliver, reconnects, re-applies baud/data/parity/stop and DTR/RTS
#    (the new bridge's -v log), and the same descriptor still gets the application's echo.
#  - legacy-flash: protocol = espstm-legacy against espstm-bridge --legacy (the seed
#    firmware's raw port + r/u/e control port): unmodified stm32flash flashes through it,
#    then the application's banner after leaving 8E1 ('e').
SCENARIOS+="
link-loss:90:bridge killed and restarted under a held, flooding fd: undelivered bytes logged, settings + DTR/RTS re-applied, same fd echoes
legacy-flash:90:protocol = espstm-legacy (raw + control port): unmodified stm32flash -w -v -g, then the app banner after 'e'
"

# link_holder DEV: the program that holds DEV open for link-loss; see the prints below.
link_holder() {
    cat >holder.py <<'EOF'
import os, sys, threading, time
import serial

dev = sys.argv[1]


def log(msg):
    print("holder: " + msg, flush=True)


s = serial.Serial()
s.port, s.baudrate, s.timeout = dev, 57600, 0.5
s.bytesize, s.parity, s.stopbits = serial.EIGHTBITS, serial.PARITY_NONE, serial.STOPBITS_ONE
s.dtr = False  # NRST released (direct line map)
s.rts = True   # BOOT0 high: no effect until a reset, but the bridge must show it
s.open()
log("opened %s 57600 8N1, DTR off, RTS on" % dev)


def echo(tag, limit):
    """Write tag, expect it back from the application's echo; retry until limit s."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        s.reset_input_buffer()
        s.write(tag + b"\n")
        buf = b""
        t = time.monotonic() + 4
        while time.monotonic() < t:
            buf += s.read(max(1, s.in_waiting))
            if tag in buf:
                return True
    return False


if not echo(b"ping-0", 20):
    log("echo 0 FAILED")
    sys.exit(1)
log("echo 0 ok")

# Flood: write until the writes block (the bridge's UART drains 5.76 KB/s, so the kernel
# buffers and then espstmd's link queue fill up); a reader drops the echo meanwhile.
stop = threading.Event()
st = {"written": 0, "last": time.monotonic(), "err": None}


def writer():
    chunk = b"f" * 8192
    while not stop.is_set():
        try:
            st["written"] += s.write(chunk)
            st["last"] = time.monotonic()
        except Exception as e:  # EIO once the link has been down for 3 s
            st["err"] = repr(e)
            return


def reader():
    while not stop.is_set():
        try:
            s.read(max(1, s.in_waiting))
        except Exception:
            time.sleep(0.1)


tw = threading.Thread(target=writer, daemon=True)
tr = threading.Thread(target=reader, daemon=True)
tw.start()
tr.start()
end = time.monotonic() + 60
while time.monotonic() < end:
    time.sleep(0.2)
    if st["written"] > 0 and time.monotonic() - st["last"] > 1.5:
        break
else:
    log("flood never blocked (written %d)" % st["written"])
    sys.exit(1)
log("flood blocked after %d bytes" % st["written"])
# no new chunk after the one in progress: it either fails (EIO after 3 s without the
# link) or finishes after the reconnect (at most 8 KiB for the new bridge to echo)
stop.set()
while not os.path.exists("restarted"):
    time.sleep(0.1)
tw.join(30)
if tw.is_alive():
    log("writer still blocked 30 s after the reconnect FAILED")
    sys.exit(1)
log("flood done: %d bytes written, error %s" % (st["written"], st["err"]))
if not echo(b"ping-1", 30):
    log("echo 1 FAILED (same fd after the reconnect)")
    sys.exit(1)
log("echo 1 ok (same fd after the reconnect)")
s.close()
EOF
    "$PY" holder.py "$1" >holder.log 2>&1 </dev/null &
    HOLDER_PID=$!
    EXTRA_PIDS="$EXTRA_PIDS $HOLDER_PID"
}

sc_link-loss() {
    local port n line
    mkimage app.bin 8192 >app.want || { fail "mkimage failed"; return 1; }
    app_flash flash.bin stm32f103 app.bin || { fail "could not write flash.bin"; return 1; }
    step "start bridge (stm32f103, app at 57600)"
    start_bridge bridge.log stm32f103 flash.bin 0 -v --app-baud 57600 2>>steps.log || { fail "bridge did not start"; return 1; }
    port=$BRIDGE_PORT
    printf '[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\nkeepalive = 5\n' \
        "$DEV" "$port" "$BRIDGE_KEY" >espstm.conf
    step "start espstmd -c espstm.conf"
    : >daemon.log
    "$E2E_BUILD/espstmd" -c "$PWD/espstm.conf" --control none --foreground >>daemon.log 2>&1 </dev/null &
    DAEMON_PID=$!
    wait_line daemon.log "espstmd: ready: /dev/$DEV( |$)" 15 || { fail "no 'espstmd: ready: /dev/$DEV' within 15 s"; return 1; }
    wait_line daemon.log ": up: 127\.0\.0\.1:$port" 10 || { fail "espstmd did not connect to the bridge"; return 1; }

    link_holder "/dev/$DEV"
    wait_line holder.log 'echo 0 ok' 30 || { fail "no echo before the outage: $(tail -2 holder.log | tr '\n' ' ')"; return 1; }
    wait_line holder.log 'flood blocked|FAILED|never' 60 || { fail "the flooding writer never blocked"; return 1; }
    grep -q 'flood blocked' holder.log || { fail "$(tail -1 holder.log)"; return 1; }

    step "kill -KILL bridge $BRIDGE_PID"
    kill -KILL "$BRIDGE_PID"; wait "$BRIDGE_PID" 2>/dev/null
    wait_line daemon.log ': connection to 127\.0\.0\.1:'"$port"' lost' 10 || { fail "espstmd did not notice the lost connection"; return 1; }
    step "restart bridge on port $port"
    start_bridge bridge2.log stm32f103 flash.bin "$port" -v --app-baud 57600 2>>steps.log || { fail "bridge did not restart on port $port"; return 1; }
    wait_line daemon.log ": up: 127\.0\.0\.1:$port.*reconnect 1" 20 || { fail "espstmd did not log the reconnect"; return 1; }
    step "espstmd: $(grep -E 'connection lost|reconnect 1' daemon.log | tr '\n' ' ')"

    # what could not be delivered is reported, with a count
    line=$(grep -E "$DEV: connection lost, [0-9]+ bytes for the bridge dropped" daemon.log | head -1)
    [ -n "$line" ] || { fail "espstmd's log does not report the undelivered bytes ('connection lost, N bytes for the bridge dropped')"; return 1; }
    n=$(echo "$line" | sed -n 's/.*connection lost, \([0-9]*\) bytes.*/\1/p')
    [ "$n" -gt 0 ] || { fail "espstmd reports $n undelivered bytes, expected > 0 (the writer was blocked)"; return 1; }

    # the new bridge got the held port's settings and lines, in link.h's order
    wait_line bridge2.log 'rfc2217: SET-CONTROL 9 ' 10 || { fail "the restarted bridge got no DTR off (SET-CONTROL 9)"; return 1; }
    local want got
    # (flow control, SET-CONTROL 1, comes between the stop size and RTS when the tty set it)
    want="SET-BAUDRATE 57600|SET-DATASIZE 8|SET-PARITY 1|SET-STOPSIZE 1|SET-CONTROL 11|SET-CONTROL 9"
    got=$(sed -n 's/.*rfc2217: \(SET-[A-Z]* [0-9]*\) -> .*/\1/p' bridge2.log | grep -vx 'SET-CONTROL 1' | head -6 | paste -sd '|')
    [ "$got" = "$want" ] || { fail "restarted bridge got '$got', expected '$want'"; return 1; }
    grep -q 'pins: NRST=high BOOT0=high' bridge2.log || { fail "the restarted bridge shows no BOOT0=high with NRST released (RTS on, DTR off)"; return 1; }
    grep -q 'uart: 57600 8N1' bridge2.log || { fail "the restarted bridge's UART is not 57600 8N1"; return 1; }

    touch restarted
    wait_line holder.log 'echo 1 ok|FAILED' 45 || { fail "no echo on the held fd after the reconnect: $(tail -2 holder.log | tr '\n' ' ')"; return 1; }
    grep -q 'echo 1 ok' holder.log || { fail "$(grep FAILED holder.log)"; return 1; }
    step "holder: $(grep -E 'flood|echo 1' holder.log | tr '\n' ' ')"
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}

# legacy_banner_py: writes lbanner.py: open DEV at 115200 8N1, switch to 8E1 ('u') and back
# ('e': reset into the application), print the banner line.
legacy_banner_py() {
    cat >lbanner.py <<'EOF'
import sys, time
import serial
s = serial.Serial(sys.argv[1], 115200, timeout=2)
for _ in range(3):
    s.parity = serial.PARITY_EVEN
    time.sleep(0.3)
    s.reset_input_buffer()
    s.parity = serial.PARITY_NONE
    end = time.monotonic() + 5
    while time.monotonic() < end:
        line = s.readline()
        if line.startswith(b"stm32sim app"):
            print(line.decode("ascii", "replace").strip())
            sys.exit(0)
print("no banner")
sys.exit(1)
EOF
}

sc_legacy-flash() {
    local raw ctl want got
    rm -f flash.bin
    step "start bridge --legacy-ports 0,0"
    start_bridge bridge.log stm32f103 flash.bin 0 -v --legacy-ports 0,0 --plaintext 2>>steps.log || { fail "bridge did not start"; return 1; }
    wait_line bridge.log 'legacy raw port on' 5 || { fail "bridge printed no legacy ports"; return 1; }
    raw=$(sed -n 's/.*legacy raw port on 127\.0\.0\.1:\([0-9]*\), control port on 127\.0\.0\.1:\([0-9]*\).*/\1/p' bridge.log)
    ctl=$(sed -n 's/.*legacy raw port on 127\.0\.0\.1:\([0-9]*\), control port on 127\.0\.0\.1:\([0-9]*\).*/\2/p' bridge.log)
    { [ -n "$raw" ] && [ -n "$ctl" ]; } || { fail "cannot read the legacy ports from bridge.log"; return 1; }
    printf '[%s]\nhost = 127.0.0.1\nprotocol = espstm-legacy\nport = %s\ncontrol_port = %s\nkeepalive = 5\n' \
        "$DEV" "$raw" "$ctl" >espstm.conf
    cat espstm.conf >>steps.log
    step "start espstmd -c espstm.conf"
    : >daemon.log
    "$E2E_BUILD/espstmd" -c "$PWD/espstm.conf" --control none --foreground >>daemon.log 2>&1 </dev/null &
    DAEMON_PID=$!
    wait_line daemon.log "espstmd: ready: /dev/$DEV( |$)" 15 || { fail "no 'espstmd: ready: /dev/$DEV' within 15 s"; return 1; }
    wait_line daemon.log ": up: 127\.0\.0\.1:$raw \(legacy ports\)" 10 || { fail "espstmd did not connect to the legacy ports"; return 1; }
    grep -q 'legacy: control client connected' bridge.log || { fail "the bridge saw no control-port client"; return 1; }

    want=$(mkimage img.bin 8192) || { fail "mkimage failed"; return 1; }
    run_logged write timeout 60 "$STM32FLASH" -w img.bin -v -g 0x08000000 "/dev/$DEV" ||
        { fail "stm32flash -w -v -g through the legacy ports: exit $? (see write.log)"; return 1; }
    grep -q 'Device ID.*0x0410' write.log || { fail "stm32flash did not see the F103: $(grep 'Device ID' write.log)"; return 1; }
    cmp -n 8192 img.bin flash.bin >>steps.log 2>&1 || { fail "the simulator's flash differs from img.bin"; return 1; }
    grep -q "legacy: control 'u'" bridge.log || { fail "the bridge got no 'u' (8E1 -> bootloader)"; return 1; }
    grep -q 'RFC 2217 mode' bridge.log && { fail "the bridge saw an RFC 2217 client (expected the raw port only)"; return 1; }

    legacy_banner_py
    run_logged banner timeout 40 "$PY" lbanner.py "/dev/$DEV" || { fail "no app banner after 8E1 -> 8N1 ('u', 'e'): $(tail -1 banner.log)"; return 1; }
    got=$(grep '^stm32sim app' banner.log | head -1)
    [ "$got" = "stm32sim app $want" ] || { fail "banner '$got', expected 'stm32sim app $want'"; return 1; }
    grep -q "legacy: control 'e'" bridge.log || { fail "the bridge got no 'e' (leaving 8E1)"; return 1; }
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}
