# Build the engine library, the apps and the tests.
#   make              library + apps into build/ (CUDA backend too when nvcc is found)
#   make CUDA=0       CPU backend only
#   make test         build and run the doctest suite
#   make profile      CUDA build with -lineinfo for Nsight (see README)
#   make V=1          show full command lines
# Every .cpp under engine/ layers/ losses/ data/ goes into the library, every .cu too
# when CUDA=1; every apps/NAME.cpp becomes build/NAME, every bench/NAME.cpp build/bench_NAME;
# every tests/*.cpp joins build/tests.

BUILD ?= build
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
ifeq ($(NVCC),)
CUDA ?= 0
else
CUDA ?= 1
endif
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))

CXX ?= g++
OPT ?= -O2
CXXFLAGS := -std=c++17 $(OPT) -g -Wall -Wextra -Wno-unused-parameter -fopenmp -MMD -MP -I. \
            -I/usr/include/x86_64-linux-gnu $(EXTRA_CXXFLAGS)
LDLIBS := -lopenblas -fopenmp -lpthread

CU_SRC :=
ifeq ($(CUDA),1)
CXXFLAGS += -DENGINE_CUDA -I$(CUDA_HOME)/include
NVCCFLAGS := -std=c++17 $(OPT) -DENGINE_CUDA -I. -MMD -MP --expt-relaxed-constexpr \
             -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 \
             -gencode arch=compute_90,code=compute_90 -Xcompiler -fopenmp $(EXTRA_NVCCFLAGS)
LDLIBS += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudnn -lcublas -lnccl -lcudart
CU_SRC := $(wildcard engine/*.cu layers/*.cu losses/*.cu data/*.cu)
endif

LIB_SRC := $(wildcard engine/*.cpp layers/*.cpp losses/*.cpp data/*.cpp apps/pipeline/*.cpp)
LIB_OBJ := $(LIB_SRC:%.cpp=$(BUILD)/obj/%.o) $(CU_SRC:%.cu=$(BUILD)/obj/%.cu.o)
LIB := $(BUILD)/libengine.a
APP_SRC := $(wildcard apps/*.cpp)
APPS := $(APP_SRC:apps/%.cpp=$(BUILD)/%)
BENCH_SRC := $(wildcard bench/*.cpp)
BENCHES := $(BENCH_SRC:bench/%.cpp=$(BUILD)/bench_%)
TEST_SRC := $(wildcard tests/*.cpp)
TEST_OBJ := $(TEST_SRC:%.cpp=$(BUILD)/obj/%.o)
DEPS_STAMP := $(BUILD)/.deps-ok

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all test profile clean deps demo bench
all: $(LIB) $(APPS) $(BUILD)/tests $(BENCHES)

# Third-party headers and libraries (doctest, stb, OpenBLAS) come from the system; the
# script installs them when missing (apt-get as root, otherwise it prints the command).
$(DEPS_STAMP):
	$(Q)bash tools/install_deps.sh
	$(Q)mkdir -p $(BUILD) && touch $@

$(BUILD)/obj/%.o: %.cpp | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  CXX   $<"
	$(Q)$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu | $(DEPS_STAMP)
	@mkdir -p $(dir $@)
	@echo "  NVCC  $<"
	$(Q)$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@echo "  AR    $@"
	$(Q)rm -f $@ && ar rcs $@ $^

# App and bench objects are built through pattern chains; keep them so a second `make` links nothing.
.SECONDARY:

$(BUILD)/%: $(BUILD)/obj/apps/%.o $(LIB)
	@echo "  LINK  $@"
	$(Q)$(CXX) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench_%: $(BUILD)/obj/bench/%.o $(LIB)
	@echo "  LINK  $@"
	$(Q)$(CXX) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests: $(TEST_OBJ) $(LIB)
	@echo "  LINK  $@"
	$(Q)$(CXX) $(TEST_OBJ) $(LIB) $(LDLIBS) -o $@

# The suite runs from the repository root (fixtures live under tests/fixtures).
test: $(BUILD)/tests $(APPS)
	$(Q)./$(BUILD)/tests $(TEST_ARGS)

profile:
	$(MAKE) BUILD=build-profile CUDA=1 EXTRA_NVCCFLAGS=-lineinfo EXTRA_CXXFLAGS=-DENGINE_NVTX all

# The whole method on a synthetic set, with its table (tools/demo.sh; DEMO_SCALE=quick for a
# short smoke run).
demo:
	bash tools/demo.sh

deps:
	bash tools/install_deps.sh

clean:
	rm -rf $(BUILD) build-profile

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
