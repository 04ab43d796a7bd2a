//! Pure cryptography: no sockets, no files. Everything that proves knowledge of the shared key
//! or protects bytes on the wire goes through this module.
//!
//! - Announcements: XChaCha20-Poly1305 under the shared key with a fresh random 24-byte nonce.
//! - Handshake: HMAC-SHA256 proofs over both sides' fresh nonces and the session id.
//! - Stream: per-connection, per-direction ChaCha20-Poly1305 keys derived from the handshake;
//!   the nonce is an implicit frame counter, so a replayed, reordered or dropped frame fails to
//!   open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Length of the shared key in bytes (256 bits).
pub const KEY_LEN: usize = 32;
/// Length of an XChaCha20-Poly1305 nonce.
pub const XNONCE_LEN: usize = 24;
/// Length of the Poly1305 authentication tag appended to every ciphertext.
pub const TAG_LEN: usize = 16;
/// Length of a handshake proof (HMAC-SHA256 output).
pub const PROOF_LEN: usize = 32;

/// Why a cryptographic operation refused its input. Deliberately fieldless: a forger learns
/// nothing from which check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoError {
    /// The ciphertext or proof does not authenticate under this key.
    BadTag,
    /// The frame counter would wrap; the connection must be replaced.
    CounterExhausted,
}

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CryptoError::BadTag => "authentication failed",
            CryptoError::CounterExhausted => "frame counter exhausted",
        })
    }
}

impl std::error::Error for CryptoError {}

/// The 256-bit shared key. Zeroed in memory when dropped, and never printed (only its
/// [`Key::fingerprint`] is).
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// Wraps raw key bytes.
    pub fn from_bytes(b: [u8; KEY_LEN]) -> Self {
        Key(b)
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut b = [0u8; KEY_LEN];
        getrandom::fill(&mut b)?;
        Ok(Key(b))
    }

    /// The raw bytes, for writing the key file.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A short, non-secret identifier of the key (first 8 bytes of a domain-separated SHA-256,
    /// as `ab12:cd34:ef56:7890`), shown on both sides so an admin can check they match.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"proctor key fingerprint v1");
        h.update(self.0);
        let d = h.finalize();
        crate::hex::fingerprint(&d)
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned &mut u8; the volatile write keeps the compiler
            // from eliding the zeroing of memory that is about to be freed.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.fingerprint())
    }
}

/// Fills an array with fresh random bytes (nonces, session ids). Panics only if the operating
/// system has no random source at all, in which case nothing secure can be done.
pub fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random number generator failed");
    b
}

/// Encrypts and authenticates `plaintext` (and `aad`, which is authenticated but sent in
/// clear) under the shared key with the given 24-byte nonce.
pub fn seal_x(key: &Key, nonce: &[u8; XNONCE_LEN], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(key.0));
    cipher
        .encrypt(
            &chacha20poly1305::XNonce::from(*nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption of a bounded message cannot fail")
}

/// Opens what [`seal_x`] produced; any change to nonce, aad or ciphertext gives `BadTag`.
pub fn open_x(
    key: &Key,
    nonce: &[u8; XNONCE_LEN],
    aad: &[u8],
    ciphertext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    let cipher = XChaCha20Poly1305::new(&chacha20poly1305::Key::from(key.0));
    cipher
        .decrypt(
            &chacha20poly1305::XNonce::from(*nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| CryptoError::BadTag)
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> HmacSha256 {
    let mut m = <HmacSha256 as hmac::KeyInit>::new_from_slice(key)
        .expect("HMAC accepts keys of any length");
    for p in parts {
        m.update(p);
    }
    m
}

/// Handshake proof that the sender holds the shared key: HMAC-SHA256 over a role label and the
/// transcript (session id and both fresh nonces). The label keeps a server proof from being
/// reflected back as a client proof.
pub fn proof(key: &Key, label: &[u8], transcript: &[&[u8]]) -> [u8; PROOF_LEN] {
    let mut parts: Vec<&[u8]> = vec![label];
    parts.extend_from_slice(transcript);
    hmac(&key.0, &parts).finalize().into_bytes().into()
}

/// Checks a proof in constant time.
pub fn verify_proof(
    key: &Key,
    label: &[u8],
    transcript: &[&[u8]],
    claimed: &[u8],
) -> Result<(), CryptoError> {
    let mut parts: Vec<&[u8]> = vec![label];
    parts.extend_from_slice(transcript);
    hmac(&key.0, &parts)
        .verify_slice(claimed)
        .map_err(|_| CryptoError::BadTag)
}

/// Derives a 256-bit sub-key bound to a purpose label and a transcript (HKDF-style: extract
/// with the transcript as salt, expand with the label).
pub fn derive(key: &Key, label: &[u8], transcript: &[&[u8]]) -> [u8; KEY_LEN] {
    let salt: Vec<u8> = transcript.concat();
    let prk: [u8; 32] = hmac(&salt, &[&key.0]).finalize().into_bytes().into();
    hmac(&prk, &[label, &[1u8]]).finalize().into_bytes().into()
}

/// One direction of an encrypted stream. Each frame uses the next counter value as its nonce,
/// so the receiver only accepts frames in the exact order they were sealed, each once.
pub struct StreamCipher {
    cipher: ChaCha20Poly1305,
    counter: u64,
}

impl StreamCipher {
    /// A cipher for one direction, keyed with a sub-key from [`derive`].
    pub fn new(key: [u8; KEY_LEN]) -> Self {
        StreamCipher {
            cipher: ChaCha20Poly1305::new(&chacha20poly1305::Key::from(key)),
            counter: 0,
        }
    }

    fn nonce(&self) -> chacha20poly1305::Nonce {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&self.counter.to_be_bytes());
        chacha20poly1305::Nonce::from(n)
    }

    /// Seals the next frame.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if self.counter == u64::MAX {
            return Err(CryptoError::CounterExhausted);
        }
        let ct = self
            .cipher
            .encrypt(
                &self.nonce(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::BadTag)?;
        self.counter += 1;
        Ok(ct)
    }

    /// Opens the next frame; on failure the counter does not move (the connection should close).
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if self.counter == u64::MAX {
            return Err(CryptoError::CounterExhausted);
        }
        let pt = self
            .cipher
            .decrypt(
                &self.nonce(),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::BadTag)?;
        self.counter += 1;
        Ok(pt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(b: u8) -> Key {
        Key::from_bytes([b; KEY_LEN])
    }

    #[test]
    fn sealed_announcement_opens_only_unchanged_under_same_key() {
        let n = [7u8; XNONCE_LEN];
        let ct = seal_x(&k(1), &n, b"hdr", b"hello");
        assert_eq!(open_x(&k(1), &n, b"hdr", &ct).unwrap(), b"hello");
        assert_eq!(open_x(&k(2), &n, b"hdr", &ct), Err(CryptoError::BadTag));
        assert_eq!(open_x(&k(1), &n, b"hdX", &ct), Err(CryptoError::BadTag));
        let mut n2 = n;
        n2[0] ^= 1;
        assert_eq!(open_x(&k(1), &n2, b"hdr", &ct), Err(CryptoError::BadTag));
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x80;
            assert_eq!(open_x(&k(1), &n, b"hdr", &bad), Err(CryptoError::BadTag));
        }
    }

    #[test]
    fn stream_rejects_replay_and_reorder() {
        let mut tx = StreamCipher::new([3; 32]);
        let mut rx = StreamCipher::new([3; 32]);
        let f1 = tx.seal(b"a", b"one").unwrap();
        let f2 = tx.seal(b"a", b"two").unwrap();
        assert_eq!(
            rx.open(b"a", &f2),
            Err(CryptoError::BadTag),
            "reordered frame"
        );
        assert_eq!(rx.open(b"a", &f1).unwrap(), b"one");
        assert_eq!(
            rx.open(b"a", &f1),
            Err(CryptoError::BadTag),
            "replayed frame"
        );
        assert_eq!(rx.open(b"a", &f2).unwrap(), b"two");
    }

    #[test]
    fn proofs_bind_label_and_transcript() {
        let p = proof(&k(1), b"server", &[b"s", b"n1", b"n2"]);
        assert!(verify_proof(&k(1), b"server", &[b"s", b"n1", b"n2"], &p).is_ok());
        assert!(verify_proof(&k(1), b"client", &[b"s", b"n1", b"n2"], &p).is_err());
        assert!(verify_proof(&k(1), b"server", &[b"s", b"n1", b"n3"], &p).is_err());
        assert!(verify_proof(&k(2), b"server", &[b"s", b"n1", b"n2"], &p).is_err());
        assert!(verify_proof(&k(1), b"server", &[b"s", b"n1", b"n2"], &p[..31]).is_err());
    }

    #[test]
    fn derived_keys_differ_by_label_and_transcript() {
        let a = derive(&k(1), b"c2s", &[b"x"]);
        assert_ne!(a, derive(&k(1), b"s2c", &[b"x"]));
        assert_ne!(a, derive(&k(1), b"c2s", &[b"y"]));
        assert_ne!(a, derive(&k(2), b"c2s", &[b"x"]));
        assert_eq!(a, derive(&k(1), b"c2s", &[b"x"]));
    }

    #[test]
    fn fingerprint_is_stable_and_not_the_key() {
        let f = k(9).fingerprint();
        assert_eq!(f.len(), 19);
        assert_eq!(f, k(9).fingerprint());
        assert_ne!(f, k(8).fingerprint());
        assert!(!format!("{:?}", k(9)).contains("0909"));
    }
}
