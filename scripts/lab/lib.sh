# shellcheck shell=bash
# Helpers for scripts/lab/lab.sh: the virtual lab (namespaces, bridge, veths), process
# bookkeeping, waiting with deadlines. Sourced, not run.
#
# Network safety: every address lives inside the namespaces created here; the root namespace
# gets no address, no route and no interface (veths are created directly inside their
# namespaces); nothing is routed anywhere; broadcasts go only to the lab /24's own address.

PIDS=()     # every process started (killed by id in the EXIT trap)
NSES=()     # every namespace created (deleted in the EXIT trap)

log() { printf '%s lab: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FATAL: $*"; exit 1; }

now() { date +%s.%N | cut -c1-14; }                    # epoch seconds, ms resolution
plus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

# wait_until SECONDS CMD...: polls CMD every 0.1 s until it succeeds (0) or time runs out (1).
wait_until() {
  local limit=$1; shift
  local end=$(( $(date +%s%N) + ${limit%.*} * 1000000000 ))
  while :; do
    if "$@"; then return 0; fi
    if (( $(date +%s%N) >= end )); then return 1; fi
    sleep 0.1
  done
}

# First line of FILE matching the extended regex (empty if none).
first_match() { grep -m1 -E -- "$2" "$1" 2>/dev/null || true; }
has_match() { grep -q -E -- "$2" "$1" 2>/dev/null; }
count_matches() { local n; n=$(grep -c -E -- "$2" "$1" 2>/dev/null) || true; echo "${n:-0}"; }
# Time stamp (first field) of the first line of a stamped output file matching the regex.
stamp_of() { local l; l=$(first_match "$1" "$2"); echo "${l%% *}"; }
# Like has_match/stamp_of but only after byte offset $3 of the file.
has_match_after() { tail -c +"$(( $3 + 1 ))" "$1" 2>/dev/null | grep -q -E -- "$2"; }
stamp_after() {
  local l; l=$(tail -c +"$(( $3 + 1 ))" "$1" 2>/dev/null | grep -m1 -E -- "$2" || true)
  echo "${l%% *}"
}
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

# stamped NAME OUT -- CMD...: starts CMD through `labtool.py stamp-run` (every output line
# time-stamped into OUT); sets STAMPED_PID to CMD's own pid (for signals). Both pids are
# remembered for the EXIT trap.
STAMPED_PID=""
stamped() {
  local name=$1 out=$2; shift 3
  local pidf="$WORK/pid/$name.$RANDOM$RANDOM"
  python3 "$HERE/labtool.py" stamp-run "$out" "$pidf" -- "$@" &
  PIDS+=("$!")
  wait_until 10 test -s "$pidf" || die "$name did not start"
  STAMPED_PID=$(cat "$pidf")
  PIDS+=("$STAMPED_PID")
}

# Background process remembered for the trap: bgrun OUT CMD...  (pid in BG_PID)
BG_PID=""
bgrun() {
  local out=$1; shift
  "$@" >>"$out" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

alive() { kill -0 "$1" 2>/dev/null; }

# wait_gone PID SECONDS: waits for a process to end.
not_alive() { ! kill -0 "$1" 2>/dev/null; }
wait_gone() { wait_until "$2" not_alive "$1"; }

# sleep_until EPOCH: sleeps until that time (returns at once if it has passed).
sleep_until() {
  local d; d=$(awk -v t="$1" -v n="$(now)" 'BEGIN { d = t - n; printf "%.3f", (d > 0 ? d : 0) }')
  sleep "$d"
}

lab_cleanup() {
  local rc=$1 p ns
  set +e
  disown -a 2>/dev/null   # no "Killed" job reports
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  # Anything still running inside our namespaces was started by this script.
  for ns in "${NSES[@]}"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  for p in "${PIDS[@]}"; do wait_gone "$p" 5; done
  for ns in "${NSES[@]}"; do ip netns del "$ns" 2>/dev/null; done
  if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
    if [ "$rc" -eq 0 ] && [ "${LAB_KEEP:-0}" != 1 ]; then
      rm -rf "$WORK"
    else
      log "logs and outputs of this run kept in $WORK"
    fi
  fi
}

# ns_host NS IP PORTNAME: a namespace with eth0 (IP/24, brd +) plugged into the switch.
ns_host() {
  local ns=$1 ip=$2 port=$3
  ip netns add "$ns"
  NSES+=("$ns")
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1
  # Created directly inside the namespaces: the root namespace never sees these interfaces.
  ip link add eth0 netns "$ns" type veth peer name "$port" netns "$SW"
  ip -n "$SW" link set "$port" master br0 up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr add "$ip/24" brd + dev eth0
  ip -n "$ns" link set eth0 up
}

# The switch namespace with its bridge.
ns_switch() {
  ip netns add "$SW"
  NSES+=("$SW")
  ip netns exec "$SW" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1
  ip -n "$SW" link set lo up
  ip -n "$SW" link add br0 type bridge
  ip -n "$SW" link set br0 up
}

# Refuses to go on if the lab leaked into the root namespace (no address, route or interface
# of the lab may exist there).
assert_root_untouched() {
  if ip -4 addr show | grep -q "inet $NET\." || ip -4 route show | grep -q "^$NET\." ; then
    die "an address or route of $NET.0/24 appeared in the root namespace"
  fi
}
