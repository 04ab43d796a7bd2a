//! The client's connection to the server: connect, prove the key both ways, say who we are,
//! then exchange sealed messages without blocking the session loop.

use crate::crypto::Key;
use crate::protocol::SessionId;
use crate::protocol::frame::FrameReader;
use crate::protocol::handshake::{ClientHandshake, SecureChannel, frame_plain};
use crate::protocol::message::{INSTANCE_LEN, Message};
use crate::signing::ServerPublic;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Most unsent bytes held while the server is slow; beyond it the link is dropped and the
/// events stay queued for the next connection.
const MAX_OUT: usize = 8 * 1024 * 1024;

/// An established, authenticated connection to the server.
pub struct Link {
    stream: TcpStream,
    reader: FrameReader,
    ch: SecureChannel,
    out: Vec<u8>,
    last_rx: Instant,
    last_tx: Instant,
}

/// What the client trusts: the shared key, and in stronger mode the server's public key.
#[derive(Clone)]
pub struct Trust {
    /// The shared key.
    pub key: Key,
    /// Stronger mode: only a server that signs with this key is accepted.
    pub server_public: Option<ServerPublic>,
}

/// Who we are, sent in the hello.
#[derive(Clone)]
pub struct Identity {
    /// Host name shown on the server.
    pub hostname: String,
    /// Random id of this client process run.
    pub instance: [u8; INSTANCE_LEN],
}

impl Link {
    /// Connects and completes the handshake. Nothing about events is sent before the server has
    /// proved it holds the key. Returns the link and the sequence number the server expects next.
    pub fn connect(
        server: SocketAddr,
        trust: &Trust,
        session: SessionId,
        me: &Identity,
        timeout: Duration,
    ) -> Result<(Link, u64), String> {
        let stream = TcpStream::connect_timeout(&server, timeout)
            .map_err(|e| format!("cannot connect to {server}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        stream
            .set_write_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut reader = FrameReader::new();
        let (hs, hello) = ClientHandshake::start(&trust.key, session);
        (&stream)
            .write_all(&frame_plain(&hello))
            .map_err(|e| format!("handshake write: {e}"))?;
        let (_, body) = read_frame_blocking(&stream, &mut reader)?;
        let answer = Message::decode(&body).map_err(|e| format!("handshake: {e}"))?;
        let (proof, mut ch) = hs
            .finish_verified(&answer, trust.server_public.as_ref())
            .map_err(|e| format!("handshake with {server}: {e}"))?;
        (&stream)
            .write_all(&frame_plain(&proof))
            .map_err(|e| format!("handshake write: {e}"))?;
        let ident = Message::Hello {
            hostname: me.hostname.as_bytes().to_vec(),
            instance: me.instance,
            version: env!("CARGO_PKG_VERSION").as_bytes().to_vec(),
        };
        (&stream)
            .write_all(&ch.seal(&ident).map_err(|e| e.to_string())?)
            .map_err(|e| format!("hello: {e}"))?;
        let (prefix, body) = read_frame_blocking(&stream, &mut reader)?;
        let next_seq = match ch.open(&prefix, &body) {
            Ok(Message::Welcome { next_seq }) => next_seq,
            Ok(other) => return Err(format!("expected welcome, got {other:?}")),
            Err(e) => return Err(format!("welcome: {e}")),
        };
        stream.set_nonblocking(true).map_err(|e| e.to_string())?;
        let now = Instant::now();
        Ok((
            Link {
                stream,
                reader,
                ch,
                out: Vec::new(),
                last_rx: now,
                last_tx: now,
            },
            next_seq,
        ))
    }

    /// The socket, for poll.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Unsent bytes are waiting.
    pub fn wants_write(&self) -> bool {
        !self.out.is_empty()
    }

    /// Bytes sealed but not yet taken by the socket (the session stops adding batches above a
    /// bound, so a long backlog is sent as the server reads rather than buffered at once).
    pub fn backlog(&self) -> usize {
        self.out.len()
    }

    /// Seals and queues a message, then tries to write.
    pub fn send(&mut self, msg: &Message) -> Result<(), String> {
        self.send_body(&msg.encode())
    }

    /// Seals and queues an encoded message body (a batch of events), then tries to write.
    pub fn send_body(&mut self, body: &[u8]) -> Result<(), String> {
        let bytes = self.ch.seal_body(body).map_err(|e| e.to_string())?;
        if self.out.len() + bytes.len() > MAX_OUT {
            return Err("server is not reading".into());
        }
        self.out.extend_from_slice(&bytes);
        self.last_tx = Instant::now();
        self.flush()
    }

    /// Writes what the socket takes without blocking.
    pub fn flush(&mut self) -> Result<(), String> {
        while !self.out.is_empty() {
            match (&self.stream).write(&self.out) {
                Ok(0) => return Err("connection closed".into()),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("connection error: {e}")),
            }
        }
        Ok(())
    }

    /// Reads what has arrived and returns the messages; an error means the link is dead.
    pub fn receive(&mut self, now: Instant) -> Result<Vec<Message>, String> {
        let mut buf = [0u8; 16 * 1024];
        let mut closed = false;
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    self.last_rx = now;
                    self.reader.push(&buf[..n]);
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("connection error: {e}")),
            }
        }
        let mut msgs = Vec::new();
        while let Some((p, b)) = self.reader.next_frame().map_err(|e| e.to_string())? {
            msgs.push(self.ch.open(&p, &b).map_err(|e| e.to_string())?);
        }
        if closed && msgs.is_empty() {
            return Err("server closed the connection".into());
        }
        Ok(msgs)
    }

    /// Time since the server last sent anything.
    pub fn silent_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_rx)
    }

    /// Time since we last sent anything.
    pub fn idle_tx_for(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.last_tx)
    }
}

fn read_frame_blocking(
    stream: &TcpStream,
    reader: &mut FrameReader,
) -> Result<([u8; 4], Vec<u8>), String> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(f) = reader.next_frame().map_err(|e| format!("handshake: {e}"))? {
            return Ok(f);
        }
        match (&*stream).read(&mut buf) {
            Ok(0) => return Err("server closed the connection during the handshake".into()),
            Ok(n) => reader.push(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("handshake read: {e}")),
        }
    }
}
