# The everyday commands; CMake does the building (build/), CTest the testing.
BUILD   ?= build
CMAKE   ?= cmake
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all demo test install bench clean

all: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) $(CMAKE_FLAGS)

demo: all
	$(BUILD)/soma demo

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

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

install: all
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
