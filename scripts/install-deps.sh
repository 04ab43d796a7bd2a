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
  xvfb xauth x11-utils xdotool imagemagick tcpdump iproute2 iptables util-linux procps"

cmake_ok() {
  command -v cmake >/dev/null || return 1
  local v; v=$(cmake --version | head -1 | awk '{print $3}')
  [ "$(printf '%s\n3.28\n' "$v" | sort -V | head -1)" = "3.28" ]
}

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -z "$missing" ] && cmake_ok; then
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
  [ $updated -eq 1 ] || apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
cmake --version | head -1
echo "install-deps: done"
