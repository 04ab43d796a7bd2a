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
use crate::signing::{SIG_LEN, ServerPublic, ServerSigner};

/// First bytes of every announcement.
pub const MAGIC: &[u8; 4] = b"PRCT";
const HEADER_LEN: usize = MAGIC.len() + 1;
const NONCE_OFFSET: usize = HEADER_LEN;
const CT_OFFSET: usize = NONCE_OFFSET + XNONCE_LEN;
/// Length of the plaintext body.
pub const BODY_LEN: usize = 1 + 2 + SESSION_ID_LEN + 8;
/// The length of an unsigned datagram.
pub const DATAGRAM_LEN: usize = CT_OFFSET + BODY_LEN + TAG_LEN;
/// The length of a datagram signed by the server (stronger mode).
pub const SIGNED_LEN: usize = DATAGRAM_LEN + SIG_LEN;
const SIG_LABEL: &[u8] = b"proctor announcement signature v1";

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
    /// We require the server's signature (stronger mode) and the datagram has none.
    Unsigned,
    /// The server's signature does not verify.
    BadSignature,
}

impl std::fmt::Display for AnnounceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AnnounceError::BadLength => "wrong length",
            AnnounceError::BadMagic => "not a proctor datagram",
            AnnounceError::BadVersion => "unsupported protocol version",
            AnnounceError::BadTag => "does not authenticate under our key",
            AnnounceError::UnknownKind => "unknown announcement kind",
            AnnounceError::Unsigned => "not signed by the server (a signature is required)",
            AnnounceError::BadSignature => "the server's signature does not verify",
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

    /// Seals, and in stronger mode appends the server's Ed25519 signature over the sealed bytes.
    pub fn seal_signed(&self, key: &Key, signer: Option<&ServerSigner>) -> Vec<u8> {
        let mut d = self.seal(key);
        if let Some(s) = signer {
            let sig = s.sign(SIG_LABEL, &d);
            d.extend_from_slice(&sig);
        }
        d
    }

    /// Opens a plain or signed datagram. With `required` (the client holds the server's public
    /// key) only a datagram carrying a valid signature is accepted; without it a signature is
    /// ignored, so unsigned and signed servers both work for clients not in stronger mode.
    pub fn open_verified(
        key: &Key,
        required: Option<&ServerPublic>,
        datagram: &[u8],
    ) -> Result<Announcement, AnnounceError> {
        match (datagram.len(), required) {
            (SIGNED_LEN, Some(p)) => {
                let (sealed, sig) = datagram.split_at(DATAGRAM_LEN);
                if !p.verify(SIG_LABEL, sealed, sig) {
                    return Err(AnnounceError::BadSignature);
                }
                Self::open(key, sealed)
            }
            (SIGNED_LEN, None) => Self::open(key, &datagram[..DATAGRAM_LEN]),
            (DATAGRAM_LEN, Some(_)) => {
                Self::open(key, datagram)?;
                Err(AnnounceError::Unsigned)
            }
            _ => Self::open(key, datagram),
        }
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
    fn stronger_mode_requires_a_valid_server_signature() {
        let key = Key::from_bytes([1; 32]);
        let signer = ServerSigner::from_seed(&[8; 32]);
        let public = signer.public();
        let signed = sample().seal_signed(&key, Some(&signer));
        assert_eq!(signed.len(), SIGNED_LEN);
        assert_eq!(
            Announcement::open_verified(&key, Some(&public), &signed),
            Ok(sample())
        );
        assert_eq!(
            Announcement::open_verified(&key, None, &signed),
            Ok(sample()),
            "plain clients ignore it"
        );
        // A lab PC holding the shared key forges a stop: sealed correctly, but unsigned or
        // signed with another key.
        let forged = Announcement {
            kind: AnnounceKind::Stop,
            ..sample()
        };
        let unsigned = forged.seal(&key);
        assert_eq!(
            Announcement::open_verified(&key, Some(&public), &unsigned),
            Err(AnnounceError::Unsigned)
        );
        let other = ServerSigner::from_seed(&[9; 32]);
        let wrong = forged.seal_signed(&key, Some(&other));
        assert_eq!(
            Announcement::open_verified(&key, Some(&public), &wrong),
            Err(AnnounceError::BadSignature)
        );
        let mut flipped = signed.clone();
        flipped[SIGNED_LEN - 1] ^= 1;
        assert_eq!(
            Announcement::open_verified(&key, Some(&public), &flipped),
            Err(AnnounceError::BadSignature)
        );
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
        let mut rng = crate::testkit::Rng::new(0x9e37_79b9_7f4a_7c15);
        for i in 0..20_000 {
            let len = if i % 2 == 0 {
                DATAGRAM_LEN
            } else {
                (i % 200) as usize
            };
            let mut buf = rng.bytes(len);
            if i % 4 == 0 && len >= 5 {
                buf[..4].copy_from_slice(MAGIC);
                buf[4] = VERSION;
            }
            assert!(Announcement::open(&key, &buf).is_err());
        }
    }
}
