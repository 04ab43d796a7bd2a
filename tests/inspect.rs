//! End-to-end tests of `proctor inspect`: each test writes its own capture file with libpcap
//! (or by hand, for pcapng), runs the real binary on it and checks what it prints.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use proctor::testkit::packets::{
    client_hello, dns_answer, eth, eth_tcp, eth_udp, ipv4, ipv6, tcp, udp, v6,
};

const SYN: u8 = 0x02;
const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [10, 0, 0, 2];
const T0: u64 = 1_700_000_000_000_000;

/// A fresh directory for one test, unique per process and test name.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("proctor-inspect-{}-{test}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a pcap file of link type `dlt` with the given (timestamp µs, frame) packets.
fn write_pcap(path: &Path, dlt: i32, packets: &[(u64, Vec<u8>)]) {
    let cap = pcap::Capture::dead(pcap::Linktype(dlt)).expect("dead capture");
    let mut file = cap.savefile(path).expect("savefile");
    for (ts, data) in packets {
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (ts / 1_000_000) as libc::time_t,
                tv_usec: (ts % 1_000_000) as libc::suseconds_t,
            },
            caplen: data.len() as u32,
            len: data.len() as u32,
        };
        file.write(&pcap::Packet::new(&header, data));
    }
    file.flush().expect("flush savefile");
}

fn inspect(args: &[&str], file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_proctor"))
        .arg("inspect")
        .args(args)
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .expect("run proctor inspect")
}

/// Runs inspect, requires success and returns stdout's lines without their timestamps.
fn details(args: &[&str], file: &Path) -> Vec<String> {
    let out = inspect(args, file);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "inspect failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    stdout
        .lines()
        .map(|l| {
            let (ts, rest) = l.split_once(' ').expect("timestamp then detail");
            assert!(
                ts.len() == 24 && ts.ends_with('Z') && ts.contains('T'),
                "{l}"
            );
            rest.to_string()
        })
        .collect()
}

fn one_file(test: &str, dlt: i32, packets: &[(u64, Vec<u8>)]) -> (TempDir, PathBuf) {
    let dir = TempDir::new(test);
    let path = dir.file("capture.pcap");
    write_pcap(&path, dlt, packets);
    (dir, path)
}

fn handshake() -> Vec<(u64, Vec<u8>)> {
    let c = |f, d: &[u8]| eth_tcp(A, 40000, B, 5555, f, d);
    let s = |f, d: &[u8]| eth_tcp(B, 5555, A, 40000, f, d);
    vec![
        (T0, c(SYN, b"")),
        (T0 + 100, s(SYN | ACK, b"")),
        (T0 + 200, c(ACK, b"")),
        (T0 + 300, c(PSH | ACK, b"GET / HTTP/1.0\r\n\r\n")),
        (T0 + 400, s(PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\n")),
        (T0 + 1_234_000, c(FIN | ACK, b"")),
        (T0 + 1_234_100, s(FIN | ACK, b"")),
        (T0 + 1_234_200, c(ACK, b"")),
    ]
}

#[test]
fn tcp_handshake_data_fin_gives_new_and_end() {
    let (_d, f) = one_file("handshake", 1, &handshake());
    let lines = details(&[], &f);
    let total: usize = handshake()[..7].iter().map(|(_, p)| p.len()).sum();
    assert_eq!(
        lines,
        vec![
            "new tcp 10.0.0.1:40000 -> 10.0.0.2:5555 flags=S".to_string(),
            format!(
                "end tcp 10.0.0.1:40000 -> 10.0.0.2:5555 packets=7 bytes={total} duration=1.234s reason=fin"
            ),
        ]
    );
    let out = inspect(&[], &f);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("2023-11-14T22:13:20.000Z new tcp"),
        "{text}"
    );
}

#[test]
fn udp_is_reported_and_dns_is_not() {
    let (_d, f) = one_file(
        "udp_dns",
        1,
        &[
            (T0, eth_udp(A, 40000, B, 5556)),
            (T0 + 10, eth_udp(B, 5556, A, 40000)),
            (T0 + 20, eth_udp(A, 40001, B, 53)),
            (T0 + 30, eth_udp(B, 53, A, 40001)),
            (T0 + 40, eth_tcp(A, 40002, B, 53, SYN, b"")),
        ],
    );
    let lines = details(&[], &f);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "new udp 10.0.0.1:40000 -> 10.0.0.2:5556");
    assert!(lines[1].starts_with("end udp 10.0.0.1:40000 -> 10.0.0.2:5556 packets=2 "));
    assert!(lines[1].ends_with("reason=eof"));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(":53 ") || l.ends_with(":53"))
    );
}

#[test]
fn tcp_without_syn_or_ack_rst_and_arp() {
    let (_d, f) = one_file(
        "odd_tcp",
        1,
        &[
            (T0, eth_tcp(A, 40000, B, 80, 0, b"")),
            (T0 + 1, eth_tcp(A, 40000, B, 80, FIN | PSH, b"")),
            (T0 + 2, eth(0x0806, &[0u8; 28])),
            (T0 + 3, eth_tcp(A, 40001, B, 81, SYN, b"")),
            (T0 + 4, eth_tcp(B, 81, A, 40001, RST | ACK, b"")),
        ],
    );
    let lines = details(&[], &f);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "new tcp 10.0.0.1:40001 -> 10.0.0.2:81 flags=S");
    assert!(lines[1].ends_with("reason=rst"), "{lines:?}");
}

#[test]
fn vlan_and_ipv6_endpoints() {
    let mut tagged = vec![0x00, 0x64, 0x08, 0x00];
    tagged.extend_from_slice(&ipv4(A, B, 17, &udp(41000, 6000, b"v")));
    let mut qinq = vec![0x00, 0x0a, 0x81, 0x00];
    qinq.extend_from_slice(&tagged);
    let v6pkt = ipv6(
        v6("2001:db8::1"),
        v6("2001:db8::2"),
        6,
        &tcp(40000, 443, SYN, b""),
    );
    let (_d, f) = one_file(
        "vlan_v6",
        1,
        &[
            (T0, eth(0x8100, &tagged)),
            (T0 + 1, eth(0x88a8, &qinq)),
            (T0 + 2, eth(0x86dd, &v6pkt)),
        ],
    );
    let lines = details(&[], &f);
    assert_eq!(lines[0], "new udp 10.0.0.1:41000 -> 10.0.0.2:6000");
    assert_eq!(
        lines[1],
        "new tcp [2001:db8::1]:40000 -> [2001:db8::2]:443 flags=S"
    );
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[2..].iter().all(|l| l.ends_with("reason=eof")));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("end udp 10.0.0.1:41000 -> 10.0.0.2:6000 packets=2 "))
    );
}

#[test]
fn other_link_types() {
    let ip = ipv4(A, B, 17, &udp(42000, 7000, b"link"));
    let mut sll = vec![0u8; 16];
    sll[14..16].copy_from_slice(&0x0800u16.to_be_bytes());
    sll.extend_from_slice(&ip);
    let mut sll2 = vec![0u8; 20];
    sll2[0..2].copy_from_slice(&0x0800u16.to_be_bytes());
    sll2.extend_from_slice(&ip);
    let mut null = 2u32.to_ne_bytes().to_vec();
    null.extend_from_slice(&ip);
    let mut null6 = 30u32.to_be_bytes().to_vec();
    null6.extend_from_slice(&ipv6(v6("::1"), v6("::2"), 17, &udp(1, 2, b"")));
    let cases: Vec<(&str, i32, Vec<Vec<u8>>)> = vec![
        ("sll", 113, vec![sll]),
        ("sll2", 276, vec![sll2]),
        ("raw", 12, vec![ip.clone()]),
        ("null", 0, vec![null]),
        ("null6", 0, vec![null6]),
    ];
    for (name, dlt, frames) in cases {
        let pkts: Vec<(u64, Vec<u8>)> = frames.into_iter().map(|f| (T0, f)).collect();
        let (_d, f) = one_file(&format!("link_{name}"), dlt, &pkts);
        let lines = details(&[], &f);
        let want = if name == "null6" {
            "new udp [::1]:1 -> [::2]:2"
        } else {
            "new udp 10.0.0.1:42000 -> 10.0.0.2:7000"
        };
        assert_eq!(
            lines.first().map(String::as_str),
            Some(want),
            "{name}: {lines:?}"
        );
        assert_eq!(lines.len(), 2, "{name}: {lines:?}");
    }
}

#[test]
fn unsupported_link_type_is_a_clear_error() {
    // DLT_IEEE802_11 (105).
    let (_d, f) = one_file("wifi", 105, &[(T0, vec![0u8; 40])]);
    let out = inspect(&[], &f);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unsupported link type") && err.contains("105"),
        "{err}"
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn per_packet_gives_one_line_per_selected_packet() {
    let (_d, f) = one_file("per_packet", 1, &handshake());
    let lines = details(&["--per-packet"], &f);
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert_eq!(
        lines[0],
        "pkt tcp 10.0.0.1:40000 -> 10.0.0.2:5555 flags=S len=54"
    );
    assert_eq!(
        lines[1],
        "pkt tcp 10.0.0.2:5555 -> 10.0.0.1:40000 flags=SA len=54"
    );
    assert!(lines.iter().all(|l| l.starts_with("pkt tcp ")));
}

#[test]
fn idle_timeout_uses_packet_time() {
    let (_d, f) = one_file(
        "idle",
        1,
        &[
            (T0, eth_udp(A, 40000, B, 5556)),
            (T0 + 5_000_000, eth_udp(A, 40000, B, 5556)),
        ],
    );
    let lines = details(&["--flow-idle", "2"], &f);
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[1].ends_with("reason=idle"));
    assert_eq!(lines[2], "new udp 10.0.0.1:40000 -> 10.0.0.2:5556");
    assert!(lines[3].ends_with("reason=eof"));
    // With the default 30 s it is one flow.
    assert_eq!(details(&[], &f).len(), 2);
}

#[test]
fn json_lines_have_the_required_keys() {
    let mut pkts = handshake();
    pkts.push((T0 + 2_000_000, eth_udp(A, 40000, B, 5556)));
    let (_d, f) = one_file("json", 1, &pkts);
    for per_packet in [false, true] {
        let mut args = vec!["--json"];
        if per_packet {
            args.push("--per-packet");
        }
        let out = inspect(&args, &f);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), if per_packet { 9 } else { 4 }, "{text}");
        for l in &lines {
            assert!(l.starts_with('{') && l.ends_with('}'), "{l}");
            for key in [
                "\"ts\":\"20",
                "\"event\":\"",
                "\"proto\":\"",
                "\"src\":\"10.0.0.",
                "\"sport\":",
                "\"dst\":\"10.0.0.",
                "\"dport\":",
            ] {
                assert!(l.contains(key), "{key} missing in {l}");
            }
            assert_eq!(
                l.contains("\"proto\":\"tcp\""),
                l.contains("\"flags\":\""),
                "{l}"
            );
            if l.contains("\"event\":\"end\"") {
                for key in [
                    "\"packets\":",
                    "\"bytes\":",
                    "\"duration_ms\":",
                    "\"reason\":\"",
                ] {
                    assert!(l.contains(key), "{key} missing in {l}");
                }
            }
            if l.contains("\"event\":\"pkt\"") {
                assert!(l.contains("\"len\":"), "{l}");
            }
        }
        if !per_packet {
            assert!(lines[0].contains("\"event\":\"new\"") && lines[0].contains("\"flags\":\"S\""));
            assert!(
                lines[1].contains("\"reason\":\"fin\"")
                    && lines[1].contains("\"duration_ms\":1234")
            );
            assert!(lines[3].contains("\"reason\":\"eof\""));
        }
    }
}

#[test]
fn missing_and_garbage_files_fail_cleanly() {
    let dir = TempDir::new("bad_files");
    let missing = dir.file("does-not-exist.pcap");
    let garbage = dir.file("garbage.pcap");
    // Deterministic noise, not a capture.
    let bytes = proctor::testkit::Rng::new(0x1234_5678_9abc_def0).bytes(4096);
    std::fs::write(&garbage, bytes).unwrap();
    let empty = dir.file("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    for f in [&missing, &garbage, &empty] {
        let out = inspect(&[], f);
        assert!(!out.status.success(), "{f:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot read capture"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn truncated_file_prints_what_it_read_then_fails() {
    let (_d, f) = one_file("truncated", 1, &handshake());
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() - 10]).unwrap();
    let out = inspect(&[], &f);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("new tcp 10.0.0.1:40000"), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot read capture") && !err.contains("panicked"),
        "{err}"
    );
}

/// A minimal little-endian pcapng file: section header, one Ethernet interface, enhanced
/// packet blocks (timestamps in microseconds).
fn pcapng(packets: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, kind: u32, body: &[u8]| {
        let len = (12 + body.len()) as u32;
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d_0d0a, &shb);
    let mut idb = Vec::new();
    idb.extend_from_slice(&1u16.to_le_bytes());
    idb.extend_from_slice(&0u16.to_le_bytes());
    idb.extend_from_slice(&65535u32.to_le_bytes());
    block(&mut out, 1, &idb);
    for (ts, data) in packets {
        let mut epb = Vec::new();
        epb.extend_from_slice(&0u32.to_le_bytes());
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(*ts as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
        epb.extend_from_slice(data);
        while epb.len() % 4 != 0 {
            epb.push(0);
        }
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn reads_pcapng() {
    let dir = TempDir::new("pcapng");
    let f = dir.file("capture.pcapng");
    std::fs::write(&f, pcapng(&handshake())).unwrap();
    let lines = details(&[], &f);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0], "new tcp 10.0.0.1:40000 -> 10.0.0.2:5555 flags=S");
    assert!(lines[1].ends_with("duration=1.234s reason=fin"));
}

#[test]
fn closed_stdout_ends_quietly() {
    let pkts: Vec<(u64, Vec<u8>)> = (0..20_000u64)
        .map(|i| (T0 + i, eth_udp(A, 40000, B, 5556)))
        .collect();
    let (_d, f) = one_file("epipe", 1, &pkts);
    let mut child = Command::new(env!("CARGO_BIN_EXE_proctor"))
        .args(["inspect", "--per-packet"])
        .arg(&f)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    assert!(first.contains("pkt udp"), "{first}");
    // The reader is dropped here: the pipe is closed with most output unread.
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}: {err}", out.status);
    assert!(err.is_empty(), "{err}");
}

/// DNS answers for B (IPv4) and 2001:db8::2 (IPv6), then a TLS connection to B:443 and a UDP
/// flow to [2001:db8::2]:443, and a flow to an address nobody asked about.
fn named_traffic() -> Vec<(u64, Vec<u8>)> {
    const RESOLVER: [u8; 4] = [10, 0, 0, 53];
    let dns4 = dns_answer("Exam.School.example", 1, &B);
    let dns6 = dns_answer("quic.example", 28, &v6("2001:db8::2"));
    let c = |f, d: &[u8]| eth_tcp(A, 40000, B, 443, f, d);
    let s = |f, d: &[u8]| eth_tcp(B, 443, A, 40000, f, d);
    vec![
        (
            T0,
            eth(0x0800, &ipv4(A, RESOLVER, 17, &udp(33333, 53, b"query"))),
        ),
        (
            T0 + 10,
            eth(0x0800, &ipv4(RESOLVER, A, 17, &udp(53, 33333, &dns4))),
        ),
        (
            T0 + 20,
            eth(
                0x86dd,
                &ipv6(
                    v6("2001:db8::53"),
                    v6("2001:db8::1"),
                    17,
                    &udp(53, 33334, &dns6),
                ),
            ),
        ),
        (T0 + 100, c(SYN, b"")),
        (T0 + 200, s(SYN | ACK, b"")),
        (T0 + 300, c(ACK, b"")),
        (T0 + 400, c(PSH | ACK, &client_hello("exam.school.example"))),
        (T0 + 500, s(PSH | ACK, b"\x16\x03\x03\x00\x01\x02")),
        (T0 + 600, c(FIN | ACK, b"")),
        (T0 + 700, s(FIN | ACK, b"")),
        (
            T0 + 800,
            eth(
                0x86dd,
                &ipv6(
                    v6("2001:db8::1"),
                    v6("2001:db8::2"),
                    17,
                    &udp(40001, 443, b"q"),
                ),
            ),
        ),
        (T0 + 900, eth_udp(A, 40002, [10, 0, 0, 99], 5556)),
    ]
}

#[test]
fn sni_and_dns_learned_names_in_text() {
    let (_d, f) = one_file("names", 1, &named_traffic());
    let lines = details(&[], &f);
    assert_eq!(
        lines[..2],
        [
            "new tcp 10.0.0.1:40000 -> 10.0.0.2:443 flags=S name=exam.school.example (dns)",
            "tls tcp 10.0.0.1:40000 -> 10.0.0.2:443 sni=exam.school.example",
        ],
        "{lines:#?}"
    );
    // The end line keeps its format (no names).
    assert!(
        lines[2].starts_with("end tcp 10.0.0.1:40000 -> 10.0.0.2:443 packets=7 ")
            && lines[2].ends_with(" reason=fin"),
        "{lines:#?}"
    );
    assert_eq!(
        lines[3],
        "new udp [2001:db8::1]:40001 -> [2001:db8::2]:443 name=quic.example (dns)"
    );
    assert_eq!(lines[4], "new udp 10.0.0.1:40002 -> 10.0.0.99:5556");
    assert_eq!(lines.len(), 7, "{lines:#?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains(":53 ") || l.contains(":3333"))
    );

    let pkts = details(&["--per-packet"], &f);
    assert!(
        pkts.contains(
            &"pkt tcp 10.0.0.1:40000 -> 10.0.0.2:443 flags=PA len=140 name=exam.school.example (dns) sni=exam.school.example"
                .to_string()
        ),
        "{pkts:#?}"
    );
    assert_eq!(pkts.iter().filter(|l| l.contains("sni=")).count(), 1);
    assert_eq!(pkts.len(), 9, "{pkts:#?}");
}

#[test]
fn sni_and_dns_learned_names_in_json() {
    let (_d, f) = one_file("names_json", 1, &named_traffic());
    let out = inspect(&["--json"], &f);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "{text}");
    assert!(
        lines[0].ends_with(r#""dport":443,"flags":"S","name":"exam.school.example"}"#),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(r#""event":"tls""#)
            && lines[1].ends_with(r#""flags":"PA","sni":"exam.school.example"}"#),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains(r#""event":"end""#)
            && lines[2].ends_with(r#""name":"exam.school.example","sni":"exam.school.example"}"#),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].ends_with(r#""dport":443,"name":"quic.example"}"#),
        "{}",
        lines[3]
    );
    assert!(!lines[4].contains("\"name\"") && !lines[4].contains("\"sni\""));
}

#[test]
fn sni_split_across_two_segments() {
    // A ClientHello of about 1.8 kB whose server_name extension is in the second segment.
    let mut hello = client_hello("split.example.net");
    let ext_total_off = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2;
    let pad = 1800usize;
    let mut padding = vec![0, 21];
    padding.extend_from_slice(&(pad as u16).to_be_bytes());
    padding.extend(std::iter::repeat_n(0u8, pad));
    hello.splice(ext_total_off + 2..ext_total_off + 2, padding);
    let grow = |b: &mut Vec<u8>, off: usize, by: usize, width: usize| {
        let mut v = 0usize;
        for i in 0..width {
            v = (v << 8) | b[off + i] as usize;
        }
        v += by;
        for i in 0..width {
            b[off + width - 1 - i] = (v >> (8 * i)) as u8;
        }
    };
    grow(&mut hello, 3, pad + 4, 2);
    grow(&mut hello, 6, pad + 4, 3);
    grow(&mut hello, ext_total_off, pad + 4, 2);
    let seg = |seq: u32, flags: u8, data: &[u8]| {
        let mut t = tcp(40000, 443, flags, data);
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        eth(0x0800, &ipv4(A, B, 6, &t))
    };
    let isn = 0xffff_fc00u32; // the sequence numbers wrap inside the ClientHello
    let (first, second) = hello.split_at(1448);
    let (_d, f) = one_file(
        "sni_split",
        1,
        &[
            (T0, seg(isn, SYN, b"")),
            (T0 + 100, eth_tcp(B, 443, A, 40000, SYN | ACK, b"")),
            (T0 + 200, seg(isn.wrapping_add(1), PSH | ACK, first)),
            // A retransmission of the first segment changes nothing.
            (T0 + 250, seg(isn.wrapping_add(1), PSH | ACK, first)),
            (
                T0 + 300,
                seg(isn.wrapping_add(1 + first.len() as u32), PSH | ACK, second),
            ),
        ],
    );
    let lines = details(&[], &f);
    assert_eq!(
        lines[..2],
        [
            "new tcp 10.0.0.1:40000 -> 10.0.0.2:443 flags=S",
            "tls tcp 10.0.0.1:40000 -> 10.0.0.2:443 sni=split.example.net",
        ],
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 3, "{lines:#?}");
}
