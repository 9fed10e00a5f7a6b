# daemon: espstmd, the CUSE tty devices and the RFC 2217 link (libuv, libfuse3, iniparser,
# libsystemd; mbedTLS through firmware/crypto for the TLS-PSK link). Sees the core's and
# the crypto layer's headers and common/, never a bridge's or the tool's.
DAEMON_SRC := \
	daemon/conf.c \
	daemon/ctl.c \
	daemon/keyfile.c \
	daemon/link.c \
	daemon/link_legacy.c \
	daemon/link_net.c \
	daemon/link_rfc2217.c \
	daemon/link_tls.c \
	daemon/log.c \
	daemon/termios_model.c \
	daemon/tty.c \
	daemon/tty_ioctl.c \
	daemon/tty_ops_ioctl.c \
	daemon/tty_read.c
DAEMON_MAIN     := daemon/main.c
DAEMON_CPPFLAGS := -Idaemon -Icommon -Ifirmware/core -Ifirmware/crypto $(UV_CFLAGS) $(FUSE_CFLAGS)
DAEMON_LIBS     := $(UV_LIBS) $(FUSE_LIBS) $(INI_LIBS) $(SD_LIBS) $(Z_LIBS) -lm

$(call obj,$(DAEMON_SRC) $(DAEMON_MAIN)) $(call aobj,$(DAEMON_SRC)): MOD_CPPFLAGS := $(DAEMON_CPPFLAGS)
$(BUILD)/espstmd: $(call obj,$(DAEMON_MAIN) $(DAEMON_SRC)) $(CRYPTO_LIB) $(CORE_LIB)
	$(CC) $(OPT) -o $@ $^ $(DAEMON_LIBS) $(CRYPTO_LIBS)
