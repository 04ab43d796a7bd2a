#!/usr/bin/env python3
"""Helpers for scripts/lab/lab.sh (standard library only).

  stamp-run OUT PIDFILE -- CMD...   run CMD, write its pid to PIDFILE and every line it prints to
                                    OUT prefixed with the wall-clock time (epoch seconds, 3 decimals)
  send [--udp BIND_IP:SPORT DST_IP:DPORT]... [--tcp BIND_IP:SPORT DST_IP:DPORT]...
                                    one UDP datagram per --udp (each from the same bound source
                                    port), one short TCP connection per --tcp (fixed source port)
  tcp-serve PORT LIFETIME           accept and drain TCP connections on 0.0.0.0:PORT for at most
                                    LIFETIME seconds
  replay PCAP... --dst IP --port P --times N [--also IP]...
                                    send the UDP payloads captured in PCAP files again
  flood --dst IP --port P --count N --seconds S
                                    N random datagrams (bounded), spread over about S seconds
  pcap-count PCAP                   number of packets in a pcap file
  check --logs DIR --expected FILE --scenario S [--report FILE]
                                    compare generated events (lines "host|key") with the log files
  stray --logs DIR                  count event lines no scenario generated (listed on stderr)
"""

import os
import random
import re
import select
import socket
import struct
import subprocess
import sys
import time


def stamp_run(args):
    out_path, pid_path = args[0], args[1]
    cmd = args[3:] if args[2] == "--" else args[2:]
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    with open(pid_path + ".tmp", "w") as f:
        f.write(f"{proc.pid}\n")
    os.rename(pid_path + ".tmp", pid_path)
    with open(out_path, "a", buffering=1) as out:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            out.write(f"{time.time():.3f} {line}\n")
    rc = proc.wait()
    with open(out_path, "a") as out:
        out.write(f"{time.time():.3f} [exit status {rc}]\n")
    return 0


def hostport(s):
    h, p = s.rsplit(":", 1)
    return h, int(p)


def send(args):
    udp, tcp = [], []
    i = 0
    while i < len(args):
        kind = args[i]
        pair = (hostport(args[i + 1]), hostport(args[i + 2]))
        (udp if kind == "--udp" else tcp).append(pair)
        i += 3
    socks = {}
    for src, dst in udp:
        s = socks.get(src)
        if s is None:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(src)
            socks[src] = s
        s.sendto(b"proctor-lab", dst)
        time.sleep(0.002)
    for s in socks.values():
        s.close()
    failures = 0
    for src, dst in tcp:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.settimeout(3)
        try:
            s.bind(src)
            s.connect(dst)
            s.sendall(b"proctor-lab tcp\n")
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
        except OSError as e:
            failures += 1
            print(f"tcp {src} -> {dst}: {e}", file=sys.stderr)
        finally:
            s.close()
    return 1 if failures else 0


def tcp_serve(args):
    port, lifetime = int(args[0]), float(args[1])
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(128)
    deadline = time.time() + lifetime
    conns = []
    while time.time() < deadline:
        r, _, _ = select.select([ls] + conns, [], [], 0.5)
        for s in r:
            if s is ls:
                c, _ = ls.accept()
                conns.append(c)
            else:
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    s.close()
                    conns.remove(s)
    return 0


def pcap_udp_payloads(path):
    """UDP payloads of the IPv4 packets in a classic pcap file (Ethernet or Linux cooked)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        end = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        end = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap file")
    linktype = struct.unpack(end + "I", data[20:24])[0]
    off, out = 24, []
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if linktype == 1:  # Ethernet
            etype, ip = struct.unpack("!H", pkt[12:14])[0], 14
            if etype == 0x8100:
                etype, ip = struct.unpack("!H", pkt[16:18])[0], 18
        elif linktype == 113:  # Linux cooked
            etype, ip = struct.unpack("!H", pkt[14:16])[0], 16
        else:
            continue
        if etype != 0x0800 or len(pkt) < ip + 20 or pkt[ip + 9] != 17:
            continue
        ihl = (pkt[ip] & 0x0F) * 4
        udp = ip + ihl
        length = struct.unpack("!H", pkt[udp + 4:udp + 6])[0]
        out.append(pkt[udp + 8:udp + length])
    return out


def opt(args, name, default=None, many=False):
    vals = [args[i + 1] for i, a in enumerate(args) if a == name and i + 1 < len(args)]
    if many:
        return vals
    return vals[-1] if vals else default


def replay(args):
    files = []
    for i, a in enumerate(args):
        if a.startswith("--"):
            break
        files.append(a)
    dst, port = opt(args, "--dst"), int(opt(args, "--port"))
    times = int(opt(args, "--times", "10"))
    targets = [dst] + opt(args, "--also", many=True)
    payloads = []
    for f in files:
        payloads.extend(pcap_udp_payloads(f))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    sent = 0
    for _ in range(min(times, 1000)):
        for p in payloads:
            for t in targets:
                s.sendto(p, (t, port))
                sent += 1
        time.sleep(0.01)
    print(f"replayed {len(payloads)} captured datagrams x{times} to {len(targets)} targets: {sent} sent")
    return 0 if payloads else 1


def flood(args):
    dst, port = opt(args, "--dst"), int(opt(args, "--port"))
    count = min(int(opt(args, "--count", "5000")), 100000)
    seconds = float(opt(args, "--seconds", "3"))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    rnd = random.Random()
    pause = seconds / count
    t0 = time.time()
    for i in range(count):
        k = i % 3
        if k == 0:
            d = os.urandom(rnd.randint(1, 1400))
        elif k == 1:  # well-formed header, random nonce/ciphertext/tag: must fail to open
            d = b"PRCT\x01" + os.urandom(67)
        else:
            d = os.urandom(72)
        s.sendto(d, (dst, port))
        if i % 50 == 49:
            time.sleep(pause * 50)
        if time.time() - t0 > seconds * 3:
            break
    print(f"flooded {i + 1} random datagrams in {time.time() - t0:.1f} s")
    return 0


def pcap_count(args):
    with open(args[0], "rb") as f:
        data = f.read()
    if len(data) < 24:
        print(0)
        return 0
    end = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    off, n = 24, 0
    while off + 16 <= len(data):
        incl = struct.unpack(end + "I", data[off + 8:off + 12])[0]
        off += 16 + incl
        n += 1
    print(n)
    return 0


SEQ = re.compile(r" seq=(\d+) ")
INSTANCE = re.compile(r" seq=- server (?:connected|reconnected) .*instance=([0-9a-f]+)")
NET = re.compile(r" seq=\d+ net new (udp|tcp) (\S+) -> (\S+)")
MNT = re.compile(r" seq=\d+ (mount|unmount) (\S+) on (\S+) ")


def keys_of_line(line):
    m = NET.search(line)
    if m:
        return f"{m.group(1)} {m.group(2)} -> {m.group(3)}"
    m = MNT.search(line)
    if m:
        return f"{m.group(1)} {m.group(2)} on {m.group(3)}"
    return None


def in_scope(key, scenario):
    """Keys that belong to a scenario: flows from source port 41000+100*S..+99, mounts
    whose source starts with lS p (see lab.sh)."""
    if key.startswith(("udp ", "tcp ")):
        src = key.split()[1]
        port = int(src.rsplit(":", 1)[1])
        return 41000 + 100 * scenario <= port < 41100 + 100 * scenario
    src = key.split()[1]
    return src.startswith(f"l{scenario}p")


def stray(args):
    """Event lines (net new, mount, unmount) that belong to no scenario 1..9."""
    logs = opt(args, "--logs")
    out = []
    for root, _, files in os.walk(logs):
        for name in sorted(files):
            if not name.endswith(".log"):
                continue
            with open(os.path.join(root, name), errors="replace") as f:
                for line in f:
                    k = keys_of_line(line)
                    if k is not None and not any(in_scope(k, s) for s in range(1, 10)):
                        out.append(f"{name}: {line.rstrip()}")
    print(len(out))
    for line in out[:50]:
        print(line, file=sys.stderr)
    return 0


def check(args):
    logs = opt(args, "--logs")
    expected_path = opt(args, "--expected")
    scenario = int(opt(args, "--scenario"))
    report = opt(args, "--report")
    expected = []
    if os.path.exists(expected_path):
        with open(expected_path) as f:
            expected = [ln.rstrip("\n") for ln in f if ln.strip()]
    exp_set = set(expected)
    counts = {}
    disorder = []
    for root, _, files in os.walk(logs):
        for name in files:
            if not name.endswith(".log"):
                continue
            host = name.rsplit("_", 1)[0]
            instance, last = None, 0
            with open(os.path.join(root, name), errors="replace") as f:
                for line in f:
                    m = INSTANCE.search(line)
                    if m:
                        if m.group(1) != instance:  # a new client process numbers from 1 again
                            instance, last = m.group(1), 0
                        continue
                    k = keys_of_line(line)
                    if k is None or not in_scope(k, scenario):
                        continue
                    hk = f"{host}|{k}"
                    counts[hk] = counts.get(hk, 0) + 1
                    seq = int(SEQ.search(line).group(1))
                    if seq <= last:
                        disorder.append(f"{name}: seq={seq} after seq={last}")
                    last = seq
    missing = [e for e in sorted(exp_set) if e not in counts]
    dup = {k: n for k, n in counts.items() if n > 1}
    unexpected = sorted(k for k in counts if k not in exp_set)
    stored = len(exp_set) - len(missing)
    print(f"generated={len(exp_set)} stored={stored} missing={len(missing)} "
          f"duplicated={sum(n - 1 for n in dup.values())} unexpected={len(unexpected)} "
          f"disorder={len(disorder)} listed_twice={len(expected) - len(exp_set)}")
    if report:
        with open(report, "w") as f:
            f.write(f"scenario {scenario}\n")
            for e in missing:
                f.write(f"MISSING {e}\n")
            for k, n in sorted(dup.items()):
                f.write(f"DUPLICATED x{n} {k}\n")
            for k in unexpected:
                f.write(f"UNEXPECTED {k}\n")
            for d in disorder:
                f.write(f"OUT OF ORDER {d}\n")
    return 0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cmd, args = sys.argv[1], sys.argv[2:]
    fn = {
        "stamp-run": stamp_run,
        "send": send,
        "tcp-serve": tcp_serve,
        "replay": replay,
        "flood": flood,
        "pcap-count": pcap_count,
        "check": check,
        "stray": stray,
    }.get(cmd)
    if fn is None:
        print(__doc__)
        return 2
    return fn(args)


if __name__ == "__main__":
    sys.exit(main())
