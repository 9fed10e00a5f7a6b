# tests/unit: every *.c here contributes Check suites (they register themselves); one binary
# under ASan + UBSan that links the modules of every program (without their main.c).
UNIT_SRC      := $(wildcard tests/unit/*.c)
UNIT_CPPFLAGS := -Itests/unit -Ifirmware/crypto -Ifirmware/core -Istm32sim -Idaemon -Icli -Icommon -Ifirmware/posix \
                 $(UV_CFLAGS) $(FUSE_CFLAGS) $(CHECK_CFLAGS) $(MHD_CFLAGS)

$(call aobj,$(UNIT_SRC)): MOD_CPPFLAGS := $(UNIT_CPPFLAGS)
$(BUILD)/unit-tests: $(call aobj,$(UNIT_SRC) $(DAEMON_SRC) $(CLI_SRC) $(BRIDGE_SRC)) $(CRYPTO_LIB_SAN) $(CORE_LIB_SAN) $(SIM_LIB_SAN)
	$(CC) $(OPT) $(SAN) -o $@ $^ $(CHECK_LIBS) $(DAEMON_LIBS) $(BRIDGE_LIBS) $(CLI_LIBS) $(CRYPTO_LIBS)
