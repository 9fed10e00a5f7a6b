# shellcheck shell=bash
# Terminal programs on /dev/$DEV, driven as a person would in tmux (keys in, screen out),
# sourced by tests/e2e/run. The simulated chip holds an application that prints
# "stm32sim app crc32=... len=8192" after each reset and echoes every byte.
#
# Resets: with the bridge's default line map (direct), DTR asserted = NRST low and RTS
# asserted = BOOT0 high. espstmd starts each first open with both lines deasserted (so the
# application runs). picocom resets the chip with its own DTR toggle (C-a C-t twice);
# microcom has no such key, so a helper (progs/lines.py) pulses DTR from a second
# descriptor. minicom and screen raise RTS right after they open the port (TIOCMSET /
# TIOCMBIS), which holds BOOT0 high: a DTR pulse alone would start the bootloader, so the
# helper lowers RTS first, as someone with this wiring has to.
# shellcheck source=tests/e2e/progs/common.sh
. "$E2E_HERE/progs/common.sh"

SCENARIOS+="
picocom:120:picocom: DTR toggles (C-a C-t) reset -> banner, echo, baud up (C-a C-u) garbles, C-a C-b back -> echo, C-a C-x exits
microcom:90:busybox microcom: DTR pulse from a helper -> banner, echo, C-x exits
minicom:120:minicom -o (minirc in a temp HOME): status line, reset -> banner, echo, C-a x + Enter exits
screen:120:screen DEV 115200: reset -> banner, echo, C-a k y exits
"

BANNER_WAIT=15   # s: a reset and the banner through the VM's slow chain
ECHO_WAIT=10     # s: typed text back on the screen
EXIT_WAIT=20     # s: a program must be gone this long after its quit keys
EXIT_MAX=10      # s: ... and should be well within this (checked; the figure is logged)

# prog_opened WHAT: wait until some process holds /dev/$DEV (the program opened it)
prog_opened() {
    local end=$((SECONDS + 20))
    while [ -z "$(dev_holders)" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
    [ -n "$(dev_holders)" ] || { tm_screen >/dev/null; fail "$1 did not open /dev/$DEV within 20 s (see screen.log)"; return 1; }
    step "/dev/$DEV held by pid(s) $(dev_holders)"
}

# no_pins_moved MARK WHAT: opening the port moved neither NRST nor BOOT0 (espstmd starts
# a first open with DTR and RTS deasserted and changes them only on request)
no_pins_moved() {
    if after_line bridge.log "$1" 'pins:' 1; then
        fail "$2 opened the port and the pins moved: $(tail -n +"$(($1 + 1))" bridge.log | grep -m1 'pins:')"
        return 1
    fi
    step "$2: no pin change on open"
}

# exit_in_time WHAT: the program ended within EXIT_MAX s (tm_exit_wait set EXIT_SECS)
exit_in_time() {
    awk -v s="$EXIT_SECS" -v m="$EXIT_MAX" 'BEGIN{exit !(s <= m)}' ||
        { fail "$1 took $EXIT_SECS s to exit (more than $EXIT_MAX s)"; return 1; }
}

# reset_app_helper WHAT: reset the chip into its application from a second descriptor
# (RTS off = BOOT0 low, DTR pulse = NRST low 50 ms) and wait for the banner on the screen
reset_app_helper() {
    local m
    m=$(mark bridge.log)
    lines get rts=0 dtr=1 sleep=0.05 dtr=0 get || { fail "lines.py (reset from a second descriptor) failed"; return 1; }
    after_line bridge.log "$m" 'pins: NRST=low BOOT0=low' 10 || { fail "$1: the helper's DTR pulse did not reach the bridge (no 'pins: NRST=low BOOT0=low')"; return 1; }
    tm_wait "stm32sim app $(cat app.want)" "$BANNER_WAIT" "$1: banner after the reset" || return 1
}

# echo_check WHAT: type a unique line; the application's echo must show it
echo_check() {
    local text="echo-$1-$RANDOM$RANDOM"
    tm_type "$text" && tm_wait "$text" "$ECHO_WAIT" "$1: echo of typed text"
}

sc_picocom() {
    # The application runs at 57600; picocom starts there, goes up to 115200 with C-a C-u
    # (what is typed then never comes back clean: the new speed really reached the
    # simulated wire), then back with C-a C-b 57600 (echo clean again).
    up_app --app-baud 57600 || return 1
    local m want bad="garbled-$RANDOM$RANDOM"
    want="stm32sim app $(cat app.want)"
    local m0
    m0=$(mark bridge.log)
    tm_start "picocom -b 57600 /dev/$DEV" || return 1
    tm_wait "Terminal ready" 20 "picocom start" || return 1
    no_pins_moved "$m0" picocom || return 1
    grep -q 'uart: 57600 8N1' bridge.log || { fail "picocom -b 57600: the bridge never applied 57600 8N1"; return 1; }
    # reset: DTR up (NRST low), DTR down (released) -> banner
    m=$(mark bridge.log)
    tm_keys C-a C-t && tm_wait "*** DTR: up ***" 10 "picocom C-a C-t" || return 1
    after_line bridge.log "$m" 'pins: NRST=low' 10 || { fail "picocom DTR up: no 'pins: NRST=low' in bridge.log"; return 1; }
    tm_keys C-a C-t && tm_wait "*** DTR: down ***" 10 "picocom C-a C-t" || return 1
    after_line bridge.log "$m" 'pins: NRST=high' 10 || { fail "picocom DTR down: no 'pins: NRST=high' in bridge.log"; return 1; }
    tm_wait "$want" "$BANNER_WAIT" "picocom: banner after the DTR toggles" || return 1
    echo_check picocom57600 || return 1
    # baud up: 57600 -> 115200
    m=$(mark bridge.log)
    tm_keys C-a C-u && tm_wait "*** baud: 115200 ***" 10 "picocom C-a C-u" || return 1
    after_line bridge.log "$m" 'uart: 115200 8N1' 10 || { fail "picocom C-a C-u: the bridge did not apply 115200 8N1"; return 1; }
    tm_type "$bad" || return 1
    # C-a C-b: prompt, 57600
    m=$(mark bridge.log)
    # (the prompt "*** baud: " cannot be told from the earlier lines; keys queue in the pty)
    tm_keys C-a C-b || return 1
    tm_type 57600 && tm_keys Enter && tm_wait "*** baud: 57600 ***" 10 "picocom C-a C-b 57600" || return 1
    after_line bridge.log "$m" 'uart: 57600 8N1' 10 || { fail "picocom C-a C-b 57600: the bridge did not apply 57600 8N1"; return 1; }
    echo_check picocom-back-at-57600 || return 1
    # what was typed at 115200 went through the chip before this echo: it never came back
    tm_absent "$bad" 0 "picocom at 115200 against the 57600 application (the echo must be garbage)" || return 1
    # quit
    tm_keys C-a C-x || return 1
    tm_exit_wait "$EXIT_WAIT" picocom || return 1
    tm_wait "Thanks for using picocom" 2 "picocom exit" || return 1
    exit_in_time picocom || return 1
    tm kill-server 2>/dev/null
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}

sc_microcom() {
    up_app || return 1
    local m0
    m0=$(mark bridge.log)
    tm_start "busybox microcom -s 115200 /dev/$DEV" || return 1
    prog_opened microcom || return 1
    no_pins_moved "$m0" microcom || return 1
    reset_app_helper microcom || return 1
    echo_check microcom || return 1
    tm_keys C-x || return 1
    tm_exit_wait "$EXIT_WAIT" microcom || return 1
    exit_in_time microcom || return 1
    tm kill-server 2>/dev/null
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}

# wait_rts_raised WHAT MARK: minicom and screen assert RTS after opening; wait until the
# bridge has it (BOOT0=high), so the helper's RTS-off comes after it, not before
wait_rts_raised() {
    if after_line bridge.log "$2" 'pins: .*BOOT0=high' 15; then
        step "$1 asserted RTS (bridge: BOOT0=high)"
    else
        step "$1 did not assert RTS within 15 s (no BOOT0=high in bridge.log)"
    fi
}

sc_minicom() {
    up_app || return 1
    # a user configuration: the port at 115200 8N1, no flow control, no modem strings
    {
        echo "pu port             /dev/$DEV"
        echo "pu baudrate         115200"
        echo "pu bits             8"
        echo "pu parity           N"
        echo "pu stopbits         1"
        echo "pu rtscts           No"
        echo "pu xonxoff          No"
        echo "pu minit            "
        echo "pu mreset           "
        echo "pu mhangup          "
    } >.minirc.dfl
    local m
    m=$(mark bridge.log)
    tm_start "minicom -D /dev/$DEV -b 115200 -o" || return 1
    tm_wait "115200 8N1" 20 "minicom status line" || return 1
    prog_opened minicom || return 1
    wait_rts_raised minicom "$m"
    reset_app_helper minicom || return 1
    echo_check minicom || return 1
    tm_keys C-a x && tm_wait "Leave Minicom?" 10 "minicom C-a x" || return 1
    tm_keys Enter || return 1
    tm_exit_wait "$EXIT_WAIT" minicom || return 1
    exit_in_time minicom || return 1
    tm kill-server 2>/dev/null
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}

sc_screen() {
    up_app || return 1
    echo "startup_message off" >.screenrc
    mkdir -p -m 700 .screen
    local m
    m=$(mark bridge.log)
    tm_start "screen /dev/$DEV 115200" || return 1
    prog_opened screen || return 1
    wait_rts_raised screen "$m"
    reset_app_helper screen || return 1
    echo_check screen || return 1
    tm_keys C-a k && tm_wait "Really kill this window" 10 "screen C-a k" || return 1
    tm_keys y || return 1
    tm_exit_wait "$EXIT_WAIT" screen || return 1
    exit_in_time screen || return 1
    tm kill-server 2>/dev/null
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}
