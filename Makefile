# proctor: the two commands of the README are `make demo` and `make test`.
# Both start with scripts/install-deps.sh (idempotent; quick when everything is there).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps build demo test lint fmt clean gui-screenshot

deps:
	@bash scripts/install-deps.sh

build: deps
	$(CARGO) build

demo: build
	@bash scripts/demo.sh

# Unit + integration tests (integration tests run the real binary on loopback; they need root
# for packet capture and tmpfs mounts), then formatting and clippy. The window tests
# (tests/gui.rs) start a private Xvfb per test and press buttons with xdotool, so they need no
# display and no terminal (`CI=true make test </dev/null` works).
test: deps
	$(CARGO) build --all-targets
	$(CARGO) test -- --test-threads=2
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Regenerates the README's screenshot docs/gui.png: the window during a real session with six
# loopback clients, one mounting a file system and one killed (root; private Xvfb).
gui-screenshot: deps
	$(CARGO) test --test gui -- --ignored screenshot_for_the_readme

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
