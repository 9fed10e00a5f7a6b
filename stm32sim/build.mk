# stm32sim: the simulated STM32 (AN3155 bootloader, user application, wire timing) as a
# library (libstm32sim.a: espstm-bridge's --target sim:MODEL, the tests) and the stm32sim
# command (main.c).
SIM_SRC      := stm32sim/stm32sim.c stm32sim/wire.c stm32sim/bootloader.c
SIM_MAIN     := stm32sim/main.c
SIM_CPPFLAGS := -Istm32sim
SIM_LIB      := $(BUILD)/libstm32sim.a
SIM_LIB_SAN  := $(BUILD)/asan/libstm32sim.a

$(call obj,$(SIM_SRC) $(SIM_MAIN)) $(call aobj,$(SIM_SRC)): MOD_CPPFLAGS := $(SIM_CPPFLAGS)
$(SIM_LIB): $(call obj,$(SIM_SRC))
	$(AR) rcs $@ $^
$(SIM_LIB_SAN): $(call aobj,$(SIM_SRC))
	$(AR) rcs $@ $^
$(BUILD)/stm32sim: $(call obj,$(SIM_MAIN)) $(SIM_LIB)
	$(CC) $(OPT) -o $@ $^ $(Z_LIBS) -lm
