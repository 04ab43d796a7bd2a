//! Live tests of the hidden `__capture-worker` subcommand on the loopback interface (the tests
//! run as root). Every test sends its own traffic to 127.0.0.1 on ports derived from the process
//! id, looks only for lines about those ports, and never waits without a timeout.

mod common;

use common::{CaptureWorker as Worker, SHORT, bin};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Ports for this test process: 20000..40000, distinct per test through `slot`.
fn port(slot: u16) -> u16 {
    20_000 + ((std::process::id() % 1_200) as u16) * 10 + slot
}

/// The two ports of a report's endpoints (`... a:p -> b:q ...`).
fn ports_of(detail: &str) -> Option<(u16, u16)> {
    let mut words = detail.split(' ');
    let src = words.nth(2)?;
    let dst = words.nth(1)?;
    let p = |s: &str| s.rsplit_once(':').and_then(|(_, p)| p.parse().ok());
    Some((p(src)?, p(dst)?))
}

#[test]
fn reports_udp_and_tcp_flows_and_stops_cleanly() {
    let udp_port = port(0);
    let excluded = port(1);
    let mut w = Worker::spawn(&["--exclude-udp-port", &excluded.to_string()]);
    w.wait_started();

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap().port();
    let sent = Instant::now();
    sock.send_to(b"hello", ("127.0.0.1", udp_port)).unwrap();
    let want_udp = format!("new udp 127.0.0.1:{me} -> 127.0.0.1:{udp_port}");
    w.wait_for(&want_udp, SHORT, |l| l.ends_with(&want_udp));
    let latency = sent.elapsed();
    assert!(
        latency < Duration::from_secs(2),
        "new flow took {latency:?}"
    );
    // Sends to port 53 and to the excluded port may fail if nothing listens; that is fine.
    let _ = sock.send_to(b"dns?", ("127.0.0.1", 53));
    let _ = sock.send_to(b"own", ("127.0.0.1", excluded));
    sock.send_to(b"again", ("127.0.0.1", udp_port)).unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", lport)).unwrap();
    let cport = client.local_addr().unwrap().port();
    let (mut server, _) = listener.accept().unwrap();
    // A clean exchange and close (unread data would make the kernel send RST instead of FIN).
    let mut buf = [0u8; 4];
    client.write_all(b"ping").unwrap();
    server.read_exact(&mut buf).unwrap();
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(server.read(&mut buf).unwrap(), 0);
    drop(server);
    assert_eq!(client.read(&mut buf).unwrap(), 0);
    drop(client);
    let want_tcp = format!("new tcp 127.0.0.1:{cport} -> 127.0.0.1:{lport} flags=S");
    w.wait_for(&want_tcp, SHORT, |l| l.ends_with(&want_tcp));
    let end_tcp = format!("end tcp 127.0.0.1:{cport} -> 127.0.0.1:{lport} packets=");
    let l = w.wait_for("the TCP end", SHORT, |l| {
        l.contains(&end_tcp) && l.ends_with("reason=fin")
    });
    assert!(l.starts_with("net\t"));

    let status = w.stop();
    assert!(
        status.success(),
        "worker exit: {status:?}; saw {:#?}",
        w.seen
    );
    let end_udp = format!("end udp 127.0.0.1:{me} -> 127.0.0.1:{udp_port} packets=2 ");
    assert!(
        w.net_details()
            .iter()
            .any(|d| d.starts_with(&end_udp) && d.ends_with("reason=stop")),
        "no stop end for the UDP flow: {:#?}",
        w.seen
    );
    for d in w.net_details() {
        let (a, b) = ports_of(&d).unwrap_or_else(|| panic!("malformed detail {d}"));
        assert!(a != 53 && b != 53, "DNS reported: {d}");
        assert!(
            a != excluded && b != excluded,
            "excluded port reported: {d}"
        );
    }
    // Exactly one new line for our UDP flow (both datagrams are one flow).
    let news = w.net_details().iter().filter(|d| **d == want_udp).count();
    assert_eq!(news, 1);
}

#[test]
fn per_packet_mode_reports_each_datagram() {
    let target = port(2);
    let mut w = Worker::spawn(&["--per-packet"]);
    w.wait_started();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let me = sock.local_addr().unwrap().port();
    for i in 0..3u8 {
        sock.send_to(&[i; 10], ("127.0.0.1", target)).unwrap();
    }
    let want = format!("pkt udp 127.0.0.1:{me} -> 127.0.0.1:{target} len=");
    let count = |w: &Worker| {
        w.net_details()
            .iter()
            .filter(|d| d.starts_with(&want))
            .count()
    };
    let deadline = Instant::now() + SHORT;
    while count(&w) < 3 {
        assert!(Instant::now() < deadline, "saw {:#?}", w.seen);
        w.wait_for(&want, SHORT, |l| l.contains(&want));
        // Consume further lines that may already be queued.
        while let Ok(l) = w.lines.recv_timeout(Duration::from_millis(100)) {
            w.seen.push(l);
        }
    }
    assert_eq!(count(&w), 3);
    let status = w.stop();
    assert!(status.success());
    assert!(!w.net_details().iter().any(|d| d.starts_with("end ")));
}

#[test]
fn unknown_interface_is_reported_and_fails() {
    let out = Command::new(bin())
        .args(["__capture-worker", "--iface", "proctor-no-such0"])
        .stdin(Stdio::piped())
        .output()
        .expect("run worker");
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("status\t") && stdout.contains("cannot capture on proctor-no-such0"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
