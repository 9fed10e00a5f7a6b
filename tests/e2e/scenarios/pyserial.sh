# shellcheck shell=bash
# pyserial and shell-tools: programs users run on /dev/ttySTM0 besides stm32flash,
# against the simulated STM32's application (banner after reset, then echo). tty-ioctls (tests/e2e/run) covers the raw ioctls; these drive the
# programs themselves.
SCENARIOS+="
pyserial:90:pyserial_checks.py: exclusive/TIOCEXCL, two ports, select, timeouts, parity/bytesize/stopbits, dtr/rts + banner, cts/dsr/cd, send_break, flush
shell-tools:90:setserial -g, stty raw + readback, cat in the background (banner after a DTR pulse), shell redirection (printf >, exec 3<>, read), 16 KiB cat through the echo
"

# ps_app_up: the chip holds an application from the start; bridge -v and espstmd.
ps_app_up() {
    mkimage app.bin 8192 >app.want || { fail "mkimage failed"; return 1; }
    app_flash flash.bin stm32f103 app.bin || { fail "could not write flash.bin"; return 1; }
    step "start bridge (stm32f103, flash.bin holds app.bin: $(cat app.want))"
    start_bridge bridge.log stm32f103 flash.bin 0 -v 2>>steps.log || { fail "bridge did not start"; return 1; }
    step "start espstmd (bridge port $BRIDGE_PORT)"
    start_daemon daemon.log "$DEV" "$BRIDGE_PORT" 2>>steps.log || { fail "espstmd did not start"; return 1; }
}

sc_pyserial() {
    ps_app_up || return 1
    local rc bad
    run_logged checks timeout 75 "$PY" "$E2E_HERE/pyserial_checks.py" "/dev/$DEV" "$PWD/bridge.log"; rc=$?
    cat checks.log >>steps.log
    if [ $rc -ne 0 ]; then
        bad=$(sed -n 's/^FAIL \([^ :]*\).*/\1/p' checks.log | tr '\n' ' ')
        [ $rc -eq 124 ] && bad="$bad(pyserial_checks.py hung: killed after 75 s) "
        kill -0 "$DAEMON_PID" 2>/dev/null || bad="$bad(espstmd is gone) "
        fail "pyserial sub-checks failed: ${bad:-exit $rc }(see checks.log)"
        return 1
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited during the checks"; return 1; }
    grep -q "banner: b'stm32sim app $(cat app.want)'" checks.log ||
        { fail "the banner read through pyserial is not 'stm32sim app $(cat app.want)'"; return 1; }
}

# ps_dtr_pulse DEV: assert and release DTR (NRST with the direct line map): the app restarts
ps_dtr_pulse() {
    "$PY" - "$1" <<'EOF'
import fcntl, os, struct, sys, termios, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
fcntl.ioctl(fd, termios.TIOCMBIS, struct.pack("i", termios.TIOCM_DTR))
time.sleep(0.1)
fcntl.ioctl(fd, termios.TIOCMBIC, struct.pack("i", termios.TIOCM_DTR))
os.close(fd)
EOF
}

# ps_wait_size FILE BYTES TIMEOUT_S: wait until FILE holds at least BYTES bytes
ps_wait_size() {
    local end=$((SECONDS + $3 + 1))
    while [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -lt "$2" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
    [ "$(stat -c %s "$1" 2>/dev/null || echo 0)" -ge "$2" ]
}

sc_shell-tools() {
    ps_app_up || return 1
    local d=/dev/$DEV n line want cat_pid a sa
    want=$(cat app.want)
    # setserial -g: TIOCGSERIAL, a 16550A
    run_logged setserial setserial -g "$d" || { fail "setserial -g $d: exit $? ($(head -c 200 setserial.log))"; return 1; }
    cat setserial.log >>steps.log
    grep -q "^$d, UART: 16550A" setserial.log || { fail "setserial -g: '$(head -1 setserial.log)', expected '$d, UART: 16550A, ...'"; return 1; }
    # stty: raw port at 115200, read back
    run_logged stty-raw "$STTY" -F "$d" 115200 raw -echo -echoe -echok -echoctl -echoke || { fail "stty raw: exit $? ($(head -c 200 stty-raw.log))"; return 1; }
    run_logged stty-a "$STTY" -F "$d" -a || { fail "stty -a: exit $?"; return 1; }
    cat stty-a.log >>steps.log
    # (bash pattern matching: forks are slow under TCG)
    sa=" $(<stty-a.log) "; sa=${sa//$'\n'/ }; sa=${sa//;/ }
    [[ $sa == " speed 115200 baud "* ]] || { fail "stty -a: '${sa:0:80}'"; return 1; }
    for a in -icanon -isig -icrnl -opost -echo; do
        [[ $sa == *" $a "* ]] || { fail "stty -a after 'raw' lacks '$a': ${sa:0:300}"; return 1; }
    done

    # cat in the background holds the port open and copies what the app sends
    step "cat $d >cat.out &"
    cat "$d" >cat.out 2>cat.err </dev/null &
    cat_pid=$!
    EXTRA_PIDS="$EXTRA_PIDS $cat_pid"
    sleep 0.3
    step "DTR pulse"
    ps_dtr_pulse "$d" 2>>steps.log || { fail "DTR pulse failed"; return 1; }
    wait_line cat.out "stm32sim app $want" 10 || { fail "cat $d: no banner 'stm32sim app $want' after a DTR pulse ($(head -c 200 cat.out | od -c | head -3))"; return 1; }
    # shell redirection into the device while cat reads the echo
    step "printf 'hello-shell\\n' >$d"
    printf 'hello-shell\n' >"$d" || { fail "printf >$d: exit $?"; return 1; }
    wait_line cat.out '^hello-shell$' 5 || { fail "the echo of 'hello-shell' did not reach cat"; return 1; }
    # 16 KiB through the echo with cat on both ends: nothing lost, same order
    head -c 16384 /dev/urandom >blob.bin
    n=$(stat -c %s cat.out)
    step "cat blob.bin >$d (16384 bytes; cat.out holds $n)"
    cat blob.bin >"$d" || { fail "cat blob.bin >$d: exit $?"; return 1; }
    ps_wait_size cat.out $((n + 16384)) 15 || { fail "echo of 16384 bytes: cat got $(( $(stat -c %s cat.out) - n ))"; return 1; }
    sleep 0.3
    [ "$(stat -c %s cat.out)" -eq $((n + 16384)) ] || { fail "cat.out grew by $(( $(stat -c %s cat.out) - n )) bytes, sent 16384"; return 1; }
    tail -c 16384 cat.out | cmp - blob.bin >>steps.log 2>&1 || { fail "the 16384 bytes echoed differ from those sent"; return 1; }
    step "stop cat"
    kill "$cat_pid"; wait "$cat_pid" 2>/dev/null

    # read and write on one descriptor of the shell
    step "exec 3<>$d; printf ping >&3; read <&3"
    line=$(
        exec 3<>"$d" || exit 1
        printf 'ping-fd3\n' >&3
        IFS= read -r -t 5 l <&3 && printf '%s' "$l"
        exec 3<&-
    )
    [ "$line" = "ping-fd3" ] || { fail "exec 3<>$d: read back '$line', expected 'ping-fd3'"; return 1; }

    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}
