#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Faults side by side (issue 5, `make bench` stage `faults`): the lab suite's scenarios 3-5 run
# against proctor and against rsyslog RELP forwarding, fed the same numbered events; one JSON
# line per (system, fault) into OUT.
#
#   sudo bash scripts/bench/faults.sh BIN OUT [FAULTS...]
#
# FAULTS (default all): link recv-kill send-kill send-kill-backlog. Environment: FAULTS_RATE
# (events/s, default 50).
#
# Layout (scripts/lab/lib.sh): namespace pbsw$$ holds bridge br0; pbsrv$$ (the receiving side:
# proctor server / imrelp rsyslogd, 10.214.X.1) and pbpc$$ (the sending side: proctor client /
# omrelp rsyslogd and the event generator, 10.214.X.10) have eth0 on it. Nothing is added to the
# root namespace and nothing is routed anywhere; the EXIT trap kills every process in these
# namespaces and deletes them, even on failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lab/lib.sh
. "$ROOT/scripts/lab/lib.sh"

[ $# -ge 2 ] || die "usage: faults.sh BIN OUT [FAULTS...]"
BIN=$1 OUT=$2
shift 2
FAULTS=("$@")
[ ${#FAULTS[@]} -gt 0 ] || FAULTS=(link recv-kill send-kill send-kill-backlog)
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces)"
for c in ip python3 ss /usr/sbin/rsyslogd; do command -v "$c" >/dev/null || die "missing $c"; done
for m in imrelp omrelp; do
  compgen -G "/usr/lib/*/rsyslog/$m.so" >/dev/null || compgen -G "/usr/lib/rsyslog/$m.so" >/dev/null ||
    die "rsyslog's $m module is missing: run scripts/install-bench-deps.sh (package rsyslog-relp)"
done

ID=$$
X=$(( ID % 200 + 20 ))
NET=10.214.$X
SW=pbsw$ID SRV=pbsrv$ID PC=pbpc$ID
SRV_IP=$NET.1 PC_IP=$NET.10
WORK=$(mktemp -d /tmp/proctor-bench-faults.XXXXXX)
trap 'lab_cleanup $?' EXIT
trap 'exit 130' INT TERM HUP

log "faults: namespaces $SW $SRV $PC on $NET.0/24, work dir $WORK"
ns_switch
ns_host "$SRV" "$SRV_IP" swsrv
ns_host "$PC" "$PC_IP" swpc
assert_root_untouched
"$BIN" keygen -o "$WORK/bench.key" >/dev/null

: >"$OUT"
for fault in "${FAULTS[@]}"; do
  for system in rsyslog proctor; do
    log "faults: $system, fault $fault"
    python3 "$HERE/faults.py" run --system "$system" --fault "$fault" --rate "${FAULTS_RATE:-50}" \
      --sw-ns "$SW" --srv-ns "$SRV" --pc-ns "$PC" --pc-port swpc --srv-ip "$SRV_IP" --pc-ip "$PC_IP" \
      --bcast "$NET.255" --work "$WORK" --bin "$BIN" --key "$WORK/bench.key" >>"$OUT" &
    PIDS+=("$!")
    wait "$!" || log "faults: $system $fault: the run failed (rc=$?)"
    # whatever a run left behind in the namespaces (it stops its own processes) goes now
    for ns in "$SRV" "$PC"; do
      for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    done
    tail -n1 "$OUT" >&2
  done
done
assert_root_untouched
