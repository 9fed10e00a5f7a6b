# shellcheck shell=bash
# flash-cli: `espstm flash` (espstm(1) FLASH) against espstm-bridge --http
# and espstmd. The bridge serves its HTTP API on an ephemeral port with a password file;
# espstmd runs from a config whose [ttySTM0] sets http_port, so `espstm flash ttySTM0`
# finds the bridge through the control socket (status NAME: host, http_port).
SCENARIOS+="
flash-cli:120:espstm flash ttySTM0 img.bin --verify --go (exit 0, progress lines, banner shows the image's crc32), wrong password exit 77, --host HOST:PORT with Intel HEX verified by default
"

# flash_cli_images: img.bin (16 KiB) and img2.bin (8 KiB) with plausible vector tables and
# random bytes, and img2.hex (img2.bin as Intel HEX at 0x08000000: 16-byte records, type 04
# bases, EOF). Prints the banner fields (mkimage's form) after img.bin, and after img2.hex
# over it (img2, then img's second half). One python start: they are slow under TCG.
flash_cli_images() {
    "$PY" - <<'PYEOF'
import os, struct, zlib
def image(n):
    return struct.pack("<II", 0x20004000, 0x08000131) + os.urandom(n - 8)
def banner(flash):
    t = flash.rstrip(b"\xff")
    return "crc32=%08x len=%d" % (zlib.crc32(t), len(t))
def rec(a, t, d):
    b = bytes([len(d), (a >> 8) & 0xFF, a & 0xFF, t]) + d
    return ":" + (b + bytes([(-sum(b)) & 0xFF])).hex().upper()
img, img2 = image(16384), image(8192)
open("img.bin", "wb").write(img)
open("img2.bin", "wb").write(img2)
lines, hi = [], None
for off in range(0, len(img2), 16):
    a = 0x08000000 + off
    if a >> 16 != hi:
        hi = a >> 16
        lines.append(rec(0, 4, hi.to_bytes(2, "big")))
    lines.append(rec(a & 0xFFFF, 0, img2[off:off + 16]))
lines.append(":00000001FF")
open("img2.hex", "w").write("\r\n".join(lines) + "\r\n")
print(banner(img))
print(banner(img2 + img[8192:]))
PYEOF
}

sc_flash-cli() {
    local espstm="$E2E_BUILD/espstm" sock="$PWD/ctl.sock" http rc want want2
    [ -x "$espstm" ] || { fail "$espstm is missing (make $E2E_BUILD/espstm)"; return 1; }
    printf 'pw-%s\n' "$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')" >pw.txt
    chmod 600 pw.txt # else espstm flash warns (as ssh does) that others may read it
    flash_cli_images >want.txt || { fail "could not make the images"; return 1; }
    want=$(sed -n 1p want.txt); want2=$(sed -n 2p want.txt)
    rm -f flash.bin
    step "start bridge (stm32f103, --http 127.0.0.1:0 --password-file pw.txt: HTTPS, unit key)"
    start_bridge bridge.log stm32f103 flash.bin 0 -v --http 127.0.0.1:0 --password-file "$PWD/pw.txt" \
        2>>steps.log || { fail "bridge did not start"; return 1; }
    wait_line bridge.log 'espstm-bridge: https on 127\.0\.0\.1:[0-9]+' 10 || { fail "bridge printed no 'https on' line"; return 1; }
    http=$(sed -n 's/.*espstm-bridge: https on 127\.0\.0\.1:\([0-9]*\).*/\1/p' bridge.log | tail -1)
    # pair: the key for espstmd, the certificate pinned for every espstm flash below (HTTPS)
    export ESPSTM_KNOWN_BRIDGES=$PWD/known_bridges
    run_logged pair "$espstm" pair "127.0.0.1:$http" --password-file "$PWD/pw.txt" --key-dir "$PWD/keys" ||
        { fail "espstm pair failed: $(tail -n 3 pair.log | tr '\n' ' ')"; return 1; }
    BRIDGE_KEY=$PWD/keys/127.0.0.1.key
    [ -f "$BRIDGE_KEY" ] && grep -q "^127.0.0.1:$http sha256//" known_bridges ||
        { fail "espstm pair wrote no key file or no pin"; return 1; }
    printf '[%s]\nhost = 127.0.0.1\nport = %s\nkey = %s\nhttp_port = %s\n' "$DEV" "$BRIDGE_PORT" "$BRIDGE_KEY" "$http" >espstm.conf
    cat espstm.conf >>steps.log
    step "start espstmd -c espstm.conf --control $sock"
    : >daemon.log
    "$E2E_BUILD/espstmd" -c "$PWD/espstm.conf" --control "$sock" --foreground >>daemon.log 2>&1 </dev/null &
    DAEMON_PID=$!
    wait_line daemon.log "espstmd: ready: /dev/$DEV( |$)" 15 || { fail "no 'espstmd: ready: /dev/$DEV' within 15 s"; return 1; }
    [ -S "$sock" ] || { fail "no control socket at $sock"; return 1; }

    # 1. DEVICE form: espstmd names the bridge; verify + go; plain progress lines (no tty)
    run_logged flash timeout 60 "$espstm" --socket "$sock" flash "$DEV" img.bin --verify --go \
        --password-file pw.txt; rc=$?
    cat flash.log >>steps.log
    [ $rc -eq 0 ] || { fail "espstm flash $DEV img.bin --verify --go: exit $rc: $(tail -n 2 flash.log | tr '\n' ' ')"; return 1; }
    grep -q "^espstm flash: img.bin (binary, 16.0 KiB) at the flash base -> $DEV (bridge 127.0.0.1:$http), target 0\$" flash.log ||
        { fail "flash.log lacks the bridge espstmd named (127.0.0.1:$http): $(head -n 1 flash.log)"; return 1; }
    grep -q '^espstm flash: writing and verifying 16.0 KiB$' flash.log || { fail "no progress line 'writing and verifying' (plain lines off a tty)"; return 1; }
    grep -q '^espstm flash:  50%  written' flash.log || { fail "no 50% progress line"; return 1; }
    grep -q "^$DEV: wrote 16.0 KiB (16384 bytes) at 0x08000000 of STM32F10x.*, verified, application started;" flash.log ||
        { fail "no summary line naming verify and start: $(tail -n 1 flash.log)"; return 1; }
    grep -q 'http: flash of target 0 done' bridge.log || { fail "the bridge's log shows no finished flash"; return 1; }
    ! grep -q 'warning' flash.log || { fail "a warning for a password file of mode 0600: $(grep warning flash.log)"; return 1; }
    cmp -n 16384 img.bin flash.bin >>steps.log 2>&1 || { fail "the simulator's flash differs from img.bin"; return 1; }
    check_banner "$want" || return 1

    # 2. a wrong password: 77, nothing written
    ESPSTM_PASSWORD=wrong-password run_logged wrongpw timeout 30 "$espstm" --socket "$sock" flash "$DEV" img2.bin --verify; rc=$?
    cat wrongpw.log >>steps.log
    [ $rc -eq 77 ] || { fail "wrong password: exit $rc, want 77: $(tail -n 1 wrongpw.log)"; return 1; }
    grep -q 'refused the password (HTTP 401' wrongpw.log || { fail "wrong password: no clear message: $(tail -n 1 wrongpw.log)"; return 1; }
    cmp -n 16384 img.bin flash.bin >>steps.log 2>&1 || { fail "the refused uploads changed the flash"; return 1; }

    # 3. --host form, Intel HEX (format from the name), no espstmd needed; no --verify:
    # verify is the default
    ESPSTM_PASSWORD=$(head -n 1 pw.txt) run_logged hostflash timeout 60 "$espstm" flash --host "127.0.0.1:$http" img2.hex \
        --go; rc=$?
    cat hostflash.log >>steps.log
    [ $rc -eq 0 ] || { fail "espstm flash --host 127.0.0.1:$http img2.hex: exit $rc: $(tail -n 2 hostflash.log | tr '\n' ' ')"; return 1; }
    grep -q '(Intel HEX, 8.0 KiB) at 0x08000000 -> bridge 127.0.0.1:' hostflash.log || { fail "HEX not recognised: $(head -n 1 hostflash.log)"; return 1; }
    grep -q '^espstm flash: writing and verifying 8.0 KiB$' hostflash.log &&
        grep -q '^127\.0\.0\.1:[0-9]*: wrote 8.0 KiB (8192 bytes) at 0x08000000 .*, verified, application started;' hostflash.log ||
        { fail "no --verify: the HEX image was not verified by default: $(tail -n 1 hostflash.log)"; return 1; }
    # the chip's flash: img2, then img's second half (pages after 8 KiB untouched); the
    # application started (--go) prints a banner covering both after a reset
    cmp -n 8192 img2.bin flash.bin >>steps.log 2>&1 || { fail "the simulator's flash differs from img2.bin"; return 1; }
    cmp -i 8192 -n 8192 flash.bin img.bin >>steps.log 2>&1 || { fail "flash after the HEX image's pages changed"; return 1; }
    check_banner "$want2" "$DEV" banner2 || return 1
    kill -0 "$DAEMON_PID" 2>/dev/null || { fail "espstmd exited"; return 1; }
}
