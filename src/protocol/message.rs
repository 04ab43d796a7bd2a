//! The messages carried in frames, and their binary encoding (tag byte, then fixed fields;
//! strings as a 2-byte length and raw bytes). Decoding checks every length before slicing and
//! rejects trailing bytes; an unknown tag is an error value, never a panic.

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
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated message"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after message"),
            DecodeError::UnknownTag(t) => write!(f, "unknown message tag {t}"),
            DecodeError::UnknownKind(k) => write!(f, "unknown event kind {k}"),
            DecodeError::TooLong => f.write_str("string field too long"),
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
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    let s = &s[..s.len().min(MAX_STR)];
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
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
                let seq = r.u64()?;
                let ts_ms = r.u64()?;
                let code = r.u8()?;
                let kind = EventKind::from_code(code).ok_or(DecodeError::UnknownKind(code))?;
                Message::Event {
                    seq,
                    ts_ms,
                    kind,
                    detail: r.str()?.to_vec(),
                }
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
            Message::Ack { seq: 10 },
            Message::Heartbeat,
            Message::Stop,
            Message::Bye { last_seq: 11 },
        ]
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
        e[17] = 99;
        assert_eq!(Message::decode(&e), Err(DecodeError::UnknownKind(99)));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::testkit::Rng::new(12345);
        for i in 0..100_000 {
            let mut buf = rng.bytes(i % 80);
            if !buf.is_empty() {
                buf[0] = [1, 2, 3, 4, 5, 16, 17, 18, 19, 20, 21, 22][i % 12];
            }
            let _ = Message::decode(&buf);
        }
    }
}
