# Slim: the two commands a fresh machine needs are `make demo` and `make test`.
# Each installs what is missing (scripts/setup.sh), builds in Release and runs.
BUILD ?= build
JOBS ?= 2
PY := /usr/bin/python3

.PHONY: all setup build test demo bench clean format

all: build

setup:
	bash scripts/setup.sh

build: setup
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BUILD) -j$(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) --timeout 600

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
