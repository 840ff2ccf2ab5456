# The two commands a new user needs are `make demo` and `make test` (see README.md).
CARGO ?= cargo

.PHONY: build test demo sim bench fmt

build:
	$(CARGO) build --release

test:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) test --release

demo: build
	./target/release/harness demo --nodes 5 --ring bi
	./target/release/harness demo --nodes 5 --ring uni
	./target/release/harness demo --nodes 5 --ring bi --kill 1

sim: build
	./target/release/harness-sim --seeds 0..20000 --faults all

fmt:
	$(CARGO) fmt --all
