//! One client connection as the poll loop sees it: socket, input reassembly, output buffer and
//! the handshake state machine. It turns bytes into [`Input`]s for the core and never touches
//! files or the registry; any protocol violation closes this one connection only.

use super::storage::ClientId;
use crate::crypto::Key;
use crate::event::EventKind;
use crate::protocol::SessionId;
use crate::protocol::frame::FrameReader;
use crate::protocol::handshake::{HandshakeError, SecureChannel, ServerHandshake, frame_plain};
use crate::protocol::message::{INSTANCE_LEN, Message};
use crate::signing::ServerSigner;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Bytes read from all ready connections together in one loop round, shared out by
/// [`read_budget`]: everything read in a round is held (raw, then as lines) until the round's
/// commit, so this bounds the server's memory at 1,000 busy clients, not only one client's share.
pub const ROUND_READ_BUDGET: usize = 16 * 1024 * 1024;
/// Least a ready connection may read per round: one whole largest frame, so every round moves
/// every busy client forward.
pub const MIN_READ_BUDGET: usize = 64 * 1024;
/// Most one connection reads per round, so one busy client cannot starve others.
pub const MAX_READ_BUDGET: usize = 256 * 1024;

/// The bytes each of `ready` readable connections may read this round: an equal share of
/// [`ROUND_READ_BUDGET`], between [`MIN_READ_BUDGET`] and [`MAX_READ_BUDGET`].
pub fn read_budget(ready: usize) -> usize {
    (ROUND_READ_BUDGET / ready.max(1)).clamp(MIN_READ_BUDGET, MAX_READ_BUDGET)
}
/// Most unsent bytes held for a peer that does not read; beyond it the connection is closed.
const MAX_OUT: usize = 4 * 1024 * 1024;

/// What a connection produced for the core.
#[derive(Debug)]
pub enum Input {
    /// The connection was refused and is closing; the reason is for counters and logs.
    Refused(String),
    /// The handshake completed and the client said who it is.
    Hello {
        hostname: Vec<u8>,
        instance: [u8; INSTANCE_LEN],
        version: Vec<u8>,
    },
    /// A message on an established connection.
    Message(Message),
}

/// An event read from the connection and queued for the file, not yet acknowledged.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Client sequence number.
    pub seq: u64,
    /// Client timestamp.
    pub ts_ms: u64,
    /// Kind.
    pub kind: EventKind,
    /// Escaped detail.
    pub detail: String,
}

enum State {
    AwaitHello,
    AwaitProof(ServerHandshake),
    AwaitIdentity(SecureChannel),
    Established(SecureChannel),
    Closed,
}

/// A client connection.
pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    reader: FrameReader,
    out: Vec<u8>,
    state: State,
    handshake_deadline: Instant,
    last_rx: Instant,
    last_tx: Instant,
    closed: bool,
    closing: bool,
    bye: bool,
    superseded: bool,
    lost_reason: Option<String>,
    client: Option<ClientId>,
    pending: Vec<Pending>,
}

impl Conn {
    /// Wraps an accepted socket; the handshake must finish before `handshake_deadline`.
    pub fn new(
        stream: TcpStream,
        peer: SocketAddr,
        handshake_deadline: Instant,
    ) -> std::io::Result<Conn> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let now = Instant::now();
        Ok(Conn {
            stream,
            peer,
            reader: FrameReader::new(),
            out: Vec::new(),
            state: State::AwaitHello,
            handshake_deadline,
            last_rx: now,
            last_tx: now,
            closed: false,
            closing: false,
            bye: false,
            superseded: false,
            lost_reason: None,
            client: None,
            pending: Vec::new(),
        })
    }

    /// The socket's descriptor, for poll.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The client, once it has said hello, while the connection is open.
    pub fn client(&self) -> Option<&ClientId> {
        if self.is_closed() {
            None
        } else {
            self.client.as_ref()
        }
    }

    /// The client this connection belonged to, even after it closed.
    pub fn identity(&self) -> Option<&ClientId> {
        self.client.as_ref()
    }

    /// Unsent output is waiting.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Reads what the socket has, up to `budget` bytes (see [`read_budget`]), and advances the
    /// protocol, returning what the core must act on.
    pub fn read_in(
        &mut self,
        key: &Key,
        signer: Option<&ServerSigner>,
        session: Option<SessionId>,
        now: Instant,
        mut budget: usize,
    ) -> Vec<Input> {
        let mut inputs = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while budget > 0 && !self.closed {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    self.closed = true;
                    break;
                }
                Ok(n) => {
                    self.last_rx = now;
                    budget = budget.saturating_sub(n);
                    self.reader.push(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.lost_reason = Some(format!("connection error: {e}"));
                    self.closed = true;
                    break;
                }
            }
        }
        // Frames already received are processed even if the peer closed right after them.
        while !self.closing && !matches!(self.state, State::Closed) {
            match self.reader.next_frame() {
                Ok(Some((prefix, body))) => {
                    self.frame(key, signer, session, &prefix, &body, &mut inputs)
                }
                Ok(None) => break,
                Err(e) => {
                    inputs.push(Input::Refused(format!("bad frame: {e}")));
                    self.close();
                }
            }
        }
        inputs
    }

    fn frame(
        &mut self,
        key: &Key,
        signer: Option<&ServerSigner>,
        session: Option<SessionId>,
        prefix: &[u8; 4],
        body: &[u8],
        inputs: &mut Vec<Input>,
    ) {
        let state = std::mem::replace(&mut self.state, State::Closed);
        match state {
            State::AwaitHello => {
                let msg = match Message::decode(body) {
                    Ok(m) => m,
                    Err(e) => return self.refuse(inputs, format!("not a proctor handshake: {e}")),
                };
                match ServerHandshake::respond_signed(key, session, &msg, signer) {
                    Ok((hs, answer)) => {
                        self.push_out(&frame_plain(&answer));
                        self.state = State::AwaitProof(hs);
                    }
                    Err(HandshakeError::WrongSession) => {
                        let reason = if session.is_some() {
                            "not the running session"
                        } else {
                            "no session running"
                        };
                        self.push_out(&frame_plain(&Message::Reject {
                            reason: reason.into(),
                        }));
                        self.closing = true;
                        inputs.push(Input::Refused(format!("client asked for {reason}")));
                    }
                    Err(e) => self.refuse(inputs, e.to_string()),
                }
            }
            State::AwaitProof(hs) => {
                let msg = match Message::decode(body) {
                    Ok(m) => m,
                    Err(e) => return self.refuse(inputs, format!("bad handshake message: {e}")),
                };
                match hs.finish(key, &msg) {
                    Ok(ch) => self.state = State::AwaitIdentity(ch),
                    Err(e) => self.refuse(inputs, format!("handshake failed: {e}")),
                }
            }
            State::AwaitIdentity(mut ch) => match ch.open(prefix, body) {
                Ok(Message::Hello {
                    hostname,
                    instance,
                    version,
                }) => {
                    self.state = State::Established(ch);
                    inputs.push(Input::Hello {
                        hostname,
                        instance,
                        version,
                    });
                }
                Ok(_) => self.refuse(inputs, "expected hello after handshake".into()),
                Err(e) => self.refuse(inputs, e.to_string()),
            },
            State::Established(mut ch) => match ch.open(prefix, body) {
                Ok(msg) => {
                    self.state = State::Established(ch);
                    inputs.push(Input::Message(msg));
                }
                Err(e) => {
                    self.lost_reason = Some(format!("rejected frame: {e}"));
                    self.refuse(inputs, e.to_string());
                }
            },
            State::Closed => {}
        }
    }

    fn refuse(&mut self, inputs: &mut Vec<Input>, reason: String) {
        inputs.push(Input::Refused(reason));
        self.close();
    }

    /// Marks the handshake complete for `id` and tells the client where to continue.
    pub fn establish(&mut self, id: ClientId, next_seq: u64, now: Instant) {
        self.client = Some(id);
        self.last_rx = now;
        self.send(&Message::Welcome { next_seq });
    }

    /// Seals and queues a message (established connections only).
    pub fn send(&mut self, msg: &Message) {
        if let State::Established(ch) = &mut self.state {
            match ch.seal(msg) {
                Ok(bytes) => self.push_out(&bytes),
                Err(_) => self.close(),
            }
            self.last_tx = Instant::now();
        }
    }

    fn push_out(&mut self, bytes: &[u8]) {
        if self.out.len() + bytes.len() > MAX_OUT {
            self.lost_reason = Some("client stopped reading".into());
            self.close();
            return;
        }
        self.out.extend_from_slice(bytes);
    }

    /// Writes as much queued output as the socket takes.
    pub fn write_out(&mut self) {
        while !self.out.is_empty() && !self.closed {
            match self.stream.write(&self.out) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.lost_reason = Some(format!("connection error: {e}"));
                    self.closed = true;
                }
            }
        }
        if self.closing && self.out.is_empty() {
            self.closed = true;
        }
    }

    /// Records an event waiting for the file write.
    pub fn note_pending(&mut self, seq: u64, ts_ms: u64, kind: EventKind, detail: String) {
        self.pending.push(Pending {
            seq,
            ts_ms,
            kind,
            detail,
        });
    }

    /// Events were read since the last commit.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the events read since the last commit.
    pub fn take_pending(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.pending)
    }

    /// The client said bye: flush the acknowledgement, then close.
    pub fn said_bye(&mut self) {
        self.bye = true;
        self.closing = true;
    }

    /// Whether the client said bye.
    pub fn bye(&self) -> bool {
        self.bye
    }

    /// A newer connection of the same client took over.
    pub fn supersede(&mut self) {
        self.superseded = true;
        self.close();
    }

    /// Whether a newer connection took over.
    pub fn superseded(&self) -> bool {
        self.superseded
    }

    /// Closes because the client went silent.
    pub fn lose(&mut self, reason: String) {
        self.lost_reason = Some(reason);
        self.close();
    }

    /// Why the connection was lost, if known.
    pub fn lost_reason(&self) -> Option<&str> {
        self.lost_reason.as_deref()
    }

    /// Closes at once, dropping unsent output.
    pub fn close(&mut self) {
        self.closed = true;
        self.state = State::Closed;
    }

    /// Closed, or closing with everything sent.
    pub fn is_closed(&self) -> bool {
        self.closed || (self.closing && self.out.is_empty())
    }

    /// The handshake deadline passed before the client said hello.
    pub fn handshake_expired(&self, now: Instant) -> bool {
        self.client.is_none() && !self.closed && !self.closing && now >= self.handshake_deadline
    }

    /// Time since anything arrived.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_rx)
    }

    /// Time since we last sent something.
    pub fn idle_tx_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_tx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_round_shares_its_read_budget_within_bounds() {
        assert_eq!(read_budget(0), MAX_READ_BUDGET);
        assert_eq!(read_budget(1), MAX_READ_BUDGET);
        assert_eq!(read_budget(100), ROUND_READ_BUDGET / 100);
        assert_eq!(read_budget(1_000), MIN_READ_BUDGET);
        assert!(read_budget(1_000) * 1_000 <= 4 * ROUND_READ_BUDGET);
    }
}
