# Two commands: `make run` and `make test`. Everything else is a building block.
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TYPE ?= RelWithDebInfo
JOBS       ?= $(shell nproc)
WERROR     ?= $(if $(CI),ON,OFF)
CMAKE_ARGS ?=

.PHONY: all deps deps-test build build-clang run test test-asan test-h2-gib fuzz bench soak clean install

all: build

# Two groups of packages: what building and running needs, and what testing needs on top.
deps:
	@bash scripts/deps.sh build

deps-test:
	@bash scripts/deps.sh test

build: deps-test
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DONEGATE_WERROR=$(WERROR) -DONEGATE_TESTS=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The same tree with clang, warnings as errors: the product builds clean with gcc and clang.
build-clang: deps-test
	@cmake -S . -B build-clang -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DONEGATE_WERROR=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build build-clang -j $(JOBS)

# A first run builds the gateway alone, without the test suite or its packages; a tree already
# configured with tests keeps them.
run: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DONEGATE_WERROR=$(WERROR) \
	  $(if $(wildcard $(BUILD)/CMakeCache.txt),,-DONEGATE_TESTS=OFF) $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS) --target onegate
	$(BUILD)/gateway/onegate demo

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

test-asan: deps-test
	@cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Sanitize -DONEGATE_WERROR=$(WERROR) $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD_ASAN) -j $(JOBS)
	# A smaller quarantine keeps RSS meaningful for the flat-memory tests (1 GiB upload under 64 MiB).
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure -j $(JOBS)

# One 1 GiB HTTP/2 stream each way through TLS, RSS sampled (make test moves 256 MiB).
test-h2-gib: build
	cd tests/integration && ONEGATE_H2_FLOW_BYTES=1073741824 ONEGATE_BIN=$(CURDIR)/$(BUILD)/gateway/onegate \
	  ONEGATE_SOURCE_DIR=$(CURDIR) /usr/bin/python3 test_http2_flow.py -v \
	  Http2Flow.test_large_upload_over_one_stream Http2Flow.test_large_download_over_one_stream

# The binary, plugins, templates, examples, docs, systemd unit and logrotate file under
# PREFIX (sysconf files in /etc), staged under DESTDIR when set. A tree of its own
# (build-install): the installed binary looks for its plugins in PREFIX/lib/onegate/plugins.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
DESTDIR    ?=
install: deps
	@cmake -S . -B build-install -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DONEGATE_WERROR=$(WERROR) -DONEGATE_TESTS=OFF \
	  -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DCMAKE_INSTALL_SYSCONFDIR=$(SYSCONFDIR) \
	  -DONEGATE_PLUGIN_DIR=$(PREFIX)/lib/onegate/plugins $(CMAKE_ARGS) >/dev/null
	@cmake --build build-install -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install build-install
	@echo "installed under $(DESTDIR)$(PREFIX); next: docs/operations.md (user, rule file, systemctl enable --now onegate)"

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) build-clang build-fuzz build-install

# Mixed traffic for SOAK_MINUTES (default 10) with reloads, back-end kills, a drain and a
# burst; fails on any byte lost or changed. Its table and the machine's load go to
# bench/results/DATE-soak-MINUTESmin.md. Not part of `make test`, which runs a 9 s version.
# --heap: the gateway's heap is read through gdb at both ends (leak or allocator high-water).
SOAK_MINUTES ?= 10
soak: build
	python3 tests/soak/soak.py --onegate $(BUILD)/gateway/onegate --minutes $(SOAK_MINUTES) --heap \
		--results bench/results/$$(date -u +%Y-%m-%d)-soak-$(SOAK_MINUTES)min.md

# Side-by-side benchmarks against HAProxy and nginx (not part of `make test`).
bench: build
	@bash scripts/deps.sh build haproxy nginx libnginx-mod-stream wrk nghttp2-client util-linux linux-perf \
		android-boringssl python3-cryptography python3-matplotlib
	python3 bench/run.py --onegate $(BUILD)/gateway/onegate

# libFuzzer: every parser of untrusted input, FUZZ_SECONDS each, over a copy of its seed corpus.
FUZZ_SECONDS ?= 60
fuzz: deps-test
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DCMAKE_BUILD_TYPE=Debug -DONEGATE_FUZZ=ON -DONEGATE_TESTS=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build build-fuzz -j $(JOBS) --target fuzz_hello fuzz_proxyproto fuzz_rules fuzz_h1 fuzz_urlpath fuzz_h2head fuzz_h2 fuzz_http_head
	@set -e; for t in hello proxyproto rules h1 urlpath h2head h2 http_head; do \
	  work=$$(mktemp -d); cp tests/fuzz/corpus/$$t/* $$work/; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  if ! LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp build-fuzz/tests/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$work >$$work.log 2>&1; then \
	    tail -40 $$work.log; echo "fuzz_$$t FAILED (crash input saved in the current folder)"; exit 1; fi; \
	  grep -E 'stat::number_of_executed_units|stat::peak_rss' $$work.log; \
	  rm -rf $$work $$work.log; \
	done
