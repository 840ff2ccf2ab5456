# The two commands a new user needs are `make demo` and `make test` (see README.md).
CARGO ?= cargo

.PHONY: build test demo sim bench soak fmt dist install

build:
	$(CARGO) build --release

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	# The C example test links target/release/libharness.a, which `cargo test` does not build.
	$(CARGO) build --release
	$(CARGO) test --release

demo: build
	./target/release/harness demo --nodes 5 --ring bi
	./target/release/harness demo --nodes 5 --ring uni
	./target/release/harness demo --nodes 5 --ring bi --kill 1

sim: build
	./target/release/harness-sim --seeds 0..20000 --faults all
	# Universe changes (a move, a removal and re-addition, another move) under every fault kind
	# (docs/PROTOCOL.md §5.9).
	./target/release/harness-sim --seeds 0..20000 --faults all --member-changes
	# 64 members, every fault kind, a small workload per member (docs/PROTOCOL.md §4).
	./target/release/harness-sim --seeds 0..1000 --faults all --nodes 64 --messages 4
	# Restarts, full ones included, from checkpoints on disk, with universe changes (§5.9, §7).
	./target/release/harness-sim --seeds 0..2000 --faults all --member-changes --durability checkpoint

# The full benchmark (several minutes; the machine should be otherwise quiet). Narrow it with
# BENCH_FLAGS, e.g. `make bench BENCH_FLAGS="--nodes 3,5"`.
BENCH_FLAGS ?=
# Where cargo put the binaries: CARGO_TARGET_DIR when set, else ./target.
BIN_DIR = $(or $(CARGO_TARGET_DIR),target)/release
bench: build
	mkdir -p target/bench
	$(BIN_DIR)/harness-bench --json target/bench/bench.json --svg-dir target/bench $(BENCH_FLAGS)
	@echo "bench: JSON in target/bench/bench.json, plots in target/bench/*.svg"

# Long linearizability runs for whoever changes the protocol (minutes; the second needs root for
# network namespaces): client processes record histories while a nemesis kills, pauses and
# restarts members on loopback, then also partitions, bridges and flaps links between namespaces;
# `harness::check` must find every history linearizable. SOAK_SECONDS sets each run's length.
SOAK_SECONDS ?= 180
soak: build
	mkdir -p target/soak
	$(BIN_DIR)/harness-check run --seconds $(SOAK_SECONDS) --faults processes --history target/soak/loopback.history
	SOAK_SECONDS=$(SOAK_SECONDS) $(CARGO) test --release --test it -- --ignored --nocapture soak_every_nemesis

fmt:
	$(CARGO) fmt --all

# Stripped, LTO builds for minimal nodes: the three executables, the C library and header in
# target/harness-dist/.
DIST_DIR = $(or $(CARGO_TARGET_DIR),target)
dist:
	$(CARGO) build --profile dist
	mkdir -p $(DIST_DIR)/harness-dist/bin $(DIST_DIR)/harness-dist/lib $(DIST_DIR)/harness-dist/include
	cp $(DIST_DIR)/dist/harness $(DIST_DIR)/dist/harness-sim $(DIST_DIR)/dist/harness-bench $(DIST_DIR)/dist/harness-check $(DIST_DIR)/harness-dist/bin/
	cp $(DIST_DIR)/dist/libharness.a $(DIST_DIR)/dist/libharness.so $(DIST_DIR)/harness-dist/lib/
	cp include/harness.h $(DIST_DIR)/harness-dist/include/
	@ls -l $(DIST_DIR)/harness-dist/bin $(DIST_DIR)/harness-dist/lib

# `make install PREFIX=/opt/harness` (default /usr/local; DESTDIR for packaging): the four
# executables, the C library and header, the man page and the bash completions, the last two
# printed by the harness just built from its own --help text, so they never disagree with it.
PREFIX ?= /usr/local
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
		$(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(BIN_DIR)/harness $(BIN_DIR)/harness-sim $(BIN_DIR)/harness-bench $(BIN_DIR)/harness-check \
		$(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BIN_DIR)/libharness.a $(BIN_DIR)/libharness.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/harness.h $(DESTDIR)$(PREFIX)/include/
	$(BIN_DIR)/harness man > $(DESTDIR)$(PREFIX)/share/man/man1/harness.1
	$(BIN_DIR)/harness completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/harness
	@echo "installed harness $$($(BIN_DIR)/harness --version | cut -d' ' -f2) under $(DESTDIR)$(PREFIX)"
