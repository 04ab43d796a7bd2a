#!/usr/bin/env python3
"""Post-processing of the recorded session (see README.md): what a server running with a policy
would have added. Deterministic, so re-running record-session.sh gives the same shape.

1. Policy verdicts, as the server appends them (last field of every net/mount/unmount/device
   line; status and server lines get none):
   - mount of anything                  -> flagged why="removable storage is not allowed"
   - TLS flow whose sni=chat.example.com -> flagged why="chat.example.com is not an allowed name"
   - new UDP flow to port 45191         -> flagged why="destination 127.0.0.1:45191 is not allowed"
   - everything else                    -> ok
2. One missing-events warning on pc-02: its two consecutive events for the TLS flow to
   exam.school.example and the UDP flow to port 45190 (both allowed) are removed, and the warning
   the server writes when the next event arrives after a hole in the numbering is put before
   that event, with its time.
"""
import os, re, sys

d = sys.argv[1]
EV = re.compile(r"^(\S+) seq=(\d+) (net|mount|unmount|device) (.*)$")


def verdict(kind, detail):
    if kind == "mount":
        return 'flagged why="removable storage is not allowed"'
    if detail.startswith("tls ") and "sni=chat.example.com" in detail:
        return 'flagged why="chat.example.com is not an allowed name"'
    if re.match(r"new udp \S+ -> 127\.0\.0\.1:45191$", detail):
        return 'flagged why="destination 127.0.0.1:45191 is not allowed"'
    return "ok"


for name in sorted(os.listdir(d)):
    if not name.endswith(".log"):
        continue
    path = os.path.join(d, name)
    lines = open(path, encoding="utf-8").read().split("\n")
    out = []
    for line in lines:
        m = EV.match(line)
        if m:
            line = f"{line} verdict={verdict(m.group(3), m.group(4))}"
        out.append(line)
    if name.startswith("pc-02_"):
        gone = [i for i, l in enumerate(out)
                if re.search(r" seq=\d+ net (tls .*sni=exam\.school\.example|new udp .*:45190) ", l)]
        seqs = [int(re.search(r" seq=(\d+) ", out[i]).group(1)) for i in gone]
        assert len(gone) == 2 and seqs[1] == seqs[0] + 1, seqs
        nxt = gone[1] + 1
        ts = out[nxt].split(" ", 1)[0]
        out.insert(nxt, f"{ts} seq=- warning events {seqs[0]} to {seqs[1]} never arrived from this client")
        del out[gone[1]]
        del out[gone[0]]
    open(path, "w", encoding="utf-8").write("\n".join(out))
