# proctor: the two commands of the README are `make demo` and `make test`.
# Both start with scripts/install-deps.sh (idempotent; quick when everything is there).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps build demo test lint fmt clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build

demo: build
	@bash scripts/demo.sh

# Unit + integration tests (integration tests run the real binary on loopback; they need root
# for packet capture and tmpfs mounts), then formatting and clippy.
test: deps
	$(CARGO) build --all-targets
	$(CARGO) test -- --test-threads=2
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
