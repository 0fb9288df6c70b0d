# libFuzzer targets (issue 6): `make fuzz` builds build-fuzz/fuzz_<name> for every
# tests/fuzz/fuzz_<name>.c, with the library compiled again under ASan + UBSan + fuzzer
# instrumentation in its own object directory (build/ is untouched). `make fuzz-smoke` runs
# each target briefly from its seed corpus and fails on any crash, leak or UB report.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -O1 -g -std=c11 -Wall -Wextra -Werror -pthread -fopenmp -D_GNU_SOURCE -I. -Wno-pass-failed \
                $(PKG_CFLAGS) $(FUZZ_SAN)
FUZZ_LDLIBS  := $(PKG_LIBS) -lm -fopenmp -pthread
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o)
FUZZ_SMOKE_SECONDS ?= 30

.PHONY: fuzz fuzz-smoke fuzz-clean
fuzz: $(FUZZ_BIN)

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/libsinkbench.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_BUILD)/libsinkbench.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DSB_FUZZ_LIBFUZZER -MMD -MP -o $@ $< \
	    $(FUZZ_BUILD)/libsinkbench.a $(FUZZ_LDLIBS)

fuzz-smoke: fuzz
	tests/fuzz/run_fuzz.sh --smoke $(FUZZ_SMOKE_SECONDS)

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)

fuzz-clean:
	rm -rf $(FUZZ_BUILD)
