//! The wire formats, as pure code over byte slices (docs/PROTOCOL.md describes them in prose).
//!
//! - [`announce`]: the sealed UDP start/stop datagram.
//! - [`frame`]: length-prefixed framing of the TCP stream.
//! - [`message`]: the messages inside frames and their binary encoding.
//! - [`handshake`]: the challenge-response that proves the key before any event is sent, and
//!   [`handshake::SecureChannel`], which seals and opens messages after it.

pub mod announce;
pub mod frame;
pub mod handshake;
pub mod message;

/// Protocol version carried in announcements and the client's first message.
pub const VERSION: u8 = 1;

/// Length of a session id.
pub const SESSION_ID_LEN: usize = 16;

/// A random identifier of one monitoring session, chosen by the server when it starts.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub [u8; SESSION_ID_LEN]);

impl SessionId {
    /// A fresh random session id.
    pub fn random() -> Self {
        SessionId(crate::crypto::random())
    }

    /// Lower-case hex, as shown in log headers.
    pub fn hex(&self) -> String {
        crate::hex::encode(&self.0)
    }

    /// Parses [`SessionId::hex`] output.
    pub fn from_hex(s: &str) -> Option<SessionId> {
        crate::hex::decode(s).map(SessionId)
    }

    /// The first 8 hex digits, enough for people to tell sessions apart.
    pub fn short(&self) -> String {
        self.hex()[..8].to_string()
    }
}

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({})", self.hex())
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}
