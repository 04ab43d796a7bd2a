#!/usr/bin/env python3
"""Faults side by side (issue 5): the lab suite's scenarios 3-5 against proctor and against
rsyslog's most reliable forwarding (omrelp -> imrelp, disk-assisted action queue, retry forever),
fed the same numbered events. Run by scripts/bench/faults.sh, which builds the namespaces
(switch, server, PC) with scripts/lab/lib.sh and removes them on exit.

  run --system proctor|rsyslog --fault link|recv-kill|send-kill|send-kill-backlog ...
        one measurement: fresh receiver (server namespace) and sender (PC namespace), numbered
        events at a fixed rate, the fault, a bounded drain; prints one JSON line
  gen --system S --rate R --port P
        the event generator, run inside the PC namespace and driven over stdin:
        `run SECONDS` emits the next round(SECONDS*R) numbered events at R per second and answers
        `ok FIRST NEXT REFUSED` (REFUSED: lines the sending rsyslogd's socket did not take, which
        get no number); `reconnect` reopens the TCP connection to the sending rsyslog;
        `quit`. Event n is, for proctor, one UDP datagram from 127.0.0.1:P to a destination
        address of its own, 127.1.(n//250+1).(n%250+1):P (a new flow the client reports as
        `net new udp`); for rsyslog, the syslog line `... bench: ev=NNNNNN` on one TCP
        connection to the sending rsyslogd's imtcp on 127.0.0.1:P.

All traffic stays in the namespaces: the generator talks to 127.0.0.0/8 of the PC namespace
only, the senders to the server namespace's address on the private bridge. Every wait has a
deadline; every process is started through `ip netns exec` into a namespace that faults.sh
kills everything in on exit. Python standard library only.
"""
import argparse
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PER_OCTET = 250          # event n -> 127.1.(n // 250 + 1).(n % 250 + 1)
MAX_EVENTS = PER_OCTET * 250
PROCTOR_NET = re.compile(rb" net new udp 127\.0\.0\.1:\d+ -> 127\.1\.(\d+)\.(\d+):\d+")
RSYSLOG_EV = re.compile(rb"ev=(\d+)")
SPORT, CPORT = 46000, 46001        # proctor server stream / announcements (inside the namespaces)
RELP_PORT, IMTCP_PORT = 46514, 46515
GEN_PORT = 46600                   # proctor events: UDP source and destination port


def log(*a):
    print("[faults]", *a, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------
# the generator (inside the PC namespace)

def event_addr(n):
    return f"127.1.{n // PER_OCTET + 1}.{n % PER_OCTET + 1}"


def gen_main(a):
    """Emits numbered events when told to; answers on stdout. Bounded: at most MAX_EVENTS."""
    n = 0
    conn = None
    udp = sink = None
    if a.system == "proctor":
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", a.port))
        # a socket that never reads, so the datagrams end there (no ICMP port unreachable)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sink.bind(("0.0.0.0", a.port + 1))

    def connect():
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                s = socket.create_connection(("127.0.0.1", a.port), timeout=2)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return s
            except OSError:
                time.sleep(0.05)
        return None

    if a.system == "rsyslog":
        conn = connect()
    print("ready", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        if cmd[0] == "reconnect":
            if conn:
                conn.close()
            conn = connect()
            print("ok" if conn else "error connect", flush=True)
            continue
        if cmd[0] != "run":
            print("error unknown command", flush=True)
            continue
        count = int(round(float(cmd[1]) * a.rate))
        first, t0, failed = n, time.monotonic(), 0
        for k in range(count):
            if n >= MAX_EVENTS:
                break
            if a.system == "proctor":
                udp.sendto(b"proctor-bench fault event %06d" % n, (event_addr(n), a.port + 1))
            else:
                msg = b"<13>Nov 26 12:00:00 pcbench bench: ev=%06d\n" % n
                try:
                    conn.sendall(msg)
                except (OSError, AttributeError):
                    failed += 1   # not accepted by the sender: not generated, not numbered
                    conn = connect() if failed < 3 else conn
                    continue
            n += 1
            delay = t0 + (k + 1) / a.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        print(f"ok {first} {n} {failed}", flush=True)
    return 0


# ------------------------------------------------------------------------------------------
# the watcher: when each numbered event became readable in the receiver's file

class Watcher(threading.Thread):
    """Polls the receiver's output files every 10 ms; records (number, epoch seconds) for every
    event line in file order."""

    def __init__(self, pattern_glob, decode):
        super().__init__(daemon=True)
        self.glob, self.decode = pattern_glob, decode
        self.seen = []
        self.offsets, self.partial = {}, {}
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()

    def poll_once(self):
        now = time.time()
        for fn in sorted(glob.glob(self.glob)):
            try:
                with open(fn, "rb") as f:
                    f.seek(self.offsets.get(fn, 0))
                    data = f.read()
            except OSError:
                continue
            if not data:
                continue
            self.offsets[fn] = self.offsets.get(fn, 0) + len(data)
            buf = self.partial.get(fn, b"") + data
            *lines, self.partial[fn] = buf.split(b"\n")
            got = [(n, now) for n in (self.decode(l) for l in lines) if n is not None]
            if got:
                with self.lock:
                    self.seen.extend(got)

    def run(self):
        while not self.stop_flag.is_set():
            self.poll_once()
            time.sleep(0.01)
        self.poll_once()

    def snapshot(self):
        with self.lock:
            return list(self.seen)


def decode_proctor(line):
    m = PROCTOR_NET.search(line)
    if not m:
        return None
    a, b = int(m.group(1)), int(m.group(2))
    return (a - 1) * PER_OCTET + (b - 1)


def decode_rsyslog(line):
    m = RSYSLOG_EV.search(line)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------
# the two systems: receiver in the server namespace, sender in the PC namespace

def wait_for(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def listening(ns, port):
    r = subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}"],
                       capture_output=True, text=True, timeout=10)
    return "LISTEN" in r.stdout


def text_of(path):
    try:
        return open(path, errors="replace").read()
    except OSError:
        return ""


class System:
    """Starts, kills and restarts one system's receiver and sender."""

    def __init__(self, a, work):
        self.a, self.work = a, work
        self.recv = self.send = None
        self.notes = []

    def start_proc(self, ns, cmd, out):
        return subprocess.Popen(["ip", "netns", "exec", ns] + cmd, stdin=subprocess.DEVNULL,
                                stdout=open(out, "ab"), stderr=subprocess.STDOUT)

    def kill(self, which):
        p = getattr(self, which)
        if p and p.poll() is None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

    def stop(self):
        for which in ("send", "recv"):
            p = getattr(self, which)
            if p and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


class Proctor(System):
    name = "proctor"

    def __init__(self, a, work):
        super().__init__(a, work)
        self.logs = os.path.join(work, "logs")
        self.spool = os.path.join(work, "spool")
        self.sout = os.path.join(work, "server.out")
        self.cout = os.path.join(work, "client.out")
        self.watch_glob = os.path.join(self.logs, "*", f"pcbench_{a.pc_ip}.log")
        self.decode = decode_proctor
        self.gen_port = GEN_PORT

    def pcfile(self):
        g = glob.glob(self.watch_glob)
        return g[0] if g else None

    def captures(self):
        f = self.pcfile()
        return text_of(f).count("status capturing on lo") if f else 0

    def start_recv(self):
        self.recv = self.start_proc(self.a.srv_ns, [
            self.a.bin, "server", "--headless", "-s", str(SPORT), "-c", str(CPORT), "-k", self.a.key,
            "--logs", self.logs, "--broadcast", self.a.bcast, "--announce-every", "1"], self.sout)
        if not wait_for(lambda: "started at" in text_of(self.sout) or "resuming session" in text_of(self.sout), 15):
            raise RuntimeError("proctor server did not start: " + text_of(self.sout)[-300:])

    def start_send(self):
        caps = self.captures()
        self.send = self.start_proc(self.a.pc_ns, [
            self.a.bin, "client", "-p", str(CPORT), "-k", self.a.key, "-i", "lo", "--hostname", "pcbench",
            "--spool", self.spool], self.cout)
        return caps

    def sender_ready(self, caps_before):
        return self.captures() > caps_before

    def recv_ready(self):
        return True   # the client reconnects by itself

    def spooled(self, since):
        m = re.findall(r"with (\d+) unacknowledged events", text_of(self.cout)[since:])
        return int(m[-1]) if m else 0


class Rsyslog(System):
    name = "rsyslog"

    def __init__(self, a, work):
        super().__init__(a, work)
        self.rdir = os.path.join(work, "recv")
        self.sdir = os.path.join(work, "send")
        for d in (self.rdir, self.sdir):
            os.makedirs(os.path.join(d, "work"), exist_ok=True)
            os.makedirs(os.path.join(d, "out"), exist_ok=True)
        self.watch_glob = os.path.join(self.rdir, "out", "*.log")
        self.decode = decode_rsyslog
        self.gen_port = IMTCP_PORT
        self.write_conf("rsyslog-relp-recv.conf.tmpl", self.rdir)
        self.write_conf("rsyslog-relp-send.conf.tmpl", self.sdir)

    def write_conf(self, tmpl, d):
        text = open(os.path.join(HERE, tmpl)).read()
        text = (text.replace("@DIR@", d).replace("@RELP_PORT@", str(RELP_PORT))
                .replace("@IMTCP_PORT@", str(IMTCP_PORT)).replace("@SRV_IP@", self.a.srv_ip))
        open(os.path.join(d, "rsyslog.conf"), "w").write(text)

    def start_rsyslogd(self, ns, d):
        pidf = os.path.join(d, "rsyslogd.pid")
        if os.path.exists(pidf):
            os.unlink(pidf)  # left by a SIGKILL; the pid may belong to someone else by now
        return self.start_proc(ns, ["/usr/sbin/rsyslogd", "-n", "-f", os.path.join(d, "rsyslog.conf"),
                                    "-i", pidf], os.path.join(d, "rsyslogd.log"))

    def start_recv(self):
        self.recv = self.start_rsyslogd(self.a.srv_ns, self.rdir)
        if not wait_for(lambda: listening(self.a.srv_ns, RELP_PORT) or self.recv.poll() is not None, 15) \
                or self.recv.poll() is not None:
            raise RuntimeError("receiving rsyslogd did not start: " + text_of(os.path.join(self.rdir, "rsyslogd.log"))[-400:])

    def start_send(self):
        self.queue_files_at_start = sorted(os.listdir(os.path.join(self.sdir, "work")))
        self.send = self.start_rsyslogd(self.a.pc_ns, self.sdir)
        return None

    def sender_ready(self, _):
        return listening(self.a.pc_ns, IMTCP_PORT) and self.send.poll() is None

    def recv_ready(self):
        return listening(self.a.srv_ns, RELP_PORT)

    def spooled(self, since):
        return None


# ------------------------------------------------------------------------------------------
# one run

class Gen:
    def __init__(self, a, system):
        self.p = subprocess.Popen(["ip", "netns", "exec", a.pc_ns, sys.executable, os.path.abspath(__file__), "gen",
                                   "--system", system.name, "--rate", str(a.rate), "--port", str(system.gen_port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        if self.p.stdout.readline().strip() != "ready":
            raise RuntimeError("generator did not start")
        self.runs = []

    def cmd(self, text):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline().split()

    def run(self, secs, tag):
        t0 = time.time()
        r = self.cmd(f"run {secs}")
        if not r or r[0] != "ok":
            raise RuntimeError(f"generator: {r}")
        self.runs.append(dict(tag=tag, first=int(r[1]), next=int(r[2]), refused=int(r[3]),
                              t0=t0, t1=time.time()))
        return int(r[1]), int(r[2])

    def quit(self):
        try:
            self.p.stdin.write("quit\n")
            self.p.stdin.close()
            self.p.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.p.kill()


def link(a, state):
    subprocess.run(["ip", "-n", a.sw_ns, "link", "set", a.pc_port, state], check=True, timeout=10)


def ranges(ns):
    """[3, 4, 5, 9] -> '3-5, 9'"""
    out, ns = [], sorted(ns)
    i = 0
    while i < len(ns):
        j = i
        while j + 1 < len(ns) and ns[j + 1] == ns[j] + 1:
            j += 1
        out.append(f"{ns[i]}" if i == j else f"{ns[i]}-{ns[j]}")
        i = j + 1
    return ", ".join(out)


def analyse(seen, generated, t_end, first_after):
    """lost / duplicated / out of order and the times around the fault's end."""
    counts, order_breaks, top = {}, 0, -1
    first_seen = {}
    for n, t in seen:
        counts[n] = counts.get(n, 0) + 1
        if counts[n] == 1:
            first_seen[n] = t
            if n < top:
                order_breaks += 1   # stored after an event with a higher number
            top = max(top, n)
    lost = [n for n in range(generated) if n not in counts]
    dups = {n: c for n, c in counts.items() if c > 1}
    after = [t for _, t in seen if t > t_end]
    pending = [first_seen[n] for n in range(first_after) if n in first_seen and first_seen[n] > t_end]
    new = [first_seen[n] for n in range(first_after, generated) if n in first_seen]
    return dict(generated=generated, stored=len(counts), lost=len(lost), lost_numbers=ranges(lost)[:200],
                duplicated=sum(c - 1 for c in dups.values()), duplicated_numbers=ranges(dups)[:200],
                out_of_order=order_breaks, unknown=len([n for n in counts if n >= generated]),
                resume_s=round(min(after) - t_end, 3) if after else None,
                first_new_event_s=round(min(new) - t_end, 3) if new else None,
                backlog_stored_s=round(max(pending) - t_end, 3) if pending else None)


def run_main(a):
    work = os.path.join(a.work, f"{a.system}-{a.fault}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    sys_ = (Proctor if a.system == "proctor" else Rsyslog)(a, work)
    res = dict(system=a.system, fault=a.fault, rate=a.rate)
    gen = watcher = None
    try:
        sys_.start_recv()
        caps = sys_.start_send()
        if not wait_for(lambda: sys_.sender_ready(caps), 30):
            raise RuntimeError("sender not ready in 30 s")
        watcher = Watcher(sys_.watch_glob, sys_.decode)
        watcher.start()
        gen = Gen(a, sys_)
        # warm-up: the first events must arrive before the fault (a working pipeline)
        gen.run(a.pre, "before")
        if not wait_for(lambda: len(watcher.snapshot()) > 0, 15):
            raise RuntimeError("no event reached the receiver before the fault")
        f = a.fault
        if f == "link":
            t_fault = time.time()
            link(a, "down")
            gen.run(a.link_down, "link down")
            t_end = time.time()
            link(a, "up")
            res["fault_s"] = round(t_end - t_fault, 2)
        elif f == "recv-kill":
            t_fault = time.time()
            sys_.kill("recv")
            gen.run(a.down, "receiver down")
            t_end = time.time()
            sys_.start_recv()
            res["fault_s"] = round(t_end - t_fault, 2)
        elif f in ("send-kill", "send-kill-backlog"):
            if f == "send-kill-backlog":
                link(a, "down")
                gen.run(a.backlog, "link down, sender queues")
            t_fault = time.time()
            sys_.kill("send")
            if f == "send-kill-backlog":
                link(a, "up")
            time.sleep(a.down)
            off = len(text_of(getattr(sys_, "cout", "/nonexistent")))
            t_end = time.time()
            caps = sys_.start_send()
            if not wait_for(lambda: sys_.sender_ready(caps), 30):
                raise RuntimeError("restarted sender not ready in 30 s")
            res["sender_ready_s"] = round(time.time() - t_end, 3)
            res["spooled_at_restart"] = sys_.spooled(off)
            if a.system == "rsyslog":
                res["queue_files_at_restart"] = sys_.queue_files_at_start
                if gen.cmd("reconnect") != ["ok"]:
                    raise RuntimeError("generator could not reconnect to the restarted sender")
            res["fault_s"] = round(t_end - t_fault, 2)
        else:
            raise RuntimeError(f"unknown fault {f}")
        first_after, _ = gen.run(a.post, "after")
        generated = gen.runs[-1]["next"]
        # drain: until every event is stored, or nothing new for QUIET s, bounded by DRAIN s
        t_gen_end, last_n, last_change = time.time(), -1, time.time()
        while time.time() - t_gen_end < a.drain:
            s = watcher.snapshot()
            if len({n for n, _ in s}) >= generated:
                break
            if len(s) != last_n:
                last_n, last_change = len(s), time.time()
            elif time.time() - last_change > a.quiet:
                break
            time.sleep(0.1)
        time.sleep(0.3)   # late duplicates
        watcher.stop_flag.set()
        watcher.join(5)
        res.update(analyse(watcher.snapshot(), generated, t_end, first_after))
        res["drain_s"] = round(time.time() - t_gen_end, 2)
        res["phases"] = [dict(tag=r["tag"], events=r["next"] - r["first"], refused=r["refused"]) for r in gen.runs]
    except Exception as e:  # recorded; the other runs go on
        res["error"] = str(e)
        log(f"{a.system} {a.fault}: error: {e}")
    finally:
        if watcher:
            watcher.stop_flag.set()
        if gen:
            gen.quit()
        link(a, "up")
        sys_.stop()
    print(json.dumps(res), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--system", choices=["proctor", "rsyslog"], required=True)
    g.add_argument("--rate", type=float, required=True)
    g.add_argument("--port", type=int, required=True)
    r = sub.add_parser("run")
    r.add_argument("--system", choices=["proctor", "rsyslog"], required=True)
    r.add_argument("--fault", required=True)
    for k in ("sw-ns", "srv-ns", "pc-ns", "pc-port", "srv-ip", "pc-ip", "bcast", "work", "bin", "key"):
        r.add_argument("--" + k, required=True)
    r.add_argument("--rate", type=float, default=50)
    r.add_argument("--pre", type=float, default=4)
    r.add_argument("--post", type=float, default=5)
    r.add_argument("--link-down", type=float, default=20)
    r.add_argument("--down", type=float, default=3, help="seconds a killed side stays down")
    r.add_argument("--backlog", type=float, default=5, help="send-kill-backlog: seconds of events queued behind a cut link")
    r.add_argument("--drain", type=float, default=40)
    r.add_argument("--quiet", type=float, default=6)
    a = ap.parse_args()
    if a.cmd == "gen":
        a.rate = max(1.0, min(a.rate, 1000.0))
        return gen_main(a)
    return run_main(a)


if __name__ == "__main__":
    sys.exit(main())
