//! Helpers for tests/hostile.rs: run the real binary on loopback, find its output, poke its
//! sockets, and a small deterministic random number generator for the fuzz-style loops.
//!
//! Everything not specific to hostile input (processes, servers, clients, sessions) comes from
//! tests/common and is re-exported here; the hostile-input tests own their ports (slots 40..80 of
//! the same per-process port block, never used by e2e.rs).
#![allow(dead_code)]

pub use crate::common::*;
use std::io::{ErrorKind, Read};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A fresh directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    temp_dir_named("hostile", name)
}

/// A port pair unique to this test process and slot: tests/common's, limited to slots 40..80 so
/// they can never meet the slots e2e.rs uses, whatever the two processes' ids.
pub fn ports(slot: u16) -> (u16, u16) {
    assert!((40..80).contains(&slot), "hostile tests use slots 40..80");
    crate::common::ports(slot)
}

/// The text of every log file of `host` (any address, any session) under `<dir>/logs`.
pub fn host_log(dir: &Path, host: &str) -> String {
    let mut s = String::new();
    let prefix = format!("{host}_");
    let Ok(rd) = std::fs::read_dir(dir.join("logs")) else {
        return s;
    };
    let mut sessions: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    sessions.sort();
    for d in sessions {
        let Ok(files) = std::fs::read_dir(&d) else {
            continue;
        };
        for f in files.flatten() {
            if f.file_name().to_string_lossy().starts_with(&prefix) {
                s.push_str(&std::fs::read_to_string(f.path()).unwrap_or_default());
            }
        }
    }
    s
}

/// Sends one UDP datagram between two fresh loopback sockets and returns the line the client
/// capturing on `lo` must report for it.
pub fn udp_probe() -> String {
    let src = UdpSocket::bind("127.0.0.1:0").unwrap();
    let dst = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = dst.local_addr().unwrap();
    src.send_to(b"proctor hostile-test probe", to).unwrap();
    format!(
        "net new udp 127.0.0.1:{} -> 127.0.0.1:{}",
        src.local_addr().unwrap().port(),
        to.port()
    )
}

/// Sends probes until one reaches `host`'s log (capture may still be starting); panics after
/// `timeout`.
pub fn wait_capture(dir: &Path, host: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let needle = udp_probe();
        if wait_until(Duration::from_millis(500), || {
            host_log(dir, host).contains(&needle)
        }) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no event from {host} reached its log:\n{}",
            tail(&host_log(dir, host))
        );
    }
}

/// One new flow must reach `host`'s log within a few seconds: the client is in its session and
/// its events still flow to the server's file.
pub fn assert_events_flow(dir: &Path, host: &str, after: &str) {
    let needle = udp_probe();
    assert!(
        wait_until(Duration::from_secs(6), || host_log(dir, host)
            .contains(&needle)),
        "after {after}: '{needle}' never reached {host}'s log; the client left its session or \
         stopped reporting:\n{}",
        tail(&host_log(dir, host))
    );
}

/// Number of lines of `text` containing `needle`.
pub fn count_lines(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// The kernel's view of every UDP socket bound to `port` (IPv4): queued bytes and datagrams
/// dropped because the receive queue was full, summed.
pub fn udp_socket_stats(port: u16) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
    let want = format!(":{port:04X}");
    let (mut queued, mut drops) = (0, 0);
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 13 || !f[1].ends_with(&want) {
            continue;
        }
        if let Some((_, rx)) = f[4].split_once(':') {
            queued += u64::from_str_radix(rx, 16).unwrap_or(0);
        }
        drops += f[12].parse::<u64>().unwrap_or(0);
    }
    (queued, drops)
}

/// Reads until the peer closes the connection (EOF or reset) or `timeout` passes; returns how
/// long it took, or None if it stayed open.
pub fn wait_closed(s: &mut TcpStream, timeout: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = timeout.checked_sub(t0.elapsed())?;
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if t0.elapsed() >= timeout {
                    return None;
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Some(t0.elapsed()),
        }
    }
}

/// Raises this process's limit on open files (children inherit it).
pub fn raise_nofile(want: u64) {
    // SAFETY: plain get/setrlimit calls on a local struct.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return;
        }
        let want = want as libc::rlim_t;
        if r.rlim_cur < want {
            r.rlim_cur = want;
            if r.rlim_max < want {
                r.rlim_max = want; // we run as root
            }
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// The seeded generator, shared with the unit tests inside the crate.
pub use proctor::testkit::Rng;

/// Base seed of the fuzz-style loops: `HOSTILE_SEED` (decimal or 0x-hex) or a fixed default, so
/// a failure can be replayed exactly.
pub fn fuzz_seed(default: u64) -> u64 {
    match std::env::var("HOSTILE_SEED") {
        Ok(s) => {
            let s = s.trim();
            s.strip_prefix("0x")
                .map(|h| u64::from_str_radix(h, 16))
                .unwrap_or_else(|| s.parse())
                .expect("HOSTILE_SEED must be a number")
        }
        Err(_) => default,
    }
}

/// How long each fuzz-style loop runs: `HOSTILE_FUZZ_SECS` or 2 s.
pub fn fuzz_budget() -> Duration {
    std::env::var("HOSTILE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(2))
}

/// Runs `case` with fresh per-case seeds until the time budget is spent (and at least
/// `min_cases` ran); a panic inside a case fails the test naming the seed that replays it
/// (`HOSTILE_CASE_SEED=0x...` runs just that case).
pub fn fuzz_loop(name: &str, default_seed: u64, min_cases: u64, mut case: impl FnMut(&mut Rng)) {
    if let Ok(s) = std::env::var("HOSTILE_CASE_SEED") {
        // Replays one failing case exactly.
        let s = s.trim();
        let seed = s
            .strip_prefix("0x")
            .map(|h| u64::from_str_radix(h, 16))
            .unwrap_or_else(|| s.parse())
            .expect("HOSTILE_CASE_SEED must be a number");
        case(&mut Rng::new(seed));
        return;
    }
    let mut master = Rng::new(fuzz_seed(default_seed));
    let budget = fuzz_budget();
    let t0 = Instant::now();
    let mut n = 0u64;
    while n < min_cases || t0.elapsed() < budget {
        let seed = master.next_u64();
        let r =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| case(&mut Rng::new(seed))));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{name}: case {n} failed (HOSTILE_CASE_SEED={seed:#x}): {msg}");
        }
        n += 1;
    }
    eprintln!("{name}: {n} cases in {:.2?}", t0.elapsed());
}
