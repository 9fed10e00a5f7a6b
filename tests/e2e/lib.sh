# shellcheck shell=bash
# Helpers shared by tests/e2e/run and tests/e2e/demo (sourced, bash).
# Expects: E2E_BUILD (dir with espstmd, espstm-bridge, stm32sim), E2E_HERE (tests/e2e).

# Can this process run the daemon natively (root, /dev/cuse opens)?
cuse_native_ok() {
    [ "$(id -u)" -eq 0 ] || return 1
    [ -e /dev/cuse ] || return 1
    /usr/bin/python3 -c 'import os; os.close(os.open("/dev/cuse", os.O_RDWR))' 2>/dev/null
}

# mkimage OUT SIZE: a plausible STM32 image: initial SP in RAM, reset vector odd and
# inside flash, then random bytes. Prints "crc32=XXXXXXXX len=N" (the banner's fields).
mkimage() {
    /usr/bin/python3 - "$1" "$2" <<'EOF'
import os, struct, sys, zlib
out, size = sys.argv[1], int(sys.argv[2])
img = struct.pack("<II", 0x20004000, 0x08000131) + os.urandom(size - 8)
open(out, "wb").write(img)
t = img.rstrip(b"\xff")
print("crc32=%08x len=%d" % (zlib.crc32(t), len(t)))
EOF
}

# wait_line FILE REGEX TIMEOUT_S: wait until a line of FILE matches (grep -E).
wait_line() {
    local f=$1 re=$2 end=$((SECONDS + $3 + 1))
    while [ $SECONDS -lt $end ]; do   # wall clock: forks are slow under TCG
        grep -Eq -- "$re" "$f" 2>/dev/null && return 0
        sleep 0.1
    done
    grep -Eq -- "$re" "$f" 2>/dev/null
}

# start_bridge LOG MODEL FLASH PORT [extra args]: sets BRIDGE_PID, BRIDGE_PORT and BRIDGE_KEY
# (the unit key the bridge made at its first start, FLASH.key; start_daemon pairs with it).
start_bridge() {
    local log=$1 model=$2 flash=$3 port=$4; shift 4
    : >"$log"
    "$E2E_BUILD/espstm-bridge" --listen "127.0.0.1:$port" --target "sim:$model" \
        --flash "$flash" "$@" 2>>"$log" >>"$log" </dev/null &
    BRIDGE_PID=$!
    if ! wait_line "$log" 'espstm-bridge: listening on 127\.0\.0\.1:[0-9]+' 15; then
        echo "bridge did not print 'listening on' within 15 s" >&2
        return 1
    fi
    BRIDGE_PORT=$(sed -n 's/.*espstm-bridge: listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | tail -1)
    BRIDGE_KEY=""
    [ -f "$flash.key" ] && BRIDGE_KEY=$(realpath "$flash.key")
    [ -n "$BRIDGE_PORT" ]
}

# start_daemon LOG DEVNAME PORT: sets DAEMON_PID; waits for ready + the node. With BRIDGE_KEY
# set (start_bridge), the link is TLS with that key.
start_daemon() {
    local log=$1 dev=$2 port=$3
    : >"$log"
    "$E2E_BUILD/espstmd" --device "$dev" --connect "127.0.0.1:$port" ${BRIDGE_KEY:+--key "$BRIDGE_KEY"} \
        --foreground 2>>"$log" >>"$log" </dev/null &
    DAEMON_PID=$!
    if ! wait_line "$log" "espstmd: ready: /dev/$dev" 15; then
        echo "daemon did not print 'espstmd: ready: /dev/$dev' within 15 s" >&2
        return 1
    fi
    local end=$((SECONDS + 6))
    while [ ! -c "/dev/$dev" ] && [ $SECONDS -lt $end ]; do sleep 0.1; done
    [ -c "/dev/$dev" ] || { echo "/dev/$dev is not a character device after ready" >&2; return 1; }
}

# stop_pid PID [NAME]: SIGTERM, wait up to 5 s, then SIGKILL.
stop_pid() {
    local pid=$1 end=$((SECONDS + 6))
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $end ]; do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "${2:-process} $pid ignored SIGTERM for 5 s: SIGKILL" >&2
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}
