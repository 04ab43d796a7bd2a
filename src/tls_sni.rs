//! The server name a TLS client asks for, read from the ClientHello's `server_name` extension
//! (SNI, RFC 6066) in the first bytes a client sends on a TCP connection.
//!
//! Pure and length-checked: every read goes through a bounds-checked cursor, which returns
//! `None` instead of reading past the end, so no input can make it panic. Only the first TLS
//! record is read; the extension list may be cut short, and the name is still found when its
//! extension is whole.
//!
//! A large ClientHello (post-quantum key shares make it about 1.8 kB) spans two TCP segments,
//! and browsers shuffle the extensions, so the name is often in the second one:
//! [`HelloAssembler`] joins the segments of a started ClientHello in sequence-number order,
//! bounded in connections and bytes, until the name is found or the record is complete.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

/// TLS record content type: handshake.
const CONTENT_HANDSHAKE: u8 = 22;
/// TLS handshake message type: ClientHello.
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
/// TLS extension: server_name.
const EXT_SERVER_NAME: u16 = 0;
/// server_name entry type: host_name.
const NAME_TYPE_HOST: u8 = 0;
/// ClientHello fixed part: legacy_version and random.
const HELLO_VERSION_RANDOM_LEN: usize = 2 + 32;

/// A bounds-checked reader over a byte slice.
struct Cursor<'a> {
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            (usize::from(*b.first()?) << 16)
                | (usize::from(*b.get(1)?) << 8)
                | usize::from(*b.get(2)?),
        )
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Some(head)
    }

    /// Up to `n` bytes: what is there when the data was cut short.
    fn take_upto(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.rest.len());
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        head
    }
}

/// True when `payload` starts like a TLS handshake record carrying a ClientHello: a cheap test
/// so that the capture path parses only likely candidates.
pub fn looks_like_client_hello(payload: &[u8]) -> bool {
    matches!(
        payload,
        [CONTENT_HANDSHAKE, 3, _, _, _, HANDSHAKE_CLIENT_HELLO, ..]
    )
}

/// The raw host name of the first `host_name` entry of the `server_name` extension of the
/// ClientHello that `payload` (a TCP segment's data) starts with, or `None` when the payload is
/// not a ClientHello, carries no such name, or was cut short before the name.
pub fn client_hello_sni(payload: &[u8]) -> Option<&[u8]> {
    let mut rec = Cursor { rest: payload };
    if rec.u8()? != CONTENT_HANDSHAKE || rec.u8()? != 3 {
        return None;
    }
    let _minor = rec.u8()?;
    let rec_len = usize::from(rec.u16()?);
    let mut hs = Cursor {
        rest: rec.take_upto(rec_len),
    };
    if hs.u8()? != HANDSHAKE_CLIENT_HELLO {
        return None;
    }
    let hs_len = hs.u24()?;
    let mut hello = Cursor {
        rest: hs.take_upto(hs_len),
    };
    hello.take(HELLO_VERSION_RANDOM_LEN)?;
    let sid_len = usize::from(hello.u8()?);
    hello.take(sid_len)?;
    let suites_len = usize::from(hello.u16()?);
    hello.take(suites_len)?;
    let comp_len = usize::from(hello.u8()?);
    hello.take(comp_len)?;
    let ext_len = usize::from(hello.u16()?);
    let mut exts = Cursor {
        rest: hello.take_upto(ext_len),
    };
    loop {
        let ty = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let data = exts.take(len)?;
        if ty == EXT_SERVER_NAME {
            return server_name(data);
        }
    }
}

/// The first non-empty `host_name` in a `server_name` extension body.
fn server_name(data: &[u8]) -> Option<&[u8]> {
    let mut ext = Cursor { rest: data };
    let list_len = usize::from(ext.u16()?);
    let mut list = Cursor {
        rest: ext.take(list_len)?,
    };
    loop {
        let ty = list.u8()?;
        let len = usize::from(list.u16()?);
        let name = list.take(len)?;
        if ty == NAME_TYPE_HOST && !name.is_empty() {
            return Some(name);
        }
    }
}

/// The ClientHello's server name as safe display text (see [`crate::dns_names::clean_name`]),
/// or `None` when there is none.
pub fn sni_name(payload: &[u8]) -> Option<String> {
    if !looks_like_client_hello(payload) {
        return None;
    }
    client_hello_sni(payload).map(crate::dns_names::clean_name)
}

/// Most bytes of one ClientHello gathered across segments.
pub const MAX_HELLO_BYTES: usize = 8192;
/// Most connections whose ClientHello is being gathered at a time (the oldest is dropped).
pub const MAX_PENDING: usize = 256;
/// TLS record header: type, version, length.
const RECORD_HEADER_LEN: usize = 5;

/// One direction of a TCP connection: (sender, receiver).
type Direction = (SocketAddr, SocketAddr);

#[derive(Debug)]
struct Pending {
    next_seq: u32,
    buf: Vec<u8>,
    want: usize,
    generation: u64,
}

/// Joins the TCP segments of ClientHellos that did not fit in one segment, so the server name
/// is found wherever it is. Feed it every TCP segment with data ([`HelloAssembler::push`]); it
/// keeps state only for connections whose first segment started a ClientHello without its
/// name, at most [`MAX_PENDING`] of them and [`MAX_HELLO_BYTES`] each. Segments must follow
/// each other exactly (sequence numbers); a gap, a reordering or a capture cut short by the
/// snap length leaves the connection waiting until it is pushed out, never a wrong name.
#[derive(Debug, Default)]
pub struct HelloAssembler {
    pending: HashMap<Direction, Pending>,
    /// Start order; entries whose generation no longer matches `pending` are stale.
    order: VecDeque<(Direction, u64)>,
    next_generation: u64,
}

impl HelloAssembler {
    /// An empty assembler.
    pub fn new() -> HelloAssembler {
        HelloAssembler::default()
    }

    /// Number of connections waiting for the rest of their ClientHello.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no connection is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Feeds the data of one TCP segment from `src` to `dst` with sequence number `seq`.
    /// Returns the ClientHello's server name (cleaned, see [`sni_name`]) when this segment
    /// completes it, or starts and contains it.
    pub fn push(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        seq: u32,
        payload: &[u8],
    ) -> Option<String> {
        if payload.is_empty() {
            return None;
        }
        let key = (src, dst);
        if let Some(p) = self.pending.get_mut(&key) {
            if seq != p.next_seq {
                return None;
            }
            let room = p.want.saturating_sub(p.buf.len()).min(payload.len());
            p.buf
                .extend_from_slice(payload.get(..room).unwrap_or_default());
            p.next_seq = seq.wrapping_add(u32::try_from(payload.len()).unwrap_or(u32::MAX));
            let found = client_hello_sni(&p.buf).map(crate::dns_names::clean_name);
            if found.is_some() || p.buf.len() >= p.want {
                self.pending.remove(&key);
            }
            return found;
        }
        if !looks_like_client_hello(payload) {
            return None;
        }
        if let Some(name) = client_hello_sni(payload) {
            return Some(crate::dns_names::clean_name(name));
        }
        let mut rec = Cursor { rest: payload };
        rec.take(3)?;
        let want = (RECORD_HEADER_LEN + usize::from(rec.u16()?)).min(MAX_HELLO_BYTES);
        if payload.len() >= want {
            // The record is all here and names no server.
            return None;
        }
        while self.pending.len() >= MAX_PENDING {
            let Some((old, g)) = self.order.pop_front() else {
                break;
            };
            if self.pending.get(&old).is_some_and(|p| p.generation == g) {
                self.pending.remove(&old);
            }
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        self.pending.insert(
            key,
            Pending {
                next_seq: seq.wrapping_add(u32::try_from(payload.len()).unwrap_or(u32::MAX)),
                buf: payload.to_vec(),
                want,
                generation,
            },
        );
        self.order.push_back((key, generation));
        if self.order.len() > 2 * MAX_PENDING {
            let pending = &self.pending;
            self.order
                .retain(|(k, g)| pending.get(k).is_some_and(|p| p.generation == *g));
        }
        None
    }
}

/// Builds a minimal ClientHello record asking for `name` (one cipher suite, no session id, the
/// null compression method, a leading padding extension and then `server_name`). For tests.
#[cfg(test)]
pub(crate) fn build_client_hello(name: &[u8]) -> Vec<u8> {
    let mut sni = Vec::new();
    let entry_len = 3 + name.len();
    sni.extend_from_slice(&(entry_len as u16).to_be_bytes());
    sni.push(NAME_TYPE_HOST);
    sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni.extend_from_slice(name);
    let mut exts = Vec::new();
    // A padding extension (21) first, so the parser has to walk the list.
    exts.extend_from_slice(&21u16.to_be_bytes());
    exts.extend_from_slice(&3u16.to_be_bytes());
    exts.extend_from_slice(&[0, 0, 0]);
    exts.extend_from_slice(&EXT_SERVER_NAME.to_be_bytes());
    exts.extend_from_slice(&(sni.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0); // session id
    body.extend_from_slice(&2u16.to_be_bytes());
    body.extend_from_slice(&[0x13, 0x01]);
    body.extend_from_slice(&[1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![HANDSHAKE_CLIENT_HELLO];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![CONTENT_HANDSHAKE, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_name() {
        let rec = build_client_hello(b"www.example.org");
        assert!(looks_like_client_hello(&rec));
        assert_eq!(client_hello_sni(&rec), Some(&b"www.example.org"[..]));
        assert_eq!(sni_name(&rec).as_deref(), Some("www.example.org"));
        // Bytes after the record (e.g. a second record) do not matter.
        let mut more = rec.clone();
        more.extend_from_slice(&[0x17, 3, 3, 0, 1, 0]);
        assert_eq!(sni_name(&more).as_deref(), Some("www.example.org"));
        // Mixed case and odd bytes are cleaned.
        let odd = build_client_hello(b"WWW.Ex ample.ORG\x1b");
        assert_eq!(sni_name(&odd).as_deref(), Some("www.ex\\x20ample.org\\x1b"));
    }

    #[test]
    fn cut_short_records_give_none_until_the_name_is_whole() {
        let rec = build_client_hello(b"exam.example.net");
        let name_end = rec.len();
        for n in 0..name_end {
            assert_eq!(client_hello_sni(&rec[..n]), None, "prefix {n}");
        }
        // The record claims more than was captured: the name is still found.
        let mut long = rec.clone();
        long[3..5].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(client_hello_sni(&long), Some(&b"exam.example.net"[..]));
    }

    #[test]
    fn not_a_client_hello() {
        let rec = build_client_hello(b"a.example");
        let mut app = rec.clone();
        app[0] = 0x17; // application data
        assert_eq!(sni_name(&app), None);
        assert_eq!(client_hello_sni(&app), None);
        let mut server_hello = rec.clone();
        server_hello[5] = 2;
        assert_eq!(client_hello_sni(&server_hello), None);
        let mut v2 = rec.clone();
        v2[1] = 2;
        assert_eq!(client_hello_sni(&v2), None);
        assert_eq!(sni_name(b"GET / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(sni_name(&[]), None);
        // No server_name extension: drop it by shortening the extension list to the padding.
        let mut no_sni = rec.clone();
        let ext_total_off = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2;
        no_sni[ext_total_off..ext_total_off + 2].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(client_hello_sni(&no_sni), None);
        // An empty host name and a non-host name type are skipped.
        assert_eq!(client_hello_sni(&build_client_hello(b"")), None);
        let mut other_type = rec.clone();
        let type_off = rec.len() - b"a.example".len() - 3;
        other_type[type_off] = 1;
        assert_eq!(client_hello_sni(&other_type), None);
    }

    fn ep(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// A ClientHello whose server_name extension comes after `pad` bytes of padding.
    fn padded_hello(name: &[u8], pad: usize) -> Vec<u8> {
        let mut rec = build_client_hello(name);
        // Grow the padding extension (the first one) by `pad` bytes and fix the lengths.
        let ext_total_off = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2;
        let pad_len_off = ext_total_off + 2 + 2;
        let grow = |rec: &mut Vec<u8>, off: usize| {
            let v = u16::from_be_bytes([rec[off], rec[off + 1]]) as usize + pad;
            rec[off..off + 2].copy_from_slice(&(v as u16).to_be_bytes());
        };
        grow(&mut rec, 3);
        let hs = u32::from_be_bytes([0, rec[6], rec[7], rec[8]]) as usize + pad;
        rec[6..9].copy_from_slice(&(hs as u32).to_be_bytes()[1..]);
        grow(&mut rec, ext_total_off);
        grow(&mut rec, pad_len_off);
        let at = pad_len_off + 2;
        rec.splice(at..at, std::iter::repeat_n(0u8, pad));
        rec
    }

    #[test]
    fn assembler_joins_segments_in_order() {
        let rec = padded_hello(b"split.example", 1500);
        assert_eq!(client_hello_sni(&rec), Some(&b"split.example"[..]));
        let (a, b) = rec.split_at(1400);
        assert_eq!(client_hello_sni(a), None);
        let (c, s) = (ep("10.0.0.1:40000"), ep("10.0.0.2:443"));
        let mut asm = HelloAssembler::new();
        let seq = u32::MAX - 100; // wraps around
        assert_eq!(asm.push(c, s, seq, a), None);
        assert_eq!(asm.len(), 1);
        // The server's data, a retransmission and a segment out of order change nothing.
        assert_eq!(asm.push(s, c, 7, b"\x16\x03\x03\x00\x10\x02"), None);
        assert_eq!(asm.push(c, s, seq, a), None);
        assert_eq!(asm.push(c, s, seq.wrapping_add(1401), &b[1..]), None);
        assert_eq!(asm.len(), 1);
        let got = asm.push(c, s, seq.wrapping_add(1400), b);
        assert_eq!(got.as_deref(), Some("split.example"));
        assert!(asm.is_empty());
        // A whole hello in one segment needs no state; nor does one without a name.
        assert_eq!(asm.push(c, s, 1, &rec).as_deref(), Some("split.example"));
        let mut no_name = build_client_hello(b"x.example");
        let ext_total_off = 5 + 4 + 2 + 32 + 1 + 2 + 2 + 2;
        no_name[ext_total_off..ext_total_off + 2].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(asm.push(c, s, 1, &no_name), None);
        assert!(asm.is_empty());
        // A record that ends without a name gives up.
        let nameless = padded_hello(b"", 1500);
        let (x, y) = nameless.split_at(1000);
        assert_eq!(asm.push(c, s, 10, x), None);
        assert_eq!(asm.push(c, s, 1010, y), None);
        assert!(asm.is_empty());
    }

    #[test]
    fn assembler_is_bounded() {
        let rec = padded_hello(b"many.example", 1500);
        let mut asm = HelloAssembler::new();
        let s = ep("10.0.0.2:443");
        for i in 0..(3 * MAX_PENDING) as u16 {
            let c = SocketAddr::new(ep("10.0.0.1:1").ip(), 1000 + i);
            assert_eq!(asm.push(c, s, 0, &rec[..100]), None);
            assert!(asm.len() <= MAX_PENDING);
            assert!(asm.order.len() <= 2 * MAX_PENDING);
        }
        // The newest connection is still waiting and completes; the oldest was dropped.
        let newest = SocketAddr::new(ep("10.0.0.1:1").ip(), 1000 + 3 * MAX_PENDING as u16 - 1);
        assert_eq!(
            asm.push(newest, s, 100, &rec[100..]).as_deref(),
            Some("many.example")
        );
        let oldest = SocketAddr::new(ep("10.0.0.1:1").ip(), 1000);
        assert_eq!(asm.push(oldest, s, 100, &rec[100..]), None);
        // A claimed record far larger than the limit stops at MAX_HELLO_BYTES.
        let mut huge = rec[..100].to_vec();
        huge[3..5].copy_from_slice(&u16::MAX.to_be_bytes());
        let c = ep("10.0.0.9:9");
        assert_eq!(asm.push(c, s, 0, &huge), None);
        let mut seq = 100u32;
        for _ in 0..MAX_HELLO_BYTES / 1000 + 1 {
            asm.push(c, s, seq, &[0u8; 1000]);
            seq += 1000;
        }
        assert!(!asm.pending.contains_key(&(c, s)));
    }

    use crate::testkit::Rng;

    #[test]
    fn fuzz_random_and_mutated_never_panic() {
        let mut rng = Rng::new(0x005e_ed0f_7157_u64);
        let base = build_client_hello(b"fuzz.example.com");
        let mut found = 0usize;
        let mut asm = HelloAssembler::new();
        for i in 0..100_000 {
            let buf: Vec<u8> = if i % 2 == 0 {
                let len = rng.below(300);
                let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if len >= 6 && i % 4 == 0 {
                    b[0] = CONTENT_HANDSHAKE;
                    b[1] = 3;
                    b[5] = HANDSHAKE_CLIENT_HELLO;
                }
                b
            } else {
                let mut b = base.clone();
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(b.len());
                    b[at] = rng.next_u64() as u8;
                }
                if rng.below(4) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            };
            let c = SocketAddr::new(ep("10.0.0.1:1").ip(), rng.below(8) as u16);
            let seq = rng.below(4) as u32 * 100;
            let _ = asm.push(c, ep("10.0.0.2:443"), seq, &buf);
            if let Some(name) = sni_name(&buf) {
                found += 1;
                assert!(!name.is_empty());
                assert!(crate::event::is_clean(&name));
                assert!(!name.contains(' '));
            }
        }
        assert!(found > 1000, "mutations too destructive: {found}");
        assert!(asm.len() <= MAX_PENDING);
    }
}
