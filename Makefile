# proctor: the two commands of the README are `make demo` and `make test`.
# Both start with scripts/install-deps.sh (idempotent; quick when everything is there).

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: deps build demo test lint fmt clean gui-screenshot report-screenshot lab-test docs bench deb

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
# scripts/deb-test.sh then builds the .deb from the same dev build, installs it, checks it and
# purges it again (nothing stays installed). The lab suite (scripts/lab/lab.sh) runs last unless
# QUICK=1.
test: deps
	$(CARGO) build --all-targets
	$(CARGO) test -- --test-threads=2
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
	bash scripts/deb-test.sh
ifneq ($(QUICK),1)
	PROCTOR_BIN=target/debug/proctor bash scripts/lab/lab.sh
endif

# The lab suite: a virtual lab in network namespaces (a bridge, a server, LAB_PCS lab PCs,
# default 5, and a device without the key), real server and clients, six fault scenarios; prints
# a table and writes docs/LAB.md. Needs root. `make lab-test LAB_PCS=40` for a bigger room.
lab-test: build
	PROCTOR_BIN=target/debug/proctor bash scripts/lab/lab.sh

# Regenerates the README's screenshot docs/gui.png: the window during a real session with six
# loopback clients, one mounting a file system and one killed (root; private Xvfb).
gui-screenshot: deps
	$(CARGO) test --test gui -- --ignored screenshot_for_the_readme

# Regenerates the README's docs/report.png: `proctor report` on the recorded session in
# tests/data, drawn by headless Chromium (the page is written under target/, not tests/data).
report-screenshot: build
	mkdir -p target/report-screenshot
	./target/debug/proctor report -q -o target/report-screenshot/report.html tests/data/session-2026-report >/dev/null
	chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --force-device-scale-factor=1 \
	  --user-data-dir=target/report-screenshot/profile --window-size=1280,1640 \
	  --screenshot=docs/report.png file://$(CURDIR)/target/report-screenshot/report.html 2>/dev/null
	@echo "wrote docs/report.png"

# Benchmarks against rsyslog, tcpdump and 500 ms mount polling (root; ~20 min on 2 cores);
# writes BENCHMARKS.md. Not part of `make test`. Some stages only:
# `make bench ONLY=faults,flows` (or BENCH_ONLY=...); the other stages' sections are kept.
bench: deps
	@bash scripts/install-bench-deps.sh
	CARGO=$(CARGO) bash scripts/bench/run.sh $(if $(ONLY),--only $(ONLY))

# The Debian package alone, tested and removed again (see scripts/deb-test.sh); the .deb stays in
# target/debian/.
deb: build
	bash scripts/deb-test.sh

# Man pages and shell completions generated from the clap definitions, into target/docs.
docs: build
	$(CARGO) run -q -- __generate target/docs

fmt:
	$(CARGO) fmt

clean:
	$(CARGO) clean
