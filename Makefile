# The project's two commands (see README.md):
#   make test   install what is missing, build (debug: ASan + UBSan), run every test
#               (debug info is line tables only, -g1: file and line in every sanitizer report and
#               backtrace, no variables; it compiles about 28% faster than -g, which keeps CI short)
#   make run    install what is missing, build (release), start the server (cairn serve)
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

# The main job is the server: the store at $(CAIRN_DB) served to EventStoreDB/KurrentDB clients on
# 127.0.0.1:2113 until Ctrl-C (docs/protocol.md). `cairn tour` is the in-process walk-through.
CAIRN_GRPC ?= 127.0.0.1:2113
run: build-release
	@./build/release/cairn serve --db $(CAIRN_DB) --grpc $(CAIRN_GRPC)

bench: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS) --target cairn_cli cairn_sqlite_bench cairn_es_bench
	@bench/run.sh --build build/release

clean:
	rm -rf build
