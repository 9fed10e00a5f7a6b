# firmware/posix: espstm-bridge, the firmware core on Linux (libuv, libmicrohttpd) with the
# simulated STM32 (--target sim:MODEL) or a real tty (--target tty:DEVICE; NRST/BOOT0 on
# libgpiod lines or the tty's DTR/RTS) as the target; --config reads an INI file (iniparser).
GPIOD_CFLAGS := $(shell pkg-config --cflags libgpiod 2>/dev/null)
GPIOD_LIBS   := $(shell pkg-config --libs libgpiod 2>/dev/null || echo -lgpiod)
BRIDGE_SRC := \
	firmware/posix/allow_posix.c \
	firmware/posix/bridge_conf.c \
	firmware/posix/http.c \
	firmware/posix/http_limits.c \
	firmware/posix/legacy.c \
	firmware/posix/pair_posix.c \
	firmware/posix/pins_posix.c \
	firmware/posix/plog.c \
	firmware/posix/tty_termios2.c
# main.c, the client/TLS code (tls_port.c) and the targets' HALs (they need main.c's state)
# are not linked into the unit tests (BRIDGE_SRC is).
BRIDGE_MAIN     := firmware/posix/main.c firmware/posix/tls_port.c firmware/posix/target_sim.c \
                   firmware/posix/tty_target.c
BRIDGE_CPPFLAGS := -Ifirmware/posix -Ifirmware/core -Ifirmware/crypto -Istm32sim $(UV_CFLAGS) \
                   $(MHD_CFLAGS) $(GPIOD_CFLAGS)
BRIDGE_LIBS     := $(UV_LIBS) $(MHD_LIBS) $(Z_LIBS) $(GPIOD_LIBS) $(INI_LIBS) -lm

$(call obj,$(BRIDGE_SRC) $(BRIDGE_MAIN)) $(call aobj,$(BRIDGE_SRC)): MOD_CPPFLAGS := $(BRIDGE_CPPFLAGS)
$(BUILD)/espstm-bridge: $(call obj,$(BRIDGE_MAIN) $(BRIDGE_SRC)) $(CRYPTO_LIB) $(CORE_LIB) $(SIM_LIB)
	$(CC) $(OPT) -o $@ $^ $(BRIDGE_LIBS) $(CRYPTO_LIBS)
