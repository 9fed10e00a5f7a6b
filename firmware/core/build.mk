# firmware/core: the portable core, built once as a static library (libespstm-core.a) that
# espstm-bridge, espstmd, espstm and the tests link; each binary takes only the objects it uses.
# Only this folder is on its include path, and mk/core-forbidden comes first so that a core
# file including an OS or library header (uv.h, fuse, sockets, unistd.h...) fails the build.
CORE_SRC := \
	firmware/core/allowlist.c \
	firmware/core/boot_ctl.c \
	firmware/core/bridge.c \
	firmware/core/flash_job.c \
	firmware/core/http_api.c \
	firmware/core/ihex.c \
	firmware/core/json.c \
	firmware/core/legacy.c \
	firmware/core/lookalike.c \
	firmware/core/rfc2217.c \
	firmware/core/rfc2217_client.c \
	firmware/core/settings.c \
	firmware/core/stm32_devices.c \
	firmware/core/stm32_isp.c \
	firmware/core/stm32_isp_io.c \
	firmware/core/stm32_isp_run.c \
	firmware/core/telnet_opt.c \
	firmware/core/web_page.c
CORE_CPPFLAGS := -Ifirmware/core -Imk/core-forbidden
CORE_LIB      := $(BUILD)/libespstm-core.a
CORE_LIB_SAN  := $(BUILD)/asan/libespstm-core.a

$(call obj,$(CORE_SRC)) $(call aobj,$(CORE_SRC)): MOD_CPPFLAGS := $(CORE_CPPFLAGS)
$(CORE_LIB): $(call obj,$(CORE_SRC))
	$(AR) rcs $@ $^
$(CORE_LIB_SAN): $(call aobj,$(CORE_SRC))
	$(AR) rcs $@ $^
