#!/usr/bin/env bash
# Records the session in tests/data/session-2026-report/ used by tests/report.rs: a real headless
# server with a real policy (verdicts written by the server) and three real clients on loopback
# (one with a hostile host name), real traffic, a tmpfs "USB stick" with a hostile label, a
# client killed and restarted, a client killed for good, a client frozen long enough to be
# declared lost, then a clean stop. Afterwards one missing-events warning is put into pc-02's
# file by post-process.py, as README.md says (the server writes those only when a client's
# events are lost, which a loopback run cannot provoke).
#
# Needs root (capture, mount) and a built target/debug/proctor. Loopback only: the server
# announces to 127.255.255.255, the clients capture on lo. Re-running replaces the data and its
# time stamps, so tests/report.rs's expected values (times, counts) must be checked again.
set -euo pipefail
# Private mount and network namespaces (with their own loopback): mounts and loopback traffic
# of anything else running on the machine (other tests) do not show up as events, and nothing
# leaves the namespace. The tmpfs stick below is mounted inside it, where the clients watch.
if [ -z "${RECORD_IN_PRIVATE_NS:-}" ]; then
  exec env RECORD_IN_PRIVATE_NS=1 unshare -m -n --propagation private bash "$0" "$@"
fi
ip link set lo up
cd "$(dirname "$0")/../.."
BIN=$PWD/target/debug/proctor
SPORT=46710; CPORT=46711
OUT=tests/data/session-2026-report
WORK=$(mktemp -d /tmp/proctor-record.XXXXXX)
HOSTILE='<script>alert(1)</script>'
LABEL='<img/src=x/onerror=alert(2)>'
declare -A PID=()
SERVER=""
cleanup() {
  for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  [ -n "$SERVER" ] && kill -9 "$SERVER" 2>/dev/null || true
  mountpoint -q "$WORK/usb" 2>/dev/null && umount "$WORK/usb" || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ "$(id -u)" -eq 0 ] || { echo "record-session: needs root" >&2; exit 1; }

"$BIN" keygen -o "$WORK/key" >/dev/null
# The exam platform (TLS name exam.school.example, port 46720), a local service on 46722 and
# UDP 45190 are allowed; chat (port 46721, sni=chat.example.com), UDP 45191 and any
# non-block-device mount (the tmpfs stick) are not.
cat > "$WORK/policy.toml" <<'TOML'
[[destination]]
note = "the exam platform"
to = ["exam.school.example"]

[[destination]]
note = "the exam platform's address and the lab's local services"
to = ["127.0.0.1"]
ports = [46720, 46722, 45190]

[mounts]
allow_classes = ["block"]
TOML
"$BIN" server --headless -s $SPORT -c $CPORT -k "$WORK/key" --logs "$WORK/logs" \
  --policy "$WORK/policy.toml" --broadcast 127.255.255.255 --announce-every 0.5 \
  > "$WORK/server.out" 2>&1 &
SERVER=$!
start_client() { # NAME TAG
  "$BIN" client -p $CPORT -k "$WORK/key" -i lo --hostname "$1" --spool "$WORK/spool-$2" \
    >> "$WORK/client-$2.out" 2>&1 &
  PID[$2]=$!
}
wait_server() { # TEXT COUNT
  for _ in $(seq 1 100); do
    [ "$(grep -c -- "$1" "$WORK/server.out" || true)" -ge "$2" ] && return 0
    sleep 0.2
  done
  echo "record-session: timed out waiting for '$1' x$2"; cat "$WORK/server.out"; exit 1
}
traffic() { # kinds: plain PORT, tls NAME PORT, udp PORT
  python3 - "$@" <<'PY'
import socket, ssl, sys, threading
args = sys.argv[1:]
while args:
    what = args.pop(0)
    if what == "plain":
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(args.pop(0)))); srv.listen(1)
        c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
        c.sendall(b"hello exam"); a.recv(100); c.close(); a.close(); srv.close()
    elif what == "tls":
        name = args.pop(0)
        srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", int(args.pop(0)))); srv.listen(1)
        def serve():
            a, _ = srv.accept(); a.recv(4096); a.close()
        t = threading.Thread(target=serve); t.start()
        ctx = ssl.create_default_context()
        c = socket.create_connection(srv.getsockname())
        try:
            ctx.wrap_socket(c, server_hostname=name)
        except (ssl.SSLError, OSError):
            pass
        t.join(); srv.close()
    elif what == "udp":
        port = int(args.pop(0))
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"ping", ("127.0.0.1", port)); u.close()
PY
}

start_client pc-01 a; start_client pc-02 b; start_client "$HOSTILE" c
wait_server ") connected" 3
sleep 1.5
traffic plain 46722 tls exam.school.example 46720 udp 45190
mkdir -p "$WORK/usb"
mount -t tmpfs -o size=1m "$LABEL" "$WORK/usb"; sleep 0.6; umount "$WORK/usb"
sleep 1

kill -9 "${PID[a]}"                                  # pc-01 dies ...
wait_server "pc-01 (127.0.0.1) LOST" 1
traffic tls chat.example.com 46721 udp 45191              # ... and misses this
sleep 1
start_client pc-01 a                                 # ... and comes back (same spool: same instance)
wait_server "pc-01 (127.0.0.1) reconnected after" 1
sleep 1.5

kill -9 "${PID[c]}"; unset 'PID[c]'                  # the hostile one leaves for good
sleep 0.5
kill -STOP "${PID[b]}"                               # pc-02 freezes: declared lost
wait_server "LOST: no data for" 1
traffic tls chat.example.com 46721                   # its capture worker still sees this
sleep 1
kill -CONT "${PID[b]}"
wait_server "pc-02 (127.0.0.1) reconnected after" 1
sleep 1.5
kill -INT "$SERVER"; wait "$SERVER" || true; SERVER=""
for p in "${PID[@]}"; do kill -TERM "$p" 2>/dev/null || true; done

SESSION=$(ls -d "$WORK"/logs/*/ | head -1)
rm -rf "$OUT"; mkdir -p "$OUT"
cp "$SESSION"/*.log "$OUT"/
python3 tests/data/post-process.py "$OUT"
ls -l "$OUT"
