//! A client written with the library's own protocol code, talking to the real server binary:
//! checks what the server writes for sequence gaps, duplicates and hostile text.

mod common;

use common::*;
use proctor::client::link::{Identity, Link, Trust};
use proctor::event::EventKind;
use proctor::protocol::message::{Message, WireEvent};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn event(seq: u64, detail: &[u8]) -> Message {
    Message::Event {
        seq,
        ts_ms: 1_700_000_000_000 + seq,
        kind: EventKind::Net,
        detail: detail.to_vec(),
    }
}

/// Sends messages and waits until the server acknowledged `until`.
fn send_and_wait_ack(link: &mut Link, msgs: &[Message], until: u64) {
    for m in msgs {
        link.send(m).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let _ = link.flush();
        for m in link.receive(Instant::now()).unwrap() {
            if let Message::Ack { seq } = m
                && seq >= until
            {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no ack for {until}");
}

#[test]
fn gaps_are_written_as_warnings_duplicates_are_dropped_and_hostile_text_is_escaped() {
    let dir = temp_dir("wire");
    let (sport, cport) = ports(32);
    let key_path = keygen(&dir, "k.key");
    let key = proctor::keyfile::parse(&std::fs::read_to_string(&key_path).unwrap())
        .unwrap()
        .key;
    let srv = server(&dir, &key_path, sport, cport, &[]);
    let session = wait_session(&srv);
    let trust = Trust {
        key,
        server_public: None,
    };
    let me = Identity {
        hostname: "evil\u{1b}[31m\npc/../x".into(),
        instance: [7; 16],
    };
    let addr: SocketAddr = ([127, 0, 0, 1], sport).into();
    let (mut link, next) =
        Link::connect(addr, &trust, session, &me, Duration::from_secs(2)).unwrap();
    assert_eq!(next, 1);
    send_and_wait_ack(
        &mut link,
        &[
            event(1, b"first"),
            event(2, b"second"),
            event(2, b"second again"),
            event(5, b"after a gap"),
            event(
                6,
                b"line\nbreak \x1b[2J and \xff\xfe bytes \xe2\x80\xae rtl",
            ),
        ],
        6,
    );
    drop(link);
    // Reconnecting with the same instance continues at 7; an old event resent is dropped.
    let (mut link, next) =
        Link::connect(addr, &trust, session, &me, Duration::from_secs(2)).unwrap();
    assert_eq!(next, 7);
    send_and_wait_ack(&mut link, &[event(6, b"resent"), event(7, b"seventh")], 7);

    let dirs = session_dirs(&dir);
    let files = log_files(&dirs[0]);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        !name.contains('/') && !name.contains('\u{1b}') && name.ends_with("_127.0.0.1.log"),
        "{name}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.contains("# host: evil\\x1b[31m\\x0apc/../x address: 127.0.0.1"),
        "{text}"
    );
    assert_eq!(
        text.matches(" second").count(),
        1,
        "duplicate dropped:\n{text}"
    );
    assert!(!text.contains("resent"));
    assert!(
        text.contains("seq=- warning events 3 to 4 never arrived from this client"),
        "{text}"
    );
    assert!(
        text.contains("seq=6 net line\\x0abreak \\x1b[2J and \\xff\\xfe bytes \\u{202e} rtl"),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            !line.chars().any(|c| c.is_control()),
            "raw control character in {line:?}"
        );
    }
    let seqs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.strip_prefix("seq=")?.parse().ok())
        .collect();
    assert_eq!(seqs, vec![1, 2, 5, 6, 7]);
}

#[test]
fn many_simulated_clients_stream_concurrently_and_every_event_lands_once_in_its_own_file() {
    let dir = temp_dir("loadgen");
    let (sport, cport) = ports(33);
    let key_path = keygen(&dir, "k.key");
    let srv = server(&dir, &key_path, sport, cport, &[]);
    let session = wait_session(&srv);
    let out = std::process::Command::new(bin())
        .args([
            "__loadgen",
            "--server",
            &format!("127.0.0.1:{sport}"),
            "--session",
            &session.hex(),
            "-k",
        ])
        .arg(&key_path)
        .args([
            "-c",
            "20",
            "-n",
            "2000",
            "--window",
            "64",
            "--timeout",
            "60",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("\"events\":40000"), "{report}");
    let dirs = session_dirs(&dir);
    let files = log_files(&dirs[0]);
    assert_eq!(files.len(), 20);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let seqs: Vec<u64> = text
            .lines()
            .filter_map(|l| l.split(' ').nth(1)?.strip_prefix("seq=")?.parse().ok())
            .collect();
        assert_eq!(seqs, (1..=2000).collect::<Vec<u64>>(), "{f:?}");
    }
}

/// Issue 5: the same gap, duplicate and hostile text sent as one batch (tag 23) come out of the
/// server exactly as when sent one by one: one cumulative Ack, each line once and in order.
#[test]
fn a_batch_is_written_exactly_like_the_same_events_sent_alone() {
    let dir = temp_dir("wire-batch");
    let (sport, cport) = ports(34);
    let key_path = keygen(&dir, "k.key");
    let key = proctor::keyfile::parse(&std::fs::read_to_string(&key_path).unwrap())
        .unwrap()
        .key;
    let srv = server(&dir, &key_path, sport, cport, &[]);
    let session = wait_session(&srv);
    let trust = Trust {
        key,
        server_public: None,
    };
    let me = Identity {
        hostname: "batch-pc".into(),
        instance: [8; 16],
    };
    let addr: SocketAddr = ([127, 0, 0, 1], sport).into();
    let (mut link, next) =
        Link::connect(addr, &trust, session, &me, Duration::from_secs(2)).unwrap();
    assert_eq!(next, 1);
    let wire = |seq: u64, detail: &[u8]| WireEvent {
        seq,
        ts_ms: 1_700_000_000_000 + seq,
        kind: EventKind::Net,
        detail: detail.to_vec(),
    };
    let batch = Message::Events {
        events: vec![
            wire(1, b"first"),
            wire(2, b"second"),
            wire(2, b"second again"),
            wire(5, b"after a gap"),
            wire(6, b"line\nbreak \x1b[2J and \xff\xfe bytes"),
        ],
    };
    send_and_wait_ack(&mut link, &[batch], 6);
    let text = std::fs::read_to_string(&log_files(&session_dirs(&dir)[0])[0]).unwrap();
    let seqs: Vec<u64> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.strip_prefix("seq=")?.parse().ok())
        .collect();
    assert_eq!(seqs, vec![1, 2, 5, 6], "{text}");
    assert_eq!(text.matches(" second").count(), 1, "{text}");
    assert!(
        text.contains("seq=- warning events 3 to 4 never arrived from this client"),
        "{text}"
    );
    assert!(
        text.contains(
            "2023-11-14T22:13:20.006Z seq=6 net line\\x0abreak \\x1b[2J and \\xff\\xfe bytes"
        ),
        "{text}"
    );
}

/// `__loadgen --rate --stamp` (issue 5): events are paced and each line carries the send time,
/// so the benchmark can compute transport latency from the file.
#[test]
fn loadgen_paces_and_stamps_its_events() {
    let dir = temp_dir("loadgen-rate");
    let (sport, cport) = ports(35);
    let key_path = keygen(&dir, "k.key");
    let srv = server(&dir, &key_path, sport, cport, &[]);
    let session = wait_session(&srv);
    let before_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros();
    let t0 = Instant::now();
    let out = std::process::Command::new(bin())
        .args([
            "__loadgen",
            "--server",
            &format!("127.0.0.1:{sport}"),
            "--session",
            &session.hex(),
            "-k",
        ])
        .arg(&key_path)
        .args(["-n", "50", "--rate", "200", "--stamp", "--timeout", "30"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 50 events at 200/s: the last is due 245 ms after the first.
    assert!(took >= Duration::from_millis(240), "not paced: {took:?}");
    let text = std::fs::read_to_string(&log_files(&session_dirs(&dir)[0])[0]).unwrap();
    let stamps: Vec<u128> = text
        .lines()
        .filter(|l| l.contains(" seq=") && !l.contains(" seq=-"))
        .map(|l| {
            let (_, t) = l
                .rsplit_once(" t=")
                .unwrap_or_else(|| panic!("no stamp: {l}"));
            t.parse().unwrap_or_else(|_| panic!("bad stamp: {l}"))
        })
        .collect();
    assert_eq!(stamps.len(), 50, "{text}");
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(stamps[0] >= before_us, "{} < {before_us}", stamps[0]);
    // Paced: about 5 ms apart, so the stamps span most of the 245 ms.
    assert!(stamps[49] - stamps[0] >= 200_000, "{stamps:?}");
}
