# The everyday commands; CMake does the building (build/), CTest the testing.
BUILD   ?= build
CMAKE   ?= cmake
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all demo demo-python test test-deps install bench misuse fuzz fuzz-tails clean

all: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) $(CMAKE_FLAGS)

demo: all
	$(BUILD)/soma demo

# The lecture's app under soma, from inside Python (docs/PYTHON.md): the
# package built in $(BUILD)/python runs it with python3 -m soma.
PYTHON ?= python3
demo-python: all
	PYTHONPATH=$(BUILD)/python $(PYTHON) -m soma examples/lecture_stats.py

# valgrind must be there when the build is configured: its headers make
# libsoma-override-valgrind.so, which test_checkers runs under memcheck.
# Python's headers likewise make the Python package (tests/python/), whose
# pip test needs venv and setuptools.  Installed when missing, as root;
# a build configured before is configured again, to find them.
TEST_PKGS = valgrind python3-dev python3-venv python3-setuptools
test: test-deps all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-deps:
	@missing=$$(for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	[ -z "$$missing" ] || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	    { echo "installing" $$missing; (apt-get update -q && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) >/dev/null && \
	      { [ ! -f $(BUILD)/CMakeCache.txt ] || $(CMAKE) -S . -B $(BUILD) >/dev/null; }; }

# The benchmark suite (docs/BENCHMARKS.md): bench/suite.py runs the
# mimalloc-bench programs (../shared/third_party/mimalloc-bench, built out
# of tree in $(BUILD)/mb), Debian's programs (z3, ruby, lua5.4, rocksdb's
# db_bench, redis), the Python programs (against pymalloc too) and soma's
# own workloads (bench/bench_small.c) under glibc, jemalloc, mimalloc,
# tcmalloc and soma, BENCH_REPS alternating runs each, and prints one table
# (medians, soma / best peer, geomeans); then bench/memory_return.py shows
# whether freed memory goes back to the system (bench/frag.c and
# bench/python/build_drop.py: the resident set after a large drop, under
# each allocator); then bench/counts.py prints cachegrind's instructions and
# L1 data misses per operation.  About 30-40 minutes on 2 cores;
# bench-quick is a few-minute subset, bench-counts the counts alone,
# bench-memory memory return alone (about 45 s a repetition).  bench-soma:
# soma's finer tables (the floor, hardening, sampling, sqlite3 and gcc).
# All install the peers and programs (Debian packages) when they are
# missing and this is root; what is still missing is left out with a line
# that says so.
BENCH_REPS ?= 3
BENCH_SCALE ?= 1
BENCH_ONLY ?=
COUNTS_JOBS ?= $(JOBS)
MB_SRC ?= ../shared/third_party/mimalloc-bench/bench
MB_BUILD ?= $(BUILD)/mb
BENCH_PKGS = libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 python3 sqlite3 gcc g++ time \
	     redis-server redis-tools z3 ruby rocksdb-tools lua5.4 valgrind
SUITE = python3 bench/suite.py $(BUILD)/libsoma-override.so $(BUILD)/bench/bench_small $(MB_BUILD)
MEMORY = python3 bench/memory_return.py $(BUILD)/libsoma-override.so $(BUILD)/bench/frag \
	--reps $(BENCH_REPS)
COUNTS = python3 bench/counts.py $(BUILD)/libsoma-override.so $(BUILD)/bench/bench_small $(MB_BUILD) \
	--jobs $(COUNTS_JOBS)

.PHONY: bench bench-quick bench-counts bench-memory bench-soma bench-deps bench-mb
bench: bench-deps all bench-mb
	$(SUITE) --reps $(BENCH_REPS) $(if $(BENCH_ONLY),--only $(BENCH_ONLY))
	$(MEMORY)
	$(COUNTS)

bench-quick: bench-deps all bench-mb
	$(SUITE) --quick $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

bench-counts: bench-deps all bench-mb
	$(COUNTS)

# Memory return needs no mimalloc-bench: only frag (built by all) and python3.
bench-memory: bench-deps all
	$(MEMORY)

# install_pkgs PACKAGES: those missing installed when this is root, else said.
define install_pkgs
	@for p in $(1); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing$$missing"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) >/dev/null \
	    || echo "could not install$$missing: those are left out"; \
	elif [ -n "$$missing" ]; then echo "not installed:$$missing: those are left out"; fi
endef

bench-deps:
	$(call install_pkgs,$(BENCH_PKGS))

# mimalloc-bench is someone else's code: built out of tree, never copied.
bench-mb:
	@if [ -f $(MB_SRC)/CMakeLists.txt ]; then \
	    { test -f $(MB_BUILD)/CMakeCache.txt || \
	      $(CMAKE) -S $(MB_SRC) -B $(MB_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null; } && \
	    $(CMAKE) --build $(MB_BUILD) -j $(JOBS) >/dev/null; \
	else echo "$(MB_SRC) not there: the mimalloc-bench rows are left out"; fi

# Side-by-side measurements against glibc, jemalloc, mimalloc and tcmalloc
# (and CPython's own pymalloc): small-object workloads (bench/run.py), then
# real programs (bench/run_programs.py: python3, sqlite3, gcc, redis), then
# what sampling the statistics costs a program (bench/sampling.py), and
# what the hardened free lists cost (bench/hardening.py).
bench-soma: bench-deps all
	python3 bench/run.py $(BUILD)/bench/bench_small $(BUILD)/libsoma-override.so \
	    --floor $(BUILD)/bench/libsoma-floor.so --reps $(BENCH_REPS) --scale $(BENCH_SCALE)
	python3 bench/run_programs.py $(BUILD)/libsoma-override.so \
	    --reps $(BENCH_REPS) --scale $(BENCH_SCALE)
	python3 bench/sampling.py $(BUILD)/bench/bench_small $(BUILD)/libsoma-override.so \
	    --reps $(BENCH_REPS) --scale $(BENCH_SCALE)
	python3 bench/hardening.py $(BUILD)/bench/bench_small $(BUILD)/libsoma-override.so \
	    $(BUILD)/bench/libsoma-override-unhardened.so --reps $(BENCH_REPS) --scale $(BENCH_SCALE)

# The misuse suite (tests/misuse/, docs/BENCHMARKS.md#misuse): 122 memory
# mistakes, each in a process of its own, under glibc, jemalloc, mimalloc,
# tcmalloc and soma's modes (normal, checked copies, sampled guard pages,
# debug, debug with guard pages): a table of which allocator stops which,
# and how, and the count per allocator.  A report, like make bench (the
# test of soma's targets is test_misuse); under a minute on 2 cores.
MISUSE_PKGS = libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4
MISUSE_FLAGS ?=
misuse: all
	$(call install_pkgs,$(MISUSE_PKGS))
	@cxx=$(BUILD)/tests/misuse_cases_cxx; [ -x $$cxx ] || cxx=; \
	python3 tests/misuse/run_misuse.py --misuse $(BUILD)/tests/misuse_cases \
	    --fortify $(BUILD)/tests/misuse_cases_fortify --cxx "$$cxx" \
	    --override $(BUILD)/libsoma-override.so --jobs $(JOBS) $(MISUSE_FLAGS)

# libFuzzer on soma (tests/fuzz/fuzz_soma.c): clang, ASan and UBSan, in its
# own build directory; SECONDS of fuzzing over a copy of tests/fuzz/corpus
# (what it finds stays in $(FUZZ_BUILD)/corpus).  Installs clang's fuzzer
# runtime when it is missing.  `make fuzz-tails`: the same with UBSan
# alone, in build-fuzz-tails: an ASan build has no tails (base/config.h),
# so the hardened build's heads, fences and twin pools are fuzzed there.
SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
FUZZ_SANITIZE ?= address,undefined
fuzz-tails:
	$(MAKE) fuzz FUZZ_BUILD=build-fuzz-tails FUZZ_SANITIZE=undefined
fuzz:
	@for p in clang libclang-rt-14-dev; do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) >/dev/null; fi
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || $(CMAKE) -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang \
	    -DSOMA_FUZZ=ON -DSOMA_SANITIZE=$(FUZZ_SANITIZE) -DSOMA_BUILD_TESTS=OFF >/dev/null
	$(CMAKE) --build $(FUZZ_BUILD) --target fuzz_soma -j $(JOBS)
	tests/fuzz/run_fuzz.sh $(FUZZ_BUILD) $(SECONDS)

install: all
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
