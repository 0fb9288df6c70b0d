# The CUDA kernel library (engine/cuda/*.cu), built only with `make CUDA=1`: its objects join
# libsinkbench.a, the link gains the CUDA runtime, and `make CUDA=1 gpu-tests` builds
# $(BUILD)/gpu/test_kernels (run with tests/gpu/run.sh kernels), test_backend and
# test_train_kernels (train/cuda/*.cu, the GPU trainer's kernels). Plain `make` never reads
# past the ifeq, so it needs no nvcc.
ifeq ($(CUDA),1)

CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(if $(wildcard $(CUDA_HOME)/bin/nvcc),$(CUDA_HOME)/bin/nvcc,nvcc)
CUDA_ARCH ?= -arch=sm_90
NVFLAGS   ?= -O3 -lineinfo
NVFLAGS   += $(CUDA_ARCH) -std=c++17 -I. -Xcompiler -Wall,-Wextra,-Werror -Werror all-warnings
# `make CUDA=1 PTXAS_V=1` prints registers, shared memory and spills per kernel
ifeq ($(PTXAS_V),1)
NVFLAGS   += -Xptxas -v
endif

CUDA_SRC  := $(wildcard engine/cuda/*.cu)
# the GPU trainer's kernels (train/cuda/*.cu); the top-level globs read train/*.c only
TRAIN_CUDA_SRC := $(wildcard train/cuda/*.cu)
# the host side of the backend (engine/cuda/*.c) and of the GPU trainer (train/cuda/*.c) is C,
# built by the usual rule
CUDA_OBJ  := $(CUDA_SRC:%.cu=$(BUILD)/%.o) $(TRAIN_CUDA_SRC:%.cu=$(BUILD)/%.o) \
             $(patsubst %.c,$(BUILD)/%.o,$(wildcard engine/cuda/*.c)) $(patsubst %.c,$(BUILD)/%.o,$(wildcard train/cuda/*.c))
LIB_OBJ   += $(CUDA_OBJ)
CFLAGS    += -DSB_HAVE_CUDA=1 -I$(CUDA_HOME)/include
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcublasLt -lstdc++

# Object basenames must differ from every other library member's (ar keys members by
# basename): hence band_attention.cu, not attention.cu.
# the archive rule's prerequisites were fixed when the top-level Makefile read it: add ours
$(BUILD)/libsinkbench.a: $(CUDA_OBJ)

$(BUILD)/engine/cuda/%.o: engine/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/train/cuda/%.o: train/cuda/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -c $< -o $@

GPU_TEST_BIN := $(BUILD)/gpu/test_kernels $(BUILD)/gpu/test_backend $(BUILD)/gpu/test_train_kernels $(BUILD)/gpu/test_train_gpu
.PHONY: gpu-tests bench-gpu
gpu-tests: $(GPU_TEST_BIN)

$(BUILD)/gpu/test_kernels: tests/gpu/test_kernels.cu $(filter %.o,$(CUDA_SRC:%.cu=$(BUILD)/%.o))
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -MMD -MP -o $@ $< $(filter %.o,$(CUDA_SRC:%.cu=$(BUILD)/%.o)) -L$(CUDA_HOME)/lib64 \
	    -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcudart

# the backend against the cpu engine and the goldens (tests/gpu/run.sh backend)
$(BUILD)/gpu/test_backend: tests/gpu/test_backend.c $(BUILD)/libsinkbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libsinkbench.a $(LDLIBS)

# the GPU trainer's kernels against the CPU trainer (tests/gpu/run.sh train)
$(BUILD)/gpu/test_train_kernels: tests/gpu/test_train_kernels.c $(BUILD)/libsinkbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libsinkbench.a $(LDLIBS)

# the whole GPU trainer against the CPU trainer, determinism and resume (tests/gpu/run.sh train)
$(BUILD)/gpu/test_train_gpu: tests/gpu/test_train_gpu.c $(BUILD)/libsinkbench.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -o $@ $< $(BUILD)/libsinkbench.a $(LDLIBS)

# the GPU's ceilings (copy bandwidth, cuBLAS GEMM at a model's shapes)
$(BUILD)/bench/gemm_bw: bench/gpu/gemm_bw.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDLIBS)

# on a GPU machine: the 7B-shape benchmarks with the transformers reference (bench/gpu/)
bench-gpu: $(BUILD)/sinkbench $(BUILD)/bench/gemm_bw
	SINKBENCH=$(BUILD)/sinkbench GEMM_BW=$(BUILD)/bench/gemm_bw bench/gpu/run_bench.sh

-include $(CUDA_OBJ:.o=.d) $(GPU_TEST_BIN:=.d)

endif
