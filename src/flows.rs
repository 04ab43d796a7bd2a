//! Per-flow reporting: turns the stream of selected packets into one `new` line when a flow is
//! first seen and one `end` line (with packet and byte counts) when it closes, goes idle, is
//! evicted or the session stops. Logging every packet, as the original tool did, floods the
//! logs; this keeps the information an invigilator needs at a tiny fraction of the volume.
//!
//! Pure and clock-free: every call takes the current time (microseconds since the epoch, taken
//! from packet timestamps or the caller's clock), so the live worker and offline `inspect`
//! share this code and the tests control time exactly. A per-packet mode, producing one `pkt`
//! report per packet, is kept behind the same interface for `--per-packet`.
//!
//! Names: the table keeps a [`NameCache`] fed with DNS responses ([`FlowTable::learn_names`]);
//! a `new` (or `pkt`) report carries the name last learned for its destination address, shown
//! as `name=NAME (dns)`. When a packet of a TCP flow carries a TLS ClientHello with a server
//! name (SNI, found by the caller with [`crate::tls_sni::HelloAssembler`]), the flow gets one
//! extra `tls` report, since its `new` line went out with the SYN.

use crate::dns_names::NameCache;
use crate::filter::{PacketInfo, Proto, TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, flags_str};
use crate::fxhash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Default bound on the number of tracked flows, so a scan or flood cannot exhaust memory.
pub const DEFAULT_MAX_FLOWS: usize = 100_000;

/// How long (packet time) a closed TCP flow is remembered, so the trailing ACKs and
/// retransmitted FINs after a close do not show up as a new flow.
pub const TOMBSTONE_US: u64 = 5_000_000;

/// Why a flow's `end` report was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// TCP FIN seen from both sides.
    Fin,
    /// TCP RST seen.
    Rst,
    /// No packets for the idle timeout.
    Idle,
    /// The session (or the capture worker) stopped.
    Stop,
    /// End of the capture file (`inspect`).
    Eof,
    /// The flow table was full and this was the least recently seen flow.
    Evicted,
}

impl EndReason {
    /// The word shown after `reason=`.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Idle => "idle",
            EndReason::Stop => "stop",
            EndReason::Eof => "eof",
            EndReason::Evicted => "evicted",
        }
    }
}

/// What a [`FlowReport`] says about its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The first selected packet of a new flow.
    New,
    /// The flow is over; totals over all its packets in both directions.
    End {
        /// Packets seen.
        packets: u64,
        /// Sum of the packets' original (wire) lengths.
        bytes: u64,
        /// From the first to the last packet, microseconds.
        duration_us: u64,
        /// Why it ended.
        reason: EndReason,
    },
    /// One selected packet (per-packet mode).
    Packet {
        /// The packet's original (wire) length.
        len: u32,
    },
    /// The flow's client sent a TLS ClientHello naming a server (at most once per flow).
    Tls,
}

/// One line of network reporting, with everything needed for both the text form
/// ([`FlowReport::detail`]) and the JSON form ([`FlowReport::to_json`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowReport {
    /// When: the packet's timestamp for `new`/`pkt`; for `end`, the time the end was determined
    /// (the closing packet, or the `now` passed to expire/drain). Microseconds since the epoch.
    pub ts_us: u64,
    /// New, end or per-packet.
    pub kind: ReportKind,
    /// TCP or UDP.
    pub proto: Proto,
    /// Source of the flow's first packet (or of this packet, per-packet).
    pub src: SocketAddr,
    /// Destination of the flow's first packet (or of this packet, per-packet).
    pub dst: SocketAddr,
    /// TCP flags: of the first packet (`new`), of this packet (`pkt`, `tls`), or every flag seen
    /// in the flow (`end`). 0 for UDP.
    pub flags: u8,
    /// The destination's name learned from DNS (already cleaned for display), if any.
    pub name: Option<String>,
    /// The server name of the flow's TLS ClientHello (cleaned), if one was seen.
    pub sni: Option<String>,
}

impl FlowReport {
    /// A per-packet report for `p` (without names).
    pub fn packet(ts_us: u64, wire_len: u32, p: &PacketInfo) -> FlowReport {
        FlowReport {
            ts_us,
            kind: ReportKind::Packet { len: wire_len },
            proto: p.proto,
            src: p.src_addr(),
            dst: p.dst_addr(),
            flags: p.tcp_flags,
            name: None,
            sni: None,
        }
    }

    /// The report's timestamp, microseconds since the epoch.
    pub fn ts_us(&self) -> u64 {
        self.ts_us
    }

    /// The report's timestamp in milliseconds, as events carry it.
    pub fn ts_ms(&self) -> u64 {
        self.ts_us / 1000
    }

    /// `new`, `end`, `pkt` or `tls`.
    pub fn event_word(&self) -> &'static str {
        match self.kind {
            ReportKind::New => "new",
            ReportKind::End { .. } => "end",
            ReportKind::Packet { .. } => "pkt",
            ReportKind::Tls => "tls",
        }
    }

    /// The text form, e.g. `new tcp 10.0.0.5:50000 -> 10.0.0.1:443 flags=S`,
    /// `end udp 10.0.0.5:5000 -> 10.0.0.1:53 packets=2 bytes=180 duration=0.012s reason=idle`,
    /// with names appended when known: `new ... flags=S name=www.example.org (dns)`,
    /// `tls tcp 10.0.0.5:50000 -> 10.0.0.1:443 sni=www.example.org`, and for `pkt` both the
    /// destination's `name=... (dns)` and the packet's `sni=...`. `end` lines carry no names.
    pub fn detail(&self) -> String {
        let mut s = format!(
            "{} {} {} -> {}",
            self.event_word(),
            self.proto.as_str(),
            self.src,
            self.dst
        );
        match self.kind {
            ReportKind::New => {
                if self.proto == Proto::Tcp {
                    let _ = write!(s, " flags={}", flags_str(self.flags));
                }
                self.push_name(&mut s);
            }
            ReportKind::Tls => self.push_sni(&mut s),
            ReportKind::End {
                packets,
                bytes,
                duration_us,
                reason,
            } => {
                let ms = duration_us / 1000;
                let _ = write!(
                    s,
                    " packets={packets} bytes={bytes} duration={}.{:03}s reason={}",
                    ms / 1000,
                    ms % 1000,
                    reason.as_str()
                );
            }
            ReportKind::Packet { len } => {
                if self.proto == Proto::Tcp {
                    let _ = write!(s, " flags={}", flags_str(self.flags));
                }
                let _ = write!(s, " len={len}");
                self.push_name(&mut s);
                self.push_sni(&mut s);
            }
        }
        s
    }

    fn push_name(&self, s: &mut String) {
        if let Some(n) = &self.name {
            let _ = write!(s, " name={n} (dns)");
        }
    }

    fn push_sni(&self, s: &mut String) {
        if let Some(n) = &self.sni {
            let _ = write!(s, " sni={n}");
        }
    }

    /// One JSON object (no trailing newline) with `ts` (RFC 3339, ms), `event`, `proto`, `src`,
    /// `sport`, `dst`, `dport`, `flags` (TCP only), `packets`/`bytes`/`duration_ms`/`reason`
    /// for ends or `len` for packets, and `name` (the destination's DNS-learned name) and `sni`
    /// (the TLS server name) when known; an `end` carries the flow's.
    pub fn to_json(&self) -> String {
        let mut s = String::with_capacity(200);
        s.push('{');
        push_json_field(
            &mut s,
            "ts",
            &json_str(&crate::timefmt::rfc3339_ms(self.ts_ms())),
        );
        push_json_field(&mut s, "event", &json_str(self.event_word()));
        push_json_field(&mut s, "proto", &json_str(self.proto.as_str()));
        push_json_field(&mut s, "src", &json_str(&self.src.ip().to_string()));
        push_json_field(&mut s, "sport", &self.src.port().to_string());
        push_json_field(&mut s, "dst", &json_str(&self.dst.ip().to_string()));
        push_json_field(&mut s, "dport", &self.dst.port().to_string());
        if self.proto == Proto::Tcp {
            push_json_field(&mut s, "flags", &json_str(&flags_str(self.flags)));
        }
        match self.kind {
            ReportKind::New => {}
            ReportKind::End {
                packets,
                bytes,
                duration_us,
                reason,
            } => {
                push_json_field(&mut s, "packets", &packets.to_string());
                push_json_field(&mut s, "bytes", &bytes.to_string());
                push_json_field(&mut s, "duration_ms", &(duration_us / 1000).to_string());
                push_json_field(&mut s, "reason", &json_str(reason.as_str()));
            }
            ReportKind::Packet { len } => push_json_field(&mut s, "len", &len.to_string()),
            ReportKind::Tls => {}
        }
        if let Some(n) = &self.name {
            push_json_field(&mut s, "name", &json_str(n));
        }
        if let Some(n) = &self.sni {
            push_json_field(&mut s, "sni", &json_str(n));
        }
        s.push('}');
        s
    }

    /// The report as a network [`crate::event::Event`], as the capture worker sends it.
    pub fn to_event(&self) -> crate::event::Event {
        crate::event::Event {
            ts_ms: self.ts_ms(),
            kind: crate::event::EventKind::Net,
            detail: self.detail(),
        }
    }
}

fn push_json_field(s: &mut String, key: &str, raw_value: &str) {
    if !s.ends_with('{') {
        s.push(',');
    }
    s.push_str(&json_str(key));
    s.push(':');
    s.push_str(raw_value);
}

pub use crate::json::string as json_str;

/// Both directions of a conversation map to the same key: endpoints in sorted order.
type Key = (Proto, SocketAddr, SocketAddr);

fn key_of(p: &PacketInfo) -> Key {
    let (a, b) = (p.src_addr(), p.dst_addr());
    if a <= b {
        (p.proto, a, b)
    } else {
        (p.proto, b, a)
    }
}

#[derive(Debug)]
struct Flow {
    src: SocketAddr,
    dst: SocketAddr,
    flags_seen: u8,
    start_us: u64,
    last_us: u64,
    packets: u64,
    bytes: u64,
    fin_from_src: bool,
    fin_from_dst: bool,
    /// Position in the recency order (`FlowTable::lru`).
    seq: u64,
    /// The destination's DNS-learned name when the flow began.
    name: Option<String>,
    /// The TLS server name, once reported.
    sni: Option<String>,
}

/// The flow tracker shared by the capture worker and `inspect`. Feed it selected packets with
/// [`FlowTable::observe`]; call [`FlowTable::expire`] now and then and [`FlowTable::drain`] at
/// the end. Memory is bounded: at most `max_flows` flows and as many tombstones.
#[derive(Debug)]
pub struct FlowTable {
    idle_us: u64,
    max_flows: usize,
    per_packet: bool,
    /// Keyed with the fast non-cryptographic [`crate::fxhash`]: the keys come from the wire, but
    /// a student crafting colliding flows only slows their own PC's capture.
    flows: FxHashMap<Key, Flow>,
    /// Recency order: sequence number of the last touch -> key. The first entry is the least
    /// recently seen flow.
    lru: BTreeMap<u64, Key>,
    next_seq: u64,
    /// Recently closed TCP flows -> packet time until which stray packets are ignored.
    tombstones: FxHashMap<Key, u64>,
    tomb_order: VecDeque<(u64, Key)>,
    /// Names learned from DNS responses.
    names: NameCache,
}

impl FlowTable {
    /// A table ending flows after `idle` without packets, bounded to [`DEFAULT_MAX_FLOWS`].
    pub fn new(idle: Duration) -> FlowTable {
        FlowTable {
            idle_us: u64::try_from(idle.as_micros()).unwrap_or(u64::MAX).max(1),
            max_flows: DEFAULT_MAX_FLOWS,
            per_packet: false,
            flows: FxHashMap::default(),
            lru: BTreeMap::new(),
            next_seq: 0,
            tombstones: FxHashMap::default(),
            tomb_order: VecDeque::new(),
            names: NameCache::default(),
        }
    }

    /// Changes the bound on tracked flows (at least 1).
    pub fn with_max_flows(mut self, max_flows: usize) -> FlowTable {
        self.max_flows = max_flows.max(1);
        self
    }

    /// Switches to per-packet mode: every observed packet gives one `pkt` report and no flow
    /// state is kept (`--per-packet`).
    pub fn per_packet(mut self, on: bool) -> FlowTable {
        self.per_packet = on;
        self
    }

    /// Number of flows currently tracked.
    pub fn len(&self) -> usize {
        self.flows.len()
    }

    /// True when no flow is tracked.
    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Remembers the (address, name) pairs of a DNS response seen at `ts_us` (from
    /// [`crate::dns_names::parse_response`]), for the reports of flows that begin later.
    pub fn learn_names(&mut self, ts_us: u64, answers: &[(IpAddr, String)]) {
        for (addr, name) in answers {
            self.names.learn(ts_us, *addr, name.clone());
        }
    }

    /// The name currently known for `addr` at `now_us`, if any.
    pub fn name_of(&self, addr: IpAddr, now_us: u64) -> Option<&str> {
        self.names.lookup(addr, now_us).map(|(n, _)| n)
    }

    /// Accounts one selected packet seen at `ts_us` with original length `wire_len`, returning
    /// the reports it causes (none, a `new`, an `end`, an eviction's `end` before a `new`, or
    /// a `pkt` in per-packet mode). The caller applies [`crate::filter::selected`] first.
    pub fn observe(&mut self, ts_us: u64, wire_len: u32, p: &PacketInfo) -> Vec<FlowReport> {
        self.observe_sni(ts_us, wire_len, p, None)
    }

    /// [`FlowTable::observe`] for a packet whose payload may carry a TLS ClientHello: `sni` is
    /// its server name, already cleaned. The first one of a TCP flow adds a `tls` report (after
    /// the `new` when it is the flow's first packet, before an `end` it causes); per-packet
    /// mode puts it on the `pkt` report.
    pub fn observe_sni(
        &mut self,
        ts_us: u64,
        wire_len: u32,
        p: &PacketInfo,
        sni: Option<&str>,
    ) -> Vec<FlowReport> {
        if self.per_packet {
            let mut r = FlowReport::packet(ts_us, wire_len, p);
            r.name = self.name_of(p.dst, ts_us).map(str::to_string);
            r.sni = sni.map(str::to_string);
            return vec![r];
        }
        let mut out = Vec::new();
        let key = key_of(p);
        if !self.flows.contains_key(&key) {
            if let Some(&until) = self.tombstones.get(&key) {
                let fresh_syn = p.proto == Proto::Tcp
                    && p.tcp_flags & TCP_SYN != 0
                    && p.tcp_flags & TCP_ACK == 0;
                if ts_us < until && !fresh_syn {
                    return out;
                }
                self.tombstones.remove(&key);
            }
            while self.flows.len() >= self.max_flows {
                let Some((_, &oldest)) = self.lru.iter().next() else {
                    break;
                };
                out.push(self.end(oldest, ts_us, EndReason::Evicted));
            }
            let seq = self.bump_seq();
            self.lru.insert(seq, key);
            let name = self.name_of(p.dst, ts_us).map(str::to_string);
            self.flows.insert(
                key,
                Flow {
                    src: p.src_addr(),
                    dst: p.dst_addr(),
                    flags_seen: 0,
                    start_us: ts_us,
                    last_us: ts_us,
                    packets: 0,
                    bytes: 0,
                    fin_from_src: false,
                    fin_from_dst: false,
                    seq,
                    name: name.clone(),
                    sni: None,
                },
            );
            out.push(FlowReport {
                ts_us,
                kind: ReportKind::New,
                proto: p.proto,
                src: p.src_addr(),
                dst: p.dst_addr(),
                flags: p.tcp_flags,
                name,
                sni: None,
            });
        } else {
            self.touch(&key);
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return out;
        };
        flow.packets += 1;
        flow.bytes += u64::from(wire_len);
        flow.last_us = flow.last_us.max(ts_us);
        flow.flags_seen |= p.tcp_flags;
        if p.proto == Proto::Tcp {
            if let Some(n) = sni
                && flow.sni.is_none()
            {
                flow.sni = Some(n.to_string());
                out.push(FlowReport {
                    ts_us,
                    kind: ReportKind::Tls,
                    proto: p.proto,
                    src: flow.src,
                    dst: flow.dst,
                    flags: p.tcp_flags,
                    name: None,
                    sni: flow.sni.clone(),
                });
            }
            if p.tcp_flags & TCP_FIN != 0 {
                if p.src_addr() == flow.src {
                    flow.fin_from_src = true;
                } else {
                    flow.fin_from_dst = true;
                }
            }
            let reason = if p.tcp_flags & TCP_RST != 0 {
                Some(EndReason::Rst)
            } else if flow.fin_from_src && flow.fin_from_dst {
                Some(EndReason::Fin)
            } else {
                None
            };
            if let Some(reason) = reason {
                out.push(self.end(key, ts_us, reason));
                self.add_tombstone(key, ts_us.saturating_add(TOMBSTONE_US));
            }
        }
        out
    }

    /// Ends every flow that has seen no packet for the idle timeout as of `now_us`
    /// (`reason=idle`) and forgets expired tombstones. Cheap when nothing is due: flows are
    /// visited in recency order and the walk stops at the first one still active.
    pub fn expire(&mut self, now_us: u64) -> Vec<FlowReport> {
        let mut out = Vec::new();
        while let Some((_, &key)) = self.lru.iter().next() {
            let due = self
                .flows
                .get(&key)
                .is_none_or(|f| now_us.saturating_sub(f.last_us) >= self.idle_us);
            if !due {
                break;
            }
            out.push(self.end(key, now_us, EndReason::Idle));
        }
        while let Some(&(until, key)) = self.tomb_order.front() {
            if until > now_us {
                break;
            }
            self.tomb_order.pop_front();
            if self.tombstones.get(&key) == Some(&until) {
                self.tombstones.remove(&key);
            }
        }
        out
    }

    /// Ends every tracked flow with `reason` (stop, eof), least recently seen first, and clears
    /// the tombstones.
    pub fn drain(&mut self, now_us: u64, reason: EndReason) -> Vec<FlowReport> {
        let keys: Vec<Key> = self.lru.values().copied().collect();
        let out = keys
            .into_iter()
            .map(|k| self.end(k, now_us, reason))
            .collect();
        self.flows.clear();
        self.lru.clear();
        self.tombstones.clear();
        self.tomb_order.clear();
        out
    }

    fn bump_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    fn touch(&mut self, key: &Key) {
        if let Some(f) = self.flows.get_mut(key) {
            if f.seq + 1 == self.next_seq {
                // Already the most recently seen flow (a flood of one flow): nothing moves.
                return;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.lru.remove(&f.seq);
            f.seq = seq;
            self.lru.insert(seq, *key);
        }
    }

    /// Removes the flow and builds its `end` report. A key missing from `flows` (which the
    /// code never produces) still has its recency entry removed so loops always progress.
    fn end(&mut self, key: Key, now_us: u64, reason: EndReason) -> FlowReport {
        match self.flows.remove(&key) {
            Some(f) => {
                self.lru.remove(&f.seq);
                FlowReport {
                    ts_us: now_us,
                    kind: ReportKind::End {
                        packets: f.packets,
                        bytes: f.bytes,
                        duration_us: f.last_us.saturating_sub(f.start_us),
                        reason,
                    },
                    proto: key.0,
                    src: f.src,
                    dst: f.dst,
                    flags: f.flags_seen,
                    name: f.name,
                    sni: f.sni,
                }
            }
            None => {
                self.lru.retain(|_, k| *k != key);
                FlowReport {
                    ts_us: now_us,
                    kind: ReportKind::End {
                        packets: 0,
                        bytes: 0,
                        duration_us: 0,
                        reason,
                    },
                    proto: key.0,
                    src: key.1,
                    dst: key.2,
                    flags: 0,
                    name: None,
                    sni: None,
                }
            }
        }
    }

    fn add_tombstone(&mut self, key: Key, until: u64) {
        self.tombstones.insert(key, until);
        self.tomb_order.push_back((until, key));
        while self.tomb_order.len() > self.max_flows {
            if let Some((u, k)) = self.tomb_order.pop_front()
                && self.tombstones.get(&k) == Some(&u)
            {
                self.tombstones.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{TCP_PSH, testpkt::ip};

    const S: u64 = 1_000_000;
    const T0: u64 = 1_700_000_000 * S;

    fn tcp(src: &str, sport: u16, dst: &str, dport: u16, flags: u8) -> PacketInfo {
        PacketInfo {
            proto: Proto::Tcp,
            src: ip(src),
            sport,
            dst: ip(dst),
            dport,
            tcp_flags: flags,
        }
    }

    fn udp(src: &str, sport: u16, dst: &str, dport: u16) -> PacketInfo {
        PacketInfo {
            proto: Proto::Udp,
            src: ip(src),
            sport,
            dst: ip(dst),
            dport,
            tcp_flags: 0,
        }
    }

    fn c2s(flags: u8) -> PacketInfo {
        tcp("127.0.0.1", 40000, "127.0.0.1", 5555, flags)
    }
    fn s2c(flags: u8) -> PacketInfo {
        tcp("127.0.0.1", 5555, "127.0.0.1", 40000, flags)
    }

    fn lines(r: &[FlowReport]) -> Vec<String> {
        r.iter().map(|x| x.detail()).collect()
    }

    #[test]
    fn handshake_data_fin_gives_one_new_and_one_end() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        let mut all = Vec::new();
        let seq: [(PacketInfo, u32); 8] = [
            (c2s(TCP_SYN), 60),
            (s2c(TCP_SYN | TCP_ACK), 60),
            (c2s(TCP_ACK), 52),
            (c2s(TCP_ACK | TCP_PSH), 152),
            (s2c(TCP_ACK), 52),
            (c2s(TCP_FIN | TCP_ACK), 52),
            (s2c(TCP_FIN | TCP_ACK), 52),
            (c2s(TCP_ACK), 52),
        ];
        for (i, (p, len)) in seq.iter().enumerate() {
            all.extend(t.observe(T0 + i as u64 * 1000, *len, p));
        }
        assert_eq!(
            lines(&all),
            vec![
                "new tcp 127.0.0.1:40000 -> 127.0.0.1:5555 flags=S".to_string(),
                "end tcp 127.0.0.1:40000 -> 127.0.0.1:5555 packets=7 bytes=480 duration=0.006s reason=fin"
                    .to_string(),
            ]
        );
        assert_eq!(all[0].ts_us, T0);
        assert_eq!(all[1].ts_us, T0 + 6000);
        assert!(t.is_empty());
        // Trailing ACK (the 8th packet above) created nothing; more strays within the tombstone.
        assert!(t.observe(T0 + 2 * S, 52, &s2c(TCP_ACK)).is_empty());
        assert!(
            t.observe(T0 + 3 * S, 52, &c2s(TCP_FIN | TCP_ACK))
                .is_empty()
        );
        // A new SYN on the same ports is a new connection.
        let r = t.observe(T0 + 4 * S, 60, &c2s(TCP_SYN));
        assert_eq!(
            lines(&r),
            vec!["new tcp 127.0.0.1:40000 -> 127.0.0.1:5555 flags=S"]
        );
    }

    #[test]
    fn stray_packets_after_tombstone_expiry_start_a_flow() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        t.observe(T0, 60, &c2s(TCP_SYN));
        let r = t.observe(T0 + 1, 40, &s2c(TCP_RST | TCP_ACK));
        assert_eq!(r.len(), 1);
        assert!(
            t.observe(T0 + TOMBSTONE_US - 1, 40, &c2s(TCP_ACK))
                .is_empty()
        );
        assert!(t.expire(T0 + TOMBSTONE_US + 1).is_empty());
        let r = t.observe(T0 + TOMBSTONE_US + 2, 40, &c2s(TCP_ACK));
        assert_eq!(
            lines(&r),
            vec!["new tcp 127.0.0.1:40000 -> 127.0.0.1:5555 flags=A"]
        );
    }

    #[test]
    fn rst_ends_the_flow() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        assert_eq!(t.observe(T0, 60, &c2s(TCP_SYN)).len(), 1);
        let r = t.observe(T0 + 1500, 40, &s2c(TCP_RST | TCP_ACK));
        assert_eq!(
            lines(&r),
            vec![
                "end tcp 127.0.0.1:40000 -> 127.0.0.1:5555 packets=2 bytes=100 duration=0.001s reason=rst"
            ]
        );
        assert!(t.is_empty());
    }

    #[test]
    fn one_fin_is_not_the_end() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        t.observe(T0, 60, &c2s(TCP_SYN));
        assert!(t.observe(T0 + 1, 52, &c2s(TCP_FIN | TCP_ACK)).is_empty());
        assert!(t.observe(T0 + 2, 52, &c2s(TCP_FIN | TCP_ACK)).is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn idle_expiry() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        t.observe(T0, 100, &udp("10.0.0.1", 5000, "10.0.0.2", 6000));
        t.observe(T0 + 10 * S, 100, &udp("10.0.0.3", 5000, "10.0.0.2", 6000));
        assert!(t.expire(T0 + 29 * S).is_empty());
        let r = t.expire(T0 + 30 * S);
        assert_eq!(
            lines(&r),
            vec![
                "end udp 10.0.0.1:5000 -> 10.0.0.2:6000 packets=1 bytes=100 duration=0.000s reason=idle"
            ]
        );
        assert_eq!(r[0].ts_us, T0 + 30 * S);
        assert_eq!(t.len(), 1);
        // Traffic keeps a flow alive.
        t.observe(T0 + 35 * S, 100, &udp("10.0.0.2", 6000, "10.0.0.3", 5000));
        assert!(t.expire(T0 + 41 * S).is_empty());
        assert_eq!(t.expire(T0 + 65 * S).len(), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn udp_both_directions_are_one_flow() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        let a = udp("10.0.0.1", 40000, "10.0.0.2", 5556);
        let b = udp("10.0.0.2", 5556, "10.0.0.1", 40000);
        let r = t.observe(T0, 50, &a);
        assert_eq!(lines(&r), vec!["new udp 10.0.0.1:40000 -> 10.0.0.2:5556"]);
        assert!(t.observe(T0 + 1000, 70, &b).is_empty());
        assert!(t.observe(T0 + 2000, 50, &a).is_empty());
        let r = t.drain(T0 + 5 * S, EndReason::Stop);
        assert_eq!(
            lines(&r),
            vec![
                "end udp 10.0.0.1:40000 -> 10.0.0.2:5556 packets=3 bytes=170 duration=0.002s reason=stop"
            ]
        );
        assert_eq!(r[0].ts_us, T0 + 5 * S);
    }

    #[test]
    fn table_bound_evicts_least_recently_seen() {
        let mut t = FlowTable::new(Duration::from_secs(30)).with_max_flows(3);
        for port in 1..=3 {
            t.observe(
                T0 + u64::from(port),
                10,
                &udp("10.0.0.1", port, "10.0.0.2", 9),
            );
        }
        // Touch flow 1 so flow 2 is the least recently seen.
        t.observe(T0 + 10, 10, &udp("10.0.0.2", 9, "10.0.0.1", 1));
        let r = t.observe(T0 + 20, 10, &udp("10.0.0.1", 4, "10.0.0.2", 9));
        assert_eq!(
            lines(&r),
            vec![
                "end udp 10.0.0.1:2 -> 10.0.0.2:9 packets=1 bytes=10 duration=0.000s reason=evicted",
                "new udp 10.0.0.1:4 -> 10.0.0.2:9",
            ]
        );
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn a_flood_of_the_newest_flow_keeps_the_recency_order() {
        let mut t = FlowTable::new(Duration::from_secs(30)).with_max_flows(3);
        for port in 1..=3 {
            t.observe(T0, 10, &udp("10.0.0.1", port, "10.0.0.2", 9));
        }
        // Flow 3 is already the newest: its packets move nothing; then flow 1 and 3 again.
        for i in 0..100 {
            t.observe(T0 + i, 10, &udp("10.0.0.1", 3, "10.0.0.2", 9));
        }
        t.observe(T0 + 200, 10, &udp("10.0.0.1", 1, "10.0.0.2", 9));
        t.observe(T0 + 201, 10, &udp("10.0.0.1", 3, "10.0.0.2", 9));
        t.observe(T0 + 202, 10, &udp("10.0.0.1", 3, "10.0.0.2", 9));
        let r = t.observe(T0 + 300, 10, &udp("10.0.0.1", 4, "10.0.0.2", 9));
        assert!(lines(&r)[0].starts_with("end udp 10.0.0.1:2 -> "), "{r:?}");
        let r = t.observe(T0 + 301, 10, &udp("10.0.0.1", 5, "10.0.0.2", 9));
        assert!(lines(&r)[0].starts_with("end udp 10.0.0.1:1 -> "), "{r:?}");
        let r = t.drain(T0 + 400, EndReason::Stop);
        assert!(
            lines(&r)[0].starts_with("end udp 10.0.0.1:3 -> 10.0.0.2:9 packets=103 "),
            "{r:?}"
        );
    }

    #[test]
    fn drain_ends_everything_with_the_given_reason() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        t.observe(T0, 60, &c2s(TCP_SYN));
        t.observe(T0 + 1, 60, &udp("::1", 1, "::1", 2));
        let r = t.drain(T0 + S, EndReason::Eof);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|x| x.detail().ends_with("reason=eof")));
        assert!(r[1].detail().starts_with("end udp [::1]:1 -> [::1]:2 "));
        assert!(t.is_empty());
        assert!(t.drain(T0 + 2 * S, EndReason::Stop).is_empty());
    }

    #[test]
    fn per_packet_mode_reports_every_packet() {
        let mut t = FlowTable::new(Duration::from_secs(30)).per_packet(true);
        let r = t.observe(T0, 60, &s2c(TCP_SYN | TCP_ACK));
        assert_eq!(
            lines(&r),
            vec!["pkt tcp 127.0.0.1:5555 -> 127.0.0.1:40000 flags=SA len=60"]
        );
        let r = t.observe(T0, 33, &udp("10.0.0.1", 1, "10.0.0.2", 2));
        assert_eq!(lines(&r), vec!["pkt udp 10.0.0.1:1 -> 10.0.0.2:2 len=33"]);
        assert!(t.drain(T0, EndReason::Stop).is_empty());
    }

    #[test]
    fn dns_names_and_sni_are_appended() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        let c = |flags| tcp("10.0.0.5", 51234, "142.250.1.1", 443, flags);
        let s = |flags| tcp("142.250.1.1", 443, "10.0.0.5", 51234, flags);
        // Nothing learned yet: the line is unchanged.
        let r = t.observe(T0, 60, &udp("10.0.0.5", 5000, "142.250.1.1", 443));
        assert_eq!(lines(&r), vec!["new udp 10.0.0.5:5000 -> 142.250.1.1:443"]);
        t.learn_names(
            T0 + 1,
            &[(ip("142.250.1.1"), "www.example.org".to_string())],
        );
        assert_eq!(
            t.name_of(ip("142.250.1.1"), T0 + 2),
            Some("www.example.org")
        );
        let mut all = t.observe(T0 + 10, 60, &c(TCP_SYN));
        all.extend(t.observe_sni(T0 + 11, 60, &s(TCP_SYN | TCP_ACK), None));
        all.extend(t.observe_sni(T0 + 12, 300, &c(TCP_ACK | TCP_PSH), Some("www.example.org")));
        // A second ClientHello (retransmission) is not reported again.
        all.extend(t.observe_sni(T0 + 13, 300, &c(TCP_ACK | TCP_PSH), Some("other.example")));
        all.extend(t.observe(T0 + 14, 40, &s(TCP_RST)));
        assert_eq!(
            lines(&all),
            vec![
                "new tcp 10.0.0.5:51234 -> 142.250.1.1:443 flags=S name=www.example.org (dns)",
                "tls tcp 10.0.0.5:51234 -> 142.250.1.1:443 sni=www.example.org",
                "end tcp 10.0.0.5:51234 -> 142.250.1.1:443 packets=5 bytes=760 duration=0.000s reason=rst",
            ]
        );
        assert_eq!(all[1].ts_us, T0 + 12);
        assert!(
            all[2]
                .to_json()
                .ends_with(r#""reason":"rst","name":"www.example.org","sni":"www.example.org"}"#)
        );
        // The ClientHello as the flow's first packet: tls right after new.
        let mid = tcp("10.0.0.5", 51235, "142.250.1.1", 443, TCP_ACK | TCP_PSH);
        let r = t.observe_sni(T0 + 20, 300, &mid, Some("late.example"));
        assert_eq!(
            lines(&r),
            vec![
                "new tcp 10.0.0.5:51235 -> 142.250.1.1:443 flags=PA name=www.example.org (dns)",
                "tls tcp 10.0.0.5:51235 -> 142.250.1.1:443 sni=late.example",
            ]
        );
        assert_eq!(
            r[1].to_json(),
            r#"{"ts":"2023-11-14T22:13:20.000Z","event":"tls","proto":"tcp","src":"10.0.0.5","sport":51235,"dst":"142.250.1.1","dport":443,"flags":"PA","sni":"late.example"}"#
        );
        // UDP flows ignore a server name.
        assert!(
            t.observe_sni(
                T0 + 21,
                60,
                &udp("10.0.0.5", 5000, "142.250.1.1", 443),
                Some("x")
            )
            .is_empty()
        );
        // Names age out.
        let later = T0 + crate::dns_names::NAME_MAX_AGE_US + 2;
        let r = t.observe(later, 60, &udp("10.0.0.5", 5001, "142.250.1.1", 443));
        assert_eq!(lines(&r), vec!["new udp 10.0.0.5:5001 -> 142.250.1.1:443"]);
    }

    #[test]
    fn per_packet_mode_carries_names() {
        let mut t = FlowTable::new(Duration::from_secs(30)).per_packet(true);
        t.learn_names(T0, &[(ip("10.0.0.2"), "exam.example".to_string())]);
        let r = t.observe_sni(
            T0,
            400,
            &tcp("10.0.0.1", 40000, "10.0.0.2", 443, TCP_ACK | TCP_PSH),
            Some("exam.example"),
        );
        assert_eq!(
            lines(&r),
            vec![
                "pkt tcp 10.0.0.1:40000 -> 10.0.0.2:443 flags=PA len=400 name=exam.example (dns) sni=exam.example"
            ]
        );
        assert!(
            r[0].to_json()
                .ends_with(r#""len":400,"name":"exam.example","sni":"exam.example"}"#)
        );
    }

    #[test]
    fn json_rendering() {
        let mut t = FlowTable::new(Duration::from_secs(30));
        let r = t.observe(1_000_123, 60, &c2s(TCP_SYN));
        assert_eq!(
            r[0].to_json(),
            r#"{"ts":"1970-01-01T00:00:01.000Z","event":"new","proto":"tcp","src":"127.0.0.1","sport":40000,"dst":"127.0.0.1","dport":5555,"flags":"S"}"#
        );
        let e = t.drain(2_500_000, EndReason::Stop);
        assert_eq!(
            e[0].to_json(),
            r#"{"ts":"1970-01-01T00:00:02.500Z","event":"end","proto":"tcp","src":"127.0.0.1","sport":40000,"dst":"127.0.0.1","dport":5555,"flags":"S","packets":1,"bytes":60,"duration_ms":0,"reason":"stop"}"#
        );
        let p = FlowReport::packet(0, 9, &udp("::1", 1, "::1", 2));
        assert_eq!(
            p.to_json(),
            r#"{"ts":"1970-01-01T00:00:00.000Z","event":"pkt","proto":"udp","src":"::1","sport":1,"dst":"::1","dport":2,"len":9}"#
        );
        assert_eq!(json_str("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
        let ev = p.to_event();
        assert_eq!(ev.kind, crate::event::EventKind::Net);
        assert_eq!(ev.detail, "pkt udp [::1]:1 -> [::1]:2 len=9");
    }
}
