//! Names for addresses, learned from DNS responses seen on the wire (never by asking: the lab
//! PC makes no reverse lookups).
//!
//! [`parse_response`] reads one DNS response message (UDP payload from port 53): the header,
//! the questions (skipped, with name compression), and the A/AAAA/CNAME answers. Every address
//! is mapped to the name that was asked for, following CNAME chains, so that
//! `www.example.org CNAME edge.cdn.net A 192.0.2.7` teaches `192.0.2.7 -> www.example.org`.
//! It is pure and length-checked: any input gives a (possibly empty) list, never a panic.
//!
//! [`NameCache`] keeps what was learned, bounded (oldest learned out first) and with the time
//! each name was learned, so old mappings stop being shown. [`clean_name`] turns raw name bytes
//! (from DNS or a TLS ClientHello) into one safe word for report lines.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Default bound on remembered names.
pub const DEFAULT_MAX_NAMES: usize = 10_000;
/// How long a learned name is shown for its address (packet time): one hour.
pub const NAME_MAX_AGE_US: u64 = 3_600 * 1_000_000;
/// Longest name kept, in bytes before escaping (the DNS limit for a name in text form).
pub const MAX_NAME_BYTES: usize = 253;

const HEADER_LEN: usize = 12;
const FLAG_QR: u16 = 0x8000;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Most compression pointers followed in one name (real names need a handful).
const MAX_POINTER_JUMPS: usize = 32;
/// Wire-format names are at most 255 bytes.
const MAX_WIRE_NAME: usize = 255;
/// Most answer records read from one message, and most addresses returned.
const MAX_ANSWERS: usize = 64;
/// Most CNAME hops followed from the question's name.
const MAX_CNAME_HOPS: usize = 16;

fn be16(msg: &[u8], off: usize) -> Option<u16> {
    let b = msg.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

/// Reads the (possibly compressed) name at `pos`; returns it in lower case with `.` between
/// labels, and the position just after it in the message. Pointers must point backwards, so
/// every chain ends.
fn read_name(msg: &[u8], pos: usize) -> Option<(Vec<u8>, usize)> {
    let mut name = Vec::new();
    let mut at = pos;
    let mut after: Option<usize> = None;
    let mut jumps = 0;
    let mut wire_len = 0usize;
    loop {
        let len = *msg.get(at)?;
        match len & 0xc0 {
            0x00 => {
                let len = usize::from(len);
                if len == 0 {
                    return Some((name, after.unwrap_or(at + 1)));
                }
                wire_len += len + 1;
                if wire_len > MAX_WIRE_NAME {
                    return None;
                }
                let label = msg.get(at + 1..at + 1 + len)?;
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend(label.iter().map(u8::to_ascii_lowercase));
                at += 1 + len;
            }
            0xc0 => {
                let target = usize::from(be16(msg, at)? & 0x3fff);
                jumps += 1;
                if target >= at || jumps > MAX_POINTER_JUMPS {
                    return None;
                }
                if after.is_none() {
                    after = Some(at + 2);
                }
                at = target;
            }
            _ => return None,
        }
    }
}

/// The (address, name) pairs a DNS response teaches: every A and AAAA answer, named after the
/// question when its owner is the question's name or reached from it through the CNAME answers,
/// after its own owner otherwise. Names are cleaned with [`clean_name`]. Queries, failed
/// responses and anything malformed give what could be read before the fault (often nothing).
pub fn parse_response(msg: &[u8]) -> Vec<(IpAddr, String)> {
    let mut out = Vec::new();
    let Some(flags) = be16(msg, 2) else {
        return out;
    };
    if flags & FLAG_QR == 0 || flags & OPCODE_MASK != 0 || flags & RCODE_MASK != 0 {
        return out;
    }
    let (Some(qdcount), Some(ancount)) = (be16(msg, 4), be16(msg, 6)) else {
        return out;
    };
    let mut pos = HEADER_LEN;
    let mut qname: Option<Vec<u8>> = None;
    for _ in 0..qdcount {
        let Some((name, next)) = read_name(msg, pos) else {
            return out;
        };
        if qname.is_none() {
            qname = Some(name);
        }
        // Type and class.
        pos = next + 4;
        if pos > msg.len() {
            return out;
        }
    }
    let mut cnames: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut addrs: Vec<(Vec<u8>, IpAddr)> = Vec::new();
    for _ in 0..usize::from(ancount).min(MAX_ANSWERS) {
        let Some((owner, next)) = read_name(msg, pos) else {
            break;
        };
        let (Some(ty), Some(class), Some(rdlen)) =
            (be16(msg, next), be16(msg, next + 2), be16(msg, next + 8))
        else {
            break;
        };
        let rdata_at = next + 10;
        let rdlen = usize::from(rdlen);
        let Some(rdata) = msg.get(rdata_at..rdata_at + rdlen) else {
            break;
        };
        pos = rdata_at + rdlen;
        if class != CLASS_IN {
            continue;
        }
        match ty {
            TYPE_A => {
                if let Ok(b) = <[u8; 4]>::try_from(rdata) {
                    addrs.push((owner, IpAddr::V4(Ipv4Addr::from(b))));
                }
            }
            TYPE_AAAA => {
                if let Ok(b) = <[u8; 16]>::try_from(rdata) {
                    addrs.push((owner, IpAddr::V6(Ipv6Addr::from(b))));
                }
            }
            TYPE_CNAME => {
                if let Some((target, _)) = read_name(msg, rdata_at) {
                    cnames.push((owner, target));
                }
            }
            _ => {}
        }
    }
    // The question's name and every name its CNAME chain reaches.
    let mut chain: Vec<&[u8]> = Vec::new();
    if let Some(q) = &qname {
        chain.push(q);
        for _ in 0..MAX_CNAME_HOPS {
            let before = chain.len();
            for (owner, target) in &cnames {
                if chain.contains(&owner.as_slice()) && !chain.contains(&target.as_slice()) {
                    chain.push(target);
                }
            }
            if chain.len() == before {
                break;
            }
        }
    }
    for (owner, addr) in &addrs {
        let name = match &qname {
            Some(q) if chain.contains(&owner.as_slice()) => q,
            _ => owner,
        };
        if !name.is_empty() {
            out.push((*addr, clean_name(name)));
        }
    }
    out
}

/// Makes raw name bytes (DNS or SNI) one safe word: ASCII letters in lower case, digits and
/// `-._*` are kept, every other byte becomes `\xNN` (so a name never contains a space, a
/// control character or anything a terminal would act on); more than [`MAX_NAME_BYTES`] bytes
/// are cut and marked with `...`. The result is then passed through [`crate::event::escape`].
pub fn clean_name(raw: &[u8]) -> String {
    let cut = raw.len() > MAX_NAME_BYTES;
    let mut s = String::with_capacity(raw.len().min(MAX_NAME_BYTES) + 3);
    for &b in raw.iter().take(MAX_NAME_BYTES) {
        let c = b.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'*') {
            s.push(char::from(c));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if cut {
        s.push_str("...");
    }
    crate::event::escape(&s)
}

#[derive(Debug)]
struct Entry {
    name: String,
    learned_us: u64,
    generation: u64,
}

/// Address -> name, as learned from DNS responses, bounded to a number of entries (the oldest
/// learned goes first) and aged: a name learned more than [`NAME_MAX_AGE_US`] before the lookup
/// is not returned. IPv4-mapped IPv6 addresses are stored as IPv4.
#[derive(Debug)]
pub struct NameCache {
    max: usize,
    max_age_us: u64,
    map: HashMap<IpAddr, Entry>,
    /// Learning order; entries whose generation no longer matches the map are stale.
    order: VecDeque<(IpAddr, u64)>,
    next_generation: u64,
}

impl Default for NameCache {
    fn default() -> Self {
        NameCache::new(DEFAULT_MAX_NAMES)
    }
}

impl NameCache {
    /// An empty cache holding at most `max` names (at least 1).
    pub fn new(max: usize) -> NameCache {
        NameCache {
            max: max.max(1),
            max_age_us: NAME_MAX_AGE_US,
            map: HashMap::new(),
            order: VecDeque::new(),
            next_generation: 0,
        }
    }

    /// Number of names held (including aged ones not yet pushed out).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing was learned.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Remembers that `addr` is `name`, learned at `ts_us` (replacing what was known).
    pub fn learn(&mut self, ts_us: u64, addr: IpAddr, name: String) {
        let addr = addr.to_canonical();
        let generation = self.next_generation;
        self.next_generation += 1;
        self.map.insert(
            addr,
            Entry {
                name,
                learned_us: ts_us,
                generation,
            },
        );
        self.order.push_back((addr, generation));
        while self.map.len() > self.max {
            let Some((old, g)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|e| e.generation == g) {
                self.map.remove(&old);
            }
        }
        // Re-learning the same addresses leaves stale order entries: drop them now and then so
        // the queue stays within a small multiple of the bound.
        if self.order.len() > 2 * self.max + 16 {
            let map = &self.map;
            self.order
                .retain(|(a, g)| map.get(a).is_some_and(|e| e.generation == *g));
        }
    }

    /// The name of `addr` and when it was learned, unless unknown or older than the age limit
    /// at `now_us`.
    pub fn lookup(&self, addr: IpAddr, now_us: u64) -> Option<(&str, u64)> {
        let e = self.map.get(&addr.to_canonical())?;
        if now_us.saturating_sub(e.learned_us) > self.max_age_us {
            return None;
        }
        Some((e.name.as_str(), e.learned_us))
    }
}

/// Hand-built DNS messages for tests.
#[cfg(test)]
pub(crate) mod testdns {
    /// A name in uncompressed wire form.
    pub fn wire_name(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for label in name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out
    }

    /// One resource record with an uncompressed owner name.
    pub fn rr(owner: &[u8], ty: u16, rdata: &[u8]) -> Vec<u8> {
        let mut r = owner.to_vec();
        r.extend_from_slice(&ty.to_be_bytes());
        r.extend_from_slice(&1u16.to_be_bytes());
        r.extend_from_slice(&300u32.to_be_bytes());
        r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        r.extend_from_slice(rdata);
        r
    }

    /// A response to an A query for `qname` with the given answer records.
    pub fn response(qname: &str, answers: &[Vec<u8>]) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        m.extend_from_slice(&wire_name(qname));
        m.extend_from_slice(&[0, 1, 0, 1]);
        for a in answers {
            m.extend_from_slice(a);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::testdns::*;
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_and_aaaa_answers() {
        let m = response(
            "www.Example.ORG",
            &[
                rr(&wire_name("www.example.org"), TYPE_A, &[192, 0, 2, 7]),
                rr(
                    &wire_name("www.example.org"),
                    TYPE_AAAA,
                    &"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets(),
                ),
            ],
        );
        assert_eq!(
            parse_response(&m),
            vec![
                (ip("192.0.2.7"), "www.example.org".to_string()),
                (ip("2001:db8::7"), "www.example.org".to_string()),
            ]
        );
    }

    #[test]
    fn compressed_names_and_cname_chain() {
        // Question at offset 12; answers point back to it and to each other.
        let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 0];
        m.extend_from_slice(&wire_name("exam.school.example"));
        m.extend_from_slice(&[0, 1, 0, 1]);
        // exam.school.example CNAME lb.cdn.example (target uncompressed in rdata)
        let target = wire_name("lb.cdn.example");
        let target_at = m.len() + 2 + 10;
        m.extend_from_slice(&rr(&[0xc0, 12], TYPE_CNAME, &target));
        // lb.cdn.example CNAME edge.cdn.example (target: "edge" + pointer to "cdn.example")
        let cdn_at = target_at + 3; // after the "lb" label
        let mut edge = vec![4];
        edge.extend_from_slice(b"edge");
        edge.extend_from_slice(&[0xc0, cdn_at as u8]);
        let edge_at = m.len() + 2 + 10;
        m.extend_from_slice(&rr(&[0xc0, target_at as u8], TYPE_CNAME, &edge));
        // edge.cdn.example A 198.51.100.9
        m.extend_from_slice(&rr(&[0xc0, edge_at as u8], TYPE_A, &[198, 51, 100, 9]));
        // An unrelated owner keeps its own name.
        m.extend_from_slice(&rr(&wire_name("other.example"), TYPE_A, &[203, 0, 113, 1]));
        assert_eq!(
            parse_response(&m),
            vec![
                (ip("198.51.100.9"), "exam.school.example".to_string()),
                (ip("203.0.113.1"), "other.example".to_string()),
            ]
        );
    }

    #[test]
    fn queries_errors_and_bad_records_teach_nothing() {
        let good = response(
            "a.example",
            &[rr(&wire_name("a.example"), TYPE_A, &[10, 0, 0, 1])],
        );
        assert_eq!(parse_response(&good).len(), 1);
        let mut query = good.clone();
        query[2] = 0x01;
        assert!(parse_response(&query).is_empty());
        let mut nx = good.clone();
        nx[3] = 0x83;
        assert!(parse_response(&nx).is_empty());
        let mut bad_len = good.clone();
        let n = bad_len.len();
        bad_len[n - 6..n - 4].copy_from_slice(&3u16.to_be_bytes()); // A with 3 bytes of rdata
        assert!(parse_response(&bad_len).is_empty());
        for n in 0..good.len() {
            assert!(parse_response(&good[..n]).is_empty(), "prefix {n}");
        }
        // A pointer to itself, a forward pointer, and reserved label bits.
        let mut looped = good.clone();
        looped[12] = 0xc0;
        looped[13] = 12;
        assert!(parse_response(&looped).is_empty());
        let mut forward = good.clone();
        forward[12] = 0xc0;
        forward[13] = 40;
        assert!(parse_response(&forward).is_empty());
        let mut reserved = good.clone();
        reserved[12] = 0x41;
        assert!(parse_response(&reserved).is_empty());
        // Class other than IN is ignored.
        let mut chaos = good.clone();
        let n = chaos.len();
        chaos[n - 12..n - 10].copy_from_slice(&3u16.to_be_bytes());
        assert!(parse_response(&chaos).is_empty());
    }

    #[test]
    fn names_are_cleaned_and_bounded() {
        assert_eq!(clean_name(b"Www.Example.org"), "www.example.org");
        assert_eq!(clean_name(b"a b\n\xff"), "a\\x20b\\x0a\\xff");
        let long = vec![b'a'; 400];
        let c = clean_name(&long);
        assert_eq!(c.len(), MAX_NAME_BYTES + 3);
        assert!(c.ends_with("..."));
    }

    #[test]
    fn cache_is_bounded_and_aged() {
        let mut c = NameCache::new(3);
        for i in 0..5u8 {
            c.learn(
                u64::from(i),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, i)),
                format!("n{i}"),
            );
        }
        assert_eq!(c.len(), 3);
        assert!(c.lookup(ip("10.0.0.1"), 10).is_none());
        assert_eq!(c.lookup(ip("10.0.0.4"), 10), Some(("n4", 4)));
        // Re-learning refreshes the position and the time.
        c.learn(20, ip("10.0.0.2"), "again".into());
        c.learn(21, ip("10.0.0.9"), "nine".into());
        assert_eq!(c.lookup(ip("10.0.0.2"), 30), Some(("again", 20)));
        assert!(c.lookup(ip("10.0.0.3"), 30).is_none());
        // Mapped IPv6 is the same address.
        assert_eq!(c.lookup(ip("::ffff:10.0.0.9"), 30), Some(("nine", 21)));
        // Age limit.
        assert!(c.lookup(ip("10.0.0.9"), 21 + NAME_MAX_AGE_US).is_some());
        assert!(c.lookup(ip("10.0.0.9"), 22 + NAME_MAX_AGE_US).is_none());
        // Many re-learnings of one address keep the order queue small.
        for t in 0..10_000 {
            c.learn(100 + t, ip("10.0.0.9"), "nine".into());
        }
        assert!(c.order.len() <= 2 * 3 + 16 + 1);
        assert_eq!(c.len(), 3);
    }

    use crate::testkit::Rng;

    #[test]
    fn fuzz_random_and_mutated_never_panic() {
        let mut rng = Rng::new(0xd15_ea5e_u64);
        let base = response(
            "fuzz.example",
            &[
                rr(&[0xc0, 12], TYPE_CNAME, &wire_name("x.example")),
                rr(&wire_name("x.example"), TYPE_A, &[10, 1, 2, 3]),
                rr(&[0xc0, 12], TYPE_AAAA, &[0x20; 16]),
            ],
        );
        assert_eq!(parse_response(&base).len(), 2);
        let mut learned = 0usize;
        let mut cache = NameCache::new(100);
        for i in 0..100_000u64 {
            let buf: Vec<u8> = if i % 2 == 0 {
                let len = rng.below(200);
                let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if len >= 12 && i % 4 == 0 {
                    b[2] = 0x81;
                    b[3] = 0x80;
                    b[4] = 0;
                    b[5] = 1;
                    b[6] = 0;
                }
                b
            } else {
                let mut b = base.clone();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(b.len());
                    b[at] = rng.next_u64() as u8;
                }
                if rng.below(4) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            };
            for (addr, name) in parse_response(&buf) {
                learned += 1;
                assert!(crate::event::is_clean(&name) && !name.contains(' '));
                cache.learn(i, addr, name);
            }
        }
        assert!(cache.len() <= 100);
        assert!(learned > 1000, "mutations too destructive: {learned}");
    }
}
