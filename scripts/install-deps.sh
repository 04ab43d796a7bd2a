#!/usr/bin/env bash
# Installs every system package proctor needs to build, test and run its demo.
# Idempotent: quick when everything is already there. Debian/Ubuntu (apt) or macOS (brew).
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: run as root (or via sudo) to install system packages" >&2
    exit 1
  fi
}

if [ "$(uname -s)" = "Darwin" ]; then
  command -v brew >/dev/null || { echo "install-deps: Homebrew is required on macOS" >&2; exit 1; }
  brew list cmake >/dev/null 2>&1 || brew install cmake
  brew list libpcap >/dev/null 2>&1 || brew install libpcap
  exit 0
fi

command -v apt-get >/dev/null || { echo "install-deps: only apt (Debian/Ubuntu) and brew (macOS) are supported" >&2; exit 1; }

PKGS="g++ make pkg-config libpcap-dev libx11-dev libxext-dev libxft-dev libxinerama-dev libxcursor-dev
  libxrender-dev libxfixes-dev libpango1.0-dev libcairo2-dev libfontconfig1-dev libgl1-mesa-dev libglu1-mesa-dev
  xvfb xauth x11-utils xdotool imagemagick tcpdump iproute2 iptables util-linux procps
  chromium"

# Packages that ship a system daemon, needed only for their programs: rsyslog (tests/export.rs
# runs a private rsyslogd on loopback) and systemd (systemd-analyze verifies the units in dist/;
# about 15 MB, and safe in a container: nothing starts without systemd as PID 1). They are
# installed without starting their services (see install_quietly), as scripts/install-bench-deps.sh
# does for rsyslog.
DAEMON_PKGS="rsyslog systemd"
# chromium (in PKGS): tests/report.rs renders the session report in headless Chromium, and
# `make report-screenshot` draws docs/report.png with it.

cmake_ok() {
  command -v cmake >/dev/null || return 1
  local v; v=$(cmake --version | head -1 | awk '{print $3}')
  [ "$(printf '%s\n3.28\n' "$v" | sort -V | head -1)" = "3.28" ]
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# cargo-deb builds the .deb that scripts/deb-test.sh (make test) installs and removes again.
# A cargo subcommand, not an apt package: built once from crates.io with its locked versions.
ensure_cargo_deb() {
  if ! command -v cargo >/dev/null; then
    echo "install-deps: cargo not found; install Rust (rustup.rs), then run this again" >&2
    exit 1
  fi
  if ! cargo deb --version >/dev/null 2>&1; then
    echo "install-deps: installing cargo-deb (cargo install cargo-deb --locked; a few minutes, once)"
    cargo install cargo-deb --locked
  fi
}

missing=""
for p in $PKGS; do
  installed "$p" || missing="$missing $p"
done
daemon_missing=""
for p in $DAEMON_PKGS; do
  installed "$p" || daemon_missing="$daemon_missing $p"
done

# Installs packages without starting (or leaving running) their services: a temporary
# /usr/sbin/policy-rc.d that exits 101 forbids service starts during the install (an existing
# one is put back afterwards); an rsyslogd the package started anyway is stopped by its pid file,
# and with systemd running the rsyslog service and socket are stopped and disabled.
install_quietly() {
  local policy=/usr/sbin/policy-rc.d backup="" sys_pid=/run/rsyslogd.pid pid_before="" pid
  if [ -e "$policy" ] || [ -L "$policy" ]; then
    backup=$(mktemp /tmp/policy-rc.d.deps.XXXXXX)
    cp -a "$policy" "$backup"
  fi
  [ -r "$sys_pid" ] && pid_before=$(cat "$sys_pid" 2>/dev/null || true)
  # shellcheck disable=SC2064
  trap "if [ -n '$backup' ]; then cp -a '$backup' '$policy' && rm -f '$backup'; else rm -f '$policy'; fi" EXIT
  printf '#!/bin/sh\n# temporary, written by proctor scripts/install-deps.sh\nexit 101\n' > "$policy.deps.$$"
  chmod 755 "$policy.deps.$$"
  mv -f "$policy.deps.$$" "$policy"
  apt-get install -y -qq --no-install-recommends "$@"
  if [ -r "$sys_pid" ]; then
    pid=$(cat "$sys_pid" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$pid" != "$pid_before" ] && [ -d "/proc/$pid" ] \
       && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/sbin/rsyslogd ]; then
      echo "install-deps: stopping the rsyslogd ($pid) the package started" >&2
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
      if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
      rm -f "$sys_pid"
    fi
  fi
  if [ -z "$pid_before" ] && [[ " $* " == *" rsyslog "* ]] && command -v systemctl >/dev/null \
     && [ -d /run/systemd/system ]; then
    systemctl stop rsyslog.service syslog.socket 2>/dev/null || true
    systemctl disable rsyslog.service 2>/dev/null || true
  fi
  if [ -n "$backup" ]; then cp -a "$backup" "$policy" && rm -f "$backup"; else rm -f "$policy"; fi
  trap - EXIT
}

if [ -z "$missing" ] && [ -z "$daemon_missing" ] && cmake_ok; then
  ensure_cargo_deb
  echo "install-deps: all system packages present"
  exit 0
fi

need_root
export DEBIAN_FRONTEND=noninteractive
updated=0
if ! cmake_ok; then
  # fltk-sys >= 1.5 needs CMake >= 3.28; Debian 12 ships 3.25. Take it from bookworm-backports,
  # deriving the mirror from the machine's own Debian source so no host is hard-coded here.
  if [ -f /etc/apt/sources.list.d/debian.sources ] && grep -q 'bookworm' /etc/apt/sources.list.d/debian.sources \
     && [ ! -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
    awk 'BEGIN{RS="";ORS="\n\n"} /Suites: bookworm( |$)/' /etc/apt/sources.list.d/debian.sources \
      | sed -e 's/^Suites:.*/Suites: bookworm-backports/' -e '/^#/d' \
      > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  apt-get update -qq; updated=1
  if [ -f /etc/apt/sources.list.d/bookworm-backports.sources ]; then
    apt-get install -y -qq --no-install-recommends -t bookworm-backports cmake
  else
    apt-get install -y -qq --no-install-recommends cmake
  fi
  if ! cmake_ok; then
    echo "install-deps: CMake >= 3.28 not available from apt; installing it from PyPI" >&2
    python3 -m pip install -q 'cmake>=3.28'
  fi
fi
if [ -n "$missing" ]; then
  [ $updated -eq 1 ] || { apt-get update -qq; updated=1; }
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
if [ -n "$daemon_missing" ]; then
  [ $updated -eq 1 ] || apt-get update -qq
  # shellcheck disable=SC2086
  install_quietly $daemon_missing
fi
ensure_cargo_deb
cmake --version | head -1
echo "install-deps: done"
