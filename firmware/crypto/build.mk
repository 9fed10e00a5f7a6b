# firmware/crypto: the security layer (a sans-I/O TLS-PSK session, unit keys, self-signed
# certificates, image signatures) on mbedTLS, built as libespstm-crypto.a (and an ASan copy
# for the unit tests) like firmware/core. No OS calls: the include path is the core's,
# mk/core-forbidden first, plus this folder and the system's mbedTLS headers.
# A new source goes into the CRYPTO_SRC list here (before the rules, which expand it).
CRYPTO_SRC := \
	firmware/crypto/image_sig.c \
	firmware/crypto/self_cert.c \
	firmware/crypto/tls_session.c \
	firmware/crypto/unit_key.c
CRYPTO_CPPFLAGS := -Ifirmware/crypto -Ifirmware/core -Imk/core-forbidden
# Debian's libmbedtls-dev has no pkg-config file; use it when one exists.
CRYPTO_LIBS     := $(shell pkg-config --libs mbedtls mbedx509 mbedcrypto 2>/dev/null || \
                     echo -lmbedtls -lmbedx509 -lmbedcrypto)
CRYPTO_LIB      := $(BUILD)/libespstm-crypto.a
CRYPTO_LIB_SAN  := $(BUILD)/asan/libespstm-crypto.a

$(call obj,$(CRYPTO_SRC)) $(call aobj,$(CRYPTO_SRC)): MOD_CPPFLAGS := $(CRYPTO_CPPFLAGS)
$(CRYPTO_LIB): $(call obj,$(CRYPTO_SRC))
	$(AR) rcs $@ $^
$(CRYPTO_LIB_SAN): $(call aobj,$(CRYPTO_SRC))
	$(AR) rcs $@ $^
