#!/usr/bin/env bash
# proctor demo: a server and a client on this machine, over loopback only, with the public
# demo key. Generates a little traffic and a tmpfs mount, shows the log and its JSON Lines copy,
# cleans up, exits. Each step says what it does ("== ...") before doing it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./target/debug/proctor
SPORT=45100; CPORT=45101
WORK=$(mktemp -d /tmp/proctor-demo.XXXXXX)
LOGS=server_logs
say() { printf '\n== %s\n' "$*"; }
SERVER=""; CLIENT=""
cleanup() {
  [ -n "$CLIENT" ] && kill "$CLIENT" 2>/dev/null || true
  [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
  mountpoint -q "$WORK/usb" 2>/dev/null && umount "$WORK/usb" || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ]; then
  echo "the demo runs the client, which needs root (packet capture, mounts): run 'sudo make demo'" >&2
  exit 1
fi

say "Writing a config file for the server ($WORK/proctor.toml): ports, logs, loopback broadcast, JSON Lines copy"
cat > "$WORK/proctor.toml" <<EOF
# The same keys as the long options of 'proctor server --help'; the command line wins.
[server]
server-port = $SPORT
client-port = $CPORT
logs = "$LOGS"
broadcast = ["127.255.255.255"]
announce-every = 1
jsonl = "$WORK/events.jsonl"
EOF
sed 's/^/  /' "$WORK/proctor.toml"
say "Starting the server (headless) with that config file and the DEMO key (-v: it says which file it read)"
"$BIN" server --config "$WORK/proctor.toml" --headless --demo -v > "$WORK/server.out" 2>&1 &
SERVER=$!
say "Starting a client (as root) listening on UDP $CPORT, capturing on lo"
"$BIN" client --demo -p $CPORT -i lo --hostname demo-pc --spool "$WORK/spool" > "$WORK/client.out" 2>&1 &
CLIENT=$!

say "Waiting (up to 10 s) for the client to hear the announcement and connect back"
for _ in $(seq 1 50); do grep -q "connected" "$WORK/server.out" && break; sleep 0.2; done
grep -q "connected" "$WORK/server.out" || { echo "client did not connect"; cat "$WORK/server.out" "$WORK/client.out"; exit 1; }
say "The client proved the key and joined the session"
sleep 1

say "Generating traffic: a TCP connection and two UDP datagrams on 127.0.0.1, one DNS-port datagram (not reported)"
python3 - <<'PY'
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
c = socket.create_connection(srv.getsockname()); a, _ = srv.accept()
c.sendall(b"hello exam"); a.recv(100); c.close(); a.close(); srv.close()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for port in (45190, 45191, 53):
    u.sendto(b"ping", ("127.0.0.1", port))
PY
say "Mounting a tmpfs 'USB stick' on $WORK/usb, then removing it"
mkdir -p "$WORK/usb"
mount -t tmpfs -o size=1m demo-stick "$WORK/usb"
sleep 0.5
umount "$WORK/usb"
sleep 1

say "Stopping the server (SIGINT): it announces stop, collects the client's last events, closes the files"
kill -INT "$SERVER"; wait "$SERVER" || true; SERVER=""

DIR=$(sed -n 's/^session .* stopped; logs in //p' "$WORK/server.out" | tail -1)
say "Log file(s) in $DIR (readable during the session too, e.g. with tail -f):"
ls -l "$DIR"
say "Live mounts and network flows from the log (the file also has the baseline and status lines):"
grep -hE 'seq=[0-9]+ (net|mount|unmount) |seq=- ' "$DIR"/*.log
say "The same events as JSON Lines (--jsonl, here from the config file), e.g. for a log shipper; the mounts:"
grep -E '"kind":"(mount|unmount)"' "$WORK/events.jsonl" || true
say "...and the server's own lines, marked \"source\":\"server\":"
awk '/"source":"server"/ && n++ < 3' "$WORK/events.jsonl"
say "Demo finished. Server output was:"
# awk, not head: head would stop reading early and, with pipefail, fail the demo on a busy machine.
grep -v 'baseline mount' "$WORK/server.out" | awk 'NR <= 40 { print "  " $0 }'
say "Cleaning up: stopping the client, removing $WORK (the logs stay in $DIR)"
