//! The stronger mode: an Ed25519 key pair that belongs to the server alone. Clients given the
//! public half accept start/stop announcements and handshakes only when the server signed them,
//! so a lab PC that holds the shared key still cannot stop monitoring or pose as the server.
//!
//! Files (text): the secret half `proctor-signing-key-v1` / `secret: <64 hex>` (mode 0600, on the
//! server only) and the public half `proctor-signing-pub-v1` / `public: <64 hex>` (copied to
//! every lab PC; not secret).

use crate::error::{Error, Result};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Length of a signature on the wire.
pub const SIG_LEN: usize = 64;
const SECRET_HEADER: &str = "proctor-signing-key-v1";
const PUBLIC_HEADER: &str = "proctor-signing-pub-v1";

/// The server's signing key (secret).
pub struct ServerSigner(SigningKey);

/// The server's public key, held by clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ServerPublic(VerifyingKey);

impl std::fmt::Debug for ServerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerSigner({})", self.public().fingerprint())
    }
}

impl std::fmt::Debug for ServerPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServerPublic({})", self.fingerprint())
    }
}

impl ServerSigner {
    /// A new random signing key.
    pub fn generate() -> std::result::Result<Self, getrandom::Error> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)?;
        let k = SigningKey::from_bytes(&seed);
        seed.fill(0);
        Ok(ServerSigner(k))
    }

    /// From the 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        ServerSigner(SigningKey::from_bytes(seed))
    }

    /// Signs `label | message`; the label keeps a signature made for one purpose from being
    /// accepted for another.
    pub fn sign(&self, label: &[u8], message: &[u8]) -> [u8; SIG_LEN] {
        self.0.sign(&[label, message].concat()).to_bytes()
    }

    /// The public half.
    pub fn public(&self) -> ServerPublic {
        ServerPublic(self.0.verifying_key())
    }
}

impl ServerPublic {
    /// From the 32 public bytes; `None` if they are not a valid curve point.
    pub fn from_bytes(b: &[u8; 32]) -> Option<Self> {
        VerifyingKey::from_bytes(b).ok().map(ServerPublic)
    }

    /// Checks a signature made by [`ServerSigner::sign`] with the same label.
    pub fn verify(&self, label: &[u8], message: &[u8], sig: &[u8]) -> bool {
        let Ok(sig) = <[u8; SIG_LEN]>::try_from(sig) else {
            return false;
        };
        self.0
            .verify_strict(&[label, message].concat(), &Signature::from_bytes(&sig))
            .is_ok()
    }

    /// Short identifier shown by server and client so an admin can check they match.
    pub fn fingerprint(&self) -> String {
        crate::hex::fingerprint(self.0.as_bytes())
    }
}

fn field(text: &str, header: &str, name: &str) -> std::result::Result<[u8; 32], String> {
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    if lines.next() != Some(header) {
        return Err(format!("first line must be '{header}'"));
    }
    for l in lines {
        if let Some(v) = l.strip_prefix(name).and_then(|r| r.strip_prefix(':')) {
            return crate::hex::decode::<32>(v.trim())
                .ok_or_else(|| format!("the '{name}:' line must hold 64 hex digits"));
        }
    }
    Err(format!("no '{name}:' line"))
}

/// Loads the server's secret signing key (refused if readable by group or others).
pub fn load_signer(path: &Path) -> Result<ServerSigner> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Key(format!("cannot read signing key {shown}: {e}")))?;
    let seed = field(&text, SECRET_HEADER, "secret")
        .map_err(|e| Error::Key(format!("signing key {shown} is malformed: {e}")))?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode())
        .unwrap_or(0);
    if mode & 0o077 != 0 {
        return Err(Error::Key(format!(
            "signing key {shown} is readable by group or others; run 'chmod 600 {shown}'"
        )));
    }
    Ok(ServerSigner::from_seed(&seed))
}

/// Loads the server's public key on a client.
pub fn load_public(path: &Path) -> Result<ServerPublic> {
    let shown = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Key(format!("cannot read server public key {shown}: {e}")))?;
    let b = field(&text, PUBLIC_HEADER, "public")
        .map_err(|e| Error::Key(format!("server public key {shown} is malformed: {e}")))?;
    ServerPublic::from_bytes(&b).ok_or_else(|| {
        Error::Key(format!(
            "server public key {shown} is not a valid Ed25519 key"
        ))
    })
}

/// Text of the secret key file.
pub fn format_signer(s: &ServerSigner) -> String {
    format!(
        "# proctor server signing key (Ed25519). Keep it on the server only, mode 0600.\n# public fingerprint {}\n{SECRET_HEADER}\nsecret: {}\n",
        s.public().fingerprint(),
        crate::hex::encode(s.0.as_bytes())
    )
}

/// Text of the public key file.
pub fn format_public(p: &ServerPublic) -> String {
    format!(
        "# proctor server public key: copy to every lab PC and pass it with --server-pubkey.\n# fingerprint {}\n{PUBLIC_HEADER}\npublic: {}\n",
        p.fingerprint(),
        crate::hex::encode(p.0.as_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_with_the_same_key_label_and_message() {
        let s = ServerSigner::from_seed(&[1; 32]);
        let p = s.public();
        let sig = s.sign(b"L", b"msg");
        assert!(p.verify(b"L", b"msg", &sig));
        assert!(!p.verify(b"M", b"msg", &sig));
        assert!(!p.verify(b"L", b"msh", &sig));
        assert!(!p.verify(b"L", b"msg", &sig[..63]));
        assert!(
            !ServerSigner::from_seed(&[2; 32])
                .public()
                .verify(b"L", b"msg", &sig)
        );
    }

    #[test]
    fn key_files_round_trip() {
        let s = ServerSigner::from_seed(&[3; 32]);
        let seed = field(&format_signer(&s), SECRET_HEADER, "secret").unwrap();
        assert_eq!(ServerSigner::from_seed(&seed).public(), s.public());
        let b = field(&format_public(&s.public()), PUBLIC_HEADER, "public").unwrap();
        assert_eq!(ServerPublic::from_bytes(&b), Some(s.public()));
        assert!(field("junk", PUBLIC_HEADER, "public").is_err());
    }
}
