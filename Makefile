# espstm build. `make` builds build/espstmd, build/espstm, build/espstm-bridge, build/stm32sim.
# `make check` runs every test (CONTRIBUTING.md lists its parts); docs/ARCHITECTURE.md
# describes the tree.
# `make demo` flashes the simulated STM32 with Debian's stm32flash through /dev/ttySTM0.

CC      ?= cc
BUILD   ?= build
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror
OPT     ?= -O2 -g
AR      ?= ar

UV_CFLAGS    := $(shell pkg-config --cflags libuv 2>/dev/null)
UV_LIBS      := $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
FUSE_CFLAGS  := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS    := $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)
SD_LIBS      := $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
MHD_CFLAGS   := $(shell pkg-config --cflags libmicrohttpd 2>/dev/null)
MHD_LIBS     := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
CURL_CFLAGS  := $(shell pkg-config --cflags libcurl 2>/dev/null)
CURL_LIBS    := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
INI_LIBS     := -liniparser
Z_LIBS       := -lz

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
aobj = $(patsubst %.c,$(BUILD)/asan/%.o,$(1))

# Every object is compiled with the include paths of the folder it belongs to (MOD_CPPFLAGS,
# set per folder in its build.mk), so a file cannot include what its program may not use.
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) $(MOD_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) $(MOD_CPPFLAGS) $(CPPFLAGS) $(CFLAGS) $(SAN) -DESPSTM_UNIT_TEST -MMD -MP -c $< -o $@

all: $(BUILD)/espstmd $(BUILD)/espstm-bridge $(BUILD)/stm32sim $(BUILD)/espstm $(CRYPTO_LIB)

# One folder per program; each lists its own sources and include paths.
include firmware/core/build.mk
include firmware/crypto/build.mk
include stm32sim/build.mk
include daemon/build.mk
include cli/build.mk
include firmware/posix/build.mk
include tests/unit/build.mk
include tests/fuzz/build.mk

.PHONY: all check unit e2e web fuzz demo clean format install-deps service bench layout attack
unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

e2e: all
	ESPSTM_BUILD=$(BUILD) tests/e2e/run

# make check: unit tests, the layout rules, the core cross-compiled and tested on the ESP8266
# CPU (lx106, qemu), a short bounded fuzz run of every target, the legacy-port (1234/1235),
# flashing-over-HTTP, allow-list, service/install, RFC 2217 (pyserial) and tty-target (pty)
# checks, and the web page in headless Chromium, then the e2e suite.
check: install-deps
	$(MAKE) all unit
	$(MAKE) layout
	$(MAKE) cross lx106-check
	$(MAKE) fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)
	ESPSTM_BUILD=$(BUILD) tests/legacy/run
	ESPSTM_BUILD=$(BUILD) tests/flash-http/run
	ESPSTM_BUILD=$(BUILD) tests/allow/run
	$(MAKE) web
	$(MAKE) service
	ESPSTM_BUILD=$(BUILD) tests/rfc2217/run
	ESPSTM_BUILD=$(BUILD) tests/ttytarget/run
	$(MAKE) attack
	$(MAKE) e2e
CHECK_FUZZ_SECONDS ?= 10

# The rules of the tree (tests/layout/check.py): file and function sizes, what each binary
# links, no references outside the repository, include paths that the build enforces.
layout: all
	ESPSTM_BUILD=$(BUILD) CORE_CPPFLAGS="$(CORE_CPPFLAGS)" DAEMON_CPPFLAGS="$(DAEMON_CPPFLAGS)" \
	  tests/layout/check.py

# The attacker suite (tests/attack/run: every tests/attack/test_*.py, 127.0.0.1 only).
attack: all
	ESPSTM_BUILD=$(BUILD) tests/attack/run

# The systemd unit (systemd-analyze verify/security) and `make install` into a DESTDIR.
service: all
	ESPSTM_BUILD=$(BUILD) tests/service/run

# Flashing benchmark: stm32flash through /dev/ttySTM0 vs espstm flash, with
# added link latency; prints a table. Not part of `make check` (figures, not a test).
bench: all
	ESPSTM_BUILD=$(BUILD) tests/bench/run

# libFuzzer targets (tests/fuzz/build.mk), each run for a bounded time (FUZZ_SECONDS).
FUZZ_SECONDS ?= 20
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do n=$$(basename $$f); echo "fuzz: $$n ($(FUZZ_SECONDS) s)"; \
	  mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/$$n- \
	       $(BUILD)/fuzz/corpus-$$n > $(BUILD)/fuzz/$$n.log 2>&1; then \
	    tail -n 40 $(BUILD)/fuzz/$$n.log; echo "fuzz: $$n FAILED (log: $(BUILD)/fuzz/$$n.log)"; exit 1; fi; \
	  grep -E '^Done [0-9]+ runs|stat::new_units_added' $(BUILD)/fuzz/$$n.log; done

# The bridge's web page and HTTP API in headless Chromium (playwright-core from npm).
web: $(BUILD)/espstm-bridge
	ESPSTM_BUILD=$(BUILD) tests/web/run

demo: install-deps
	$(MAKE) all
	ESPSTM_BUILD=$(BUILD) tests/e2e/demo

# The Debian 12 packages (scripts/install-deps): quick when all are present. demo and check
# run it first, then build in a sub-make, which reads the pkg-config flags of what it installed.
install-deps:
	scripts/install-deps

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

# make install (PREFIX, DESTDIR): binaries, systemd unit, udev rule, config, man pages.
include mk/install.mk

# ESP8266 (lx106) cross-compile of firmware/core and its tests under qemu-system-xtensa.
include tests/lx106/lx106.mk

# make fresh-check: the README's two commands on a freshly bootstrapped Debian 12 root.
include mk/fresh.mk

# Header dependencies of the objects (not of anything else under $(BUILD), such as the
# Debian root that make fresh-check bootstraps there).
-include $(shell find $(BUILD)/obj $(BUILD)/asan $(BUILD)/lx106 -type f -name '*.d' 2>/dev/null)
