//! Hand-built packets for tests: transport segments, IP packets, Ethernet frames, a TLS
//! ClientHello and a DNS response, each the smallest well-formed thing the decoders accept.

use std::net::IpAddr;

/// A TCP segment (20-byte header, given flags) followed by `payload`.
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&sport.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t.extend_from_slice(payload);
    t
}

/// A UDP datagram carrying `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = vec![0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(payload);
    u
}

/// An IPv4 packet (no options) around a transport segment.
pub fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, seg: &[u8]) -> Vec<u8> {
    let mut ip = vec![0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&((20 + seg.len()) as u16).to_be_bytes());
    ip[8] = 64;
    ip[9] = proto;
    ip[12..16].copy_from_slice(&src);
    ip[16..20].copy_from_slice(&dst);
    ip.extend_from_slice(seg);
    ip
}

/// An IPv6 packet around `payload` whose first header is `next`.
pub fn ipv6(src: [u8; 16], dst: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut ip = vec![0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    ip[6] = next;
    ip[7] = 64;
    ip[8..24].copy_from_slice(&src);
    ip[24..40].copy_from_slice(&dst);
    ip.extend_from_slice(payload);
    ip
}

/// An Ethernet II frame with the given EtherType.
pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An Ethernet frame carrying an IPv4 TCP segment with `data`.
pub fn eth_tcp(
    src: [u8; 4],
    sport: u16,
    dst: [u8; 4],
    dport: u16,
    flags: u8,
    data: &[u8],
) -> Vec<u8> {
    eth(0x0800, &ipv4(src, dst, 6, &tcp(sport, dport, flags, data)))
}

/// An Ethernet frame carrying an IPv4 TCP segment without data.
pub fn eth_tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, flags: u8) -> Vec<u8> {
    eth_tcp(src, sport, dst, dport, flags, b"")
}

/// An Ethernet frame carrying an IPv4 UDP datagram with a short payload.
pub fn eth_udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
    eth(0x0800, &ipv4(src, dst, 17, &udp(sport, dport, b"datagram")))
}

/// Parses an address for test assertions.
pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

/// The octets of an IPv6 address written as text.
pub fn v6(s: &str) -> [u8; 16] {
    s.parse::<std::net::Ipv6Addr>()
        .expect("test address")
        .octets()
}

/// A minimal TLS 1.2-framed ClientHello record asking for `name`: one cipher suite, no session
/// id, null compression, a padding extension (so `server_name` is not the first one), then
/// `server_name`.
pub fn client_hello(name: &str) -> Vec<u8> {
    let name = name.as_bytes();
    let mut sni = Vec::new();
    sni.extend_from_slice(&((3 + name.len()) as u16).to_be_bytes());
    sni.push(0); // host_name
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut exts = vec![0, 21, 0, 2, 0, 0]; // padding
    exts.extend_from_slice(&[0, 0]); // server_name
    exts.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A DNS response for `qname` with one answer of type `ty` (1 = A, 28 = AAAA) whose owner is
/// a compression pointer to the question.
pub fn dns_answer(qname: &str, ty: u16, rdata: &[u8]) -> Vec<u8> {
    let mut m = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    for label in qname.split('.') {
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&ty.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m.extend_from_slice(&[0xc0, 12]);
    m.extend_from_slice(&ty.to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 0, 1, 0]);
    m.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    m.extend_from_slice(rdata);
    m
}
