# shellcheck shell=bash
# shellcheck disable=SC2034  # DAEMON_PID, EXTRA_PIDS: read by tests/e2e/run
# service: espstmd run the way systemd runs systemd/espstmd.service, without systemd (the
# VM has none): Type=notify protocol, the unit's sandbox, the udev rule.
#
#  - Started with NOTIFY_SOCKET pointing at tests/service/notify_listen.py (a unix datagram
#    socket like systemd's), cwd /, stdin /dev/null, a clean environment with
#    RUNTIME_DIRECTORY=/run/espstm created beforehand (RuntimeDirectory=espstm).
#  - Sandbox: every capability dropped and no_new_privs (setpriv: CapabilityBoundingSet=,
#    NoNewPrivileges=yes); the unit's SystemCallFilter=, SystemCallErrorNumber=,
#    RestrictAddressFamilies= and MemoryDenyWriteExecute= as seccomp filters
#    (tests/service/sandbox.py, which also lets ptrace through for the strace that runs
#    espstmd inside the filter). tests/service/strace_check.py then holds the strace log to
#    the unit: system calls in the allow list, and nothing systemd's mount and device
#    options would refuse (devices other than /dev/cuse, writes outside /run/espstm, /proc
#    beyond the own pid, home directories).
#  - READY=1 only once /dev/ttySTM0 is a character device (checked by the listener when the
#    datagram arrives), STATUS= present, sent by the main pid (NotifyAccess=main); the
#    device works (stty through it reaches the bridge's UART).
#  - SIGHUP (if this espstmd has the reload: RELOADING=1 in its binary): RELOADING=1, then
#    READY=1 once the device added to the file exists.
#  - The udev rule, without udevd: `udevadm test` of the CUSE device with the rule in
#    /run/udev/rules.d applies it to the real node: root:dialout 0660, ModemManager's
#    ID_MM_DEVICE_IGNORE=1 and the systemd tag in the properties; a dialout member opens it,
#    a user without the group gets EACCES. (Skipped where a udevd runs: natively the rule
#    would be loaded into the system's udev.)
#  - SIGTERM: STOPPING=1, exit status 0, the node is gone.
SCENARIOS+="
service:200:espstmd as systemd runs it: sd_notify READY after the node/STATUS/RELOADING/STOPPING, no capabilities + the unit's seccomp filter, strace vs. the sandbox, udev rule applied with udevadm test, SIGTERM exit 0
"

sc_service() {
    SVC_RT=/run/espstm SVC_MADE_RT=0 SVC_MADE_UDEV=0
    local rc
    service_steps; rc=$?
    # what systemd would remove after the stop (RuntimeDirectory=), and our udev rules dir
    [ $SVC_MADE_RT = 1 ] && rm -rf "$SVC_RT"
    [ $SVC_MADE_UDEV = 1 ] && rm -rf /run/udev
    return $rc
}

service_steps() {
    local unit="$TOP/systemd/espstmd.service" rule="$TOP/systemd/99-espstm.rules"
    local svc="$TOP/tests/service" rt=$SVC_RT pid line rc i
    local dev2=${ESPSTM_E2E_DEV2:-ttySTM1}
    [ -e "/dev/$dev2" ] && { fail "/dev/$dev2 exists before the scenario started (set ESPSTM_E2E_DEV2)"; return 1; }
    local t
    for t in /usr/bin/strace udevadm setpriv; do
        command -v "$t" >/dev/null || { fail "$t not found (strace, udev, util-linux): run scripts/install-deps"; return 1; }
    done
    rm -f flash.bin
    step "start bridge (stm32f103)"
    start_bridge bridge.log stm32f103 flash.bin 0 -v 2>>steps.log || { fail "bridge did not start"; return 1; }
    printf '[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\n' "$DEV" "$BRIDGE_PORT" "$BRIDGE_KEY" >service.conf

    # RuntimeDirectory=espstm: systemd creates /run/espstm (root, 0755) before the start
    if [ ! -e "$rt" ]; then mkdir -m 0755 "$rt" && SVC_MADE_RT=1; fi
    step "notify listener"
    "$PY" "$svc/notify_listen.py" "$PWD/notify.sock" notify.log "/dev/$DEV" "/dev/$dev2" 2>listener.log &
    EXTRA_PIDS="$EXTRA_PIDS $!"
    i=0; while [ ! -e notify.sock.ready ]; do i=$((i + 1)); [ $i -le 100 ] || { fail "notify listener did not bind"; return 1; }; sleep 0.1; done

    step "start espstmd: setpriv (no capabilities, no_new_privs), the unit's seccomp filter, strace"
    (cd / && exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        NOTIFY_SOCKET="$OLDPWD/notify.sock" RUNTIME_DIRECTORY="$rt" \
        setpriv --bounding-set=-all --inh-caps=-all --no-new-privs -- \
        "$PY" "$svc/sandbox.py" "$unit" --also ptrace,process_vm_readv -- \
        /usr/bin/strace -f -qq -s 512 -o "$OLDPWD/strace.log" \
        "$E2E_BUILD/espstmd" -c "$OLDPWD/service.conf") >daemon.log 2>&1 </dev/null &
    local tracer=$!
    EXTRA_PIDS="$EXTRA_PIDS $tracer"

    # 1. READY=1 after the node exists, STATUS=, from the main pid
    wait_line notify.log 'READY=1' 60 || { fail "no READY=1 within 60 s (daemon.log: $(tail -n 3 daemon.log | tr '\n' ' '))"; return 1; }
    cat notify.log >>steps.log
    line=$(grep -m1 'READY=1' notify.log)
    pid=$(echo "$line" | sed -n 's/.* pid=\([0-9]*\) .*/\1/p')
    DAEMON_PID=$pid
    [ "$(readlink "/proc/$pid/exe")" = "$(readlink -f "$E2E_BUILD/espstmd")" ] ||
        { fail "READY=1 came from pid $pid, which is not espstmd (NotifyAccess=main would drop it)"; return 1; }
    case $line in *" nodes=/dev/$DEV"*) ;; *) fail "READY=1 arrived before /dev/$DEV existed: $line"; return 1 ;; esac
    grep -q 'STATUS=' notify.log || { fail "no STATUS= in the notifications"; return 1; }
    step "READY from espstmd pid $pid with /dev/$DEV present: $line"
    # the sandbox really applies to it: no capabilities, no_new_privs, seccomp
    grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' "/proc/$pid/status" >proc-status.log
    cat proc-status.log >>steps.log
    grep -Eq '^CapEff:\s+0+$' proc-status.log && grep -Eq '^CapBnd:\s+0+$' proc-status.log &&
        grep -Eq '^NoNewPrivs:\s+1$' proc-status.log && grep -Eq '^Seccomp:\s+2$' proc-status.log ||
        { fail "espstmd is not sandboxed as intended: $(tr '\n' ' ' <proc-status.log)"; return 1; }

    # 2. the device works through the sandboxed daemon
    run_logged stty "$STTY" -F "/dev/$DEV" 9600 || { fail "stty -F /dev/$DEV 9600: exit $? ($(head -c 200 stty.log))"; return 1; }
    wait_line bridge.log 'uart: 9600 8N1' 10 || { fail "the bridge did not apply 9600 8N1 set through the sandboxed espstmd"; return 1; }

    # 3. control socket (RuntimeDirectory=espstm), if this espstmd has one
    if grep -qa "$rt/espstmd.sock" "$E2E_BUILD/espstmd"; then
        i=0; while [ ! -S "$rt/espstmd.sock" ] && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
        [ -S "$rt/espstmd.sock" ] || { fail "no control socket $rt/espstmd.sock"; return 1; }
        step "control socket: $(stat -c '%A %U:%G %n' "$rt/espstmd.sock")"
    else
        step "control socket: this espstmd has none (no $rt/espstmd.sock in the binary), not checked"
    fi

    # 4. the udev rule applied to the real node (udevadm test runs the rules in-process)
    local mode0 mode
    mode0=$(stat -c '%U:%G %a' "/dev/$DEV")
    step "/dev/$DEV before the rule: $mode0"
    if [ -S /run/udev/control ]; then
        step "udevd runs here: udev part skipped (it would change the system's udev)"
    else
        [ -d /run/udev ] || SVC_MADE_UDEV=1
        mkdir -p /run/udev/rules.d && cp "$rule" /run/udev/rules.d/99-espstm.rules
        run_logged udevadm-test udevadm test "/sys/class/cuse/$DEV"
        rm -f /run/udev/rules.d/99-espstm.rules
        grep -q "^SUBSYSTEM=cuse$" udevadm-test.log || { fail "udevadm test: /sys/class/cuse/$DEV is not SUBSYSTEM=cuse"; return 1; }
        grep -q "^ID_MM_DEVICE_IGNORE=1$" udevadm-test.log || { fail "udevadm test: no ID_MM_DEVICE_IGNORE=1 (the rule did not match)"; return 1; }
        grep -q "^TAGS=.*:systemd:" udevadm-test.log || { fail "udevadm test: no systemd tag"; return 1; }
        mode=$(stat -c '%U:%G %a' "/dev/$DEV")
        step "/dev/$DEV after udevadm test: $mode"
        [ "$mode" = "root:dialout 660" ] || { fail "/dev/$DEV is '$mode' after the rule, expected root:dialout 660 (was $mode0)"; return 1; }
        local gid
        gid=$(getent group dialout | cut -d: -f3)
        run_logged stty-dialout setpriv --reuid=65534 --regid=65534 --groups="$gid" "$STTY" -F "/dev/$DEV" ||
            { fail "a dialout member (uid 65534) cannot use /dev/$DEV: $(head -c 200 stty-dialout.log)"; return 1; }
        run_logged stty-nogroup setpriv --reuid=65534 --regid=65534 --clear-groups "$STTY" -F "/dev/$DEV" &&
            { fail "a user without the dialout group could open /dev/$DEV"; return 1; }
        grep -q 'Permission denied' stty-nogroup.log || { fail "a user without dialout: expected EACCES, got: $(head -c 200 stty-nogroup.log)"; return 1; }
    fi

    # 5. SIGHUP: RELOADING=1, then READY=1 once the added device exists
    if grep -qa 'RELOADING=1' "$E2E_BUILD/espstmd"; then
        printf '\n[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\n' "$dev2" "$BRIDGE_PORT" "$BRIDGE_KEY" >>service.conf
        local n0
        n0=$(wc -l <notify.log)
        step "kill -HUP $pid (service.conf now also has [$dev2])"
        kill -HUP "$pid"
        i=0
        while ! tail -n +"$((n0 + 1))" notify.log | grep -A100 'RELOADING=1' | grep -q 'READY=1'; do
            i=$((i + 1)); [ $i -le 300 ] || { fail "after SIGHUP no RELOADING=1 followed by READY=1 within 30 s: $(tail -n +"$((n0 + 1))" notify.log | tr '\n' ' ')"; return 1; }
            sleep 0.1
        done
        tail -n +"$((n0 + 1))" notify.log >>steps.log
        line=$(tail -n +"$((n0 + 1))" notify.log | grep -A100 'RELOADING=1' | grep -m1 'READY=1')
        case $line in *"/dev/$dev2"*) ;; *) fail "READY=1 after the reload came before /dev/$dev2 existed: $line"; return 1 ;; esac
        kill -0 "$pid" 2>/dev/null && [ -c "/dev/$DEV" ] || { fail "espstmd or /dev/$DEV gone after SIGHUP"; return 1; }
    else
        step "SIGHUP: this espstmd has no reload (no RELOADING=1 in the binary), not checked"
    fi

    # 6. SIGTERM: STOPPING=1, exit 0, nodes gone
    step "kill -TERM $pid"
    kill -TERM "$pid"
    i=0; while kill -0 "$tracer" 2>/dev/null; do i=$((i + 1)); [ $i -le 150 ] || break; sleep 0.1; done
    if kill -0 "$tracer" 2>/dev/null; then fail "espstmd did not exit within 15 s of SIGTERM"; return 1; fi
    wait "$tracer"; rc=$?
    DAEMON_PID=""   # stopped already (read by cleanup_one in tests/e2e/run)
    step "espstmd exit status $rc"
    [ $rc -eq 0 ] || { fail "espstmd exit status $rc after SIGTERM, expected 0 (daemon.log: $(tail -n 3 daemon.log | tr '\n' ' '))"; return 1; }
    wait_line notify.log 'STOPPING=1' 5 || { fail "no STOPPING=1"; return 1; }
    i=0; while [ -e "/dev/$DEV" ] || [ -e "/dev/$dev2" ]; do i=$((i + 1)); [ $i -le 50 ] || break; sleep 0.1; done
    [ ! -e "/dev/$DEV" ] && [ ! -e "/dev/$dev2" ] || { fail "device nodes still there after espstmd exited"; return 1; }

    # 7. what the rest of the sandbox would have refused
    run_logged strace-check "$PY" "$svc/strace_check.py" strace.log "$unit" "$E2E_BUILD/espstmd"; rc=$?
    cat strace-check.log >>steps.log
    [ $rc -eq 0 ] || { fail "strace shows sandbox violations: $(grep VIOLATION strace-check.log | head -3 | tr '\n' ' ')"; return 1; }
    rm -f strace.log   # large; the summary is in strace-check.log
}
