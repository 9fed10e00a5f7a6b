# cli: the espstm command-line tool (status/reset/boot/run over espstmd's control socket,
# flash through a bridge's HTTP API with libcurl; pair/unpair over HTTPS with pinning). Sees
# the core's and firmware/crypto's headers and common/.
CLI_SRC := \
	cli/cli_client.c \
	cli/cli_cmd.c \
	cli/cli_flash.c \
	cli/cli_json.c \
	cli/cli_pair.c \
	cli/cli_progress.c \
	cli/cli_sign.c \
	cli/cli_status.c \
	cli/espstm_flash.c
CLI_MAIN     := cli/espstm.c
CLI_CPPFLAGS := -Icli -Icommon -Ifirmware/crypto -Ifirmware/core $(CURL_CFLAGS)
CLI_LIBS     := $(CURL_LIBS) $(Z_LIBS) $(CRYPTO_LIBS) -lm

$(call obj,$(CLI_SRC) $(CLI_MAIN)) $(call aobj,$(CLI_SRC)): MOD_CPPFLAGS := $(CLI_CPPFLAGS)
$(BUILD)/espstm: $(call obj,$(CLI_MAIN) $(CLI_SRC)) $(CRYPTO_LIB) $(CORE_LIB)
	$(CC) $(OPT) -o $@ $^ $(CLI_LIBS)
