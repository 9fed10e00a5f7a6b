# shellcheck shell=bash
# Scenario "gpio": espstm-bridge --target tty:/dev/pts/N with --nrst/--boot0 on GPIO lines
# (libgpiod) of a simulated chip in the VM's kernel: espstm_gpiosim.ko (tests/e2e/gpiosim,
# built on the host by tests/e2e/gpiosim/build, which run calls before booting the VM;
# Debian's 6.1 kernel has no gpio-sim). The checks are gpio_checks.py.
SCENARIOS+="
gpio:150:--target tty:pty --nrst gpiochipN:17 --boot0 STM_BOOT0 on a simulated GPIO chip: rest levels, HTTP reset/bootloader/run, auto-boot before the 0x7F, bad/busy lines, --invert-*
"

sc_gpio() {
    local ko=${ESPSTM_E2E_GPIOSIM_KO:-$E2E_BUILD/e2e-gpiosim/espstm_gpiosim.ko} chip="" c rc bad
    [ -f "$ko" ] || { fail "$ko missing: run tests/e2e/gpiosim/build (on the host) first"; return 1; }
    [ "$(modinfo -F vermagic "$ko" 2>/dev/null | cut -d' ' -f1)" = "$(uname -r)" ] ||
        { fail "$ko is not built for this kernel ($(uname -r)): tests/e2e/gpiosim/build"; return 1; }
    # a leftover of an earlier run killed by its timeout (natively): fresh chip, fresh log
    [ -d /sys/kernel/espstm_gpiosim ] && { rmmod espstm_gpiosim 2>>steps.log || { fail "espstm_gpiosim is loaded and busy"; return 1; }; }
    run_logged insmod insmod "$ko" || { fail "insmod $ko: $(head -c 300 insmod.log)"; return 1; }
    # its gpiochipN: the sysfs class entry with label espstm-sim links to the chip device
    for c in /sys/class/gpio/gpiochip*; do
        [ "$(cat "$c/label" 2>/dev/null)" = espstm-sim ] || continue
        chip=$(basename "$(readlink -f "$c/device")")
    done
    step "espstm-sim is $chip"
    case $chip in gpiochip[0-9]*) ;; *) fail "no gpiochipN with label espstm-sim (got '$chip')"; return 1 ;; esac
    [ -c "/dev/$chip" ] || { fail "/dev/$chip is not a character device"; return 1; }
    run_logged checks timeout 120 "$PY" "$E2E_HERE/gpio_checks.py" "$E2E_BUILD/espstm-bridge" "$chip" "$PWD"; rc=$?
    cat checks.log >>steps.log
    rmmod espstm_gpiosim 2>>steps.log
    if [ $rc -ne 0 ]; then
        bad=$(grep -c '^FAIL ' checks.log)
        [ $rc -eq 124 ] && bad="$bad (gpio_checks.py hung: killed after 120 s)"
        fail "$bad gpio sub-checks failed: $(grep -m1 '^FAIL ' checks.log | cut -c1-300) (see checks.log)"
        return 1
    fi
}
