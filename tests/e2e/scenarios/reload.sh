# shellcheck shell=bash
# reload: espstmd -c FILE and SIGHUP (espstmd(8) "RELOADING THE CONFIGURATION").
# One program holds /dev/ttySTM0 open the whole time and checks the application's echo
# after every step: adding ttySTM1, recreating it with a changed baud, removing it, and a
# broken file must all leave that open descriptor working.
SCENARIOS+="
reload:120:SIGHUP: add ttySTM1, recreate it (baud changed), remove it, reject a broken file; a held ttySTM0 fd keeps echoing
"

# reload_holder DEV: open DEV once, wait for the app's banner, then for each trigger file
# go1, go2, ... (in order) send "ping-N" and expect it echoed; prints "echo N ok".
reload_holder() {
    cat >holder.py <<'EOF'
import os, sys, time
import serial
dev = sys.argv[1]
s = serial.Serial()
s.port, s.baudrate, s.timeout = dev, 115200, 5
s.dtr = False
s.rts = False
s.open()
print("holder: opened %s" % dev, flush=True)
# reset into the application (DTR asserted = NRST low) and wait for its banner
for _ in range(3):
    s.reset_input_buffer()
    s.dtr = True
    time.sleep(0.05)
    s.dtr = False
    line = s.readline()
    while line and not line.startswith(b"stm32sim app"):
        line = s.readline()
    if line:
        print("holder: banner " + line.decode("ascii", "replace").strip(), flush=True)
        break
else:
    print("holder: no banner", flush=True)
    sys.exit(1)
n = 0
while True:
    want = b"ping-%d" % n
    s.write(want + b"\n")
    got = s.readline()
    if want not in got:
        print("echo %d FAILED: got %r" % (n, got), flush=True)
        sys.exit(1)
    print("echo %d ok" % n, flush=True)
    n += 1
    if os.path.exists("stop"):
        break
    while not os.path.exists("go%d" % n) and not os.path.exists("stop"):
        time.sleep(0.1)
    if os.path.exists("stop"):
        break
print("holder: closing", flush=True)
s.close()
EOF
    "$PY" holder.py "$1" >holder.log 2>&1 </dev/null &
    HOLDER_PID=$!
    EXTRA_PIDS="$EXTRA_PIDS $HOLDER_PID"
}

# reload_echo N: trigger the holder's echo N and wait for it
reload_echo() {
    step "holder: echo $1 ($2)"
    touch "go$1"
    wait_line holder.log "^echo $1 ok" 15 ||
        { fail "the fd held open on /dev/$DEV did not echo after $2: $(tail -n 2 holder.log | tr '\n' ' ')"; return 1; }
}

# reload_hup WHAT REGEX: SIGHUP espstmd, wait for a daemon.log line after this point
reload_hup() {
    local n
    n=$(wc -l <daemon.log)
    step "SIGHUP espstmd ($1)"
    kill -HUP "$DAEMON_PID" || { fail "kill -HUP espstmd failed (is it gone?)"; return 1; }
    local end=$((SECONDS + 15))
    while [ $SECONDS -lt $end ]; do
        tail -n +"$((n + 1))" daemon.log | grep -Eq -- "$2" && return 0
        sleep 0.1
    done
    fail "after SIGHUP ($1) espstmd logged no line matching '$2'"
    return 1
}

# reload_notify DEV...: a stand-in for systemd's notify socket ($PWD/notify.sock); logs each
# sd_notify message to notify.log with "|" for newlines, followed by whether each
# /dev/DEV existed when it arrived ("|| ttySTM0=1 ttySTM1=0").
reload_notify() {
    cat >notify.py <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    m = s.recv(4096).decode("utf-8", "replace").strip("\n").replace("\n", "|")
    ex = " ".join("%s=%d" % (d, os.path.exists("/dev/" + d)) for d in sys.argv[2:])
    print("%s || %s" % (m, ex), flush=True)
EOF
    "$PY" notify.py "$PWD/notify.sock" "$@" >notify.log 2>&1 </dev/null &
    EXTRA_PIDS="$EXTRA_PIDS $!"
    wait_line notify.log '^listening' 15
}

# reload_status: the control socket's device names, one per line
reload_status() {
    "$PY" - "$PWD/espstmd.sock" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"status\n")
data = b""
while not data.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
for d in json.loads(data)["devices"]:
    print(d["name"])
EOF
}

sc_reload() {
    local dev2=${ESPSTM_E2E_DEV2:-ttySTM1} p0 p1 k0 k1 want n
    [ -e "/dev/$dev2" ] && { fail "/dev/$dev2 exists before the scenario started (set ESPSTM_E2E_DEV2)"; return 1; }
    want=$(mkimage app.bin 4096) || { fail "mkimage failed"; return 1; }
    if ! app_flash flash0.bin stm32f103 app.bin || ! app_flash flash1.bin stm32f103 app.bin; then
        fail "could not write the flash files"; return 1
    fi
    step "start bridge 0"
    start_bridge bridge0.log stm32f103 flash0.bin 0 -v 2>>steps.log || { fail "bridge 0 did not start"; return 1; }
    p0=$BRIDGE_PORT; k0=$BRIDGE_KEY; EXTRA_PIDS="$EXTRA_PIDS $BRIDGE_PID"
    step "start bridge 1"
    start_bridge bridge1.log stm32f103 flash1.bin 0 -v 2>>steps.log || { fail "bridge 1 did not start"; return 1; }
    p1=$BRIDGE_PORT; k1=$BRIDGE_KEY; EXTRA_PIDS="$EXTRA_PIDS $BRIDGE_PID"; BRIDGE_PID=""

    local dev0conf
    dev0conf=$(printf '[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\nreconnect_min_ms = 100\nreconnect_max_ms = 1000\n' "$DEV" "$p0" "$k0")
    echo "$dev0conf" >espstm.conf
    step "notify socket"
    reload_notify "$DEV" "$dev2" || { fail "notify.py did not start: $(head -c 300 notify.log)"; return 1; }
    step "start espstmd -c espstm.conf --control espstmd.sock (NOTIFY_SOCKET=notify.sock)"
    : >daemon.log
    NOTIFY_SOCKET=$PWD/notify.sock "$E2E_BUILD/espstmd" -c "$PWD/espstm.conf" --control "$PWD/espstmd.sock" >>daemon.log 2>&1 </dev/null &
    DAEMON_PID=$!
    wait_line daemon.log "espstmd: ready: /dev/$DEV( |$)" 15 || { fail "no 'espstmd: ready: /dev/$DEV' within 15 s"; return 1; }
    [ -S espstmd.sock ] || { fail "--control espstmd.sock: no socket there"; return 1; }

    # a program holds /dev/ttySTM0 open from here to the end
    reload_holder "/dev/$DEV"
    wait_line holder.log '^echo 0 ok' 20 || { fail "holder on /dev/$DEV: $(tr '\n' ' ' <holder.log | head -c 300)"; return 1; }
    grep -q "banner stm32sim app $want" holder.log || { fail "holder: banner is not 'stm32sim app $want'"; return 1; }

    # 1. add ttySTM1
    { echo "$dev0conf"; printf '\n[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\n' "$dev2" "$p1" "$k1"; } >espstm.conf
    reload_hup "$dev2 added" "espstmd: ready: /dev/$dev2( |$)" || return 1
    grep -q 'reload: 1 added, 0 removed, 0 recreated, 0 updated, 1 unchanged' daemon.log ||
        { fail "no 'reload: 1 added, ..., 1 unchanged' line in daemon.log"; return 1; }
    local end=$((SECONDS + 6))
    while [ ! -c "/dev/$dev2" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
    [ -c "/dev/$dev2" ] || { fail "/dev/$dev2 is not a character device after its ready line"; return 1; }
    check_banner "$want" "$dev2" banner1 || return 1
    run_logged status1 reload_status || { fail "control socket status failed: $(head -c 300 status1.log)"; return 1; }
    [ "$(sort status1.log | tr '\n' ' ')" = "$(printf '%s\n' "$DEV" "$dev2" | sort | tr '\n' ' ')" ] ||
        { fail "control socket lists '$(tr '\n' ' ' <status1.log)', expected $DEV and $dev2"; return 1; }
    reload_echo 1 "adding /dev/$dev2" || return 1

    # 2. ttySTM1's baud changes: it is recreated with the new initial speed
    { echo "$dev0conf"; printf '\n[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\nbaud = 57600\n' "$dev2" "$p1" "$k1"; } >espstm.conf
    reload_hup "$dev2 baud changed" "espstmd: ready: /dev/$dev2( |$)" || return 1
    grep -q "reload: /dev/$dev2: settings changed; recreating" daemon.log ||
        { fail "no 'settings changed; recreating' line for /dev/$dev2"; return 1; }
    end=$((SECONDS + 6))
    while [ ! -c "/dev/$dev2" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
    run_logged stty1 "$STTY" -F "/dev/$dev2" speed || { fail "stty -F /dev/$dev2 speed after the recreation: exit $?"; return 1; }
    [ "$(head -1 stty1.log)" = 57600 ] || { fail "recreated /dev/$dev2 speed '$(head -1 stty1.log)', expected 57600"; return 1; }
    reload_echo 2 "recreating /dev/$dev2" || return 1

    # 3. remove ttySTM1
    echo "$dev0conf" >espstm.conf
    reload_hup "$dev2 removed" 'reload: 0 added, 1 removed, 0 recreated, 0 updated, 1 unchanged' || return 1
    end=$((SECONDS + 10))
    while [ -e "/dev/$dev2" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
    [ -e "/dev/$dev2" ] && { fail "/dev/$dev2 still exists 10 s after its removal"; return 1; }
    run_logged status2 reload_status || { fail "control socket status failed: $(head -c 300 status2.log)"; return 1; }
    [ "$(tr '\n' ' ' <status2.log)" = "$DEV " ] || { fail "control socket lists '$(tr '\n' ' ' <status2.log)' after the removal, expected $DEV"; return 1; }
    reload_echo 3 "removing /dev/$dev2" || return 1

    # 4. a broken file: every problem logged, the running configuration kept
    printf '[%s]\nhost = 127.0.0.1\nport = 99999\ncolour = blue\n' "$DEV" >espstm.conf
    reload_hup "broken file" "reload: .*espstm.conf rejected" || return 1
    for k in port colour; do
        grep -F "$PWD/espstm.conf: [$DEV] $k:" daemon.log >/dev/null ||
            { fail "the rejected reload did not log a line naming the file, [$DEV] and '$k'"; return 1; }
    done
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited on a broken file"; return 1; }
    [ -c "/dev/$DEV" ] || { fail "/dev/$DEV vanished after a broken file"; return 1; }
    reload_echo 4 "a rejected reload" || return 1

    # sd_notify: READY=1 at start and after each of the 4 reloads, each reload announced by
    # RELOADING=1 first; READY=1 only once the reload's device nodes exist
    local i=0 why
    step "sd_notify messages"
    while [ "$(grep -c '^READY=1' notify.log)" -lt 5 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    cat notify.log >>steps.log
    # one awk for all checks: every fork is slow in the VM
    why=$(awk -v dev="$DEV" -v dev2="$dev2" '
        /^READY=1/ { n++; seq = seq "REA "; ready[n] = $0 }
        /^RELOADING=1/ { seq = seq "REL "; if ($0 !~ /^RELOADING=1[|]MONOTONIC_USEC=[0-9]+[|]/) bad = "RELOADING=1 without MONOTONIC_USEC" }
        END {
            if (seq != "REA REL REA REL REA REL REA REL REA ") { print "sd_notify sequence \"" seq "\", expected READY, then RELOADING/READY four times"; exit }
            if (index(ready[1], "|| " dev "=1 ") == 0) { print "READY=1 at start came before /dev/" dev " existed"; exit }
            if (ready[2] !~ (dev2 "=1$")) { print "READY=1 after adding " dev2 " came before /dev/" dev2 " existed"; exit }
            if (ready[3] !~ (dev2 "=1$")) { print "READY=1 after recreating " dev2 " came before /dev/" dev2 " existed"; exit }
            if (index(ready[5], "STATUS=serving 1 device(s); the last reload was rejected") == 0) { print "the rejected reload'"'"'s READY=1 has no STATUS saying so: " ready[5]; exit }
            if (bad != "") print bad
        }' notify.log)
    [ -z "$why" ] || { fail "$why (see notify.log)"; return 1; }

    # ttySTM0 was never recreated; the holder closes cleanly
    n=$(grep -Ec "espstmd: ready: /dev/$DEV( |\$)" daemon.log)
    [ "$n" -eq 1 ] || { fail "/dev/$DEV became ready $n times (expected once: it never changed)"; return 1; }
    step "holder: stop"
    touch stop
    i=0
    while kill -0 "$HOLDER_PID" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    wait "$HOLDER_PID" 2>/dev/null || { fail "holder exit status $?: $(tail -n 2 holder.log | tr '\n' ' ')"; return 1; }
}
