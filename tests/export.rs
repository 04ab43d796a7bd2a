//! Issue 7, "logs into the pipelines they run": a real server and client session on loopback
//! whose events are also exported as JSON Lines (`--jsonl`) and forwarded as RFC 5424 syslog
//! over TCP (`--syslog`) to a private rsyslogd; every event line of proctor's own log file must
//! arrive in each output exactly once.

mod common;

use common::*;
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

/// A private rsyslogd (own config, pid file and work directory in the test's directory) that
/// receives on 127.0.0.1:`port` with imtcp and writes one line per message to `out`. Killed on
/// drop.
struct Rsyslog {
    child: Child,
    out: PathBuf,
}

impl Rsyslog {
    /// The private rsyslogd used by the delivery test: one line per message with the fields
    /// that matter, in `rsyslog-received.log`.
    fn start(dir: &Path, port: u16) -> Rsyslog {
        let out = dir.join("rsyslog-received.log");
        let body = format!(
            r#"module(load="imtcp")
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="proctor")
template(name="fields" type="string" string="%hostname%|%app-name%|%msgid%|%structured-data%|%msg%|%timereported:::date-rfc3339%\n")
ruleset(name="proctor") {{ action(type="omfile" file="{out}" template="fields") }}
"#,
            out = out.display()
        );
        Rsyslog::start_with(dir, port, &body, out)
    }

    /// Starts rsyslogd with `body` after a `global()` that keeps its work directory in `dir`.
    /// The body must listen with imtcp on 127.0.0.1:`port` and write only below `dir`: no
    /// /dev/log, no kernel log, no system files.
    fn start_with(dir: &Path, port: u16, body: &str, out: PathBuf) -> Rsyslog {
        assert!(
            Path::new(RSYSLOGD).exists(),
            "{RSYSLOGD} missing: scripts/install-deps.sh installs the rsyslog package"
        );
        let work = dir.join("rsyslog-work");
        std::fs::create_dir_all(&work).unwrap();
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!("global(workDirectory=\"{}\")\n{body}", work.display()),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("rsyslogd.out")).unwrap();
        let child = Command::new(RSYSLOGD)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let r = Rsyslog { child, out };
        assert!(
            wait_until(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "rsyslogd did not listen on {port}: {}",
            std::fs::read_to_string(dir.join("rsyslogd.out")).unwrap_or_default()
        );
        r
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free TCP port on loopback.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One event line of a proctor log file.
struct LogEvent {
    session: String,
    host: String,
    ts: String,
    seq: String,
    kind: String,
    detail: String,
}

/// Every line of every log file under `dir`, the lab PC's events (a numbered `seq=`) and the
/// server's own lines (`seq=-`), with its file's session and host from the header.
fn log_events(dir: &Path) -> Vec<LogEvent> {
    let mut v = Vec::new();
    for d in session_dirs(dir) {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let text = std::fs::read_to_string(e.path()).unwrap();
            let header = |p: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(p))
                    .and_then(|r| r.split(' ').next())
                    .unwrap_or_default()
                    .to_string()
            };
            let (session, host) = (header("# session: "), header("# host: "));
            for l in text.lines().filter(|l| !l.starts_with('#')) {
                let f: Vec<&str> = l.splitn(4, ' ').collect();
                let Some(seq) = f.get(1).and_then(|s| s.strip_prefix("seq=")) else {
                    continue;
                };
                if seq != "-" && seq.parse::<u64>().is_err() {
                    continue;
                }
                v.push(LogEvent {
                    session: session.clone(),
                    host: host.clone(),
                    ts: f[0].into(),
                    seq: seq.into(),
                    kind: f[2].into(),
                    detail: f.get(3).copied().unwrap_or("").into(),
                });
            }
        }
    }
    v
}

fn json_str(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn sd_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// The line the private rsyslogd writes for an event (see its template above).
fn expected_syslog(e: &LogEvent) -> String {
    format!(
        "{h}|proctor|{k}|[proctor@32473 session=\"{s}\" seq=\"{q}\" address=\"127.0.0.1\" host=\"{hv}\" source=\"{src}\"]|{d}|{t}",
        src = source(e),
        h = e.host,
        k = e.kind,
        s = e.session,
        q = e.seq,
        hv = sd_value(&e.host),
        d = e.detail,
        t = e.ts
    )
}

/// Who wrote a line: the lab PC (numbered) or the server (`seq=-`).
fn source(e: &LogEvent) -> &'static str {
    if e.seq == "-" { "server" } else { "client" }
}

/// The JSON Lines line proctor writes for an event.
fn expected_json(e: &LogEvent) -> String {
    format!(
        "{{\"time\":\"{}\",\"session\":\"{}\",\"host\":\"{}\",\"address\":\"127.0.0.1\",\"seq\":{},\"source\":\"{}\",\"kind\":\"{}\",\"detail\":\"{}\"}}",
        e.ts,
        e.session,
        json_str(&e.host),
        if e.seq == "-" { "null" } else { &e.seq },
        source(e),
        e.kind,
        json_str(&e.detail)
    )
}

/// Checks that `got` holds every expected line exactly once and nothing else.
fn assert_exactly_once(what: &str, expected: &[String], got: &[String]) {
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for e in expected {
        *counts.entry(e.as_str()).or_default() += 1;
    }
    for g in got {
        *counts.entry(g.as_str()).or_default() -= 1;
    }
    let missing: Vec<_> = counts.iter().filter(|(_, n)| **n > 0).collect();
    let extra: Vec<_> = counts.iter().filter(|(_, n)| **n < 0).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {} expected, {} received\nmissing: {missing:#?}\nunexpected or repeated: {extra:#?}",
        expected.len(),
        got.len()
    );
}

/// Sends a few UDP datagrams on loopback so the capture reports flows.
fn make_traffic(cport: u16, n: u16) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..n {
        udp.send_to(b"x", ("127.0.0.1", cport + 1000 + i)).unwrap();
    }
}

#[test]
fn every_event_reaches_rsyslog_and_the_jsonl_file_exactly_once() {
    let dir = temp_dir("export");
    let (sport, cport) = ports(40);
    let key = keygen(&dir, "k.key");
    let rport = free_port();
    let rsyslog = Rsyslog::start(&dir, rport);
    let jsonl = dir.join("events.jsonl");
    let target = format!("127.0.0.1:{rport}");
    let jsonl_arg = jsonl.display().to_string();
    let mut srv = server(
        &dir,
        &key,
        sport,
        cport,
        &["--syslog", &target, "--jsonl", &jsonl_arg],
    );
    let cl = client(&dir, &key, cport, "exp-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "exp-pc");
    make_traffic(cport, 5);
    assert!(
        wait_until(Duration::from_secs(5), || all_logs(&dir)
            .contains(&format!("-> 127.0.0.1:{}", cport + 1004))),
        "flows reach the log"
    );
    // While the session runs, the exports follow the file.
    assert!(
        wait_until(Duration::from_secs(5), || rsyslog
            .lines()
            .iter()
            .any(|l| l.contains(&format!("-> 127.0.0.1:{}", cport + 1004)))),
        "forwarded during the session: {:?}",
        rsyslog.lines()
    );
    srv.signal(libc::SIGINT);
    assert_eq!(
        srv.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        srv.output()
    );
    assert!(
        !srv.output().contains("warning: syslog") && !srv.output().contains("JSON Lines"),
        "no export problems: {}",
        srv.output()
    );

    let events = log_events(&dir);
    assert!(
        events.len() >= 7 && events.iter().any(|e| e.kind == "net"),
        "the session produced events: {}",
        all_logs(&dir)
    );
    // The server's own lines are exported too: connected, finished, session stopped.
    for text in [
        "connected from",
        "client finished the session",
        "session stopped",
    ] {
        assert!(
            events
                .iter()
                .any(|e| e.seq == "-" && e.kind == "server" && e.detail.starts_with(text)),
            "server line '{text}' in the files: {}",
            all_logs(&dir)
        );
    }
    let want: Vec<String> = events.iter().map(expected_syslog).collect();
    // rsyslog writes its file in batches: wait until it holds as many lines as expected.
    wait_until(Duration::from_secs(10), || {
        rsyslog.lines().len() >= want.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_exactly_once("rsyslog", &want, &rsyslog.lines());

    let text = std::fs::read_to_string(&jsonl).unwrap();
    let got: Vec<String> = text.lines().map(str::to_string).collect();
    for l in &got {
        assert!(
            l.starts_with("{\"time\":\"") && l.ends_with("\"}") && !l.chars().any(char::is_control),
            "one JSON object per line: {l}"
        );
        for field in [
            "\",\"session\":\"",
            "\",\"host\":\"",
            "\",\"address\":\"",
            "\",\"seq\":",
            ",\"source\":\"",
            "\",\"kind\":\"",
            "\",\"detail\":\"",
        ] {
            assert_eq!(l.matches(field).count(), 1, "{field} in {l}");
        }
    }
    let want: Vec<String> = events.iter().map(expected_json).collect();
    assert_exactly_once("JSON Lines", &want, &got);
    drop(cl);
}

#[test]
fn jsonl_on_stdout_carries_only_json_and_messages_go_to_stderr() {
    let dir = temp_dir("jsonl-stdout");
    let (sport, cport) = ports(41);
    let key = keygen(&dir, "k.key");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut srv = Command::new(bin())
        .args(["server", "--headless", "-s", &sport.to_string(), "-c"])
        .arg(cport.to_string())
        .arg("-k")
        .arg(&key)
        .arg("--logs")
        .arg(dir.join("logs"))
        .args([
            "--broadcast",
            "127.255.255.255",
            "--announce-every",
            "0.5",
            "--jsonl",
            "-",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let cl = client(&dir, &key, cport, "json-pc", &[]);
    let err = || std::fs::read_to_string(&err_path).unwrap_or_default();
    let connected = wait_until(Duration::from_secs(10), || {
        err().contains("json-pc (127.0.0.1) connected")
    });
    let got_events = connected
        && wait_until(Duration::from_secs(5), || {
            std::fs::read_to_string(&out_path)
                .unwrap_or_default()
                .contains("\"host\":\"json-pc\"")
        });
    unsafe {
        libc::kill(srv.id() as i32, libc::SIGINT);
    }
    let status = wait_until(Duration::from_secs(15), || {
        matches!(srv.try_wait(), Ok(Some(_)))
    });
    if !status {
        let _ = srv.kill();
    }
    let code = srv.wait().unwrap().code();
    drop(cl);
    assert!(connected && got_events, "stderr: {}", err());
    assert_eq!(code, Some(0), "{}", err());
    assert!(err().contains("proctor server listening"), "{}", err());
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(!out.is_empty());
    for l in out.lines() {
        assert!(
            l.starts_with("{\"time\":\"") && l.ends_with("\"}"),
            "stdout must hold JSON Lines only: {l}"
        );
    }
    let want: Vec<String> = log_events(&dir).iter().map(expected_json).collect();
    let got: Vec<String> = out.lines().map(str::to_string).collect();
    assert_exactly_once("JSON Lines on stdout", &want, &got);
}

#[test]
fn bad_export_options_are_usage_errors() {
    let dir = temp_dir("export-usage");
    let key = keygen(&dir, "k.key");
    let (sport, cport) = ports(42);
    let base = |extra: &[&str]| {
        Command::new(bin())
            .args(["server", "--headless", "-s", &sport.to_string(), "-c"])
            .arg(cport.to_string())
            .arg("-k")
            .arg(&key)
            .arg("--logs")
            .arg(dir.join("logs"))
            .args(["--broadcast", "127.255.255.255", "--stop-after", "1"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = base(&["--syslog", "no-port-here"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HOST:PORT"));
    let out = base(&["--syslog", "127.0.0.1:0"]);
    assert_eq!(out.status.code(), Some(2));
    let missing = dir.join("no-such-dir").join("events.jsonl");
    let out = base(&["--jsonl", &missing.display().to_string()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("cannot open --jsonl"), "{err}");
}

/// The campus example `dist/rsyslog/proctor-collector.conf`, as shipped but for its port and
/// directory, rebuilds each lab PC's file from what the room's server forwards, and writes one
/// JSON object per event.
#[test]
fn the_campus_collector_example_rebuilds_each_lab_pcs_file() {
    let dir = temp_dir("collector");
    let (sport, cport) = ports(43);
    let key = keygen(&dir, "k.key");
    let rport = free_port();
    let base = dir.join("collector");
    let example = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dist/rsyslog/proctor-collector.conf"
    ))
    .unwrap();
    assert!(example.contains("port=\"514\"") && example.contains("/var/log/proctor/"));
    let local = example
        .replace(
            "port=\"514\"",
            &format!("address=\"127.0.0.1\" port=\"{rport}\""),
        )
        .replace("/var/log/proctor/", &format!("{}/", base.display()));
    let conf = dir.join("proctor-collector.conf");
    std::fs::write(&conf, local).unwrap();
    let json = base.join("events.json");
    let _rsyslog = Rsyslog::start_with(
        &dir,
        rport,
        &format!("include(file=\"{}\")\n", conf.display()),
        json.clone(),
    );
    let target = format!("127.0.0.1:{rport}");
    let mut srv = server(&dir, &key, sport, cport, &["--syslog", &target]);
    let cl = client(&dir, &key, cport, "room-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "room-pc");
    make_traffic(cport, 3);
    assert!(wait_until(Duration::from_secs(5), || all_logs(&dir)
        .contains(&format!("-> 127.0.0.1:{}", cport + 1002))));
    srv.signal(libc::SIGINT);
    assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0));
    drop(cl);

    let events = log_events(&dir);
    let session = &events[0].session;
    // The room's file, rebuilt: the same lines (events and the server's own) in the same order.
    assert!(events.iter().any(|e| e.seq == "-"), "server lines");
    let want: Vec<String> = events
        .iter()
        .map(|e| format!("{} seq={} {} {}", e.ts, e.seq, e.kind, e.detail))
        .collect();
    let rebuilt = base
        .join("127.0.0.1")
        .join(session)
        .join("room-pc_127.0.0.1.log");
    let read = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    wait_until(Duration::from_secs(10), || {
        read(&rebuilt).len() >= want.len() && read(&json).len() >= want.len()
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        read(&rebuilt),
        want,
        "collector file {}; rsyslogd said: {}",
        rebuilt.display(),
        std::fs::read_to_string(dir.join("rsyslogd.out")).unwrap_or_default()
    );
    let got = read(&json);
    assert_eq!(got.len(), want.len());
    for (l, e) in got.iter().zip(&events) {
        assert!(l.starts_with('{') && l.ends_with('}'), "{l}");
        for field in [
            format!("\"session\":\"{}\"", e.session),
            format!("\"host\":\"{}\"", e.host),
            "\"address\":\"127.0.0.1\"".to_string(),
            "\"room\":\"127.0.0.1\"".to_string(),
            format!("\"seq\":\"{}\"", e.seq),
            format!("\"source\":\"{}\"", source(e)),
            format!("\"kind\":\"{}\"", e.kind),
        ] {
            assert!(l.contains(&field), "{field} in {l}");
        }
    }
}
