# Slim: the two commands a fresh machine needs are `make demo` and `make test`.
# Each installs what is missing (scripts/setup.sh), builds in Release and runs.
BUILD ?= build
JOBS ?= 2
PY := /usr/bin/python3

.PHONY: all setup build test test-isa test-asan demo bench clean format api-docs docs

all: build

setup:
	bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

# The numerically sensitive suites (CMakeLists.txt, label `numeric`) run again with the kernels
# another CPU would pick: by default AVX2 in LibTorch and oneDNN (no AVX-512, no VNNI) and
# OpenBLAS's Haswell kernels. Any other setting: make test-isa ISA="ONEDNN_MAX_CPU_ISA=AVX512_CORE
# OPENBLAS_CORETYPE=SkylakeX".
ISA ?= ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell

# The shared MNIST model of the accuracy suites is the one `make test` trained (see
# tests/trained_models.h); SHARED_MODEL=0 trains it again under these kernels first.
SHARED_MODEL ?= 1

test-isa: build
	cd $(BUILD) && env $(ISA) SLIM_TEST_SHARED_MODEL=$(SHARED_MODEL) ctest -L numeric \
		--output-on-failure -j$(JOBS) --timeout 600

# The library, `slim` and the tests built with AddressSanitizer (with LeakSanitizer) and
# UndefinedBehaviorSanitizer in their own tree, then the suite run there. CMakeLists.txt
# (SLIM_SANITIZE) sets the sanitizer options, the suppressions (tests/sanitizers/) and longer
# timeouts on each test; a report anywhere fails the SanitizerReports test.
ASAN_BUILD ?= build-asan

test-asan: setup
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLIM_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS) --target slim slim_tests
	cd $(ASAN_BUILD) && ctest --output-on-failure -j$(JOBS)

demo: build
	bash scripts/demo.sh $(BUILD)

bench: build
	$(PY) bench/bench_inference.py --slim $(BUILD)/slim --threads $(JOBS)
	$(PY) bench/bench_train.py --slim $(BUILD)/slim --threads $(JOBS)
	$(PY) bench/bench_prune.py --slim $(BUILD)/slim --threads $(JOBS)
	$(PY) bench/bench_distill.py --slim $(BUILD)/slim --threads $(JOBS)
	$(PY) bench/bench_quant.py --slim $(BUILD)/slim --threads $(JOBS)

format:
	clang-format -i $$(git ls-files '*.h' '*.cc')

clean:
	rm -rf $(BUILD)

# The C++ API pages from the public headers' /// comments: build/api/html/index.html.
api-docs: setup
	doxygen docs/Doxyfile

# The command reference (docs/en/cli.md, docs/zh/cli.md) regenerated from the binary's --help.
docs: build
	$(PY) scripts/check_docs.py cli --write
