# espstm build. `make` builds build/espstmd, build/espstm-bridge, build/stm32sim.
# `make check` runs every test (unit tests under ASan+UBSan, then the e2e suite).
# `make demo` flashes the simulated STM32 with Debian's stm32flash through /dev/ttySTM0.

CC      ?= cc
BUILD   ?= build
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror
OPT     ?= -O2 -g
CPPFLAGS += -Ifirmware/core -Itests/sim -Idaemon -Ifirmware/posix

UV_CFLAGS    := $(shell pkg-config --cflags libuv 2>/dev/null)
UV_LIBS      := $(shell pkg-config --libs libuv 2>/dev/null || echo -luv)
FUSE_CFLAGS  := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS    := $(shell pkg-config --libs fuse3 2>/dev/null || echo -lfuse3)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)
SD_LIBS      := $(shell pkg-config --libs libsystemd 2>/dev/null || echo -lsystemd)
INI_LIBS     := -liniparser
Z_LIBS       := -lz

ALL_CFLAGS = $(CSTD) $(WARN) $(OPT) $(CPPFLAGS) $(UV_CFLAGS) $(FUSE_CFLAGS) $(CHECK_CFLAGS) $(CFLAGS)

# Sources are discovered: a module added to one of these directories is built.
CORE_SRC   := $(wildcard firmware/core/*.c)
SIM_SRC    := $(filter-out tests/sim/main.c,$(wildcard tests/sim/*.c))
BRIDGE_SRC := $(filter-out firmware/posix/main.c,$(wildcard firmware/posix/*.c))
# daemon/espstm*.c: the espstm command-line tool (its own main), not part of espstmd.
# daemon/cli_*.c: plain C helpers of the tool (no libuv), also unit tested with the daemon.
CLI_SRC    := $(wildcard daemon/espstm*.c)
CLI_LIB    := $(wildcard daemon/cli_*.c)
DAEMON_SRC := $(filter-out daemon/main.c $(CLI_SRC) $(CLI_LIB),$(wildcard daemon/*.c))
UNIT_SRC   := $(wildcard tests/unit/*.c)
FUZZ_SRC   := $(wildcard tests/fuzz/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
aobj = $(patsubst %.c,$(BUILD)/asan/%.o,$(1))

MHD_LIBS    := $(shell pkg-config --libs libmicrohttpd 2>/dev/null || echo -lmicrohttpd)
BRIDGE_LIBS := $(UV_LIBS) $(MHD_LIBS) $(Z_LIBS) -lm
DAEMON_LIBS := $(UV_LIBS) $(FUSE_LIBS) $(INI_LIBS) $(SD_LIBS) $(Z_LIBS) -lm

.PHONY: all check unit e2e web fuzz demo clean format install-deps service bench
all: $(BUILD)/espstmd $(BUILD)/espstm-bridge $(BUILD)/stm32sim $(BUILD)/espstm

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) -DESPSTM_UNIT_TEST -MMD -MP -c $< -o $@

$(BUILD)/stm32sim: $(call obj,tests/sim/main.c $(SIM_SRC))
	$(CC) $(OPT) -o $@ $^ $(Z_LIBS) -lm

$(BUILD)/espstm-bridge: $(call obj,firmware/posix/main.c $(BRIDGE_SRC) $(CORE_SRC) $(SIM_SRC))
	$(CC) $(OPT) -o $@ $^ $(BRIDGE_LIBS)

$(BUILD)/espstmd: $(call obj,daemon/main.c $(DAEMON_SRC) $(CORE_SRC))
	$(CC) $(OPT) -o $@ $^ $(DAEMON_LIBS)

# espstm: the command-line tool (status/reset/boot/run over espstmd's control socket,
# flash over the bridge's HTTP API). Links the core (JSON) and libcurl.
CURL_LIBS := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
$(BUILD)/espstm: $(call obj,$(CLI_SRC) $(CLI_LIB) $(CORE_SRC))
	$(CC) $(OPT) -o $@ $^ $(CURL_LIBS) $(Z_LIBS) -lm

# Unit tests: every tests/unit/*.c contributes Check suites; linked with everything
# testable (core, sim library, daemon modules, bridge modules) under ASan + UBSan.
$(BUILD)/unit-tests: $(call aobj,$(UNIT_SRC) $(CORE_SRC) $(SIM_SRC) $(DAEMON_SRC) $(CLI_LIB) $(BRIDGE_SRC))
	$(CC) $(OPT) $(SAN) -o $@ $^ $(CHECK_LIBS) $(DAEMON_LIBS) $(BRIDGE_LIBS)

unit: $(BUILD)/unit-tests
	$(BUILD)/unit-tests

e2e: all
	ESPSTM_BUILD=$(BUILD) tests/e2e/run

# make check: unit tests, the core cross-compiled and tested on the ESP8266 CPU (lx106,
# qemu), a short bounded fuzz run of every target, the legacy-port (1234/1235) checks,
# the web page in headless Chromium, then the e2e suite.
check: all unit
	$(MAKE) cross lx106-check
	$(MAKE) fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)
	ESPSTM_BUILD=$(BUILD) tests/legacy/run
	ESPSTM_BUILD=$(BUILD) tests/flash-http/run
	ESPSTM_BUILD=$(BUILD) tests/allow/run
	$(MAKE) web
	$(MAKE) service
	ESPSTM_BUILD=$(BUILD) tests/rfc2217/run
	$(MAKE) e2e
CHECK_FUZZ_SECONDS ?= 10

# The systemd unit (systemd-analyze verify/security) and `make install` into a DESTDIR.
service: all
	ESPSTM_BUILD=$(BUILD) tests/service/run

# Flashing benchmark (issue 5): stm32flash through /dev/ttySTM0 vs espstm flash, with
# added link latency; prints a table. Not part of `make check` (figures, not a test).
bench: all
	ESPSTM_BUILD=$(BUILD) tests/bench/run

# libFuzzer targets, each run for a bounded time (FUZZ_SECONDS).
FUZZ_SECONDS ?= 20
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(SIM_SRC)
	@mkdir -p $(dir $@)
	clang $(CSTD) $(WARN) -O1 -g $(CPPFLAGS) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $^ $(Z_LIBS) -lm
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

demo: all
	ESPSTM_BUILD=$(BUILD) tests/e2e/demo

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

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
