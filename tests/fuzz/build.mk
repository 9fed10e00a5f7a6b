# tests/fuzz: libFuzzer targets (clang), each a tests/fuzz/NAME.c built with the core's, the
# simulator's and firmware/crypto's sources (mbedTLS linked, not instrumented); run each for FUZZ_SECONDS with `make fuzz`.
FUZZ_SRC  := $(wildcard tests/fuzz/*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
$(BUILD)/fuzz/%: tests/fuzz/%.c $(CORE_SRC) $(SIM_SRC) $(CRYPTO_SRC)
	@mkdir -p $(dir $@)
	clang $(CSTD) $(WARN) -O1 -g -Ifirmware/crypto -Ifirmware/core -Istm32sim -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $^ $(CRYPTO_LIBS) $(Z_LIBS) -lm
