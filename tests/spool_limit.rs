//! Issue 4: the client's spool is bounded; when it fills while the server is unreachable, the
//! oldest events go and the file says how many. In its own test binary because every client on
//! `lo` also sees the other tests' traffic, which would fill a 30-event spool by itself.

mod common;

use common::*;
use std::net::UdpSocket;
use std::time::Duration;

fn flows_from(dir: &std::path::Path, src_port: u16) -> Vec<u16> {
    let needle = format!("net new udp 127.0.0.1:{src_port} -> 127.0.0.1:");
    all_logs(dir)
        .lines()
        .filter_map(|l| {
            // The port, before whatever the line carries after it (` proc=...`, a verdict).
            l.split(&needle)
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn a_full_spool_drops_the_oldest_events_and_says_how_many() {
    let dir = temp_dir("spoolfull");
    let (sport, cport) = ports(24);
    let key = keygen(&dir, "k.key");
    let mut srv = server(&dir, &key, sport, cport, &[]);
    let _cl = client(&dir, &key, cport, "full-spool-pc", &["--spool-limit", "30"]);
    assert_joined_and_capturing(&srv, &_cl, &dir, "full-spool-pc");
    srv.signal(libc::SIGKILL);
    let _ = srv.wait_exit(Duration::from_secs(2));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let src = sock.local_addr().unwrap().port();
    let base = 27000 + (std::process::id() % 1000) as u16 * 3;
    for p in base..base + 100 {
        sock.send_to(b"x", ("127.0.0.1", p)).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    let srv2 = server(&dir, &key, sport, cport, &[]);
    assert!(
        srv2.wait_for(
            "full-spool-pc (127.0.0.1) reconnected",
            Duration::from_secs(10)
        ),
        "{}",
        srv2.output()
    );
    assert!(
        wait_until(Duration::from_secs(5), || all_logs(&dir)
            .contains("oldest events dropped")),
        "{}",
        all_logs(&dir)
    );
    let text = all_logs(&dir);
    let kept = flows_from(&dir, src);
    // The newest events survive; the oldest went, and the file says how many.
    assert!(kept.contains(&(base + 99)), "{text}");
    assert!(
        kept.len() <= 30,
        "kept {} events with a limit of 30",
        kept.len()
    );
    let dropped: u64 = text
        .lines()
        .find_map(|l| {
            l.split(" status ")
                .nth(1)?
                .split(" oldest events dropped")
                .next()?
                .parse()
                .ok()
        })
        .unwrap();
    assert!(dropped >= 70, "{dropped}");
}
