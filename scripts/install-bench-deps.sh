#!/usr/bin/env bash
# Installs what `make bench` (scripts/bench/run.sh) needs besides proctor's own build deps:
# rsyslog (only the binary is used: the benchmark runs private instances with their own config,
# pid file and work directory) and rsyslog-relp (imrelp/omrelp for the faults stage), tcpdump,
# gcc (the UDP generators are compiled at run time),
# python3, iproute2 (ss), procps, and linux-perf when the distribution has it (optional).
#
# Idempotent: quick when everything is there. Installing rsyslog must not leave a system
# rsyslogd running or write to the machine's logs, so during the install a temporary
# /usr/sbin/policy-rc.d forbids starting services (any existing one is put back afterwards), and
# an rsyslogd the package started anyway is stopped by its pid file.
set -euo pipefail

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-bench-deps: run as root (or via sudo) to install system packages" >&2
    exit 1
  fi
}

command -v apt-get >/dev/null || { echo "install-bench-deps: only apt (Debian/Ubuntu) is supported" >&2; exit 1; }

REQUIRED="rsyslog rsyslog-relp tcpdump gcc libc6-dev python3 iproute2 procps util-linux"
OPTIONAL="linux-perf"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

missing=""
for p in $REQUIRED; do installed "$p" || missing="$missing $p"; done
opt_missing=""
for p in $OPTIONAL; do
  # only what this distribution has (e.g. linux-perf is Debian's name); otherwise the benchmark
  # just skips the perf profiles
  installed "$p" || { apt-cache show "$p" >/dev/null 2>&1 && opt_missing="$opt_missing $p"; }
done

if [ -z "$missing" ] && [ -z "$opt_missing" ]; then
  echo "install-bench-deps: all benchmark packages present"
  exit 0
fi

need_root
export DEBIAN_FRONTEND=noninteractive

# --- keep services from starting during the install -------------------------------------------
POLICY=/usr/sbin/policy-rc.d
BACKUP=""
if [ -e "$POLICY" ] || [ -L "$POLICY" ]; then
  BACKUP=$(mktemp /tmp/policy-rc.d.bench.XXXXXX)
  cp -a "$POLICY" "$BACKUP"
fi
SYS_PID=/run/rsyslogd.pid
pid_before=""
[ -r "$SYS_PID" ] && pid_before=$(cat "$SYS_PID" 2>/dev/null || true)

restore_policy() {
  if [ -n "$BACKUP" ]; then
    cp -a "$BACKUP" "$POLICY" && rm -f "$BACKUP"
  else
    rm -f "$POLICY"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# temporary, written by proctor scripts/install-bench-deps.sh\nexit 101\n' > "$POLICY.bench.$$"
chmod 755 "$POLICY.bench.$$"
mv -f "$POLICY.bench.$$" "$POLICY"

apt-get update -qq
if [ -n "$missing" ]; then
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing
fi
for p in $opt_missing; do
  apt-get install -y -qq --no-install-recommends "$p" || echo "install-bench-deps: optional $p not installed" >&2
done

# --- an rsyslogd the package started anyway (no policy-rc.d support, systemd socket...) -------
if [ -r "$SYS_PID" ]; then
  pid=$(cat "$SYS_PID" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$pid" != "$pid_before" ] && [ -d "/proc/$pid" ] \
     && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = /usr/sbin/rsyslogd ]; then
    echo "install-bench-deps: stopping the rsyslogd ($pid) the package started" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    [ -d "/proc/$pid" ] && kill -KILL "$pid" 2>/dev/null || true
    rm -f "$SYS_PID"
  fi
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  # With systemd, keep the system service (and its socket) from running because of this install.
  if [ -z "$pid_before" ] && [[ " $missing " == *" rsyslog "* ]]; then
    systemctl stop rsyslog.service syslog.socket 2>/dev/null || true
    systemctl disable rsyslog.service 2>/dev/null || true
  fi
fi

/usr/sbin/rsyslogd -v | head -1
tcpdump --version 2>&1 | head -1
echo "install-bench-deps: done"
