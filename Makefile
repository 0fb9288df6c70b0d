# sinkbench build. `make` builds bin/sinkbench; `make test` runs the suite.
# Sources are picked up by wildcard per module directory, so a new file needs no edit here.
CC      ?= cc
PKGS    := openblas hdf5-serial zlib libcjson inih
BUILD   ?= build

# A fresh machine first gets its packages, before any flag is computed: when a library (or
# cmocka, or h5dump for the tests) is missing, scripts/install_deps.sh runs here, while make reads
# this file; as root it installs them, otherwise it prints the exact apt-get command and make
# stops. Cleaning needs no packages.
DEPS_CHECK = pkg-config --exists $(PKGS) cmocka 2>/dev/null && command -v h5dump >/dev/null && echo ok
ifneq ($(shell $(DEPS_CHECK)),ok)
ifneq ($(filter-out clean fuzz-clean,$(or $(MAKECMDGOALS),all)),)
ifneq ($(shell scripts/install_deps.sh >&2 && $(DEPS_CHECK)),ok)
$(error sinkbench: cannot build without them ($(or $(shell pkg-config --print-errors --exists \
        $(PKGS) cmocka 2>&1 | head -n 1),h5dump not found)))
endif
endif
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# MPI (dist/, docs/MPI.md): MPI=1 links MPI so `mpirun -np N bin/sinkbench ppl|study run ...`
# spreads the work over ranks; MPI=0 builds the single-process binary exactly as before.
# Default: 1 when mpicc is found and its flags are known (Open MPI's mpicc --showme, else
# pkg-config ompi-c or mpich), else 0 with a note. Either binary runs as a plain process
# without mpirun.
ifeq ($(origin MPI),undefined)
MPI_AUTO := 1
MPI := $(if $(shell command -v mpicc 2>/dev/null),1,0)
endif
ifeq ($(MPI),1)
MPI_CFLAGS := $(or $(shell mpicc --showme:compile 2>/dev/null),$(shell pkg-config --cflags ompi-c 2>/dev/null),\
                   $(shell pkg-config --cflags mpich 2>/dev/null))
MPI_LIBS   := $(or $(shell mpicc --showme:link 2>/dev/null),$(shell pkg-config --libs ompi-c 2>/dev/null),\
                   $(shell pkg-config --libs mpich 2>/dev/null))
ifeq ($(strip $(MPI_LIBS)),)
ifeq ($(MPI_AUTO),1)
$(info sinkbench: mpicc is there but not its flags (mpicc --showme, pkg-config ompi-c or mpich): building without MPI)
MPI := 0
else
$(error sinkbench: MPI=1 but neither mpicc --showme nor pkg-config ompi-c/mpich gives the flags (scripts/install_deps.sh installs Open MPI))
endif
endif
endif
ifeq ($(MPI),1)
PKG_CFLAGS += -DSB_HAVE_MPI $(MPI_CFLAGS)
PKG_LIBS   += $(MPI_LIBS)
endif

OPT     ?= -O2
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -pthread -fopenmp -D_GNU_SOURCE -I. $(PKG_CFLAGS)
LDLIBS  += $(PKG_LIBS) -lm -fopenmp -pthread

MODULES := util engine engine/cpu tokenizer datasets eval train dist
LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/helpers/*.c))
# reached only through the test pattern rule, so make would delete them as intermediates
.SECONDARY: $(TEST_HELPERS)

.PHONY: all test bench clean datasets models test-asan test-valgrind
all: bin/sinkbench $(TEST_BIN)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# dist/dist.c is the one file compiled differently with and without MPI: a switch of MPI=
# rebuilds it (the stamp changes only when the setting does)
$(BUILD)/mpi.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(MPI)' | cmp -s - $@ || echo '$(MPI)' > $@
$(BUILD)/dist/dist.o: $(BUILD)/mpi.stamp
.PHONY: FORCE
FORCE:

$(BUILD)/libsinkbench.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

bin/sinkbench: $(CLI_OBJ) $(BUILD)/libsinkbench.a
	@mkdir -p bin
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsinkbench.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(TEST_HELPERS) $(BUILD)/libsinkbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(TEST_HELPERS) $(BUILD)/libsinkbench.a $(LDLIBS) -lcmocka

# The CLI inside a build dir, for builds other than the default (BUILD=build-asan).
$(BUILD)/sinkbench: $(CLI_OBJ) $(BUILD)/libsinkbench.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libsinkbench.a $(LDLIBS)

# The suite under ASan+UBSan (build-asan/) and a subset under valgrind (the normal build):
# tests/sanitizers/*.sh, with their suppression files beside them.
test-asan:
	@tests/sanitizers/asan.sh
test-valgrind:
	@tests/sanitizers/valgrind.sh

# The suite: every cmocka binary plus the shell tests, summarised as "N passed, N failed".
test: all
	@tests/run_tests.sh $(BUILD)/tests

BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/*.c))
$(BUILD)/bench/%: bench/%.c $(BUILD)/cli/cli.o $(BUILD)/libsinkbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/cli/cli.o $(BUILD)/libsinkbench.a $(LDLIBS)

bench: bin/sinkbench $(BENCH_BIN)
	@bench/run_bench.sh
	@bench/bench_weights.sh
	@bench/bench_mpi.sh
	@bench/decode_25m.sh > results/bench_decode_25m.json.tmp && mv results/bench_decode_25m.json.tmp results/bench_decode_25m.json \
	  && echo "wrote results/bench_decode_25m.json"
	@if [ -f data/text/train.txt ]; then \
	  $(BUILD)/bench/bench_tokenizer --text data/text/train.txt --train-bytes 20M > results/bench_tokenizer.json.tmp \
	  && mv results/bench_tokenizer.json.tmp results/bench_tokenizer.json && echo "wrote results/bench_tokenizer.json"; \
	else echo "bench: skipping the tokenizer benchmark (run make datasets first)"; fi

datasets:
	@datasets/make_datasets.sh

models: all
	@scripts/make_models.sh

clean:
	rm -rf $(BUILD) bin

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_BIN:=.d) $(TEST_HELPERS:.o=.d)
-include engine/cuda/cuda.mk

include tests/fuzz/fuzz.mk
