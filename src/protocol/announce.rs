//! The start/stop announcement: one UDP datagram, sealed under the shared key.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "PRCT"            (authenticated as associated data)
//!      4     1  protocol version         (authenticated as associated data)
//!      5    24  random nonce
//!     29    43  ciphertext of: kind(1) tcp_port(2) session_id(16) timestamp_ms(8) + tag(16)
//! total 72 bytes; any other length is rejected before decryption.
//! ```

use super::{SESSION_ID_LEN, SessionId, VERSION};
use crate::crypto::{self, CryptoError, Key, TAG_LEN, XNONCE_LEN};

/// First bytes of every announcement.
pub const MAGIC: &[u8; 4] = b"PRCT";
const HEADER_LEN: usize = MAGIC.len() + 1;
const NONCE_OFFSET: usize = HEADER_LEN;
const CT_OFFSET: usize = NONCE_OFFSET + XNONCE_LEN;
/// Length of the plaintext body.
pub const BODY_LEN: usize = 1 + 2 + SESSION_ID_LEN + 8;
/// The only valid datagram length.
pub const DATAGRAM_LEN: usize = CT_OFFSET + BODY_LEN + TAG_LEN;

/// Whether the server is starting or stopping a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceKind {
    /// Clients should connect back and start monitoring.
    Start,
    /// Clients in this session should stop monitoring.
    Stop,
}

/// A decoded announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Announcement {
    /// Start or stop.
    pub kind: AnnounceKind,
    /// The TCP port the server listens on (its address is the datagram's source).
    pub tcp_port: u16,
    /// Which session this is about.
    pub session: SessionId,
    /// Server's wall clock when sealed, milliseconds since the epoch (informational; replay
    /// protection comes from the handshake, see docs/PROTOCOL.md).
    pub ts_ms: u64,
}

/// Why a datagram was dropped. Counted by the client, never answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceError {
    /// Not exactly [`DATAGRAM_LEN`] bytes.
    BadLength,
    /// Does not start with [`MAGIC`].
    BadMagic,
    /// A protocol version this build does not speak.
    BadVersion,
    /// Did not authenticate under our key (forged, corrupted, or another key).
    BadTag,
    /// Authenticated but carries an unknown kind byte.
    UnknownKind,
}

impl std::fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnnounceError::BadLength => "wrong length",
            AnnounceError::BadMagic => "not a proctor datagram",
            AnnounceError::BadVersion => "unsupported protocol version",
            AnnounceError::BadTag => "does not authenticate under our key",
            AnnounceError::UnknownKind => "unknown announcement kind",
        })
    }
}

impl Announcement {
    /// Seals the announcement with a fresh random nonce.
    pub fn seal(&self, key: &Key) -> Vec<u8> {
        self.seal_with_nonce(key, &crypto::random())
    }

    /// Seals with a given nonce (tests use fixed nonces; production uses [`Announcement::seal`]).
    pub fn seal_with_nonce(&self, key: &Key, nonce: &[u8; XNONCE_LEN]) -> Vec<u8> {
        let mut body = [0u8; BODY_LEN];
        body[0] = match self.kind {
            AnnounceKind::Start => 1,
            AnnounceKind::Stop => 2,
        };
        body[1..3].copy_from_slice(&self.tcp_port.to_be_bytes());
        body[3..3 + SESSION_ID_LEN].copy_from_slice(&self.session.0);
        body[3 + SESSION_ID_LEN..].copy_from_slice(&self.ts_ms.to_be_bytes());
        let mut out = Vec::with_capacity(DATAGRAM_LEN);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(nonce);
        let header = [MAGIC[0], MAGIC[1], MAGIC[2], MAGIC[3], VERSION];
        out.extend_from_slice(&crypto::seal_x(key, nonce, &header, &body));
        out
    }

    /// Checks length, magic and version, then authenticates and decodes.
    pub fn open(key: &Key, datagram: &[u8]) -> Result<Announcement, AnnounceError> {
        if datagram.len() != DATAGRAM_LEN {
            return Err(AnnounceError::BadLength);
        }
        if &datagram[..MAGIC.len()] != MAGIC {
            return Err(AnnounceError::BadMagic);
        }
        if datagram[MAGIC.len()] != VERSION {
            return Err(AnnounceError::BadVersion);
        }
        let mut nonce = [0u8; XNONCE_LEN];
        nonce.copy_from_slice(&datagram[NONCE_OFFSET..CT_OFFSET]);
        let body = crypto::open_x(key, &nonce, &datagram[..HEADER_LEN], &datagram[CT_OFFSET..])
            .map_err(|_: CryptoError| AnnounceError::BadTag)?;
        if body.len() != BODY_LEN {
            return Err(AnnounceError::BadLength);
        }
        let kind = match body[0] {
            1 => AnnounceKind::Start,
            2 => AnnounceKind::Stop,
            _ => return Err(AnnounceError::UnknownKind),
        };
        let tcp_port = u16::from_be_bytes([body[1], body[2]]);
        let mut sid = [0u8; SESSION_ID_LEN];
        sid.copy_from_slice(&body[3..3 + SESSION_ID_LEN]);
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&body[3 + SESSION_ID_LEN..]);
        Ok(Announcement {
            kind,
            tcp_port,
            session: SessionId(sid),
            ts_ms: u64::from_be_bytes(ts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Announcement {
        Announcement {
            kind: AnnounceKind::Start,
            tcp_port: 45000,
            session: SessionId([5; 16]),
            ts_ms: 123,
        }
    }

    #[test]
    fn round_trip() {
        let key = Key::from_bytes([1; 32]);
        let d = sample().seal(&key);
        assert_eq!(d.len(), DATAGRAM_LEN);
        assert_eq!(Announcement::open(&key, &d), Ok(sample()));
        let stop = Announcement {
            kind: AnnounceKind::Stop,
            ..sample()
        };
        assert_eq!(Announcement::open(&key, &stop.seal(&key)), Ok(stop));
    }

    #[test]
    fn fresh_nonce_each_time() {
        let key = Key::from_bytes([1; 32]);
        assert_ne!(sample().seal(&key), sample().seal(&key));
    }

    #[test]
    fn rejects_wrong_key_truncation_and_bit_flips() {
        let key = Key::from_bytes([1; 32]);
        let d = sample().seal(&key);
        assert_eq!(
            Announcement::open(&Key::from_bytes([2; 32]), &d),
            Err(AnnounceError::BadTag)
        );
        for n in 0..d.len() {
            assert_eq!(
                Announcement::open(&key, &d[..n]),
                Err(AnnounceError::BadLength)
            );
        }
        for i in 0..d.len() {
            for bit in 0..8 {
                let mut bad = d.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    Announcement::open(&key, &bad).is_err(),
                    "flip byte {i} bit {bit}"
                );
            }
        }
    }

    #[test]
    fn random_datagrams_never_open() {
        let key = Key::from_bytes([1; 32]);
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..20_000 {
            let len = if i % 2 == 0 {
                DATAGRAM_LEN
            } else {
                (i % 200) as usize
            };
            let mut buf = vec![0u8; len];
            for b in buf.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            if i % 4 == 0 && len >= 5 {
                buf[..4].copy_from_slice(MAGIC);
                buf[4] = VERSION;
            }
            assert!(Announcement::open(&key, &buf).is_err());
        }
    }
}
