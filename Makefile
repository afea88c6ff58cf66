# The everyday commands; CMake does the building (build/), CTest the testing.
BUILD   ?= build
CMAKE   ?= cmake
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all demo test test-deps install bench fuzz clean

all: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) $(CMAKE_FLAGS)

demo: all
	$(BUILD)/soma demo

# valgrind must be there when the build is configured: its headers make
# libsoma-override-valgrind.so, which test_checkers runs under memcheck.
test: test-deps all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-deps:
	@dpkg -s valgrind >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null || \
	    { echo "installing valgrind"; (apt-get update -q && \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind) >/dev/null; }

# Side-by-side measurements against glibc, jemalloc, mimalloc and tcmalloc
# (and CPython's own pymalloc): small-object workloads (bench/run.py), then
# real programs (bench/run_programs.py: python3, sqlite3, gcc, redis), then
# what sampling the statistics costs a program (bench/sampling.py), and
# what the hardened free lists cost (bench/hardening.py).
# Installs the peers and programs (Debian packages) when they are missing.
BENCH_REPS ?= 5
BENCH_SCALE ?= 1
bench: all
	@for p in libjemalloc2 libmimalloc2.0 libtcmalloc-minimal4 python3 sqlite3 gcc time \
	         redis-server redis-tools; do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) >/dev/null \
	    || echo "could not install$$missing: those peers are left out"; fi
	python3 bench/run.py $(BUILD)/bench/bench_small $(BUILD)/libsoma-override.so \
	    --floor $(BUILD)/bench/libsoma-floor.so --reps $(BENCH_REPS) --scale $(BENCH_SCALE)
	python3 bench/run_programs.py $(BUILD)/libsoma-override.so \
	    --reps $(BENCH_REPS) --scale $(BENCH_SCALE)
	python3 bench/sampling.py $(BUILD)/bench/bench_small $(BUILD)/libsoma-override.so \
	    --reps $(BENCH_REPS) --scale $(BENCH_SCALE)
	python3 bench/hardening.py $(BUILD)/bench/bench_small $(BUILD)/libsoma-override.so \
	    $(BUILD)/bench/libsoma-override-unhardened.so --reps $(BENCH_REPS) --scale $(BENCH_SCALE)

# libFuzzer on soma (tests/fuzz/fuzz_soma.c): clang, ASan and UBSan, in its
# own build directory; SECONDS of fuzzing over a copy of tests/fuzz/corpus
# (what it finds stays in $(FUZZ_BUILD)/corpus).  Installs clang's fuzzer
# runtime when it is missing.
SECONDS ?= 60
FUZZ_BUILD ?= build-fuzz
fuzz:
	@for p in clang libclang-rt-14-dev; do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing$$missing"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) >/dev/null; fi
	@test -f $(FUZZ_BUILD)/CMakeCache.txt || $(CMAKE) -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang \
	    -DSOMA_FUZZ=ON -DSOMA_SANITIZE=address,undefined -DSOMA_BUILD_TESTS=OFF >/dev/null
	$(CMAKE) --build $(FUZZ_BUILD) --target fuzz_soma -j $(JOBS)
	tests/fuzz/run_fuzz.sh $(FUZZ_BUILD) $(SECONDS)

install: all
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
