# shellcheck shell=bash
# Helpers shared by tests/e2e/scenarios/programs.sh and transfer.sh (sourced by them; they
# use tests/e2e/run's step/fail/run_logged and lib.sh's start_bridge/start_daemon).

E2E_PROGS=${E2E_PROGS:-$E2E_HERE/progs}

# up_app [bridge args]: flash.bin holds a random 8 KiB application (app.want = the fields
# of its banner), then bridge (-v) and espstmd on /dev/$DEV. The application prints
# "stm32sim app crc32=... len=8192" at --app-baud 8N1 after each reset, then echoes.
up_app() {
    # lib.sh's mkimage + run's app_flash in one python start (each costs seconds under TCG)
    "$PY" - <<'EOF' >app.want || { fail "could not make app.bin / flash.bin"; return 1; }
import os, struct, zlib
img = struct.pack("<II", 0x20004000, 0x08000131) + os.urandom(8192 - 8)
open("app.bin", "wb").write(img)
open("flash.bin", "wb").write(img + b"\xff" * (131072 - len(img)))
t = img.rstrip(b"\xff")
print("crc32=%08x len=%d" % (zlib.crc32(t), len(t)))
EOF
    step "start bridge (stm32f103, flash.bin holds app.bin: $(cat app.want); $*)"
    start_bridge bridge.log stm32f103 flash.bin 0 -v "$@" 2>>steps.log || { fail "bridge did not start"; return 1; }
    step "start espstmd (bridge port $BRIDGE_PORT)"
    start_daemon daemon.log "$DEV" "$BRIDGE_PORT" 2>>steps.log || { fail "espstmd did not start"; return 1; }
}

# lines OPS...: change the modem lines of /dev/$DEV from a second descriptor, as a user's
# helper would while a terminal program holds the port (see progs/lines.py).
LINES_N=0
lines() { LINES_N=$((LINES_N + 1)); run_logged "lines$LINES_N" "$PY" "$E2E_PROGS/lines.py" "/dev/$DEV" "$@"; }

# elapsed T0: seconds since T0 (an $EPOCHREALTIME value), one decimal
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }

# mark FILE: its current line count (for after_line)
mark() { wc -l <"$1" 2>/dev/null || echo 0; }

# after_line FILE MARK REGEX TIMEOUT_S: wait until a line after line MARK matches (grep -E)
after_line() {
    local f=$1 m=$2 re=$3 end=$((SECONDS + $4 + 1))
    while [ $SECONDS -lt $end ]; do
        tail -n +"$((m + 1))" "$f" 2>/dev/null | grep -Eq -- "$re" && return 0
        sleep 0.1
    done
    tail -n +"$((m + 1))" "$f" 2>/dev/null | grep -Eq -- "$re"
}

# dev_holders: PIDs of processes that have /dev/$DEV open (their /proc/PID/fd links; one
# find, as a fork per descriptor takes tens of seconds under TCG)
dev_holders() {
    find /proc/[0-9]*/fd -maxdepth 1 -lname "/dev/$DEV" 2>/dev/null |
        sed -n 's|^/proc/\([0-9]*\)/fd/.*|\1|p' | sort -u | tr '\n' ' '
}

# ---- a terminal program in tmux, driven as a person would (keys in, screen out)
# tm ARGS...: tmux on the scenario's own server (socket in the work dir, no user config);
# HOME is the work dir (minicom's .minirc.dfl, .screenrc, picocom's history).
tm() { TERM=xterm HOME=$PWD SCREENDIR=$PWD/.screen tmux -f /dev/null -S "$PWD/tmux.sock" "$@"; }

# tm_start CMDLINE: run CMDLINE in a 120x40 pane; prog.rc gets its exit status when it ends.
tm_start() {
    printf '#!/bin/bash\n%s\necho $? >%q/prog.rc\n' "$1" "$PWD" >prog.sh
    rm -f prog.rc
    step "tmux: $1"
    tm new-session -d -s e2e -x 120 -y 40 "bash $PWD/prog.sh" 2>>steps.log || { fail "tmux new-session failed"; return 1; }
    tm set-option -t e2e remain-on-exit on >/dev/null 2>&1
    local pid
    pid=$(tm display-message -p '#{pid}' 2>/dev/null)
    [ -n "$pid" ] && EXTRA_PIDS="$EXTRA_PIDS $pid"   # the tmux server: stopped by cleanup
}

# tm_screen: the pane's text (history included) on stdout; also appended to screen.log
tm_screen() {
    local s
    s=$(tm capture-pane -p -J -S - -t e2e 2>/dev/null)
    printf '%s\n' "$s"
    { echo "---- screen at $(el) s"; printf '%s\n' "$s"; } >>screen.log
}

# tm_keys KEY...: tmux key names (C-a, Enter, y ...); tm_type TEXT: literal text
tm_keys() { step "keys: $*"; tm send-keys -t e2e "$@"; }
tm_type() { step "type: $1"; tm send-keys -t e2e -l -- "$1"; }

# tm_wait TEXT TIMEOUT_S WHAT: wait until TEXT (fixed string) is on the screen
tm_wait() {
    local end=$((SECONDS + $2 + 1))
    while [ $SECONDS -lt $end ]; do
        tm capture-pane -p -J -S - -t e2e 2>/dev/null | grep -Fq -- "$1" && { step "screen shows: $1"; return 0; }
        sleep 0.2
    done
    tm_screen >/dev/null
    fail "$3: '$1' not on the screen within $2 s (see screen.log)"
}

# tm_absent TEXT WAIT_S WHAT: TEXT must still be absent after WAIT_S seconds
tm_absent() {
    sleep "$2"
    if tm capture-pane -p -J -S - -t e2e 2>/dev/null | grep -Fq -- "$1"; then
        tm_screen >/dev/null
        fail "$3: '$1' is on the screen (see screen.log)"
        return 1
    fi
    step "screen does not show: $1 (after $2 s)"
}

# tm_exit_wait TIMEOUT_S WHAT: after the quit keys, wait for the program to end: prints the
# seconds it took; fails if it did not end, if its status is not 0, or if any process
# still holds /dev/$DEV. Sets EXIT_SECS.
tm_exit_wait() {
    local t0=$EPOCHREALTIME end=$((SECONDS + $1 + 1)) secs rc held
    while [ ! -s prog.rc ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
    secs=$(elapsed "$t0")
    tm_screen >/dev/null
    [ -s prog.rc ] || { fail "$2: still running $1 s after the quit keys (hangs)"; return 1; }
    rc=$(cat prog.rc)
    step "$2 ended after $secs s (exit $rc)"
    echo "$2: ended $secs s after the quit keys (exit $rc)" >>measure.log
    [ "$rc" = 0 ] || { fail "$2: exit status $rc"; return 1; }
    held=$(dev_holders)
    [ -z "$held" ] || { fail "$2 ended but /dev/$DEV is still open by pid(s) $held"; return 1; }
    # shellcheck disable=SC2034  # read by the scenarios
    EXIT_SECS=$secs
}
