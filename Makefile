# grpo.c build. `make` builds ./grpo (CPU always; CUDA objects too when nvcc is found).
# `make test` / `make demo` run the one-time set-up (scripts/setup.sh, stamp .setup-done) first.
CC      ?= gcc
NVCC    ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
BUILD   ?= build
DATA    ?= ../shared/data
OPT     ?= -O3 -march=native
CFLAGS  += $(OPT) -g -std=gnu11 -fopenmp -Wall -Wextra -Wno-unused-parameter -Wshadow -Wvla -Wno-format-truncation \
           -I. -I/usr/include/cjson -MMD -MP
# OpenBLAS's OpenMP build: a BLAS call made inside one of our OpenMP loops runs on one thread instead
# of oversubscribing the cores (the pthread build would start its own threads there).
BLAS_DIR := /usr/lib/x86_64-linux-gnu/openblas-openmp
CFLAGS  += -I/usr/include/x86_64-linux-gnu/openblas-openmp
LDLIBS  += -L$(BLAS_DIR) -Wl,-rpath,$(BLAS_DIR) -lopenblas -lcjson -lpcre2-8 -lutf8proc -lsqlite3 -lseccomp -lz -lm -lpthread
LDFLAGS += -fopenmp

LIB_DIRS := common policy rollout rewards datasets rl
LIB_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
TEST_SRCS := $(wildcard tests/*.c)
TEST_BINS := $(TEST_SRCS:%.c=$(BUILD)/%)
CLI_SRCS := $(wildcard cli/*.c)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=$(BUILD)/%)

# CUDA: every .cu under the library folders is compiled whenever nvcc exists, so CI (no GPU, but the
# toolkit) keeps the CUDA side building. The binary links it only with `make CUDA=1`.
CU_SRCS := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cu))
CU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/%.cu.o)
NVFLAGS ?= -O3 -std=c++17 -arch=sm_90 -I. -Xcompiler -fopenmp
ifneq ($(NVCC),)
ALL_CU := $(CU_OBJS)
endif
ifeq ($(CUDA),1)
LIB_OBJS += $(CU_OBJS)
CFLAGS   += -DGRPO_CUDA
LDLIBS   += -L/usr/local/cuda/lib64 -lcudart -lcublas -lcublasLt -lstdc++
endif

.PHONY: all setup test check-data bench asan demo demo-check clean
all: grpo $(ALL_CU)

.setup-done: scripts/setup.sh
	./scripts/setup.sh
	touch $@
setup:
	./scripts/setup.sh
	touch .setup-done

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@
$(BUILD)/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@
$(BUILD)/libgrpo.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^
grpo: $(BUILD)/grpo.o $(CLI_OBJS) $(BUILD)/libgrpo.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libgrpo.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)
$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/cli/cli.o $(BUILD)/libgrpo.a
	$(CC) $(LDFLAGS) $^ -o $@ $(LDLIBS)

test: .setup-done all $(TEST_BINS)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} tests/run.sh test_ $(BUILD)

check-data: .setup-done all $(TEST_BINS)
	@test -d $(DATA) || { echo "check-data: DATA=$(DATA) is not a directory (set DATA=path/to/shared/data)"; exit 1; }
	DATA=$(abspath $(DATA)) OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} tests/run.sh data_ $(BUILD)

bench: .setup-done all $(BENCH_BINS)
	bench/run.sh $(BUILD)

# The tests again under AddressSanitizer and UBSan, in their own build folder.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	  LDFLAGS="-fopenmp -fsanitize=address,undefined" NVCC= test

# The README's first command: set-up, build, then the embedded demo (SFT cold start + GRPO, ~10 minutes).
demo: .setup-done all
	./grpo demo --out runs/demo

# The full demo for three seeds: before/after held-out accuracy and minutes of each (the closing figures).
demo-check: .setup-done all
	@for s in 1 2 3; do ./grpo demo --out runs/demo-check-$$s --seed $$s | tail -n 9; done

clean:
	rm -rf build build-asan grpo

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(BUILD)/grpo.d $(TEST_BINS:%=%.d)
