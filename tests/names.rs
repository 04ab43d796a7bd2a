//! Live tests of server names in network events (issue 6, "Names"), with the real
//! `__capture-worker` on the loopback interface (the tests run as root):
//! - a TCP client that sends a real TLS ClientHello record naming a server gets one
//!   `tls tcp A:P -> B:Q sni=NAME` line;
//! - a DNS response sent from 127.0.0.1 port 53 teaches a name for 127.0.0.77, and the next
//!   UDP flow to 127.0.0.77 is reported with `name=NAME (dns)`; the DNS datagram itself is never
//!   reported.
//!
//! Names and ports are unique per test process, and every wait has a timeout.

mod common;

use common::{CaptureWorker as Worker, SHORT};
use proctor::testkit::packets::client_hello;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, UdpSocket};

/// A DNS response (id 0x4242, recursion available, no error) to an A query for `qname`, whose
/// answer goes through a CNAME to an A record with `addr`.
fn dns_response(qname: &str, addr: [u8; 4]) -> Vec<u8> {
    let wire = |n: &str| {
        let mut out = Vec::new();
        for label in n.split('.') {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    };
    let rr = |m: &mut Vec<u8>, owner: &[u8], ty: u16, rdata: &[u8]| {
        m.extend_from_slice(owner);
        m.extend_from_slice(&ty.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
        m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        m.extend_from_slice(rdata);
    };
    let mut m = vec![0x42, 0x42, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend_from_slice(&wire(qname));
    m.extend_from_slice(&[0, 1, 0, 1]);
    let target = wire("edge.cdn.proctor.test");
    rr(&mut m, &[0xc0, 12], 5, &target);
    rr(&mut m, &target, 1, &addr);
    m
}

#[test]
fn sni_and_dns_names_on_loopback() {
    let pid = std::process::id();
    let sni_name = format!("exam-{pid}.proctor.test");
    let dns_name = format!("site-{pid}.proctor.test");
    let mut w = Worker::spawn(&[]);
    w.wait_started();

    // A TLS-like handshake: the client's first bytes are a ClientHello naming the server.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", lport)).unwrap();
    let cport = client.local_addr().unwrap().port();
    let (mut server, _) = listener.accept().unwrap();
    let hello = client_hello(&sni_name);
    client.write_all(&hello).unwrap();
    let mut got = vec![0u8; hello.len()];
    server.read_exact(&mut got).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    server.read_to_end(&mut rest).unwrap();
    drop(server);
    drop(client);
    let want_tls = format!("tls tcp 127.0.0.1:{cport} -> 127.0.0.1:{lport} sni={sni_name}");
    let l = w.wait_for(&want_tls, SHORT, |l| l.ends_with(&want_tls));
    assert!(l.starts_with("net\t"), "{l}");

    // A DNS response from 127.0.0.1:53 to a local resolver socket, then a flow to the address.
    let resolver = UdpSocket::bind("127.0.0.1:0").unwrap();
    let rport = resolver.local_addr().unwrap().port();
    let dns = UdpSocket::bind("127.0.0.1:53").expect("bind 127.0.0.1:53 (tests run as root)");
    dns.send_to(
        &dns_response(&dns_name, [127, 0, 0, 77]),
        ("127.0.0.1", rport),
    )
    .unwrap();
    let mut buf = [0u8; 512];
    resolver.set_read_timeout(Some(SHORT)).unwrap();
    resolver
        .recv_from(&mut buf)
        .expect("DNS datagram delivered");
    let target = UdpSocket::bind("127.0.0.77:0").unwrap();
    let tport = target.local_addr().unwrap().port();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sport = sender.local_addr().unwrap().port();
    sender.send_to(b"hello", ("127.0.0.77", tport)).unwrap();
    let want_udp = format!("new udp 127.0.0.1:{sport} -> 127.0.0.77:{tport} name={dns_name} (dns)");
    w.wait_for(&want_udp, SHORT, |l| l.ends_with(&want_udp));

    let status = w.stop();
    assert!(status.success(), "worker exit {status:?}: {:#?}", w.seen);
    let details = w.net_details();
    // One tls line for the flow; the DNS datagram is never reported.
    let tls_lines = details
        .iter()
        .filter(|d| d.starts_with(&format!("tls tcp 127.0.0.1:{cport} ")))
        .count();
    assert_eq!(tls_lines, 1, "{details:#?}");
    let resolver_end = format!(":{rport}");
    for d in &details {
        let dns = d.contains(":53 ")
            || d.ends_with(":53")
            || d.contains(&format!("{resolver_end} "))
            || d.ends_with(&resolver_end);
        assert!(!dns, "DNS reported: {d}");
    }
    let new_tcp = format!("new tcp 127.0.0.1:{cport} -> 127.0.0.1:{lport} flags=S");
    assert!(details.contains(&new_tcp), "{details:#?}");
}
