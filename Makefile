# The project's two commands (see README.md):
#   make test   install what is missing, build (debug: ASan + UBSan), run every test
#   make run    install what is missing, build (release), start the main job
# Both work on a fresh Debian 12 machine as root.

JOBS ?= $(shell nproc)
CAIRN_DB ?= file:./cairn-data

.PHONY: all deps build build-release test run bench clean

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake --preset debug >/dev/null
	@cmake --build --preset debug -j $(JOBS)

# The main job needs only the `cairn` command: build just that.
build-release: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target cairn_cli

test: build
	@ctest --preset debug -j $(JOBS) --timeout 900

# Until `cairn serve` exists, the main job is the tour: the seed's bank account appended to the
# embedded store, read back, and its balance rebuilt from the events.
run: build-release
	@./build/release/cairn tour --db $(CAIRN_DB)

bench: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target cairn_cli cairn_sqlite_bench cairn_es_bench
	@bench/run.sh --build build/release

clean:
	rm -rf build
