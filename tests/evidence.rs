//! Issue 4, "nothing lost, nothing twice": break things on purpose and compare the events
//! generated with the events in the files. Each event here is a UDP flow to its own local port,
//! so "generated" is the set of ports and "stored" is the set of `net new udp` lines.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::time::Duration;

/// Sends one datagram to each port in `ports` from one socket, `per_sec` per second.
fn send_flows(sock: &UdpSocket, ports: std::ops::Range<u16>, per_sec: u32) {
    for p in ports {
        sock.send_to(b"x", ("127.0.0.1", p)).unwrap();
        std::thread::sleep(Duration::from_secs_f64(1.0 / per_sec as f64));
    }
}

/// For each destination port of a `net new udp <src> -> 127.0.0.1:<port>` line from `src_port`:
/// how many times it appears, and the sequence numbers in file order.
fn flows_in_logs(dir: &std::path::Path, src_port: u16) -> (BTreeMap<u16, usize>, Vec<u64>) {
    let mut count = BTreeMap::new();
    let mut seqs = Vec::new();
    let needle = format!("net new udp 127.0.0.1:{src_port} -> 127.0.0.1:");
    for line in all_logs(dir).lines() {
        if let Some(rest) = line.split(&needle).nth(1) {
            // The port, before whatever the line carries after it (` proc=...`, a verdict).
            let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
            *count.entry(port).or_insert(0) += 1;
            let seq = line
                .split(' ')
                .nth(1)
                .and_then(|s| s.strip_prefix("seq="))
                .and_then(|s| s.parse().ok())
                .unwrap();
            seqs.push(seq);
        }
    }
    (count, seqs)
}

fn assert_exactly_once_in_order(dir: &std::path::Path, src_port: u16, ports: std::ops::Range<u16>) {
    let (count, seqs) = flows_in_logs(dir, src_port);
    let missing: Vec<u16> = ports.clone().filter(|p| !count.contains_key(p)).collect();
    let doubled: Vec<(&u16, &usize)> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(missing.is_empty(), "lost events for ports {missing:?}");
    assert!(doubled.is_empty(), "duplicated events {doubled:?}");
    assert_eq!(count.len(), ports.len());
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers out of order: {seqs:?}"
    );
}

#[test]
fn server_killed_mid_stream_and_restarted_loses_and_duplicates_nothing() {
    let dir = temp_dir("srvkill");
    let (sport, cport) = ports(20);
    let key = keygen(&dir, "k.key");
    let mut srv = server(&dir, &key, sport, cport, &[]);
    let cl = client(&dir, &key, cport, "kill-srv-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "kill-srv-pc");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let src = sock.local_addr().unwrap().port();
    let base = 12000 + (std::process::id() % 1000) as u16 * 3;
    let first = base..base + 100;
    let during = base + 100..base + 200;
    let after = base + 200..base + 300;

    send_flows(&sock, first.clone(), 200);
    srv.signal(libc::SIGKILL);
    let _ = srv.wait_exit(Duration::from_secs(2));
    // Events keep happening while the server is down.
    send_flows(&sock, during.clone(), 200);
    let mut srv2 = server(&dir, &key, sport, cport, &[]);
    assert!(
        srv2.wait_for("resuming session", Duration::from_secs(5)),
        "{}",
        srv2.output()
    );
    assert!(
        srv2.wait_for(
            "kill-srv-pc (127.0.0.1) reconnected",
            Duration::from_secs(10)
        ),
        "{}",
        srv2.output()
    );
    send_flows(&sock, after.clone(), 200);
    assert!(wait_until(Duration::from_secs(10), || flows_in_logs(
        &dir, src
    )
    .0
    .len()
        >= 300));
    srv2.signal(libc::SIGINT);
    assert_eq!(srv2.wait_exit(Duration::from_secs(10)), Some(0));

    assert_eq!(
        session_dirs(&dir).len(),
        1,
        "the restarted server continued the same session"
    );
    assert_exactly_once_in_order(&dir, src, base..base + 300);
    let text = all_logs(&dir);
    assert!(
        text.contains("reconnected from 127.0.0.1"),
        "the reconnection and its gap are in the file"
    );
    assert!(!text.contains("never arrived"), "no sequence gap");
}

#[test]
fn a_frozen_client_is_flagged_lost_within_3_seconds_and_its_return_is_logged() {
    let dir = temp_dir("frozen");
    let (sport, cport) = ports(21);
    let key = keygen(&dir, "k.key");
    let srv = server(&dir, &key, sport, cport, &[]);
    let cl = client(&dir, &key, cport, "frozen-pc", &[]);
    assert!(srv.wait_for("frozen-pc (127.0.0.1) connected", Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(500));
    cl.signal(libc::SIGSTOP);
    let t0 = std::time::Instant::now();
    assert!(
        srv.wait_for("frozen-pc (127.0.0.1) LOST", Duration::from_secs(5)),
        "{}",
        srv.output()
    );
    let took = t0.elapsed();
    assert!(
        took <= Duration::from_millis(3000),
        "flagged lost after {took:?}"
    );
    cl.signal(libc::SIGCONT);
    assert!(
        srv.wait_for(
            "frozen-pc (127.0.0.1) reconnected after",
            Duration::from_secs(10)
        ),
        "{}",
        srv.output()
    );
    let text = all_logs(&dir);
    assert!(
        text.contains("warning connection lost: no data for 2.5 s"),
        "{text}"
    );
    assert!(text.contains("reconnected from 127.0.0.1"));
}

#[test]
fn client_killed_while_the_server_is_down_delivers_its_spool_once_after_both_restart() {
    let dir = temp_dir("clkill");
    let (sport, cport) = ports(22);
    let key = keygen(&dir, "k.key");
    let mut srv = server(&dir, &key, sport, cport, &[]);
    let mut cl = client(&dir, &key, cport, "kill-cl-pc", &[]);
    assert_joined_and_capturing(&srv, &cl, &dir, "kill-cl-pc");
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let src = sock.local_addr().unwrap().port();
    let base = 15000 + (std::process::id() % 1000) as u16 * 3;

    send_flows(&sock, base..base + 50, 200);
    assert!(wait_until(Duration::from_secs(5), || flows_in_logs(
        &dir, src
    )
    .0
    .len()
        >= 50));
    srv.signal(libc::SIGKILL);
    let _ = srv.wait_exit(Duration::from_secs(2));
    // Observed while the server is down: only the client's spool holds these.
    send_flows(&sock, base + 50..base + 100, 200);
    std::thread::sleep(Duration::from_millis(1500));
    cl.signal(libc::SIGKILL);
    let _ = cl.wait_exit(Duration::from_secs(2));
    let cl2 = client(&dir, &key, cport, "kill-cl-pc", &[]);
    assert!(
        cl2.wait_for("holds session", Duration::from_secs(5)),
        "{}",
        cl2.output()
    );
    assert!(wait_until(Duration::from_secs(5), || cl2
        .output()
        .contains("not reachable yet")));
    std::thread::sleep(Duration::from_millis(1000));
    send_flows(&sock, base + 100..base + 150, 200);
    let mut srv2 = server(&dir, &key, sport, cport, &[]);
    assert!(
        srv2.wait_for(
            "kill-cl-pc (127.0.0.1) reconnected",
            Duration::from_secs(10)
        ),
        "{}",
        srv2.output()
    );
    assert!(
        wait_until(Duration::from_secs(10), || flows_in_logs(&dir, src).0.len()
            >= 150),
        "{}",
        all_logs(&dir)
    );
    srv2.signal(libc::SIGINT);
    assert_eq!(srv2.wait_exit(Duration::from_secs(10)), Some(0));
    assert_exactly_once_in_order(&dir, src, base..base + 150);
    assert!(all_logs(&dir).contains("monitoring resumed after a client restart"));
}

#[test]
fn a_full_log_filesystem_keeps_events_unacknowledged_until_there_is_room() {
    let dir = temp_dir("diskfull");
    let (sport, cport) = ports(23);
    let key = keygen(&dir, "k.key");
    let logs = dir.join("logs");
    let _fs = TmpfsMount::mount(&logs, "proctor-full");
    // The tmpfs is 1 MiB; the session directory and the client's file are created first.
    let srv = server(&dir, &key, sport, cport, &[]);
    let _cl = client(&dir, &key, cport, "full-pc", &[]);
    assert_joined_and_capturing(&srv, &_cl, &dir, "full-pc");
    let filler = logs.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let src = sock.local_addr().unwrap().port();
    let base = 18000 + (std::process::id() % 1000) as u16 * 3;
    send_flows(&sock, base..base + 60, 200);
    assert!(
        srv.wait_for("cannot write log for full-pc", Duration::from_secs(5)),
        "{}",
        srv.output()
    );
    assert!(
        flows_in_logs(&dir, src).0.len() < 60,
        "the disk was full, yet everything was written?"
    );
    std::thread::sleep(Duration::from_secs(2));
    std::fs::remove_file(&filler).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || flows_in_logs(&dir, src).0.len()
            >= 60),
        "{}",
        srv.output()
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once_in_order(&dir, src, base..base + 60);
}
