# ESP8266 (Xtensa lx106) checks of the portable core. Included from the top Makefile:
#   include tests/lx106/lx106.mk
# Debian packages: gcc-xtensa-lx106 picolibc-xtensa-lx106-elf qemu-system-misc
#
#   make cross        compile firmware/core/*.c for the lx106 with -Werror, print sizes;
#                     also firmware/crypto/*.c against Debian's mbedTLS headers with an
#                     ESP-like config (lx106_mbedtls_config.h): compiled, not linked
#   make lx106-check  run tests/lx106's test image on an emulated lx106
#                     (qemu-system-xtensa -M sim -cpu lx106, semihosting simcall output)
# Everything is built under $(BUILD)/lx106/. See tests/lx106/README.md.

LX_PREFIX  ?= xtensa-lx106-elf-
LX_CC      ?= $(LX_PREFIX)gcc
LX_SIZE    ?= $(LX_PREFIX)size
LX_NM      ?= $(LX_PREFIX)nm
LX_QEMU    ?= qemu-system-xtensa
LX_SPECS   ?= /usr/lib/xtensa-lx106-elf/picolibc.specs
LX_TIMEOUT ?= 60
LX_OUT     := $(BUILD)/lx106

# What the ESP8266 build of the core uses: size-optimised, long calls (code in flash is
# out of CALL0 range of IRAM), one section per function so unused code is dropped.
LX_WARN    := -Wall -Wextra -Werror -Wpedantic -Wcast-align=strict -Wvla
LX_CFLAGS  := -specs=$(LX_SPECS) -std=c11 $(LX_WARN) -Os -g -mlongcalls \
              -ffunction-sections -fdata-sections -Ifirmware/core -Itests/lx106
LX_LDFLAGS := -specs=$(LX_SPECS) -nostartfiles -T tests/lx106/lx106.ld -Wl,--gc-sections \
              -Wl,--no-warn-rwx-segments -DPICOLIBC_INTEGER_PRINTF_SCANF
LX_QEMU_RUN = timeout $(LX_TIMEOUT) $(LX_QEMU) -M sim -cpu lx106 -display none -serial none \
              -monitor none -kernel $(LX_OUT)/lx106-tests.elf

LX_CORE_SRC := $(CORE_SRC)
LX_CORE_OBJ := $(patsubst firmware/core/%.c,$(LX_OUT)/core/%.o,$(LX_CORE_SRC))
# firmware/crypto: Debian's mbedTLS headers through a directory holding only them (adding
# /usr/include would bring the host's libc headers in place of picolibc's).
LX_MBEDTLS_INC := $(LX_OUT)/mbedtls-include
LX_CRYPTO_OBJ  := $(patsubst firmware/crypto/%.c,$(LX_OUT)/crypto/%.o,$(CRYPTO_SRC))
LX_TEST_OBJ := $(LX_OUT)/start.o $(LX_OUT)/runner.o $(LX_OUT)/core_tests.o \
               $(LX_OUT)/libgcc_extra.o

.PHONY: cross lx106-check

$(LX_OUT)/core/%.o: firmware/core/%.c
	@mkdir -p $(dir $@)
	$(LX_CC) $(LX_CFLAGS) -MMD -MP -c $< -o $@

$(LX_MBEDTLS_INC)/mbedtls:
	@mkdir -p $(dir $@)
	ln -sfn /usr/include/mbedtls $@

$(LX_OUT)/crypto/%.o: firmware/crypto/%.c | $(LX_MBEDTLS_INC)/mbedtls
	@mkdir -p $(dir $@)
	$(LX_CC) $(LX_CFLAGS) -Ifirmware/crypto -I$(LX_MBEDTLS_INC) \
	  -DMBEDTLS_CONFIG_FILE='"lx106_mbedtls_config.h"' -MMD -MP -c $< -o $@

$(LX_OUT)/%.o: tests/lx106/%.c
	@mkdir -p $(dir $@)
	$(LX_CC) $(LX_CFLAGS) -MMD -MP -c $< -o $@

$(LX_OUT)/%.o: tests/lx106/%.S
	@mkdir -p $(dir $@)
	$(LX_CC) $(LX_CFLAGS) -MMD -MP -c $< -o $@

# Sizes per object (text includes read-only data) and the total; then the runtime helpers
# the core calls, which an ESP8266 link must provide (ROM / vendor libgcc: the lx106 has
# no divide instruction).
cross: $(LX_CORE_OBJ) $(LX_CRYPTO_OBJ)
	@echo "lx106 core sizes (gcc $$($(LX_CC) -dumpversion), -Os -mlongcalls):"
	@$(LX_SIZE) -t $(LX_CORE_OBJ)
	@echo "lx106 core needs from libgcc: $$($(LX_NM) -u $(LX_CORE_OBJ) | awk '$$2 ~ /^__/ {print $$2}' | sort -u | tr '\n' ' ')"
	@echo "lx106 crypto sizes (mbedTLS not included):"
	@$(LX_SIZE) -t $(LX_CRYPTO_OBJ)

$(LX_OUT)/lx106-tests.elf: $(LX_TEST_OBJ) $(LX_CORE_OBJ) tests/lx106/lx106.ld
	$(LX_CC) $(LX_LDFLAGS) -o $@ $(LX_TEST_OBJ) $(LX_CORE_OBJ)
	@$(LX_SIZE) $@

# 1. The emulated CPU must trap an unaligned L32I (EXCCAUSE 9), else the run proves nothing.
# 2. The tests: one line per test, "N passed, N failed", exit status through simcall exit.
lx106-check: $(LX_OUT)/lx106-tests.elf
	@set -e; rc=0; \
	$(LX_QEMU_RUN) -semihosting-config enable=on,arg=lx106-tests,arg=fault-selftest \
	  </dev/null > $(LX_OUT)/fault-selftest.log 2>&1 || rc=$$?; \
	if [ $$rc -ne 3 ] || ! grep -q 'EXCCAUSE 9 ' $(LX_OUT)/fault-selftest.log; then \
	  cat $(LX_OUT)/fault-selftest.log; \
	  echo "lx106-check: the emulated lx106 did not trap an unaligned load (status $$rc)"; exit 1; fi; \
	echo "lx106-check: unaligned L32I traps (EXCCAUSE 9) under $(LX_QEMU) -cpu lx106"; \
	rc=0; $(LX_QEMU_RUN) -semihosting </dev/null > $(LX_OUT)/lx106-tests.log 2>&1 || rc=$$?; \
	cat $(LX_OUT)/lx106-tests.log; \
	if [ $$rc -eq 124 ]; then echo "lx106-check: timed out after $(LX_TIMEOUT) s"; exit 1; fi; \
	if [ $$rc -ne 0 ] || ! grep -Eq '^[0-9]+ passed, 0 failed$$' $(LX_OUT)/lx106-tests.log; then \
	  echo "lx106-check: FAILED (status $$rc, log $(LX_OUT)/lx106-tests.log)"; exit 1; fi
