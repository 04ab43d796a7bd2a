//! The messages carried in frames, and their binary encoding (tag byte, then fixed fields;
//! strings as a 2-byte length and raw bytes). Decoding checks every length before slicing and
//! rejects trailing bytes; an unknown tag is an error value, never a panic.
//!
//! Events travel in batches ([`Message::Events`], built with [`BatchEncoder`]) so that one
//! sealed frame, one seal/open and one write carry many of them.

use super::frame::MAX_FRAME;
use super::{SESSION_ID_LEN, SessionId};
use crate::crypto::PROOF_LEN;
use crate::event::EventKind;
use crate::signing::SIG_LEN;

/// Length of each side's handshake nonce.
pub const HS_NONCE_LEN: usize = 32;
/// Length of a client instance id (random per client installation run; lets the server tell a
/// restarted client from a reconnecting one).
pub const INSTANCE_LEN: usize = 16;
/// Lower-case hex of an instance id, as written in log and spool files.
pub fn instance_hex(i: &[u8; INSTANCE_LEN]) -> String {
    crate::hex::encode(i)
}

/// Parses [`instance_hex`] output.
pub fn parse_instance_hex(h: &str) -> Option<[u8; INSTANCE_LEN]> {
    crate::hex::decode(h)
}

/// Longest string field accepted (host names, event details).
pub const MAX_STR: usize = 16 * 1024;

/// Encoded size of one event with an empty detail (seq, ts_ms, kind, detail length): the least
/// any event in a batch takes, used to refuse a count the body cannot hold before allocating.
pub const EVENT_MIN_LEN: usize = 8 + 8 + 1 + 2;

/// Largest message body that still fits a sealed frame ([`MAX_FRAME`] minus the AEAD tag):
/// the bound a batch is built to.
pub const MAX_SEALED_BODY: usize = MAX_FRAME - crate::crypto::TAG_LEN;

/// One event inside a [`Message::Events`] batch: the same fields as [`Message::Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireEvent {
    /// Client sequence number.
    pub seq: u64,
    /// Client timestamp, ms since the epoch.
    pub ts_ms: u64,
    /// Kind.
    pub kind: EventKind,
    /// Raw detail (escaped by the server).
    pub detail: Vec<u8>,
}

/// Every message of the protocol. The first three travel in clear during the handshake; all
/// others only inside sealed frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Client -> server, first frame: which session it answers, and its fresh nonce.
    ClientHello {
        version: u8,
        session: SessionId,
        nonce: [u8; HS_NONCE_LEN],
    },
    /// Server -> client: its fresh nonce and proof that it holds the key.
    ServerHello {
        nonce: [u8; HS_NONCE_LEN],
        proof: [u8; PROOF_LEN],
    },
    /// Server -> client in stronger mode: as `ServerHello`, plus an Ed25519 signature by the
    /// server's signing key over the transcript and proof.
    SignedServerHello {
        nonce: [u8; HS_NONCE_LEN],
        proof: [u8; PROOF_LEN],
        sig: [u8; SIG_LEN],
    },
    /// Client -> server: proof that the client holds the key.
    ClientProof { proof: [u8; PROOF_LEN] },
    /// Server -> client in clear: why the handshake is refused (informational only).
    Reject { reason: String },
    /// Client -> server, first sealed frame: who this is.
    Hello {
        hostname: Vec<u8>,
        instance: [u8; INSTANCE_LEN],
        version: Vec<u8>,
    },
    /// Server -> client: the next sequence number it expects (everything below is written).
    Welcome { next_seq: u64 },
    /// Client -> server: one observation.
    Event {
        seq: u64,
        ts_ms: u64,
        kind: EventKind,
        detail: Vec<u8>,
    },
    /// Server -> client: every event up to and including `seq` is in the log file.
    Ack { seq: u64 },
    /// Either direction: still alive.
    Heartbeat,
    /// Server -> client: the session is over; send what is left, then say Bye.
    Stop,
    /// Client -> server: all events up to `last_seq` were sent; closing.
    Bye { last_seq: u64 },
    /// Client -> server: several events in one frame (at least one), in the order sent. The
    /// server treats each exactly as an [`Message::Event`]; one cumulative `Ack` covers them.
    Events { events: Vec<WireEvent> },
}

/// Why a frame body is not a valid message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The body ended before a field did.
    Truncated,
    /// Bytes left over after the message.
    TrailingBytes,
    /// An unknown message tag.
    UnknownTag(u8),
    /// An unknown event kind code.
    UnknownKind(u8),
    /// A string longer than [`MAX_STR`].
    TooLong,
    /// A batch whose event count is zero or more than its body can hold.
    BadCount,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated message"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after message"),
            DecodeError::UnknownTag(t) => write!(f, "unknown message tag {t}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown event kind {k}"),
            DecodeError::TooLong => f.write_str("string field too long"),
            DecodeError::BadCount => f.write_str("batch event count does not match its length"),
        }
    }
}

mod tag {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const SIGNED_SERVER_HELLO: u8 = 5;
    pub const CLIENT_PROOF: u8 = 3;
    pub const REJECT: u8 = 4;
    pub const HELLO: u8 = 16;
    pub const WELCOME: u8 = 17;
    pub const EVENT: u8 = 18;
    pub const ACK: u8 = 19;
    pub const HEARTBEAT: u8 = 20;
    pub const STOP: u8 = 21;
    pub const BYE: u8 = 22;
    pub const EVENTS: u8 = 23;
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(MAX_STR)];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn put_event(out: &mut Vec<u8>, seq: u64, ts_ms: u64, kind: EventKind, detail: &[u8]) {
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts_ms.to_be_bytes());
    out.push(kind.code());
    put_str(out, detail);
}

/// Builds the body of one [`Message::Events`] straight from borrowed events (no copy of the
/// details into a `Message` first), never larger than a sealed frame can carry.
pub struct BatchEncoder {
    body: Vec<u8>,
    count: u16,
    limit: usize,
}

impl Default for BatchEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchEncoder {
    /// An empty batch bounded by [`MAX_SEALED_BODY`].
    pub fn new() -> Self {
        Self::with_limit(MAX_SEALED_BODY)
    }

    /// An empty batch whose body stays within `limit` bytes (at least one event always fits,
    /// whatever the limit, so a batch is never stuck).
    pub fn with_limit(limit: usize) -> Self {
        // Grows as events come (a quiet client's batch of one stays small).
        let mut body = Vec::with_capacity(256);
        body.extend_from_slice(&[tag::EVENTS, 0, 0]);
        BatchEncoder {
            body,
            count: 0,
            limit,
        }
    }

    /// Adds an event if it fits; `false` means the batch is full: take it, send it, and push the
    /// event into the next one. A detail longer than [`MAX_STR`] is cut, as in [`Message::encode`].
    pub fn push(&mut self, seq: u64, ts_ms: u64, kind: EventKind, detail: &[u8]) -> bool {
        let need = EVENT_MIN_LEN + detail.len().min(MAX_STR);
        if self.count == u16::MAX || (self.count > 0 && self.body.len() + need > self.limit) {
            return false;
        }
        put_event(&mut self.body, seq, ts_ms, kind, detail);
        self.count += 1;
        true
    }

    /// Events in the batch so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Nothing pushed since the last take.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The encoded `Events` message, ready to seal; the encoder is empty again afterwards.
    pub fn take(&mut self) -> Vec<u8> {
        self.body[1..3].copy_from_slice(&self.count.to_be_bytes());
        // The next batch is likely the size of this one.
        let mut next = Vec::with_capacity(self.body.len());
        next.extend_from_slice(&[tag::EVENTS, 0, 0]);
        self.count = 0;
        std::mem::replace(&mut self.body, next)
    }
}

impl Message {
    /// Encodes the message (strings longer than [`MAX_STR`] are cut).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Message::ClientHello {
                version,
                session,
                nonce,
            } => {
                out.push(tag::CLIENT_HELLO);
                out.push(*version);
                out.extend_from_slice(&session.0);
                out.extend_from_slice(nonce);
            }
            Message::ServerHello { nonce, proof } => {
                out.push(tag::SERVER_HELLO);
                out.extend_from_slice(nonce);
                out.extend_from_slice(proof);
            }
            Message::SignedServerHello { nonce, proof, sig } => {
                out.push(tag::SIGNED_SERVER_HELLO);
                out.extend_from_slice(nonce);
                out.extend_from_slice(proof);
                out.extend_from_slice(sig);
            }
            Message::ClientProof { proof } => {
                out.push(tag::CLIENT_PROOF);
                out.extend_from_slice(proof);
            }
            Message::Reject { reason } => {
                out.push(tag::REJECT);
                put_str(&mut out, reason.as_bytes());
            }
            Message::Hello {
                hostname,
                instance,
                version,
            } => {
                out.push(tag::HELLO);
                put_str(&mut out, hostname);
                out.extend_from_slice(instance);
                put_str(&mut out, version);
            }
            Message::Welcome { next_seq } => {
                out.push(tag::WELCOME);
                out.extend_from_slice(&next_seq.to_be_bytes());
            }
            Message::Event {
                seq,
                ts_ms,
                kind,
                detail,
            } => {
                out.push(tag::EVENT);
                out.extend_from_slice(&seq.to_be_bytes());
                out.extend_from_slice(&ts_ms.to_be_bytes());
                out.push(kind.code());
                put_str(&mut out, detail);
            }
            Message::Ack { seq } => {
                out.push(tag::ACK);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Message::Heartbeat => out.push(tag::HEARTBEAT),
            Message::Stop => out.push(tag::STOP),
            Message::Bye { last_seq } => {
                out.push(tag::BYE);
                out.extend_from_slice(&last_seq.to_be_bytes());
            }
            Message::Events { events } => {
                // The count is a u16: a longer list is cut (a batch built by BatchEncoder never is).
                let events = &events[..events.len().min(u16::MAX as usize)];
                out.push(tag::EVENTS);
                out.extend_from_slice(&(events.len() as u16).to_be_bytes());
                for e in events {
                    put_event(&mut out, e.seq, e.ts_ms, e.kind, &e.detail);
                }
            }
        }
        out
    }

    /// Decodes a frame body.
    pub fn decode(buf: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader { buf, pos: 0 };
        let msg = match r.u8()? {
            tag::CLIENT_HELLO => Message::ClientHello {
                version: r.u8()?,
                session: SessionId(r.array::<SESSION_ID_LEN>()?),
                nonce: r.array()?,
            },
            tag::SERVER_HELLO => Message::ServerHello {
                nonce: r.array()?,
                proof: r.array()?,
            },
            tag::SIGNED_SERVER_HELLO => Message::SignedServerHello {
                nonce: r.array()?,
                proof: r.array()?,
                sig: r.array()?,
            },
            tag::CLIENT_PROOF => Message::ClientProof { proof: r.array()? },
            tag::REJECT => Message::Reject {
                reason: String::from_utf8_lossy(r.str()?).into_owned(),
            },
            tag::HELLO => Message::Hello {
                hostname: r.str()?.to_vec(),
                instance: r.array()?,
                version: r.str()?.to_vec(),
            },
            tag::WELCOME => Message::Welcome { next_seq: r.u64()? },
            tag::EVENT => {
                let e = r.event()?;
                Message::Event {
                    seq: e.seq,
                    ts_ms: e.ts_ms,
                    kind: e.kind,
                    detail: e.detail,
                }
            }
            tag::EVENTS => {
                let count = u16::from_be_bytes(r.array()?) as usize;
                // Refuse a count the rest of the body cannot hold before reserving room for it.
                if count == 0 || count * EVENT_MIN_LEN > buf.len() - r.pos {
                    return Err(DecodeError::BadCount);
                }
                let mut events = Vec::with_capacity(count);
                for _ in 0..count {
                    events.push(r.event()?);
                }
                Message::Events { events }
            }
            tag::ACK => Message::Ack { seq: r.u64()? },
            tag::HEARTBEAT => Message::Heartbeat,
            tag::STOP => Message::Stop,
            tag::BYE => Message::Bye { last_seq: r.u64()? },
            t => return Err(DecodeError::UnknownTag(t)),
        };
        if r.pos != buf.len() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(msg)
    }
}

/// A cursor that checks every length before slicing.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).ok_or(DecodeError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(DecodeError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn event(&mut self) -> Result<WireEvent, DecodeError> {
        let seq = self.u64()?;
        let ts_ms = self.u64()?;
        let code = self.u8()?;
        let kind = EventKind::from_code(code).ok_or(DecodeError::UnknownKind(code))?;
        Ok(WireEvent {
            seq,
            ts_ms,
            kind,
            detail: self.str()?.to_vec(),
        })
    }
    fn str(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = u16::from_be_bytes(self.array()?) as usize;
        if n > MAX_STR {
            return Err(DecodeError::TooLong);
        }
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Message> {
        vec![
            Message::ClientHello {
                version: 1,
                session: SessionId([1; 16]),
                nonce: [2; 32],
            },
            Message::ServerHello {
                nonce: [3; 32],
                proof: [4; 32],
            },
            Message::ClientProof { proof: [5; 32] },
            Message::SignedServerHello {
                nonce: [3; 32],
                proof: [4; 32],
                sig: [6; 64],
            },
            Message::Reject {
                reason: "no".into(),
            },
            Message::Hello {
                hostname: b"pc-01".to_vec(),
                instance: [6; 16],
                version: b"0.1.0".to_vec(),
            },
            Message::Welcome { next_seq: 7 },
            Message::Event {
                seq: 8,
                ts_ms: 9,
                kind: EventKind::Mount,
                detail: b"tmpfs \xff".to_vec(),
            },
            Message::Event {
                seq: 9,
                ts_ms: 10,
                kind: EventKind::Device,
                detail: b"plugged usb 1-2 class=wireless".to_vec(),
            },
            Message::Ack { seq: 10 },
            Message::Heartbeat,
            Message::Stop,
            Message::Bye { last_seq: 11 },
            Message::Events {
                events: vec![
                    WireEvent {
                        seq: 12,
                        ts_ms: 13,
                        kind: EventKind::Net,
                        detail: b"new tcp a -> b".to_vec(),
                    },
                    WireEvent {
                        seq: 13,
                        ts_ms: 14,
                        kind: EventKind::Status,
                        detail: vec![],
                    },
                ],
            },
        ]
    }

    fn wire(seq: u64, detail: &[u8]) -> WireEvent {
        WireEvent {
            seq,
            ts_ms: 1_795_000_000_000 + seq,
            kind: EventKind::Net,
            detail: detail.to_vec(),
        }
    }

    #[test]
    fn batch_encoder_matches_message_encoding_and_stays_within_a_frame() {
        let events: Vec<WireEvent> = (1..=5000).map(|s| wire(s, &[b'x'; 60])).collect();
        let mut enc = BatchEncoder::new();
        let mut decoded = Vec::new();
        let mut bodies = 0;
        for e in &events {
            if !enc.push(e.seq, e.ts_ms, e.kind, &e.detail) {
                let body = enc.take();
                assert!(body.len() <= MAX_SEALED_BODY, "{}", body.len());
                let Ok(Message::Events { events: got }) = Message::decode(&body) else {
                    panic!("batch does not decode");
                };
                // Full: the next event would not have fitted.
                assert!(body.len() + EVENT_MIN_LEN + 60 > MAX_SEALED_BODY);
                decoded.extend(got);
                bodies += 1;
                assert!(enc.is_empty());
                assert!(enc.push(e.seq, e.ts_ms, e.kind, &e.detail));
            }
        }
        let last = enc.take();
        let Ok(Message::Events { events: got }) = Message::decode(&last) else {
            panic!("last batch does not decode");
        };
        decoded.extend(got);
        assert_eq!(decoded, events, "every event once, in order");
        assert!(bodies >= 6, "5000 events of ~80 bytes need several frames");
        // The same list through Message::encode is byte for byte what the encoder builds.
        let mut enc = BatchEncoder::new();
        for e in &events[..3] {
            assert!(enc.push(e.seq, e.ts_ms, e.kind, &e.detail));
        }
        assert_eq!(
            enc.take(),
            Message::Events {
                events: events[..3].to_vec()
            }
            .encode()
        );
    }

    #[test]
    fn batch_encoder_takes_one_huge_event_and_cuts_its_detail() {
        let mut enc = BatchEncoder::with_limit(10);
        assert!(enc.push(1, 2, EventKind::Mount, &[b'y'; MAX_STR + 100]));
        assert!(!enc.push(2, 2, EventKind::Mount, b"z"), "limit reached");
        let Ok(Message::Events { events }) = Message::decode(&enc.take()) else {
            panic!("does not decode");
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].detail.len(), MAX_STR);
    }

    #[test]
    fn batch_counts_that_do_not_match_the_length_are_refused() {
        let good = Message::Events {
            events: vec![wire(1, &[b'a'; 30]), wire(2, b"bb"), wire(3, b"")],
        }
        .encode();
        let with_count = |n: u16| {
            let mut b = good.clone();
            b[1..3].copy_from_slice(&n.to_be_bytes());
            b
        };
        // Zero events, and counts no body of this length could hold.
        assert_eq!(Message::decode(&with_count(0)), Err(DecodeError::BadCount));
        assert_eq!(
            Message::decode(&with_count(u16::MAX)),
            Err(DecodeError::BadCount)
        );
        assert_eq!(
            Message::decode(&[23, 0xff, 0xff]),
            Err(DecodeError::BadCount)
        );
        // One more than present (but plausible for the length): the body runs out; one fewer:
        // bytes are left over.
        assert_eq!(Message::decode(&with_count(4)), Err(DecodeError::Truncated));
        assert_eq!(
            Message::decode(&with_count(2)),
            Err(DecodeError::TrailingBytes)
        );
        // A detail length pointing past the end of the batch.
        let mut b = good.clone();
        let first_len = 3 + 17;
        b[first_len..first_len + 2].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(Message::decode(&b), Err(DecodeError::Truncated));
        // An unknown kind inside the batch.
        let mut b = good.clone();
        b[3 + 16] = 99;
        assert_eq!(Message::decode(&b), Err(DecodeError::UnknownKind(99)));
        assert_eq!(Message::decode(&good).map(|_| ()), Ok(()));
    }

    #[test]
    fn every_message_round_trips_and_every_truncation_fails() {
        for m in all() {
            let e = m.encode();
            assert_eq!(Message::decode(&e), Ok(m.clone()));
            for n in 0..e.len() {
                assert!(Message::decode(&e[..n]).is_err(), "{m:?} cut at {n}");
            }
            let mut longer = e.clone();
            longer.push(0);
            assert_eq!(Message::decode(&longer), Err(DecodeError::TrailingBytes));
        }
    }

    #[test]
    fn unknown_tags_and_kinds_are_errors() {
        assert_eq!(Message::decode(&[200]), Err(DecodeError::UnknownTag(200)));
        let mut e = Message::Event {
            seq: 1,
            ts_ms: 1,
            kind: EventKind::Net,
            detail: vec![],
        }
        .encode();
        e[17] = 5;
        assert!(matches!(
            Message::decode(&e),
            Ok(Message::Event {
                kind: EventKind::Device,
                ..
            })
        ));
        e[17] = 6;
        assert_eq!(Message::decode(&e), Err(DecodeError::UnknownKind(6)));
        e[17] = 99;
        assert_eq!(Message::decode(&e), Err(DecodeError::UnknownKind(99)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::testkit::Rng::new(12345);
        for i in 0..100_000 {
            let mut buf = rng.bytes(i % 80);
            if !buf.is_empty() {
                buf[0] = [1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 22, 23][i % 13];
            }
            let _ = Message::decode(&buf);
        }
    }
}
