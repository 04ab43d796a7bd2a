//! The challenge-response that opens every stream, and the sealed channel that follows it.
//!
//! ```text
//! client -> server  ClientHello { version, session, Nc }              (clear)
//! server -> client  ServerHello { Ns, HMAC(K, "server" | session | Nc | Ns) }  (clear)
//! client -> server  ClientProof { HMAC(K, "client" | session | Nc | Ns) }      (clear)
//! then every frame is sealed with ChaCha20-Poly1305 under
//!   c2s = derive(K, "c2s", session | Nc | Ns), s2c = derive(K, "s2c", session | Nc | Ns)
//! with the frame counter as nonce and the length prefix as associated data.
//! ```
//! The client verifies the server's proof before it sends anything else, so a replayed or
//! forged start announcement gets no event out of it. Both nonces are fresh, so neither side's
//! proof can be replayed into another connection.

use super::frame::{self, LEN_PREFIX};
use super::message::{DecodeError, HS_NONCE_LEN, Message};
use super::{SessionId, VERSION};
use crate::crypto::{self, CryptoError, Key, StreamCipher};
use crate::signing::{ServerPublic, ServerSigner};

const SERVER_LABEL: &[u8] = b"proctor server proof v1";
const CLIENT_LABEL: &[u8] = b"proctor client proof v1";
const C2S_LABEL: &[u8] = b"proctor stream c2s v1";
const S2C_LABEL: &[u8] = b"proctor stream s2c v1";
const SIG_LABEL: &[u8] = b"proctor handshake signature v1";

/// Why a handshake or sealed frame was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// A message other than the one this step expects.
    Unexpected,
    /// The peer speaks another protocol version.
    BadVersion(u8),
    /// The client answers a session this server is not running.
    WrongSession,
    /// The peer's proof does not verify: it does not hold our key.
    BadProof,
    /// Stronger mode: the server's answer lacks a valid signature by the server's key.
    BadSignature,
    /// The server refused us and said why.
    Rejected(String),
    /// A sealed frame did not open (forged, replayed, reordered or corrupted).
    BadFrame(CryptoError),
    /// A frame opened but does not hold a valid message.
    Decode(DecodeError),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Unexpected => f.write_str("unexpected message during handshake"),
            HandshakeError::BadVersion(v) => {
                write!(f, "peer speaks protocol version {v}, we speak {VERSION}")
            }
            HandshakeError::WrongSession => f.write_str("not the session this server is running"),
            HandshakeError::BadProof => f.write_str("peer failed to prove it holds the key"),
            HandshakeError::BadSignature => {
                f.write_str("server's answer is not signed by the server's signing key")
            }
            HandshakeError::Rejected(r) => write!(f, "server refused: {}", crate::event::escape(r)),
            HandshakeError::BadFrame(e) => write!(f, "bad sealed frame: {e}"),
            HandshakeError::Decode(e) => write!(f, "bad message: {e}"),
        }
    }
}

/// Frames a message in clear (handshake only).
pub fn frame_plain(msg: &Message) -> Vec<u8> {
    let body = msg.encode();
    let mut out = Vec::with_capacity(LEN_PREFIX + body.len());
    out.extend_from_slice(&frame::prefix(body.len()));
    out.extend_from_slice(&body);
    out
}

/// The client's side of the handshake, between its hello and the server's answer.
pub struct ClientHandshake {
    key: Key,
    session: SessionId,
    nonce: [u8; HS_NONCE_LEN],
}

impl ClientHandshake {
    /// Begins a handshake for `session` with a fresh nonce; send the returned hello.
    pub fn start(key: &Key, session: SessionId) -> (Self, Message) {
        Self::start_with_nonce(key, session, crypto::random())
    }

    /// As [`ClientHandshake::start`] with a chosen nonce (tests).
    pub fn start_with_nonce(
        key: &Key,
        session: SessionId,
        nonce: [u8; HS_NONCE_LEN],
    ) -> (Self, Message) {
        let hello = Message::ClientHello {
            version: VERSION,
            session,
            nonce,
        };
        (
            ClientHandshake {
                key: key.clone(),
                session,
                nonce,
            },
            hello,
        )
    }

    /// Verifies the server's answer; on success returns the proof to send and the channel.
    pub fn finish(self, answer: &Message) -> Result<(Message, SecureChannel), HandshakeError> {
        self.finish_verified(answer, None)
    }

    /// As [`ClientHandshake::finish`]; with `required` (stronger mode) the answer must also carry
    /// the server's valid signature, so a party holding only the shared key cannot pose as it.
    pub fn finish_verified(
        self,
        answer: &Message,
        required: Option<&ServerPublic>,
    ) -> Result<(Message, SecureChannel), HandshakeError> {
        let (sn, sproof, sig) = match answer {
            Message::ServerHello { nonce, proof } => (nonce, proof, None),
            Message::SignedServerHello { nonce, proof, sig } => (nonce, proof, Some(sig)),
            Message::Reject { reason } => return Err(HandshakeError::Rejected(reason.clone())),
            _ => return Err(HandshakeError::Unexpected),
        };
        let t: [&[u8]; 3] = [&self.session.0, &self.nonce, sn];
        if let Some(p) = required {
            let signed = [&self.session.0[..], &self.nonce, sn, sproof].concat();
            if !sig.is_some_and(|s| p.verify(SIG_LABEL, &signed, s)) {
                return Err(HandshakeError::BadSignature);
            }
        }
        crypto::verify_proof(&self.key, SERVER_LABEL, &t, sproof)
            .map_err(|_| HandshakeError::BadProof)?;
        let proof = crypto::proof(&self.key, CLIENT_LABEL, &t);
        let ch = SecureChannel {
            send: StreamCipher::new(crypto::derive(&self.key, C2S_LABEL, &t)),
            recv: StreamCipher::new(crypto::derive(&self.key, S2C_LABEL, &t)),
        };
        Ok((Message::ClientProof { proof }, ch))
    }
}

/// The server's side of the handshake, between its answer and the client's proof.
pub struct ServerHandshake {
    session: SessionId,
    client_nonce: [u8; HS_NONCE_LEN],
    server_nonce: [u8; HS_NONCE_LEN],
}

impl ServerHandshake {
    /// Answers a client hello for the server's `current` session (None = no session running).
    pub fn respond(
        key: &Key,
        current: Option<SessionId>,
        hello: &Message,
    ) -> Result<(Self, Message), HandshakeError> {
        Self::respond_with_nonce(key, current, hello, crypto::random())
    }

    /// As [`ServerHandshake::respond`]; with a signer (stronger mode) the answer is signed.
    pub fn respond_signed(
        key: &Key,
        current: Option<SessionId>,
        hello: &Message,
        signer: Option<&ServerSigner>,
    ) -> Result<(Self, Message), HandshakeError> {
        let (hs, answer) = Self::respond(key, current, hello)?;
        let (Some(s), Message::ServerHello { nonce, proof }) = (signer, &answer) else {
            return Ok((hs, answer));
        };
        let signed = [&hs.session.0[..], &hs.client_nonce, nonce, proof].concat();
        let sig = s.sign(SIG_LABEL, &signed);
        Ok((
            hs,
            Message::SignedServerHello {
                nonce: *nonce,
                proof: *proof,
                sig,
            },
        ))
    }

    /// As [`ServerHandshake::respond`] with a chosen nonce (tests).
    pub fn respond_with_nonce(
        key: &Key,
        current: Option<SessionId>,
        hello: &Message,
        server_nonce: [u8; HS_NONCE_LEN],
    ) -> Result<(Self, Message), HandshakeError> {
        let (version, session, cn) = match hello {
            Message::ClientHello {
                version,
                session,
                nonce,
            } => (*version, *session, *nonce),
            _ => return Err(HandshakeError::Unexpected),
        };
        if version != VERSION {
            return Err(HandshakeError::BadVersion(version));
        }
        if current != Some(session) {
            return Err(HandshakeError::WrongSession);
        }
        let t: [&[u8]; 3] = [&session.0, &cn, &server_nonce];
        let proof = crypto::proof(key, SERVER_LABEL, &t);
        Ok((
            ServerHandshake {
                session,
                client_nonce: cn,
                server_nonce,
            },
            Message::ServerHello {
                nonce: server_nonce,
                proof,
            },
        ))
    }

    /// Verifies the client's proof; on success returns the channel.
    pub fn finish(self, key: &Key, msg: &Message) -> Result<SecureChannel, HandshakeError> {
        let Message::ClientProof { proof } = msg else {
            return Err(HandshakeError::Unexpected);
        };
        let t: [&[u8]; 3] = [&self.session.0, &self.client_nonce, &self.server_nonce];
        crypto::verify_proof(key, CLIENT_LABEL, &t, proof).map_err(|_| HandshakeError::BadProof)?;
        Ok(SecureChannel {
            send: StreamCipher::new(crypto::derive(key, S2C_LABEL, &t)),
            recv: StreamCipher::new(crypto::derive(key, C2S_LABEL, &t)),
        })
    }

    /// The session the client asked for.
    pub fn session(&self) -> SessionId {
        self.session
    }
}

/// Seals outgoing and opens incoming messages after the handshake, one counter per direction.
pub struct SecureChannel {
    send: StreamCipher,
    recv: StreamCipher,
}

impl SecureChannel {
    /// Seals and frames a message, ready to write to the socket.
    pub fn seal(&mut self, msg: &Message) -> Result<Vec<u8>, HandshakeError> {
        self.seal_body(&msg.encode())
    }

    /// Seals and frames an already encoded message body (e.g. a
    /// [`super::message::BatchEncoder`] batch) of at most
    /// [`super::message::MAX_SEALED_BODY`] bytes.
    pub fn seal_body(&mut self, body: &[u8]) -> Result<Vec<u8>, HandshakeError> {
        let ct_len = body.len() + crypto::TAG_LEN;
        if ct_len > frame::MAX_FRAME {
            // The peer would refuse the frame and close the connection: refuse it here instead.
            return Err(HandshakeError::Decode(DecodeError::TooLong));
        }
        let prefix = frame::prefix(ct_len);
        let ct = self
            .send
            .seal(&prefix, body)
            .map_err(HandshakeError::BadFrame)?;
        let mut out = Vec::with_capacity(LEN_PREFIX + ct.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens one frame (as returned by [`frame::FrameReader::next_frame`]).
    pub fn open(
        &mut self,
        prefix: &[u8; LEN_PREFIX],
        body: &[u8],
    ) -> Result<Message, HandshakeError> {
        let pt = self
            .recv
            .open(prefix, body)
            .map_err(HandshakeError::BadFrame)?;
        Message::decode(&pt).map_err(HandshakeError::Decode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::FrameReader;

    fn key(b: u8) -> Key {
        Key::from_bytes([b; 32])
    }

    fn pair() -> (SecureChannel, SecureChannel) {
        let sid = SessionId([9; 16]);
        let (c, hello) = ClientHandshake::start(&key(1), sid);
        let (s, answer) = ServerHandshake::respond(&key(1), Some(sid), &hello).unwrap();
        let (proof, cch) = c.finish(&answer).unwrap();
        let sch = s.finish(&key(1), &proof).unwrap();
        (cch, sch)
    }

    fn open_all(ch: &mut SecureChannel, bytes: &[u8]) -> Result<Vec<Message>, HandshakeError> {
        let mut r = FrameReader::new();
        r.push(bytes);
        let mut out = Vec::new();
        while let Some((p, b)) = r.next_frame().unwrap() {
            out.push(ch.open(&p, &b)?);
        }
        Ok(out)
    }

    #[test]
    fn both_sides_agree_and_talk() {
        let (mut c, mut s) = pair();
        let f = c.seal(&Message::Heartbeat).unwrap();
        assert_eq!(open_all(&mut s, &f).unwrap(), vec![Message::Heartbeat]);
        let f = s.seal(&Message::Ack { seq: 5 }).unwrap();
        assert_eq!(open_all(&mut c, &f).unwrap(), vec![Message::Ack { seq: 5 }]);
    }

    #[test]
    fn server_without_key_is_refused_by_client() {
        let sid = SessionId([9; 16]);
        let (c, hello) = ClientHandshake::start(&key(1), sid);
        let (_, answer) = ServerHandshake::respond(&key(2), Some(sid), &hello).unwrap();
        assert!(matches!(c.finish(&answer), Err(HandshakeError::BadProof)));
    }

    #[test]
    fn client_without_key_is_refused_by_server() {
        let sid = SessionId([9; 16]);
        let (c, hello) = ClientHandshake::start(&key(2), sid);
        let (s, _) = ServerHandshake::respond(&key(1), Some(sid), &hello).unwrap();
        // The client cannot verify, and a proof made under the wrong key is refused.
        let (_, answer2) = ServerHandshake::respond(&key(2), Some(sid), &hello).unwrap();
        let (proof, _) = c.finish(&answer2).unwrap();
        assert!(matches!(
            s.finish(&key(1), &proof),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn stronger_mode_refuses_a_server_that_only_holds_the_shared_key() {
        let sid = SessionId([9; 16]);
        let real = ServerSigner::from_seed(&[1; 32]);
        let public = real.public();
        // The real server signs; the client accepts.
        let (c, hello) = ClientHandshake::start(&key(1), sid);
        let (_, answer) =
            ServerHandshake::respond_signed(&key(1), Some(sid), &hello, Some(&real)).unwrap();
        assert!(c.finish_verified(&answer, Some(&public)).is_ok());
        // A lab PC with the shared key but not the signing key: unsigned or wrongly signed.
        for fake in [None, Some(ServerSigner::from_seed(&[2; 32]))] {
            let (c, hello) = ClientHandshake::start(&key(1), sid);
            let (_, answer) =
                ServerHandshake::respond_signed(&key(1), Some(sid), &hello, fake.as_ref()).unwrap();
            assert!(matches!(
                c.finish_verified(&answer, Some(&public)),
                Err(HandshakeError::BadSignature)
            ));
        }
    }

    #[test]
    fn wrong_session_and_version_are_refused() {
        let (_, hello) = ClientHandshake::start(&key(1), SessionId([1; 16]));
        assert!(matches!(
            ServerHandshake::respond(&key(1), Some(SessionId([2; 16])), &hello),
            Err(HandshakeError::WrongSession)
        ));
        assert!(matches!(
            ServerHandshake::respond(&key(1), None, &hello),
            Err(HandshakeError::WrongSession)
        ));
        let bad = Message::ClientHello {
            version: 99,
            session: SessionId([1; 16]),
            nonce: [0; 32],
        };
        assert!(matches!(
            ServerHandshake::respond(&key(1), Some(SessionId([1; 16])), &bad),
            Err(HandshakeError::BadVersion(99))
        ));
    }

    #[test]
    fn a_recorded_server_answer_does_not_work_for_a_new_client_nonce() {
        let sid = SessionId([9; 16]);
        let (_, hello1) = ClientHandshake::start(&key(1), sid);
        let (_, recorded) = ServerHandshake::respond(&key(1), Some(sid), &hello1).unwrap();
        let (c2, _) = ClientHandshake::start(&key(1), sid);
        assert!(matches!(
            c2.finish(&recorded),
            Err(HandshakeError::BadProof)
        ));
    }

    #[test]
    fn replayed_and_reordered_frames_fail() {
        let (mut c, mut s) = pair();
        let f1 = c
            .seal(&Message::Event {
                seq: 1,
                ts_ms: 0,
                kind: crate::event::EventKind::Net,
                detail: vec![],
            })
            .unwrap();
        let f2 = c.seal(&Message::Heartbeat).unwrap();
        assert!(open_all(&mut s, &f2).is_err(), "reordered");
        let (mut c, mut s) = pair();
        let f1b = c.seal(&Message::Heartbeat).unwrap();
        assert!(open_all(&mut s, &f1b).is_ok());
        assert!(open_all(&mut s, &f1b).is_err(), "replayed");
        // A frame from another connection does not open either.
        assert!(open_all(&mut s, &f1).is_err(), "cross-connection");
    }
}
