#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the JSON files of scripts/bench/bench.py.

usage: report.py RESULTS_DIR BENCHMARKS.md PROCTOR_BIN

Everything above the marker line in an existing BENCHMARKS.md (the hand-written header) is
kept; everything below it is replaced.
"""
import json
import os
import platform
import re
import subprocess
import sys
import time

MARKER = "<!-- Everything below this line is written by scripts/bench/run.sh; edit above it. -->"

DEFAULT_HEADER = """# proctor benchmarks

Side-by-side measurements of proctor against rsyslog (ingest, latency, forwarding under faults),
tcpdump (capture) and the original design's 500 ms mount polling, each measured against its
comparison in the same run on the same machine.

## How to rerun

As root: `make bench` (installs the benchmark packages with `scripts/install-bench-deps.sh`:
rsyslog and rsyslog-relp without starting them, tcpdump, gcc, linux-perf; then runs
`scripts/bench/run.sh`, which builds `cargo build --release` and runs every stage, about 20
minutes on 2 cores). Not part of `make test`.

Stages, each writing its own sections below:

| stage | measures | sections | about |
|---|---|---|---|
| `ingest` | server events/s, CPU, memory at C = 1, 100, 1,000 vs rsyslog imtcp | 1 | 6 min |
| `live` | event latency vs rsyslog, mount latency vs 500 ms polling, client idle cost | 2, 4, 5 | 4 min |
| `capture` | UDP flood: packets/s without drops, CPU vs tcpdump | 3 | 4 min |
| `flows` | new flows per second the client reports within 1 s | 6 | 2 min |
| `faults` | lab scenarios 3-5 vs rsyslog RELP: lost / duplicated / out of order / seconds to resume | 7 | 5 min |

**Only some stages**: `make bench ONLY=faults,flows`, `BENCH_ONLY=faults,flows make bench`, or
`scripts/bench/run.sh --only faults,flows`. The sections of the stages not rerun are kept from this
file (from its raw-results block at the end) and say so, with the date and commit they were
measured on; the summary's last column does the same per row. Everything below the marker line
is rewritten by `scripts/bench/report.py`; this header is kept.

Knobs (environment): `BENCH_EVENTS` (events per ingest run, default 1500000), `BENCH_REPS` (ingest
repetitions, default 3, the table shows the median), `BENCH_IDLE_SECS` (60), `BENCH_MOUNTS` (50),
`BENCH_FLOW_RATES` (default `1000,2000,5000,10000,20000,50000,100000`), `BENCH_FAULTS` (default
`link recv-kill send-kill send-kill-backlog`), `BENCH_OUT` (default this file), `BENCH_BIN` (use
this proctor binary instead of building the release one; the report names it).

Safety: the ingest, live, capture and flows stages run inside a private network namespace (only
`lo`) and a private mount namespace that disappear with the stage. The faults stage builds its own
named namespaces with the lab suite's `scripts/lab/lib.sh` (a bridge, a server namespace and a PC
namespace on a private /24, unique names per run, nothing in or routed through the root
namespace) and deletes them on exit. Every load is bounded in count and time.
The numbers vary with whatever else runs on the machine: runs first wait (bounded) for the
machine to calm down and record the CPU other processes used meanwhile (`others CPU`).
"""


def load(d, name):
    try:
        return json.load(open(os.path.join(d, name + ".json")))
    except (OSError, ValueError):
        return None


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20, shell=True).stdout.strip()
    except Exception:
        return ""


def machine(binpath, started):
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-").strip()
    mem = sh("awk '/MemTotal/{printf \"%.1f GiB\", $2/1048576}' /proc/meminfo")
    osname = sh(". /etc/os-release && echo \"$PRETTY_NAME\"")
    return [
        ("this run (UTC)", (f"{started} to " if started else "until ") + time.strftime("%H:%M", time.gmtime())),
        ("CPU", f"{os.cpu_count()} x {cpu}" + (" (VM)" if "hypervisor" in open("/proc/cpuinfo").read() else "")),
        ("memory", mem),
        ("OS / kernel", f"{osname} / {platform.release()}"),
        ("filesystem of the log files", sh("df -T /tmp | awk 'NR==2{print $2}'") + " (/tmp); capture output on tmpfs (/dev/shm)"),
        ("proctor", sh(f"{binpath} --version") + ", commit " + sh("git rev-parse --short HEAD")
         + (" + uncommitted changes" if sh("git status --porcelain -- src Cargo.toml Cargo.lock") else "")
         + (", `cargo build --release`" if binpath.endswith("target/release/proctor") else f", binary `{binpath}`")),
        ("rsyslog", sh("/usr/sbin/rsyslogd -v | head -1").replace("compiled with:", "").strip()),
        ("tcpdump", sh("tcpdump --version 2>&1 | head -2 | tr '\\n' ' '")),
        ("perf", sh("perf --version") or "not installed"),
        ("Python", platform.python_version()),
    ]


def f0(v):
    return "-" if v is None else f"{v:,.0f}"


def f1(v):
    return "-" if v is None else f"{v:,.1f}"


def f2(v):
    return "-" if v is None else f"{v:,.2f}"


def ratio(a, b):
    return None if not a or not b else a / b


def rx(v):
    return "-" if v is None else f"{v:.2f}x"


def yes(ok):
    return "-" if ok is None else ("**met**" if ok else "**missed**")


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(head))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def median_run(runs):
    ok = [r for r in runs if "error" not in r and r.get("events_per_s")]
    if not ok:
        return None
    ok.sort(key=lambda r: r["events_per_s"])
    return ok[(len(ok) - 1) // 2]


STAGES = ("ingest", "live", "capture", "flows", "faults")


def previous_results(text):
    """The raw JSON of every stage in an existing BENCHMARKS.md (its `Raw results` block), each
    with its `_meta`; JSON written before per-stage metadata existed gets the document's own
    `measured (UTC)` and commit from its Machine table."""
    old = {}
    for name, blob in re.findall(r"`(\w+)\.json`\n\n```json\n(.*?)\n```", text, re.S):
        try:
            old[name] = json.loads(blob)
        except ValueError:
            continue
    when = re.search(r"\| (?:measured|this run) \(UTC\) \| ([^|]+) \|", text)
    commit = re.search(r"\| proctor \| [^|]*?commit (\w+)", text)
    for obj in old.values():
        if isinstance(obj, dict) and "_meta" not in obj:
            obj["_meta"] = dict(started_utc=when.group(1).split(" to ")[0].strip() if when else "?",
                                commit=commit.group(1) if commit else "?")
    return old


def provenance(obj, carried):
    m = (obj or {}).get("_meta") or {}
    when = m.get("started_utc", "?") + (f" to {m['ended_utc'][-5:]}" if m.get("ended_utc") else "")
    what = f"commit {m.get('commit', '?')}" + (f", `{m['binary']}`" if m.get("binary") else "")
    if carried:
        return (f"*Not rerun in the latest run: measured {when} UTC on {what}. Rerun with "
                "`scripts/bench/run.sh --only <stage>`.*\n")
    return f"*Measured {when} UTC on {what}.*\n"


def when_of(obj):
    m = (obj or {}).get("_meta") or {}
    return f"{m.get('started_utc', '?')}, {m.get('commit', '?')}"


def tag(summary, start, obj, carried):
    """Adds the measurement's date and commit to the summary rows from START on."""
    for i in range(start, len(summary)):
        summary[i] = tuple(summary[i][:6]) + (when_of(obj) + (" (earlier run)" if carried else ""),)


def main():
    rdir, out, binpath = sys.argv[1], sys.argv[2], sys.argv[3]
    header, old = DEFAULT_HEADER, {}
    if os.path.exists(out):
        text = open(out).read()
        if MARKER in text:
            header = text.split(MARKER, 1)[0].rstrip("\n") + "\n"
        old = previous_results(text)
    data, carried = {}, set()
    for st in STAGES:
        cur = load(rdir, st)
        if cur is not None:
            cur["_meta"] = load(rdir, st + ".meta") or {}
            data[st] = cur
        elif old.get(st) is not None:
            data[st] = old[st]
            carried.add(st)
    ing, live, cap, flows, faults = (data.get(st) for st in STAGES)
    md = [header, MARKER, ""]
    md.append("## Machine\n")
    rows = machine(binpath, (load(rdir, "run") or {}).get("started_utc"))
    rows.append(("stages measured in this run", ", ".join(st for st in STAGES if st in data and st not in carried) or "none"))
    rows.append(("stages kept from earlier runs", ", ".join(f"{st} ({when_of(data[st])})" for st in STAGES if st in carried)
                 or "none"))
    md.append(table(["", ""], rows))
    md.append("")

    summary = []      # (what, proctor, other, ratio, target, verdict)
    sections = []

    # ---- ingest
    mark = len(summary)
    if ing:
        runs = ing.get("runs", [])
        R = ing.get("rounds") or max([r.get("rounds", 1) for r in runs] or [1])
        Cs = sorted({r["C"] for r in runs})
        reps = max([r.get("rep", 1) for r in runs] or [1])
        main_rounds = lambda C: 1 if C == 1 else R

        def pick(C, system, rounds):
            sel = [r for r in runs if r["C"] == C and r["system"] == system and r.get("rounds", 1) == rounds]
            return median_run(sel), [r["events_per_s"] for r in sel if r.get("events_per_s")], \
                [r.get("error") for r in sel if r.get("error")]

        rows, mem_ok = [], []
        lines_for = []
        for C in Cs:
            lines_for.append((C, "proctor", main_rounds(C), ""))
            lines_for.append((C, "rsyslog", 1, ""))
            if C == 1 and R > 1 and any(r["C"] == 1 and r["system"] == "proctor" and r.get("rounds", 1) == R for r in runs):
                lines_for.append((1, "proctor", R, f" in {R} rounds (calibration)"))
        for C, system, rounds, label in lines_for:
            r, allv, errs = pick(C, system, rounds)
            s_r = pick(C, "rsyslog", 1)[0]
            rt = ratio(r and r["events_per_s"], s_r and s_r["events_per_s"]) if system == "proctor" else None
            name = system + (f" ({rounds} rounds)" if rounds > 1 and not label else label)
            if r is None:
                rows.append([f"{C:,}", name, "failed: " + "; ".join(errs)[:160]] + ["-"] * 8)
                continue
            retried = [x for x in runs if x["C"] == C and x["system"] == system and x.get("first_attempt_error")]
            if retried:
                name += f" ({len(retried)} of {len(allv)} runs needed a 2nd attempt)"
            rows.append([f"{C:,}", name, f"**{f0(r['events_per_s'])}**" + (f" ({', '.join(f0(v) for v in allv)})" if len(allv) > 1 else ""),
                         rx(rt) if system == "proctor" else "", f2(r["server_cpu_s"]),
                         f2(r["server_cpu_us_per_event"]), f1(r["vmhwm_kb"] / 1024) if r.get("vmhwm_kb") else "-",
                         f1(r["mem_per_client_kb"]) if C > 1 else "-", f2(r["sender_cpu_s"]), f2(r.get("others_cpu_s")),
                         "yes" if r.get("complete") else f"NO ({r.get('lines_in_files')})"])
            if system == "proctor" and not label and r.get("mem_per_client_kb") is not None and C >= 100:
                mem_ok.append((C, r["mem_per_client_kb"]))
        events = ing.get("events")
        sec = [f"## 1. Server ingest ({events:,} events per run, C concurrent connections)\n", provenance(ing, "ingest" in carried),
               table(["C", "system", "events/s (median" + (f" of {reps}; all runs" if reps > 1 else "") + ")",
                      "proctor / rsyslog", "server CPU s", "server CPU µs/event", "server peak RSS MB (VmHWM)",
                      "KB per client", "sender CPU s", "others CPU s", "every event in the files"], rows), ""]
        sec.append(
            "- **proctor**: `proctor server --headless --logs /tmp/... --broadcast 127.255.255.255`, stdout to "
            "**/dev/null** (headless prints every event line too; the session id is read from "
            "`<logs>/.running-session`, the same id as the `session <hex> started` line), fed by "
            "`proctor __loadgen -c C -n N` (real handshake, events batched into ChaCha20-Poly1305 sealed frames of up to 64 KiB, "
            "up to 4096 unacknowledged events per connection). events/s is loadgen's figure: from the moment all C "
            "connections are up until the server has acknowledged (= written and flushed to its file) every event. "
            "One file per connection (host `pcNNNN`).\n"
            + (f"- **Rounds** (C > 1, this older run): the events were sent as {R} consecutive loadgen runs of 1/{R} of "
               "the events, each with C new connections, because loadgen then sent no heartbeats and the server closes a "
               "connection silent for 2.5 s; the C=1 calibration row shows what the rounds cost. "
               if R > 1 else
               "- **One run per measurement**: loadgen keeps every connection alive with heartbeats while it connects and "
               "streams, sends each connection's events in bounded shares per pass and ends with Bye, so C=1000 works in "
               "one run. A run that fails anyway (on this shared machine loadgen can go without CPU for the server's "
               "2.5 s silence limit, and the server then drops connections) is tried once more with a fresh server; the "
               "system column says how many runs needed that, and the first failure is kept in the raw JSON. ")
            + "Server CPU µs/event excludes the handshakes (measured by a one-event-per-connection loadgen run before "
            "the timed run); server CPU s includes them.\n"
            "- **rsyslog**: a private `rsyslogd -n -f <own config>` (imtcp on 127.0.0.1, `MaxSessions=2000`, dynaFile "
            "`out/%HOSTNAME%.log`, template `%msg:2:$%\\n`, `asyncWriting=off flushOnTXEnd=on ioBufferSize=64k`; "
            "the baseline's `rsyslog.conf.tmpl`), fed in one run by the baseline's `send.py` (one process, C connections, "
            "RFC 3164 lines carrying an 85-byte event line like proctor's, one host name per connection, so C files). "
            "events/s: from all connections open until the files hold every byte (10 ms polling). No encryption, "
            "no acknowledgements, no spool.\n"
            "- Server CPU: utime+stime from /proc/PID/stat over all the timed runs. Peak RSS: VmHWM at the end. "
            "KB per client (C > 1): (VmHWM - VmRSS before the run) / C: it includes the buffers of a saturated "
            "connection, so it depends on how many events each connection has in flight (up to loadgen's window). Sender and server share the 2 cores; `others CPU s` is what every other process on the machine "
            "used meanwhile (from /proc/stat): this machine is shared, and each run first waits (up to 45 s) for the "
            "others to use less than 0.3 of a core.\n")
        p1 = pick(Cs[0], "proctor", main_rounds(Cs[0]))[0] if Cs else None
        s1 = pick(Cs[0], "rsyslog", 1)[0] if Cs else None
        if p1 and s1 and p1.get("server_cpu_us_per_event") and p1.get("seconds"):
            busy = p1["server_cpu_s"] / p1["seconds"]
            sec[-1] = sec[-1].rstrip("\n")
            sec.append(
                f"- Reading the numbers: at C={Cs[0]} proctor's server used {busy:.2f} of a core for "
                f"{p1['server_cpu_us_per_event']:.1f} µs per event; its event loop is one thread, so its ceiling on this "
                f"CPU is about {round(1e6 / p1['server_cpu_us_per_event'], -3):,.0f} events/s even with an idle sender. loadgen seals "
                f"every event (sender CPU {p1['sender_cpu_s']:.1f} s vs {s1['sender_cpu_s']:.1f} s for send.py, which "
                "writes prebuilt buffers), and on 2 cores it takes CPU the server could use. rsyslog spent "
                f"{s1['server_cpu_us_per_event']:.1f} µs per event, spread over several threads.\n")
        if ing.get("profile"):
            pr = ing["profile"]
            if "error" in pr:
                sec.append(f"perf profile failed: {pr['error']}\n")
            else:
                sec.append(f"**Where the server's time goes** (`perf record -e cpu-clock -g -p <server>` during a separate "
                           f"C={pr['C']} run of {pr['events']:,} events, {f0(pr['events_per_s_under_perf'])} events/s under perf; "
                           "`perf report --stdio`):\n")
                sec.append("```\nself time by DSO:\n" + "\n".join(pr["by_dso"]) + "\n\ntop 10 symbols, self time:\n"
                           + "\n".join(pr["top_self"]) + "\n\ntop 10 proctor functions, inclusive (children) / self:\n"
                           + "\n".join(pr["top_inclusive_proctor"]) + "\n```\n")
        sections.append("\n".join(sec))
        for C in Cs:
            p = pick(C, "proctor", main_rounds(C))[0]
            s_r = pick(C, "rsyslog", 1)[0]
            rt = ratio(p and p["events_per_s"], s_r and s_r["events_per_s"])
            summary.append((f"ingest events/s, C={C:,}", f0(p and p["events_per_s"]), f0(s_r and s_r["events_per_s"]) + " (rsyslog)",
                            rx(rt), ">= 1.5x", yes(rt is not None and rt >= 1.5) if p and s_r else "-"))
        if mem_ok:
            C, kb = max(mem_ok)
            summary.append((f"server memory per client (C={C:,})", f"{kb:.0f} KB", "", "", "< 200 KB", yes(kb < 200)))

    tag(summary, mark, ing, "ingest" in carried)

    # ---- latency
    mark = len(summary)
    if live:
        lp, lr = live.get("latency_proctor"), live.get("latency_rsyslog")
        rows = []
        for name, r, incl in (
                ("proctor", lp, "sendto() of a UDP datagram starting a new flow on lo -> libpcap (immediate mode) in the capture "
                 "worker -> flow table -> pipe -> client (spool append) -> sealed frame -> server -> `net new udp` line readable "
                 "in the client's log file"),
                ("rsyslog", lr, "send() of a syslog line on an open TCP connection (TCP_NODELAY) -> imtcp -> omfile "
                 "(flushOnTXEnd=on) -> line readable in the file")):
            if not r or "error" in r:
                rows.append([name, "failed: " + str((r or {}).get("error"))[:100], "", "", "", "", incl])
                continue
            m = r["ms"]
            rows.append([name, f"{r['seen']}/{r['sent']}", f2(m.get("p50")), f"**{f2(m.get('p99'))}**", f2(m.get("max")),
                         f2(m.get("min")), incl])
        sec = ["## 2. Event latency at a low rate (100 events/s for 5 s, one client), event -> line in the file\n",
               provenance(live, "live" in carried),
               table(["system", "lines seen", "p50 ms", "p99 ms", "max ms", "min ms", "what the time includes"], rows), "",
               "Times are CLOCK_MONOTONIC; a separate process watches the directory with inotify and stamps each line when "
               "it can be read (the baseline's lat.py approach). The two paths are not the same: proctor's includes packet "
               "capture and the client daemon (a flow is created, seen and reported), rsyslog's starts with a ready-made "
               "log line on an open connection. With 500 samples p99 is the 5th largest value, so it moves by a few tenths "
               "of a millisecond from run to run on this shared machine; compare several runs before concluding. "
               "proctor's pure transport latency (event created in the client -> file, without capture) could be measured "
               "with `proctor __loadgen --rate R --stamp` (it paces events and stamps each with its send time); this stage "
               "does not do that yet.\n"]
        sections.append("\n".join(sec))
        if lp and lr and "ms" in lp and "ms" in lr and lp["ms"].get("p99") is not None and lr["ms"].get("p99") is not None:
            summary.append(("event latency p99 (100/s)", f"{lp['ms']['p99']:.2f} ms", f"{lr['ms']['p99']:.2f} ms (rsyslog)",
                            rx(ratio(lp["ms"]["p99"], lr["ms"]["p99"])), "<= rsyslog's", yes(lp["ms"]["p99"] <= lr["ms"]["p99"])))

    tag(summary, mark, live, "live" in carried)

    # ---- capture
    mark = len(summary)
    if cap:
        runs = [r for r in cap.get("runs", []) if "gen" in r]
        gen_alone = next((r["gen"]["pps"] for r in runs if r["mode"] == "none"), None)
        rows = []
        for r in runs:
            if r["mode"] == "none":
                rows.append(["generator alone", "max", f0(r["gen"]["pps"]), "-", "-", "-", "-", "-", f2(r["gen"].get("cpu_s")),
                             f2(r.get("busy_cores_before"))])
                continue
            rows.append([r["mode"], "max" if not r["rate"] else f0(r["rate"]), f0(r["gen"]["pps"]),
                         f"{r['captured']:,}/{r['gen']['sent']:,}" if r.get("captured") is not None else "-",
                         f0(r.get("kernel_dropped")), f0(r.get("captured_per_s")), f2(r.get("cpu_s")),
                         f"{r['cpu_s_per_100k']:.3f}" if r.get("cpu_s_per_100k") else "-", f2(r["gen"].get("cpu_s")),
                         f2(r.get("busy_cores_before"))])
        best = {}
        for mode in ("tcpdump", "proctor-flows", "proctor-per-packet"):
            z = [r for r in runs if r["mode"] == mode and r.get("kernel_dropped") == 0 and r.get("captured_per_s")]
            if z:
                b = max(z, key=lambda r: r["captured_per_s"])
                best[mode] = (b["captured_per_s"], not b["rate"])
        com = {r["mode"]: r for r in runs if r.get("rate") == cap.get("common_rate") and r["mode"] != "none"}
        sec = [f"## 3. Capture: UDP flood on lo ({cap.get('payload')}-byte datagrams, {cap.get('secs')} s per run)\n",
               provenance(cap, "capture" in carried),
               table(["capturer", "target rate pkt/s", "generator pkt/s", "counted / sent", "kernel drops",
                      "counted pkt/s", "capturer CPU s", "capturer CPU s per 100k pkt", "generator CPU s",
                      "machine busy before, cores"], rows), "",
               "Zero-drop rates (highest counted packets/s with 0 kernel drops; `>=` when the generator ran flat out, so the "
               "capturer was not the limit): " + ", ".join(f"{m} {'>= ' if full else ''}{f0(v)}" for m, (v, full) in best.items())
               + ". A capturer that drops at full rate is tried at two lower rates (x0.8 each) and at the common rate "
               f"{f0(cap.get('common_rate'))} pkt/s, so its true zero-drop rate lies between the best rate without drops "
               "and the next one tried.\n",
               "- Generator: the baseline's `udpgen.c` (compiled at run time), one connected UDP socket to a sink on "
               f"127.0.0.1:20999 that never reads; rate `max` = as fast as it can, otherwise paced. On 2 cores the capturer "
               "and the generator compete, and the kernel's AF_PACKET work is charged to the generator, so a capturer that "
               "uses more CPU slows the generator down: compare the `generator pkt/s` column too.\n"
               "- **tcpdump**: `tcpdump -i lo -nn -w /dev/null '<proctor's BPF>'` (the exact filter text the worker prints, "
               f"`{cap.get('bpf')}`); counted = `packets captured`, drops = `packets dropped by kernel` at SIGINT, 2 s after the flood.\n"
               "- **proctor-flows**: `proctor __capture-worker --iface lo` (the client's default: one `new` and one `end` line per "
               "flow; counted = `packets=` of the flow's `end` line written when stdin closes). **proctor-per-packet**: the same "
               "with `--per-packet` (one line per packet, counted by lines; output on tmpfs). Kernel drops: the worker's "
               "`pcap drops on lo: kernel=N` status line, which it checks every 10 s, so each run keeps the worker until one "
               "check after the flood. CPU: /proc/PID/stat of the worker (all threads) from the flood's start until its "
               "counters were read (after the flood). `machine busy before`: CPU the whole machine used in the second "
               "before the run (each run first waits, up to 45 s, for it to drop below 0.3 core).\n"]
        if cap.get("profile"):
            pr = cap["profile"]
            sec.append(f"**Where the capture worker's time goes** (proctor-flows at {f0(pr['rate'])} pkt/s, `perf record -e cpu-clock -g -p <worker>`):\n")
            sec.append("```\nself time by DSO:\n" + "\n".join(pr["by_dso"]) + "\n\ntop 10 symbols, self time:\n"
                       + "\n".join(pr["top_self"]) + "\n\ntop 10 proctor functions, inclusive / self:\n"
                       + "\n".join(pr["top_inclusive_proctor"]) + "\n```\n")
        if cap.get("error"):
            sec.append(f"Capture stage error: {cap['error']}\n")
        sections.append("\n".join(sec))
        if "tcpdump" in best and "proctor-flows" in best:
            pv, tv = best["proctor-flows"][0], best["tcpdump"][0]
            summary.append(("capture pkt/s with 0 drops (flows mode)", f0(pv), f"{'>= ' if best['tcpdump'][1] else ''}{f0(tv)} (tcpdump)",
                            rx(ratio(pv, tv)), ">= 1.0x", yes(pv >= tv)))
        pf, td = com.get("proctor-flows"), com.get("tcpdump")
        if pf and td and pf.get("cpu_s_per_100k") and td.get("cpu_s_per_100k"):
            summary.append((f"capture CPU per 100k pkt at {f0(cap.get('common_rate'))} pkt/s", f"{pf['cpu_s_per_100k']:.3f} s",
                            f"{td['cpu_s_per_100k']:.3f} s (tcpdump)", rx(ratio(pf["cpu_s_per_100k"], td["cpu_s_per_100k"])), "", ""))

    tag(summary, mark, cap, "capture" in carried)

    # ---- mounts
    mark = len(summary)
    if live and live.get("mount"):
        m = live["mount"]
        p, q = m["proctor"], m["poll500"]
        rows = [["proctor (server file)", f"{m['ops'] - p['missed']}/{m['ops']}", f2(p["ms_after_syscall_return"].get("p50")),
                 f"**{f2(p['ms_after_syscall_return'].get('p99'))}**", f2(p["ms_after_syscall_return"].get("max")),
                 f2(p["ms_after_syscall_return"].get("mean")), "-"],
                ["500 ms polling (emulated)", f"{m['ops'] - q['missed']}/{m['ops']}", f2(q["ms_after_syscall_return"].get("p50")),
                 f2(q["ms_after_syscall_return"].get("p99")), f2(q["ms_after_syscall_return"].get("max")),
                 f2(q["ms_after_syscall_return"].get("mean")), f"{q['cpu_s']:.3f} s ({q['polls']} polls)"]]
        sec = [f"## 4. Mount latency ({m['ops'] // 2} tmpfs mount + unmount cycles = {m['ops']} events)\n",
               provenance(live, "live" in carried),
               table(["detector", "detected", "p50 ms", "p99 ms", "max ms", "mean ms", "detector CPU"], rows), "",
               "- proctor: a real `proctor client -i lo` in a session with a real server on loopback; the benchmark calls "
               "mount(2)/umount2(2) (ctypes, tmpfs, unique source name per cycle) and times from the syscall's return to the "
               "`mount`/`unmount` line being readable in the server's log file (inotify). Includes the mount worker's wake-up "
               "on /proc/self/mountinfo, the client, the stream and the server's write.\n"
               "- 500 ms polling: the original design (`psutil.disk_partitions()` every 500 ms) **emulated** by a Python loop "
               "that reads /proc/self/mountinfo every 500 ms (psutil is not installed here; it reads the same file), in "
               "the same run, timed to the moment it notices the change (not to a file).\n"
               f"- Gaps between operations {m['gap_s'][0]}-{m['gap_s'][1]} s (random), so the poller can see every state; "
               f"mount(2)/umount2(2) took p50 {f2(m['syscall_ms'].get('p50'))} ms.\n"]
        sections.append("\n".join(sec))
        p99 = p["ms_after_syscall_return"].get("p99")
        summary.append(("mount -> server file p99", f"{p99:.2f} ms" if p99 is not None else "-",
                        f"{q['ms_after_syscall_return'].get('p99', 0):.0f} ms (500 ms poll)", "", "< 5 ms", yes(p99 is not None and p99 < 5 and p["missed"] == 0)))

    tag(summary, mark, live, "live" in carried)

    # ---- idle
    mark = len(summary)
    if live and (live.get("idle_session") or live.get("idle_waiting")):
        rows = []
        for name, key in (("in a session", "idle_session"), ("waiting for a session", "idle_waiting")):
            r = live.get(key)
            if not r:
                continue
            rows.append([name, len(r["pids"]), f"{r['seconds']:.0f}", f"{r['cpu_s']:.2f}", f"**{r['cpu_pct_of_core']:.2f} %**",
                         f"**{r['rss_kb_sum'] / 1024:.1f}**", f"{r.get('pss_kb_sum', 0) / 1024:.1f}", f"{r.get('anon_kb_sum', 0) / 1024:.1f}",
                         "; ".join(f"{v.get('role', '?')} {v.get('VmRSS', 0) / 1024:.1f}" for v in r["per_process"].values())])
        sec = ["## 5. Idle cost of the client\n", provenance(live, "live" in carried),
               table(["state", "processes", "seconds", "CPU s", "CPU % of a core", "RSS MB (sum)", "PSS MB (sum)",
                      "private anon MB", "RSS MB per process"], rows), "",
               "A real `proctor client -i lo` (client process plus, in a session, its capture and mount worker processes), "
               "in a private network namespace where lo carries only proctor's own traffic (heartbeats every 0.5 s, "
               "announcements every 2 s, both excluded from capture). CPU from /proc/PID/stat (10 ms resolution). RSS counts "
               "shared library pages (the binary links the X11/pango libraries of the window) once per process; PSS divides "
               "them among the processes that share them. The capture worker's RSS includes libpcap's packet ring on lo "
               "(a shared `socket:` mapping of about 16 MB for the 8 MiB buffer the worker asks for, `capture::BUFFER_BYTES`), "
               "counted as soon as the ring is touched.\n"]
        sections.append("\n".join(sec))
        for name, key in (("in a session", "idle_session"), ("waiting", "idle_waiting")):
            r = live.get(key)
            if r:
                summary.append((f"client idle {name}: CPU / RSS", f"{r['cpu_pct_of_core']:.2f} % / {r['rss_kb_sum'] / 1024:.1f} MB",
                                f"(PSS {r.get('pss_kb_sum', 0) / 1024:.1f} MB)", "", "< 0.5 % / < 20 MB",
                                yes(r["cpu_pct_of_core"] < 0.5 and r["rss_kb_sum"] < 20 * 1024)))
    if live and live.get("error"):
        sections.append(f"Live stage error: {live['error']}\n")

    tag(summary, mark, live, "live" in carried)

    # ---- flows per second
    if flows:
        mark = len(summary)
        steps = flows.get("steps", [])
        rows = []
        for r in steps:
            if "error" in r:
                rows.append([f0(r.get("rate")), "failed: " + r["error"][:120]] + [""] * 10)
                continue
            m = r.get("ms", {})
            secs = r.get("gen_secs") or flows.get("secs") or 1
            rows.append([f0(r["rate"]) + (f" (run {r['rep']})" if r.get("rep") else ""), f0(r["flows"]), f1(secs), f0(r["gen_rate"]), f"{r['seen']:,}", f0(r["missing"]),
                         f0(r["late"]), f2(m.get("p50")), f2(m.get("p99")), f2(m.get("max")),
                         f"{r['client_cpu_s'] / secs:.2f}", "**yes**" if r.get("ok") else "no"])
        best, worst = flows.get("best_rate"), flows.get("first_failed_rate")
        drops = sorted({d for r in steps for d in r.get("kernel_drop_lines", [])}, key=int)
        td = None
        if cap:
            z = [r for r in cap.get("runs", []) if r.get("mode") == "tcpdump" and r.get("kernel_dropped") == 0
                 and r.get("captured_per_s")]
            td = max((r["captured_per_s"] for r in z), default=None)
        sec = [f"## 6. New flows per second the client reports (every `net new` line within "
               f"{flows.get('bound_ms', 1000) / 1000:g} s)\n", provenance(flows, "flows" in carried),
               table(["flows/s asked", "flows sent", "seconds", "generator flows/s", "lines seen", "missing", "later than the bound",
                      "p50 ms", "p99 ms", "max ms", "client CPU, cores", "kept up"], rows), "",
               f"**Highest rate kept up with: {f0(best)} new flows/s**" + (f" (the next rate tried, {f0(worst)}/s, was not)"
                                                                         if worst else " (the highest rate tried)") + ". "
               "Kept up = every flow's `net new udp` line readable in the server's file within the bound, none missing "
               "(each flow is one datagram, so a packet the kernel dropped would be a missing line), no send errors"
               + (f", in each of {flows['reps']} runs of the rate" if flows.get("reps", 1) > 1 else "") + ".\n",
               "- A real `proctor server --headless` and `proctor client -i lo --flow-idle 600` (flows stay in the table "
               "for the whole step, so no `end` lines compete) in the benchmark's private network namespace; a fresh "
               f"client (and spool) per rate. Each rate runs {flows.get('secs')} s but sends at most "
               f"{f0(flows.get('max_flows', 90000))} flows (the client's flow table holds 100,000; beyond that it "
               "evicts the oldest flows with an `end` line each), so the highest rates are shorter bursts. Sustained for "
               "longer, the table bound decides: a flow stays in it for `--flow-idle` (30 s by default) after its last "
               "packet, so beyond about 100,000 / 30 s = 3,300 new flows/s the table is full and every new flow also "
               "evicts the oldest one (one more line each). The generator (`scripts/bench/flowgen.c`, compiled at run time) sends one "
               "32-byte UDP datagram per flow from 127.0.0.1:(24000 + step) to 127.A.B.C:24999, a new destination "
               "address per flow, paced at the rate, and records each send time (CLOCK_MONOTONIC); a separate process "
               "stamps each line when inotify says it is readable. Rates go up until one fails, then one rate half-way "
               "is tried.\n"
               "- Client CPU: the client and its workers (capture, mount), CPU seconds per second of the step. "
               + (f"Kernel drop reports from the capture worker during the stage: {', '.join(drops)}. " if drops else "")
               + "The capture worker reads its kernel drop counters only every 10 s, so within a step a dropped "
               "datagram shows up as a missing line rather than as a report. "
               + ("For comparison, tcpdump with the same BPF kept up with "
                  f"{f0(td)} packets/s without drops in the capture stage ({'this' if 'capture' not in carried else 'an earlier'} "
                  "run), and each of these flows is one packet; tcpdump keeps no flow table and reports nothing to a server, "
                  "so it bounds what the capture alone costs, not the reporting." if td else "") + "\n"]
        if flows.get("error"):
            sec.append(f"Flows stage error: {flows['error']}\n")
        sections.append("\n".join(sec))
        summary.append(("new flows/s reported within 1 s, none lost", f0(best), "", "", "(none set)", "-"))
        tag(summary, mark, flows, "flows" in carried)

    # ---- faults side by side
    if faults:
        mark = len(summary)
        runs = faults.get("runs", [])
        names = {"link": "PC's link down 20 s, then up (lab scenario 3)",
                 "recv-kill": "receiver SIGKILL, restarted 3 s later (lab scenario 4)",
                 "send-kill": "sender SIGKILL while connected, restarted 3 s later (lab scenario 5a)",
                 "send-kill-backlog": "link cut, 5 s of events queued at the sender, sender SIGKILL, link up, "
                                      "restarted 3 s later (lab scenario 5b)"}
        rows, tot = [], {}
        for r in runs:
            who = r["system"] + (" (omrelp -> imrelp)" if r["system"] == "rsyslog" else "")
            if "error" in r:
                rows.append([names.get(r["fault"], r["fault"]), who, "failed: " + r["error"][:120]] + [""] * 6)
                tot.setdefault(r["system"], dict(lost=0, dup=0, order=0, resume=[], failed=0))["failed"] += 1
                continue
            notes = []
            if r.get("lost_numbers"):
                notes.append(f"lost #{r['lost_numbers']}")
            if r.get("duplicated_numbers"):
                notes.append(f"twice #{r['duplicated_numbers']}")
            if r.get("spooled_at_restart"):
                notes.append(f"spool held {r['spooled_at_restart']} unacknowledged events at the restart")
            if r.get("sender_ready_s") is not None:
                notes.append(f"restarted sender ready after {r['sender_ready_s']:.2f} s")
            rows.append([names.get(r["fault"], r["fault"]), who, f0(r["generated"]), f"**{r['lost']}**",
                         f"**{r['duplicated']}**", f"**{r['out_of_order']}**",
                         f"**{f2(r.get('resume_s'))}**", f2(r.get("backlog_stored_s")), "; ".join(notes)])
            t = tot.setdefault(r["system"], dict(lost=0, dup=0, order=0, resume=[], failed=0))
            t["lost"] += r["lost"]
            t["dup"] += r["duplicated"]
            t["order"] += r["out_of_order"]
            if r.get("resume_s") is not None:
                t["resume"].append(r["resume_s"])
        rate = runs[0].get("rate") if runs else None
        sec = [f"## 7. Faults side by side: proctor vs rsyslog RELP forwarding ({f0(rate)} numbered events/s)\n",
               provenance(faults, "faults" in carried),
               table(["fault", "system", "events generated", "lost", "duplicated", "out of order", "seconds to resume",
                      "backlog stored after s", "notes"], rows), "",
               "- **Seconds to resume**: from the fault's end (link up, or the killed side's restart command) to the first "
               "event line stored after it. **Backlog stored after**: from the fault's end until the last event generated "
               "before it was stored (empty: nothing was waiting). Lost: generated, never stored (the run waits until "
               "every event is stored, or nothing new arrives for 6 s, at most 40 s). Duplicated: extra copies in the file. "
               "Out of order: events stored after an event with a higher number.\n"
               "- **Layout**: the lab suite's namespaces (`scripts/lab/lib.sh`): a switch namespace with a bridge, a server "
               "namespace (receiving side) and a PC namespace (sending side and the generator), a private 10.214.X.0/24; "
               "nothing in or routed through the root namespace; everything is killed and deleted on exit. The link cut "
               "is the PC's switch port set down (a pulled cable), as in the lab suite.\n"
               "- **Events**: `scripts/bench/faults.py gen` in the PC namespace emits numbered events at a fixed rate. "
               "proctor: event n is a UDP datagram on the PC's loopback to a destination address of its own "
               "(127.1.x.y), a new flow that the real `proctor client -i lo` reports as `net new udp`; the real `proctor "
               "server --headless` (announcing every 1 s) stores it in the PC's file. rsyslog: event n is the line "
               "`ev=n` sent over one TCP connection to the sending rsyslogd's imtcp on 127.0.0.1, forwarded with "
               "`omrelp` (action queue `queue.type=\"LinkedList\" queue.filename=\"fwdq\"` = disk-assisted, "
               "`queue.saveOnShutdown=\"on\"`, `action.resumeRetryCount=\"-1\"` = retry forever, "
               "`action.resumeInterval=\"1\"` instead of the default 30 s) to the receiving rsyslogd's `imrelp`, which "
               "writes each message to a file (`flushOnTXEnd=\"on\"`); configs in `scripts/bench/rsyslog-relp-*.conf.tmpl`. "
               "A watcher polls the receiver's file every 10 ms.\n"
               "- **While a sender is down** the generator pauses: events that happen while nothing runs to observe them "
               "are not counted for either system (proctor cannot see packets while its client is dead; a line for a "
               "dead rsyslogd's socket cannot be sent). Events generated up to the SIGKILL count. While the receiver is "
               "down or the link is cut, the generator keeps going.\n"
               "- What rsyslog loses with a SIGKILLed sender is what sat in its in-memory queues: a disk-assisted queue "
               "only writes to disk when the memory part passes its high-water mark (or at a clean shutdown), so a "
               "small backlog lives in memory only. Messages already handed to the kernel in the RELP window (TCP send "
               "buffer) can still reach the receiver after the process died. proctor's client appends every event to "
               "its on-disk spool before sending it and drops it only when the server acknowledges it.\n"
               "- One run per fault and system, so the seconds vary from run to run: rsyslog retries a suspended "
               "action every `action.resumeInterval` (1 s here), so after a receiver restart it resumes anywhere "
               "between 0 and 1 s later; after the link cut both systems resume about equally late, because the time "
               "is set by the network path coming back (the proctor client had meanwhile declared the server silent "
               "and reconnects; RELP's TCP connection retransmits).\n"]
        sections.append("\n".join(sec))
        p, r_ = tot.get("proctor"), tot.get("rsyslog")
        if p:
            fmt = lambda t: f"{t['lost']} / {t['dup']} / {t['order']}" + (f" ({t['failed']} runs failed)" if t["failed"] else "")
            summary.append((f"faults ({len(names)} kinds): lost / duplicated / out of order, summed", fmt(p),
                            (fmt(r_) + " (rsyslog RELP)") if r_ else "", "", "0 / 0 / 0",
                            yes(p["lost"] == 0 and p["dup"] == 0 and p["order"] == 0 and not p["failed"])))
            if p["resume"]:
                summary.append(("faults: slowest seconds to resume", f"{max(p['resume']):.2f} s",
                                f"{max(r_['resume']):.2f} s (rsyslog RELP)" if r_ and r_["resume"] else "", "",
                                "< 1 s", yes(max(p["resume"]) < 1.0)))
        tag(summary, mark, faults, "faults" in carried)

    md.append("## Summary\n")
    md.append(table(["what", "proctor", "compared with", "ratio", "target (issue 5)", "verdict", "measured (UTC, commit)"],
                    summary))
    md.append("")
    missed = [s[0] for s in summary if s[5] == "**missed**"]
    if missed:
        md.append("**Targets missed (the latest measurement of each):** " + "; ".join(missed) + ". The sections below give the measured numbers "
                  "and, for ingest and capture, the profile that shows where the time goes.\n")
    md.extend(sections)
    md.append("## Raw results\n")
    md.append("<details><summary>JSON written by scripts/bench/bench.py</summary>\n")
    for name in STAGES:
        obj = data.get(name)
        if obj:
            md.append(f"`{name}.json`\n\n```json\n{json.dumps(obj, indent=None, separators=(',', ':'))}\n```\n")
    md.append("</details>\n")
    open(out, "w").write("\n".join(md))
    print(f"report: wrote {out}")


if __name__ == "__main__":
    main()
