# firmware/posix: espstm-bridge, the firmware core on Linux (libuv, libmicrohttpd) with the
# simulated STM32 as a target (--target sim:MODEL).
BRIDGE_SRC := \
	firmware/posix/allow_posix.c \
	firmware/posix/http.c \
	firmware/posix/legacy.c \
	firmware/posix/plog.c
BRIDGE_MAIN     := firmware/posix/main.c
BRIDGE_CPPFLAGS := -Ifirmware/posix -Ifirmware/core -Ifirmware/crypto -Istm32sim $(UV_CFLAGS) $(MHD_CFLAGS)
BRIDGE_LIBS     := $(UV_LIBS) $(MHD_LIBS) $(Z_LIBS) -lm

$(call obj,$(BRIDGE_SRC) $(BRIDGE_MAIN)) $(call aobj,$(BRIDGE_SRC)): MOD_CPPFLAGS := $(BRIDGE_CPPFLAGS)
$(BUILD)/espstm-bridge: $(call obj,$(BRIDGE_MAIN) $(BRIDGE_SRC)) $(CORE_LIB) $(SIM_LIB) $(CRYPTO_LIB)
	$(CC) $(OPT) -o $@ $^ $(BRIDGE_LIBS) $(CRYPTO_LIBS)
