# shellcheck shell=bash
# Scenario "transfer" (sourced by tests/e2e/run): E2E_TRANSFER_BYTES (default 10 MiB) of
# random data written to /dev/$DEV at 921600 8N1 and read back through the simulated
# application's echo (espstm-bridge --app-baud 921600) on the same descriptor: bytes in =
# bytes out, same order (length, CRC32, first differing offset). Prints the throughput as
# a fraction of the line rate and the CPU time of espstmd and espstm-bridge.
# The timeout grows with the size: 120 s + 1 s per 5000 bytes. Measured in the VM (TCG, 2
# cores): ~10.5 kB/s = 0.11 of the 921600 line rate, espstm-bridge at ~95 % of a core and
# espstmd ~40 %; natively espstm-bridge alone (no daemon) moved ~16-24 kB/s. So 10 MiB takes
# ~17 min in the VM: set E2E_TRANSFER_BYTES (e.g. 1048576) for a quicker run.
# shellcheck source=tests/e2e/progs/common.sh
. "$E2E_HERE/progs/common.sh"

E2E_TRANSFER_BYTES=${E2E_TRANSFER_BYTES:-10485760}
E2E_TRANSFER_IDLE=${E2E_TRANSFER_IDLE:-30}
SCENARIOS+="
transfer:$((120 + E2E_TRANSFER_BYTES / 5000)):$E2E_TRANSFER_BYTES random bytes through the app's echo at 921600 8N1: lossless, in order (backpressure); throughput and CPU
"

sc_transfer() {
    up_app --app-baud 921600 || return 1
    local rc
    run_logged transfer "$PY" -u "$E2E_PROGS/transfer.py" "/dev/$DEV" "$E2E_TRANSFER_BYTES" 921600 \
        --banner "stm32sim app $(cat app.want)" --idle "$E2E_TRANSFER_IDLE" \
        --pid "espstmd=$DAEMON_PID" --pid "espstm-bridge=$BRIDGE_PID"; rc=$?
    cat transfer.log >>steps.log
    grep -q 'uart: 921600 8N1' bridge.log || { fail "the bridge never applied 921600 8N1 (bridge.log)"; return 1; }
    if [ $rc -ne 0 ]; then
        fail "$(grep -m1 '^FAIL' transfer.log || echo "transfer.py exit $rc") (see transfer.log)"
        return 1
    fi
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited during the transfer"; return 1; }
    # the figures, for the suite's output
    grep -E '^transfer: [0-9]+ bytes written|^transfer: cpu' transfer.log | sed "s/^/    /"
}
