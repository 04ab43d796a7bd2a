#!/usr/bin/env bash
# proctor benchmarks (`make bench`): builds the release binary, runs scripts/bench/bench.py's
# stages side by side with rsyslog, tcpdump and 500 ms mount polling, and writes BENCHMARKS.md.
#
# Safety: the bench.py stages (ingest live capture flows) each run in their own private network
# namespace (only `lo`, brought up here) and private mount namespace, created with unshare(1) and
# gone when the stage ends, so no packet leaves the namespace and no mount is visible outside;
# proctor servers there announce only to 127.255.255.255. The faults stage (faults.sh) builds
# named namespaces with scripts/lab/lib.sh (bridge, server, PC; private /24, nothing in the root
# namespace) and its EXIT trap kills everything in them and deletes them. Every load is bounded
# in count and time, every stage has a timeout, and the EXIT trap here kills whatever bench.py
# started (recorded in WORK/pids as "pid starttime name", so a reused pid is never hit) and
# removes the temporary directories.
#
# Usage: run.sh [--only STAGE[,STAGE...]]   (or BENCH_ONLY=faults,flows; default: every stage)
# Stages: ingest live capture flows faults. BENCHMARKS.md keeps the sections of the stages not
# rerun (from its own raw-results block), each section saying when and on which commit it was
# measured.
#
# Environment: BENCH_ONLY (stages, comma or space separated), BENCH_EVENTS (1500000),
# BENCH_REPS (3), BENCH_IDLE_SECS (60), BENCH_MOUNTS (50), BENCH_FLOW_RATES
# (1000,2000,5000,10000,20000,50000,100000), BENCH_FAULTS (link recv-kill send-kill
# send-kill-backlog), BENCH_OUT (BENCHMARKS.md), BENCH_BIN (a proctor binary to use instead of
# building `cargo build --release`; the report names it), CARGO (cargo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/bench"
cd "$ROOT"

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: run as root (network and mount namespaces, packet capture, mounts)" >&2
  exit 3
fi
for c in /usr/sbin/rsyslogd tcpdump gcc python3 unshare ss ip timeout; do
  command -v "$c" >/dev/null || { echo "bench: $c is missing; run scripts/install-bench-deps.sh" >&2; exit 2; }
done

ALL_STAGES="ingest live capture flows faults"
ONLY=${BENCH_ONLY:-${BENCH_STAGES:-}}
while [ $# -gt 0 ]; do
  case $1 in
    --only) [ $# -ge 2 ] || { echo "bench: --only needs a list of stages" >&2; exit 2; }; ONLY=$2; shift 2 ;;
    --only=*) ONLY=${1#--only=}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d'; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
STAGES=${ONLY:-$ALL_STAGES}
STAGES=${STAGES//,/ }
for s in $STAGES; do
  case " $ALL_STAGES " in *" $s "*) ;; *) echo "bench: unknown stage $s (stages: $ALL_STAGES)" >&2; exit 2 ;; esac
done
EVENTS=${BENCH_EVENTS:-1500000}
REPS=${BENCH_REPS:-3}
IDLE=${BENCH_IDLE_SECS:-60}
MOUNTS=${BENCH_MOUNTS:-50}
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
CARGO=${CARGO:-cargo}

if [ -n "${BENCH_BIN:-}" ]; then
  BIN=$(cd "$(dirname "$BENCH_BIN")" && pwd)/$(basename "$BENCH_BIN")
  [ -x "$BIN" ] || { echo "bench: BENCH_BIN=$BENCH_BIN is not an executable" >&2; exit 2; }
else
  echo "bench: building the release binary"
  "$CARGO" build --release --quiet
  BIN="$ROOT/target/release/proctor"
fi

WORK=$(mktemp -d /tmp/proctor-bench.XXXXXX)
cleanup() {
  local rc=$?
  if [ -f "$WORK/pids" ]; then
    local pid st name
    while read -r pid st name; do
      if [ -r "/proc/$pid/stat" ] && [ "$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null)" = "$st" ]; then
        echo "bench: stopping leftover $name ($pid)" >&2
        kill -TERM "$pid" 2>/dev/null || true
        sleep 0.5
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done < "$WORK/pids"
  fi
  if [ -f "$WORK/shm-dirs" ]; then
    while read -r d; do case "$d" in /dev/shm/proctor-bench-*) rm -rf "$d" ;; esac; done < "$WORK/shm-dirs"
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# C = 1000 connections: the loadgen, the server and rsyslogd each need > 1000 descriptors.
HARD=$(ulimit -Hn)
if [ "$HARD" = unlimited ] || [ "$HARD" -ge 20000 ]; then ulimit -n 20000; else ulimit -n "$HARD"; fi
if [ "$(ulimit -n)" -lt 4096 ]; then
  echo "bench: open-files limit $(ulimit -n) is below 4096; C=1000 runs will fail" >&2
fi

stage() {   # stage NAME TIMEOUT_S ARGS...
  local name=$1 t=$2; shift 2
  echo "bench: stage $name (at most $t s)"
  timeout --kill-after=20 "$t" unshare --net --mount --propagation private -- \
    bash -c 'ip link set lo up && exec python3 "$@"' bench \
    "$HERE/bench.py" "$name" --bin "$BIN" --work "$WORK" "$@" \
    || echo "bench: stage $name failed or timed out (rc=$?); the report says what is missing" >&2
}

# meta STAGE START_EPOCH: when, on what and with which binary a stage was measured (report.py
# puts it under the stage's section and keeps it when a later run does not rerun the stage).
meta() {
  local dirty=""
  [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ] && dirty=" + uncommitted changes"
  printf '{"started_utc": "%s", "ended_utc": "%s", "commit": "%s%s", "binary": "%s", "version": "%s"}\n' \
    "$(date -u -d "@$2" '+%Y-%m-%d %H:%M')" "$(date -u '+%Y-%m-%d %H:%M')" \
    "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" "$dirty" "${BIN#"$ROOT"/}" \
    "$("$BIN" --version 2>/dev/null)" >"$WORK/results/$1.meta.json"
}

T0=$(date +%s)
mkdir -p "$WORK/results"
printf '{"started_utc": "%s"}\n' "$(date -u '+%Y-%m-%d %H:%M')" > "$WORK/results/run.json"
for s in $STAGES; do
  ts=$(date +%s)
  case "$s" in
    ingest)  stage ingest 600 --events "$EVENTS" --reps "$REPS" --conns 1,100,1000 --perf-conns 100 ;;
    live)    stage live 420 --idle-secs "$IDLE" --mounts "$MOUNTS" --rate 100 --lat-secs 5 ;;
    capture) stage capture 360 --cap-secs 8 --cap-rate 100000 ;;
    flows)   stage flows 360 --flow-rates "${BENCH_FLOW_RATES:-1000,2000,5000,10000,20000,50000,100000}" --flow-secs 3 ;;
    faults)
      # named namespaces of its own (switch, server, PC; scripts/lab/lib.sh), not the private one
      echo "bench: stage faults (at most 600 s)"
      # shellcheck disable=SC2086
      timeout --kill-after=20 600 bash "$HERE/faults.sh" "$BIN" "$WORK/results/faults.jsonl" ${BENCH_FAULTS:-} \
        || echo "bench: stage faults failed or timed out (rc=$?); the report says what is missing" >&2
      python3 -c 'import json, sys; runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
json.dump(dict(runs=runs), open(sys.argv[2], "w"), indent=1)' "$WORK/results/faults.jsonl" "$WORK/results/faults.json" || true
      ;;
  esac
  [ -f "$WORK/results/$s.json" ] && meta "$s" "$ts"
done
python3 "$HERE/report.py" "$WORK/results" "$OUT" "$BIN"
echo "bench: done in $(( $(date +%s) - T0 )) s"
