# (temporary rule of the image_sig branch until the crypto branch is merged; Debian mbedTLS
# includes pthread.h from pk.h, so mk/core-forbidden cannot come first here)
# firmware/crypto: the security layer on mbedTLS (libespstm-crypto.a): no OS calls, no
# sockets; entropy comes from the caller. Linked by espstm-bridge, espstm and the tests.
CRYPTO_SRC := \
	firmware/crypto/image_sig.c
CRYPTO_CPPFLAGS := -Ifirmware/crypto -Ifirmware/core
CRYPTO_LIBS     := -lmbedcrypto
CRYPTO_LIB      := $(BUILD)/libespstm-crypto.a
CRYPTO_LIB_SAN  := $(BUILD)/asan/libespstm-crypto.a

$(call obj,$(CRYPTO_SRC)) $(call aobj,$(CRYPTO_SRC)): MOD_CPPFLAGS := $(CRYPTO_CPPFLAGS)
$(CRYPTO_LIB): $(call obj,$(CRYPTO_SRC))
	$(AR) rcs $@ $^
$(CRYPTO_LIB_SAN): $(call aobj,$(CRYPTO_SRC))
	$(AR) rcs $@ $^
