# The everyday commands; CMake does the building (build/), CTest the testing.
BUILD   ?= build
CMAKE   ?= cmake
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all demo test install clean

all: $(BUILD)/CMakeCache.txt
	$(CMAKE) --build $(BUILD) -j $(JOBS)

$(BUILD)/CMakeCache.txt:
	$(CMAKE) -S . -B $(BUILD) $(CMAKE_FLAGS)

demo: all
	$(BUILD)/soma demo

test: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

install: all
	$(CMAKE) --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD)
