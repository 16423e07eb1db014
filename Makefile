# PALS quick start: `make demo` runs the main job, `make test` runs every test.
BUILD_DIR ?= build/release
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

FUZZ_BUILD_DIR ?= build/fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?=

.PHONY: all deps configure build demo test bench clean fuzz fuzz-build format format-check tidy

all: build

deps:
	@tools/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/pals demo

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS)

# clang-format 14 (Debian bookworm) with the repository's .clang-format, over every C/C++ file.
FORMAT_FILES = $(shell find src include tests bench fuzz -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' -o -name '*.cc')
format:
	@clang-format -i $(FORMAT_FILES)

format-check:
	@clang-format --dry-run -Werror $(FORMAT_FILES) && echo "format: $(words $(FORMAT_FILES)) files clean"

# clang-tidy 14 with the repository's .clang-tidy over every src/ file (TIDY_FILES: a regex of
# the files to check, e.g. TIDY_FILES='src/control/.*'); any finding fails.
TIDY_FILES ?= src/.*\.cpp$$
tidy: configure
	@run-clang-tidy -p $(BUILD_DIR) -j $(JOBS) -quiet '$(CURDIR)/$(TIDY_FILES)' > $(BUILD_DIR)/tidy.log 2>&1; \
		rc=$$?; sed 's/\x1b\[[0-9;]*m//g' $(BUILD_DIR)/tidy.log | grep -E '^/.*(warning|error):' | sort -u; \
		if [ $$rc -ne 0 ]; then echo "tidy: findings (full log: $(BUILD_DIR)/tidy.log)"; exit 1; fi; \
		echo "tidy: clean"

bench: build
	@for b in $(BUILD_DIR)/*_bench; do $$b; done

# libFuzzer targets (docs/fuzzing.md): a separate clang build with ASan+UBSan, then each target
# for FUZZ_SECONDS over a copy of its seed corpus. One target: make fuzz FUZZ_TARGETS=sse
fuzz-build: deps
	@CC=clang CXX=clang++ cmake -S . -B $(FUZZ_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DPALS_FUZZ=ON -DPALS_BUILD_TESTS=OFF -DPALS_BUILD_BENCH=OFF $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target fuzz_all

fuzz: fuzz-build
	@FUZZ_BUILD_DIR=$(FUZZ_BUILD_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD_DIR) $(FUZZ_BUILD_DIR)
