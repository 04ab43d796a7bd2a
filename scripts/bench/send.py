#!/usr/bin/env python3
"""Bounded TCP syslog sender (RFC3164, LF framing) for rsyslog imtcp perf anchors.
Copied unchanged (apart from this note) from shared/notes/baselines/perf/send.py, so the rsyslog
side of `make bench` is fed exactly as the baseline was.
Opens C connections (host pc000..pcC-1), sends M fixed-length messages total, split over P processes.
Optionally waits until all bytes are on disk in OUTDIR and reports rates + rsyslogd CPU/RSS.
Only connects to 127.0.0.1."""
import argparse, os, socket, selectors, time, multiprocessing as mp, resource, json, glob

PAYLOAD = "2026-11-26T12:00:00.123Z net tcp 10.0.0.5:51234 -> 142.250.1.1:443 SYN"

def line(host, seq):
    # fixed length: msg part is PAYLOAD + ' seq=%09d' ; output template writes msg w/o leading space
    return ("<13>Nov 26 12:00:00 %s proctor: %s seq=%09d\n" % (host, PAYLOAD, seq)).encode()

def msg_out_len():
    return len(("%s seq=%09d\n" % (PAYLOAD, 0)).encode())

def worker(port, conn_ids, per_conn, q, go):
    t0 = time.perf_counter()
    socks = {}
    sel = selectors.DefaultSelector()
    for cid in conn_ids:
        s = socket.create_connection(("127.0.0.1", port))
        s.setblocking(False)
        host = "pc%04d" % cid
        buf = b"".join(line(host, i) for i in range(per_conn[cid]))
        socks[s] = [memoryview(buf), 0]
        sel.register(s, selectors.EVENT_WRITE)
    q.put(("ready", os.getpid()))
    go.wait(60)
    t0 = time.perf_counter()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    deadline = time.monotonic() + 600  # hard bound
    while socks and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s = key.fileobj
            st = socks[s]
            try:
                n = s.send(st[0][st[1]:st[1] + 262144])
            except BlockingIOError:
                continue
            st[1] += n
            if st[1] >= len(st[0]):
                sel.unregister(s); s.close(); del socks[s]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    q.put(("done", ru.ru_utime + ru.ru_stime - ru0.ru_utime - ru0.ru_stime, time.perf_counter() - t0, len(socks)))

def proc_cpu(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def proc_rss(pid):
    d = {}
    for l in open("/proc/%d/status" % pid):
        if l.startswith(("VmRSS", "VmHWM")):
            k, v = l.split(":"); d[k] = int(v.split()[0])
    return d

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=10514)
    ap.add_argument("-C", "--conns", type=int, default=1)
    ap.add_argument("-M", "--total", type=int, default=500000)
    ap.add_argument("-P", "--procs", type=int, default=1)
    ap.add_argument("--outdir")
    ap.add_argument("--pid", type=int, help="rsyslogd pid")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    C, M, P = a.conns, a.total, min(a.procs, a.conns)
    per_conn = [M // C + (1 if i < M % C else 0) for i in range(C)]
    groups = [list(range(i, C, P)) for i in range(P)]
    q = mp.Queue(); go = mp.Event()
    procs = [mp.Process(target=worker, args=(a.port, g, per_conn, q, go)) for g in groups]
    for p in procs: p.start()
    for _ in procs: q.get()          # all connections open, buffers built
    cpu0 = proc_cpu(a.pid) if a.pid else 0
    t0 = time.perf_counter(); go.set()
    # workers start sending as soon as they are ready; the build phase is excluded as far as possible
    res = [q.get() for _ in procs]
    t_sent = time.perf_counter() - t0
    for p in procs: p.join()
    expect = M * msg_out_len()
    ondisk = 0
    t_disk = None
    if a.outdir:
        end = time.monotonic() + a.timeout
        auto = True
        while time.monotonic() < end:
            if auto:  # output lines are fixed length; learn it from the first line written
                fs = [f for f in glob.glob(os.path.join(a.outdir, "*.log")) if os.path.getsize(f) > 0]
                if fs:
                    with open(fs[0], "rb") as fh:
                        l1 = fh.readline()
                    if l1.endswith(b"\n"):
                        expect = M * len(l1); auto = False
            ondisk = sum(os.path.getsize(f) for f in glob.glob(os.path.join(a.outdir, "*.log")))
            if ondisk >= expect:
                t_disk = time.perf_counter() - t0; break
            time.sleep(0.01)
    cpu1 = proc_cpu(a.pid) if a.pid else 0
    out = dict(C=C, M=M, P=P, send_wall_s=round(t_sent, 3),
               sender_cpu_s=round(sum(r[1] for r in res), 2),
               unsent_conns=sum(r[3] for r in res),
               disk_wall_s=round(t_disk, 3) if t_disk else None,
               events_per_s=round(M / t_disk) if t_disk else None,
               ondisk_bytes=ondisk, expect_bytes=expect,
               rsyslog_cpu_s=round(cpu1 - cpu0, 2) if a.pid else None,
               rsyslog_mem_kb=proc_rss(a.pid) if a.pid else None,
               files=len(glob.glob(os.path.join(a.outdir, "*.log"))) if a.outdir else None)
    print(json.dumps(out))

if __name__ == "__main__":
    main()
