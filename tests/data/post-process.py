#!/usr/bin/env python3
"""Post-processing of the recorded session (see README.md), deterministic so re-running
record-session.sh gives the same shape.

The verdicts are the server's own (it ran with a policy). The one thing a loopback run cannot
provoke is a client's events getting lost, so one missing-events warning is added to pc-02: its
two consecutive events for the TLS flow to exam.school.example and the UDP flow to port 45190
(both allowed) are removed, and the warning the server writes when the next event arrives after
a hole in the numbering is put before that event, with its time.
"""
import os, re, sys

d = sys.argv[1]
for name in sorted(os.listdir(d)):
    if not name.startswith("pc-02_") or not name.endswith(".log"):
        continue
    path = os.path.join(d, name)
    out = open(path, encoding="utf-8").read().split("\n")
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
