# tests/fuzz: libFuzzer targets (clang), each a tests/fuzz/NAME.c built with the core and the
# simulator's sources; run each for FUZZ_SECONDS with `make fuzz`.
FUZZ_SRC  := $(wildcard tests/fuzz/*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(SIM_SRC)
	@mkdir -p $(dir $@)
	clang $(CSTD) $(WARN) -O1 -g -Ifirmware/core -Istm32sim -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $^ $(Z_LIBS) -lm
# image_sig (firmware/crypto) on mbedTLS: its own sources and library.
$(BUILD)/fuzz/fuzz_image_sig: tests/fuzz/fuzz_image_sig.c $(CRYPTO_SRC)
	@mkdir -p $(dir $@)
	clang $(CSTD) $(WARN) -O1 -g -Ifirmware/crypto -Ifirmware/core -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $^ $(CRYPTO_LIBS)
