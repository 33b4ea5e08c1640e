# attrib: C engine (CPU backend always) + CUDA backend when nvcc is present.
#   make            ./attrib and libattrib.a
#   make test       build and run the test suite
#   make demo       run the engine on the shipped models (VGG16-mini, ResNet18-mini) and samples
#   make reproduce  the Score-CDRP paper's tables and figures -> results/REPORT.md
#   make bench      CPU (and GPU when present) benchmarks
#   make asan       tests under AddressSanitizer + UBSan
#   make fuzz       short libFuzzer runs of the file parsers
#   make test-oracle  regenerate goldens with PyTorch and compare live
# Variables: CUDA_ARCH=90|80|61... (auto-detected from nvidia-smi, default 90),
#            NO_CUDA=1 to skip the CUDA backend, CPU_ARCH=-march=... .

CC      ?= gcc
CPU_ARCH ?= -march=native
OPT     ?= -O3
CFLAGS  += -std=c11 -D_GNU_SOURCE $(OPT) $(CPU_ARCH) -fopenmp -Wall -Wextra -Wno-unused-parameter -Ihost -MMD -MP
ifeq ($(STATIC_IMAGE_LIBS),1) # binaries for a machine whose image may lack them (tools/gpu_check.sh --build)
LDLIBS  += -Wl,-Bstatic -lpng -ljpeg -lz -Wl,-Bdynamic -lm -fopenmp
else
LDLIBS  += -lpng -ljpeg -lz -lm -fopenmp
endif
PYTHON  ?= /usr/bin/python3
BUILD   ?= build

HOST_SRC := $(filter-out host/cli/%,$(wildcard host/*/*.c))
CLI_SRC  := $(wildcard host/cli/*.c)
TEST_SRC := $(wildcard tests/*.c)
CU_SRC   := $(filter-out kernels/ops_check.cu,$(wildcard kernels/*.cu))
CU_TEST_SRC := kernels/ops_check.cu # test-only: each kernel alone (tests/test_cuda.c)

# ---- CUDA detection (prints what it builds for) ----
ifeq ($(NO_CUDA),)
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
endif
ifneq ($(strip $(NVCC)),)
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
ifeq ($(CUDA_ARCH),)
CUDA_ARCH := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d '. ')
endif
ifeq ($(strip $(CUDA_ARCH)),)
CUDA_ARCH := 90
endif
NVCC_OPT  ?= -O3
NVCCFLAGS ?= $(NVCC_OPT) -std=c++17 -lineinfo
NVCCFLAGS += -gencode arch=compute_$(CUDA_ARCH),code=sm_$(CUDA_ARCH) -Ihost -Xcompiler -fopenmp,-Wall
CFLAGS    += -DATTRIB_HAVE_CUDA=1
CUDA_LIBS ?= -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++
LDLIBS    += $(CUDA_LIBS)
CU_OBJ    := $(CU_SRC:%.cu=$(BUILD)/%.o)
CU_TEST_OBJ := $(CU_TEST_SRC:%.cu=$(BUILD)/%.o)
BUILD_MSG := CUDA backend: nvcc $(NVCC), CUDA_ARCH=$(CUDA_ARCH)
else
CU_OBJ    :=
CU_TEST_OBJ :=
BUILD_MSG := CUDA backend: not built (no nvcc); CPU backend only
endif

# ---- the CUDA execution layer (tests/cuemu/README.md) ----
# The same kernels, built by tests/cuemu/nvcc into their own folder and linked
# with the emulated runtime: `make test` runs the CUDA tests from that build
# in two thread orders, and the op tests once more under ASan.
EMU_BUILD      ?= build-emu
EMU_ASAN_BUILD ?= build-emu-asan
CUEMU_SRC      := $(wildcard tests/cuemu/*.cpp)
ifneq ($(CUEMU),)
CUEMU_LIB      := $(BUILD)/cuemu/libcuemu.a
CUEMU_HEADERS  := $(wildcard tests/cuemu/include/*.h) tests/cuemu/nvcc
endif
emu_vars = CUEMU=1 NVCC=$(CURDIR)/tests/cuemu/nvcc CUDA_ARCH=90 BUILD=$(1) TEST_BIN=$(1)/run_tests \
           LIB=$(1)/libattrib.a CUDA_LIBS="$(1)/cuemu/libcuemu.a -lstdc++ -lpthread"

BIN      ?= attrib
LIB      ?= libattrib.a
TEST_BIN ?= tests/run_tests
HOST_OBJ := $(HOST_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)

.PHONY: all test demo bench asan fuzz clean test-oracle goldens info deps emu-build emu-asan-build library-example
all: info $(BIN)

# Installs missing Debian packages (apt-get) once; `make test` and `make demo`
# do it themselves so a fresh machine needs no other step.
deps: $(BUILD)/.deps
$(BUILD)/.deps: tools/install_deps.sh
	@bash tools/install_deps.sh
	@mkdir -p $(BUILD) && touch $@

info:
	@echo "attrib: $(BUILD_MSG)"

$(LIB): $(HOST_OBJ) $(CU_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(LDLIBS)

$(TEST_BIN): $(TEST_OBJ) $(CU_TEST_OBJ) $(LIB) $(CUEMU_LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJ) $(CU_TEST_OBJ) $(LIB) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(CU_OBJ) $(CU_TEST_OBJ): $(wildcard kernels/*.cuh kernels/*.h) host/exec/backend.h host/model/model.h $(CUEMU_HEADERS)


$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/cuemu/%.o: tests/cuemu/%.cpp $(wildcard tests/cuemu/*.h tests/cuemu/include/*.h)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(OPT) $(CPU_ARCH) -fopenmp -Wall -Wextra -c $< -o $@
$(BUILD)/cuemu/libcuemu.a: $(CUEMU_SRC:tests/cuemu/%.cpp=$(BUILD)/cuemu/%.o)
	@rm -f $@
	ar rcs $@ $^
emu-build:
	@$(MAKE) --no-print-directory $(call emu_vars,$(EMU_BUILD)) NVCC_OPT="-O2 $(CPU_ARCH)" $(EMU_BUILD)/run_tests
emu-asan-build:
	@$(MAKE) --no-print-directory $(call emu_vars,$(EMU_ASAN_BUILD)) \
	  OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address,undefined" \
	  NVCC_OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" $(EMU_ASAN_BUILD)/run_tests

# T=name runs the matching native tests only; EMU=0 skips the emulated CUDA runs.
test: deps info
	@$(MAKE) --no-print-directory attrib tests/run_tests
	@if [ -z "$(T)" ] && [ "$(EMU)" != 0 ]; then $(MAKE) --no-print-directory emu-build emu-asan-build; fi
	@OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} T="$(T)" EMU="$(EMU)" bash tests/run_all.sh

test-build: attrib tests/run_tests


asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	        LDLIBS_EXTRA= NO_CUDA=1 CPU_ARCH="$(CPU_ARCH)" \
	        LDFLAGS="-fsanitize=address,undefined" asan-run
asan-run: attrib tests/run_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ./tests/run_tests $(T); \
	  rc=$$?; rm -f attrib libattrib.a tests/run_tests; exit $$rc  # the sanitized binaries must not pass for the normal build

demo: deps info
	@$(MAKE) --no-print-directory attrib
	./attrib predict --topk 3 --list weights/samples/list.txt
	./attrib explain --method scorecam --out out/demo --resume --list weights/samples/list.txt
	./attrib predict --topk 3 --model weights/resnet18_mini.safetensors --list weights/samples/list.txt
	./attrib explain --method scorecam --model weights/resnet18_mini.safetensors --out out/demo-resnet --resume \
	  --list weights/samples/list.txt
	@echo "demo: Score-CAM maps and overlays in out/demo (VGG16-mini) and out/demo-resnet (ResNet18-mini, layer4);"
	@echo "      results.jsonl in each lists them"

# The paper's tables and figures on both shipped models (docs/reproduce.md):
# builds attrib; `attrib reproduce` generates the test scenes when missing
# (Python + Fashion-MNIST, installed here with ATTRIB_WITH_REPRODUCE=1), runs
# every step with --resume (run it again after an interruption) and writes
# results/REPORT.md (VGG16-mini) and results/REPORT-resnet18_mini.md.
# REPRODUCE_CONFIG=reproduce/tiny.json for the CI-sized run; REPRODUCE_ARGS="--backend cuda".
REPRODUCE_CONFIG ?= reproduce/config.json reproduce/config_resnet18_mini.json
.PHONY: reproduce
reproduce:
	@ATTRIB_WITH_REPRODUCE=1 bash tools/install_deps.sh || echo "reproduce: Python packages missing; data generation or the Fig. 7 plot may be skipped" >&2
	@$(MAKE) --no-print-directory attrib
	@set -e; for c in $(REPRODUCE_CONFIG); do echo "./attrib reproduce --config $$c $(REPRODUCE_ARGS)"; \
	  ./attrib reproduce --config $$c $(REPRODUCE_ARGS); done

bench: attrib
	./attrib bench

goldens:
	$(PYTHON) tools/make_goldens.py --out tests/goldens
	$(PYTHON) tools/make_method_goldens.py --out tests/goldens/methods
	$(PYTHON) tools/make_cdrp_goldens.py --out tests/goldens/cdrp
	$(PYTHON) tools/make_sample_goldens.py tests/goldens/samples
	$(PYTHON) tools/make_sample_goldens.py tests/goldens/samples --model weights/resnet18_mini.safetensors
	PYTHONPATH=.peers $(PYTHON) tools/make_relevance_goldens.py --out tests/goldens/relevance
	$(PYTHON) tools/make_perturb_goldens.py --out tests/goldens/perturb
	PYTHONPATH=.peers $(PYTHON) tools/check_shipped_peers.py --images 2 --write-goldens tests/goldens/samples/pgc
	$(PYTHON) tools/make_lcam_goldens.py --out tests/goldens/lcam

test-oracle: attrib tests/run_tests
	@$(PYTHON) -c "import torch" 2>/dev/null || { echo "test-oracle: torch not importable by $(PYTHON); install python3-torch"; exit 1; }
	rm -rf $(BUILD)/oracle && mkdir -p $(BUILD)/oracle/methods $(BUILD)/oracle/cdrp $(BUILD)/oracle/samples
	$(PYTHON) tools/make_goldens.py --out $(BUILD)/oracle
	$(PYTHON) tools/make_method_goldens.py --out $(BUILD)/oracle/methods
	$(PYTHON) tools/make_cdrp_goldens.py --out $(BUILD)/oracle/cdrp
	$(PYTHON) tools/make_sample_goldens.py $(BUILD)/oracle/samples
	$(PYTHON) tools/make_sample_goldens.py $(BUILD)/oracle/samples --model weights/resnet18_mini.safetensors
	PYTHONPATH=.peers $(PYTHON) tools/make_relevance_goldens.py --out $(BUILD)/oracle/relevance
	$(PYTHON) tools/make_perturb_goldens.py --out $(BUILD)/oracle/perturb
	$(PYTHON) tools/make_lcam_goldens.py --out $(BUILD)/oracle/lcam
	ATTRIB_GOLDENS=$(BUILD)/oracle ./tests/run_tests golden methods_match cdrp_score shipped relevance_methods_match perturb_methods matches_pytorch_on_the_samples
	@if PYTHONPATH=.peers $(PYTHON) -c "import captum" 2>/dev/null; then PYTHONPATH=.peers $(PYTHON) tools/check_grad_peers.py; \
	  else echo "test-oracle: captum not in .peers (docs/methods.md#integrated-gradients): tools/check_grad_peers.py skipped"; fi
	@if PYTHONPATH=.peers $(PYTHON) -c "import pytorch_grad_cam" 2>/dev/null; then PYTHONPATH=.peers $(PYTHON) tools/check_shipped_peers.py; \
	  else echo "test-oracle: pytorch-grad-cam not in .peers: tools/check_shipped_peers.py skipped"; fi
	@if PYTHONPATH=.peers $(PYTHON) -c "import pytorch_grad_cam, scipy" 2>/dev/null; then PYTHONPATH=.peers $(PYTHON) tools/check_mprt_peers.py; \
	  else echo "test-oracle: pytorch-grad-cam or scipy missing: tools/check_mprt_peers.py skipped"; fi

# The program of docs/library.md, built from the document itself.
library-example: $(LIB)
	@mkdir -p $(BUILD)
	awk '/^```c$$/{on=1;next} /^```$$/{on=0} on' docs/library.md > $(BUILD)/library_example.c
	$(CC) $(CFLAGS) -o $(BUILD)/library_example $(BUILD)/library_example.c $(LIB) $(LDLIBS)

FUZZ_TARGETS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 20
fuzz: $(FUZZ_TARGETS)
	@for f in $(FUZZ_TARGETS); do \
	  n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -artifact_prefix=$(BUILD)/fuzz/$$n- $(BUILD)/fuzz/corpus-$$n tests/fuzz/seeds/$$n || exit 1; \
	done
FUZZ_SRC := host/core/error.c host/io/json.c host/io/safetensors.c host/io/npy.c host/io/image.c host/preprocess/preprocess.c
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -O1 -g -fsanitize=fuzzer,address,undefined -Ihost -o $@ $< \
	  $(FUZZ_SRC) -lpng -ljpeg -lz -lm

clean:
	rm -rf build build-asan build-gpu $(EMU_BUILD) $(EMU_ASAN_BUILD) attrib libattrib.a tests/run_tests

-include $(HOST_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)
